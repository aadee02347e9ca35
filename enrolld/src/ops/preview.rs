//! `PreviewDefaultMode`: what setting the account-wide default would change, counted exactly
//! over every user of the listing, from the policy model. Each user is resolved twice: against
//! the policy as it is, and against a copy whose top-level `mode` is the new one (its source
//! kept). Nothing is written.

use std::collections::HashMap;

use twofold_policy::resolve::{Rule, effective_mode};
use twofold_policy::{Mode, Policy, Status};

use super::{Caller, Daemon, index_error, listing_subject, parse_mode};
use crate::api::{DefaultPreview, Error};

/// The counts of a preview as they are made.
#[derive(Debug, Default)]
struct Tally {
    total: u32,
    by_default: u32,
    moved: u32,
    transitions: HashMap<(Status, Status), u32>,
}

impl Tally {
    /// One user: their status now (under `now`) and after (under `after`).
    fn add(&mut self, now: Status, after: Status, by_default: bool) {
        self.total = self.total.saturating_add(1);
        if by_default {
            self.by_default = self.by_default.saturating_add(1);
        }
        if now != after {
            self.moved = self.moved.saturating_add(1);
            let n = self.transitions.entry((now, after)).or_default();
            *n = n.saturating_add(1);
        }
    }
}

/// `policy` with its top-level mode set to `mode`, where it was set (same source): how the
/// policy loads once the main file says `mode`, when no drop-in overrides it (checked first).
fn with_default(policy: &Policy, mode: Mode) -> Policy {
    let mut changed = policy.clone();
    changed.mode.value = mode;
    changed
}

/// The words of the default's rule, as a user decided by it shows them.
fn default_rule(policy: &Policy) -> String {
    match &policy.mode.source {
        Some(s) => Rule::Default(s.clone()).to_string(),
        None => Rule::BuiltinDefault.to_string(),
    }
}

impl Daemon {
    /// Admin: what [`Daemon::set_default_mode`] with `mode` would change, for every user of
    /// the listing ([`Daemon::summary`]'s users): the status each has now against the status
    /// they would have. Refused as `set_default_mode` refuses: a bad mode (`InvalidArgument`),
    /// a caller who is no admin, a drop-in whose own `mode` overrides the main file's
    /// (`Forbidden`, the same message). Changes nothing.
    pub fn preview_default_mode(
        &self,
        caller: &Caller,
        mode: &str,
    ) -> Result<DefaultPreview, Error> {
        let mode = parse_mode(mode)?;
        let policy = self.policy()?;
        self.require_admin(caller, &policy, "preview-default")?;
        if let Some(e) = crate::policy_edit::overridden(&self.policy_path, &policy, mode) {
            return Err(Error::Forbidden(e.to_string()));
        }
        let changed = with_default(&policy, mode);
        let store = self.store()?;
        let mut tally = Tally::default();
        self.index
            .page(
                &*store,
                Self::named_users(&policy, &*store).iter(),
                "",
                usize::MAX,
                |name, account, facts| {
                    let subject = listing_subject(name, account);
                    let ov = facts.admin_override();
                    let (now_mode, rule) = effective_mode(&policy, &subject, ov);
                    let (after_mode, _) = effective_mode(&changed, &subject, ov);
                    let by_default = matches!(rule, Rule::Default(_) | Rule::BuiltinDefault);
                    tally.add(
                        Status::of(now_mode, facts.enrolled()),
                        Status::of(after_mode, facts.enrolled()),
                        by_default,
                    );
                },
            )
            .map_err(index_error)?;
        Ok(DefaultPreview {
            current: policy.mode.value.to_string(),
            current_rule: default_rule(&policy),
            total: tally.total,
            by_default: tally.by_default,
            moved: tally.moved,
            transitions: tally
                .transitions
                .into_iter()
                .map(|((from, to), n)| (format!("{from}>{to}"), n))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_moves_and_transitions_only() {
        let mut t = Tally::default();
        t.add(Status::Off, Status::Pending, true);
        t.add(Status::Off, Status::Pending, true);
        t.add(Status::Enabled, Status::Enforced, true);
        t.add(Status::Exempt, Status::Exempt, false);
        t.add(Status::Exempt, Status::Exempt, true);
        assert_eq!((t.total, t.by_default, t.moved), (5, 4, 3));
        assert_eq!(t.transitions.len(), 2);
        assert_eq!(t.transitions[&(Status::Off, Status::Pending)], 2);
        assert_eq!(t.transitions[&(Status::Enabled, Status::Enforced)], 1);
    }

    #[test]
    fn the_copy_keeps_the_source() {
        let p = Policy::parse_one(
            std::path::Path::new("/p.toml"),
            "mode = \"optional\"\n[users.x]\nmode = \"disabled\"\n",
        )
        .unwrap_or_default();
        let c = with_default(&p, Mode::Required);
        assert_eq!(c.mode.value, Mode::Required);
        assert_eq!(c.mode.source, p.mode.source);
        assert_eq!(c.users, p.users);
        assert_eq!(default_rule(&p), "top-level mode (/p.toml:1)");
        assert_eq!(
            default_rule(&Policy::default()),
            "built-in default (no policy file sets mode)"
        );
    }
}
