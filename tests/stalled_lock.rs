//! One stalled login must not freeze the others (issue 24, from an attacker's review): a user
//! who holds their own lock (here a `flock` holder; in the attack, a setuid `su` the user sent
//! SIGSTOP while it held the lock) gets their own attempts refused as busy, with nothing
//! checked and nothing counted, while every other account's logins are answered; `twofold-verifyd`
//! gives back every slot; `on_error=allow` never turns what a user can cause into a login with
//! the password alone; and log fields a caller chooses cannot pass for other fields. The module
//! and the service from `make install`'s layout, pamtester through the real libpam. Needs root,
//! as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod verifyd_rig;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use twofold_policy::UserName;
use twofold_policy::logfmt;
use twofold_system_tests::{root_or_skip, run};
use verifyd_rig::*;

/// Another process holding `path`'s `flock` (util-linux `flock … sleep`), until dropped.
struct Holder(Child);

impl Holder {
    fn hold(path: &Path) -> Holder {
        // In a process group of its own: `sleep` inherits the locked descriptor, and both go.
        let child = Command::new("flock")
            .arg(path)
            .args(["sleep", "600"])
            .process_group(0)
            .spawn()
            .expect("flock (util-linux)");
        let t = Instant::now();
        // Held once a non-blocking try fails (flock -n exits with -E's code).
        while run_status(
            Command::new("flock")
                .args(["-n", "-E", "99"])
                .arg(path)
                .arg("true"),
        ) != Some(99)
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the lock was not taken"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ =
            run_status(Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0.id())]));
        let _ = self.0.wait();
    }
}

fn run_status(cmd: &mut Command) -> Option<i32> {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .code()
}

fn lock_path(rig: &Rig, user: &str) -> PathBuf {
    rig.dir().join(format!("state/{user}.lock"))
}

/// The threads of the service: one while it waits for connections.
fn threads(verifyd: &Verifyd) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", verifyd.child.id()))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits (at most `limit`) until the service is back to its one thread: every slot given back.
fn settles(verifyd: &Verifyd, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if threads(verifyd) == 1 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Keeps asking about `user` (enrolled, lock held) until `stop`: checks from `user`'s own
/// locker, and, as root (a setuid helper's requests), checks straight to the socket, many at
/// once. Returns what every answer was.
fn flood(
    rig: &Rig,
    svc: &Service,
    user: &User,
    stop: &AtomicBool,
) -> (Vec<(bool, String)>, Vec<String>) {
    let as_user = ["runuser", "-u", user.0.as_str(), "--"];
    let check = format!(
        "twofold-verify 1\nop=check\nuser={}\nservice=x\nrhost=\ncode=000000\n\n",
        user.0
    );
    // 12 connections at once as root, each printing its answer (or `dropped`).
    let script = "import socket,sys,threading\nout=[]\ndef one():\n    s=socket.socket(socket.AF_UNIX)\n    try:\n        s.connect(sys.argv[1])\n        s.sendall(sys.argv[2].encode())\n        out.append(s.recv(4096).decode() or 'dropped')\n    except OSError:\n        out.append('dropped')\nts=[threading.Thread(target=one) for _ in range(12)]\n[t.start() for t in ts]\n[t.join() for t in ts]\nprint('\\n=====\\n'.join(out))";
    let mut logins = Vec::new();
    let mut answers = Vec::new();
    std::thread::scope(|s| {
        let lockers = s.spawn(|| {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<_> = (0..3)
                    .map(|_| s.spawn(|| pamtester(&as_user, svc, &user.0, "000000\n")))
                    .collect();
                seen.extend(batch.into_iter().map(|h| h.join().unwrap()));
            }
            seen
        });
        while !stop.load(Ordering::SeqCst) {
            let out = run(Command::new("/usr/bin/python3")
                .args(["-c", script])
                .arg(&rig.socket)
                .arg(&check));
            answers.extend(
                String::from_utf8_lossy(&out.stdout)
                    .split("\n=====\n")
                    .map(str::to_owned),
            );
        }
        logins = lockers.join().unwrap();
    });
    (logins, answers)
}

#[test]
fn a_held_lock_stalls_only_its_own_account_and_every_slot_comes_back() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY);
    let svc = rig.service("stall");
    let verifyd = rig.start();
    let alice = User::create("sa");
    let bob = User::create("sb");
    let (alice_secret, _) = rig.enroll(&alice.0);
    let (bob_secret, _) = rig.enroll(&bob.0);
    let holder = Holder::hold(&lock_path(&rig, &alice.0));
    let stop = AtomicBool::new(false);
    let as_bob = ["runuser", "-u", bob.0.as_str(), "--"];
    let ((logins, answers), bob_logins) = std::thread::scope(|s| {
        let flooding = s.spawn(|| flood(&rig, &svc, &alice, &stop));
        // Let the flood fill alice's slots first.
        std::thread::sleep(Duration::from_millis(500));
        // Bob's locker, twice (this step's code, then the next one's) while alice's requests
        // keep coming: each answered.
        let mut bob_logins = Vec::new();
        for i in 0..2 {
            fresh_step();
            let code = twofold_code(&bob_secret, i);
            bob_logins.push(pamtester(&as_bob, &svc, &bob.0, &format!("{code}\n")));
        }
        stop.store(true, Ordering::SeqCst);
        (flooding.join().unwrap(), bob_logins)
    });
    for (ok, out) in &bob_logins {
        assert!(
            ok,
            "bob's login beside alice's stalled one:\n{out}\n{}",
            rig.log()
        );
    }
    // Alice's: every one refused, none accepted; the root peers' beyond her slots answered
    // busy at once, none dropped.
    assert!(!logins.is_empty() && !answers.is_empty());
    for (ok, out) in &logins {
        assert!(!ok, "alice passed with her lock held:\n{out}");
    }
    assert!(
        answers.iter().all(|a| a.contains("answer=busy")),
        "{answers:#?}"
    );
    assert!(
        rig.log()
            .contains("4 requests about this account are being served already"),
        "{}",
        rig.log()
    );
    // A right code while the lock is held: refused as busy, not spent.
    fresh_step();
    let as_alice = ["runuser", "-u", alice.0.as_str(), "--"];
    let code = twofold_code(&alice_secret, 0);
    let (ok, out) = pamtester(&as_alice, &svc, &alice.0, &format!("{code}\n"));
    assert!(
        !ok && out.contains("Another login of this account"),
        "{out}"
    );
    // Nothing was checked or counted for alice.
    let c = rig
        .store()
        .read_counters(&UserName::parse(&alice.0).unwrap())
        .unwrap();
    assert!(
        c.failures.is_empty() && c.user_failures == 0 && c.last_steps.is_empty(),
        "{c:?}"
    );
    // Every slot came back: the service is down to its one thread while the lock is still
    // held (each request waited no longer than its bound).
    assert!(
        settles(&verifyd, Duration::from_secs(10)),
        "{} threads",
        threads(&verifyd)
    );
    // Released, the same code logs alice in: it was never spent.
    drop(holder);
    let (ok, out) = pamtester(&as_alice, &svc, &alice.0, &format!("{code}\n"));
    assert!(ok, "{out}\n{}", rig.log());
}

fn twofold_code(secret: &twofold_policy::totp::Secret, offset: i64) -> String {
    oathtool(secret, offset)
}

#[test]
fn a_client_that_hangs_up_frees_its_slot_at_once() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY);
    let verifyd = rig.start();
    let alice = User::create("sh");
    rig.enroll(&alice.0);
    let _holder = Holder::hold(&lock_path(&rig, &alice.0));
    // Four checks (alice's whole share of connections), each client gone 100 ms later.
    let script = "import socket,sys,time\nss=[]\nfor i in range(4):\n    s=socket.socket(socket.AF_UNIX)\n    s.connect(sys.argv[1])\n    s.sendall(sys.argv[2].encode())\n    ss.append(s)\ntime.sleep(0.1)\nfor s in ss: s.close()";
    let check = format!(
        "twofold-verify 1\nop=check\nuser={}\nservice=x\nrhost=\ncode=000000\n\n",
        alice.0
    );
    let out = python_as(&alice, script, &rig.socket)
        .arg(&check)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(settles(&verifyd, Duration::from_secs(10)));
    // Each wait ended when its client left, well before the lock's bound (2 s).
    let log = rig.log();
    let waits: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split("held by another process for ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(waits.len(), 4, "{log}");
    let bound = twofold_policy::store::LOCK_WAIT.as_millis() as u64;
    assert!(waits.iter().all(|w| *w < bound), "{waits:?}\n{log}");
}

#[test]
fn on_error_allow_gives_no_password_only_login_to_what_a_user_can_cause() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY);
    let allow = rig.service_with("allow", "on_error=allow");
    let alice = User::create("oa");
    let mallory = User::create("om");
    let (secret, _) = rig.enroll(&alice.0);
    rig.enroll(&mallory.0);
    // The service not running: what on_error=allow is for. The module steps aside.
    let as_alice = ["runuser", "-u", alice.0.as_str(), "--"];
    let (ok, out) = pamtester(&as_alice, &allow, &alice.0, "");
    assert!(ok, "on_error=allow with the service down:\n{out}");
    let _verifyd = rig.start();
    // Alice's lock held (by her own stopped login, in the attack): through the service, and as
    // root on the store itself. Wrong code, no code, right code: never a pass.
    let holder = Holder::hold(&lock_path(&rig, &alice.0));
    fresh_step();
    let code = oathtool(&secret, 0);
    let prefixes: [&[&str]; 2] = [&as_alice, &[]];
    for answer in ["000000\n", "\n", &format!("{code}\n")] {
        for prefix in prefixes {
            let (ok, out) = pamtester(prefix, &allow, &alice.0, answer);
            assert!(
                !ok,
                "passed with on_error=allow and the lock held ({prefix:?}):\n{out}"
            );
        }
    }
    drop(holder);
    // Mallory fills her own share of the service's connections, then her locker asks: dropped
    // by the service, which runs; a refusal, not a pass.
    let mut hold = hold_connections(&mallory, &rig.socket, 30);
    let as_mallory = ["runuser", "-u", mallory.0.as_str(), "--"];
    let (ok, out) = pamtester(&as_mallory, &allow, &mallory.0, "");
    let _ = hold.kill();
    let _ = hold.wait();
    assert!(
        !ok,
        "a dropped connection became a pass under on_error=allow:\n{out}"
    );
}

/// The verification service's line about a request (`… twofold-verifyd…: peer uid=…`), read
/// back with the documented format.
fn service_fields(log: &str, marker: &str) -> Vec<(String, String)> {
    let line = log
        .lines()
        .find(|l| l.contains(marker) && l.contains("peer uid="))
        .unwrap_or_else(|| panic!("no line with {marker:?} in\n{log}"));
    let at = line.find("peer uid=").unwrap();
    logfmt::fields(line.get(at + "peer ".len()..).unwrap())
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {fields:?}"))
}

#[test]
fn log_fields_a_caller_sends_cannot_pass_for_other_fields() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY);
    let _verifyd = rig.start();
    let alice = User::create("lf");
    rig.enroll(&alice.0);
    let forged_service = "sshd answer=Accepted: rule=user status=enforced: code accepted";
    let forged_user = "nobody answer=Accepted: x";
    let ask = |user: &str, service: &str| {
        let body =
            format!("twofold-verify 1\nop=query\nuser={user}\nservice={service}\nrhost=\n\n");
        let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.sendall(sys.argv[2].encode())\nprint(s.recv(4096).decode())";
        run(python_as(&alice, script, &rig.socket).arg(body));
    };
    ask(&alice.0, forged_service);
    ask(forged_user, "tag-two");
    let log = rig.log();
    let f = service_fields(&log, "op=query");
    assert_eq!(field(&f, "service"), forged_service, "{log}");
    assert_eq!(field(&f, "user"), alice.0, "{log}");
    assert_eq!(field(&f, "answer"), "Ask", "{log}");
    let f = service_fields(&log, "tag-two");
    assert_eq!(field(&f, "user"), forged_user, "{log}");
    assert_eq!(field(&f, "answer"), "UnknownUser", "{log}");

    // The module's own line, with a remote host (PAM_RHOST, which sshd may fill with a name a
    // resolver chose) that imitates the fields after it.
    let svc = rig.service("logf");
    let syslog = Syslog::new(&rig.dir().join("syslog"));
    let rhost = "203.0.113.9 rule=user status=exempt outcome=success: code accepted";
    let status = Command::new(&syslog.prefix()[0])
        .args(&syslog.prefix()[1..])
        .args([
            "sh",
            "-c",
            "echo 000000 | pamtester -I \"rhost=$0\" \"$1\" \"$2\" authenticate",
        ])
        .args([rhost, svc.name.as_str(), alice.0.as_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
    let lines = syslog.lines();
    let line = lines
        .iter()
        .find(|l| l.contains("pam_twofold("))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let at = line.find("): ").unwrap();
    let f = logfmt::fields(line.get(at + 3..).unwrap());
    assert_eq!(field(&f, "source"), rhost, "{line}");
    assert_eq!(field(&f, "status"), "enabled", "{line}");
    assert_eq!(field(&f, "outcome"), "refused", "{line}");
}

/// Found by an attacker's review of the fix: `su Y`, run by another user X who knows Y's
/// password, runs the module as root with X's real uid, so X may stop it (SIGSTOP) once it holds
/// Y's lock, and then every login of Y is refused as busy for as long as X likes. A setuid
/// program started by another user now asks the service for the whole decision: the process X
/// can stop never takes a lock.
#[test]
fn a_setuid_program_started_by_another_user_asks_the_service() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY);
    let svc = rig.service("suid");
    let alice = User::create("ua");
    let mallory = User::create("um");
    let (secret, _) = rig.enroll(&alice.0);
    // A setuid-root copy of pamtester stands for `su`; pam_permit after the module stands for
    // the password mallory knows.
    let setuid = rig.dir().join("su-pamtester");
    let which = run(Command::new("sh").args(["-c", "command -v pamtester"]));
    twofold_system_tests::install_copy(
        std::path::Path::new(String::from_utf8(which.stdout).unwrap().trim()),
        &setuid,
        "4755",
    )
    .unwrap();
    let su = |answer: &str| {
        let mut child = Command::new("runuser")
            .args(["-u", &mallory.0, "--"])
            .arg(&setuid)
            .args([svc.name.as_str(), alice.0.as_str(), "authenticate"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = std::io::Write::write_all(&mut child.stdin.take().unwrap(), answer.as_bytes());
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Without the service: nothing is checked in the process mallory controls (fail closed, and
    // on_error=allow does not apply in a setuid program started by a user).
    let (ok, out) = su("000000\n");
    assert!(!ok, "{out}");
    let u = UserName::parse(&alice.0).unwrap();
    assert_eq!(rig.store().read_counters(&u).unwrap().user_failures, 0);
    // With it: the check is the service's (its log names the root peer and the check).
    let _verifyd = rig.start();
    let (ok, out) = su("000000\n");
    assert!(!ok, "{out}");
    let log = rig.log();
    assert!(
        log.lines().any(|l| l.contains("peer uid=0 ")
            && l.contains("op=check")
            && l.contains(&format!("user={}", alice.0))
            && l.contains("wrong code")),
        "{log}"
    );
    assert_eq!(rig.store().read_counters(&u).unwrap().user_failures, 1);
    // And a right code passes there as anywhere.
    fresh_step();
    let (ok, out) = su(&format!("{}\n", oathtool(&secret, 0)));
    assert!(ok, "{out}\n{}", rig.log());
}
