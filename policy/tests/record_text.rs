//! [`Record::parse_canonical`], the login's fast reader of records, against the `toml` crate:
//! on thousands of generated records as twofold writes them it reads exactly what `toml` reads,
//! and on thousands of damaged or hand-edited variants it either reads exactly what `toml`
//! reads or declines (then the login parses with `toml`, which also gives the error); it never
//! accepts a text that `toml` refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use common::Rng;
use twofold_policy::Mode;
use twofold_policy::record::{Enrollment, Override, Record};
use twofold_policy::totp::{Algorithm, Params, Secret};

const NAMES: &[&str] = &["alice", "bob.smith", "x", "user_1", "dañiel", "a-b", "ROOT"];
const AUTH_NAMES: &[&str] = &[
    "default",
    "phone",
    "Pixel 8",
    "tablet",
    "yubikey-otp",
    "téléphone",
];

fn generate(r: &mut Rng) -> Record {
    let mut rec = Record::new(r.pick(NAMES));
    if r.below(3) == 0 {
        rec.required_since = Some(r.below(253_402_300_800));
    }
    if r.below(3) == 0 {
        rec.admin_override = Some(Override {
            mode: [Mode::Required, Mode::Optional, Mode::Disabled][r.below(3) as usize],
            by: r.pick(NAMES).to_owned(),
            at: r.below(253_402_300_800),
        });
    }
    if r.below(4) != 0 {
        let codes = twofold_policy::recovery::generate(r.below(11) as u32).unwrap();
        let mut params = || Params {
            algorithm: [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][r.below(3) as usize],
            digits: 6 + r.below(3) as u8,
            period: [30, 60, 1, 3600][r.below(4) as usize],
        };
        let first = params();
        let mut e = if r.below(2) == 0 {
            Enrollment::new(
                &Secret::generate().unwrap(),
                first,
                r.below(253_402_300_800),
                codes.hashes,
            )
        } else {
            Enrollment::new_named(
                r.pick(AUTH_NAMES),
                &Secret::generate().unwrap(),
                first,
                r.below(5) as i64 - 2,
                r.below(253_402_300_800),
                codes.hashes,
            )
        };
        for i in 0..r.below(3) {
            let p = Params {
                algorithm: Algorithm::Sha1,
                digits: 6 + r.below(3) as u8,
                period: [30, 60][r.below(2) as usize],
            };
            let skew = r.below(7) as i64 - 3;
            let name = format!("{} {i}", r.pick(AUTH_NAMES));
            e.add(
                &name,
                &Secret::generate().unwrap(),
                p,
                skew,
                r.below(253_402_300_800),
            )
            .unwrap();
        }
        if r.below(3) == 0 {
            // Removed ones leave gaps in the numbers.
            e.authenticators.remove(0);
            if e.authenticators.is_empty() {
                e.add("phone", &Secret::generate().unwrap(), first, 0, 7)
                    .unwrap();
            }
        }
        rec.enrollment = Some(e);
    }
    rec
}

fn toml_read(text: &str) -> Option<Record> {
    toml::from_str(text).ok()
}

#[test]
fn records_as_written_read_as_toml_reads_them() {
    let mut r = Rng(0x1234_5678_9ABC_DEF1);
    for i in 0..3000 {
        let rec = generate(&mut r);
        let text = toml::to_string(&rec).unwrap();
        let fast = Record::parse_canonical(&text);
        assert_eq!(
            fast.as_ref(),
            Some(&rec),
            "case {i}: declined or misread\n{text}"
        );
        assert_eq!(fast, toml_read(&text), "case {i}");
    }
}

/// What damage inserts (see [`Rng::damage`]).
const INSERTS: &[&str] = &[
    " ",
    "\t",
    "\n",
    "\r\n",
    "#",
    "# comment\n",
    "\"",
    "\\",
    "\\n",
    "=",
    " = ",
    "[",
    "]",
    ",",
    ", ",
    "0",
    "-1",
    "+1",
    "1_0",
    "99999999999999999999",
    "9223372036854775808",
    "[enrollment]\n",
    "[override]\n",
    "[extra]\n",
    "version = 2\n",
    "user = \"eve\"\n",
    "digits = 300\n",
    "period = 0\n",
    "mode = \"sometimes\"\n",
    "x = 1\n",
    "'lit'",
    "\"\"\"",
    "é",
    "\u{0}",
    "\u{7f}",
    "\u{feff}",
    "T",
    "Z",
    ":",
    "1979-05-27T07:32:00Z",
    "secret = \"AAAA\"\n",
    "[[enrollment.authenticators]]\n",
    "id = 1\n",
    "id = 0\n",
    "skew = -3\n",
    "skew = -0\n",
    "next_id = 1\n",
    "kind = \"fido2\"\n",
    "name = \"phone\"\n",
    "algorithm = \"SHA1\"\n",
    "version = 1\n",
    "recovery_codes = []\n",
    "[[enrollment]]\n",
    "{",
    "}",
];

#[test]
fn damaged_records_are_read_as_toml_reads_them_or_declined() {
    let mut r = Rng(0xDEAD_BEEF_F00D_1234);
    let mut declined = 0;
    let mut agreed = 0;
    for i in 0..20000 {
        let rec = generate(&mut r);
        let mut text = toml::to_string(&rec).unwrap();
        for _ in 0..=r.below(3) {
            text = r.damage(&text, INSERTS);
        }
        match Record::parse_canonical(&text) {
            None => declined += 1,
            Some(fast) => {
                assert_eq!(
                    Some(&fast),
                    toml_read(&text).as_ref(),
                    "case {i}: the fast reader accepted what toml reads otherwise or refuses\n{text}"
                );
                agreed += 1;
            }
        }
    }
    // Both outcomes happen: the damage is not all fatal, nor all harmless.
    assert!(
        declined > 1000 && agreed > 1000,
        "{declined} declined, {agreed} agreed"
    );
}

/// A version-1 record, as twofold 0.x wrote it: both readers migrate it to the same version-2
/// record, whose one authenticator is number 1, `default`, with the same secret and parameters.
#[test]
fn version_1_records_are_migrated_without_loss() {
    let v1 = "version = 1\nuser = \"alice\"\nrequired_since = \"2026-11-01T00:00:00Z\"\n\n\
              [override]\nmode = \"required\"\nby = \"root\"\nat = \"2026-11-02T00:00:00Z\"\n\n\
              [enrollment]\nsecret = \"JBSWY3DPEHPK3PXP\"\nalgorithm = \"SHA256\"\ndigits = 8\n\
              period = 60\nenrolled_at = \"2026-11-03T00:00:00Z\"\nrecovery_codes = []\n";
    let fast = Record::parse_canonical(v1).unwrap();
    let slow = toml_read(v1).unwrap();
    assert_eq!(fast, slow);
    assert_eq!(fast.version, 2);
    assert_eq!(fast.user, "alice");
    assert!(fast.admin_override.is_some() && fast.required_since.is_some());
    let e = fast.enrollment.as_ref().unwrap();
    assert_eq!(e.next_id, 2);
    assert_eq!(e.authenticators.len(), 1);
    let a = &e.authenticators[0];
    assert_eq!((a.id, a.name.as_str(), a.skew), (1, "default", 0));
    assert_eq!(a.secret.as_str(), "JBSWY3DPEHPK3PXP");
    assert_eq!(
        a.params,
        Params {
            algorithm: Algorithm::Sha256,
            digits: 8,
            period: 60
        }
    );
    assert_eq!(a.added_at, e.enrolled_at);
    // Written back as version 2, it reads the same.
    let text = toml::to_string(&fast).unwrap();
    assert!(
        text.contains("version = 2") && text.contains("[[enrollment.authenticators]]"),
        "{text}"
    );
    assert_eq!(Record::parse_canonical(&text).as_ref(), Some(&fast));
    // Mixed shapes are refused by both readers.
    let mixed = v1.replace("version = 1", "version = 2");
    assert!(Record::parse_canonical(&mixed).is_none() && toml_read(&mixed).is_none());
    let newer = v1.replace("version = 1", "version = 3");
    assert!(Record::parse_canonical(&newer).is_none() && toml_read(&newer).is_none());
}
