//! twofold-enrolld for real, on live updates: `Subscribe`, the unicast `Changed` signal and
//! who receives it; subscribers who leave, unsubscribe, flood or stop being admins. Needs
//! root, as CI runs. (Subscribers polkit authorizes: `daemon_polkit.rs`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::time::Duration;

use common::world::{World, err, ok};
use common::{Listener, root_or_skip};
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

const QUIET: Duration = Duration::from_millis(1500);
const WAIT: Duration = Duration::from_secs(10);

#[test]
fn only_a_subscribed_admin_gets_changed() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let listen = |who, mode| Listener::start(&w.client, who, &w.bus, mode);
    let admin = listen(Some(&w.admin), "subscribe");
    assert_eq!(
        admin.subscribed().as_deref(),
        Some("ok"),
        "{:?}",
        admin.start
    );
    // A plain user may not subscribe; one who listens for Changed, or eavesdrops on the
    // interface's signals, gets nothing; nor does an admin who listens without subscribing.
    let alice = listen(Some(&w.alice), "subscribe");
    assert_eq!(alice.subscribed().as_deref(), Some("PermissionDenied"));
    let bob = listen(Some(&w.bob), "eavesdrop");
    let admin_unsubscribed = listen(Some(&w.admin), "listen");
    let gone = listen(Some(&w.admin), "subscribe-unsubscribe");
    assert_eq!(gone.subscribed().as_deref(), Some("ok"));
    // Root changes alice.
    ok(&w.call(None, "Require", json!([w.alice.name])));
    let want = format!("CHANGED {} pending", w.alice.name);
    let (hit, seen) = admin.wait_for(&want, WAIT);
    assert!(hit, "the subscribed admin got {seen:?}");
    for (label, l) in [
        ("alice (refused)", &alice),
        ("bob (eavesdropping)", &bob),
        ("an admin who did not subscribe", &admin_unsubscribed),
        ("an admin who unsubscribed", &gone),
    ] {
        let lines = l.lines(QUIET);
        assert!(
            !lines.iter().any(|l| l.starts_with("CHANGED")),
            "{label} got {lines:?}"
        );
        // The broadcast reaches root and the group twofold-admin only, as before (this
        // test's admin group has another name).
        assert!(
            !lines.iter().any(|l| l.starts_with("USERCHANGED")),
            "{label}: {lines:?}"
        );
    }
    // A change made by the admin themself, and by a self method, reach the subscriber too.
    ok(&w.call(Some(&w.admin), "Exempt", json!([w.bob.name])));
    assert!(
        admin
            .wait_for(&format!("CHANGED {} exempt", w.bob.name), WAIT)
            .0
    );
}

#[test]
fn subscribers_are_capped_and_forgotten_when_they_leave() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let mut subs: Vec<Listener> = (0..4)
        .map(|_| Listener::start(&w.client, Some(&w.admin), &w.bus, "subscribe"))
        .collect();
    for s in &subs {
        assert_eq!(s.subscribed().as_deref(), Some("ok"));
    }
    // A fifth connection of the same uid: Busy. A subscription of another uid (root) still
    // goes through.
    let fifth = Listener::start(&w.client, Some(&w.admin), &w.bus, "subscribe");
    assert_eq!(fifth.subscribed().as_deref(), Some("Busy"));
    let root = Listener::start(&w.client, None, &w.bus, "subscribe");
    assert_eq!(root.subscribed().as_deref(), Some("ok"));
    // One leaves the bus: it is forgotten, so its place is free again.
    subs.remove(0).stop();
    let start = std::time::Instant::now();
    let again = loop {
        let l = Listener::start(&w.client, Some(&w.admin), &w.bus, "subscribe");
        if l.subscribed().as_deref() == Some("ok") {
            break l;
        }
        assert!(
            start.elapsed() < WAIT,
            "a subscriber that left was never forgotten"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Every remaining subscriber gets the next change, each once.
    ok(&w.call(None, "Require", json!([w.bob.name])));
    let want = format!("CHANGED {} pending", w.bob.name);
    for s in subs.iter().chain([&again, &root]) {
        let (hit, seen) = s.wait_for(&want, WAIT);
        assert!(hit, "{seen:?}");
        let more = s.lines(Duration::from_millis(300));
        assert!(!more.contains(&want), "twice: {more:?}");
    }
    // The refused one got nothing.
    assert!(
        !fifth
            .lines(Duration::from_millis(300))
            .iter()
            .any(|l| l.starts_with("CHANGED"))
    );
}

#[test]
fn a_subscriber_who_is_no_longer_an_admin_is_dropped() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&["--subscriber-recheck", "1s"]);
    let admin = Listener::start(&w.client, Some(&w.admin), &w.bus, "subscribe");
    assert_eq!(admin.subscribed().as_deref(), Some("ok"));
    ok(&w.call(None, "Require", json!([w.alice.name])));
    assert!(
        admin
            .wait_for(&format!("CHANGED {} pending", w.alice.name), WAIT)
            .0
    );
    // Out of the admin group (no polkit on this bus): at the next delivery after the period,
    // checked again and dropped.
    let out = std::process::Command::new("gpasswd")
        .args(["-d", &w.admin.name, &w.admins.name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::thread::sleep(Duration::from_millis(1500));
    ok(&w.call(None, "Exempt", json!([w.alice.name])));
    let lines = admin.lines(QUIET);
    assert!(!lines.iter().any(|l| l.starts_with("CHANGED")), "{lines:?}");
    assert!(
        w.daemon
            .log_text()
            .contains("action=subscribe result=dropped: no longer authorized"),
        "{}",
        w.daemon.log_text()
    );
    // And may not subscribe again.
    let r = w.call(Some(&w.admin), "Subscribe", json!([]));
    assert_eq!(err(&r), "PermissionDenied", "{r}");
}
