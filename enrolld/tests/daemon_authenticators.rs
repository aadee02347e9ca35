//! Several authenticators per user through the real daemon on a private `dbus-daemon`, callers
//! of their own Unix identities (`setpriv`), codes from `oathtool`: add (with a proof of the
//! enrollment), list (never a secret), rename, remove (the last one only as `Disable` would),
//! and what a caller without the second factor (malware running as the user) cannot do.
//! Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use common::world::{World, enroll, err, ok};
use common::{fresh_step_within, oathtool, root_or_skip};
use serde_json::json;
use twofold_policy::UserName;

/// Run only as a helper, under setpriv (see `common::call`).
#[test]
#[ignore]
fn helper() {
    common::helper_main();
}

#[test]
fn add_list_rename_and_remove_authenticators() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let alice = Some(&w.alice);
    let u = UserName::parse(&w.alice.name).unwrap();

    // Not enrolled: nothing to add to.
    let r = w.call(alice, "AddAuthenticator", json!(["tablet", "123456"]));
    assert_eq!(err(&r), "NotEnrolled", "{r}");
    let (phone, codes) = enroll(&w, &w.alice);
    let st = ok(&w.call(alice, "GetStatus", json!([]))).clone();
    assert_eq!(st["authenticators"], 1, "{st}");

    // Malware running as alice has her session but not her phone: no proof, no authenticator.
    for proof in ["", "000000", "not a code"] {
        let r = w.call(alice, "AddAuthenticator", json!(["evil", proof]));
        assert_eq!(err(&r), "InvalidCode", "proof {proof:?}: {r}");
    }
    let r = w.call(alice, "ConfirmEnrollment", json!(["123456"]));
    assert_eq!(err(&r), "NoPendingEnrollment", "{r}");
    // Names: taken, a number, control characters, too long, blank.
    let long = "x".repeat(65);
    for name in [
        "default",
        "12",
        "a\u{1b}[31m",
        long.as_str(),
        " ",
        " padded",
    ] {
        let r = w.call(alice, "AddAuthenticator", json!([name, "123456"]));
        assert_eq!(err(&r), "InvalidArgument", "name {name:?}: {r}");
    }

    // With the phone's code: a new secret, confirmed by the tablet's code.
    fresh_step_within(10);
    let new = ok(&w.call(
        alice,
        "AddAuthenticator",
        json!(["tablet", oathtool(&phone, 1)]),
    ))
    .clone();
    let tablet = new["secret"].as_str().unwrap().to_owned();
    assert_ne!(tablet, phone);
    assert!(new["uri"].as_str().unwrap().contains(&tablet));
    // A code of the phone does not confirm the tablet.
    let r = w.call(alice, "ConfirmEnrollment", json!([oathtool(&phone, 1)]));
    assert_eq!(err(&r), "InvalidCode", "{r}");
    let none = ok(&w.call(alice, "ConfirmEnrollment", json!([oathtool(&tablet, 0)]))).clone();
    assert_eq!(
        none,
        json!([]),
        "an added authenticator hands out no recovery codes"
    );
    let st = ok(&w.call(alice, "GetStatus", json!([]))).clone();
    assert_eq!(st["authenticators"], 2, "{st}");
    assert_eq!(st["recovery_codes_left"], codes.len(), "{st}");
    let list = ok(&w.call(alice, "ListAuthenticators", json!([]))).clone();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "tablet"], "{list}");
    assert_eq!(list[1]["id"], 2);
    let text = list.to_string();
    assert!(
        !text.contains(&phone) && !text.contains(&tablet),
        "a listing holds a secret: {text}"
    );
    // The record is version 2 with both secrets.
    let rec = w.store().read_record(&u).unwrap().unwrap();
    let e = rec.enrollment.unwrap();
    assert_eq!(e.authenticators.len(), 2);
    assert_eq!(
        e.authenticators[1].secret().unwrap().to_base32().as_str(),
        tablet
    );
    // Bob has alice's session? No: every method acts on the caller; bob has no enrollment.
    let r = w.call(Some(&w.bob), "ListAuthenticators", json!([]));
    assert_eq!(err(&r), "NotEnrolled", "{r}");
    let r = w.call(
        Some(&w.bob),
        "RemoveAuthenticator",
        json!(["tablet", "123456"]),
    );
    assert_eq!(err(&r), "NotEnrolled", "{r}");

    // Rename, by number and by name; a taken name is refused.
    ok(&w.call(alice, "RenameAuthenticator", json!(["2", "ipad"])));
    let r = w.call(alice, "RenameAuthenticator", json!(["ipad", "default"]));
    assert_eq!(err(&r), "InvalidArgument", "{r}");
    let r = w.call(alice, "RenameAuthenticator", json!(["tablet", "x"]));
    assert_eq!(err(&r), "InvalidArgument", "{r}");
    ok(&w.call(alice, "RenameAuthenticator", json!(["default", "phone"])));

    // Required by an admin: the lost phone goes with the tablet's code; the last one stays.
    ok(&w.call(Some(&w.admin), "Require", json!([w.alice.name])));
    let r = w.call(alice, "RemoveAuthenticator", json!(["phone", "000000"]));
    assert_eq!(err(&r), "InvalidCode", "{r}");
    fresh_step_within(10);
    let st = ok(&w.call(
        alice,
        "RemoveAuthenticator",
        json!(["phone", oathtool(&tablet, 1)]),
    ))
    .clone();
    assert_eq!(st["authenticators"], 1, "{st}");
    assert_eq!(st["status"], "enforced");
    let r = w.call(
        alice,
        "RemoveAuthenticator",
        json!(["ipad", codes[0].as_str()]),
    );
    assert_eq!(
        err(&r),
        "Forbidden",
        "the last one went while required: {r}"
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("only authenticator"),
        "{r}"
    );
    // No longer required: the last one goes, as Disable would.
    ok(&w.call(Some(&w.admin), "ClearOverride", json!([w.alice.name])));
    let st = ok(&w.call(
        alice,
        "RemoveAuthenticator",
        json!(["ipad", codes[1].as_str()]),
    ))
    .clone();
    assert_eq!(st["status"], "off", "{st}");
    assert_eq!(st["enrolled"], false);
    assert!(
        w.store()
            .read_record(&u)
            .unwrap()
            .unwrap()
            .enrollment
            .is_none()
    );
}

/// An authenticator begun with a proof is added only to the enrollment the proof was for.
#[test]
fn an_addition_needs_the_enrollment_it_proved() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let alice = Some(&w.alice);
    let u = UserName::parse(&w.alice.name).unwrap();
    let (phone, _) = enroll(&w, &w.alice);
    fresh_step_within(10);
    let new = ok(&w.call(
        alice,
        "AddAuthenticator",
        json!(["tablet", oathtool(&phone, 1)]),
    ))
    .clone();
    let tablet = new["secret"].as_str().unwrap().to_owned();
    // An admin resets alice; she enrolls again with a new phone.
    ok(&w.call(Some(&w.admin), "Reset", json!([w.alice.name])));
    let (phone2, _) = enroll(&w, &w.alice);
    let r = w.call(alice, "ConfirmEnrollment", json!([oathtool(&tablet, 1)]));
    assert!(r.get("error").is_some(), "added to another enrollment: {r}");
    let e = w
        .store()
        .read_record(&u)
        .unwrap()
        .unwrap()
        .enrollment
        .unwrap();
    assert_eq!(e.authenticators.len(), 1);
    assert_eq!(
        e.authenticators[0].secret().unwrap().to_base32().as_str(),
        phone2
    );
}
