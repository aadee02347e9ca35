//! Loading the policy from real files: drop-ins in name order, provenance, trust checks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use twofold_policy::{Mode, Policy};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn dropins_apply_in_name_order_and_keep_provenance() {
    let tmp = tempfile::tempdir().unwrap();
    let main = tmp.path().join("policy.toml");
    let d = tmp.path().join("policy.d");
    std::fs::create_dir(&d).unwrap();
    write(
        &main,
        "mode = \"optional\"\n[users.alice]\nmode = \"required\"\n[groups.wheel]\nmode = \"optional\"\n",
    );
    write(
        &d.join("50-wheel.toml"),
        "[groups.wheel]\nmode = \"required\"\n",
    );
    write(&d.join("10-default.toml"), "mode = \"disabled\"\n");
    write(
        &d.join("90-last.toml"),
        "\n\nmode = \"required\"\n[users.alice]\nmode = \"disabled\"\n",
    );
    write(&d.join("README"), "not toml, ignored");
    write(&d.join(".60-editor.toml.swp"), "garbage = ignored");
    let p = Policy::load_system(&main).unwrap();
    let names: Vec<_> = p
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "policy.toml",
            "10-default.toml",
            "50-wheel.toml",
            "90-last.toml"
        ]
    );
    assert_eq!(p.mode.value, Mode::Required);
    let src = p.mode.source.as_ref().unwrap();
    assert_eq!(
        (src.file.file_name().unwrap().to_str().unwrap(), src.line),
        ("90-last.toml", 3)
    );
    assert_eq!(p.users["alice"].mode, Mode::Disabled);
    assert_eq!(p.groups["wheel"].mode, Mode::Required);
    assert!(p.groups["wheel"].source.file.ends_with("50-wheel.toml"));
}

#[test]
fn an_error_in_a_dropin_names_the_dropin() {
    let tmp = tempfile::tempdir().unwrap();
    let main = tmp.path().join("policy.toml");
    std::fs::create_dir(tmp.path().join("policy.d")).unwrap();
    write(&main, "mode = \"optional\"\n");
    let bad = tmp.path().join("policy.d/20-bad.toml");
    write(&bad, "[groups.wheel]\nmode = \"reqired\"\n");
    let err = Policy::load_system(&main).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:2:8: invalid mode \"reqired\": expected \"required\", \"optional\" or \"disabled\"",
            bad.display()
        )
    );
}

#[test]
fn untrustworthy_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let main = tmp.path().join("policy.toml");
    write(&main, "mode = \"required\"\n");
    assert!(Policy::load(&main, None).is_ok());
    // World-writable: anyone could exempt themselves.
    std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = Policy::load(&main, None).unwrap_err().to_string();
    assert!(
        err.ends_with("writable by group or others (mode 0666): refusing to trust it (chmod go-w)"),
        "{err}"
    );
    std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A symlink.
    let link = tmp.path().join("link.toml");
    symlink(&main, &link).unwrap();
    let err = Policy::load(&link, None).unwrap_err().to_string();
    assert!(
        err.ends_with("is a symbolic link: refusing to follow it"),
        "{err}"
    );
    // Missing.
    let err = Policy::load(&tmp.path().join("none.toml"), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read: No such file or directory"),
        "{err}"
    );
    // Not UTF-8.
    std::fs::write(&main, b"mode = \"\xff\"\n").unwrap();
    let err = Policy::load(&main, None).unwrap_err().to_string();
    assert!(err.ends_with("is not valid UTF-8 text"), "{err}");
    // A world-writable drop-in directory.
    write(&main, "mode = \"required\"\n");
    let d = tmp.path().join("policy.d");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = Policy::load_system(&main).unwrap_err().to_string();
    assert!(
        err.contains("policy.d: writable by group or others"),
        "{err}"
    );
    if nix::unistd::geteuid().is_root() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        nix::unistd::chown(&main, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let err = Policy::load_system(&main).unwrap_err().to_string();
        assert!(
            err.ends_with("owned by uid 65534, not root: refusing to trust it (chown root)"),
            "{err}"
        );
    }
}

#[test]
fn the_example_policy_of_the_brief_loads() {
    let text = r#"
mode = "optional"            # required | optional | disabled: the account-wide default
admin_group = "twofold-admin" # members, and root, manage other users through the daemon
[enrollment]
at_login = true              # a required user with no enrollment sets it up during login ...
grace_period = "7d"          # ... within this long after the requirement first met them; then login is refused
[groups.wheel]
mode = "required"
[services.sudo]
mode = "disabled"
[users.backup]
mode = "disabled"
"#;
    let p = Policy::parse_one(Path::new("brief.toml"), text).unwrap();
    assert_eq!(p.enrollment.grace_period.secs(), 7 * 86_400);
    assert_eq!(p.groups["wheel"].mode, Mode::Required);
    assert_eq!(p.services["sudo"].mode, Mode::Disabled);
    assert_eq!(p.users["backup"].mode, Mode::Disabled);
}

#[test]
fn at_login_from_restricts_enrollment_at_login_by_source() {
    let tmp = tempfile::tempdir().unwrap();
    let main = tmp.path().join("policy.toml");
    let d = tmp.path().join("policy.d");
    std::fs::create_dir(&d).unwrap();
    write(&main, "mode = \"required\"\n");
    // Absent: from anywhere, as before the setting existed.
    let p = Policy::load_system(&main).unwrap();
    assert_eq!(p.enrollment.at_login_from, None);
    for rhost in ["", "203.0.113.9", "2001:db8::1", "host.example.org"] {
        assert!(p.enrollment.at_login_allowed_from(rhost), "{rhost}");
    }
    write(
        &main,
        "mode = \"required\"\n[enrollment]\nat_login_from = [\"10.0.0.0/8\"]\n",
    );
    // A drop-in replaces the whole list.
    write(
        &d.join("50-sources.toml"),
        "[enrollment]\nat_login_from = [\"local\", \"10.0.0.0/8\", \"2001:db8::/32\", \"192.168.1.7\", \"Jump.Example.org\"]\n",
    );
    let e = Policy::load_system(&main).unwrap().enrollment;
    let shown: Vec<String> = e
        .at_login_from
        .as_ref()
        .unwrap()
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "local",
            "10.0.0.0/8",
            "2001:db8::/32",
            "192.168.1.7",
            "jump.example.org"
        ]
    );
    for (rhost, allowed) in [
        ("", true),
        ("10.20.30.40", true),
        ("::ffff:10.20.30.40", true),
        ("11.0.0.1", false),
        ("192.168.1.7", true),
        ("192.168.1.8", false),
        ("::ffff:192.168.1.7", true),
        ("2001:db8:ffff::1", true),
        ("2001:db9::1", false),
        ("::1", false),
        ("127.0.0.1", false),
        ("jump.example.org", true),
        ("JUMP.example.org", true),
        // A name is never taken to be inside a network, whatever it looks like.
        ("10.0.0.1.example.org", false),
        ("other.example.org", false),
        ("local", false),
    ] {
        assert_eq!(e.at_login_allowed_from(rhost), allowed, "{rhost:?}");
    }
    // A draft with only local.
    let p = Policy::parse_one(
        Path::new("draft.toml"),
        "[enrollment]\nat_login_from = [\"local\"]\n",
    )
    .unwrap();
    assert!(p.enrollment.at_login_allowed_from(""));
    assert!(!p.enrollment.at_login_allowed_from("192.0.2.1"));
}

#[test]
fn the_login_qr_drawing_defaults_to_dark_and_a_dropin_changes_it() {
    use twofold_policy::qr::LoginQr;
    let tmp = tempfile::tempdir().unwrap();
    let main = tmp.path().join("policy.toml");
    let d = tmp.path().join("policy.d");
    std::fs::create_dir(&d).unwrap();
    write(&main, "mode = \"required\"\n");
    assert_eq!(
        Policy::load_system(&main).unwrap().enrollment.qr,
        LoginQr::Dark
    );
    write(&main, "mode = \"required\"\n[enrollment]\nqr = \"light\"\n");
    assert_eq!(
        Policy::load_system(&main).unwrap().enrollment.qr,
        LoginQr::Light
    );
    write(&d.join("50-qr.toml"), "[enrollment]\nqr = \"none\"\n");
    let p = Policy::load_system(&main).unwrap();
    assert_eq!(p.enrollment.qr, LoginQr::None);
    assert_eq!(p.enrollment.qr.drawing(), None);
}
