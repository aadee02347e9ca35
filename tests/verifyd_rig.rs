//! The rig of the tests of `twofold-verifyd` (`verify_service.rs`, `stalled_lock.rs`): the
//! module and the service from `make install`'s layout, the service socket-activated by
//! `systemd-socket-activate` (as systemd's socket unit would), real accounts and PAM service
//! files removed again, pamtester through the real libpam. Needs root, as CI runs.
#![allow(dead_code)] // each test file uses its own part

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use twofold_policy::record::{Enrollment, Record};
use twofold_policy::store::Store;
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{UserName, recovery};
use twofold_system_tests::{install_files, run, run_with_input, workspace};

/// A real account, removed on drop.
pub struct User(pub String);

impl User {
    pub fn create(tag: &str) -> User {
        let name = format!("tfv{}{tag}", std::process::id());
        let _ = Command::new("userdel").arg(&name).output();
        run(Command::new("useradd").args(["-M", "-d", "/", "-s", "/bin/sh", &name]));
        User(name)
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).output();
    }
}

/// A PAM service file in /etc/pam.d, removed on drop.
pub struct Service {
    pub name: String,
}

impl Service {
    pub fn install(tag: &str, body: &str) -> Service {
        let name = format!("twofold-verify-test-{}-{tag}", std::process::id());
        std::fs::write(Path::new("/etc/pam.d").join(&name), body).unwrap();
        Service { name }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(Path::new("/etc/pam.d").join(&self.name));
    }
}

/// The service, started by `systemd-socket-activate` on `socket` (the socket made 0666 as
/// the socket unit's `SocketMode` makes it); killed on drop.
pub struct Verifyd {
    pub child: Child,
}

impl Verifyd {
    pub fn start(bin: &Path, socket: &Path, policy: &Path, state: &Path, log: &Path) -> Verifyd {
        let _ = std::fs::remove_file(socket);
        let child = Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(socket)
            // As under systemd: log lines to stderr (the file the test reads), not to a
            // /dev/log the host may have.
            .args(["-E", "JOURNAL_STREAM=0:0"])
            .arg(bin)
            .arg("--policy")
            .arg(policy)
            .arg("--state")
            .arg(state)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("systemd-socket-activate (make test installs systemd)");
        let t = Instant::now();
        while !socket.exists() {
            assert!(t.elapsed() < Duration::from_secs(10), "no socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).unwrap();
        Verifyd { child }
    }
}

impl Drop for Verifyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The activated service is a child of systemd-socket-activate (exec'd in its place).
    }
}

pub struct Rig {
    pub tmp: tempfile::TempDir,
    pub module: PathBuf,
    pub verifyd: PathBuf,
    pub socket: PathBuf,
}

impl Rig {
    /// `make install-files` into a fresh directory readable by everyone (a locker running as
    /// the user loads the module from there), a policy and a root-only state directory.
    pub fn new(policy: &str) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = install_files(d);
        let module = std::fs::read_dir(root.join("lib"))
            .unwrap()
            .map(|e| e.unwrap().path().join("security/pam_twofold.so"))
            .find(|p| p.exists())
            .or_else(|| {
                let p = root.join("usr/lib/security/pam_twofold.so");
                p.exists().then_some(p)
            })
            .expect("the installed module");
        std::fs::write(d.join("policy.toml"), policy).unwrap();
        std::fs::set_permissions(
            d.join("policy.toml"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::create_dir(d.join("state")).unwrap();
        std::fs::set_permissions(d.join("state"), std::fs::Permissions::from_mode(0o700)).unwrap();
        Rig {
            verifyd: root.join("usr/sbin/twofold-verifyd"),
            socket: d.join("run/verify.sock"),
            module,
            tmp,
        }
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn args(&self) -> String {
        format!(
            "policy={d}/policy.toml state={d}/state verify_socket={s}",
            d = self.dir().display(),
            s = self.socket.display()
        )
    }

    /// The README's key + code shape: twofold decides, `ignore` lets the rest decide.
    pub fn service(&self, tag: &str) -> Service {
        self.service_with(tag, "")
    }

    /// [`Rig::service`] with `extra` module arguments (e.g. `on_error=allow`).
    pub fn service_with(&self, tag: &str, extra: &str) -> Service {
        Service::install(
            tag,
            &format!(
                "auth [success=done ignore=ignore default=die] {m} {a} {extra}\n\
                 auth required pam_permit.so\n\
                 account required {m} {a} {extra}\n\
                 account required pam_permit.so\n",
                m = self.module.display(),
                a = self.args()
            ),
        )
    }

    pub fn start(&self) -> Verifyd {
        std::fs::create_dir_all(self.socket.parent().unwrap()).unwrap();
        Verifyd::start(
            &self.verifyd,
            &self.socket,
            &self.dir().join("policy.toml"),
            &self.dir().join("state"),
            &self.dir().join("verifyd.log"),
        )
    }

    pub fn store(&self) -> Store {
        Store::open(&self.dir().join("state")).unwrap()
    }

    pub fn enroll(&self, user: &str) -> (Secret, Vec<String>) {
        let secret = Secret::generate().unwrap();
        let codes = recovery::generate(2).unwrap();
        let store = self.store();
        let lock = store.lock(&UserName::parse(user).unwrap()).unwrap();
        let mut r = Record::new(user);
        r.enrollment = Some(Enrollment::new(&secret, Params::default(), 1, codes.hashes));
        lock.write_record(&r).unwrap();
        (secret, codes.codes.iter().map(|c| c.to_string()).collect())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("verifyd.log")).unwrap_or_default()
    }
}

pub fn oathtool(secret: &Secret, offset: i64) -> String {
    let t = twofold_policy::time::now() as i64 + offset * 30;
    let out = run(Command::new("oathtool")
        .args(["--totp", "--base32", &format!("--now=@{t}")])
        .arg(secret.to_base32().as_str()));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn fresh_step() {
    let into = twofold_policy::time::now() % 30;
    if into + 5 >= 30 {
        std::thread::sleep(Duration::from_secs(30 - into));
    }
}

/// `pamtester SERVICE USER authenticate acct_mgmt` with `answer` on stdin, run by `cmd_prefix`
/// (e.g. `runuser -u USER --`), or as root when it is empty.
pub fn pamtester(prefix: &[&str], service: &Service, user: &str, answer: &str) -> (bool, String) {
    let mut argv = prefix.to_vec();
    argv.extend([
        // A hang (a lock waited for without end, before issue 24) fails the test instead of
        // stalling the run.
        "timeout",
        "120",
        "pamtester",
        service.name.as_str(),
        user,
        "authenticate",
        "acct_mgmt",
    ]);
    run_with_input(&argv, answer)
}

pub const POLICY: &str = "mode = \"optional\"\n[enrollment]\nat_login = true\n";

/// `python3 -c script socket` as `user` (no groups).
pub fn python_as(user: &User, script: &str, socket: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        &user.0,
        "--regid",
        &user.0,
        "--clear-groups",
        "/usr/bin/python3",
        "-c",
        script,
    ])
    .arg(socket);
    c
}

/// A private `/dev/log`: a datagram socket of the test that programs run through
/// [`Syslog::prefix`] log to (`pam_module/tests/private_dev_log.sh`, in a mount namespace of
/// their own; nothing outside it changes).
pub struct Syslog {
    dir: PathBuf,
    sock: std::os::unix::net::UnixDatagram,
}

impl Syslog {
    /// The socket in `dir/log.sock`, writable by every user.
    pub fn new(dir: &Path) -> Syslog {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        Syslog {
            dir: dir.to_owned(),
            sock,
        }
    }

    /// The command words that run what follows with this `/dev/log`.
    pub fn prefix(&self) -> Vec<String> {
        let wrap = workspace().join("pam_module/tests/private_dev_log.sh");
        ["unshare", "--mount", "--propagation", "private", "sh"]
            .map(String::from)
            .into_iter()
            .chain([wrap.display().to_string(), self.dir.display().to_string()])
            .collect()
    }

    /// The datagrams received so far (each `<PRI>timestamp tag: message`).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = self.sock.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        lines
    }
}

/// `user` opens 100 connections to `socket` and sends nothing, for `secs` seconds; returns once
/// they are open. Kill the child to close them.
pub fn hold_connections(user: &User, socket: &Path, secs: u32) -> Child {
    let script = format!(
        "import socket,sys,time\nconns=[]\nfor i in range(100):\n    s=socket.socket(socket.AF_UNIX)\n    s.connect(sys.argv[1])\n    conns.append(s)\nprint('held', flush=True)\ntime.sleep({secs})"
    );
    let mut holder = python_as(user, &script, socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    holder
}
