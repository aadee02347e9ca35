//! The admin imports: a user's `~/.google_authenticator`, read by the daemon itself, and a
//! token the caller read from a `users.oath` (`twofold import`). Each first checks that the
//! caller is an admin (`require_admin`, as `Reset` does), then enrolls the user with
//! the same secret and parameters: a user already enrolled in twofold is skipped. The log
//! says who imported whom and the outcome, never a secret or a code.

use subtle::ConstantTimeEq;
use twofold_policy::import::{self, ReadRefusal, Token};
use twofold_policy::logfmt::value;
use twofold_policy::record::{Counters, Enrollment, MAX_AUTHENTICATORS, Record};
use twofold_policy::totp::{Algorithm, Params, Secret};
use twofold_policy::{Policy, UserName, recovery, system, time};

use super::{Caller, Daemon};
use crate::api::{Error, ImportReport, ImportToken, UserInfo};

/// The name of the imported authenticator, by where it came from.
pub const GOOGLE_AUTHENTICATOR: &str = "google-authenticator";
/// The name of an authenticator imported from a `users.oath`.
pub const OATH: &str = "oath";

/// What an import did: the report, and the user's new view when the record changed (for
/// `UserChanged`).
pub type Imported = (ImportReport, Option<UserInfo>);

fn skipped(user: &str, reason: impl Into<String>) -> ImportReport {
    ImportReport {
        user: user.to_owned(),
        outcome: "skipped".into(),
        reason: Some(reason.into()),
        ..ImportReport::default()
    }
}

/// The one place an import writes the store's model. With no enrollment: a new one whose one
/// authenticator (number 1, named after its source) is `token` with its clock offset, the
/// scratch codes' `hashes` as its recovery codes. With one and `add`: `token` as one more
/// authenticator, its scratch codes added to the recovery codes. Either way `last_step` is
/// the new authenticator's last accepted step. Returns the new authenticator's number.
#[allow(clippy::too_many_arguments)]
fn enroll_imported(
    record: &mut Record,
    counters: &mut Counters,
    token: &Token,
    name: &str,
    hashes: Vec<String>,
    last_step: u64,
    now: u64,
    add: bool,
) -> Result<u32, Error> {
    let id = match record.enrollment.as_mut() {
        None => {
            let enrollment =
                Enrollment::new_named(name, &token.secret, token.params, token.skew, now, hashes);
            counters.last_steps.clear();
            let id = enrollment.authenticators.first().map_or(1, |a| a.id);
            record.enrollment = Some(enrollment);
            id
        }
        Some(_) if !add => {
            return Err(Error::AlreadyEnrolled(format!(
                "already enrolled in twofold; remove or reset first (`twofold reset {}`), or add it beside the others with --add",
                record.user
            )));
        }
        Some(e) => {
            if e.authenticators.len() >= MAX_AUTHENTICATORS {
                return Err(Error::Forbidden(format!(
                    "already has {MAX_AUTHENTICATORS} authenticators, the most there can be"
                )));
            }
            if e.by_name(name).is_some() {
                return Err(Error::Forbidden(format!(
                    "already has an authenticator named {name:?}"
                )));
            }
            let mut same = false;
            for a in &e.authenticators {
                if let Ok(s) = a.secret() {
                    same |= bool::from(s.as_bytes().ct_eq(token.secret.as_bytes()));
                }
            }
            if same {
                return Err(Error::Forbidden(
                    "already has an authenticator with this secret".into(),
                ));
            }
            let id = e
                .add(name, &token.secret, token.params, token.skew, now)
                .ok_or_else(|| {
                    Error::Forbidden(
                        "no authenticator number is left in this enrollment: reset it first".into(),
                    )
                })?;
            e.recovery_codes.extend(hashes);
            id
        }
    };
    counters.last_steps.insert(id, last_step);
    Ok(id)
}

impl Daemon {
    /// Admin: imports `user`'s `~/.google_authenticator` (see the module doc).
    pub fn import_google_authenticator(
        &self,
        caller: &Caller,
        user: &str,
        dry_run: bool,
        add: bool,
    ) -> Result<Imported, Error> {
        let policy = self.policy()?;
        self.require_admin(caller, &policy, "import")?;
        let (name, account) = self.target(user)?;
        let report = |r: ImportReport| (self.log_import(caller, "google-authenticator", r), None);
        // The home directory from the user database (getpwnam_r), by the canonical name.
        let home = match nix::unistd::User::from_name(name.as_str()) {
            Ok(Some(u)) if u.uid.as_raw() == account.uid => u.dir,
            Ok(_) => {
                return Ok(report(skipped(
                    name.as_str(),
                    "the user database changed during the import",
                )));
            }
            Err(e) => return Err(Error::Failed(format!("user database: {}", e.desc()))),
        };
        let (bytes, written) = match import::read_google_authenticator_written(&home, account.uid) {
            Ok(b) => b,
            Err(ReadRefusal::Missing) => {
                return Ok(report(skipped(
                    name.as_str(),
                    format!("no {}/{}", home.display(), import::GA_FILE),
                )));
            }
            Err(ReadRefusal::Refused(why)) => return Ok(report(skipped(name.as_str(), why))),
        };
        let mut token = match import::parse_google_authenticator(&bytes) {
            Ok(t) => t,
            Err(why) => return Ok(report(skipped(name.as_str(), why))),
        };
        // A code accepted while the old module reset its clock offset is in no DISALLOW_REUSE.
        import::after_last_write(&mut token, written);
        drop(bytes);
        let (r, info) = self.import(
            &policy,
            &name,
            &account,
            &token,
            GOOGLE_AUTHENTICATOR,
            dry_run,
            add,
        )?;
        Ok((report(r).0, info))
    }

    /// Admin: imports a token the caller read (a `users.oath` line) for `user`.
    pub fn import_token(
        &self,
        caller: &Caller,
        user: &str,
        token: &ImportToken,
        dry_run: bool,
        add: bool,
    ) -> Result<Imported, Error> {
        let policy = self.policy()?;
        self.require_admin(caller, &policy, "import")?;
        // Root's alone: the secret comes from the caller, so an admin who is not root (a
        // polkit or admin_group grant) could plant one they know beside anyone's, root's
        // included, more quietly than an exemption and outliving their grant. Its one
        // legitimate source, a users.oath, is a root-only file anyway.
        if caller.account.uid != 0 {
            self.log.notice(&format!(
                "caller={} action=import-token user={} result=denied: not root",
                caller.label(),
                value(user)
            ));
            return Err(Error::PermissionDenied(
                "importing a secret given by the caller (twofold import oath) is for root: a users.oath is root's file; run it as root".into(),
            ));
        }
        let (name, account) = self.target(user)?;
        let source = token.name.as_deref().unwrap_or(OATH);
        if source.is_empty()
            || source.len() > 32
            || !source
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Error::InvalidArgument(
                "an authenticator name is 1 to 32 of a-z, 0-9 and -".into(),
            ));
        }
        let token = token_of(token)?;
        let (r, info) = self.import(&policy, &name, &account, &token, source, dry_run, add)?;
        Ok((self.log_import(caller, source, r), info))
    }

    fn log_import(&self, caller: &Caller, source: &str, r: ImportReport) -> ImportReport {
        let outcome = match &r.reason {
            Some(why) => format!("{} reason={}", r.outcome.replace(' ', "-"), value(why)),
            None => r.outcome.replace(' ', "-"),
        };
        self.log.notice(&format!(
            "caller={} action=import from={source} user={} result={outcome}",
            caller.label(),
            value(&r.user),
        ));
        r
    }

    /// Enrolls `name` with `token`, or with `add` adds it beside an enrollment (or, with
    /// `dry_run`, says what it would do).
    #[allow(clippy::too_many_arguments)]
    fn import(
        &self,
        policy: &Policy,
        name: &UserName,
        account: &system::Account,
        token: &Token,
        source: &str,
        dry_run: bool,
        add: bool,
    ) -> Result<Imported, Error> {
        let user = name.as_str();
        let window = policy.totp.window;
        let mut notes = Vec::new();
        if let Some((before, after)) = token.window
            && (before, after) != (window, window)
        {
            let old = if before == after {
                format!("±{before}")
            } else {
                format!("-{before}/+{after}")
            };
            notes.push(format!(
                "window {old} {} to the policy's ±{window}",
                if before.max(after) > window {
                    "reduced"
                } else {
                    "widened"
                }
            ));
        }
        notes.extend(token.notes.iter().cloned());
        let now = time::now();
        let last_step = import::last_step_at_import(token, now, window);
        if token.last_step.is_none() {
            notes.push(format!(
                "codes shown before the import are refused; the app's codes work again {} s after it",
                wait_secs(token, last_step, now, window)
            ));
        }
        let hashes = token
            .scratch
            .iter()
            .map(|c| match recovery::hash_scratch(c) {
                Some(Ok(h)) => Ok(h),
                Some(Err(e)) => Err(Error::Failed(e.to_string())),
                None => Err(Error::Failed("a scratch code is not 8 digits".into())),
            })
            .collect::<Result<Vec<String>, Error>>()?;
        let report = ImportReport {
            user: user.to_owned(),
            outcome: if dry_run { "would import" } else { "imported" }.into(),
            reason: None,
            digits: Some(token.params.digits),
            period: Some(token.params.period),
            recovery_codes: Some(u32::try_from(hashes.len()).unwrap_or(u32::MAX)),
            skew: (token.skew != 0).then_some(token.skew),
            notes,
        };
        if dry_run {
            // What the write would do, done on a copy of the record as it is now.
            let store = self.store()?;
            let state = store.read(name).map_err(super::state_error)?;
            let mut probe = state.record.unwrap_or_else(|| Record::new(user));
            let mut counters = state.counters;
            let adding = probe.enrollment.is_some();
            return match enroll_imported(
                &mut probe,
                &mut counters,
                token,
                source,
                hashes,
                last_step,
                now,
                add,
            ) {
                Ok(id) => {
                    let mut report = report;
                    if adding {
                        report.notes.insert(0, added_note(id));
                    }
                    Ok((report, None))
                }
                Err(e) => Ok((skipped(user, error_text(&e)), None)),
            };
        }
        let mut added = None;
        let result = self.change(policy, name, account, |record, counters, at| {
            let adding = record.enrollment.is_some();
            let id = enroll_imported(
                record,
                counters,
                token,
                source,
                hashes.clone(),
                last_step,
                at,
                add,
            )?;
            added = adding.then_some(id);
            Ok(())
        });
        match result {
            Ok(info) => {
                let mut report = report;
                match added {
                    Some(id) => report.notes.insert(0, added_note(id)),
                    // A new enrollment: one the user had begun is for another secret.
                    None => self.drop_pending(account.uid),
                }
                Ok((report, Some(info)))
            }
            Err(e @ (Error::AlreadyEnrolled(_) | Error::Forbidden(_))) => {
                Ok((skipped(user, error_text(&e)), None))
            }
            Err(e) => Err(e),
        }
    }
}

fn added_note(id: u32) -> String {
    format!(
        "added beside the existing authenticators as number {id}; its scratch codes join the recovery codes"
    )
}

fn error_text(e: &Error) -> String {
    match e {
        Error::AlreadyEnrolled(m) | Error::Forbidden(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Seconds from `now` until the app's code (at the current step + skew) is newer than
/// `last_step`.
fn wait_secs(token: &Token, last_step: u64, now: u64, _window: u64) -> u64 {
    let p = token.params.period.max(1);
    // The app shows the code of step s from s × p − skew × p on the server's clock.
    let first = last_step.saturating_add(1);
    let at = i128::from(first) * i128::from(p) - i128::from(token.skew) * i128::from(p);
    u64::try_from((at - i128::from(now)).max(0)).unwrap_or(0)
}

/// The token of an `ImportToken` argument, checked.
fn token_of(t: &ImportToken) -> Result<Token, Error> {
    let bad = |m: String| Error::InvalidArgument(m);
    let secret = Secret::from_base32(&t.secret)
        .map_err(|_| bad("the secret is not base32 of at least 128 bits".into()))?;
    if !(6..=8).contains(&t.digits) {
        return Err(bad(format!("{} digits: expected 6, 7 or 8", t.digits)));
    }
    if !import::STEP_RANGE.contains(&t.period) {
        return Err(bad(format!(
            "a step of {} s: twofold imports {} to {} s",
            t.period,
            import::STEP_RANGE.start(),
            import::STEP_RANGE.end()
        )));
    }
    let algorithm = match &t.algorithm {
        None => Algorithm::Sha1,
        Some(a) => a.parse().map_err(bad)?,
    };
    let skew = t.skew.unwrap_or(0);
    if skew.unsigned_abs().saturating_mul(t.period) > import::MAX_SKEW_SECS {
        return Err(bad(format!(
            "a clock offset of {skew} steps is more than 25 hours"
        )));
    }
    Ok(Token {
        secret,
        params: Params {
            algorithm,
            digits: t.digits,
            period: t.period,
        },
        skew,
        last_step: t.last_step,
        ahead: t.ahead.unwrap_or(0).min(100),
        window: None,
        scratch: Vec::new(),
        skew_learned: false,
        notes: Vec::new(),
    })
}
