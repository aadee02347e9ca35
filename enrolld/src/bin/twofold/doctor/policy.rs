//! The policy side: who the policy can require on a service, and how that grades a finding.

use std::collections::BTreeSet;

use twofold_policy::Mode;
use twofold_policy::config::Policy;

use super::Options;
use super::report::{Finding, Severity};

/// What the policy can require, per service.
pub(super) struct Requirement {
    /// The policy loaded (or why not: then we assume someone is required, as the module fails
    /// closed).
    pub(super) policy: Option<Policy>,
    /// Users with an admin override to required (from the store the policy chose).
    pub(super) override_required: Vec<String>,
    /// What kept the directory of `backend = "ldap"` from being used.
    pub(super) store: Option<super::store::Problem>,
}

impl Requirement {
    /// `Some(reason)` when some user must give a code on `service`.
    pub(super) fn on(&self, service: &str) -> Option<String> {
        // A policy that does not load requires no one we could name (and is a finding itself).
        let p = self.policy.as_ref()?;
        if let Some(s) = p.services.get(service) {
            match s.mode {
                Mode::Required => return Some(format!("{} requires everyone", s.source.table)),
                Mode::Disabled => return None,
                Mode::Optional => {}
            }
        } else if p.mode.value == Mode::Required {
            return Some("the default mode is required".into());
        }
        self.beyond_services(p)
    }

    /// `Some(reason)` when the policy can require someone on some service.
    pub(super) fn anyone(&self) -> Option<String> {
        let p = self.policy.as_ref()?;
        if let Some(s) = p.services.values().find(|s| s.mode == Mode::Required) {
            return Some(format!("{} requires everyone", s.source.table));
        }
        if p.mode.value == Mode::Required {
            return Some("the default mode is required".into());
        }
        self.beyond_services(p)
    }

    /// A user, group or network rule, or an admin override, that requires someone whatever
    /// the service.
    fn beyond_services(&self, p: &Policy) -> Option<String> {
        if let Some((name, _)) = p.users.iter().find(|(_, r)| r.mode == Mode::Required) {
            return Some(format!("[users.{name}] is required"));
        }
        if let Some((name, _)) = p.groups.iter().find(|(_, r)| r.mode == Mode::Required) {
            return Some(format!("[groups.{name}] is required"));
        }
        // Logins from a network that requires (whoever logs in, on any service).
        if let Some((_, r)) = p.networks.iter().find(|(_, r)| r.mode == Mode::Required) {
            return Some(format!("{} is required", r.source.table));
        }
        if let Some(u) = self.override_required.first() {
            return Some(format!("an admin override requires {u}"));
        }
        None
    }

    /// `[services.X] mode = "disabled"`: the admin left X alone on purpose.
    pub(super) fn disabled(&self, service: &str) -> bool {
        self.policy
            .as_ref()
            .and_then(|p| p.services.get(service))
            .is_some_and(|s| s.mode == Mode::Disabled)
    }

    /// Some users the policy requires (for sshd's Match blocks), at most `max`.
    pub(super) fn users(&self, max: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(p) = &self.policy {
            out.extend(
                p.users
                    .iter()
                    .filter(|(_, r)| r.mode == Mode::Required)
                    .map(|(n, _)| n.clone()),
            );
            for (g, r) in &p.groups {
                if r.mode == Mode::Required
                    && let Ok(Some(group)) = nix::unistd::Group::from_name(g)
                {
                    out.extend(group.mem);
                }
            }
        }
        out.extend(self.override_required.iter().cloned());
        let mut seen = BTreeSet::new();
        out.retain(|u| seen.insert(u.clone()));
        out.truncate(max);
        out
    }
}

pub(super) fn requirement(
    opts: &Options,
    notes: &mut Vec<String>,
) -> (Requirement, Option<Finding>) {
    let (policy, finding) = match Policy::load_system(&opts.policy) {
        Ok(p) => (Some(p), None),
        Err(e) => (
            None,
            Some(Finding {
                severity: Severity::Lockout,
                service: "policy".into(),
                file: Some(e.file.clone()),
                line: e.position.map(|p| p.0),
                what: format!(
                    "the policy does not load ({e}): every login through pam_twofold.so is refused (fail closed)"
                ),
                fix: "fix the policy: `twofold policy check` shows where".into(),
            }),
        ),
    };
    let (override_required, store) = super::store::overrides_required(opts, policy.as_ref(), notes);
    (
        Requirement {
            policy,
            override_required,
            store,
        },
        finding,
    )
}

/// A finding whose severity drops to a warning when nobody is required on the service.
pub(super) fn graded(
    severity: Severity,
    required: &Option<String>,
    service: &str,
    what: String,
) -> (Severity, String) {
    match required {
        Some(_) => (severity, what),
        None if severity >= Severity::Lockout => (
            Severity::Warning,
            format!(
                "{what} [a {} once the policy requires someone on {service}; it requires no one there now]",
                severity.as_str()
            ),
        ),
        None => (severity, what),
    }
}
