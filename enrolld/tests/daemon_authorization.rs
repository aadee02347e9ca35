//! twofold-enrolld for real, on who may do what: every method as root, an admin, the user and
//! another user; proofs of the current factor, their throttling and their limits; other names
//! for an account; who receives `UserChanged`. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use common::world::{POLICY, World, enroll, enroll_directly, err, ok, walk, write_record};
use common::{Account, Group, fresh_step_within, oathtool, root_or_skip};
use serde_json::{Value, json};
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

const ADMIN_METHODS: &[&str] = &[
    "Require",
    "Exempt",
    "Allow",
    "ClearOverride",
    "Reset",
    "GetUser",
    "ListUsers",
    "ListUsersPage",
    "FindUsers",
    "Subscribe",
    "Summary",
    "SetDefaultMode",
    "PreviewDefaultMode",
    "ImportGoogleAuthenticator",
    "ImportToken",
];

fn admin_args(method: &str, target: &str) -> Value {
    match method {
        "ListUsers" | "Summary" | "Subscribe" => json!([]),
        "ListUsersPage" => json!(["", 10]),
        "FindUsers" => json!(["", ["pending"], "", 10]),
        "SetDefaultMode" | "PreviewDefaultMode" => json!(["optional"]),
        // Not dry runs: a refused call must change nothing, an allowed one may.
        "ImportGoogleAuthenticator" => json!([target, false]),
        "ImportToken" => json!([
            target,
            {"secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "digits": 6, "period": 30},
            true
        ]),
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
            let rec = record_bytes();
            let r = w.call(who, method, admin_args(method, target));
            if *method == "ImportToken" && label == "admin" {
                // A secret the caller gives is root's to import: an admin who is not root
                // could plant one they know.
                assert_eq!(err(&r), "PermissionDenied", "{method} as {label}: {r}");
                assert_eq!(
                    record_bytes(),
                    rec,
                    "{method} as {label} changed the record"
                );
                continue;
            }
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
    for method in ["SetDefaultMode", "PreviewDefaultMode"] {
        let r = w.call(None, method, json!(["sometimes"]));
        assert_eq!(err(&r), "InvalidArgument", "{method}: {r}");
    }

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
            .authenticators
            .first()
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
        .map(|e| {
            e.authenticators
                .first()
                .unwrap()
                .secret()
                .unwrap()
                .to_base32()
                .to_string()
        })
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
