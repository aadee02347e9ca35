//! README's sudo snippet, as written: the system's own `/etc/pam.d/sudo` with
//! `auth required pam_twofold.so` right after `@include common-auth`, used by the real `sudo`
//! for a test user (through sudoers' `pam_service`, so the system's sudo file is never
//! touched). Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{
    PamService, Sandbox, TestUser, module_path, oathtool, root_or_skip, wait_for_fresh_step,
};

/// A sudoers drop-in, removed on drop.
struct Sudoers(PathBuf);

impl Drop for Sudoers {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `sudo -S -k id -u` as `user`, typing `input`; (succeeded, stdout + stderr).
fn sudo(user: &str, input: &str) -> (bool, String) {
    let mut child = Command::new("runuser")
        .args(["-u", user, "--", "sudo", "-S", "-k", "/usr/bin/id", "-u"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sudo and runuser (make test installs sudo)");
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
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

#[test]
fn sudo_with_the_readme_snippet_asks_password_and_code() {
    if !root_or_skip() {
        return;
    }
    let alice = TestUser::create("sudo");
    let bob = TestUser::create("sudo2");
    let sandbox = Sandbox::new(&format!(
        "mode = \"optional\"\n[users.{}]\nmode = \"required\"\n",
        alice.name
    ));
    let (secret, _) = sandbox.enroll(&alice.name, 1);
    // The system's sudo stack with the README line after `@include common-auth`.
    let system = std::fs::read_to_string("/etc/pam.d/sudo").unwrap();
    assert!(system.contains("@include common-auth"), "{system}");
    let line = format!(
        "auth    required {} {}",
        module_path().display(),
        sandbox.module_args()
    );
    let ours = system.replacen(
        "@include common-auth",
        &format!("@include common-auth\n{line}"),
        1,
    );
    let service = PamService::install("sudo", &ours);
    let sudoers = Sudoers(PathBuf::from(format!(
        "/etc/sudoers.d/twofold-test-{}",
        std::process::id()
    )));
    std::fs::write(
        &sudoers.0,
        format!(
            "Defaults:{a} pam_service={s}\nDefaults:{b} pam_service={s}\n{a} ALL=(root) /usr/bin/id\n{b} ALL=(root) /usr/bin/id\n",
            a = alice.name,
            b = bob.name,
            s = service.name
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &sudoers.0,
        std::os::unix::fs::PermissionsExt::from_mode(0o440),
    )
    .unwrap();
    let check = Command::new("visudo")
        .args(["-c", "-q", "-f"])
        .arg(&sudoers.0)
        .status()
        .unwrap();
    assert!(check.success());

    // Required and enrolled: the password, then a code.
    wait_for_fresh_step();
    let (ok, out) = sudo(&alice.name, &format!("{}\n000000\n", alice.password));
    assert!(!ok && out.contains("Verification code"), "{out}");
    let (ok, out) = sudo(
        &alice.name,
        &format!("{}\n{}\n", alice.password, oathtool(&secret, 0)),
    );
    assert!(ok && out.lines().any(|l| l.trim() == "0"), "{out}");
    // Neither required nor enrolled: sudo as before, the password alone.
    let (ok, out) = sudo(&bob.name, &format!("{}\n", bob.password));
    assert!(
        ok && !out.contains("Verification code") && out.lines().any(|l| l.trim() == "0"),
        "{out}"
    );
}
