//! What the daemon knows without asking again: the local user database parsed once, the
//! listing's rows in order, and every user's record as last read. Nothing here is trusted
//! beyond the identity of the files it came from.
//!
//! - [`UserDb`]: `/etc/passwd` and `/etc/group` parsed into maps (name → uid/gid, uid → the
//!   canonical name, gid → group name, user → supplementary groups), re-read when the
//!   identity (`stat`: device, inode, size, mtime and ctime in ns) of either file, of
//!   `/etc/nsswitch.conf` or of `/etc/login.defs` changes. Used only when `nsswitch.conf`
//!   sends `passwd` and `group` to `files` first (and to nothing but `files` and `systemd`):
//!   then the files give the same answers `getpwnam`/`getpwuid`/`getgrouplist` give for a
//!   name found in them. Other names (LDAP, SSSD, systemd's userdb) go through NSS
//!   ([`twofold_policy::system::lookup`]).
//! - [`Index`]: the listing. The names of the store's records are re-read when the state
//!   directory's identity changes (a record written, replaced or removed renames or unlinks
//!   in it); each record on a page is `stat`ed and re-read only when its identity, or that of
//!   its counters file, changed. Writers need not tell the daemon: the PAM module writes
//!   records during logins through the same store code, and the next page sees them.
//! - A file whose mtime or ctime is within [`RACY_NS`] of the moment it was read may change
//!   again within the same timestamp tick without its identity changing (the "racy git"
//!   problem): such an entry is read again next time, until it is old enough to be trusted.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::changes::{Checked, Kind, Snapshot};
use twofold_policy::store::{StateStore, Store};
use twofold_policy::userfiles::UserFiles;
use twofold_policy::{UserName, system};

mod facts;
mod names;
mod policy_cache;
mod userdb;

pub use facts::Facts;
use names::Names;
pub use policy_cache::PolicyCache;
pub use userdb::{Etc, UserDb, uid_range};

/// How recent a file's timestamps may be for its cached contents to be trusted (see the
/// module's documentation): two whole seconds, as for the compiled policy (timestamps can be
/// as coarse as a second, and the kernel's clock lags by a tick; `twofold_policy::cache`).
pub const RACY_NS: i128 = 2_000_000_000;

/// How long an NSS answer (positive or negative) for a name that is not in `/etc/passwd` is
/// used by listings. Such names (LDAP, SSSD) have no file whose identity tells a change; a
/// listing may show such an account as it was up to this long ago. Decisions about a caller
/// never use these answers.
pub const NSS_TTL: Duration = Duration::from_secs(300);

/// Above this many names to ask NSS about, the lookups run on several threads.
const PARALLEL_LOOKUPS: usize = 64;

/// From this many rows in a page, its records are refreshed on several threads.
const PARALLEL_REFRESH: usize = 256;

/// Rows whose records a filtered search reads at once after its first batch.
const FIND_BATCH: usize = 1024;

/// The identity of a file: when it is unchanged, so are its contents (but see [`RACY_NS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileId {
    /// The identity of `meta`.
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// `lstat` of `path`; `None` when it does not exist.
    pub fn stat(path: &Path) -> io::Result<Option<FileId>> {
        match std::fs::symlink_metadata(path) {
            Ok(m) => Ok(Some(FileId::of(&m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the file changed so close to `read_at` (wall clock, ns) that it may change
    /// again without a new identity.
    fn racy(&self, read_at: i128) -> bool {
        self.mtime_ns.max(self.ctime_ns) >= read_at - RACY_NS
    }
}

fn racy(id: &Option<FileId>, read_at: i128) -> bool {
    id.as_ref().is_some_and(|id| id.racy(read_at))
}

/// The wall clock in ns (the clock file timestamps come from).
fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// Who a row of the listing is.
#[derive(Debug, Clone)]
pub enum Who {
    /// A record or a policy entry with no account.
    Nobody,
    /// An account of the files: uid and primary gid (groups from the [`UserDb`]).
    Files(u32, u32),
    /// An account NSS gave, with its groups.
    Nss(Arc<system::Account>),
}

/// A record's facts as last read, with the identity of its two files then.
#[derive(Debug)]
struct Cached {
    /// A hash of the identities ([`FileId`]) of the record and of the counters file.
    id: u64,
    racy: bool,
    facts: Facts,
}

/// The state directory as the store holds it open, for `fstatat` of its files (no path walk
/// per file).
struct Dir<'a> {
    path: &'a Path,
    fd: std::os::fd::BorrowedFd<'a>,
}

impl<'a> Dir<'a> {
    fn of(store: &'a Store) -> Dir<'a> {
        Dir {
            path: store.path(),
            fd: store.dir_fd(),
        }
    }

    /// `fstatat(AT_SYMLINK_NOFOLLOW)` of `name` in the directory; `None` when absent.
    fn stat(&self, name: &str) -> Result<Option<FileId>, IndexError> {
        use nix::sys::stat::{FileStat, fstatat};
        match fstatat(self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let FileStat {
                    st_dev,
                    st_ino,
                    st_size,
                    st_mtime,
                    st_mtime_nsec,
                    st_ctime,
                    st_ctime_nsec,
                    ..
                } = st;
                let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
                Ok(Some(FileId {
                    dev: st_dev,
                    ino: st_ino,
                    size: u64::try_from(st_size).unwrap_or(0),
                    mtime_ns: ns(st_mtime, st_mtime_nsec),
                    ctime_ns: ns(st_ctime, st_ctime_nsec),
                }))
            }
            Err(nix::errno::Errno::ENOENT) => Ok(None),
            Err(e) => Err(twofold_policy::StoreError::Io {
                path: self.path.join(name),
                op: "stat",
                source: io::Error::from(e),
            }
            .into()),
        }
    }
}

/// The identity hash of `name`'s record and counters files, whether both are absent, and
/// whether either is too recent to trust.
fn identity(dir: &Dir<'_>, name: &UserName) -> Result<(u64, bool, bool), IndexError> {
    let mut file = String::with_capacity(name.as_str().len() + 9);
    let mut stat = |ext: &str| {
        file.clear();
        file.push_str(name.as_str());
        file.push('.');
        file.push_str(ext);
        dir.stat(&file)
    };
    let read_at = now_ns();
    let (record, counters) = (stat("toml")?, stat("counters")?);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (record, counters).hash(&mut h);
    Ok((
        h.finish(),
        record.is_none() && counters.is_none(),
        racy(&record, read_at) || racy(&counters, read_at),
    ))
}

/// `name`'s facts: `cached` while its files keep their identity, else read again (the
/// files are `stat`ed before they are read, so a change during the read is seen next time).
fn refresh(
    store: &dyn StateStore,
    dir: &Dir<'_>,
    name: &UserName,
    cached: &mut Option<Cached>,
) -> Result<(), IndexError> {
    if store.as_files().is_none() {
        // A directory shared by other hosts: nothing here tells when it changed, so it is
        // read at every call (one search), never kept.
        *cached = Some(Cached {
            id: 0,
            racy: true,
            facts: Facts::of(&store.read(name)?),
        });
        return Ok(());
    }
    let (id, absent, is_racy) = identity(dir, name)?;
    if let Some(c) = cached
        && !c.racy
        && c.id == id
    {
        return Ok(());
    }
    let facts = if absent {
        Facts::default()
    } else {
        Facts::of(&store.read(name)?)
    };
    *cached = Some(Cached {
        id,
        racy: is_racy,
        facts,
    });
    Ok(())
}

/// Refreshes the records of a page (rows `start..` of `names`, `records` being theirs): on
/// several threads when there are many, as on the first listing after a start, when every
/// record is read (the files are independent; each is read as [`refresh`] reads it).
fn refresh_page(
    store: &dyn StateStore,
    dir: &Dir<'_>,
    names: &Names,
    start: usize,
    records: &mut [Option<Cached>],
) -> Result<(), IndexError> {
    let one = |i: usize, cached: &mut Option<Cached>| -> Result<(), IndexError> {
        let user = UserName::parse(names.get(start + i)).map_err(|e| IndexError::BadName {
            uid: 0,
            why: e.to_string(),
        })?;
        refresh(store, dir, &user, cached)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    if records.len() < PARALLEL_REFRESH || threads == 1 {
        return records
            .iter_mut()
            .enumerate()
            .try_for_each(|(i, c)| one(i, c));
    }
    let chunk = records.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = records
            .chunks_mut(chunk)
            .enumerate()
            .map(|(k, part)| {
                let one = &one;
                scope.spawn(move || {
                    part.iter_mut()
                        .enumerate()
                        .try_for_each(|(i, c)| one(k * chunk + i, c))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or(Err(IndexError::Reader("a reader thread panicked")))
            })
            .collect::<Result<Vec<()>, IndexError>>()
            .map(|_| ())
    })
}

/// Names NSS said it does not know, asked at `at`.
#[derive(Debug)]
struct Unknown {
    at: Instant,
    names: Names,
}

#[derive(Debug, Default)]
struct Listing {
    db: u64,
    dir: Option<FileId>,
    policy_users: u64,
    /// The listing used NSS answers: it is rebuilt when the oldest of them expires.
    expires: Option<Instant>,
    names: Names,
    who: Vec<Who>,
    records: Vec<Option<Cached>>,
}

#[derive(Debug, Default)]
struct Inner {
    db: Option<Arc<UserDb>>,
    db_generation: u64,
    /// When `db` was last found valid for account lookups ([`Index::user_db_view`]).
    db_checked: Option<Checked>,
    /// NSS's accounts for names not in the files, and when it was asked.
    nss_known: HashMap<Box<str>, (Instant, Arc<system::Account>)>,
    /// Names NSS did not know, in batches (sorted names, one allocation per batch).
    nss_unknown: Vec<Unknown>,
    listing: Option<Listing>,
    /// Records read for single users ([`Index::facts`]), bounded, each with when it was last
    /// found current ([`Index::facts_view`]).
    single: HashMap<Box<str>, (Cached, Option<Checked>)>,
}

/// Records kept for single-user calls before that memory starts again empty.
const SINGLE_MAX: usize = 4096;
/// Batches of unknown names kept; past it the oldest is dropped (asked again when needed).
const UNKNOWN_BATCHES: usize = 16;

/// The daemon's index (see the module's documentation). One lock.
#[derive(Debug)]
pub struct Index {
    etc: Etc,
    inner: Mutex<Inner>,
}

/// A failure to build the listing (the user database or the store).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// NSS failed (not "no such user").
    #[error("user database: {0}")]
    Lookup(#[from] system::LookupError),
    /// The store failed.
    #[error("state: {0}")]
    Store(#[from] twofold_policy::StoreError),
    /// A thread reading records stopped without an answer.
    #[error("reading records: {0}")]
    Reader(&'static str),
    /// A canonical name that cannot name a record.
    #[error("canonical name of uid {uid}: {why}")]
    BadName {
        /// The account's uid.
        uid: u32,
        /// What is wrong with it.
        why: String,
    },
}

impl Default for Index {
    fn default() -> Index {
        Index::new(Etc::default())
    }
}

impl Index {
    /// An empty index over the user database files of `etc`.
    pub fn new(etc: Etc) -> Index {
        Index {
            etc,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves caches, never a half-made decision: go on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The user database files this index reads.
    pub fn etc(&self) -> &Etc {
        &self.etc
    }

    /// The user database for account lookups, re-read if a file they use changed.
    pub fn user_db(&self) -> Arc<UserDb> {
        let mut inner = self.lock();
        Self::refresh_db(&self.etc, &mut inner, true)
    }

    /// [`Index::user_db`] for a read-only view: without checking the files while the snapshot `now`
    /// reports nothing new about them ([`crate::changes`]).
    pub fn user_db_view(&self, now: &Snapshot) -> Arc<UserDb> {
        let mut inner = self.lock();
        if let Some(db) = inner.db.as_ref()
            && now.quiet_since(Kind::Users, inner.db_checked)
        {
            return db.clone();
        }
        let stamp = now.stamp(Kind::Users);
        let db = Self::refresh_db(&self.etc, &mut inner, true);
        inner.db_checked = stamp.filter(|_| !db.racy);
        db
    }

    /// The user database, re-read if one of its files changed (`accounts_only`: one that
    /// account lookups use; a listing needs `login.defs` too).
    fn refresh_db(etc: &Etc, inner: &mut Inner, accounts_only: bool) -> Arc<UserDb> {
        let valid = |db: &UserDb| {
            if accounts_only {
                db.valid_for_accounts(etc)
            } else {
                db.valid(etc)
            }
        };
        match &inner.db {
            Some(db) if valid(db) => db.clone(),
            _ => {
                let db = Arc::new(UserDb::load(etc));
                inner.db = Some(db.clone());
                inner.db_generation += 1;
                db
            }
        }
    }

    /// The account of `uid`, as [`system::lookup_uid`] gives it: from the files when they
    /// answer for it, else through NSS (never from a cache of NSS answers).
    pub fn account_of_uid(&self, uid: u32) -> Result<Option<system::Account>, system::LookupError> {
        Self::account_in(&self.user_db(), uid).map(|(a, _)| a)
    }

    /// [`Index::account_of_uid`] for a read-only view ([`Index::user_db_view`]), and whether
    /// the user database files answered (`false`: NSS did).
    pub fn account_of_uid_view(
        &self,
        uid: u32,
        now: &Snapshot,
    ) -> Result<(Option<system::Account>, bool), system::LookupError> {
        Self::account_in(&self.user_db_view(now), uid)
    }

    fn account_in(
        db: &UserDb,
        uid: u32,
    ) -> Result<(Option<system::Account>, bool), system::LookupError> {
        if db.usable()
            && let Some(a) = db.account_of_uid(uid)
        {
            return Ok((Some(a), true));
        }
        system::lookup_uid(uid).map(|a| (a, false))
    }

    /// `name`'s facts for a single-user call: kept while its record and counters files keep
    /// their identity, else read again.
    pub fn facts(&self, store: &dyn StateStore, name: &UserName) -> Result<Facts, IndexError> {
        self.single_facts(store, name, None)
    }

    /// [`Index::facts`] for a read-only view: without checking the files while the snapshot `now`
    /// reports nothing new in the state directory ([`crate::changes`]).
    pub fn facts_view(
        &self,
        store: &dyn StateStore,
        name: &UserName,
        now: &Snapshot,
    ) -> Result<Facts, IndexError> {
        self.single_facts(store, name, Some(now))
    }

    fn single_facts(
        &self,
        store: &dyn StateStore,
        name: &UserName,
        now: Option<&Snapshot>,
    ) -> Result<Facts, IndexError> {
        let mut inner = self.lock();
        let entry = inner.single.remove(name.as_str());
        if let Some(now) = now
            && store.as_files().is_some()
            && let Some((cached, checked)) = &entry
            && now.quiet_since(Kind::State, *checked)
        {
            let facts = cached.facts.clone();
            if let Some(e) = entry {
                inner.single.insert(name.as_str().into(), e);
            }
            return Ok(facts);
        }
        let stamp = now.and_then(|c| c.stamp(Kind::State));
        let mut cached = entry.map(|(c, _)| c);
        refresh(store, &Dir::of(store.local()), name, &mut cached)?;
        let facts = cached.as_ref().map(|c| c.facts.clone()).unwrap_or_default();
        if inner.single.len() >= SINGLE_MAX {
            inner.single.clear();
        }
        if let Some(c) = cached {
            let checked = stamp.filter(|_| !c.racy);
            inner.single.insert(name.as_str().into(), (c, checked));
        }
        Ok(facts)
    }

    /// Calls `f` with each row of the listing whose name sorts after `after`, at most
    /// `limit` of them, in order: the canonical name, the account (with its groups) and the
    /// record's facts. The listing is every local account, every user with a record in
    /// `store` and every user `policy_users` names, one row per account. Returns the cursor
    /// of the rest (the last name given), or `""` when nothing follows.
    pub fn page<'a>(
        &self,
        store: &dyn StateStore,
        policy_users: impl Iterator<Item = &'a String> + Clone,
        after: &str,
        limit: usize,
        mut f: impl FnMut(&str, Option<&system::Account>, &Facts),
    ) -> Result<String, IndexError> {
        self.find(
            store,
            policy_users,
            "",
            after,
            limit,
            |name, account, facts| {
                f(name, account, facts);
                true
            },
        )
    }

    /// Like [`Index::page`], over the rows whose name starts with `prefix` (`""`: all) and
    /// that `take` takes (it returns whether it took the row): the rows of the prefix are a
    /// range of the sorted names, found by binary search (no row outside it is looked at);
    /// within it, rows are looked at in order, their records read a batch at a time, until
    /// `limit` rows were taken. Returns the last name taken when the page is full and rows of
    /// the range follow it (the next page may then be empty), else `""`.
    pub fn find<'a>(
        &self,
        store: &dyn StateStore,
        policy_users: impl Iterator<Item = &'a String> + Clone,
        prefix: &str,
        after: &str,
        limit: usize,
        mut take: impl FnMut(&str, Option<&system::Account>, &Facts) -> bool,
    ) -> Result<String, IndexError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let db = Self::refresh_db(&self.etc, inner, false);
        Self::refresh_listing(inner, &db, store, policy_users)?;
        let Some(listing) = inner.listing.as_mut() else {
            return Ok(String::new());
        };
        let dir = Dir::of(store.local());
        let (lo, hi) = listing.names.prefix_range(prefix);
        let mut i = listing.names.position_after(after).max(lo);
        let mut taken = 0usize;
        let mut last = None;
        // The first batch is what the page needs when every row is taken; a filter that
        // leaves rows out reads on in larger batches (on several threads when many).
        let mut batch = limit;
        while i < hi && taken < limit {
            let end = i.saturating_add(batch.max(1)).min(hi);
            if let Some(records) = listing.records.get_mut(i..end) {
                refresh_page(store, &dir, &listing.names, i, records)?;
            }
            while i < end && taken < limit {
                let name = listing.names.get(i);
                let files_account;
                let account = match listing.who.get(i) {
                    None | Some(Who::Nobody) => None,
                    Some(Who::Nss(a)) => Some(&**a),
                    Some(Who::Files(uid, gid)) => {
                        files_account = system::Account {
                            name: name.to_owned(),
                            typed: None,
                            uid: *uid,
                            gid: *gid,
                            groups: db.groups_of(name, *gid),
                        };
                        Some(&files_account)
                    }
                };
                let default = Facts::default();
                let facts = listing
                    .records
                    .get(i)
                    .and_then(Option::as_ref)
                    .map_or(&default, |c| &c.facts);
                if take(name, account, facts) {
                    taken += 1;
                    last = Some(i);
                }
                i += 1;
            }
            batch = batch.max(FIND_BATCH);
        }
        Ok(match last {
            Some(l) if taken >= limit && l + 1 < hi => listing.names.get(l).to_owned(),
            _ => String::new(),
        })
    }

    /// Rebuilds the listing when the user database, the state directory or the policy's
    /// names changed, or NSS answers it used expired; records already read are kept.
    fn refresh_listing<'a>(
        inner: &mut Inner,
        db: &UserDb,
        store: &dyn StateStore,
        policy_users: impl Iterator<Item = &'a String> + Clone,
    ) -> Result<(), IndexError> {
        let read_at = now_ns();
        let local = store.local();
        let dir = FileId::stat(local.path()).map_err(|e| twofold_policy::StoreError::Io {
            path: local.path().to_owned(),
            op: "stat",
            source: e,
        })?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for u in policy_users.clone() {
            u.hash(&mut h);
        }
        let policy_key = h.finish();
        let now = Instant::now();
        if let Some(l) = &inner.listing
            && store.as_files().is_some()
            && l.db == inner.db_generation
            && l.dir == dir
            && !racy(&l.dir, read_at)
            && l.policy_users == policy_key
            && l.expires.is_none_or(|e| e > now)
        {
            return Ok(());
        }
        // Every candidate name once, sorted; an alias is its account's row.
        let store_names = store.users()?;
        let local_fallback;
        let mut names: Vec<&str> = Vec::new();
        if db.usable() {
            names.extend(db.local());
        } else {
            local_fallback = crate::ops::local_accounts();
            for n in &local_fallback {
                names.push(n);
            }
        }
        for n in &store_names {
            names.push(n.as_str());
        }
        for n in policy_users {
            names.push(n);
        }
        names.sort_unstable();
        names.dedup();
        names.retain(|n| UserName::parse(n).is_ok());
        // NSS for the names the files do not hold: answers younger than NSS_TTL are used, the
        // rest asked (on several threads when many).
        inner
            .nss_known
            .retain(|_, (at, _)| now.duration_since(*at) < NSS_TTL);
        inner
            .nss_unknown
            .retain(|u| now.duration_since(u.at) < NSS_TTL);
        let in_files = |n: &str| db.usable() && db.find(n).is_some();
        let ask: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| {
                !in_files(n)
                    && !inner.nss_known.contains_key(*n)
                    && !inner.nss_unknown.iter().any(|u| u.names.contains(n))
            })
            .collect();
        if !ask.is_empty() {
            let mut unknown = Names::default();
            for (name, account) in nss_lookup_all(&ask)? {
                match account {
                    Some(a) => {
                        inner.nss_known.insert(name.into(), (now, Arc::new(a)));
                    }
                    // `ask` is sorted: so is the batch.
                    None => unknown.push(name),
                }
            }
            if unknown.len() > 0 {
                if inner.nss_unknown.len() >= UNKNOWN_BATCHES {
                    inner.nss_unknown.remove(0);
                }
                inner.nss_unknown.push(Unknown {
                    at: now,
                    names: unknown,
                });
            }
        }
        let mut oldest: Option<Instant> = None;
        let mut rows: Vec<(&str, Who)> = Vec::with_capacity(names.len());
        for n in names {
            if let Some((c, uid, gid)) = db.find(n).filter(|_| db.usable()) {
                rows.push((c, Who::Files(uid, gid)));
            } else if let Some((at, a)) = inner.nss_known.get(n) {
                oldest = Some(oldest.map_or(*at, |o| o.min(*at)));
                rows.push((a.name.as_str(), Who::Nss(a.clone())));
            } else {
                if let Some(u) = inner.nss_unknown.iter().find(|u| u.names.contains(n)) {
                    oldest = Some(oldest.map_or(u.at, |o| o.min(u.at)));
                }
                rows.push((n, Who::Nobody));
            }
        }
        // By canonical name; the first row of an account stays (stable sort).
        rows.sort_by(|a, b| a.0.cmp(b.0));
        rows.dedup_by(|a, b| a.0 == b.0);
        let old = inner.listing.take().unwrap_or_default();
        let mut listing = Listing {
            db: inner.db_generation,
            dir,
            policy_users: policy_key,
            expires: oldest.map(|o| o + NSS_TTL),
            names: Names::default(),
            who: Vec::with_capacity(rows.len()),
            records: Vec::with_capacity(rows.len()),
        };
        // Both sorted: the records already read are carried over in one pass.
        let mut old_records = old.records.into_iter();
        let mut j = 0;
        for (name, who) in rows {
            if let Err(e) = UserName::parse(name) {
                let uid = match &who {
                    Who::Files(uid, _) => *uid,
                    Who::Nss(a) => a.uid,
                    Who::Nobody => 0,
                };
                return Err(IndexError::BadName {
                    uid,
                    why: e.to_string(),
                });
            }
            let mut kept = None;
            while j < old.names.len() && old.names.get(j) <= name {
                let r = old_records.next().flatten();
                if old.names.get(j) == name {
                    kept = r;
                }
                j += 1;
            }
            listing.names.push(name);
            listing.who.push(who);
            listing.records.push(kept);
        }
        listing.names.text.shrink_to_fit();
        inner.listing = Some(listing);
        Ok(())
    }
}

/// NSS lookups of `names` (on several threads when there are many): names the files lack,
/// so NSS is asked directly ([`UserFiles::nss_only`]).
fn nss_lookup_all<'n>(
    names: &[&'n str],
) -> Result<Vec<(&'n str, Option<system::Account>)>, system::LookupError> {
    if names.len() < PARALLEL_LOOKUPS {
        return names
            .iter()
            .map(|n| Ok((*n, system::lookup_in(&UserFiles::nss_only(), n)?)))
            .collect();
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    let chunk = names.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = names
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|n| Ok((*n, system::lookup_in(&UserFiles::nss_only(), n)?)))
                        .collect::<Result<Vec<_>, system::LookupError>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(names.len());
        for h in handles {
            // A lookup thread that panicked (none does) leaves its names unknown.
            if let Ok(part) = h.join() {
                out.extend(part?);
            }
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests;
