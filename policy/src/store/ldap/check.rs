//! The code check against the directory: the one decision of [`crate::store::decide`], made
//! on a fresh read, and persisted by compare-and-swap (see the parent module).

use crate::ldap::{Mod, ModOp};
use crate::login::{Attempt, Checked, Outcome};
use crate::store::decide::{self, Decision};
use crate::store::{Result, StoreError};
use crate::throttle::{self, Gate};
use crate::username::UserName;

use super::map::{self, Dns, at};
use super::{Failed, LdapStore, TRIES, offline};

/// The throttle's verdict before the prompt: this host's per-source counts, and the
/// account's consecutive failures from the directory (the read the login made for its
/// resolution, or a new one; the directory found out of reach by that read is not asked
/// again).
pub(super) fn gate_before_prompt(
    store: &LdapStore,
    user: &UserName,
    source: &str,
    now: u64,
) -> Result<Gate> {
    let (local, _) = store.local.read_counters_lenient(user)?;
    let fetched = match store.kept(user).unwrap_or_else(|| store.fetch_kept(user)) {
        Ok(f) => f,
        Err(e @ StoreError::Unreachable { .. }) => {
            return offline::gate_before_prompt(store, user, source, now, e);
        }
        Err(e) => return Err(e),
    };
    let state = store.state_of(user, &fetched, &local)?;
    Ok(throttle::gate(&state.counters, source, now))
}

/// Checks one attempt (see [`crate::login`]): under this host's lock of the user, on a fresh
/// read of the directory, persisted by compare-and-swap and decided again on a fresh read when
/// another host won the race.
pub(super) fn check_attempt(
    store: &LdapStore,
    user: &UserName,
    a: &Attempt<'_>,
) -> Result<Checked> {
    // This host's per-source delay is known without the directory or the lock.
    let (local, _) = store.local.read_counters_lenient(user)?;
    if let Some(wait) = match throttle::gate(&local, a.source, a.at) {
        g @ Gate::Wait { .. } => Some(g),
        _ => None,
    } {
        return Ok(Checked {
            outcome: Outcome::Throttled(wait),
            recovered: None,
        });
    }
    store.forget();
    let lock = store.local.lock(user)?;
    let local_state = lock.read()?;
    let recovered = local_state.counters_recovered.clone();
    let dns = store.dns(user);
    // Whether this attempt's failure is reserved in the directory already: a try that lost a
    // race (another host's login took the step first) does not count the attempt again.
    let mut reserved = false;
    for _ in 0..TRIES {
        let fetched = match store.fetch(user) {
            Ok(f) => f,
            Err(e @ StoreError::Unreachable { .. }) => {
                drop(lock);
                return offline::check_attempt(store, user, a, e);
            }
            Err(e) => return Err(e),
        };
        if store.settings.offline_max_age.is_some() && offline::merge(store, user, &dns, &fetched)?
        {
            // Steps or recovery codes used here while the directory was away went back to it:
            // read it again.
            continue;
        }
        let mut state = store.state_of(user, &fetched, &local_state.counters)?;
        if let Some(outcome) = decide::before_check(&state, a) {
            return Ok(Checked { outcome, recovered });
        }
        // From a source the user never logged in from, the attempt is counted before its
        // code is checked: the per-user bound then holds across hosts checking at once.
        let old_failures = state.counters.user_failures;
        if !reserved && state.enrolled() && !state.counters.known_sources.contains_key(a.source) {
            let mods = map::failures_mods(old_failures, old_failures.saturating_add(1));
            match store.with_conn(|c| c.modify(&dns.account, &mods)) {
                Ok(()) => {
                    state.counters.user_failures = old_failures.saturating_add(1);
                    reserved = true;
                }
                Err(Failed::Ldap(e)) if e.is_conflict() => continue,
                Err(f) => return Err(f.into_store(store, &dns.account)),
            }
        }
        let before = state.clone();
        let decision = decide::decide(&state, a.input, a.window, a.at)
            .map_err(|e| store.directory(&dns.account, e))?;
        let outcome = decide::settle(&mut state, a, decision);
        let committed = match decision {
            Decision::Code { id, step } => {
                let old = before.counters.last_steps.get(&id).copied();
                let mods = map::step_mods_from(old, step, a.at, Some(a.from));
                let token = dns.token(id);
                match store.with_conn(|c| c.modify(&token, &mods)) {
                    Ok(()) => {
                        succeeded(store, &dns, &fetched, &before, &state, reserved, a);
                        true
                    }
                    Err(Failed::Ldap(e)) if e.is_conflict() => false,
                    Err(f) => return Err(f.into_store(store, &token)),
                }
            }
            Decision::Recovery { index } => {
                let hash = before
                    .record
                    .as_ref()
                    .and_then(|r| r.enrollment.as_ref())
                    .and_then(|e| e.recovery_codes.get(index))
                    .cloned()
                    .unwrap_or_default();
                // The code's hash deleted (refused if another host used it first), and in
                // the same modify what a success changes of the account.
                let mut mods = vec![Mod {
                    op: ModOp::Delete,
                    attr: at::RECOVERY.into(),
                    values: vec![hash.into_bytes()],
                }];
                mods.extend(success_mods(&state, true, true));
                mods.extend([
                    Mod {
                        op: ModOp::Replace,
                        attr: at::LAST_LOGIN.into(),
                        values: vec![a.at.to_string().into_bytes()],
                    },
                    Mod {
                        op: ModOp::Replace,
                        attr: at::LAST_FROM.into(),
                        values: vec![a.from.as_bytes().to_vec()],
                    },
                ]);
                match store.with_conn(|c| c.modify(&dns.account, &mods)) {
                    Ok(()) => true,
                    Err(Failed::Ldap(e)) if e.is_conflict() => false,
                    Err(f) => return Err(f.into_store(store, &dns.account)),
                }
            }
            Decision::Replayed | Decision::Invalid if reserved => {
                // Counted already (in this try, or in one that lost a race: then as it stands
                // in the directory now).
                state.counters.user_failures = state.counters.user_failures.max(old_failures);
                true
            }
            Decision::Replayed | Decision::Invalid => {
                let mods = map::failures_mods(old_failures, old_failures.saturating_add(1));
                match store.with_conn(|c| c.modify(&dns.account, &mods)) {
                    Ok(()) => true,
                    Err(Failed::Ldap(e)) if e.is_conflict() => false,
                    Err(f) => return Err(f.into_store(store, &dns.account)),
                }
            }
            Decision::NotEnrolled => return Ok(Checked { outcome, recovered }),
        };
        if !committed {
            // Another host changed the user meanwhile: decide again on what it left.
            continue;
        }
        lock.write_counters(&state.counters)?;
        if matches!(outcome, Outcome::Code | Outcome::RecoveryCode { .. })
            && store.settings.offline_max_age.is_some()
        {
            offline::refresh(store, user, &lock, &state)?;
        }
        return Ok(Checked { outcome, recovered });
    }
    Err(StoreError::Contended {
        target: dns.account,
        tries: TRIES,
    })
}

/// What a success changes of the account entry: its consecutive failures cleared (when there
/// were any: `failed`), and the places the user logged in from (when `known` says they
/// changed). No compare-and-swap: a success ends the run of failures whatever came between.
fn success_mods(state: &crate::store::UserState, failed: bool, known: bool) -> Vec<Mod> {
    let mut mods = Vec::new();
    if failed {
        mods.push(Mod {
            op: ModOp::Replace,
            attr: at::FAILURES.into(),
            values: Vec::new(),
        });
    }
    if known {
        mods.push(Mod {
            op: ModOp::Replace,
            attr: at::KNOWN.into(),
            values: map::known_values(&state.counters),
        });
    }
    mods
}

/// How stale a known place's time in the directory may grow before a login from it writes it
/// again: the places are kept most recent first ([`crate::throttle::KNOWN_SOURCES`]), to the
/// day, and a login from a place known and fresh writes nothing to the account entry.
const KNOWN_REFRESH: u64 = 24 * 3600;

/// After an accepted code (its step, time and place already on the token): the account entry
/// changed only when there is something to change — consecutive failures to clear (`before`
/// had some, or this attempt reserved one) or a place new or stale in the known list — in one
/// modify. Best effort: the code is used up already, which is what matters.
fn succeeded(
    store: &LdapStore,
    dns: &Dns,
    fetched: &map::Fetched,
    before: &crate::store::UserState,
    state: &crate::store::UserState,
    reserved: bool,
    a: &Attempt<'_>,
) {
    let failed = reserved || before.counters.user_failures > 0;
    // As the directory has them (this host's own list may know a place the others do not).
    let in_directory = fetched
        .account
        .as_ref()
        .map(map::known_sources)
        .unwrap_or_default();
    let known = map::shared_source(a.source)
        && in_directory
            .get(a.source)
            .is_none_or(|k| a.at.saturating_sub(k.last) >= KNOWN_REFRESH);
    let mods = success_mods(state, failed, known);
    if mods.is_empty() {
        return;
    }
    if store.with_conn(|c| c.modify(&dns.account, &mods)).is_err() && failed {
        // A directory whose schema lacks the known places still has the failures cleared.
        let _ = store.with_conn(|c| c.modify(&dns.account, &success_mods(state, true, false)));
    }
}
