//! Attacker review 2 (network rules and `at_login_from`): the module decides on the whole
//! `PAM_RHOST`, not on the first 128 characters it keeps for its log lines.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use common::rig::{AT_LOGIN, Rig};
use common::root_or_skip;

/// `at_login_from` names a host of exactly 128 characters (a valid name: labels of at most 63).
/// A client whose verified reverse DNS (sshd `UseDNS yes`) is that name followed by
/// `.attacker.example`, a name the attacker's own zone holds, is not that host: it must not be
/// offered the enrollment inside the login.
#[test]
fn a_host_name_longer_than_the_log_cut_is_not_the_name_it_starts_with() {
    if !root_or_skip() {
        return;
    }
    let trusted = format!("{}.{}.{}", "a".repeat(60), "b".repeat(60), "c".repeat(6));
    assert_eq!(trusted.len(), 128);
    let rig = Rig::new(
        &AT_LOGIN.replace(
            "recovery_codes = 3",
            &format!("recovery_codes = 3\nat_login_from = [\"local\", \"{trusted}\"]"),
        ),
        "",
    );
    let rhost = format!("{trusted}.attacker.example");
    let (ok, out) = rig.login_from("man", "\n", &rhost);
    assert!(
        !ok && !out.contains("otpauth://"),
        "a host whose name only starts with the listed one was offered the enrollment: {out}"
    );
    // The listed host itself is offered it.
    let (ok, out) = rig.login_from("man", "\n", &trusted);
    assert!(!ok && out.contains("otpauth://"), "{out}");
}
