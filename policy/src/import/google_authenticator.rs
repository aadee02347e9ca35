//! google-authenticator's `~/.google_authenticator`: its base32 decoder, option lines and
//! scratch codes, read as the original reads them.

use super::*;

/// google-authenticator's base32 decoder (`base32_decode` of libpam-google-authenticator):
/// space, tab, CR, LF and `-` skipped; `0`, `1`, `8` taken for `O`, `L`, `B`; letters in
/// either case and `2`–`7`; anything else (`=` too) makes the text invalid; leftover bits
/// at the end are dropped. `None` when invalid or empty.
pub fn ga_base32_decode(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8 + 1));
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in text {
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'-') {
            continue;
        }
        let ch = match b {
            b'0' => b'O',
            b'1' => b'L',
            b'8' => b'B',
            other => other,
        };
        let v = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'a'..=b'z' => ch - b'a',
            b'2'..=b'7' => ch - b'2' + 26,
            _ => return None,
        };
        buffer = ((buffer << 5) | u32::from(v)) & 0xffff;
        bits += 5;
        if bits >= 8 {
            out.push(((buffer >> (bits - 8)) & 0xff) as u8);
            bits -= 8;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The value of google-authenticator's option `key`: the rest of the first line that starts
/// with `" KEY` followed by the end, a space, a tab or a line end (leading blanks skipped),
/// as its `get_cfg_value` finds it.
pub(crate) fn ga_option<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    for line in text.split(['\r', '\n']) {
        let Some(rest) = line.strip_prefix("\" ").and_then(|r| r.strip_prefix(key)) else {
            continue;
        };
        if rest.is_empty() || rest.starts_with([' ', '\t']) {
            return Some(rest.trim_start_matches([' ', '\t']));
        }
    }
    None
}

/// An unsigned number as google-authenticator reads one with `strtoul`: digits (after
/// leading blanks), then the end or a blank.
pub(crate) fn ga_uint(value: &str) -> Option<u64> {
    let v = value.trim_start_matches([' ', '\t']);
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, rest) = v.split_at(end);
    if digits.is_empty() || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    digits.parse().ok()
}

/// A signed number as `strtol` reads it, 0 when there is none (google-authenticator's
/// `TIME_SKEW` and `HOTP_COUNTER`); `None` past the range of `i64`.
pub(crate) fn strtol(value: &str) -> Option<i64> {
    let v = value.trim_start_matches([' ', '\t']);
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let digits = v.get(..end).unwrap_or("");
    if digits.is_empty() {
        return Some(0);
    }
    let n: i64 = digits.parse().ok()?;
    Some(if neg { -n } else { n })
}

/// Parses the text of a `~/.google_authenticator` (see the module doc). `Err` says why the
/// file is not imported.
pub fn parse_google_authenticator(bytes: &[u8]) -> Result<Token, String> {
    if bytes.contains(&0) {
        return Err("the file holds a NUL byte (google-authenticator refuses it too)".into());
    }
    let text: Zeroizing<String> = Zeroizing::new(String::from_utf8_lossy(bytes).into_owned());
    let first_len = text.find('\n').unwrap_or(text.len());
    let first = text.get(..first_len).unwrap_or("");
    let raw = ga_base32_decode(first.as_bytes()).ok_or_else(|| {
        "line 1 holds no base32 secret that google-authenticator can decode".to_owned()
    })?;
    if raw.len() < 16 {
        return Err(format!(
            "the secret has {} bits and twofold needs at least 128: enroll again with `twofold enroll`",
            raw.len() * 8
        ));
    }
    let secret = Secret::from_bytes(&raw).map_err(|e| e.to_string())?;
    drop(raw);
    let mut notes = Vec::new();
    if !text.contains("\" TOTP_AUTH") {
        return Err(HOTP_REFUSED.into());
    }
    if ga_option(&text, "HOTP_COUNTER").is_some() {
        notes.push("HOTP_COUNTER ignored: the file is for time-based codes (TOTP_AUTH)".into());
    }
    let period = match ga_option(&text, "STEP_SIZE") {
        None => 30,
        Some(v) => match ga_uint(v) {
            Some(s @ 1..=60) => s,
            _ => {
                return Err(
                    "invalid STEP_SIZE (google-authenticator refuses every code with it)".into(),
                );
            }
        },
    };
    if !STEP_RANGE.contains(&period) {
        return Err(format!(
            "STEP_SIZE {period}: twofold imports steps of {} to {} seconds",
            STEP_RANGE.start(),
            STEP_RANGE.end()
        ));
    }
    let size = match ga_option(&text, "WINDOW_SIZE") {
        None => 3,
        Some(v) => match ga_uint(v) {
            Some(w @ 1..=100) => w,
            _ => {
                return Err(
                    "invalid WINDOW_SIZE (google-authenticator refuses every code with it)".into(),
                );
            }
        },
    };
    // google-authenticator checks steps -((size-1)/2) ..= size/2 around the current one.
    let window = ((size - 1) / 2, size / 2);
    let skew = match ga_option(&text, "TIME_SKEW") {
        None => 0,
        Some(v) => strtol(v).ok_or_else(|| "invalid TIME_SKEW".to_owned())?,
    };
    if skew.unsigned_abs().saturating_mul(period) > MAX_SKEW_SECS {
        return Err(format!(
            "TIME_SKEW of {skew} steps ({} s) is more than 25 hours: set the clock of the phone or the server right, then enroll again",
            skew.unsigned_abs().saturating_mul(period)
        ));
    }
    if skew != 0 {
        notes.push(format!(
            "clock offset (TIME_SKEW) of {skew} steps kept: codes are checked around the server's time {:+} s",
            skew.saturating_mul(i64::try_from(period).unwrap_or(30))
        ));
    }
    let mut last_step = None;
    if let Some(v) = ga_option(&text, "DISALLOW_REUSE") {
        for word in v.split([' ', '\t']).filter(|w| !w.is_empty()) {
            let step: u64 = word.parse().map_err(|_| {
                "invalid DISALLOW_REUSE list (google-authenticator refuses every code with it)"
                    .to_owned()
            })?;
            last_step = Some(last_step.map_or(step, |l: u64| l.max(step)));
        }
    } else {
        notes.push(
            "the file did not refuse a code used twice (no DISALLOW_REUSE): twofold does".into(),
        );
    }
    if let Some(v) = ga_option(&text, "RATE_LIMIT") {
        // Only numbers are echoed: the words are the user's, and the note reaches the admin's
        // terminal (an escape sequence could rewrite the report's lines).
        let number = |w: &str| -> String {
            if !w.is_empty() && w.len() <= 20 && w.bytes().all(|b| b.is_ascii_digit()) {
                w.to_owned()
            } else {
                "?".to_owned()
            }
        };
        let mut words = v.split([' ', '\t']).filter(|w| !w.is_empty());
        let (n, s) = (
            number(words.next().unwrap_or("?")),
            number(words.next().unwrap_or("?")),
        );
        notes.push(format!(
            "RATE_LIMIT ({n} logins in {s} s) replaced by twofold's throttling of wrong codes"
        ));
    }
    let (scratch, note) = ga_scratch_codes(&text);
    notes.extend(note);
    Ok(Token {
        secret,
        params: Params {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period,
        },
        skew,
        last_step,
        ahead: window.1,
        window: Some(window),
        scratch,
        skew_learned: ga_option(&text, "TIME_SKEW").is_some(),
        notes,
    })
}

/// The scratch codes: after line 1, blank lines and option lines (`"…`) skipped, each line of
/// exactly 8 digits (no leading zero, as google-authenticator's range check has it) is one;
/// the first other line ends them, as it ends google-authenticator's own search.
pub(crate) fn ga_scratch_codes(text: &str) -> (Vec<Zeroizing<String>>, Option<String>) {
    let mut codes = Vec::new();
    let mut note = None;
    for (i, line) in text.split('\n').enumerate().skip(1) {
        let l = line.trim_end_matches('\r');
        if l.is_empty() || l.starts_with('"') {
            continue;
        }
        let code = l.trim_start_matches([' ', '\t']);
        let is_code =
            code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0');
        if !is_code {
            note = Some(format!(
                "line {}: not a scratch code; it and the lines after it are not read (google-authenticator stops there too)",
                i + 1
            ));
            break;
        }
        if codes.len() == MAX_SCRATCH {
            note = Some(format!(
                "only the first {MAX_SCRATCH} scratch codes are imported"
            ));
            break;
        }
        codes.push(Zeroizing::new(code.to_owned()));
    }
    (codes, note)
}
