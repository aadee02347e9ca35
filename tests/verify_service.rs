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

mod verifyd_rig;

use std::process::Command;

use twofold_policy::UserName;
use twofold_system_tests::{root_or_skip, run};
use verifyd_rig::*;

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
    let syslog = Syslog::new(&rig.dir().join("syslog"));
    for (who, answer) in [(&bob, ""), (&alice, "000000\n")] {
        let mut prefix = syslog.prefix();
        prefix.extend(["runuser", "-u", who.0.as_str(), "--"].map(String::from));
        let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
        let (ok, out) = pamtester(&prefix, &svc, &who.0, answer);
        assert!(!ok, "{}: passed without the service: {out}", who.0);
        let lines = syslog.lines();
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
    let mut holder = hold_connections(&mallory, &rig.socket, 20);
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

#[test]
fn a_caller_that_is_not_root_cannot_claim_a_network_that_needs_no_code() {
    if !root_or_skip() {
        return;
    }
    // Everyone needs a code, except from 10.0.0.0/8 and 2001:db8::/32.
    let rig = Rig::new(
        "mode = \"required\"\n[enrollment]\nat_login = false\n\
         [networks.\"10.0.0.0/8\"]\nmode = \"disabled\"\n\
         [networks.\"2001:db8::/32\"]\nmode = \"disabled\"\n",
    );
    let svc = rig.service("net");
    let _verifyd = rig.start();
    let alice = User::create("n");
    rig.enroll(&alice.0);
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.sendall(sys.argv[2].encode())\nprint(s.recv(4096).decode())";
    let q = |rhost: &str| {
        format!(
            "twofold-verify 1\nop=query\nuser={}\nservice=x\nrhost={rhost}\n\n",
            alice.0
        )
    };
    // Alice's own process claims to be on 10.0.0.1 (and on 2001:db8::1, and mapped): her
    // claim counts for nothing, the code is asked.
    for rhost in ["10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1"] {
        let out = run(python_as(&alice, script, &rig.socket).arg(q(rhost)));
        let answer = String::from_utf8(out.stdout).unwrap();
        assert!(
            answer.contains("answer=ask") && answer.contains("rule=default"),
            "{rhost}: {answer}"
        );
    }
    // Root's word about the same host is believed: the network decides.
    let out = run(Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(&rig.socket)
        .arg(q("10.0.0.1")));
    let answer = String::from_utf8(out.stdout).unwrap();
    assert!(
        answer.contains("answer=ignore") && answer.contains("rule=network"),
        "{answer}"
    );
    // Through the real libpam: alice's own PAM application sets PAM_RHOST to 10.0.0.1; the
    // module, not root, hands it to the service, which does not believe it.
    let (ok, out) = twofold_system_tests::run_with_input(
        &[
            "runuser",
            "-u",
            alice.0.as_str(),
            "--",
            "timeout",
            "120",
            "pamtester",
            "-I",
            "rhost=10.0.0.1",
            svc.name.as_str(),
            alice.0.as_str(),
            "authenticate",
        ],
        "",
    );
    assert!(!ok && out.contains("Verification code"), "{out}");
}
