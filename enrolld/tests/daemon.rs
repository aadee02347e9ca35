//! twofold-enrolld for real: a private `dbus-daemon` loading the product's bus policy file, the
//! real daemon, and callers of different Unix identities (`setpriv`). Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::path::PathBuf;

use common::{Account, Bus, Dir, Enrolld, Group, call, fresh_step_within, oathtool, root_or_skip};
use serde_json::{Value, json};
use twofold_policy::store::Store;
use twofold_policy::{Mode, UserName};

/// Run only as a helper, under setpriv (see `common::call`).
#[test]
#[ignore]
fn helper() {
    common::helper_main();
}

#[allow(dead_code)] // kept alive for the test's duration
struct World {
    dir: Dir,
    bus: Bus,
    daemon: Enrolld,
    client: PathBuf,
    policy: PathBuf,
    admins: Group,
    admin: Account,
    alice: Account,
    bob: Account,
}

const POLICY: &str = "# twofold test policy\nmode = \"optional\"   # the default\nadmin_group = \"ADMINS\" # who manages\n\n[enrollment]\nat_login = true\ngrace_period = \"7d\"\nrecovery_codes = 5\n\n# keep this comment\n[users.nobody]\nmode = \"disabled\"\n";

impl World {
    fn new(extra: &[&str]) -> World {
        let dir = Dir::new();
        let admins = Group::create("g");
        let admin = Account::create("adm", &[&admins.name]);
        let alice = Account::create("a", &[]);
        let bob = Account::create("b", &[]);
        let policy = dir.write("policy.toml", &POLICY.replace("ADMINS", &admins.name));
        let state = dir.path().join("state");
        let bus = Bus::start(&dir);
        let daemon = Enrolld::start(&bus, &policy, &state, extra);
        let client = dir.install(&std::env::current_exe().unwrap(), "client");
        World {
            dir,
            bus,
            daemon,
            client,
            policy,
            admins,
            admin,
            alice,
            bob,
        }
    }

    fn call(&self, who: Option<&Account>, method: &str, args: Value) -> Value {
        call(&self.client, who, &self.bus, method, args)
    }

    fn store(&self) -> Store {
        Store::open(&self.dir.path().join("state")).unwrap()
    }
}

fn ok(v: &Value) -> &Value {
    assert!(v.get("ok").is_some(), "expected success: {v}");
    &v["ok"]
}

fn err(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {v}"))
}

#[test]
fn enrollment_over_dbus_end_to_end() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let alice = Some(&w.alice);
    let st = ok(&w.call(alice, "GetStatus", json!([]))).clone();
    assert_eq!(st["user"], w.alice.name);
    assert_eq!(st["status"], "off");

    let new = ok(&w.call(alice, "BeginEnrollment", json!([false]))).clone();
    let key = new["secret"].as_str().unwrap().to_owned();
    assert!(new["uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    assert!(
        new["label"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", w.alice.name))
    );
    // A wrong code keeps nothing.
    let r = w.call(alice, "ConfirmEnrollment", json!(["000000"]));
    assert_eq!(err(&r), "InvalidCode", "{r}");
    let u = UserName::parse(&w.alice.name).unwrap();
    assert!(w.store().read(&u).unwrap().record.is_none());
    // oathtool's code enrolls; the recovery codes come back once.
    fresh_step_within(5);
    let codes = ok(&w.call(alice, "ConfirmEnrollment", json!([oathtool(&key, 0)]))).clone();
    assert_eq!(codes.as_array().unwrap().len(), 5, "{codes}");
    let rec = w.store().read(&u).unwrap().record.unwrap();
    assert_eq!(
        rec.enrollment
            .as_ref()
            .unwrap()
            .secret()
            .unwrap()
            .to_base32()
            .as_str(),
        key
    );
    let st = ok(&w.call(alice, "GetStatus", json!([]))).clone();
    assert_eq!(st["status"], "enabled");
    assert_eq!(st["recovery_codes_left"], 5);
    // Confirming again: nothing pending.
    let r = w.call(alice, "ConfirmEnrollment", json!([oathtool(&key, 0)]));
    assert_eq!(err(&r), "NoPendingEnrollment");
    // Begin again without replace: refused.
    let r = w.call(alice, "BeginEnrollment", json!([false]));
    assert_eq!(err(&r), "AlreadyEnrolled");

    // Required by an admin: disable is refused, the enrollment stays.
    ok(&w.call(Some(&w.admin), "Require", json!([w.alice.name])));
    let r = w.call(alice, "Disable", json!([oathtool(&key, 1)]));
    assert_eq!(err(&r), "Forbidden", "{r}");
    assert!(
        w.store()
            .read(&u)
            .unwrap()
            .record
            .unwrap()
            .enrollment
            .is_some()
    );
    // Regenerate recovery codes with a recovery code as proof.
    let old = codes[0].as_str().unwrap();
    let fresh = ok(&w.call(alice, "RegenerateRecoveryCodes", json!([old]))).clone();
    assert_eq!(fresh.as_array().unwrap().len(), 5);
    let r = w.call(alice, "RegenerateRecoveryCodes", json!([codes[1]]));
    assert_eq!(err(&r), "InvalidCode", "old codes are gone: {r}");

    // Admin reset: no secret, status pending, a new grace from now.
    let info = ok(&w.call(None, "Reset", json!([w.alice.name]))).clone();
    assert_eq!(info["status"], "pending");
    assert!(info["deadline"].as_u64().unwrap() > twofold_policy::time::now() + 6 * 86400);
    let rec = w.store().read(&u).unwrap().record.unwrap();
    assert!(rec.enrollment.is_none());
    assert!(rec.required_since.is_some());
    assert_eq!(rec.admin_override.unwrap().mode, Mode::Required);
}

#[test]
fn expired_pending_enrollment_cannot_be_confirmed() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&["--enroll-timeout", "2s"]);
    let bob = Some(&w.bob);
    let new = ok(&w.call(bob, "BeginEnrollment", json!([false]))).clone();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let key = new["secret"].as_str().unwrap();
    let r = w.call(bob, "ConfirmEnrollment", json!([oathtool(key, 0)]));
    assert_eq!(err(&r), "NoPendingEnrollment", "{r}");
    let u = UserName::parse(&w.bob.name).unwrap();
    assert!(w.store().read(&u).unwrap().record.is_none());
    // Cancel: says whether something was pending.
    ok(&w.call(bob, "BeginEnrollment", json!([false])));
    assert_eq!(
        ok(&w.call(bob, "CancelEnrollment", json!([]))),
        &json!(true)
    );
    assert_eq!(
        ok(&w.call(bob, "CancelEnrollment", json!([]))),
        &json!(false)
    );
}
