//! The caller's own status (`GetStatus`), the call made most often: made from the daemon's
//! read-only views, and remembered per uid with the change stamps taken before it was made
//! ([`crate::changes`]). While the kernel reports no change to anything it was made from (the
//! user database files, the policy, the state directory; for at most [`crate::changes::TRUST`]),
//! the next call is answered from memory alone ([`Daemon::own_status_quick`]): no store,
//! policy-file or user-database work, so on the bus's executor itself ([`crate::service`]);
//! every other call goes off the executor ([`Daemon::own_status`]). An account that the user
//! database files do not answer for (LDAP, SSSD) is asked of NSS at every call: it is never
//! remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Daemon, failed, index_error};
use crate::api::{Error, UserInfo};
use crate::changes::{Checked, Kind};
use crate::index::Facts;
use twofold_policy::{Policy, UserName, system, time};

/// Uids whose own view is remembered at most; past it the memory starts again empty.
pub const REMEMBERED_MAX: usize = 4096;

/// What one caller's own view was made from, and when (the stamps of the users, policy and
/// state kinds, taken before anything was read).
struct Made {
    name: UserName,
    account: system::Account,
    policy: Arc<Policy>,
    facts: Facts,
    stamps: [Checked; 3],
}

const KINDS: [Kind; 3] = [Kind::Users, Kind::Policy, Kind::State];

/// Each caller's own view as last made, by uid.
#[derive(Default)]
pub(super) struct OwnViews(Mutex<HashMap<u32, Made>>);

impl std::fmt::Debug for OwnViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnViews").finish_non_exhaustive()
    }
}

impl Daemon {
    /// Self: the own view of the caller of Unix uid `uid`.
    /// The view changes and grants nothing, so it is made from what the daemon last read of
    /// its files while the kernel reports no change to them ([`crate::changes`]): the queue is
    /// read once for the call. The view is remembered for [`Daemon::own_status_quick`] when
    /// every file it came from is watched and the account came from the files.
    pub fn own_status(&self, uid: u32) -> Result<UserInfo, Error> {
        let now = self.changes.snapshot();
        let (found, from_files) = match self.index.account_of_uid_view(uid, &now) {
            Ok((a, from_files)) => (Ok(a), from_files),
            Err(e) => (Err(e), false),
        };
        let caller = Self::caller_from(uid, found)?;
        let policy = self
            .policies
            .load_view(&self.policy_path, &now)
            .map_err(|e| failed("policy", e))?;
        let (name, account) = caller.myself()?;
        let store = self.store_checked(Some(&now))?;
        let facts = self
            .index
            .facts_view(&*store, &name, &now)
            .map_err(index_error)?;
        let info = Self::view(&policy, name.as_str(), Some(account), &facts, time::now());
        let stamps = KINDS.map(|k| now.stamp(k));
        // Only the files of this host say when a view went stale: a directory shared with
        // other hosts is read again at every call.
        if from_files
            && store.as_files().is_some()
            && let [Some(users), Some(policy_at), Some(state)] = stamps
        {
            let mut views = self.own_views.0.lock().unwrap_or_else(|e| e.into_inner());
            if views.len() >= REMEMBERED_MAX {
                views.clear();
            }
            views.insert(
                uid,
                Made {
                    name,
                    account: caller.account.clone(),
                    policy,
                    facts,
                    stamps: [users, policy_at, state],
                },
            );
        }
        Ok(info)
    }

    /// Self: the own view of the caller of Unix uid `uid` from memory alone, when it was made
    /// before and nothing it was made from changed since (and that is recent enough to rely
    /// on); `None` otherwise, and then [`Daemon::own_status`] makes it. Reads the change queue
    /// without blocking; no file, no lock, no user database.
    pub fn own_status_quick(&self, uid: u32) -> Option<UserInfo> {
        let now = self.changes.snapshot();
        let views = self.own_views.0.lock().unwrap_or_else(|e| e.into_inner());
        let made = views.get(&uid)?;
        let quiet = KINDS
            .iter()
            .zip(made.stamps)
            .all(|(k, stamp)| now.quiet_since(*k, Some(stamp)));
        quiet.then(|| {
            Self::view(
                &made.policy,
                made.name.as_str(),
                Some(&made.account),
                &made.facts,
                time::now(),
            )
        })
    }
}
