//! The verification service's protocol and its server side: PAM callers that cannot use the
//! store themselves (screen lockers running as the user; polkit's sandboxed helper with a
//! read-only `/var`) ask a root service over a Unix socket (`/run/twofold/verify.sock`).
//!
//! **Who asks.** The server knows the peer's uid from the socket (`SO_PEERCRED`), never from
//! the request. A peer that is not root may only ask about its own account (as `unix_chkpwd`
//! does for pam_unix), and the items it sends (`rhost`) are ignored: its requests count as
//! `local` for the throttle and the known-address rule, and in no `[networks."CIDR"]` rule (a
//! user's own PAM application cannot claim to be on a network that needs no code). Only root's
//! items are believed.
//!
//! **What is asked.** `query` (what does this login need?) and `check` (this code, typed
//! now). The conversation stays in the PAM module: the server never sees a password, only the
//! code. A check goes through [`crate::store::StateStore::check_attempt`], the same one check
//! a root login and the daemon use: throttled, replay-safe, under the user's lock.
//!
//! **One account's trouble stays its own.** At most [`MAX_PER_ACCOUNT`] requests about one
//! account are served at once, whoever asks (root's callers included): more are answered
//! `busy` at once. A request waits for the account's lock only until its deadline, or until
//! its client hangs up, and is then answered `busy` (nothing checked, nothing counted). So a
//! user who stalls a login holding their own lock (a stopped setuid `su`) holds up their own
//! requests, and no slot of anyone else's.
//!
//! **Wire format** (version 1), both ways: the line `twofold-verify 1`, then `key=value`
//! lines, then an empty line. At most [`MAX_MESSAGE`] bytes; values hold no newline, NUL or
//! carriage return; unknown keys are errors. Both sides time out ([`TIMEOUT`]).
//!
//! ```text
//! twofold-verify 1          twofold-verify 1
//! op=check                  answer=accepted
//! user=alice                user=alice
//! service=swaylock          message=
//! rhost=                    log=code accepted
//! code=123456
//! ```

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::login::{Attempt, describe_gate};
use crate::mode::Status;
use crate::resolve::RecordFacts;
use crate::slots::{Limits, Slots};
use crate::store::{Store, StoreError};
use crate::throttle::{self, Gate};
use crate::username::UserName;
use crate::{system, time};

/// Where the service listens by default.
pub const DEFAULT_SOCKET: &str = "/run/twofold/verify.sock";
/// The first line of every message.
pub const MAGIC: &str = "twofold-verify 1";
/// The largest message either side reads.
pub const MAX_MESSAGE: usize = 4096;
/// How long either side waits for the other.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Requests about one account served at once, whoever asks; more are answered `busy`.
pub const MAX_PER_ACCOUNT: usize = 4;

/// What the caller asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// What does a login of this user through this service need?
    Query,
    /// Check this code.
    Check,
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What is asked.
    pub op: Op,
    /// `PAM_USER` as given.
    pub user: String,
    /// The PAM service.
    pub service: Option<String>,
    /// `PAM_RHOST` (believed only from root).
    pub rhost: String,
    /// The typed code (`check` only). Wiped when dropped.
    pub code: Option<Zeroizing<String>>,
}

/// What the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Nothing to ask: the rest of the stack decides (`message`, if any, is a reminder).
    Ignore,
    /// Ask for a code, then `check` it.
    Ask,
    /// The code was accepted.
    Accepted,
    /// Refused; `message` says why and what to do.
    Refused,
    /// The policy, the store or the user database cannot be used: fail closed (what the
    /// module's `on_error=allow` may let through, outside setuid programs).
    Unavailable,
    /// The directory of the LDAP backend cannot be reached (or its answer read), and no
    /// offline copy may stand in: fail closed whatever `on_error` says, as anyone who can
    /// disturb the network can cause it. An older module, which does not know this answer,
    /// fails closed on it too (an answer it cannot read).
    Unreachable,
    /// The account's lock stayed held, or too many requests about the account are being
    /// served: nothing was checked or counted. A refusal (never covered by `on_error=allow`):
    /// a user can cause it for their own account.
    Busy,
    /// No such user.
    UnknownUser,
}

impl Answer {
    fn as_str(self) -> &'static str {
        match self {
            Answer::Ignore => "ignore",
            Answer::Ask => "ask",
            Answer::Accepted => "accepted",
            Answer::Refused => "refused",
            Answer::Unavailable => "unavailable",
            Answer::Unreachable => "unreachable",
            Answer::Busy => "busy",
            Answer::UnknownUser => "unknown-user",
        }
    }

    fn parse(s: &str) -> Option<Answer> {
        Some(match s {
            "ignore" => Answer::Ignore,
            "ask" => Answer::Ask,
            "accepted" => Answer::Accepted,
            "refused" => Answer::Refused,
            "unavailable" => Answer::Unavailable,
            "unreachable" => Answer::Unreachable,
            "busy" => Answer::Busy,
            "unknown-user" => Answer::UnknownUser,
            _ => return None,
        })
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The decision.
    pub answer: Answer,
    /// The account's canonical name (empty when unknown).
    pub user: String,
    /// For the person at the screen (may be empty).
    pub message: String,
    /// For the caller's log line: rule, status, outcome (never a code).
    pub log: String,
}

impl Response {
    fn new(answer: Answer, user: &str, message: &str, log: impl Into<String>) -> Response {
        Response {
            answer,
            user: user.to_owned(),
            message: message.to_owned(),
            log: log.into(),
        }
    }
}

/// A protocol error: the message is malformed, too long, or the other side timed out.
#[derive(Debug, thiserror::Error)]
#[error("verification protocol: {0}")]
pub struct ProtocolError(pub String);

/// Why [`ask`] has no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// Nothing listens on the socket (no such file, or the connection refused): the service
    /// is not running. Nobody but root can cause this.
    #[error("cannot connect to {socket}: {why}")]
    NotRunning {
        /// The socket.
        socket: PathBuf,
        /// The OS error.
        why: std::io::Error,
    },
    /// Connected, and then no valid answer: dropped (too many connections), timed out, or
    /// malformed. A running service that did not answer, which a user can cause.
    #[error(transparent)]
    NoAnswer(#[from] ProtocolError),
}

fn clean_value(v: &str) -> Result<&str, ProtocolError> {
    if v.contains(['\n', '\r', '\0']) {
        return Err(ProtocolError("a value holds a line break or NUL".into()));
    }
    Ok(v)
}

/// The text of `fields`, checked.
fn encode(fields: &[(&str, &str)]) -> Result<Zeroizing<String>, ProtocolError> {
    let mut out = Zeroizing::new(format!("{MAGIC}\n"));
    for (k, v) in fields {
        out.push_str(k);
        out.push('=');
        out.push_str(clean_value(v)?);
        out.push('\n');
    }
    out.push('\n');
    if out.len() > MAX_MESSAGE {
        return Err(ProtocolError(format!(
            "message of {} bytes, at most {MAX_MESSAGE}",
            out.len()
        )));
    }
    Ok(out)
}

/// Parses a message into its fields; every key must be in `known`, at most once.
fn decode<'a>(text: &'a str, known: &[&str]) -> Result<Vec<(&'a str, &'a str)>, ProtocolError> {
    if !text.ends_with("\n\n") {
        return Err(ProtocolError(
            "message not terminated by an empty line".into(),
        ));
    }
    let mut lines = text.split('\n');
    if lines.next() != Some(MAGIC) {
        return Err(ProtocolError(format!("expected {MAGIC:?} first")));
    }
    let mut fields: Vec<(&str, &str)> = Vec::new();
    let mut ended = false;
    for line in lines {
        if ended {
            if line.is_empty() {
                continue;
            }
            return Err(ProtocolError("text after the end of the message".into()));
        }
        if line.is_empty() {
            ended = true;
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| ProtocolError("a line without '='".into()))?;
        if !known.contains(&k) {
            return Err(ProtocolError(format!(
                "unknown key {:?}",
                k.chars().take(32).collect::<String>()
            )));
        }
        if fields.iter().any(|(seen, _)| *seen == k) {
            return Err(ProtocolError(format!("key {k:?} twice")));
        }
        fields.push((k, clean_value(v)?));
    }
    if !ended {
        return Err(ProtocolError(
            "message not terminated by an empty line".into(),
        ));
    }
    Ok(fields)
}

fn field<'a>(fields: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

impl Request {
    /// The wire text.
    pub fn encode(&self) -> Result<Zeroizing<String>, ProtocolError> {
        let op = match self.op {
            Op::Query => "query",
            Op::Check => "check",
        };
        let mut f = vec![
            ("op", op),
            ("user", self.user.as_str()),
            ("service", self.service.as_deref().unwrap_or("")),
            ("rhost", self.rhost.as_str()),
        ];
        if let Some(c) = &self.code {
            f.push(("code", c.as_str()));
        }
        encode(&f)
    }

    /// Parses the wire text.
    pub fn decode(text: &str) -> Result<Request, ProtocolError> {
        let f = decode(text, &["op", "user", "service", "rhost", "code"])?;
        let op = match field(&f, "op") {
            Some("query") => Op::Query,
            Some("check") => Op::Check,
            _ => return Err(ProtocolError("op must be query or check".into())),
        };
        let user = field(&f, "user")
            .ok_or_else(|| ProtocolError("no user".into()))?
            .to_owned();
        let code = field(&f, "code").map(|c| Zeroizing::new(c.to_owned()));
        if (op == Op::Check) != code.is_some() {
            return Err(ProtocolError(
                "a code goes with check, and only with it".into(),
            ));
        }
        Ok(Request {
            op,
            user,
            service: field(&f, "service")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            rhost: field(&f, "rhost").unwrap_or_default().to_owned(),
            code,
        })
    }
}

impl Response {
    /// The wire text.
    pub fn encode(&self) -> Result<Zeroizing<String>, ProtocolError> {
        encode(&[
            ("answer", self.answer.as_str()),
            ("user", &self.user),
            ("message", &self.message),
            ("log", &self.log),
        ])
    }

    /// Parses the wire text.
    pub fn decode(text: &str) -> Result<Response, ProtocolError> {
        let f = decode(text, &["answer", "user", "message", "log"])?;
        let answer = field(&f, "answer")
            .and_then(Answer::parse)
            .ok_or_else(|| ProtocolError("no valid answer".into()))?;
        Ok(Response {
            answer,
            user: field(&f, "user").unwrap_or_default().to_owned(),
            message: field(&f, "message").unwrap_or_default().to_owned(),
            log: field(&f, "log").unwrap_or_default().to_owned(),
        })
    }
}

/// Reads one message (up to its empty line) from `stream`, at most [`MAX_MESSAGE`] bytes.
pub fn read_message(stream: &mut impl Read) -> Result<Zeroizing<String>, ProtocolError> {
    let mut buf = Zeroizing::new(Vec::with_capacity(256));
    let mut chunk = Zeroizing::new([0u8; 512]);
    loop {
        let n = stream
            .read(chunk.as_mut())
            .map_err(|e| ProtocolError(format!("read: {e}")))?;
        if n == 0 {
            return Err(ProtocolError("the other side closed before the end".into()));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.len() > MAX_MESSAGE {
            return Err(ProtocolError(format!("message over {MAX_MESSAGE} bytes")));
        }
        if buf.ends_with(b"\n\n") {
            break;
        }
    }
    let text = String::from_utf8(std::mem::take(&mut *buf))
        .map_err(|_| ProtocolError("not UTF-8".into()))?;
    Ok(Zeroizing::new(text))
}

/// [`read_message`] with one deadline for the whole message, not each read: a peer that sends a
/// byte every few seconds cannot hold the connection (and a slot of the service) past it.
pub fn read_message_by(
    stream: &mut UnixStream,
    deadline: std::time::Instant,
) -> Result<Zeroizing<String>, ProtocolError> {
    struct ByDeadline<'a>(&'a mut UnixStream, std::time::Instant);
    impl Read for ByDeadline<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let left = self.1.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the message took longer than allowed",
                ));
            }
            self.0.set_read_timeout(Some(left))?;
            self.0.read(buf)
        }
    }
    read_message(&mut ByDeadline(stream, deadline))
}

/// The client side: one request, one response, over a fresh connection to `socket`.
pub fn ask(socket: &Path, request: &Request) -> Result<Response, AskError> {
    let mut s = connect_by(socket, std::time::Instant::now() + TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| ProtocolError(format!("timeout: {e}")))?;
    s.write_all(request.encode()?.as_bytes())
        .map_err(|e| ProtocolError(format!("write: {e}")))?;
    let text = read_message_by(&mut s, std::time::Instant::now() + TIMEOUT)?;
    Ok(Response::decode(&text)?)
}

/// A connection to `socket`, tried until `deadline`: a blocking `connect` would wait without
/// end while the service's queue is full (other users connecting in a loop can keep it so),
/// so the socket is non-blocking and a full queue (`EAGAIN`) is tried again with growing
/// pauses ([`crate::time::Retry`]). Nothing listening (no such file, refused) is [`AskError::NotRunning`]; a queue full
/// until the deadline, or any other error, is [`AskError::NoAnswer`].
fn connect_by(socket: &Path, deadline: std::time::Instant) -> Result<UnixStream, AskError> {
    use nix::errno::Errno;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect};
    use std::os::fd::AsRawFd;
    let failed = |why: String| {
        AskError::NoAnswer(ProtocolError(format!(
            "cannot connect to {}: {why}",
            socket.display()
        )))
    };
    let addr = UnixAddr::new(socket).map_err(|e| failed(e.to_string()))?;
    let mut retry = crate::time::Retry::until(deadline);
    loop {
        let fd = nix::sys::socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| failed(e.to_string()))?;
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => {
                let stream = UnixStream::from(fd);
                stream
                    .set_nonblocking(false)
                    .map_err(|e| failed(e.to_string()))?;
                return Ok(stream);
            }
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {
                if !retry.pause() {
                    return Err(failed(
                        "the service's queue stayed full until the deadline".into(),
                    ));
                }
            }
            Err(e @ (Errno::ENOENT | Errno::ECONNREFUSED)) => {
                return Err(AskError::NotRunning {
                    socket: socket.to_owned(),
                    why: std::io::Error::from(e),
                });
            }
            Err(e) => return Err(failed(e.to_string())),
        }
    }
}

/// The caps of the requests being served about one account ([`Serving::accounts`]): at most
/// [`MAX_PER_ACCOUNT`] at once, whoever asks, root's account included.
pub const ACCOUNT_LIMITS: Limits = Limits {
    per_key: MAX_PER_ACCOUNT,
    total: usize::MAX,
    root: None,
};

/// How one request is served: the accounts being served, and how long its client waits.
pub struct Serving<'a> {
    /// The requests being served, by the uid of the account they ask about
    /// ([`ACCOUNT_LIMITS`]).
    pub accounts: &'a Arc<Slots>,
    /// No wait for the account's lock past this (the request's deadline).
    pub deadline: std::time::Instant,
    /// Whether the client has gone (hung up): a wait for the lock then ends at once.
    pub abandoned: Option<Box<dyn Fn() -> bool + Send + Sync>>,
}

/// Where the server finds the policy and the state.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The main policy file.
    pub policy: PathBuf,
    /// The state directory.
    pub state: PathBuf,
    /// The directories of an LDAP backend, with their connections, kept across requests.
    pub directories: Arc<crate::store::ldap::Directories>,
}

/// Serves one request from a peer whose uid the socket reported. The decision and the code
/// check are those of a root login; see the module documentation for what a non-root peer may
/// ask and which of its items are believed.
pub fn serve(
    config: &ServerConfig,
    peer_uid: u32,
    req: &Request,
    serving: Serving<'_>,
) -> Response {
    let unavailable = |why: String| Response::new(Answer::Unavailable, "", "", why);
    // A lock that stayed held, or a change other hosts kept winning, is no broken store: the
    // attempt is refused as busy. A directory out of reach is an outage someone on the
    // network can cause: its own answer, closed whatever `on_error` says (as in the module).
    let state_error = |name: &str, what: &str, e: StoreError| match e {
        StoreError::Busy { .. } | StoreError::Contended { .. } => busy(name, &e.to_string()),
        StoreError::Unreachable { .. } => Response::new(
            Answer::Unreachable,
            name,
            UNREACHABLE,
            format!("{what}: {e}"),
        ),
        e => unavailable(format!("{what}: {e}")),
    };
    if UserName::parse(&req.user).is_err() {
        return Response::new(Answer::UnknownUser, "", "", "unusable user name");
    }
    let files = crate::userfiles::UserFiles::default();
    let mut account = match system::lookup_account_in(&files, &req.user) {
        Ok(Some(a)) => a,
        Ok(None) => return Response::new(Answer::UnknownUser, "", "", "unknown user"),
        Err(e) => return unavailable(e.to_string()),
    };
    let Ok(user) = UserName::parse(&account.name) else {
        return Response::new(Answer::UnknownUser, "", "", "unusable canonical name");
    };
    if peer_uid != 0 && peer_uid != account.uid {
        return Response::new(
            Answer::Refused,
            user.as_str(),
            "",
            format!(
                "uid {peer_uid} asked about uid {}: a caller that is not root may ask only about itself",
                account.uid
            ),
        );
    }
    // From here on the account's own slots: requests about one account (a stalled login
    // holding its lock, say) never take the slots of anyone else's.
    let Ok(_slot) = serving.accounts.take(account.uid) else {
        return busy(
            user.as_str(),
            &format!("{MAX_PER_ACCOUNT} requests about this account are being served already"),
        );
    };
    let service = req
        .service
        .as_deref()
        .filter(|s| crate::config::check_service_name(s).is_ok());
    // Only root's items are believed; anyone else is on this machine.
    let rhost = if peer_uid == 0 {
        req.rhost.as_str()
    } else {
        ""
    };
    let source = throttle::source_key(rhost);
    let mut store = match Store::open(&config.state) {
        Ok(s) => s,
        Err(e) => return unavailable(format!("state: {e}")),
    };
    // One login: the files read before the check are read again under the lock.
    store.hold_files();
    store.wait_for_locks(serving.deadline, serving.abandoned);
    let policy =
        match crate::login::policy_for(&config.policy, &store, &files, &mut account, service) {
            Ok(p) => p,
            Err(e) => return unavailable(format!("policy: {e}")),
        };
    let store =
        match crate::store::open_backend_in(Arc::new(store), &policy, Some(&config.directories)) {
            Ok(s) => s,
            Err(e) => return unavailable(format!("state: {e}")),
        };
    let record = match store.read_record(&user) {
        Ok(r) => r,
        Err(e) => return state_error(user.as_str(), "state", e),
    };
    let now = time::now();
    let res = crate::login::resolve_login(
        &policy,
        &account,
        service,
        // The same trusted value as the throttle's: a non-root caller's claim counts for
        // nothing, so it cannot put itself in a network that needs no code.
        rhost,
        &RecordFacts::of(record.as_ref()),
        now,
    );
    let decided = format!("rule={} status={}", res.rule.kind(), res.status);
    let name = user.as_str();
    match res.status {
        Status::Exempt | Status::Off => Response::new(
            Answer::Ignore,
            name,
            "",
            format!("{decided}: no code needed"),
        ),
        Status::Pending => {
            if res.starts_grace
                && let Err(e) = store.start_grace(&user, now)
            {
                return state_error(name, "state", e);
            }
            let deadline = res.deadline.map(time::human).unwrap_or_default();
            if res.in_grace(now) {
                // Enrollment needs a conversation this caller cannot hold (a locker, a
                // sandbox): remind, and let the rest of the stack decide, as in grace without
                // enrollment at login.
                Response::new(
                    Answer::Ignore,
                    name,
                    &format!(
                        "Two-factor authentication is required for this account: set it up with `twofold enroll` or at your next SSH or console login, before {deadline}."
                    ),
                    format!(
                        "{decided}: in grace until {deadline}, enrollment impossible here, reminded"
                    ),
                )
            } else {
                Response::new(
                    Answer::Refused,
                    name,
                    &format!(
                        "Two-factor authentication is required for this account and was not set up in time ({deadline}). Ask an administrator to reset or exempt you."
                    ),
                    format!("{decided}: grace period over since {deadline}"),
                )
            }
        }
        Status::Enforced | Status::Enabled => match (req.op, &req.code) {
            (Op::Query, _) | (Op::Check, None) => {
                match store.gate_before_prompt(&user, &source, now) {
                    Ok(Gate::Open) => Response::new(Answer::Ask, name, "", decided),
                    Ok(g) => throttled(name, &decided, g, &source),
                    Err(e) => state_error(name, "state", e),
                }
            }
            (Op::Check, Some(code)) => {
                let attempt = Attempt {
                    input: code,
                    source: &source,
                    from: if rhost.is_empty() { "local" } else { rhost },
                    window: policy.totp.window,
                    at: time::now(),
                };
                let checked = match store.check_attempt(&user, &attempt) {
                    Ok(c) => c,
                    Err(e) => return state_error(name, "cannot check or record the code", e),
                };
                let recovered = checked
                    .recovered
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                let outcome = checked.outcome;
                Response::new(
                    if outcome.accepted() {
                        Answer::Accepted
                    } else {
                        Answer::Refused
                    },
                    name,
                    &outcome.message().unwrap_or_default(),
                    format!("{decided}: {}{recovered}", outcome.log_note(&source)),
                )
            }
        },
    }
}

/// What the person at the prompt is told when the directory cannot be reached.
pub const UNREACHABLE: &str = "The directory that holds two-factor settings cannot be reached; nothing was checked. Try again later.";

/// The answer when the account's lock stayed held or its slots are taken: nothing checked.
fn busy(name: &str, why: &str) -> Response {
    Response::new(
        Answer::Busy,
        name,
        crate::login::BUSY,
        format!("busy: {why}; nothing checked or counted"),
    )
}

fn throttled(name: &str, decided: &str, gate: Gate, source: &str) -> Response {
    Response::new(
        Answer::Refused,
        name,
        &crate::login::gate_message(gate),
        format!("{decided}: {}", describe_gate(gate, source)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_round_trip() {
        let r = Request {
            op: Op::Check,
            user: "alice".into(),
            service: Some("swaylock".into()),
            rhost: String::new(),
            code: Some(Zeroizing::new("123456".into())),
        };
        let text = r.encode().unwrap();
        assert_eq!(Request::decode(&text).unwrap(), r);
        let q = Response::new(Answer::Ask, "alice", "", "rule=user status=enforced");
        assert_eq!(Response::decode(&q.encode().unwrap()).unwrap(), q);
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bad in [
            "",
            "twofold-verify 2\nop=query\nuser=a\n\n",
            "twofold-verify 1\nop=query\nuser=a\n",
            "twofold-verify 1\nop=query\nop=query\nuser=a\n\n",
            "twofold-verify 1\nop=query\nuser=a\nevil=1\n\n",
            "twofold-verify 1\nop=check\nuser=a\n\n",
            "twofold-verify 1\nop=query\nuser=a\ncode=1\n\n",
            "twofold-verify 1\nop=launch\nuser=a\n\n",
            "twofold-verify 1\nop=query\nuser\n\n",
            "twofold-verify 1\nop=query\n\n",
            "twofold-verify 1\nop=query\nuser=a\n\nmore\n",
        ] {
            assert!(Request::decode(bad).is_err(), "{bad:?}");
        }
        let r = Request {
            op: Op::Query,
            user: "a\nop=check".into(),
            service: None,
            rhost: String::new(),
            code: None,
        };
        assert!(r.encode().is_err());
        let big = Request {
            op: Op::Query,
            user: "a".repeat(MAX_MESSAGE),
            service: None,
            rhost: String::new(),
            code: None,
        };
        assert!(big.encode().is_err());
        let mut long = std::io::Cursor::new(vec![b'a'; MAX_MESSAGE + 10]);
        assert!(read_message(&mut long).is_err());
    }
}
