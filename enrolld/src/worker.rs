//! Blocking work off the bus's executor, and how much of it one caller may start.
//!
//! zbus serves every method call as a task of its own executor. The operations of
//! [`crate::ops`] are synchronous: they read and write the store, parse the policy and ask the
//! user database (NSS), and a write waits for the user's `flock`, which a process of that user
//! can hold (a stopped `su`; the wait is bounded, see [`twofold_policy::store::LOCK_WAIT`]). Run
//! on the executor, one such wait would hold up every call of every caller. So each call's work
//! runs on a thread of a [`Pool`], and the task awaits its answer.
//!
//! A call occupies a [`Slot`] of the `policy` crate's [`Slots`] while its work runs
//! ([`LIMITS`]): at most [`PER_UID`] per caller (root excepted) and [`TOTAL`] in all, of which
//! every caller but root may take only [`TOTAL`] − [`ROOT_RESERVE`]. A call beyond its cap is
//! refused at once, before any work starts ([`Full`], the error `Busy`). The slot is released
//! when the work ends, also when it panics.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

pub use twofold_policy::slots::{Full, Limits, Slot, Slots};

/// Calls of one uid (other than root) whose work may run at once.
pub const PER_UID: usize = 8;
/// Calls whose work may run at once, all callers together.
pub const TOTAL: usize = 256;
/// Of [`TOTAL`], kept for root: the other callers together never take these.
pub const ROOT_RESERVE: usize = 16;

/// Threads the pool keeps while idle (more are started when every one is busy).
const KEEP: usize = 4;
/// How long a thread beyond [`KEEP`] waits for work before it ends.
const IDLE: Duration = Duration::from_secs(30);

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under these locks leaves counts and queues that are still whole: go on.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The caps of the calls running ([`Slots`]).
pub const LIMITS: Limits = Limits {
    per_key: PER_UID,
    total: TOTAL,
    root: Some(ROOT_RESERVE),
};

type Job = Box<dyn FnOnce() + Send>;

/// Threads for blocking work, kept alive between calls (starting a thread per call would cost
/// the fast calls, `GetStatus`, a good part of their time). A job never waits behind another:
/// it goes to an idle thread, or a new thread is started for it; the [`Slots`] bound how many
/// run at once.
#[derive(Clone, Default)]
pub struct Pool {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    /// Threads alive.
    threads: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = relock(&self.shared.queue);
        f.debug_struct("Pool")
            .field("queued", &q.jobs.len())
            .field("idle", &q.idle)
            .field("threads", &q.threads)
            .finish()
    }
}

/// The work ended without an answer: it panicked, or no thread could be started for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost;

impl Pool {
    /// An empty pool: threads are started as work comes.
    pub fn new() -> Pool {
        Pool::default()
    }

    /// Runs `work` on a thread of the pool; the future of its answer, which needs no
    /// particular executor. The work runs to its end even if the future is dropped.
    pub fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Answer<T> {
        let cell = Arc::new(Mutex::new(Cell {
            value: None,
            waker: None,
            done: false,
        }));
        let tx = Sender(cell.clone());
        self.submit(Box::new(move || tx.send(work())));
        Answer(cell)
    }

    fn submit(&self, job: Job) {
        let start = {
            let mut q = relock(&self.shared.queue);
            q.jobs.push_back(job);
            if q.idle >= q.jobs.len() {
                self.shared.ready.notify_one();
                false
            } else {
                q.threads += 1;
                true
            }
        };
        if !start {
            return;
        }
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("twofold-work".into())
            .spawn(move || serve(&shared));
        if spawned.is_err() {
            let mut q = relock(&self.shared.queue);
            q.threads -= 1;
            if q.threads == 0 {
                // Nobody to run them: their answers are lost (each sender dropped says so).
                let dropped = std::mem::take(&mut q.jobs);
                drop(q);
                drop(dropped);
            }
            // Otherwise the job runs when a thread is free.
        }
    }
}

/// A pool thread: runs jobs until it has waited [`IDLE`] for one with more than [`KEEP`]
/// threads alive.
fn serve(shared: &Shared) {
    let mut q = relock(&shared.queue);
    loop {
        if let Some(job) = q.jobs.pop_front() {
            drop(q);
            // A panic ends the job, not the thread; the job's sender, dropped on the way,
            // tells the waiting call.
            let _ = catch_unwind(AssertUnwindSafe(job));
            q = relock(&shared.queue);
            continue;
        }
        q.idle += 1;
        let (guard, waited) = shared
            .ready
            .wait_timeout(q, IDLE)
            .unwrap_or_else(PoisonError::into_inner);
        q = guard;
        q.idle -= 1;
        if waited.timed_out() && q.jobs.is_empty() && q.threads > KEEP {
            q.threads -= 1;
            return;
        }
    }
}

struct Cell<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The sender is gone (with or without a value).
    done: bool,
}

/// The work's end of the hand-over; dropped without a value (a panic) it still wakes the call.
struct Sender<T>(Arc<Mutex<Cell<T>>>);

impl<T> Sender<T> {
    fn send(self, value: T) {
        relock(&self.0).value = Some(value);
        // Drop marks it done and wakes.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut c = relock(&self.0);
            c.done = true;
            c.waker.take()
        };
        // Woken past the lock: the wake may poll, or drop, the waiting future at once.
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The answer of work handed to a [`Pool`]: its value, or [`Lost`].
pub struct Answer<T>(Arc<Mutex<Cell<T>>>);

impl<T> Future for Answer<T> {
    type Output = Result<T, Lost>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut c = relock(&self.0);
        if let Some(v) = c.value.take() {
            return Poll::Ready(Ok(v));
        }
        if c.done {
            return Poll::Ready(Err(Lost));
        }
        let old = match &c.waker {
            Some(w) if w.will_wake(cx.waker()) => None,
            _ => c.waker.replace(cx.waker().clone()),
        };
        drop(c);
        drop(old);
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for Answer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer").finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_releases_the_slot_and_answers_lost() {
        let pool = Pool::new();
        let s = Slots::new(LIMITS);
        let slot = s.take(7).unwrap();
        let r: Result<u32, Lost> = zbus::block_on(pool.run(move || {
            let _slot = slot;
            panic!("boom");
        }));
        assert_eq!(r, Err(Lost));
        assert_eq!(s.running(7), 0);
        // The thread carries on.
        assert_eq!(zbus::block_on(pool.run(|| 5)), Ok(5));
    }

    #[test]
    fn work_never_waits_behind_stuck_work() {
        let pool = Pool::new();
        // Six jobs stuck until released; a seventh is answered meanwhile.
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let stuck: Vec<_> = (0..6)
            .map(|_| {
                let gate = gate.clone();
                pool.run(move || {
                    let (open, cv) = &*gate;
                    let mut o = open.lock().unwrap();
                    while !*o {
                        o = cv.wait(o).unwrap();
                    }
                })
            })
            .collect();
        assert_eq!(zbus::block_on(pool.run(|| 1)), Ok(1));
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        for a in stuck {
            assert_eq!(zbus::block_on(a), Ok(()));
        }
    }
}
