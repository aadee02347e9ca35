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
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};
use toml::Spanned;

use super::{PolicyError, line_col};
use crate::duration::PolicyDuration;

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
    /// bind DN each is `ldapi://`; an `ldap://` URI to a host other than the loopback one comes
    /// with `starttls`.
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

// ---- parsing ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    backend: Option<Spanned<String>>,
    ldap: Option<Spanned<RawLdap>>,
    offline: Option<Spanned<RawOffline>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLdap {
    uri: Option<Spanned<RawUris>>,
    base: Option<Spanned<String>>,
    bind_dn: Option<Spanned<String>>,
    bind_password_file: Option<Spanned<String>>,
    starttls: Option<Spanned<bool>>,
    ca_file: Option<Spanned<String>>,
    timeout: Option<Spanned<RawTimeout>>,
    link_oath_users: Option<Spanned<bool>>,
    user_base: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOffline {
    enabled: Option<Spanned<bool>>,
    max_age: Option<Spanned<PolicyDuration>>,
}

/// `timeout`: a string, parsed once its place is known.
struct RawTimeout(String);

impl<'de> Deserialize<'de> for RawTimeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = RawTimeout;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"3s\" or \"500ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTimeout, E> {
                Ok(RawTimeout(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

/// `uri`: one string or an array of them.
enum RawUris {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawUris {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = RawUris;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URI string or an array of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawUris, E> {
                Ok(RawUris::One(v.to_owned()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawUris, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<Spanned<String>>()? {
                    out.push(s);
                }
                Ok(RawUris::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A value and where it was set (`None` only for a [`StoreConfig`] built by hand).
#[derive(Clone)]
struct At<T> {
    value: T,
    place: Option<KeyPlace>,
}

/// The `[store]` keys of the files applied so far, before the rules between keys are checked.
#[derive(Default)]
pub(super) struct StoreDraft {
    backend: Option<At<Backend>>,
    ldap: Option<At<()>>,
    uri: Option<At<Vec<At<String>>>>,
    base: Option<At<String>>,
    bind_dn: Option<At<String>>,
    bind_password_file: Option<At<PathBuf>>,
    starttls: Option<At<bool>>,
    ca_file: Option<At<PathBuf>>,
    timeout: Option<At<Duration>>,
    link_oath_users: Option<At<bool>>,
    user_base: Option<At<String>>,
    offline: Option<At<()>>,
    enabled: Option<At<bool>>,
    max_age: Option<At<PolicyDuration>>,
    /// The last file applied: where an error goes that has no place.
    last_file: PathBuf,
}

impl StoreDraft {
    /// The keys of an effective configuration, to apply one more file onto.
    pub(super) fn of(c: &StoreConfig, last_file: Option<&Path>) -> StoreDraft {
        let place = |k: &str| c.sources.get(k).cloned();
        // A key with a place was written; one without has its built-in default.
        fn at<T>(c: &StoreConfig, k: &str, value: T) -> Option<At<T>> {
            c.sources.get(k).map(|p| At {
                value,
                place: Some(p.clone()),
            })
        }
        // The keys of a table that was written, even without a place (a configuration built
        // by hand): an error about them then names the last file.
        fn must<T>(c: &StoreConfig, k: &str, value: T) -> At<T> {
            At {
                value,
                place: c.sources.get(k).cloned(),
            }
        }
        // Values other than the defaults are kept, with or without a place.
        let defaults = OfflineConfig::default();
        let mut d = StoreDraft {
            backend: at(c, "backend", c.backend)
                .or_else(|| (c.backend != Backend::Files).then(|| must(c, "backend", c.backend))),
            offline: at(c, "offline", ()),
            enabled: at(c, "offline.enabled", c.offline.enabled).or_else(|| {
                (c.offline.enabled != defaults.enabled)
                    .then(|| must(c, "offline.enabled", c.offline.enabled))
            }),
            max_age: at(c, "offline.max_age", c.offline.max_age).or_else(|| {
                (c.offline.max_age != defaults.max_age)
                    .then(|| must(c, "offline.max_age", c.offline.max_age))
            }),
            last_file: last_file.map(Path::to_owned).unwrap_or_default(),
            ..StoreDraft::default()
        };
        if let Some(l) = &c.ldap {
            d.ldap = Some(must(c, "ldap", ()));
            let entries = l
                .uris
                .iter()
                .enumerate()
                .map(|(i, u)| At {
                    value: u.clone(),
                    place: place(&format!("ldap.uri[{i}]")).or_else(|| place("ldap.uri")),
                })
                .collect();
            d.uri = Some(must(c, "ldap.uri", entries));
            d.base = Some(must(c, "ldap.base", l.base.clone()));
            if let Bind::Simple { dn, password_file } = &l.bind {
                d.bind_dn = Some(must(c, "ldap.bind_dn", dn.clone()));
                d.bind_password_file =
                    Some(must(c, "ldap.bind_password_file", password_file.clone()));
            }
            d.starttls = at(c, "ldap.starttls", l.starttls)
                .or_else(|| l.starttls.then(|| must(c, "ldap.starttls", true)));
            d.ca_file = l.ca_file.clone().map(|f| must(c, "ldap.ca_file", f));
            d.timeout = at(c, "ldap.timeout", l.timeout).or_else(|| {
                (l.timeout != DEFAULT_TIMEOUT).then(|| must(c, "ldap.timeout", l.timeout))
            });
            d.link_oath_users = at(c, "ldap.link_oath_users", l.link_oath_users).or_else(|| {
                l.link_oath_users
                    .then(|| must(c, "ldap.link_oath_users", true))
            });
            d.user_base = l.user_base.clone().map(|u| must(c, "ldap.user_base", u));
        }
        d
    }

    /// Takes the `[store]` keys of one file (`text`, read from `file`), each checked alone; a
    /// key replaces the same key of an earlier file.
    pub(super) fn merge(
        &mut self,
        raw: RawStore,
        file: &Path,
        text: &str,
    ) -> Result<(), PolicyError> {
        let place = |span: std::ops::Range<usize>| {
            let (line, column) = line_col(text, span.start);
            KeyPlace {
                file: file.to_owned(),
                line,
                column,
            }
        };
        fn put<T>(value: T, place: KeyPlace) -> Option<At<T>> {
            Some(At {
                value,
                place: Some(place),
            })
        }
        let err = |span: std::ops::Range<usize>, msg: String| {
            PolicyError::at(file, text, span.start, msg)
        };
        self.last_file = file.to_owned();
        if let Some(b) = raw.backend {
            let backend = b.get_ref().parse().map_err(|m| err(b.span(), m))?;
            self.backend = put(backend, place(b.span()));
        }
        if let Some(o) = raw.offline {
            let span = o.span();
            let o = o.into_inner();
            if self.offline.is_none() {
                self.offline = put((), place(span));
            }
            if let Some(v) = o.enabled {
                self.enabled = put(*v.get_ref(), place(v.span()));
            }
            if let Some(v) = o.max_age {
                if v.get_ref().secs() == 0 {
                    return Err(err(
                        v.span(),
                        "invalid max_age \"0s\": no copy would ever be used; write enabled = false instead, or a duration such as \"3d\"".into(),
                    ));
                }
                self.max_age = put(*v.get_ref(), place(v.span()));
            }
        }
        let Some(l) = raw.ldap else { return Ok(()) };
        let span = l.span();
        let l = l.into_inner();
        if self.ldap.is_none() {
            self.ldap = put((), place(span));
        }
        if let Some(v) = l.uri {
            let span = v.span();
            let entries = match v.into_inner() {
                RawUris::One(s) => vec![(s, span.clone())],
                RawUris::Many(list) => list
                    .into_iter()
                    .map(|s| {
                        let span = s.span();
                        (s.into_inner(), span)
                    })
                    .collect(),
            };
            if entries.is_empty() {
                return Err(err(
                    span,
                    "uri is an empty list: write the directory's URI, e.g. \"ldapi:///\" or \"ldaps://ldap.example.org\", or a list tried in order".into(),
                ));
            }
            if entries.len() > MAX_URIS {
                return Err(err(
                    span,
                    format!("uri lists {} URIs: at most {MAX_URIS}", entries.len()),
                ));
            }
            let mut checked = Vec::with_capacity(entries.len());
            for (uri, span) in entries {
                parse_uri(&uri).map_err(|why| {
                    err(
                        span.clone(),
                        format!(
                            "invalid uri {uri:?}: {why}; expected ldapi:/// (the local socket), ldaps://HOST[:PORT] or ldap://HOST[:PORT]"
                        ),
                    )
                })?;
                checked.push(At {
                    value: uri,
                    place: Some(place(span)),
                });
            }
            self.uri = put(checked, place(span));
        }
        for (name, raw, slot) in [
            ("base", l.base, &mut self.base),
            ("bind_dn", l.bind_dn, &mut self.bind_dn),
            ("user_base", l.user_base, &mut self.user_base),
        ] {
            if let Some(v) = raw {
                check_dn(v.get_ref()).map_err(|why| {
                    err(
                        v.span(),
                        format!(
                            "invalid {name} {:?}: {why}; expected a DN such as \"ou=twofold,dc=example,dc=org\"",
                            v.get_ref()
                        ),
                    )
                })?;
                *slot = put(v.get_ref().clone(), place(v.span()));
            }
        }
        for (name, raw, slot) in [
            (
                "bind_password_file",
                l.bind_password_file,
                &mut self.bind_password_file,
            ),
            ("ca_file", l.ca_file, &mut self.ca_file),
        ] {
            if let Some(v) = raw {
                let s = v.get_ref();
                if !s.starts_with('/') || s.contains('\0') || s.chars().any(char::is_control) {
                    return Err(err(
                        v.span(),
                        format!("invalid {name} {s:?}: expected an absolute path"),
                    ));
                }
                *slot = put(PathBuf::from(s), place(v.span()));
            }
        }
        if let Some(v) = l.starttls {
            self.starttls = put(*v.get_ref(), place(v.span()));
        }
        if let Some(v) = l.link_oath_users {
            self.link_oath_users = put(*v.get_ref(), place(v.span()));
        }
        if let Some(v) = l.timeout {
            let s = &v.get_ref().0;
            let bounds = "from \"100ms\" to \"30s\"";
            let t = crate::duration::parse_precise(s).map_err(|e| {
                err(
                    v.span(),
                    format!(
                        "invalid timeout {s:?}: {}; write a number and a unit (ms, s, m), e.g. \"3s\" or \"500ms\", {bounds}",
                        e.why
                    ),
                )
            })?;
            if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&t) {
                return Err(err(
                    v.span(),
                    format!("invalid timeout {s:?}: expected {bounds}"),
                ));
            }
            self.timeout = put(t, place(v.span()));
        }
        Ok(())
    }

    /// Checks the rules between keys on the effective values and makes the configuration.
    pub(super) fn finish(self) -> Result<StoreConfig, PolicyError> {
        let last_file = self.last_file.clone();
        let err = |place: &Option<KeyPlace>, message: String| match place {
            Some(p) => PolicyError {
                file: p.file.clone(),
                position: Some((p.line, p.column)),
                message,
            },
            None => PolicyError {
                file: last_file.clone(),
                position: None,
                message,
            },
        };
        let mut sources = BTreeMap::new();
        let mut note = |key: &str, place: &Option<KeyPlace>| {
            if let Some(p) = place {
                sources.insert(key.to_owned(), p.clone());
            }
        };
        let backend = self.backend.as_ref().map_or(Backend::Files, |b| b.value);
        if let Some(b) = &self.backend {
            note("backend", &b.place);
        }
        let ldap = match &self.ldap {
            None => {
                if let Some(b) = self.backend.as_ref().filter(|b| b.value == Backend::Ldap) {
                    return Err(err(
                        &b.place,
                        "backend = \"ldap\" needs a [store.ldap] table with uri and base: where the directory is and where twofold's entries live in it".into(),
                    ));
                }
                None
            }
            Some(table) => {
                note("ldap", &table.place);
                let Some(uri) = &self.uri else {
                    return Err(err(
                        &table.place,
                        "[store.ldap] has no uri: write where the directory is, e.g. uri = \"ldapi:///\" (this host's slapd) or \"ldaps://ldap.example.org\"".into(),
                    ));
                };
                let Some(base) = &self.base else {
                    return Err(err(
                        &table.place,
                        "[store.ldap] has no base: write the DN under which twofold's entries live, e.g. base = \"ou=twofold,dc=example,dc=org\"".into(),
                    ));
                };
                let starttls = self.starttls.as_ref().is_some_and(|s| s.value);
                let bind = match (&self.bind_dn, &self.bind_password_file) {
                    (Some(dn), Some(pw)) => Bind::Simple {
                        dn: dn.value.clone(),
                        password_file: pw.value.clone(),
                    },
                    (Some(dn), None) => {
                        return Err(err(
                            &dn.place,
                            "bind_dn needs bind_password_file: the file holding its password (root's, mode 0600)".into(),
                        ));
                    }
                    (None, Some(pw)) => {
                        return Err(err(
                            &pw.place,
                            "bind_password_file without bind_dn: write the bind_dn whose password it holds, or leave both out to bind with SASL EXTERNAL over ldapi://".into(),
                        ));
                    }
                    (None, None) => Bind::SaslExternal,
                };
                for u in &uri.value {
                    let parsed = parse_uri(&u.value).map_err(|why| err(&u.place, why))?;
                    if bind == Bind::SaslExternal && !matches!(parsed, LdapUri::Ldapi { .. }) {
                        return Err(err(
                            &u.place,
                            format!(
                                "uri {:?} needs bind_dn and bind_password_file: without them twofold binds with SASL EXTERNAL, which only ldapi:// (the local socket) offers",
                                u.value
                            ),
                        ));
                    }
                    if matches!(parsed, LdapUri::Ldap { .. }) && !parsed.is_loopback() && !starttls
                    {
                        return Err(err(
                            &u.place,
                            format!(
                                "uri {:?} is plain LDAP over the network: the bind password and the users' TOTP secrets would cross it in clear text; write starttls = true, or use ldaps://",
                                u.value
                            ),
                        ));
                    }
                }
                let link_oath_users = self.link_oath_users.as_ref().is_some_and(|l| l.value);
                if let Some(l) = self.link_oath_users.as_ref().filter(|l| l.value)
                    && self.user_base.is_none()
                {
                    return Err(err(
                        &l.place,
                        "link_oath_users = true needs user_base: the DN under which user entries are searched by uid, e.g. user_base = \"ou=people,dc=example,dc=org\"".into(),
                    ));
                }
                note("ldap.uri", &uri.place);
                for (i, u) in uri.value.iter().enumerate() {
                    note(&format!("ldap.uri[{i}]"), &u.place);
                }
                for (key, place) in [
                    ("ldap.base", Some(&base.place)),
                    ("ldap.bind_dn", self.bind_dn.as_ref().map(|v| &v.place)),
                    (
                        "ldap.bind_password_file",
                        self.bind_password_file.as_ref().map(|v| &v.place),
                    ),
                    ("ldap.starttls", self.starttls.as_ref().map(|v| &v.place)),
                    ("ldap.ca_file", self.ca_file.as_ref().map(|v| &v.place)),
                    ("ldap.timeout", self.timeout.as_ref().map(|v| &v.place)),
                    (
                        "ldap.link_oath_users",
                        self.link_oath_users.as_ref().map(|v| &v.place),
                    ),
                    ("ldap.user_base", self.user_base.as_ref().map(|v| &v.place)),
                ] {
                    if let Some(p) = place {
                        note(key, p);
                    }
                }
                Some(LdapConfig {
                    uris: uri.value.iter().map(|u| u.value.clone()).collect(),
                    base: base.value.clone(),
                    bind,
                    starttls,
                    ca_file: self.ca_file.as_ref().map(|c| c.value.clone()),
                    timeout: self.timeout.as_ref().map_or(DEFAULT_TIMEOUT, |t| t.value),
                    link_oath_users,
                    user_base: self.user_base.as_ref().map(|u| u.value.clone()),
                })
            }
        };
        let defaults = OfflineConfig::default();
        for (key, place) in [
            ("offline", self.offline.as_ref().map(|v| &v.place)),
            ("offline.enabled", self.enabled.as_ref().map(|v| &v.place)),
            ("offline.max_age", self.max_age.as_ref().map(|v| &v.place)),
        ] {
            if let Some(p) = place {
                note(key, p);
            }
        }
        Ok(StoreConfig {
            backend,
            ldap,
            offline: OfflineConfig {
                enabled: self.enabled.map_or(defaults.enabled, |v| v.value),
                max_age: self.max_age.map_or(defaults.max_age, |v| v.value),
            },
            sources,
        })
    }
}

// ---- URIs and DNs ----------------------------------------------------------------------------

/// A directory server's URI, as `[store.ldap] uri` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapUri {
    /// `ldapi://`: the local socket; `None`: the client library's default path.
    Ldapi {
        /// The socket's path, percent-decoded (`ldapi://%2Frun%2Fslapd%2Fldapi`).
        socket: Option<PathBuf>,
    },
    /// `ldap://`: plain LDAP (upgraded by StartTLS where `starttls` says so).
    Ldap {
        /// A host name, an IPv4 address or an IPv6 address (without brackets).
        host: String,
        /// The port, when written (default 389).
        port: Option<u16>,
    },
    /// `ldaps://`: LDAP inside TLS.
    Ldaps {
        /// A host name, an IPv4 address or an IPv6 address (without brackets).
        host: String,
        /// The port, when written (default 636).
        port: Option<u16>,
    },
}

impl LdapUri {
    /// Whether the connection stays on this host: `ldapi://`, or a host that is `localhost`
    /// or a loopback address (`127.0.0.0/8`, `::1`).
    pub fn is_loopback(&self) -> bool {
        match self {
            LdapUri::Ldapi { .. } => true,
            LdapUri::Ldap { host, .. } | LdapUri::Ldaps { host, .. } => {
                host.eq_ignore_ascii_case("localhost")
                    || host.eq_ignore_ascii_case("localhost.")
                    || host.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
            }
        }
    }
}

/// Parses a server URI: `ldapi://` with an optional percent-encoded socket path, or
/// `ldap://` / `ldaps://` with a host (name, IPv4 address, `[IPv6]` address) and an optional
/// port; at most a `/` after that (the DN goes into `base`, not into the URI). The scheme is
/// case-insensitive. The error says what is wrong.
pub fn parse_uri(uri: &str) -> Result<LdapUri, String> {
    if let Some(c) = uri.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("it contains {c:?}"));
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err("it is not a URI (scheme://host)".into());
    };
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        return Err(format!(
            "{tail:?} after the server: write only the server here (the DN goes into base)"
        ));
    }
    match scheme.as_str() {
        "ldapi" => {
            if authority.is_empty() {
                return Ok(LdapUri::Ldapi { socket: None });
            }
            let path = percent_decode(authority)?;
            if !path.starts_with('/') {
                return Err(format!(
                    "the socket path {path:?} is not absolute (write its slashes as %2F, e.g. ldapi://%2Frun%2Fslapd%2Fldapi)"
                ));
            }
            if path.contains('\0') {
                return Err("the socket path contains a NUL byte".into());
            }
            // sun_path holds 108 bytes with the final NUL.
            if path.len() > 107 {
                return Err(format!(
                    "the socket path is {} bytes long: at most 107",
                    path.len()
                ));
            }
            Ok(LdapUri::Ldapi {
                socket: Some(PathBuf::from(path)),
            })
        }
        "ldap" | "ldaps" => {
            let (host, port) = host_port(authority)?;
            Ok(if scheme == "ldap" {
                LdapUri::Ldap { host, port }
            } else {
                LdapUri::Ldaps { host, port }
            })
        }
        _ => Err(format!("unknown scheme {scheme:?}")),
    }
}

/// `%XX` sequences decoded; other characters must be those a URI's host part may hold.
fn percent_decode(s: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = |c: Option<u8>| c.and_then(|c| char::from(c).to_digit(16));
            match (hex(bytes.next()), hex(bytes.next())) {
                (Some(h), Some(l)) => out.push(u8::try_from(h * 16 + l).unwrap_or(0)),
                _ => return Err("a % not followed by two hex digits".into()),
            }
        } else if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b);
        } else {
            return Err(format!(
                "{:?} must be percent-encoded in the socket path",
                char::from(b)
            ));
        }
    }
    String::from_utf8(out).map_err(|_| "the socket path is not UTF-8".into())
}

/// `host[:port]` or `[v6]:port` of an `ldap://` or `ldaps://` URI.
fn host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    if authority.contains('@') {
        return Err("user information in the URI: write bind_dn and bind_password_file".into());
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err("an IPv6 address without its closing ]".into());
        };
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("{v6:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{after:?} after the IPv6 address: expected :PORT"))?,
            ),
        };
        (v6.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(
            "no host: name the directory server (twofold does not guess the client library's default)"
                .into(),
        );
    }
    if host.contains(':') && !authority.starts_with('[') {
        return Err("an IPv6 address must be in brackets, e.g. ldaps://[2001:db8::1]".into());
    }
    if !authority.starts_with('[') && host.parse::<std::net::Ipv4Addr>().is_err() {
        check_host_name(&host)?;
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|n| *n != 0 && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))?,
        ),
    };
    Ok((host, port))
}

/// A DNS name: labels of letters, digits, `-` and `_` (not starting or ending with `-`), of at
/// most 63 characters, at most 253 in all, with an optional final dot.
fn check_host_name(host: &str) -> Result<(), String> {
    let name = host.strip_suffix('.').unwrap_or(host);
    let bad = || format!("{host:?} is not a host name or an address");
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    for label in name.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad());
        }
    }
    // All digits and dots is a (bad) IPv4 address, not a name.
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("{host:?} is not an IPv4 address"));
    }
    Ok(())
}

/// Checks that `dn` looks like a distinguished name (RFC 4514): `attr=value` components
/// separated by `,` (several joined by `+` in one), each attribute a name (`ou`, `dc`, `cn`)
/// or a numeric OID, each value non-empty with `\` escaping a special character or two hex
/// digits. Spaces around components are allowed. The error says what is wrong.
pub fn check_dn(dn: &str) -> Result<(), String> {
    if dn.trim().is_empty() {
        return Err("it is empty".into());
    }
    if dn.len() > 1024 {
        return Err(format!("it is {} bytes long: at most 1024", dn.len()));
    }
    if let Some(c) = dn.chars().find(|c| c.is_control()) {
        return Err(format!("it contains {c:?}"));
    }
    // Split on unescaped `,` and `+`, checking escapes on the way.
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    return Err("it ends with a lone \\".into());
                };
                if n.is_ascii_hexdigit() {
                    if !chars.next().is_some_and(|m| m.is_ascii_hexdigit()) {
                        return Err(format!("\\{n} is not followed by a second hex digit"));
                    }
                } else if !",=+<>#;\\\" ".contains(n) {
                    return Err(format!("\\{n} escapes nothing that needs it"));
                }
                if let Some(last) = parts.last_mut() {
                    last.push('x');
                }
            }
            ',' | '+' => parts.push(String::new()),
            '"' | '<' | '>' | ';' => {
                return Err(format!("{c:?} must be escaped as \\{c}"));
            }
            _ => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let Some((attr, value)) = part.split_once('=') else {
            return Err(format!(
                "component {n} ({:?}) is not attr=value",
                part.trim()
            ));
        };
        let attr = attr.trim();
        let descriptor = attr.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let oid = attr.split('.').count() > 1
            && attr
                .split('.')
                .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        if !descriptor && !oid {
            return Err(format!(
                "component {n} has {attr:?} where an attribute name (ou, dc, cn, ...) belongs"
            ));
        }
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("component {n} ({attr}=) has an empty value"));
        }
        if value.contains('=') {
            return Err(format!(
                "component {n} ({attr}={value}) has a second =: a , or + missing, or a \\= to escape"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let ok = |s: &str| parse_uri(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("ldapi:///"), LdapUri::Ldapi { socket: None });
        assert_eq!(ok("ldapi://"), LdapUri::Ldapi { socket: None });
        assert_eq!(
            ok("ldapi://%2Frun%2fslapd%2Fldapi"),
            LdapUri::Ldapi {
                socket: Some("/run/slapd/ldapi".into())
            }
        );
        assert_eq!(
            ok("LDAPS://ldap1.example.org:6360/"),
            LdapUri::Ldaps {
                host: "ldap1.example.org".into(),
                port: Some(6360)
            }
        );
        assert_eq!(
            ok("ldap://[::1]:389"),
            LdapUri::Ldap {
                host: "::1".into(),
                port: Some(389)
            }
        );
        for lo in [
            "ldap://127.0.0.1",
            "ldap://[::1]",
            "ldap://LocalHost",
            "ldapi:///",
        ] {
            assert!(ok(lo).is_loopback(), "{lo}");
        }
        for far in [
            "ldap://10.0.0.1",
            "ldap://ldap.example.org",
            "ldap://[::ffff:127.0.0.1]",
        ] {
            assert!(!ok(far).is_loopback(), "{far}");
        }
        for bad in [
            "",
            "ldap.example.org",
            "http://ldap.example.org",
            "ldap://",
            "ldaps:///",
            "ldap://:389",
            "ldap://host:0",
            "ldap://host:65536",
            "ldap://host:+1",
            "ldap://host:",
            "ldap://::1",
            "ldap://[::1",
            "ldap://[::1]x",
            "ldap://[nope]",
            "ldap://user@host",
            "ldap://ho st",
            "ldap://-host",
            "ldap://host..example",
            "ldap://999.1.1.1",
            "ldap://host/dc=example,dc=org",
            "ldap://host?uid",
            "ldapi://run%2Fldapi",
            "ldapi://%2Frun%2",
            "ldapi://%2Frun%zzx",
            "ldapi://%2Frun%00",
            "ldapi://%2Frun/ldapi",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn dns() {
        for ok in [
            "ou=twofold,dc=example,dc=org",
            "cn=twofold, ou=services, dc=example, dc=org",
            "cn=a\\,b+uid=x,dc=org",
            "cn=J\\C3\\BCrgen,dc=org",
            "2.5.4.3=x",
            "dc=org",
        ] {
            check_dn(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "  ",
            "example.org",
            "ou=twofold,",
            ",dc=org",
            "ou=,dc=org",
            "=x",
            "1ou=x",
            "o u=x",
            "cn=a=b",
            "cn=a\\",
            "cn=a\\q",
            "cn=a\\4",
            "cn=\"quoted\"",
            "cn=a;dc=org",
        ] {
            assert!(check_dn(bad).is_err(), "{bad:?} accepted");
        }
    }
}
