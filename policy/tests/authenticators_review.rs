//! Findings of an attacker's review of several authenticators per user: how a user's words
//! name an authenticator, and the numbering at its end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use twofold_policy::record::{Enrollment, check_name};
use twofold_policy::totp::{Params, Secret};

fn enrollment() -> Enrollment {
    let s = Secret::generate().unwrap();
    Enrollment::new_named("phone", &s, Params::default(), 0, 1_700_000_000, Vec::new())
}

/// `"+1"` is a valid name (not all digits), but Rust's `u32::from_str` reads a leading `+`:
/// `find("+1")` answered authenticator number 1, not the one named `+1`, so
/// `twofold authenticator remove +1` (or `RemoveAuthenticator("+1", proof)`) removed another
/// authenticator than the one the user named.
#[test]
fn a_name_with_a_plus_sign_is_a_name_not_a_number() {
    let mut e = enrollment();
    assert!(check_name("+1").is_ok(), "the name is accepted");
    let id = e.add(
        "+1",
        &Secret::generate().unwrap(),
        Params::default(),
        0,
        1_700_000_100,
    );
    assert_eq!(id, Some(2));
    assert_eq!(
        e.find("+1").map(|a| a.id),
        Some(2),
        "by name, not as number 1"
    );
    assert_eq!(e.find("1").map(|a| a.id), Some(1));
    assert_eq!(e.find("2").map(|a| a.id), Some(2));
    assert_eq!(e.find("phone").map(|a| a.id), Some(1));
}

/// `next_id` at its end: `add` saturated and handed out `u32::MAX` while leaving `next_id`
/// at `u32::MAX`, an enrollment `validate` refuses (the next read: the record is corrupt, the
/// user's logins fail closed). No number left: no addition.
#[test]
fn no_number_left_no_addition() {
    let mut e = enrollment();
    e.next_id = u32::MAX - 1;
    let s = Secret::generate().unwrap();
    assert_eq!(e.add("a", &s, Params::default(), 0, 1), Some(u32::MAX - 1));
    e.validate().unwrap();
    let before = e.clone();
    assert_eq!(e.add("b", &s, Params::default(), 0, 2), None);
    assert_eq!(e, before, "unchanged");
    e.validate().unwrap();
}
