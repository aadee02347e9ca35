//! The decision of one code check, on a user's state as read under the user's lock (files) or
//! fresh from the directory (LDAP), shared by every backend: which authenticator's code it is
//! (every one is checked, in constant time each), whether its step is newer than the last one
//! accepted, or else which recovery code it is. The backend then persists what the decision
//! used ([`settle`] says what changed) in its own way: a counters write under the lock, or a
//! compare-and-swap in the directory.

use crate::login::{Attempt, Outcome};
use crate::record::Counters;
use crate::throttle::{self, Gate};
use crate::totp::{TotpError, Verdict};

use super::UserState;

/// What a code typed by the user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A current code of authenticator `id`, at `step`, newer than its last accepted step.
    Code {
        /// The authenticator.
        id: u32,
        /// The step it was accepted for.
        step: u64,
    },
    /// The recovery code at this index of the enrollment's list.
    Recovery {
        /// Its index in `recovery_codes`.
        index: usize,
    },
    /// A code that was already accepted once (or an older one).
    Replayed,
    /// Neither a code nor a recovery code.
    Invalid,
    /// The user has no enrollment (any more).
    NotEnrolled,
}

/// Decides what `input` is for the user whose state is `state`, at `now` ± `window` steps.
/// Reads only; every authenticator is checked whichever matches, so the time taken tells
/// nothing about which one (if any) the code belongs to. The first fresh match counts.
pub fn decide(
    state: &UserState,
    input: &str,
    window: u64,
    now: u64,
) -> Result<Decision, TotpError> {
    let Some(enrollment) = state.record.as_ref().and_then(|r| r.enrollment.as_ref()) else {
        return Ok(Decision::NotEnrolled);
    };
    let mut fresh: Option<(u32, u64)> = None;
    let mut replayed = false;
    for a in &enrollment.authenticators {
        let secret = a.secret()?;
        let verdict = crate::totp::verify_skewed(
            &secret,
            a.params,
            input,
            now,
            window,
            a.skew,
            state.counters.last_steps.get(&a.id).copied(),
        )?;
        match verdict {
            Verdict::Accepted { step } => fresh = fresh.or(Some((a.id, step))),
            Verdict::Replayed => replayed = true,
            Verdict::Invalid => {}
        }
    }
    Ok(match (fresh, replayed) {
        (Some((id, step)), _) => Decision::Code { id, step },
        (None, true) => Decision::Replayed,
        (None, false) => match crate::recovery::find(&enrollment.recovery_codes, input) {
            Some(index) => Decision::Recovery { index },
            None => Decision::Invalid,
        },
    })
}

/// Applies `decision` to `state` as an attempt `a` leaves it: the accepted step, the used
/// recovery code removed, the throttle's counts (success from the source, or one more
/// failure). Returns the outcome; [`Outcome::NotEnrolled`] changes nothing.
pub fn settle(state: &mut UserState, a: &Attempt<'_>, decision: Decision) -> Outcome {
    let counters: &mut Counters = &mut state.counters;
    let outcome = match decision {
        Decision::Code { id, step } => {
            counters.last_steps.insert(id, step);
            Outcome::Code
        }
        Decision::Recovery { index } => {
            let Some(e) = state.record.as_mut().and_then(|r| r.enrollment.as_mut()) else {
                return Outcome::NotEnrolled;
            };
            if index >= e.recovery_codes.len() {
                return Outcome::Invalid;
            }
            e.recovery_codes.remove(index);
            Outcome::RecoveryCode {
                left: e.recovery_codes.len(),
            }
        }
        Decision::Replayed => Outcome::Replayed,
        Decision::Invalid => Outcome::Invalid,
        Decision::NotEnrolled => return Outcome::NotEnrolled,
    };
    match outcome {
        Outcome::Code | Outcome::RecoveryCode { .. } => {
            counters.last_login = Some(a.at);
            counters.last_login_from = Some(a.from.to_owned());
            throttle::record_success(counters, a.source, a.at);
        }
        _ => throttle::record_failure(counters, a.source, a.at),
    }
    outcome
}

/// What is decided on a state read under the lock (or fresh from the directory) before a
/// code is checked: `Some(outcome)` when the attempt stops here (the throttle refuses the
/// source, or the answer has the shape of no code this enrollment takes), `None` to check it.
pub fn before_check(state: &UserState, a: &Attempt<'_>) -> Option<Outcome> {
    let gate = throttle::gate(&state.counters, a.source, a.at);
    if gate != Gate::Open {
        return Some(Outcome::Throttled(gate));
    }
    let enrollment = state.record.as_ref().and_then(|r| r.enrollment.as_ref())?;
    let scratch = enrollment
        .recovery_codes
        .iter()
        .any(|h| crate::recovery::is_scratch_hash(h));
    if !crate::login::shaped(a.input, enrollment.digit_set(), scratch) {
        return Some(Outcome::NotACode);
    }
    None
}

/// The floor of replay protection after counters that no longer parse (a crash or power loss
/// during a write in place): every code that could have been accepted up to `written`, their
/// last write, stays refused.
pub fn floor_after_torn_counters(state: &mut UserState, written: u64, window: u64) {
    let authenticators = state
        .record
        .as_ref()
        .and_then(|r| r.enrollment.as_ref())
        .map(|e| e.authenticators.as_slice())
        .unwrap_or_default();
    for auth in authenticators {
        let now_step = crate::totp::step_of(written, auth.params);
        let floor = crate::totp::skewed_step(now_step, auth.skew).saturating_add(window);
        let last = state.counters.last_steps.entry(auth.id).or_insert(floor);
        *last = (*last).max(floor);
    }
}
