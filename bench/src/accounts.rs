//! Real accounts in /etc/passwd for a benchmark (`useradd`, as an administrator makes them:
//! the distribution's defaults, so a user private group in /etc/group too), removed with
//! `userdel` when dropped, on failure and on a signal ([`crate::cleanup`]). Every account
//! carries [`MARKER`] as its comment, so accounts left by a killed run (SIGKILL) are found and
//! removed by the next one ([`remove_stale`]).

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::cleanup::{self, Undo};

/// The GECOS field of every benchmark account.
pub const MARKER: &str = "twofold-bench temporary account";

/// Accounts that exist until this is dropped.
pub struct Accounts {
    /// Their names, in creation order.
    pub names: Vec<String>,
    _undo: Undo,
}

fn userdel(name: &str) -> bool {
    Command::new("userdel")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Removes every account whose comment is [`MARKER`] (left by a run that was killed); returns
/// their names.
pub fn remove_stale() -> Vec<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let stale: Vec<String> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 5 && f[4] == MARKER).then(|| f[0].to_owned())
        })
        .collect();
    stale.into_iter().filter(|n| userdel(n)).collect()
}

impl Accounts {
    /// Creates `PREFIX1` .. `PREFIXn` with `useradd` (no home directory, nologin shell).
    pub fn create(prefix: &str, n: usize) -> Accounts {
        let made: Arc<Mutex<Vec<String>>> = Arc::default();
        let undo = {
            let made = Arc::clone(&made);
            cleanup::register(move || {
                let names = std::mem::take(&mut *made.lock().unwrap_or_else(|e| e.into_inner()));
                let failed: Vec<&String> = names.iter().filter(|n| !userdel(n)).collect();
                if !failed.is_empty() {
                    eprintln!("userdel failed for {failed:?}: remove them by hand");
                }
            })
        };
        for i in 1..=n {
            let name = format!("{prefix}{i}");
            let status = Command::new("useradd")
                .args(["--no-create-home", "--home-dir", "/nonexistent"])
                .args(["--shell", "/usr/sbin/nologin", "--comment", MARKER])
                .arg(&name)
                .stdout(Stdio::null())
                .status()
                .expect("run useradd");
            assert!(status.success(), "useradd {name} failed");
            made.lock().unwrap_or_else(|e| e.into_inner()).push(name);
        }
        let names = made.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Accounts { names, _undo: undo }
    }
}
