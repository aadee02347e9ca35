//! The offline copy (`[store.offline]`, opt-in): when the directory cannot be reached, users
//! who logged in on this host before still can, for a while, with what this host kept of them.
//!
//! - **What is kept**: at each online login accepted on this host (and each change made from
//!   this host to a user it keeps a copy of), the user's record goes into this host's files
//!   store (`USER.toml`, root's, 0600: the same protection as the files backend) with the
//!   counters, and `USER.synced` says when, and which recovery codes the copy had then.
//! - **When it is used**: only while the directory is unreachable, and only if that last
//!   refresh is younger than `max_age`. The check is then the files backend's
//!   ([`crate::store::Store`] under its lock): replay refusal against the steps this host
//!   accepted, online or offline, and this host's throttle.
//! - **When the directory returns**: at the user's next online check here, the steps accepted
//!   offline are pushed to the directory (a compare-and-swap up to the highest), and recovery
//!   codes used offline are deleted there, before the code is checked.
//!
//! What it gives away, documented in README: a secret on every host the user logged in to
//! (as with the files backend), and for up to `max_age` a copy that may be older than an admin's
//! reset or exemption made elsewhere while this host could not see the directory.

use crate::ldap::{Mod, ModOp};
use crate::login::{Attempt, Checked};
use crate::record::Record;
use crate::store::{Locked, Result, StateStore as _, StoreError, UserState};
use crate::throttle::Gate;
use crate::username::UserName;

use super::map::{self, Dns, Fetched, at};
use super::{Failed, LdapStore};

/// What `USER.synced` holds: when the copy was last refreshed, and its recovery codes then.
struct Synced {
    at: u64,
    recovery: Vec<String>,
}

fn synced_name(user: &UserName) -> String {
    format!("{user}.synced")
}

fn read_synced(store: &LdapStore, user: &UserName) -> Result<Option<Synced>> {
    let Some(text) = store.local.read_aux(&synced_name(user))? else {
        return Ok(None);
    };
    let mut lines = text.lines();
    let Some(at) = lines.next().and_then(|l| l.trim().parse().ok()) else {
        return Ok(None);
    };
    Ok(Some(Synced {
        at,
        recovery: lines.map(str::to_owned).filter(|l| !l.is_empty()).collect(),
    }))
}

/// Whether this host keeps a copy of `user`.
pub(super) fn has_copy(store: &LdapStore, user: &UserName) -> Result<bool> {
    Ok(read_synced(store, user)?.is_some())
}

/// The copy's verdict: usable now (fresh enough) or the directory's error stands.
fn usable(store: &LdapStore, user: &UserName, unreachable: StoreError) -> Result<()> {
    let Some(max_age) = store.settings.offline_max_age else {
        return Err(unreachable);
    };
    match read_synced(store, user)? {
        Some(s) if crate::time::now().saturating_sub(s.at) <= max_age => Ok(()),
        _ => Err(unreachable),
    }
}

/// The record when the directory is unreachable: the copy's, if it may be used.
pub(super) fn record_or(
    store: &LdapStore,
    user: &UserName,
    unreachable: StoreError,
) -> Result<Option<Record>> {
    usable(store, user, unreachable)?;
    store.local.read_record(user)
}

/// The throttle before the prompt, on the copy.
pub(super) fn gate_before_prompt(
    store: &LdapStore,
    user: &UserName,
    source: &str,
    now: u64,
    unreachable: StoreError,
) -> Result<Gate> {
    usable(store, user, unreachable)?;
    store.local.gate_before_prompt(user, source, now)
}

/// The check on the copy, by the files backend.
pub(super) fn check_attempt(
    store: &LdapStore,
    user: &UserName,
    a: &Attempt<'_>,
    unreachable: StoreError,
) -> Result<Checked> {
    usable(store, user, unreachable)?;
    store.local.check_attempt(user, a)
}

/// Refreshes the copy from `state`, as written online (under this host's lock of the user).
pub(super) fn refresh(
    store: &LdapStore,
    user: &UserName,
    lock: &Locked<'_>,
    state: &UserState,
) -> Result<()> {
    let record = state
        .record
        .clone()
        .unwrap_or_else(|| Record::new(user.as_str()));
    let kept = lock.read()?;
    if kept.record.as_ref() != Some(&record) {
        lock.write_record(&record)?;
    }
    let mut text = format!("{}\n", crate::time::now());
    if let Some(e) = &record.enrollment {
        for h in &e.recovery_codes {
            text.push_str(h);
            text.push('\n');
        }
    }
    store.local.replace_aux(&synced_name(user), &text)
}

/// Pushes what was used on the copy to the directory: steps newer than the directory's, and
/// recovery codes the copy no longer has that it had when refreshed. Whether anything changed
/// (the caller reads the directory again).
pub(super) fn merge(
    store: &LdapStore,
    user: &UserName,
    dns: &Dns,
    fetched: &Fetched,
) -> Result<bool> {
    let Some(synced) = read_synced(store, user)? else {
        return Ok(false);
    };
    let mut changed = false;
    let (local, _) = store.local.read_counters_lenient(user)?;
    for id in fetched.active_ids() {
        let dir = fetched
            .tokens
            .get(&id)
            .and_then(|t| map::int(t, at::LAST_STEP));
        let Some(here) = local.last_steps.get(&id).copied() else {
            continue;
        };
        if dir.is_none_or(|d| here > d) {
            let token = dns.token(id);
            let mods = map::step_mods(dir, here, crate::time::now());
            match store.with_conn(|c| c.modify(&token, &mods)) {
                Ok(()) => changed = true,
                Err(Failed::Ldap(e)) if e.is_conflict() => changed = true,
                Err(f) => return Err(f.into_store(store, &token)),
            }
        }
    }
    let copy = store.local.read_record(user)?;
    let still: Vec<&String> = copy
        .as_ref()
        .and_then(|r| r.enrollment.as_ref())
        .map(|e| e.recovery_codes.iter().collect())
        .unwrap_or_default();
    let in_dir: Vec<Vec<u8>> = fetched
        .account
        .as_ref()
        .and_then(|a| a.get(at::RECOVERY))
        .map(<[_]>::to_vec)
        .unwrap_or_default();
    for used in synced.recovery.iter().filter(|h| !still.contains(h)) {
        if in_dir.iter().any(|v| v == used.as_bytes()) {
            let mods = vec![Mod {
                op: ModOp::Delete,
                attr: at::RECOVERY.into(),
                values: vec![used.clone().into_bytes()],
            }];
            match store.with_conn(|c| c.modify(&dns.account, &mods)) {
                Ok(()) => changed = true,
                Err(Failed::Ldap(e)) if e.is_conflict() => changed = true,
                Err(f) => return Err(f.into_store(store, &dns.account)),
            }
        }
    }
    Ok(changed)
}
