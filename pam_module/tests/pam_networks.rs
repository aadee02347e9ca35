//! `[networks."CIDR"]` rules through the real libpam (pam_wrapper, pamtester `-I rhost=`,
//! codes from `oathtool`): a login from inside a network that disables 2FA is asked for no
//! code, one from outside is; IPv4, IPv6, IPv4-mapped IPv6, a zone index, the longest prefix;
//! and a host name that looks like an address (sshd's `UseDNS yes`), junk after an address or
//! no remote host at all is in no network. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use common::rig::{Rig, login_logged, ours};
use common::{module_path, oathtool, root_or_skip, wait_for_fresh_step};

const POLICY: &str = r#"
mode = "required"
[enrollment]
at_login = false
grace_period = "7d"

[networks."10.0.0.0/8"]
mode = "disabled"

[networks."10.9.0.0/16"]
mode = "required"

[networks."2001:db8::/32"]
mode = "disabled"

[networks."fe80::/10"]
mode = "disabled"
"#;

/// The rig, with a stack where the module's PAM_IGNORE lets pam_permit decide (as the README's
/// stack does): a login that needs no code succeeds without a prompt.
fn rig() -> Rig {
    let rig = Rig::new(POLICY, "");
    std::fs::write(
        rig.dir().join("pam.d/twofold-test"),
        format!(
            "auth [success=done ignore=ignore default=die] {m} {a}\n\
             auth required pam_permit.so\n\
             account required {m} {a}\n\
             account required pam_permit.so\n",
            m = module_path().display(),
            a = rig.sandbox.module_args(),
        ),
    )
    .unwrap();
    rig
}

/// From `rhost`: no code asked, and the login goes through.
fn no_code_asked(rig: &Rig, user: &str, rhost: &str) {
    let (ok, out) = rig.login_from(user, "", rhost);
    assert!(
        ok && !out.contains("Verification code"),
        "from {rhost:?}, a code was asked or the login failed: {out}"
    );
}

/// From `rhost` (or the console): a code is asked (an empty answer fails).
fn code_asked(rig: &Rig, user: &str, rhost: Option<&str>) {
    let (ok, out) = rig.login_ops(user, "", rhost, &["authenticate"]);
    assert!(
        !ok && out.contains("Verification code"),
        "from {rhost:?}, no code was asked: {out}"
    );
}

#[test]
fn host_names_that_look_like_addresses_are_asked_for_a_code() {
    if !root_or_skip() {
        return;
    }
    let rig = rig();
    rig.enroll("daemon", 1);
    // What sshd with UseDNS yes, or an application setting PAM_RHOST, could hand over: none
    // of it is an address, so none of it is in 10.0.0.0/8 or 2001:db8::/32.
    for rhost in [
        "10.0.0.1.attacker.example",
        "10.0.0.1.",
        "10.0.0.1 ",
        "10.0.0.1x",
        "10.0.0.1:22",
        "10.0.0.1/8",
        "10.0.0.1%eth0",
        "0x0a000001",
        "167772161",
        "[10.0.0.1]",
        "2001:db8::1.attacker.example",
        "[2001:db8::1]",
    ] {
        code_asked(&rig, "daemon", Some(rhost));
    }
    // The console (no PAM_RHOST) is in no network either.
    code_asked(&rig, "daemon", None);
}

#[test]
fn inside_a_disabled_network_no_code_outside_a_code() {
    if !root_or_skip() {
        return;
    }
    let rig = rig();
    let (secret, _) = rig.enroll("daemon", 1);
    // Inside: IPv4, IPv4-mapped IPv6 (an IPv4 client of a dual-stack sshd), IPv6, and an
    // IPv6 link-local address with its zone index.
    for rhost in [
        "10.1.2.3",
        "::ffff:10.1.2.3",
        "2001:db8::5",
        "2001:DB8:0:0::5",
        "fe80::1%eth0",
    ] {
        no_code_asked(&rig, "daemon", rhost);
    }
    // Outside: IPv4, IPv6, and the longer 10.9.0.0/16 inside 10/8, which requires.
    for rhost in ["192.0.2.1", "::ffff:192.0.2.1", "2001:db9::5", "10.9.1.1"] {
        code_asked(&rig, "daemon", Some(rhost));
    }
    // From outside, a code logs in.
    wait_for_fresh_step();
    let (ok, out) = rig.login_from(
        "daemon",
        &format!("{}\n", oathtool(&secret, 0)),
        "2001:db9::5",
    );
    assert!(ok && out.contains("Verification code"), "{out}");
    // The log says which rule decided, the network's table and line.
    let (ok, _, lines) = login_logged(&rig, "daemon", "", "10.1.2.3");
    assert!(ok);
    let mine = ours(&lines);
    assert!(
        mine.iter().any(|l| l.contains("rule=\"network:[networks.")
            && l.contains("10.0.0.0/8")
            && l.contains("status=exempt")),
        "{mine:?}"
    );
}
