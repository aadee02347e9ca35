//! `twofold policy set-default required` through the real daemon on a private bus prints what
//! `twofold doctor` finds on this host (its /etc/pam.d and /etc/ssh, read only) to stderr, and
//! still succeeds. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use common::{Bus, Dir, Enrolld, as_user, bin, root_or_skip};

/// Run only as a helper (see `common::call`); unused here but shared by the module.
#[test]
#[ignore]
fn helper() {
    common::helper_main();
}

#[test]
fn set_default_required_prints_the_doctor_findings_and_succeeds() {
    if !root_or_skip() {
        return;
    }
    let dir = Dir::new();
    let policy = dir.write("policy.toml", "# the default\nmode = \"optional\"\n");
    let bus = Bus::start(&dir);
    let _daemon = Enrolld::start(&bus, &policy, &dir.path().join("state"), &[]);
    let out = as_user(None, &bin("twofold"), &bus)
        .arg("--policy")
        .arg(&policy)
        .args(["policy", "set-default", "required"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("The account-wide default is now required."),
        "{stdout}"
    );
    assert!(
        std::fs::read_to_string(&policy)
            .unwrap()
            .contains("mode = \"required\""),
    );
    // This host's sshd stack: without the account line, key logins skip the code (a bypass
    // doctor reports), or sshd is missing or cannot be checked (reported too, or noted).
    let sshd_pam = std::fs::read_to_string("/etc/pam.d/sshd").unwrap_or_default();
    let account_line = sshd_pam.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("account") && l.contains("pam_twofold.so")
    });
    if !account_line && std::path::Path::new("/usr/sbin/sshd").exists() {
        assert!(
            stderr.starts_with("twofold doctor found paths that skip the code:"),
            "{stderr}"
        );
        assert!(stderr.contains("bypass: sshd") || stderr.contains("unchecked: sshd"));
    }
    if !stderr.is_empty() {
        assert!(stderr.contains("  fix: "), "{stderr}");
        assert!(
            stderr.contains("(`twofold doctor` checks again)"),
            "{stderr}"
        );
    }
}
