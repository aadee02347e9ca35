//! Every code check is a login.
//!
//! Wherever a code of an enrolled user is checked (the PAM module, the daemon's self methods,
//! the verification service), it goes through [`crate::store::StateStore::check_attempt`]: under the user's lock,
//! at the time the answer arrived, the throttle ([`crate::throttle::gate`]: per source and per
//! user) decides whether the code is checked at all; then the current step ± window, only a step
//! newer than the last accepted one (replay refusal), or else a recovery code, used once; then
//! the counters (accepted step, failures, known sources) are written before the answer counts.

use std::path::Path;

use crate::cache::LazyLoadError;
use crate::config::Policy;
use crate::resolve::{RecordFacts, Resolution, Subject, resolve};
use crate::store::Store;
use crate::system::{self, Account};
use crate::throttle::Gate;
use crate::userfiles::UserFiles;

/// What the person at the prompt is told when the user's lock stayed held past its bound
/// ([`crate::StoreError::Busy`]): nothing was checked.
pub const BUSY: &str =
    "Another login of this account is in progress; nothing was checked. Try again in a moment.";

/// What the person at the prompt is told when the answer has the shape of no code.
pub const NOT_A_CODE: &str = "This account needs a verification code from the authenticator app, and the answer was not one.";

/// The policy a login of `account` through `service` needs ([`Policy::load_for_lazy`]), with
/// the account's groups filled in only when the policy has group rules: by name for a few
/// ([`system::member_of_in`], `/etc/group` read once when it answers as NSS would, through
/// `files`), all of them otherwise ([`system::groups_of`]). The PAM module and the
/// verification service load it the same way.
pub fn policy_for(
    policy_path: &Path,
    store: &Store,
    files: &UserFiles,
    account: &mut Account,
    service: Option<&str>,
) -> std::result::Result<Policy, LazyLoadError> {
    let alias = account.as_typed();
    // For an alias: the account's own groups (the policy is kept for both, see below).
    let mut own: Option<Vec<String>> = None;
    let mut typed: Vec<String> = Vec::new();
    let (policy, groups) = {
        let who: &Account = account;
        let groups_of = |of: &Account, names: Option<&[&str]>| {
            match names {
                Some(names) => system::member_of_in(files, of, names),
                None => system::groups_of(of),
            }
            .map_err(|e| e.to_string())
        };
        Policy::load_for_lazy(policy_path, store, &who.name, service, &mut |names| {
            let mine = groups_of(who, names)?;
            let Some(alias) = &alias else {
                return Ok(mine);
            };
            // An alias's session gets the groups of its own line too: the policy keeps the
            // rules of both, and [`resolve_login`] takes the stricter outcome.
            typed = groups_of(alias, names)?;
            let all = system::union(&mine, &typed);
            own = Some(mine);
            Ok(all)
        })?
    };
    account.groups = own.unwrap_or(groups);
    if let Some(t) = account.typed.as_mut() {
        t.groups = typed;
    }
    Ok(policy)
}

/// The resolution of a login of `account` (after [`policy_for`]). For an alias, a session
/// opened under the typed name gets the groups of that name's own line as well as the
/// account's ([`system::Typed::groups`]), so that an alias listed in a group a rule requires
/// cannot log in past that rule: the account is resolved with its own groups and with both,
/// and the stricter mode stands (both, not the union alone, so that a group exempting the
/// alias cannot loosen what the account's own rules ask).
///
/// `rhost` is the login's trusted `PAM_RHOST` (`""` for none): only a literal address
/// ([`crate::net::rhost_addr`]) puts the login in a `[networks."CIDR"]` rule; a host name never
/// does. A caller that cannot vouch for the remote host (a non-root peer of the verification
/// service) passes `""`.
pub fn resolve_login(
    policy: &Policy,
    account: &Account,
    service: Option<&str>,
    rhost: &str,
    facts: &RecordFacts<'_>,
    now: u64,
) -> Resolution {
    let from = crate::net::rhost_addr(rhost);
    let subject = |groups| Subject {
        user: &account.name,
        groups,
        service,
        from,
    };
    let own = resolve(policy, &subject(&account.groups), facts, now);
    if account
        .typed_groups()
        .iter()
        .all(|g| account.groups.contains(g))
    {
        return own;
    }
    let all = system::union(&account.groups, account.typed_groups());
    let with_typed = resolve(policy, &subject(&all), facts, now);
    if with_typed.mode.strength() > own.mode.strength() {
        with_typed
    } else {
        own
    }
}

/// One code typed by a user.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// What was typed.
    pub input: &'a str,
    /// The throttle key of where it came from ([`crate::throttle::source_key`]; `local` for the
    /// console and for callers on this machine).
    pub source: &'a str,
    /// Where it came from, for the record's "last login from".
    pub from: &'a str,
    /// Steps accepted either side of the time of the answer.
    pub window: u64,
    /// When the answer arrived (Unix seconds): the code is checked against this time and a
    /// failure is stamped with it, however long the prompt was open.
    pub at: u64,
}

/// What [`crate::store::StateStore::check_attempt`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A current code, newer than the last accepted one.
    Code,
    /// A recovery code, now used up; `left` remain.
    RecoveryCode {
        /// Unused recovery codes left.
        left: usize,
    },
    /// Not checked: the throttle refused it (never [`Gate::Open`]).
    Throttled(Gate),
    /// A code already accepted once (or older): counted as a failure.
    Replayed,
    /// Neither a code nor a recovery code: counted as a failure.
    Invalid,
    /// The user has no enrollment.
    NotEnrolled,
    /// Not checked and not counted: the answer has the shape of neither a code nor a recovery
    /// code, so it cannot match (e.g. a screen locker that sends the password to every prompt).
    NotACode,
}

impl Outcome {
    /// Whether the attempt proved the user's factor.
    pub fn accepted(self) -> bool {
        matches!(self, Outcome::Code | Outcome::RecoveryCode { .. })
    }
}

/// The result of a check, with a note for the log when the counters file had to be recovered.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The decision.
    pub outcome: Outcome,
    /// Set when the counters file was torn and defaults were used (it is rewritten whole now).
    pub recovered: Option<String>,
}

impl Outcome {
    /// The outcome in words for a log line (never the code); `source` is the throttle key.
    pub fn log_note(self, source: &str) -> String {
        match self {
            Outcome::Code => "code accepted".into(),
            Outcome::RecoveryCode { left } => format!("recovery code accepted, {left} left"),
            Outcome::Throttled(gate) => describe_gate(gate, source),
            Outcome::Replayed => "code already used (replay)".into(),
            Outcome::Invalid => "wrong code".into(),
            Outcome::NotEnrolled => "enrollment vanished".into(),
            Outcome::NotACode => "the answer is not a code (not counted as a wrong code)".into(),
        }
    }

    /// What the person at the prompt is told, if anything.
    pub fn message(self) -> Option<String> {
        match self {
            Outcome::RecoveryCode { left } => Some(format!("Recovery code accepted; {left} left.")),
            Outcome::Throttled(gate) => Some(gate_message(gate)),
            Outcome::NotACode => Some(NOT_A_CODE.into()),
            Outcome::Code | Outcome::Replayed | Outcome::Invalid | Outcome::NotEnrolled => None,
        }
    }
}

/// What the person at the prompt is told when the throttle refuses to check a code.
pub fn gate_message(gate: Gate) -> String {
    match gate {
        Gate::Wait { wait, .. } => {
            format!("Too many wrong codes from this address: try again in {wait} s.")
        }
        _ => "Too many wrong codes for this account from unfamiliar places: log in from a place you used before, or ask an administrator (twofold reset).".into(),
    }
}

/// Why a refusal happened, in words for logs and messages (never the code).
pub fn describe_gate(gate: Gate, source: &str) -> String {
    // The source may be a host name a remote resolver chose: one log field, whatever it holds.
    let source = crate::logfmt::value(source);
    match gate {
        Gate::Open => "open".into(),
        Gate::Wait { wait, failures } => {
            format!(
                "throttled: {failures} wrong codes from {source}, {wait} s to wait; code not checked"
            )
        }
        Gate::Strangers { failures } => format!(
            "throttled: {failures} wrong codes in a row for this user, and {source} is not a place the user logged in from; code not checked until a success or an admin reset"
        ),
        Gate::Full => format!(
            "throttled: every remembered source of wrong codes is still waiting, no room to count {source}; code not checked"
        ),
    }
}

/// Whether `input` has the shape of a code of one of the lengths in `digits` or of a recovery
/// code the enrollment can hold (8 digits only when `scratch`: it has an imported scratch
/// code).
pub(crate) fn shaped(input: &str, digits: crate::record::DigitSet, scratch: bool) -> bool {
    digits
        .iter()
        .any(|d| crate::totp::normalize_code(input, d).is_some())
        || crate::recovery::shaped(input, scratch)
}
