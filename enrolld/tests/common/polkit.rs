//! A real polkitd on a test's private bus, with the product's actions and rules and the
//! test's own rules, the host untouched: it runs in a private mount namespace where the test's
//! directories are bind-mounted over `/usr/share/polkit-1/actions`,
//! `/usr/share/polkit-1/rules.d` and `/etc/polkit-1/rules.d` (polkitd reads only those), and
//! connects to the private bus (`DBUS_SYSTEM_BUS_ADDRESS`). It drops to the user polkitd by
//! itself, so the directories are readable by all. Without logind there is no active session:
//! only `allow_any` and rules apply.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Bus, Dir};

/// polkit's own bus policy (lets the user polkitd own its name, everyone call it).
pub const BUS_POLICY: &str = "/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf";
const POLKITD: &str = "/usr/lib/polkit-1/polkitd";

/// Whether polkitd is installed (make test installs it).
pub fn installed() -> bool {
    Path::new(POLKITD).exists() && Path::new(BUS_POLICY).exists()
}

/// The running polkitd.
pub struct Polkitd {
    child: Option<Child>,
    bus: String,
    pub log: PathBuf,
}

fn product(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/polkit")
        .join(name)
}

fn mkdir(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn put(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
}

impl Polkitd {
    /// Starts polkitd on `bus` with the product's action file and `50-twofold.rules`, and
    /// `rules` (JavaScript) as `/etc/polkit-1/rules.d/10-test.rules`; returns once it owns its
    /// name.
    pub fn start(dir: &Dir, bus: &Bus, rules: &str) -> Polkitd {
        let root = dir.path().join("polkit");
        let (actions, share, etc) = (root.join("actions"), root.join("share"), root.join("etc"));
        for d in [&root, &actions, &share, &etc] {
            mkdir(d);
        }
        let policy = "org.twofold.Enroll1.policy";
        put(
            &actions.join(policy),
            &std::fs::read_to_string(product(policy)).unwrap(),
        );
        put(
            &share.join("50-twofold.rules"),
            &std::fs::read_to_string(product("50-twofold.rules")).unwrap(),
        );
        put(&etc.join("10-test.rules"), rules);
        let script = format!(
            "mount --bind {} /usr/share/polkit-1/actions && mount --bind {} /usr/share/polkit-1/rules.d && mount --bind {} /etc/polkit-1/rules.d && exec {POLKITD}",
            actions.display(),
            share.display(),
            etc.display()
        );
        let log = root.join("polkitd.log");
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(root.join("polkitd.err")).unwrap())
            .spawn()
            .expect("unshare (util-linux) must be installed");
        let p = Polkitd {
            child: Some(child),
            bus: bus.address.clone(),
            log,
        };
        let start = Instant::now();
        while !p.on_bus() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "polkitd did not take its name: {}",
                std::fs::read_to_string(root.join("polkitd.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
        p
    }

    /// Whether polkit's name has an owner on the bus.
    pub fn on_bus(&self) -> bool {
        super::name_has_owner(&self.bus, "org.freedesktop.PolicyKit1")
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// SIGSTOP: polkit stays on the bus and answers nothing.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGKILL, then waits until its name is gone from the bus.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let start = Instant::now();
        while self.on_bus() {
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Polkitd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
