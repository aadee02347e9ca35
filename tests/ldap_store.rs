//! The LDAP backend of the store (issue #23) against a real private slapd, at the level of
//! the store: two "hosts" (two state directories, two stores) share one directory. Enrolled
//! on one, a user's code works on the other; the same code is accepted once, fleet-wide,
//! whatever the number of attempts at once; a recovery code too; an admin's change on one
//! host is what the other reads; the per-user bound counts failures from every host; a
//! directory that cannot be reached fails closed, unless the offline copy is kept and young
//! enough, and what was used offline goes back to the directory when it returns. Needs root
//! (slapd, and the store's owner checks), as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::sync::Arc;

use twofold_policy::login::Outcome;
use twofold_policy::store::{Store, StoreError};
use twofold_system_tests::fleet_store::{
    Host, LdapPolicy, accepted_at_once, account_ldif, check, check_error, code, enroll, host,
    password_file, set_override, slapd_or_skip, user,
};
use twofold_system_tests::slapd::Slapd;

/// A private slapd, or `None` when not root (the test does nothing).
fn start() -> Option<Slapd> {
    slapd_or_skip().unwrap()
}

#[test]
fn enrolled_on_one_host_a_code_works_on_the_other_once() {
    let Some(slapd) = start() else { return };
    let (a, b) = (host(&slapd, "").unwrap(), host(&slapd, "").unwrap());
    let (secret, _) = enroll(&*a.store, "tfalice", 4).unwrap();
    // B sees the enrollment.
    let on_b = b
        .store
        .read_record(&user("tfalice").unwrap())
        .unwrap()
        .unwrap();
    assert!(on_b.enrollment.is_some());
    assert_eq!(b.store.users().unwrap(), vec![user("tfalice").unwrap()]);
    // The enrollment's confirming step is not stored here: a current code works on B once.
    let c = code(&secret, 0).unwrap();
    assert_eq!(
        check(&*b.store, "tfalice", &c, "10.0.0.1").unwrap(),
        Outcome::Code
    );
    assert_eq!(
        check(&*a.store, "tfalice", &c, "10.0.0.2").unwrap(),
        Outcome::Replayed
    );
    assert_eq!(
        check(&*b.store, "tfalice", &c, "10.0.0.1").unwrap(),
        Outcome::Replayed
    );
    // The next step's code still works (on A).
    let next = code(&secret, 1).unwrap();
    assert_eq!(
        check(&*a.store, "tfalice", &next, "10.0.0.2").unwrap(),
        Outcome::Code
    );
    // The token entry carries the OATH-LDAP attributes slapd's overlay reads.
    let ldif = account_ldif(
        &slapd,
        "tfalice",
        "(objectClass=oathTOTPToken)",
        &["oathTOTPLastTimeStep", "oathTOTPParams", "oathSecret"],
    )
    .unwrap();
    assert!(ldif.contains("oathTOTPLastTimeStep: "), "{ldif}");
    assert!(
        ldif.contains("oathTOTPParams: cn=totp-6-sha1-30-w1,ou=params,"),
        "{ldif}"
    );
    assert!(ldif.contains("oathSecret:: "), "{ldif}");
}

#[test]
fn a_recovery_code_is_used_once_fleet_wide() {
    let Some(slapd) = start() else { return };
    let (a, b) = (host(&slapd, "").unwrap(), host(&slapd, "").unwrap());
    let (_, codes) = enroll(&*a.store, "tfbob", 3).unwrap();
    let first = &codes[0];
    assert_eq!(
        check(&*b.store, "tfbob", first, "10.0.1.1").unwrap(),
        Outcome::RecoveryCode { left: 2 }
    );
    assert_eq!(
        check(&*a.store, "tfbob", first, "10.0.1.2").unwrap(),
        Outcome::Invalid
    );
    let rec = a
        .store
        .read_record(&user("tfbob").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(rec.enrollment.unwrap().recovery_codes.len(), 2);
}

#[test]
fn the_same_code_at_once_on_two_hosts_is_accepted_once_per_round() {
    let Some(slapd) = start() else { return };
    let hosts: Vec<Host> = (0..2).map(|_| host(&slapd, "").unwrap()).collect();
    // Each round a user of its own (a fresh code at once, without waiting for a new step),
    // 32 attempts at once spread over the two hosts, each from its own address.
    for round in 0..50 {
        let name = format!("tfrace{round}");
        let (secret, _) = enroll(&*hosts[round % 2].store, &name, 0).unwrap();
        let c = code(&secret, 0).unwrap();
        let accepted =
            accepted_at_once(&hosts, &name, &c, 32, |i| format!("10.{round}.{i}.1"), true)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(accepted, 1, "round {round}: {accepted} of 32 accepted");
    }
}

#[test]
fn an_admin_change_on_one_host_is_what_the_other_reads() {
    let Some(slapd) = start() else { return };
    let (a, b) = (host(&slapd, "").unwrap(), host(&slapd, "").unwrap());
    enroll(&*a.store, "tfcarol", 2).unwrap();
    // Override set on B.
    set_override(&*b.store, "tfcarol", twofold_policy::Mode::Required).unwrap();
    let on_a = a
        .store
        .read_record(&user("tfcarol").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        on_a.admin_override.map(|o| o.mode),
        Some(twofold_policy::Mode::Required)
    );
    // Reset on A: B sees no enrollment, and the token entries are gone.
    a.store
        .update(&user("tfcarol").unwrap(), &mut |state| {
            if let Some(r) = state.record.as_mut() {
                r.enrollment = None;
                r.required_since = None;
            }
            state.counters = Default::default();
            Ok(())
        })
        .unwrap()
        .unwrap();
    let on_b = b
        .store
        .read_record(&user("tfcarol").unwrap())
        .unwrap()
        .unwrap();
    assert!(on_b.enrollment.is_none());
    assert!(on_b.admin_override.is_some());
    let ldif = account_ldif(&slapd, "tfcarol", "(objectClass=twofoldToken)", &["cn"]).unwrap();
    assert!(!ldif.contains("dn: cn="), "{ldif}");
}

#[test]
fn wrong_codes_over_two_hosts_are_bounded_per_account() {
    let Some(slapd) = start() else { return };
    let (a, b) = (host(&slapd, "").unwrap(), host(&slapd, "").unwrap());
    enroll(&*a.store, "tfdave", 0).unwrap();
    // Many addresses (a stranger with a botnet), over both hosts: every answer from a new
    // address, so the per-source delays never start.
    let mut checked = 0;
    for i in 0..300u32 {
        let source = format!("10.{}.{}.9", i / 250, i % 250);
        let store = if i % 2 == 0 { &a.store } else { &b.store };
        match check(&**store, "tfdave", "000000", &source).unwrap() {
            Outcome::Invalid | Outcome::Replayed => checked += 1,
            Outcome::Throttled(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(checked, twofold_policy::throttle::USER_LIMIT as usize);
}

#[test]
fn an_unreachable_directory_fails_closed_without_an_offline_copy() {
    let Some(mut slapd) = start() else { return };
    let a = host(&slapd, "").unwrap();
    let (secret, _) = enroll(&*a.store, "tferin", 0).unwrap();
    slapd.stop().unwrap();
    let err = a.store.read_record(&user("tferin").unwrap()).unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    let err = check_error(&*a.store, "tferin", &code(&secret, 0).unwrap(), "10.0.2.1").unwrap();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    // Back: the connection is made again.
    slapd.start_again().unwrap();
    assert_eq!(
        check(&*a.store, "tferin", &code(&secret, 0).unwrap(), "10.0.2.1").unwrap(),
        Outcome::Code
    );
}

#[test]
fn the_offline_copy_stands_in_and_what_it_used_goes_back() {
    let Some(mut slapd) = start() else { return };
    let offline = "[store.offline]\nenabled = true\nmax_age = \"1h\"";
    let a = host(&slapd, offline).unwrap();
    let b = host(&slapd, offline).unwrap();
    let (secret, codes) = enroll(&*a.store, "tffrank", 3).unwrap();
    // An online login on A keeps a copy there; B never saw the user.
    assert_eq!(
        check(
            &*a.store,
            "tffrank",
            &code(&secret, -1).unwrap(),
            "10.0.3.1"
        )
        .unwrap(),
        Outcome::Code
    );
    slapd.stop().unwrap();
    // A: the copy decides; B: nothing to stand in, closed.
    assert!(
        a.store
            .read_record(&user("tffrank").unwrap())
            .unwrap()
            .is_some()
    );
    assert_eq!(
        check(&*a.store, "tffrank", &code(&secret, 0).unwrap(), "10.0.3.1").unwrap(),
        Outcome::Code
    );
    assert_eq!(
        check(&*a.store, "tffrank", &codes[0], "10.0.3.1").unwrap(),
        Outcome::RecoveryCode { left: 2 }
    );
    let err = b.store.read_record(&user("tffrank").unwrap()).unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    // Back: the step and the recovery code used offline are refused on B too.
    slapd.start_again().unwrap();
    // A's next online check pushes them; until then B could accept them (the window the
    // documentation states), so the merge runs at A's next check.
    assert_eq!(
        check(&*a.store, "tffrank", "000000", "10.0.3.1").unwrap(),
        Outcome::Invalid
    );
    assert_eq!(
        check(&*b.store, "tffrank", &code(&secret, 0).unwrap(), "10.0.3.2").unwrap(),
        Outcome::Replayed
    );
    assert_eq!(
        check(&*b.store, "tffrank", &codes[0], "10.0.3.2").unwrap(),
        Outcome::Invalid
    );
}

#[test]
fn names_that_differ_only_in_case_do_not_share_an_entry() {
    let Some(slapd) = start() else { return };
    let a = host(&slapd, "").unwrap();
    enroll(&*a.store, "tfgina", 0).unwrap();
    // The directory finds `uid=TFgina` as `uid=tfgina`: refused, never the other's record.
    let err = a.store.read_record(&user("TFgina").unwrap()).unwrap_err();
    assert!(matches!(err, StoreError::Directory { .. }), "{err}");
    let err = check_error(&*a.store, "TFgina", "123456", "10.0.4.1").unwrap();
    assert!(matches!(err, StoreError::Directory { .. }), "{err}");
    let err = a
        .store
        .update(&user("TFgina").unwrap(), &mut |_| Ok(()))
        .unwrap_err();
    assert!(matches!(err, StoreError::Directory { .. }), "{err}");
}

#[test]
fn the_verification_service_refuses_when_the_directory_is_unreachable() {
    use twofold_policy::verify::{self, Answer, Op, Request, ServerConfig, Serving};
    let Some(mut slapd) = start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let secret = password_file(dir.path(), slapd.service_password()).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, LdapPolicy::of(&slapd, &secret).text()).unwrap();
    let state = dir.path().join("state");
    Store::open_or_create(&state).unwrap();
    let config = ServerConfig {
        policy,
        state,
        directories: Arc::default(),
    };
    slapd.stop().unwrap();
    let accounts = twofold_policy::slots::Slots::new(verify::ACCOUNT_LIMITS);
    for op in [Op::Query, Op::Check] {
        let req = Request {
            op,
            user: "root".into(),
            service: Some("login".into()),
            rhost: String::new(),
            code: (op == Op::Check).then(|| zeroize::Zeroizing::new("123456".to_owned())),
        };
        let serving = Serving {
            accounts: &accounts,
            deadline: std::time::Instant::now() + std::time::Duration::from_secs(10),
            abandoned: None,
        };
        let resp = verify::serve(&config, 0, &req, serving);
        // Its own answer, never "unavailable" (which on_error=allow turns into a pass).
        assert_eq!(resp.answer, Answer::Unreachable, "{op:?}: {resp:?}");
    }
}
