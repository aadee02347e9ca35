//! Attacker review of the imports (review 2): the replay rule after a `users.oath` import,
//! and what a user's `~/.google_authenticator` can put into the admin's report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use twofold_policy::import::{last_step_at_import, parse_google_authenticator, parse_oath};
use twofold_policy::totp::{Params, Secret, code_at, step_of};

const HEX: &str = "3132333435363738393031323334353637383930";
/// 2027-01-15T08:00:05 UTC; liboath writes it as `2027-01-15T08:00:05L` in a UTC zone.
const NOW: u64 = 1_800_000_005;
const TIME: &str = "2027-01-15T08:00:05L";

fn secret() -> Secret {
    Secret::from_bytes(b"12345678901234567890").unwrap()
}

/// pam_oath's default `window=5` accepts a code up to 5 steps ahead of the server's clock (a
/// phone running 2.5 minutes fast). liboath writes that code as LASTOTP. After the import,
/// twofold (window 1) must not accept that code again once the server's clock reaches it.
#[test]
fn an_oath_code_accepted_ahead_of_the_clock_is_not_accepted_again_after_the_import() {
    let p = Params::default();
    let cur = step_of(NOW, p);
    for ahead in 2..=5u64 {
        let used = cur + ahead;
        let code = code_at(&secret(), p, used * p.period).unwrap();
        let text = format!("HOTP/T30 alice - {HEX} 0 {} {TIME}\n", code.as_str());
        let lines = parse_oath(&text, NOW);
        let token = lines[0].token.as_ref().unwrap();
        let stored = last_step_at_import(token, NOW, 1);
        // Later, at the step `used`, twofold's window (±1) holds `used`: it is accepted when
        // it is newer than the stored last step.
        assert!(
            stored >= used,
            "LASTOTP at the current step + {ahead}: stored last step is current + {}, so the \
             code pam_oath accepted last is accepted again by twofold {} s later",
            stored as i64 - cur as i64,
            (used - 1 - cur) * p.period
        );
    }
}

/// The import's report (and the CLI line printed to the admin's terminal) must not carry
/// control characters the user wrote in their file: an escape sequence in `RATE_LIMIT` can
/// rewrite or hide lines of the admin's `twofold import google-authenticator --all` output, or
/// write the terminal's clipboard (OSC 52).
#[test]
fn a_users_file_puts_no_control_character_into_the_report() {
    let text = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" RATE_LIMIT \u{1b}[1A\u{1b}[2Kbob:\u{1b}]52;c;ZWNobyBwd24=\u{7} 30\n\" TOTP_AUTH\n";
    let token = parse_google_authenticator(text.as_bytes()).unwrap();
    for note in &token.notes {
        assert!(
            !note.chars().any(char::is_control),
            "a note holds a control character from the file: {note:?}"
        );
    }
}

/// google-authenticator accepts the third of three codes in a row that resets the clock offset
/// (`RESETTING_TIME_SKEW`, its default unless `noskewadj`) without listing it in
/// `DISALLOW_REUSE`: it writes the new `TIME_SKEW` instead. Imported right after, the file's
/// `DISALLOW_REUSE` names only older steps, and that code must still not be accepted again.
#[test]
fn a_code_accepted_while_the_clock_offset_was_reset_is_not_accepted_again() {
    let p = Params::default();
    let cur = step_of(NOW, p);
    let written = NOW - 10;
    // The step of the code that reset the offset to +100 steps, 10 s before the import.
    let accepted = step_of(written, p) + 100;
    let text = format!(
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" TOTP_AUTH\n\" DISALLOW_REUSE {}\n\" TIME_SKEW 100\n",
        cur - 5000
    );
    let mut token = parse_google_authenticator(text.as_bytes()).unwrap();
    twofold_policy::import::after_last_write(&mut token, written);
    let stored = last_step_at_import(&token, NOW, 1);
    assert!(
        stored >= accepted,
        "stored last step {stored} is older than the code accepted at {accepted}"
    );
}
