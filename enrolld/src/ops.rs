//! Every operation of the daemon, synchronous, on the policy and the store of the `policy`
//! crate. The caller is a [`Caller`] that [`crate::service`] built from the bus (the sender's
//! Unix uid); no operation takes "who am I" as an argument.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::changes::{Changes, Checked, Kind, Snapshot};
use twofold_policy::StoreError;
use twofold_policy::logfmt::value;
use twofold_policy::record::Record;
use twofold_policy::resolve::{RecordFacts, Subject, network_differences, resolve};
use twofold_policy::store::{StateStore, Store};
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{Policy, UserName, system, time};

use crate::api::{Error, UserInfo};
use crate::index::{Facts, Index, IndexError, PolicyCache};
use crate::log::Log;

mod admin;
mod authenticators;
mod enroll;
mod import;
mod own_status;
mod preview;

/// The most rows `ListUsersPage` returns at once (and what a limit of 0 asks for).
pub const PAGE_MAX: u32 = 1000;
/// The longest cursor `ListUsersPage` accepts (a user name is far shorter).
pub const CURSOR_MAX: usize = 1024;

/// Wrong codes accepted for one pending enrollment before it is dropped.
pub const CONFIRM_ATTEMPTS: u32 = 5;
/// Where the daemon's code checks come from, for the throttle: this machine. Malware running as
/// the user guessing through the daemon is throttled like a console login.
pub const LOCAL_SOURCE: &str = "local";

/// Who called, as the bus says: the account of the sender's Unix uid.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account, with all its groups (supplementary included).
    pub account: system::Account,
    /// What polkit said about this caller managing others (`manage-others`), if it was asked.
    pub polkit: PolkitAdmin,
    /// Set when an admin check refused a caller polkit was not asked about: the service then
    /// asks polkit and runs the call again ([`crate::service`]).
    needs_admin: std::cell::Cell<bool>,
}

/// polkit's answer for a caller that is neither root nor in `admin_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolkitAdmin {
    /// Not asked (yet).
    NotAsked,
    /// polkit authorized the caller for `org.twofold.Enroll1.manage-others`.
    Granted,
    /// polkit refused, is absent, or failed: in words, for the refusal and the log.
    Refused(String),
}

impl Caller {
    /// `account`, polkit not asked.
    pub fn new(account: system::Account) -> Caller {
        Caller {
            account,
            polkit: PolkitAdmin::NotAsked,
            needs_admin: std::cell::Cell::new(false),
        }
    }

    /// Whether an admin check refused this caller before polkit was asked.
    pub fn needs_admin(&self) -> bool {
        self.needs_admin.get()
    }
    /// Looks up the account of `uid` in the system's user database.
    pub fn from_uid(uid: u32) -> Result<Caller, Error> {
        match system::lookup_uid(uid) {
            Ok(Some(account)) => Ok(Caller::new(account)),
            Ok(None) => Err(Error::PermissionDenied(format!(
                "uid {uid} has no account in the user database"
            ))),
            Err(e) => Err(Error::Failed(format!("user database: {e}"))),
        }
    }

    /// The caller as the target of a self method (already looked up: no second lookup).
    fn myself(&self) -> Result<(UserName, &system::Account), Error> {
        let name = UserName::parse(&self.account.name).map_err(|e| {
            Error::InvalidArgument(format!("user name {:?}: {e}", self.account.name))
        })?;
        Ok((name, &self.account))
    }

    /// The caller as log fields: `NAME uid=UID` (the value of a `caller=` field, then one more).
    fn label(&self) -> String {
        let by = if self.polkit == PolkitAdmin::Granted {
            " authorized_by=polkit"
        } else {
            ""
        };
        format!("{} uid={}{by}", value(&self.account.name), self.account.uid)
    }
}

/// A secret waiting for its first code, in memory only, bound to one uid (one per uid: a new
/// one replaces the old). The secret is wiped when this is dropped ([`Secret`] zeroizes).
struct Pending {
    user: UserName,
    secret: Secret,
    params: Params,
    expires: std::time::Instant,
    attempts: u32,
    /// The enrollment the caller proved (a current code or a recovery code of it) when
    /// beginning, by its [`Enrollment::fingerprint`]: the confirmation may replace that one
    /// enrollment and no other (not one made after an admin's reset, say).
    replaces: Option<[u8; 32]>,
    /// For an authenticator added to the enrollment `replaces` names: its name.
    adds: Option<String>,
}

/// The daemon's state: where the policy and the store are, and pending enrollments.
pub struct Daemon {
    /// The main policy file (drop-ins in `policy.d/` beside it).
    pub policy_path: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// How long a begun enrollment waits for its code.
    pub enroll_timeout: Duration,
    /// The log.
    pub log: Log,
    pending: Mutex<HashMap<u32, Pending>>,
    /// The user database files, the listing and the records as last read.
    index: Index,
    /// The policy as last parsed.
    policies: PolicyCache,
    /// The state directory as last opened, kept while its path leads to it, with when it was
    /// last found so (for the read-only views).
    open_store: Mutex<Option<(std::sync::Arc<Store>, Option<Checked>)>>,
    /// The backend the policy chose over that directory, kept while both the policy and the
    /// directory are the ones it was made for (a directory backend keeps its connection).
    backend: Mutex<Option<Backend>>,
    /// The directories of an LDAP backend with their connections, kept across policy reloads.
    directories: twofold_policy::store::ldap::Directories,
    /// What tells the read-only views that their files changed.
    changes: Changes,
    /// Each caller's own view as last made, for `GetStatus` from memory.
    own_views: own_status::OwnViews,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Failed(format!("{what}: {e}"))
}

/// A store error as the caller sees it: `Busy` when the user's lock stayed held past the
/// bounded wait (nothing was read, checked, counted or written), else `Failed`.
fn state_error(e: StoreError) -> Error {
    match e {
        StoreError::Busy { path, waited_ms } => Error::Busy(format!(
            "the 2FA record of {} stayed locked by another process (a login in progress, or a stopped one) for {waited_ms} ms: nothing was checked, counted or changed; try again in a moment",
            path.file_stem().map_or_else(
                || "this user".into(),
                |u| format!("{:?}", u.to_string_lossy())
            )
        )),
        e => failed("state", e),
    }
}

impl Daemon {
    /// A daemon over `policy_path` and `state_dir`.
    pub fn new(policy_path: PathBuf, state_dir: PathBuf, enroll_timeout: Duration) -> Daemon {
        let index = Index::default();
        let dropins = twofold_policy::config::dropin_dir(&policy_path);
        let changes = Changes::watch(
            &index.etc().files(),
            &policy_path,
            dropins.as_deref(),
            &state_dir,
        );
        Daemon {
            policy_path,
            state_dir,
            enroll_timeout,
            log: Log::open(),
            pending: Mutex::new(HashMap::new()),
            index,
            policies: PolicyCache::default(),
            open_store: Mutex::new(None),
            backend: Mutex::new(None),
            directories: Default::default(),
            changes,
            own_views: own_status::OwnViews::default(),
        }
    }

    /// The caller whose Unix uid the bus reported: its account and groups, from the user
    /// database files when they answer for it (parsed once, re-read when they change), else
    /// through NSS. Resolved at every call: group membership (admin rights) is never older
    /// than the files.
    pub fn caller(&self, uid: u32) -> Result<Caller, Error> {
        Self::caller_from(uid, self.index.account_of_uid(uid))
    }

    fn caller_from(
        uid: u32,
        found: Result<Option<system::Account>, system::LookupError>,
    ) -> Result<Caller, Error> {
        match found {
            Ok(Some(account)) => Ok(Caller::new(account)),
            Ok(None) => Err(Error::PermissionDenied(format!(
                "uid {uid} has no account in the user database"
            ))),
            Err(e) => Err(Error::Failed(format!("user database: {e}"))),
        }
    }

    /// The policy, parsed again only when its files changed.
    fn policy(&self) -> Result<std::sync::Arc<Policy>, Error> {
        self.policies
            .load(&self.policy_path)
            .map_err(|e| failed("policy", e))
    }

    /// The store: the one opened before while its path still leads to that directory and it
    /// still passes the open's checks ([`Store::still_current`], one `lstat`), else opened (and
    /// checked) again; created only when missing.
    fn store(&self) -> Result<std::sync::Arc<dyn StateStore>, Error> {
        self.store_checked(None)
    }

    /// The store the policy chose ([`twofold_policy::store::open_backend`]) over the state
    /// directory of this host, for a read-only view ([`crate::changes`]) at `now` when given.
    fn store_checked(
        &self,
        now: Option<&Snapshot>,
    ) -> Result<std::sync::Arc<dyn StateStore>, Error> {
        let local = self.local_store(now)?;
        let policy = self.policy()?;
        let mut kept = self.backend.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = kept.as_ref()
            && std::sync::Arc::ptr_eq(&b.policy, &policy)
            && std::sync::Arc::ptr_eq(&b.local, &local)
        {
            return Ok(b.store.clone());
        }
        let store =
            twofold_policy::store::open_backend_in(local.clone(), &policy, Some(&self.directories))
                .map_err(state_error)?;
        *kept = Some(Backend {
            policy,
            local,
            store: store.clone(),
        });
        Ok(store)
    }

    /// The state directory of this host, for a read-only view at `now` when given.
    fn local_store(&self, now: Option<&Snapshot>) -> Result<std::sync::Arc<Store>, Error> {
        let mut kept = self.open_store.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(now) = now
            && let Some((store, checked)) = kept.as_ref()
            && now.quiet_since(Kind::State, *checked)
        {
            return Ok(store.clone());
        }
        let stamp = now.and_then(|now| now.stamp(Kind::State));
        if let Some((store, checked)) = kept.as_mut()
            && store.still_current()
        {
            if now.is_some() {
                *checked = stamp;
            }
            return Ok(store.clone());
        }
        let store = std::sync::Arc::new(
            match Store::open(&self.state_dir) {
                Err(StoreError::Missing(_)) => Store::open_or_create(&self.state_dir),
                other => other,
            }
            .map_err(state_error)?,
        );
        *kept = Some((store.clone(), stamp));
        Ok(store)
    }

    /// Drops every expired pending enrollment from memory (its secret is wiped on drop); how
    /// many. Called at every enrollment call and periodically by the daemon's purge thread.
    pub fn purge_expired(&self) -> usize {
        let Ok(mut pending) = self.pending.lock() else {
            return 0;
        };
        let now = std::time::Instant::now();
        let before = pending.len();
        pending.retain(|_, p| p.expires > now);
        before - pending.len()
    }

    /// Whether the caller is root or a member of the policy's `admin_group` (no polkit).
    fn in_admin_group(caller: &Caller, policy: &Policy) -> bool {
        caller.account.uid == 0 || caller.account.groups.contains(&policy.admin_group.value)
    }

    /// Root, a member of the policy's `admin_group`, or a caller polkit authorized for
    /// `manage-others`. A caller polkit was not asked about is refused and marked
    /// ([`Caller::needs_admin`]) without a log line: the service asks polkit and calls again.
    fn require_admin(&self, caller: &Caller, policy: &Policy, action: &str) -> Result<(), Error> {
        if Self::in_admin_group(caller, policy) {
            return Ok(());
        }
        let base = format!(
            "{action} is for administrators: root, members of the group {:?} (admin_group in {}), or whom polkit authorizes for {}",
            policy.admin_group.value,
            self.policy_path.display(),
            crate::polkit::MANAGE_OTHERS
        );
        match &caller.polkit {
            PolkitAdmin::Granted => Ok(()),
            PolkitAdmin::NotAsked => {
                caller.needs_admin.set(true);
                Err(Error::PermissionDenied(base))
            }
            PolkitAdmin::Refused(why) => {
                self.log.notice(&format!(
                    "caller={} action={action} result=denied: not an admin; polkit: {why}",
                    caller.label()
                ));
                Err(Error::PermissionDenied(format!("{base}; polkit: {why}")))
            }
        }
    }

    /// Admin: nothing but the check (`Subscribe`, and its re-checks).
    pub fn check_admin(&self, caller: &Caller, action: &str) -> Result<(), Error> {
        let policy = self.policy()?;
        self.require_admin(caller, &policy, action)
    }

    /// A user name argument: well formed, and an account of the user database, under the
    /// account's canonical name (another name for the same uid acts on the same account).
    fn target(&self, user: &str) -> Result<(UserName, system::Account), Error> {
        let typed = UserName::parse(user)
            .map_err(|e| Error::InvalidArgument(format!("user name {user:?}: {e}")))?;
        match system::lookup(typed.as_str()) {
            Ok(Some(a)) => Ok((canonical_name(&a)?, a)),
            Ok(None) => Err(Error::UnknownUser(format!(
                "no user {:?} in the user database",
                typed.as_str()
            ))),
            Err(e) => Err(failed("user database", e)),
        }
    }

    /// The view of one user from its state.
    fn view(
        policy: &Policy,
        name: &str,
        account: Option<&system::Account>,
        facts: &Facts,
        now: u64,
    ) -> UserInfo {
        let subject = listing_subject(name, account);
        let record_facts = RecordFacts {
            enrolled: facts.enrolled(),
            admin_override: facts.admin_override(),
            required_since: facts.required_since(),
        };
        let res = resolve(policy, &subject, &record_facts, now);
        let ov = facts.admin_override();
        // A view has no origin: the network rules that would change the mode are listed.
        let networks: Vec<(String, String)> = network_differences(policy, &subject, ov)
            .into_iter()
            .map(|(net, mode)| (net.to_string(), mode.to_string()))
            .collect();
        UserInfo {
            user: name.to_owned(),
            uid: account.map(|a| a.uid),
            status: res.status.to_string(),
            mode: res.mode.to_string(),
            rule: res.rule.to_string(),
            enrolled: facts.enrolled(),
            enrolled_at: facts.enrolled_at(),
            override_mode: ov.map(|o| o.mode.to_string()),
            override_by: ov.map(|o| o.by.clone()),
            override_at: ov.map(|o| o.at),
            required_since: facts.required_since(),
            deadline: res.deadline,
            enroll_at_login: policy.enrollment.at_login,
            last_login: facts.last_login(),
            last_login_from: facts.last_login_from().map(str::to_owned),
            recovery_codes_left: facts.recovery_codes_left(),
            authenticators: facts.authenticators(),
            networks: (!networks.is_empty()).then_some(networks),
        }
    }

    /// The view of `name`, looked up in the user database: that of its account under the
    /// canonical name, or of a record with no account.
    fn info(
        &self,
        policy: &Policy,
        store: &dyn StateStore,
        name: &UserName,
    ) -> Result<UserInfo, Error> {
        let account = system::lookup(name.as_str()).map_err(|e| failed("user database", e))?;
        match &account {
            Some(a) => self.info_of(policy, store, &canonical_name(a)?, Some(a)),
            None => self.info_of(policy, store, name, None),
        }
    }

    /// The view of `name`, whose account is known already (its record through the index:
    /// read again only when its files changed).
    fn info_of(
        &self,
        policy: &Policy,
        store: &dyn StateStore,
        name: &UserName,
        account: Option<&system::Account>,
    ) -> Result<UserInfo, Error> {
        let facts = self.index.facts(store, name).map_err(index_error)?;
        Ok(Self::view(
            policy,
            name.as_str(),
            account,
            &facts,
            time::now(),
        ))
    }

    /// The users the listing shows beside the local accounts and those with a record: the
    /// policy's `[users.X]`, and, with a directory backend (a fleet, whose users come from the
    /// directory through NSS and are not in `/etc/passwd`), the members of the groups its
    /// `[groups.X]` rules name, so that a directory user a group rule requires is listed
    /// before they enroll.
    fn named_users(policy: &Policy, store: &dyn StateStore) -> Vec<String> {
        let mut out: Vec<String> = policy.users.keys().cloned().collect();
        if store.as_files().is_none() {
            for group in policy.groups.keys() {
                if let Ok(Some(g)) = nix::unistd::Group::from_name(group) {
                    out.extend(g.mem);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Changes `user`'s record under the lock, durably, then returns the new view.
    fn change(
        &self,
        policy: &Policy,
        user: &UserName,
        account: &system::Account,
        mut f: impl FnMut(&mut Record, &mut twofold_policy::record::Counters, u64) -> Result<(), Error>,
    ) -> Result<UserInfo, Error> {
        let store = self.store()?;
        let now = time::now();
        let done: Result<_, Error> = twofold_policy::store::change(&*store, user, |state| {
            let mut record = state
                .record
                .take()
                .unwrap_or_else(|| Record::new(user.as_str()));
            f(&mut record, &mut state.counters, now)?;
            // A requirement meeting an unenrolled user starts the grace period now.
            let subject = Subject {
                user: user.as_str(),
                groups: &account.groups,
                service: None,
                from: None,
            };
            let res = resolve(policy, &subject, &RecordFacts::of(Some(&record)), now);
            if res.starts_grace {
                record.required_since = Some(now);
            }
            state.record = Some(record);
            Ok(())
        })
        .map_err(state_error)?;
        let state = done?;
        Ok(Self::view(
            policy,
            user.as_str(),
            Some(account),
            &Facts::of(&state),
            now,
        ))
    }
}

/// The backend made for one policy over one state directory ([`Daemon::store`]).
struct Backend {
    policy: std::sync::Arc<Policy>,
    local: std::sync::Arc<Store>,
    store: std::sync::Arc<dyn StateStore>,
}

/// The account's canonical name as a store name.
fn canonical_name(a: &system::Account) -> Result<UserName, Error> {
    UserName::parse(&a.name)
        .map_err(|e| Error::InvalidArgument(format!("canonical name of uid {}: {e}", a.uid)))
}

/// The subject a listing resolves for a row: the name, its account's groups (none without an
/// account), no service.
fn listing_subject<'a>(name: &'a str, account: Option<&'a system::Account>) -> Subject<'a> {
    Subject {
        user: name,
        groups: account.map_or(&[], |a| a.groups.as_slice()),
        service: None,
        from: None,
    }
}

/// An account-wide mode given as a word (`InvalidArgument` for another word).
fn parse_mode(word: &str) -> Result<twofold_policy::Mode, Error> {
    word.parse().map_err(|_| {
        Error::InvalidArgument(format!(
            "mode {word:?}: expected required, optional or disabled"
        ))
    })
}

fn index_error(e: IndexError) -> Error {
    match e {
        IndexError::BadName { .. } => Error::InvalidArgument(e.to_string()),
        IndexError::Store(e @ StoreError::Busy { .. }) => state_error(e),
        e => Error::Failed(e.to_string()),
    }
}

fn not_enrolled() -> Error {
    Error::NotEnrolled("2FA is not set up for this account".into())
}

/// Local accounts (`/etc/passwd`) with a uid in the login.defs range.
pub fn local_accounts() -> Vec<String> {
    let (min, max) =
        crate::index::uid_range(&std::fs::read_to_string("/etc/login.defs").unwrap_or_default());
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid: u32 = f.nth(1)?.parse().ok()?;
            (uid >= min && uid <= max).then(|| name.to_owned())
        })
        .collect()
}
