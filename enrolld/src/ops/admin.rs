//! The admin operations: overrides, reset, one user, the listing (pages, searches, the
//! summary) and the account-wide default. Each one first checks that the caller is an admin
//! ([`Daemon::require_admin`]).

use std::collections::HashMap;

use twofold_policy::logfmt::value;
use twofold_policy::record::Override;
use twofold_policy::{Mode, Policy, Status, UserName, throttle, time};

use super::{CURSOR_MAX, Caller, Daemon, PAGE_MAX, index_error, parse_mode};
use crate::api::{Error, UserInfo};

impl Daemon {
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
        let info = self.info(&policy, &*store, &name)?;
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
        let mut out = Vec::new();
        let next = self.walk(&policy, after, clamp_limit(limit), |info| out.push(info))?;
        Ok((out, next))
    }

    /// Admin: the rows of [`Daemon::list_users`] whose canonical name starts with `prefix`
    /// (`""`: all) and, when `statuses` is not empty, whose status is one of them; by name,
    /// after the cursor `after`, at most `limit` ([`PAGE_MAX`] when 0 or more). Returns the
    /// cursor of the next page (the last name returned), or `""` when nothing follows; with
    /// a status filter, a full page's cursor may lead to an empty last page. The prefix is a
    /// range of the sorted names (binary search); the status filter looks at the rows of that
    /// range in order and stops once the page is full.
    pub fn find_users(
        &self,
        caller: &Caller,
        prefix: &str,
        statuses: &[String],
        after: &str,
        limit: u32,
    ) -> Result<(Vec<UserInfo>, String), Error> {
        let policy = self.policy()?;
        self.require_admin(caller, &policy, "list")?;
        for (what, arg) in [("prefix", prefix), ("cursor", after)] {
            if arg.len() > CURSOR_MAX {
                return Err(Error::InvalidArgument(format!(
                    "{what} of {} bytes: at most {CURSOR_MAX} bytes (a user name is far shorter)",
                    arg.len()
                )));
            }
        }
        let wanted = parse_statuses(statuses)?;
        let limit = clamp_limit(limit);
        let store = self.store()?;
        let now = time::now();
        let mut out = Vec::new();
        let named = Self::named_users(&policy, &*store);
        let next = self
            .index
            .find(
                &*store,
                named.iter(),
                prefix,
                after,
                limit,
                |name, account, facts| {
                    let info = Self::view(&policy, name, account, facts, now);
                    let take =
                        wanted.is_empty() || wanted.iter().any(|s| s.as_str() == info.status);
                    if take {
                        out.push(info);
                    }
                    take
                },
            )
            .map_err(index_error)?;
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
        let named = Self::named_users(policy, &*store);
        self.index
            .page(
                &*store,
                named.iter(),
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
        let mode = parse_mode(mode)?;
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
}

/// A page's limit: [`PAGE_MAX`] when 0 or more.
fn clamp_limit(limit: u32) -> usize {
    let limit = if limit == 0 || limit > PAGE_MAX {
        PAGE_MAX
    } else {
        limit
    };
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// The statuses of a search, each one of the five (`InvalidArgument` otherwise).
fn parse_statuses(statuses: &[String]) -> Result<Vec<Status>, Error> {
    // Each status at most once: a row is then compared with five words at most, however long
    // the list a caller sends (a million repeats made one call hold the index for minutes).
    if statuses.len() > Status::ALL.len() {
        return Err(Error::InvalidArgument(format!(
            "{} statuses: at most the {} there are (pending, enforced, enabled, off, exempt), each once",
            statuses.len(),
            Status::ALL.len()
        )));
    }
    let mut out: Vec<Status> = Vec::with_capacity(statuses.len());
    for word in statuses {
        let status = Status::ALL
            .iter()
            .copied()
            .find(|s| s.as_str() == word)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "status {word:?}: expected pending, enforced, enabled, off or exempt"
                ))
            })?;
        if !out.contains(&status) {
            out.push(status);
        }
    }
    Ok(out)
}
