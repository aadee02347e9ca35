//! `make fleet-demo` started in the background: a scripted SSH client enrolls on host A from the
//! QR code/URI in the prompt, logs in on host B with the next code from the same secret (no
//! enrollment there), and finds the code host A took refused there; an override set through
//! host B's daemon shows through host A's; the printed `ldapsearch` shows the entries. Then
//! Ctrl-C (SIGINT to its process group): no slapd, sshd or daemon left, nothing left in /tmp or
//! /etc. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use twofold_system_tests::{Demo, build_dir, free_port, root_or_skip, user_db_snapshot, workspace};

fn ssh_client(port: u16, user: &str, cfg: Value) -> Value {
    let script = workspace().join("pam_module/tests/ssh_client.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .args([port.to_string().as_str(), user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cfg.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The code of `secret` `offset` steps from now (oathtool).
fn code(secret: &str, offset: i64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N"])
        .arg(format!("now {:+} seconds", offset * 30))
        .arg(secret)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `twofold list --json` through the daemon on `bus`: the row of `user`.
fn listed(bus: &str, user: &str) -> Value {
    let out = Command::new(build_dir().unwrap().join("twofold"))
        .args(["list", "--json"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    v["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == user)
        .cloned()
        .unwrap_or_else(|| panic!("{user} not listed: {v}"))
}

#[test]
fn make_fleet_demo_enrolls_on_one_host_logs_in_on_the_other_and_cleans_up() {
    if !root_or_skip() {
        return;
    }
    let user = format!("tffleet{}", std::process::id());
    let (port_a, port_b, ldap_port) = (free_port(), free_port(), free_port());
    let before = user_db_snapshot();
    let mut demo = Demo::start(
        "fleet-demo",
        &[
            ("FLEET_PORT_A", port_a.to_string()),
            ("FLEET_PORT_B", port_b.to_string()),
            ("FLEET_LDAP_PORT", ldap_port.to_string()),
            ("DEMO_USER", user.clone()),
        ],
    );
    let text = demo.text.clone();
    let field = |after: &str| -> String {
        text.lines()
            .find_map(|l| l.split(after).nth(1))
            .map(|s| s.split_whitespace().next().unwrap_or("").to_owned())
            .unwrap_or_else(|| {
                demo.interrupt();
                panic!(
                    "no {after:?} in the demo's output:\n{text}\nstderr:\n{}",
                    demo.stderr()
                )
            })
    };
    let password = field("password: ");
    let sandbox = field("Everything lives in ")
        .trim_end_matches(';')
        .to_owned();
    let bus_a = field("export DBUS_SYSTEM_BUS_ADDRESS=");
    let bus_b = format!("unix:path={sandbox}/host-b/bus");
    let ldapsearch: Vec<String> = text
        .lines()
        .find(|l| l.trim_start().starts_with("ldapsearch "))
        .unwrap_or_else(|| panic!("no ldapsearch command:\n{text}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert!(sandbox.starts_with("/tmp/twofold-fleet-demo."), "{text}");
    for port in [port_a, port_b] {
        assert!(
            text.contains(&format!("ssh -p {port} "))
                && text.contains(&format!("{user}@127.0.0.1")),
            "{text}"
        );
    }
    assert!(text.contains(&format!("{bus_b} ")), "{text}");

    let result = std::panic::catch_unwind(|| {
        // Host A: password, then enrollment from the QR code/URI in the prompt; early in a
        // step, so that host B is asked within the same one.
        let into = twofold_policy::time::now() % 30;
        if into + 15 >= 30 {
            std::thread::sleep(std::time::Duration::from_secs(30 - into));
        }
        let a = ssh_client(
            port_a,
            &user,
            json!({"password": password, "command": "id -un"}),
        );
        assert_eq!(a["ok"], true, "{a}");
        assert_eq!(a["stdout"].as_str().unwrap().trim(), user);
        let secret = a["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("no enrollment on host A: {a}"))
            .to_owned();
        // Host B: no enrollment, a code from the same secret. The step host A took is refused
        // there; the next one logs in, once, fleet-wide.
        let b = ssh_client(
            port_b,
            &user,
            json!({"password": password, "code": code(&secret, 0)}),
        );
        assert_eq!(b["ok"], false, "the code host A took logged in on B: {b}");
        let next = code(&secret, 1);
        let b = ssh_client(
            port_b,
            &user,
            json!({"password": password, "code": next, "command": "id -un"}),
        );
        assert_eq!(b["ok"], true, "{b}");
        assert!(b["secret"].is_null(), "host B enrolled again: {b}");
        let prompts: Vec<&str> = b["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["prompt"].as_str())
            .collect();
        assert!(prompts.contains(&"Verification code: "), "{b}");
        let again = ssh_client(port_a, &user, json!({"password": password, "code": next}));
        assert_eq!(
            again["ok"], false,
            "host B's code logged in on A too: {again}"
        );
        // Both daemons see the enrollment; an override set through B shows through A.
        assert_eq!(listed(&bus_a, &user)["status"], "enforced");
        assert_eq!(listed(&bus_b, &user)["status"], "enforced");
        let out = Command::new(build_dir().unwrap().join("twofold"))
            .args(["exempt", &user])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus_b)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let row = listed(&bus_a, &user);
        assert_eq!(row["status"], "exempt", "{row}");
        // The printed ldapsearch shows the account and its token.
        let out = Command::new(&ldapsearch[0])
            .args(&ldapsearch[1..])
            .output()
            .unwrap();
        let ldif = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{ldif}");
        assert!(
            ldif.contains(&format!(
                "dn: uid={user},ou=accounts,ou=twofold,dc=example,dc=org"
            )),
            "{ldif}"
        );
        assert!(ldif.contains("oathTOTPLastTimeStep: "), "{ldif}");
        assert!(ldif.contains("twofoldOverrideMode: disabled"), "{ldif}");
    });
    // Ctrl-C: everything goes.
    let (status, rest) = demo.stop();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(
        rest.contains("Done: the machine is as the demo found it."),
        "{rest} ({status})"
    );
    let after = user_db_snapshot();
    for ((what, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(a, b, "{what} differs after the demo");
    }
    for port in [port_a, port_b, ldap_port] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "127.0.0.1:{port} still listens"
        );
    }
    let procs = Command::new("pgrep")
        .args(["-af", "/tmp/twofold-fleet-demo[.]"])
        .output()
        .unwrap();
    assert!(
        procs.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&procs.stdout)
    );
    assert!(!Path::new(&sandbox).exists(), "{sandbox} left behind");
    for service in ["twofold-fleet-a", "twofold-fleet-b"] {
        assert!(
            !Path::new("/etc/pam.d").join(service).exists(),
            "/etc/pam.d/{service} left behind"
        );
    }
}
