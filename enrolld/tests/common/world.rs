//! The daemon tests' rig: a private bus, the real daemon with a test policy, an admin group
//! with one member and two plain users; calls through the helper process as any of them, and
//! the helpers that several groups of tests share.

use std::path::PathBuf;

use super::{Account, Bus, Dir, Enrolld, Group, call, fresh_step_within, oathtool};
use serde_json::{Value, json};
use twofold_policy::UserName;
use twofold_policy::store::Store;

#[allow(dead_code)] // kept alive for the test's duration
pub struct World {
    pub dir: Dir,
    pub bus: Bus,
    pub daemon: Enrolld,
    pub client: PathBuf,
    pub policy: PathBuf,
    pub admins: Group,
    pub admin: Account,
    pub alice: Account,
    pub bob: Account,
}

pub const POLICY: &str = "# twofold test policy\nmode = \"optional\"   # the default\nadmin_group = \"ADMINS\" # who manages\n\n[enrollment]\nat_login = true\ngrace_period = \"7d\"\nrecovery_codes = 5\n\n# keep this comment\n[users.nobody]\nmode = \"disabled\"\n";

impl World {
    pub fn new(extra: &[&str]) -> World {
        World::new_with(extra, &[])
    }

    /// A world whose bus also includes the bus policy files `includes` (polkit's).
    pub fn new_with(extra: &[&str], includes: &[&std::path::Path]) -> World {
        let dir = Dir::new();
        let admins = Group::create("g");
        let admin = Account::create("adm", &[&admins.name]);
        let alice = Account::create("a", &[]);
        let bob = Account::create("b", &[]);
        let policy = dir.write("policy.toml", &POLICY.replace("ADMINS", &admins.name));
        let state = dir.path().join("state");
        let bus = Bus::start_with(&dir, includes);
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

    pub fn call(&self, who: Option<&Account>, method: &str, args: Value) -> Value {
        call(&self.client, who, &self.bus, method, args)
    }

    pub fn store(&self) -> Store {
        Store::open(&self.dir.path().join("state")).unwrap()
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.pid().unwrap()
    }
}

pub fn ok(v: &Value) -> &Value {
    assert!(v.get("ok").is_some(), "expected success: {v}");
    &v["ok"]
}

pub fn err(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {v}"))
}

/// Enrolls `who` through the daemon; returns the key and the recovery codes.
pub fn enroll(w: &World, who: &Account) -> (String, Vec<String>) {
    let new = ok(&w.call(Some(who), "BeginEnrollment", json!([false, ""]))).clone();
    let key = new["secret"].as_str().unwrap().to_owned();
    fresh_step_within(5);
    let codes = ok(&w.call(Some(who), "ConfirmEnrollment", json!([oathtool(&key, 0)]))).clone();
    let codes = codes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (key, codes)
}

/// Every row of `ListUsersPage` as `who`, `limit` at a time, checking the cursors.
pub fn walk(w: &World, who: Option<&Account>, limit: u64) -> Vec<Value> {
    let mut rows: Vec<Value> = Vec::new();
    let mut after = String::new();
    loop {
        let page = ok(&w.call(who, "ListUsersPage", json!([after, limit]))).clone();
        let users = page["users"].as_array().unwrap();
        assert!(users.len() as u64 <= limit, "{page}");
        let next = page["next"].as_str().unwrap().to_owned();
        if !next.is_empty() {
            assert_eq!(users.len() as u64, limit, "a page before the last is full");
            assert_eq!(users.last().unwrap()["user"], next.as_str());
        }
        rows.extend(users.iter().cloned());
        if next.is_empty() {
            break;
        }
        after = next;
    }
    rows
}

/// Changes `user`'s record directly through the store, as the PAM module does at a login
/// (under the lock, no daemon involved).
pub fn write_record(
    store: &Store,
    user: &str,
    f: impl FnOnce(&mut twofold_policy::record::Record),
) {
    let u = UserName::parse(user).unwrap();
    let lock = store.lock(&u).unwrap();
    let mut r = lock
        .read()
        .unwrap()
        .record
        .unwrap_or_else(|| twofold_policy::record::Record::new(user));
    f(&mut r);
    lock.write_record(&r).unwrap();
}

pub fn enroll_directly(r: &mut twofold_policy::record::Record) {
    let secret = twofold_policy::totp::Secret::generate().unwrap();
    r.enrollment = Some(twofold_policy::record::Enrollment::new(
        &secret,
        twofold_policy::totp::Params::default(),
        twofold_policy::time::now(),
        vec![],
    ));
}
