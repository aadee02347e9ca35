//! The login flow of `pam_sm_authenticate`.

use std::ffi::CStr;

use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_TEXT_INFO, PamResultCode};
use pam::conv::Conv;
use pam::items::{RHost, Service};
use pam::module::PamHandle;
use twofold_policy::record::Counters;
use twofold_policy::resolve::{RecordFacts, Subject, resolve};
use twofold_policy::store::{Locked, Store, StoreError};
use twofold_policy::totp::{self, Verdict};
use twofold_policy::{Policy, Status, UserName, recovery, system, time};

use zeroize::Zeroizing;

use crate::args::{self, Args, OnError};
use crate::enroll::EnrollError;
use crate::ffi::{Level, syslog};

/// Failures of this layer, mapped to a PAM code once, in [`authenticate`].
enum Failure {
    /// Bad module arguments: the admin must fix the PAM configuration.
    Config(String),
    /// No usable user name, or no such user.
    User(String),
    /// Policy, store or user database unreadable.
    Unavailable(String),
    /// The conversation failed (the client went away).
    Conversation(PamResultCode),
    /// Wrong, replayed or missing code.
    Refused(String),
}

/// What a completed flow decided.
enum Decision {
    /// A valid code (or recovery code) was given.
    Success(String),
    /// twofold has nothing to ask: the rest of the stack decides.
    Ignore(String),
}

/// Who is logging in, for log lines.
struct Ctx {
    user: String,
    service: Option<String>,
    source: String,
}

impl Ctx {
    fn log(&self, level: Level, rule: &str, outcome: &str, detail: &str) {
        syslog(
            level,
            &format!(
                "pam_twofold({}:auth): user={} source={} rule={} outcome={} {}",
                self.service.as_deref().unwrap_or("unknown"),
                self.user,
                self.source,
                rule,
                outcome,
                detail
            ),
        );
    }
}

/// Text shown in logs only: cut to `max` characters, control characters made visible.
fn printable(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn item_str(c: &CStr) -> String {
    printable(&c.to_string_lossy(), 128)
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Unavailable(format!("state: {e}"))
    }
}

/// The application's conversation function.
fn conversation<'a>(pamh: &'a PamHandle) -> Result<Conv<'a>, Failure> {
    match pamh.get_item::<Conv>() {
        Ok(Some(c)) => Ok(c),
        _ => Err(Failure::Conversation(PamResultCode::PAM_CONV_ERR)),
    }
}

/// Asks one question; the answer (possibly a code or a secret) is wiped when dropped. No answer
/// at all reads as an empty one.
pub fn ask(
    conv: &Conv<'_>,
    style: pam::constants::PamMessageStyle,
    prompt: &str,
) -> Result<Zeroizing<String>, PamResultCode> {
    let answer = conv.send(style, prompt)?;
    Ok(Zeroizing::new(
        answer
            .as_ref()
            .and_then(|a| a.as_str().ok())
            .map(str::to_owned)
            .unwrap_or_default(),
    ))
}

/// `pam_sm_authenticate`.
pub fn authenticate(pamh: &mut PamHandle, raw_args: &[&CStr]) -> PamResultCode {
    let service = match pamh.get_item::<Service>() {
        Ok(Some(s)) => Some(item_str(s.0)),
        _ => None,
    };
    let source = match pamh.get_item::<RHost>() {
        Ok(Some(h)) if !h.0.to_bytes().is_empty() => item_str(h.0),
        _ => "local".into(),
    };
    let mut ctx = Ctx {
        user: "?".into(),
        service,
        source,
    };
    let parsed = args::parse(raw_args.iter().map(|a| a.to_bytes()));
    let on_error = parsed.as_ref().map(|a| a.on_error).unwrap_or(OnError::Deny);
    let result = parsed
        .map_err(Failure::Config)
        .and_then(|a| run(pamh, &a, &mut ctx));
    match result {
        Ok(Decision::Success(rule)) => {
            ctx.log(Level::Notice, &rule, "success", "");
            PamResultCode::PAM_SUCCESS
        }
        Ok(Decision::Ignore(rule)) => {
            ctx.log(Level::Notice, &rule, "ignore", "no code needed");
            PamResultCode::PAM_IGNORE
        }
        Err(Failure::Config(why)) => {
            ctx.log(
                Level::Err,
                "-",
                "refused",
                &format!("bad PAM configuration: {why}"),
            );
            PamResultCode::PAM_SERVICE_ERR
        }
        Err(Failure::User(why)) => {
            ctx.log(Level::Notice, "-", "refused", &why);
            PamResultCode::PAM_USER_UNKNOWN
        }
        Err(Failure::Unavailable(why)) => match on_error {
            OnError::Deny => {
                ctx.log(
                    Level::Err,
                    "-",
                    "refused",
                    &format!("failing closed: {why}"),
                );
                PamResultCode::PAM_AUTHINFO_UNAVAIL
            }
            OnError::Allow => {
                ctx.log(
                    Level::Err,
                    "-",
                    "ignore",
                    &format!("on_error=allow applies: {why}"),
                );
                PamResultCode::PAM_IGNORE
            }
        },
        Err(Failure::Conversation(code)) => {
            ctx.log(Level::Notice, "-", "refused", "conversation failed");
            code
        }
        Err(Failure::Refused(why)) => {
            ctx.log(Level::Notice, "-", "refused", &why);
            PamResultCode::PAM_AUTH_ERR
        }
    }
}

fn say(pamh: &PamHandle, style: pam::constants::PamMessageStyle, text: &str) {
    if let Ok(conv) = conversation(pamh) {
        let _ = conv.send(style, text);
    }
}

fn run(pamh: &mut PamHandle, args: &Args, ctx: &mut Ctx) -> Result<Decision, Failure> {
    let raw_user = pamh
        .get_user(None)
        .map_err(|_| Failure::User("no user name".into()))?;
    ctx.user = printable(&raw_user, 64);
    let user = UserName::parse(&raw_user).map_err(|e| Failure::User(e.to_string()))?;
    let account = system::lookup(user.as_str())
        .map_err(|e| Failure::Unavailable(e.to_string()))?
        .ok_or_else(|| Failure::User("unknown user".into()))?;
    let policy = Policy::load_system(&args.policy)
        .map_err(|e| Failure::Unavailable(format!("policy: {e}")))?;
    let store = Store::open(&args.state)?;
    // Resolution needs only the record; the counters are read under the lock, if a code is asked.
    let record = store.read_record(&user)?;
    let now = time::now();
    let subject = Subject {
        user: user.as_str(),
        groups: &account.groups,
        service: ctx.service.as_deref(),
    };
    let res = resolve(&policy, &subject, &RecordFacts::of(record.as_ref()), now);
    let rule = format!(
        "{}:{}",
        res.rule.kind(),
        res.rule.source().map(|s| s.table.as_str()).unwrap_or("-")
    );
    match res.status {
        Status::Exempt | Status::Off => {
            Ok(Decision::Ignore(format!("{rule} status={}", res.status)))
        }
        Status::Enforced | Status::Enabled => verify_code(pamh, &policy, &store, &user, ctx, now)
            .map(|how| Decision::Success(format!("{rule} status={} {how}", res.status))),
        Status::Pending => pending(pamh, &policy, &store, &user, &res, now, &rule),
    }
}

/// A required user without an enrollment.
fn pending(
    pamh: &mut PamHandle,
    policy: &Policy,
    store: &Store,
    user: &UserName,
    res: &twofold_policy::Resolution,
    now: u64,
    rule: &str,
) -> Result<Decision, Failure> {
    if res.starts_grace {
        // The requirement meets this user for the first time: the grace period starts now.
        let lock = store.lock(user)?;
        let mut record = lock
            .read()?
            .record
            .unwrap_or_else(|| twofold_policy::record::Record::new(user.as_str()));
        if record.required_since.is_none() {
            record.required_since = Some(now);
            lock.write_record(&record)?;
        }
    }
    let deadline = res.deadline.map(time::human).unwrap_or_default();
    if !res.in_grace(now) {
        say(
            pamh,
            PAM_ERROR_MSG,
            &format!(
                "Two-factor authentication is required for this account and was not set up in time ({deadline}). Ask an administrator to reset or exempt you (twofold reset / twofold exempt)."
            ),
        );
        return Err(Failure::Refused(format!(
            "{rule} status=pending grace period over since {deadline}"
        )));
    }
    if !policy.enrollment.at_login {
        say(
            pamh,
            PAM_TEXT_INFO,
            &format!(
                "Two-factor authentication is required for this account: set it up with `twofold enroll` before {deadline}."
            ),
        );
        return Ok(Decision::Ignore(format!(
            "{rule} status=pending in grace until {deadline}, reminded"
        )));
    }
    let conv = conversation(pamh)?;
    match crate::enroll::enroll_at_login(&conv, policy, store, user, res.deadline) {
        Ok(note) => Ok(Decision::Success(format!("{rule} status=pending {note}"))),
        Err(EnrollError::Conversation(code)) => Err(Failure::Conversation(code)),
        Err(EnrollError::NoValidCode) => Err(Failure::Refused(format!(
            "{rule} status=pending enrollment at login: no valid code, nothing stored"
        ))),
        Err(EnrollError::Raced) => Err(Failure::Refused(format!(
            "{rule} status=pending enrolled meanwhile by another login; log in again"
        ))),
        Err(EnrollError::Unavailable(why)) => {
            Err(Failure::Unavailable(format!("enrollment at login: {why}")))
        }
    }
}

/// Prompts for a code and checks it under the user's lock.
fn verify_code(
    pamh: &mut PamHandle,
    policy: &Policy,
    store: &Store,
    user: &UserName,
    ctx: &Ctx,
    now: u64,
) -> Result<String, Failure> {
    let conv = conversation(pamh)?;
    let input =
        ask(&conv, PAM_PROMPT_ECHO_OFF, "Verification code: ").map_err(Failure::Conversation)?;
    let lock = store.lock(user)?;
    let state = lock.read()?;
    if let Some(note) = &state.counters_recovered {
        ctx.log(Level::Err, "-", "continuing", note);
    }
    let vanished = || Failure::Refused("enrollment vanished".into());
    let mut record = state.record.ok_or_else(vanished)?;
    let enrollment = record.enrollment.as_mut().ok_or_else(vanished)?;
    let secret = enrollment
        .secret()
        .map_err(|e| Failure::Unavailable(format!("state: {e}")))?;
    let mut counters = state.counters;
    let verdict = totp::verify(
        &secret,
        enrollment.params,
        &input,
        now,
        policy.totp.window,
        counters.last_step,
    )
    .map_err(|e| Failure::Unavailable(format!("state: {e}")))?;
    match verdict {
        Verdict::Accepted { step } => {
            counters.last_step = Some(step);
            succeed(&lock, counters, ctx, now)?;
            Ok("code accepted".into())
        }
        Verdict::Replayed => {
            fail(&lock, counters, ctx, now)?;
            Err(Failure::Refused("code already used (replay)".into()))
        }
        Verdict::Invalid => {
            if let Some(i) = recovery::find(&enrollment.recovery_codes, &input) {
                enrollment.recovery_codes.remove(i);
                let left = enrollment.recovery_codes.len();
                // Durable before success: a used recovery code must stay used after a crash.
                lock.write_record(&record)?;
                succeed(&lock, counters, ctx, now)?;
                let _ = conv.send(
                    PAM_TEXT_INFO,
                    &format!("Recovery code accepted; {left} left."),
                );
                Ok(format!("recovery code accepted, {left} left"))
            } else {
                fail(&lock, counters, ctx, now)?;
                Err(Failure::Refused("wrong code".into()))
            }
        }
    }
}

fn succeed(lock: &Locked<'_>, mut counters: Counters, ctx: &Ctx, now: u64) -> Result<(), Failure> {
    counters.last_login = Some(now);
    counters.last_login_from = Some(ctx.source.clone());
    counters.failures.remove(&ctx.source);
    // A login whose replay step cannot be stored is refused: otherwise the code could be reused.
    lock.write_counters(&counters)
        .map_err(|e| Failure::Unavailable(format!("cannot record the accepted step: {e}")))
}

fn fail(lock: &Locked<'_>, mut counters: Counters, ctx: &Ctx, now: u64) -> Result<(), Failure> {
    let f = counters.failures.entry(ctx.source.clone()).or_default();
    f.count = f.count.saturating_add(1);
    f.last = now;
    lock.write_counters(&counters)
        .map_err(|e| Failure::Unavailable(format!("cannot record a failure: {e}")))
}
