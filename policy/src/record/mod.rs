//! What the store keeps per user, in two files:
//!
//! - the **record** (`USER.toml`): enrollment (its authenticators with their secrets and code
//!   parameters, recovery-code hashes), admin override, when the requirement first applied.
//!   Written rarely, always fsynced before a change is acknowledged: a crash never costs a
//!   secret.
//! - the **counters** (`USER.counters`, [`Counters`]): last accepted time step of each
//!   authenticator, last login, failures per source. Written at every login, in place under the
//!   lock and without fsync: a code lives about 90 seconds, less than any crash and reboot, and
//!   the secret is never in this file. A torn file (a crash mid-write) reads as empty and is
//!   rewritten whole.
//!
//! Both are versioned TOML a human with root can read. Version 2 of the record holds several
//! named authenticators (`[[enrollment.authenticators]]`); a version-1 record (one secret in
//! `[enrollment]`) reads as an enrollment whose only authenticator is number 1, named
//! `default`, and is written as version 2 at its next change. Version-1 counters' `last_step`
//! is the last step of authenticator 1.

mod canonical;
mod counters;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::mode::Mode;
use crate::totp::{Algorithm, Params, Secret, TotpError};

pub use counters::{Counters, Failures, KnownSource};

/// Format version of records written by this build.
pub const VERSION: u32 = 2;
/// Format version of counters written by this build.
pub const COUNTERS_VERSION: u32 = 2;
/// The name a version-1 record's authenticator gets, and the first one of a new enrollment.
pub const DEFAULT_NAME: &str = "default";
/// At most this many authenticators per user.
pub const MAX_AUTHENTICATORS: usize = 16;
/// An authenticator's clock offset reaches at most this far either way (as far as
/// google-authenticator looks for one).
pub const MAX_SKEW_SECS: u64 = 25 * 3600;
/// An authenticator's name is at most this many characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The durable per-user record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRecord")]
pub struct Record {
    /// Format version ([`VERSION`] once read: a version-1 record is migrated as it is read).
    pub version: u32,
    /// Whose record this is (checked against the file name on load).
    pub user: String,
    /// When 2FA first became required for this user while not enrolled: the grace period runs
    /// from here. Cleared by an admin reset so a new grace starts.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::opt_rfc3339"
    )]
    pub required_since: Option<u64>,
    /// The admin override, which beats every policy rule.
    #[serde(rename = "override", default, skip_serializing_if = "Option::is_none")]
    pub admin_override: Option<Override>,
    /// The user's enrollment, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<Enrollment>,
}

impl Record {
    /// An empty record for `user`.
    pub fn new(user: &str) -> Record {
        Record {
            version: VERSION,
            user: user.to_owned(),
            required_since: None,
            admin_override: None,
            enrollment: None,
        }
    }

    /// Turns 2FA off for the user (their own `Disable`, or removing their last authenticator):
    /// the enrollment goes, and so does `required_since`, as nothing requires them now (the
    /// caller checked): a later requirement is a new one, with its own grace period.
    pub fn turn_off(&mut self) {
        self.enrollment = None;
        self.required_since = None;
    }
}

/// An admin override set through the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The mode the admin chose.
    pub mode: Mode,
    /// Who set it (user name of the admin as the bus reported it).
    pub by: String,
    /// When.
    #[serde(with = "crate::time::rfc3339_secs")]
    pub at: u64,
}

/// What kind of second factor an authenticator is. Only TOTP today; the record names the kind
/// so that others (FIDO2/WebAuthn) can be added beside it without a new format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A time-based one-time password app (RFC 6238).
    #[default]
    Totp,
}

impl Kind {
    /// The name in the record and in interfaces.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Totp => "totp",
        }
    }
}

/// One authenticator of an enrollment (a phone's app, a second phone, a hardware TOTP token).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Authenticator {
    /// Its number within the enrollment: never reused while the enrollment lasts, so the
    /// counters' last step of a removed one can never apply to a new one.
    pub id: u32,
    /// A name the user chose (`phone`, `tablet`), unique within the enrollment.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// The TOTP secret, base32. Wiped from memory when dropped.
    pub secret: Zeroizing<String>,
    /// Code parameters.
    #[serde(flatten)]
    pub params: Params,
    /// A known offset of the device's clock, in steps (imported from google-authenticator's
    /// `TIME_SKEW`): the window is centred on the current step plus this. 0 for the rest.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub skew: i64,
    /// When it was added.
    #[serde(with = "crate::time::rfc3339_secs")]
    pub added_at: u64,
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("secret", &"<redacted>")
            .field("params", &self.params)
            .field("skew", &self.skew)
            .field("added_at", &self.added_at)
            .finish()
    }
}

impl Authenticator {
    /// The decoded secret.
    pub fn secret(&self) -> Result<Secret, TotpError> {
        Secret::from_base32(&self.secret)
    }
}

/// A confirmed enrollment: one or more authenticators, any of which is accepted at login, and
/// the recovery codes shared by all.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Enrollment {
    /// When it was confirmed (the first authenticator).
    #[serde(with = "crate::time::rfc3339_secs")]
    pub enrolled_at: u64,
    /// The number the next authenticator added gets.
    pub next_id: u32,
    /// Salted hashes of the unused recovery codes.
    pub recovery_codes: Vec<String>,
    /// The authenticators, never empty, in the order they were added.
    pub authenticators: Vec<Authenticator>,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("enrolled_at", &self.enrolled_at)
            .field("next_id", &self.next_id)
            .field("recovery_codes", &self.recovery_codes.len())
            .field("authenticators", &self.authenticators)
            .finish()
    }
}

/// Why a name cannot be an authenticator's.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("an authenticator's name cannot be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "an authenticator's name has at most {MAX_NAME_CHARS} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("an authenticator's name cannot hold control characters".into());
    }
    if name != name.trim() {
        return Err("an authenticator's name cannot start or end with a space".into());
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        // Numbers name authenticators by id on the command line.
        return Err("an authenticator's name cannot be a number".into());
    }
    Ok(())
}

/// Why a name cannot be given to an authenticator now (adding or renaming one): what
/// [`check_name`] refuses, and characters that show nothing or reorder the text around them
/// (zero-width, bidirectional controls, line and paragraph separators): two names that look
/// the same, or one that reads backwards, would let a name mislead the user about which
/// authenticator a command acts on. Records already holding such a name still load.
pub fn check_new_name(name: &str) -> Result<(), String> {
    check_name(name)?;
    let invisible = |c: char| {
        matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E0FFF}')
    };
    if name.chars().any(invisible) {
        return Err(
            "an authenticator's name cannot hold invisible or text-direction characters".into(),
        );
    }
    Ok(())
}

/// `which` as an authenticator's number: ASCII digits only, exactly what [`check_name`] keeps
/// out of names. (`str::parse` alone also reads `+1`, which is a valid name: the one named
/// `+1` would be unreachable by name, and a command about it would act on number 1.)
pub fn as_number(which: &str) -> Option<u32> {
    if which.is_empty() || !which.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    which.parse().ok()
}

impl Enrollment {
    /// A new enrollment of `secret`: one authenticator, number 1, named [`DEFAULT_NAME`].
    pub fn new(
        secret: &Secret,
        params: Params,
        at: u64,
        recovery_hashes: Vec<String>,
    ) -> Enrollment {
        Enrollment::new_named(DEFAULT_NAME, secret, params, 0, at, recovery_hashes)
    }

    /// A new enrollment whose one authenticator is named `name`, with a clock offset of
    /// `skew` steps (an import).
    pub fn new_named(
        name: &str,
        secret: &Secret,
        params: Params,
        skew: i64,
        at: u64,
        recovery_hashes: Vec<String>,
    ) -> Enrollment {
        Enrollment {
            enrolled_at: at,
            next_id: 2,
            recovery_codes: recovery_hashes,
            authenticators: vec![Authenticator {
                id: 1,
                name: name.to_owned(),
                kind: Kind::Totp,
                secret: secret.to_base32(),
                params,
                skew,
                added_at: at,
            }],
        }
    }

    /// A version-1 enrollment (one secret in `[enrollment]`) as version 2: one authenticator,
    /// number 1, [`DEFAULT_NAME`], added when the enrollment was confirmed. Both readers of
    /// records (the fast one and `toml`'s) migrate through this.
    pub fn from_v1(
        enrolled_at: u64,
        recovery_codes: Vec<String>,
        secret: Zeroizing<String>,
        params: Params,
    ) -> Enrollment {
        Enrollment {
            enrolled_at,
            next_id: 2,
            recovery_codes,
            authenticators: vec![Authenticator {
                id: 1,
                name: DEFAULT_NAME.to_owned(),
                kind: Kind::Totp,
                secret,
                params,
                skew: 0,
                added_at: enrolled_at,
            }],
        }
    }

    /// Adds an authenticator; its number, or `None` (nothing added) when no number is left
    /// (`next_id` at `u32::MAX`: one more would break the rule that every number stays below
    /// it, and the record would no longer load). The caller checks the name ([`check_name`],
    /// [`Enrollment::by_name`]) and the count ([`MAX_AUTHENTICATORS`]).
    pub fn add(
        &mut self,
        name: &str,
        secret: &Secret,
        params: Params,
        skew: i64,
        at: u64,
    ) -> Option<u32> {
        let id = self.next_id.max(1);
        self.next_id = id.checked_add(1)?;
        self.authenticators.push(Authenticator {
            id,
            name: name.to_owned(),
            kind: Kind::Totp,
            secret: secret.to_base32(),
            params,
            skew,
            added_at: at,
        });
        Some(id)
    }

    /// The authenticator named `name` (exactly), if any.
    pub fn by_name(&self, name: &str) -> Option<&Authenticator> {
        self.authenticators.iter().find(|a| a.name == name)
    }

    /// The authenticator a user means by `which`: its number ([`as_number`]), or else its
    /// name.
    pub fn find(&self, which: &str) -> Option<&Authenticator> {
        match as_number(which) {
            Some(id) => self.authenticators.iter().find(|a| a.id == id),
            None => self.by_name(which),
        }
    }

    /// The code lengths of the authenticators, as a set (bit `d` for `d` digits).
    pub fn digit_set(&self) -> DigitSet {
        DigitSet(
            self.authenticators
                .iter()
                .fold(0, |acc, a| acc | (1u16 << a.params.digits.min(15))),
        )
    }

    /// What tells this enrollment from any other of the user's: a SHA-256 of its confirmation
    /// time and of each authenticator's number and secret. A proof given against one enrollment
    /// is bound to it by this (a replacement begun with a proof may replace only the enrollment
    /// the proof was for; an authenticator added with a proof is added to that one).
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"twofold-enrollment\0");
        h.update(self.enrolled_at.to_le_bytes());
        for a in &self.authenticators {
            h.update(a.id.to_le_bytes());
            h.update((a.secret.len() as u64).to_le_bytes());
            h.update(a.secret.as_bytes());
        }
        h.finalize().into()
    }

    /// Checks what a record read from disk must satisfy beyond its syntax: at least one and at
    /// most [`MAX_AUTHENTICATORS`] authenticators, unique numbers below `next_id`, unique valid
    /// names, valid secrets, digits and periods, well-formed recovery-code hashes.
    pub fn validate(&self) -> Result<(), String> {
        if self.authenticators.is_empty() {
            return Err("an enrollment without an authenticator".into());
        }
        if self.authenticators.len() > MAX_AUTHENTICATORS {
            return Err(format!("more than {MAX_AUTHENTICATORS} authenticators"));
        }
        for (i, a) in self.authenticators.iter().enumerate() {
            if a.id == 0 || a.id >= self.next_id {
                return Err(format!(
                    "authenticator number {} is not below next_id",
                    a.id
                ));
            }
            if let Some(rest) = self.authenticators.get(i + 1..)
                && rest.iter().any(|b| b.id == a.id || b.name == a.name)
            {
                return Err(format!("authenticator {} or its name appears twice", a.id));
            }
            check_name(&a.name).map_err(|e| format!("authenticator {}: {e}", a.id))?;
            a.secret()
                .map_err(|e| format!("authenticator {}: {e}", a.id))?;
            if !(6..=8).contains(&a.params.digits) || !(1..=3600).contains(&a.params.period) {
                return Err(format!("authenticator {}: invalid digits or period", a.id));
            }
            let reach = i128::from(a.skew) * i128::from(a.params.period);
            if reach.abs() > i128::from(MAX_SKEW_SECS) {
                return Err(format!(
                    "authenticator {}: clock offset beyond 25 hours",
                    a.id
                ));
            }
        }
        if !self
            .recovery_codes
            .iter()
            .all(|h| crate::recovery::hash_is_well_formed(h))
        {
            return Err("malformed recovery-code hash".into());
        }
        Ok(())
    }
}

/// A set of code lengths (bit `d` set: some authenticator has `d` digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DigitSet(pub u16);

impl DigitSet {
    /// The lengths in the set.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0u8..16).filter(move |d| self.0 & (1 << d) != 0)
    }
}

// ---- reading: version 1 and version 2 ---------------------------------------------------------

/// A record as the file holds it, before its version is looked at.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    version: u32,
    user: String,
    #[serde(default, with = "crate::time::opt_rfc3339")]
    required_since: Option<u64>,
    #[serde(rename = "override", default)]
    admin_override: Option<Override>,
    #[serde(default)]
    enrollment: Option<RawEnrollment>,
}

/// `[enrollment]` of either version: version 1 holds `secret`, `algorithm`, `digits` and
/// `period`; version 2 `next_id` and `authenticators`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnrollment {
    #[serde(with = "crate::time::rfc3339_secs")]
    enrolled_at: u64,
    #[serde(default)]
    recovery_codes: Vec<String>,
    // version 1
    secret: Option<Zeroizing<String>>,
    algorithm: Option<Algorithm>,
    digits: Option<u8>,
    period: Option<u64>,
    // version 2
    next_id: Option<u32>,
    authenticators: Option<Vec<RawAuthenticator>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthenticator {
    id: u32,
    name: String,
    kind: Kind,
    secret: Zeroizing<String>,
    algorithm: Algorithm,
    digits: u8,
    period: u64,
    #[serde(default)]
    skew: i64,
    #[serde(with = "crate::time::rfc3339_secs")]
    added_at: u64,
}

impl TryFrom<RawRecord> for Record {
    type Error = String;

    fn try_from(raw: RawRecord) -> Result<Record, String> {
        let enrollment = match raw.enrollment {
            None => None,
            Some(e) => Some(match raw.version {
                1 => e.v1()?,
                2 => e.v2()?,
                v => return Err(unknown_version(v)),
            }),
        };
        if raw.version == 0 || raw.version > VERSION {
            return Err(unknown_version(raw.version));
        }
        Ok(Record {
            version: VERSION,
            user: raw.user,
            required_since: raw.required_since,
            admin_override: raw.admin_override,
            enrollment,
        })
    }
}

fn unknown_version(v: u32) -> String {
    if v > VERSION {
        format!(
            "format version {v} was written by a newer twofold (this one reads up to {VERSION})"
        )
    } else {
        format!("format version {v} does not exist")
    }
}

impl RawEnrollment {
    fn v1(self) -> Result<Enrollment, String> {
        if self.next_id.is_some() || self.authenticators.is_some() {
            return Err("a version-1 record with version-2 fields".into());
        }
        let missing = |f: &str| format!("missing field `{f}` in [enrollment]");
        let secret = self.secret.ok_or_else(|| missing("secret"))?;
        let params = Params {
            algorithm: self.algorithm.ok_or_else(|| missing("algorithm"))?,
            digits: self.digits.ok_or_else(|| missing("digits"))?,
            period: self.period.ok_or_else(|| missing("period"))?,
        };
        Ok(Enrollment::from_v1(
            self.enrolled_at,
            self.recovery_codes,
            secret,
            params,
        ))
    }

    fn v2(self) -> Result<Enrollment, String> {
        if self.secret.is_some()
            || self.algorithm.is_some()
            || self.digits.is_some()
            || self.period.is_some()
        {
            return Err("a version-2 record with a version-1 secret in [enrollment]".into());
        }
        let missing = |f: &str| format!("missing field `{f}` in [enrollment]");
        Ok(Enrollment {
            enrolled_at: self.enrolled_at,
            next_id: self.next_id.ok_or_else(|| missing("next_id"))?,
            recovery_codes: self.recovery_codes,
            authenticators: self
                .authenticators
                .ok_or_else(|| missing("authenticators"))?
                .into_iter()
                .map(|a| Authenticator {
                    id: a.id,
                    name: a.name,
                    kind: a.kind,
                    secret: a.secret,
                    params: Params {
                        algorithm: a.algorithm,
                        digits: a.digits,
                        period: a.period,
                    },
                    skew: a.skew,
                    added_at: a.added_at,
                })
                .collect(),
        })
    }
}
