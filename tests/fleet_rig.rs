//! The rig of `fleet.rs` (issue #23 at the level of the real components): one private slapd
//! ([`Slapd`]), the users and groups in it only, reaching the processes through nslcd +
//! libnss-ldapd in a private mount namespace ([`NssHost`]), and two "hosts" sharing the
//! directory: each with its own policy file (the same policy), state directory, PAM service
//! files in /etc/pam.d (removed again) and, when asked, a private `dbus-daemon` with the real
//! `twofold-enrolld` on it. Every program of a host (pamtester, the daemon, the bus, the
//! `twofold` command, sshd) runs inside the namespace; pamtester in a child namespace of it
//! whose `/dev/log` is a datagram socket of the test (`pam_module/tests/private_dev_log.sh`),
//! so the module's log lines are read back. Codes come from `oathtool`. Needs root, as CI runs.
#![allow(dead_code)] // each test uses its own part

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use twofold_policy::Policy;
use twofold_policy::store::{StateStore, Store, open_backend};
use twofold_system_tests::slapd::{NssHost, Options as SlapdOptions, Slapd};
use twofold_system_tests::{root_or_skip, staged_bins, workspace};

/// The Python that has paramiko (Debian's), and runs the pty driver.
pub const PYTHON: &str = "/usr/bin/python3";

/// The primary group of every directory user the rig adds (a directory group too).
pub const USERS_GID: u32 = 41000;
/// Its name.
pub const USERS_GROUP: &str = "tffleet";

/// A process killed on drop: SIGTERM, then SIGKILL after 5 s.
pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let stdin = child.stdin.take();
        Proc { child, stdin }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PAM service file in /etc/pam.d, removed on drop (the namespace shares /etc/pam.d with
/// the host; real service files rather than pam_wrapper's, whose per-process copies of the
/// service directory collide between the concurrent logins of the race).
pub struct PamService {
    pub name: String,
}

impl PamService {
    fn install(name: String, body: &str) -> PamService {
        std::fs::write(Path::new("/etc/pam.d").join(&name), body).unwrap();
        PamService { name }
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(Path::new("/etc/pam.d").join(&self.name));
    }
}

/// A private `/dev/log`: a datagram socket of the test, `/dev/log` in the rig's log namespace.
/// A thread of the test reads it all the time: a sender never waits on a full queue (10
/// datagrams by default, `net.unix.max_dgram_qlen`), even with 32 logins at once.
pub struct Syslog {
    sock: Arc<std::os::unix::net::UnixDatagram>,
    got: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Syslog {
    fn new(dir: &Path) -> Syslog {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("log.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let sock = Arc::new(sock);
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (sock, got, stop) = (sock.clone(), got.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    {
                        // Received and kept under one lock: `lines` sees a datagram either
                        // still queued or kept.
                        let mut g = got.lock().unwrap_or_else(|e| e.into_inner());
                        if let Ok(n) = sock.recv(&mut buf) {
                            g.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                            continue;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        Syslog {
            sock,
            got,
            stop,
            reader: Some(reader),
        }
    }

    /// The datagrams received since the last call (each `<PRI>timestamp tag: message`).
    pub fn lines(&self) -> Vec<String> {
        let mut g = self.got.lock().unwrap_or_else(|e| e.into_inner());
        self.sock.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = self.sock.recv(&mut buf) {
            g.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.sock.set_nonblocking(false).unwrap();
        std::mem::take(&mut *g)
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// A user of the directory (`uid=NAME,ou=people`), in no local file.
#[derive(Debug, Clone)]
pub struct DirUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub password: String,
    pub dn: String,
}

/// What a fleet is started with.
#[derive(Default)]
pub struct Options {
    /// Policy text after the common head (`[users.X]`, `[groups.X]` tables).
    pub tables: String,
    /// More `[store.ldap]` keys.
    pub ldap: String,
    /// `[store.offline] enabled = true` (max_age 1h).
    pub offline: bool,
    /// A bus and twofold-enrolld on each host.
    pub daemons: bool,
    /// Two providers in mirror mode: the hosts' store uses the first ([`Fleet::slapd`]), nslcd
    /// the second ([`Fleet::users_slapd`]), so that users still resolve while the store's
    /// directory is stopped (as on a site whose NSS has a cache or another server).
    pub mirror: bool,
}

/// The head of every host's policy: optional by default, enrollment inside the login.
const POLICY_HEAD: &str = "mode = \"optional\"\n[enrollment]\nat_login = true\n\
     grace_period = \"7d\"\nrecovery_codes = 2\n";

/// A bus and the daemon of one host, both inside the namespace. Drops the daemon first.
pub struct Daemon {
    enrolld: Proc,
    bus: Proc,
    pub address: String,
    pub log: PathBuf,
}

/// One host: its directory (policy, password file, state, bus socket, logs), its PAM services.
pub struct Host {
    pub name: &'static str,
    pub dir: PathBuf,
    /// The module as README's key + code stack has it: it decides `auth` when it succeeds or
    /// refuses; when it has nothing to ask (`PAM_IGNORE`) the rest (`pam_permit`) does;
    /// `account` too.
    pub service: PamService,
    /// The same with `on_error=allow`.
    pub service_allow: PamService,
    pub daemon: Option<Daemon>,
}

impl Host {
    pub fn policy(&self) -> PathBuf {
        self.dir.join("policy.toml")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The module's arguments for this host.
    pub fn args(&self) -> String {
        format!(
            "policy={} state={}",
            self.policy().display(),
            self.state().display()
        )
    }

    /// The host's store, as its programs open it: the backend the policy chose over its state
    /// directory.
    pub fn store(&self) -> Arc<dyn StateStore> {
        let policy = Policy::load(&self.policy(), None).unwrap();
        let local = Arc::new(Store::open(&self.state()).unwrap());
        let store = open_backend(local, &policy).unwrap();
        assert_eq!(store.backend(), "ldap");
        store
    }

    pub fn daemon_log(&self) -> String {
        self.daemon
            .as_ref()
            .map(|d| std::fs::read_to_string(&d.log).unwrap_or_default())
            .unwrap_or_default()
    }
}

/// The result of one pamtester run.
#[derive(Debug)]
pub struct Login {
    pub ok: bool,
    /// pamtester's output (prompts and messages on stderr, the verdict).
    pub out: String,
    /// The module's syslog lines of this login (`pam_twofold(`…).
    pub log: Vec<String>,
}

impl Login {
    /// Whether one of the module's lines contains `what`.
    pub fn logged(&self, what: &str) -> bool {
        self.log.iter().any(|l| l.contains(what))
    }

    /// PAM_AUTHINFO_UNAVAIL, as pamtester words it.
    pub fn unavailable(&self) -> bool {
        !self.ok && self.out.contains("cannot retrieve authentication info")
    }
}

impl std::fmt::Display for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ok={} out={:?} log={:#?}", self.ok, self.out, self.log)
    }
}

/// The directory, the namespace, the hosts. Fields drop in order: the hosts (daemons, PAM
/// services), the log namespace, nslcd's namespace, slapd, the files.
pub struct Fleet {
    pub hosts: Vec<Host>,
    log_ns: Proc,
    pub syslog: Syslog,
    pub nss: NssHost,
    /// The directory of the hosts' store (and of the users, unless [`Options::mirror`]).
    pub slapd: Slapd,
    /// With [`Options::mirror`]: the other provider, nslcd's.
    pub users_slapd: Option<Slapd>,
    pub bins: PathBuf,
    tmp: tempfile::TempDir,
}

impl Fleet {
    /// Starts slapd, nslcd's namespace, the log namespace and hosts `a` and `b`; `None` (the
    /// test does nothing) when not root.
    pub fn start(options: &Options) -> Option<Fleet> {
        if !root_or_skip() {
            return None;
        }
        let tmp = tempfile::Builder::new()
            .prefix("twofold-fleet.")
            .tempdir()
            .unwrap();
        // Callers of other uids (twofold enroll as the user) reach the binaries and the bus.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bins = staged_bins(tmp.path()).unwrap_or_else(|e| {
            panic!("{e}: build first: cargo build -p pam_twofold -p twofold-enrolld")
        });
        let (slapd, users_slapd) = if options.mirror {
            let (one, two) = Slapd::start_mirror_pair(&SlapdOptions::default()).expect("slapd");
            (one, Some(two))
        } else {
            (Slapd::start(&SlapdOptions::default()).expect("slapd"), None)
        };
        let nss =
            NssHost::start(users_slapd.as_ref().unwrap_or(&slapd)).expect("nslcd in a namespace");
        assert_not_local(USERS_GROUP);
        slapd.add_group(USERS_GROUP, USERS_GID, &[]).unwrap();
        let syslog = Syslog::new(&tmp.path().join("syslog"));
        // A child namespace of nslcd's whose /dev/log is the socket; its first process waits
        // for the end of its stdin (the pipe from this process) and so ends with the test.
        let log_ns = Proc::spawn(
            nss.command("unshare")
                .args(["--mount", "--propagation", "private", "sh"])
                .arg(workspace().join("pam_module/tests/private_dev_log.sh"))
                .arg(tmp.path().join("syslog"))
                .args(["sh", "-c", "read _"])
                .stdin(Stdio::piped()),
        );
        let dev_log = PathBuf::from(format!("/proc/{}/root/dev/log", log_ns.pid()));
        let t = Instant::now();
        while std::fs::symlink_metadata(&dev_log).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the log namespace did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut fleet = Fleet {
            hosts: Vec::new(),
            log_ns,
            syslog,
            nss,
            slapd,
            users_slapd,
            bins,
            tmp,
        };
        for name in ["a", "b"] {
            let host = fleet.host(name, options);
            fleet.hosts.push(host);
        }
        Some(fleet)
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn a(&self) -> &Host {
        &self.hosts[0]
    }

    pub fn b(&self) -> &Host {
        &self.hosts[1]
    }

    /// The policy of every host: `options`' tables, the directory over its `ldapi://` socket
    /// (plain `ldap://` to an unprivileged port of this host is refused by the policy) bound
    /// as the service account with the host's own copy of its password.
    pub fn policy_text(&self, host_dir: &Path, options: &Options) -> String {
        let mut p = format!(
            "{POLICY_HEAD}{tables}\n[store]\nbackend = \"ldap\"\n[store.ldap]\nuri = \"{uri}\"\n\
             base = \"{base}\"\nbind_dn = \"{dn}\"\nbind_password_file = \"{file}\"\n\
             timeout = \"2s\"\n{ldap}\n",
            tables = options.tables,
            uri = self.slapd.ldapi_url(),
            base = self.slapd.twofold_base(),
            dn = self.slapd.service_dn(),
            file = host_dir.join("ldap.secret").display(),
            ldap = options.ldap,
        );
        if options.offline {
            p.push_str("[store.offline]\nenabled = true\nmax_age = \"1h\"\n");
        }
        p
    }

    fn host(&self, name: &'static str, options: &Options) -> Host {
        let dir = self.dir().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let secret = dir.join("ldap.secret");
        std::fs::write(&secret, format!("{}\n", self.slapd.service_password())).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let policy = dir.join("policy.toml");
        std::fs::write(&policy, self.policy_text(&dir, options)).unwrap();
        std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
        let state = dir.join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let module = self.bins.join("libpam_twofold.so");
        let args = format!("policy={} state={}", policy.display(), state.display());
        let base = format!("twofold-fleet-{}-{}", std::process::id(), unique());
        let body = |extra: &str| {
            format!(
                "auth [success=done ignore=ignore default=die] {m} {args}{extra}\n\
                 auth required pam_permit.so\n\
                 account required {m} {args}{extra}\naccount required pam_permit.so\n",
                m = module.display()
            )
        };
        let service = PamService::install(format!("{base}-{name}"), &body(""));
        let service_allow =
            PamService::install(format!("{base}-{name}-allow"), &body(" on_error=allow"));
        let daemon = options.daemons.then(|| self.start_daemon(&dir));
        Host {
            name,
            dir,
            service,
            service_allow,
            daemon,
        }
    }

    /// A private bus (the product's bus policy) and twofold-enrolld, both in the namespace.
    fn start_daemon(&self, dir: &Path) -> Daemon {
        let product = workspace().join("packaging/dbus/org.twofold.Enroll1.conf");
        let socket = dir.join("system_bus_socket");
        let conf = dir.join("bus.conf");
        std::fs::write(
            &conf,
            std::fs::read_to_string(workspace().join("packaging/dbus/private-bus.conf.in"))
                .unwrap()
                .replace("@SOCKET@", &socket.display().to_string())
                .replace("@INCLUDE@", &product.display().to_string()),
        )
        .unwrap();
        let bus = Proc::spawn(
            self.nss
                .command("dbus-daemon")
                .arg(format!("--config-file={}", conf.display()))
                .args(["--nofork", "--nopidfile", "--nosyslog"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("bus.log")).unwrap()),
        );
        wait_for(|| socket.exists(), "the bus socket");
        let address = format!("unix:path={}", socket.display());
        let log = dir.join("enrolld.log");
        let enrolld = Proc::spawn(
            self.nss
                .command(self.bins.join("twofold-enrolld"))
                .arg("--policy")
                .arg(dir.join("policy.toml"))
                .arg("--state")
                .arg(dir.join("state"))
                .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
                .env("JOURNAL_STREAM", "0:0")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap()),
        );
        wait_for(
            || {
                Command::new("busctl")
                    .arg(format!("--address={address}"))
                    .args(["status", "org.twofold.Enroll1"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            },
            "twofold-enrolld on the bus",
        );
        Daemon {
            enrolld,
            bus,
            address,
            log,
        }
    }

    /// A user in the directory only (primary group [`USERS_GROUP`]), password `pw-NAME`;
    /// checked to be unknown to /etc/passwd and known inside the namespace.
    pub fn add_user(&self, name: &str, uid: u32) -> DirUser {
        assert_not_local(name);
        let password = format!("pw-{name}");
        let dn = self
            .slapd
            .add_user(name, uid, USERS_GID, &password)
            .unwrap();
        let user = DirUser {
            name: name.to_owned(),
            uid,
            gid: USERS_GID,
            password,
            dn,
        };
        // Through nslcd at once, or once replicated to its provider.
        let t = Instant::now();
        loop {
            let out = self.in_ns(&["getent", "passwd", name]);
            if String::from_utf8_lossy(&out.stdout).starts_with(&format!("{name}:x:{uid}:")) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "{name} is not seen through NSS in the namespace: {out:?}\n{}",
                self.nss.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        user
    }

    /// `n` users `PREFIXi` (uid `first + i`) in one `ldapadd`, without passwords.
    pub fn add_users(&self, prefix: &str, first: u32, n: u32) -> Vec<String> {
        let mut ldif = String::new();
        let mut names = Vec::new();
        for i in 0..n {
            let name = format!("{prefix}{i}");
            assert_not_local(&name);
            ldif.push_str(&format!(
                "dn: uid={name},{people}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
                 uid: {name}\ncn: {name}\nsn: {name}\nuidNumber: {uid}\ngidNumber: {USERS_GID}\n\
                 homeDirectory: /home/{name}\nloginShell: /bin/sh\n\n",
                people = self.slapd.people_base(),
                uid = first + i,
            ));
            names.push(name);
        }
        self.slapd.ldapadd(&ldif).unwrap();
        names
    }

    /// Runs `argv` inside the namespace (as root): its output, whatever the result.
    pub fn in_ns(&self, argv: &[&str]) -> Output {
        let (program, args) = argv.split_first().unwrap();
        self.nss.command(program).args(args).output().unwrap()
    }

    /// A command inside the log namespace (nslcd's, with the test's /dev/log).
    fn in_log_ns(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["--target", &self.log_ns.pid().to_string(), "--mount", "--"])
            .arg(program);
        cmd
    }

    /// `pamtester -I rhost=RHOST SERVICE USER authenticate acct_mgmt`, inside the log
    /// namespace, `answer` (lines) on its stdin, not started.
    pub fn pamtester(&self, service: &PamService, user: &str, rhost: &str) -> Command {
        let mut cmd = self.in_log_ns("timeout");
        cmd.args(["120", "pamtester", "-v", "-I"])
            .arg(format!("rhost={rhost}"))
            .args([service.name.as_str(), user, "authenticate", "acct_mgmt"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// One login on `host` (its plain service) from `rhost`, answering `answer`.
    pub fn login(&self, host: &Host, user: &str, answer: &str, rhost: &str) -> Login {
        self.login_with(&host.service, user, answer, rhost)
    }

    /// One login through `service`.
    pub fn login_with(&self, service: &PamService, user: &str, answer: &str, rhost: &str) -> Login {
        // Lines of earlier logins are not this one's.
        let _ = self.syslog.lines();
        let mut child = self.pamtester(service, user, rhost).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(format!("{answer}\n").as_bytes());
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        Login {
            ok: out.status.success(),
            out: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            log: ours(self.syslog.lines()),
        }
    }

    /// `twofold ARGS` as root against `host`'s daemon, inside the namespace.
    pub fn cli(&self, host: &Host, args: &[&str]) -> Output {
        let d = host.daemon.as_ref().expect("a fleet with daemons");
        self.nss
            .command(self.bins.join("twofold"))
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &d.address)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// `twofold enroll` as `user` (`setpriv`, the user known only through NSS inside the
    /// namespace) on a pseudo-terminal against `host`'s daemon, answering oathtool's code for
    /// the key it prints (`enrolld/tests/pty_enroll.py`): the key (base32).
    pub fn enroll_cli(&self, host: &Host, user: &DirUser) -> String {
        let v = self.enroll_cli_raw(host, user);
        let screen = v["screen"].as_str().unwrap_or_default();
        assert_eq!(
            v["exit"],
            0,
            "twofold enroll as {}: {screen}\n{}",
            user.name,
            host.daemon_log()
        );
        assert!(screen.contains("shown only now"), "{screen}");
        v["key"]
            .as_str()
            .unwrap_or_else(|| panic!("no key on the screen: {screen}"))
            .to_owned()
    }

    /// [`Fleet::enroll_cli`] whatever the result: the driver's JSON (`screen`, `key`, `exit`).
    pub fn enroll_cli_raw(&self, host: &Host, user: &DirUser) -> serde_json::Value {
        let d = host.daemon.as_ref().expect("a fleet with daemons");
        let out = self
            .nss
            .command(PYTHON)
            .arg(workspace().join("enrolld/tests/pty_enroll.py"))
            .args(["100", "[\"OATH\"]", "--", "setpriv"])
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .arg("--clear-groups")
            .arg(self.bins.join("twofold"))
            .args(["enroll", "--qr", "none"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &d.address)
            .env("TERM", "xterm")
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "pty driver: {e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The account entry of `user` in the directory (LDIF, as the admin), empty when absent.
    pub fn account_entry(&self, user: &str, attrs: &[&str]) -> String {
        let accounts = format!("ou=accounts,{}", self.slapd.twofold_base());
        self.slapd
            .ldapsearch(
                &accounts,
                &format!("(&(objectClass=twofoldAccount)(uid={user}))"),
                attrs,
            )
            .unwrap()
    }
}

/// Enrolls `name` through `store` (as an earlier enrollment would have, without a used step)
/// with a fresh secret and `codes` recovery codes: the key (base32) and the codes.
pub fn enroll_store(store: &dyn StateStore, name: &str, codes: u32) -> (String, Vec<String>) {
    let (secret, codes) = twofold_system_tests::fleet_store::enroll(store, name, codes).unwrap();
    (secret.to_base32().as_str().to_owned(), codes)
}

/// A real sshd on 127.0.0.1 inside the log namespace, started through a symlink named as its
/// PAM service (sshd takes the service from argv[0]); killed on drop.
pub struct Sshd {
    proc: Proc,
    pub port: u16,
    pub log: PathBuf,
    _service: PamService,
}

impl Sshd {
    /// On `host`: keyboard-interactive only, the PAM stack of the module alone (auth and
    /// account; the directory's passwords are for slapd's binds, so no pam_unix).
    pub fn start(fleet: &Fleet, host: &Host) -> Sshd {
        let dir = &host.dir;
        let module = fleet.bins.join("libpam_twofold.so");
        let service = PamService::install(
            format!("twofold-fleet-{}-{}-ssh", std::process::id(), unique()),
            &format!(
                "auth required {m} {a}\naccount required {m} {a}\naccount required pam_permit.so\n\
                 session required pam_permit.so\npassword required pam_deny.so\n",
                m = module.display(),
                a = host.args()
            ),
        );
        let key = dir.join("ssh_host_key");
        twofold_system_tests::run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key),
        );
        let port = twofold_system_tests::free_port();
        let conf = dir.join("sshd_config");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile none\n\
                 UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n\
                 PubkeyAuthentication no\nAuthenticationMethods keyboard-interactive\n\
                 PermitRootLogin no\nStrictModes no\nUseDNS no\nLogLevel VERBOSE\n",
                key = key.display()
            ),
        )
        .unwrap();
        // The privilege separation directory, as the package makes it at boot: in the
        // namespace's own /run.
        let out = fleet.in_ns(&["mkdir", "-p", "-m", "0755", "/run/sshd"]);
        assert!(out.status.success(), "{out:?}");
        let link = dir.join(&service.name);
        std::os::unix::fs::symlink("/usr/sbin/sshd", &link).unwrap();
        let log = dir.join("sshd.log");
        let proc = Proc::spawn(
            fleet
                .in_log_ns(link.to_str().unwrap())
                .arg("-D")
                .arg("-f")
                .arg(&conf)
                .arg("-E")
                .arg(&log)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let sshd = Sshd {
            proc,
            port,
            log,
            _service: service,
        };
        wait_for(
            || sshd.log_text().contains("Server listening"),
            "sshd to listen",
        );
        sshd
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `pam_module/tests/ssh_client.py` (paramiko, keyboard-interactive) as `user` with
    /// `cfg`: its JSON answer.
    pub fn client(&self, user: &str, cfg: &serde_json::Value) -> serde_json::Value {
        let mut child = Command::new(PYTHON)
            .arg(workspace().join("pam_module/tests/ssh_client.py"))
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

/// Unique within this test process.
fn unique() -> u32 {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// twofold's lines among `lines`.
pub fn ours(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| l.contains("pam_twofold("))
        .collect()
}

/// Asserts that `name` has no line in /etc/passwd (nor a group of that name in /etc/group).
pub fn assert_not_local(name: &str) {
    for file in ["/etc/passwd", "/etc/group"] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.lines().any(|l| l.split(':').next() == Some(name)),
            "{name} is in {file}: the fleet tests' users live in the directory only"
        );
    }
}

pub fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// The current 30 s step.
pub fn step_now() -> u64 {
    twofold_policy::time::now() / 30
}

/// oathtool's code for the base32 `key` at `step`.
pub fn code_at(key: &str, step: u64) -> String {
    let out = Command::new("oathtool")
        .args([
            "--totp",
            "--base32",
            &format!("--now=@{}", step * 30 + 1),
            key,
        ])
        .output()
        .expect("oathtool (make test installs it)");
    assert!(out.status.success(), "oathtool failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Waits for a fresh step if fewer than `need` seconds are left in this one.
pub fn fresh_step_within(need: u64) {
    let into = twofold_policy::time::now() % 30;
    if into + need >= 30 {
        std::thread::sleep(Duration::from_secs(30 - into));
    }
}

/// Sleeps until the 30 s step `step` has begun.
pub fn wait_for_step(step: u64) {
    let start = step * 30;
    let now = twofold_policy::time::now();
    if now < start {
        std::thread::sleep(Duration::from_secs(start - now));
    }
    while step_now() < step {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A six-digit answer that is none of `key`'s codes from `step - 2` to `step + 2`.
pub fn wrong_code(key: &str, step: u64) -> String {
    let valid: Vec<String> = (step - 2..=step + 2).map(|s| code_at(key, s)).collect();
    (0..)
        .map(|i: u32| format!("{:06}", 135_790 + i * 7))
        .find(|c| !valid.contains(c))
        .unwrap()
}

/// Reads `r` until `needle` has been seen: what was read (`None` at EOF first).
pub fn read_until(r: &mut impl std::io::Read, needle: &str) -> Option<String> {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        if r.read(&mut byte).ok()? == 0 {
            return None;
        }
        seen.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&seen).into_owned())
}

/// Reads the rest of `r`.
pub fn read_rest(r: &mut impl std::io::Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}
