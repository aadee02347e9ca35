//! The policy cache on a file system whose timestamps have a granularity of one second (ext2
//! with 128-byte inodes; before Linux 6.13 every file system's timestamps came from the coarse
//! clock tick): an in-place edit that keeps the size within one second leaves the metadata
//! fingerprint unchanged, and must still never be answered from a cache of the old text.
//!
//! Needs root, `mkfs.ext2`, `mount -o loop` and a free loop device; without them each test
//! prints why and passes (set `TWOFOLD_REQUIRE_LOOP=1` to make that a failure instead).
//!
//! Against the fingerprint-only cache of commit 0629f48 (before the racy-file rule) the first two
//! tests fail, as run once by hand: the first at its first attempt with
//! `attempt 0: the cache served the policy from before the edit` (left: `Optional`, right:
//! `Required`), the second at `edit 2` (the second edit in one second). The third passes there
//! too: the change time was already part of the fingerprint.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use twofold_policy::cache::{CACHE_NAME, Wanted};
use twofold_policy::{Mode, Policy, Store};

/// An ext2 image with 1-second timestamps, mounted on a loop device for the life of the value.
struct Ext2 {
    _tmp: tempfile::TempDir,
    img: PathBuf,
    mnt: PathBuf,
}

impl Ext2 {
    /// The mounted file system, or why it cannot be had here.
    fn mount() -> Result<Ext2, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("not root".into());
        }
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let img = tmp.path().join("fs.img");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).map_err(|e| e.to_string())?;
        let out = Command::new("mkfs.ext2")
            .args(["-q", "-F", "-I", "128"])
            .arg(&img)
            .arg("4M")
            .output()
            .map_err(|e| format!("mkfs.ext2: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mkfs.ext2 failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let out = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -o loop failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Ext2 {
            _tmp: tmp,
            img,
            mnt,
        })
    }
}

impl Drop for Ext2 {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        // `mount -o loop` sets autoclear, so the device is normally gone already.
        if let Ok(out) = Command::new("losetup").arg("-j").arg(&self.img).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((dev, _)) = line.split_once(':') {
                    let _ = Command::new("losetup").args(["-d", dev]).status();
                }
            }
        }
    }
}

fn mounted_or_skip(test: &str) -> Option<Ext2> {
    match Ext2::mount() {
        Ok(m) => Some(m),
        Err(why) if std::env::var_os("TWOFOLD_REQUIRE_LOOP").is_some() => {
            panic!("{test}: cannot mount an ext2 image: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED {test}: needs root, mkfs.ext2 and a loop mount: {why}");
            None
        }
    }
}

fn write(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Overwrites `from` with `to` (same length) inside the file, keeping its inode and size: what
/// an editor that saves in place does.
fn edit_in_place(p: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let text = std::fs::read_to_string(p).unwrap();
    let at = text.find(from).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(to.as_bytes(), at as u64).unwrap();
}

/// (inode, size, mtime, ctime) to the nanosecond: all a metadata fingerprint can see.
fn identity(p: &Path) -> (u64, u64, (i64, i64), (i64, i64)) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (
        m.ino(),
        m.size(),
        (m.mtime(), m.mtime_nsec()),
        (m.ctime(), m.ctime_nsec()),
    )
}

/// Sleeps until just after the next full second, so that the next steps fit in one second.
fn sleep_to_next_second() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let into = Duration::from_nanos(u64::from(now.subsec_nanos()));
    std::thread::sleep(Duration::from_secs(1) - into + Duration::from_millis(20));
}

/// `/etc/twofold` on the ext2 file system: `policy.toml` and a `policy.d/` with one drop-in,
/// owned by root, 0644 and 0755; the state directory beside it.
fn policy_tree(root: &Path) -> (PathBuf, Store) {
    let etc = root.join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let main = etc.join("policy.toml");
    write(
        &main,
        "mode = \"optional\"\n[users.bob]\nmode = \"optional\"\n",
    );
    let d = etc.join("policy.d");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    write(
        &d.join("50-site.toml"),
        "[groups.wheel]\nmode = \"required\"\n",
    );
    let store = Store::open_or_create(&root.join("state")).unwrap();
    (main, store)
}

/// A thread that loads the policy through the cache in a loop, as concurrent logins do.
struct Loader {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl Loader {
    fn start(main: PathBuf, state: PathBuf) -> Loader {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let Ok(store) = Store::open(&state) else {
                return 0;
            };
            let mut n = 0;
            // An error (the file system going away after a failed assertion) ends the loop.
            while !flag.load(Ordering::Relaxed) && Policy::load_for(&main, &store, &ALICE).is_ok() {
                n += 1;
            }
            n
        });
        Loader {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the thread; how many loads it made.
    fn stop(&mut self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop();
    }
}

const ALICE: Wanted<'static> = Wanted {
    user: "alice",
    groups: &[],
    service: Some("sshd"),
};

#[test]
fn an_edit_in_the_second_of_the_build_is_never_served_from_the_cache() {
    let Some(fs) =
        mounted_or_skip("an_edit_in_the_second_of_the_build_is_never_served_from_the_cache")
    else {
        return;
    };
    let mut exercised = 0;
    for attempt in 0..5 {
        let root = fs.mnt.join(format!("try{attempt}"));
        std::fs::create_dir(&root).unwrap();
        sleep_to_next_second();
        let (main, store) = policy_tree(&root);
        let before = identity(&main);
        // A login loads the policy (and may build the cache) ...
        let p = Policy::load_for(&main, &store, &ALICE).unwrap();
        assert_eq!(p.mode.value, Mode::Optional);
        // ... and the admin changes it in the same second, keeping the size.
        edit_in_place(&main, "mode = \"optional\"", "mode = \"required\"");
        let after = identity(&main);
        if after != before {
            eprintln!("attempt {attempt}: a second boundary was crossed, again");
            continue;
        }
        // The race is real: nothing a metadata fingerprint sees has changed.
        assert_eq!(after.2.1, 0, "not a 1-second file system");
        let p = Policy::load_for(&main, &store, &ALICE).unwrap();
        assert_eq!(
            p.mode.value,
            Mode::Required,
            "attempt {attempt}: the cache served the policy from before the edit"
        );
        exercised += 1;
        if exercised == 2 {
            break;
        }
    }
    assert!(exercised > 0, "never edited within the second of the build");
}

#[test]
fn edits_while_other_logins_build_the_cache_are_seen_at_once() {
    let Some(fs) = mounted_or_skip("edits_while_other_logins_build_the_cache_are_seen_at_once")
    else {
        return;
    };
    let (main, store) = policy_tree(&fs.mnt);
    let state = store.path().to_owned();
    // Another login process, loading (and building the cache) all the time; stopped and joined
    // before the file system is unmounted, also when an assertion fails.
    let mut other = Loader::start(main.clone(), state);
    // Edits for 2.5 seconds, several within each second, each checked by a login right after.
    let until = SystemTime::now() + Duration::from_millis(2500);
    let mut edits = 0;
    let mut same_second = 0;
    let mut mode = Mode::Optional;
    while SystemTime::now() < until {
        let before = identity(&main);
        let (from, to, next) = match mode {
            Mode::Optional => ("mode = \"optional\"", "mode = \"required\"", Mode::Required),
            _ => ("mode = \"required\"", "mode = \"optional\"", Mode::Optional),
        };
        edit_in_place(&main, from, to);
        mode = next;
        edits += 1;
        if identity(&main) == before {
            same_second += 1;
        }
        assert_eq!(
            Policy::load_for(&main, &store, &ALICE).unwrap().mode.value,
            mode,
            "edit {edits}"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    let loads = other.stop();
    assert!(loads > 0, "the other login never loaded");
    assert!(
        same_second > 0,
        "no edit kept the fingerprint ({edits} edits)"
    );
    eprintln!("{edits} edits, {same_second} invisible to the fingerprint, {loads} other loads");
    // Once the files are older than the last build, the cache is used again and still right.
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(
        Policy::load_for(&main, &store, &ALICE).unwrap().mode.value,
        mode
    );
    assert!(store.path().join(CACHE_NAME).exists());
    assert_eq!(
        Policy::load_for(&main, &store, &ALICE).unwrap().mode.value,
        mode
    );
}

#[test]
fn a_modification_time_set_back_is_caught_by_the_change_time() {
    let Some(fs) = mounted_or_skip("a_modification_time_set_back_is_caught_by_the_change_time")
    else {
        return;
    };
    let (main, store) = policy_tree(&fs.mnt);
    // Old enough for a cache to be written.
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(
        Policy::load_for(&main, &store, &ALICE).unwrap().mode.value,
        Mode::Optional
    );
    let cache = store.path().join(CACHE_NAME);
    let built = identity(&cache);
    assert_eq!(
        Policy::load_for(&main, &store, &ALICE).unwrap().mode.value,
        Mode::Optional
    );
    assert_eq!(identity(&cache), built, "the cache was not used");
    let old = std::fs::metadata(&main).unwrap().modified().unwrap();
    edit_in_place(&main, "mode = \"optional\"", "mode = \"required\"");
    // `touch -d` back to the old time: only the change time (set by the kernel) moves.
    std::fs::File::options()
        .write(true)
        .open(&main)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(std::fs::metadata(&main).unwrap().modified().unwrap(), old);
    assert_eq!(
        Policy::load_for(&main, &store, &ALICE).unwrap().mode.value,
        Mode::Required
    );
}
