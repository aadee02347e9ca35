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
//! - **When the directory returns**: at this host's next contact with it (any user's login
//!   here, or the user's own), the steps accepted offline are pushed to the directory (a
//!   compare-and-swap up to the highest), and recovery codes used offline are deleted there:
//!   a recovery code does not expire, so it must not wait for that user's next login here. A
//!   user's check online does the same before the code is checked.
//! - **Following the directory**: whenever this host reads a user it keeps a copy of online
//!   and the directory says otherwise (a recovery code used on another host, an admin's reset
//!   or exemption, steps accepted elsewhere), the copy takes what the directory says, so that
//!   an outage afterwards does not bring back what the directory no longer allows.
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

/// `USER.unmerged`: the copy accepted a code or a recovery code offline that the directory
/// has not been told of yet.
const UNMERGED: &str = "unmerged";

fn unmerged_name(user: &UserName) -> String {
    format!("{user}.{UNMERGED}")
}

/// Some copy on this host has something unmerged: set after `USER.unmerged`, cleared before
/// the sweep lists them (so one written meanwhile sets it again).
const UNMERGED_FLAG: &str = "offline.unmerged";

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
    // A refresh dated after now (a clock set back since) is of no known age.
    let now = crate::time::now();
    match read_synced(store, user)? {
        Some(s) if s.at <= now && now - s.at <= max_age => Ok(()),
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
    let checked = store.local.check_attempt(user, a)?;
    if checked.outcome.accepted() {
        // For the directory when it returns (see `sweep`); a failure here is the login's:
        // what was used must not stay unknown to the fleet.
        store.local.replace_aux(&unmerged_name(user), "")?;
        store.local.replace_aux(UNMERGED_FLAG, "")?;
    }
    Ok(checked)
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

/// Keeps this host's copy of `user` in step with the directory as just read online
/// (`fetched`): what the copy used offline goes back first ([`merge`]), then the copy takes
/// the directory's record and its last accepted steps, if they differ. Nothing without a
/// copy, or when nothing differs (no lock taken). Whether the directory was changed (the
/// caller reads it again).
pub(super) fn follow(store: &LdapStore, user: &UserName, fetched: &Fetched) -> Result<bool> {
    if store.settings.offline_max_age.is_none() || !has_copy(store, user)? {
        return Ok(false);
    }
    let dns = store.dns(user);
    let (record, counters) = fetched
        .to_state(user)
        .map_err(|why| store.directory(&dns.account, why))?;
    let record = record.unwrap_or_else(|| Record::new(user.as_str()));
    let behind = |local: &crate::record::Counters| {
        counters
            .last_steps
            .iter()
            .any(|(id, s)| local.last_steps.get(id).is_none_or(|l| l < s))
    };
    let (local, _) = store.local.read_counters_lenient(user)?;
    let same = store.local.read_record(user)?.as_ref() == Some(&record)
        && !behind(&local)
        && store.local.read_aux(&unmerged_name(user))?.is_none();
    if same {
        return Ok(false);
    }
    let lock = store.local.lock(user)?;
    let fresh;
    let (fetched, changed) = if merge(store, user, &dns, fetched)? {
        fresh = store.fetch(user)?;
        (&fresh, true)
    } else {
        (fetched, false)
    };
    let mut kept = lock.read()?.counters;
    let state = store.state_of(user, fetched, &kept)?;
    if behind(&kept) {
        for (id, step) in &state.counters.last_steps {
            let last = kept.last_steps.entry(*id).or_insert(*step);
            *last = (*last).max(*step);
        }
        lock.write_counters(&kept)?;
    }
    refresh(store, user, &lock, &state)?;
    Ok(changed)
}

/// Pushes to the directory what every copy of this host used offline and has not pushed yet
/// (the users marked `USER.unmerged`), at this host's first contact with the directory after
/// an outage, whoever logs in. Best effort: what cannot be pushed now (a user's lock held, an
/// error) stays marked for the next contact.
pub(super) fn sweep(store: &LdapStore) {
    if store.settings.offline_max_age.is_none()
        || !matches!(store.local.read_aux(UNMERGED_FLAG), Ok(Some(_)))
    {
        return;
    }
    if store.local.remove_aux(UNMERGED_FLAG).is_err() {
        return;
    }
    let Ok(users) = store.local.users_with(UNMERGED) else {
        let _ = store.local.replace_aux(UNMERGED_FLAG, "");
        return;
    };
    for user in users {
        let pushed = (|| -> Result<()> {
            let _lock = store.local.lock(&user)?;
            let fetched = store.fetch(&user)?;
            merge(store, &user, &store.dns(&user), &fetched)?;
            Ok(())
        })();
        if pushed.is_err() {
            let _ = store.local.replace_aux(UNMERGED_FLAG, "");
        }
    }
}

/// Pushes what was used on the copy to the directory: steps newer than the directory's, and
/// recovery codes the copy no longer has that it had when refreshed; then the copy's mark of
/// something unmerged goes. Whether anything changed (the caller reads the directory again).
/// Under the user's lock on this host.
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
    store.local.remove_aux(&unmerged_name(user))?;
    Ok(changed)
}
