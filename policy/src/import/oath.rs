//! pam_oath's `users.oath`: liboath's token types, and `LASTOTP`/`TIME` to the last used
//! step.

use super::*;

/// One line of a `users.oath`: the user and the token, or why it is not imported.
#[derive(Debug)]
pub struct OathLine {
    /// 1-based line number.
    pub line: usize,
    /// The user named on the line (when there is one).
    pub user: Option<String>,
    /// The token, or why not.
    pub token: Result<Token, String>,
}

/// The digits and step of a liboath token type: `HOTP/T30`, `HOTP/T30/6`, `/7`, `/8`, the
/// same with `T60`; `Err` for the event-based `HOTP`, `HOTP/E`, `HOTP/E/6`…`8`, and for any
/// other text (liboath skips such lines).
pub(crate) fn oath_type(t: &str) -> Result<(u8, u64), String> {
    match t {
        "HOTP" | "HOTP/E" | "HOTP/E/6" | "HOTP/E/7" | "HOTP/E/8" => Err(HOTP_REFUSED.into()),
        _ => {
            let step = if t.starts_with("HOTP/T30") {
                30
            } else if t.starts_with("HOTP/T60") {
                60
            } else {
                return Err(format!(
                    "unknown token type {:?} (liboath knows HOTP/T30, HOTP/T60, with /6, /7 or /8, and the counter-based HOTP/E)",
                    crate::logfmt::value(t)
                ));
            };
            let digits = match t.get(8..).unwrap_or("?") {
                "" | "/6" => 6,
                "/7" => 7,
                "/8" => 8,
                _ => {
                    return Err(format!("unknown token type {:?}", crate::logfmt::value(t)));
                }
            };
            Ok((digits, step))
        }
    }
}

/// Hex as liboath's `oath_hex2bin` reads it (pairs of hex digits, either case).
pub(crate) fn hex_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    let val = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 2));
    for pair in text.as_bytes().chunks(2) {
        let (hi, lo) = (pair.first().copied()?, pair.get(1).copied()?);
        out.push((val(hi)? << 4) | val(lo)?);
    }
    Some(out)
}

/// liboath's TIME field, `%Y-%m-%dT%H:%M:%SL` (local time, marked `L`), read as if it were
/// UTC: Unix seconds give or take the local zone's offset.
pub(crate) fn oath_time(t: &str) -> Option<u64> {
    let t = t.strip_suffix('L')?;
    let b = t.as_bytes();
    if b.len() != 19
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), for years from 1970.
    let (y, mo) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// The step whose code is `code`, the last one the old module accepted: searched from 14
/// hours before `at` to 12 hours after it (`at` is local time read as UTC, and zones run from
/// UTC−12 to UTC+14), never past `now`'s step + 3 (the widest window twofold can have), or
/// around `now` when the time is not known; the latest match. `None` when no step matches.
pub fn last_step_of(
    secret: &Secret,
    params: Params,
    code: &str,
    at: Option<u64>,
    now: u64,
) -> Option<u64> {
    let code = crate::totp::normalize_code(code, params.digits)?;
    let current = crate::totp::step_of(now, params);
    // pam_oath (window 5 by default) accepts codes further ahead than twofold's window can
    // reach: its last code may be one of them.
    let reach = MAX_POLICY_WINDOW.max(OATH_WINDOW);
    let top = current.saturating_add(reach);
    let (lo, hi) = match at {
        Some(t) => (
            crate::totp::step_of(t.saturating_sub(14 * 3600), params),
            crate::totp::step_of(t.saturating_add(12 * 3600), params).min(top),
        ),
        None => (current.saturating_sub(reach), top),
    };
    let mut found = None;
    let mut step = lo;
    while step <= hi {
        let at = step.saturating_mul(params.period);
        if let Ok(c) = crate::totp::code_at(secret, params, at) {
            use subtle::ConstantTimeEq;
            if bool::from(c.as_bytes().ct_eq(code.as_bytes())) {
                found = Some(step);
            }
        }
        step += 1;
    }
    found
}

/// Parses a `users.oath` (see the module doc): one [`OathLine`] per line that is neither
/// blank nor a comment (`#`). A user named on more than one line is imported from the first.
pub fn parse_oath(text: &str, now: u64) -> Vec<OathLine> {
    let mut out: Vec<OathLine> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let mut fields = raw.split([' ', '\t', '\r']).filter(|f| !f.is_empty());
        let Some(kind) = fields.next() else {
            continue;
        };
        if kind.starts_with('#') {
            continue;
        }
        let user = fields.next().map(str::to_owned);
        let token = oath_fields(kind, user.as_deref(), &mut fields, now);
        let token = match (&user, token) {
            (Some(u), Ok(t)) => match out.iter().find(|l| l.user.as_deref() == Some(u.as_str())) {
                Some(first) => Err(format!(
                    "user {:?} is also on line {}: only that first line is imported (liboath uses the first line that matches)",
                    crate::logfmt::value(u),
                    first.line
                )),
                None => Ok(t),
            },
            (_, t) => t,
        };
        out.push(OathLine { line, user, token });
    }
    out
}

pub(crate) fn oath_fields<'a>(
    kind: &str,
    user: Option<&str>,
    fields: &mut impl Iterator<Item = &'a str>,
    now: u64,
) -> Result<Token, String> {
    let (digits, period) = oath_type(kind)?;
    let user = user.ok_or("no user name after the token type")?;
    crate::UserName::parse(user)
        .map_err(|e| format!("user name {:?}: {e}", crate::logfmt::value(user)))?;
    let pin = fields.next().ok_or("no PIN field (`-` for none)")?;
    let mut notes = Vec::new();
    match pin {
        "-" => {}
        "+" => notes.push(
            "PIN field `+` (checked by another module) not imported: twofold asks for the code alone"
                .into(),
        ),
        _ => notes.push(
            "a PIN is set on this line and is not imported: twofold asks for the code alone (the password stays the first factor)"
                .into(),
        ),
    }
    let hex = fields.next().ok_or("no secret (hex) after the PIN")?;
    let raw = hex_decode(hex).ok_or("the secret is not hex (pairs of 0-9, a-f)")?;
    if raw.len() < 16 {
        return Err(format!(
            "the secret has {} bits and twofold needs at least 128: enroll again with `twofold enroll`",
            raw.len() * 8
        ));
    }
    if raw.len() > 32 {
        return Err(format!(
            "the secret has {} bytes: liboath reads at most 32 (it refuses this line too)",
            raw.len()
        ));
    }
    let secret = Secret::from_bytes(&raw).map_err(|e| e.to_string())?;
    drop(raw);
    if let Some(counter) = fields.next()
        && counter.parse::<u64>().is_err()
    {
        return Err("the COUNTER field is not a number".into());
    }
    let last_code = fields.next();
    let at = match fields.next() {
        Some(t) => Some(
            oath_time(t).ok_or("the TIME field is not liboath's time (YYYY-MM-DDTHH:MM:SSL)")?,
        ),
        None => None,
    };
    let params = Params {
        algorithm: Algorithm::Sha1,
        digits,
        period,
    };
    let last_step = match last_code {
        Some(code) => {
            let step = last_step_of(&secret, params, code, at, now);
            if step.is_none() {
                notes.push(
                    "the last code (LASTOTP) matches no step near its time: every code up to the import is taken as used"
                        .into(),
                );
            }
            step
        }
        None => None,
    };
    let used = last_code.is_some();
    Ok(Token {
        secret,
        params,
        skew: 0,
        last_step,
        // liboath writes LASTOTP at every accepted code: a line without it was never used, so
        // nothing ahead of the current step needs refusing beyond twofold's own window. A line
        // with it was used by pam_oath, whose window (5 by default) reaches further ahead.
        ahead: if used { OATH_WINDOW } else { 0 },
        window: None,
        scratch: Vec::new(),
        skew_learned: false,
        notes,
    })
}

/// Accounts for what the file's last write says (`written`, its modification time): a step
/// google-authenticator accepted without listing it in `DISALLOW_REUSE` (the third of three
/// codes in a row that reset its clock offset, which writes `TIME_SKEW` instead) is at most
/// the step its window reached at that write. Only a file with `TIME_SKEW` (an offset was
/// learned once) and a known last step is raised: without one, [`last_step_at_import`] takes
/// every step up to the import as used already. The cost: a file written in the last minute
/// or two (a login through the old module) makes the app's codes work again that much later.
pub fn after_last_write(token: &mut Token, written: u64) {
    if !token.skew_learned {
        // Every code it accepted is listed (DISALLOW_REUSE) or, without the list, every step
        // up to the import is taken as used.
        return;
    }
    if let Some(s) = token.last_step {
        let step = crate::totp::step_of(written, token.params);
        // The reset's offset is the average of three within ±1 of each other: one more step.
        let reach = crate::totp::skewed_step(step, token.skew).saturating_add(token.ahead.max(1));
        token.last_step = Some(s.max(reach));
    }
}
