//! The `[store]` section: where the per-user state lives (issue #23).
//!
//! ```toml
//! [store]
//! backend = "ldap"                  # "files" (default: /var/lib/twofold) | "ldap"
//! [store.ldap]
//! uri = ["ldaps://ldap1.example.org", "ldaps://ldap2.example.org"]
//! base = "ou=twofold,dc=example,dc=org"
//! bind_dn = "cn=twofold,ou=services,dc=example,dc=org"
//! bind_password_file = "/etc/twofold/ldap.secret"
//! [store.offline]
//! enabled = true
//! max_age = "3d"
//! ```
//!
//! Each key is checked alone when its file is read (a URI that does not parse, a base that is
//! no DN, a timeout out of bounds); the rules between keys (a bind DN needs its password file,
//! `ldap://` to another host needs `starttls = true`, ...) are checked once every file is
//! applied, on the effective values: a drop-in may complete what the main file began, and a
//! later file's key replaces an earlier one's, key by key. Every error names the file, line and
//! column of a key involved ([`StoreConfig::sources`] remembers where each was set).
//!
//! The URIs are checked here with a small validator of their own ([`parse_uri`]); the LDAP
//! client does its own parsing when it connects.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::duration::PolicyDuration;

mod draft;
mod names;

pub(super) use draft::{RawStore, StoreDraft};
pub use names::{LdapUri, check_dn, parse_uri};

/// The bounds of `[store.ldap] timeout`.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);
/// See [`MIN_TIMEOUT`].
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// `[store.ldap] timeout` when it is not written.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// `[store.offline] max_age` when it is not written: three days.
pub const DEFAULT_MAX_AGE: PolicyDuration = PolicyDuration(3 * 86_400);
/// At most this many URIs in `[store.ldap] uri`.
pub const MAX_URIS: usize = 16;

/// Where the state records live (`[store] backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Files in the state directory, `/var/lib/twofold` (the default).
    #[default]
    Files,
    /// Entries in an LDAP directory, as `[store.ldap]` says.
    Ldap,
}

impl Backend {
    /// The name written in the policy: `files` or `ldap`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Files => "files",
            Backend::Ldap => "ldap",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "files" => Ok(Backend::Files),
            "ldap" => Ok(Backend::Ldap),
            _ => Err(format!(
                "invalid backend {s:?}: expected \"files\" (the state directory, /var/lib/twofold) or \"ldap\" (a directory, as [store.ldap] says)"
            )),
        }
    }
}

/// How twofold binds to the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// No `bind_dn`: SASL EXTERNAL, the identity of the process on the local socket (only with
    /// `ldapi://` URIs).
    SaslExternal,
    /// A simple bind as `dn` with the password read from `password_file`.
    Simple {
        /// `bind_dn`.
        dn: String,
        /// `bind_password_file`: an absolute path. The reader must check that it is a regular
        /// file owned by root with mode 0600 when it reads it (nothing is read at parse time).
        password_file: PathBuf,
    },
}

/// `[store.ldap]`: the directory, checked as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    /// The servers, tried in order; never empty. Each parses with [`parse_uri`]; without a
    /// bind DN each is `ldapi://`; an `ldap://` URI comes with `starttls` unless it names the
    /// loopback host on a port below 1024 (only root may listen there).
    pub uris: Vec<String>,
    /// The DN under which twofold's entries live (`ou=accounts` and `ou=params` below it).
    pub base: String,
    /// How to bind.
    pub bind: Bind,
    /// Whether `ldap://` connections start TLS before anything else is sent (`ldaps://` is TLS
    /// from the start; `ldapi://` is a local socket).
    pub starttls: bool,
    /// The CA bundle that verifies the servers' certificates; `None`: the system's.
    pub ca_file: Option<PathBuf>,
    /// The bound of a connection and of each operation, from [`MIN_TIMEOUT`] to
    /// [`MAX_TIMEOUT`] ([`DEFAULT_TIMEOUT`] when not written).
    pub timeout: Duration,
    /// Also link the user's own directory entry (object classes `oathTOTPUser`,
    /// `oathTOTPToken`) so that slapd's OTP binds (slapo-otp) ask for password and code. This
    /// breaks password binds by nslcd or SSSD for those users.
    pub link_oath_users: bool,
    /// Where user entries are searched by `uid` for `link_oath_users` (always `Some` when it
    /// is `true`).
    pub user_base: Option<String>,
}

/// `[store.offline]`: a copy on the host for when the directory cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineConfig {
    /// Keep a copy of the records of users who logged in here, used when the directory is
    /// unreachable.
    pub enabled: bool,
    /// A copy older than this (since its last refresh at an online login) is not used.
    pub max_age: PolicyDuration,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            enabled: false,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

/// Where a `[store]` key was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPlace {
    /// The policy file.
    pub file: PathBuf,
    /// 1-based line of the value.
    pub line: usize,
    /// 1-based column of the value, in characters.
    pub column: usize,
}

impl fmt::Display for KeyPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// The effective `[store]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreConfig {
    /// Where the records live.
    pub backend: Backend,
    /// `[store.ldap]`, complete and checked, whenever it was written (whatever the backend).
    pub ldap: Option<LdapConfig>,
    /// `[store.offline]`.
    pub offline: OfflineConfig,
    /// Where each key that was written was set, by its name below `[store]`: `backend`,
    /// `ldap` (the table), `ldap.uri` and each entry `ldap.uri[0]`, `ldap.uri[1]`, ...,
    /// `ldap.base`, `ldap.bind_dn`, `ldap.bind_password_file`, `ldap.starttls`, `ldap.ca_file`,
    /// `ldap.timeout`, `ldap.link_oath_users`, `ldap.user_base`, `offline` (the table),
    /// `offline.enabled`, `offline.max_age`. A key that is absent has its built-in default.
    pub sources: BTreeMap<String, KeyPlace>,
}

impl StoreConfig {
    /// What `twofold policy check` warns about (none is an error): `[store.offline]` with the
    /// files backend, where it has no effect.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.backend == Backend::Files
            && let Some(at) = self.sources.get("offline")
        {
            out.push(format!(
                "[store.offline] ({at}) has no effect with backend = \"files\": offline copies are kept only for the ldap backend"
            ));
        }
        out
    }
}
