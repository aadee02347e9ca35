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

/// Hand-made texts at the edges the review looked at: the login's fast reader either reads
/// what `toml` reads or declines; it never accepts what `toml` refuses.
#[test]
fn the_fast_reader_agrees_with_toml_at_the_edges() {
    use twofold_policy::record::Record;
    let mut rec = Record::new("alice");
    let mut e = enrollment();
    e.add(
        "tablet",
        &Secret::generate().unwrap(),
        Params::default(),
        -3,
        1_700_000_100,
    )
    .unwrap();
    rec.enrollment = Some(e);
    let text = toml::to_string(&rec).unwrap();
    assert!(text.contains("skew = -3\n"), "{text}");
    assert_eq!(Record::parse_canonical(&text).as_ref(), Some(&rec));
    let variants = [
        text.replace("skew = -3", "skew = -0"),
        text.replace("skew = -3", "skew = +3"),
        text.replace("skew = -3", "skew = -03"),
        text.replace("skew = -3", "skew = -9223372036854775809"),
        text.replace("id = 2", "id = 1"),
        text.replace("name = \"tablet\"", "name = \"phone\""),
        text.replace("version = 2", "version = 1"),
        text.replace("version = 2", "version = 3"),
        text.replace("next_id = 3", "next_id = 2"),
        text.replace("id = 2\n", "id = 2\nid = 2\n"),
        text.replace("[enrollment]\n", "[enrollment]\nsecret = \"JBSWY3DPEHPK3PXP\"\n"),
        text.replace("\n[[enrollment.authenticators]]\nid = 2", "\n[override]\nmode = \"required\"\nby = \"root\"\nat = \"2024-01-01T00:00:00Z\"\n\n[[enrollment.authenticators]]\nid = 2"),
        text.replace("kind = \"totp\"", "kind = \"TOTP\""),
        text.replace("name = \"tablet\"", "name = \"+1\""),
        text.replace("name = \"tablet\"", "name = \"tab\\u0000let\""),
    ];
    for v in &variants {
        let slow: Option<Record> = toml::from_str(v).ok();
        let fast = Record::parse_canonical(v);
        match (&fast, &slow) {
            (None, _) => {}
            (Some(f), Some(s)) => assert_eq!(f, s, "{v}"),
            (Some(_), None) => panic!("fast reader accepts what toml refuses:\n{v}"),
        }
        // What validation makes of it is the same either way.
        let checked = |r: &Option<Record>| {
            r.as_ref()
                .map(|r| r.enrollment.as_ref().map(|e| e.validate().is_ok()))
        };
        if fast.is_some() {
            assert_eq!(checked(&fast), checked(&slow), "{v}");
        }
    }
}
