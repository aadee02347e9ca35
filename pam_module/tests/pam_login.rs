//! pam_twofold.so through the real libpam: pam_wrapper with a temporary service directory,
//! pamtester as the application, codes from `oathtool`. Needs root (the store is root's), as CI
//! runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Sandbox, module_path, oathtool, root_or_skip, wait_for_fresh_step};
use twofold_policy::UserName;
use twofold_policy::store::Store;
use twofold_policy::totp::Secret;

const WRAPPER: &str = "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so";

/// A sandbox and a PAM service `twofold-test` for pam_wrapper, in the sandbox's `pam.d`.
struct Rig {
    sandbox: Sandbox,
}

impl Rig {
    /// A policy, a state directory and a PAM service `twofold-test` with `extra` arguments.
    fn new(policy: &str, extra: &str) -> Rig {
        let sandbox = Sandbox::new(policy);
        let dir = sandbox.dir();
        std::fs::create_dir(dir.join("pam.d")).unwrap();
        std::fs::write(
            dir.join("pam.d/twofold-test"),
            format!(
                "auth required {m} {args}\n\
                 account required {m} {args}\n\
                 account required pam_permit.so\n",
                m = module_path().display(),
                args = format_args!("{} {extra}", sandbox.module_args()),
            ),
        )
        .unwrap();
        Rig { sandbox }
    }

    fn dir(&self) -> &std::path::Path {
        self.sandbox.dir()
    }

    fn store(&self) -> Store {
        self.sandbox.store()
    }

    fn enroll(&self, user: &str, n: u32) -> (Secret, Vec<String>) {
        self.sandbox.enroll(user, n)
    }

    fn pamtester(&self, user: &str) -> Command {
        self.pamtester_ops(user, None, &["authenticate"])
    }

    /// `pamtester [-I rhost=RHOST] twofold-test USER OPS…`: the operations run in one PAM
    /// transaction, in order.
    fn pamtester_ops(&self, user: &str, rhost: Option<&str>, ops: &[&str]) -> Command {
        let mut cmd = Command::new("pamtester");
        cmd.arg("-v");
        if let Some(h) = rhost {
            cmd.args(["-I", &format!("rhost={h}")]);
        }
        cmd.args(["twofold-test", user])
            .args(ops)
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", self.dir().join("pam.d"))
            .env("LD_PRELOAD", WRAPPER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `pamtester twofold-test USER authenticate` with `answer` on stdin.
    ///
    /// One at a time: pam_wrapper names its per-process config directory `/tmp/pam.X` from a
    /// small set, and concurrent processes collide there ("File exists") and may read another
    /// test's service directory.
    fn login(&self, user: &str, answer: &str) -> (bool, String) {
        self.login_ops(user, answer, None, &["authenticate"])
    }

    /// Like [`Rig::login`], from the remote host `rhost`.
    fn login_from(&self, user: &str, answer: &str, rhost: &str) -> (bool, String) {
        self.login_ops(user, answer, Some(rhost), &["authenticate"])
    }

    /// Runs the PAM operations `ops` in one transaction with `answer` on stdin.
    fn login_ops(
        &self,
        user: &str,
        answer: &str,
        rhost: Option<&str>,
        ops: &[&str],
    ) -> (bool, String) {
        let _one_at_a_time = one_at_a_time();
        let mut child = self
            .pamtester_ops(user, rhost, ops)
            .spawn()
            .expect("pamtester must be installed (make test installs it)");
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(answer.as_bytes());
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

/// One PAM application at a time (see [`Rig::login`]).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static PAM_WRAPPER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    PAM_WRAPPER.lock().unwrap_or_else(|e| e.into_inner())
}

const POLICY: &str = r#"
mode = "optional"
[enrollment]
at_login = false
grace_period = "7d"
[users.daemon]
mode = "required"
[users.bin]
mode = "disabled"
"#;

#[test]
fn codes_window_replay_and_recovery() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    // `sys` is optional and enrolled: status enabled.
    let (secret, codes) = rig.enroll("sys", 2);
    wait_for_fresh_step();
    let (ok, out) = rig.login("sys", "000000\n");
    assert!(!ok && out.contains("Authentication failure"), "{out}");
    // Code from 3 steps ago: refused.
    let (ok, out) = rig.login("sys", &format!("{}\n", oathtool(&secret, -3)));
    assert!(!ok, "{out}");
    // The previous step's code: accepted (window 1).
    let (ok, out) = rig.login("sys", &format!("{}\n", oathtool(&secret, -1)));
    assert!(ok, "{out}");
    // The current code: accepted once, then refused as a replay.
    let now = oathtool(&secret, 0);
    let (ok, out) = rig.login("sys", &format!("{now}\n"));
    assert!(ok, "{out}");
    let (ok, out) = rig.login("sys", &format!("{now}\n"));
    assert!(!ok, "replayed code accepted: {out}");
    // The previous step is older than the accepted one now: refused too.
    let (ok, _) = rig.login("sys", &format!("{}\n", oathtool(&secret, -1)));
    assert!(!ok);
    // The next step's code: accepted.
    let (ok, out) = rig.login("sys", &format!("{}\n", oathtool(&secret, 1)));
    assert!(ok, "{out}");
    // A recovery code, typed with spaces and capitals: accepted once.
    let (ok, out) = rig.login(
        "sys",
        &format!("{}\n", codes[0].to_uppercase().replace('-', " ")),
    );
    assert!(
        ok && out.contains("Recovery code accepted; 1 left."),
        "{out}"
    );
    let (ok, _) = rig.login("sys", &format!("{}\n", codes[0]));
    assert!(!ok, "recovery code accepted twice");
    // Failures were counted per source and cleared by success.
    let state = rig.store().read(&UserName::parse("sys").unwrap()).unwrap();
    assert_eq!(
        state.counters.failures.get("local").map(|f| f.count),
        Some(1),
        "{:?}",
        state.counters.failures
    );
    assert_eq!(
        state
            .record
            .unwrap()
            .enrollment
            .unwrap()
            .recovery_codes
            .len(),
        1
    );
}

#[test]
fn status_rows_give_the_documented_results() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    // off (optional, not enrolled) and exempt (disabled, even if enrolled): PAM_IGNORE, no
    // prompt. With the module alone in the stack, libpam turns "all ignored" into a failure.
    let (ok, out) = rig.login("games", "");
    assert!(!ok && !out.contains("Verification code"), "{out}");
    rig.enroll("bin", 1);
    let (ok, out) = rig.login("bin", "");
    assert!(
        !ok && !out.contains("Verification code"),
        "exempt must not prompt: {out}"
    );
    // enforced (required, enrolled): prompt and code.
    let (secret, _) = rig.enroll("daemon", 1);
    wait_for_fresh_step();
    let (ok, out) = rig.login("daemon", &format!("{}\n", oathtool(&secret, 0)));
    assert!(ok && out.contains("Verification code"), "{out}");
    // pending with at_login = false, in grace: a reminder, and the grace period starts.
    let rig2 = Rig::new(&POLICY.replace("[users.daemon]", "[users.man]"), "");
    let (_, out) = rig2.login("man", "");
    assert!(
        out.contains("set it up with `twofold enroll` before"),
        "{out}"
    );
    let rec = rig2
        .store()
        .read(&UserName::parse("man").unwrap())
        .unwrap()
        .record
        .unwrap();
    assert!(rec.required_since.is_some());
    // pending after the grace period: refused with what to do.
    let rig3 = Rig::new(
        &POLICY
            .replace("[users.daemon]", "[users.man]")
            .replace("\"7d\"", "\"0s\""),
        "",
    );
    let (ok, out) = rig3.login("man", "");
    assert!(
        !ok && out.contains("Ask an administrator to reset or exempt you"),
        "{out}"
    );
}

#[test]
fn broken_configuration_fails_closed() {
    if !root_or_skip() {
        return;
    }
    // A malformed policy: refused before any prompt.
    let rig = Rig::new("mode = \"sometimes\"\n", "");
    rig.enroll("sys", 0);
    let (ok, out) = rig.login("sys", "123456\n");
    assert!(
        !ok && out.contains("cannot retrieve authentication info"),
        "{out}"
    );
    // on_error=allow: ignored, the stack decides.
    let rig = Rig::new("mode = \"sometimes\"\n", "on_error=allow");
    let (ok, out) = rig.login("sys", "");
    assert!(!ok && !out.contains("cannot retrieve"), "{out}");
    // An unknown module argument: service error.
    let rig = Rig::new(POLICY, "nullok");
    let (ok, out) = rig.login("sys", "");
    assert!(!ok && out.contains("Error in service module"), "{out}");
    // A state directory that is missing, or a symlink: refused.
    let rig = Rig::new(POLICY, "");
    let state = rig.dir().join("state");
    std::fs::rename(&state, rig.dir().join("real-state")).unwrap();
    let (ok, out) = rig.login("daemon", "");
    assert!(
        !ok && out.contains("cannot retrieve authentication info"),
        "{out}"
    );
    std::os::unix::fs::symlink(rig.dir().join("real-state"), &state).unwrap();
    let (ok, out) = rig.login("daemon", "");
    assert!(
        !ok && out.contains("cannot retrieve authentication info"),
        "{out}"
    );
}

#[test]
fn garbage_answers_and_names() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (secret, _) = rig.enroll("sys", 1);
    let long = "9".repeat(10_000);
    // Each from its own address, so that every answer is checked (not throttled).
    for (i, answer) in [
        "\n",
        "abcdef\n",
        "12 34\n",
        &format!("{long}\n"),
        "１２３４５６\n",
        "1234\0\n",
    ]
    .into_iter()
    .enumerate()
    {
        let (ok, out) = rig.login_from("sys", answer, &format!("192.0.2.{i}"));
        assert!(
            !ok && out.contains("Authentication failure"),
            "{answer:?}: {out}"
        );
    }
    // Still works afterwards.
    wait_for_fresh_step();
    let (ok, out) = rig.login("sys", &format!("{}\n", oathtool(&secret, 0)));
    assert!(ok, "{out}");
    for user in ["../x", "-rf", &"a".repeat(300), "no-such-user-xyz"] {
        let (ok, out) = rig.login(user, "");
        assert!(!ok && out.contains("User not known"), "{user}: {out}");
    }
    // Nothing was written for any of those names (beside sys's files: the policy cache).
    let names: Vec<_> = std::fs::read_dir(rig.dir().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| {
            let n = n.to_string_lossy();
            n.starts_with("sys.") || n == twofold_policy::cache::CACHE_NAME
        }),
        "{names:?}"
    );
}

const AT_LOGIN: &str = r#"
mode = "optional"
[enrollment]
at_login = true
grace_period = "7d"
recovery_codes = 3
[users.man]
mode = "required"
"#;

/// Runs a login that enrolls: reads the prompt live (pamtester writes prompts to stderr
/// unbuffered), takes the secret from the otpauth URI shown, and answers with `answer(secret)`.
fn enroll_via_login(
    rig: &Rig,
    user: &str,
    answer: impl Fn(&Secret) -> String,
) -> (bool, String, String) {
    use std::io::Read;
    let _one = one_at_a_time();
    let mut child = rig.pamtester(user).spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).ends_with("code the app shows: ") {
        assert_eq!(
            stderr.read(&mut byte).unwrap(),
            1,
            "no prompt: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.push(byte[0]);
    }
    let prompt = String::from_utf8_lossy(&seen).into_owned();
    let key = prompt
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let secret = Secret::from_base32(key).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let reply = answer(&secret);
    stdin.write_all(reply.as_bytes()).unwrap();
    drop(stdin);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        prompt,
        format!("{}{rest}", String::from_utf8_lossy(&out.stdout)),
    )
}

#[test]
fn enrollment_inside_the_login() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(AT_LOGIN, "");
    let u = UserName::parse("man").unwrap();
    // Three wrong codes: refused, nothing stored but the start of the grace period.
    let (ok, prompt, out) = enroll_via_login(&rig, "man", |_| "000000\n111111\n222222\n".into());
    assert!(!ok && out.contains("was not set up"), "{out}");
    assert!(
        prompt.contains("enter the key by hand:") && prompt.contains("otpauth://totp/"),
        "{prompt}"
    );
    assert!(
        prompt.contains('█') || prompt.contains('▀') || prompt.contains('▄'),
        "no QR code: {prompt}"
    );
    let rec = rig.store().read(&u).unwrap().record.unwrap();
    assert!(rec.enrollment.is_none() && rec.required_since.is_some());
    // The right code: enrolled, recovery codes shown once.
    wait_for_fresh_step();
    let (ok, prompt, out) = enroll_via_login(&rig, "man", |s| format!("{}\n", oathtool(s, 0)));
    assert!(ok, "{prompt}{out}");
    assert!(
        out.contains("now set up") && out.contains("shown only this time"),
        "{out}"
    );
    let codes: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 14 && l.matches('-').count() == 2)
        .collect();
    assert_eq!(codes.len(), 3, "{out}");
    let state = rig.store().read(&u).unwrap();
    let enrollment = state.record.unwrap().enrollment.unwrap();
    let secret = enrollment.secret().unwrap();
    assert_eq!(enrollment.recovery_codes.len(), 3);
    // The secret stored is the one shown in the login.
    let key = prompt
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert_eq!(
        Secret::from_base32(key).unwrap().as_bytes(),
        secret.as_bytes()
    );
    // The next login asks for a code: the code used to enroll is spent, the next one works.
    let (ok, out) = rig.login("man", &format!("{}\n", oathtool(&secret, 0)));
    assert!(
        !ok && out.contains("Verification code"),
        "replay after enrollment: {out}"
    );
    let (ok, out) = rig.login("man", &format!("{}\n", oathtool(&secret, 1)));
    assert!(ok, "{out}");
    let (ok, out) = rig.login("man", &format!("{}\n", codes[1]));
    assert!(ok && out.contains("2 left"), "{out}");
}

#[test]
fn wrong_codes_are_throttled_per_source() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (secret, codes) = rig.enroll("sys", 2);
    let u = UserName::parse("sys").unwrap();
    // Three wrong codes from one address are checked; the fourth try is not even prompted for,
    // whatever it holds.
    for _ in 0..3 {
        let (ok, out) = rig.login_from("sys", "000000\n", "198.51.100.7");
        assert!(!ok && out.contains("Verification code"), "{out}");
    }
    wait_for_fresh_step();
    let (ok, out) = rig.login_from(
        "sys",
        &format!("{}\n", oathtool(&secret, 0)),
        "198.51.100.7",
    );
    assert!(
        !ok && out.contains("Too many wrong codes from this address: try again in")
            && !out.contains("Verification code"),
        "{out}"
    );
    let (ok, _) = rig.login_from("sys", &format!("{}\n", codes[0]), "198.51.100.7");
    assert!(!ok, "a recovery code passed the throttle");
    // A stranger's failures do not delay the user on another address.
    let (ok, out) = rig.login_from("sys", &format!("{}\n", oathtool(&secret, 0)), "203.0.113.9");
    assert!(ok, "{out}");
    // Throttled tries were not counted: still 3, and the recovery code is unused.
    let state = rig.store().read(&u).unwrap();
    assert_eq!(state.counters.failures["198.51.100.7"].count, 3);
    assert_eq!(
        state
            .record
            .unwrap()
            .enrollment
            .unwrap()
            .recovery_codes
            .len(),
        2
    );
    // Once the delay has passed (the failures made to look 31 s old), a code is checked again,
    // and a success clears the address's count.
    {
        let store = rig.store();
        let lock = store.lock(&u).unwrap();
        let mut c = lock.read().unwrap().counters;
        c.failures.get_mut("198.51.100.7").unwrap().last -= 31;
        lock.write_counters(&c).unwrap();
    }
    wait_for_fresh_step();
    let (ok, out) = rig.login_from(
        "sys",
        &format!("{}\n", oathtool(&secret, 1)),
        "198.51.100.7",
    );
    assert!(ok, "{out}");
    let state = rig.store().read(&u).unwrap();
    assert!(
        state.counters.failures.is_empty(),
        "{:?}",
        state.counters.failures
    );
    assert_eq!(
        state.counters.last_login_from.as_deref(),
        Some("198.51.100.7")
    );
    // IPv6 addresses of one /64 count as one source.
    for host in ["2001:db8:5:6::1", "2001:db8:5:6::2", "2001:db8:5:6:ffff::3"] {
        let (ok, _) = rig.login_from("sys", "000000\n", host);
        assert!(!ok);
    }
    let (_, out) = rig.login_from("sys", "000000\n", "2001:db8:5:6::4");
    assert!(out.contains("Too many wrong codes"), "{out}");
    let state = rig.store().read(&u).unwrap();
    assert_eq!(state.counters.failures["2001:db8:5:6::/64"].count, 3);
}

#[test]
fn account_management_refuses_logins_that_skipped_the_code() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (secret, _) = rig.enroll("daemon", 1);
    // As sshd does for a public-key login: acct_mgmt with no authenticate before it.
    let (ok, out) = rig.login_ops("daemon", "", None, &["acct_mgmt"]);
    assert!(
        !ok && out.contains("this login did not ask for a code")
            && out.contains("Permission denied"),
        "{out}"
    );
    // An enrolled optional user (status enabled) too.
    rig.enroll("sys", 1);
    let (ok, out) = rig.login_ops("sys", "", None, &["acct_mgmt"]);
    assert!(!ok, "{out}");
    // After a verified code in the same transaction: account passes, credentials are set.
    wait_for_fresh_step();
    let (ok, out) = rig.login_ops(
        "daemon",
        &format!("{}\n", oathtool(&secret, 0)),
        None,
        &["authenticate", "acct_mgmt"],
    );
    assert!(ok, "{out}");
    // A failed code does not leave the mark behind.
    let (ok, out) = rig.login_ops("daemon", "000000\n", None, &["authenticate", "acct_mgmt"]);
    assert!(!ok, "{out}");
    // Users who need no code pass account: off, exempt (even if enrolled).
    let (ok, out) = rig.login_ops("games", "", None, &["acct_mgmt"]);
    assert!(ok, "off: {out}");
    rig.enroll("bin", 1);
    let (ok, out) = rig.login_ops("bin", "", None, &["acct_mgmt"]);
    assert!(ok, "exempt: {out}");
    // A pending user in grace without enrollment at login is reminded, not refused ...
    let rig2 = Rig::new(&POLICY.replace("[users.daemon]", "[users.man]"), "");
    let (ok, out) = rig2.login_ops("man", "", None, &["acct_mgmt"]);
    assert!(ok, "{out}");
    // ... but one who would enroll at login must do so through authentication.
    let rig3 = Rig::new(AT_LOGIN, "");
    let (ok, out) = rig3.login_ops("man", "", None, &["acct_mgmt"]);
    assert!(!ok, "{out}");
    // A broken policy fails closed here too.
    let rig4 = Rig::new("mode = 3\n", "");
    let (ok, out) = rig4.login_ops("games", "", None, &["acct_mgmt"]);
    assert!(!ok, "{out}");
}

/// Runs one pamtester login with syslog captured: pamtester runs in a private mount namespace
/// whose /dev/log is a datagram socket of this test (`tests/private_dev_log.sh`). Returns
/// success, pamtester's output and the syslog datagrams, each `<PRI>timestamp tag: message`.
fn login_logged(rig: &Rig, user: &str, answer: &str, rhost: &str) -> (bool, String, Vec<String>) {
    let _one = one_at_a_time();
    let sock_dir = rig.dir().join("syslog");
    std::fs::create_dir_all(&sock_dir).unwrap();
    let _ = std::fs::remove_file(sock_dir.join("log.sock"));
    let sock = std::os::unix::net::UnixDatagram::bind(sock_dir.join("log.sock")).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let inner = rig.pamtester_ops(user, Some(rhost), &["authenticate"]);
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/private_dev_log.sh"))
        .arg(&sock_dir)
        .arg(inner.get_program())
        .args(inner.get_args())
        .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("unshare (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(answer.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, lines)
}

/// twofold's lines among `lines`.
fn ours(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.contains("pam_twofold("))
        .collect()
}

#[test]
fn every_decision_is_logged_without_codes_or_secrets() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (secret, codes) = rig.enroll("daemon", 2);
    let key = secret.to_base32();
    wait_for_fresh_step();
    let code = oathtool(&secret, 0);
    let (ok, out, lines) = login_logged(&rig, "daemon", &format!("{code}\n"), "203.0.113.5");
    assert!(ok, "{out}");
    let mine = ours(&lines);
    assert_eq!(mine.len(), 1, "{lines:#?}");
    // authpriv.notice = 10 * 8 + 5.
    let line = mine[0];
    assert!(line.starts_with("<85>"), "{line}");
    for part in [
        "pam_twofold(twofold-test:auth):".to_owned(),
        "user=daemon".into(),
        "source=203.0.113.5".into(),
        format!(
            "rule=user:[users.daemon]@{}/policy.toml:7 status=enforced",
            rig.dir().display()
        ),
        "outcome=success: code accepted".into(),
    ] {
        assert!(line.contains(&part), "{part:?} not in {line}");
    }
    // Wrong code, recovery code, exempt user, unknown user: one line each, with the outcome.
    let (_, _, lines) = login_logged(&rig, "daemon", "314159\n", "203.0.113.5");
    let l = ours(&lines);
    assert!(
        l.len() == 1 && l[0].contains("outcome=refused: wrong code"),
        "{lines:#?}"
    );
    let (ok, _, lines) = login_logged(&rig, "daemon", &format!("{}\n", codes[0]), "203.0.113.5");
    assert!(ok);
    let l = ours(&lines);
    assert!(
        l.len() == 1 && l[0].contains("recovery code accepted, 1 left"),
        "{lines:#?}"
    );
    let (_, _, lines) = login_logged(&rig, "bin", "", "203.0.113.5");
    let l = ours(&lines);
    assert!(
        l.len() == 1
            && l[0].contains("rule=user:[users.bin]@")
            && l[0].contains("status=exempt outcome=ignore: no code needed"),
        "{lines:#?}"
    );
    let (_, _, lines) = login_logged(&rig, "../x", "", "203.0.113.5");
    let l = ours(&lines);
    assert!(
        l.len() == 1 && l[0].contains("user=../x") && l[0].contains("outcome=refused"),
        "{lines:#?}"
    );
    // Never a code, a recovery code or the secret.
    let all = lines.join("\n");
    for secret_text in [
        code.as_str(),
        "314159",
        codes[0].as_str(),
        codes[1].as_str(),
        key.as_str(),
    ] {
        assert!(!all.contains(secret_text), "{secret_text} logged");
    }

    // A malformed policy: refused, and the log says why, with file:line:col (authpriv.err).
    let bad = Rig::new("mode = \"optional\"\n[users.x]\nmode = \"sometimes\"\n", "");
    let (ok, _, lines) = login_logged(&bad, "daemon", "", "local-test");
    assert!(!ok);
    let l = ours(&lines);
    let expected = format!("{}/policy.toml:3:8:", bad.dir().display());
    assert!(
        l.len() == 1
            && l[0].starts_with("<83>")
            && l[0].contains("rule=- outcome=refused: failing closed: policy:")
            && l[0].contains(&expected),
        "{expected} in {lines:#?}"
    );

    // debug: the steps, at authpriv.debug, still without codes or secrets.
    let dbg = Rig::new(POLICY, "debug");
    let (secret, _) = dbg.enroll("daemon", 1);
    wait_for_fresh_step();
    let code = oathtool(&secret, 0);
    let (ok, _, lines) = login_logged(&dbg, "daemon", &format!("{code}\n"), "2001:db8::7");
    assert!(ok);
    let debug: Vec<_> = ours(&lines)
        .into_iter()
        .filter(|l| l.starts_with("<87>"))
        .collect();
    assert!(
        debug.iter().any(|l| l.contains("source-key=2001:db8::/64"))
            && debug.iter().any(|l| l.contains("status=enforced")),
        "{lines:#?}"
    );
    let all = lines.join("\n");
    assert!(!all.contains(&code) && !all.contains(secret.to_base32().as_str()));

    // Enrollment at login: neither the new secret nor the recovery codes reach the log.
    let enr = Rig::new(AT_LOGIN, "");
    let (ok, prompt, out) = enroll_via_login(&enr, "man", |s| format!("{}\n", oathtool(s, 0)));
    assert!(ok, "{out}");
    let _ = prompt;
    let rec = enr.store().read(&UserName::parse("man").unwrap()).unwrap();
    let key = rec
        .record
        .unwrap()
        .enrollment
        .unwrap()
        .secret()
        .unwrap()
        .to_base32();
    let (_, _, lines) = login_logged(&enr, "man", "000000\n", "local-test");
    assert!(!lines.join("\n").contains(key.as_str()));
}

/// A second passwd line with `of`'s uid (and primary group), removed on drop.
struct Alias(String);

impl Alias {
    fn of(user: &str) -> Alias {
        let u = nix::unistd::User::from_name(user).unwrap().unwrap();
        let name = format!("{user}al");
        let _ = Command::new("userdel").arg(&name).output();
        let st = Command::new("useradd")
            .args(["-o", "-u", &u.uid.to_string(), "-g", &u.gid.to_string()])
            .args(["-M", "-d", "/", "-s", "/bin/sh", &name])
            .status()
            .unwrap();
        assert!(st.success(), "useradd -o {name}");
        Alias(name)
    }
}

impl Drop for Alias {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).output();
    }
}

/// A group made with `groupadd`, removed on drop.
struct TestGroup(String);

impl TestGroup {
    fn create(name: &str) -> TestGroup {
        let _ = Command::new("groupdel").arg(name).output();
        let st = Command::new("groupadd").arg(name).status().unwrap();
        assert!(st.success(), "groupadd {name}");
        TestGroup(name.to_owned())
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.0).output();
    }
}

#[test]
fn another_name_for_the_same_account_gets_nothing_of_its_own() {
    if !root_or_skip() {
        return;
    }
    let user = common::TestUser::create("cn");
    let alias = Alias::of(&user.name);
    let policy = format!(
        "mode = \"optional\"\n[enrollment]\nat_login = true\n[users.{}]\nmode = \"required\"\n",
        user.name
    );
    let rig = Rig::new(&policy, "");
    let (secret, _) = rig.enroll(&user.name, 1);
    // The alias has the account's rule and record: no code, no login; no account check either.
    let (ok, out) = rig.login(&alias.0, "000000\n");
    assert!(!ok && out.contains("Verification code"), "{out}");
    let (ok, out) = rig.login_ops(&alias.0, "", None, &["acct_mgmt"]);
    assert!(
        !ok && out.contains("this login did not ask for a code"),
        "{out}"
    );
    // With the account's code it is the account: authenticate and account pass.
    wait_for_fresh_step();
    let code = oathtool(&secret, 0);
    let (ok, out) = rig.login_ops(
        &alias.0,
        &format!("{code}\n"),
        None,
        &["authenticate", "acct_mgmt"],
    );
    assert!(ok, "{out}");
    // ... once: the same code under the real name is a replay.
    let (ok, _) = rig.login(&user.name, &format!("{code}\n"));
    assert!(
        !ok,
        "a code used under the alias was accepted again under the name"
    );
    // Nothing of the alias's own in the store; the wrong code counted against the account.
    for ext in ["toml", "counters", "lock"] {
        assert!(!rig.dir().join(format!("state/{}.{ext}", alias.0)).exists());
    }
    let state = rig
        .store()
        .read(&UserName::parse(&user.name).unwrap())
        .unwrap();
    assert_eq!(state.counters.failures["local"].count, 1);

    // A group rule follows the account too: the alias of a member is required (pending, so
    // it would enroll inside the login and may not skip it in account).
    let group = TestGroup::create(&format!("{}g", user.name));
    let group = &group.0;
    assert!(
        Command::new("usermod")
            .args(["-aG", group, &user.name])
            .status()
            .unwrap()
            .success()
    );
    let rig2 = Rig::new(
        &format!(
            "mode = \"optional\"\n[enrollment]\nat_login = true\n[groups.{group}]\nmode = \"required\"\n"
        ),
        "",
    );
    let (ok, out) = rig2.login_ops(&alias.0, "", None, &["acct_mgmt"]);
    assert!(!ok, "alias of a required member skipped the code: {out}");
    let (ok, out) = rig2.login(&alias.0, "\n\n\n");
    assert!(!ok && out.contains("not set up yet"), "{out}");
}

/// A session opened under an alias gets the groups that list the alias (and its own line's
/// primary group): a rule requiring such a group holds for the alias even when the account
/// itself is not in it, while the account's own logins stay as its own groups decide.
#[test]
fn an_alias_listed_in_a_required_group_is_required() {
    if !root_or_skip() {
        return;
    }
    let user = common::TestUser::create("ag");
    let alias = Alias::of(&user.name);
    let group = TestGroup::create(&format!("{}g", user.name));
    let group = &group.0;
    // Only the alias is listed: `id <alias>` shows the group, `id <user>` does not.
    assert!(
        Command::new("gpasswd")
            .args(["-a", &alias.0, group])
            .output()
            .unwrap()
            .status
            .success()
    );
    let rig = Rig::new(
        &format!(
            "mode = \"optional\"\n[enrollment]\nat_login = true\n[groups.{group}]\nmode = \"required\"\n"
        ),
        "",
    );
    // The account, not enrolled and in no required group: optional and off, nothing asked.
    let (_, out, lines) = login_logged(&rig, &user.name, "", "local-test");
    assert!(!out.contains("Verification code"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("status=off") && l.contains("rule=default")),
        "{lines:?}"
    );
    // Its alias, whose sessions get the group: required by the group's rule, so pending, with
    // enrollment offered inside the login and no way past account without it.
    let (ok, out, lines) = login_logged(&rig, &alias.0, "\n\n\n", "local-test");
    assert!(!ok && out.contains("not set up yet"), "{out}");
    assert!(
        lines.iter().any(|l| l.contains(&format!("as={}", alias.0))
            && l.contains("status=pending")
            && l.contains(&format!("rule=group:[groups.{group}]"))),
        "{lines:?}"
    );
    let (ok, out) = rig.login_ops(&alias.0, "", None, &["acct_mgmt"]);
    assert!(!ok, "an alias in a required group skipped the code: {out}");
}

#[test]
fn a_torn_counters_file_refuses_only_the_codes_of_before_its_last_write() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (secret, _) = rig.enroll("daemon", 1);
    let u = UserName::parse("daemon").unwrap();
    let path = rig.dir().join("state/daemon.counters");
    let tear = |age: u64| {
        std::fs::write(&path, b"version = 1\nlast_step = 5\0\xff\xfe[fail").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    };
    // Torn just now (a crash during a login's write): the step that login may have accepted is
    // lost, so every code that could have been accepted by then is refused.
    tear(0);
    assert!(rig.store().read_counters(&u).is_err());
    wait_for_fresh_step();
    let (ok, out, lines) = login_logged(
        &rig,
        "daemon",
        &format!("{}\n", oathtool(&secret, 0)),
        "192.0.2.4",
    );
    assert!(!ok, "a code of before the tear was accepted: {out}");
    assert!(
        ours(&lines)
            .iter()
            .any(|l| l.contains("corrupt counters ignored")),
        "{lines:#?}"
    );
    // Torn ten minutes ago: today's codes are newer than anything it could have held.
    tear(600);
    assert!(rig.store().read_counters(&u).is_err());
    wait_for_fresh_step();
    let code = oathtool(&secret, 0);
    let (ok, out, lines) = login_logged(&rig, "daemon", &format!("{code}\n"), "192.0.2.4");
    assert!(ok, "{out}");
    let mine = ours(&lines);
    assert!(
        mine.iter().any(|l| l.contains("corrupt counters ignored")),
        "{lines:#?}"
    );
    // The file is whole again, with the accepted step.
    let c = rig.store().read_counters(&u).unwrap();
    assert!(c.last_step.is_some());
    assert_eq!(c.last_login_from.as_deref(), Some("192.0.2.4"));
    // And the code is not accepted twice.
    let (ok, _) = rig.login("daemon", &format!("{code}\n"));
    assert!(!ok);
}

#[test]
fn a_thousand_addresses_get_a_hundred_codes_checked() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (secret, _) = rig.enroll("daemon", 1);
    let u = UserName::parse("daemon").unwrap();
    // The user logged in from home before.
    wait_for_fresh_step();
    let (ok, out) = rig.login_from(
        "daemon",
        &format!("{}\n", oathtool(&secret, -1)),
        "192.0.2.10",
    );
    assert!(ok, "{out}");
    // A stranger with 1,000 addresses (one per IPv6 /64), one wrong code from each.
    let mut checked = 0;
    for i in 0..1000u32 {
        let host = format!("2001:db8:{:x}:{:x}::1", i / 0x100, i % 0x100);
        let (ok, out) = rig.login_from("daemon", "000000\n", &host);
        assert!(!ok, "{out}");
        if out.contains("Verification code") {
            checked += 1;
        } else {
            assert!(out.contains("unfamiliar places"), "{out}");
        }
    }
    assert_eq!(checked, 100, "codes checked from strangers");
    let c = rig.store().read_counters(&u).unwrap();
    assert_eq!(c.user_failures, 100);
    assert!(c.failures.len() <= 100, "refused tries added entries");
    // Even the right code from a new address is not checked now ...
    wait_for_fresh_step();
    let code = oathtool(&secret, 0);
    let (ok, out) = rig.login_from("daemon", &format!("{code}\n"), "203.0.113.50");
    assert!(!ok && !out.contains("Verification code"), "{out}");
    // ... while the user still logs in from home, which opens the rest again.
    let (ok, out) = rig.login_from("daemon", &format!("{code}\n"), "192.0.2.10");
    assert!(ok, "{out}");
    let c = rig.store().read_counters(&u).unwrap();
    assert_eq!(c.user_failures, 0);
    let (_, out) = rig.login_from("daemon", "000000\n", "203.0.113.50");
    assert!(out.contains("Verification code"), "{out}");
}

#[test]
fn a_code_is_checked_at_the_time_of_the_answer() {
    if !root_or_skip() {
        return;
    }
    // Real libpam with a service in /etc/pam.d (no pam_wrapper, so this can run beside the
    // other tests while its prompts are held open).
    let sandbox = Sandbox::new(POLICY);
    let service = common::PamService::install(
        "held",
        &format!(
            "auth required {} {}\naccount required pam_permit.so\n",
            module_path().display(),
            sandbox.module_args()
        ),
    );
    let (secret, _) = sandbox.enroll("daemon", 1);
    let u = UserName::parse("daemon").unwrap();
    let start = || {
        Command::new("pamtester")
            .args([service.name.as_str(), "daemon", "authenticate"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let opened = twofold_policy::time::now();
    let mut wrong = start();
    let mut right = start();
    // Both prompts are held open 65 s (over two steps: a code from when they opened is out of
    // the ±1 window by then).
    std::thread::sleep(std::time::Duration::from_secs(65));
    let answered = twofold_policy::time::now();
    wrong.stdin.take().unwrap().write_all(b"000000\n").unwrap();
    let out = wrong.wait_with_output().unwrap();
    assert!(!out.status.success());
    // The failure carries the time of its answer, not of its prompt.
    let c = sandbox.store().read_counters(&u).unwrap();
    let last = c.failures["local"].last;
    assert!(
        last >= answered && last > opened + 60,
        "{last} vs {answered}"
    );
    let code = oathtool(&secret, 0);
    right
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{code}\n").as_bytes())
        .unwrap();
    let out = right.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a code valid when typed was refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn enrollment_at_login_only_from_the_places_the_policy_names() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(
        &AT_LOGIN.replace(
            "recovery_codes = 3",
            "recovery_codes = 3\nat_login_from = [\"local\", \"192.0.2.0/24\"]",
        ),
        "",
    );
    // From elsewhere: refused, saying where, and no secret is shown.
    let (ok, out) = rig.login_from("man", "\n", "203.0.113.9");
    assert!(
        !ok && out.contains("from the console, 192.0.2.0/24 only") && !out.contains("otpauth://"),
        "{out}"
    );
    // From a listed network, and from the console: the enrollment is offered.
    for rhost in [Some("192.0.2.44"), None] {
        let (ok, out) = rig.login_ops("man", "\n\n\n", rhost, &["authenticate"]);
        assert!(!ok && out.contains("otpauth://"), "{rhost:?}: {out}");
    }
    assert!(
        rig.store()
            .read(&UserName::parse("man").unwrap())
            .unwrap()
            .record
            .and_then(|r| r.enrollment)
            .is_none()
    );
}

#[test]
fn the_module_runs_no_cpuid_at_login() {
    // .cargo/config.toml selects the portable SHA code: the hardware detection runs CPUID,
    // which traps to the hypervisor on a VM, at every load of the module (every login).
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(module_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8_lossy(&out.stdout);
    assert!(code.contains("pam_sm_authenticate"), "no disassembly?");
    let cpuid: Vec<&str> = code.lines().filter(|l| l.contains("\tcpuid")).collect();
    assert!(cpuid.is_empty(), "CPUID in the module: {cpuid:?}");
}

#[test]
fn a_panic_is_caught_at_the_boundary_with_the_static_unwinder() {
    if !root_or_skip() {
        return;
    }
    // The module needs neither libgcc_s (the unwinder is linked in statically) ...
    let out = Command::new("readelf")
        .args(["-d"])
        .arg(module_path())
        .output()
        .unwrap();
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(!dynamic.contains("libgcc_s"), "{dynamic}");
    // ... and a panic inside it still unwinds to pam-bindings' catch_unwind: PAM_ABORT, and
    // the application lives on to report it.
    let rig = Rig::new(POLICY, "test_panic");
    let (ok, out) = rig.login("sys", "000000\n");
    assert!(
        !ok && out.contains("Critical error - immediate abort"),
        "{out}"
    );
    assert!(
        !out.contains("Aborted") && !out.contains("core dumped"),
        "{out}"
    );
}
