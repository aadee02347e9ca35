//! twofold-enrolld for real, when a user's lock is held or their calls pile up: they wait,
//! boundedly, or are refused `Busy`, and nobody else is held up. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::path::PathBuf;

use common::world::{World, enroll, err, ok};
use common::{Account, root_or_skip};
use serde_json::json;
use twofold_policy::UserName;

/// Run only as a helper, under setpriv (see `common::call`).
#[test]
#[ignore]
fn helper() {
    common::helper_main();
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
