//! The state store under concurrency, SIGKILL, hostile file systems and bad names.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::state_dir;
use twofold_policy::record::{Enrollment, Record};
use twofold_policy::store::{Store, StoreError};
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{UserName, recovery};

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Re-runs this test binary as a helper process running the ignored test `name`.
fn helper(name: &str, dir: &Path, extra: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "--nocapture",
        "--test-threads=1",
        name,
    ])
    .env("TWOFOLD_TEST_STATE", dir);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

fn helper_dir() -> Option<PathBuf> {
    std::env::var_os("TWOFOLD_TEST_STATE").map(PathBuf::from)
}

// ---- 16 processes × 100 read-modify-write increments ----------------------------------------

#[test]
#[ignore = "helper process for sixteen_processes_increment_exactly"]
fn helper_increment() {
    let Some(dir) = helper_dir() else { return };
    let store = Store::open(&dir).unwrap();
    let u = user("alice");
    for i in 0..100 {
        let lock = store.lock(&u).unwrap();
        let state = lock.read().unwrap();
        let mut counters = state.counters;
        counters
            .failures
            .entry("10.0.0.1".into())
            .or_default()
            .count += 1;
        lock.write_counters(&counters).unwrap();
        if i % 10 == 0 {
            // The durable path too: required_since serves as a counter here.
            let mut record = state.record.unwrap_or_else(|| Record::new("alice"));
            record.required_since = Some(record.required_since.unwrap_or(0) + 1);
            lock.write_record(&record).unwrap();
        }
    }
}

#[test]
fn sixteen_processes_increment_exactly() {
    let (_tmp, dir) = state_dir();
    let children: Vec<_> = (0..16)
        .map(|_| {
            helper("helper_increment", &dir, &[])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let state = Store::open(&dir).unwrap().read(&user("alice")).unwrap();
    assert_eq!(state.counters.failures["10.0.0.1"].count, 1600);
    assert_eq!(state.record.unwrap().required_since, Some(160));
    // No temp file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// ---- SIGKILL at random points during writes ---------------------------------------------------

#[test]
#[ignore = "helper process for sigkill_during_writes_never_corrupts"]
fn helper_writer() {
    let Some(dir) = helper_dir() else { return };
    let store = Store::open(&dir).unwrap();
    let u = user("bob");
    let secret = Secret::generate().unwrap();
    let mut seq: u64 = std::env::var("TWOFOLD_TEST_SEQ").unwrap().parse().unwrap();
    loop {
        seq += 1;
        let lock = store.lock(&u).unwrap();
        let mut record = lock
            .read()
            .unwrap()
            .record
            .unwrap_or_else(|| Record::new("bob"));
        // Vary the size so a torn write would show.
        let codes = recovery::generate((seq % 10 + 1) as u32).unwrap();
        record.enrollment = Some(Enrollment::new(
            &secret,
            Params::default(),
            seq,
            codes.hashes,
        ));
        record.required_since = Some(seq);
        lock.write_record(&record).unwrap();
        // Acknowledged: the durable write returned.
        println!("ack {seq}");
        let mut counters = lock.read().unwrap().counters;
        counters.last_steps.insert(1, seq);
        counters.last_login_from = Some("x".repeat((seq % 200) as usize));
        lock.write_counters(&counters).unwrap();
    }
}

#[test]
fn sigkill_during_writes_never_corrupts() {
    let (_tmp, dir) = state_dir();
    let mut acked: u64 = 0;
    for round in 0..30 {
        let mut child = helper(
            "helper_writer",
            &dir,
            &[("TWOFOLD_TEST_SEQ", (round * 100_000).to_string())],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
        let mut byte = [0u8; 2];
        getrandom::fill(&mut byte).unwrap();
        std::thread::sleep(Duration::from_micros(
            20_000 + u64::from(u16::from_le_bytes(byte)) % 40_000,
        ));
        child.kill().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        for line in out.lines() {
            if let Some(n) = line.unwrap().strip_prefix("ack ") {
                acked = acked.max(n.parse().unwrap());
            }
        }
        child.wait().unwrap();
        // Whatever moment the kill hit, the record loads and holds every acknowledged change.
        let store = Store::open(&dir).unwrap();
        let state = store.read(&user("bob")).unwrap();
        assert!(
            state.counters_recovered.is_none(),
            "{:?}",
            state.counters_recovered
        );
        let record = state.record.expect("a record exists after the first write");
        assert!(
            record.required_since.unwrap() >= acked,
            "acknowledged {acked}, found {:?}",
            record.required_since
        );
        let e = record.enrollment.unwrap();
        assert!(e.authenticators.iter().all(|a| a.secret().is_ok()));
        assert!(!e.recovery_codes.is_empty());
    }
    assert!(acked > 0, "the writer never got a write through");
}

// ---- hostile file systems --------------------------------------------------------------------

fn write_one(store: &Store, name: &str) {
    let u = user(name);
    let lock = store.lock(&u).unwrap();
    let secret = Secret::generate().unwrap();
    let mut r = Record::new(name);
    r.enrollment = Some(Enrollment::new(&secret, Params::default(), 1, vec![]));
    lock.write_record(&r).unwrap();
}

#[test]
fn files_are_private_and_round_trip() {
    let (_tmp, dir) = state_dir();
    let store = Store::open(&dir).unwrap();
    write_one(&store, "carol");
    let meta = std::fs::metadata(dir.join("carol.toml")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(dir.join("carol.toml")).unwrap();
    assert!(
        text.contains("version = 2")
            && text.contains("user = \"carol\"")
            && text.contains("enrolled_at = \"1970-01-01T00:00:01Z\""),
        "{text}"
    );
    assert!(store.read(&user("carol")).unwrap().enrolled());
    assert!(!store.read(&user("nobody-here")).unwrap().enrolled());
    assert_eq!(store.users().unwrap(), vec![user("carol")]);
}

#[test]
fn symlinks_are_refused() {
    let (tmp, dir) = state_dir();
    let store = Store::open(&dir).unwrap();
    write_one(&store, "dave");
    // A record that is a symlink (to a valid record of someone else).
    symlink(dir.join("dave.toml"), dir.join("eve.toml")).unwrap();
    let err = store.read(&user("eve")).unwrap_err();
    assert!(matches!(err, StoreError::Insecure { .. }), "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    // A lock file that is a symlink: nothing is created through it.
    symlink(tmp.path().join("target"), dir.join("frank.lock")).unwrap();
    assert!(matches!(
        store.lock(&user("frank")),
        Err(StoreError::Insecure { .. })
    ));
    assert!(!tmp.path().join("target").exists());
    // A state directory that is a symlink.
    symlink(&dir, tmp.path().join("link")).unwrap();
    assert!(matches!(
        Store::open(&tmp.path().join("link")),
        Err(StoreError::Insecure { .. })
    ));
    // A missing one.
    assert!(matches!(
        Store::open(&tmp.path().join("nope")),
        Err(StoreError::Missing(_))
    ));
}

#[test]
fn wrong_modes_and_owners_are_refused() {
    let (_tmp, dir) = state_dir();
    let store = Store::open(&dir).unwrap();
    write_one(&store, "gina");
    std::fs::set_permissions(
        dir.join("gina.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = store.read(&user("gina")).unwrap_err();
    assert!(
        err.to_string().contains("mode 0644, expected 0600"),
        "{err}"
    );
    std::fs::set_permissions(
        dir.join("gina.toml"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    assert!(store.read(&user("gina")).is_ok());

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = Store::open(&dir).unwrap_err();
    assert!(
        err.to_string().contains("mode 0755 lets others in"),
        "{err}"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    if !is_root() {
        eprintln!("owner checks need root to chown: run make test as root (CI does)");
        return;
    }
    nix::unistd::chown(
        &dir.join("gina.toml"),
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
    )
    .unwrap();
    let err = store.read(&user("gina")).unwrap_err();
    assert!(
        err.to_string().contains("owned by uid 65534, expected 0"),
        "{err}"
    );
    nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let err = Store::open(&dir).unwrap_err();
    assert!(err.to_string().contains("owned by uid 65534"), "{err}");
}

#[test]
fn bad_user_names_never_reach_the_file_system() {
    let long = "a".repeat(300);
    for bad in [
        "..",
        "../x",
        "a/b",
        "/etc/passwd",
        "x\0y",
        "-rf",
        ".hidden",
        "",
        long.as_str(),
        "a b",
        "tab\t",
    ] {
        let err = UserName::parse(bad).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn corrupt_records_are_errors_with_positions() {
    let (_tmp, dir) = state_dir();
    let store = Store::open(&dir).unwrap();
    let put = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    put(
        "h.toml",
        "version = 1\nuser = \"h\"\n[enrollment]\nsecret = 42\n",
    );
    let err = store.read(&user("h")).unwrap_err().to_string();
    assert!(err.contains("h.toml: corrupt: 4:10: invalid type"), "{err}");
    put("i.toml", "version = 1\nuser = \"someone-else\"\n");
    let err = store.read(&user("i")).unwrap_err().to_string();
    assert!(
        err.contains("holds the record of \"someone-else\""),
        "{err}"
    );
    put("j.toml", "version = 9\nuser = \"j\"\n");
    let err = store.read(&user("j")).unwrap_err().to_string();
    assert!(err.contains("written by a newer twofold"), "{err}");
    put(
        "k.toml",
        "version = 1\nuser = \"k\"\n[enrollment]\nsecret = \"AAAA\"\nalgorithm = \"SHA1\"\ndigits = 6\nperiod = 30\nenrolled_at = \"2026-01-01T00:00:00Z\"\n",
    );
    let err = store.read(&user("k")).unwrap_err().to_string();
    assert!(err.contains("invalid secret"), "{err}");
    // A torn counters file (only possible after power loss) is recovered from, and said.
    put("l.counters", "version = 1\nlast_st");
    let state = store.read(&user("l")).unwrap();
    assert!(
        state
            .counters_recovered
            .unwrap()
            .contains("corrupt counters ignored")
    );
    // A leftover temp file from a killed writer does not disturb anything.
    put(".m.toml.tmp", "garbage");
    write_one(&store, "m");
    assert!(store.read(&user("m")).unwrap().enrolled());
    assert!(!dir.join(".m.toml.tmp").exists());
}

#[test]
fn full_disk_loses_nothing() {
    if !is_root() {
        eprintln!(
            "the full-disk test mounts a tmpfs and needs root: run make test as root (CI does)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs failed");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let store = Store::open(&mnt).unwrap();
    write_one(&store, "nina");
    let before = std::fs::read(mnt.join("nina.toml")).unwrap();
    // Fill the disk.
    let mut filler = std::fs::File::create(mnt.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
    drop(filler);
    // A big change cannot be written: a clear error, the old record intact, no temp left.
    let u = user("nina");
    let lock = store.lock(&u).unwrap();
    let mut r = lock.read().unwrap().record.unwrap();
    r.enrollment.as_mut().unwrap().recovery_codes = recovery::generate(50).unwrap().hashes;
    let err = lock.write_record(&r).unwrap_err().to_string();
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(std::fs::read(mnt.join("nina.toml")).unwrap(), before);
    assert!(!mnt.join(".nina.toml.tmp").exists());
    drop(lock);
    // Space returns: writes work again.
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let lock = store.lock(&u).unwrap();
    lock.write_record(&r).unwrap();
    assert_eq!(
        lock.read()
            .unwrap()
            .record
            .unwrap()
            .enrollment
            .unwrap()
            .recovery_codes
            .len(),
        50
    );
}

/// A store kept open (the daemon's) notices when its path no longer leads to the directory it
/// opened, or that directory would now be refused: replaced, moved, removed and made again,
/// chmod-ed; and stays current through reads and writes.
#[test]
fn a_kept_store_knows_when_its_directory_changed() {
    let (_tmp, dir) = state_dir();
    let store = Store::open(&dir).unwrap();
    assert!(store.still_current());
    let _ = store.read(&user("alice")).unwrap();
    let lock = store.lock(&user("alice")).unwrap();
    lock.write_record(&Record::new("alice")).unwrap();
    drop(lock);
    assert!(store.still_current());
    // chmod to a mode the open refuses, and back.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    assert!(!store.still_current());
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(store.still_current());
    // Replaced: moved away, and a new directory made in its place.
    std::fs::rename(&dir, dir.with_extension("old")).unwrap();
    assert!(!store.still_current());
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(!store.still_current());
    // Removed and made again, many times: the open directory's inode is never handed out again
    // while the store holds it.
    let store = Store::open(&dir).unwrap();
    for _ in 0..50 {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!store.still_current());
    }
}
