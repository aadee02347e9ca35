//! Attacks on the LDAP backend of the store (issue #23), at the level of the store, against a
//! real private slapd (and, where slapd would not misbehave, against a proxy or a fake server
//! in front of it): each test is one way someone could get past the backend or break it, and
//! what the store must do instead. Needs root (slapd, and the store's owner checks).
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
use twofold_policy::store::{StateStore, Store, open_backend};
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{Policy, UserName};
use twofold_system_tests::root_or_skip;
use twofold_system_tests::slapd::{Options, Slapd};

/// One host: its state directory and its store over the shared directory.
struct Host {
    _dir: tempfile::TempDir,
    store: Arc<dyn StateStore>,
}

/// What a host's policy says of the directory.
struct Conf<'a> {
    uri: String,
    base: String,
    extra: &'a str,
}

impl<'a> Conf<'a> {
    fn of(slapd: &Slapd, extra: &'a str) -> Conf<'a> {
        Conf {
            uri: slapd.ldapi_url(),
            base: slapd.twofold_base(),
            extra,
        }
    }
}

fn host_with(slapd: &Slapd, conf: &Conf<'_>) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let secret = dir.path().join("ldap.secret");
    std::fs::write(&secret, format!("{}\n", slapd.service_password())).unwrap();
    set_mode(&secret, 0o600);
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(
        &policy_file,
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
            uri = conf.uri,
            base = conf.base,
            dn = slapd.service_dn(),
            file = secret.display(),
            extra = conf.extra,
        ),
    )
    .unwrap();
    let policy = Policy::load(&policy_file, None).unwrap();
    let local = Arc::new(Store::open_or_create(&state).unwrap());
    let store = open_backend(local, &policy).unwrap();
    Host { _dir: dir, store }
}

fn host(slapd: &Slapd, extra: &str) -> Host {
    host_with(slapd, &Conf::of(slapd, extra))
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

/// A base DN written with spaces after its commas (RFC 4514 allows them, and so does the
/// policy's check): slapd sends the entries' DNs back without them. An enrolled user must
/// not read as a user with no enrollment (in `optional` mode: no code asked at all).
#[test]
fn a_base_written_with_spaces_still_finds_the_account() {
    let Some(slapd) = start() else { return };
    let spaced = Conf {
        base: slapd.twofold_base().replace(',', ", ").to_uppercase(),
        ..Conf::of(&slapd, "")
    };
    let a = host_with(&slapd, &spaced);
    let b = host(&slapd, "");
    // Enrolled from a host whose base is written the plain way: the other reads the same.
    let (secret, _) = enroll(&*b.store, "tfspace", 1);
    let record = a.store.read_record(&user("tfspace")).unwrap();
    assert!(
        record.is_some_and(|r| r.enrollment.is_some()),
        "the enrolled user reads as not enrolled"
    );
    assert_eq!(
        check(&*a.store, "tfspace", "000000", "10.9.0.1"),
        Outcome::Invalid
    );
    assert_eq!(
        check(&*a.store, "tfspace", &code(&secret, 0), "10.9.0.1"),
        Outcome::Code
    );
    // And enrolling through the spaced base works too.
    enroll(&*a.store, "tfspace2", 0);
    assert!(
        b.store
            .read_record(&user("tfspace2"))
            .unwrap()
            .is_some_and(|r| r.enrollment.is_some())
    );
    assert_eq!(
        a.store.users().unwrap(),
        vec![user("tfspace"), user("tfspace2")]
    );
}
