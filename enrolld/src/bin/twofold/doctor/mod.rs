//! `twofold doctor`: the paths through PAM and sshd on which a user whom the policy requires
//! logs in without a code (bypass), or can never log in (lockout).
//!
//! It reads the PAM stacks itself (`@include`, `include`, `substack`, `[value=action]`
//! controls, `-` prefixed lines, comments, continuation lines) and asks the real `sshd -T`
//! for sshd's effective configuration, once for the base and once per representative
//! connection when the configuration has `Match` blocks. For Cockpit it also reads
//! `cockpit.conf` (and looks for a Kerberos keytab): certificate and Kerberos logins run only
//! the `account` stack. It also names what a migration from google-authenticator or pam_oath
//! leaves behind (the old module in a stack, users with a `~/.google_authenticator` and no
//! twofold enrollment), and with `backend = "ldap"` a directory that logins could not use
//! (unreachable, its password file not root's 0600, twofold's entries missing). Nothing is
//! changed.

mod analysis;
mod cockpit;
mod migration;
mod pam;
mod policy;
mod report;
mod services;
mod sshd;
mod sshd_match;
mod store;

use std::path::{Path, PathBuf};

use cockpit::check_cockpit;
use pam::{PamDir, PamLine};
use report::{Finding, Report, Severity};
use services::check_services;
use sshd::check_sshd;

/// Where to look.
#[derive(Debug, Clone)]
pub struct Options {
    /// The PAM configuration directory (`/etc/pam.d`).
    pub pam_dir: PathBuf,
    /// sshd's configuration file (`/etc/ssh/sshd_config`).
    pub sshd_config: PathBuf,
    /// The sshd binary; `None`: `/usr/sbin/sshd`, else `sshd` in `PATH`.
    pub sshd: Option<PathBuf>,
    /// Cockpit's configuration (`/etc/cockpit/cockpit.conf`); Cockpit's own Kerberos keytab is
    /// `krb5.keytab` beside it.
    pub cockpit_conf: PathBuf,
    /// The system's Kerberos keytab (`/etc/krb5.keytab`), which Cockpit uses when it has none
    /// of its own.
    pub krb5_keytab: PathBuf,
    /// The policy file (drop-ins beside it).
    pub policy: PathBuf,
    /// The state directory (admin overrides).
    pub state: PathBuf,
    /// The user list whose homes are looked at for a `~/.google_authenticator` left behind
    /// (`/etc/passwd`).
    pub passwd: PathBuf,
}

impl Options {
    /// The system's own files.
    pub fn system(policy: &Path, state: &Path) -> Options {
        Options {
            pam_dir: PathBuf::from(DEFAULT_PAM_DIR),
            sshd_config: PathBuf::from(DEFAULT_SSHD_CONFIG),
            sshd: None,
            cockpit_conf: PathBuf::from(DEFAULT_COCKPIT_CONF),
            krb5_keytab: PathBuf::from(DEFAULT_KRB5_KEYTAB),
            policy: policy.to_owned(),
            state: state.to_owned(),
            passwd: PathBuf::from(DEFAULT_PASSWD),
        }
    }
}

/// Default PAM directory.
pub const DEFAULT_PAM_DIR: &str = "/etc/pam.d";
/// Default sshd configuration.
pub const DEFAULT_SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
/// Default Cockpit configuration.
pub const DEFAULT_COCKPIT_CONF: &str = "/etc/cockpit/cockpit.conf";
/// Default user list for the leftover ~/.google_authenticator check.
pub const DEFAULT_PASSWD: &str = "/etc/passwd";
/// Default system Kerberos keytab.
pub const DEFAULT_KRB5_KEYTAB: &str = "/etc/krb5.keytab";

/// Checks everything and returns what it found.
pub fn check(opts: &Options) -> Report {
    let mut report = Report::default();
    let (req, policy_finding) = policy::requirement(opts, &mut report.notes);
    let pam = match PamDir::read(&opts.pam_dir) {
        Ok(p) => Some(p),
        Err(e) => {
            report.findings.push(Finding {
                severity: Severity::Unchecked,
                service: "pam".into(),
                file: Some(opts.pam_dir.clone()),
                line: None,
                what: format!("cannot read the PAM directory: {e}"),
                fix: "run doctor as root, or pass --pam-dir".into(),
            });
            None
        }
    };
    let twofold_anywhere = pam.as_ref().is_none_or(|p| {
        p.files
            .values()
            .any(|lines| lines.iter().any(PamLine::is_twofold))
    });
    match policy_finding {
        Some(f) if twofold_anywhere => report.findings.push(f),
        Some(f) => report.notes.push(format!(
            "no PAM file names pam_twofold.so, and {}",
            f.what.split(": every login").next().unwrap_or(&f.what)
        )),
        None => {}
    }
    if let Some(problem) = &req.store {
        store::report_problem(problem, &req, opts, twofold_anywhere, &mut report);
    }
    if let Some(pam) = &pam {
        for p in &pam.problems {
            report
                .notes
                .push(format!("skipped a line libpam would not use: {p}"));
        }
        check_services(pam, &req, &mut report);
        check_sshd(pam, &req, opts, &mut report);
        check_cockpit(pam, &req, opts, &mut report);
        migration::check_old_modules(pam, &mut report);
    }
    migration::check_leftover_files(&opts.passwd, &opts.policy, &opts.state, &mut report);
    report.findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.service.cmp(&b.service))
            .then_with(|| a.line.cmp(&b.line))
    });
    report.findings.dedup();
    report
}

/// Reports, for `twofold policy set-default required`: what doctor finds, on stderr, never
/// failing the caller.
pub fn warn_after_require(policy: &Path, state: &Path) {
    let report = check(&Options::system(policy, state));
    let serious: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Warning)
        .collect();
    if serious.is_empty() {
        return;
    }
    let shown = Report {
        findings: serious.into_iter().cloned().collect(),
        notes: Vec::new(),
    };
    eprintln!("twofold doctor found paths that skip the code:\n");
    eprint!("{}", shown.to_text(false));
    eprintln!("(`twofold doctor` checks again)");
}
