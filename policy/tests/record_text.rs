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
        let params = Params {
            algorithm: [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][r.below(3) as usize],
            digits: 6 + r.below(3) as u8,
            period: [30, 60, 1, 3600][r.below(4) as usize],
        };
        rec.enrollment = Some(Enrollment::new(
            &Secret::generate().unwrap(),
            params,
            r.below(253_402_300_800),
            codes.hashes,
        ));
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
