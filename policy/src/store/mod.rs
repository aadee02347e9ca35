//! The state store: what twofold keeps per user (see [`crate::record`]), behind one trait,
//! [`StateStore`], with two backends:
//!
//! - [`files`] (the default): one record and one counters file per user under
//!   `/var/lib/twofold/`, written under a per-user `flock`;
//! - [`ldap`]: the same state in an LDAP directory shared by a fleet of hosts (OpenLDAP with the
//!   OATH-LDAP schema of `slapo-otp` and a small schema of twofold's), where every change is a
//!   compare-and-swap on the server, so that a code accepted on one host is refused on every
//!   other.
//!
//! Every caller (the PAM module, the daemon, the verification service, the CLI) goes through
//! [`StateStore`]; the one code check ([`StateStore::check_attempt`]) is the same decision
//! ([`decide`]) whichever backend persists it.

pub mod decide;
pub mod files;
mod files_check;
pub mod ldap;

use std::io;
use std::path::PathBuf;

use crate::record::{Counters, Record};
use crate::username::{NameError, UserName};

pub use files::{Locked, Store};

/// Where the state lives.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/twofold";
/// No record or counters file is larger than this; a larger one is refused as corrupt.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// How long a wait for a user's lock lasts at most when the caller sets nothing else.
/// A lock is held for the time of one check and write (well under a millisecond; an `fsync`
/// when a record changes): a wait this long means a holder that is stopped or hung.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The user name cannot name a record.
    #[error(transparent)]
    BadName(#[from] NameError),
    /// The state directory does not exist.
    #[error("{0}: state directory does not exist")]
    Missing(PathBuf),
    /// An I/O operation failed.
    #[error("{path}: cannot {op}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A file or the directory is a symlink, or has the wrong owner, type or mode.
    #[error("{path}: {why}")]
    Insecure {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The user's lock stayed held by another process for as long as this caller may wait:
    /// nothing was read, checked or written. Not a broken store: the attempt is refused, and
    /// whoever asked may try again.
    #[error("{path}: held by another process for {waited_ms} ms")]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// How long this caller waited.
        waited_ms: u64,
    },
    /// The directory (the LDAP backend) could not be asked, its answer could not be read (TLS
    /// or LDAP broken on the way: someone on the network can cause it as they can drop the
    /// connection), or it refused the store's own credentials. Not the user's fault; fail
    /// closed, whatever `on_error` says.
    #[error("{target}: {why}")]
    Unreachable {
        /// The directory (its URI).
        target: String,
        /// What went wrong.
        why: String,
    },
    /// The directory answered with something twofold did not write or cannot use (an entry
    /// of the wrong shape, an error other than a lost race).
    #[error("{target}: {why}")]
    Directory {
        /// The directory and entry.
        target: String,
        /// What is wrong.
        why: String,
    },
    /// A change lost its compare-and-swap race this many times in a row (other hosts changing
    /// the same user at the same moment): nothing was changed by this caller.
    #[error(
        "{target}: changed by others {tries} times in a row while this change was made; try again"
    )]
    Contended {
        /// The entry.
        target: String,
        /// How many tries were made.
        tries: u32,
    },
    /// A file does not parse, or does not belong to the user it is named for.
    #[error("{path}: corrupt: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

/// A user's state as read: the record (if any) and the counters.
#[derive(Debug, Clone, Default)]
pub struct UserState {
    /// The durable record; `None` for a user twofold never stored anything for.
    pub record: Option<Record>,
    /// The login-time counters (default when there are none).
    pub counters: Counters,
    /// Set when the counters file was unreadable and defaults were used instead: torn by a
    /// crash or power loss during a write in place ([`Locked::write_counters`]); the login path
    /// logs it. The secret is never in that file, so nothing of value is lost.
    pub counters_recovered: Option<String>,
}

impl UserState {
    /// Whether the user has a confirmed enrollment.
    pub fn enrolled(&self) -> bool {
        self.record.as_ref().is_some_and(|r| r.enrollment.is_some())
    }
}

/// A change refused by its own closure ([`StateStore::update`]): nothing is written. The
/// caller keeps the reason (see [`change`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abort;

/// What twofold keeps per user, whatever keeps it: the files of this host ([`Store`]) or a
/// directory shared by a fleet ([`ldap::LdapStore`]).
///
/// Readers see a whole version of a user's state. Every change goes through
/// [`StateStore::update`] (a read-modify-write that no other writer interleaves with: under
/// the user's lock for files, a compare-and-swap retried on a lost race for a directory), and
/// every code check through [`StateStore::check_attempt`].
pub trait StateStore: Send + Sync {
    /// The backend's name for logs and `twofold doctor` (`files`, `ldap`).
    fn backend(&self) -> &'static str;

    /// The files store of this host: where the policy cache lives and, for a directory
    /// backend, the per-host counters (per-source throttle) and the offline copy.
    fn local(&self) -> &Store;

    /// The files store when it is the backend itself (the daemon's listing then follows its
    /// files; another backend is read through).
    fn as_files(&self) -> Option<&Store> {
        None
    }

    /// Only the user's durable record (enrollment, override, grace start): what resolution
    /// needs. `None` for a user with no record.
    fn read_record(&self, user: &UserName) -> Result<Option<Record>>;

    /// The user's record and counters.
    fn read(&self, user: &UserName) -> Result<UserState>;

    /// Every user with a record, sorted.
    fn users(&self) -> Result<Vec<UserName>>;

    /// A cheap check that the store can be used, for `twofold doctor`: for the files store
    /// nothing beyond having opened it; for a directory, connected and bound, and the entries
    /// twofold's own live under (`ou=accounts` and `ou=params` below the base) there and
    /// readable. Nothing is changed. An error says what is wrong, as a login would meet it.
    fn probe(&self) -> Result<()> {
        Ok(())
    }

    /// The users whose admin override is `mode`, sorted (what `twofold doctor` needs to know
    /// whom the overrides require): by default every record is read (one that cannot be is
    /// passed over); a directory finds them in one search.
    fn users_with_override(&self, mode: crate::mode::Mode) -> Result<Vec<UserName>> {
        let mut out = Vec::new();
        for user in self.users()? {
            if let Ok(Some(r)) = self.read_record(&user)
                && r.admin_override.is_some_and(|o| o.mode == mode)
            {
                out.push(user);
            }
        }
        Ok(out)
    }

    /// Reads the user's state, lets `change` edit it, and writes what changed (a record
    /// change durably before this returns); no other writer's change comes between the read
    /// and the write. `change` may be called again on a fresh read when another writer won
    /// the race (a directory), so it must only edit the state it is given. It returns
    /// [`Abort`] to write nothing: then this returns `Ok(None)`.
    fn update(
        &self,
        user: &UserName,
        change: &mut dyn FnMut(&mut UserState) -> std::result::Result<(), Abort>,
    ) -> Result<Option<UserState>>;

    /// Records that the requirement meets `user` for the first time at `now` (the grace
    /// period runs from here), unless a start is recorded already; durable.
    fn start_grace(&self, user: &UserName, now: u64) -> Result<()> {
        self.update(user, &mut |state| {
            let record = state
                .record
                .get_or_insert_with(|| Record::new(user.as_str()));
            if record.required_since.is_some() {
                return Err(Abort);
            }
            record.required_since = Some(now);
            Ok(())
        })
        .map(|_| ())
    }

    /// The throttle's verdict for `source` before anything is asked (read without the lock;
    /// [`StateStore::check_attempt`] decides again).
    fn gate_before_prompt(
        &self,
        user: &UserName,
        source: &str,
        now: u64,
    ) -> Result<crate::throttle::Gate>;

    /// The one code check ([`crate::login`]): throttle, replay refusal, recovery codes, at the
    /// time of the answer; what it used is recorded before the answer counts.
    fn check_attempt(
        &self,
        user: &UserName,
        attempt: &crate::login::Attempt<'_>,
    ) -> Result<crate::login::Checked>;
}

/// [`StateStore::update`] with a closure that refuses with its own error `E`: `Ok(Err(e))`
/// when it did (nothing written), `Ok(Ok(state))` with the state written.
pub fn change<E>(
    store: &dyn StateStore,
    user: &UserName,
    mut f: impl FnMut(&mut UserState) -> std::result::Result<(), E>,
) -> Result<std::result::Result<UserState, E>> {
    let mut refused: Option<E> = None;
    let done = store.update(user, &mut |state| {
        refused = None;
        f(state).map_err(|e| {
            refused = Some(e);
            Abort
        })
    })?;
    match (done, refused) {
        (Some(state), _) => Ok(Ok(state)),
        (None, Some(e)) => Ok(Err(e)),
        (None, None) => Err(StoreError::Directory {
            target: user.to_string(),
            why: "a change was refused without a reason".into(),
        }),
    }
}

/// The backend the policy chose, over the files store of this host (`local`, already open:
/// it holds the policy cache, and for a directory backend the per-host counters).
pub fn open_backend(
    local: std::sync::Arc<Store>,
    policy: &crate::config::Policy,
) -> Result<std::sync::Arc<dyn StateStore>> {
    open_backend_in(local, policy, None)
}

/// [`open_backend`] for a long-lived service: a directory backend uses the connection kept
/// in `directories` for the same settings, so that it is not made again at every request.
pub fn open_backend_in(
    local: std::sync::Arc<Store>,
    policy: &crate::config::Policy,
    directories: Option<&ldap::Directories>,
) -> Result<std::sync::Arc<dyn StateStore>> {
    use crate::config::store::Backend;
    match policy.store.backend {
        Backend::Files => Ok(local),
        Backend::Ldap => {
            let Some(cfg) = &policy.store.ldap else {
                return Err(StoreError::Directory {
                    target: "policy".into(),
                    why: "backend = \"ldap\" without [store.ldap]".into(),
                });
            };
            let settings = ldap::Settings {
                directory: cfg.clone(),
                window: policy.totp.window,
                offline_max_age: policy
                    .store
                    .offline
                    .enabled
                    .then(|| policy.store.offline.max_age.secs()),
            };
            Ok(std::sync::Arc::new(match directories {
                Some(kept) => ldap::LdapStore::over(local, kept.get(&settings)),
                None => ldap::LdapStore::new(local, settings),
            }))
        }
    }
}
