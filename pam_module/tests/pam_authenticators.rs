//! Several authenticators per user, through the real libpam (pam_wrapper + pamtester), codes
//! from `oathtool`: each authenticator logs in, each code once; a removed one no longer does;
//! a version-1 record and counters (one secret, one `last_step`) log in as before, keep their
//! replay protection, and are written as version 2 at the next change without losing anything.
//! Needs root (the store is root's), as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use common::rig::{POLICY, Rig};
use common::{oathtool, oathtool_b32, root_or_skip, wait_for_fresh_step_within};
use twofold_policy::UserName;
use twofold_policy::totp::{Params, Secret};

#[test]
fn every_authenticator_logs_in_and_each_code_once() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (phone, _) = rig.enroll("sys", 2);
    let tablet = Secret::generate().unwrap();
    // A third with 8-digit codes and a clock 2 steps ahead (as an import may bring).
    let token = Secret::generate().unwrap();
    let u = UserName::parse("sys").unwrap();
    {
        let store = rig.store();
        let lock = store.lock(&u).unwrap();
        let mut r = lock.read().unwrap().record.unwrap();
        let e = r.enrollment.as_mut().unwrap();
        assert_eq!(e.add("tablet", &tablet, Params::default(), 0, 2), Some(2));
        let eight = Params {
            digits: 8,
            ..Params::default()
        };
        assert_eq!(e.add("token", &token, eight, 2, 3), Some(3));
        lock.write_record(&r).unwrap();
    }
    wait_for_fresh_step_within(20);
    let phone_now = oathtool(&phone, 0);
    let tablet_now = oathtool(&tablet, 0);
    let (ok, out) = rig.login("sys", &format!("{phone_now}\n"));
    assert!(ok, "phone: {out}");
    // The tablet's code of the same step is its own: accepted although the phone's was used.
    let (ok, out) = rig.login("sys", &format!("{tablet_now}\n"));
    assert!(ok, "tablet: {out}");
    // Each code once.
    for code in [&phone_now, &tablet_now] {
        let (ok, out) = rig.login("sys", &format!("{code}\n"));
        assert!(!ok, "replayed {code} accepted: {out}");
    }
    // The token's clock runs 2 steps ahead: its code of now + 2 steps, 8 digits.
    let t = twofold_policy::time::now() as i64 + 2 * 30;
    let out = std::process::Command::new("oathtool")
        .args([
            "--totp",
            "--digits=8",
            "--base32",
            &format!("--now=@{t}"),
            token.to_base32().as_str(),
        ])
        .output()
        .unwrap();
    let token_now = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token_now.len(), 8);
    let (ok, out) = rig.login("sys", &format!("{token_now}\n"));
    assert!(ok, "8-digit token with its skew: {out}");
    let (ok, _) = rig.login("sys", &format!("{token_now}\n"));
    assert!(!ok, "the token's code replayed");
    // Its code of the real now is 2 steps behind its clock: outside the window of ±1.
    let behind = oathtool_b32(token.to_base32().as_str(), 0);
    let (ok, _) = rig.login("sys", &format!("{behind}\n"));
    assert!(!ok);
    let c = rig.store().read_counters(&u).unwrap();
    assert_eq!(c.last_steps.len(), 3, "{c:?}");
    assert_eq!(c.version, 2);

    // Remove the tablet: its next code no longer logs in; the phone's does.
    {
        let store = rig.store();
        let lock = store.lock(&u).unwrap();
        let mut r = lock.read().unwrap().record.unwrap();
        r.enrollment
            .as_mut()
            .unwrap()
            .authenticators
            .retain(|a| a.name != "tablet");
        lock.write_record(&r).unwrap();
        // The replays above count as failures: start the throttle afresh for what follows.
        let mut c = lock.read().unwrap().counters;
        c.failures.clear();
        c.user_failures = 0;
        lock.write_counters(&c).unwrap();
    }
    let (ok, out) = rig.login("sys", &format!("{}\n", oathtool(&tablet, 1)));
    assert!(!ok, "a removed authenticator logged in: {out}");
    let (ok, out) = rig.login("sys", &format!("{}\n", oathtool(&phone, 1)));
    assert!(ok, "{out}");
}

/// A record and counters as twofold wrote them before version 2.
#[test]
fn a_version_1_record_logs_in_and_migrates_without_loss() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    // Written as the previous release did, with a recovery code's hash.
    let codes = twofold_policy::recovery::generate(1).unwrap();
    let key = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let record = format!(
        "version = 1\nuser = \"sys\"\n\n[enrollment]\nsecret = \"{key}\"\nalgorithm = \"SHA1\"\n\
         digits = 6\nperiod = 30\nenrolled_at = \"2026-01-02T03:04:05Z\"\nrecovery_codes = [\"{}\"]\n",
        codes.hashes[0]
    );
    let path = rig.store().path().join("sys.toml");
    std::fs::write(&path, &record).unwrap();
    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    wait_for_fresh_step_within(20);
    // Version-1 counters: the current step was used already.
    let step = twofold_policy::time::now() / 30;
    let counters = rig.store().path().join("sys.counters");
    std::fs::write(&counters, format!("version = 1\nlast_step = {step}\n")).unwrap();
    std::fs::set_permissions(
        &counters,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let (ok, _) = rig.login("sys", &format!("{}\n", oathtool_b32(key, 0)));
    assert!(
        !ok,
        "the code of the step version 1 recorded as used was accepted"
    );
    let (ok, out) = rig.login("sys", &format!("{}\n", oathtool_b32(key, 1)));
    assert!(ok, "{out}");
    let c = rig
        .store()
        .read_counters(&UserName::parse("sys").unwrap())
        .unwrap();
    assert_eq!(c.last_steps.get(&1), Some(&(step + 1)));
    assert_eq!(c.version, 2);
    // A login changes no record: still the version-1 text.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), record);

    // The next change writes version 2: same secret, parameters, date and recovery code.
    let u = UserName::parse("sys").unwrap();
    let store = rig.store();
    let lock = store.lock(&u).unwrap();
    let mut r = lock.read().unwrap().record.unwrap();
    let e = r.enrollment.as_mut().unwrap();
    e.add(
        "tablet",
        &Secret::generate().unwrap(),
        Params::default(),
        0,
        9,
    )
    .unwrap();
    lock.write_record(&r).unwrap();
    drop(lock);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("version = 2\n"), "{text}");
    assert!(
        text.contains(key) && text.contains(&codes.hashes[0]),
        "{text}"
    );
    assert!(text.contains("name = \"default\"") && text.contains("name = \"tablet\""));
    assert!(
        text.contains("enrolled_at = \"2026-01-02T03:04:05Z\""),
        "{text}"
    );
    // The old phone still logs in, its replay protection kept; the recovery code works once.
    let (ok, _) = rig.login("sys", &format!("{}\n", oathtool_b32(key, 1)));
    assert!(!ok, "replayed after the migration");
    let (ok, out) = rig.login("sys", &format!("{}\n", codes.codes[0].as_str()));
    assert!(ok, "{out}");
    let (ok, _) = rig.login("sys", &format!("{}\n", codes.codes[0].as_str()));
    assert!(!ok);
}
