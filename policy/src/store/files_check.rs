//! [`StateStore`] for the files backend ([`Store`]): the code check under the user's `flock`
//! (see [`crate::login`]) and read-modify-write of a user's state under it.

use crate::login::{Attempt, Checked, Outcome};
use crate::record::Record;
use crate::throttle::Gate;
use crate::username::UserName;

use super::decide::{self, Decision};
use super::{Abort, Result, StateStore, Store, StoreError, UserState};

impl StateStore for Store {
    fn backend(&self) -> &'static str {
        "files"
    }

    fn local(&self) -> &Store {
        self
    }

    fn as_files(&self) -> Option<&Store> {
        Some(self)
    }

    fn read_record(&self, user: &UserName) -> Result<Option<Record>> {
        Store::read_record(self, user)
    }

    fn read(&self, user: &UserName) -> Result<UserState> {
        Store::read(self, user)
    }

    fn users(&self) -> Result<Vec<UserName>> {
        Store::users(self)
    }

    fn update(
        &self,
        user: &UserName,
        change: &mut dyn FnMut(&mut UserState) -> std::result::Result<(), Abort>,
    ) -> Result<Option<UserState>> {
        let lock = self.lock(user)?;
        let mut state = lock.read()?;
        let before = state.clone();
        if change(&mut state).is_err() {
            return Ok(None);
        }
        if state.record != before.record {
            match &state.record {
                Some(record) => lock.write_record(record)?,
                // A record is never deleted: a user with nothing left keeps an empty one.
                None => lock.write_record(&Record::new(user.as_str()))?,
            }
        }
        if state.counters != before.counters || before.counters_recovered.is_some() {
            lock.write_counters(&state.counters)?;
        }
        Ok(Some(state))
    }

    fn gate_before_prompt(&self, user: &UserName, source: &str, now: u64) -> Result<Gate> {
        let (counters, _) = self.read_counters_lenient(user)?;
        Ok(crate::throttle::gate(&counters, source, now))
    }

    /// Checks one attempt under the user's lock and records what it did (see
    /// [`crate::login`]). An error means nothing was accepted: a login whose accepted step
    /// cannot be stored is refused, or the code could be used again.
    fn check_attempt(&self, user: &UserName, a: &Attempt<'_>) -> Result<Checked> {
        // Before the lock, nothing costly: an answer that cannot be a code, or a source the
        // throttle refuses, is refused on what was read without it (no I/O in a login, which
        // read both before the prompt). A process holding the lock (a stopped `su`) can then
        // be waited for only by a code-shaped answer from a source the throttle lets through,
        // and each such try counts.
        let (digits, gate) = self.before_lock(user, a.source, a.at)?;
        if gate != Gate::Open {
            return Ok(Checked {
                outcome: Outcome::Throttled(gate),
                recovered: None,
            });
        }
        // (Before the lock, any 8 digits may be a scratch code; under it, the record says.)
        if digits.is_some_and(|d| !crate::login::shaped(a.input, d, true)) {
            return Ok(Checked {
                outcome: Outcome::NotACode,
                recovered: None,
            });
        }
        // The lock settles the file size limit (store::FileSizeLimit) before anything is
        // checked: whether this check can record what it finds does not depend on the code.
        // Its wait is bounded (StoreError::Busy past it: nothing checked, nothing counted).
        let lock = self.lock(user)?;
        let mut state = lock.read()?;
        let recovered = state.counters_recovered.take();
        if recovered.is_some() {
            let written = self.counters_modified(user).unwrap_or(a.at);
            decide::floor_after_torn_counters(&mut state, written, a.window);
        }
        if let Some(outcome) = decide::before_check(&state, a) {
            return Ok(Checked { outcome, recovered });
        }
        let corrupt = |e: crate::totp::TotpError| StoreError::Corrupt {
            path: self.path().join(format!("{user}.toml")),
            why: e.to_string(),
        };
        let decision = decide::decide(&state, a.input, a.window, a.at).map_err(corrupt)?;
        let outcome = decide::settle(&mut state, a, decision);
        if outcome == Outcome::NotEnrolled {
            return Ok(Checked { outcome, recovered });
        }
        if let (Decision::Recovery { .. }, Some(record)) = (decision, &state.record) {
            // Durable before it counts: a used recovery code stays used after a crash.
            lock.write_record(record)?;
        }
        lock.write_counters(&state.counters)?;
        Ok(Checked { outcome, recovered })
    }
}
