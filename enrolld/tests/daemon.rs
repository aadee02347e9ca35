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

/// Run only as a helper, as another user: subscribes to `UserChanged`, prints `READY`, then
/// `SIG user status` for each signal it receives.
#[test]
#[ignore]
fn listen_helper() {
    if std::env::var("TWOFOLD_LISTEN").is_err() {
        return;
    }
    zbus::block_on(async {
        use futures_util::StreamExt;
        let conn = zbus::Connection::system().await.unwrap();
        let p = twofold_enrolld::api::ManagerProxy::new(&conn)
            .await
            .unwrap();
        let mut s = p.receive_user_changed().await.unwrap();
        println!("READY");
        while let Some(sig) = s.next().await {
            let a = sig.args().unwrap();
            println!("SIG {} {}", a.user(), a.status());
        }
    });
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

    fn daemon_pid(&self) -> u32 {
        self.daemon.pid().unwrap()
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

const ADMIN_METHODS: &[&str] = &[
    "Require",
    "Exempt",
    "Allow",
    "ClearOverride",
    "Reset",
    "GetUser",
    "ListUsers",
    "ListUsersPage",
    "Summary",
    "SetDefaultMode",
];

fn admin_args(method: &str, target: &str) -> Value {
    match method {
        "ListUsers" | "Summary" => json!([]),
        "ListUsersPage" => json!(["", 10]),
        "SetDefaultMode" => json!(["optional"]),
        _ => json!([target]),
    }
}

/// Every method × {root, admin-group member, the user themself, another plain user}.
#[test]
fn authorization_matrix() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let target = &w.alice.name;
    let record_bytes = || std::fs::read(w.dir.path().join(format!("state/{target}.toml"))).ok();
    let policy_bytes = || std::fs::read(&w.policy).unwrap();
    // Admin methods: root and the admin group's member may; the user and another user may not
    // (except GetUser on oneself), and a refused call changes nothing.
    for method in ADMIN_METHODS {
        for (who, label) in [(None, "root"), (Some(&w.admin), "admin")] {
            let r = w.call(who, method, admin_args(method, target));
            assert!(r.get("ok").is_some(), "{method} as {label}: {r}");
        }
        for (who, label) in [(&w.alice, "self"), (&w.bob, "other")] {
            let (rec, pol) = (record_bytes(), policy_bytes());
            let r = w.call(Some(who), method, admin_args(method, target));
            if *method == "GetUser" && label == "self" {
                assert_eq!(ok(&r)["user"], *target, "{r}");
                continue;
            }
            assert_eq!(err(&r), "PermissionDenied", "{method} as {label}: {r}");
            assert!(
                r["message"].as_str().unwrap().contains(&w.admins.name),
                "the refusal says who may: {r}"
            );
            assert_eq!(
                record_bytes(),
                rec,
                "{method} as {label} changed the record"
            );
            assert_eq!(
                policy_bytes(),
                pol,
                "{method} as {label} changed the policy"
            );
        }
    }
    // What each admin verb did, seen as root.
    for (method, status, ov) in [
        ("Require", "pending", json!("required")),
        ("Exempt", "exempt", json!("disabled")),
        ("Allow", "off", json!("optional")),
        ("ClearOverride", "off", Value::Null),
    ] {
        let info = ok(&w.call(Some(&w.admin), method, json!([target]))).clone();
        assert_eq!(info["status"], status, "{method}: {info}");
        assert_eq!(info["override_mode"], ov, "{method}: {info}");
        if !ov.is_null() {
            assert_eq!(info["override_by"], w.admin.name.as_str());
        }
    }
    let r = w.call(None, "Require", json!(["no-such-user-tf"]));
    assert_eq!(err(&r), "UnknownUser", "{r}");
    let r = w.call(None, "Require", json!(["../etc"]));
    assert_eq!(err(&r), "InvalidArgument", "{r}");
    let r = w.call(None, "SetDefaultMode", json!(["sometimes"]));
    assert_eq!(err(&r), "InvalidArgument", "{r}");

    // Self methods act on the caller, whoever calls: each caller enrolls, regenerates its
    // recovery codes and disables, and no one else's record changes.
    for (who, name) in [
        (None, "root".to_owned()),
        (Some(&w.admin), w.admin.name.clone()),
        (Some(&w.alice), w.alice.name.clone()),
        (Some(&w.bob), w.bob.name.clone()),
    ] {
        let others: Vec<_> = ["root", &w.admin.name, &w.alice.name, &w.bob.name]
            .into_iter()
            .filter(|n| *n != name)
            .map(|n| {
                (
                    n.to_owned(),
                    std::fs::read(w.dir.path().join(format!("state/{n}.toml"))).ok(),
                )
            })
            .collect();
        let st = ok(&w.call(who, "GetStatus", json!([]))).clone();
        assert_eq!(st["user"], name.as_str());
        let new = ok(&w.call(who, "BeginEnrollment", json!([false]))).clone();
        assert!(
            new["label"]
                .as_str()
                .unwrap()
                .ends_with(&format!(":{name}"))
        );
        let r = w.call(who, "ConfirmEnrollment", json!(["123456"]));
        assert_eq!(err(&r), "InvalidCode", "{name}: {r}");
        fresh_step_within(5);
        let key = new["secret"].as_str().unwrap();
        let codes = ok(&w.call(who, "ConfirmEnrollment", json!([oathtool(key, 0)]))).clone();
        let state = w.store().read(&UserName::parse(&name).unwrap()).unwrap();
        assert!(
            state.record.unwrap().enrollment.is_some(),
            "{name} enrolled"
        );
        let fresh = ok(&w.call(who, "RegenerateRecoveryCodes", json!([codes[0]]))).clone();
        let r = w.call(who, "Disable", json!(["999999"]));
        assert_eq!(err(&r), "InvalidCode", "{name}: {r}");
        let info = ok(&w.call(who, "Disable", json!([fresh[0]]))).clone();
        assert_eq!(info["status"], "off", "{name}: {info}");
        assert_eq!(
            ok(&w.call(who, "CancelEnrollment", json!([]))),
            &json!(false)
        );
        let r = w.call(who, "Disable", json!([fresh[1]]));
        assert_eq!(err(&r), "NotEnrolled", "{name}: {r}");
        for (n, before) in others {
            let now = std::fs::read(w.dir.path().join(format!("state/{n}.toml"))).ok();
            assert_eq!(now, before, "{name}'s self calls changed {n}'s record");
        }
    }
    // Every admin action and enrollment was logged: who, what, to whom.
    let log = w.daemon.log_text();
    for needle in [
        format!(
            "caller={} uid={} action=require user={target} result=ok",
            w.admin.name, w.admin.uid
        ),
        format!(
            "caller={} uid={} action=require result=denied",
            w.bob.name, w.bob.uid
        ),
        format!(
            "caller={} uid={} action=enroll user={} result=ok",
            w.bob.name, w.bob.uid, w.bob.name
        ),
        "caller=root uid=0 action=reset user=".to_owned(),
    ] {
        assert!(log.contains(&needle), "{needle:?} not logged:\n{log}");
    }
}

#[test]
fn list_summary_and_signal() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    ok(&w.call(None, "Require", json!([w.alice.name])));
    ok(&w.call(None, "Exempt", json!([w.bob.name])));
    let list = ok(&w.call(Some(&w.admin), "ListUsers", json!([]))).clone();
    let rows = list.as_array().unwrap();
    let row = |n: &str| rows.iter().find(|r| r["user"] == n).cloned();
    assert_eq!(row(&w.alice.name).unwrap()["status"], "pending");
    assert_eq!(row(&w.bob.name).unwrap()["status"], "exempt");
    assert_eq!(row(&w.admin.name).unwrap()["status"], "off");
    // Users the policy names are listed even without an account in the login range.
    assert_eq!(row("nobody").unwrap()["status"], "exempt");
    let summary = ok(&w.call(Some(&w.admin), "Summary", json!([]))).clone();
    let count = |s: &str| rows.iter().filter(|r| r["status"] == s).count() as u64;
    for s in ["pending", "enforced", "enabled", "off", "exempt"] {
        assert_eq!(summary[s], count(s), "{s}: {summary}");
    }
    assert_eq!(summary["total"], rows.len() as u64);

    // UserChanged after a change.
    let (tx, rx) = std::sync::mpsc::channel();
    let address = w.bus.address.clone();
    std::thread::spawn(move || {
        zbus::block_on(async move {
            use futures_util::StreamExt;
            let conn = zbus::connection::Builder::address(address.as_str())
                .build()
                .await
                .unwrap();
            let p = twofold_enrolld::api::ManagerProxy::new(&conn)
                .await
                .unwrap();
            let mut s = p.receive_user_changed().await.unwrap();
            tx.send(None).unwrap();
            while let Some(sig) = s.next().await {
                let a = sig.args().unwrap();
                tx.send(Some((a.user().clone(), a.status().clone())))
                    .unwrap();
            }
        });
    });
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(),
        None
    );
    ok(&w.call(Some(&w.admin), "Allow", json!([w.alice.name])));
    let got = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(got, Some((w.alice.name.clone(), "off".to_owned())));
}

#[test]
fn state_survives_restart_and_sigkill() {
    if !root_or_skip() {
        return;
    }
    let mut w = World::new(&[]);
    let bob = Some(&w.bob);
    let new = ok(&w.call(bob, "BeginEnrollment", json!([false]))).clone();
    fresh_step_within(5);
    ok(&w.call(
        bob,
        "ConfirmEnrollment",
        json!([oathtool(new["secret"].as_str().unwrap(), 0)]),
    ));
    ok(&w.call(None, "Require", json!([w.alice.name])));
    let before: Vec<Value> = [&w.alice.name, &w.bob.name]
        .iter()
        .map(|n| ok(&w.call(None, "GetUser", json!([n]))).clone())
        .collect();
    w.daemon.restart();
    for b in &before {
        let now = ok(&w.call(None, "GetUser", json!([b["user"]]))).clone();
        assert_eq!(&now, b, "changed across a restart");
    }

    // Bursts of admin writes, SIGKILL in the middle (5 rounds, at different moments): every
    // record loads afterwards and holds every acknowledged change (the call in flight may or
    // may not have landed).
    let targets = [
        w.alice.name.clone(),
        w.bob.name.clone(),
        w.admin.name.clone(),
    ];
    let store = w.store();
    for round in 0..5u64 {
        let pid = w.daemon_pid();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300 + 170 * round));
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
        let mut acked: std::collections::HashMap<String, &str> = Default::default();
        let mut in_flight = None;
        for i in 0..5000 {
            let t = &targets[i % 3];
            let (method, mode) = if (i / 3 + round as usize).is_multiple_of(2) {
                ("Require", "required")
            } else {
                ("Exempt", "disabled")
            };
            let r = w.call(None, method, json!([t]));
            if r.get("ok").is_some() {
                acked.insert(t.clone(), mode);
            } else {
                in_flight = Some((t.clone(), mode));
                break;
            }
        }
        killer.join().unwrap();
        assert!(
            in_flight.is_some(),
            "round {round}: not killed during the burst"
        );
        assert!(acked.len() == 3, "round {round}: too few writes: {acked:?}");
        w.daemon.forget_killed();
        for t in &targets {
            let rec = store
                .read(&UserName::parse(t).unwrap())
                .unwrap_or_else(|e| panic!("{t}'s record does not load: {e}"))
                .record
                .unwrap();
            let got = rec.admin_override.unwrap().mode.to_string();
            let ok_modes: Vec<&str> = std::iter::once(acked[t])
                .chain(in_flight.iter().filter(|(u, _)| u == t).map(|(_, m)| *m))
                .collect();
            assert!(
                ok_modes.contains(&got.as_str()),
                "round {round}, {t}: {got} not in {ok_modes:?}"
            );
        }
        w.daemon.restart();
    }
    // The restarted daemon serves the same state.
    for t in &targets {
        let info = ok(&w.call(None, "GetUser", json!([t]))).clone();
        let mode = store
            .read(&UserName::parse(t).unwrap())
            .unwrap()
            .record
            .unwrap()
            .admin_override
            .unwrap()
            .mode;
        assert_eq!(info["override_mode"], mode.to_string());
    }
}

#[test]
fn set_default_mode_keeps_every_comment() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let original = std::fs::read_to_string(&w.policy).unwrap();
    ok(&w.call(Some(&w.admin), "SetDefaultMode", json!(["required"])));
    let edited = std::fs::read_to_string(&w.policy).unwrap();
    assert_eq!(
        edited,
        original.replace(
            "mode = \"optional\"   # the default",
            "mode = \"required\"   # the default"
        )
    );
    let st = ok(&w.call(Some(&w.bob), "GetStatus", json!([]))).clone();
    assert_eq!(st["status"], "pending", "the new default applies: {st}");
    // A drop-in that sets mode would override the edit: refused, nothing written.
    let d = w.dir.path().join("policy.d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("50-site.toml"), "mode = \"optional\"\n").unwrap();
    let r = w.call(None, "SetDefaultMode", json!(["disabled"]));
    assert_eq!(err(&r), "Forbidden", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("50-site.toml:1"),
        "{r}"
    );
    assert_eq!(std::fs::read_to_string(&w.policy).unwrap(), edited);
    std::fs::remove_dir_all(&d).unwrap();
    // A broken policy is not edited further.
    std::fs::write(&w.policy, format!("{edited}\n[users.x]\nmode = 1\n")).unwrap();
    let r = w.call(None, "SetDefaultMode", json!(["disabled"]));
    assert_eq!(err(&r), "Failed", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("policy.toml:"),
        "{r}"
    );
    assert!(
        std::fs::read_to_string(&w.policy)
            .unwrap()
            .contains("mode = \"required\"   # the default")
    );
    let leftovers: Vec<_> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("twofold-tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

/// A phone whose clock runs ahead enrolls with the next step's code: that code, and older ones,
/// cannot be used again afterwards.
#[test]
fn the_code_that_enrolled_cannot_be_replayed() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let bob = Some(&w.bob);
    let new = ok(&w.call(bob, "BeginEnrollment", json!([false]))).clone();
    let key = new["secret"].as_str().unwrap();
    fresh_step_within(5);
    let ahead = oathtool(key, 1);
    ok(&w.call(bob, "ConfirmEnrollment", json!([ahead])));
    for code in [ahead, oathtool(key, 0)] {
        let r = w.call(bob, "RegenerateRecoveryCodes", json!([code]));
        assert_eq!(err(&r), "InvalidCode", "{r}");
    }
}

/// Enrolls `who` through the daemon; returns the key and the recovery codes.
fn enroll(w: &World, who: &Account) -> (String, Vec<String>) {
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

#[test]
fn guessing_through_the_daemon_is_throttled_like_a_login() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let bob = Some(&w.bob);
    let (key, codes) = enroll(&w, &w.bob);
    let u = UserName::parse(&w.bob.name).unwrap();
    let before = w.store().read(&u).unwrap().record.unwrap();
    // 30 wrong codes to each method that checks one, as the user (malware running as bob).
    let mut checked = 0;
    let mut throttled = 0;
    for (method, args) in [
        ("Disable", json!(["000000"])),
        ("RegenerateRecoveryCodes", json!(["000000"])),
        ("BeginEnrollment", json!([true, "000000"])),
    ] {
        for _ in 0..30 {
            let r = w.call(bob, method, args.clone());
            match err(&r) {
                "InvalidCode" => checked += 1,
                "Throttled" => throttled += 1,
                other => panic!("{method}: {other}: {r}"),
            }
        }
    }
    // Like logins from one place: 3 checked, then a delay (30 s, growing) before the next.
    assert_eq!(checked, 3, "codes checked");
    assert_eq!(throttled, 87);
    // While throttled, even the right code and a recovery code are not checked.
    fresh_step_within(5);
    let r = w.call(bob, "RegenerateRecoveryCodes", json!([oathtool(&key, 0)]));
    assert_eq!(err(&r), "Throttled", "{r}");
    let r = w.call(bob, "Disable", json!([codes[0]]));
    assert_eq!(err(&r), "Throttled", "{r}");
    let state = w.store().read(&u).unwrap();
    assert_eq!(state.record.unwrap(), before, "nothing changed");
    assert_eq!(state.counters.failures["local"].count, 3);
    assert_eq!(state.counters.user_failures, 3);
    assert!(
        w.daemon
            .log_text()
            .contains("throttled: 3 wrong codes from local")
    );
}

#[test]
fn replacing_or_disabling_needs_the_current_factor() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let alice = Some(&w.alice);
    let (key, codes) = enroll(&w, &w.alice);
    let u = UserName::parse(&w.alice.name).unwrap();
    let before = w.store().read(&u).unwrap().record.unwrap();
    // Replace without a proof, or with a wrong one: refused before any secret is made.
    for proof in ["", "123456"] {
        let r = w.call(alice, "BeginEnrollment", json!([true, proof]));
        assert_eq!(err(&r), "InvalidCode", "{r}");
    }
    let r = w.call(alice, "ConfirmEnrollment", json!(["123456"]));
    assert_eq!(err(&r), "NoPendingEnrollment", "{r}");
    // Disable without the factor: refused.
    let r = w.call(alice, "Disable", json!(["999999"]));
    assert_eq!(err(&r), "InvalidCode", "{r}");
    assert_eq!(w.store().read(&u).unwrap().record.unwrap(), before);
    // With a recovery code as proof: replaced (the old key no longer matters).
    let new = ok(&w.call(alice, "BeginEnrollment", json!([true, codes[0]]))).clone();
    let new_key = new["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    fresh_step_within(5);
    ok(&w.call(alice, "ConfirmEnrollment", json!([oathtool(&new_key, 0)])));
    let rec = w.store().read(&u).unwrap().record.unwrap();
    assert_eq!(
        rec.enrollment
            .unwrap()
            .secret()
            .unwrap()
            .to_base32()
            .as_str(),
        new_key
    );
    // A proof is consumed: the same recovery code does not prove twice.
    let r = w.call(alice, "BeginEnrollment", json!([true, codes[0]]));
    assert_eq!(err(&r), "InvalidCode", "{r}");
}

/// The secret of `who`'s enrollment, if any.
fn secret_of(w: &World, who: &Account) -> Option<String> {
    let u = UserName::parse(&who.name).unwrap();
    w.store()
        .read(&u)
        .unwrap()
        .record
        .and_then(|r| r.enrollment)
        .map(|e| e.secret().unwrap().to_base32().to_string())
}

/// Found by an attacker's review: malware running as alice, with one stolen recovery code (or
/// one sniffed code), begins a replacement and keeps its secret. The proof was for the
/// enrollment of that moment, and for nothing after it.
#[test]
fn a_pending_replacement_replaces_only_the_enrollment_it_was_proven_against() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let alice = Some(&w.alice);
    // 1. An admin resets alice (the documented remedy), and she enrolls again at her next
    //    login: the malware's confirmation must not replace that new enrollment.
    let (_key, codes) = enroll(&w, &w.alice);
    let evil = ok(&w.call(alice, "BeginEnrollment", json!([true, codes[0]]))).clone();
    let evil_key = evil["secret"].as_str().unwrap().to_owned();
    ok(&w.call(Some(&w.admin), "Reset", json!([w.alice.name])));
    write_record(&w.store(), &w.alice.name, enroll_directly);
    let legit = secret_of(&w, &w.alice).unwrap();
    fresh_step_within(5);
    let r = w.call(alice, "ConfirmEnrollment", json!([oathtool(&evil_key, 0)]));
    assert_eq!(err(&r), "NoPendingEnrollment", "{r}");
    assert_eq!(secret_of(&w, &w.alice), Some(legit.clone()));
    // 2. A pending replacement whose enrollment is replaced at a login meanwhile (a new one,
    //    not reset): still refused, the enrollment of the login kept.
    let w = World::new(&[]);
    let alice = Some(&w.alice);
    let (_key, codes) = enroll(&w, &w.alice);
    let evil = ok(&w.call(alice, "BeginEnrollment", json!([true, codes[0]]))).clone();
    let evil_key = evil["secret"].as_str().unwrap().to_owned();
    write_record(&w.store(), &w.alice.name, enroll_directly);
    let legit = secret_of(&w, &w.alice).unwrap();
    fresh_step_within(5);
    let r = w.call(alice, "ConfirmEnrollment", json!([oathtool(&evil_key, 0)]));
    assert_eq!(err(&r), "AlreadyEnrolled", "{r}");
    assert_eq!(secret_of(&w, &w.alice), Some(legit));
    // 3. Alice disables 2FA with another recovery code: the pending replacement ends with it.
    ok(&w.call(Some(&w.admin), "Reset", json!([w.alice.name])));
    let (_key, codes) = enroll(&w, &w.alice);
    let evil = ok(&w.call(alice, "BeginEnrollment", json!([true, codes[0]]))).clone();
    let evil_key = evil["secret"].as_str().unwrap().to_owned();
    ok(&w.call(alice, "Disable", json!([codes[1]])));
    assert_eq!(secret_of(&w, &w.alice), None);
    fresh_step_within(5);
    let r = w.call(alice, "ConfirmEnrollment", json!([oathtool(&evil_key, 0)]));
    assert_eq!(err(&r), "NoPendingEnrollment", "{r}");
    assert_eq!(secret_of(&w, &w.alice), None);
}

/// Found by an attacker's review: `UserChanged(user, status)` went to every connection of the
/// system bus, so any local user learned who is exempt, or the moment an admin's reset left a
/// user pending. The bus policy now lets only root and twofold-admin receive it.
#[test]
fn other_users_do_not_receive_user_changed() {
    use std::io::BufRead;
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let mut child = common::as_user(Some(&w.bob), &w.client, &w.bus)
        .args([
            "--ignored",
            "--exact",
            "listen_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TWOFOLD_LISTEN", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            let _ = tx.send(l);
        }
    });
    while !rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap()
        .contains("READY")
    {}
    enroll(&w, &w.alice);
    ok(&w.call(Some(&w.admin), "Reset", json!([w.alice.name])));
    ok(&w.call(Some(&w.admin), "Require", json!([w.alice.name])));
    // bob's own change: not received either (only root and the admin group receive any).
    ok(&w.call(Some(&w.admin), "Exempt", json!([w.bob.name])));
    let mut seen = Vec::new();
    while let Ok(l) = rx.recv_timeout(std::time::Duration::from_secs(3)) {
        if l.starts_with("SIG ") {
            seen.push(l);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.is_empty(),
        "bob, no admin, received UserChanged signals: {seen:?}"
    );
}

/// Alice enrolls, and her `Disable` with a valid code is refused as `Forbidden` by `rule`,
/// leaving her enrolled; returns that code (still unused: the refusal comes first).
fn enrolled_then_disable_forbidden(w: &World, rule: &str) -> String {
    let u = UserName::parse(&w.alice.name).unwrap();
    let (key, _) = enroll(w, &w.alice);
    fresh_step_within(5);
    let code = oathtool(&key, 1);
    let r = w.call(Some(&w.alice), "Disable", json!([code]));
    assert_eq!(err(&r), "Forbidden", "{r}");
    assert!(r["message"].as_str().unwrap().contains(rule), "{r}");
    assert!(w.store().read(&u).unwrap().enrolled());
    code
}

#[test]
fn a_service_requirement_forbids_self_disable_and_grace_is_granted_once() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let alice = Some(&w.alice);
    let u = UserName::parse(&w.alice.name).unwrap();
    // Required only for sshd.
    let text =
        std::fs::read_to_string(&w.policy).unwrap() + "\n[services.sshd]\nmode = \"required\"\n";
    std::fs::write(&w.policy, text).unwrap();
    let code = enrolled_then_disable_forbidden(&w, "[services.sshd]");
    // The refusal came before the code was checked: without the service rule, the same code
    // still proves it.
    std::fs::write(&w.policy, POLICY.replace("ADMINS", &w.admins.name)).unwrap();
    ok(&w.call(alice, "Disable", json!([code])));
    assert!(!w.store().read(&u).unwrap().enrolled());

    // Grace once per requirement: bob, pending through a group rule, enrolls; confirming
    // keeps when the requirement first met him, so no later enroll/disable restarts it.
    let b = UserName::parse(&w.bob.name).unwrap();
    ok(&w.call(None, "Require", json!([w.bob.name])));
    let since = w.store().read(&b).unwrap().record.unwrap().required_since;
    assert!(since.is_some());
    enroll(&w, &w.bob);
    let rec = w.store().read(&b).unwrap().record.unwrap();
    assert!(rec.enrollment.is_some());
    assert_eq!(
        rec.required_since, since,
        "confirming must not restart the grace period"
    );
}

/// A second passwd line with `of`'s uid and primary group (`useradd -o`), removed on drop.
struct Alias(String);

impl Alias {
    fn of(of: &Account) -> Alias {
        let name = format!("{}al", of.name);
        let st = std::process::Command::new("useradd")
            .args(["-o", "-u", &of.uid.to_string(), "-g"])
            .arg(of.gid.to_string())
            .args(["-M", "-s", "/bin/sh", &name])
            .status()
            .unwrap();
        assert!(st.success(), "useradd -o {name}");
        Alias(name)
    }
}

impl Drop for Alias {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(&self.0).status();
    }
}

/// A session opened under another name of alice's uid gets that name's groups: a group rule
/// that requires the alias forbids alice to switch 2FA off, even though she is not in the
/// group herself (else: disable, log in as the alias, pending with a fresh grace period).
#[test]
fn an_alias_in_a_required_group_forbids_self_disable() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let alice = Some(&w.alice);
    let u = UserName::parse(&w.alice.name).unwrap();
    let wheel = Group::create("wh");
    let alias_line = Alias::of(&w.alice);
    let alias = alias_line.0.clone();
    let gpasswd = |op: &str| {
        let out = std::process::Command::new("gpasswd")
            .args([op, &alias, &wheel.name])
            .output()
            .unwrap();
        assert!(out.status.success(), "gpasswd {op}");
    };
    gpasswd("-a");
    let text = std::fs::read_to_string(&w.policy).unwrap()
        + &format!("\n[groups.{}]\nmode = \"required\"\n", wheel.name);
    std::fs::write(&w.policy, text).unwrap();
    let code = enrolled_then_disable_forbidden(&w, &format!("[groups.{}]", wheel.name));
    // Once the alias is no longer listed, the same code switches it off.
    gpasswd("-d");
    ok(&w.call(alice, "Disable", json!([code])));
    assert!(!w.store().read(&u).unwrap().enrolled());
}

#[test]
fn another_name_for_the_same_account_is_that_account() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    // A second passwd line with alice's uid.
    let alias_line = Alias::of(&w.alice);
    let alias = alias_line.0.clone();
    // An admin requiring the alias requires alice; the answer names her.
    let info = ok(&w.call(None, "Require", json!([alias]))).clone();
    assert_eq!(info["user"], w.alice.name);
    assert!(
        !w.dir
            .path()
            .join("state")
            .join(format!("{alias}.toml"))
            .exists(),
        "a record of its own for the alias"
    );
    // Alice may look at herself under either name; the alias is no other user for her.
    let me = ok(&w.call(Some(&w.alice), "GetUser", json!([alias]))).clone();
    assert_eq!(me["user"], w.alice.name);
    assert_eq!(me["status"], "pending");
    // One row per account in the list.
    let list = ok(&w.call(None, "ListUsers", json!([]))).clone();
    let rows = list.as_array().unwrap();
    assert!(rows.iter().all(|r| r["user"] != alias.as_str()));
    assert_eq!(
        rows.iter()
            .filter(|r| r["user"] == w.alice.name.as_str())
            .count(),
        1
    );
    // The pages too (other tests' accounts come and go meanwhile: alice's row is compared).
    let paged = walk(&w, None, 3);
    let alices = |rows: &[Value]| -> Vec<Value> {
        rows.iter()
            .filter(|r| r["user"] == w.alice.name.as_str() || r["user"] == alias.as_str())
            .cloned()
            .collect()
    };
    assert_eq!(alices(&paged), alices(rows));
    // Even when the alias has a record of its own (written behind the daemon's back).
    write_record(&w.store(), &alias, |r| {
        r.admin_override = Some(twofold_policy::record::Override {
            mode: Mode::Disabled,
            by: "root".into(),
            at: 1,
        });
    });
    let paged = walk(&w, None, 2);
    assert!(paged.iter().all(|r| r["user"] != alias.as_str()));
    assert_eq!(
        paged
            .iter()
            .filter(|r| r["user"] == w.alice.name.as_str())
            .count(),
        1
    );
}
/// Every row of `ListUsersPage` as `who`, `limit` at a time, checking the cursors.
fn walk(w: &World, who: Option<&Account>, limit: u64) -> Vec<Value> {
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
fn write_record(store: &Store, user: &str, f: impl FnOnce(&mut twofold_policy::record::Record)) {
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

fn enroll_directly(r: &mut twofold_policy::record::Record) {
    let secret = twofold_policy::totp::Secret::generate().unwrap();
    r.enrollment = Some(twofold_policy::record::Enrollment::new(
        &secret,
        twofold_policy::totp::Params::default(),
        twofold_policy::time::now(),
        vec![],
    ));
}

#[test]
fn pages_hold_every_user_once_in_order() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    // Records of users with no account (as an old store may hold), besides the accounts.
    let store = Store::open_or_create(&w.dir.path().join("state")).unwrap();
    let extra: Vec<String> = (0..23).map(|i| format!("tfpage{i:02}x")).collect();
    for n in &extra {
        write_record(&store, n, |_| {});
    }
    // Other tests add and remove accounts meanwhile: the rows compared are this test's.
    let mine: Vec<String> = extra
        .iter()
        .cloned()
        .chain([&w.alice, &w.bob, &w.admin].map(|a| a.name.clone()))
        .chain(["nobody".to_owned()])
        .collect();
    // Strictly by name (each once); this test's rows, in order.
    let ours = |rows: &[Value]| -> Vec<Value> {
        let names: Vec<&str> = rows.iter().map(|r| r["user"].as_str().unwrap()).collect();
        assert!(
            names.windows(2).all(|p| p[0] < p[1]),
            "by name, each once: {names:?}"
        );
        rows.iter()
            .filter(|r| mine.iter().any(|m| r["user"] == m.as_str()))
            .cloned()
            .collect()
    };
    let list = ok(&w.call(None, "ListUsers", json!([]))).clone();
    let all = ours(list.as_array().unwrap());
    assert_eq!(all.len(), mine.len(), "every one listed: {all:?}");
    // Walked in pages of several sizes, the pages are the list.
    for limit in [1, 2, 7, 1000] {
        assert_eq!(
            ours(&walk(&w, Some(&w.admin), limit)),
            all,
            "pages of {limit}"
        );
    }
    let page =
        |after: &str, limit: u64| ok(&w.call(None, "ListUsersPage", json!([after, limit]))).clone();
    // Limit 0 and a huge limit: pages of the maximum (1000), here all of it.
    for limit in [0, u64::from(u32::MAX)] {
        let p = page("", limit);
        assert_eq!(ours(p["users"].as_array().unwrap()), all, "limit {limit}");
        assert_eq!(p["next"], "");
    }
    // Past the end: nothing, and no next page.
    for after in ["~", "zzzzzzzz"] {
        let p = page(after, 10);
        assert_eq!(p["users"], json!([]), "after {after}");
        assert_eq!(p["next"], "");
    }
    // A cursor is a position, not a user: one that names nobody (garbage, or a user removed
    // meanwhile) gives the rows after it.
    for cursor in [
        "!!garbage",
        "tfpage05",
        "tfpage05y",
        "\u{1F600}",
        "ROOT",
        "a b:c",
    ] {
        let p = page(cursor, 1000);
        let got = p["users"].as_array().unwrap();
        assert!(got.iter().all(|r| r["user"].as_str().unwrap() > cursor));
        let want: Vec<Value> = all
            .iter()
            .filter(|r| r["user"].as_str().unwrap() > cursor)
            .cloned()
            .collect();
        assert_eq!(ours(got), want, "after {cursor:?}");
    }
    // A cursor no page could have given: refused.
    let r = w.call(None, "ListUsersPage", json!(["x".repeat(5000), 10]));
    assert_eq!(err(&r), "InvalidArgument", "{r}");
    // Summary counts the same rows (here at least this test's).
    let summary = ok(&w.call(Some(&w.admin), "Summary", json!([]))).clone();
    assert!(summary["total"].as_u64().unwrap() >= all.len() as u64);
}

#[test]
fn the_list_sees_records_written_behind_the_daemons_back() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let row =
        |name: &str| -> Option<Value> { walk(&w, None, 2).into_iter().find(|r| r["user"] == name) };
    // Listed once (the daemon now holds alice's state and the directory's names).
    assert_eq!(row(&w.alice.name).unwrap()["status"], "off");
    assert!(row("tfbehind").is_none());
    // An enrollment made inside a login: the module writes the record itself.
    let store = w.store();
    write_record(&store, &w.alice.name, enroll_directly);
    let r = row(&w.alice.name).unwrap();
    assert_eq!(r["status"], "enabled", "{r}");
    assert_eq!(r["enrolled"], true);
    // The login's counters, written in place (same file, same size): seen too.
    let u = UserName::parse(&w.alice.name).unwrap();
    for (from, at) in [
        ("192.0.2.1", 1_700_000_000u64),
        ("192.0.2.2", 1_700_000_100),
    ] {
        let lock = store.lock(&u).unwrap();
        let mut c = lock.read().unwrap().counters;
        c.last_login = Some(at);
        c.last_login_from = Some(from.into());
        lock.write_counters(&c).unwrap();
        drop(lock);
        let r = row(&w.alice.name).unwrap();
        assert_eq!(r["last_login_from"], from, "{r}");
        assert_eq!(r["last_login"], at);
    }
    // GetStatus sees it as well.
    let me = ok(&w.call(Some(&w.alice), "GetStatus", json!([]))).clone();
    assert_eq!(me["status"], "enabled");
    // A record of a user with no account appears, with its status, then leaves when its
    // files are removed.
    write_record(&store, "tfbehind", |r| {
        r.admin_override = Some(twofold_policy::record::Override {
            mode: Mode::Required,
            by: "root".into(),
            at: 1,
        });
    });
    let r = row("tfbehind").unwrap();
    assert_eq!(r["status"], "pending", "{r}");
    assert_eq!(r["uid"], Value::Null);
    write_record(&store, "tfbehind", |r| r.admin_override = None);
    assert_eq!(row("tfbehind").unwrap()["status"], "off");
    for ext in ["toml", "lock", "counters"] {
        let _ = std::fs::remove_file(w.dir.path().join(format!("state/tfbehind.{ext}")));
    }
    assert!(
        row("tfbehind").is_none(),
        "a removed record leaves the list"
    );
    // Alice's record removed by hand: back to no enrollment.
    std::fs::remove_file(w.dir.path().join(format!("state/{}.toml", w.alice.name))).unwrap();
    let r = row(&w.alice.name).unwrap();
    assert_eq!(r["status"], "off", "{r}");
    assert_eq!(r["enrolled"], false);
    // A new account appears without a restart (the passwd file changed).
    let carol = Account::create("c", &[]);
    assert_eq!(row(&carol.name).unwrap()["uid"], carol.uid);
    // Admin rights follow /etc/group at once: carol joins the admin group, then leaves it.
    let r = w.call(Some(&carol), "ListUsersPage", json!(["", 1]));
    assert_eq!(err(&r), "PermissionDenied", "{r}");
    let gpasswd = |op: &str| {
        let st = std::process::Command::new("gpasswd")
            .args([op, &carol.name, &w.admins.name])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    };
    gpasswd("-a");
    ok(&w.call(Some(&carol), "ListUsersPage", json!(["", 1])));
    gpasswd("-d");
    let r = w.call(Some(&carol), "ListUsersPage", json!(["", 1]));
    assert_eq!(err(&r), "PermissionDenied", "{r}");
}

#[test]
fn callers_are_told_apart() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    ok(&w.call(None, "Exempt", json!([w.bob.name])));
    // Each caller, in turn, gets their own status; an admin's rights do not carry over to
    // the next caller.
    for _ in 0..3 {
        for who in [&w.alice, &w.bob, &w.admin] {
            let st = ok(&w.call(Some(who), "GetStatus", json!([]))).clone();
            assert_eq!(st["user"], who.name.as_str());
            assert_eq!(st["uid"], who.uid);
        }
        assert_eq!(
            ok(&w.call(Some(&w.bob), "GetStatus", json!([])))["status"],
            "exempt"
        );
        ok(&w.call(Some(&w.admin), "ListUsersPage", json!(["", 1])));
        let r = w.call(Some(&w.alice), "ListUsersPage", json!(["", 1]));
        assert_eq!(err(&r), "PermissionDenied", "{r}");
    }
}

/// The daemon keeps the state directory open between calls. Replaced behind its back (moved
/// away and made again, or swapped for a symlink to another user's directory, or opened up to
/// others), the next call must use what the path now leads to, or refuse: never the old one.
#[test]
fn a_replaced_state_directory_is_seen_at_the_next_call() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let state = w.dir.path().join("state");
    // The first call makes the directory and keeps it open.
    assert_eq!(status(&w), "off");
    write_record(&w.store(), &w.alice.name, enroll_directly);
    assert_eq!(status(&w), "enabled");
    // Moved away and made again, empty: alice is no longer enrolled.
    std::fs::rename(&state, w.dir.path().join("state.old")).unwrap();
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(status(&w), "off");
    // Opened up to others: refused until it is private again.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = w.call(Some(&w.alice), "GetStatus", json!([]));
    assert_eq!(err(&r), "Failed", "{r}");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(status(&w), "off");
    // A symlink to the old directory in its place: refused, not followed.
    std::fs::remove_dir(&state).unwrap();
    std::os::unix::fs::symlink(w.dir.path().join("state.old"), &state).unwrap();
    let r = w.call(Some(&w.alice), "GetStatus", json!([]));
    assert_eq!(err(&r), "Failed", "{r}");
    // The old directory back in place: enrolled again.
    std::fs::remove_file(&state).unwrap();
    std::fs::rename(w.dir.path().join("state.old"), &state).unwrap();
    assert_eq!(status(&w), "enabled");
}

/// Alice's own status, through the bus.
fn status(w: &World) -> String {
    ok(&w.call(Some(&w.alice), "GetStatus", json!([])))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Past the two seconds in which a file may change again without a new identity, two calls:
/// the second answered from what the first read, while nothing changes.
fn settle(w: &World, expected: &str) {
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(status(w), expected);
    assert_eq!(status(w), expected);
}

/// The caller's own status follows every change to what it is made from at the next call:
/// the daemon keeps what it read between calls while the kernel reports no change (once the
/// files are settled), so each change below is made after the files settled.
#[test]
fn get_status_follows_every_change_at_once() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let required = Group::create("r");
    settle(&w, "off");
    // The policy edited in place, its size unchanged.
    let text = std::fs::read_to_string(&w.policy).unwrap();
    let required_text = text.replace("mode = \"optional\"", "mode = \"required\"");
    assert_eq!(required_text.len(), text.len());
    std::fs::write(&w.policy, &required_text).unwrap();
    assert_eq!(status(&w), "pending");
    settle(&w, "pending");
    std::fs::write(&w.policy, &text).unwrap();
    assert_eq!(status(&w), "off");
    // A drop-in directory made after the daemon started, with a rule for a group.
    let dropins = w.dir.path().join("policy.d");
    std::fs::create_dir(&dropins).unwrap();
    std::fs::write(
        dropins.join("10-group.toml"),
        format!("[groups.{}]\nmode = \"required\"\n", required.name),
    )
    .unwrap();
    settle(&w, "off");
    // Alice joins that group (gpasswd replaces /etc/group), then leaves it.
    let gpasswd = |op: &str| {
        let st = std::process::Command::new("gpasswd")
            .args([op, &w.alice.name, &required.name])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    };
    gpasswd("-a");
    assert_eq!(status(&w), "pending");
    settle(&w, "pending");
    gpasswd("-d");
    assert_eq!(status(&w), "off");
    settle(&w, "off");
    // An enrollment written behind the daemon's back, as a login writes it.
    write_record(&w.store(), &w.alice.name, enroll_directly);
    assert_eq!(status(&w), "enabled");
    settle(&w, "enabled");
    // The drop-in edited in place: the group's rule now exempts.
    std::fs::write(
        dropins.join("10-group.toml"),
        format!("[groups.{}]\nmode = \"disabled\"\n", required.name),
    )
    .unwrap();
    gpasswd("-a");
    assert_eq!(status(&w), "exempt");
}

/// The drop-in directory removed and made again while another process holds the old
/// one open (a shell's cwd): the new directory is watched at once, and a drop-in written in it
/// is seen at the next call.
#[test]
fn get_status_sees_a_drop_in_directory_made_again_while_the_old_one_is_held_open() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let dropins = w.dir.path().join("policy.d");
    std::fs::create_dir(&dropins).unwrap();
    settle(&w, "off");
    let held = std::fs::File::open(&dropins).unwrap();
    std::fs::remove_dir(&dropins).unwrap();
    std::fs::create_dir(&dropins).unwrap();
    settle(&w, "off");
    std::fs::write(dropins.join("10-a.toml"), "mode = \"required\"\n").unwrap();
    let at_once = status(&w);
    drop(held);
    assert_eq!(at_once, "pending");
}

/// The lock file of `who`'s record in the world's state directory.
fn lock_file(w: &World, who: &Account) -> PathBuf {
    w.dir
        .path()
        .join("state")
        .join(format!("{}.lock", who.name))
        .canonicalize()
        .unwrap()
}

/// Calls of others, made while `who`'s lock is held and a call of `who` waits for it: root's
/// own status, a user and the list (from this process), and `other`'s own status (as that
/// user). All answered.
fn others_are_answered(w: &World, who: &Account, other: &Account) {
    let (_conn, root) = common::root_proxy(&w.bus);
    std::thread::scope(|s| {
        let theirs = s.spawn(|| w.call(Some(other), "GetStatus", json!([])));
        zbus::block_on(async {
            assert_eq!(root.get_status().await.unwrap().user, "root");
            assert_eq!(root.get_user(&who.name).await.unwrap().status, "enabled");
            let all = root.list_users().await.unwrap();
            assert!(all.iter().any(|u| u.user == who.name));
        });
        assert_eq!(ok(&theirs.join().unwrap())["user"], other.name.as_str());
    });
}

/// A user who holds their own lock (a setuid `su` of theirs, stopped while it holds it) makes
/// their own calls wait, boundedly, and holds up nobody else: the other calls are answered
/// while theirs still waits; theirs ends `Busy`, having checked and counted nothing. An answer
/// that cannot be a code is refused at once, without waiting for the lock.
#[test]
fn a_held_lock_holds_up_only_its_user_and_counts_nothing() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let alice = Some(&w.alice);
    enroll(&w, &w.alice);
    let u = UserName::parse(&w.alice.name).unwrap();
    let record = w.store().read(&u).unwrap().record.unwrap();
    let counters = w.store().read_counters(&u).unwrap();
    let lock = lock_file(&w, &w.alice);
    let held = common::HeldLock::hold(&lock);

    // Not a code: refused before the lock (waiting would have ended Busy).
    let r = w.call(alice, "Disable", json!(["hunter2"]));
    assert_eq!(err(&r), "InvalidCode", "{r}");

    std::thread::scope(|s| {
        let stalled = s.spawn(|| w.call(alice, "Disable", json!(["000000"])));
        common::wait_until_open(w.daemon_pid(), &lock);
        others_are_answered(&w, &w.alice, &w.bob);
        assert!(
            !stalled.is_finished(),
            "the others were answered while alice's call still waited"
        );
        let r = stalled.join().unwrap();
        assert_eq!(err(&r), "Busy", "{r}");
        let m = r["message"].as_str().unwrap();
        assert!(
            m.contains("nothing was checked") && m.contains("try again"),
            "{m}"
        );
    });
    assert_eq!(
        w.store().read_counters(&u).unwrap(),
        counters,
        "nothing counted"
    );
    assert_eq!(w.store().read(&u).unwrap().record.unwrap(), record);

    // Released: the same wrong code is checked, and counted.
    drop(held);
    let r = w.call(alice, "Disable", json!(["000000"]));
    assert_eq!(err(&r), "InvalidCode", "{r}");
    assert_eq!(
        w.store().read_counters(&u).unwrap().failures["local"].count,
        1
    );
}

/// One user cannot pile up calls: beyond the per-uid cap, theirs are refused `Busy` at once,
/// nothing started, while the others' calls are still answered.
#[test]
fn calls_beyond_the_per_uid_cap_are_busy_at_once() {
    if !root_or_skip() {
        return;
    }
    use twofold_enrolld::worker::PER_UID;
    let w = World::new(&[]);
    enroll(&w, &w.alice);
    let u = UserName::parse(&w.alice.name).unwrap();
    let counters = w.store().read_counters(&u).unwrap();
    let lock = lock_file(&w, &w.alice);
    let _held = common::HeldLock::hold(&lock);
    let n = PER_UID + 4;
    std::thread::scope(|s| {
        let burst = s.spawn(|| {
            common::call_many(
                &w.client,
                Some(&w.alice),
                &w.bus,
                n,
                "Disable",
                json!(["000000"]),
            )
        });
        common::wait_until_open(w.daemon_pid(), &lock);
        others_are_answered(&w, &w.alice, &w.bob);
        assert!(
            !burst.is_finished(),
            "the others were answered while alice's calls still waited"
        );
        let answers = burst.join().unwrap();
        assert_eq!(answers.len(), n);
        for a in &answers {
            assert_eq!(err(a), "Busy", "{a}");
        }
        let took = |over_cap: bool| -> Vec<u64> {
            answers
                .iter()
                .filter(|a| {
                    a["message"].as_str().unwrap().contains("calls in progress") == over_cap
                })
                .map(|a| a["ms"].as_u64().unwrap())
                .collect()
        };
        let (refused, waited) = (took(true), took(false));
        assert_eq!(refused.len(), n - PER_UID, "{answers:?}");
        assert_eq!(waited.len(), PER_UID, "{answers:?}");
        // Those over the cap were answered before any of those that waited for the lock.
        assert!(
            refused.iter().max() < waited.iter().min(),
            "{refused:?} {waited:?}"
        );
    });
    assert_eq!(
        w.store().read_counters(&u).unwrap(),
        counters,
        "nothing counted"
    );
    // The slots are free again: a call of alice's is served (and waits for the lock again).
    let r = w.call(Some(&w.alice), "Disable", json!(["000000"]));
    assert_eq!(err(&r), "Busy", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("stayed locked"),
        "{r}"
    );
}
