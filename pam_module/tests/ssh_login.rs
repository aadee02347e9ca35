//! A real `sshd` on 127.0.0.1, started through a symlink so that its PAM service (sshd takes it
//! from argv[0]) is the test's own file in /etc/pam.d, removed afterwards; a scripted
//! keyboard-interactive client (paramiko, `tests/ssh_client.py`), and OpenSSH's own client at a
//! terminal under `expect` (`tests/ssh_expect.exp`) for what it prints of the enrollment prompt;
//! real accounts with passwords; codes from `oathtool`. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    PamService, Sandbox, TestUser, module_path, oathtool, oathtool_b32, root_or_skip,
    wait_for_fresh_step_within,
};
use serde_json::{Value, json};
use twofold_policy::UserName;

/// The Python that has paramiko: Debian's, whatever `python3` is first on PATH.
const PYTHON: &str = "/usr/bin/python3";

struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
    _service: PamService,
}

impl Sshd {
    /// Starts sshd with the PAM stack `pam` (as the service file's text) and `config` appended
    /// to a base sshd_config.
    fn start(sandbox: &Sandbox, tag: &str, pam: &str, config: &str) -> Sshd {
        let dir = sandbox.dir();
        let service = PamService::install(tag, pam);
        let host_key = dir.join(format!("host_key_{tag}"));
        if !host_key.exists() {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&host_key)
                .status()
                .unwrap();
            assert!(st.success());
        }
        // Privilege separation directory, as the openssh-server package makes it at boot.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.join(format!("sshd_config_{tag}"));
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile none\n\
                 UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n\
                 PermitRootLogin no\nStrictModes no\nAuthorizedKeysFile {dir}/keys/%u\n\
                 {use_dns}LogLevel VERBOSE\n{config}\n",
                key = host_key.display(),
                dir = dir.display(),
                // sshd takes a keyword's first value: `config` may set UseDNS itself.
                use_dns = if config.contains("UseDNS") {
                    ""
                } else {
                    "UseDNS no\n"
                },
            ),
        )
        .unwrap();
        // sshd re-executes itself by argv[0], which must be absolute; it names the PAM service.
        let link = dir.join(&service.name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/usr/sbin/sshd", &link).unwrap();
        let log = dir.join(format!("sshd_{tag}.log"));
        let child = Command::new(&link)
            .args(["-D", "-f"])
            .arg(&conf)
            .arg("-E")
            .arg(&log)
            .spawn()
            .expect("sshd must be installed (make test installs openssh-server)");
        let sshd = Sshd {
            child,
            port,
            log,
            _service: service,
        };
        let start = Instant::now();
        while !sshd.log_text().contains("Server listening") {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not start: {}",
                sshd.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs the scripted client as `user` with `cfg` (see `tests/ssh_client.py`).
    fn client(&self, user: &str, cfg: Value) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ssh_client.py");
        let mut child = Command::new(PYTHON)
            .arg(script)
            .args([self.port.to_string().as_str(), user])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 with paramiko (make test installs python3-paramiko)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(cfg.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "client output {text:?} ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prompts(r: &Value) -> Vec<String> {
    r["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["prompt"].as_str().unwrap().to_owned())
        .collect()
}

/// An ed25519 key pair for `user`, authorized in the sandbox; returns the private key's path.
fn authorize_key(sandbox: &Sandbox, user: &str) -> PathBuf {
    let keys = sandbox.dir().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let private = sandbox.dir().join(format!("id_{user}"));
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&private)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::copy(private.with_extension("pub"), keys.join(user)).unwrap();
    private
}

#[test]
fn password_and_code_over_ssh_and_enrollment_inside_the_login() {
    if !root_or_skip() {
        return;
    }
    let alice = TestUser::create("a"); // required, enrolled
    let bob = TestUser::create("b"); // required, not enrolled: enrolls over SSH
    let sandbox = Sandbox::new(&format!(
        "mode = \"optional\"\n[enrollment]\nat_login = true\ngrace_period = \"7d\"\n\
         recovery_codes = 4\n[users.{a}]\nmode = \"required\"\n[users.{b}]\nmode = \"required\"\n",
        a = alice.name,
        b = bob.name
    ));
    let (secret, _) = sandbox.enroll(&alice.name, 2);
    let m = module_path();
    let args = sandbox.module_args();
    let sshd = Sshd::start(
        &sandbox,
        "pw",
        &format!(
            "@include common-auth\nauth required {m} {args}\n\
             @include common-account\naccount required {m} {args}\n\
             session required pam_permit.so\npassword required pam_deny.so\n",
            m = m.display()
        ),
        "AuthenticationMethods keyboard-interactive",
    );
    wait_for_fresh_step_within(12);
    // Password + code: logged in, and a command runs as the user.
    let r = sshd.client(
        &alice.name,
        json!({"password": alice.password, "code": oathtool(&secret, 0), "command": "id -un"}),
    );
    assert_eq!(r["ok"], true, "{r}\n{}", sshd.log_text());
    assert_eq!(r["stdout"].as_str().unwrap().trim(), alice.name, "{r}");
    assert_eq!(r["exit"], 0);
    let p = prompts(&r);
    assert!(
        p[0].starts_with("Password") && p[1] == "Verification code: ",
        "{p:?}"
    );
    // Wrong code: refused. The right code with a wrong password: refused.
    let r = sshd.client(
        &alice.name,
        json!({"password": alice.password, "code": "000000"}),
    );
    assert_eq!(r["ok"], false, "{r}");
    let r = sshd.client(
        &alice.name,
        json!({"password": "not-the-password", "code": oathtool(&secret, 1)}),
    );
    assert_eq!(r["ok"], false, "{r}");
    // The same code again (replay): refused.
    let r = sshd.client(
        &alice.name,
        json!({"password": alice.password, "code": oathtool(&secret, 0)}),
    );
    assert_eq!(r["ok"], false, "replay over ssh: {r}");

    // Bob enrolls inside the SSH login, from the QR/URI shown in the prompt.
    let r = sshd.client(
        &bob.name,
        json!({"password": bob.password, "command": "echo enrolled-and-in"}),
    );
    assert_eq!(r["ok"], true, "{r}\n{}", sshd.log_text());
    assert_eq!(r["stdout"].as_str().unwrap().trim(), "enrolled-and-in");
    let p = prompts(&r);
    let enrol = p.iter().find(|p| p.contains("otpauth://totp/")).unwrap();
    assert!(
        enrol.contains("Scan this QR code")
            && enrol.contains('▀')
            && enrol.contains("enter the key by hand"),
        "{enrol}"
    );
    let last = p.last().unwrap();
    assert!(
        last.contains("recovery codes") && last.contains("Press Enter"),
        "{p:?}"
    );
    assert_eq!(
        last.lines()
            .filter(|l| l.trim().len() == 14 && l.matches('-').count() == 2)
            .count(),
        4,
        "{last}"
    );
    let key = r["secret"].as_str().unwrap().to_owned();
    let state = sandbox
        .store()
        .read(&UserName::parse(&bob.name).unwrap())
        .unwrap();
    let enrollment = state.record.unwrap().enrollment.unwrap();
    assert_eq!(
        enrollment
            .authenticators
            .first()
            .unwrap()
            .secret()
            .unwrap()
            .to_base32()
            .as_str(),
        key,
        "the stored secret is the one shown"
    );
    // Next login: a code is asked, and the next step's code works.
    let r = sshd.client(
        &bob.name,
        json!({"password": bob.password, "code": oathtool_b32(&key, 1), "command": "true"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    assert!(prompts(&r).contains(&"Verification code: ".to_owned()));
    let log = sshd.log_text();
    assert!(
        log.contains(&format!(
            "Accepted keyboard-interactive/pam for {}",
            bob.name
        )),
        "{log}"
    );
}

#[test]
fn public_key_logins_cannot_skip_the_code() {
    if !root_or_skip() {
        return;
    }
    let carol = TestUser::create("c"); // required, enrolled
    let dave = TestUser::create("d"); // exempt
    let erin = TestUser::create("e"); // optional, not enrolled
    let sandbox = Sandbox::new(&format!(
        "mode = \"optional\"\n[users.{c}]\nmode = \"required\"\n[users.{d}]\nmode = \"disabled\"\n",
        c = carol.name,
        d = dave.name
    ));
    let (secret, _) = sandbox.enroll(&carol.name, 1);
    let keys: Vec<PathBuf> = [&carol, &dave, &erin]
        .iter()
        .map(|u| authorize_key(&sandbox, &u.name))
        .collect();
    let m = module_path();
    let args = sandbox.module_args();
    let account = format!(
        "@include common-account\naccount required {m} {args}\n\
         session required pam_permit.so\npassword required pam_deny.so\n",
        m = m.display()
    );
    // Key only, the whole PAM auth stack skipped: twofold's account check decides.
    {
        let sshd = Sshd::start(
            &sandbox,
            "key",
            &format!("auth required pam_deny.so\n{account}"),
            "AuthenticationMethods publickey",
        );
        let r = sshd.client(
            &carol.name,
            json!({"methods": "publickey", "key": keys[0], "command": "true"}),
        );
        assert_eq!(r["ok"], false, "required user passed with a key alone: {r}");
        for (user, key) in [(&dave, &keys[1]), (&erin, &keys[2])] {
            let r = sshd.client(
                &user.name,
                json!({"methods": "publickey", "key": key, "command": "id -un"}),
            );
            assert_eq!(r["ok"], true, "{}: {r}\n{}", user.name, sshd.log_text());
            assert_eq!(r["stdout"].as_str().unwrap().trim(), user.name);
        }
    }
    // Key + code (AuthenticationMethods publickey,keyboard-interactive; twofold alone in auth).
    let sshd = Sshd::start(
        &sandbox,
        "keycode",
        // twofold decides when it asks a code; when it has nothing to ask (PAM_IGNORE), the key
        // alone was enough by the policy: pam_permit.
        &format!(
            "auth [success=done ignore=ignore default=die] {m} {args}\nauth required pam_permit.so\n{account}",
            m = m.display()
        ),
        "AuthenticationMethods publickey,keyboard-interactive",
    );
    wait_for_fresh_step_within(8);
    let r = sshd.client(
        &carol.name,
        json!({"methods": "publickey,kbdint", "key": keys[0], "code": "000000"}),
    );
    assert_eq!(r["ok"], false, "{r}");
    let r = sshd.client(
        &carol.name,
        json!({"methods": "publickey,kbdint", "key": keys[0], "code": oathtool(&secret, 0), "command": "id -un"}),
    );
    assert_eq!(r["ok"], true, "{r}\n{}", sshd.log_text());
    assert_eq!(
        r["stdout"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}\n{}", sshd.log_text()))
            .trim(),
        carol.name
    );
    assert_eq!(prompts(&r), ["Verification code: "], "no password asked");
    // Exempt and optional-unenrolled users: the key and no prompt at all.
    for (user, key) in [(&dave, &keys[1]), (&erin, &keys[2])] {
        let r = sshd.client(
            &user.name,
            json!({"methods": "publickey,kbdint", "key": key, "command": "id -un"}),
        );
        assert_eq!(r["ok"], true, "{}: {r}\n{}", user.name, sshd.log_text());
        assert_eq!(prompts(&r).len(), 0, "{r}");
    }
    let log = sshd.log_text();
    assert!(
        log.contains(&format!(
            "Accepted keyboard-interactive/pam for {}",
            carol.name
        )),
        "{log}"
    );
}

/// What `zbarimg` reads from `text` rendered as a `theme` ("dark" or "light") terminal shows it
/// (tests/term_qr.py at the workspace's top); `None` when nothing decodes.
fn decode_as(theme: &str, file: &Path) -> Option<String> {
    let out = Command::new(PYTHON)
        .arg(term_qr())
        .arg(theme)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    (!got.is_empty()).then_some(got)
}

fn term_qr() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/term_qr.py")
}

#[test]
fn the_qr_code_in_an_openssh_prompt_reads_on_the_terminal_the_policy_draws_for() {
    if !root_or_skip() {
        return;
    }
    // (qr, the client's locale, the user); the last: an OpenSSH client in a locale that is not
    // UTF-8 escapes the block glyphs, and the key and the URI still do.
    let users = [
        ("dark", "C.UTF-8", TestUser::create("qd")),
        ("light", "C.UTF-8", TestUser::create("ql")),
        ("none", "C.UTF-8", TestUser::create("qn")),
        ("dark", "C", TestUser::create("qc")),
    ];
    let policy = |qr: &str| {
        let mut p = format!("mode = \"optional\"\n[enrollment]\nqr = \"{qr}\"\n");
        for (_, _, u) in &users {
            p.push_str(&format!("[users.{}]\nmode = \"required\"\n", u.name));
        }
        p
    };
    let sandbox = Sandbox::new(&policy("dark"));
    let m = module_path();
    let args = sandbox.module_args();
    let sshd = Sshd::start(
        &sandbox,
        "qr",
        &format!(
            "@include common-auth\nauth required {m} {args}\n\
             @include common-account\naccount required {m} {args}\n\
             session required pam_permit.so\npassword required pam_deny.so\n",
            m = m.display()
        ),
        "AuthenticationMethods keyboard-interactive",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ssh_expect.exp");
    for (qr, lang, user) in &users {
        std::fs::write(sandbox.dir().join("policy.toml"), policy(qr)).unwrap();
        let prompt_file = sandbox.dir().join(format!("prompt-{}.txt", user.name));
        let utf8 = *lang == "C.UTF-8";
        // The code typed comes from the QR code as the terminal it is drawn for shows it
        // (from the URI's text without one).
        let answer = if *qr == "none" || !utf8 { "text" } else { qr };
        wait_for_fresh_step_within(8);
        let out = Command::new("expect")
            .arg(&script)
            .arg(sshd.port.to_string())
            .arg(&user.name)
            .arg(&user.password)
            .arg(answer)
            .arg(&prompt_file)
            .arg(term_qr())
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("LANG", lang)
            .env("TERM", "xterm")
            .env("HOME", sandbox.dir())
            .output()
            .expect("expect must be installed (make test installs it)");
        let shown = format!(
            "{}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            sshd.log_text()
        );
        assert!(out.status.success(), "qr = {qr}: {shown}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("logged-in"),
            "{shown}"
        );
        // The prompt as OpenSSH printed it: the key and the URI beside the code (or alone).
        let prompt = std::fs::read_to_string(&prompt_file).unwrap();
        let uri = prompt
            .lines()
            .find_map(|l| l.trim_end_matches('\r').strip_prefix("or open this URI:  "))
            .unwrap_or_else(|| panic!("no URI: {prompt}"))
            .to_owned();
        let key: String = prompt
            .lines()
            .find_map(|l| l.split_once("the key by hand:  "))
            .unwrap_or_else(|| panic!("no key: {prompt}"))
            .1
            .trim_end_matches('\r')
            .replace(' ', "");
        assert!(uri.contains(&format!("secret={key}&")), "{prompt}");
        let (dark, light) = (
            decode_as("dark", &prompt_file),
            decode_as("light", &prompt_file),
        );
        match *qr {
            _ if !utf8 => {
                // Each glyph's bytes as octal escapes (\342\226\200 is ▀): no code to scan.
                assert!(
                    !prompt.contains(['█', '▀', '▄']) && prompt.contains("\\342\\226\\200"),
                    "{prompt}"
                );
                assert_eq!((dark, light), (None, None), "{prompt}");
            }
            "dark" => {
                assert_eq!(dark.as_deref(), Some(uri.as_str()), "{prompt}");
                assert_eq!(light, None, "read inverted: {prompt}");
            }
            "light" => {
                assert_eq!(light.as_deref(), Some(uri.as_str()), "{prompt}");
                assert_eq!(dark, None, "read inverted: {prompt}");
            }
            _ => {
                assert!(!prompt.contains(['█', '▀', '▄']), "{prompt}");
                assert_eq!((dark, light), (None, None), "{prompt}");
            }
        }
        assert!(!prompt.contains('\x1b'), "{prompt}");
        // The secret stored is the one the QR code (or the text) gave, confirmed by its code.
        let state = sandbox
            .store()
            .read(&UserName::parse(&user.name).unwrap())
            .unwrap();
        let stored = state.record.unwrap().enrollment.unwrap();
        assert_eq!(
            stored.authenticators[0]
                .secret()
                .unwrap()
                .to_base32()
                .as_str(),
            key,
            "{qr}"
        );
    }
}

#[test]
fn network_rules_see_an_address_but_never_the_name_use_dns_gives() {
    if !root_or_skip() {
        return;
    }
    // Required, except from the loopback network sshd listens on here.
    let alice = TestUser::create("n");
    let sandbox = Sandbox::new(
        "mode = \"required\"\n[enrollment]\nat_login = false\n\
         [networks.\"127.0.0.0/8\"]\nmode = \"disabled\"\n",
    );
    let (secret, _) = sandbox.enroll(&alice.name, 1);
    let m = module_path();
    let args = sandbox.module_args();
    let pam = format!(
        "@include common-auth\nauth required {m} {args}\n\
         @include common-account\naccount required {m} {args}\n\
         session required pam_permit.so\npassword required pam_deny.so\n",
        m = m.display()
    );
    let method = "AuthenticationMethods keyboard-interactive";
    // UseDNS no: PAM_RHOST is 127.0.0.1, in the network: the password alone.
    let sshd = Sshd::start(&sandbox, "netaddr", &pam, &format!("UseDNS no\n{method}"));
    let r = sshd.client(
        &alice.name,
        json!({"password": alice.password, "command": "id -un"}),
    );
    assert_eq!(r["ok"], true, "{r}\n{}", sshd.log_text());
    assert!(
        !prompts(&r).iter().any(|p| p.contains("Verification code")),
        "{r}"
    );
    drop(sshd);
    // UseDNS yes: sshd hands over the name 127.0.0.1 resolves to (localhost), which is in no
    // network: the code is asked, and without it no login.
    let sshd = Sshd::start(&sandbox, "netname", &pam, &format!("UseDNS yes\n{method}"));
    let r = sshd.client(&alice.name, json!({"password": alice.password}));
    assert_eq!(r["ok"], false, "{r}\n{}", sshd.log_text());
    assert!(
        prompts(&r).iter().any(|p| p.contains("Verification code")),
        "{r}"
    );
    wait_for_fresh_step_within(12);
    let r = sshd.client(
        &alice.name,
        json!({"password": alice.password, "code": oathtool(&secret, 0), "command": "id -un"}),
    );
    assert_eq!(r["ok"], true, "{r}\n{}", sshd.log_text());
    assert!(
        prompts(&r).iter().any(|p| p.contains("Verification code")),
        "{r}"
    );
}
