//! Callers that are not root: the module and `twofold-verifyd` from `make install`'s layout,
//! the service socket-activated by `systemd-socket-activate` (as systemd's socket unit would),
//! pamtester through the real libpam as the user itself (`runuser`), as root with the state
//! mounted read-only (the stand-in for polkit >= 127's sandboxed helper), and the socket spoken
//! to directly by another user. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use twofold_policy::record::{Enrollment, Record};
use twofold_policy::store::Store;
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{UserName, recovery};
use twofold_system_tests::{build_dir, root_or_skip, run, staged_bins, workspace};

/// A real account, removed on drop.
struct User(String);

impl User {
    fn create(tag: &str) -> User {
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
struct Service {
    name: String,
}

impl Service {
    fn install(tag: &str, body: &str) -> Service {
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
struct Verifyd {
    child: Child,
}

impl Verifyd {
    fn start(bin: &Path, socket: &Path, policy: &Path, state: &Path, log: &Path) -> Verifyd {
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

struct Rig {
    tmp: tempfile::TempDir,
    module: PathBuf,
    verifyd: PathBuf,
    socket: PathBuf,
}

impl Rig {
    /// `make install-files` into a fresh directory readable by everyone (a locker running as
    /// the user loads the module from there), a policy and a root-only state directory.
    fn new(policy: &str) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let assets = d.join("assets");
        run(Command::new(build_dir().unwrap().join("twofold"))
            .arg("generate-assets")
            .arg(&assets));
        let root = d.join("root");
        run(Command::new("make")
            .args(["--no-print-directory", "-s", "-C"])
            .arg(workspace())
            .arg("install-files")
            .arg(format!("DESTDIR={}", root.display()))
            .arg(format!("BIN_DIR={}", staged_bins(d).unwrap().display()))
            .arg(format!("ASSET_DIR={}", assets.display())));
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

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn args(&self) -> String {
        format!(
            "policy={d}/policy.toml state={d}/state verify_socket={s}",
            d = self.dir().display(),
            s = self.socket.display()
        )
    }

    /// The README's key + code shape: twofold decides, `ignore` lets the rest decide.
    fn service(&self, tag: &str) -> Service {
        Service::install(
            tag,
            &format!(
                "auth [success=done ignore=ignore default=die] {m} {a}\n\
                 auth required pam_permit.so\n\
                 account required {m} {a}\n\
                 account required pam_permit.so\n",
                m = self.module.display(),
                a = self.args()
            ),
        )
    }

    fn start(&self) -> Verifyd {
        std::fs::create_dir_all(self.socket.parent().unwrap()).unwrap();
        Verifyd::start(
            &self.verifyd,
            &self.socket,
            &self.dir().join("policy.toml"),
            &self.dir().join("state"),
            &self.dir().join("verifyd.log"),
        )
    }

    fn store(&self) -> Store {
        Store::open(&self.dir().join("state")).unwrap()
    }

    fn enroll(&self, user: &str) -> (Secret, Vec<String>) {
        let secret = Secret::generate().unwrap();
        let codes = recovery::generate(2).unwrap();
        let store = self.store();
        let lock = store.lock(&UserName::parse(user).unwrap()).unwrap();
        let mut r = Record::new(user);
        r.enrollment = Some(Enrollment::new(&secret, Params::default(), 1, codes.hashes));
        lock.write_record(&r).unwrap();
        (secret, codes.codes.iter().map(|c| c.to_string()).collect())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("verifyd.log")).unwrap_or_default()
    }
}

fn oathtool(secret: &Secret, offset: i64) -> String {
    let t = twofold_policy::time::now() as i64 + offset * 30;
    let out = run(Command::new("oathtool")
        .args(["--totp", "--base32", &format!("--now=@{t}")])
        .arg(secret.to_base32().as_str()));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn fresh_step() {
    let into = twofold_policy::time::now() % 30;
    if into + 5 >= 30 {
        std::thread::sleep(Duration::from_secs(30 - into));
    }
}

/// `pamtester SERVICE USER authenticate acct_mgmt` with `answer` on stdin, run by `cmd_prefix`
/// (e.g. `runuser -u USER --`), or as root when it is empty.
fn pamtester(prefix: &[&str], service: &Service, user: &str, answer: &str) -> (bool, String) {
    let mut argv: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
    argv.extend(
        [
            "pamtester",
            service.name.as_str(),
            user,
            "authenticate",
            "acct_mgmt",
        ]
        .map(String::from),
    );
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(answer.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const POLICY: &str = "mode = \"optional\"\n[enrollment]\nat_login = true\n";

#[test]
fn a_caller_that_is_not_root_verifies_through_the_service() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY);
    let svc = rig.service("user");
    let _verifyd = rig.start();
    let alice = User::create("a");
    let bob = User::create("b");
    let (secret, _) = rig.enroll(&alice.0);
    let as_alice = ["runuser", "-u", alice.0.as_str(), "--"];
    // A valid code logs in, once.
    fresh_step();
    let code = oathtool(&secret, 0);
    let (ok, out) = pamtester(&as_alice, &svc, &alice.0, &format!("{code}\n"));
    assert!(ok && out.contains("Verification code"), "{out}");
    let (ok, out) = pamtester(&as_alice, &svc, &alice.0, &format!("{code}\n"));
    assert!(!ok, "the same code twice: {out}");
    // A wrong code is refused and counted, as from this machine.
    let (ok, out) = pamtester(&as_alice, &svc, &alice.0, "000000\n");
    assert!(!ok, "{out}");
    let c = rig
        .store()
        .read_counters(&UserName::parse(&alice.0).unwrap())
        .unwrap();
    assert_eq!(c.failures["local"].count, 2, "{:?}", c.failures);
    // A locker that answers every prompt with the password: a clear refusal, not counted.
    let (ok, out) = pamtester(&as_alice, &svc, &alice.0, "hunter2 is my password\n");
    assert!(!ok && out.contains("was not one"), "{out}");
    // An optional user without enrollment passes with nothing asked.
    let as_bob = ["runuser", "-u", bob.0.as_str(), "--"];
    let (ok, out) = pamtester(&as_bob, &svc, &bob.0, "");
    assert!(ok && !out.contains("Verification code"), "{out}");
    // Bob's process asking about alice gets nothing but a refusal.
    let (ok, out) = pamtester(&as_bob, &svc, &alice.0, "000000\n");
    assert!(!ok, "{out}");
    assert!(
        rig.log().contains("may ask only about itself"),
        "{}",
        rig.log()
    );
    // The root login path never asked the service.
    let before = rig.log().lines().count();
    fresh_step();
    let (ok, out) = pamtester(&[], &svc, &alice.0, &format!("{}\n", oathtool(&secret, 1)));
    assert!(ok, "{out}");
    assert_eq!(rig.log().lines().count(), before, "root asked the service");
}

#[test]
fn a_peer_that_is_not_root_may_ask_only_about_itself() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY);
    let _verifyd = rig.start();
    let alice = User::create("c");
    let bob = User::create("d");
    rig.enroll(&alice.0);
    // Straight to the socket, as bob, about alice and about himself.
    let ask = |user: &str, body: &str| -> String {
        // A connection the service drops (garbage) prints `dropped`.
        let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ntry:\n    s.sendall(sys.argv[2].encode())\n    print(s.recv(4096).decode() or 'dropped')\nexcept OSError:\n    print('dropped')";
        let out = run(Command::new("setpriv")
            .args([
                "--reuid",
                user,
                "--regid",
                user,
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                script,
            ])
            .arg(&rig.socket)
            .arg(body));
        String::from_utf8(out.stdout).unwrap()
    };
    let q = |who: &str| format!("twofold-verify 1\nop=query\nuser={who}\nservice=x\nrhost=\n\n");
    let answer = ask(&bob.0, &q(&alice.0));
    assert!(answer.contains("answer=refused"), "{answer}");
    assert!(
        !answer.contains("enabled"),
        "leaked alice's status: {answer}"
    );
    let answer = ask(&bob.0, &q(&bob.0));
    assert!(answer.contains("answer=ignore"), "{answer}");
    // Guessing alice's code through the socket as bob: refused unchecked, nothing counted.
    let check = format!(
        "twofold-verify 1\nop=check\nuser={}\nservice=x\nrhost=203.0.113.1\ncode=123456\n\n",
        alice.0
    );
    let answer = ask(&bob.0, &check);
    assert!(answer.contains("answer=refused"), "{answer}");
    let c = rig
        .store()
        .read_counters(&UserName::parse(&alice.0).unwrap())
        .unwrap();
    assert!(c.failures.is_empty(), "{:?}", c.failures);
    // Alice's own check with a host she names counts as local: only root's items are believed.
    let answer = ask(&alice.0, &check.replace("code=123456", "code=000000"));
    assert!(answer.contains("answer=refused"), "{answer}");
    let c = rig
        .store()
        .read_counters(&UserName::parse(&alice.0).unwrap())
        .unwrap();
    assert_eq!(c.failures.keys().collect::<Vec<_>>(), ["local"]);
    // Garbage and oversized requests are refused, the service stays up.
    for junk in ["hello\n\n", &"x".repeat(10_000)] {
        assert_eq!(ask(&bob.0, junk).trim(), "dropped");
    }
    assert!(ask(&bob.0, &q(&bob.0)).contains("answer=ignore"));
}

#[test]
fn root_with_a_read_only_state_verifies_through_the_service() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY);
    let svc = rig.service("ro");
    let _verifyd = rig.start();
    let alice = User::create("e");
    let (secret, _) = rig.enroll(&alice.0);
    let state = rig.dir().join("state");
    let script = format!(
        "mount --bind {s} {s} && mount -o remount,bind,ro {s} && exec \"$@\"",
        s = state.display()
    );
    let ns: Vec<&str> = vec![
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
    ];
    fresh_step();
    let code = oathtool(&secret, 0);
    let (ok, out) = pamtester(&ns, &svc, &alice.0, &format!("{code}\n"));
    assert!(ok, "{out}\n{}", rig.log());
    assert!(rig.log().contains("op=check"), "{}", rig.log());
    // The service recorded the step (outside the sandbox): the code is spent.
    let (ok, _) = pamtester(&[], &svc, &alice.0, &format!("{code}\n"));
    assert!(!ok, "replayed after a read-only login");
}

#[test]
fn without_the_service_callers_that_are_not_root_fail_closed_and_say_why() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY);
    let svc = rig.service("down");
    let alice = User::create("f");
    let bob = User::create("g");
    let (secret, _) = rig.enroll(&alice.0);
    // Syslog of the PAM process captured through a private /dev/log.
    let logdir = rig.dir().join("syslog");
    std::fs::create_dir_all(&logdir).unwrap();
    let sock = std::os::unix::net::UnixDatagram::bind(logdir.join("log.sock")).unwrap();
    std::fs::set_permissions(
        logdir.join("log.sock"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let wrap = workspace().join("pam_module/tests/private_dev_log.sh");
    for (who, answer) in [(&bob, ""), (&alice, "000000\n")] {
        let logdir_s = logdir.display().to_string();
        let wrap_s = wrap.display().to_string();
        let prefix = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            wrap_s.as_str(),
            logdir_s.as_str(),
            "runuser",
            "-u",
            who.0.as_str(),
            "--",
        ];
        let (ok, out) = pamtester(&prefix, &svc, &who.0, answer);
        assert!(!ok, "{}: passed without the service: {out}", who.0);
        let mut lines = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sock.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert!(
            lines.iter().any(|l| l.contains("pam_twofold(")
                && l.contains("failing closed")
                && l.contains("twofold-verifyd")),
            "{lines:#?}"
        );
    }
    // Root logins do not need the service.
    fresh_step();
    let (ok, out) = pamtester(&[], &svc, &alice.0, &format!("{}\n", oathtool(&secret, 0)));
    assert!(ok, "{out}");
}

/// `python3 -c script socket` as `user` (no groups).
fn python_as(user: &User, script: &str, socket: &Path) -> Command {
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

#[test]
fn a_user_holding_connections_open_does_not_starve_others() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY);
    let svc = rig.service("hold");
    let _verifyd = rig.start();
    let alice = User::create("h");
    let mallory = User::create("m");
    let (secret, _) = rig.enroll(&alice.0);
    // Mallory opens 100 connections and sends nothing.
    let script = "import socket,sys,time\nconns=[]\nfor i in range(100):\n    s=socket.socket(socket.AF_UNIX)\n    s.connect(sys.argv[1])\n    conns.append(s)\nprint('held', flush=True)\ntime.sleep(20)";
    let mut holder = python_as(&mallory, script, &rig.socket)
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
    // Alice's locker still gets its answer at once.
    fresh_step();
    let as_alice = ["runuser", "-u", alice.0.as_str(), "--"];
    let (ok, out) = pamtester(
        &as_alice,
        &svc,
        &alice.0,
        &format!("{}\n", oathtool(&secret, 0)),
    );
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(ok, "{out}\n{}", rig.log());
    assert!(
        rig.log().contains("too many connections at once"),
        "{}",
        rig.log()
    );
}

/// Found by an attacker's review: the service's 5 s timeout applied to each read, so a peer
/// sending one byte every few seconds held its connection (and a slot) for hours. The whole
/// message now has one deadline.
#[test]
fn a_peer_sending_a_byte_at_a_time_is_cut_off_at_the_deadline() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY);
    let _verifyd = rig.start();
    let mallory = User::create("s");
    // One byte every 2 s, up to 30 s; prints how long the service kept the connection.
    let script = "import socket,sys,time\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nt=time.time()\ntry:\n    for b in b'twofold-verify 1\\nop=query\\nuser=x':\n        s.send(bytes([b]))\n        time.sleep(2)\n        if time.time()-t > 30: break\nexcept OSError:\n    pass\ns.settimeout(30)\ntry:\n    while s.recv(100): pass\nexcept OSError:\n    pass\nprint(int(time.time()-t), flush=True)";
    let out = python_as(&mallory, script, &rig.socket).output().unwrap();
    let held: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    // The deadline is 5 s; before the fix the connection outlived the 30 s of the script.
    assert!(held < 20, "held for {held} s\n{}", rig.log());
    assert!(rig.log().contains("refused"), "{}", rig.log());
}
