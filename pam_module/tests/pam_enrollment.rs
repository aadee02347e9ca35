//! pam_twofold.so through the real libpam: pam_wrapper with a temporary service directory,
//! pamtester as the application, codes from `oathtool`. Needs root (the store is root's), as CI
//! runs.
//! Enrollment inside the login.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use common::rig::{AT_LOGIN, Rig, enroll_via_login};
use common::{oathtool, root_or_skip, wait_for_fresh_step};
use twofold_policy::UserName;
use twofold_policy::totp::Secret;

#[test]
fn enrollment_inside_the_login() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(AT_LOGIN, "");
    let u = UserName::parse("man").unwrap();
    // Three wrong codes: refused, nothing stored but the start of the grace period.
    let (ok, prompt, out) = enroll_via_login(&rig, "man", |_| "000000\n111111\n222222\n".into());
    assert!(!ok && out.contains("was not set up"), "{out}");
    assert!(
        prompt.contains("enter the key by hand:") && prompt.contains("otpauth://totp/"),
        "{prompt}"
    );
    assert!(
        prompt.contains('█') || prompt.contains('▀') || prompt.contains('▄'),
        "no QR code: {prompt}"
    );
    let rec = rig.store().read(&u).unwrap().record.unwrap();
    assert!(rec.enrollment.is_none() && rec.required_since.is_some());
    // The right code: enrolled, recovery codes shown once.
    wait_for_fresh_step();
    let (ok, prompt, out) = enroll_via_login(&rig, "man", |s| format!("{}\n", oathtool(s, 0)));
    assert!(ok, "{prompt}{out}");
    assert!(
        out.contains("now set up") && out.contains("shown only this time"),
        "{out}"
    );
    let codes: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 14 && l.matches('-').count() == 2)
        .collect();
    assert_eq!(codes.len(), 3, "{out}");
    let state = rig.store().read(&u).unwrap();
    let enrollment = state.record.unwrap().enrollment.unwrap();
    let secret = enrollment.authenticators.first().unwrap().secret().unwrap();
    assert_eq!(enrollment.recovery_codes.len(), 3);
    // The secret stored is the one shown in the login.
    let key = prompt
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert_eq!(
        Secret::from_base32(key).unwrap().as_bytes(),
        secret.as_bytes()
    );
    // The next login asks for a code: the code used to enroll is spent, the next one works.
    let (ok, out) = rig.login("man", &format!("{}\n", oathtool(&secret, 0)));
    assert!(
        !ok && out.contains("Verification code"),
        "replay after enrollment: {out}"
    );
    let (ok, out) = rig.login("man", &format!("{}\n", oathtool(&secret, 1)));
    assert!(ok, "{out}");
    let (ok, out) = rig.login("man", &format!("{}\n", codes[1]));
    assert!(ok && out.contains("2 left"), "{out}");
}

#[test]
fn enrollment_at_login_only_from_the_places_the_policy_names() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(
        &AT_LOGIN.replace(
            "recovery_codes = 3",
            "recovery_codes = 3\nat_login_from = [\"local\", \"192.0.2.0/24\"]",
        ),
        "",
    );
    // From elsewhere: refused, saying where, and no secret is shown.
    let (ok, out) = rig.login_from("man", "\n", "203.0.113.9");
    assert!(
        !ok && out.contains("from the console, 192.0.2.0/24 only") && !out.contains("otpauth://"),
        "{out}"
    );
    // From a listed network, and from the console: the enrollment is offered.
    for rhost in [Some("192.0.2.44"), None] {
        let (ok, out) = rig.login_ops("man", "\n\n\n", rhost, &["authenticate"]);
        assert!(!ok && out.contains("otpauth://"), "{rhost:?}: {out}");
    }
    assert!(
        rig.store()
            .read(&UserName::parse("man").unwrap())
            .unwrap()
            .record
            .and_then(|r| r.enrollment)
            .is_none()
    );
}
