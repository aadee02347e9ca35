//! `make demo` started in the background, logged into by a scripted SSH client that enrolls from
//! the QR code/URI in the prompt, used with an admin command, then stopped with Ctrl-C (SIGINT to
//! its process group): the machine is left as it was found. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::io::Write;
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

#[test]
fn make_demo_runs_enrolls_over_ssh_and_cleans_up() {
    if !root_or_skip() {
        return;
    }
    let user = format!("tfdemo{}", std::process::id());
    let port = free_port();
    let before = user_db_snapshot();
    let mut demo = Demo::start(
        "demo",
        &[("DEMO_PORT", port.to_string()), ("DEMO_USER", user.clone())],
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
    let bus = field("export DBUS_SYSTEM_BUS_ADDRESS=");
    assert!(
        text.contains(&format!("ssh -p {port} ")) && text.contains(&format!("{user}@127.0.0.1")),
        "{text}"
    );

    // A scripted SSH login: password, then enrollment from the QR code/URI in the prompt.
    let r = ssh_client(
        port,
        &user,
        json!({"password": password, "command": "id -un"}),
    );
    let result = std::panic::catch_unwind(|| {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["stdout"].as_str().unwrap().trim(), user);
        assert!(r["secret"].is_string(), "no enrollment in the login: {r}");
        // The admin command against the sandbox sees the enrollment.
        let out = Command::new(build_dir().unwrap().join("twofold"))
            .args(["list", "--json"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        let row = v["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user"] == user.as_str())
            .cloned()
            .unwrap();
        assert_eq!(row["status"], "enforced", "{row}");
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
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "sshd still listens"
    );
    let procs = Command::new("pgrep")
        .args(["-af", "/tmp/twofold-demo[.]"])
        .output()
        .unwrap();
    assert!(
        procs.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&procs.stdout)
    );
}
