//! `twofold-verifyd`: the verification service of twofold (see [`twofold_policy::verify`]).
//!
//! A small process of its own rather than a part of `twofold-enrolld`: screen lockers must
//! unlock while the D-Bus daemon is down or being restarted, and this service needs neither
//! the bus nor an async runtime. It is started on demand by its socket unit, serves each
//! connection in a thread of its own (at most [`MAX_CLIENTS`] at once, each with a timeout),
//! and runs the one code check of the `policy` crate.
//!
//! Slots: at most [`MAX_CLIENTS`] connections at once, [`MAX_PER_UID`] of them for one user
//! (a setuid helper such as polkit's counts as the user who started it, its real uid), and
//! [`twofold_policy::verify::MAX_PER_ACCOUNT`] for requests about one account, whoever asks.
//! A slot comes back when its request is answered, when its client hangs up, or at its
//! deadline ([`verify::TIMEOUT`]), whichever is first: nothing waits longer, the account's
//! lock included.
#![deny(unsafe_code)]

mod cli;

use std::collections::HashMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use twofold_enrolld::log::Log;
use twofold_policy::logfmt::{value, value_cut};
use twofold_policy::slots::{Limits, Slots};
use twofold_policy::verify::{self, Request, ServerConfig, Serving};

/// Connections served at once; more are refused.
const MAX_CLIENTS: usize = 64;
/// Connections served at once for one user other than root (by the real uid of the peer
/// process): a local user holding connections open, directly or through setuid helpers it
/// started and stopped, cannot starve the others' screen lockers.
const MAX_PER_UID: usize = 4;
/// Of [`MAX_CLIENTS`], kept for root's own callers (sshd's sandboxed helpers, polkit started
/// by root): the other users together, each at [`MAX_PER_UID`], cannot take them.
const ROOT_RESERVE: usize = 8;

/// The listening socket systemd passed (`LISTEN_FDS`, `LISTEN_PID`), if any.
#[allow(unsafe_code)]
fn activated() -> Option<UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    use std::os::fd::FromRawFd;
    // SAFETY: the socket-activation protocol (sd_listen_fds(3)) hands this process, and only
    // it (LISTEN_PID was checked), the open descriptor 3 as its first socket; nothing else in
    // this process uses or closes descriptor 3, so taking ownership of it here is sound.
    let listener = unsafe { UnixListener::from_raw_fd(3) };
    // SAFETY-independent check: it must be a listening Unix socket, or accept fails below.
    listener.local_addr().ok()?;
    Some(listener)
}

fn bind(path: &std::path::Path) -> std::io::Result<UnixListener> {
    use nix::sys::stat::{Mode, umask};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Anyone may connect; who may ask what is decided from the peer's uid. The socket is made
    // 0666 by the umask at its creation: no chmod of a path afterwards, which would follow
    // whatever the path leads to by then. One thread runs here, so the umask is ours alone.
    let old = umask(Mode::from_bits_truncate(0o111));
    let l = UnixListener::bind(path);
    umask(old);
    l
}

/// Who the connection counts for in the per-user limit: the peer's uid, or, for a root peer,
/// the real uid of its process (a setuid helper a user started, and may stop, counts for that
/// user). A fairness measure only, never an authorization: who may ask what is decided from
/// the peer's uid.
fn admission_uid(peer: &nix::sys::socket::UnixCredentials) -> u32 {
    if peer.uid() != 0 {
        return peer.uid();
    }
    std::fs::read_to_string(format!("/proc/{}/status", peer.pid()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|r| r.parse().ok())
        })
        .unwrap_or(0)
}

/// Whether the client of `stream` has hung up (read side closed or reset), without taking
/// anything it may have sent.
fn hung_up(stream: &UnixStream) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd;
    let mut byte = [0u8; 1];
    match recv(
        stream.as_raw_fd(),
        &mut byte,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(0) => true,
        Ok(_) => false,
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => false,
        Err(_) => true,
    }
}

fn serve_one(
    config: &ServerConfig,
    accounts: &Arc<Slots>,
    log: &Log,
    mut stream: UnixStream,
    peer: nix::sys::socket::UnixCredentials,
) {
    let uid = peer.uid();
    if stream.set_read_timeout(Some(verify::TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(verify::TIMEOUT)).is_err()
    {
        return;
    }
    let deadline = std::time::Instant::now() + verify::TIMEOUT;
    let req = match verify::read_message_by(&mut stream, deadline).and_then(|t| Request::decode(&t))
    {
        Ok(r) => r,
        Err(e) => {
            log.notice(&format!("peer uid={uid} pid={}: refused: {e}", peer.pid()));
            return;
        }
    };
    // The client gone, a wait for the account's lock ends at once.
    let abandoned: Option<Box<dyn Fn() -> bool + Send + Sync>> = stream
        .try_clone()
        .ok()
        .map(|s| Box::new(move || hung_up(&s)) as Box<dyn Fn() -> bool + Send + Sync>);
    let serving = Serving {
        accounts,
        deadline,
        abandoned,
    };
    let resp = verify::serve(config, uid, &req, serving);
    let op = match req.op {
        verify::Op::Query => "query",
        verify::Op::Check => "check",
    };
    // What the peer sent is quoted where it could pass for another field (logfmt).
    let line = format!(
        "peer uid={uid} pid={} op={op} user={} service={} answer={:?}: {}",
        peer.pid(),
        if resp.user.is_empty() {
            value_cut(&req.user, 64)
        } else {
            value(&resp.user).into_owned()
        },
        value_cut(req.service.as_deref().unwrap_or("-"), 64),
        resp.answer,
        resp.log
    );
    match resp.answer {
        verify::Answer::Unavailable | verify::Answer::Unreachable => log.error(&line),
        _ => log.notice(&line),
    }
    if let Ok(text) = resp.encode() {
        use std::io::Write;
        let _ = stream.write_all(text.as_bytes());
    }
}

/// How often the refusals of one uid's connections over its share are logged at most: one line
/// per interval with their count, not one per connection (a user connecting in a loop would
/// flood the log).
const REFUSALS_LOGGED_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Refused connections per counted uid since their last line: (when logged, how many since).
#[derive(Default)]
struct Refusals(HashMap<u32, (std::time::Instant, u64)>);

impl Refusals {
    /// Counts one refusal of `uid`; `Some(n)` when a line is due, `n` refusals since the last.
    fn count(&mut self, uid: u32) -> Option<u64> {
        let now = std::time::Instant::now();
        if self.0.len() > 4096 {
            self.0
                .retain(|_, (at, _)| now.duration_since(*at) < REFUSALS_LOGGED_EVERY);
        }
        match self.0.get_mut(&uid) {
            Some((at, n)) if now.duration_since(*at) < REFUSALS_LOGGED_EVERY => {
                *n += 1;
                None
            }
            Some((at, n)) => {
                let since = *n + 1;
                *at = now;
                *n = 0;
                Some(since)
            }
            None => {
                self.0.insert(uid, (now, 0));
                Some(1)
            }
        }
    }
}

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let log = Arc::new(Log::open_as("twofold-verifyd"));
    let listener = match (&args.listen, activated()) {
        (_, Some(l)) => l,
        (Some(path), None) => match bind(path) {
            Ok(l) => l,
            Err(e) => {
                log.error(&format!("cannot listen on {}: {e}", path.display()));
                return ExitCode::from(3);
            }
        },
        (None, None) => {
            log.error(
                "no socket: start through twofold-verifyd.socket (systemd) or with --listen PATH",
            );
            return ExitCode::from(2);
        }
    };
    let config = Arc::new(ServerConfig {
        policy: args.policy,
        state: args.state,
        directories: Arc::default(),
    });
    log.notice(&format!(
        "serving (policy {}, state {})",
        config.policy.display(),
        config.state.display()
    ));
    let accounts = Slots::new(verify::ACCOUNT_LIMITS);
    let connections = Slots::new(Limits {
        per_key: MAX_PER_UID,
        total: MAX_CLIENTS,
        root: Some(ROOT_RESERVE),
    });
    let mut refusals = Refusals::default();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let peer = match getsockopt(&stream, PeerCredentials) {
            Ok(c) => c,
            Err(e) => {
                log.error(&format!("cannot tell who connected: {e}"));
                continue;
            }
        };
        let uid = admission_uid(&peer);
        // Root's own callers (sshd's sandboxed helpers, polkit) are limited only by the total,
        // and have a reserve of their own.
        let Ok(slot) = connections.take(uid) else {
            if let Some(n) = refusals.count(uid) {
                log.notice(&format!(
                    "peer uid={} pid={}: too many connections at once (counted for uid {uid}): refused ({n} refused for that uid since the last such line, at most one line per {} s)",
                    peer.uid(),
                    peer.pid(),
                    REFUSALS_LOGGED_EVERY.as_secs()
                ));
            }
            continue;
        };
        let (c, a, l) = (config.clone(), accounts.clone(), log.clone());
        // The slot is given back when the thread ends (also by a panic), or with the closure
        // when no thread can be started.
        let spawned = std::thread::Builder::new().spawn(move || {
            let _slot = slot;
            serve_one(&c, &a, &l, stream, peer);
        });
        if spawned.is_err() {
            log.error("cannot start a thread for a connection");
        }
    }
    ExitCode::SUCCESS
}
