//! The pam_wrapper rig of the login tests: a sandbox with a policy and a state directory, and
//! a PAM service `twofold-test` in its own `pam.d`, run through pamtester.

use std::io::Write;
use std::process::{Command, Stdio};

use twofold_policy::store::Store;
use twofold_policy::totp::Secret;

use super::{Sandbox, module_path};

pub const WRAPPER: &str = "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so";

/// A sandbox and a PAM service `twofold-test` for pam_wrapper, in the sandbox's `pam.d`.
pub struct Rig {
    pub sandbox: Sandbox,
}

impl Rig {
    /// A policy, a state directory and a PAM service `twofold-test` with `extra` arguments.
    pub fn new(policy: &str, extra: &str) -> Rig {
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

    pub fn dir(&self) -> &std::path::Path {
        self.sandbox.dir()
    }

    pub fn store(&self) -> Store {
        self.sandbox.store()
    }

    pub fn enroll(&self, user: &str, n: u32) -> (Secret, Vec<String>) {
        self.sandbox.enroll(user, n)
    }

    pub fn pamtester(&self, user: &str) -> Command {
        self.pamtester_ops(user, None, &["authenticate"])
    }

    /// `pamtester [-I rhost=RHOST] twofold-test USER OPS…`: the operations run in one PAM
    /// transaction, in order.
    pub fn pamtester_ops(&self, user: &str, rhost: Option<&str>, ops: &[&str]) -> Command {
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
    pub fn login(&self, user: &str, answer: &str) -> (bool, String) {
        self.login_ops(user, answer, None, &["authenticate"])
    }

    /// Like [`Rig::login`], from the remote host `rhost`.
    pub fn login_from(&self, user: &str, answer: &str, rhost: &str) -> (bool, String) {
        self.login_ops(user, answer, Some(rhost), &["authenticate"])
    }

    /// Runs the PAM operations `ops` in one transaction with `answer` on stdin.
    pub fn login_ops(
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
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static PAM_WRAPPER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    PAM_WRAPPER.lock().unwrap_or_else(|e| e.into_inner())
}

pub const POLICY: &str = r#"
mode = "optional"
[enrollment]
at_login = false
grace_period = "7d"
[users.daemon]
mode = "required"
[users.bin]
mode = "disabled"
"#;

pub const AT_LOGIN: &str = r#"
mode = "optional"
[enrollment]
at_login = true
grace_period = "7d"
recovery_codes = 3
[users.man]
mode = "required"
"#;

/// Runs one pamtester login with syslog captured: pamtester runs in a private mount namespace
/// whose /dev/log is a datagram socket of this test (`tests/private_dev_log.sh`). Returns
/// success, pamtester's output and the syslog datagrams, each `<PRI>timestamp tag: message`.
pub fn login_logged(
    rig: &Rig,
    user: &str,
    answer: &str,
    rhost: &str,
) -> (bool, String, Vec<String>) {
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
pub fn ours(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.contains("pam_twofold("))
        .collect()
}

/// Runs a login that enrolls: reads the prompt live (pamtester writes prompts to stderr
/// unbuffered), takes the secret from the otpauth URI shown, and answers with `answer(secret)`.
pub fn enroll_via_login(
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
