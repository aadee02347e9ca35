//! The `[store]` section in the cache: three header lines.
//!
//! - `K  backend  offline-enabled  offline-max-age-seconds`
//! - `D  0` without `[store.ldap]`, or `D  1  base  starttls  timeout-ms  link_oath_users
//!   bind_dn  bind_password_file  ca_file  user_base  uri...` where each optional value is `-`
//!   when absent and `+` followed by the value when present, and one or more URIs end the line;
//! - `P  (key  file-index  line  column)...`: where each key was set.
//!
//! Fields are separated by tabs; a value holding a tab or a line break cannot be written (no
//! cache then, only slower logins).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::clean;
use crate::config::store::{Bind, KeyPlace, LdapConfig, OfflineConfig, StoreConfig};
use crate::duration::PolicyDuration;

fn opt(v: Option<&str>) -> Option<String> {
    match v {
        None => Some("-".into()),
        Some(s) => clean(s).then(|| format!("+{s}")),
    }
}

fn unopt(f: &str) -> Option<Option<String>> {
    match f {
        "-" => Some(None),
        _ => Some(Some(f.strip_prefix('+')?.to_owned())),
    }
}

/// The three lines of `s`, whose places are in `files`; `None` if it cannot be written.
pub(super) fn write(out: &mut String, s: &StoreConfig, files: &[PathBuf]) -> Option<()> {
    let _ = writeln!(
        out,
        "K\t{}\t{}\t{}",
        s.backend,
        u8::from(s.offline.enabled),
        s.offline.max_age.secs()
    );
    match &s.ldap {
        None => out.push_str("D\t0\n"),
        Some(l) => {
            let (dn, pw) = match &l.bind {
                Bind::SaslExternal => (None, None),
                Bind::Simple { dn, password_file } => {
                    (Some(dn.as_str()), Some(password_file.to_str()?))
                }
            };
            let ca = match &l.ca_file {
                Some(c) => Some(c.to_str()?),
                None => None,
            };
            if !clean(&l.base) || l.uris.is_empty() {
                return None;
            }
            let _ = write!(
                out,
                "D\t1\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                l.base,
                u8::from(l.starttls),
                u64::try_from(l.timeout.as_millis()).ok()?,
                u8::from(l.link_oath_users),
                opt(dn)?,
                opt(pw)?,
                opt(ca)?,
                opt(l.user_base.as_deref())?,
            );
            for u in &l.uris {
                if !clean(u) || u.is_empty() {
                    return None;
                }
                out.push('\t');
                out.push_str(u);
            }
            out.push('\n');
        }
    }
    out.push('P');
    for (key, p) in &s.sources {
        let idx = files.iter().position(|f| *f == p.file)?;
        if !clean(key) || key.is_empty() {
            return None;
        }
        let _ = write!(out, "\t{key}\t{idx}\t{}\t{}", p.line, p.column);
    }
    out.push('\n');
    Some(())
}

/// Reads one of the three lines (its fields) into `s`; `None` if it is not one of them, well
/// formed.
pub(super) fn read(f: &[&str], s: &mut StoreConfig, files: &[PathBuf]) -> Option<()> {
    match f {
        ["K", backend, enabled, max_age] => {
            s.backend = backend.parse().ok()?;
            s.offline = OfflineConfig {
                enabled: bool01(enabled)?,
                max_age: PolicyDuration(max_age.parse().ok()?),
            };
        }
        ["D", "0"] => s.ldap = None,
        [
            "D",
            "1",
            base,
            starttls,
            timeout,
            link,
            dn,
            pw,
            ca,
            user_base,
            uris @ ..,
        ] if !uris.is_empty() => {
            let bind = match (unopt(dn)?, unopt(pw)?) {
                (None, None) => Bind::SaslExternal,
                (Some(dn), Some(pw)) => Bind::Simple {
                    dn,
                    password_file: PathBuf::from(pw),
                },
                _ => return None,
            };
            s.ldap = Some(LdapConfig {
                uris: uris.iter().map(|u| (*u).to_owned()).collect(),
                base: (*base).to_owned(),
                bind,
                starttls: bool01(starttls)?,
                ca_file: unopt(ca)?.map(PathBuf::from),
                timeout: Duration::from_millis(timeout.parse().ok()?),
                link_oath_users: bool01(link)?,
                user_base: unopt(user_base)?,
            });
        }
        ["P", places @ ..] if places.len() % 4 == 0 => {
            s.sources.clear();
            for p in places.chunks_exact(4) {
                let [key, idx, line, column] = p else {
                    return None;
                };
                let place = KeyPlace {
                    file: files.get(idx.parse::<usize>().ok()?)?.clone(),
                    line: line.parse().ok()?,
                    column: column.parse().ok()?,
                };
                s.sources.insert((*key).to_owned(), place);
            }
        }
        _ => return None,
    }
    Some(())
}

fn bool01(f: &str) -> Option<bool> {
    match f {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}
