//! Shared by `make bench` and `make stress`: PAM service files, enrolled users for twofold and
//! google-authenticator, statistics; undo of host changes, a `/dev/log` receiver, real
//! accounts, floor measurements.
#![deny(unsafe_code)] // allowed in `floor` alone (dlopen, syslog)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // benchmark tools: a failure aborts the run

use std::path::{Path, PathBuf};

use twofold_policy::record::{Enrollment, Record};
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{Store, UserName};

pub mod accounts;
pub mod cleanup;
pub mod devlog;
pub mod floor;

/// nss_wrapper: users without accounts.
pub const NSS_WRAPPER: &str = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so";

/// Median and 90th percentile.
pub fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.9))
}

/// A PAM service file in /etc/pam.d, removed on drop (and on a signal, see [`cleanup`]).
pub struct Service(
    pub PathBuf,
    #[allow(dead_code)] // held for its Drop: removes the file
    cleanup::Undo,
);

impl Service {
    /// Writes /etc/pam.d/NAME.
    pub fn new(name: &str, body: &str) -> Service {
        let p = Path::new("/etc/pam.d").join(name);
        let undo = {
            let p = p.clone();
            cleanup::register(move || {
                let _ = std::fs::remove_file(&p);
            })
        };
        std::fs::write(&p, body).unwrap();
        Service(p, undo)
    }
    /// The service name.
    pub fn name(&self) -> String {
        self.0.file_name().unwrap().to_string_lossy().into_owned()
    }
}

/// A google-authenticator secret file for `user` in `dir`, with `scratch` codes.
pub fn secret_file_with(
    dir: &Path,
    user: &str,
    secret: &Secret,
    reuse_check: bool,
    scratch: &[String],
) {
    use std::os::unix::fs::PermissionsExt;
    let mut text = format!("{}\n\" TOTP_AUTH\n", secret.to_base32().as_str());
    if reuse_check {
        text.push_str("\" DISALLOW_REUSE\n");
    }
    for c in scratch {
        text.push_str(c);
        text.push('\n');
    }
    let p = dir.join(user);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A google-authenticator secret file with `DISALLOW_REUSE` (if `reuse_check`) whose list of
/// used steps holds `used_step`: the file of a user who logged in before (at that step).
pub fn secret_file_used(
    dir: &Path,
    user: &str,
    secret: &Secret,
    reuse_check: bool,
    used_step: u64,
) {
    use std::os::unix::fs::PermissionsExt;
    let mut text = format!("{}\n\" TOTP_AUTH\n", secret.to_base32().as_str());
    if reuse_check {
        text.push_str(&format!("\" DISALLOW_REUSE {used_step}\n"));
    }
    let p = dir.join(user);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A twofold enrollment of `user` with `secret` and 10 recovery codes; returns the codes.
pub fn enroll(store: &Store, user: &str, secret: &Secret) -> Vec<String> {
    let u = UserName::parse(user).unwrap();
    let lock = store.lock(&u).unwrap();
    let mut r = Record::new(user);
    let codes = twofold_policy::recovery::generate(10).unwrap();
    r.enrollment = Some(Enrollment::new(secret, Params::default(), 1, codes.hashes));
    lock.write_record(&r).unwrap();
    codes.codes.iter().map(|c| c.to_string()).collect()
}

/// A google-authenticator secret file without scratch codes.
pub fn secret_file(dir: &Path, user: &str, secret: &Secret, reuse_check: bool) {
    secret_file_with(dir, user, secret, reuse_check, &[]);
}

/// A private `dbus-daemon` in `dir` from `packaging/dbus/private-bus.conf.in`, with the
/// product's bus policy; returns the process and the bus address once it listens.
pub fn private_bus(dir: &Path) -> (std::process::Child, String) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.join("socket");
    let packaging = std::env::current_dir().unwrap().join("packaging/dbus");
    let conf = std::fs::read_to_string(packaging.join("private-bus.conf.in"))
        .unwrap()
        .replace("@SOCKET@", &socket.display().to_string())
        .replace(
            "@INCLUDE@",
            &packaging
                .join("org.twofold.Enroll1.conf")
                .display()
                .to_string(),
        );
    std::fs::write(dir.join("bus.conf"), conf).unwrap();
    let bus = std::process::Command::new("dbus-daemon")
        .arg(format!("--config-file={}", dir.join("bus.conf").display()))
        .args(["--nofork", "--nopidfile", "--nosyslog"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while !socket.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (bus, format!("unix:path={}", socket.display()))
}

/// `twofold-enrolld` on the bus at `address`, over `dir/policy.toml` and `state`.
pub fn start_enrolld(
    enrolld: &Path,
    dir: &Path,
    state: &Path,
    address: &str,
) -> std::process::Child {
    std::process::Command::new(enrolld)
        .arg("--policy")
        .arg(dir.join("policy.toml"))
        .arg("--state")
        .arg(state)
        .env("DBUS_SYSTEM_BUS_ADDRESS", address)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A connection to the bus at `address` and the daemon's proxy on it (calls may take minutes:
/// a list of 100,000 users).
pub fn connect(
    address: &str,
) -> (
    zbus::Connection,
    twofold_enrolld::api::ManagerProxy<'static>,
) {
    zbus::block_on(async {
        let conn = zbus::connection::Builder::address(address)
            .method_timeout(std::time::Duration::from_secs(600))
            .build()
            .await
            .unwrap();
        let p = twofold_enrolld::api::ManagerProxy::new(&conn)
            .await
            .unwrap();
        (conn, p)
    })
}
