//! A syslog receiver on `/dev/log` for the duration of a benchmark, as every real host has one
//! (rsyslog, syslog-ng or journald). Without one, syslog(3) of a process that opened its log
//! with `LOG_CONS` (google-authenticator does) writes every message to the console instead, a
//! cost no real host pays; with one, every module pays one datagram per message.
//!
//! - `/dev/log` is a live socket (connect succeeds): the host's receiver is used, untouched.
//! - `/dev/log` does not exist: a datagram socket is bound there and a thread of this process
//!   reads and counts what arrives (as rsyslog would, minus the writing); it is removed at the end,
//!   on failure and on a signal ([`crate::cleanup`]).
//! - `/dev/log` exists but is dead (connect fails): it is moved aside to
//!   `/dev/log.twofold-bench-aside`, ours is bound, and it is put back afterwards. A copy left
//!   there by a run that was killed (SIGKILL) is put back by the next run first.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cleanup::{self, Undo};

/// Where syslog(3) sends.
pub const DEV_LOG: &str = "/dev/log";
const ASIDE: &str = "/dev/log.twofold-bench-aside";

/// What the receiver counted.
#[derive(Debug, Default)]
pub struct Counts {
    /// Datagrams received.
    pub datagrams: AtomicU64,
    /// Of which from pam_twofold.
    pub twofold: AtomicU64,
    /// Of which from pam_google_authenticator.
    pub google_authenticator: AtomicU64,
}

/// The receiver in use for this run.
pub struct DevLog {
    /// One sentence for results.md: which receiver the run used.
    pub description: String,
    /// Counts, when the receiver is ours (the host's cannot be counted).
    pub counts: Option<Arc<Counts>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _undo: Option<Undo>,
}

/// Whether `path` accepts a connection, as syslog(3) tries it (datagram, then stream).
pub fn live(path: &Path) -> bool {
    UnixDatagram::unbound().is_ok_and(|s| s.connect(path).is_ok())
        || UnixStream::connect(path).is_ok()
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Puts back a `/dev/log` a killed run moved aside, if `/dev/log` is missing or dead.
fn restore_stale() {
    let aside = Path::new(ASIDE);
    let dev_log = Path::new(DEV_LOG);
    if std::fs::symlink_metadata(aside).is_err() || live(dev_log) {
        return;
    }
    if is_socket(dev_log) {
        let _ = std::fs::remove_file(dev_log);
    }
    if std::fs::symlink_metadata(dev_log).is_err() && std::fs::rename(aside, dev_log).is_ok() {
        eprintln!("put back {DEV_LOG}, left aside by a benchmark run that was killed");
    }
}

impl DevLog {
    /// The host's receiver if it is live, otherwise ours (see the module's documentation).
    pub fn setup() -> std::io::Result<DevLog> {
        restore_stale();
        let path = PathBuf::from(DEV_LOG);
        let moved = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
            Ok(meta) => {
                if live(&path) {
                    let target = if meta.file_type().is_symlink() {
                        std::fs::read_link(&path)
                            .map(|t| format!(" (→ {})", t.display()))
                            .unwrap_or_default()
                    } else {
                        String::new()
                    };
                    return Ok(DevLog {
                        description: format!(
                            "the host's own syslog receiver: {DEV_LOG}{target} is a live socket, used as it is"
                        ),
                        counts: None,
                        stop: Arc::new(AtomicBool::new(false)),
                        thread: None,
                        _undo: None,
                    });
                }
                std::fs::rename(&path, ASIDE)?;
                Some(PathBuf::from(ASIDE))
            }
        };
        // Registered before binding: whatever happens next, the host gets its /dev/log back.
        let ours: Arc<std::sync::Mutex<Option<(u64, u64)>>> = Arc::default();
        let undo = {
            let ours = Arc::clone(&ours);
            let moved = moved.clone();
            cleanup::register(move || {
                let id = *ours.lock().unwrap_or_else(|e| e.into_inner());
                if let (Some((dev, ino)), Ok(m)) = (id, std::fs::symlink_metadata(DEV_LOG))
                    && m.dev() == dev
                    && m.ino() == ino
                {
                    let _ = std::fs::remove_file(DEV_LOG);
                }
                if let Some(aside) = moved
                    && std::fs::symlink_metadata(DEV_LOG).is_err()
                {
                    let _ = std::fs::rename(aside, DEV_LOG);
                }
            })
        };
        let socket = UnixDatagram::bind(&path)?;
        let meta = std::fs::symlink_metadata(&path)?;
        *ours.lock().unwrap_or_else(|e| e.into_inner()) = Some((meta.dev(), meta.ino()));
        // As rsyslog and journald make it: every process may log.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let counts = Arc::clone(&counts);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 16 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = socket.recv(&mut buf) else {
                        continue;
                    };
                    let msg = &buf[..n];
                    counts.datagrams.fetch_add(1, Ordering::Relaxed);
                    let has = |needle: &[u8]| msg.windows(needle.len()).any(|w| w == needle);
                    if has(b"pam_twofold") {
                        counts.twofold.fetch_add(1, Ordering::Relaxed);
                    } else if has(b"google_authenticator") {
                        counts.google_authenticator.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let description = match &moved {
            None => format!(
                "the benchmark's own receiver: the host has no {DEV_LOG}, so a datagram socket was bound there for the run (a thread reads and counts every message, as rsyslog would receive it) and removed afterwards"
            ),
            Some(_) => format!(
                "the benchmark's own receiver: the host's {DEV_LOG} was dead (connect failed), so it was moved aside, a datagram socket was bound there for the run (a thread reads and counts every message) and the old one was put back afterwards"
            ),
        };
        Ok(DevLog {
            description,
            counts: Some(counts),
            stop,
            thread: Some(thread),
            _undo: Some(undo),
        })
    }
}

impl Drop for DevLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Then `_undo` removes the socket and puts back what was moved aside.
    }
}
