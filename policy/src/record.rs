//! What the store keeps per user, in two files:
//!
//! - the **record** (`USER.toml`): enrollment (secret, code parameters, recovery-code hashes),
//!   admin override, when the requirement first applied. Written rarely, always fsynced before a
//!   change is acknowledged: a crash never costs a secret.
//! - the **counters** (`USER.counters`): last accepted time step, last login, failures per
//!   source. Written at every login, in place under the lock and without fsync: a code lives
//!   about 90 seconds, less than any crash and reboot, and the secret is never in this file.
//!   A torn file (a crash mid-write) reads as empty and is rewritten whole.
//!
//! Both are versioned TOML a human with root can read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::mode::Mode;
use crate::totp::{Params, Secret, TotpError};

/// Format version of both files written by this build.
pub const VERSION: u32 = 1;

/// The durable per-user record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Format version.
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

/// A confirmed enrollment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    /// The TOTP secret, base32. Wiped from memory when dropped.
    pub secret: Zeroizing<String>,
    /// Code parameters.
    #[serde(flatten)]
    pub params: Params,
    /// When it was confirmed.
    #[serde(with = "crate::time::rfc3339_secs")]
    pub enrolled_at: u64,
    /// Salted hashes of the unused recovery codes.
    #[serde(default)]
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("secret", &"<redacted>")
            .field("params", &self.params)
            .field("enrolled_at", &self.enrolled_at)
            .field("recovery_codes", &self.recovery_codes.len())
            .finish()
    }
}

impl Enrollment {
    /// A new enrollment of `secret`.
    pub fn new(
        secret: &Secret,
        params: Params,
        at: u64,
        recovery_hashes: Vec<String>,
    ) -> Enrollment {
        Enrollment {
            secret: secret.to_base32(),
            params,
            enrolled_at: at,
            recovery_codes: recovery_hashes,
        }
    }

    /// The decoded secret.
    pub fn secret(&self) -> Result<Secret, TotpError> {
        Secret::from_base32(&self.secret)
    }
}

/// The login-time counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    /// Format version (0 in a default value never written).
    #[serde(default)]
    pub version: u32,
    /// The last time step accepted: only a newer one is accepted next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
    /// The last successful 2FA login.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::opt_rfc3339"
    )]
    pub last_login: Option<u64>,
    /// Where it came from (PAM_RHOST, or "local").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_from: Option<String>,
    /// Consecutive failures per source address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, Failures>,
    /// Consecutive failures from every source together, since the last success or admin reset:
    /// the per-user tier of [`crate::throttle`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub user_failures: u64,
    /// Sources (throttle keys) the user logged in from, with the time of the last success from
    /// each: they stay open when the per-user tier closes the others.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub known_sources: BTreeMap<String, KnownSource>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counters {
    /// The counters as TOML, as every login writes them: the same document `toml::to_string`
    /// makes of them (fields in order, the maps as tables), without the serializer's
    /// machinery. `tests/counters_text.rs` checks that it parses back to the same value.
    pub fn to_toml(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(160);
        let _ = writeln!(out, "version = {}", self.version);
        if let Some(step) = self.last_step {
            let _ = writeln!(out, "last_step = {step}");
        }
        if let Some(t) = self.last_login {
            let _ = writeln!(out, "last_login = \"{}\"", crate::time::rfc3339(t));
        }
        if let Some(from) = &self.last_login_from {
            out.push_str("last_login_from = ");
            toml_string(&mut out, from);
            out.push('\n');
        }
        if self.user_failures != 0 {
            let _ = writeln!(out, "user_failures = {}", self.user_failures);
        }
        for (source, f) in &self.failures {
            out.push_str("\n[failures.");
            toml_string(&mut out, source);
            let _ = write!(
                out,
                "]\ncount = {}\nlast = \"{}\"\n",
                f.count,
                crate::time::rfc3339(f.last)
            );
        }
        for (source, k) in &self.known_sources {
            out.push_str("\n[known_sources.");
            toml_string(&mut out, source);
            let _ = write!(out, "]\nlast = \"{}\"\n", crate::time::rfc3339(k.last));
        }
        out
    }
}

/// `s` as a TOML basic string: quoted, with `"`, `\\` and every control character escaped.
fn toml_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A source the user logged in from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownSource {
    /// When the last successful login from it happened.
    #[serde(with = "crate::time::rfc3339_secs")]
    pub last: u64,
}

/// Failures from one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failures {
    /// Consecutive failed attempts.
    pub count: u64,
    /// When the last one happened.
    #[serde(with = "crate::time::rfc3339_secs")]
    pub last: u64,
}
