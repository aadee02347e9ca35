//! Resolution: who must do what, and which rule decided.
//!
//! Precedence, highest first (the contract of the brief): the admin override from the user's
//! record > `[users.X]` > `[networks."CIDR"]` (of the networks holding the login's address, the
//! longest prefix) > `[groups.X]` (a user in several groups: required > optional > disabled;
//! among equals the first group by name) > `[services.X]` > the top-level `mode` (or the
//! built-in default, optional).
//!
//! A network rule applies only to a login whose trusted `PAM_RHOST` is a literal address
//! ([`Subject::from`], made by [`crate::net::rhost_addr`]: an IPv4-mapped IPv6 address is its
//! IPv4 address, a zone index is dropped). A login without a remote host (the console, `su`,
//! `sudo`) or whose `PAM_RHOST` is a host name (sshd's `UseDNS yes`; even
//! `10.0.0.1.attacker.example`) is in no network. The views without a login (listings,
//! previews, `twofold explain` without `--from`) resolve without an address; see
//! [`network_differences`] for what a network would change.

use std::fmt;
use std::net::IpAddr;

use crate::config::{Policy, Source};
use crate::mode::{Mode, Status};
use crate::record::Override;

/// Who is logging in (or being looked at), and through what.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The user name.
    pub user: &'a str,
    /// Names of all the user's groups.
    pub groups: &'a [String],
    /// The PAM service, if any (`sshd`, `login`, `sudo`).
    pub service: Option<&'a str>,
    /// The address the login comes from: its trusted `PAM_RHOST` when that is a literal
    /// address ([`crate::net::rhost_addr`]), else `None` (no remote host, a host name, or a
    /// view of the user that is no login).
    pub from: Option<IpAddr>,
}

/// What the user's record contributes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordFacts<'a> {
    /// Has a confirmed enrollment.
    pub enrolled: bool,
    /// The admin override, if set.
    pub admin_override: Option<&'a Override>,
    /// When the requirement first applied (the grace period runs from here).
    pub required_since: Option<u64>,
}

impl<'a> RecordFacts<'a> {
    /// The facts of a record, or of no record.
    pub fn of(record: Option<&'a crate::record::Record>) -> RecordFacts<'a> {
        match record {
            None => RecordFacts::default(),
            Some(r) => RecordFacts {
                enrolled: r.enrollment.is_some(),
                admin_override: r.admin_override.as_ref(),
                required_since: r.required_since,
            },
        }
    }
}

/// The rule that decided the effective mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// An admin override in the user's record.
    Override {
        /// Who set it.
        by: String,
        /// When.
        at: u64,
    },
    /// `[users.X]`.
    User(Source),
    /// `[networks."CIDR"]`, for this network (the longest prefix holding the login's address).
    Network(crate::net::Network, Source),
    /// `[groups.X]`, for this group.
    Group(String, Source),
    /// `[services.X]`, for this service.
    Service(String, Source),
    /// The top-level `mode` of a policy file.
    Default(Source),
    /// No file sets `mode`: the built-in default (optional).
    BuiltinDefault,
}

impl Rule {
    /// A short machine-friendly name: `override`, `user`, `network`, `group`, `service`,
    /// `default`.
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::Override { .. } => "override",
            Rule::User(_) => "user",
            Rule::Network(..) => "network",
            Rule::Group(..) => "group",
            Rule::Service(..) => "service",
            Rule::Default(_) | Rule::BuiltinDefault => "default",
        }
    }

    /// The policy source, for rules written in a file.
    pub fn source(&self) -> Option<&Source> {
        match self {
            Rule::User(s)
            | Rule::Network(_, s)
            | Rule::Group(_, s)
            | Rule::Service(_, s)
            | Rule::Default(s) => Some(s),
            Rule::Override { .. } | Rule::BuiltinDefault => None,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Override { by, at } => write!(
                f,
                "admin override set by {by} on {}",
                crate::time::human(*at)
            ),
            Rule::User(s) | Rule::Network(_, s) | Rule::Group(_, s) | Rule::Service(_, s) => {
                write!(f, "{s}")
            }
            Rule::Default(s) => write!(f, "top-level {s}"),
            Rule::BuiltinDefault => f.write_str("built-in default (no policy file sets mode)"),
        }
    }
}

/// The outcome of resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The effective mode.
    pub mode: Mode,
    /// The status row of the brief.
    pub status: Status,
    /// What decided the mode.
    pub rule: Rule,
    /// For `pending`: until when the user may still enroll (at login, or by `twofold enroll`).
    pub deadline: Option<u64>,
    /// For `pending`: the requirement meets the user for the first time now; the caller that
    /// can write (the PAM module, the daemon) records `required_since = now`.
    pub starts_grace: bool,
}

impl Resolution {
    /// Pending and still within the grace period at `now`.
    pub fn in_grace(&self, now: u64) -> bool {
        self.status == Status::Pending && self.deadline.is_some_and(|d| now < d)
    }

    /// Whether the login path should offer enrollment inside the login at `now`.
    pub fn enroll_at_login(&self, policy: &Policy, now: u64) -> bool {
        policy.enrollment.at_login && self.in_grace(now)
    }
}

/// The effective mode and the rule behind it.
pub fn effective_mode(
    policy: &Policy,
    subject: &Subject<'_>,
    admin_override: Option<&Override>,
) -> (Mode, Rule) {
    let network = subject.from.and_then(|a| policy.network_for(&a));
    mode_with_network(policy, subject, admin_override, network)
}

/// [`effective_mode`] with the network rule the login falls under given (`None`: none).
fn mode_with_network(
    policy: &Policy,
    subject: &Subject<'_>,
    admin_override: Option<&Override>,
    network: Option<(&crate::net::Network, &crate::config::RuleEntry)>,
) -> (Mode, Rule) {
    if let Some(o) = admin_override {
        return (
            o.mode,
            Rule::Override {
                by: o.by.clone(),
                at: o.at,
            },
        );
    }
    if let Some(r) = policy.users.get(subject.user) {
        return (r.mode, Rule::User(r.source.clone()));
    }
    if let Some((net, r)) = network {
        return (r.mode, Rule::Network(*net, r.source.clone()));
    }
    // Strongest group wins; among equals, the first by name (groups are looked up in order).
    let mut names: Vec<&String> = subject.groups.iter().collect();
    names.sort();
    names.dedup();
    let mut best: Option<(&String, &crate::config::RuleEntry)> = None;
    for g in names {
        if let Some(r) = policy.groups.get(g.as_str())
            && best.is_none_or(|(_, b)| r.mode.strength() > b.mode.strength())
        {
            best = Some((g, r));
        }
    }
    if let Some((g, r)) = best {
        return (r.mode, Rule::Group(g.clone(), r.source.clone()));
    }
    if let Some(svc) = subject.service
        && let Some(r) = policy.services.get(svc)
    {
        return (r.mode, Rule::Service(svc.to_owned(), r.source.clone()));
    }
    match &policy.mode.source {
        Some(s) => (policy.mode.value, Rule::Default(s.clone())),
        None => (policy.mode.value, Rule::BuiltinDefault),
    }
}

/// Resolves a subject against the policy and its record at time `now`.
pub fn resolve(
    policy: &Policy,
    subject: &Subject<'_>,
    facts: &RecordFacts<'_>,
    now: u64,
) -> Resolution {
    let (mode, rule) = effective_mode(policy, subject, facts.admin_override);
    finish(policy, mode, rule, facts, now)
}

/// The resolution of an effective mode and its rule.
fn finish(
    policy: &Policy,
    mode: Mode,
    rule: Rule,
    facts: &RecordFacts<'_>,
    now: u64,
) -> Resolution {
    let status = Status::of(mode, facts.enrolled);
    let (deadline, starts_grace) = if status == Status::Pending {
        let since = facts.required_since.unwrap_or(now);
        (
            Some(since.saturating_add(policy.enrollment.grace_period.secs())),
            facts.required_since.is_none(),
        )
    } else {
        (None, false)
    };
    Resolution {
        mode,
        status,
        rule,
        deadline,
        starts_grace,
    }
}

/// Whether some rule requires the user for some service from somewhere: the resolution
/// without a service and for every service the policy names, each from no network and from
/// inside every `[networks."CIDR"]` rule, first one that is `required`. "Required" means
/// required anywhere: a user whom only `[services.sshd]`, or only logins from outside some
/// network, require may not switch 2FA off either. (A network wholly covered by longer ones is
/// counted as if some login could come from it: the answer errs towards "required".)
pub fn required_anywhere(
    policy: &Policy,
    user: &str,
    groups: &[String],
    facts: &RecordFacts<'_>,
    now: u64,
) -> Option<Resolution> {
    let networks = std::iter::once(None).chain(policy.networks.iter().map(Some));
    networks
        .flat_map(|network| {
            std::iter::once(None)
                .chain(policy.services.keys().map(|s| Some(s.as_str())))
                .map(move |service| (network, service))
        })
        .map(|(network, service)| {
            let subject = Subject {
                user,
                groups,
                service,
                from: None,
            };
            let (mode, rule) = mode_with_network(policy, &subject, facts.admin_override, network);
            finish(policy, mode, rule, facts, now)
        })
        .find(|r| r.mode == Mode::Required)
}

/// For a view of the user without a login (`subject.from` is ignored): each
/// `[networks."CIDR"]` rule under which a login would get another mode than the view's, with
/// that mode. Empty when the override or a `[users.X]` rule decides (they beat networks).
pub fn network_differences(
    policy: &Policy,
    subject: &Subject<'_>,
    admin_override: Option<&Override>,
) -> Vec<(crate::net::Network, Mode)> {
    if policy.networks.is_empty() {
        return Vec::new();
    }
    let (base, _) = mode_with_network(policy, subject, admin_override, None);
    policy
        .networks
        .iter()
        .filter_map(|network| {
            let (mode, _) = mode_with_network(policy, subject, admin_override, Some(network));
            (mode != base).then_some((*network.0, mode))
        })
        .collect()
}
