//! The operations of a user on their own enrollment: begin, confirm, cancel, disable and new
//! recovery codes. The target is always the caller ([`Caller`]), never an argument.

use twofold_policy::logfmt::value;
use twofold_policy::login::{Attempt, Outcome, describe_gate};
use twofold_policy::record::Enrollment;
use twofold_policy::resolve::{RecordFacts, required_anywhere};
use twofold_policy::totp::{self, Secret, Verdict};
use twofold_policy::{Mode, Policy, UserName, recovery, system, throttle, time};
use zeroize::Zeroizing;

use super::{
    CONFIRM_ATTEMPTS, Caller, Daemon, LOCAL_SOURCE, Pending, failed, not_enrolled, state_error,
};
use crate::api::{Error, NewEnrollment, UserInfo};

impl Daemon {
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
        let info = self.info_of(&policy, &*store, &name, Some(account))?;
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
        let new = self.pend(caller, &policy, name, replaces, None)?;
        self.log.notice(&format!(
            "caller={} action=begin-enrollment user={} result=ok replace={replace}",
            caller.label(),
            value(&caller.account.name)
        ));
        Ok(new)
    }

    /// A fresh secret for `name` (the caller), pending until confirmed: a new enrollment
    /// (replacing the one `replaces` names, if any), or with `adds`, another authenticator of
    /// the enrollment `replaces` names.
    pub(super) fn pend(
        &self,
        caller: &Caller,
        policy: &Policy,
        name: UserName,
        replaces: Option<[u8; 32]>,
        adds: Option<String>,
    ) -> Result<NewEnrollment, Error> {
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
                adds,
            },
        );
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
        let (secret, params, step, replaces, adds) = {
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
            (p.secret, p.params, step, p.replaces, p.adds)
        };
        if let Some(added) = adds {
            let info = self.add_confirmed(
                &policy, &name, account, &secret, params, step, replaces, &added,
            )?;
            self.log.notice(&format!(
                "caller={} action=add-authenticator user={} name={} result=ok authenticators={}",
                caller.label(),
                value(&info.user),
                value(&added),
                info.authenticators.unwrap_or(0)
            ));
            return Ok((info, Vec::new()));
        }
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
            record.enrollment = Some(Enrollment::new(&secret, params, now, hashes.clone()));
            // `required_since` stays: a grace period is granted once per requirement, so
            // enroll, disable, enroll cannot restart it (an admin reset grants a new one).
            // The code just used cannot log in again: its own step, which may be the next one
            // when the phone's clock runs ahead.
            // A new enrollment numbers its authenticators from 1 again: no step of the old one
            // applies.
            counters.last_steps = std::collections::BTreeMap::from([(1, step)]);
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
    pub(super) fn drop_pending(&self, uid: u32) {
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
    pub(super) fn prove(
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
        self.refuse_if_required(caller, &policy, &name, account, &state, "disable")?;
        self.prove(caller, &policy, &name, code, "disable")?;
        self.drop_pending(account.uid);
        let info = self.change(&policy, &name, account, |record, _, _| {
            record.turn_off();
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

    /// Refuses (`Forbidden`) when some rule requires `name` for some service, under the
    /// account's groups or those of another name of its uid (an alias: sessions opened under
    /// it have that name's groups as well).
    pub(super) fn refuse_if_required(
        &self,
        caller: &Caller,
        policy: &Policy,
        name: &UserName,
        account: &system::Account,
        state: &twofold_policy::store::UserState,
        action: &str,
    ) -> Result<(), Error> {
        let facts = RecordFacts::of(state.record.as_ref());
        let now = time::now();
        let with_aliases = system::union(
            &account.groups,
            &self.index.user_db().alias_groups(account.uid),
        );
        if let Some(res) = required_anywhere(policy, name.as_str(), &account.groups, &facts, now)
            .or_else(|| required_anywhere(policy, name.as_str(), &with_aliases, &facts, now))
        {
            self.log.notice(&format!(
                "caller={} action={action} result=refused: required ({})",
                caller.label(),
                res.rule
            ));
            return Err(Error::Forbidden(format!(
                "2FA is required for {} ({}): only an administrator can exempt you",
                name.as_str(),
                res.rule
            )));
        }
        Ok(())
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
            e.recovery_codes = hashes.clone();
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
