//! The policy cache decides exactly as the full policy, and is used only for the very files it
//! was made from, and only when they were settled before it was built (the racy-file rule of
//! `cache.rs`). The race itself needs a file system with one-second timestamps: see
//! `cache_coarse_fs.rs`, which runs as root on an ext2 image.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use twofold_policy::cache::{CACHE_NAME, Wanted};
use twofold_policy::resolve::{RecordFacts, Subject, resolve};
use twofold_policy::{Mode, Policy, Store};

fn write(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
}

struct Setup {
    _tmp: tempfile::TempDir,
    main: std::path::PathBuf,
    store: Store,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let main = dir.join("policy.toml");
    let mut text = String::from(
        "mode = \"optional\"\nadmin_group = \"ops\"\n[enrollment]\nat_login_from = [\"local\"]\n",
    );
    for i in 0..300 {
        text.push_str(&format!(
            "[users.u{i}]\nmode = \"{}\"\n",
            ["required", "optional", "disabled"][i % 3]
        ));
    }
    for i in 0..40 {
        text.push_str(&format!(
            "[groups.g{i}]\nmode = \"{}\"\n",
            ["disabled", "optional", "required"][i % 3]
        ));
    }
    text.push_str("[services.sudo]\nmode = \"disabled\"\n[services.sshd]\nmode = \"required\"\n");
    text.push_str("[networks.\"10.0.0.0/8\"]\nmode = \"disabled\"\n[networks.\"10.9.0.0/16\"]\nmode = \"required\"\n[networks.\"2001:db8::/32\"]\nmode = \"optional\"\n");
    write(&main, &text);
    std::fs::create_dir(dir.join("policy.d")).unwrap();
    std::fs::set_permissions(dir.join("policy.d"), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(
        &dir.join("policy.d/50-site.toml"),
        "[enrollment]\nat_login_from = [\"local\", \"10.0.0.0/8\", \"2001:db8::/32\", \"192.168.1.7\"]\n[users.u7]\nmode = \"disabled\"\n[groups.g3]\nmode = \"required\"\n",
    );
    let store = Store::open_or_create(&tmp.path().join("state")).unwrap();
    Setup {
        _tmp: tmp,
        main,
        store,
    }
}

/// The latest mtime or ctime of the policy files and directories, in whole seconds.
fn newest(s: &Setup) -> i64 {
    let etc = s.main.parent().unwrap();
    let mut paths = vec![etc.to_owned(), s.main.clone(), etc.join("policy.d")];
    for e in std::fs::read_dir(etc.join("policy.d")).unwrap() {
        paths.push(e.unwrap().path());
    }
    paths
        .iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(p).unwrap();
            m.mtime().max(m.ctime())
        })
        .max()
        .unwrap()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Waits until the files are settled: old enough (two whole seconds) for a cache of them to be
/// kept.
fn settle(s: &Setup) {
    let until = newest(s) + 2;
    while now_secs() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (inode, change time) of the cache: unchanged over loads means it was read, not rebuilt.
fn cache_id(s: &Setup) -> (u64, i64, i64) {
    let m = std::fs::symlink_metadata(s.store.path().join(CACHE_NAME)).unwrap();
    (m.ino(), m.ctime(), m.ctime_nsec())
}

fn same_decisions(s: &Setup) {
    settle(s);
    let full = Policy::load_system(&s.main).unwrap();
    // The copy is made by the first load, and every later one reads it.
    Policy::load_for(
        &s.main,
        &s.store,
        &Wanted {
            user: "u0",
            groups: &[],
            service: None,
        },
    )
    .unwrap();
    let built = cache_id(s);
    let users: Vec<String> = (0..320).step_by(7).map(|i| format!("u{i}")).collect();
    let group_sets: Vec<Vec<String>> = vec![
        vec![],
        vec!["g3".into()],
        vec!["g1".into(), "g2".into(), "g39".into(), "nosuch".into()],
        vec!["g0".into(), "g4".into()],
    ];
    for u in &users {
        for gs in &group_sets {
            for svc in [None, Some("sudo"), Some("sshd"), Some("login")] {
                let w = Wanted {
                    user: u,
                    groups: gs,
                    service: svc,
                };
                let small = Policy::load_for(&s.main, &s.store, &w).unwrap();
                assert_eq!(small.networks, full.networks);
                // From no network, a network, a longer one inside it, IPv6, and outside.
                for from in [
                    None,
                    Some("10.1.1.1"),
                    Some("10.9.1.1"),
                    Some("2001:db8::1"),
                    Some("192.0.2.1"),
                ] {
                    let subject = Subject {
                        user: u,
                        groups: gs,
                        service: svc,
                        from: from.and_then(twofold_policy::net::rhost_addr),
                    };
                    let a = resolve(&full, &subject, &RecordFacts::of(None), 1000);
                    let b = resolve(&small, &subject, &RecordFacts::of(None), 1000);
                    assert_eq!(a, b, "{u} {gs:?} {svc:?} {from:?}");
                }
                assert_eq!(small.enrollment, full.enrollment);
                assert_eq!(small.admin_group, full.admin_group);
                assert_eq!(small.totp, full.totp);
            }
        }
    }
    assert_eq!(cache_id(s), built, "the cache was rebuilt, not used");
    // The drop-in's list replaced the main file's, and reads back from the copy as written.
    let list: Vec<String> = full
        .enrollment
        .at_login_from
        .as_ref()
        .unwrap()
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(
        list,
        ["local", "10.0.0.0/8", "2001:db8::/32", "192.168.1.7"]
    );
}

fn cache_text(s: &Setup) -> String {
    std::fs::read_to_string(s.store.path().join(CACHE_NAME)).unwrap()
}

#[test]
fn the_cache_decides_as_the_full_policy() {
    let s = setup();
    let w = Wanted {
        user: "u1",
        groups: &[],
        service: None,
    };
    settle(&s);
    Policy::load_for(&s.main, &s.store, &w).unwrap();
    let meta = std::fs::metadata(s.store.path().join(CACHE_NAME)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    same_decisions(&s);
}

#[test]
fn the_cache_is_used_and_any_change_of_the_files_invalidates_it() {
    let s = setup();
    let w = Wanted {
        user: "u1",
        groups: &[],
        service: None,
    };
    settle(&s);
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().users["u1"].mode,
        Mode::Optional
    );
    // It is read: a change made to the cache itself shows.
    let path = s.store.path().join(CACHE_NAME);
    let original = cache_text(&s);
    std::fs::write(
        &path,
        original.replace("R\tu\tu1\toptional", "R\tu\tu1\trequired"),
    )
    .unwrap();
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().users["u1"].mode,
        Mode::Required
    );
    // An edit of the same size in the same second: invalidated.
    let text = std::fs::read_to_string(&s.main).unwrap();
    write(
        &s.main,
        &text.replacen(
            "[users.u1]\nmode = \"optional\"",
            "[users.u1]\nmode = \"disabled\"",
            1,
        ),
    );
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().users["u1"].mode,
        Mode::Disabled
    );
    same_decisions(&s);
    // A new drop-in, then its removal.
    let dropin = s.main.parent().unwrap().join("policy.d/90-late.toml");
    write(&dropin, "[users.u1]\nmode = \"required\"\n");
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().users["u1"].mode,
        Mode::Required
    );
    std::fs::remove_file(&dropin).unwrap();
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().users["u1"].mode,
        Mode::Disabled
    );
    // A chmod that makes the policy untrustworthy: refused, not served from the cache.
    std::fs::set_permissions(&s.main, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(Policy::load_for(&s.main, &s.store, &w).is_err());
    std::fs::set_permissions(&s.main, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A broken edit: refused (fail closed), whatever the cache holds.
    let good = std::fs::read_to_string(&s.main).unwrap();
    write(&s.main, &format!("{good}\n[users.x]\nmode = 3\n"));
    assert!(Policy::load_for(&s.main, &s.store, &w).is_err());
    write(&s.main, &good);
    settle(&s);
    // A damaged or foreign cache: a full load, and a fresh cache.
    std::fs::write(&path, "garbage\n").unwrap();
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().users["u1"].mode,
        Mode::Disabled
    );
    assert!(cache_text(&s).starts_with("twofold-policy-cache\t6\t"));
    // A symlinked cache is not followed.
    std::fs::remove_file(&path).unwrap();
    let decoy = s.store.path().join("decoy");
    std::fs::write(&decoy, original).unwrap();
    std::os::unix::fs::symlink(&decoy, &path).unwrap();
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().users["u1"].mode,
        Mode::Disabled
    );
}

#[test]
fn files_changed_in_the_last_two_seconds_are_not_cached_until_settled() {
    let s = setup();
    let w = Wanted {
        user: "u1",
        groups: &[],
        service: None,
    };
    let path = s.store.path().join(CACHE_NAME);
    // Just written: a change in this second could keep every timestamp, so no copy is kept
    // (checked after the load: its build time was no later than now).
    Policy::load_for(&s.main, &s.store, &w).unwrap();
    if now_secs() < newest(&s) + 2 {
        assert!(!path.exists(), "a cache of files changed in this second");
    }
    settle(&s);
    Policy::load_for(&s.main, &s.store, &w).unwrap();
    assert!(path.exists());
    let built = cache_id(&s);
    // An edit: a full load; the old copy stays (refused by its fingerprint) until the file is
    // settled again, then a new one is made.
    let text = std::fs::read_to_string(&s.main).unwrap();
    write(
        &s.main,
        &text.replacen(
            "[users.u1]\nmode = \"optional\"",
            "[users.u1]\nmode = \"disabled\"",
            1,
        ),
    );
    let policy = Policy::load_for(&s.main, &s.store, &w).unwrap();
    assert_eq!(policy.users["u1"].mode, Mode::Disabled);
    if now_secs() < newest(&s) + 2 {
        assert_eq!(cache_id(&s), built);
    }
    settle(&s);
    Policy::load_for(&s.main, &s.store, &w).unwrap();
    assert_ne!(cache_id(&s), built);
}

#[test]
fn a_copy_stamped_before_the_files_settled_is_refused() {
    let s = setup();
    let w = Wanted {
        user: "u1",
        groups: &[],
        service: None,
    };
    settle(&s);
    Policy::load_for(&s.main, &s.store, &w).unwrap();
    let path = s.store.path().join(CACHE_NAME);
    let original = cache_text(&s);
    let (header, rest) = original.split_once('\n').unwrap();
    let (start, built) = header.rsplit_once('\t').unwrap();
    let built: i64 = built.parse().unwrap();
    assert!(built >= newest(&s) + 2);
    // A marked copy with its own stamp is used (so a refusal below is the stamp's doing) ...
    let marked = rest.replace("R\tu\tu1\toptional", "R\tu\tu1\trequired");
    std::fs::write(&path, format!("{header}\n{marked}")).unwrap();
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().users["u1"].mode,
        Mode::Required
    );
    // ... one stamped less than two seconds after the last change is not (as if written by a
    // process that read the files in the second they changed), nor one from the future.
    for stamp in [newest(&s) + 1, newest(&s), now_secs() + 3600] {
        std::fs::write(&path, format!("{start}\t{stamp}\n{marked}")).unwrap();
        assert_eq!(
            Policy::load_for(&s.main, &s.store, &w).unwrap().users["u1"].mode,
            Mode::Optional,
            "stamp {stamp}"
        );
    }
}

#[test]
fn an_edit_with_the_modification_time_set_back_is_seen() {
    let s = setup();
    let w = Wanted {
        user: "u1",
        groups: &[],
        service: None,
    };
    settle(&s);
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().users["u1"].mode,
        Mode::Optional
    );
    let before = std::fs::metadata(&s.main).unwrap();
    // In place, same size, then `touch -d` back to the old modification time.
    let text = std::fs::read_to_string(&s.main).unwrap();
    let at = text.find("[users.u1]\nmode = \"optional\"").unwrap() + "[users.u1]\nmode = \"".len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&s.main)
        .unwrap();
    f.write_all_at(b"required", at as u64).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
    drop(f);
    let after = std::fs::metadata(&s.main).unwrap();
    assert_eq!(
        (after.ino(), after.size(), after.modified().unwrap()),
        (before.ino(), before.size(), before.modified().unwrap())
    );
    // Only the change time, which nobody can set, moved.
    assert_ne!(
        (after.ctime(), after.ctime_nsec()),
        (before.ctime(), before.ctime_nsec())
    );
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().users["u1"].mode,
        Mode::Required
    );
}

/// A `[store]` section in the main file and a drop-in.
const STORE_DROPIN: &str = "[store]\nbackend = \"ldap\"\n[store.ldap]\nuri = [\"ldaps://ldap1.example.org\", \"ldap://ldap2.example.org:3890\"]\nstarttls = true\nbind_dn = \"cn=twofold,ou=services,dc=example,dc=org\"\nbind_password_file = \"/etc/twofold/ldap.secret\"\nca_file = \"/etc/ssl/certs/ldap-ca.pem\"\ntimeout = \"2s500ms\"\nlink_oath_users = true\nuser_base = \"ou=people,dc=example,dc=org\"\n[store.offline]\nenabled = true\nmax_age = \"2d\"\n";

fn with_store(s: &Setup) {
    let text = std::fs::read_to_string(&s.main).unwrap();
    write(
        &s.main,
        &format!("{text}[store.ldap]\nbase = \"ou=twofold,dc=example,dc=org\"\ntimeout = \"9s\"\n"),
    );
    write(
        &s.main.parent().unwrap().join("policy.d/60-store.toml"),
        STORE_DROPIN,
    );
}

#[test]
fn the_store_section_reads_back_from_the_cache() {
    let s = setup();
    with_store(&s);
    settle(&s);
    let full = Policy::load_system(&s.main).unwrap();
    let l = full.store.ldap.as_ref().unwrap();
    assert_eq!(l.timeout, Duration::from_millis(2500));
    assert_eq!(l.base, "ou=twofold,dc=example,dc=org");
    assert!(
        full.store.sources["ldap.base"]
            .file
            .ends_with("policy.toml")
    );
    assert!(
        full.store.sources["ldap.timeout"]
            .file
            .ends_with("60-store.toml")
    );
    let w = Wanted {
        user: "u1",
        groups: &[],
        service: Some("sshd"),
    };
    // The first load makes the copy, the later ones read it: the same store every time.
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().store,
        full.store
    );
    let built = cache_id(&s);
    assert!(cache_text(&s).contains("\nK\tldap\t1\t172800\n"));
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().store,
        full.store
    );
    let (lazy, _) = Policy::load_for_lazy(&s.main, &s.store, "u2", None, &mut |_| {
        Ok(vec!["g3".into()])
    })
    .unwrap();
    assert_eq!(lazy.store, full.store);
    assert_eq!(cache_id(&s), built, "the cache was rebuilt, not used");
    // It is read: a change made to the copy itself shows.
    let path = s.store.path().join(CACHE_NAME);
    std::fs::write(
        &path,
        cache_text(&s).replace(
            "\tldaps://ldap1.example.org\t",
            "\tldaps://ldap9.example.org\t",
        ),
    )
    .unwrap();
    let got = Policy::load_for(&s.main, &s.store, &w).unwrap().store;
    assert_eq!(got.ldap.unwrap().uris[0], "ldaps://ldap9.example.org");
    // Without a [store] section: the defaults, from the copy too.
    std::fs::remove_file(s.main.parent().unwrap().join("policy.d/60-store.toml")).unwrap();
    let text = std::fs::read_to_string(&s.main).unwrap();
    write(&s.main, text.split("[store.ldap]").next().unwrap());
    settle(&s);
    let full = Policy::load_system(&s.main).unwrap();
    assert_eq!(full.store, Policy::default().store);
    Policy::load_for(&s.main, &s.store, &w).unwrap();
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().store,
        full.store
    );
}

#[test]
fn a_copy_of_the_previous_format_is_rebuilt() {
    let s = setup();
    with_store(&s);
    settle(&s);
    let w = Wanted {
        user: "u1",
        groups: &[],
        service: None,
    };
    let full = Policy::load_system(&s.main).unwrap();
    Policy::load_for(&s.main, &s.store, &w).unwrap();
    // The copy as format 5 wrote it: no store lines, and a tampered rule that shows if it is
    // ever used.
    let v6 = cache_text(&s);
    assert!(v6.starts_with("twofold-policy-cache\t6\t"));
    let v5: String = v6
        .replacen("twofold-policy-cache\t6\t", "twofold-policy-cache\t5\t", 1)
        .replace("R\tu\tu1\toptional", "R\tu\tu1\trequired")
        .lines()
        .filter(|l| !l.starts_with("K\t") && !l.starts_with("D\t") && !l.starts_with('P'))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = s.store.path().join(CACHE_NAME);
    std::fs::write(&path, &v5).unwrap();
    let got = Policy::load_for(&s.main, &s.store, &w).unwrap();
    assert_eq!(got.users["u1"].mode, Mode::Optional);
    assert_eq!(got.store, full.store);
    // ... and replaced by a copy of the current format (its build time may differ).
    let rebuilt = cache_text(&s);
    assert!(rebuilt.starts_with("twofold-policy-cache\t6\t"));
    assert_eq!(
        rebuilt.split_once('\n').unwrap().1,
        v6.split_once('\n').unwrap().1
    );
}
