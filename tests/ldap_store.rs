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

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use twofold_policy::login::{Attempt, Outcome};
use twofold_policy::record::Record;
use twofold_policy::store::{StateStore, Store, StoreError, open_backend};
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{Policy, UserName};
use twofold_system_tests::root_or_skip;
use twofold_system_tests::slapd::{Options, Slapd};

/// One host: its state directory and its store over the shared directory.
struct Host {
    _dir: tempfile::TempDir,
    store: Arc<dyn StateStore>,
}

fn policy_text(slapd: &Slapd, secret_file: &Path, extra: &str) -> String {
    format!(
        r#"mode = "optional"
[store]
backend = "ldap"
[store.ldap]
uri = "{uri}"
base = "{base}"
bind_dn = "{dn}"
bind_password_file = "{file}"
timeout = "2s"
{extra}
"#,
        uri = slapd.ldapi_url(),
        base = slapd.twofold_base(),
        dn = slapd.service_dn(),
        file = secret_file.display(),
    )
}

fn host(slapd: &Slapd, extra: &str) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let secret = dir.path().join("ldap.secret");
    std::fs::write(&secret, format!("{}\n", slapd.service_password())).unwrap();
    set_mode(&secret, 0o600);
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(&policy_file, policy_text(slapd, &secret, extra)).unwrap();
    let policy = Policy::load(&policy_file, None).unwrap();
    let local = Arc::new(Store::open_or_create(&state).unwrap());
    let store = open_backend(local, &policy).unwrap();
    assert_eq!(store.backend(), "ldap");
    Host { _dir: dir, store }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

/// Enrolls `name` through `store` with a fresh secret and `codes` recovery codes: the secret
/// and the codes in clear.
fn enroll(store: &dyn StateStore, name: &str, codes: u32) -> (Secret, Vec<String>) {
    let secret = Secret::generate().unwrap();
    let recovery = twofold_policy::recovery::generate(codes).unwrap();
    let now = twofold_policy::time::now();
    let e = twofold_policy::record::Enrollment::new(
        &secret,
        Params::default(),
        now,
        recovery.hashes.clone(),
    );
    store
        .update(&user(name), &mut |state| {
            let r = state.record.get_or_insert_with(|| Record::new(name));
            r.enrollment = Some(e.clone());
            Ok(())
        })
        .unwrap()
        .unwrap();
    (
        secret,
        recovery.codes.iter().map(|c| c.to_string()).collect(),
    )
}

/// The code of `secret` `offset` steps from now, from oathtool.
fn code(secret: &Secret, offset: i64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N"])
        .arg(format!("now {:+} seconds", offset * 30))
        .arg(secret.to_base32().as_str())
        .output()
        .expect("oathtool");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn attempt<'a>(input: &'a str, source: &'a str) -> Attempt<'a> {
    Attempt {
        input,
        source,
        from: source,
        window: 1,
        at: twofold_policy::time::now(),
    }
}

fn check(store: &dyn StateStore, name: &str, input: &str, source: &str) -> Outcome {
    store
        .check_attempt(&user(name), &attempt(input, source))
        .unwrap()
        .outcome
}

fn start() -> Option<Slapd> {
    if !root_or_skip() {
        return None;
    }
    Some(Slapd::start(&Options::default()).expect("slapd"))
}

#[test]
fn enrolled_on_one_host_a_code_works_on_the_other_once() {
    let Some(slapd) = start() else { return };
    let (a, b) = (host(&slapd, ""), host(&slapd, ""));
    let (secret, _) = enroll(&*a.store, "tfalice", 4);
    // B sees the enrollment.
    let on_b = b.store.read_record(&user("tfalice")).unwrap().unwrap();
    assert!(on_b.enrollment.is_some());
    assert_eq!(b.store.users().unwrap(), vec![user("tfalice")]);
    // The enrollment's confirming step is not stored here: a current code works on B once.
    let c = code(&secret, 0);
    assert_eq!(check(&*b.store, "tfalice", &c, "10.0.0.1"), Outcome::Code);
    assert_eq!(
        check(&*a.store, "tfalice", &c, "10.0.0.2"),
        Outcome::Replayed
    );
    assert_eq!(
        check(&*b.store, "tfalice", &c, "10.0.0.1"),
        Outcome::Replayed
    );
    // The next step's code still works (on A).
    let next = code(&secret, 1);
    assert_eq!(
        check(&*a.store, "tfalice", &next, "10.0.0.2"),
        Outcome::Code
    );
    // The token entry carries the OATH-LDAP attributes slapd's overlay reads.
    let ldif = slapd
        .ldapsearch(
            &format!("uid=tfalice,ou=accounts,{}", slapd.twofold_base()),
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
    let (a, b) = (host(&slapd, ""), host(&slapd, ""));
    let (_, codes) = enroll(&*a.store, "tfbob", 3);
    let first = &codes[0];
    assert_eq!(
        check(&*b.store, "tfbob", first, "10.0.1.1"),
        Outcome::RecoveryCode { left: 2 }
    );
    assert_eq!(
        check(&*a.store, "tfbob", first, "10.0.1.2"),
        Outcome::Invalid
    );
    let rec = a.store.read_record(&user("tfbob")).unwrap().unwrap();
    assert_eq!(rec.enrollment.unwrap().recovery_codes.len(), 2);
}

#[test]
fn the_same_code_at_once_on_two_hosts_is_accepted_once_per_round() {
    let Some(slapd) = start() else { return };
    let hosts: Vec<Host> = (0..2).map(|_| host(&slapd, "")).collect();
    // Each round a user of its own (a fresh code at once, without waiting for a new step),
    // 32 attempts at once spread over the two hosts, each from its own address.
    for round in 0..50 {
        let name = format!("tfrace{round}");
        let (secret, _) = enroll(&*hosts[round % 2].store, &name, 0);
        let c = code(&secret, 0);
        let accepted = std::thread::scope(|s| {
            let handles: Vec<_> = (0..32)
                .map(|i| {
                    let store = hosts[i % 2].store.clone();
                    let (name, c) = (name.clone(), c.clone());
                    s.spawn(move || {
                        let source = format!("10.{round}.{i}.1");
                        let out = store.check_attempt(&user(&name), &attempt(&c, &source));
                        match out {
                            Ok(checked) => checked.outcome.accepted(),
                            Err(StoreError::Busy { .. } | StoreError::Contended { .. }) => false,
                            Err(e) => panic!("round {round}: {e}"),
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|ok| *ok)
                .count()
        });
        assert_eq!(accepted, 1, "round {round}: {accepted} of 32 accepted");
    }
}

#[test]
fn an_admin_change_on_one_host_is_what_the_other_reads() {
    let Some(slapd) = start() else { return };
    let (a, b) = (host(&slapd, ""), host(&slapd, ""));
    enroll(&*a.store, "tfcarol", 2);
    // Override set on B.
    b.store
        .update(&user("tfcarol"), &mut |state| {
            let r = state.record.get_or_insert_with(|| Record::new("tfcarol"));
            r.admin_override = Some(twofold_policy::record::Override {
                mode: twofold_policy::Mode::Required,
                by: "root".into(),
                at: 1_700_000_000,
            });
            Ok(())
        })
        .unwrap()
        .unwrap();
    let on_a = a.store.read_record(&user("tfcarol")).unwrap().unwrap();
    assert_eq!(
        on_a.admin_override.map(|o| o.mode),
        Some(twofold_policy::Mode::Required)
    );
    // Reset on A: B sees no enrollment, and the token entries are gone.
    a.store
        .update(&user("tfcarol"), &mut |state| {
            if let Some(r) = state.record.as_mut() {
                r.enrollment = None;
                r.required_since = None;
            }
            state.counters = Default::default();
            Ok(())
        })
        .unwrap()
        .unwrap();
    let on_b = b.store.read_record(&user("tfcarol")).unwrap().unwrap();
    assert!(on_b.enrollment.is_none());
    assert!(on_b.admin_override.is_some());
    let ldif = slapd
        .ldapsearch(
            &format!("uid=tfcarol,ou=accounts,{}", slapd.twofold_base()),
            "(objectClass=twofoldToken)",
            &["cn"],
        )
        .unwrap();
    assert!(!ldif.contains("dn: cn="), "{ldif}");
}

#[test]
fn wrong_codes_over_two_hosts_are_bounded_per_account() {
    let Some(slapd) = start() else { return };
    let (a, b) = (host(&slapd, ""), host(&slapd, ""));
    enroll(&*a.store, "tfdave", 0);
    // Many addresses (a stranger with a botnet), over both hosts: every answer from a new
    // address, so the per-source delays never start.
    let mut checked = 0;
    for i in 0..300u32 {
        let source = format!("10.{}.{}.9", i / 250, i % 250);
        let store = if i % 2 == 0 { &a.store } else { &b.store };
        match check(&**store, "tfdave", "000000", &source) {
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
    let a = host(&slapd, "");
    let (secret, _) = enroll(&*a.store, "tferin", 0);
    slapd.stop().unwrap();
    let err = a.store.read_record(&user("tferin")).unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    let err = a
        .store
        .check_attempt(&user("tferin"), &attempt(&code(&secret, 0), "10.0.2.1"))
        .unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    // Back: the connection is made again.
    slapd.start_again().unwrap();
    assert_eq!(
        check(&*a.store, "tferin", &code(&secret, 0), "10.0.2.1"),
        Outcome::Code
    );
}

#[test]
fn the_offline_copy_stands_in_and_what_it_used_goes_back() {
    let Some(mut slapd) = start() else { return };
    let offline = "[store.offline]\nenabled = true\nmax_age = \"1h\"";
    let a = host(&slapd, offline);
    let b = host(&slapd, offline);
    let (secret, codes) = enroll(&*a.store, "tffrank", 3);
    // An online login on A keeps a copy there; B never saw the user.
    assert_eq!(
        check(&*a.store, "tffrank", &code(&secret, -1), "10.0.3.1"),
        Outcome::Code
    );
    slapd.stop().unwrap();
    // A: the copy decides; B: nothing to stand in, closed.
    assert!(a.store.read_record(&user("tffrank")).unwrap().is_some());
    assert_eq!(
        check(&*a.store, "tffrank", &code(&secret, 0), "10.0.3.1"),
        Outcome::Code
    );
    assert_eq!(
        check(&*a.store, "tffrank", &codes[0], "10.0.3.1"),
        Outcome::RecoveryCode { left: 2 }
    );
    let err = b.store.read_record(&user("tffrank")).unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    // Back: the step and the recovery code used offline are refused on B too.
    slapd.start_again().unwrap();
    // A's next online check pushes them; until then B could accept them (the window the
    // documentation states), so the merge runs at A's next check.
    assert_eq!(
        check(&*a.store, "tffrank", "000000", "10.0.3.1"),
        Outcome::Invalid
    );
    assert_eq!(
        check(&*b.store, "tffrank", &code(&secret, 0), "10.0.3.2"),
        Outcome::Replayed
    );
    assert_eq!(
        check(&*b.store, "tffrank", &codes[0], "10.0.3.2"),
        Outcome::Invalid
    );
}

#[test]
fn names_that_differ_only_in_case_do_not_share_an_entry() {
    let Some(slapd) = start() else { return };
    let a = host(&slapd, "");
    enroll(&*a.store, "tfgina", 0);
    // The directory finds `uid=TFgina` as `uid=tfgina`: refused, never the other's record.
    let err = a.store.read_record(&user("TFgina")).unwrap_err();
    assert!(matches!(err, StoreError::Directory { .. }), "{err}");
    let err = a
        .store
        .check_attempt(&user("TFgina"), &attempt("123456", "10.0.4.1"))
        .unwrap_err();
    assert!(matches!(err, StoreError::Directory { .. }), "{err}");
    let err = a
        .store
        .update(&user("TFgina"), &mut |_| Ok(()))
        .unwrap_err();
    assert!(matches!(err, StoreError::Directory { .. }), "{err}");
}

#[test]
fn the_verification_service_refuses_when_the_directory_is_unreachable() {
    use twofold_policy::verify::{self, Answer, Op, Request, ServerConfig, Serving};
    let Some(mut slapd) = start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("ldap.secret");
    std::fs::write(&secret, slapd.service_password()).unwrap();
    set_mode(&secret, 0o600);
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, policy_text(&slapd, &secret, "")).unwrap();
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
