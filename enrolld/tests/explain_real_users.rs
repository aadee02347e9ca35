//! `twofold explain` for real accounts created on this machine (useradd/groupadd, removed
//! afterwards), with supplementary groups from the system's user database and a real state
//! directory holding an enrollment and an admin override. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use twofold_policy::record::{Enrollment, Override, Record};
use twofold_policy::store::Store;
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{Mode, UserName};

struct Account {
    user: String,
    groups: Vec<String>,
}

impl Account {
    /// Creates `new_groups` (owned, removed on drop) and a user in them and in `join`.
    fn create(tag: &str, new_groups: &[&str], join: &[&String]) -> Account {
        let pid = std::process::id();
        let mut made = Vec::new();
        for g in new_groups {
            let g = format!("tf{pid}{g}");
            assert!(
                Command::new("groupadd").arg(&g).status().unwrap().success(),
                "groupadd {g}"
            );
            made.push(g);
        }
        let user = format!("tf{pid}{tag}");
        let mut cmd = Command::new("useradd");
        cmd.args(["--no-create-home", "--shell", "/usr/sbin/nologin"]);
        let all: Vec<&str> = made
            .iter()
            .map(String::as_str)
            .chain(join.iter().map(|s| s.as_str()))
            .collect();
        if !all.is_empty() {
            cmd.arg("--groups").arg(all.join(","));
        }
        assert!(cmd.arg(&user).status().unwrap().success(), "useradd {user}");
        Account { user, groups: made }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user).status();
        for g in &self.groups {
            let _ = Command::new("groupdel").arg(g).status();
        }
    }
}

fn twofold(policy: &Path, state: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twofold"))
        .arg("--policy")
        .arg(policy)
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn explain_real_accounts_with_supplementary_groups_and_state() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("creating accounts needs root: run make test as root (CI does)");
        return;
    }
    let a = Account::create("a", &["ops", "bots"], &[]);
    let b = Account::create("b", &[], &[&a.groups[1]]);
    let (ops, bots) = (&a.groups[0], &a.groups[1]);
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!("mode = \"optional\"\n[groups.{bots}]\nmode = \"disabled\"\n[groups.{ops}]\nmode = \"required\"\n"),
    )
    .unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();

    // a is in ops (required) and bots (disabled): the stronger group decides.
    let (code, out, err) = twofold(&policy, &state, &["explain", &a.user, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["mode"], "required");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["rule"]["name"], ops.as_str());
    let groups: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert!(
        groups.contains(&ops.as_str()) && groups.contains(&bots.as_str()),
        "{groups:?}"
    );

    // b is only in bots.
    let (_, out, _) = twofold(&policy, &state, &["explain", &b.user]);
    assert!(out.contains("status    exempt"), "{out}");

    // Enroll a (as the daemon will) and give b an admin override: the store decides.
    let store = Store::open(&state).unwrap();
    let ua = UserName::parse(&a.user).unwrap();
    let lock = store.lock(&ua).unwrap();
    let mut r = Record::new(&a.user);
    r.enrollment = Some(Enrollment::new(
        &Secret::generate().unwrap(),
        Params::default(),
        1_795_000_000,
        vec![],
    ));
    lock.write_record(&r).unwrap();
    drop(lock);
    let ub = UserName::parse(&b.user).unwrap();
    let lock = store.lock(&ub).unwrap();
    let mut r = Record::new(&b.user);
    r.admin_override = Some(Override {
        mode: Mode::Required,
        by: "root".into(),
        at: 1_795_000_000,
    });
    r.required_since = Some(1_795_000_000);
    lock.write_record(&r).unwrap();
    drop(lock);

    let (_, out, _) = twofold(&policy, &state, &["explain", &a.user]);
    assert!(
        out.contains("status    enforced: 2FA is required and set up"),
        "{out}"
    );
    let (_, out, _) = twofold(&policy, &state, &["explain", &b.user]);
    assert!(
        out.contains("rule      admin override set by root on 2026-11-18 11:06 UTC"),
        "{out}"
    );
    // Required since 2026-11-18 with a 7-day grace: the deadline is shown or has passed.
    assert!(out.contains("2026-11-25 11:06 UTC"), "{out}");

    // A state directory others can read is refused: exit 3 with the reason.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, _, err) = twofold(&policy, &state, &["explain", &a.user]);
    assert_eq!(code, 3);
    assert!(err.contains("lets others in, expected 0700"), "{err}");
}
