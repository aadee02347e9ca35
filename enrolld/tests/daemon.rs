//! twofold-enrolld for real: a private `dbus-daemon` loading the product's bus policy file, the
//! real daemon, and callers of different Unix identities (`setpriv`). Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use common::world::{World, enroll_directly, err, ok, walk, write_record};
use common::{Account, Group, fresh_step_within, oathtool, root_or_skip};
use serde_json::{Value, json};
use twofold_policy::store::Store;
use twofold_policy::{Mode, UserName};

/// Run only as a helper, under setpriv (see `common::call`).
#[test]
#[ignore]
fn helper() {
    common::helper_main();
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
            .authenticators
            .first()
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
