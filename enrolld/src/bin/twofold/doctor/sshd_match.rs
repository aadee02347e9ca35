//! sshd's `Match` blocks: where they are, which connections they can apply to, and the
//! representative connections doctor asks `sshd -T -C` about.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A `Match` line of sshd's configuration.
#[derive(Debug, Clone)]
pub(super) struct MatchBlock {
    pub(super) file: PathBuf,
    pub(super) line: usize,
    pub(super) text: String,
    pub(super) criteria: Vec<(String, String)>,
}

/// `Match` lines of `config` and the files it `Include`s (globs in the last component).
pub(super) fn match_blocks(config: &Path, depth: usize, out: &mut Vec<MatchBlock>) {
    let Ok(text) = std::fs::read_to_string(config) else {
        return;
    };
    for (i, raw) in text.lines().enumerate() {
        let l = raw.split('#').next().unwrap_or("").trim();
        let mut words = l.split_whitespace();
        let Some(key) = words.next() else { continue };
        if key.eq_ignore_ascii_case("include") && depth < 8 {
            for pat in words {
                let p = if Path::new(pat).is_absolute() {
                    PathBuf::from(pat)
                } else {
                    Path::new("/etc/ssh").join(pat)
                };
                for f in glob_last(&p) {
                    match_blocks(&f, depth + 1, out);
                }
            }
        } else if key.eq_ignore_ascii_case("match") {
            let toks: Vec<&str> = words.collect();
            let mut criteria = Vec::new();
            let mut it = toks.iter();
            while let Some(k) = it.next() {
                let k = k.to_ascii_lowercase();
                if k == "all" {
                    criteria.push((k, String::new()));
                } else {
                    criteria.push((k, it.next().map(|s| (*s).to_owned()).unwrap_or_default()));
                }
            }
            out.push(MatchBlock {
                file: config.to_owned(),
                line: i + 1,
                text: l.to_owned(),
                criteria,
            });
        }
    }
}

/// Files matching `p`, whose last component may hold `*` and `?`.
fn glob_last(p: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(pat)) = (p.parent(), p.file_name()) else {
        return Vec::new();
    };
    let pat = pat.to_string_lossy();
    if !pat.contains(['*', '?']) {
        return vec![p.to_owned()];
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| wildcard(&pat, &e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// sshd's pattern matching: `*` and `?`.
pub(super) fn wildcard(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = s.chars().collect();
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, t.get(i..).unwrap_or(&[]))),
            Some(('?', rest)) => t.split_first().is_some_and(|(_, tr)| go(rest, tr)),
            Some((c, rest)) => t
                .split_first()
                .is_some_and(|(tc, tr)| tc == c && go(rest, tr)),
        }
    }
    go(&p, &t)
}

/// A pattern list (`a,b,!c`) against `s`: some positive pattern matches and no negated one.
pub(super) fn pattern_list(list: &str, s: &str) -> bool {
    let mut hit = false;
    for p in list.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if wildcard(neg, s) {
                return false;
            }
        } else if wildcard(p, s) {
            hit = true;
        }
    }
    hit
}

/// Whether `m` can apply to a connection of `user` from `addr` (criteria doctor cannot
/// evaluate count as matching).
pub(super) fn match_applies(m: &MatchBlock, user: &str, addr: &str) -> bool {
    m.criteria.iter().all(|(k, v)| match k.as_str() {
        "user" => pattern_list(v, user),
        "group" => twofold_policy::system::lookup(user)
            .ok()
            .flatten()
            .is_some_and(|a| a.groups.iter().any(|g| pattern_list(v, g))),
        "address" => v.split(',').any(|p| {
            let p = p.trim_start_matches('!');
            p.contains('/') || wildcard(p, addr)
        }),
        _ => true,
    })
}

/// Connection specs for `sshd -T -C`: the required users, root, a plain user, and the users
/// and addresses the Match lines name; local and a documentation address.
pub(super) fn specs(blocks: &[MatchBlock], required: &[String]) -> Vec<(String, String)> {
    let mut users: Vec<String> = vec!["root".into()];
    users.extend(required.iter().cloned());
    let mut addrs: Vec<String> = vec!["127.0.0.1".into(), "203.0.113.7".into()];
    for b in blocks {
        for (k, v) in &b.criteria {
            for item in v.split(',') {
                if item.starts_with('!') || item.contains(['*', '?']) || item.is_empty() {
                    continue;
                }
                match k.as_str() {
                    "user" => users.push(item.to_owned()),
                    "group" => {
                        if let Ok(Some(g)) = nix::unistd::Group::from_name(item) {
                            users.extend(g.mem.into_iter().take(2));
                        }
                    }
                    "address" => addrs.push(cidr_host(item)),
                    _ => {}
                }
            }
        }
    }
    users.push("nobody".into());
    let mut seen = BTreeSet::new();
    users.retain(|u| seen.insert(u.clone()) && twofold_policy::UserName::parse(u).is_ok());
    users.truncate(32);
    let mut seen = BTreeSet::new();
    addrs.retain(|a| seen.insert(a.clone()) && a.parse::<std::net::IpAddr>().is_ok());
    addrs.truncate(6);
    let mut out = Vec::new();
    for u in &users {
        for a in &addrs {
            out.push((u.clone(), a.clone()));
        }
    }
    out
}

/// A host address inside `a/len` (the network address + 1 for IPv4), or `a` itself.
fn cidr_host(item: &str) -> String {
    let Some((a, _)) = item.split_once('/') else {
        return item.to_owned();
    };
    match a.parse::<std::net::Ipv4Addr>() {
        Ok(v4) => std::net::Ipv4Addr::from(u32::from(v4).wrapping_add(1)).to_string(),
        Err(_) => a.to_owned(),
    }
}
