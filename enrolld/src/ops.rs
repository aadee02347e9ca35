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
use twofold_policy::login::{Attempt, Outcome, describe_gate};
use twofold_policy::record::{Enrollment, Override, Record};
use twofold_policy::resolve::{RecordFacts, Subject, required_anywhere, resolve};
use twofold_policy::store::Store;
use twofold_policy::totp::{self, Params, Secret, Verdict};
use twofold_policy::{Mode, Policy, Status, UserName, recovery, system, throttle, time};
use zeroize::Zeroizing;

use crate::api::{Error, NewEnrollment, UserInfo};
use crate::index::{Facts, Index, IndexError, PolicyCache};
use crate::log::Log;

mod own_status;

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
}

impl Caller {
    /// Looks up the account of `uid` in the system's user database.
    pub fn from_uid(uid: u32) -> Result<Caller, Error> {
        match system::lookup_uid(uid) {
            Ok(Some(account)) => Ok(Caller { account }),
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
        format!("{} uid={}", value(&self.account.name), self.account.uid)
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
            Ok(Some(account)) => Ok(Caller { account }),
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
    fn store(&self) -> Result<std::sync::Arc<Store>, Error> {
        self.store_checked(None)
    }

    /// The store, for a read-only view ([`crate::changes`]) at `now` when given.
    fn store_checked(&self, now: Option<&Snapshot>) -> Result<std::sync::Arc<Store>, Error> {
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

    /// Root, or a member of the policy's `admin_group`.
    fn require_admin(&self, caller: &Caller, policy: &Policy, action: &str) -> Result<(), Error> {
        if caller.account.uid == 0 || caller.account.groups.contains(&policy.admin_group.value) {
            return Ok(());
        }
        self.log.notice(&format!(
            "caller={} action={action} result=denied: not an admin",
            caller.label()
        ));
        Err(Error::PermissionDenied(format!(
            "{action} is for administrators: root, or members of the group {:?} (admin_group in {})",
            policy.admin_group.value,
            self.policy_path.display()
        )))
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
        let no_groups = Vec::new();
        let subject = Subject {
            user: name,
            groups: account.map_or(&no_groups, |a| &a.groups),
            service: None,
        };
        let record_facts = RecordFacts {
            enrolled: facts.enrolled(),
            admin_override: facts.admin_override(),
            required_since: facts.required_since(),
        };
        let res = resolve(policy, &subject, &record_facts, now);
        let ov = facts.admin_override();
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
        }
    }

    /// The view of `name`, looked up in the user database: that of its account under the
    /// canonical name, or of a record with no account.
    fn info(&self, policy: &Policy, store: &Store, name: &UserName) -> Result<UserInfo, Error> {
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
        store: &Store,
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

    /// Changes `user`'s record under the lock, durably, then returns the new view.
    fn change(
        &self,
        policy: &Policy,
        user: &UserName,
        account: &system::Account,
        f: impl FnOnce(&mut Record, &mut twofold_policy::record::Counters, u64) -> Result<(), Error>,
    ) -> Result<UserInfo, Error> {
        let store = self.store()?;
        let lock = store.lock(user).map_err(state_error)?;
        let mut state = lock.read().map_err(state_error)?;
        let mut record = state
            .record
            .take()
            .unwrap_or_else(|| Record::new(user.as_str()));
        let before_counters = state.counters.clone();
        let now = time::now();
        f(&mut record, &mut state.counters, now)?;
        // A requirement meeting an unenrolled user starts the grace period now.
        let subject = Subject {
            user: user.as_str(),
            groups: &account.groups,
            service: None,
        };
        let res = resolve(policy, &subject, &RecordFacts::of(Some(&record)), now);
        if res.starts_grace {
            record.required_since = Some(now);
        }
        lock.write_record(&record).map_err(state_error)?;
        if state.counters != before_counters {
            lock.write_counters(&state.counters).map_err(state_error)?;
        }
        state.record = Some(record);
        Ok(Self::view(
            policy,
            user.as_str(),
            Some(account),
            &Facts::of(&state),
            now,
        ))
    }

    /// Admin: sets (or with `None` clears) `user`'s override.
    pub fn set_override(
        &self,
        caller: &Caller,
        user: &str,
        mode: Option<Mode>,
    ) -> Result<UserInfo, Error> {
        let action = match mode {
            Some(Mode::Required) => "require",
            Some(Mode::Disabled) => "exempt",
            Some(Mode::Optional) => "allow",
            None => "clear-override",
        };
        let policy = self.policy()?;
        self.require_admin(caller, &policy, action)?;
        let (name, account) = self.target(user)?;
        let info = self.change(&policy, &name, &account, |record, _, now| {
            record.admin_override = mode.map(|mode| Override {
                mode,
                by: caller.account.name.clone(),
                at: now,
            });
            // An admin's decision gives a fresh grace period if it leaves the user pending
            // (set again below when resolution says the requirement starts now).
            record.required_since = None;
            Ok(())
        })?;
        self.log.notice(&format!(
            "caller={} action={action} user={} result=ok status={}",
            caller.label(),
            value(&info.user),
            info.status
        ));
        Ok(info)
    }

    /// Admin: deletes `user`'s secret and recovery codes; a new grace period starts now.
    pub fn reset(&self, caller: &Caller, user: &str) -> Result<UserInfo, Error> {
        let policy = self.policy()?;
        self.require_admin(caller, &policy, "reset")?;
        let (name, account) = self.target(user)?;
        // A replacement the user began, proven against the enrollment being reset, ends too.
        self.drop_pending(account.uid);
        let info = self.change(&policy, &name, &account, |record, counters, _| {
            record.enrollment = None;
            record.required_since = None;
            // Every count, the per-user tier included: strangers' codes are checked again.
            throttle::reset(counters);
            Ok(())
        })?;
        self.log.notice(&format!(
            "caller={} action=reset user={} result=ok status={}",
            caller.label(),
            value(&info.user),
            info.status
        ));
        Ok(info)
    }

    /// Admin, or the user themself: one user's view.
    pub fn get_user(&self, caller: &Caller, user: &str) -> Result<UserInfo, Error> {
        let policy = self.policy()?;
        let name = UserName::parse(user)
            .map_err(|e| Error::InvalidArgument(format!("user name {user:?}: {e}")))?;
        let store = self.store()?;
        let info = self.info(&policy, &store, &name)?;
        // The caller themself is decided by the account (uid), not by the spelling.
        if info.uid != Some(caller.account.uid) {
            self.require_admin(caller, &policy, "show another user")?;
        }
        if info.uid.is_none() && !info.enrolled && info.override_mode.is_none() {
            return Err(Error::UnknownUser(format!(
                "no user {:?} in the user database and no record",
                name.as_str()
            )));
        }
        Ok(info)
    }

    /// Admin: every local account (uid in login.defs' UID_MIN..=UID_MAX), every user with a
    /// record and every user the policy names, one row per account (an alias, a second passwd
    /// line with the same uid, is its account's row, under the canonical name), by name.
    pub fn list_users(&self, caller: &Caller) -> Result<Vec<UserInfo>, Error> {
        let policy = self.policy()?;
        self.require_admin(caller, &policy, "list")?;
        let mut out = Vec::new();
        self.walk(&policy, "", usize::MAX, |info| out.push(info))?;
        Ok(out)
    }

    /// Admin: the rows of [`Daemon::list_users`] whose name sorts after `after` (`""`: from
    /// the start), at most `limit` of them ([`PAGE_MAX`] when 0 or more), and the cursor of
    /// the next page: the last name returned, or `""` when there is no more. The cursor is a
    /// position, not a name that must exist: a user removed meanwhile does not end the walk.
    pub fn list_users_page(
        &self,
        caller: &Caller,
        after: &str,
        limit: u32,
    ) -> Result<(Vec<UserInfo>, String), Error> {
        let policy = self.policy()?;
        self.require_admin(caller, &policy, "list")?;
        if after.len() > CURSOR_MAX {
            return Err(Error::InvalidArgument(format!(
                "cursor of {} bytes: a cursor is the `next` of the previous page (at most {CURSOR_MAX} bytes)",
                after.len()
            )));
        }
        let limit = if limit == 0 || limit > PAGE_MAX {
            PAGE_MAX
        } else {
            limit
        };
        let mut out = Vec::new();
        let next = self.walk(
            &policy,
            after,
            usize::try_from(limit).unwrap_or(usize::MAX),
            |info| out.push(info),
        )?;
        Ok((out, next))
    }

    /// Calls `f` with the view of each row after `after`, at most `limit`; the cursor of
    /// what follows (`""` at the end).
    fn walk(
        &self,
        policy: &Policy,
        after: &str,
        limit: usize,
        mut f: impl FnMut(UserInfo),
    ) -> Result<String, Error> {
        let store = self.store()?;
        let now = time::now();
        self.index
            .page(
                &store,
                policy.users.keys(),
                after,
                limit,
                |name, account, facts| f(Self::view(policy, name, account, facts, now)),
            )
            .map_err(index_error)
    }

    /// Admin: count per status, plus `total`.
    pub fn summary(&self, caller: &Caller) -> Result<HashMap<String, u32>, Error> {
        let policy = self.policy()?;
        self.require_admin(caller, &policy, "list")?;
        let mut statuses: HashMap<String, u32> = HashMap::new();
        let mut total = 0u32;
        self.walk(&policy, "", usize::MAX, |info| {
            *statuses.entry(info.status).or_default() += 1;
            total = total.saturating_add(1);
        })?;
        let mut out: HashMap<String, u32> = [
            Status::Pending,
            Status::Enforced,
            Status::Enabled,
            Status::Off,
            Status::Exempt,
        ]
        .iter()
        .map(|s| (s.to_string(), 0))
        .collect();
        for (status, n) in statuses {
            *out.entry(status).or_default() += n;
        }
        out.insert("total".into(), total);
        Ok(out)
    }

    /// Admin: the account-wide default mode, written to the main policy file.
    pub fn set_default_mode(&self, caller: &Caller, mode: &str) -> Result<(), Error> {
        let mode: Mode = mode.parse().map_err(|_| {
            Error::InvalidArgument(format!(
                "mode {mode:?}: expected required, optional or disabled"
            ))
        })?;
        let policy = self.policy()?;
        self.require_admin(caller, &policy, "set-default")?;
        crate::policy_edit::set_default_mode(&self.policy_path, mode).map_err(|e| match e {
            crate::policy_edit::EditError::Overridden(_) => Error::Forbidden(e.to_string()),
            _ => Error::Failed(e.to_string()),
        })?;
        self.log.notice(&format!(
            "caller={} action=set-default mode={mode} file={} result=ok",
            caller.label(),
            self.policy_path.display()
        ));
        Ok(())
    }

    /// Self: a fresh secret for the caller, pending until confirmed. Replacing an existing
    /// enrollment needs `proof`: a current code or a recovery code of it, checked like a login
    /// (throttled, replay-safe, consumed); without an enrollment `proof` is not used.
    pub fn begin_enrollment(
        &self,
        caller: &Caller,
        replace: bool,
        proof: &str,
    ) -> Result<NewEnrollment, Error> {
        self.purge_expired();
        let proof = Zeroizing::new(proof.to_owned());
        let policy = self.policy()?;
        let (name, account) = caller.myself()?;
        let store = self.store()?;
        let info = self.info_of(&policy, &store, &name, Some(account))?;
        if info.mode == Mode::Disabled.as_str() {
            return Err(Error::Forbidden(format!(
                "2FA is disabled for {} ({})",
                name.as_str(),
                info.rule
            )));
        }
        if info.enrolled && !replace {
            return Err(Error::AlreadyEnrolled(format!(
                "{} is already enrolled (since {}); replace the enrollment to use a new phone",
                name.as_str(),
                info.enrolled_at.map(time::human).unwrap_or_default()
            )));
        }
        let replaces = if info.enrolled {
            if proof.trim().is_empty() {
                self.log.notice(&format!(
                    "caller={} action=begin-enrollment replace=true result=refused: no proof",
                    caller.label()
                ));
                return Err(Error::InvalidCode(
                    "replacing an enrollment needs a current code from the old authenticator, or a recovery code; without either, an administrator can reset you (twofold reset)".into(),
                ));
            }
            // The proof is bound to the enrollment it was checked against: the one there before
            // and after the check (a change in between makes the caller begin again).
            let current = || -> Result<Option<[u8; 32]>, Error> {
                Ok(store
                    .read_record(&name)
                    .map_err(state_error)?
                    .and_then(|r| r.enrollment)
                    .map(|e| e.fingerprint()))
            };
            let before = current()?;
            self.prove(caller, &policy, &name, &proof, "begin-enrollment")?;
            let after = current()?;
            if before != after || after.is_none() {
                return Err(Error::NoPendingEnrollment(
                    "the enrollment changed while the proof was checked: begin again".into(),
                ));
            }
            after
        } else {
            None
        };
        let secret = Secret::generate().map_err(|e| failed("randomness", e))?;
        let params = policy.totp.params;
        let issuer = policy.issuer();
        let uri = totp::otpauth_uri(&secret, params, &issuer, name.as_str());
        let new = NewEnrollment {
            uri: uri.to_string(),
            secret: secret.to_base32().to_string(),
            label: format!("{issuer}:{}", name.as_str()),
            expires_in: self.enroll_timeout.as_secs(),
        };
        let mut pending = self
            .pending
            .lock()
            .map_err(|_| failed("pending", "poisoned"))?;
        pending.insert(
            caller.account.uid,
            Pending {
                user: name,
                secret,
                params,
                expires: std::time::Instant::now() + self.enroll_timeout,
                attempts: 0,
                replaces,
            },
        );
        drop(pending);
        self.log.notice(&format!(
            "caller={} action=begin-enrollment user={} result=ok replace={replace}",
            caller.label(),
            value(&caller.account.name)
        ));
        Ok(new)
    }

    /// Self: confirms the pending enrollment with a code; returns the recovery codes, once.
    pub fn confirm_enrollment(
        &self,
        caller: &Caller,
        code: &str,
    ) -> Result<(UserInfo, Vec<String>), Error> {
        self.purge_expired();
        let code = Zeroizing::new(code.to_owned());
        let policy = self.policy()?;
        let (name, account) = caller.myself()?;
        let (secret, params, step, replaces) = {
            let mut pending = self
                .pending
                .lock()
                .map_err(|_| failed("pending", "poisoned"))?;
            let none = || {
                Error::NoPendingEnrollment(
                    "no enrollment is waiting for a code: begin again (it expires after a few minutes)"
                        .into(),
                )
            };
            let p = pending.get_mut(&caller.account.uid).ok_or_else(none)?;
            if p.expires <= std::time::Instant::now() || p.user != name {
                pending.remove(&caller.account.uid);
                self.log.notice(&format!(
                    "caller={} action=confirm-enrollment result=refused: expired",
                    caller.label()
                ));
                return Err(Error::NoPendingEnrollment(
                    "the enrollment expired before it was confirmed: begin again".into(),
                ));
            }
            let verdict = totp::verify(
                &p.secret,
                p.params,
                &code,
                time::now(),
                policy.totp.window,
                None,
            )
            .map_err(|e| failed("totp", e))?;
            let Verdict::Accepted { step } = verdict else {
                p.attempts += 1;
                let left = CONFIRM_ATTEMPTS.saturating_sub(p.attempts);
                if left == 0 {
                    pending.remove(&caller.account.uid);
                }
                self.log.notice(&format!(
                    "caller={} action=confirm-enrollment result=refused: wrong code, {left} attempts left",
                    caller.label()
                ));
                return Err(Error::InvalidCode(if left == 0 {
                    "the code does not match; too many wrong codes: begin again".into()
                } else {
                    format!(
                        "the code does not match (check the phone's clock); {left} attempts left"
                    )
                }));
            };
            let p = pending.remove(&caller.account.uid).ok_or_else(none)?;
            (p.secret, p.params, step, p.replaces)
        };
        let codes = recovery::generate(policy.enrollment.recovery_codes)
            .map_err(|e| failed("randomness", e))?;
        let hashes = codes.hashes.clone();
        let info = self.change(&policy, &name, account, |record, counters, now| {
            // Only the enrollment the proof was for may be replaced: one made meanwhile (at a
            // login, or again after an admin's reset) is kept.
            if let Some(e) = &record.enrollment
                && replaces != Some(e.fingerprint())
            {
                return Err(Error::AlreadyEnrolled(
                    "enrolled meanwhile; to replace that enrollment, begin again with replace and a current code".into(),
                ));
            }
            record.enrollment = Some(Enrollment::new(&secret, params, now, hashes));
            // `required_since` stays: a grace period is granted once per requirement, so
            // enroll, disable, enroll cannot restart it (an admin reset grants a new one).
            // The code just used cannot log in again: its own step, which may be the next one
            // when the phone's clock runs ahead.
            counters.last_step = Some(step);
            Ok(())
        })?;
        self.log.notice(&format!(
            "caller={} action=enroll user={} result=ok status={} recovery_codes={}",
            caller.label(),
            value(&info.user),
            info.status,
            codes.codes.len()
        ));
        Ok((info, codes.codes.iter().map(|c| c.to_string()).collect()))
    }

    /// Drops the pending enrollment of `uid`, if any.
    fn drop_pending(&self, uid: u32) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&uid);
        }
    }

    /// Self: drops the caller's pending enrollment; whether there was one.
    pub fn cancel_enrollment(&self, caller: &Caller) -> Result<bool, Error> {
        self.purge_expired();
        let mut pending = self
            .pending
            .lock()
            .map_err(|_| failed("pending", "poisoned"))?;
        Ok(pending.remove(&caller.account.uid).is_some())
    }

    /// Checks a current code or a recovery code of `name` through the one check of the
    /// `policy` crate, like a login from this machine ([`LOCAL_SOURCE`]): throttled per source
    /// and per user, replay-safe, failures recorded, the code consumed.
    fn prove(
        &self,
        caller: &Caller,
        policy: &Policy,
        name: &UserName,
        code: &str,
        action: &str,
    ) -> Result<(), Error> {
        let store = self.store()?;
        let attempt = Attempt {
            input: code,
            source: LOCAL_SOURCE,
            from: "twofold-enrolld",
            window: policy.totp.window,
            at: time::now(),
        };
        let checked = store.check_attempt(name, &attempt).map_err(state_error)?;
        if let Some(note) = &checked.recovered {
            self.log.error(note);
        }
        let refused = |why: &str| {
            self.log.notice(&format!(
                "caller={} action={action} result=refused: {why}",
                caller.label()
            ));
        };
        match checked.outcome {
            Outcome::Code | Outcome::RecoveryCode { .. } => Ok(()),
            Outcome::NotEnrolled => Err(not_enrolled()),
            Outcome::Throttled(gate) => {
                let why = describe_gate(gate, LOCAL_SOURCE);
                refused(&why);
                Err(Error::Throttled(match gate {
                    throttle::Gate::Wait { wait, .. } => format!(
                        "too many wrong codes: try again in {wait} s (the code was not checked)"
                    ),
                    _ => "too many wrong codes for this account: log in with a code first, or ask an administrator (twofold reset)".into(),
                }))
            }
            Outcome::Replayed | Outcome::Invalid | Outcome::NotACode => {
                refused("wrong code");
                Err(Error::InvalidCode(
                    "the code does not match (a current code from the app, or a recovery code)"
                        .into(),
                ))
            }
        }
    }

    /// Self: removes the caller's enrollment; refused while any rule requires 2FA of them,
    /// for any service.
    pub fn disable(&self, caller: &Caller, code: &str) -> Result<UserInfo, Error> {
        let policy = self.policy()?;
        let (name, account) = caller.myself()?;
        let store = self.store()?;
        let state = store.read(&name).map_err(state_error)?;
        if !state.enrolled() {
            return Err(not_enrolled());
        }
        // Sessions opened under another name of this uid (an alias) have that name's groups
        // as well: required by either view, the user may not switch 2FA off.
        let facts = RecordFacts::of(state.record.as_ref());
        let now = time::now();
        let with_aliases = system::union(
            &account.groups,
            &self.index.user_db().alias_groups(account.uid),
        );
        if let Some(res) = required_anywhere(&policy, name.as_str(), &account.groups, &facts, now)
            .or_else(|| required_anywhere(&policy, name.as_str(), &with_aliases, &facts, now))
        {
            self.log.notice(&format!(
                "caller={} action=disable result=refused: required ({})",
                caller.label(),
                res.rule
            ));
            return Err(Error::Forbidden(format!(
                "2FA is required for {} ({}): only an administrator can exempt you",
                name.as_str(),
                res.rule
            )));
        }
        self.prove(caller, &policy, &name, code, "disable")?;
        self.drop_pending(account.uid);
        let info = self.change(&policy, &name, account, |record, _, _| {
            record.enrollment = None;
            // Nothing requires the user now: a later requirement is a new one, with its own
            // grace period.
            record.required_since = None;
            Ok(())
        })?;
        self.log.notice(&format!(
            "caller={} action=disable user={} result=ok status={}",
            caller.label(),
            value(&info.user),
            info.status
        ));
        Ok(info)
    }

    /// Self: replaces the caller's recovery codes; returns the new ones, once.
    pub fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        code: &str,
    ) -> Result<Vec<String>, Error> {
        let policy = self.policy()?;
        let (name, account) = caller.myself()?;
        self.prove(caller, &policy, &name, code, "regenerate-recovery-codes")?;
        let codes = recovery::generate(policy.enrollment.recovery_codes)
            .map_err(|e| failed("randomness", e))?;
        let hashes = codes.hashes.clone();
        self.change(&policy, &name, account, |record, _, _| {
            let e = record.enrollment.as_mut().ok_or_else(not_enrolled)?;
            e.recovery_codes = hashes;
            Ok(())
        })?;
        self.log.notice(&format!(
            "caller={} action=regenerate-recovery-codes user={} result=ok count={}",
            caller.label(),
            value(name.as_str()),
            codes.codes.len()
        ));
        Ok(codes.codes.iter().map(|c| c.to_string()).collect())
    }
}

/// The account's canonical name as a store name.
fn canonical_name(a: &system::Account) -> Result<UserName, Error> {
    UserName::parse(&a.name)
        .map_err(|e| Error::InvalidArgument(format!("canonical name of uid {}: {e}", a.uid)))
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
