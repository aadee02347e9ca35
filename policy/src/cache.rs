//! A compiled copy of the policy in the state directory, so that a login with a big policy does
//! not parse all of its TOML again: [`Policy::load_for`].
//!
//! The copy (`.policy-cache`, 0600 root in the 0700 state directory, written and read like the
//! records: openat, `O_NOFOLLOW`, owner and mode checked) is keyed by a fingerprint of every
//! source file and of the drop-in directory: device, inode, size, modification and change
//! times to the nanosecond, mode and owner. Any edit, `chmod`, `chown`, rename or new drop-in
//! changes the change time of a file or of the directory, so the copy is used only for the very
//! files it was made from, after they passed the full load with its trust checks. A login then
//! reads only the lines it needs (its user, its groups, its service), found by binary search in
//! the sorted rule lines; everything else of the policy is in a few header lines. A missing,
//! stale, damaged or oversized copy means a full load, which writes a new copy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{self, Policy, PolicyError, RuleEntry, Setting, Source};
use crate::duration::PolicyDuration;
use crate::mode::Mode;
use crate::store::Store;
use crate::totp::{Algorithm, Params};

/// The file name in the state directory (a user name never starts with a dot).
pub const CACHE_NAME: &str = ".policy-cache";
const MAGIC: &str = "twofold-policy-cache\t1";

/// What one login needs of the policy.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The user logging in.
    pub user: &'a str,
    /// All their groups.
    pub groups: &'a [String],
    /// The PAM service, if known.
    pub service: Option<&'a str>,
}

/// The fingerprint of the files `main` and its drop-ins would be loaded from.
fn fingerprint(main: &Path) -> Option<String> {
    let mut fp = String::new();
    let mut add = |p: &Path| -> Option<()> {
        let m = std::fs::symlink_metadata(p).ok()?;
        let _ = writeln!(
            fp,
            "{}\0{} {} {} {}.{} {}.{} {:o} {}:{}",
            p.display(),
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.mode(),
            m.uid(),
            m.gid()
        );
        Some(())
    };
    add(main)?;
    let dir = config::dropin_dir(main)?;
    if dir.exists() {
        add(&dir)?;
        for f in config::dropin_files(&dir).ok()? {
            add(&f)?;
        }
    } else {
        fp.push_str("no policy.d\n");
    }
    Some(data_encoding::HEXLOWER.encode(&Sha256::digest(fp.as_bytes())))
}

fn clean(s: &str) -> bool {
    !s.contains(['\t', '\n', '\r'])
}

fn src_fields(s: Option<&Source>, files: &[PathBuf]) -> Option<String> {
    match s {
        None => Some("-\t-\t-".into()),
        Some(s) => {
            let idx = files.iter().position(|f| *f == s.file)?;
            clean(&s.table).then(|| format!("{idx}\t{}\t{}", s.line, s.table))
        }
    }
}

/// The text of the cache for `policy`, or `None` if something in it cannot be written safely.
fn serialize(policy: &Policy, fp: &str) -> Option<String> {
    let mut out = format!("{MAGIC}\t{fp}\n");
    for (i, f) in policy.files.iter().enumerate() {
        let p = f.to_str()?;
        if !clean(p) {
            return None;
        }
        let _ = writeln!(out, "F\t{i}\t{p}");
    }
    let _ = writeln!(
        out,
        "S\tmode\t{}\t{}",
        policy.mode.value,
        src_fields(policy.mode.source.as_ref(), &policy.files)?
    );
    if !clean(&policy.admin_group.value) {
        return None;
    }
    let _ = writeln!(
        out,
        "S\tadmin_group\t{}\t{}",
        policy.admin_group.value,
        src_fields(policy.admin_group.source.as_ref(), &policy.files)?
    );
    let e = &policy.enrollment;
    let issuer = match &e.issuer {
        Some(i) if clean(i) => format!("1\t{i}"),
        Some(_) => return None,
        None => "0\t".into(),
    };
    let _ = writeln!(
        out,
        "N\t{}\t{}\t{}\t{issuer}",
        u8::from(e.at_login),
        e.grace_period.secs(),
        e.recovery_codes
    );
    let t = &policy.totp;
    let _ = writeln!(
        out,
        "T\t{}\t{}\t{}\t{}",
        t.params.algorithm.as_str(),
        t.params.digits,
        t.params.period,
        t.window
    );
    let mut rules = 0usize;
    // In byte order of the lines: kinds g < s < u, then names (a tab sorts before any name
    // character, so line order is name order).
    for (kind, map) in [
        ("g", &policy.groups),
        ("s", &policy.services),
        ("u", &policy.users),
    ] {
        for (name, r) in map {
            if !clean(name) {
                return None;
            }
            let _ = writeln!(
                out,
                "R\t{kind}\t{name}\t{}\t{}",
                r.mode,
                src_fields(Some(&r.source), &policy.files)?
            );
            rules += 1;
        }
    }
    let _ = writeln!(out, "Z\t{rules}");
    Some(out)
}

fn parse_src(idx: &str, line: &str, table: &str, files: &[PathBuf]) -> Option<Option<Source>> {
    if idx == "-" {
        return Some(None);
    }
    let file = files.get(idx.parse::<usize>().ok()?)?.clone();
    Some(Some(Source {
        file,
        line: line.parse().ok()?,
        table: table.to_owned(),
    }))
}

/// The kind and name of a rule line.
fn rule_key(line: &str) -> (&str, &str) {
    let mut f = line.splitn(4, '\t');
    let _ = f.next();
    (f.next().unwrap_or_default(), f.next().unwrap_or_default())
}

/// The policy restricted to what `wanted` needs, from the cache text; `None` if the text is not
/// a complete cache for `fp`.
fn deserialize(text: &str, fp: &str, wanted: &Wanted<'_>) -> Option<Policy> {
    let mut lines = text.lines();
    let header = lines.next()?;
    if header.strip_prefix(MAGIC)?.strip_prefix('\t')? != fp {
        return None;
    }
    let mut policy = Policy::default();
    let mut rest: Vec<&str> = Vec::new();
    for line in lines {
        // Rule lines are only collected here; a login parses the few it looks up.
        if line.starts_with("R\t") || line.starts_with("Z\t") {
            rest.push(line);
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["F", i, p] => {
                if i.parse::<usize>().ok()? != policy.files.len() {
                    return None;
                }
                policy.files.push(PathBuf::from(p));
            }
            ["S", "mode", v, a, b, c] => {
                policy.mode = Setting {
                    value: v.parse::<Mode>().ok()?,
                    source: parse_src(a, b, c, &policy.files)?,
                }
            }
            ["S", "admin_group", v, a, b, c] => {
                policy.admin_group = Setting {
                    value: (*v).to_owned(),
                    source: parse_src(a, b, c, &policy.files)?,
                }
            }
            ["N", at, grace, n, has, issuer] => {
                policy.enrollment.at_login = *at == "1";
                policy.enrollment.grace_period = PolicyDuration(grace.parse().ok()?);
                policy.enrollment.recovery_codes = n.parse().ok()?;
                policy.enrollment.issuer = (*has == "1").then(|| (*issuer).to_owned());
            }
            ["T", alg, digits, period, window] => {
                policy.totp.params = Params {
                    algorithm: alg.parse::<Algorithm>().ok()?,
                    digits: digits.parse().ok()?,
                    period: period.parse().ok()?,
                };
                policy.totp.window = window.parse().ok()?;
            }
            _ => return None,
        }
    }
    // The rule lines, then the trailer with their count: a cut-off file is refused.
    let (last, rules) = rest.split_last()?;
    let count: usize = last.strip_prefix("Z\t")?.parse().ok()?;
    if count != rules.len() {
        return None;
    }
    let find = |kind: &str, name: &str| -> Option<Option<RuleEntry>> {
        match rules.binary_search_by(|l| rule_key(l).cmp(&(kind, name))) {
            Ok(i) => {
                let f: Vec<&str> = rules.get(i)?.split('\t').collect();
                match f.as_slice() {
                    ["R", _, _, mode, a, b, c] => Some(Some(RuleEntry {
                        mode: mode.parse().ok()?,
                        source: parse_src(a, b, c, &policy.files)??,
                    })),
                    _ => None,
                }
            }
            Err(_) => Some(None),
        }
    };
    let mut users = BTreeMap::new();
    if let Some(r) = find("u", wanted.user)? {
        users.insert(wanted.user.to_owned(), r);
    }
    let mut groups = BTreeMap::new();
    for g in wanted.groups {
        if let Some(r) = find("g", g)? {
            groups.insert(g.clone(), r);
        }
    }
    let mut services = BTreeMap::new();
    if let Some(s) = wanted.service
        && let Some(r) = find("s", s)?
    {
        services.insert(s.to_owned(), r);
    }
    policy.users = users;
    policy.groups = groups;
    policy.services = services;
    Some(policy)
}

impl Policy {
    /// What one login needs of the system policy at `main`: from the cache in `store` when it
    /// was made from exactly these files, otherwise by a full [`Policy::load_system`] (which
    /// then refreshes the cache). The result holds only the rules `wanted` can match, so
    /// [`crate::resolve::resolve`] for that subject decides exactly as with the whole policy.
    pub fn load_for(
        main: &Path,
        store: &Store,
        wanted: &Wanted<'_>,
    ) -> Result<Policy, PolicyError> {
        let fp = fingerprint(main);
        if let Some(fp) = &fp
            && let Ok(Some(text)) = store.read_aux(CACHE_NAME)
            && let Some(p) = deserialize(&text, fp, wanted)
        {
            return Ok(p);
        }
        let policy = Policy::load_system(main)?;
        // Only if the files did not change while they were read.
        if let Some(fp) = fp
            && fingerprint(main).as_deref() == Some(fp.as_str())
            && let Some(text) = serialize(&policy, &fp)
        {
            // A cache that cannot be written costs only speed.
            let _ = store.replace_aux(CACHE_NAME, &text);
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Policy {
        Policy::parse_one(
            Path::new("/etc/twofold/policy.toml"),
            "mode = \"required\"\nadmin_group = \"ops\"\n[enrollment]\nat_login = false\ngrace_period = \"3d\"\nissuer = \"Acme VPN\"\nrecovery_codes = 4\n[totp]\nalgorithm = \"SHA256\"\ndigits = 8\nperiod = \"60s\"\nwindow = 2\n[users.alice]\nmode = \"disabled\"\n[users.ab]\nmode = \"optional\"\n[users.\"ab.c\"]\nmode = \"required\"\n[groups.wheel]\nmode = \"required\"\n[groups.staff]\nmode = \"optional\"\n[services.sudo]\nmode = \"disabled\"\n",
        )
        .unwrap()
    }

    #[test]
    fn round_trips_what_a_subject_needs() {
        let p = sample();
        let text = serialize(&p, "fp").unwrap();
        let groups = vec!["staff".to_owned(), "nosuch".to_owned()];
        let w = Wanted {
            user: "ab",
            groups: &groups,
            service: Some("sudo"),
        };
        let got = deserialize(&text, "fp", &w).unwrap();
        assert_eq!(got.mode, p.mode);
        assert_eq!(got.admin_group, p.admin_group);
        assert_eq!(got.enrollment, p.enrollment);
        assert_eq!(got.totp, p.totp);
        assert_eq!(got.files, p.files);
        assert_eq!(got.users.len(), 1);
        assert_eq!(got.users["ab"], p.users["ab"]);
        assert_eq!(got.groups.len(), 1);
        assert_eq!(got.groups["staff"], p.groups["staff"]);
        assert_eq!(got.services["sudo"], p.services["sudo"]);
        // Names that share a prefix are told apart.
        let w = Wanted {
            user: "ab.c",
            groups: &[],
            service: None,
        };
        let got = deserialize(&text, "fp", &w).unwrap();
        assert_eq!(got.users["ab.c"].mode, Mode::Required);
    }

    #[test]
    fn refuses_other_fingerprints_and_cut_files() {
        let p = sample();
        let text = serialize(&p, "fp").unwrap();
        let w = Wanted {
            user: "alice",
            groups: &[],
            service: None,
        };
        assert!(deserialize(&text, "other", &w).is_none());
        // Every truncation at a line boundary is refused (the trailer counts the rules).
        let lines: Vec<&str> = text.lines().collect();
        for n in 1..lines.len() {
            let cut = lines[..n].join("\n");
            assert!(deserialize(&cut, "fp", &w).is_none(), "accepted {n} lines");
        }
        assert!(
            deserialize(
                &text.replace("R\tu\talice\tdisabled", "R\tu\talice\tmaybe"),
                "fp",
                &w
            )
            .is_none()
        );
    }
}
