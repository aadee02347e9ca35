//! The rig of the console's browser test (`console.rs`): the sandbox of `make console-demo`
//! built by the test itself — a private `dbus-daemon` loading the product's bus policy, the real
//! `twofold-enrolld`, real accounts with passwords and a group (removed on drop, also when the
//! test fails), the console installed by `make install-files`, a real `cockpit-ws` in a private
//! mount namespace (`packaging/console-ws.sh`) whose PAM service asks the password then the
//! built `pam_twofold.so` — and a headless Chromium driven through WebDriver by
//! `tests/console/browser.py`. Needs root, as CI runs.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use twofold_policy::record::{Enrollment, Record};
use twofold_policy::store::Store;
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{UserName, recovery};
use twofold_system_tests::{build_dir, install_files, module_so, run, workspace};

/// A random password (hex of 8 bytes from the kernel).
fn password() -> String {
    let mut bytes = [0u8; 8];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut bytes,
    )
    .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A real account with a password, removed on drop (its processes first: a Cockpit session's
/// bridge would keep `userdel` from removing it).
pub struct Account {
    pub name: String,
    pub password: String,
}

impl Account {
    pub fn create(name: &str, groups: &[&str]) -> Account {
        let _ = Command::new("userdel").arg(name).output();
        let mut cmd = Command::new("useradd");
        cmd.args(["--no-create-home", "--home-dir", "/", "--shell", "/bin/sh"]);
        if !groups.is_empty() {
            cmd.arg("--groups").arg(groups.join(","));
        }
        run(cmd.arg(name));
        let password = password();
        let account = Account {
            name: name.to_owned(),
            password,
        };
        let (ok, out) = twofold_system_tests::run_with_input(
            &["chpasswd"],
            &format!("{}:{}\n", account.name, account.password),
        );
        assert!(ok, "chpasswd: {out}");
        account
    }
}

/// `kill -SIG -- TARGET` (a pid, or `-pgid` for a process group).
fn signal(sig: &str, target: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", target])
        .stderr(Stdio::null())
        .status();
}

/// The pids of `user`'s processes.
fn processes_of(user: &str) -> Vec<i32> {
    let out = Command::new("pgrep").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

impl Drop for Account {
    fn drop(&mut self) {
        for _ in 0..50 {
            let pids = processes_of(&self.name);
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                signal("KILL", &pid.to_string());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// A group, removed on drop.
pub struct Group(pub String);

impl Group {
    pub fn create(name: &str) -> Group {
        let _ = Command::new("groupdel").arg(name).output();
        run(Command::new("groupadd").arg(name));
        Group(name.to_owned())
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.0).output();
    }
}

/// What a [`Sandbox`] may add.
#[derive(Default)]
pub struct Options {
    /// The daemon sees that many more local accounts (`user0`, `user1`, ...).
    pub extra_users: usize,
    /// The daemon reads the policy through a symbolic link to the sandbox's directory with
    /// this name (every rule text the daemon gives then holds it).
    pub policy_link: Option<String>,
    /// This account may use sudo (everything, with its password) inside cockpit-ws's mount
    /// namespace: Cockpit's administrative access.
    pub sudoer: Option<String>,
}

/// A child process killed (with its process group) on drop.
pub struct Proc {
    pub child: Child,
    group: bool,
}

impl Proc {
    fn spawn(cmd: &mut Command, group: bool) -> Proc {
        if group {
            cmd.process_group(0);
        }
        Proc {
            child: cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}")),
            group,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.child.id();
        let target = if self.group {
            format!("-{pid}")
        } else {
            pid.to_string()
        };
        signal("TERM", &target);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal("KILL", &target);
        let _ = self.child.wait();
    }
}

/// The sandbox: directory, bus, daemon, verification service and cockpit-ws (as
/// `cockpit-wsinstance`, as Cockpit's units run it). Fields drop in order: cockpit-ws, the
/// service, the daemon, the bus, then the directory.
pub struct Sandbox {
    pub ws: Proc,
    pub verifyd: Proc,
    pub daemon: Proc,
    pub bus: Proc,
    pub port: u16,
    pub bus_address: String,
    pub tmp: tempfile::TempDir,
}

impl Sandbox {
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn policy(&self) -> PathBuf {
        self.dir().join("policy.toml")
    }

    pub fn state(&self) -> PathBuf {
        self.dir().join("state")
    }

    /// Starts everything: `policy` for the daemon and the login. The bus loads the product's
    /// bus policy alone: an admin_group other than `twofold-admin` does not receive the
    /// broadcast `UserChanged`, so the console's live updates come through `Subscribe`.
    pub fn start(policy: &str) -> Sandbox {
        Sandbox::start_with(policy, &Options::default())
    }

    /// [`Sandbox::start`] with [`Options`].
    pub fn start_with(policy: &str, options: &Options) -> Sandbox {
        let extra_users = options.extra_users;
        let policy_link = options.policy_link.as_deref();
        for tool in [
            "/usr/lib/cockpit/cockpit-ws",
            "/usr/share/cockpit/shell",
            "/usr/bin/chromium",
            "/usr/bin/chromedriver",
            "/etc/pam.d/cockpit",
        ] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: make test installs cockpit-ws, cockpit-bridge, cockpit-system, chromium, chromium-driver"
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_owned();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let write = |name: &str, text: &str| {
            let p = d.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            p
        };
        write("policy.toml", policy);
        std::fs::create_dir(d.join("state")).unwrap();
        std::fs::set_permissions(d.join("state"), std::fs::Permissions::from_mode(0o700)).unwrap();

        // The console as make install-files lays it out.
        let root = install_files(&d);
        let share = d.join("cockpit");
        run(Command::new("cp")
            .arg("-a")
            .arg("/usr/share/cockpit/.")
            .arg(&share));
        let _ = std::fs::remove_dir_all(share.join("twofold"));
        run(Command::new("cp")
            .arg("-a")
            .arg(root.join("usr/share/cockpit/twofold"))
            .arg(share.join("twofold")));

        // The bus.
        let run_dir = d.join("run");
        std::fs::create_dir(&run_dir).unwrap();
        std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let product = workspace().join("packaging/dbus/org.twofold.Enroll1.conf");
        let socket = run_dir.join("system_bus_socket");
        let conf = write(
            "bus.conf",
            &std::fs::read_to_string(workspace().join("packaging/dbus/private-bus.conf.in"))
                .unwrap()
                .replace("@SOCKET@", &socket.display().to_string())
                .replace("@INCLUDE@", &product.display().to_string()),
        );
        let bus = Proc::spawn(
            Command::new("dbus-daemon")
                .arg(format!("--config-file={}", conf.display()))
                .args(["--nofork", "--nopidfile", "--nosyslog"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("bus.log")).unwrap()),
            false,
        );
        wait_for(|| socket.exists(), "the bus socket");
        let bus_address = format!("unix:path={}", socket.display());
        // With extra users: the daemon alone sees a copy of /etc whose passwd, group and
        // login.defs hold that many more local accounts (`user0`, `user1`, ...), bind-mounted
        // over /etc in a mount namespace of its own; the host's files are not touched. (A copy
        // of the directory, not of the files: useradd elsewhere renames a new /etc/passwd into
        // place, and that detaches a mount on the old file in every namespace.)
        let enrolld = build_dir().unwrap().join("twofold-enrolld");
        let mut daemon_cmd = if extra_users == 0 {
            Command::new(&enrolld)
        } else {
            let etc = d.join("etc");
            run(Command::new("cp").args(["-a", "/etc"]).arg(&etc));
            let mut passwd = std::fs::read_to_string(etc.join("passwd")).unwrap();
            let mut group = std::fs::read_to_string(etc.join("group")).unwrap();
            for i in 0..extra_users {
                let id = 200_000 + i;
                passwd.push_str(&format!(
                    "user{i}:x:{id}:{id}::/nonexistent:/usr/sbin/nologin\n"
                ));
                group.push_str(&format!("user{i}:x:{id}:\n"));
            }
            write("etc/passwd", &passwd);
            write("etc/group", &group);
            write("etc/login.defs", "UID_MIN 1000\nUID_MAX 999999\n");
            // Old enough for the daemon to trust its parse of them (see enrolld's index).
            std::thread::sleep(Duration::from_millis(2100));
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(format!(
                    "mount --bind {} /etc && exec \"$0\" \"$@\"",
                    etc.display()
                ))
                .arg(&enrolld);
            c
        };
        let daemon_policy = match policy_link {
            None => d.join("policy.toml"),
            Some(name) => {
                std::os::unix::fs::symlink(&d, d.join(name)).unwrap();
                d.join(name).join("policy.toml")
            }
        };
        let daemon = Proc::spawn(
            daemon_cmd
                .arg("--policy")
                .arg(&daemon_policy)
                .arg("--state")
                .arg(d.join("state"))
                .env("DBUS_SYSTEM_BUS_ADDRESS", &bus_address)
                .env("JOURNAL_STREAM", "0:0")
                .stderr(std::fs::File::create(d.join("enrolld.log")).unwrap()),
            false,
        );
        wait_for(
            || {
                Command::new("busctl")
                    .arg(format!("--address={bus_address}"))
                    .args(["status", "org.twofold.Enroll1"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            },
            "twofold-enrolld on the bus",
        );

        // The verification service, socket-activated as the package's unit would be, and named
        // in the module's arguments as on a packaged host. (cockpit-session, setuid root and
        // started by cockpit-ws's user, runs PAM with its real uid made root too, so the
        // module decides in-process and has not needed it so far.)
        let verify_socket = run_dir.join("verify.sock");
        let verifyd = Proc::spawn(
            Command::new("systemd-socket-activate")
                .arg("-l")
                .arg(&verify_socket)
                .args(["-E", "JOURNAL_STREAM=0:0"])
                .arg(build_dir().unwrap().join("twofold-verifyd"))
                .arg("--policy")
                .arg(d.join("policy.toml"))
                .arg("--state")
                .arg(d.join("state"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("verifyd.log")).unwrap()),
            false,
        );
        wait_for(|| verify_socket.exists(), "the verification socket");
        std::fs::set_permissions(&verify_socket, std::fs::Permissions::from_mode(0o666)).unwrap();

        // Cockpit's login: the password, then twofold.
        let module = module_so().expect("libpam_twofold.so is built");
        let args = format!(
            "policy={} state={} verify_socket={}",
            d.join("policy.toml").display(),
            d.join("state").display(),
            verify_socket.display()
        );
        let pam = write(
            "pam.cockpit",
            &format!(
                "auth     required pam_unix.so\n\
                 auth     required {m} {args}\n\
                 account  required pam_unix.so\n\
                 account  required {m} {args}\n\
                 session  required pam_permit.so\n\
                 password required pam_deny.so\n",
                m = module.display()
            ),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut ws_cmd = Command::new("unshare");
        if let Some(who) = &options.sudoer {
            let dir = d.join("sudoers.d");
            std::fs::create_dir(&dir).unwrap();
            let file = dir.join("twofold-console-test");
            std::fs::write(&file, format!("{who} ALL=(ALL:ALL) ALL\n")).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o440)).unwrap();
            ws_cmd.env("CONSOLE_SUDOERS_D", &dir);
        }
        let ws = Proc::spawn(
            ws_cmd
                .args(["--mount", "--propagation", "private", "sh"])
                .arg(workspace().join("packaging/console-ws.sh"))
                .arg(&run_dir)
                .arg(&pam)
                .arg(&share)
                .arg(port.to_string())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("cockpit-ws.log")).unwrap()),
            true,
        );
        wait_for(
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "cockpit-ws to listen",
        );
        Sandbox {
            ws,
            verifyd,
            daemon,
            bus,
            port,
            bus_address,
            tmp,
        }
    }

    /// Enrolls `user` directly in the store (as an earlier enrollment would have): its key.
    pub fn enroll(&self, user: &str) -> String {
        let secret = Secret::generate().unwrap();
        let codes = recovery::generate(5).unwrap();
        let store = Store::open(&self.state()).unwrap();
        let lock = store.lock(&UserName::parse(user).unwrap()).unwrap();
        let mut r = Record::new(user);
        r.enrollment = Some(Enrollment::new(
            &secret,
            Params::default(),
            twofold_policy::time::now(),
            codes.hashes,
        ));
        lock.write_record(&r).unwrap();
        secret.to_base32().as_str().to_owned()
    }

    /// `twofold ARGS` against the sandbox's bus, as root.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        run(Command::new(build_dir().unwrap().join("twofold"))
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_address))
    }

    /// `twofold list --json`: user → row.
    /// Without the `deadline` of a pending user the requirement has not met yet: that one is
    /// "now + grace", and moves with the clock between two listings.
    pub fn list(&self) -> std::collections::BTreeMap<String, Value> {
        let out = self.cli(&["list", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                let mut u = u.clone();
                if u["required_since"].is_null()
                    && let Some(row) = u.as_object_mut()
                {
                    row.remove("deadline");
                }
                (u["user"].as_str().unwrap().to_owned(), u)
            })
            .collect()
    }

    /// The daemon's `Summary`, through busctl.
    pub fn summary(&self) -> std::collections::BTreeMap<String, u64> {
        let out = run(Command::new("busctl")
            .arg(format!("--address={}", self.bus_address))
            .args([
                "--json=short",
                "call",
                "org.twofold.Enroll1",
                "/org/twofold/Enroll1",
                "org.twofold.Enroll1.Manager",
                "Summary",
            ]));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["data"][0]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
            .collect()
    }

    /// One log file of the sandbox (`verifyd.log`, `enrolld.log`, ...).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir().join(name)).unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        ["cockpit-ws.log", "enrolld.log", "verifyd.log", "bus.log"]
            .iter()
            .map(|f| {
                format!(
                    "--- {f}\n{}",
                    std::fs::read_to_string(self.dir().join(f)).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tests/console/browser.py`: one JSON command a line, one JSON answer a line.
pub struct Browser {
    proc: Proc,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    pub fn start(base: &str, scratch: &Path) -> Browser {
        let mut proc = Proc::spawn(
            Command::new("/usr/bin/python3")
                .arg(workspace().join("tests/console/browser.py"))
                .arg(base)
                .arg(scratch)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
            true,
        );
        let stdin = proc.child.stdin.take();
        let stdout = BufReader::new(proc.child.stdout.take().unwrap());
        let mut b = Browser {
            proc,
            stdin,
            stdout,
        };
        b.cmd(json!({"op": "start"}));
        b
    }

    /// Sends `cmd`; its answer (`ok`), or a panic with the browser's error.
    pub fn cmd(&mut self, cmd: Value) -> Value {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{cmd}: the browser answered {line:?}: {e}"));
        if let Some(e) = v.get("error") {
            panic!(
                "{cmd}: {e}\n{}\nat {}",
                v["trace"].as_str().unwrap_or(""),
                v["url"]
            );
        }
        v["ok"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // EOF: the script quits the browser and ends; Proc's drop kills what is left.
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.proc.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The code `oathtool` computes for the base32 `key` now.
pub fn oathtool(key: &str) -> String {
    let t = twofold_policy::time::now();
    let out =
        run(Command::new("oathtool").args(["--totp", "--base32", &format!("--now=@{t}"), key]));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Waits for a fresh 30 s step if fewer than `need` seconds are left in this one.
pub fn fresh_step_within(need: u64) {
    let into = twofold_policy::time::now() % 30;
    if into + need >= 30 {
        std::thread::sleep(Duration::from_secs(30 - into));
    }
}
