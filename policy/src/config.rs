//! The policy: `/etc/twofold/policy.toml` plus `/etc/twofold/policy.d/*.toml` in name order.
//!
//! The schema is strict: an unknown key, a value of the wrong kind, a bad mode or duration is an
//! error naming the file, line and column, and saying what would be valid. Later files override
//! earlier ones key by key (a `[users.X]` table in a drop-in replaces that user's rule); every
//! effective setting remembers the file and line it came from, so resolution can say which rule
//! decided.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::duration::PolicyDuration;
use crate::mode::Mode;
use crate::net::{Network, Origin};
use crate::totp::Algorithm;

mod files;
pub mod store;

use files::read_trusted;
pub use files::{dropin_dir, dropin_files, read_for_check};

/// Where the system-wide policy lives.
pub const DEFAULT_POLICY: &str = "/etc/twofold/policy.toml";
/// Drop-in directory applied after the main file, in name order.
pub const DEFAULT_DROPIN_DIR: &str = "/etc/twofold/policy.d";
/// A policy file larger than this is refused (it is surely not a policy).
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// A policy that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file at fault.
    pub file: PathBuf,
    /// 1-based line and column (in characters) of the fault, when it has a place.
    pub position: Option<(usize, usize)>,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl PolicyError {
    fn at(file: &Path, src: &str, offset: usize, message: impl Into<String>) -> PolicyError {
        PolicyError {
            file: file.to_owned(),
            position: Some(line_col(src, offset)),
            message: message.into(),
        }
    }

    fn file(file: &Path, message: impl Into<String>) -> PolicyError {
        PolicyError {
            file: file.to_owned(),
            position: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                line,
                col,
                self.message
            ),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for PolicyError {}

/// 1-based line and character column of byte `offset` in `src`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = src.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before
        .get(line_start..)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Where an effective setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The policy file.
    pub file: PathBuf,
    /// 1-based line of the key.
    pub line: usize,
    /// The table or key, as written: `[groups.wheel]`, `mode`.
    pub table: String,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}:{})", self.table, self.file.display(), self.line)
    }
}

/// A value and where it was set (`None`: the built-in default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The effective value.
    pub value: T,
    /// Where it was set, or `None` for the built-in default.
    pub source: Option<Source>,
}

impl<T> Setting<T> {
    fn builtin(value: T) -> Self {
        Setting {
            value,
            source: None,
        }
    }
}

/// A `[users.X]`, `[groups.X]` or `[services.X]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEntry {
    /// Its mode.
    pub mode: Mode,
    /// Where it was written.
    pub source: Source,
}

/// Enrollment settings (`[enrollment]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// A required user with no enrollment may set it up during login.
    pub at_login: bool,
    /// How long after the requirement first met a user they may still enroll (or, without
    /// `at_login`, still log in without a code); then login is refused.
    pub grace_period: PolicyDuration,
    /// The issuer shown by authenticator apps; `None`: "twofold" and the host name.
    pub issuer: Option<String>,
    /// How many recovery codes an enrollment hands out.
    pub recovery_codes: u32,
    /// Where a login may come from to enroll inside the login (`at_login_from`); `None`: from
    /// anywhere. Never an empty list.
    pub at_login_from: Option<Vec<Origin>>,
    /// How the QR code is drawn in the enrollment prompt inside a login (`qr`).
    pub qr: crate::qr::LoginQr,
}

impl Enrollment {
    /// Whether a login whose raw `PAM_RHOST` is `rhost` (`""` when there is none: the console)
    /// may be offered enrollment inside the login, by `at_login_from` alone: `true` when the
    /// setting is absent, otherwise when an entry matches ([`Origin::matches`]: `local` only an
    /// empty `rhost`; networks only addresses, an IPv4-mapped IPv6 address as IPv4; a host name
    /// only the same name). It does not look at [`Enrollment::at_login`] or the grace period,
    /// which the caller checks as well.
    pub fn at_login_allowed_from(&self, rhost: &str) -> bool {
        match &self.at_login_from {
            None => true,
            Some(list) => list.iter().any(|o| o.matches(rhost)),
        }
    }
}

/// Code parameters for new enrollments and the verification window (`[totp]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpPolicy {
    /// Algorithm, digits and step length of new enrollments.
    pub params: crate::totp::Params,
    /// Steps accepted either side of the current one at login (0 to 3).
    pub window: u64,
}

/// The effective policy, after every file was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The account-wide default mode.
    pub mode: Setting<Mode>,
    /// Members of this group, and root, manage other users.
    pub admin_group: Setting<String>,
    /// Enrollment settings.
    pub enrollment: Enrollment,
    /// Code parameters.
    pub totp: TotpPolicy,
    /// `[users.X]` rules.
    pub users: BTreeMap<String, RuleEntry>,
    /// `[groups.X]` rules.
    pub groups: BTreeMap<String, RuleEntry>,
    /// `[services.X]` rules.
    pub services: BTreeMap<String, RuleEntry>,
    /// `[networks."CIDR"]` rules, by network (see [`Policy::network_for`]).
    pub networks: BTreeMap<Network, RuleEntry>,
    /// `[store]`: where the state records live.
    pub store: store::StoreConfig,
    /// The files applied, in order.
    pub files: Vec<PathBuf>,
}

impl Default for Policy {
    /// The built-in defaults: optional everywhere, which changes no login.
    fn default() -> Self {
        Policy {
            mode: Setting::builtin(Mode::Optional),
            admin_group: Setting::builtin("twofold-admin".to_owned()),
            enrollment: Enrollment {
                at_login: true,
                grace_period: PolicyDuration(7 * 86_400),
                issuer: None,
                recovery_codes: 10,
                at_login_from: None,
                qr: crate::qr::LoginQr::Dark,
            },
            totp: TotpPolicy {
                params: crate::totp::Params::default(),
                window: 1,
            },
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            services: BTreeMap::new(),
            networks: BTreeMap::new(),
            store: store::StoreConfig::default(),
            files: Vec::new(),
        }
    }
}

// ---- the file schema -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    mode: Option<Spanned<Mode>>,
    admin_group: Option<Spanned<String>>,
    enrollment: Option<RawEnrollment>,
    totp: Option<RawTotp>,
    #[serde(default)]
    users: BTreeMap<Spanned<String>, Spanned<RawRule>>,
    #[serde(default)]
    groups: BTreeMap<Spanned<String>, Spanned<RawRule>>,
    #[serde(default)]
    services: BTreeMap<Spanned<String>, Spanned<RawRule>>,
    #[serde(default)]
    networks: BTreeMap<Spanned<String>, Spanned<RawRule>>,
    store: Option<store::RawStore>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnrollment {
    at_login: Option<bool>,
    grace_period: Option<Spanned<PolicyDuration>>,
    issuer: Option<Spanned<String>>,
    recovery_codes: Option<Spanned<i64>>,
    at_login_from: Option<Spanned<Vec<Spanned<String>>>>,
    qr: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTotp {
    algorithm: Option<Spanned<Algorithm>>,
    digits: Option<Spanned<i64>>,
    period: Option<Spanned<PolicyDuration>>,
    window: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    mode: Spanned<Mode>,
}

/// Kinds of names a rule table can be keyed by.
#[derive(Clone, Copy)]
enum NameKind {
    User,
    Group,
    Service,
}

impl NameKind {
    fn table(self) -> &'static str {
        match self {
            NameKind::User => "users",
            NameKind::Group => "groups",
            NameKind::Service => "services",
        }
    }
}

/// Checks a PAM service name as `[services.X]` tables and `--service` take it.
pub fn check_service_name(name: &str) -> Result<(), String> {
    check_name(NameKind::Service, name)
}

/// Checks a group or service name: the same safe character set as user names.
fn check_name(kind: NameKind, name: &str) -> Result<(), String> {
    match kind {
        NameKind::User => crate::UserName::parse(name)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        NameKind::Group | NameKind::Service => {
            let what = if matches!(kind, NameKind::Group) {
                "group"
            } else {
                "service"
            };
            if name.is_empty() {
                return Err(format!("empty {what} name"));
            }
            if name.len() > 256 {
                return Err(format!(
                    "{what} name of {} bytes is too long (at most 256)",
                    name.len()
                ));
            }
            if let Some(c) = name
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@' | '$')))
            {
                return Err(format!(
                    "{what} name {name:?} contains {c:?}, which is not allowed (letters, digits and _ . - @ $ only)"
                ));
            }
            Ok(())
        }
    }
}

/// Rewords the parser's serde vocabulary into TOML's: keys and tables, not fields and maps,
/// and names the key of a duplicate.
fn toml_message(message: &str, at: Option<&str>) -> String {
    let message = message.trim_end();
    if message == "duplicate key"
        && let Some(key) = at.map(str::trim).filter(|k| !k.is_empty() && k.len() <= 80)
    {
        return format!("duplicate key `{key}`: each key may be set only once in a file");
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return format!(
            "missing key {rest}: write mode = \"required\", \"optional\" or \"disabled\""
        );
    }
    // A table where a value was written: not the name of a type of ours.
    if let Some(at) = message.find("expected struct Raw") {
        return format!("{}expected a table", message.get(..at).unwrap_or_default());
    }
    message
        .replace("unknown field", "unknown key")
        .replace("expected a map", "expected a table")
        .replace("expected a sequence", "expected an array")
        .replace("invalid type: map", "invalid type: table")
}

/// Quotes a table key the way TOML would need it.
fn key_text(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

impl Policy {
    /// The `[networks."CIDR"]` rule a login from `addr` falls under: of the networks holding
    /// it, the longest prefix. `addr` is the address of a literal `PAM_RHOST`
    /// ([`crate::net::rhost_addr`]); a login without one (a console, a host name) has no
    /// network.
    pub fn network_for(&self, addr: &std::net::IpAddr) -> Option<(&Network, &RuleEntry)> {
        self.networks
            .iter()
            .filter(|(net, _)| net.contains(addr))
            .max_by_key(|(net, _)| net.prefix())
    }

    /// The issuer authenticator apps show: `[enrollment] issuer`, or `twofold@HOSTNAME`.
    pub fn issuer(&self) -> String {
        if let Some(i) = &self.enrollment.issuer {
            return i.clone();
        }
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty() && !h.contains(':'))
            .unwrap_or_else(|| "localhost".into());
        format!("twofold@{host}")
    }

    /// Loads the main file and then every `*.toml` in `dropin_dir` (if it exists) in name order,
    /// checking that each is owned by root (or the current user) and not writable by others:
    /// the login path trusts what these files say.
    pub fn load(main: &Path, dropin_dir: Option<&Path>) -> Result<Policy, PolicyError> {
        Policy::load_with(main, &read_trusted(main)?, dropin_dir)
    }

    /// [`Policy::load`] with `main_text` standing for the main file's content: how an edit of
    /// the main file would load, drop-ins included, before it is written.
    pub fn load_with(
        main: &Path,
        main_text: &str,
        dropin_dir: Option<&Path>,
    ) -> Result<Policy, PolicyError> {
        let (mut policy, mut store) = (Policy::default(), store::StoreDraft::default());
        policy.apply_file(main, main_text, &mut store)?;
        if let Some(dir) = dropin_dir {
            for file in dropin_files(dir)? {
                let text = read_trusted(&file)?;
                policy.apply_file(&file, &text, &mut store)?;
            }
        }
        policy.store = store.finish()?;
        Ok(policy)
    }

    /// The default locations, with the drop-in directory next to `main` ([`dropin_dir`]).
    pub fn load_system(main: &Path) -> Result<Policy, PolicyError> {
        Policy::load(main, dropin_dir(main).as_deref())
    }

    /// Parses one file's text on top of the built-in defaults (no file-system checks): what
    /// `twofold policy check FILE` does for a draft.
    pub fn parse_one(file: &Path, text: &str) -> Result<Policy, PolicyError> {
        let mut policy = Policy::default();
        policy.apply(file, text)?;
        Ok(policy)
    }

    /// Applies one file's text on top of what is loaded so far. The rules between `[store]`
    /// keys are checked on the result (a load checks them once, after the last file).
    pub fn apply(&mut self, file: &Path, text: &str) -> Result<(), PolicyError> {
        let mut store = store::StoreDraft::of(&self.store, self.files.last().map(PathBuf::as_path));
        self.apply_file(file, text, &mut store)?;
        self.store = store.finish()?;
        Ok(())
    }

    fn apply_file(
        &mut self,
        file: &Path,
        text: &str,
        st: &mut store::StoreDraft,
    ) -> Result<(), PolicyError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let message = toml_message(e.message(), e.span().and_then(|s| text.get(s)));
            match e.span() {
                Some(span) => PolicyError::at(file, text, span.start, message),
                None => PolicyError::file(file, message),
            }
        })?;
        // Line starts, once: a rule's line is then a binary search, not a scan of the text
        // before it (which made a policy of 10,000 tables quadratic).
        let line_starts: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let src = |span: std::ops::Range<usize>, table: String| Source {
            file: file.to_owned(),
            line: line_starts.partition_point(|&start| start <= span.start),
            table,
        };
        let err = |span: std::ops::Range<usize>, msg: String| {
            PolicyError::at(file, text, span.start, msg)
        };

        if let Some(m) = raw.mode {
            self.mode = Setting {
                value: *m.get_ref(),
                source: Some(src(m.span(), "mode".into())),
            };
        }
        if let Some(g) = raw.admin_group {
            check_name(NameKind::Group, g.get_ref())
                .map_err(|m| err(g.span(), format!("admin_group: {m}")))?;
            self.admin_group = Setting {
                value: g.get_ref().clone(),
                source: Some(src(g.span(), "admin_group".into())),
            };
        }
        if let Some(e) = raw.enrollment {
            if let Some(v) = e.at_login {
                self.enrollment.at_login = v;
            }
            if let Some(v) = e.grace_period {
                self.enrollment.grace_period = *v.get_ref();
            }
            if let Some(v) = e.issuer {
                let s = v.get_ref();
                if s.is_empty()
                    || s.len() > 64
                    || s.contains(':')
                    || s.chars().any(char::is_control)
                {
                    return Err(err(
                        v.span(),
                        format!(
                            "invalid issuer {s:?}: 1 to 64 characters, no ':' and no control characters"
                        ),
                    ));
                }
                self.enrollment.issuer = Some(s.clone());
            }
            if let Some(v) = e.recovery_codes {
                let n = *v.get_ref();
                self.enrollment.recovery_codes = u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=50).contains(n))
                    .ok_or_else(|| {
                        err(
                            v.span(),
                            format!("invalid recovery_codes {n}: expected a number from 1 to 50"),
                        )
                    })?;
            }
            if let Some(v) = e.at_login_from {
                let span = v.span();
                let list = v.into_inner();
                if list.is_empty() {
                    return Err(err(
                        span,
                        "at_login_from is empty, so no login could enroll: leave it out to allow enrollment at login from anywhere, or write at_login = false to turn it off".into(),
                    ));
                }
                let mut origins = Vec::with_capacity(list.len());
                for entry in list {
                    let origin = entry.get_ref().parse::<Origin>().map_err(|why| {
                        err(
                            entry.span(),
                            format!(
                                "invalid at_login_from entry {:?}: {why}; {}",
                                entry.get_ref(),
                                crate::net::EXPECTED
                            ),
                        )
                    })?;
                    origins.push(origin);
                }
                self.enrollment.at_login_from = Some(origins);
            }
            if let Some(v) = e.qr {
                self.enrollment.qr = v
                    .get_ref()
                    .parse()
                    .map_err(|e: crate::qr::LoginQrParseError| err(v.span(), e.to_string()))?;
            }
        }
        if let Some(t) = raw.totp {
            if let Some(v) = t.algorithm {
                self.totp.params.algorithm = *v.get_ref();
            }
            if let Some(v) = t.digits {
                let n = *v.get_ref();
                self.totp.params.digits = u8::try_from(n)
                    .ok()
                    .filter(|n| (6..=8).contains(n))
                    .ok_or_else(|| {
                        err(v.span(), format!("invalid digits {n}: expected 6, 7 or 8"))
                    })?;
            }
            if let Some(v) = t.period {
                let p = v.get_ref().secs();
                if !(15..=300).contains(&p) {
                    return Err(err(
                        v.span(),
                        format!(
                            "invalid period {:?}: expected from \"15s\" to \"5m\" (authenticator apps use \"30s\")",
                            v.get_ref().to_string()
                        ),
                    ));
                }
                self.totp.params.period = p;
            }
            if let Some(v) = t.window {
                let n = *v.get_ref();
                self.totp.window = u64::try_from(n).ok().filter(|n| *n <= 3).ok_or_else(|| {
                    err(
                        v.span(),
                        format!(
                            "invalid window {n}: expected 0 to 3 steps either side (1 is usual)"
                        ),
                    )
                })?;
            }
        }
        for (kind, raw_rules) in [
            (NameKind::User, raw.users),
            (NameKind::Group, raw.groups),
            (NameKind::Service, raw.services),
        ] {
            for (name, rule) in raw_rules {
                let key_span = name.span();
                let name = name.into_inner();
                check_name(kind, &name).map_err(|m| err(key_span.clone(), m))?;
                let rule_span = rule.span();
                let rule = rule.into_inner();
                let table = format!("[{}.{}]", kind.table(), key_text(&name));
                let entry = RuleEntry {
                    mode: *rule.mode.get_ref(),
                    source: src(
                        if rule_span.start < rule.mode.span().start {
                            rule.mode.span()
                        } else {
                            rule_span
                        },
                        table,
                    ),
                };
                let map = match kind {
                    NameKind::User => &mut self.users,
                    NameKind::Group => &mut self.groups,
                    NameKind::Service => &mut self.services,
                };
                map.insert(name, entry);
            }
        }
        self.apply_networks(raw.networks, text, &src, &err)?;
        if let Some(s) = raw.store {
            st.merge(s, file, text)?;
        }
        self.files.push(file.to_owned());
        Ok(())
    }

    /// The `[networks."CIDR"]` tables of one file: each key a network or address with no host
    /// bits set, and no two keys of the file the same network (`10.0.0.1` and `10.0.0.1/32`).
    /// A later file's rule for a network replaces an earlier one's, as for the other tables.
    fn apply_networks(
        &mut self,
        raw: BTreeMap<Spanned<String>, Spanned<RawRule>>,
        text: &str,
        src: &dyn Fn(std::ops::Range<usize>, String) -> Source,
        err: &dyn Fn(std::ops::Range<usize>, String) -> PolicyError,
    ) -> Result<(), PolicyError> {
        // In the order written, so that the second of two equal keys is the one reported.
        let mut raw: Vec<_> = raw.into_iter().collect();
        raw.sort_by_key(|(k, _)| k.span().start);
        let mut seen: BTreeMap<Network, (String, usize)> = BTreeMap::new();
        for (key, rule) in raw {
            let key_span = key.span();
            let written = key.into_inner();
            let net = written.parse::<Network>().map_err(|why| {
                let why = if why == "not an address, a network or a host name" {
                    "not an address or a network".to_owned()
                } else {
                    why
                };
                err(
                    key_span.clone(),
                    format!(
                        "invalid network {written:?}: {why}; {}",
                        crate::net::EXPECTED_NETWORK
                    ),
                )
            })?;
            if let Some((first, at)) = seen.get(&net) {
                let (line, col) = line_col(text, *at);
                return Err(err(
                    key_span,
                    format!(
                        "[networks.{:?}] names the network {net} again, as [networks.{first:?}] did at line {line}, column {col}: write each network once",
                        written
                    ),
                ));
            }
            seen.insert(net, (written.clone(), key_span.start));
            let rule_span = rule.span();
            let rule = rule.into_inner();
            let entry = RuleEntry {
                mode: *rule.mode.get_ref(),
                source: src(
                    if rule_span.start < rule.mode.span().start {
                        rule.mode.span()
                    } else {
                        rule_span
                    },
                    format!("[networks.{written:?}]"),
                ),
            };
            self.networks.insert(net, entry);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        let s = "ab\ncdé f\n";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 3), (2, 1));
        // 'f' is after a 2-byte 'é': byte 8, char column 5.
        assert_eq!(line_col(s, 8), (2, 5));
    }
}
