//! `twofold-verifyd`: the verification service of twofold (see [`twofold_policy::verify`]).
//!
//! A small process of its own rather than a part of `twofold-enrolld`: screen lockers must
//! unlock while the D-Bus daemon is down or being restarted, and this service needs neither
//! the bus nor an async runtime. It is started on demand by its socket unit, serves each
//! connection in a thread of its own (at most [`MAX_CLIENTS`] at once, each with a timeout),
//! and runs the one code check of the `policy` crate.
#![deny(unsafe_code)]

mod cli;

use std::collections::HashMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use twofold_enrolld::log::Log;
use twofold_policy::verify::{self, Request, ServerConfig};

/// Connections served at once; more are refused.
const MAX_CLIENTS: usize = 64;
/// Connections served at once for one uid other than root: a local user holding connections
/// open cannot starve the others' screen lockers.
const MAX_PER_UID: usize = 4;
/// Of [`MAX_CLIENTS`], kept for root's callers (sshd's sandboxed helpers, polkit): the other
/// users together, each at [`MAX_PER_UID`], cannot take them.
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
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(path)?;
    // Anyone may connect; who may ask what is decided from the peer's uid.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(l)
}

fn serve_one(
    config: &ServerConfig,
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
    let resp = verify::serve(config, uid, &req);
    let op = match req.op {
        verify::Op::Query => "query",
        verify::Op::Check => "check",
    };
    let line = format!(
        "peer uid={uid} pid={} op={op} user={} service={} answer={:?}: {}",
        peer.pid(),
        if resp.user.is_empty() {
            req.user.chars().take(64).collect()
        } else {
            resp.user.clone()
        },
        req.service.as_deref().unwrap_or("-"),
        resp.answer,
        resp.log
    );
    match resp.answer {
        verify::Answer::Unavailable => log.error(&line),
        _ => log.notice(&line),
    }
    if let Ok(text) = resp.encode() {
        use std::io::Write;
        let _ = stream.write_all(text.as_bytes());
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
    });
    log.notice(&format!(
        "serving (policy {}, state {})",
        config.policy.display(),
        config.state.display()
    ));
    let busy = Arc::new(AtomicUsize::new(0));
    let per_uid: Arc<Mutex<HashMap<u32, usize>>> = Arc::default();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let peer = match getsockopt(&stream, PeerCredentials) {
            Ok(c) => c,
            Err(e) => {
                log.error(&format!("cannot tell who connected: {e}"));
                continue;
            }
        };
        let uid = peer.uid();
        // Root's callers (sshd's sandboxed helpers, polkit) are limited only by the total, and
        // have a reserve of their own.
        let limit = if uid == 0 {
            MAX_CLIENTS
        } else {
            MAX_CLIENTS - ROOT_RESERVE
        };
        let admitted = busy.load(Ordering::SeqCst) < limit
            && per_uid.lock().is_ok_and(|mut m| {
                let n = m.entry(uid).or_default();
                if uid != 0 && *n >= MAX_PER_UID {
                    return false;
                }
                *n += 1;
                true
            });
        if !admitted {
            log.notice(&format!(
                "peer uid={uid} pid={}: too many connections at once: refused",
                peer.pid()
            ));
            continue;
        }
        busy.fetch_add(1, Ordering::SeqCst);
        let release = {
            let (busy, per_uid) = (busy.clone(), per_uid.clone());
            move || {
                busy.fetch_sub(1, Ordering::SeqCst);
                if let Ok(mut m) = per_uid.lock()
                    && let Some(n) = m.get_mut(&uid)
                {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        m.remove(&uid);
                    }
                }
            }
        };
        let (c, l) = (config.clone(), log.clone());
        let spawned = std::thread::Builder::new().spawn({
            let release = release.clone();
            move || {
                serve_one(&c, &l, stream, peer);
                release();
            }
        });
        if spawned.is_err() {
            release();
            log.error("cannot start a thread for a connection");
        }
    }
    ExitCode::SUCCESS
}
