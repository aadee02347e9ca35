//! The PAM services that log a user in, and whether each one's auth stack runs pam_twofold.so.

use std::collections::BTreeSet;

use super::analysis::{Twofold, analyze};
use super::pam::{Control, PamDir, stack_files};
use super::policy::{Requirement, graded};
use super::report::{Finding, Report, Severity};

/// PAM services that log a user in (or make them someone else).
const LOGIN_SERVICES: &[&str] = &["sshd", "login", "su", "su-l", "sudo", "sudo-i", "cockpit"];

/// Services that authenticate without logging anyone in (changing one's own details, cron).
const NOT_LOGINS: &[&str] = &[
    "other", // the fallback for services without a file (sshd's is checked on its own)
    "chfn",
    "chsh",
    "chpasswd",
    "newusers",
    "passwd",
    "runuser",
    "runuser-l",
    "cron",
    "atd",
];

/// Modules that prove who a user is: a stack with one of them logs someone in.
const AUTHENTICATORS: &[&str] = &[
    "pam_unix.so",
    "pam_sss.so",
    "pam_ldap.so",
    "pam_krb5.so",
    "pam_winbind.so",
    "pam_fprintd.so",
    "pam_systemd_home.so",
    "pam_u2f.so",
    "pam_yubico.so",
    "pam_oath.so",
    "pam_google_authenticator.so",
    "pam_twofold.so",
];

pub(super) fn check_services(pam: &PamDir, req: &Requirement, report: &mut Report) {
    // Files other files include are building blocks (common-auth), not services.
    let mut included: BTreeSet<String> = BTreeSet::new();
    for lines in pam.files.values() {
        for l in lines {
            if let Control::Include(t) | Control::Substack(t) = &l.control {
                included.insert(t.rsplit('/').next().unwrap_or(t).to_owned());
            }
        }
    }
    let mut unrequired = Vec::new();
    let mut exempt = Vec::new();
    for name in pam.files.keys() {
        let standard = LOGIN_SERVICES.contains(&name.as_str());
        if !standard
            && (NOT_LOGINS.contains(&name.as_str())
                || name.starts_with("common-")
                || included.contains(name))
        {
            continue;
        }
        let auth = pam.stack(name, "auth");
        let logs_in = standard
            || auth
                .entries
                .iter()
                .any(|e| AUTHENTICATORS.contains(&e.line.module_name()));
        if !logs_in {
            continue;
        }
        if req.disabled(name) {
            exempt.push(name.clone());
            continue;
        }
        let required = req.on(name);
        let file = pam.dir.join(name);
        // Where the code goes: after the line that brings in the password check.
        let after = pam
            .include_line(name, "auth", "common-auth")
            .unwrap_or_else(|| "@include common-auth".to_owned());
        for p in &auth.problems {
            report.findings.push(Finding {
                severity: Severity::Unchecked,
                service: name.clone(),
                file: Some(file.clone()),
                line: None,
                what: format!("the auth stack could not be read whole: {p}"),
                fix: "make the included file exist, or fix the include line".into(),
            });
        }
        match analyze(&auth, "auth_err") {
            Twofold::Runs => {}
            Twofold::Absent => {
                let account = analyze(&pam.stack(name, "account"), "perm_denied");
                let Some(why) = &required else {
                    unrequired.push(name.clone());
                    continue;
                };
                if matches!(account, Twofold::Runs) {
                    report.findings.push(Finding {
                        severity: Severity::Lockout,
                        service: name.clone(),
                        file: Some(file.clone()),
                        line: None,
                        what: format!(
                            "the auth stack never runs pam_twofold.so, but the account stack does: it refuses every user who needs a code ({why})"
                        ),
                        fix: format!(
                            "add `auth required pam_twofold.so` right after `{after}` in {}",
                            file.display()
                        ),
                    });
                } else {
                    report.findings.push(Finding {
                        severity: Severity::Bypass,
                        service: name.clone(),
                        file: Some(file.clone()),
                        line: None,
                        what: format!(
                            "the auth stack never runs pam_twofold.so (read: {}): users log in through {name} without a code, though {why}",
                            stack_files(&auth)
                        ),
                        fix: format!(
                            "add `auth required pam_twofold.so` right after `{after}` in {}, or `pam-auth-update --enable twofold` to put it into common-auth; or, to leave {name} alone on purpose, `[services.{name}] mode = \"disabled\"` in the policy",
                            file.display()
                        ),
                    });
                }
            }
            Twofold::Defeated(defeats) => {
                for d in defeats {
                    let (severity, what) = if d.by_design {
                        (
                            Severity::Warning,
                            format!(
                                "`{}` ({}): {}: root becomes any user without a code; by design (root can do that anyway)",
                                d.line.text,
                                d.line.place(),
                                d.what
                            ),
                        )
                    } else {
                        graded(
                            Severity::Bypass,
                            &required,
                            name,
                            format!(
                                "`{}` ({}): {}: a user logs in without a code{}",
                                d.line.text,
                                d.line.place(),
                                d.what,
                                required
                                    .as_ref()
                                    .map(|w| format!(" ({w})"))
                                    .unwrap_or_default()
                            ),
                        )
                    };
                    let fix = if d.line.is_twofold() {
                        "make the line `auth required pam_twofold.so`".to_owned()
                    } else if d.by_design {
                        format!(
                            "nothing, if root may switch users freely; else remove pam_rootok.so from {}",
                            d.line.file.display()
                        )
                    } else if d.what.contains("jumps") {
                        format!(
                            "in {}, make that jump land at or before pam_twofold.so, or put `auth required pam_twofold.so` above line {}",
                            d.line.file.display(),
                            d.line.line
                        )
                    } else {
                        format!(
                            "in {}, put `auth required pam_twofold.so` above line {} (the code first), or make that line `required`",
                            d.line.file.display(),
                            d.line.line
                        )
                    };
                    report.findings.push(Finding {
                        severity,
                        service: name.clone(),
                        file: Some(d.line.file.clone()),
                        line: Some(d.line.line),
                        what,
                        fix,
                    });
                }
            }
        }
    }
    if !unrequired.is_empty() {
        report.notes.push(format!(
            "no twofold in the auth stack of {}: not a finding, as the policy requires no one there",
            unrequired.join(", ")
        ));
    }
    if !exempt.is_empty() {
        report.notes.push(format!(
            "not checked, the policy disables twofold there ([services.X] mode = \"disabled\"): {}",
            exempt.join(", ")
        ));
    }
}
