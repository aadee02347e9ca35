//! Shared by the integration tests: the module under test, independent codes from `oathtool`,
//! real accounts and PAM service files that are removed again.
#![allow(dead_code)] // each test file uses its own part

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use twofold_policy::record::{Enrollment, Record};
use twofold_policy::store::Store;
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{UserName, recovery};

pub mod rig;

/// `target/debug/deps/libpam_twofold.so`, built by the same `cargo test` (the crate is also an
/// rlib, so cargo builds the cdylib beside the test binaries).
pub fn module_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().join("libpam_twofold.so");
    assert!(
        p.exists(),
        "{} is not built: cargo test builds it beside the test binary",
        p.display()
    );
    p
}

/// True when running as root; otherwise says why the test does nothing. CI runs as root.
pub fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "this test needs root (real accounts, /etc/pam.d, the root-owned store): run make test as root (CI does)"
    );
    false
}

/// The code `oathtool` computes for `secret` at now + `offset_steps` × 30 s.
pub fn oathtool(secret: &Secret, offset_steps: i64) -> String {
    oathtool_b32(secret.to_base32().as_str(), offset_steps)
}

/// Like [`oathtool`], from a base32 key.
pub fn oathtool_b32(key: &str, offset_steps: i64) -> String {
    let t = twofold_policy::time::now() as i64 + offset_steps * 30;
    let out = Command::new("oathtool")
        .args(["--totp", "--base32", &format!("--now=@{t}"), key])
        .output()
        .expect("oathtool must be installed (make test installs it)");
    assert!(out.status.success(), "oathtool failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Codes are generated relative to "now"; a step boundary between generating and checking
/// would shift them by one step. Call before a sequence that needs at most `need` seconds.
pub fn wait_for_fresh_step_within(need: u64) {
    let into = twofold_policy::time::now() % 30;
    if into + need >= 30 {
        std::thread::sleep(std::time::Duration::from_secs(30 - into));
    }
}

/// [`wait_for_fresh_step_within`] 5 s.
pub fn wait_for_fresh_step() {
    wait_for_fresh_step_within(5);
}

/// A policy file and a state directory in a fresh temporary directory.
pub struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    pub fn new(policy: &str) -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("policy.toml"), policy).unwrap();
        std::fs::set_permissions(
            dir.join("policy.toml"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::create_dir(dir.join("state")).unwrap();
        std::fs::set_permissions(dir.join("state"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        Sandbox { tmp }
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The module's arguments pointing at this sandbox.
    pub fn module_args(&self) -> String {
        format!(
            "policy={d}/policy.toml state={d}/state",
            d = self.dir().display()
        )
    }

    pub fn store(&self) -> Store {
        Store::open(&self.dir().join("state")).unwrap()
    }

    /// Enrolls `user` with a fresh secret and `n` recovery codes; returns them.
    pub fn enroll(&self, user: &str, n: u32) -> (Secret, Vec<String>) {
        let secret = Secret::generate().unwrap();
        let codes = recovery::generate(n).unwrap();
        let store = self.store();
        let u = UserName::parse(user).unwrap();
        let lock = store.lock(&u).unwrap();
        let mut r = Record::new(user);
        r.enrollment = Some(Enrollment::new(&secret, Params::default(), 1, codes.hashes));
        lock.write_record(&r).unwrap();
        (secret, codes.codes.iter().map(|c| c.to_string()).collect())
    }
}

/// A real local account with a password, removed on drop.
pub struct TestUser {
    pub name: String,
    pub password: String,
}

impl TestUser {
    /// `tf<pid><tag>`: unique per test process.
    pub fn create(tag: &str) -> TestUser {
        let name = format!("tf{}{tag}", std::process::id());
        let _ = Command::new("userdel").arg(&name).output();
        let st = Command::new("useradd")
            .args(["-M", "-d", "/", "-s", "/bin/sh", &name])
            .status()
            .unwrap();
        assert!(st.success(), "useradd {name}");
        let password = format!("pw-{name}-Xq7");
        let mut chpasswd = Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        chpasswd
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{name}:{password}\n").as_bytes())
            .unwrap();
        assert!(chpasswd.wait().unwrap().success());
        TestUser { name, password }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// A PAM service file in `/etc/pam.d`, removed on drop.
pub struct PamService {
    pub name: String,
    path: PathBuf,
}

impl PamService {
    pub fn install(tag: &str, body: &str) -> PamService {
        let name = format!("twofold-test-{}-{tag}", std::process::id());
        let path = Path::new("/etc/pam.d").join(&name);
        std::fs::write(&path, body).unwrap();
        PamService { name, path }
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
