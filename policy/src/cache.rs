//! A compiled copy of the policy in the state directory, so that a login with a big policy does
//! not parse all of its TOML again: [`Policy::load_for`].
//!
//! The copy (`.policy-cache`, 0600 root in the 0700 state directory, written and read like the
//! records: openat, `O_NOFOLLOW`, owner and mode checked) is keyed by a fingerprint of every
//! source file, of the drop-in directory and of the main file's directory: device, inode, size,
//! modification and change times to the nanosecond, mode and owner. A login then reads only the
//! lines it needs (its user, its groups, its service), found by binary search in the sorted rule
//! lines, and every `[networks."CIDR"]` rule (which one applies depends on the login's address);
//! everything else of the policy is in a few header lines. A missing, stale, damaged or
//! oversized copy means a full load, which may write a new copy.
//!
//! # Why a stale copy is impossible: the racy-file rule
//!
//! A fingerprint of metadata alone is not enough. The kernel stamps a change with the time of
//! its coarse clock (the last timer tick; before Linux 6.13 that is all any file system gets),
//! truncated to the file system's granularity (one second on ext2/ext3 with 128-byte inodes).
//! An edit in place that keeps the size (`"optional"` → `"required"`) within one such tick of
//! the previous change leaves inode, size, mtime and ctime as they were: a copy made between
//! the two changes would go on deciding logins by the old text. So, as git does for its index:
//!
//! - Before it reads any file, a full load takes the time `B` (`CLOCK_REALTIME`, in whole
//!   seconds). The copy is written, stamped with `B`, only if the fingerprint taken after the
//!   load equals the one taken before it *and* every fingerprinted file and directory is
//!   *settled*: its mtime and its ctime, in whole seconds, are at most `B − 2`.
//! - A copy is used only if the current fingerprint equals the one it was made for, every
//!   file is still settled with respect to its `B` (which the writer already ensured; checked
//!   again because it costs nothing), and the clock does not read earlier than `B` (it was set
//!   back: trust nothing made "in the future").
//!
//! Why that suffices. Any change to a file's content or inode (write, truncate, chmod, chown,
//! rename) sets its ctime to the current time, and ctime cannot be set by anyone (`touch -d`
//! sets mtime and atime; the kernel then sets ctime to now). The coarse clock lags
//! `CLOCK_REALTIME` by less than a tick (at most 10 ms; the multigrain timestamps of 6.13 and
//! later are never earlier than it), so a change made after `B` was read carries a time of at
//! least `B − 1 tick`, whose whole second is at least `B − 1` (`B` in whole seconds) at any
//! granularity up to one second. A settled file's
//! recorded ctime is at most `B − 2`; therefore every change after `B` gives the file a ctime
//! that differs from the recorded one, and the fingerprint no longer matches. That covers:
//!
//! - an edit in the same second (or tick) as the build, by this or any other process, before,
//!   during or after the reading: the file is not settled, so no copy is written (the next
//!   login, two seconds later, makes one), or it changes the ctime a settled file had;
//! - a file replaced by a new one (editors save by rename) whose inode number is reused: the
//!   new inode's ctime is the time of its creation or rename, after `B`;
//! - a drop-in added and removed again during the load: the directory's times move, so it is
//!   not settled (directories are fingerprinted and checked like files for this reason);
//! - `touch -d` with an old date: the mtime goes back, the ctime does not;
//! - another process writing a copy while a file is edited: whoever writes checked settledness
//!   against its own `B`, taken before its own reading.
//!
//! What it assumes: file timestamps come from this host's clock with a granularity of at most
//! one second (local file systems; not an NFS server with a skewed clock, not FAT), and the
//! clock is not set back between a build and a later edit by more than two seconds and then
//! forward again before the next login (the check against `B` catches a clock that is still
//! behind). The cost: after a change, logins load the policy fully for about two seconds.
//! A file whose mtime is in the future (`touch -d tomorrow`) is never settled, so its copy is
//! never made until then: slower, never wrong.
//!
//! Hashing the files' content instead would need no assumption about clocks, but it reads
//! and hashes every file at every login (a 300 KB policy: about a millisecond, three times the
//! policy work of a login with the copy).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{self, Policy, PolicyError, RuleEntry, Setting, Source};
use crate::duration::PolicyDuration;
use crate::mode::Mode;
use crate::net::Origin;
use crate::store::Store;
use crate::totp::{Algorithm, Params};

mod storecfg;

/// The file name in the state directory (a user name never starts with a dot).
pub const CACHE_NAME: &str = ".policy-cache";
const MAGIC: &str = "twofold-policy-cache\t6";
/// A file is settled when its mtime and ctime, in whole seconds, are at most the build time
/// minus this (one second for the coarse clock's lag, one for the granularity).
const SETTLE_SECS: i64 = 2;

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

/// The identity of the files `main` and its drop-ins would be loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    /// Every file's and directory's path and metadata, in hex: compared whole, so that no two
    /// different states of the files can share a key (no hash, no collision to reason about).
    key: String,
    /// The latest mtime or ctime among them, in whole seconds.
    newest: i64,
}

impl Fingerprint {
    /// Whether every file was last changed early enough before a build at `built` (seconds)
    /// that any later change moves its ctime to a time not seen before (module documentation).
    fn settled(&self, built: i64) -> bool {
        self.newest <= built.saturating_sub(SETTLE_SECS)
    }
}

/// The current time in whole seconds, `None` before 1970.
fn now_secs() -> Option<i64> {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(d.as_secs()).ok()
}

fn fingerprint(main: &Path) -> Option<Fingerprint> {
    use std::os::unix::ffi::OsStrExt;
    // Every login computes this: the raw fields, no text formatting, no hashing.
    let mut fp: Vec<u8> = Vec::with_capacity(512);
    let mut newest = i64::MIN;
    let mut add = |p: &Path| -> Option<()> {
        let m = std::fs::symlink_metadata(p).ok()?;
        newest = newest.max(m.mtime()).max(m.ctime());
        fp.extend_from_slice(p.as_os_str().as_bytes());
        fp.push(0);
        for n in [
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime() as u64,
            m.mtime_nsec() as u64,
            m.ctime() as u64,
            m.ctime_nsec() as u64,
            u64::from(m.mode()),
            u64::from(m.uid()),
            u64::from(m.gid()),
        ] {
            fp.extend_from_slice(&n.to_le_bytes());
        }
        Some(())
    };
    // The main file's directory: a rename there (an editor saving, a file swapped in and out
    // during a load) moves its times even where a rename leaves the file's ctime alone.
    add(main
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new(".")))?;
    add(main)?;
    let dir = config::dropin_dir(main)?;
    if dir.exists() {
        add(&dir)?;
        for f in config::dropin_files(&dir).ok()? {
            add(&f)?;
        }
    } else {
        fp.extend_from_slice(b"no policy.d\0");
    }
    Some(Fingerprint {
        key: hex(&fp),
        newest,
    })
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    // Bytes, not chars: every login makes a few hundred digits of the fingerprint.
    let digit = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
    let mut out = Vec::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(b & 15));
    }
    String::from_utf8(out).unwrap_or_default()
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

/// The text of the cache for `policy`, made from the files with fingerprint `fp` by a load
/// that began at `built` (seconds), or `None` if something in it cannot be written safely.
fn serialize(policy: &Policy, fp: &str, built: i64) -> Option<String> {
    let mut out = format!("{MAGIC}\t{fp}\t{built}\n");
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
        "N\t{}\t{}\t{}\t{}\t{issuer}",
        u8::from(e.at_login),
        e.grace_period.secs(),
        e.recovery_codes,
        e.qr
    );
    // Where enrollment at login is allowed from: absent, or the entries (never an empty list;
    // an entry has no tab or newline, and reads back as itself).
    match &e.at_login_from {
        None => out.push_str("L\t0\n"),
        Some(list) => {
            out.push_str("L\t1");
            for o in list {
                let text = o.to_string();
                if !clean(&text) {
                    return None;
                }
                out.push('\t');
                out.push_str(&text);
            }
            out.push('\n');
        }
    }
    let t = &policy.totp;
    let _ = writeln!(
        out,
        "T\t{}\t{}\t{}\t{}",
        t.params.algorithm.as_str(),
        t.params.digits,
        t.params.period,
        t.window
    );
    storecfg::write(&mut out, &policy.store, &policy.files)?;
    let mut rules = 0usize;
    // Network rules (kind n), in the text order of their networks.
    let mut networks: Vec<(String, &RuleEntry)> = policy
        .networks
        .iter()
        .map(|(n, r)| (n.to_string(), r))
        .collect();
    networks.sort_by(|a, b| a.0.cmp(&b.0));
    let networks: BTreeMap<String, RuleEntry> =
        networks.into_iter().map(|(n, r)| (n, r.clone())).collect();
    // In byte order of the lines: kinds g < n < s < u, then names (a tab sorts before any name
    // character, so line order is name order).
    for (kind, map) in [
        ("g", &policy.groups),
        ("n", &networks),
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
/// a complete cache for the files with fingerprint `fp`, made when they were settled, and read
/// at `now` (seconds) by a clock that is not behind the time it was made.
#[cfg(test)]
fn deserialize(text: &str, fp: &Fingerprint, now: i64, wanted: &Wanted<'_>) -> Option<Policy> {
    match deserialize_lazy(text, fp, now, wanted.user, wanted.service, &mut |_| {
        Ok(wanted.groups.to_vec())
    })? {
        Ok((p, _)) => Some(p),
        Err(_) => None,
    }
}

/// The subject's groups, asked for only when the policy has a `[groups.X]` rule.
/// It gets the names of the policy's groups when there are at most [`FEW_GROUPS`] (the subject's
/// membership in those is all that matters), or `None` for "all of the subject's groups".
pub type GroupsFn<'a> = dyn FnMut(Option<&[&str]>) -> Result<Vec<String>, String> + 'a;

/// Up to this many `[groups.X]` rules, a login asks about those groups by name
/// ([`crate::system::member_of_in`]) rather than for all of the user's groups.
pub const FEW_GROUPS: usize = 16;

/// [`deserialize`] for `user` and `service`, with the groups looked up through `groups` only
/// when the policy has group rules: `None` when the text is not a usable cache, `Some(Err)`
/// when the group lookup failed.
fn deserialize_lazy(
    text: &str,
    fp: &Fingerprint,
    now: i64,
    user: &str,
    service: Option<&str>,
    groups_of: &mut GroupsFn<'_>,
) -> Option<Result<(Policy, Vec<String>), String>> {
    let mut lines = text.lines();
    let header = lines.next()?;
    let (key, built) = header
        .strip_prefix(MAGIC)?
        .strip_prefix('\t')?
        .split_once('\t')?;
    let built: i64 = built.parse().ok()?;
    if key != fp.key || !fp.settled(built) || now < built {
        return None;
    }
    let mut policy = Policy::default();
    // Each header line exactly once, so that a line lost is never a default taken.
    let mut seen = [false; 8];
    let mut once = |i: usize| -> Option<()> {
        let slot = seen.get_mut(i)?;
        (!*slot).then_some(())?;
        *slot = true;
        Some(())
    };
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
                once(0)?;
                policy.mode = Setting {
                    value: v.parse::<Mode>().ok()?,
                    source: parse_src(a, b, c, &policy.files)?,
                }
            }
            ["S", "admin_group", v, a, b, c] => {
                once(1)?;
                policy.admin_group = Setting {
                    value: (*v).to_owned(),
                    source: parse_src(a, b, c, &policy.files)?,
                }
            }
            ["N", at, grace, n, qr, has, issuer] => {
                once(2)?;
                policy.enrollment.at_login = *at == "1";
                policy.enrollment.grace_period = PolicyDuration(grace.parse().ok()?);
                policy.enrollment.recovery_codes = n.parse().ok()?;
                policy.enrollment.qr = qr.parse().ok()?;
                policy.enrollment.issuer = (*has == "1").then(|| (*issuer).to_owned());
            }
            ["L", "0"] => {
                once(3)?;
                policy.enrollment.at_login_from = None;
            }
            ["L", "1", entries @ ..] if !entries.is_empty() => {
                once(3)?;
                let list = entries
                    .iter()
                    .map(|e| e.parse::<Origin>().ok())
                    .collect::<Option<Vec<_>>>()?;
                policy.enrollment.at_login_from = Some(list);
            }
            ["T", alg, digits, period, window] => {
                once(4)?;
                policy.totp.params = Params {
                    algorithm: alg.parse::<Algorithm>().ok()?,
                    digits: digits.parse().ok()?,
                    period: period.parse().ok()?,
                };
                policy.totp.window = window.parse().ok()?;
            }
            [kind @ ("K" | "D" | "P"), ..] => {
                once(match *kind {
                    "K" => 5,
                    "D" => 6,
                    _ => 7,
                })?;
                storecfg::read(&f, &mut policy.store, &policy.files)?;
            }
            _ => return None,
        }
    }
    if !seen.iter().all(|s| *s) {
        return None;
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
    if let Some(r) = find("u", user)? {
        users.insert(user.to_owned(), r);
    }
    // Rule lines are sorted by kind: is there any group rule at all? If not, the user's groups
    // (every NSS source: files, then sss or ldap where configured) are never asked for.
    let first_g = rules.partition_point(|l| rule_key(l).0 < "g");
    let end_g = rules.partition_point(|l| rule_key(l).0 <= "g");
    let group_rules = rules.get(first_g..end_g).unwrap_or_default();
    let wanted_groups = if group_rules.is_empty() {
        Vec::new()
    } else {
        let names: Vec<&str> = group_rules.iter().map(|l| rule_key(l).1).collect();
        let asked = if names.len() <= FEW_GROUPS {
            groups_of(Some(&names))
        } else {
            groups_of(None)
        };
        match asked {
            Ok(g) => g,
            Err(e) => return Some(Err(e)),
        }
    };
    let mut groups = BTreeMap::new();
    for g in &wanted_groups {
        if let Some(r) = find("g", g)? {
            groups.insert(g.clone(), r);
        }
    }
    let mut services = BTreeMap::new();
    if let Some(s) = service
        && let Some(r) = find("s", s)?
    {
        services.insert(s.to_owned(), r);
    }
    // Every network rule: which one applies is the login's address's business.
    let first_n = rules.partition_point(|l| rule_key(l).0 < "n");
    let end_n = rules.partition_point(|l| rule_key(l).0 <= "n");
    for line in rules.get(first_n..end_n).unwrap_or_default() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["R", "n", net, mode, a, b, c] => {
                policy.networks.insert(
                    net.parse().ok()?,
                    RuleEntry {
                        mode: mode.parse().ok()?,
                        source: parse_src(a, b, c, &policy.files)??,
                    },
                );
            }
            _ => return None,
        }
    }
    policy.users = users;
    policy.groups = groups;
    policy.services = services;
    Some(Ok((policy, wanted_groups)))
}

impl Policy {
    /// What one login needs of the system policy at `main`: from the cache in `store` when it
    /// was made from exactly these files and they were settled then (see the module
    /// documentation), otherwise by a full [`Policy::load_system`] (which then refreshes the
    /// cache if the files are settled). The result holds only the rules `wanted` can match, so
    /// [`crate::resolve::resolve`] for that subject decides exactly as with the whole policy.
    pub fn load_for(
        main: &Path,
        store: &Store,
        wanted: &Wanted<'_>,
    ) -> Result<Policy, PolicyError> {
        let got = Policy::load_for_lazy(main, store, wanted.user, wanted.service, &mut |_| {
            Ok(wanted.groups.to_vec())
        });
        match got {
            Ok((p, _)) => Ok(p),
            Err(LazyLoadError::Policy(e)) => Err(e),
            // The closure above cannot fail.
            Err(LazyLoadError::Groups(_)) => Policy::load_system(main),
        }
    }

    /// [`Policy::load_for`] for `user` and `service`, asking `groups` for the user's groups
    /// only when the policy has a `[groups.X]` rule (a group lookup goes through every NSS
    /// source: a login that no group rule can affect need not pay for it). Returns the policy
    /// and the groups it was restricted to (empty when none were asked for).
    pub fn load_for_lazy(
        main: &Path,
        store: &Store,
        user: &str,
        service: Option<&str>,
        groups: &mut GroupsFn<'_>,
    ) -> Result<(Policy, Vec<String>), LazyLoadError> {
        // Taken before any file is looked at: the build time `B` of a copy made below.
        let now = now_secs();
        let fp = fingerprint(main);
        if let (Some(fp), Some(now)) = (&fp, now)
            && let Ok(Some(text)) = store.read_aux(CACHE_NAME)
            && let Some(got) = deserialize_lazy(&text, fp, now, user, service, groups)
        {
            return got.map_err(LazyLoadError::Groups);
        }
        let policy = Policy::load_system(main).map_err(LazyLoadError::Policy)?;
        // Only if the files did not change while they were read, and no change after `now`
        // could go unseen by the fingerprint.
        if let (Some(fp), Some(built)) = (fp, now)
            && fp.settled(built)
            && fingerprint(main).as_ref() == Some(&fp)
            && let Some(text) = serialize(&policy, &fp.key, built)
        {
            // A cache that cannot be written costs only speed.
            let _ = store.replace_aux(CACHE_NAME, &text);
        }
        let wanted_groups = if policy.groups.is_empty() {
            Vec::new()
        } else if policy.groups.len() <= FEW_GROUPS {
            let names: Vec<&str> = policy.groups.keys().map(String::as_str).collect();
            groups(Some(&names)).map_err(LazyLoadError::Groups)?
        } else {
            groups(None).map_err(LazyLoadError::Groups)?
        };
        Ok((policy, wanted_groups))
    }
}

/// Why [`Policy::load_for_lazy`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LazyLoadError {
    /// The policy does not load.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The user's groups cannot be looked up.
    #[error("{0}")]
    Groups(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Policy {
        Policy::parse_one(
            Path::new("/etc/twofold/policy.toml"),
            "mode = \"required\"\nadmin_group = \"ops\"\n[enrollment]\nat_login = false\ngrace_period = \"3d\"\nissuer = \"Acme VPN\"\nrecovery_codes = 4\nqr = \"light\"\nat_login_from = [\"local\", \"10.0.0.0/8\", \"2001:DB8::/32\", \"192.168.1.7\", \"Jump.example.org\"]\n[totp]\nalgorithm = \"SHA256\"\ndigits = 8\nperiod = \"60s\"\nwindow = 2\n[users.alice]\nmode = \"disabled\"\n[users.ab]\nmode = \"optional\"\n[users.\"ab.c\"]\nmode = \"required\"\n[groups.wheel]\nmode = \"required\"\n[groups.staff]\nmode = \"optional\"\n[services.sudo]\nmode = \"disabled\"\n[networks.\"10.0.0.0/8\"]\nmode = \"disabled\"\n[networks.\"2001:db8::/32\"]\nmode = \"optional\"\n[networks.\"10.1.2.3\"]\nmode = \"required\"\n[store]\nbackend = \"ldap\"\n[store.ldap]\nuri = [\"ldaps://ldap1.example.org\", \"ldap://[2001:db8::7]:3890/\"]\nbase = \"ou=twofold,dc=example,dc=org\"\nbind_dn = \"cn=twofold,ou=services,dc=example,dc=org\"\nbind_password_file = \"/etc/twofold/ldap.secret\"\nstarttls = true\nca_file = \"/etc/ssl/ldap-ca.pem\"\ntimeout = \"1s500ms\"\nlink_oath_users = true\nuser_base = \"ou=people,dc=example,dc=org\"\n[store.offline]\nenabled = true\nmax_age = \"12h\"\n",
        )
        .unwrap()
    }

    /// Files last changed at second 1000, a build at 1002 (the earliest that may be kept).
    fn fp(key: &str) -> Fingerprint {
        Fingerprint {
            key: key.into(),
            newest: 1000,
        }
    }
    const BUILT: i64 = 1002;

    #[test]
    fn round_trips_what_a_subject_needs() {
        let p = sample();
        assert_eq!(p.enrollment.at_login_from.as_ref().unwrap().len(), 5);
        let text = serialize(&p, "fp", BUILT).unwrap();
        let groups = vec!["staff".to_owned(), "nosuch".to_owned()];
        let w = Wanted {
            user: "ab",
            groups: &groups,
            service: Some("sudo"),
        };
        let got = deserialize(&text, &fp("fp"), BUILT, &w).unwrap();
        assert_eq!(got.mode, p.mode);
        assert_eq!(got.admin_group, p.admin_group);
        assert_eq!(got.enrollment, p.enrollment);
        assert_eq!(got.totp, p.totp);
        assert_eq!(got.store, p.store);
        assert_eq!(got.files, p.files);
        assert_eq!(got.users.len(), 1);
        assert_eq!(got.users["ab"], p.users["ab"]);
        assert_eq!(got.groups.len(), 1);
        assert_eq!(got.groups["staff"], p.groups["staff"]);
        assert_eq!(got.services["sudo"], p.services["sudo"]);
        // Every network rule, whoever logs in.
        assert_eq!(p.networks.len(), 3);
        assert_eq!(got.networks, p.networks);
        // Names that share a prefix are told apart.
        let w = Wanted {
            user: "ab.c",
            groups: &[],
            service: None,
        };
        let got = deserialize(&text, &fp("fp"), BUILT, &w).unwrap();
        assert_eq!(got.users["ab.c"].mode, Mode::Required);
        // Without at_login_from: absent again, not an empty list.
        let mut q = sample();
        q.enrollment.at_login_from = None;
        let text = serialize(&q, "fp", BUILT).unwrap();
        let got = deserialize(&text, &fp("fp"), BUILT, &w).unwrap();
        assert_eq!(got.enrollment, q.enrollment);
        assert!(got.enrollment.at_login_allowed_from("198.51.100.1"));
        // The QR drawing of the login prompt, every value (the sample has "light").
        assert_eq!(p.enrollment.qr, crate::qr::LoginQr::Light);
        for qr in [crate::qr::LoginQr::Dark, crate::qr::LoginQr::None] {
            q.enrollment.qr = qr;
            let text = serialize(&q, "fp", BUILT).unwrap();
            let got = deserialize(&text, &fp("fp"), BUILT, &w).unwrap();
            assert_eq!(got.enrollment.qr, qr);
        }
        // The store: every key of the sample set, and where; then SASL EXTERNAL with the
        // defaults, and no [store] at all.
        assert_eq!(p.store.sources.len(), 16);
        let l = p.store.ldap.clone().unwrap();
        assert_eq!(l.timeout, std::time::Duration::from_millis(1500));
        for (ldap, offline) in [
            (
                Some(crate::config::store::LdapConfig {
                    uris: vec!["ldapi:///".into()],
                    bind: crate::config::store::Bind::SaslExternal,
                    starttls: false,
                    ca_file: None,
                    link_oath_users: false,
                    user_base: None,
                    ..l
                }),
                crate::config::store::OfflineConfig::default(),
            ),
            (None, crate::config::store::OfflineConfig::default()),
        ] {
            q.store.ldap = ldap;
            q.store.offline = offline;
            let text = serialize(&q, "fp", BUILT).unwrap();
            let got = deserialize(&text, &fp("fp"), BUILT, &w).unwrap();
            assert_eq!(got.store, q.store);
        }
        q.store = Default::default();
        let text = serialize(&q, "fp", BUILT).unwrap();
        let got = deserialize(&text, &fp("fp"), BUILT, &w).unwrap();
        assert_eq!(got.store, q.store);
    }

    #[test]
    fn refuses_other_fingerprints_and_cut_files() {
        let p = sample();
        let text = serialize(&p, "fp", BUILT).unwrap();
        let w = Wanted {
            user: "alice",
            groups: &[],
            service: None,
        };
        assert!(deserialize(&text, &fp("other"), BUILT, &w).is_none());
        // Every truncation at a line boundary is refused (the trailer counts the rules).
        let lines: Vec<&str> = text.lines().collect();
        for n in 1..lines.len() {
            let cut = lines[..n].join("\n");
            assert!(
                deserialize(&cut, &fp("fp"), BUILT, &w).is_none(),
                "accepted {n} lines"
            );
        }
        // So is a header line missing or doubled anywhere.
        for n in 1..lines.len() {
            if lines[n].starts_with("R\t") || lines[n].starts_with("F\t") {
                continue;
            }
            let mut without = lines.clone();
            without.remove(n);
            assert!(
                deserialize(&without.join("\n"), &fp("fp"), BUILT, &w).is_none(),
                "accepted without {}",
                lines[n]
            );
            let mut doubled = lines.clone();
            doubled.insert(n, lines[n]);
            if !lines[n].starts_with("Z\t") {
                assert!(
                    deserialize(&doubled.join("\n"), &fp("fp"), BUILT, &w).is_none(),
                    "accepted twice {}",
                    lines[n]
                );
            }
        }
        for bad in [
            text.replace("R\tu\talice\tdisabled", "R\tu\talice\tmaybe"),
            text.replace("\t10.0.0.0/8\t", "\t10.0.0.1/8\t"),
            text.replace("L\t1\t", "L\t2\t"),
            text.replace("K\tldap\t", "K\tnfs\t"),
            text.replace("D\t1\t", "D\t2\t"),
            text.replace("\t+cn=twofold", "\t-"),
            text.replace(
                "\tldaps://ldap1.example.org\tldap://[2001:db8::7]:3890/\n",
                "\n",
            ),
            text.replace("\tbackend\t0\t", "\tbackend\t9\t"),
            text.replace(&format!("\t{BUILT}\n"), "\tsoon\n"),
        ] {
            assert_ne!(bad, text);
            assert!(deserialize(&bad, &fp("fp"), BUILT, &w).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_copy_is_used_only_for_files_settled_before_its_build() {
        let p = sample();
        let w = Wanted {
            user: "alice",
            groups: &[],
            service: None,
        };
        // Files changed at 1000: settled for a build at 1002, not at 1001 or 1000 (a change
        // in that second, or in the tick before it, would keep the timestamp).
        assert!(fp("fp").settled(1002));
        assert!(!fp("fp").settled(1001));
        assert!(!fp("fp").settled(1000));
        assert!(!fp("fp").settled(999));
        for built in [999, 1000, 1001] {
            let text = serialize(&p, "fp", built).unwrap();
            assert!(
                deserialize(&text, &fp("fp"), 5000, &w).is_none(),
                "built {built}"
            );
        }
        let text = serialize(&p, "fp", 1002).unwrap();
        assert!(deserialize(&text, &fp("fp"), 1002, &w).is_some());
        assert!(deserialize(&text, &fp("fp"), 9999, &w).is_some());
        // A clock that reads earlier than the build was set back: the copy is not trusted.
        assert!(deserialize(&text, &fp("fp"), 1001, &w).is_none());
    }
}
