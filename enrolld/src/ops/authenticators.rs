//! A user's several authenticators: list, add (begun with a proof, confirmed like an
//! enrollment), rename, remove. The target is always the caller ([`Caller`]), never an argument.

use twofold_policy::logfmt::value;
use twofold_policy::record::{MAX_AUTHENTICATORS, check_new_name};
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{Mode, Policy, UserName, system};
use zeroize::Zeroizing;

use super::{Caller, Daemon, not_enrolled, state_error};
use crate::api::{AuthenticatorInfo, Error, NewEnrollment, UserInfo};

impl Daemon {
    /// Self: the caller's authenticators, in the order they were added.
    pub fn list_authenticators(&self, caller: &Caller) -> Result<Vec<AuthenticatorInfo>, Error> {
        let (name, _) = caller.myself()?;
        let store = self.store()?;
        let record = store.read_record(&name).map_err(state_error)?;
        let e = record.and_then(|r| r.enrollment).ok_or_else(not_enrolled)?;
        Ok(e.authenticators
            .iter()
            .map(|a| AuthenticatorInfo {
                id: a.id,
                name: a.name.clone(),
                kind: a.kind.as_str().to_owned(),
                added_at: a.added_at,
                digits: u32::from(a.params.digits),
                period: a.params.period,
                algorithm: a.params.algorithm.as_str().to_owned(),
            })
            .collect())
    }

    /// Self: begins adding an authenticator named `name` to the caller's enrollment: a fresh
    /// secret, pending until `ConfirmEnrollment`. `proof` (a current code of an enrolled
    /// authenticator, or a recovery code; checked like a login and consumed) shows the caller
    /// holds the enrollment: malware running as the user, which has neither, cannot add its
    /// own authenticator. The proof is bound to the enrollment it was checked against.
    pub fn add_authenticator(
        &self,
        caller: &Caller,
        new_name: &str,
        proof: &str,
    ) -> Result<NewEnrollment, Error> {
        self.purge_expired();
        let proof = Zeroizing::new(proof.to_owned());
        let policy = self.policy()?;
        let (name, account) = caller.myself()?;
        let store = self.store()?;
        let info = self.info_of(&policy, &*store, &name, Some(account))?;
        if !info.enrolled {
            return Err(Error::NotEnrolled(
                "2FA is not set up for this account: enroll first (twofold enroll); the first authenticator comes with it".into(),
            ));
        }
        if info.mode == Mode::Disabled.as_str() {
            return Err(Error::Forbidden(format!(
                "2FA is disabled for {} ({})",
                name.as_str(),
                info.rule
            )));
        }
        check_new_name(new_name).map_err(Error::InvalidArgument)?;
        let current = || -> Result<Option<twofold_policy::record::Enrollment>, Error> {
            Ok(store
                .read_record(&name)
                .map_err(state_error)?
                .and_then(|r| r.enrollment))
        };
        let before = current()?.ok_or_else(not_enrolled)?;
        fits(&before, new_name)?;
        if proof.trim().is_empty() {
            return Err(Error::InvalidCode(
                "adding an authenticator needs a current code of one you have, or a recovery code"
                    .into(),
            ));
        }
        self.prove(caller, &policy, &name, &proof, "add-authenticator")?;
        let after = current()?.map(|e| e.fingerprint());
        if after != Some(before.fingerprint()) {
            return Err(Error::NoPendingEnrollment(
                "the enrollment changed while the proof was checked: begin again".into(),
            ));
        }
        let new = self.pend(caller, &policy, name, after, Some(new_name.to_owned()))?;
        self.log.notice(&format!(
            "caller={} action=begin-add-authenticator user={} name={} result=ok",
            caller.label(),
            value(&caller.account.name),
            value(new_name)
        ));
        Ok(new)
    }

    /// Adds the confirmed authenticator to the enrollment the proof was for (refused when the
    /// enrollment changed meanwhile: reset, replaced, another one added or removed).
    #[allow(clippy::too_many_arguments)] // the parts of a confirmed pending addition
    pub(super) fn add_confirmed(
        &self,
        policy: &Policy,
        name: &UserName,
        account: &system::Account,
        secret: &Secret,
        params: Params,
        step: u64,
        proved: Option<[u8; 32]>,
        new_name: &str,
    ) -> Result<UserInfo, Error> {
        self.change(policy, name, account, |record, counters, now| {
            let e = record.enrollment.as_mut().ok_or_else(not_enrolled)?;
            if proved != Some(e.fingerprint()) {
                return Err(Error::NoPendingEnrollment(
                    "the enrollment changed after the authenticator was begun: begin again".into(),
                ));
            }
            fits(e, new_name)?;
            let id = e.add(new_name, secret, params, 0, now).ok_or_else(|| {
                Error::Forbidden(
                    "no authenticator number is left in this enrollment: replace it to start again"
                        .into(),
                )
            })?;
            // The code just used cannot log in again.
            counters.last_steps.insert(id, step);
            Ok(())
        })
    }

    /// Self: renames an authenticator, with a proof as for `RemoveAuthenticator`: names are how
    /// the user tells the authenticators apart, so a name given by malware running as the user
    /// (swapping a lost phone's name with the one in hand) would make the user remove the
    /// wrong one. `which` is resolved to a number before the proof is checked: a change of
    /// names meanwhile does not redirect the rename.
    pub fn rename_authenticator(
        &self,
        caller: &Caller,
        which: &str,
        new_name: &str,
        proof: &str,
    ) -> Result<UserInfo, Error> {
        let proof = Zeroizing::new(proof.to_owned());
        let policy = self.policy()?;
        let (name, account) = caller.myself()?;
        check_new_name(new_name).map_err(Error::InvalidArgument)?;
        let store = self.store()?;
        let record = store.read_record(&name).map_err(state_error)?;
        let e = record
            .as_ref()
            .and_then(|r| r.enrollment.as_ref())
            .ok_or_else(not_enrolled)?;
        let target = e.find(which).ok_or_else(|| unknown(which))?;
        let (id, old) = (target.id, target.name.clone());
        if old == new_name {
            // Nothing to change: no write, no signal, no proof spent.
            return self.info_of(&policy, &*store, &name, Some(account));
        }
        let taken = |e: &twofold_policy::record::Enrollment| {
            if e.by_name(new_name).is_some_and(|a| a.id != id) {
                return Err(Error::InvalidArgument(format!(
                    "another authenticator is named {new_name:?}"
                )));
            }
            Ok(())
        };
        taken(e)?;
        self.prove(caller, &policy, &name, &proof, "rename-authenticator")?;
        let info = self.change(&policy, &name, account, |record, _, _| {
            let e = record.enrollment.as_mut().ok_or_else(not_enrolled)?;
            taken(e)?;
            let a = e
                .authenticators
                .iter_mut()
                .find(|a| a.id == id)
                .ok_or_else(|| unknown(which))?;
            a.name = new_name.to_owned();
            Ok(())
        })?;
        self.log.notice(&format!(
            "caller={} action=rename-authenticator user={} from={} to={} result=ok",
            caller.label(),
            value(name.as_str()),
            value(&old),
            value(new_name)
        ));
        Ok(info)
    }

    /// Self: removes an authenticator, with a proof as for `Disable` (a code of any of the
    /// authenticators, the one removed too, or a recovery code: a lost phone is removed with
    /// the other one's code). The last one goes only as `Disable` would: refused while some
    /// rule requires the user, otherwise the enrollment ends with it.
    pub fn remove_authenticator(
        &self,
        caller: &Caller,
        which: &str,
        proof: &str,
    ) -> Result<UserInfo, Error> {
        let proof = Zeroizing::new(proof.to_owned());
        let policy = self.policy()?;
        let (name, account) = caller.myself()?;
        let store = self.store()?;
        let state = store.read(&name).map_err(state_error)?;
        let e = state
            .record
            .as_ref()
            .and_then(|r| r.enrollment.as_ref())
            .ok_or_else(not_enrolled)?;
        let target = e.find(which).ok_or_else(|| unknown(which))?;
        let (id, target_name) = (target.id, target.name.clone());
        if e.authenticators.len() == 1 {
            self.refuse_if_required(
                caller,
                &policy,
                &name,
                account,
                &state,
                "remove-authenticator",
            )
            .map_err(|err| match err {
                Error::Forbidden(why) => Error::Forbidden(format!(
                    "{target_name:?} is your only authenticator and {why}; add another one first"
                )),
                other => other,
            })?;
        }
        let before = e.fingerprint();
        self.prove(caller, &policy, &name, &proof, "remove-authenticator")?;
        self.drop_pending(account.uid);
        let info = self.change(&policy, &name, account, |record, counters, _| {
            let e = record.enrollment.as_mut().ok_or_else(not_enrolled)?;
            if e.fingerprint() != before {
                return Err(Error::NoPendingEnrollment(
                    "the enrollment changed while the proof was checked: try again".into(),
                ));
            }
            e.authenticators.retain(|a| a.id != id);
            counters.last_steps.remove(&id);
            if e.authenticators.is_empty() {
                // The last one: 2FA is off, as after Disable (checked above that nothing
                // requires the user).
                record.turn_off();
            }
            Ok(())
        })?;
        self.log.notice(&format!(
            "caller={} action=remove-authenticator user={} name={} result=ok status={} authenticators={}",
            caller.label(),
            value(&info.user),
            value(&target_name),
            info.status,
            info.authenticators.unwrap_or(0)
        ));
        Ok(info)
    }
}

/// Whether `e` can take another authenticator named `new_name`.
fn fits(e: &twofold_policy::record::Enrollment, new_name: &str) -> Result<(), Error> {
    if e.by_name(new_name).is_some() {
        return Err(Error::InvalidArgument(format!(
            "an authenticator is already named {new_name:?}: choose another name"
        )));
    }
    if e.authenticators.len() >= MAX_AUTHENTICATORS {
        return Err(Error::Forbidden(format!(
            "at most {MAX_AUTHENTICATORS} authenticators: remove one first"
        )));
    }
    Ok(())
}

fn unknown(which: &str) -> Error {
    Error::InvalidArgument(format!(
        "no authenticator {which:?} (give its number or its name: twofold authenticator list)"
    ))
}
