//! How a user's state is laid out in the directory, and read back.
//!
//! Under the configured base (`ou=twofold,dc=example,dc=org`):
//!
//! - `uid=NAME,ou=accounts,BASE` — the account entry (`twofoldAccount`): override, grace start,
//!   enrollment time, the ids of the active tokens (`twofoldTokenId`), recovery-code hashes,
//!   the account's consecutive failures (the per-user bound, fleet-wide), last login, and
//!   `twofoldRevision`, the compare-and-swap guard of every change to the entry;
//! - `cn=ID,uid=NAME,ou=accounts,BASE` — one entry per authenticator (`twofoldToken` +
//!   `oathTOTPToken`): the raw secret (`oathSecret`), its parameters by reference
//!   (`oathTOTPParams`), and the last accepted step (`oathTOTPLastTimeStep`), which only a
//!   compare-and-swap advances;
//! - `cn=totp-DIGITS-ALGO-PERIOD-wWINDOW,ou=params,BASE` — the shared parameter entries
//!   (`twofoldParams` + `oathTOTPParams`) that slapd's own OTP binds read.
//!
//! Only tokens the account lists as active count: an entry left by a change that stopped
//! half-way (a token added whose account modify lost its race) is ignored, and removed by the
//! next change that needs its name.

use std::collections::BTreeMap;

use crate::ldap::{Entry, Mod, ModOp, dn_eq, escape_dn_value};
use crate::mode::Mode;
use crate::record::{
    Authenticator, Counters, Enrollment, Kind, KnownSource, Override, Record, VERSION,
};
use crate::totp::{Algorithm, Params, Secret};
use crate::username::UserName;

/// Attributes of the account entry.
pub(crate) mod at {
    pub const REVISION: &str = "twofoldRevision";
    pub const REQUIRED_SINCE: &str = "twofoldRequiredSince";
    pub const OVERRIDE_MODE: &str = "twofoldOverrideMode";
    pub const OVERRIDE_BY: &str = "twofoldOverrideBy";
    pub const OVERRIDE_AT: &str = "twofoldOverrideAt";
    pub const ENROLLED_AT: &str = "twofoldEnrolledAt";
    pub const NEXT_ID: &str = "twofoldNextId";
    pub const TOKEN_ID: &str = "twofoldTokenId";
    pub const RECOVERY: &str = "twofoldRecoveryCode";
    pub const FAILURES: &str = "twofoldFailureCount";
    pub const LAST_LOGIN: &str = "twofoldLastLogin";
    pub const LAST_FROM: &str = "twofoldLastLoginFrom";
    pub const KNOWN: &str = "twofoldKnownSource";
    // Token entries.
    pub const NAME: &str = "twofoldName";
    pub const KIND: &str = "twofoldKind";
    pub const SKEW: &str = "twofoldSkew";
    pub const ADDED_AT: &str = "twofoldAddedAt";
    pub const SECRET: &str = "oathSecret";
    pub const PARAMS: &str = "oathTOTPParams";
    pub const LAST_STEP: &str = "oathTOTPLastTimeStep";
    pub const TOKEN_IDENTIFIER: &str = "oathTokenIdentifier";
    pub const LAST_OATH_LOGIN: &str = "oathLastLogin";
}

/// The DNs of one user's entries.
#[derive(Debug, Clone)]
pub(crate) struct Dns {
    /// `ou=params,BASE`.
    pub params: String,
    /// The account entry.
    pub account: String,
}

impl Dns {
    pub fn of(base: &str, user: &UserName) -> Dns {
        Dns {
            account: format!("uid={},ou=accounts,{base}", escape_dn_value(user.as_str())),
            params: format!("ou=params,{base}"),
        }
    }

    /// The entry of token `id`.
    pub fn token(&self, id: u32) -> String {
        format!("cn={id},{}", self.account)
    }

    /// The shared parameter entry of `params` with a window of `window` steps.
    pub fn params_entry(&self, params: Params, window: u64) -> String {
        format!("cn={},{}", params_name(params, window), self.params)
    }
}

/// The name of a parameter entry: `totp-6-sha1-30-w1`.
pub(crate) fn params_name(params: Params, window: u64) -> String {
    format!(
        "totp-{}-{}-{}-w{window}",
        params.digits,
        params.algorithm.as_str().to_ascii_lowercase(),
        params.period
    )
}

/// The OID of an HMAC algorithm (RFC 8018), as `oathHMACAlgorithm` holds it.
pub(crate) fn algorithm_oid(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Sha1 => "1.2.840.113549.2.7",
        Algorithm::Sha256 => "1.2.840.113549.2.9",
        Algorithm::Sha512 => "1.2.840.113549.2.11",
    }
}

/// A parameter entry's name parsed back (`totp-6-sha1-30-w1`): the parameters.
pub(crate) fn parse_params_dn(dn: &str) -> Option<Params> {
    let rdn = dn.split(',').next()?;
    let name = rdn
        .strip_prefix("cn=")
        .or_else(|| rdn.strip_prefix("CN="))?;
    let mut parts = name.split('-');
    if parts.next()? != "totp" {
        return None;
    }
    let digits: u8 = parts.next()?.parse().ok()?;
    let algorithm: Algorithm = parts.next()?.to_ascii_uppercase().parse().ok()?;
    let period: u64 = parts.next()?.parse().ok()?;
    ((6..=8).contains(&digits) && (1..=3600).contains(&period)).then_some(Params {
        algorithm,
        digits,
        period,
    })
}

/// What the directory holds of one user, as fetched with one subtree search.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    /// The account entry, if any.
    pub account: Option<Entry>,
    /// Token entries by id (active or not).
    pub tokens: BTreeMap<u32, Entry>,
}

impl Fetched {
    /// Sorts the entries of a subtree search under the account DN: the account entry, and
    /// token entries right below it (`cn=ID`). Names are compared as the server compares them:
    /// it sends them back in its own spelling (`ou=twofold, dc=example` as
    /// `ou=twofold,dc=example`). `Err` when entries came back but none is the account entry:
    /// never read as a user with no state.
    pub fn from_entries(dns: &Dns, entries: Vec<Entry>) -> Result<Fetched, String> {
        let mut out = Fetched::default();
        let mut others = 0usize;
        for e in entries {
            if dn_eq(&e.dn, &dns.account) {
                out.account = Some(e);
            } else if let Some(id) = e
                .first_str("cn")
                .and_then(|c| c.parse::<u32>().ok())
                .filter(|id| dn_eq(&e.dn, &dns.token(*id)))
            {
                out.tokens.insert(id, e);
            } else {
                others += 1;
            }
        }
        if out.account.is_none() && (others > 0 || !out.tokens.is_empty()) {
            return Err(format!(
                "the search under {} brought back entries of other names, not the account entry",
                dns.account
            ));
        }
        Ok(out)
    }

    /// The ids of the tokens the account lists as active.
    pub fn active_ids(&self) -> Vec<u32> {
        self.account
            .as_ref()
            .and_then(|a| a.get(at::TOKEN_ID))
            .map(|vs| {
                vs.iter()
                    .filter_map(|v| std::str::from_utf8(v).ok()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The record and the directory's part of the counters (last steps, the account's
    /// consecutive failures, last login). `Err` names what does not read.
    pub fn to_state(&self, user: &UserName) -> Result<(Option<Record>, Counters), String> {
        let mut counters = Counters::default();
        let Some(a) = &self.account else {
            return Ok((None, counters));
        };
        // The directory matches `uid` without regard to case; accounts of this host do not:
        // `Alice` and `alice` are two accounts, and must not share one entry.
        let exact = a
            .get("uid")
            .is_some_and(|vs| vs.iter().any(|v| v.as_slice() == user.as_str().as_bytes()));
        if !exact {
            return Err(format!(
                "the entry found for {:?} is named {:?}: names that differ only in case do not share an entry",
                user.as_str(),
                a.first_str("uid").unwrap_or("")
            ));
        }
        let mut record = Record::new(user.as_str());
        record.version = VERSION;
        record.required_since = int(a, at::REQUIRED_SINCE);
        if let Some(mode) = a.first_str(at::OVERRIDE_MODE) {
            let mode: Mode = mode
                .parse()
                .map_err(|_| format!("{}: not a mode", at::OVERRIDE_MODE))?;
            record.admin_override = Some(Override {
                mode,
                by: a.first_str(at::OVERRIDE_BY).unwrap_or("").to_owned(),
                at: int(a, at::OVERRIDE_AT).unwrap_or(0),
            });
        }
        counters.user_failures = int(a, at::FAILURES).unwrap_or(0);
        counters.last_login = int(a, at::LAST_LOGIN);
        counters.last_login_from = a.first_str(at::LAST_FROM).map(str::to_owned);
        counters.known_sources = known_sources(a);
        if let Some(enrolled_at) = int(a, at::ENROLLED_AT) {
            let mut authenticators = Vec::new();
            let mut ids = self.active_ids();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                let t = self
                    .tokens
                    .get(&id)
                    .ok_or_else(|| format!("active token {id} has no entry"))?;
                let (auth, last) = token_of(id, t)?;
                if let Some(step) = last {
                    counters.last_steps.insert(id, step);
                }
                // A code's login is stamped on its token (in the compare-and-swap that used
                // the step); a recovery code's on the account: the latest of them counts.
                if let Some(at) = int(t, at::LAST_LOGIN)
                    && counters.last_login.is_none_or(|l| at > l)
                {
                    counters.last_login = Some(at);
                    counters.last_login_from = t.first_str(at::LAST_FROM).map(str::to_owned);
                }
                authenticators.push(auth);
            }
            let recovery_codes = a
                .get(at::RECOVERY)
                .map(|vs| {
                    vs.iter()
                        .filter_map(|v| std::str::from_utf8(v).ok().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let next_id = int(a, at::NEXT_ID)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or_else(|| authenticators.iter().map(|a| a.id + 1).max().unwrap_or(1));
            let enrollment = Enrollment {
                enrolled_at,
                next_id,
                recovery_codes,
                authenticators,
            };
            enrollment.validate()?;
            record.enrollment = Some(enrollment);
        }
        Ok((Some(record), counters))
    }
}

/// An authenticator and its last accepted step from its token entry.
fn token_of(id: u32, t: &Entry) -> Result<(Authenticator, Option<u64>), String> {
    let secret = t
        .get(at::SECRET)
        .and_then(|v| v.first())
        .ok_or_else(|| format!("token {id}: no {}", at::SECRET))?;
    let params_dn = t
        .first_str(at::PARAMS)
        .ok_or_else(|| format!("token {id}: no {}", at::PARAMS))?;
    let params = parse_params_dn(params_dn).ok_or_else(|| {
        format!(
            "token {id}: {} is not a parameter entry of twofold's",
            at::PARAMS
        )
    })?;
    let secret = Secret::from_bytes(secret).map_err(|e| format!("token {id}: {e}"))?;
    let auth = Authenticator {
        id,
        name: t
            .first_str(at::NAME)
            .unwrap_or(crate::record::DEFAULT_NAME)
            .to_owned(),
        kind: Kind::Totp,
        secret: secret.to_base32(),
        params,
        skew: t
            .first_str(at::SKEW)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        added_at: int(t, at::ADDED_AT).unwrap_or(0),
    };
    Ok((auth, int(t, at::LAST_STEP)))
}

/// The places the account logged in from (`twofoldKnownSource`: `TIME SOURCE`); values that
/// do not read are left out.
pub(crate) fn known_sources(a: &Entry) -> BTreeMap<String, KnownSource> {
    let mut out: BTreeMap<String, KnownSource> = BTreeMap::new();
    for v in a.get(at::KNOWN).unwrap_or_default() {
        let Some((last, source)) = std::str::from_utf8(v).ok().and_then(|v| v.split_once(' '))
        else {
            continue;
        };
        let (Ok(last), true) = (last.parse::<u64>(), shared_source(source)) else {
            continue;
        };
        let k = out.entry(source.to_owned()).or_insert(KnownSource { last });
        k.last = k.last.max(last);
    }
    out
}

/// Whether `source` is a place the hosts of a fleet share (an address, a host name), which
/// `local` (a login on the host itself) is not.
pub(crate) fn shared_source(source: &str) -> bool {
    source != "local" && !source.is_empty() && source.bytes().all(|b| b.is_ascii_graphic())
}

/// The values of `twofoldKnownSource` for `counters`: the sources the hosts share
/// ([`shared_source`]).
pub(crate) fn known_values(counters: &Counters) -> Vec<Vec<u8>> {
    counters
        .known_sources
        .iter()
        .filter(|(s, _)| shared_source(s))
        .map(|(s, k)| format!("{} {s}", k.last).into_bytes())
        .collect()
}

/// An integer attribute (the first value).
pub(crate) fn int(e: &Entry, name: &str) -> Option<u64> {
    e.first_str(name)?.trim().parse().ok()
}

fn value(s: impl ToString) -> Vec<Vec<u8>> {
    vec![s.to_string().into_bytes()]
}

/// The account entry's attributes for `record` and the directory part of `counters`, each
/// with its values (empty: the attribute is absent).
pub(crate) fn account_attrs(
    record: &Record,
    counters: &Counters,
) -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let mut out: Vec<(&'static str, Vec<Vec<u8>>)> = Vec::new();
    let opt = |v: Option<u64>| v.map(value).unwrap_or_default();
    out.push((at::REQUIRED_SINCE, opt(record.required_since)));
    let o = record.admin_override.as_ref();
    out.push((
        at::OVERRIDE_MODE,
        o.map(|o| value(o.mode.as_str())).unwrap_or_default(),
    ));
    out.push((
        at::OVERRIDE_BY,
        o.filter(|o| !o.by.is_empty())
            .map(|o| value(&o.by))
            .unwrap_or_default(),
    ));
    out.push((at::OVERRIDE_AT, opt(o.map(|o| o.at))));
    let e = record.enrollment.as_ref();
    out.push((at::ENROLLED_AT, opt(e.map(|e| e.enrolled_at))));
    out.push((at::NEXT_ID, opt(e.map(|e| u64::from(e.next_id)))));
    out.push((
        at::TOKEN_ID,
        e.map(|e| {
            e.authenticators
                .iter()
                .map(|a| a.id.to_string().into_bytes())
                .collect()
        })
        .unwrap_or_default(),
    ));
    out.push((
        at::RECOVERY,
        e.map(|e| {
            e.recovery_codes
                .iter()
                .map(|h| h.clone().into_bytes())
                .collect()
        })
        .unwrap_or_default(),
    ));
    out.push((
        at::FAILURES,
        if counters.user_failures > 0 {
            value(counters.user_failures)
        } else {
            Vec::new()
        },
    ));
    out.push((at::LAST_LOGIN, opt(counters.last_login)));
    out.push((at::KNOWN, known_values(counters)));
    out.push((
        at::LAST_FROM,
        counters
            .last_login_from
            .as_ref()
            .map(value)
            .unwrap_or_default(),
    ));
    out
}

/// The modifications that turn the account entry as fetched into `new` (a replace of each
/// attribute that differs, as a set), guarded by the revision: `delete rev: old` + `add rev:
/// old+1` in the same modify, which the server refuses if anyone changed the entry since it
/// was read.
pub(crate) fn account_mods(fetched: &Entry, new: &[(&'static str, Vec<Vec<u8>>)]) -> Vec<Mod> {
    let mut mods = Vec::new();
    match int(fetched, at::REVISION) {
        Some(old) => {
            mods.push(Mod {
                op: ModOp::Delete,
                attr: at::REVISION.into(),
                values: value(old),
            });
            mods.push(Mod {
                op: ModOp::Add,
                attr: at::REVISION.into(),
                values: value(old.saturating_add(1)),
            });
        }
        None => mods.push(Mod {
            op: ModOp::Add,
            attr: at::REVISION.into(),
            values: value(1),
        }),
    }
    for (name, values) in new {
        let mut have: Vec<Vec<u8>> = fetched.get(name).map(<[_]>::to_vec).unwrap_or_default();
        let mut want = values.clone();
        have.sort();
        want.sort();
        if have != want {
            mods.push(Mod {
                op: ModOp::Replace,
                attr: (*name).into(),
                values: values.clone(),
            });
        }
    }
    mods
}

/// The attributes of an entry to add, wiped from memory when dropped (a token's carry its
/// secret).
pub(crate) struct NewEntry(pub Vec<(String, Vec<Vec<u8>>)>);

impl Drop for NewEntry {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for (_, values) in &mut self.0 {
            for v in values.iter_mut() {
                v.zeroize();
            }
        }
    }
}

impl NewEntry {
    /// The attributes as [`crate::ldap::Conn::add`] takes them, for `f`.
    pub fn with<T>(&self, f: impl FnOnce(&[(&str, &[&[u8]])]) -> T) -> T {
        let values: Vec<Vec<&[u8]>> = self
            .0
            .iter()
            .map(|(_, vs)| vs.iter().map(Vec::as_slice).collect())
            .collect();
        let attrs: Vec<(&str, &[&[u8]])> = self
            .0
            .iter()
            .zip(&values)
            .map(|((name, _), vs)| (name.as_str(), vs.as_slice()))
            .collect();
        f(&attrs)
    }
}

/// The attributes of a new account entry.
pub(crate) fn new_account(user: &UserName, attrs: &[(&'static str, Vec<Vec<u8>>)]) -> NewEntry {
    let mut out = vec![
        ("objectClass".to_owned(), vec![b"twofoldAccount".to_vec()]),
        ("uid".to_owned(), value(user.as_str())),
        (at::REVISION.to_owned(), value(1)),
    ];
    for (name, values) in attrs {
        if !values.is_empty() {
            out.push(((*name).to_owned(), values.clone()));
        }
    }
    NewEntry(out)
}

/// The attributes of a token entry for `auth`, whose last accepted step is `last`.
pub(crate) fn new_token(
    dns: &Dns,
    user: &UserName,
    auth: &Authenticator,
    window: u64,
    last: Option<u64>,
) -> Result<NewEntry, String> {
    let secret = auth.secret().map_err(|e| e.to_string())?;
    let mut out = vec![
        (
            "objectClass".to_owned(),
            vec![b"twofoldToken".to_vec(), b"oathTOTPToken".to_vec()],
        ),
        ("cn".to_owned(), value(auth.id)),
        (
            at::TOKEN_IDENTIFIER.to_owned(),
            value(format!(
                "twofold:{}:{}:{}",
                user.as_str(),
                auth.id,
                auth.added_at
            )),
        ),
        (at::SECRET.to_owned(), vec![secret.as_bytes().to_vec()]),
        (
            at::PARAMS.to_owned(),
            value(dns.params_entry(auth.params, window)),
        ),
        (at::NAME.to_owned(), value(&auth.name)),
        (at::KIND.to_owned(), value(auth.kind.as_str())),
        (at::ADDED_AT.to_owned(), value(auth.added_at)),
    ];
    if auth.skew != 0 {
        out.push((at::SKEW.to_owned(), value(auth.skew)));
    }
    if let Some(step) = last {
        out.push((at::LAST_STEP.to_owned(), value(step)));
    }
    Ok(NewEntry(out))
}

/// The attributes of a parameter entry.
pub(crate) fn new_params(params: Params, window: u64) -> NewEntry {
    NewEntry(vec![
        (
            "objectClass".to_owned(),
            vec![b"twofoldParams".to_vec(), b"oathTOTPParams".to_vec()],
        ),
        ("cn".to_owned(), value(params_name(params, window))),
        ("oathOTPLength".to_owned(), value(params.digits)),
        (
            "oathHMACAlgorithm".to_owned(),
            value(algorithm_oid(params.algorithm)),
        ),
        ("oathTOTPTimeStepPeriod".to_owned(), value(params.period)),
        ("oathTOTPTimeStepWindow".to_owned(), value(window)),
    ])
}

/// The compare-and-swap of a token's last accepted step: from `old` (none yet: an add, which
/// the single-valued attribute refuses if another host added one first) to `new`.
pub(crate) fn step_mods(old: Option<u64>, new: u64, at_time: u64) -> Vec<Mod> {
    step_mods_from(old, new, at_time, None)
}

/// [`step_mods`] for a login from `from`: its time and place stamped on the token in the same
/// modify (the account entry is then left alone when nothing else of it changes).
pub(crate) fn step_mods_from(
    old: Option<u64>,
    new: u64,
    at_time: u64,
    from: Option<&str>,
) -> Vec<Mod> {
    let mut mods = Vec::new();
    if let Some(old) = old {
        mods.push(Mod {
            op: ModOp::Delete,
            attr: at::LAST_STEP.into(),
            values: value(old),
        });
    }
    mods.push(Mod {
        op: ModOp::Add,
        attr: at::LAST_STEP.into(),
        values: value(new),
    });
    mods.push(Mod {
        op: ModOp::Replace,
        attr: at::LAST_OATH_LOGIN.into(),
        values: value(generalized_time(at_time)),
    });
    if let Some(from) = from {
        mods.push(Mod {
            op: ModOp::Replace,
            attr: at::LAST_LOGIN.into(),
            values: value(at_time),
        });
        mods.push(Mod {
            op: ModOp::Replace,
            attr: at::LAST_FROM.into(),
            values: value(from),
        });
    }
    mods
}

/// The compare-and-swap of the account's consecutive failures: `old` → `new`.
pub(crate) fn failures_mods(old: u64, new: u64) -> Vec<Mod> {
    let mut mods = Vec::new();
    if old > 0 {
        mods.push(Mod {
            op: ModOp::Delete,
            attr: at::FAILURES.into(),
            values: value(old),
        });
    }
    if new > 0 {
        mods.push(Mod {
            op: ModOp::Add,
            attr: at::FAILURES.into(),
            values: value(new),
        });
    }
    mods
}

/// A Unix time as LDAP's GeneralizedTime (`YYYYMMDDHHMMSSZ`).
pub(crate) fn generalized_time(t: u64) -> String {
    let days = t / 86_400;
    let secs = t % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_time_known_values() {
        assert_eq!(generalized_time(0), "19700101000000Z");
        assert_eq!(generalized_time(951_782_400), "20000229000000Z");
        assert_eq!(generalized_time(1_765_080_000), "20251207040000Z");
    }

    #[test]
    fn params_names_round_trip() {
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            for digits in [6, 7, 8] {
                for period in [15, 30, 60] {
                    let p = Params {
                        algorithm,
                        digits,
                        period,
                    };
                    let dn = format!(
                        "cn={},ou=params,ou=twofold,dc=example,dc=org",
                        params_name(p, 1)
                    );
                    assert_eq!(parse_params_dn(&dn), Some(p));
                }
            }
        }
        assert_eq!(parse_params_dn("cn=totp-9-sha1-30-w1,ou=x"), None);
        assert_eq!(parse_params_dn("cn=other,ou=x"), None);
    }
}
