//! Shared by the daemon and CLI tests: a private `dbus-daemon` that loads the product's own bus
//! policy file, the real `twofold-enrolld`, real accounts and groups (removed afterwards), and
//! callers of other identities through `setpriv`.
#![allow(dead_code)] // each test file uses its own part

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use twofold_enrolld::api::ManagerProxy;

pub mod polkit;
pub mod world;

/// True when running as root; otherwise says why the test does nothing. CI runs as root.
pub fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "this test needs root (real accounts, a root-owned bus name and store): run make test as root (CI does)"
    );
    false
}

/// A binary of this package, built by cargo for the integration tests.
pub fn bin(name: &str) -> PathBuf {
    PathBuf::from(match name {
        "twofold-enrolld" => env!("CARGO_BIN_EXE_twofold-enrolld"),
        "twofold" => env!("CARGO_BIN_EXE_twofold"),
        other => panic!("no binary {other}"),
    })
}

/// A temporary directory everyone may enter (callers of other uids run binaries from it).
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Dir { tmp }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes a root-owned 0644 file.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p
    }

    /// A copy of `from`, executable by everyone, made by install(1): this process never holds
    /// the copy open for writing, so a process another test thread forks meanwhile cannot
    /// inherit that descriptor and make executing the copy fail with ETXTBSY (setpriv's "Text
    /// file busy", which [`output`] cannot see as an error of its own).
    pub fn install(&self, from: &Path, name: &str) -> PathBuf {
        let p = self.path().join(name);
        let st = Command::new("install")
            .args(["-m", "0755"])
            .arg(from)
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success(), "install {} {}", from.display(), p.display());
        p
    }
}

/// A private bus: `dbus-daemon` with a system-bus configuration listening in `dir`, which
/// includes the product's `packaging/dbus/org.twofold.Enroll1.conf`.
pub struct Bus {
    child: Child,
    pub address: String,
}

impl Bus {
    pub fn start(dir: &Dir) -> Bus {
        Bus::start_with(dir, &[])
    }

    /// A private bus that also includes the bus policy files `includes` (e.g. polkit's).
    pub fn start_with(dir: &Dir, includes: &[&Path]) -> Bus {
        let product_conf = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging/dbus/org.twofold.Enroll1.conf")
            .canonicalize()
            .unwrap();
        let socket = dir.path().join("system_bus_socket");
        let conf = dir.write(
            "bus.conf",
            &std::fs::read_to_string(product_conf.with_file_name("private-bus.conf.in"))
                .unwrap()
                .replace("@SOCKET@", &socket.display().to_string())
                .replace("@INCLUDE@", &product_conf.display().to_string())
                .replace(
                    "</busconfig>",
                    &includes
                        .iter()
                        .map(|p| format!("  <include>{}</include>\n", p.display()))
                        .chain(["</busconfig>".to_owned()])
                        .collect::<String>(),
                ),
        );
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--nopidfile", "--nosyslog"])
            .stdout(Stdio::null())
            // Its complaints (e.g. it cannot raise the fd limit in a container) stay in `dir`.
            .stderr(std::fs::File::create(dir.path().join("bus.log")).unwrap())
            .spawn()
            .expect("dbus-daemon must be installed (make test installs it)");
        let start = Instant::now();
        while !socket.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the bus did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Bus {
            child,
            address: format!("unix:path={}", socket.display()),
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real daemon on a private bus.
pub struct Enrolld {
    child: Option<Child>,
    bus: String,
    args: Vec<String>,
    /// The daemon's stderr (its log when there is no syslog), appended across restarts.
    pub log: PathBuf,
}

impl Enrolld {
    pub fn start(bus: &Bus, policy: &Path, state: &Path, extra: &[&str]) -> Enrolld {
        let mut args = vec![
            "--policy".to_owned(),
            policy.display().to_string(),
            "--state".to_owned(),
            state.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut d = Enrolld {
            child: None,
            bus: bus.address.clone(),
            args,
            log: state.with_extension("log"),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let child = Command::new(bin("twofold-enrolld"))
            .args(&self.args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus)
            // Log lines to stderr as under systemd, even on a host whose /dev/log has a
            // receiver (the daemon would log there otherwise).
            .env("JOURNAL_STREAM", "0:0")
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while !self.serving() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "twofold-enrolld did not take its name"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn serving(&self) -> bool {
        name_has_owner(&self.bus, "org.twofold.Enroll1")
    }

    /// Stops the daemon (SIGTERM) and starts it again with the same arguments.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.child = None;
        while self.serving() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        self.child = None;
        while self.serving() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// After the process was killed from outside: reap it and wait until its name is gone.
    pub fn forget_killed(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.wait();
        }
        self.child = None;
        while self.serving() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the daemon logged so far (its stderr, as under systemd).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Enrolld {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Unique names for accounts and groups within this test process.
fn unique(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("tf{}x{n}{tag}", std::process::id())
}

/// A real account (and optionally groups it is a supplementary member of), removed on drop.
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl Account {
    /// `tf<pid>x<n><tag>` in the supplementary `groups`.
    pub fn create(tag: &str, groups: &[&str]) -> Account {
        let name = unique(tag);
        let _ = Command::new("userdel").arg(&name).output();
        let mut cmd = Command::new("useradd");
        cmd.args(["--no-create-home", "--shell", "/bin/sh"]);
        if !groups.is_empty() {
            cmd.arg("--groups").arg(groups.join(","));
        }
        assert!(cmd.arg(&name).status().unwrap().success(), "useradd {name}");
        let u = nix::unistd::User::from_name(&name).unwrap().unwrap();
        Account {
            name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// A group, removed on drop.
pub struct Group {
    pub name: String,
}

impl Group {
    pub fn create(tag: &str) -> Group {
        let name = unique(tag);
        let _ = Command::new("groupdel").arg(&name).output();
        assert!(
            Command::new("groupadd")
                .arg(&name)
                .status()
                .unwrap()
                .success()
        );
        Group { name }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// Runs `command` as `who` (root when `None`) through `setpriv`, with the private bus.
pub fn as_user(who: Option<&Account>, command: &Path, bus: &Bus) -> Command {
    let mut cmd = match who {
        Some(a) => {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={}", a.uid),
                format!("--regid={}", a.gid),
                "--init-groups".into(),
            ])
            .arg(command);
            c
        }
        None => Command::new(command),
    };
    // A clean environment, as another user's session would have (nothing of root's).
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .env("NO_COLOR", "1");
    cmd
}

/// Runs `cmd` to its end. The program may be a copy another test thread has just made
/// (`Dir::install`): a process forked by a third thread while that copy was open for writing
/// keeps it open until it execs, and meanwhile executing the copy fails with ETXTBSY. That is
/// waited out.
pub fn output(cmd: &mut Command) -> std::process::Output {
    for _ in 0..100 {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r.unwrap(),
        }
    }
    cmd.output().unwrap()
}

/// Calls one method as `who` through a helper process (this test binary re-executed under
/// setpriv, running `helper_main`). Returns `{"ok": value}` or `{"error": NAME, "message": M}`.
pub fn call(client: &Path, who: Option<&Account>, bus: &Bus, method: &str, args: Value) -> Value {
    let out = output(
        as_user(who, client, bus)
            .args([
                "--ignored",
                "--exact",
                "helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TWOFOLD_TEST_CALL", json!([method, args]).to_string())
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.split_once("TWOFOLD-RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| {
            panic!(
                "helper printed no result: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).unwrap()
}

/// Calls `method` `n` times at once as `who`, from one helper process on one connection (a
/// thread per call). Returns each call's `{"ok": value}` or `{"error": NAME, "message": M}`,
/// with `"ms"`, how long it took, in the order they were started.
pub fn call_many(
    client: &Path,
    who: Option<&Account>,
    bus: &Bus,
    n: usize,
    method: &str,
    args: Value,
) -> Vec<Value> {
    let r = call(client, who, bus, "Concurrent", json!([n, method, args]));
    r["ok"]
        .as_array()
        .unwrap_or_else(|| panic!("no answers: {r}"))
        .clone()
}

/// The helper: reads `TWOFOLD_TEST_CALL` = `[METHOD, ARGS]`, calls it through the crate's
/// `ManagerProxy` as whoever runs it, prints `TWOFOLD-RESULT {json}`. `["Concurrent", [N,
/// METHOD, ARGS]]` makes N such calls at once on one connection and prints their answers.
pub fn helper_main() {
    let Ok(spec) = std::env::var("TWOFOLD_TEST_CALL") else {
        return; // run by `cargo test -- --ignored` without a call: nothing to do
    };
    let spec: Value = serde_json::from_str(&spec).unwrap();
    let method = spec[0].as_str().unwrap().to_owned();
    let args = spec[1].clone();
    let connected: Result<_, twofold_enrolld::api::Error> = zbus::block_on(async {
        let conn = zbus::Connection::system().await?;
        let p = ManagerProxy::new(&conn).await?;
        Ok((conn, p))
    });
    let result = connected.and_then(|(_conn, p)| {
        if method != "Concurrent" {
            return zbus::block_on(call_one(&p, &method, &args));
        }
        let n = usize::try_from(args[0].as_u64().unwrap()).unwrap();
        let (method, args) = (args[1].as_str().unwrap().to_owned(), args[2].clone());
        // Each call in a thread of its own, with its own `block_on` (started from inside the
        // `block_on` that connected, the calls were never answered).
        let answers = std::thread::scope(|s| {
            let calls: Vec<_> = (0..n)
                .map(|_| {
                    s.spawn(|| {
                        let start = Instant::now();
                        let r = zbus::block_on(call_one(&p, &method, &args));
                        let mut v = answer(r);
                        v["ms"] = json!(start.elapsed().as_millis());
                        v
                    })
                })
                .collect();
            calls
                .into_iter()
                .map(|c| c.join().unwrap())
                .collect::<Vec<_>>()
        });
        Ok(Value::Array(answers))
    });
    println!("TWOFOLD-RESULT {}", answer(result));
}

fn answer(r: Result<Value, twofold_enrolld::api::Error>) -> Value {
    match r {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "error": e.short_name(), "message": e.to_string() }),
    }
}

/// One call of `method` with `args` (a JSON array) through `p`, its answer as JSON.
async fn call_one(
    p: &ManagerProxy<'_>,
    method: &str,
    args: &Value,
) -> Result<Value, twofold_enrolld::api::Error> {
    let arg = |i: usize| args[i].as_str().unwrap_or_default().to_owned();
    let v = match method {
        "Require" => Ok(p.require(&arg(0)).await?.to_json()),
        "Exempt" => Ok(p.exempt(&arg(0)).await?.to_json()),
        "Allow" => Ok(p.allow(&arg(0)).await?.to_json()),
        "ClearOverride" => Ok(p.clear_override(&arg(0)).await?.to_json()),
        "Reset" => Ok(p.reset(&arg(0)).await?.to_json()),
        "GetUser" => Ok(p.get_user(&arg(0)).await?.to_json()),
        "ListUsers" => Ok(Value::Array(
            p.list_users().await?.iter().map(|u| u.to_json()).collect(),
        )),
        "ListUsersPage" => {
            let (users, next) = p
                .list_users_page(
                    &arg(0),
                    args[1]
                        .as_u64()
                        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
                )
                .await?;
            Ok(json!({
                "users": users.iter().map(|u| u.to_json()).collect::<Vec<_>>(),
                "next": next,
            }))
        }
        "FindUsers" => {
            let statuses: Vec<&str> = args[1]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let (users, next) = p
                .find_users(
                    &arg(0),
                    &statuses,
                    &arg(2),
                    args[3]
                        .as_u64()
                        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
                )
                .await?;
            Ok(json!({
                "users": users.iter().map(|u| u.to_json()).collect::<Vec<_>>(),
                "next": next,
            }))
        }
        "Summary" => serde_json::to_value(p.summary().await?),
        "SetDefaultMode" => serde_json::to_value(p.set_default_mode(&arg(0)).await?),
        "PreviewDefaultMode" => Ok(p.preview_default_mode(&arg(0)).await?.to_json()),
        "BeginEnrollment" => serde_json::to_value(
            p.begin_enrollment(
                args[0].as_bool().unwrap_or(false),
                args.get(1).and_then(Value::as_str).unwrap_or_default(),
            )
            .await?,
        ),
        "ConfirmEnrollment" => serde_json::to_value(p.confirm_enrollment(&arg(0)).await?),
        "CancelEnrollment" => serde_json::to_value(p.cancel_enrollment().await?),
        "Disable" => Ok(p.disable(&arg(0)).await?.to_json()),
        "RegenerateRecoveryCodes" => {
            serde_json::to_value(p.regenerate_recovery_codes(&arg(0)).await?)
        }
        "GetStatus" => Ok(p.get_status().await?.to_json()),
        "ListAuthenticators" => Ok(Value::Array(
            p.list_authenticators()
                .await?
                .iter()
                .map(|a| a.to_json())
                .collect(),
        )),
        "AddAuthenticator" => serde_json::to_value(p.add_authenticator(&arg(0), &arg(1)).await?),
        "RenameAuthenticator" => Ok(p.rename_authenticator(&arg(0), &arg(1)).await?.to_json()),
        "RemoveAuthenticator" => Ok(p.remove_authenticator(&arg(0), &arg(1)).await?.to_json()),
        "Subscribe" => serde_json::to_value(p.subscribe().await?),
        // `Require` in a message whose header names another sender (arg 1), as a caller
        // trying to pass for another connection would send it.
        "RequireAsSender" => {
            use futures_util::StreamExt;
            let conn = p.inner().connection();
            let fake = arg(1);
            let msg = zbus::message::Message::method_call("/org/twofold/Enroll1", "Require")
                .destination("org.twofold.Enroll1")
                .interface("org.twofold.Enroll1.Manager")
                .sender(fake.as_str())
                .build(&(arg(0),))?;
            let serial = msg.primary_header().serial_num();
            let mut replies = zbus::MessageStream::from(conn);
            conn.send(&msg).await?;
            loop {
                let Some(Ok(m)) = replies.next().await else {
                    panic!("no reply");
                };
                if m.header().reply_serial() != Some(serial) {
                    continue;
                }
                if m.message_type() == zbus::message::Type::Error {
                    let name = m
                        .header()
                        .error_name()
                        .map(|n| n.to_string())
                        .unwrap_or_default();
                    return Ok(json!({"error_name": name}));
                }
                break Ok(json!("accepted"));
            }
        }
        "Unsubscribe" => serde_json::to_value(p.unsubscribe().await?),
        // An attack: GetStatus (the daemon then knows this connection's uid), then the
        // self method arg 0 with the code arg 1 sent without waiting for its answer, and this
        // process gone at once: polkit is asked about a connection that left the bus.
        "SendAndLeave" => {
            p.get_status().await?;
            let conn = p.inner().connection();
            let method = arg(0);
            let builder =
                zbus::message::Message::method_call("/org/twofold/Enroll1", method.as_str())
                    .destination("org.twofold.Enroll1")
                    .interface("org.twofold.Enroll1.Manager")
                    .with_flags(zbus::message::Flags::NO_REPLY_EXPECTED);
            let msg = match arg(0).as_str() {
                "CancelEnrollment" => builder.build(&())?,
                "BeginEnrollment" => builder.build(&(false, ""))?,
                _ => builder.build(&(arg(1),))?,
            };
            conn.send(&msg).await?;
            println!("TWOFOLD-RESULT {}", json!({"ok": "sent"}));
            std::process::exit(0);
        }
        other => panic!("unknown method {other}"),
    };
    Ok(v.unwrap())
}

/// A connection of this (root) test process to the private bus, and the interface's proxy:
/// calls as root without a helper process.
pub fn root_proxy(bus: &Bus) -> (zbus::Connection, ManagerProxy<'static>) {
    zbus::block_on(async {
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .build()
            .await
            .unwrap();
        let p = ManagerProxy::new(&conn).await.unwrap();
        (conn, p)
    })
}

/// A user's lock held by another process: util-linux `flock` on the lock file, running a shell
/// that says when it holds it and then waits for its stdin to close. Released when dropped.
pub struct HeldLock {
    child: Child,
}

impl HeldLock {
    /// Takes `path`'s `flock` (the file must exist, as the store made it: 0600 root) and
    /// returns once it is held.
    pub fn hold(path: &Path) -> HeldLock {
        use std::io::BufRead;
        assert!(path.exists(), "{} must exist", path.display());
        let mut child = Command::new("flock")
            // --close: only flock itself holds the lock, so killing it releases it.
            .arg("--close")
            .arg(path)
            .args(["sh", "-c", "echo held; read _"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("flock (util-linux) must be installed");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held", "flock did not take {}", path.display());
        HeldLock { child }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // the shell reads EOF and ends, and flock with it
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many descriptors process `pid` has open on `path`.
pub fn open_on(pid: u32, path: &Path) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|p| p == path))
                .count()
        })
        .unwrap_or(0)
}

/// Waits until process `pid` has `path` open (a call of the daemon waiting for that lock).
pub fn wait_until_open(pid: u32, path: &Path) {
    let start = Instant::now();
    while open_on(pid, path) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "process {pid} never opened {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The code `oathtool` computes for the base32 `key` at now + `offset_steps` × 30 s.
pub fn oathtool(key: &str, offset_steps: i64) -> String {
    let t = twofold_policy::time::now() as i64 + offset_steps * 30;
    let out = Command::new("oathtool")
        .args(["--totp", "--base32", &format!("--now=@{t}"), key])
        .output()
        .expect("oathtool must be installed (make test installs it)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Waits for a fresh 30 s step if fewer than `need` seconds are left in this one.
pub fn fresh_step_within(need: u64) {
    let into = twofold_policy::time::now() % 30;
    if into + need >= 30 {
        std::thread::sleep(Duration::from_secs(30 - into));
    }
}

/// A process of another user listening on the bus (this test binary re-executed under
/// setpriv, running the ignored test `listener`, which calls [`listener_main`]): it prints
/// `SUBSCRIBE ok|ERROR` when told to subscribe, `READY`, then `CHANGED user status` and
/// `USERCHANGED user status` for each signal its connection receives. Killed when dropped
/// (its connection leaves the bus).
pub struct Listener {
    child: Child,
    rx: std::sync::mpsc::Receiver<String>,
    /// What it printed before `READY` (the `SUBSCRIBE` line among it).
    pub start: Vec<String>,
    /// The `READY` line.
    ready: String,
}

impl Listener {
    /// `mode`: `listen` (match rules for both signals only), `subscribe` (then `Subscribe`),
    /// `subscribe-unsubscribe` (both, then listen), `eavesdrop` (an `eavesdrop=true` match
    /// rule for every signal of the interface, as a snooper would add).
    pub fn start(client: &Path, who: Option<&Account>, bus: &Bus, mode: &str) -> Listener {
        use std::io::BufRead;
        let mut child = as_user(who, client, bus)
            .args([
                "--ignored",
                "--exact",
                "listener",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TWOFOLD_LISTENER", mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut start = Vec::new();
        let ready = loop {
            let l = match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(l) => l,
                Err(e) => {
                    use std::io::Read;
                    let _ = child.kill();
                    let _ = child.wait();
                    let mut err = String::new();
                    if let Some(mut stderr) = child.stderr.take() {
                        let _ = stderr.read_to_string(&mut err);
                    }
                    panic!("the listener never got ready ({e}): {start:?}\nstderr:\n{err}");
                }
            };
            // libtest prints `test listener ... ` before the helper's first line.
            if l.contains("READY") {
                break l;
            }
            start.push(l);
        };
        Listener {
            child,
            rx,
            start,
            ready,
        }
    }

    /// The answer to `Subscribe` (`ok` or the error's name), if it subscribed.
    pub fn subscribed(&self) -> Option<String> {
        self.start
            .iter()
            .find_map(|l| l.split_once("SUBSCRIBE ").map(|(_, r)| r.to_owned()))
    }

    /// The unique bus name of the listener's connection (printed with `READY`).
    pub fn start_name(&self) -> String {
        self.ready.rsplit(' ').next().unwrap_or_default().to_owned()
    }

    /// Waits up to `within` for a line equal to `want`; every line seen until then.
    pub fn wait_for(&self, want: &str, within: Duration) -> (bool, Vec<String>) {
        let end = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    let hit = l == want;
                    seen.push(l);
                    if hit {
                        return (true, seen);
                    }
                }
                Err(_) => break,
            }
        }
        (false, seen)
    }

    /// Every line printed within `within`.
    pub fn lines(&self, within: Duration) -> Vec<String> {
        self.wait_for("\u{0}never", within).1
    }

    /// Ends the process (its connection leaves the bus).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The listener (see [`Listener`]): run by the ignored test `listener` of a test file.
pub fn listener_main() {
    let Ok(mode) = std::env::var("TWOFOLD_LISTENER") else {
        return; // run by `cargo test -- --ignored` without a mode: nothing to do
    };
    zbus::block_on(async {
        use futures_util::StreamExt;
        let conn = zbus::Connection::system().await.unwrap();
        let p = ManagerProxy::new(&conn).await.unwrap();
        let changed = p.receive_changed().await.unwrap().map(|s| {
            let a = s.args().unwrap();
            format!("CHANGED {} {}", a.user(), a.status())
        });
        let user_changed = p.receive_user_changed().await.unwrap().map(|s| {
            let a = s.args().unwrap();
            format!("USERCHANGED {} {}", a.user(), a.status())
        });
        if mode == "eavesdrop" {
            let r = conn
                .call_method(
                    Some("org.freedesktop.DBus"),
                    "/org/freedesktop/DBus",
                    Some("org.freedesktop.DBus"),
                    "AddMatch",
                    &("eavesdrop=true,type='signal',interface='org.twofold.Enroll1.Manager'",),
                )
                .await;
            println!("EAVESDROP {}", if r.is_ok() { "ok" } else { "refused" });
        }
        if mode.starts_with("subscribe") {
            let r = p.subscribe().await;
            println!(
                "SUBSCRIBE {}",
                match &r {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => e.short_name().to_owned(),
                }
            );
            if mode == "subscribe-unsubscribe" {
                p.unsubscribe().await.unwrap();
            }
        }
        println!(
            "READY {}",
            conn.unique_name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        );
        let mut all = futures_util::stream::select(changed, user_changed);
        while let Some(line) = all.next().await {
            println!("{line}");
        }
    });
}

/// Whether `name` has an owner on the bus at `bus` (false when the bus does not answer).
pub fn name_has_owner(bus: &str, name: &'static str) -> bool {
    let bus = bus.to_owned();
    zbus::block_on(async move {
        let Ok(conn) = zbus::connection::Builder::address(bus.as_str())
            .build()
            .await
        else {
            return false;
        };
        let Ok(dbus) = zbus::fdo::DBusProxy::new(&conn).await else {
            return false;
        };
        let Ok(name) = zbus::names::BusName::try_from(name) else {
            return false;
        };
        dbus.name_has_owner(name).await.unwrap_or(false)
    })
}
