//! Cockpit, the web console: PAM service `cockpit`, run by `cockpit-session`.
//!
//! A password login (`Basic`) runs the whole stack: `auth` then `account`; the login page
//! shows every further PAM prompt, so the code prompt works there, but the first hidden prompt
//! is answered with the password typed on the login page. A TLS client certificate
//! (`[WebService] ClientCertAuthentication = yes`) or a Kerberos ticket (`Negotiate`, tried
//! whenever a keytab is there, unless `[Negotiate] action = none`) logs in with `account`
//! alone, like an SSH public key: then only the module's `account` line stands between the
//! user and the console. Which stack runs pam_twofold.so in `auth` at all is the services'
//! check (cockpit is one of the login services).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Options;
use super::analysis::{Twofold, analyze};
use super::pam::{PamDir, Stack};
use super::policy::{Requirement, graded};
use super::report::{Finding, Report, Severity};

/// The PAM service `cockpit-session` starts.
const SERVICE: &str = "cockpit";

/// Modules that ask for the password: in Cockpit's stack the first hidden prompt gets the
/// password typed on the login page, whoever asks.
const PASSWORD_MODULES: &[&str] = &[
    "pam_unix.so",
    "pam_sss.so",
    "pam_ldap.so",
    "pam_krb5.so",
    "pam_winbind.so",
    "pam_systemd_home.so",
];

/// One setting of cockpit.conf: its value and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Setting {
    value: String,
    line: usize,
}

/// cockpit.conf as Cockpit reads it: section and key names ignore case, a later value wins.
#[derive(Debug, Default)]
struct CockpitConf {
    settings: BTreeMap<(String, String), Setting>,
}

impl CockpitConf {
    /// Parses like Cockpit's own reader: `[section]`, `key = value` (a key of letters, digits
    /// and `-`), blank lines and `#` comments. Any other line, or a key before the first
    /// section, makes Cockpit ignore the whole file: `Err((line, text))`.
    fn parse(text: &str) -> Result<CockpitConf, (usize, String)> {
        let mut conf = CockpitConf::default();
        let mut section: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                if name.is_empty()
                    || name.contains(['[', ']'])
                    || name.chars().any(char::is_control)
                {
                    return Err((n, raw.to_owned()));
                }
                section = Some(name.to_ascii_lowercase());
                continue;
            }
            let Some((key, value)) = l.split_once('=') else {
                return Err((n, raw.to_owned()));
            };
            let key = key.trim_end();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err((n, raw.to_owned()));
            }
            let Some(s) = &section else {
                return Err((n, raw.to_owned()));
            };
            conf.settings.insert(
                (s.clone(), key.to_ascii_lowercase()),
                Setting {
                    value: value.trim().to_owned(),
                    line: n,
                },
            );
        }
        Ok(conf)
    }

    fn get(&self, section: &str, key: &str) -> Option<&Setting> {
        self.settings
            .get(&(section.to_ascii_lowercase(), key.to_ascii_lowercase()))
    }

    /// Cockpit's booleans: `yes`, `true` (any case) or `1`.
    fn enabled(&self, section: &str, key: &str) -> Option<&Setting> {
        self.get(section, key).filter(|s| {
            s.value.eq_ignore_ascii_case("yes")
                || s.value.eq_ignore_ascii_case("true")
                || s.value == "1"
        })
    }

    /// `action = none` in the section of an auth scheme turns that scheme off.
    fn scheme_off(&self, scheme: &str) -> bool {
        self.get(scheme, "action")
            .is_some_and(|s| s.value.eq_ignore_ascii_case("none"))
    }
}

/// A way into Cockpit that runs only the `account` stack.
struct AccountOnly {
    /// What it is and what turns it on, for the message.
    what: String,
    /// What the user logs in with instead of a password and code.
    with: &'static str,
    /// How to turn it off.
    off: String,
}

/// The certificate and Kerberos logins the configuration allows.
fn account_only_logins(
    conf: &CockpitConf,
    conf_path: &Path,
    keytabs: &[PathBuf],
) -> Vec<AccountOnly> {
    let cfg = conf_path.display();
    let mut out = Vec::new();
    if let Some(s) = conf.enabled("WebService", "ClientCertAuthentication")
        && !conf.scheme_off("tls-cert")
    {
        out.push(AccountOnly {
            what: format!(
                "TLS client certificate logins (`ClientCertAuthentication = {}`, {cfg}:{})",
                s.value, s.line
            ),
            with: "a client certificate",
            off: format!("`ClientCertAuthentication = no` under [WebService] in {cfg}"),
        });
    }
    if !conf.scheme_off("negotiate")
        && let Some(keytab) = keytabs.iter().find(|k| k.exists())
    {
        out.push(AccountOnly {
            what: format!(
                "Kerberos logins (Negotiate: the keytab {} is there and {cfg} has no `action = none` under [Negotiate])",
                keytab.display()
            ),
            with: "a Kerberos ticket",
            off: format!("`action = none` under [Negotiate] in {cfg}"),
        });
    }
    out
}

/// The keytabs Cockpit accepts Kerberos tickets with: its own beside cockpit.conf, else the
/// system's.
fn keytabs(opts: &Options) -> Vec<PathBuf> {
    let own = opts
        .cockpit_conf
        .parent()
        .map(|d| d.join("krb5.keytab"))
        .unwrap_or_else(|| PathBuf::from("krb5.keytab"));
    vec![own, opts.krb5_keytab.clone()]
}

/// pam_twofold.so asking before the password module: the twofold line and the password line
/// (each as text and place), and the twofold line's file and line number.
fn code_before_password(auth: &Stack) -> Option<(String, String, PathBuf, usize)> {
    let code = auth.entries.iter().position(|e| e.line.is_twofold())?;
    let password = auth
        .entries
        .iter()
        .position(|e| PASSWORD_MODULES.contains(&e.line.module_name()))?;
    if code > password {
        return None;
    }
    let c = &auth.entries.get(code)?.line;
    let p = &auth.entries.get(password)?.line;
    Some((
        format!("`{}` ({})", c.text, c.place()),
        format!("`{}` ({})", p.text, p.place()),
        c.file.clone(),
        c.line,
    ))
}

/// Checks Cockpit's stack for what is Cockpit's own: the password answering the code prompt,
/// and certificate or Kerberos logins that skip the auth stack. Says nothing when there is no
/// `cockpit` PAM file or the policy leaves the service alone.
pub(super) fn check_cockpit(pam: &PamDir, req: &Requirement, opts: &Options, report: &mut Report) {
    if !pam.files.contains_key(SERVICE) || req.disabled(SERVICE) {
        return;
    }
    let pam_file = pam.dir.join(SERVICE);
    let required = req.on(SERVICE);
    let auth = pam.stack(SERVICE, "auth");
    if let Some((code, password, file, line)) = code_before_password(&auth) {
        let (severity, what) = graded(
            Severity::Lockout,
            &required,
            SERVICE,
            format!(
                "{code} runs before {password}: Cockpit answers the first hidden prompt with the password typed on its login page, so pam_twofold.so gets the password as the code and users who need a code are refused (each try counts as a wrong code)"
            ),
        );
        let after = pam
            .include_line(SERVICE, "auth", "common-auth")
            .unwrap_or_else(|| "auth substack common-auth".to_owned());
        report.findings.push(Finding {
            severity,
            service: SERVICE.into(),
            file: Some(file),
            line: Some(line),
            what,
            fix: format!(
                "in {}, move `auth required pam_twofold.so` below `{after}` (the password first, then the code)",
                pam_file.display()
            ),
        });
    }
    let conf = match std::fs::read_to_string(&opts.cockpit_conf) {
        Ok(text) => match CockpitConf::parse(&text) {
            Ok(c) => c,
            Err((line, text)) => {
                report.notes.push(format!(
                    "{}:{line}: {:?} is not a [section], `key = value` or a comment: Cockpit ignores the whole file, and so does doctor",
                    opts.cockpit_conf.display(),
                    text.trim()
                ));
                CockpitConf::default()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CockpitConf::default(),
        Err(e) => {
            report.findings.push(Finding {
                severity: Severity::Unchecked,
                service: SERVICE.into(),
                file: Some(opts.cockpit_conf.clone()),
                line: None,
                what: format!(
                    "cannot read Cockpit's configuration ({e}): whether certificate logins skip the code was not checked"
                ),
                fix: "run `twofold doctor` as root, or pass --cockpit-conf".into(),
            });
            return;
        }
    };
    let ways = account_only_logins(&conf, &opts.cockpit_conf, &keytabs(opts));
    if ways.is_empty() {
        return;
    }
    let account = analyze(&pam.stack(SERVICE, "account"), "perm_denied");
    let pf = pam_file.display();
    let no_account = match account {
        Twofold::Runs => {
            report.notes.push(format!(
                "cockpit: {} run only the account stack; its pam_twofold.so line refuses them for users who need a code",
                ways.iter()
                    .map(|w| w.what.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
            return;
        }
        Twofold::Absent => format!("{pf} has no `account` line running pam_twofold.so"),
        Twofold::Defeated(_) => {
            format!("the `account` line of pam_twofold.so in {pf} does not take effect")
        }
    };
    let after = pam
        .include_line(SERVICE, "account", "common-account")
        .unwrap_or_else(|| "account include common-account".to_owned());
    for w in ways {
        let (severity, what) = graded(
            Severity::Bypass,
            &required,
            SERVICE,
            format!(
                "{} never run the PAM auth stack, only the account stack, and {no_account}: a required user logs in to Cockpit with {} alone",
                w.what, w.with
            ),
        );
        report.findings.push(Finding {
            severity,
            service: SERVICE.into(),
            file: Some(pam_file.clone()),
            line: None,
            what,
            fix: format!(
                "add `account required pam_twofold.so` after `{after}` in {pf}; or turn these logins off: {}",
                w.off
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cockpit_conf_reads_like_cockpit() {
        let c = CockpitConf::parse(
            "# x\n[webservice]\nClientCertAuthentication = yes\n[Negotiate]\nAction=none\n[WebService]\nclientcertauthentication = TRUE\n",
        )
        .unwrap();
        let s = c.enabled("WebService", "ClientCertAuthentication").unwrap();
        assert_eq!(s.line, 7);
        assert!(c.scheme_off("negotiate"));
        assert!(!c.scheme_off("tls-cert"));
        assert!(
            CockpitConf::parse("[WebService]\nClientCertAuthentication = no\n")
                .unwrap()
                .enabled("WebService", "ClientCertAuthentication")
                .is_none()
        );
        // A key before any section, or a line of neither kind: Cockpit drops the whole file.
        assert_eq!(CockpitConf::parse("a = b\n").unwrap_err().0, 1);
        assert_eq!(
            CockpitConf::parse("[WebService]\nnot a setting\n")
                .unwrap_err()
                .0,
            2
        );
    }
}
