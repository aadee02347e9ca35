//! `make demo` started in the background, logged into by a scripted SSH client that enrolls from
//! the QR code/URI in the prompt, used with an admin command, then stopped with Ctrl-C (SIGINT to
//! its process group): the machine is left as it was found. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use twofold_system_tests::{build_dir, root_or_skip, staged_bins, workspace};

/// What the demo may touch, read before and after.
fn snapshot() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"] {
        out.push((f.to_owned(), std::fs::read_to_string(f).unwrap_or_default()));
    }
    let list = |dir: &str, keep: &dyn Fn(&str) -> bool| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| keep(n))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.join("\n")
    };
    out.push(("/etc/pam.d".into(), list("/etc/pam.d", &|_| true)));
    out.push((
        "/tmp/twofold-demo.*".into(),
        list("/tmp", &|n| n.starts_with("twofold-demo.")),
    ));
    out.push((
        "/run/sshd".into(),
        Path::new("/run/sshd").exists().to_string(),
    ));
    out
}

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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let before = snapshot();
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        scratch.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let bins = staged_bins(scratch.path()).unwrap();
    let stderr_path = scratch.path().join("demo.stderr");
    let mut demo = Command::new("make")
        .args(["--no-print-directory", "-s", "-C"])
        .arg(workspace())
        .arg("demo")
        .arg(format!("DEMO_BIN_DIR={}", bins.display()))
        .env("DEMO_PORT", port.to_string())
        .env("DEMO_USER", &user)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let pgid = demo.id();
    let interrupt = || {
        let _ = Command::new("kill")
            .args(["-INT", "--", &format!("-{pgid}")])
            .status();
    };
    // The instructions, up to the line about logs.
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut text = String::new();
    let start = Instant::now();
    for line in lines.by_ref() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push('\n');
        if line.starts_with("Logs:") || start.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let stdout_rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let field = |after: &str| -> String {
        text.lines()
            .find_map(|l| l.split(after).nth(1))
            .map(|s| s.split_whitespace().next().unwrap_or("").to_owned())
            .unwrap_or_else(|| {
                interrupt();
                panic!(
                    "no {after:?} in the demo's output:\n{text}\nstderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
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
    interrupt();
    let status = demo.wait().unwrap();
    let rest = stdout_rest.join().unwrap().join("\n");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(
        rest.contains("Done: the machine is as the demo found it."),
        "{rest} ({status})"
    );
    let after = snapshot();
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
