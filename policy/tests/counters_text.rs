//! The counters as every login writes them ([`Counters::to_toml`], written by hand for speed)
//! parse back, through the `toml` crate the reader uses, to exactly the value written, and to
//! the same value as the `toml` serializer's text of them: for thousands of generated
//! counters, with sources holding quotes, backslashes, control characters, dots and non-ASCII.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::collections::BTreeMap;

use common::Rng;

use twofold_policy::record::{Counters, Failures, KnownSource};

fn text(r: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        "0",
        ".",
        ":",
        "\"",
        "\\",
        "\n",
        "\t",
        "\r",
        "\u{0}",
        "\u{1f}",
        "\u{7f}",
        "\u{85}",
        "é",
        "漢",
        "😀",
        " ",
        "[",
        "]",
        "=",
        "#",
        "'",
        "local",
        "2001:db8::1",
        "192.0.2.7",
        "\\u0041",
        "\"\"\"",
    ];
    (0..r.below(12))
        .map(|_| PIECES[r.below(PIECES.len() as u64) as usize])
        .collect()
}

fn generate(r: &mut Rng) -> Counters {
    let mut failures = BTreeMap::new();
    for _ in 0..r.below(4) {
        failures.insert(
            text(r),
            Failures {
                count: r.next() >> r.below(64),
                last: r.time(),
            },
        );
    }
    let mut known_sources = BTreeMap::new();
    for _ in 0..r.below(4) {
        known_sources.insert(text(r), KnownSource { last: r.time() });
    }
    Counters {
        version: (r.next() % 3) as u32,
        last_steps: (0..r.below(3))
            .map(|_| (r.below(5) as u32 * 1000, r.next() >> r.below(64)))
            .collect(),
        last_login: (r.below(2) == 1).then(|| r.time()),
        last_login_from: (r.below(2) == 1).then(|| text(r)),
        failures,
        user_failures: if r.below(2) == 1 {
            r.next() >> r.below(64)
        } else {
            0
        },
        known_sources,
    }
}

#[test]
fn written_counters_parse_back_to_the_same_value() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..5000 {
        let c = generate(&mut r);
        let text = c.to_toml();
        let back: Counters =
            toml::from_str(&text).unwrap_or_else(|e| panic!("case {i}: {e}\n{text}\n{c:?}"));
        assert_eq!(back, c, "case {i}:\n{text}");
        let theirs: Counters = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, theirs, "case {i}");
    }
}

/// Counters as a returning user's login leaves them.
fn usual() -> Counters {
    Counters {
        version: 2,
        last_steps: BTreeMap::from([(1, 59_847_466)]),
        last_login: Some(1_795_000_000),
        last_login_from: Some("192.0.2.7".into()),
        failures: BTreeMap::new(),
        user_failures: 0,
        known_sources: [(
            "192.0.2.7".to_owned(),
            KnownSource {
                last: 1_795_000_000,
            },
        )]
        .into_iter()
        .collect(),
    }
}

#[test]
fn the_usual_counters_read_as_before() {
    let c = usual();
    assert_eq!(
        c.to_toml(),
        "version = 2\nlast_login = \"2026-11-18T11:06:40Z\"\n\
         last_login_from = \"192.0.2.7\"\n\n[last_steps]\n1 = 59847466\n\n\
         [known_sources.\"192.0.2.7\"]\nlast = \"2026-11-18T11:06:40Z\"\n"
    );
}

/// Every Unicode scalar value, 64 at a time, as a source and as `last_login_from`, and shapes
/// that would inject keys or tables if they were not escaped: all read back exactly.
#[test]
fn every_character_and_injection_shape_reads_back() {
    let check = |s: &str| {
        let c = Counters {
            version: 1,
            last_login_from: Some(s.to_owned()),
            failures: [(s.to_owned(), Failures { count: 9, last: 1 })]
                .into_iter()
                .collect(),
            known_sources: [(format!("k{s}"), KnownSource { last: 2 })]
                .into_iter()
                .collect(),
            ..Counters::default()
        };
        let text = c.to_toml();
        let back: Counters = toml::from_str(&text).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        assert_eq!(back, c, "{s:?}");
    };
    let all: Vec<char> = (0u32..=0x10FFFF).filter_map(char::from_u32).collect();
    for chunk in all.chunks(64) {
        check(&chunk.iter().collect::<String>());
    }
    for s in [
        "\"]\nlast_step = 1\n[x.\"",
        "\\\"",
        "'''",
        "\"\"\"",
        "",
        "a\r\nb",
        "x\"\n[failures.\"y\"]\ncount = 0\nlast = \"1970-01-01T00:00:00Z\"\n#",
    ] {
        check(s);
    }
}

/// The most an attacker can make of the counters (every source slot taken with the longest
/// PAM_RHOST, in 4-byte characters) stays under the store's size limit: the file is never
/// refused as too large, which would read as defaults and reset the throttle.
#[test]
fn the_largest_counters_fit_the_store() {
    let key = |i: usize| format!("{i:04}{}", "😀".repeat(124));
    let c = Counters {
        version: 2,
        last_steps: (1..=twofold_policy::record::MAX_AUTHENTICATORS as u32 * 4)
            .map(|id| (id, u64::MAX))
            .collect(),
        last_login: Some(253_402_300_799),
        last_login_from: Some("😀".repeat(128)),
        failures: (0..twofold_policy::throttle::MAX_SOURCES)
            .map(|i| {
                (
                    key(i),
                    Failures {
                        count: u64::MAX,
                        last: 253_402_300_799,
                    },
                )
            })
            .collect(),
        user_failures: u64::MAX,
        known_sources: (0..twofold_policy::throttle::KNOWN_SOURCES)
            .map(|i| {
                (
                    key(10_000 + i),
                    KnownSource {
                        last: 253_402_300_799,
                    },
                )
            })
            .collect(),
    };
    assert!((c.to_toml().len() as u64) < twofold_policy::store::MAX_FILE_SIZE);
}

/// Counters as logins make them: sources that are addresses or `local`, realistic numbers.
fn plain(r: &mut Rng) -> Counters {
    const SOURCES: &[&str] = &[
        "local",
        "192.0.2.7",
        "2001:db8:1:2::/64",
        "10.0.0.1",
        "h-1_x",
    ];
    Counters {
        version: 2,
        last_steps: (1..=r.below(3) as u32)
            .map(|id| (id, r.below(1 << 40)))
            .collect(),
        last_login: (r.below(4) != 0).then(|| r.time()),
        last_login_from: (r.below(4) != 0).then(|| r.pick(SOURCES).to_owned()),
        failures: (0..r.below(3))
            .map(|_| {
                (
                    r.pick(SOURCES).to_owned(),
                    Failures {
                        count: r.below(200),
                        last: r.time(),
                    },
                )
            })
            .collect(),
        user_failures: r.below(3) * r.below(200),
        known_sources: (0..r.below(3))
            .map(|_| (r.pick(SOURCES).to_owned(), KnownSource { last: r.time() }))
            .collect(),
    }
}

/// What damage inserts (see [`Rng::damage`]).
const INSERTS: &[&str] = &[
    " ",
    "\t",
    "\n",
    "\r\n",
    "#",
    "# c\n",
    "\"",
    "\\",
    "=",
    " = ",
    "[",
    "]",
    ".",
    ",",
    "0",
    "-1",
    "1_0",
    "9223372036854775808",
    "[failures]\n",
    "[failures.a]\n",
    "[failures.\"a\"]\n",
    "[known_sources.a]\n",
    "[known_sources.\"\"]\n",
    "[x]\n",
    "count = 1\n",
    "last = \"1970-01-01T00:00:00Z\"\n",
    "last_step = 5\n",
    "[last_steps]\n",
    "1 = 5\n",
    "01 = 5\n",
    "x = 5\n",
    "version = 1\n",
    "user_failures = 3\n",
    "a.b",
    "\"a.b\"",
    "'a'",
    "é",
    "\u{0}",
    "1979-05-27T07:32:00Z",
    "{",
    "}",
    "[[failures.a]]\n",
];

/// [`Counters::parse_canonical`], the login's fast reader, against the `toml` crate: what both
/// writers produce it reads as `toml` does (or declines: escaped strings, integers past the
/// signed 64-bit range), and damaged texts it reads as `toml` does or declines; it never
/// accepts a text `toml` refuses.
#[test]
fn the_fast_reader_reads_as_toml_does_or_declines() {
    let mut r = Rng(0x5151_7777_ABCD_0001);
    let (mut declined, mut agreed) = (0, 0);
    for i in 0..20000 {
        // Wild counters half the time (mostly declined: escapes, huge integers), plain the rest.
        let c = if i % 2 == 0 {
            generate(&mut r)
        } else {
            plain(&mut r)
        };
        for text in [c.to_toml(), toml::to_string(&c).unwrap()] {
            match Counters::parse_canonical(&text) {
                Some(fast) => assert_eq!(fast, c, "case {i}\n{text}"),
                None => assert!(i % 2 == 0, "case {i}: plain counters declined\n{text}"),
            }
            let mut damaged = text.clone();
            for _ in 0..=r.below(3) {
                damaged = r.damage(&damaged, INSERTS);
            }
            match Counters::parse_canonical(&damaged) {
                None => declined += 1,
                Some(fast) => {
                    let theirs: Option<Counters> = toml::from_str(&damaged).ok();
                    assert_eq!(Some(&fast), theirs.as_ref(), "case {i}\n{damaged}");
                    agreed += 1;
                }
            }
        }
    }
    assert!(
        declined > 1000 && agreed > 1000,
        "{declined} declined, {agreed} agreed"
    );
    // The usual counters, with plain sources, are read by the fast reader.
    let usual = Counters {
        failures: [(
            "2001:db8::/64".to_owned(),
            Failures {
                count: 2,
                last: 1_795_000_100,
            },
        )]
        .into_iter()
        .collect(),
        user_failures: 2,
        ..usual()
    };
    for text in [usual.to_toml(), toml::to_string(&usual).unwrap()] {
        assert_eq!(
            Counters::parse_canonical(&text),
            Some(usual.clone()),
            "{text}"
        );
    }
}

/// Texts `toml` refuses that are close to what twofold writes: the fast reader declines them.
#[test]
fn the_fast_reader_declines_what_toml_refuses() {
    for text in [
        "version = 1\n\n[failures.a]\ncount = 1\nlast = \"1970-01-01T00:00:00Z\"\n\n[failures.a]\ncount = 2\nlast = \"1970-01-01T00:00:00Z\"\n",
        "version = 1\n\n[failures.a]\ncount = 1\nlast = \"1970-01-01T00:00:00Z\"\n\n[failures.\"a\"]\ncount = 2\nlast = \"1970-01-01T00:00:00Z\"\n",
        "version = 1\n\n[known_sources.a]\nlast = \"1970-01-01T00:00:00Z\"\n[known_sources.a]\nlast = \"1970-01-01T00:00:00Z\"\n",
        "version = 1\nversion = 1\n",
        "version = 1\nlast_step = 1\nlast_step = 2\n",
        "version = 1\n\n[failures.a]\ncount = 1\ncount = 1\nlast = \"1970-01-01T00:00:00Z\"\n",
        "version = 1\n\n[failures.a]\ncount = 1\n",
        "version = 1\nlast_login = \"yesterday\"\n",
        "version = 4294967296\n",
    ] {
        assert!(
            toml::from_str::<Counters>(text).is_err(),
            "toml reads {text:?}"
        );
        assert_eq!(Counters::parse_canonical(text), None, "{text:?}");
    }
}

/// Version 1's one `last_step` is authenticator 1's, in both readers; version 2 has none.
#[test]
fn version_1_counters_migrate() {
    for text in [
        "version = 1\nlast_step = 5\n",
        "last_step = 5\n",
        "version = 1\nlast_step = 5\nlast_login = \"2026-11-18T11:06:40Z\"\n",
    ] {
        let fast = Counters::parse_canonical(text).unwrap();
        let slow: Counters = toml::from_str(text).unwrap();
        assert_eq!(fast, slow, "{text}");
        assert_eq!(fast.last_steps, BTreeMap::from([(1, 5)]), "{text}");
    }
    let v2 = "version = 2\nlast_step = 5\n";
    assert!(Counters::parse_canonical(v2).is_none());
    assert!(toml::from_str::<Counters>(v2).is_err());
    let bad_key = "version = 2\n\n[last_steps]\nx = 5\n";
    assert!(Counters::parse_canonical(bad_key).is_none());
    assert!(toml::from_str::<Counters>(bad_key).is_err());
}
