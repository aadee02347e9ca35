//! `make console-demo` started in the background: its Cockpit answers on the printed port,
//! the printed admin logs in over HTTP (a wrong password does not) and the console's page is
//! served to that session; then Ctrl-C (SIGINT to its process group) leaves the machine as it
//! was found: accounts, group, sandbox directory, processes, the port. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use twofold_system_tests::{Demo, free_port, root_or_skip, user_db_snapshot};

/// The lines of /etc/passwd, /etc/group, ... that name one of `names` (other tests on the host
/// may add and remove their own accounts meanwhile: only the demo's are compared).
fn mentioning(snap: &[(String, String)], names: &[&str]) -> Vec<(String, Vec<String>)> {
    snap.iter()
        .map(|(what, text)| {
            (
                what.clone(),
                text.lines()
                    .filter(|l| names.iter().any(|n| l.contains(n)))
                    .map(str::to_owned)
                    .collect(),
            )
        })
        .collect()
}

/// The password of [`OtherAccount`].
const OTHER_PASSWORD: &str = "Another-host-account-1";

/// A host account that is not the demo's, with a known password; removed on drop.
struct OtherAccount(String);

impl OtherAccount {
    fn create() -> OtherAccount {
        let name = format!("tfo{}", std::process::id());
        let _ = Command::new("userdel").arg(&name).output();
        let made = Command::new("useradd")
            .args(["-M", "-d", "/", "-s", "/bin/sh", &name])
            .status()
            .unwrap();
        assert!(made.success());
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        chpasswd
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{name}:{OTHER_PASSWORD}\n").as_bytes())
            .unwrap();
        assert!(chpasswd.wait().unwrap().success());
        OtherAccount(name)
    }
}

impl Drop for OtherAccount {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.0])
            .status();
        let _ = Command::new("userdel").arg(&self.0).output();
    }
}

/// A plain HTTP/1.1 GET: the status code, the headers and the body.
fn get(port: u16, path: &str, headers: &[String]) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_owned(), body.to_owned())
}

fn basic(user: &str, password: &str) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    format!("Authorization: Basic {out}")
}

#[test]
fn make_console_demo_serves_the_console_and_cleans_up() {
    if !root_or_skip() {
        return;
    }
    let tag = std::process::id() % 100_000;
    let admin = format!("tfcd{tag}a");
    let user = format!("tfcd{tag}u");
    let group = format!("{admin}s");
    let port = free_port();
    let before = user_db_snapshot();
    let mut demo = Demo::start(
        "console-demo",
        &[
            ("CONSOLE_PORT", port.to_string()),
            ("CONSOLE_ADMIN", admin.clone()),
            ("CONSOLE_USER", user.clone()),
        ],
    );
    let text = demo.text.clone();
    // The accounts' uids while they exist (to look for their processes once they are gone).
    let uids: Vec<String> = [&admin, &user]
        .iter()
        .map(|u| {
            let out = Command::new("id").args(["-u", u]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
        .collect();
    let text_copy = text.clone();
    // Its sandbox, from "Everything lives in DIR;" (another demo may run on the host: only
    // this one's directory and processes are checked).
    let sandbox = text
        .split("Everything lives in ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let other = OtherAccount::create();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let field = |line_start: &str| -> String {
            text.lines()
                .find(|l| l.trim_start().starts_with(line_start))
                .and_then(|l| l.split("password: ").nth(1))
                .and_then(|s| s.split_whitespace().next())
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    panic!(
                        "no {line_start} password in the demo's output:\n{text}\nstderr:\n{}",
                        demo.stderr()
                    )
                })
        };
        let admin_password = field("Admin:");
        let user_password = field("User:");
        assert!(
            text.contains(&format!("http://127.0.0.1:{port}/twofold")),
            "{text}"
        );
        // A wrong password is refused; so is a host account that is not the demo's, with its
        // right password (the demo's policy and state do not cover it: for it this Cockpit
        // would be a password-only login); the printed ones log in.
        let (code, _, _) = get(port, "/cockpit/login", &[basic(&admin, "wrong")]);
        assert_eq!(code, 401);
        let (code, _, _) = get(port, "/cockpit/login", &[basic(&other.0, OTHER_PASSWORD)]);
        assert_eq!(code, 401, "a host account logged in to the demo's Cockpit");
        let (code, _, _) = get(port, "/cockpit/login", &[basic(&user, &user_password)]);
        assert_eq!(code, 200);
        let (code, head, _) = get(port, "/cockpit/login", &[basic(&admin, &admin_password)]);
        assert_eq!(code, 200, "{head}");
        let cookie = head
            .lines()
            .find_map(|l| l.strip_prefix("Set-Cookie: "))
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_owned();
        // The session's bridge serves the console's page from the sandbox's Cockpit packages.
        let (code, _, body) = get(
            port,
            "/cockpit/@localhost/twofold/index.html",
            &[format!("Cookie: {cookie}")],
        );
        assert_eq!(code, 200, "{body}");
        assert!(
            body.contains("<title>Two-factor authentication</title>")
                && body.contains("../base1/cockpit.js"),
            "{body}"
        );
        let (code, _, body) = get(
            port,
            "/cockpit/@localhost/twofold/manifest.json",
            &[format!("Cookie: {cookie}")],
        );
        assert_eq!(code, 200);
        assert!(body.contains("Two-factor authentication"), "{body}");
    }));
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
    let names = [admin.as_str(), user.as_str(), group.as_str()];
    assert_eq!(mentioning(&after, &names), mentioning(&before, &names));
    assert!(
        sandbox.starts_with("/tmp/twofold-console-demo."),
        "no sandbox in the demo's output:\n{text_copy}"
    );
    assert!(
        !std::path::Path::new(&sandbox).exists(),
        "{sandbox} is left"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "cockpit-ws still listens"
    );
    for u in &uids {
        assert!(
            u.parse::<u32>().is_ok(),
            "no uid for a demo account: {uids:?}\n{text_copy}"
        );
        let procs = Command::new("pgrep").args(["-u", u]).output().unwrap();
        assert!(
            procs.stdout.is_empty(),
            "{u}'s processes left: {}",
            String::from_utf8_lossy(&procs.stdout)
        );
    }
    let procs = Command::new("pgrep")
        .args(["-af", &format!("{sandbox}/")])
        .output()
        .unwrap();
    assert!(
        procs.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&procs.stdout)
    );
}
