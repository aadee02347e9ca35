//! Parsing `[store]`: each key checked alone as its file is read ([`StoreDraft::merge`]),
//! the rules between keys on the effective values once every file is applied
//! ([`StoreDraft::finish`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};
use toml::Spanned;

use super::names::{LdapUri, check_dn, parse_uri};
use super::{
    Backend, Bind, DEFAULT_TIMEOUT, KeyPlace, LdapConfig, MAX_TIMEOUT, MAX_URIS, MIN_TIMEOUT,
    OfflineConfig, StoreConfig,
};
use crate::config::{PolicyError, line_col};
use crate::duration::PolicyDuration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawStore {
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
pub(in crate::config) struct StoreDraft {
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
    pub(in crate::config) fn of(c: &StoreConfig, last_file: Option<&Path>) -> StoreDraft {
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
    pub(in crate::config) fn merge(
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
    pub(in crate::config) fn finish(self) -> Result<StoreConfig, PolicyError> {
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
                    // This host, but a port any local user may listen on while the server
                    // does not (a restart, a tunnel down): plain LDAP would hand them the bind
                    // password and take their answers for the directory's.
                    if let LdapUri::Ldap {
                        port: Some(port @ 1024..),
                        ..
                    } = parsed
                        && !starttls
                    {
                        return Err(err(
                            &u.place,
                            format!(
                                "uri {:?} is plain LDAP to port {port} of this host, where any local user may listen while the server does not: the bind password would go to them and their answers would be taken for the directory's; write starttls = true, or use ldaps://, ldapi:// or a port below 1024",
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
