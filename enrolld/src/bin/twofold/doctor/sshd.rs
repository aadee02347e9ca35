//! sshd: its effective configuration from the real `sshd -T` (also per `Match` block), and
//! what it does with the PAM stacks of its service.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Options;
use super::analysis::{Twofold, analyze};
use super::pam::PamDir;
use super::policy::{Requirement, graded};
use super::report::{Finding, Report, Severity};
use super::sshd_match::{MatchBlock, match_applies, match_blocks, specs};

/// The parts of `sshd -T` that decide whether a code is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SshdConf {
    use_pam: bool,
    pubkey: bool,
    password: bool,
    kbd_interactive: bool,
    hostbased: bool,
    gssapi: bool,
    /// `None` for `any`.
    methods: Option<Vec<Vec<String>>>,
}

fn parse_sshd_t(text: &str) -> SshdConf {
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.trim().split_once(' ') {
            kv.entry(k.to_ascii_lowercase())
                .or_insert_with(|| v.trim().to_owned());
        }
    }
    let yes = |k: &str, default: bool| {
        kv.get(k)
            .map(|v| v.eq_ignore_ascii_case("yes"))
            .unwrap_or(default)
    };
    let methods = match kv.get("authenticationmethods").map(String::as_str) {
        None | Some("any") => None,
        Some(list) => Some(
            list.split_whitespace()
                .map(|chain| chain.split(',').map(str::to_owned).collect())
                .collect(),
        ),
    };
    SshdConf {
        use_pam: yes("usepam", false),
        pubkey: yes("pubkeyauthentication", true),
        password: yes("passwordauthentication", true),
        kbd_interactive: yes(
            "kbdinteractiveauthentication",
            yes("challengeresponseauthentication", true),
        ),
        hostbased: yes("hostbasedauthentication", false),
        gssapi: yes("gssapiauthentication", false),
        methods,
    }
}

impl SshdConf {
    fn enabled(&self, method: &str) -> bool {
        match method.split(':').next().unwrap_or(method) {
            "publickey" => self.pubkey,
            "password" => self.password,
            "keyboard-interactive" => self.kbd_interactive,
            "hostbased" => self.hostbased,
            "gssapi-with-mic" => self.gssapi,
            _ => false,
        }
    }

    /// The method chains a client can complete.
    fn chains(&self) -> Vec<Vec<String>> {
        match &self.methods {
            None => [
                "publickey",
                "keyboard-interactive",
                "password",
                "hostbased",
                "gssapi-with-mic",
            ]
            .iter()
            .filter(|m| self.enabled(m))
            .map(|m| vec![(*m).to_owned()])
            .collect(),
            Some(chains) => chains
                .iter()
                .filter(|c| c.iter().all(|m| self.enabled(m)))
                .cloned()
                .collect(),
        }
    }

    fn methods_text(&self) -> String {
        match &self.methods {
            None => "any".into(),
            Some(c) => c.iter().map(|m| m.join(",")).collect::<Vec<_>>().join(" "),
        }
    }
}

pub(super) fn base(m: &str) -> &str {
    m.split(':').next().unwrap_or(m)
}

/// What sshd's configuration does with the PAM stacks of its service.
struct SshdPam<'a> {
    /// The PAM file sshd's stacks start from.
    file: &'a Path,
    auth: &'a Twofold,
    account: &'a Twofold,
}

/// (severity, what, fix) for one effective configuration; severities before the policy
/// downgrade.
fn sshd_problems(c: &SshdConf, pam: &SshdPam, config: &Path) -> Vec<(Severity, String, String)> {
    let mut out = Vec::new();
    let cfg = config.display();
    if !c.use_pam {
        out.push((
            Severity::Bypass,
            "UsePAM no: sshd never runs PAM, so no SSH login asks a code".to_owned(),
            format!("set `UsePAM yes` in {cfg} (and `KbdInteractiveAuthentication yes`)"),
        ));
        return out;
    }
    let auth_runs = matches!(pam.auth, Twofold::Runs);
    let account_runs = matches!(pam.account, Twofold::Runs);
    let chains = c.chains();
    let has = |chain: &Vec<String>, m: &str| chain.iter().any(|x| base(x) == m);
    let kbd: Vec<&Vec<String>> = chains
        .iter()
        .filter(|ch| has(ch, "keyboard-interactive"))
        .collect();
    let pw: Vec<&Vec<String>> = chains
        .iter()
        .filter(|ch| !has(ch, "keyboard-interactive") && has(ch, "password"))
        .collect();
    let nopam: Vec<&Vec<String>> = chains
        .iter()
        .filter(|ch| !has(ch, "keyboard-interactive") && !has(ch, "password"))
        .collect();
    let list = |v: &[&Vec<String>]| {
        v.iter()
            .map(|c| format!("`{}`", c.join(",")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let methods = format!(
        "AuthenticationMethods {}, PubkeyAuthentication {}, PasswordAuthentication {}, KbdInteractiveAuthentication {}",
        c.methods_text(),
        yn(c.pubkey),
        yn(c.password),
        yn(c.kbd_interactive)
    );
    let pam_file = pam.file.display();
    if !nopam.is_empty() {
        if !account_runs {
            let no_account = match pam.account {
                Twofold::Absent => {
                    format!("{pam_file} has no `account` line running pam_twofold.so")
                }
                _ => format!(
                    "the `account` line of pam_twofold.so in {pam_file} does not take effect"
                ),
            };
            out.push((
                Severity::Bypass,
                format!(
                    "{} logins never run the PAM auth stack ({methods}) and {no_account}: a required user logs in with the key alone",
                    list(&nopam)
                ),
                format!(
                    "add `account required pam_twofold.so` after `@include common-account` in {pam_file}; or ask a code of every key login in {cfg}: `AuthenticationMethods publickey,keyboard-interactive`"
                ),
            ));
        } else if kbd.is_empty() && pw.is_empty() {
            out.push((
                Severity::Lockout,
                format!(
                    "no method chain reaches keyboard-interactive ({methods}): sshd never asks the code, and the account check refuses every user who needs one"
                ),
                format!(
                    "in {cfg}: `KbdInteractiveAuthentication yes` and `AuthenticationMethods publickey,keyboard-interactive` (README, sshd: key + code)"
                ),
            ));
        }
    }
    if !pw.is_empty() && auth_runs {
        let alone = kbd.is_empty();
        out.push((
            if alone {
                Severity::Lockout
            } else {
                Severity::Warning
            },
            format!(
                "{} runs the PAM auth stack with sshd answering every prompt with the password ({methods}): pam_twofold.so gets the password as the code, so users who need a code are refused{}",
                list(&pw),
                if alone {
                    " (and each try counts as a wrong code)"
                } else {
                    " when their client uses the password method (keyboard-interactive still works)"
                }
            ),
            format!(
                "in {cfg}: `PasswordAuthentication no`, `KbdInteractiveAuthentication yes`, `AuthenticationMethods keyboard-interactive` (README, sshd: password + code)"
            ),
        ));
    }
    if kbd.is_empty() && auth_runs && nopam.is_empty() && pw.is_empty() {
        out.push((
            Severity::Lockout,
            format!("no usable method chain ({methods}): nobody can log in over SSH"),
            format!("in {cfg}: `KbdInteractiveAuthentication yes`, `AuthenticationMethods keyboard-interactive`"),
        ));
    }
    out
}

fn yn(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Runs `sshd -T -f CONFIG [-C SPEC]`.
fn sshd_t(sshd: &Path, config: &Path, spec: Option<&str>) -> Result<SshdConf, String> {
    let mut cmd = Command::new(sshd);
    cmd.arg("-T").arg("-f").arg(config);
    if let Some(s) = spec {
        cmd.arg("-C").arg(s);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", sshd.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "`{} -T -f {}{}` failed: {}",
            sshd.display(),
            config.display(),
            spec.map(|s| format!(" -C {s}")).unwrap_or_default(),
            err.trim().trim_end_matches('.')
        ));
    }
    Ok(parse_sshd_t(&String::from_utf8_lossy(&out.stdout)))
}

fn sshd_binary(opts: &Options) -> Option<PathBuf> {
    if let Some(p) = &opts.sshd {
        return Some(p.clone());
    }
    let sbin = PathBuf::from("/usr/sbin/sshd");
    if sbin.exists() {
        return Some(sbin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("sshd"))
            .find(|p| p.exists())
    })
}

pub(super) fn check_sshd(pam: &PamDir, req: &Requirement, opts: &Options, report: &mut Report) {
    if req.disabled("sshd") {
        return;
    }
    let Some(sshd) = sshd_binary(opts) else {
        report
            .notes
            .push("sshd is not installed: SSH logins not checked".into());
        return;
    };
    // libpam falls back to `other` when a service has no file.
    let service = if pam.files.contains_key("sshd") {
        "sshd"
    } else {
        "other"
    };
    let pam_file = pam.dir.join(service);
    let auth = analyze(&pam.stack(service, "auth"), "auth_err");
    let account = analyze(&pam.stack(service, "account"), "perm_denied");
    let sp = SshdPam {
        file: &pam_file,
        auth: &auth,
        account: &account,
    };
    let base = match sshd_t(&sshd, &opts.sshd_config, None) {
        Ok(c) => c,
        Err(e) => {
            let root = nix::unistd::geteuid().is_root();
            let hint = if root {
                ""
            } else {
                " Run as root: sshd -T needs to read the host keys."
            };
            let fix = if root {
                format!(
                    "make `{} -T -f {}` work (host keys present, the configuration valid), then run doctor again",
                    sshd.display(),
                    opts.sshd_config.display()
                )
            } else {
                "run `twofold doctor` as root".to_owned()
            };
            report.findings.push(Finding {
                severity: Severity::Unchecked,
                service: "sshd".into(),
                file: Some(opts.sshd_config.clone()),
                line: None,
                what: format!("doctor could not check sshd: {e}.{hint}"),
                fix,
            });
            return;
        }
    };
    let required = req.on("sshd");
    let base_problems = sshd_problems(&base, &sp, &opts.sshd_config);
    for (severity, what, fix) in &base_problems {
        let (severity, what) = graded(*severity, &required, "sshd", what.clone());
        report.findings.push(Finding {
            severity,
            service: "sshd".into(),
            file: Some(opts.sshd_config.clone()),
            line: None,
            what,
            fix: fix.clone(),
        });
    }
    let mut blocks = Vec::new();
    match_blocks(&opts.sshd_config, 0, &mut blocks);
    if blocks.is_empty() {
        return;
    }
    // problem → the connections it appears for
    let mut extra: BTreeMap<(Severity, String, String), Vec<(String, String)>> = BTreeMap::new();
    for (user, addr) in specs(&blocks, &req.users(24)) {
        let spec = format!("user={user},host=client.invalid,addr={addr}");
        let conf = match sshd_t(&sshd, &opts.sshd_config, Some(&spec)) {
            Ok(c) => c,
            Err(e) => {
                report
                    .notes
                    .push(format!("Match blocks not checked for {spec}: {e}"));
                continue;
            }
        };
        if conf == base {
            continue;
        }
        for p in sshd_problems(&conf, &sp, &opts.sshd_config) {
            if !base_problems.contains(&p) {
                extra
                    .entry(p)
                    .or_default()
                    .push((user.clone(), addr.clone()));
            }
        }
    }
    for ((severity, what, fix), conns) in extra {
        let users: BTreeSet<&str> = conns.iter().map(|(u, _)| u.as_str()).collect();
        let addrs: BTreeSet<&str> = conns.iter().map(|(_, a)| a.as_str()).collect();
        let applying: Vec<&MatchBlock> = blocks
            .iter()
            .filter(|b| conns.iter().any(|(u, a)| match_applies(b, u, a)))
            .collect();
        let named = if applying.is_empty() {
            blocks.iter().collect::<Vec<_>>()
        } else {
            applying
        };
        let where_ = named
            .iter()
            .map(|b| format!("`{}` ({}:{})", b.text, b.file.display(), b.line))
            .collect::<Vec<_>>()
            .join(", ");
        let who = format!(
            "for user {} from {}",
            users.into_iter().collect::<Vec<_>>().join(", "),
            addrs.into_iter().collect::<Vec<_>>().join(", ")
        );
        let (severity, what) = graded(
            severity,
            &required,
            "sshd",
            format!("{where_} changes sshd {who}: {what}"),
        );
        let first = named.first();
        report.findings.push(Finding {
            severity,
            service: "sshd".into(),
            file: Some(
                first
                    .map(|b| b.file.clone())
                    .unwrap_or_else(|| opts.sshd_config.clone()),
            ),
            line: first.map(|b| b.line),
            what,
            fix: format!("{fix} (the setting at fault is in the Match block)"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::sshd_match::{pattern_list, wildcard};
    use super::*;

    #[test]
    fn sshd_t_chains() {
        let c = parse_sshd_t(
            "usepam yes\npubkeyauthentication yes\npasswordauthentication no\nkbdinteractiveauthentication yes\nauthenticationmethods publickey,keyboard-interactive password\n",
        );
        assert_eq!(
            c.chains(),
            vec![vec![
                "publickey".to_owned(),
                "keyboard-interactive".to_owned()
            ]]
        );
        assert!(wildcard("b*", "bob") && !wildcard("b?", "bob"));
        assert!(pattern_list("*,!root", "bob") && !pattern_list("*,!root", "root"));
    }
}
