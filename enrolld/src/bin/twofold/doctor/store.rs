//! The store the policy chose: where the admin overrides are read from, and, with `backend =
//! "ldap"`, whether the directory can be used as a login would use it: reached and bound (the
//! password file root's, 0600), and twofold's entries (`ou=accounts`, `ou=params`) there and
//! readable under the base. Nothing is written.

use std::sync::Arc;

use twofold_policy::Mode;
use twofold_policy::config::Policy;
use twofold_policy::config::store::{Backend, Bind};
use twofold_policy::store::{StateStore, Store, StoreError, open_backend};

use super::Options;
use super::policy::Requirement;
use super::report::{Finding, Report, Severity};

/// What kept doctor from using the directory, found while the policy was read (graded once
/// the requirement is known).
#[derive(Debug)]
pub(super) enum Problem {
    /// This run could not look: not root (the password file and the state directory are
    /// root's), or no state directory to open the store over.
    Unchecked(String),
    /// What a login would meet too.
    Store(StoreError),
}

/// The users an admin override requires, from the store the policy chose, or what kept them
/// from being read: a note for the files store (as before), a [`Problem`] for a directory.
pub(super) fn overrides_required(
    opts: &Options,
    policy: Option<&Policy>,
    notes: &mut Vec<String>,
) -> (Vec<String>, Option<Problem>) {
    let root = nix::unistd::geteuid().is_root();
    let local = match Store::open(&opts.state) {
        Ok(s) => Arc::new(s),
        // A host where nothing was ever stored: no overrides in files; a directory cannot be
        // asked without the host's state directory (nor can a login).
        Err(StoreError::Missing(_)) if !is_ldap(policy) => return (Vec::new(), None),
        Err(e) if !is_ldap(policy) => {
            notes.push(format!(
                "admin overrides not read ({e}){}",
                if root {
                    ""
                } else {
                    ": run as root to count them"
                }
            ));
            return (Vec::new(), None);
        }
        Err(e) => {
            let why = match &e {
                StoreError::Missing(p) => format!(
                    "the state directory {} is missing (the ldap backend keeps this host's counters and offline copy there, and logins need it: the package's postinst makes it, install -d -m 0700 {0} does)",
                    p.display()
                ),
                e => format!("the state directory cannot be opened: {e}"),
            };
            return (Vec::new(), Some(Problem::Unchecked(why)));
        }
    };
    let store: Arc<dyn StateStore> = match policy {
        Some(p) => match open_backend(local, p) {
            Ok(s) => s,
            Err(e) => return (Vec::new(), Some(Problem::Store(e))),
        },
        None => local,
    };
    if store.backend() == "files" {
        return match store.users_with_override(Mode::Required) {
            Ok(users) => (users.iter().map(|u| u.as_str().to_owned()).collect(), None),
            Err(e) => {
                notes.push(format!("admin overrides not read: {e}"));
                (Vec::new(), None)
            }
        };
    }
    match store
        .probe()
        .and_then(|()| store.users_with_override(Mode::Required))
    {
        Ok(users) => {
            if let Some(cfg) = policy.and_then(|p| p.store.ldap.as_ref()) {
                let bind = match &cfg.bind {
                    Bind::SaslExternal => "SASL EXTERNAL".to_owned(),
                    Bind::Simple { dn, .. } => dn.clone(),
                };
                notes.push(format!(
                    "the store is the directory {} (base {}, bound as {bind}): it answers, and {} account{} there {} an admin override to required",
                    cfg.uris.join(" "),
                    cfg.base,
                    users.len(),
                    if users.len() == 1 { "" } else { "s" },
                    if users.len() == 1 { "has" } else { "have" },
                ));
            }
            (users.iter().map(|u| u.as_str().to_owned()).collect(), None)
        }
        // As another user, the root-only password file (or the identity of SASL EXTERNAL)
        // is not root's: the error says nothing of what logins meet.
        Err(e) if !root => (
            Vec::new(),
            Some(Problem::Unchecked(format!(
                "{e} (as uid {})",
                nix::unistd::geteuid()
            ))),
        ),
        Err(e) => (Vec::new(), Some(Problem::Store(e))),
    }
}

fn is_ldap(policy: Option<&Policy>) -> bool {
    policy.is_some_and(|p| p.store.backend == Backend::Ldap)
}

/// The finding of a [`Problem`], graded by whom the policy requires. `twofold_anywhere`: a
/// PAM file names pam_twofold.so (else it only makes a note, as a policy that does not load).
pub(super) fn report_problem(
    problem: &Problem,
    req: &Requirement,
    opts: &Options,
    twofold_anywhere: bool,
    report: &mut Report,
) {
    let Some(policy) = req.policy.as_ref() else {
        return;
    };
    let place = |key: &str| {
        policy
            .store
            .sources
            .get(key)
            .or_else(|| policy.store.sources.get("backend"))
            .map(|p| (p.file.clone(), p.line))
    };
    let offline = if policy.store.offline.enabled {
        format!(
            "; only users with an offline copy on this host younger than {} (its [store.offline] max_age) still log in",
            policy.store.offline.max_age
        )
    } else {
        " ([store.offline] is off: no copy stands in)".to_owned()
    };
    let (severity, at, what, fix) = match problem {
        Problem::Unchecked(why) => (
            Severity::Unchecked,
            place("ldap.uri"),
            format!("the directory was not checked: {why}"),
            "run doctor as root, with --state naming this host's state directory".to_owned(),
        ),
        Problem::Store(e) => match e {
            StoreError::Unreachable { why, .. } if why.starts_with("bind refused") => (
                Severity::Lockout,
                place("ldap.bind_dn"),
                format!(
                    "the directory refuses the store's bind ({why}): every login through pam_twofold.so is refused (fail closed, whatever on_error says){offline}"
                ),
                "check [store.ldap] bind_dn and the password in bind_password_file (for SASL EXTERNAL: the mapping of root's identity on ldapi://)".to_owned(),
            ),
            StoreError::Unreachable { why, .. } => (
                Severity::Lockout,
                place("ldap.uri"),
                format!(
                    "the directory cannot be reached ({why}): every login through pam_twofold.so is refused (fail closed, whatever on_error says){offline}"
                ),
                "check that the server runs and answers at [store.ldap] uri from this host (name, port, firewall, its certificate and ca_file); twofold-enrolld and twofold-verifyd reach TCP only with the drop-in twofold-ldap-tcp.conf".to_owned(),
            ),
            StoreError::Insecure { path, why } => (
                Severity::Lockout,
                Some((path.clone(), 0)),
                format!(
                    "the directory's password file {} {why}: every login through pam_twofold.so fails closed (with on_error=allow the code is skipped instead)",
                    path.display()
                ),
                format!("chown root:root {0} && chmod 600 {0}", path.display()),
            ),
            StoreError::Io { path, .. } => (
                Severity::Lockout,
                Some((path.clone(), 0)),
                format!(
                    "{e}: every login through pam_twofold.so fails closed (with on_error=allow the code is skipped instead)"
                ),
                format!(
                    "write the service account's password to {} (root's, mode 0600), or fix [store.ldap] bind_password_file",
                    path.display()
                ),
            ),
            _ => {
                let (severity, what) = super::policy::graded(
                    Severity::Lockout,
                    &req.anyone(),
                    "any service",
                    format!(
                        "the directory answers, but {e}: no user can enroll or be changed, so users whom the policy requires and who have no enrollment are locked out"
                    ),
                );
                (
                    severity,
                    place("ldap.base"),
                    what,
                    "load packaging/ldap/twofold.ldif, add ou=accounts and ou=params under [store.ldap] base and give the service account the ACL of packaging/ldap/README.md".to_owned(),
                )
            }
        }
    };
    let (file, line) = match at {
        Some((file, 0)) => (Some(file), None),
        Some((file, line)) => (Some(file), Some(line)),
        None => (Some(opts.policy.clone()), None),
    };
    let finding = Finding {
        severity,
        service: "store".into(),
        file,
        line,
        what,
        fix,
    };
    if twofold_anywhere {
        report.findings.push(finding);
    } else {
        report.notes.push(format!(
            "no PAM file names pam_twofold.so, and the store: {}",
            finding.what
        ));
    }
}
