//! Undo actions for what a benchmark changes on the host (accounts in /etc/passwd, a `/dev/log`
//! receiver, PAM service files). Each action runs once: when its [`Undo`] is dropped (the end of
//! the run, or unwinding after a failed step), or from [`catch_signals`]'s thread on SIGINT,
//! SIGTERM or SIGHUP, which runs every pending action, newest first, and exits.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

type Action = Box<dyn FnOnce() + Send>;

static ACTIONS: Mutex<Vec<(u64, Action)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

fn actions() -> std::sync::MutexGuard<'static, Vec<(u64, Action)>> {
    ACTIONS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A pending undo action; dropping it runs the action (once).
#[must_use = "dropping the Undo runs the action at once"]
pub struct Undo(u64);

/// Registers `action`, to run when the returned [`Undo`] is dropped or on a signal.
pub fn register(action: impl FnOnce() + Send + 'static) -> Undo {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    actions().push((id, Box::new(action)));
    Undo(id)
}

impl Drop for Undo {
    fn drop(&mut self) {
        let taken = {
            let mut list = actions();
            list.iter()
                .position(|(id, _)| *id == self.0)
                .map(|i| list.remove(i).1)
        };
        // Run outside the lock: an action may take a while (userdel).
        if let Some(action) = taken {
            action();
        }
    }
}

/// Runs every pending action, newest first.
pub fn run_all() {
    loop {
        let Some((_, action)) = actions().pop() else {
            return;
        };
        action();
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (call it first in `main`, before any
/// thread starts, so that every thread inherits the mask) and starts a thread that waits for
/// them, runs every pending action and exits with 128 + the signal. Child processes inherit the
/// mask (std's `Command` keeps it, and so do `sh` and its background jobs): SIGINT, SIGTERM and
/// SIGHUP do not stop them, so the undo action of a child that must stop sends SIGKILL
/// (`Child::kill`; the LDAP part's slapd by its pid).
pub fn catch_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().expect("block signals");
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            eprintln!("{sig}: undoing the benchmark's changes to the host, then exiting");
            run_all();
            std::process::exit(128 + sig as i32);
        }
    });
}
