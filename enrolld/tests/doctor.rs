//! `twofold doctor` against the real `sshd -T` (openssh-server, installed by `make deps`) with
//! test sshd_config files and a host key in a temporary directory, and test PAM directories
//! (Debian's stacks in `tests/data/doctor/pam`, sshd's stack from the README, Cockpit's stock
//! stack in `tests/data/doctor/cockpit`) with a test cockpit.conf and keytab paths. Never reads
//! or changes /etc/pam.d, /etc/ssh or /etc/cockpit. Needs root (the policy must be owned by
//! root), as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Dir, root_or_skip};
use serde_json::Value;

const SSHD: &str = "/usr/sbin/sshd";

/// The two code blocks (PAM lines, sshd_config lines) after `heading` in the README.
fn readme_setup(heading: &str) -> (String, String) {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let at = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    let mut blocks = readme[at..].split("```").skip(1).step_by(2);
    let pam = blocks.next().unwrap();
    let sshd = blocks.next().unwrap();
    // `...` stands for the rest of Debian's file.
    let pam: String = pam
        .lines()
        .filter(|l| l.trim() != "..." && !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    (
        pam + "@include common-session\n",
        sshd.trim_start().to_owned(),
    )
}

/// A host: a PAM directory, an sshd_config with its own host key, a policy.
struct Host {
    dir: Dir,
    pam: PathBuf,
    config: PathBuf,
    policy: PathBuf,
    /// cockpit.conf (absent unless a test writes it); Cockpit's own keytab goes beside it.
    cockpit_conf: PathBuf,
}

impl Host {
    /// Debian's stacks plus `extra` PAM files, `sshd_config` (a HostKey line is added), and
    /// `policy`.
    fn new(extra: &[(&str, &str)], sshd_config: &str, policy: &str) -> Host {
        let dir = Dir::new();
        let pam = dir.path().join("pam.d");
        std::fs::create_dir(&pam).unwrap();
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/doctor/pam");
        for e in std::fs::read_dir(&data).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), pam.join(e.file_name())).unwrap();
        }
        for (name, text) in extra {
            std::fs::write(pam.join(name), text).unwrap();
        }
        let key = dir.path().join("host_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(&key)
            .output()
            .expect("ssh-keygen must be installed (make test installs openssh)");
        assert!(out.status.success(), "{out:?}");
        let config = dir.write(
            "sshd_config",
            &format!("HostKey {}\n{sshd_config}", key.display()),
        );
        let policy = dir.write("policy.toml", policy);
        let cockpit = dir.path().join("cockpit");
        std::fs::create_dir(&cockpit).unwrap();
        // The users whose homes are looked at for a ~/.google_authenticator: none here.
        dir.write("passwd", "");
        Host {
            dir,
            pam,
            config,
            policy,
            cockpit_conf: cockpit.join("cockpit.conf"),
        }
    }

    fn run(&self, extra: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_twofold"))
            .arg("--policy")
            .arg(&self.policy)
            .arg("--state")
            .arg(self.dir.path().join("state"))
            .arg("doctor")
            .arg("--pam-dir")
            .arg(&self.pam)
            .arg("--sshd-config")
            .arg(&self.config)
            .arg("--sshd")
            .arg(SSHD)
            .arg("--cockpit-conf")
            .arg(&self.cockpit_conf)
            .arg("--krb5-keytab")
            .arg(self.dir.path().join("krb5.keytab"))
            .arg("--passwd")
            .arg(self.dir.path().join("passwd"))
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// `--json`: (exit status, the document).
    fn json(&self) -> (i32, Value) {
        let (code, out, err) = self.run(&["--json"]);
        let v: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
        (code, v)
    }
}

fn findings<'a>(v: &'a Value, severity: &str) -> Vec<&'a Value> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == severity)
        .collect()
}

fn text(f: &Value) -> String {
    format!("{} / {}", f["what"], f["fix"])
}

const REQUIRED: &str = "mode = \"required\"\n";
const NOBODY: &str = "mode = \"optional\"\n";

fn sshd_ok() -> bool {
    if Path::new(SSHD).exists() {
        return true;
    }
    eprintln!("{SSHD} is missing: make deps installs openssh-server");
    false
}

#[test]
fn readme_setups_are_clean() {
    if !root_or_skip() || !sshd_ok() {
        return;
    }
    for heading in ["### sshd: password + code", "### sshd: key + code"] {
        let (pam, sshd_config) = readme_setup(heading);
        let host = Host::new(&[("sshd", &pam)], &sshd_config, REQUIRED);
        let (code, v) = host.json();
        assert_eq!(code, 0, "{heading}: {v:#}");
        assert_eq!(v["bypass"], 0, "{heading}: {v:#}");
        assert_eq!(v["lockout"], 0, "{heading}: {v:#}");
        // su (and su-l, which includes it) from root is by design: a warning naming the line,
        // not counted.
        let warnings = findings(&v, "warning");
        assert!(
            warnings.iter().any(|f| f["service"] == "su"
                && f["line"] == 2
                && f["file"].as_str().unwrap().ends_with("/su")
                && text(f).contains("pam_rootok.so")),
            "{heading}: {v:#}"
        );
        // chfn is not a login; `other` is the fallback.
        assert!(
            v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["service"] != "chfn" && f["service"] != "other"),
            "{v:#}"
        );
        // The human form: one block per finding, a summary.
        let (code, out, _) = host.run(&[]);
        assert_eq!(code, 0);
        assert!(out.contains("warning: su ("), "{out}");
        assert!(out.contains("  fix: "), "{out}");
        assert!(
            out.trim_end().ends_with(
                "doctor: 0 bypasses, 0 lockouts, 0 unchecked, 2 warnings: no path skips the code"
            ),
            "{out}"
        );
    }
}

#[test]
fn public_key_alone_without_the_account_line_is_a_bypass() {
    if !root_or_skip() || !sshd_ok() {
        return;
    }
    let no_account = "@include common-auth\nauth required pam_twofold.so\n@include common-account\n@include common-session\n";
    let host = Host::new(
        &[("sshd", no_account)],
        "UsePAM yes\nPubkeyAuthentication yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\nAuthenticationMethods publickey\n",
        REQUIRED,
    );
    let (code, v) = host.json();
    assert_eq!(code, 7, "{v:#}");
    assert_eq!(v["bypass"], 1, "{v:#}");
    let b = findings(&v, "bypass")[0];
    assert_eq!(b["service"], "sshd");
    assert_eq!(b["file"], host.config.display().to_string());
    assert!(
        text(b).contains("`publickey` logins never run the PAM auth stack")
            && text(b).contains("has no `account` line running pam_twofold.so")
            && b["fix"]
                .as_str()
                .unwrap()
                .contains("add `account required pam_twofold.so` after `@include common-account`"),
        "{b:#}"
    );
    // The same with the README's account line: public keys alone can never give a code.
    let (pam, _) = readme_setup("### sshd: password + code");
    let host = Host::new(
        &[("sshd", &pam)],
        "UsePAM yes\nPubkeyAuthentication yes\nAuthenticationMethods publickey\n",
        REQUIRED,
    );
    let (code, v) = host.json();
    assert_eq!(code, 8, "{v:#}");
    assert!(
        text(findings(&v, "lockout")[0]).contains("no method chain reaches keyboard-interactive"),
        "{v:#}"
    );
    // With `AuthenticationMethods any` (sshd's default) key logins skip the code just the same.
    let host = Host::new(
        &[("sshd", no_account)],
        "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n",
        REQUIRED,
    );
    let (code, v) = host.json();
    assert_eq!(code, 7, "{v:#}");
    assert!(text(findings(&v, "bypass")[0]).contains("AuthenticationMethods any"));
}

#[test]
fn password_authentication_with_twofold_in_the_auth_stack_is_a_lockout() {
    if !root_or_skip() || !sshd_ok() {
        return;
    }
    let (pam, _) = readme_setup("### sshd: password + code");
    let host = Host::new(
        &[("sshd", &pam)],
        "UsePAM yes\nKbdInteractiveAuthentication no\nPasswordAuthentication yes\n",
        REQUIRED,
    );
    let (code, v) = host.json();
    assert_eq!(code, 8, "{v:#}");
    assert_eq!(v["bypass"], 0, "{v:#}");
    let l = findings(&v, "lockout");
    assert_eq!(l.len(), 1, "{v:#}");
    assert!(
        text(l[0]).contains("gets the password as the code")
            && text(l[0]).contains("`PasswordAuthentication no`"),
        "{v:#}"
    );
    // With keyboard-interactive beside it, only clients that pick `password` fail: a warning.
    let host = Host::new(
        &[("sshd", &pam)],
        "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication yes\n",
        REQUIRED,
    );
    let (code, v) = host.json();
    assert_eq!(code, 0, "{v:#}");
    assert!(
        findings(&v, "warning")
            .iter()
            .any(|f| text(f).contains("gets the password as the code")),
        "{v:#}"
    );
}

#[test]
fn use_pam_no_is_a_bypass() {
    if !root_or_skip() || !sshd_ok() {
        return;
    }
    let (pam, sshd_config) = readme_setup("### sshd: password + code");
    let host = Host::new(
        &[("sshd", &pam)],
        &sshd_config.replace("UsePAM yes", "UsePAM no"),
        REQUIRED,
    );
    let (code, v) = host.json();
    assert_eq!(code, 7, "{v:#}");
    let b = findings(&v, "bypass");
    assert_eq!(b.len(), 1, "{v:#}");
    assert!(text(b[0]).contains("UsePAM no") && text(b[0]).contains("`UsePAM yes`"));
}

#[test]
fn a_sufficient_module_before_twofold_is_a_bypass_naming_the_line() {
    if !root_or_skip() || !sshd_ok() {
        return;
    }
    let (pam, sshd_config) = readme_setup("### sshd: password + code");
    let sudo = "session required pam_limits.so\nauth sufficient pam_sss.so\n@include common-auth\nauth required pam_twofold.so\n@include common-account\n";
    // A jump over twofold from an included file counts too.
    let sudo_i = "@include common-auth-jump\n@include common-account\n";
    let jump = "auth [success=2 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\nauth required pam_twofold.so\nauth required pam_permit.so\n";
    let host = Host::new(
        &[
            ("sshd", &pam),
            ("sudo", sudo),
            ("sudo-i", sudo_i),
            ("common-auth-jump", jump),
        ],
        &sshd_config,
        REQUIRED,
    );
    let (code, v) = host.json();
    assert_eq!(code, 7, "{v:#}");
    let b = findings(&v, "bypass");
    assert_eq!(b.len(), 2, "{v:#}");
    let sss = b.iter().find(|f| f["service"] == "sudo").unwrap();
    assert_eq!(sss["line"], 2);
    assert!(sss["file"].as_str().unwrap().ends_with("/sudo"));
    assert!(
        text(sss).contains("`auth sufficient pam_sss.so`")
            && text(sss).contains("its success (sufficient) ends the stack before pam_twofold.so"),
        "{sss:#}"
    );
    let j = b.iter().find(|f| f["service"] == "sudo-i").unwrap();
    assert!(j["file"].as_str().unwrap().ends_with("/common-auth-jump"));
    assert_eq!(j["line"], 1);
    assert!(text(j).contains("jumps over pam_twofold.so"), "{j:#}");
}

#[test]
fn a_match_block_is_reported_with_its_criteria() {
    if !root_or_skip() || !sshd_ok() {
        return;
    }
    let (pam, sshd_config) = readme_setup("### sshd: password + code");
    let config = format!("{sshd_config}\nMatch User bob\n    AuthenticationMethods publickey\n");
    let match_line = config.lines().position(|l| l == "Match User bob").unwrap() + 2; // + HostKey
    // bob is required by name.
    let policy = "[users.bob]\nmode = \"required\"\n";
    let host = Host::new(&[("sshd", &pam)], &config, policy);
    let (code, v) = host.json();
    assert_eq!(code, 8, "{v:#}");
    let l = findings(&v, "lockout");
    assert_eq!(l.len(), 1, "{v:#}");
    assert_eq!(l[0]["line"], match_line, "{v:#}");
    assert!(
        text(l[0]).contains("`Match User bob`")
            && text(l[0]).contains("for user bob")
            && text(l[0]).contains("no method chain reaches keyboard-interactive"),
        "{v:#}"
    );
    // Without the account line it lets bob in with his key alone.
    let no_account = pam.replace("account required pam_twofold.so\n", "");
    let host = Host::new(&[("sshd", &no_account)], &config, policy);
    let (code, v) = host.json();
    assert_eq!(code, 7, "{v:#}");
    let b = findings(&v, "bypass");
    assert_eq!(b.len(), 1, "{v:#}");
    assert!(
        text(b[0]).contains("`Match User bob`")
            && text(b[0]).contains("a required user logs in with the key alone"),
        "{v:#}"
    );
}

#[test]
fn a_service_without_twofold_counts_only_when_someone_is_required() {
    if !root_or_skip() || !sshd_ok() {
        return;
    }
    let (pam, sshd_config) = readme_setup("### sshd: password + code");
    let cockpit = "auth required pam_env.so\n@include common-auth\n@include common-account\n";
    let files = [("sshd", pam.as_str()), ("cockpit", cockpit)];
    let host = Host::new(
        &files,
        &sshd_config,
        "[groups.wheel]\nmode = \"required\"\n",
    );
    let (code, v) = host.json();
    assert_eq!(code, 7, "{v:#}");
    let b = findings(&v, "bypass");
    assert_eq!(b.len(), 1, "{v:#}");
    assert_eq!(b[0]["service"], "cockpit");
    assert!(
        text(b[0]).contains("never runs pam_twofold.so")
            && text(b[0]).contains("[groups.wheel] is required"),
        "{v:#}"
    );
    // Required only for logins from a network: someone must give a code there too.
    let host = Host::new(
        &files,
        &sshd_config,
        "mode = \"optional\"\n[networks.\"192.0.2.0/24\"]\nmode = \"required\"\n",
    );
    let (code, v) = host.json();
    assert_eq!(code, 7, "{v:#}");
    let b = findings(&v, "bypass");
    assert!(
        b.len() == 1
            && b[0]["what"]
                .as_str()
                .unwrap()
                .contains("[networks.\"192.0.2.0/24\"] is required"),
        "{v:#}"
    );
    // The policy requires no one: not a finding, and doctor says so.
    let host = Host::new(&files, &sshd_config, NOBODY);
    let (code, v) = host.json();
    assert_eq!(code, 0, "{v:#}");
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["service"] != "cockpit"),
        "{v:#}"
    );
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("cockpit")
                && n.as_str().unwrap().contains("requires no one")),
        "{v:#}"
    );
    // The policy leaves cockpit alone on purpose.
    let host = Host::new(
        &files,
        &sshd_config,
        "mode = \"required\"\n[services.cockpit]\nmode = \"disabled\"\n",
    );
    let (code, v) = host.json();
    assert_eq!(code, 0, "{v:#}");
}

#[test]
fn a_failing_sshd_t_is_reported_as_unchecked() {
    if !root_or_skip() || !sshd_ok() {
        return;
    }
    let (pam, sshd_config) = readme_setup("### sshd: password + code");
    let host = Host::new(&[("sshd", &pam)], &sshd_config, REQUIRED);
    // No host key: sshd -T refuses to run.
    std::fs::write(
        &host.config,
        format!(
            "HostKey {}\n{sshd_config}",
            host.dir.path().join("missing-key").display()
        ),
    )
    .unwrap();
    let (code, v) = host.json();
    assert_eq!(code, 9, "{v:#}");
    let u = findings(&v, "unchecked");
    assert_eq!(u.len(), 1, "{v:#}");
    assert!(text(u[0]).contains("doctor could not check sshd"), "{v:#}");
}

/// A file of `tests/data/doctor/cockpit`.
fn cockpit_data(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/doctor/cockpit")
            .join(name),
    )
    .unwrap()
}

/// Debian's stock `/etc/pam.d/cockpit` with `line` put before its line `at` (1-based).
fn stock_cockpit_with(at: usize, line: &str) -> String {
    let stock = cockpit_data("cockpit");
    let mut lines: Vec<&str> = stock.lines().collect();
    lines.insert(at - 1, line);
    lines.join("\n") + "\n"
}

/// What a Cockpit case should find on service `cockpit`.
enum Expect {
    /// No finding on cockpit, exit 0.
    Clean,
    /// Exactly one finding on cockpit: severity, the end of its file, its line, texts in it.
    One(
        &'static str,
        &'static str,
        Option<u64>,
        &'static [&'static str],
    ),
}

struct CockpitCase {
    name: &'static str,
    /// `/etc/pam.d/cockpit`; `None`: no such file.
    pam: Option<String>,
    /// `common-auth` as the twofold profile writes it (else Debian's, without the module).
    profile: bool,
    cockpit_conf: Option<&'static str>,
    /// A keytab beside cockpit.conf (Cockpit's own).
    keytab: bool,
    policy: &'static str,
    expect: Expect,
}

#[test]
fn cockpit_is_checked_like_the_other_services() {
    if !root_or_skip() || !sshd_ok() {
        return;
    }
    let stock = cockpit_data("cockpit");
    let account_line = stock.replace(
        "account    include      common-account\n",
        "account    include      common-account\naccount    required     pam_twofold.so\n",
    );
    assert_ne!(account_line, stock);
    const CERT: &str = "[WebService]\nClientCertAuthentication = yes\n";
    let cases = [
        CockpitCase {
            name: "stock stack, the module in common-auth",
            pam: Some(stock.clone()),
            profile: true,
            cockpit_conf: None,
            keytab: false,
            policy: REQUIRED,
            expect: Expect::Clean,
        },
        CockpitCase {
            name: "stock stack, common-auth without the module",
            pam: Some(stock.clone()),
            profile: false,
            cockpit_conf: None,
            keytab: false,
            policy: REQUIRED,
            expect: Expect::One(
                "bypass",
                "/cockpit",
                None,
                &[
                    "the auth stack never runs pam_twofold.so",
                    "users log in through cockpit without a code, though the default mode is required",
                    "add `auth required pam_twofold.so` right after `auth substack common-auth`",
                ],
            ),
        },
        CockpitCase {
            name: "a sufficient module before the substack",
            pam: Some(stock_cockpit_with(3, "auth       sufficient   pam_sss.so")),
            profile: true,
            cockpit_conf: None,
            keytab: false,
            policy: REQUIRED,
            expect: Expect::One(
                "bypass",
                "/cockpit",
                Some(3),
                &[
                    "`auth sufficient pam_sss.so`",
                    "its success (sufficient) ends the stack before pam_twofold.so",
                ],
            ),
        },
        CockpitCase {
            name: "the code asked before the password",
            pam: Some(stock_cockpit_with(
                3,
                "auth       required     pam_twofold.so",
            )),
            profile: false,
            cockpit_conf: None,
            keytab: false,
            policy: REQUIRED,
            expect: Expect::One(
                "lockout",
                "/cockpit",
                Some(3),
                &[
                    "`auth required pam_twofold.so`",
                    "runs before `auth [success=1 default=ignore] pam_unix.so nullok`",
                    "gets the password as the code",
                    "move `auth required pam_twofold.so` below `auth substack common-auth`",
                ],
            ),
        },
        CockpitCase {
            name: "certificate logins without the account line",
            pam: Some(stock.clone()),
            profile: true,
            cockpit_conf: Some(CERT),
            keytab: false,
            policy: REQUIRED,
            expect: Expect::One(
                "bypass",
                "/cockpit",
                None,
                &[
                    "TLS client certificate logins (`ClientCertAuthentication = yes`",
                    "cockpit.conf:2)",
                    "never run the PAM auth stack, only the account stack",
                    "has no `account` line running pam_twofold.so",
                    "a required user logs in to Cockpit with a client certificate alone",
                    "add `account required pam_twofold.so` after `account include common-account`",
                    "`ClientCertAuthentication = no` under [WebService]",
                ],
            ),
        },
        CockpitCase {
            name: "certificate logins with the account line",
            pam: Some(account_line.clone()),
            profile: true,
            cockpit_conf: Some(CERT),
            keytab: false,
            policy: REQUIRED,
            expect: Expect::Clean,
        },
        CockpitCase {
            name: "certificate logins turned off for the tls-cert scheme",
            pam: Some(stock.clone()),
            profile: true,
            cockpit_conf: Some(
                "[WebService]\nClientCertAuthentication = yes\n[tls-cert]\naction = none\n",
            ),
            keytab: false,
            policy: REQUIRED,
            expect: Expect::Clean,
        },
        CockpitCase {
            name: "Kerberos logins (a keytab) without the account line",
            pam: Some(stock.clone()),
            profile: true,
            cockpit_conf: None,
            keytab: true,
            policy: REQUIRED,
            expect: Expect::One(
                "bypass",
                "/cockpit",
                None,
                &[
                    "Kerberos logins (Negotiate: the keytab",
                    "a required user logs in to Cockpit with a Kerberos ticket alone",
                    "`action = none` under [Negotiate]",
                ],
            ),
        },
        CockpitCase {
            name: "Kerberos logins turned off",
            pam: Some(stock.clone()),
            profile: true,
            cockpit_conf: Some("# no Kerberos\n[Negotiate]\nAction = none\n"),
            keytab: true,
            policy: REQUIRED,
            expect: Expect::Clean,
        },
        CockpitCase {
            name: "the policy leaves cockpit alone",
            pam: Some(stock.clone()),
            profile: false,
            cockpit_conf: Some(CERT),
            keytab: true,
            policy: "mode = \"required\"\n[services.cockpit]\nmode = \"disabled\"\n",
            expect: Expect::Clean,
        },
        CockpitCase {
            name: "the policy requires no one",
            pam: Some(stock.clone()),
            profile: false,
            cockpit_conf: Some(CERT),
            keytab: false,
            policy: NOBODY,
            expect: Expect::One(
                "warning",
                "/cockpit",
                None,
                &[
                    "[a bypass once the policy requires someone on cockpit; it requires no one there now]",
                ],
            ),
        },
        CockpitCase {
            name: "no Cockpit PAM service",
            pam: None,
            profile: false,
            cockpit_conf: Some(CERT),
            keytab: true,
            policy: REQUIRED,
            expect: Expect::Clean,
        },
    ];
    let (sshd_pam, sshd_config) = readme_setup("### sshd: password + code");
    let common_auth = cockpit_data("common-auth-twofold");
    for case in &cases {
        let mut extra = vec![("sshd", sshd_pam.as_str())];
        if let Some(p) = &case.pam {
            extra.push(("cockpit", p.as_str()));
        }
        if case.profile {
            extra.push(("common-auth", common_auth.as_str()));
        }
        let host = Host::new(&extra, &sshd_config, case.policy);
        if let Some(c) = case.cockpit_conf {
            std::fs::write(&host.cockpit_conf, c).unwrap();
        }
        if case.keytab {
            std::fs::write(host.cockpit_conf.with_file_name("krb5.keytab"), b"\x05\x02").unwrap();
        }
        let (code, v) = host.json();
        let name = case.name;
        let on_cockpit: Vec<&Value> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["service"] == "cockpit")
            .collect();
        match &case.expect {
            Expect::Clean => {
                assert_eq!(code, 0, "{name}: {v:#}");
                assert!(on_cockpit.is_empty(), "{name}: {v:#}");
            }
            Expect::One(severity, file, line, texts) => {
                assert_eq!(on_cockpit.len(), 1, "{name}: {v:#}");
                let f = on_cockpit[0];
                assert_eq!(f["severity"], *severity, "{name}: {f:#}");
                assert!(f["file"].as_str().unwrap().ends_with(file), "{name}: {f:#}");
                assert_eq!(f["line"].as_u64(), *line, "{name}: {f:#}");
                for t in *texts {
                    assert!(text(f).contains(t), "{name}: no {t:?} in {f:#}");
                }
                let want = match *severity {
                    "bypass" => 7,
                    "lockout" => 8,
                    _ => 0,
                };
                assert_eq!(code, want, "{name}: {v:#}");
            }
        }
        let notes: Vec<&str> = v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        match name {
            "certificate logins with the account line" => assert!(
                notes
                    .iter()
                    .any(|n| n.starts_with("cockpit: TLS client certificate logins")
                        && n.contains("refuses them for users who need a code")),
                "{name}: {v:#}"
            ),
            "the policy leaves cockpit alone" => assert!(
                notes
                    .iter()
                    .any(|n| n.contains("the policy disables twofold there")
                        && n.contains("cockpit")),
                "{name}: {v:#}"
            ),
            "no Cockpit PAM service" => assert!(
                notes.iter().all(|n| !n.contains("cockpit")),
                "{name}: {v:#}"
            ),
            _ => {}
        }
    }
}

/// What a migration leaves behind: pam_google_authenticator.so beside pam_twofold.so (two
/// prompts), pam_oath.so alone in a service, and a user with a ~/.google_authenticator and no
/// twofold enrollment; warnings, not failures.
#[test]
fn migration_leftovers_are_named() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("needs root (the homes are looked at as root)");
        return;
    }
    let host = Host::new(
        &[
            (
                "sshd",
                "@include common-auth\nauth required pam_google_authenticator.so nullok\nauth required pam_twofold.so\n@include common-account\n",
            ),
            (
                "vpn",
                "auth required pam_unix.so\nauth required pam_oath.so usersfile=/etc/users.oath\n",
            ),
        ],
        "UsePAM yes\nKbdInteractiveAuthentication yes\n",
        REQUIRED,
    );
    let home = host.dir.path().join("home-ghost");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join(".google_authenticator"), "SECRET\n").unwrap();
    let plain = host.dir.path().join("home-plain");
    std::fs::create_dir(&plain).unwrap();
    host.dir.write(
        "passwd",
        &format!(
            "ghost:x:4001:4001::{}:/bin/sh\nplain:x:4002:4002::{}:/bin/sh\n",
            home.display(),
            plain.display()
        ),
    );
    let (_, v) = host.json();
    let warnings = findings(&v, "warning");
    assert!(
        warnings.iter().any(|f| f["service"] == "sshd"
            && text(f).contains("pam_google_authenticator.so runs beside pam_twofold.so")
            && text(f).contains("twofold import google-authenticator --all")),
        "{v:#}"
    );
    assert!(
        warnings.iter().any(|f| f["service"] == "vpn"
            && text(f).contains("pam_oath.so decides the code of vpn")
            && text(f).contains("twofold import oath")),
        "{v:#}"
    );
    assert!(
        warnings.iter().any(|f| text(f)
            .contains("1 user with a ~/.google_authenticator and no twofold enrollment: ghost")),
        "{v:#}"
    );
    assert!(!v.to_string().contains("plain"), "{v:#}");
    assert!(
        !v.to_string().contains("SECRET"),
        "the file is never read: {v:#}"
    );
}

fn store_findings(v: &Value) -> Vec<&Value> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["service"] == "store")
        .collect()
}

/// `twofold doctor --json` on `host` exits 8 with one finding of the store, a lockout, of
/// which `holds`.
fn one_store_lockout(host: &Host, holds: impl Fn(&Value) -> bool) {
    let (code, v) = host.json();
    assert_eq!(code, 8, "{v:#}");
    let f = store_findings(&v);
    assert!(
        f.len() == 1 && f[0]["severity"] == "lockout" && holds(f[0]),
        "{v:#}"
    );
}

#[test]
fn a_directory_logins_cannot_use_is_reported() {
    use twofold_system_tests::fleet_store::{LdapPolicy, password_file, set_mode, set_override};
    use twofold_system_tests::slapd::{Options, Slapd};
    if !root_or_skip() || !sshd_ok() {
        return;
    }
    let mut slapd = Slapd::start(&Options::default()).expect("slapd");
    let (pam, sshd_config) = readme_setup("### sshd: password + code");
    let host = Host::new(&[("sshd", &pam)], &sshd_config, REQUIRED);
    let state = host.dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    set_mode(&state, 0o700).unwrap();
    let secret =
        password_file(host.dir.path(), &format!("{}\n", slapd.service_password())).unwrap();
    let base = slapd.twofold_base();
    let ldap = LdapPolicy {
        timeout: "1s".into(),
        ..LdapPolicy::of(&slapd, &secret)
    };
    let set_policy = |mode: &str, base: &str, extra: &str| {
        let text = LdapPolicy {
            head: mode.into(),
            base: base.into(),
            extra: extra.into(),
            ..ldap.clone()
        }
        .text();
        std::fs::write(&host.policy, text).unwrap();
    };

    // Reachable and complete: nothing to report; the overrides are the directory's.
    set_policy(REQUIRED, &base, "");
    let policy = twofold_policy::Policy::load(&host.policy, None).unwrap();
    let store = twofold_policy::store::open_backend(
        std::sync::Arc::new(twofold_policy::store::Store::open(&state).unwrap()),
        &policy,
    )
    .unwrap();
    set_override(&*store, "tfdocalice", twofold_policy::Mode::Required).unwrap();
    let (code, v) = host.json();
    assert_eq!(code, 0, "{v:#}");
    assert!(store_findings(&v).is_empty(), "{v:#}");
    let notes = v["notes"].to_string();
    assert!(
        notes.contains(&format!("the store is the directory {}", slapd.ldapi_url()))
            && notes.contains("it answers, and 1 account there has an admin override to required"),
        "{v:#}"
    );

    // The password file readable by others: refused, as a login would refuse it.
    set_mode(&secret, 0o644).unwrap();
    one_store_lockout(&host, |f| {
        f["file"] == secret.display().to_string()
            && text(f).contains("mode 0644, expected 0600")
            && text(f).contains("chmod 600")
    });
    set_mode(&secret, 0o600).unwrap();

    // A wrong password: the bind is refused.
    std::fs::write(&secret, "not-the-password\n").unwrap();
    let (code, v) = host.json();
    assert_eq!(code, 8, "{v:#}");
    let f = store_findings(&v);
    assert!(
        f.len() == 1 && text(f[0]).contains("the directory refuses the store's bind"),
        "{v:#}"
    );
    std::fs::write(&secret, format!("{}\n", slapd.service_password())).unwrap();

    // A base without twofold's entries: nobody could enroll. A lockout while the policy
    // requires someone, a warning otherwise.
    let elsewhere = format!("ou=elsewhere,{}", slapd.base());
    set_policy(REQUIRED, &elsewhere, "");
    one_store_lockout(&host, |f| {
        f["file"] == host.policy.display().to_string()
            && f["line"] == 6
            && text(f).contains(&format!("ou=accounts,{elsewhere}"))
            && text(f).contains("no such entry, or the service account may not read it")
    });
    set_policy(NOBODY, &elsewhere, "");
    let (_, v) = host.json();
    let f = store_findings(&v);
    assert!(f.len() == 1 && f[0]["severity"] == "warning", "{v:#}");

    // The directory down: every login through the module fails closed, whom the policy
    // requires or not; the finding names the line of the URI, and the offline copy if kept.
    set_policy(NOBODY, &base, "");
    slapd.stop().unwrap();
    one_store_lockout(&host, |f| {
        f["line"] == 5
            && text(f).contains(&format!(
                "the directory cannot be reached ({}",
                slapd.ldapi_url()
            ))
            && text(f).contains("[store.offline] is off")
    });
    set_policy(
        NOBODY,
        &base,
        "[store.offline]\nenabled = true\nmax_age = \"2d\"\n",
    );
    let (_, out, _) = host.run(&[]);
    assert!(
        out.contains("lockout: store (")
            && out.contains("only users with an offline copy on this host younger than 2d"),
        "{out}"
    );
    // Back: clean again.
    slapd.start_again().unwrap();
    let (code, v) = host.json();
    assert_eq!(code, 0, "{v:#}");
}
