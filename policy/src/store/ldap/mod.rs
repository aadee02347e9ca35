//! The LDAP backend: every host of a fleet reads and changes a user's state in one directory
//! (OpenLDAP with the OATH-LDAP schema that `slapo-otp` builds in, and twofold's own small
//! schema, `packaging/ldap/twofold.ldif`), so that a user enrolls once and logs in everywhere,
//! and an admin requires, exempts or resets them once.
//!
//! - **Layout**: see `map.rs` (the entries, their attributes). The policy stays in files on
//!   each host.
//! - **Every change is a compare-and-swap on the server.** A code is accepted only by one
//!   modify that deletes the token's old `oathTOTPLastTimeStep` value and adds the new one: the
//!   server refuses it when another host advanced the step first, and the check is made again
//!   on a fresh read (where the code is now a replay). A recovery code is used by deleting its
//!   hash value (refused if another host deleted it first). The account's consecutive failures
//!   (the per-user bound of [`crate::throttle`], fleet-wide) are counted the same way, and an
//!   attempt from a source the user never logged in from is counted *before* its code is
//!   checked, so that at most [`crate::throttle::USER_LIMIT`] of them are ever checked,
//!   whatever the number of hosts. Record changes (override, enrollment, reset) swap the
//!   account's `twofoldRevision`. The places the user logged in from, which that bound
//!   exempts, are the fleet's too (`twofoldKnownSource`): a stranger who spends the bound on
//!   one host does not lock the user out of their usual place on another.
//! - **Per host**: the per-source throttle counts stay in this host's files store
//!   ([`StateStore::local`]), under its per-user lock, which also serializes this host's own
//!   logins of a user (fewer lost races).
//! - **No threads**: a blocking client ([`crate::ldap`]) with a bound on every operation; one
//!   connection per store, opened at first use and opened again once if the server dropped it.
//! - **Unreachable directory**: [`StoreError::Unreachable`]; the caller fails closed for users
//!   who need a code, unless the policy keeps an offline copy (see [`offline`]).

mod check;
pub(crate) mod map;
pub mod offline;

use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use crate::ldap::{Auth, Conn, Entry, Filter, LdapError, Options, Scope};
use crate::record::Record;
use crate::username::UserName;

use super::{Abort, Result, StateStore, Store, StoreError, UserState};
use map::{Dns, Fetched};

/// How many times a change is tried against other writers before it gives up
/// ([`StoreError::Contended`]).
pub const TRIES: u32 = 16;

/// How the store binds: the policy's `[store.ldap]` `bind_dn` (SASL EXTERNAL without one).
pub use crate::config::store::Bind;

/// Where the directory is and how to use it: the policy's `[store.ldap]` as it was parsed
/// and checked, with what else of the policy the store needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `[store.ldap]`.
    pub directory: crate::config::store::LdapConfig,
    /// The policy's verification window, written into parameter entries for slapd's own OTP
    /// binds.
    pub window: u64,
    /// The offline copy, when the policy keeps one: its maximum age in seconds.
    pub offline_max_age: Option<u64>,
}

impl Settings {
    /// With `link_oath_users`: where the users' own entries are searched by `uid`.
    pub fn link_base(&self) -> Option<&str> {
        let d = &self.directory;
        d.link_oath_users
            .then_some(d.user_base.as_deref())
            .flatten()
    }
}

/// One directory and the connection to it, shared by the stores that use it: a long-lived
/// service (twofold-verifyd, the daemon) keeps it across requests ([`Directories`]), a login
/// makes its own.
pub struct Directory {
    settings: Settings,
    conn: Mutex<Option<Conn>>,
}

impl Directory {
    /// A directory as `settings` say; nothing is connected until first used.
    pub fn new(settings: Settings) -> Directory {
        Directory {
            settings,
            conn: Mutex::new(None),
        }
    }
}

/// The directories a long-lived service has used, with their connections: the same settings
/// get the same [`Directory`] (a policy change that changes them gets a new one).
#[derive(Default)]
pub struct Directories {
    kept: Mutex<Vec<Arc<Directory>>>,
}

impl std::fmt::Debug for Directories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Directories")
    }
}

impl Directories {
    /// At most this many are kept; the oldest goes first.
    const MAX: usize = 4;

    /// The directory of `settings`, kept or new.
    pub fn get(&self, settings: &Settings) -> Arc<Directory> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = kept.iter().find(|d| d.settings == *settings) {
            return d.clone();
        }
        let d = Arc::new(Directory::new(settings.clone()));
        if kept.len() >= Self::MAX {
            kept.remove(0);
        }
        kept.push(d.clone());
        d
    }
}

/// A fetch kept for the reads of one login: what it read, or why the directory was out of
/// reach.
type Kept = std::result::Result<Arc<Fetched>, String>;

/// The LDAP backend over this host's files store.
pub struct LdapStore {
    local: Arc<Store>,
    settings: Settings,
    dir: Arc<Directory>,
    /// A connection of this store's own, for when the shared one is in use.
    own: Mutex<Option<Conn>>,
    /// The last fetch of a user (before a prompt), for the reads that follow it in one login:
    /// what it read, or why the directory could not be reached (the gate before the prompt
    /// then does not try every server again: a directory that stopped answering holds a
    /// login for one round of its servers before the prompt, and one at the check).
    last: Mutex<Option<(UserName, Kept)>>,
}

impl std::fmt::Debug for LdapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapStore")
            .field("uris", &self.settings.directory.uris)
            .field("base", &self.settings.directory.base)
            .finish()
    }
}

impl LdapStore {
    /// A store over `local` with `settings`; nothing is connected until first used.
    pub fn new(local: Arc<Store>, settings: Settings) -> LdapStore {
        LdapStore::over(local, Arc::new(Directory::new(settings)))
    }

    /// A store over `local` using `dir` and its connection (shared with other stores).
    pub fn over(local: Arc<Store>, dir: Arc<Directory>) -> LdapStore {
        LdapStore {
            local,
            settings: dir.settings.clone(),
            dir,
            own: Mutex::new(None),
            last: Mutex::new(None),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn target(&self) -> String {
        self.settings.directory.uris.join(" ")
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Unreachable {
            target: self.target(),
            why: e.to_string(),
        }
    }

    fn directory(&self, dn: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Directory {
            target: format!("{} {dn}", self.target()),
            why: e.to_string(),
        }
    }

    /// An error of the client as a store error. Only a refusal the server itself sent (an
    /// LDAP result code) is the directory's answer; an answer that could not be read (TLS
    /// that failed to decrypt, bytes that are no LDAP, a response out of turn) is no answer,
    /// as a dropped connection is: someone on the network can cause either, so both fail
    /// closed whatever `on_error` says.
    fn ldap_error(&self, dn: &str, e: LdapError) -> StoreError {
        if broke_connection(&e) || e.is_unreachable() {
            self.unreachable(e)
        } else {
            self.directory(dn, e)
        }
    }

    /// The password of a simple bind, read from its file: root's (the effective uid's), a
    /// regular file, no access for group or others, at most 4 KiB; one trailing newline is
    /// not part of it.
    fn password(&self, file: &std::path::Path) -> Result<Zeroizing<Vec<u8>>> {
        use std::io::Read as _;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let insecure = |why: String| StoreError::Insecure {
            path: file.to_owned(),
            why,
        };
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(file)
            .map_err(|e| StoreError::Io {
                path: file.to_owned(),
                op: "open the directory's password file",
                source: e,
            })?;
        let meta = f.metadata().map_err(|e| StoreError::Io {
            path: file.to_owned(),
            op: "stat",
            source: e,
        })?;
        let owner = nix::unistd::geteuid().as_raw();
        if !meta.is_file() {
            return Err(insecure("is not a regular file".into()));
        }
        if meta.uid() != owner {
            return Err(insecure(format!(
                "owned by uid {}, expected {owner}: refusing to use it",
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(insecure(format!(
                "mode {:04o}, expected 0600: refusing to use it (chmod 600)",
                meta.mode() & 0o7777
            )));
        }
        // Room for all that is read at once: a buffer grown while reading would leave a copy
        // of the first part behind, unwiped.
        let mut buf = Zeroizing::new(Vec::with_capacity(4097));
        (&mut f)
            .take(4097)
            .read_to_end(&mut buf)
            .map_err(|e| StoreError::Io {
                path: file.to_owned(),
                op: "read",
                source: e,
            })?;
        if buf.len() > 4096 {
            return Err(insecure("is longer than 4 KiB: not a password".into()));
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        Ok(buf)
    }

    /// A new connection: each URI in order until one connects and the bind succeeds.
    fn connect(&self) -> Result<Conn> {
        let auth = match &self.settings.directory.bind {
            Bind::SaslExternal => Auth::SaslExternal,
            Bind::Simple { dn, password_file } => Auth::Simple {
                dn: dn.clone(),
                password: self.password(password_file)?,
            },
        };
        let options = Options {
            timeout: self.settings.directory.timeout,
            starttls: self.settings.directory.starttls,
            ca_file: self.settings.directory.ca_file.clone(),
        };
        let mut last = None;
        for uri in &self.settings.directory.uris {
            let url = match crate::ldap::LdapUrl::parse(uri) {
                Ok(u) => u,
                Err(e) => {
                    last = Some(self.unreachable(format!("{uri}: {e}")));
                    continue;
                }
            };
            // Connecting (TCP, TLS, StartTLS): any failure, a refused StartTLS included, is this
            // server or the path to it; the next server may do.
            let mut conn = match Conn::connect(&url, &options) {
                Ok(c) => c,
                Err(e) => {
                    last = Some(self.unreachable(format!("{uri}: {e}")));
                    continue;
                }
            };
            match conn.bind(&auth) {
                Ok(()) => return Ok(conn),
                // A refused bind is no outage: the store's own credentials are wrong (closed,
                // as for an outage: whoever is at the prompt did not cause it).
                Err(e @ LdapError::Result { .. }) if !e.is_unreachable() => {
                    return Err(StoreError::Unreachable {
                        target: uri.clone(),
                        why: format!("bind refused: {e}"),
                    });
                }
                // Out of reach, or an answer that cannot be read (TLS that fails, bytes that are
                // no LDAP: a broken path to this server): the next server may do.
                Err(e) => {
                    last = Some(self.unreachable(format!("{uri}: {e}")));
                }
            }
        }
        Err(last.unwrap_or_else(|| self.unreachable("no URI configured")))
    }

    /// Runs `op` on the directory's shared connection, connecting first if needed, or on a
    /// connection of this store's own while another request uses the shared one (a service
    /// never queues its requests behind one slow answer). A connection that was kept and
    /// turns out dropped by the server (an idle one) is made again once.
    fn with_conn<T>(
        &self,
        mut op: impl FnMut(&mut Conn) -> std::result::Result<T, LdapError>,
    ) -> std::result::Result<T, Failed> {
        use std::sync::TryLockError;
        match self.dir.conn.try_lock() {
            Ok(mut shared) => self.run(&mut shared, &mut op),
            Err(TryLockError::Poisoned(p)) => self.run(&mut p.into_inner(), &mut op),
            Err(TryLockError::WouldBlock) => {
                let mut own = self.own.lock().unwrap_or_else(|e| e.into_inner());
                self.run(&mut own, &mut op)
            }
        }
    }

    fn run<T>(
        &self,
        slot: &mut Option<Conn>,
        op: &mut impl FnMut(&mut Conn) -> std::result::Result<T, LdapError>,
    ) -> std::result::Result<T, Failed> {
        let kept = slot.is_some();
        for again in [false, true] {
            let conn = match slot {
                Some(c) => c,
                None => slot.insert(self.connect().map_err(Failed::Store)?),
            };
            match op(conn) {
                Ok(v) => return Ok(v),
                Err(e) if broke_connection(&e) || e.is_unreachable() => {
                    *slot = None;
                    if !kept || again {
                        return Err(Failed::Ldap(e));
                    }
                }
                Err(e) => return Err(Failed::Ldap(e)),
            }
        }
        Err(Failed::Store(self.unreachable("no connection")))
    }

    /// Everything of `user` in one subtree search under the account entry.
    fn fetch(&self, user: &UserName) -> Result<Fetched> {
        let dns = self.dns(user);
        let found = self.with_conn(|c| {
            match c.search(
                &dns.account,
                Scope::Sub,
                &Filter::Present("objectClass".into()),
                &[],
                0,
            ) {
                Err(e) if e.is_no_such_object() => Ok(Vec::new()),
                other => other,
            }
        });
        let entries = found.map_err(|f| f.into_store(self, &dns.account))?;
        Fetched::from_entries(&dns, entries).map_err(|why| self.directory(&dns.account, why))
    }

    /// [`LdapStore::fetch`], kept for the reads of the same login before its check. With
    /// offline copies, the user's copy follows what was read ([`offline::follow`]), and what
    /// copies used offline goes back to the directory ([`offline::sweep`]).
    fn fetch_kept(&self, user: &UserName) -> Result<Arc<Fetched>> {
        let fetched = (|| {
            let mut fetched = self.fetch(user)?;
            if self.settings.offline_max_age.is_some() {
                offline::sweep(self);
                if offline::follow(self, user, &fetched)? {
                    fetched = self.fetch(user)?;
                }
            }
            Ok(Arc::new(fetched))
        })();
        let kept = match &fetched {
            Ok(f) => Some(Ok(f.clone())),
            Err(StoreError::Unreachable { why, .. }) => Some(Err(why.clone())),
            Err(_) => None,
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = kept.map(|k| (user.clone(), k));
        fetched
    }

    /// The last fetch of `user`, if this store made one: what it read, or the directory out
    /// of reach.
    fn kept(&self, user: &UserName) -> Option<Result<Arc<Fetched>>> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .filter(|(u, _)| u == user)
            .map(|(_, f)| f.clone().map_err(|why| self.unreachable(why)))
    }

    fn forget(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn dns(&self, user: &UserName) -> Dns {
        Dns::of(&self.settings.directory.base, user)
    }

    /// The state of `user` from a fetch, with this host's counters (per-source throttle,
    /// known sources) beside the directory's.
    fn state_of(
        &self,
        user: &UserName,
        fetched: &Fetched,
        local: &crate::record::Counters,
    ) -> Result<UserState> {
        let dns = self.dns(user);
        let (record, dir_counters) = fetched
            .to_state(user)
            .map_err(|why| self.directory(&dns.account, why))?;
        let mut counters = local.clone();
        counters.last_steps = dir_counters.last_steps;
        counters.user_failures = dir_counters.user_failures;
        counters.last_login = dir_counters.last_login.or(local.last_login);
        counters.last_login_from = dir_counters
            .last_login_from
            .or(local.last_login_from.clone());
        // The places the user logged in from, on any host of the fleet (the bound they are
        // exempt from is the fleet's), the most recent ones.
        for (source, k) in dir_counters.known_sources {
            let kept = counters.known_sources.entry(source).or_insert(k.clone());
            kept.last = kept.last.max(k.last);
        }
        while counters.known_sources.len() > crate::throttle::KNOWN_SOURCES {
            let Some(oldest) = counters
                .known_sources
                .iter()
                .min_by_key(|(_, k)| k.last)
                .map(|(s, _)| s.clone())
            else {
                break;
            };
            counters.known_sources.remove(&oldest);
        }
        Ok(UserState {
            record,
            counters,
            counters_recovered: None,
        })
    }

    /// Makes sure the parameter entry of every authenticator of `record` exists.
    fn ensure_params(&self, dns: &Dns, record: &Record) -> Result<()> {
        let Some(e) = &record.enrollment else {
            return Ok(());
        };
        for a in &e.authenticators {
            let dn = dns.params_entry(a.params, self.settings.window);
            let attrs = map::new_params(a.params, self.settings.window);
            match self.with_conn(|c| attrs.with(|a| c.add(&dn, a))) {
                Ok(()) => {}
                Err(Failed::Ldap(e)) if e.code() == Some(68) => {}
                Err(f) => return Err(f.into_store(self, &dn)),
            }
        }
        Ok(())
    }

    /// One try of [`StateStore::update`]: `Ok(None)` when it lost a race (try again).
    fn try_update(
        &self,
        user: &UserName,
        local: &super::Locked<'_>,
        change: &mut dyn FnMut(&mut UserState) -> std::result::Result<(), Abort>,
    ) -> Result<Option<std::result::Result<UserState, Abort>>> {
        let dns = self.dns(user);
        let fetched = self.fetch(user)?;
        let local_state = local.read()?;
        let mut state = self.state_of(user, &fetched, &local_state.counters)?;
        let before = state.clone();
        if change(&mut state).is_err() {
            return Ok(Some(Err(Abort)));
        }
        let record = state
            .record
            .clone()
            .unwrap_or_else(|| Record::new(user.as_str()));
        let attrs = map::account_attrs(&record, &state.counters);
        let changed_dir = state.record != before.record
            || state.counters.last_steps != before.counters.last_steps
            || state.counters.user_failures != before.counters.user_failures
            || state.counters.last_login != before.counters.last_login
            || state.counters.known_sources != before.counters.known_sources;
        if changed_dir && fetched.account.is_none() {
            // Token entries live below the account entry: an empty one first (revision 1),
            // then the change is made on a fresh read, as any other.
            let entry = map::new_account(user, &[]);
            return match self.with_conn(|c| entry.with(|a| c.add(&dns.account, a))) {
                Ok(()) => Ok(None),
                Err(Failed::Ldap(e)) if e.is_conflict() => Ok(None),
                Err(f) => Err(f.into_store(self, &dns.account)),
            };
        }
        if changed_dir {
            // The user's own entry is found before anything is written.
            let link_target = self.link_target(user)?;
            self.ensure_params(&dns, &record)?;
            // New tokens first (inactive until the account lists them).
            let old_ids: Vec<u32> = fetched.active_ids();
            let new_auths = record
                .enrollment
                .as_ref()
                .map(|e| e.authenticators.as_slice())
                .unwrap_or_default();
            for a in new_auths.iter().filter(|a| !old_ids.contains(&a.id)) {
                let dn = dns.token(a.id);
                if fetched.tokens.contains_key(&a.id) {
                    // Left by a change that stopped half-way, or by an earlier enrollment:
                    // not active, so nobody uses it.
                    match self.with_conn(|c| c.delete(&dn)) {
                        Ok(()) => {}
                        Err(Failed::Ldap(e)) if e.is_no_such_object() => {}
                        Err(f) => return Err(f.into_store(self, &dn)),
                    }
                }
                let entry = map::new_token(
                    &dns,
                    user,
                    a,
                    self.settings.window,
                    state.counters.last_steps.get(&a.id).copied(),
                )
                .map_err(|why| self.directory(&dn, why))?;
                match self.with_conn(|c| entry.with(|a| c.add(&dn, a))) {
                    Ok(()) => {}
                    Err(Failed::Ldap(e)) if e.is_conflict() => return Ok(None),
                    Err(f) => return Err(f.into_store(self, &dn)),
                }
            }
            // The user's own entry points at the first token before the account lists it, and
            // lets go of it only once the account no longer does (below): a link refused (the
            // service account may not write people entries) stops the change before anything
            // is active, and a change that stops half-way never leaves an enrolled user whose
            // password alone binds.
            let first = new_auths.first().map(|a| a.id);
            if let (Some(_), Some(target)) = (first, &link_target) {
                self.link(&dns, target, first)?;
            }
            let written = match &fetched.account {
                Some(account) => {
                    let mods = map::account_mods(account, &attrs);
                    self.with_conn(|c| c.modify(&dns.account, &mods))
                }
                None => return Ok(None),
            };
            match written {
                Ok(()) => {}
                Err(Failed::Ldap(e)) if e.is_conflict() || e.is_no_such_object() => {
                    return Ok(None);
                }
                Err(f) => return Err(f.into_store(self, &dns.account)),
            }
            // Last steps set by the change on tokens that stay (an admin reset clears them
            // with the enrollment; an enrollment writes them with its new token).
            for a in new_auths.iter().filter(|a| old_ids.contains(&a.id)) {
                let (old, new) = (
                    before.counters.last_steps.get(&a.id).copied(),
                    state.counters.last_steps.get(&a.id).copied(),
                );
                if let (Some(new), true) = (new, old != new) {
                    let dn = dns.token(a.id);
                    let mods = map::step_mods(old, new, crate::time::now());
                    match self.with_conn(|c| c.modify(&dn, &mods)) {
                        Ok(()) => {}
                        Err(Failed::Ldap(e)) if e.is_conflict() => {}
                        Err(f) => return Err(f.into_store(self, &dn)),
                    }
                }
            }
            // Tokens no longer active: their entries go (a leftover is ignored anyway).
            for id in old_ids
                .iter()
                .filter(|id| !new_auths.iter().any(|a| a.id == **id))
            {
                let dn = dns.token(*id);
                let _ = self.with_conn(|c| c.delete(&dn));
            }
            if let (None, Some(target)) = (first, &link_target) {
                self.link(&dns, target, None)?;
            }
        }
        if state.counters != before.counters {
            local.write_counters(&state.counters)?;
        }
        // Keep an offline copy this host has in step with what was written.
        if self.settings.offline_max_age.is_some() && offline::has_copy(self, user)? {
            offline::refresh(self, user, local, &state)?;
        }
        Ok(Some(Ok(state)))
    }

    /// The users of the account entries under `ou=accounts` that match `filter`, sorted (none
    /// when `ou=accounts` is not there).
    fn accounts_matching(&self, filter: &Filter) -> Result<Vec<UserName>> {
        let accounts = format!("ou=accounts,{}", self.settings.directory.base);
        let found = self
            .with_conn(
                |c| match c.search(&accounts, Scope::One, filter, &["uid"], 0) {
                    Err(e) if e.is_no_such_object() => Ok(Vec::new()),
                    other => other,
                },
            )
            .map_err(|f| match f {
                Failed::Ldap(e) if e.code() == Some(4) => self.directory(
                    &accounts,
                    format!("{e}: the directory lists fewer accounts than it holds; lift its size limit for the service account (olcLimits: dn.exact=\"BIND_DN\" size=unlimited, packaging/ldap/README.md)"),
                ),
                f => f.into_store(self, &accounts),
            })?;
        let mut out: Vec<UserName> = found
            .iter()
            .filter_map(|e: &Entry| UserName::parse(e.first_str("uid")?).ok())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// With `link_oath_users`: the user's own entry under `user_base`, found before anything
    /// is written (a failure then leaves no change made half-way). Found by `uid`, which the
    /// directory matches without regard to case, and which a user allowed to write their own
    /// entry could add to it: only entries carrying the name exactly count, and of several,
    /// only the one named `uid=NAME`. `None`: no entry there (a local account), nothing to
    /// link. Several still: refused.
    fn link_target(&self, user: &UserName) -> Result<Option<Entry>> {
        let Some(user_base) = self.settings.link_base() else {
            return Ok(None);
        };
        // Not twofold's own account entry (`uid=NAME,ou=accounts,BASE`), which a user base
        // above twofold's base (the directory's suffix) also holds.
        let filter = Filter::And(vec![
            Filter::Equal("uid".into(), user.as_str().as_bytes().to_vec()),
            Filter::Not(Box::new(Filter::Equal(
                "objectClass".into(),
                b"twofoldAccount".to_vec(),
            ))),
        ]);
        let found = self
            .with_conn(|c| {
                c.search(
                    user_base,
                    Scope::Sub,
                    &filter,
                    &["objectClass", "uid", "oathTOTPToken"],
                    LINK_CANDIDATES,
                )
            })
            .map_err(|f| f.into_store(self, user_base))?;
        let exact: Vec<Entry> = found
            .into_iter()
            .filter(|e| {
                e.get("uid")
                    .is_some_and(|vs| vs.iter().any(|v| v.as_slice() == user.as_str().as_bytes()))
            })
            .collect();
        let named = |e: &Entry| {
            crate::ldap::normalize_dn(&e.dn)
                .and_then(|rdns| rdns.into_iter().next())
                .is_some_and(|rdn| {
                    rdn == [(
                        "uid".to_owned(),
                        user.as_str().to_ascii_lowercase().into_bytes(),
                    )]
                })
        };
        let mut exact = exact;
        if exact.len() > 1 {
            exact.retain(named);
        }
        match exact.len() {
            0 | 1 => Ok(exact.pop()),
            n => Err(self.directory(
                user_base,
                format!("{n} entries with uid={user}: cannot link one"),
            )),
        }
    }

    /// With `link_oath_users`: points the user's own entry (`target`, from
    /// [`LdapStore::link_target`]) at token `first` (or unlinks it), so that slapd's OTP
    /// binds ask for password+code. Nothing is written when the entry is linked so already.
    fn link(&self, dns: &Dns, target: &Entry, first: Option<u32>) -> Result<()> {
        use crate::ldap::{Mod, ModOp};
        let has_class = target
            .get("objectClass")
            .is_some_and(|v| v.iter().any(|c| c.eq_ignore_ascii_case(b"oathTOTPUser")));
        let linked_to = |dn: &str| {
            target.get("oathTOTPToken").is_some_and(|v| {
                v.len() == 1 && v.iter().all(|t| t.eq_ignore_ascii_case(dn.as_bytes()))
            })
        };
        let mods = match first {
            Some(id) if has_class && linked_to(&dns.token(id)) => return Ok(()),
            Some(id) => {
                let mut m = Vec::new();
                if !has_class {
                    m.push(Mod {
                        op: ModOp::Add,
                        attr: "objectClass".into(),
                        values: vec![b"oathTOTPUser".to_vec()],
                    });
                }
                m.push(Mod {
                    op: ModOp::Replace,
                    attr: "oathTOTPToken".into(),
                    values: vec![dns.token(id).into_bytes()],
                });
                m
            }
            None if has_class => vec![
                Mod {
                    op: ModOp::Delete,
                    attr: "objectClass".into(),
                    values: vec![b"oathTOTPUser".to_vec()],
                },
                Mod {
                    op: ModOp::Delete,
                    attr: "oathTOTPToken".into(),
                    values: Vec::new(),
                },
            ],
            None => return Ok(()),
        };
        self.with_conn(|c| c.modify(&target.dn, &mods))
            .map_err(|f| f.into_store(self, &target.dn))
    }
}

/// At most this many entries are read when looking for a user's own entry by `uid`
/// (`link_oath_users`): more is a directory twofold cannot make sense of.
const LINK_CANDIDATES: u32 = 16;

/// Whether `e` left the connection out of step with the server (anything but a result the
/// server sent): the answer, if any, could not be read.
fn broke_connection(e: &LdapError) -> bool {
    !matches!(e, LdapError::Result { .. })
}

/// Why an operation failed: the client's error, or the store's (connecting, the password).
enum Failed {
    Ldap(LdapError),
    Store(StoreError),
}

impl Failed {
    fn into_store(self, store: &LdapStore, dn: &str) -> StoreError {
        match self {
            Failed::Ldap(e) => store.ldap_error(dn, e),
            Failed::Store(e) => e,
        }
    }
}

impl StateStore for LdapStore {
    fn backend(&self) -> &'static str {
        "ldap"
    }

    fn local(&self) -> &Store {
        &self.local
    }

    fn read_record(&self, user: &UserName) -> Result<Option<Record>> {
        match self.fetch_kept(user) {
            Ok(fetched) => {
                let dns = self.dns(user);
                fetched
                    .to_state(user)
                    .map(|(r, _)| r)
                    .map_err(|why| self.directory(&dns.account, why))
            }
            Err(e @ StoreError::Unreachable { .. }) => offline::record_or(self, user, e),
            Err(e) => Err(e),
        }
    }

    fn read(&self, user: &UserName) -> Result<UserState> {
        let fetched = self.fetch_kept(user)?;
        let (local, recovered) = self.local.read_counters_lenient(user)?;
        let mut state = self.state_of(user, &fetched, &local)?;
        state.counters_recovered = recovered;
        Ok(state)
    }

    fn users(&self) -> Result<Vec<UserName>> {
        let filter = Filter::Equal("objectClass".into(), b"twofoldAccount".to_vec());
        self.accounts_matching(&filter)
    }

    fn users_with_override(&self, mode: crate::mode::Mode) -> Result<Vec<UserName>> {
        let filter = Filter::And(vec![
            Filter::Equal("objectClass".into(), b"twofoldAccount".to_vec()),
            Filter::Equal(
                map::at::OVERRIDE_MODE.into(),
                mode.as_str().as_bytes().to_vec(),
            ),
        ]);
        self.accounts_matching(&filter)
    }

    fn probe(&self) -> Result<()> {
        for ou in ["accounts", "params"] {
            let dn = format!("ou={ou},{}", self.settings.directory.base);
            let filter = Filter::Present("objectClass".into());
            let found = self.with_conn(|c| c.search(&dn, Scope::Base, &filter, &["1.1"], 1));
            let missing = match found {
                Ok(found) => found.is_empty(),
                // An entry the account may not read is hidden as missing (slapd answers
                // noSuchObject rather than disclose it).
                Err(Failed::Ldap(e)) if e.is_no_such_object() => true,
                Err(f) => return Err(f.into_store(self, &dn)),
            };
            if missing {
                return Err(self.directory(
                    &dn,
                    "no such entry, or the service account may not read it: create ou=accounts \
                     and ou=params under the base, and give the account write access to the \
                     base (packaging/ldap/README.md)",
                ));
            }
        }
        Ok(())
    }

    fn update(
        &self,
        user: &UserName,
        change: &mut dyn FnMut(&mut UserState) -> std::result::Result<(), Abort>,
    ) -> Result<Option<UserState>> {
        self.forget();
        let local = self.local.lock(user)?;
        for _ in 0..TRIES {
            match self.try_update(user, &local, change)? {
                Some(Ok(state)) => return Ok(Some(state)),
                Some(Err(Abort)) => return Ok(None),
                None => continue,
            }
        }
        Err(StoreError::Contended {
            target: self.dns(user).account,
            tries: TRIES,
        })
    }

    fn gate_before_prompt(
        &self,
        user: &UserName,
        source: &str,
        now: u64,
    ) -> Result<crate::throttle::Gate> {
        check::gate_before_prompt(self, user, source, now)
    }

    fn check_attempt(
        &self,
        user: &UserName,
        attempt: &crate::login::Attempt<'_>,
    ) -> Result<crate::login::Checked> {
        check::check_attempt(self, user, attempt)
    }
}
