//! The policy cache decides exactly as the full policy, and is used only for the very files it
//! was made from.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
    let mut text = String::from("mode = \"optional\"\nadmin_group = \"ops\"\n");
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
    write(&main, &text);
    std::fs::create_dir(dir.join("policy.d")).unwrap();
    std::fs::set_permissions(dir.join("policy.d"), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(
        &dir.join("policy.d/50-site.toml"),
        "[users.u7]\nmode = \"disabled\"\n[groups.g3]\nmode = \"required\"\n",
    );
    let store = Store::open_or_create(&tmp.path().join("state")).unwrap();
    Setup {
        _tmp: tmp,
        main,
        store,
    }
}

fn same_decisions(s: &Setup) {
    let full = Policy::load_system(&s.main).unwrap();
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
                let subject = Subject {
                    user: u,
                    groups: gs,
                    service: svc,
                };
                let a = resolve(&full, &subject, &RecordFacts::of(None), 1000);
                let b = resolve(&small, &subject, &RecordFacts::of(None), 1000);
                assert_eq!(a, b, "{u} {gs:?} {svc:?}");
                assert_eq!(small.enrollment, full.enrollment);
                assert_eq!(small.admin_group, full.admin_group);
                assert_eq!(small.totp, full.totp);
            }
        }
    }
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
    // A damaged or foreign cache: a full load, and a fresh cache.
    std::fs::write(&path, "garbage\n").unwrap();
    assert_eq!(
        Policy::load_for(&s.main, &s.store, &w).unwrap().users["u1"].mode,
        Mode::Disabled
    );
    assert!(cache_text(&s).starts_with("twofold-policy-cache\t1\t"));
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
