//! What a migration from google-authenticator or pam_oath leaves behind: the old module still
//! in a PAM stack (beside pam_twofold.so: two prompts, and the old module's own rules decide
//! too; alone: twofold does not guard that service), and users who have a
//! `~/.google_authenticator` but no twofold enrollment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use twofold_policy::UserName;
use twofold_policy::import::{GA_FILE, has_google_authenticator};
use twofold_policy::store::{StateStore, Store};

use super::pam::PamDir;
use super::report::{Finding, Report, Severity};

/// The modules twofold replaces.
const OLD_MODULES: &[&str] = &["pam_google_authenticator.so", "pam_oath.so"];

/// Names listed at most in one finding.
const NAMES_SHOWN: usize = 20;

/// The old modules' lines in the auth stacks of every service, once per line.
pub(super) fn check_old_modules(pam: &PamDir, report: &mut Report) {
    // (file, line) → (text, module, services with twofold, services without)
    type Seen = (String, String, Vec<String>, Vec<String>);
    let mut lines: BTreeMap<(PathBuf, usize), Seen> = BTreeMap::new();
    for name in pam.files.keys() {
        let auth = pam.stack(name, "auth");
        let twofold = auth.entries.iter().any(|e| e.line.is_twofold());
        for e in &auth.entries {
            let module = e.line.module_name();
            if !OLD_MODULES.contains(&module) {
                continue;
            }
            let seen = lines
                .entry((e.line.file.clone(), e.line.line))
                .or_insert_with(|| {
                    (
                        e.line.text.clone(),
                        module.to_owned(),
                        Vec::new(),
                        Vec::new(),
                    )
                });
            if twofold {
                seen.2.push(name.clone());
            } else {
                seen.3.push(name.clone());
            }
        }
    }
    for ((file, line), (text, module, with, without)) in lines {
        let import = if module == "pam_oath.so" {
            "`twofold import oath FILE`"
        } else {
            "`twofold import google-authenticator --all`"
        };
        if !with.is_empty() {
            report.findings.push(Finding {
                severity: Severity::Warning,
                service: with.join(", "),
                file: Some(file.clone()),
                line: Some(line),
                what: format!(
                    "`{text}`: {module} runs beside pam_twofold.so: two code prompts, and the old module's own rules (its file, its window, its replay and rate rules) decide logins too"
                ),
                fix: format!(
                    "import its users ({import}), then remove this line from {}",
                    file.display()
                ),
            });
        }
        if !without.is_empty() {
            report.findings.push(Finding {
                severity: Severity::Warning,
                service: without.join(", "),
                file: Some(file.clone()),
                line: Some(line),
                what: format!(
                    "`{text}`: {module} decides the code of {} and twofold does not run there",
                    without.join(", ")
                ),
                fix: format!(
                    "import its users ({import}), then replace this line in {} by `auth required pam_twofold.so`",
                    file.display()
                ),
            });
        }
    }
}

/// Users of `passwd` (the `name:x:uid:gid:gecos:home:shell` file) whose home holds a
/// `~/.google_authenticator` and who have no twofold enrollment in `state`. Only as root (the
/// homes are private); each home is opened without following a symbolic link and the file is
/// only looked at, never opened.
pub(super) fn check_leftover_files(
    passwd: &Path,
    policy: &Path,
    state: &Path,
    report: &mut Report,
) {
    if !nix::unistd::geteuid().is_root() {
        report.notes.push(format!(
            "users with a ~/{GA_FILE} and no twofold enrollment: not checked (homes are private; run doctor as root)"
        ));
        return;
    }
    let text = match std::fs::read_to_string(passwd) {
        Ok(t) => t,
        Err(e) => {
            report.notes.push(format!(
                "users with a ~/{GA_FILE}: not checked ({}: {e})",
                passwd.display()
            ));
            return;
        }
    };
    // The backend the policy chose (a directory: the enrollments are there, not in `state`).
    let store =
        Store::open(state).ok().and_then(|local| {
            match twofold_policy::Policy::load_system(policy) {
                Ok(p) => twofold_policy::store::open_backend(std::sync::Arc::new(local), &p).ok(),
                Err(_) => Some(std::sync::Arc::new(local) as std::sync::Arc<dyn StateStore>),
            }
        });
    let mut left = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let (Some(name), Some(home)) = (fields.first(), fields.get(5)) else {
            continue;
        };
        let Ok(user) = UserName::parse(name) else {
            continue;
        };
        if home.is_empty() || !Path::new(home).is_absolute() {
            continue;
        }
        if !has_google_authenticator(Path::new(home)).unwrap_or(false) {
            continue;
        }
        let enrolled = store
            .as_ref()
            .and_then(|s| s.read_record(&user).ok())
            .flatten()
            .is_some_and(|r| r.enrollment.is_some());
        if !enrolled {
            left.push(user.as_str().to_owned());
        }
    }
    if left.is_empty() {
        return;
    }
    let n = left.len();
    let mut shown: Vec<String> = left.iter().take(NAMES_SHOWN).cloned().collect();
    if n > NAMES_SHOWN {
        shown.push(format!("and {} more", n - NAMES_SHOWN));
    }
    report.findings.push(Finding {
        severity: Severity::Warning,
        service: "import".into(),
        file: Some(passwd.to_owned()),
        line: None,
        what: format!(
            "{n} user{} with a ~/{GA_FILE} and no twofold enrollment: {}",
            if n == 1 { "" } else { "s" },
            shown.join(", ")
        ),
        fix: format!(
            "`twofold import google-authenticator {}` (or --all); remove the old files once the users log in with twofold",
            left.iter().take(3).cloned().collect::<Vec<_>>().join(" ")
        ),
    });
}
