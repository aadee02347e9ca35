//! The login flow of `pam_sm_authenticate`, and the `pam_sm_acct_mgmt` check that no login
//! passes without a code by a path that skips authentication (e.g. sshd public-key logins).

use std::ffi::CStr;

use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_TEXT_INFO, PamResultCode};
use pam::conv::Conv;
use pam::items::{RHost, Service};
use pam::module::PamHandle;
use twofold_policy::cache::LazyLoadError;
use twofold_policy::login::{self, Attempt, describe_gate};
use twofold_policy::resolve::RecordFacts;
use twofold_policy::store::{StateStore, Store, StoreError};
use twofold_policy::throttle::Gate;
use twofold_policy::userfiles::UserFiles;
use twofold_policy::{
    Policy, Resolution, Rule, Status, UserName, logfmt, system, throttle, time, verify,
};

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
    /// Policy, store or user database unreadable, or the verification service not running:
    /// what `on_error=allow` covers (before a code is asked, outside setuid programs).
    Unavailable(String),
    /// The user's lock stayed held past its bound (another login of the account, perhaps one
    /// its user stopped on purpose), or the service has too many requests about the account:
    /// nothing checked, nothing counted. A refusal whatever `on_error` says: a user can cause
    /// it for their own account.
    Busy(String),
    /// The verification service is running and gave no valid answer (dropped the connection,
    /// timed out, malformed): fail closed whatever `on_error` says, as a user can cause it
    /// (connections held open, a stalled login).
    NoAnswer(String),
    /// The directory of the LDAP backend cannot be reached (and no offline copy may stand in):
    /// fail closed whatever `on_error` says, as anyone who can disturb the network can cause
    /// it.
    Unreachable(String),
    /// An error once a code (or an enrollment's first code) was asked: the code could not be
    /// checked or recorded. Always a refusal, whatever `on_error` says: the person at the prompt
    /// may be the one who made the check fail (a setuid `su` runs under its caller's resource
    /// limits), and a code that was never recorded could be used again.
    AfterCode(String),
    /// The conversation failed (the client went away).
    Conversation(PamResultCode),
    /// Wrong, replayed or missing code.
    Refused(String),
}

impl Failure {
    /// The failure as it counts once a code was asked: an unavailable state becomes
    /// [`Failure::AfterCode`], which `on_error` does not turn into a pass.
    fn after_code(self) -> Failure {
        match self {
            Failure::Unavailable(why) => Failure::AfterCode(why),
            other => other,
        }
    }
}

/// What a completed flow decided.
enum Decision {
    /// A valid code (or recovery code) was given by `user`.
    Success { note: String, user: UserName },
    /// twofold has nothing to ask: the rest of the stack decides.
    Ignore(String),
}

/// The PAM data key under which a successful authentication leaves the user's name, for
/// `pam_sm_acct_mgmt` of the same PAM transaction.
const VERIFIED: &str = "twofold:verified-user";

/// The PAM entry point running.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `pam_sm_authenticate`.
    Auth,
    /// `pam_sm_acct_mgmt`.
    Account,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Auth => "auth",
            Phase::Account => "account",
        }
    }

    /// The code of a refusal.
    fn refused(self) -> PamResultCode {
        match self {
            Phase::Auth => PamResultCode::PAM_AUTH_ERR,
            Phase::Account => PamResultCode::PAM_PERM_DENIED,
        }
    }

    /// The code of failing closed (broken policy or store).
    fn unavailable(self) -> PamResultCode {
        match self {
            Phase::Auth => PamResultCode::PAM_AUTHINFO_UNAVAIL,
            Phase::Account => PamResultCode::PAM_PERM_DENIED,
        }
    }
}

/// Who is logging in, for log lines.
struct Ctx {
    phase: Phase,
    user: String,
    service: Option<String>,
    /// PAM_RHOST as a log field value ([`logfmt::value`]), or `local`.
    source: String,
    /// PAM_RHOST as given, empty when there is none (for `at_login_from`).
    rhost: String,
    /// The key failures from this source are counted under ([`throttle::source_key`]).
    throttle_key: String,
    /// The rule that decided and the status it gives, once resolved: `rule=KIND:TABLE status=S`.
    decided: String,
    debug: bool,
}

impl Ctx {
    fn new(pamh: &PamHandle, phase: Phase) -> Ctx {
        let service = match pamh.get_item::<Service>() {
            Ok(Some(s)) => Some(item_str(s.0)),
            _ => None,
        };
        // For logs and the throttle: cut, control characters made visible. For decisions:
        // the whole value (see rhost_for_decisions).
        let (shown, rhost) = match pamh.get_item::<RHost>() {
            Ok(Some(h)) => (item_str(h.0), rhost_for_decisions(h.0)),
            _ => (String::new(), String::new()),
        };
        Ctx {
            phase,
            user: "?".into(),
            service,
            source: if shown.is_empty() {
                "local".into()
            } else {
                logfmt::value_cut(&shown, 128)
            },
            throttle_key: throttle::source_key(&shown),
            rhost,
            decided: "rule=-".into(),
            debug: false,
        }
    }

    /// One decision: `pam_twofold(SERVICE:PHASE): user=U source=S rule=R status=S outcome=O: detail`,
    /// every value a caller chose written by [`logfmt::value`].
    fn log(&self, level: Level, outcome: &str, detail: &str) {
        syslog(
            level,
            &format!(
                "pam_twofold({}:{}): user={} source={} {} outcome={}: {}",
                logfmt::value(self.service.as_deref().unwrap_or("unknown")),
                self.phase.name(),
                self.user,
                self.source,
                self.decided,
                outcome,
                detail
            ),
        );
    }

    /// A step of the flow, logged only with the `debug` module argument (and only then
    /// formatted). Never a code or secret.
    fn debug(&self, what: impl FnOnce() -> String) {
        if self.debug {
            syslog(
                Level::Debug,
                &format!(
                    "pam_twofold({}:{}): debug: user={} {}",
                    logfmt::value(self.service.as_deref().unwrap_or("unknown")),
                    self.phase.name(),
                    self.user,
                    what()
                ),
            );
        }
    }
}

/// Text shown in logs only: cut to `max` characters, control characters made visible.
fn printable(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `PAM_RHOST` for the decisions (network rules, `at_login_from`): the whole value, never a
/// part of it (a host name cut to 128 characters could be a name the policy lists, that the
/// whole one is not). A value that is neither an address nor a host name by length or content
/// (over 253 characters, control characters) becomes `?`, which matches no entry.
fn rhost_for_decisions(c: &CStr) -> String {
    let text = c.to_string_lossy();
    if text.len() > 253 || text.chars().any(char::is_control) {
        "?".into()
    } else {
        text.into_owned()
    }
}

fn item_str(c: &CStr) -> String {
    printable(&c.to_string_lossy(), 128)
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            StoreError::Busy { .. } | StoreError::Contended { .. } => {
                Failure::Busy(format!("state: {e}"))
            }
            // A directory nobody here can reach is an outage someone on the network can cause
            // at will: closed whatever `on_error` says (the offline copy is the opt-in).
            StoreError::Unreachable { .. } => Failure::Unreachable(format!("directory: {e}")),
            e => Failure::Unavailable(format!("state: {e}")),
        }
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
    entry(pamh, raw_args, Phase::Auth, run)
}

/// `pam_sm_acct_mgmt`: refuses a user who needs a code when this PAM transaction's
/// authentication did not verify one through twofold. That is the path of sshd public-key
/// logins, which skip the auth stack; with keyboard-interactive, sshd runs auth and account in
/// the same process, so the mark left by [`authenticate`] is seen here.
pub fn account(pamh: &mut PamHandle, raw_args: &[&CStr]) -> PamResultCode {
    entry(pamh, raw_args, Phase::Account, check_account)
}

/// Both entry points: arguments, the flow `body`, one log line, the PAM code.
fn entry(
    pamh: &mut PamHandle,
    raw_args: &[&CStr],
    phase: Phase,
    body: fn(&mut PamHandle, &Args, &mut Ctx) -> Result<Decision, Failure>,
) -> PamResultCode {
    let mut ctx = Ctx::new(pamh, phase);
    let parsed = args::parse(raw_args.iter().map(|a| a.to_bytes()));
    let on_error = match parsed.as_ref().map(|a| a.on_error) {
        Ok(OnError::Allow) if !started_by_another_user() => OnError::Allow,
        _ => OnError::Deny,
    };
    let result = parsed.map_err(Failure::Config).and_then(|a| {
        ctx.debug = a.debug;
        #[cfg(debug_assertions)]
        #[allow(clippy::panic)]
        if a.test_panic {
            panic!("test_panic: a panic inside pam_twofold (debug builds only)");
        }
        body(pamh, &a, &mut ctx)
    });
    match result {
        Ok(Decision::Success { note, user }) => {
            ctx.log(Level::Notice, "success", &note);
            // Left for acct_mgmt of this transaction. If PAM cannot keep it, acct_mgmt fails
            // closed on its own; the authentication itself stands.
            if phase == Phase::Auth
                && pamh
                    .set_data(VERIFIED, Box::new(user.as_str().to_owned()))
                    .is_err()
            {
                ctx.log(Level::Err, "continuing", "pam_set_data failed");
            }
            PamResultCode::PAM_SUCCESS
        }
        Ok(Decision::Ignore(note)) => {
            ctx.log(Level::Notice, "ignore", &note);
            PamResultCode::PAM_IGNORE
        }
        Err(failure) => fail_code(&ctx, failure, on_error),
    }
}

/// Whether this process runs with another identity than the user who started it (a setuid or
/// setgid program such as `su`, `chfn`, `chsh`): that user chose its resource limits, signal
/// dispositions and descriptors, and could use them to make the state unreadable on purpose.
/// `on_error=allow` does not apply there.
fn started_by_another_user() -> bool {
    use nix::unistd::{getegid, geteuid, getgid, getuid};
    getuid() != geteuid() || getgid() != getegid()
}

/// Logs a failure and maps it to its PAM code, once, for the phase.
fn fail_code(ctx: &Ctx, failure: Failure, on_error: OnError) -> PamResultCode {
    match failure {
        Failure::Config(why) => {
            ctx.log(
                Level::Err,
                "refused",
                &format!("bad PAM configuration: {why}"),
            );
            PamResultCode::PAM_SERVICE_ERR
        }
        Failure::User(why) => {
            ctx.log(Level::Notice, "refused", &why);
            PamResultCode::PAM_USER_UNKNOWN
        }
        Failure::Unavailable(why) => match on_error {
            OnError::Deny => {
                ctx.log(Level::Err, "refused", &format!("failing closed: {why}"));
                ctx.phase.unavailable()
            }
            OnError::Allow => {
                ctx.log(
                    Level::Err,
                    "ignore",
                    &format!("on_error=allow applies: {why}"),
                );
                PamResultCode::PAM_IGNORE
            }
        },
        Failure::AfterCode(why) => {
            ctx.log(
                Level::Err,
                "refused",
                &format!("failing closed (a code was asked; on_error does not apply): {why}"),
            );
            ctx.phase.unavailable()
        }
        Failure::Unreachable(why) => {
            ctx.log(
                Level::Err,
                "refused",
                &format!("failing closed (the directory cannot be reached; on_error does not apply, [store.offline] is the opt-in): {why}"),
            );
            ctx.phase.unavailable()
        }
        Failure::NoAnswer(why) => {
            ctx.log(
                Level::Err,
                "refused",
                &format!("failing closed (the service runs and did not answer; on_error does not apply): {why}"),
            );
            ctx.phase.unavailable()
        }
        Failure::Busy(why) => {
            ctx.log(Level::Notice, "refused", &format!("busy: {why}"));
            ctx.phase.refused()
        }
        Failure::Conversation(code) => {
            ctx.log(Level::Notice, "refused", "conversation failed");
            code
        }
        Failure::Refused(why) => {
            ctx.log(Level::Notice, "refused", &why);
            ctx.phase.refused()
        }
    }
}

fn say(pamh: &PamHandle, style: pam::constants::PamMessageStyle, text: &str) {
    if let Ok(conv) = conversation(pamh) {
        let _ = conv.send(style, text);
    }
}

/// Where a login is decided: here, from the store, or by the verification service when this
/// process cannot use the store (not root, or the store is on a read-only mount).
#[allow(clippy::large_enum_variant)] // made and moved once per login
enum Eval {
    /// The store is ours to read and write.
    Local(Evaluation),
    /// Ask the service about `PAM_USER` as given.
    Remote {
        /// `PAM_USER`.
        raw_user: String,
    },
}

/// What the policy says of the user logging in.
struct Evaluation {
    user: UserName,
    policy: Policy,
    store: std::sync::Arc<dyn StateStore>,
    res: Resolution,
    now: u64,
}

/// User, policy, record and resolution: the part of the flow that auth and account share.
fn evaluate(pamh: &mut PamHandle, args: &Args, ctx: &mut Ctx) -> Result<Eval, Failure> {
    let raw_user = pamh
        .get_user(None)
        .map_err(|_| Failure::User("no user name".into()))?;
    ctx.user = logfmt::value_cut(&raw_user, 64);
    // The typed name only finds the account; everything after belongs to the account under its
    // canonical name (getpwuid of its uid), so another name for it gets nothing of its own.
    UserName::parse(&raw_user).map_err(|e| Failure::User(e.to_string()))?;
    // A caller that is not root (a screen locker) cannot open the 0700 store, and one whose
    // store is read-only (a sandboxed helper) cannot record the accepted step: both ask the
    // root verification service, which looks the user up itself. Root callers with a
    // writable store (sshd, login, sudo) never touch the socket.
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        return Ok(Eval::Remote { raw_user });
    }
    // /etc/passwd and /etc/group read directly when they answer as NSS would (each once, and
    // nsswitch.conf once for both), through NSS otherwise.
    let files = UserFiles::default();
    let mut account = system::lookup_account_in(&files, &raw_user)
        .map_err(|e| Failure::Unavailable(e.to_string()))?
        .ok_or_else(|| Failure::User("unknown user".into()))?;
    let user = UserName::parse(&account.name)
        .map_err(|e| Failure::User(format!("canonical name of uid {}: {e}", account.uid)))?;
    // A setuid program started by one user to authenticate another (`su Y`, polkit's helper for
    // Y): its caller may stop it (SIGSTOP) while it holds Y's lock, and so lock Y out. It asks
    // the service, a process nobody but root can stop. Started to authenticate its own caller
    // (`sudo`, `su` to oneself), a stop holds up only the caller's own account, for the
    // lock's bounded wait: that stays here.
    // (A setgid-only program runs with its caller's uid, not root's: it asked already above.)
    let ruid = nix::unistd::getuid();
    if ruid != euid && ruid.as_raw() != account.uid {
        return Ok(Eval::Remote { raw_user });
    }
    if account.typed.is_some() {
        ctx.user = format!("{} as={}", logfmt::value_cut(user.as_str(), 64), ctx.user);
    }
    ctx.debug(|| {
        format!(
            "uid={} source-key={}",
            account.uid,
            logfmt::value(&ctx.throttle_key)
        )
    });
    let mut store = Store::open(&args.state)?;
    if store.read_only() {
        return Ok(Eval::Remote { raw_user });
    }
    // One login: the record and counters read before the prompt are held open and only read
    // again (not opened again, nor parsed again if unchanged) under the lock after it.
    store.hold_files();
    // What this login needs of the policy: from the compiled cache in the state directory when
    // it was made from exactly the current files, otherwise a full load (fail closed).
    // The groups only when a [groups.X] rule exists, and then only those the policy names.
    let policy = login::policy_for(
        &args.policy,
        &store,
        &files,
        &mut account,
        ctx.service.as_deref(),
    )
    .map_err(|e| match e {
        LazyLoadError::Policy(e) => Failure::Unavailable(format!("policy: {e}")),
        LazyLoadError::Groups(e) => Failure::Unavailable(e),
    })?;
    ctx.debug(|| {
        format!(
            "policy {} loaded; groups={} typed-name groups={}",
            args.policy.display(),
            account.groups.join(","),
            account.typed_groups().join(",")
        )
    });
    // The backend the policy chose, over this host's state directory (files: itself).
    let store = twofold_policy::store::open_backend(std::sync::Arc::new(store), &policy)?;
    // Resolution needs only the record; the counters are read under the lock, if a code is asked.
    let record = store.read_record(&user)?;
    let now = time::now();
    let res = login::resolve_login(
        &policy,
        &account,
        ctx.service.as_deref(),
        // The application's PAM_RHOST: this module runs in it (as root, since the store is
        // writable), so the value is the application's word, as for the throttle.
        &ctx.rhost,
        &RecordFacts::of(record.as_ref()),
        now,
    );
    let rule = match res.rule.source() {
        Some(s) => format!(
            "{}:{}@{}:{}",
            res.rule.kind(),
            s.table,
            s.file.display(),
            s.line
        ),
        None if matches!(res.rule, Rule::BuiltinDefault) => "default:built-in".into(),
        None => res.rule.kind().into(),
    };
    ctx.decided = format!(
        "rule={} status={}",
        logfmt::value_cut(&rule, 300),
        res.status
    );
    ctx.debug(|| {
        format!(
            "record={} mode={} {}",
            if record.is_some() { "present" } else { "none" },
            res.mode,
            ctx.decided
        )
    });
    Ok(Eval::Local(Evaluation {
        user,
        policy,
        store,
        res,
        now,
    }))
}

fn run(pamh: &mut PamHandle, args: &Args, ctx: &mut Ctx) -> Result<Decision, Failure> {
    let Evaluation {
        user,
        policy,
        store,
        res,
        now,
    } = match evaluate(pamh, args, ctx)? {
        Eval::Local(ev) => ev,
        Eval::Remote { raw_user } => return remote_auth(pamh, args, ctx, raw_user),
    };
    // The module twice in one stack (the package's common-auth profile, plus a line written by
    // hand): a code verified for this account in this transaction is not asked again.
    if verified_user(pamh).is_some_and(|u| *u == user.as_str()) {
        return Ok(Decision::Success {
            note: "code already verified in this PAM transaction".into(),
            user,
        });
    }
    match res.status {
        Status::Exempt | Status::Off => Ok(Decision::Ignore("no code needed".into())),
        Status::Enforced | Status::Enabled => verify_code(pamh, &policy, &*store, &user, ctx, now)
            .map(|note| Decision::Success { note, user }),
        Status::Pending => pending(pamh, &policy, &*store, user, &res, ctx, now),
    }
}

fn check_account(pamh: &mut PamHandle, args: &Args, ctx: &mut Ctx) -> Result<Decision, Failure> {
    let ev = match evaluate(pamh, args, ctx)? {
        Eval::Local(ev) => ev,
        Eval::Remote { raw_user } => return remote_account(pamh, args, ctx, raw_user),
    };
    let verified = verified_user(pamh).is_some_and(|u| u == ev.user.as_str());
    let needs_code = match ev.res.status {
        Status::Exempt | Status::Off => false,
        Status::Enforced | Status::Enabled => true,
        // Reminded-only pending users pass auth without a code during grace; so they do here.
        Status::Pending => ev.policy.enrollment.at_login || !ev.res.in_grace(ev.now),
    };
    if !needs_code {
        Ok(Decision::Ignore("no code needed".into()))
    } else if verified {
        Ok(Decision::Success {
            note: "code verified in this login's authentication".into(),
            user: ev.user,
        })
    } else {
        say(
            pamh,
            PAM_ERROR_MSG,
            "Two-factor authentication is required for this account, and this login did not ask for a code. Log in with a method that asks for it (for SSH: keyboard-interactive).",
        );
        Err(Failure::Refused(
            "no code was verified in this login (authentication skipped, e.g. public key only)"
                .into(),
        ))
    }
}

/// Asks the verification service (`twofold-verifyd`), fail closed when it cannot be reached.
fn ask_service(
    args: &Args,
    ctx: &mut Ctx,
    req: &verify::Request,
) -> Result<verify::Response, Failure> {
    let resp = verify::ask(&args.verify_socket, req).map_err(|e| match e {
        verify::AskError::NotRunning { .. } => Failure::Unavailable(format!(
            "{e}: this caller cannot read the state (not root, or a read-only mount), so it asks twofold-verifyd, which is not reachable (systemctl enable --now twofold-verifyd.socket)"
        )),
        verify::AskError::NoAnswer(e) => Failure::NoAnswer(format!("twofold-verifyd: {e}")),
    })?;
    if !resp.user.is_empty() && resp.user != req.user {
        ctx.user = format!("{} as={}", logfmt::value_cut(&resp.user, 64), ctx.user);
    }
    ctx.decided = "via=twofold-verifyd".into();
    Ok(resp)
}

/// A service answer that is not the one the caller goes on with.
fn service_failure(pamh: &PamHandle, resp: verify::Response) -> Failure {
    if !resp.message.is_empty() {
        say(pamh, PAM_ERROR_MSG, &resp.message);
    }
    match resp.answer {
        verify::Answer::Unavailable => {
            Failure::Unavailable(format!("twofold-verifyd: {}", resp.log))
        }
        verify::Answer::Unreachable => {
            Failure::Unreachable(format!("twofold-verifyd: {}", resp.log))
        }
        verify::Answer::UnknownUser => Failure::User(format!("twofold-verifyd: {}", resp.log)),
        verify::Answer::Refused => Failure::Refused(resp.log),
        verify::Answer::Busy => Failure::Busy(format!("twofold-verifyd: {}", resp.log)),
        other => Failure::NoAnswer(format!("twofold-verifyd answered {other:?} out of turn")),
    }
}

/// Authentication through the verification service: the conversation stays here.
fn remote_auth(
    pamh: &mut PamHandle,
    args: &Args,
    ctx: &mut Ctx,
    raw_user: String,
) -> Result<Decision, Failure> {
    let mut req = verify::Request {
        op: verify::Op::Query,
        user: raw_user,
        service: ctx.service.clone(),
        rhost: ctx.rhost.clone(),
        code: None,
    };
    let resp = ask_service(args, ctx, &req)?;
    match resp.answer {
        verify::Answer::Ignore => {
            if !resp.message.is_empty() {
                say(pamh, PAM_TEXT_INFO, &resp.message);
            }
            return Ok(Decision::Ignore(resp.log));
        }
        verify::Answer::Ask => {}
        _ => return Err(service_failure(pamh, resp)),
    }
    let conv = conversation(pamh)?;
    let input =
        ask(&conv, PAM_PROMPT_ECHO_OFF, "Verification code: ").map_err(Failure::Conversation)?;
    req.op = verify::Op::Check;
    req.code = Some(input);
    // From here on a failure is a refusal whatever on_error says (see Failure::AfterCode).
    let resp = ask_service(args, ctx, &req).map_err(Failure::after_code)?;
    if resp.answer != verify::Answer::Accepted {
        return Err(service_failure(pamh, resp).after_code());
    }
    if !resp.message.is_empty() {
        let _ = conv.send(PAM_TEXT_INFO, &resp.message);
    }
    let user = UserName::parse(&resp.user)
        .map_err(|e| Failure::AfterCode(format!("twofold-verifyd named {e}")))?;
    Ok(Decision::Success {
        note: resp.log,
        user,
    })
}

/// The account check through the verification service: the mark of this transaction's
/// authentication, for a user the service says needs a code.
fn remote_account(
    pamh: &mut PamHandle,
    args: &Args,
    ctx: &mut Ctx,
    raw_user: String,
) -> Result<Decision, Failure> {
    let req = verify::Request {
        op: verify::Op::Query,
        user: raw_user,
        service: ctx.service.clone(),
        rhost: String::new(),
        code: None,
    };
    let resp = ask_service(args, ctx, &req)?;
    if resp.answer == verify::Answer::Ignore {
        return Ok(Decision::Ignore(resp.log));
    }
    if matches!(
        resp.answer,
        verify::Answer::Unavailable | verify::Answer::Unreachable | verify::Answer::UnknownUser
    ) {
        return Err(service_failure(pamh, resp));
    }
    match (verified_user(pamh), UserName::parse(&resp.user)) {
        (Some(v), Ok(user)) if *v == resp.user => Ok(Decision::Success {
            note: "code verified in this login's authentication".into(),
            user,
        }),
        _ => {
            say(
                pamh,
                PAM_ERROR_MSG,
                "Two-factor authentication is required for this account, and this login did not ask for a code.",
            );
            Err(Failure::Refused(format!(
                "{}; no code was verified in this login",
                resp.log
            )))
        }
    }
}

/// The user whose code this PAM transaction verified, if any.
fn verified_user(pamh: &PamHandle) -> Option<&String> {
    // SAFETY: only this module sets the data under VERIFIED (a name no other module uses), and
    // it always stores a `String` there (see `authenticate`).
    unsafe { pamh.get_data::<String>(VERIFIED) }.ok()
}

/// A required user without an enrollment.
fn pending(
    pamh: &mut PamHandle,
    policy: &Policy,
    store: &dyn StateStore,
    user: UserName,
    res: &Resolution,
    ctx: &Ctx,
    now: u64,
) -> Result<Decision, Failure> {
    if res.starts_grace {
        // The requirement meets this user for the first time: the grace period starts now.
        if let Err(e) = store.start_grace(&user, now) {
            let failure = Failure::from(e);
            if matches!(failure, Failure::Busy(_)) {
                say(pamh, PAM_ERROR_MSG, login::BUSY);
            }
            return Err(failure);
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
            "grace period over since {deadline}"
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
            "in grace until {deadline}, reminded"
        )));
    }
    if !policy.enrollment.at_login_allowed_from(&ctx.rhost) {
        let places = policy
            .enrollment
            .at_login_from
            .iter()
            .flatten()
            .map(|o| match o {
                twofold_policy::net::Origin::Local => "the console".to_owned(),
                o => o.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        say(
            pamh,
            PAM_ERROR_MSG,
            &format!(
                "Two-factor authentication is required for this account and not set up yet. It can be set up at a login from {places} only (or ask an administrator), before {deadline}."
            ),
        );
        return Err(Failure::Refused(format!(
            "enrollment at login not offered from {} (at_login_from: {places})",
            ctx.source
        )));
    }
    let conv = conversation(pamh)?;
    match crate::enroll::enroll_at_login(&conv, policy, store, &user, res.deadline) {
        Ok(note) => Ok(Decision::Success { note, user }),
        Err(EnrollError::Conversation(code)) => Err(Failure::Conversation(code)),
        Err(EnrollError::NoValidCode) => Err(Failure::Refused(
            "enrollment at login: no valid code, nothing stored".into(),
        )),
        Err(EnrollError::Raced) => Err(Failure::Refused(
            "enrolled meanwhile by another login; log in again".into(),
        )),
        Err(EnrollError::Unavailable(why)) => {
            Err(Failure::AfterCode(format!("enrollment at login: {why}")))
        }
    }
}

/// Prompts for a code and checks it through the one check of the `policy` crate
/// ([`Store::check_attempt`]): throttle, replay refusal and the time of the answer, under the
/// user's lock.
fn verify_code(
    pamh: &mut PamHandle,
    policy: &Policy,
    store: &dyn StateStore,
    user: &UserName,
    ctx: &Ctx,
    now: u64,
) -> Result<String, Failure> {
    let conv = conversation(pamh)?;
    // A throttled source is told before it types anything, and its code is not checked.
    let gate = store.gate_before_prompt(user, &ctx.throttle_key, now)?;
    if gate != Gate::Open {
        return Err(throttled(&conv, ctx, gate));
    }
    let input =
        ask(&conv, PAM_PROMPT_ECHO_OFF, "Verification code: ").map_err(Failure::Conversation)?;
    // The code is checked against the time its answer arrived, not the time the prompt opened.
    let attempt = Attempt {
        input: &input,
        source: &ctx.throttle_key,
        from: &ctx.source,
        window: policy.totp.window,
        at: time::now(),
    };
    let checked = store.check_attempt(user, &attempt).map_err(|e| match e {
        StoreError::Busy { .. } => {
            let _ = conv.send(PAM_ERROR_MSG, login::BUSY);
            Failure::Busy(e.to_string())
        }
        e => Failure::AfterCode(format!("cannot check or record the code: {e}")),
    })?;
    if let Some(note) = &checked.recovered {
        ctx.log(Level::Err, "continuing", note);
    }
    let outcome = checked.outcome;
    if let Some(said) = outcome.message() {
        let style = if outcome.accepted() {
            PAM_TEXT_INFO
        } else {
            PAM_ERROR_MSG
        };
        let _ = conv.send(style, &said);
    }
    let note = outcome.log_note(&ctx.throttle_key);
    if outcome.accepted() {
        Ok(note)
    } else {
        Err(Failure::Refused(note))
    }
}

/// A refusal without checking any code, said to the user and logged.
fn throttled(conv: &Conv<'_>, ctx: &Ctx, gate: Gate) -> Failure {
    let _ = conv.send(PAM_ERROR_MSG, &login::gate_message(gate));
    Failure::Refused(describe_gate(gate, &ctx.throttle_key))
}
