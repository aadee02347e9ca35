//! twofold-enrolld for real with a real polkitd on its private bus (see `common::polkit`):
//! who polkit makes an admin (a rule for a user outside `admin_group`, the shipped
//! `50-twofold.rules` for `twofold-admin`), who it refuses (no rule; a site rule refusing
//! `manage-own`), a sender that tries to pass for another connection, and polkit frozen or gone
//! mid-test. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::polkit::{BUS_POLICY, Polkitd, installed};
use common::world::{World, enroll, err, ok};
use common::{Account, Listener, root_or_skip};
use serde_json::json;

/// Run only as a helper, under setpriv (see `common::call`).
#[test]
#[ignore]
fn helper() {
    common::helper_main();
}

/// Run only as a helper, under setpriv (see `common::Listener`).
#[test]
#[ignore]
fn listener() {
    common::listener_main();
}

/// A call refused because polkit refused `manage-own`, and saying so.
fn refused_manage_own(r: &serde_json::Value) {
    assert_eq!(err(r), "PermissionDenied", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("org.twofold.Enroll1.manage-own"),
        "{r}"
    );
}

fn ready() -> bool {
    if !root_or_skip() {
        return false;
    }
    assert!(
        installed(),
        "polkitd must be installed (make test installs it: apt-get install polkitd)"
    );
    true
}

/// The test rules: `carol` manages others (she is not in `admin_group`); `dave` may not
/// change his own enrollment.
fn rules(carol: &str, dave: &str) -> String {
    format!(
        r#"polkit.addRule(function(action, subject) {{
    if (action.id == "org.twofold.Enroll1.manage-others" && subject.user == "{carol}") {{
        return polkit.Result.YES;
    }}
    if (action.id == "org.twofold.Enroll1.manage-own" && subject.user == "{dave}") {{
        return polkit.Result.NO;
    }}
}});
"#
    )
}

/// The group the shipped rule names, created for the test unless the host has it (then left).
struct TwofoldAdminGroup {
    created: bool,
}

impl TwofoldAdminGroup {
    fn ensure() -> TwofoldAdminGroup {
        let exists = Command::new("getent")
            .args(["group", "twofold-admin"])
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            assert!(
                Command::new("groupadd")
                    .arg("twofold-admin")
                    .status()
                    .unwrap()
                    .success()
            );
        }
        TwofoldAdminGroup { created: !exists }
    }
}

impl Drop for TwofoldAdminGroup {
    fn drop(&mut self) {
        if self.created {
            let _ = Command::new("groupdel").arg("twofold-admin").output();
        }
    }
}

#[test]
fn polkit_makes_admins_and_refuses_others() {
    if !ready() {
        return;
    }
    let w = World::new_with(&[], &[Path::new(BUS_POLICY)]);
    let carol = Account::create("c", &[]);
    let dave = Account::create("d", &[]);
    let _group = TwofoldAdminGroup::ensure();
    let erin = Account::create("e", &["twofold-admin"]);
    let _polkit = Polkitd::start(&w.dir, &w.bus, &rules(&carol.name, &dave.name));
    let target = &w.alice.name;

    // carol, authorized by the test rule, is an admin: every admin method works for her.
    for (method, args) in [
        ("Require", json!([target])),
        ("GetUser", json!([target])),
        ("ListUsersPage", json!(["", 10])),
        ("FindUsers", json!(["", ["pending"], "", 10])),
        ("Summary", json!([])),
        ("PreviewDefaultMode", json!(["required"])),
        ("Exempt", json!([w.bob.name])),
        // A polkit admin who is not root imports users' google-authenticator files through
        // the daemon.
        ("ImportGoogleAuthenticator", json!([target, true])),
    ] {
        let r = w.call(Some(&carol), method, args);
        assert!(r.get("ok").is_some(), "{method} as carol: {r}");
    }
    // ...but not a secret of her own choosing (root's alone), not even as a dry run.
    let r = w.call(
        Some(&carol),
        "ImportToken",
        json!([
            w.bob.name,
            {"secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "digits": 6, "period": 30},
            true
        ]),
    );
    assert_eq!(err(&r), "PermissionDenied", "ImportToken as carol: {r}");
    assert!(
        w.daemon.log_text().contains(&format!(
            "authorized_by=polkit action=require user={target}"
        )),
        "{}",
        w.daemon.log_text()
    );
    // ...and erin through the shipped 50-twofold.rules (she is in twofold-admin, which is not
    // this policy's admin_group); the group member and root as ever.
    for who in [Some(&erin), Some(&w.admin), None] {
        ok(&w.call(who, "ClearOverride", json!([w.bob.name])));
    }
    // bob (no rule): refused, with polkit's answer; dave too (his rule is about manage-own).
    for who in [&w.bob, &dave] {
        let r = w.call(Some(who), "Require", json!([target]));
        assert_eq!(err(&r), "PermissionDenied", "{r}");
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("polkit: not authorized for org.twofold.Enroll1.manage-others"),
            "{r}"
        );
        let r = w.call(Some(who), "Subscribe", json!([]));
        assert_eq!(err(&r), "PermissionDenied", "{r}");
        let r = w.call(
            Some(who),
            "ImportGoogleAuthenticator",
            json!([target, false]),
        );
        assert_eq!(err(&r), "PermissionDenied", "{r}");
    }
    // A sender that writes carol's connection into the header is still bob to the daemon:
    // the bus daemon sets the sender.
    let carol_listening = Listener::start(&w.client, Some(&carol), &w.bus, "subscribe");
    assert_eq!(carol_listening.subscribed().as_deref(), Some("ok"));
    let carol_name = carol_listening.start_name();
    let r = w.call(
        Some(&w.bob),
        "RequireAsSender",
        json!([w.bob.name, carol_name]),
    );
    assert_eq!(
        r["ok"]["error_name"], "org.twofold.Enroll1.Error.PermissionDenied",
        "{r}"
    );
    // carol, subscribed through polkit, gets Changed for a change made by root; bob, who
    // listens and eavesdrops, gets nothing.
    let bob_listening = Listener::start(&w.client, Some(&w.bob), &w.bus, "eavesdrop");
    ok(&w.call(None, "Require", json!([w.bob.name])));
    let want = format!("CHANGED {} pending", w.bob.name);
    let (hit, seen) = carol_listening.wait_for(&want, Duration::from_secs(10));
    assert!(hit, "{seen:?}");
    let lines = bob_listening.lines(Duration::from_millis(1500));
    assert!(!lines.iter().any(|l| l.contains("CHANGED")), "{lines:?}");

    // manage-own: yes by default (alice enrolls), refused for dave by the site rule, whose
    // own status still answers.
    ok(&w.call(Some(&w.alice), "BeginEnrollment", json!([false, ""])));
    ok(&w.call(Some(&w.alice), "CancelEnrollment", json!([])));
    for (method, args) in [
        ("BeginEnrollment", json!([false, ""])),
        ("ConfirmEnrollment", json!(["123456"])),
        ("CancelEnrollment", json!([])),
        ("Disable", json!(["123456"])),
        ("RegenerateRecoveryCodes", json!(["123456"])),
    ] {
        refused_manage_own(&w.call(Some(&dave), method, args));
    }
    assert_eq!(
        ok(&w.call(Some(&dave), "GetStatus", json!([])))["user"],
        dave.name.as_str()
    );
    // Nothing was written for dave.
    assert!(
        !w.dir
            .path()
            .join(format!("state/{}.toml", dave.name))
            .exists()
    );
}

#[test]
fn polkit_frozen_fails_closed_and_polkit_gone_is_todays_behaviour() {
    if !ready() {
        return;
    }
    let w = World::new_with(
        &["--call-timeout", "2s", "--subscriber-recheck", "1s"],
        &[Path::new(BUS_POLICY)],
    );
    let carol = Account::create("c", &[]);
    let dave = Account::create("d", &[]);
    let mut polkit = Polkitd::start(&w.dir, &w.bus, &rules(&carol.name, &dave.name));
    let target = w.alice.name.clone();
    ok(&w.call(Some(&carol), "Require", json!([target])));
    let carol_listening = Listener::start(&w.client, Some(&carol), &w.bus, "subscribe");
    assert_eq!(carol_listening.subscribed().as_deref(), Some("ok"));

    // Frozen: polkit owns its name and answers nothing.
    polkit.freeze();
    // carol's call waits for polkit, at most the call timeout, and is refused; meanwhile the
    // daemon answers others (no thread or executor is held by the wait).
    let started = Instant::now();
    let carols = std::thread::scope(|s| {
        let h = s.spawn(|| w.call(Some(&carol), "Exempt", json!([target])));
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        ok(&w.call(Some(&w.admin), "GetUser", json!([target])));
        ok(&w.call(None, "Summary", json!([])));
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "the admin waited {:?} behind polkit",
            t.elapsed()
        );
        h.join().unwrap()
    });
    assert_eq!(err(&carols), "PermissionDenied", "{carols}");
    assert!(
        carols["message"]
            .as_str()
            .unwrap()
            .contains("could not be asked"),
        "{carols}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2), "{started:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{started:?}");
    // The admin group and root do not ask polkit: they work.
    ok(&w.call(Some(&w.admin), "Exempt", json!([target])));
    ok(&w.call(None, "Allow", json!([target])));
    // A self method that needs manage-own: refused while polkit cannot answer (fail closed);
    // reading one's own status does not ask polkit.
    let r = w.call(Some(&w.alice), "BeginEnrollment", json!([false, ""]));
    assert_eq!(err(&r), "PermissionDenied", "{r}");
    ok(&w.call(Some(&w.alice), "GetStatus", json!([])));
    assert_eq!(
        w.daemon.log_text().matches("could not be asked").count(),
        2,
        "{}",
        w.daemon.log_text()
    );
    // carol's subscription is due for its re-check (1 s here): the next change waits for
    // polkit at most one timeout, then carol is dropped (fail closed) and gets nothing.
    std::thread::sleep(Duration::from_millis(1200));
    let t = Instant::now();
    ok(&w.call(None, "Require", json!([target])));
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    let lines = carol_listening.lines(Duration::from_millis(1000));
    assert!(!lines.iter().any(|l| l.contains("CHANGED")), "{lines:?}");
    assert!(
        w.daemon
            .log_text()
            .contains("action=subscribe result=dropped: no longer authorized"),
        "{}",
        w.daemon.log_text()
    );

    // Gone from the bus altogether (a host without polkitd): today's behaviour. carol is no
    // admin; the group and root are; self methods are allowed, dave's too (the site rule
    // lived in polkit).
    polkit.kill();
    let r = w.call(Some(&carol), "Require", json!([target]));
    assert_eq!(err(&r), "PermissionDenied", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("polkit: not running on this host"),
        "{r}"
    );
    ok(&w.call(Some(&w.admin), "Require", json!([target])));
    for who in [&w.alice, &dave] {
        ok(&w.call(Some(who), "BeginEnrollment", json!([false, ""])));
        ok(&w.call(Some(who), "CancelEnrollment", json!([])));
    }
}

#[test]
/// A caller whom the site's rule refuses `manage-own` sends `Disable` without waiting for the
/// answer and leaves the bus at once: polkit then answers `NameHasNoOwner` about the gone
/// caller, which must refuse like any polkit failure, not pass for "no polkit on this host".
fn a_caller_that_leaves_the_bus_does_not_pass_a_manage_own_refusal() {
    if !ready() {
        return;
    }
    let w = World::new_with(&[], &[Path::new(BUS_POLICY)]);
    let dave = Account::create("d", &[]);
    // dave enrolled before the site added its rule (polkit not yet on the bus).
    let (_key, codes) = enroll(&w, &dave);
    assert_eq!(
        ok(&w.call(None, "GetUser", json!([dave.name])))["enrolled"],
        true
    );
    let _polkit = Polkitd::start(&w.dir, &w.bus, &rules("nobody-else", &dave.name));

    // The rule holds for a caller that waits for its answer: Disable refused, nothing checked.
    refused_manage_own(&w.call(Some(&dave), "Disable", json!([codes[0]])));
    assert_eq!(
        ok(&w.call(None, "GetUser", json!([dave.name])))["enrolled"],
        true
    );

    // The same call, its sender gone from the bus before polkit looks it up.
    let mut tries = 0;
    let start = Instant::now();
    let disabled = loop {
        tries += 1;
        let r = w.call(Some(&dave), "SendAndLeave", json!(["Disable", codes[0]]));
        assert_eq!(r["ok"], "sent", "{r}");
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut gone = false;
        while Instant::now() < deadline {
            if ok(&w.call(None, "GetUser", json!([dave.name])))["enrolled"] == false {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if gone || tries >= 6 {
            break gone;
        }
    };
    let log = w.daemon.log_text();
    println!(
        "tries={tries} elapsed={:?} disabled={disabled}\n--- daemon log (dave) ---\n{}",
        start.elapsed(),
        log.lines()
            .filter(|l| l.contains(&dave.name) || l.contains("manage-own"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !disabled,
        "dave, refused manage-own by the site's rule, turned his 2FA off by leaving the bus \
         right after sending Disable; tries={tries}"
    );
}
