//! pam_twofold.so through the real libpam: pam_wrapper with a temporary service directory,
//! pamtester as the application, codes from `oathtool`. Needs root (the store is root's), as CI
//! runs.
//! Throttling per source and per user, and the syslog lines of every decision.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use common::rig::{AT_LOGIN, POLICY, Rig, enroll_via_login, login_logged, ours};
use common::{oathtool, root_or_skip, wait_for_fresh_step};
use twofold_policy::UserName;

#[test]
fn wrong_codes_are_throttled_per_source() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (secret, codes) = rig.enroll("sys", 2);
    let u = UserName::parse("sys").unwrap();
    // Three wrong codes from one address are checked; the fourth try is not even prompted for,
    // whatever it holds.
    for _ in 0..3 {
        let (ok, out) = rig.login_from("sys", "000000\n", "198.51.100.7");
        assert!(!ok && out.contains("Verification code"), "{out}");
    }
    wait_for_fresh_step();
    let (ok, out) = rig.login_from(
        "sys",
        &format!("{}\n", oathtool(&secret, 0)),
        "198.51.100.7",
    );
    assert!(
        !ok && out.contains("Too many wrong codes from this address: try again in")
            && !out.contains("Verification code"),
        "{out}"
    );
    let (ok, _) = rig.login_from("sys", &format!("{}\n", codes[0]), "198.51.100.7");
    assert!(!ok, "a recovery code passed the throttle");
    // A stranger's failures do not delay the user on another address.
    let (ok, out) = rig.login_from("sys", &format!("{}\n", oathtool(&secret, 0)), "203.0.113.9");
    assert!(ok, "{out}");
    // Throttled tries were not counted: still 3, and the recovery code is unused.
    let state = rig.store().read(&u).unwrap();
    assert_eq!(state.counters.failures["198.51.100.7"].count, 3);
    assert_eq!(
        state
            .record
            .unwrap()
            .enrollment
            .unwrap()
            .recovery_codes
            .len(),
        2
    );
    // Once the delay has passed (the failures made to look 31 s old), a code is checked again,
    // and a success clears the address's count.
    {
        let store = rig.store();
        let lock = store.lock(&u).unwrap();
        let mut c = lock.read().unwrap().counters;
        c.failures.get_mut("198.51.100.7").unwrap().last -= 31;
        lock.write_counters(&c).unwrap();
    }
    wait_for_fresh_step();
    let (ok, out) = rig.login_from(
        "sys",
        &format!("{}\n", oathtool(&secret, 1)),
        "198.51.100.7",
    );
    assert!(ok, "{out}");
    let state = rig.store().read(&u).unwrap();
    assert!(
        state.counters.failures.is_empty(),
        "{:?}",
        state.counters.failures
    );
    assert_eq!(
        state.counters.last_login_from.as_deref(),
        Some("198.51.100.7")
    );
    // IPv6 addresses of one /64 count as one source.
    for host in ["2001:db8:5:6::1", "2001:db8:5:6::2", "2001:db8:5:6:ffff::3"] {
        let (ok, _) = rig.login_from("sys", "000000\n", host);
        assert!(!ok);
    }
    let (_, out) = rig.login_from("sys", "000000\n", "2001:db8:5:6::4");
    assert!(out.contains("Too many wrong codes"), "{out}");
    let state = rig.store().read(&u).unwrap();
    assert_eq!(state.counters.failures["2001:db8:5:6::/64"].count, 3);
}

#[test]
fn every_decision_is_logged_without_codes_or_secrets() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (secret, codes) = rig.enroll("daemon", 2);
    let key = secret.to_base32();
    wait_for_fresh_step();
    let code = oathtool(&secret, 0);
    let (ok, out, lines) = login_logged(&rig, "daemon", &format!("{code}\n"), "203.0.113.5");
    assert!(ok, "{out}");
    let mine = ours(&lines);
    assert_eq!(mine.len(), 1, "{lines:#?}");
    // authpriv.notice = 10 * 8 + 5.
    let line = mine[0];
    assert!(line.starts_with("<85>"), "{line}");
    for part in [
        "pam_twofold(twofold-test:auth):".to_owned(),
        "user=daemon".into(),
        "source=203.0.113.5".into(),
        format!(
            "rule=user:[users.daemon]@{}/policy.toml:7 status=enforced",
            rig.dir().display()
        ),
        "outcome=success: code accepted".into(),
    ] {
        assert!(line.contains(&part), "{part:?} not in {line}");
    }
    // Wrong code, recovery code, exempt user, unknown user: one line each, with the outcome.
    let (_, _, lines) = login_logged(&rig, "daemon", "314159\n", "203.0.113.5");
    let l = ours(&lines);
    assert!(
        l.len() == 1 && l[0].contains("outcome=refused: wrong code"),
        "{lines:#?}"
    );
    let (ok, _, lines) = login_logged(&rig, "daemon", &format!("{}\n", codes[0]), "203.0.113.5");
    assert!(ok);
    let l = ours(&lines);
    assert!(
        l.len() == 1 && l[0].contains("recovery code accepted, 1 left"),
        "{lines:#?}"
    );
    let (_, _, lines) = login_logged(&rig, "bin", "", "203.0.113.5");
    let l = ours(&lines);
    assert!(
        l.len() == 1
            && l[0].contains("rule=user:[users.bin]@")
            && l[0].contains("status=exempt outcome=ignore: no code needed"),
        "{lines:#?}"
    );
    let (_, _, lines) = login_logged(&rig, "../x", "", "203.0.113.5");
    let l = ours(&lines);
    assert!(
        l.len() == 1 && l[0].contains("user=../x") && l[0].contains("outcome=refused"),
        "{lines:#?}"
    );
    // Never a code, a recovery code or the secret.
    let all = lines.join("\n");
    for secret_text in [
        code.as_str(),
        "314159",
        codes[0].as_str(),
        codes[1].as_str(),
        key.as_str(),
    ] {
        assert!(!all.contains(secret_text), "{secret_text} logged");
    }

    // A malformed policy: refused, and the log says why, with file:line:col (authpriv.err).
    let bad = Rig::new("mode = \"optional\"\n[users.x]\nmode = \"sometimes\"\n", "");
    let (ok, _, lines) = login_logged(&bad, "daemon", "", "local-test");
    assert!(!ok);
    let l = ours(&lines);
    let expected = format!("{}/policy.toml:3:8:", bad.dir().display());
    assert!(
        l.len() == 1
            && l[0].starts_with("<83>")
            && l[0].contains("rule=- outcome=refused: failing closed: policy:")
            && l[0].contains(&expected),
        "{expected} in {lines:#?}"
    );

    // debug: the steps, at authpriv.debug, still without codes or secrets.
    let dbg = Rig::new(POLICY, "debug");
    let (secret, _) = dbg.enroll("daemon", 1);
    wait_for_fresh_step();
    let code = oathtool(&secret, 0);
    let (ok, _, lines) = login_logged(&dbg, "daemon", &format!("{code}\n"), "2001:db8::7");
    assert!(ok);
    let debug: Vec<_> = ours(&lines)
        .into_iter()
        .filter(|l| l.starts_with("<87>"))
        .collect();
    assert!(
        debug.iter().any(|l| l.contains("source-key=2001:db8::/64"))
            && debug.iter().any(|l| l.contains("status=enforced")),
        "{lines:#?}"
    );
    let all = lines.join("\n");
    assert!(!all.contains(&code) && !all.contains(secret.to_base32().as_str()));

    // Enrollment at login: neither the new secret nor the recovery codes reach the log.
    let enr = Rig::new(AT_LOGIN, "");
    let (ok, prompt, out) = enroll_via_login(&enr, "man", |s| format!("{}\n", oathtool(s, 0)));
    assert!(ok, "{out}");
    let _ = prompt;
    let rec = enr.store().read(&UserName::parse("man").unwrap()).unwrap();
    let key = rec
        .record
        .unwrap()
        .enrollment
        .unwrap()
        .authenticators
        .first()
        .unwrap()
        .secret()
        .unwrap()
        .to_base32();
    let (_, _, lines) = login_logged(&enr, "man", "000000\n", "local-test");
    assert!(!lines.join("\n").contains(key.as_str()));
}

#[test]
fn a_thousand_addresses_get_a_hundred_codes_checked() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (secret, _) = rig.enroll("daemon", 1);
    let u = UserName::parse("daemon").unwrap();
    // The user logged in from home before.
    wait_for_fresh_step();
    let (ok, out) = rig.login_from(
        "daemon",
        &format!("{}\n", oathtool(&secret, -1)),
        "192.0.2.10",
    );
    assert!(ok, "{out}");
    // A stranger with 1,000 addresses (one per IPv6 /64), one wrong code from each.
    let mut checked = 0;
    for i in 0..1000u32 {
        let host = format!("2001:db8:{:x}:{:x}::1", i / 0x100, i % 0x100);
        let (ok, out) = rig.login_from("daemon", "000000\n", &host);
        assert!(!ok, "{out}");
        if out.contains("Verification code") {
            checked += 1;
        } else {
            assert!(out.contains("unfamiliar places"), "{out}");
        }
    }
    assert_eq!(checked, 100, "codes checked from strangers");
    let c = rig.store().read_counters(&u).unwrap();
    assert_eq!(c.user_failures, 100);
    assert!(c.failures.len() <= 100, "refused tries added entries");
    // Even the right code from a new address is not checked now ...
    wait_for_fresh_step();
    let code = oathtool(&secret, 0);
    let (ok, out) = rig.login_from("daemon", &format!("{code}\n"), "203.0.113.50");
    assert!(!ok && !out.contains("Verification code"), "{out}");
    // ... while the user still logs in from home, which opens the rest again.
    let (ok, out) = rig.login_from("daemon", &format!("{code}\n"), "192.0.2.10");
    assert!(ok, "{out}");
    let c = rig.store().read_counters(&u).unwrap();
    assert_eq!(c.user_failures, 0);
    let (_, out) = rig.login_from("daemon", "000000\n", "203.0.113.50");
    assert!(out.contains("Verification code"), "{out}");
}
