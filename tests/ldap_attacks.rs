//! Attacks on the LDAP backend of the store (issue #23), at the level of the store, against a
//! real private slapd (and, where slapd would not misbehave, against a proxy or a fake server
//! in front of it): each test is one way someone could get past the backend or break it, and
//! what the store must do instead. Needs root (slapd, and the store's owner checks).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use twofold_policy::UserName;
use twofold_policy::config::store::LdapConfig;
use twofold_policy::login::Outcome;
use twofold_policy::store::ldap::{Bind, LdapStore, Settings};
use twofold_policy::store::{StateStore, Store, StoreError};
use twofold_policy::totp::Secret;
use twofold_system_tests::fleet_store::{
    Host, accepted_at_once, account_ldif, attempt, check, check_error, code, enroll, host,
    host_with, password_file, slapd_or_skip, user,
};
use twofold_system_tests::root_or_skip;
use twofold_system_tests::slapd::{Options, Slapd};

/// A private slapd, or `None` when not root (the test does nothing).
fn start() -> Option<Slapd> {
    slapd_or_skip().unwrap()
}

/// A base DN written with spaces after its commas (RFC 4514 allows them, and so does the
/// policy's check): slapd sends the entries' DNs back without them. An enrolled user must
/// not read as a user with no enrollment (in `optional` mode: no code asked at all).
#[test]
fn a_base_written_with_spaces_still_finds_the_account() {
    let Some(slapd) = start() else { return };
    let a = host_with(&slapd, |p| {
        p.base = slapd.twofold_base().replace(',', ", ").to_uppercase();
    })
    .unwrap();
    let b = host(&slapd, "").unwrap();
    // Enrolled from a host whose base is written the plain way: the other reads the same.
    let (secret, _) = enroll(&*b.store, "tfspace", 1).unwrap();
    let record = a.store.read_record(&user("tfspace").unwrap()).unwrap();
    assert!(
        record.is_some_and(|r| r.enrollment.is_some()),
        "the enrolled user reads as not enrolled"
    );
    assert_eq!(
        check(&*a.store, "tfspace", "000000", "10.9.0.1").unwrap(),
        Outcome::Invalid
    );
    assert_eq!(
        check(&*a.store, "tfspace", &code(&secret, 0).unwrap(), "10.9.0.1").unwrap(),
        Outcome::Code
    );
    // And enrolling through the spaced base works too.
    enroll(&*a.store, "tfspace2", 0).unwrap();
    assert!(
        b.store
            .read_record(&user("tfspace2").unwrap())
            .unwrap()
            .is_some_and(|r| r.enrollment.is_some())
    );
    assert_eq!(
        a.store.users().unwrap(),
        vec![user("tfspace").unwrap(), user("tfspace2").unwrap()]
    );
}

/// A TCP proxy on 127.0.0.1 in front of `to`, as someone on the path between a host and
/// its directory: it passes every byte until `tamper` is set, then flips the last byte of
/// each chunk the server sends (inside a TLS record: its authentication tag).
fn tampering_proxy(to: std::net::SocketAddr, tamper: Arc<AtomicBool>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Ok(server) = TcpStream::connect(to) else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            let tamper = tamper.clone();
            std::thread::spawn(move || {
                let (mut s_in, mut c_out) = (server, client);
                let mut buf = [0u8; 16384];
                loop {
                    let n = match s_in.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if tamper.load(Ordering::SeqCst) {
                        buf[n - 1] ^= 0x01;
                    }
                    if c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

/// Someone on the path between a host and its directory (ldaps://) changes a byte of the
/// server's answer: TLS detects it. That is the network misbehaving, as a dropped or reset
/// connection is: the store must say the directory cannot be reached (fail closed whatever
/// `on_error` says, or the offline copy), not that the directory answered something wrong
/// (`StoreError::Directory`, which `on_error = allow` turns into a login without a code).
#[test]
fn a_tampered_tls_answer_is_an_unreachable_directory() {
    if !root_or_skip() {
        return;
    }
    let slapd = Slapd::start(&Options { tls: true }).expect("slapd");
    let ldaps: std::net::SocketAddr = slapd
        .ldaps_url()
        .unwrap()
        .trim_start_matches("ldaps://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let tamper = Arc::new(AtomicBool::new(false));
    let port = tampering_proxy(ldaps, tamper.clone());
    let extra = format!("ca_file = \"{}\"", slapd.ca_file().unwrap().display());
    let a = host_with(&slapd, |p| {
        p.uris = vec![format!("ldaps://127.0.0.1:{port}")];
        p.extra = extra;
    })
    .unwrap();
    enroll(&*a.store, "tftamper", 0).unwrap();
    // The connection is up and kept; from now on the server's records are changed.
    assert!(
        a.store
            .read_record(&user("tftamper").unwrap())
            .unwrap()
            .is_some()
    );
    tamper.store(true, Ordering::SeqCst);
    let err = a.store.read_record(&user("tftamper").unwrap()).unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    let err = check_error(&*a.store, "tftamper", "123456", "10.9.1.1").unwrap();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
}

/// A minimal LDAP server on 127.0.0.1 for what slapd never does: each connection is served
/// by `answer`, called with each request's message id and operation tag, returning the
/// bytes to send back (none: stay silent).
mod fake {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// A BER element: tag, definite length, contents.
    pub fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = contents.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes = n.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(contents);
        out
    }

    pub fn int(tag: u8, v: u32) -> Vec<u8> {
        let b = v.to_be_bytes();
        let mut skip = b.iter().take_while(|x| **x == 0).count().min(3);
        if b[skip] & 0x80 != 0 {
            skip -= 1;
        }
        let mut c = vec![0u8; 0];
        if skip == 4 {
            c.push(0);
        }
        c.extend_from_slice(&b[skip.min(4)..]);
        tlv(tag, &c)
    }

    /// An LDAPMessage with `op`.
    pub fn message(id: u32, op: Vec<u8>) -> Vec<u8> {
        let mut c = int(0x02, id);
        c.extend(op);
        tlv(0x30, &c)
    }

    /// An LDAPResult-shaped operation of `tag` with `code`.
    pub fn result(tag: u8, code: u32) -> Vec<u8> {
        let mut c = int(0x0a, code);
        c.extend(tlv(0x04, b""));
        c.extend(tlv(0x04, b""));
        tlv(tag, &c)
    }

    /// A SearchResultEntry.
    pub fn entry(dn: &str, attrs: &[(&str, &[&[u8]])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (name, values) in attrs {
            let mut set = Vec::new();
            for v in *values {
                set.extend(tlv(0x04, v));
            }
            let mut a = tlv(0x04, name.as_bytes());
            a.extend(tlv(0x31, &set));
            list.extend(tlv(0x30, &a));
        }
        let mut c = tlv(0x04, dn.as_bytes());
        c.extend(tlv(0x30, &list));
        tlv(0x64, &c)
    }

    pub const BIND: u8 = 0x60;
    pub const SEARCH: u8 = 0x63;

    fn read_message(s: &mut TcpStream) -> Option<(u32, u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        s.read_exact(&mut head).ok()?;
        let len = if head[1] < 0x80 {
            usize::from(head[1])
        } else {
            let mut l = vec![0u8; usize::from(head[1] & 0x7f)];
            s.read_exact(&mut l).ok()?;
            l.iter().fold(0usize, |a, b| a << 8 | usize::from(*b))
        };
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).ok()?;
        // INTEGER id, then the operation's tag.
        let idlen = usize::from(body[1]);
        let id = body[2..2 + idlen]
            .iter()
            .fold(0u32, |a, b| a << 8 | u32::from(*b));
        Some((id, body[2 + idlen], body))
    }

    /// Starts the server: `ldap://127.0.0.1:PORT`.
    pub fn serve(answer: fn(u32, u8, &[u8]) -> Vec<u8>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    while let Some((id, op, body)) = read_message(&mut s) {
                        if op == 0x42 {
                            return;
                        }
                        let out = answer(id, op, &body);
                        if !out.is_empty() && s.write_all(&out).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }
}

/// A store over a fake server at `port` (plain LDAP on the loopback address), built from
/// settings directly.
fn fake_store(port: u16, offline: Option<u64>) -> (tempfile::TempDir, LdapStore) {
    let dir = tempfile::tempdir().unwrap();
    let secret = password_file(dir.path(), "secret\n").unwrap();
    let local = Arc::new(Store::open_or_create(&dir.path().join("state")).unwrap());
    let settings = Settings {
        directory: LdapConfig {
            uris: vec![format!("ldap://127.0.0.1:{port}")],
            base: "ou=twofold,dc=example,dc=org".into(),
            bind: Bind::Simple {
                dn: "cn=twofold,ou=services,dc=example,dc=org".into(),
                password_file: secret,
            },
            starttls: false,
            ca_file: None,
            timeout: Duration::from_millis(500),
            link_oath_users: false,
            user_base: None,
        },
        window: 1,
        offline_max_age: offline,
    };
    (dir, LdapStore::new(local, settings))
}

/// A server on the configured address that answers out of turn (another message id), or
/// with bytes that are no LDAP: the answer cannot be read, which is no answer. Not a
/// directory that refused something (`on_error` would apply): fail closed.
#[test]
fn an_answer_out_of_turn_or_garbled_is_an_unreachable_directory() {
    if !root_or_skip() {
        return;
    }
    let wrong_id = fake::serve(|id, op, _| match op {
        fake::BIND => fake::message(id, fake::result(0x61, 0)),
        _ => fake::message(id + 7, fake::result(0x65, 0)),
    });
    let garbled = fake::serve(|id, op, _| match op {
        fake::BIND => fake::message(id, fake::result(0x61, 0)),
        // A SearchResultEntry whose attribute list is cut short.
        _ => fake::message(id, fake::tlv(0x64, &[0x04, 0x00, 0x30, 0x05, 0x30, 0x09])),
    });
    for port in [wrong_id, garbled] {
        let (_dir, store) = fake_store(port, None);
        let err = store.read_record(&user("tfturn").unwrap()).unwrap_err();
        assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    }
}

const OFFLINE: &str = "[store.offline]\nenabled = true\nmax_age = \"1h\"";

/// A recovery code used on host B, then the directory unreachable from host A, which had
/// read the user online since: A's copy must not take the code again. Nor, after an admin's
/// reset on B that A read online, the old authenticator's codes.
#[test]
fn a_copy_follows_what_this_host_read_online() {
    let Some(mut slapd) = start() else { return };
    let a = host(&slapd, OFFLINE).unwrap();
    let b = host(&slapd, OFFLINE).unwrap();
    let (secret, codes) = enroll(&*a.store, "tfcopy", 3).unwrap();
    // A copy on A, from an online login there.
    assert_eq!(
        check(&*a.store, "tfcopy", &code(&secret, -1).unwrap(), "10.9.2.1").unwrap(),
        Outcome::Code
    );
    // Read again online with nothing changed: the copy is left as it is (no lock, no write).
    let synced = a.dir.path().join("state/tfcopy.synced");
    let before = std::fs::read_to_string(&synced).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    a.store.read_record(&user("tfcopy").unwrap()).unwrap();
    assert_eq!(std::fs::read_to_string(&synced).unwrap(), before);
    // The first recovery code used on B; A reads the user online (a login's resolution).
    assert_eq!(
        check(&*b.store, "tfcopy", &codes[0], "10.9.2.2").unwrap(),
        Outcome::RecoveryCode { left: 2 }
    );
    let online = a
        .store
        .read_record(&user("tfcopy").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(online.enrollment.unwrap().recovery_codes.len(), 2);
    slapd.stop().unwrap();
    assert_eq!(
        check(&*a.store, "tfcopy", &codes[0], "10.9.2.1").unwrap(),
        Outcome::Invalid,
        "a recovery code used on B is taken again by A's copy"
    );
    slapd.start_again().unwrap();
    // Reset on B (a lost phone); A reads the user online, then loses the directory.
    b.store
        .update(&user("tfcopy").unwrap(), &mut |state| {
            if let Some(r) = state.record.as_mut() {
                r.enrollment = None;
            }
            state.counters = Default::default();
            Ok(())
        })
        .unwrap()
        .unwrap();
    assert!(
        a.store
            .read_record(&user("tfcopy").unwrap())
            .unwrap()
            .unwrap()
            .enrollment
            .is_none()
    );
    slapd.stop().unwrap();
    let offline = a.store.check_attempt(
        &user("tfcopy").unwrap(),
        &attempt(&code(&secret, 0).unwrap(), "10.9.2.1"),
    );
    assert!(
        !matches!(&offline, Ok(c) if c.outcome.accepted()),
        "the reset authenticator still opens A: {offline:?}"
    );
}

/// A recovery code used on host A while the directory was away must be refused on host B
/// as soon as A talks to the directory again, not only once that user logs in on A again
/// (which may be never: recovery codes do not expire).
#[test]
fn what_a_copy_used_goes_back_at_the_next_contact() {
    let Some(mut slapd) = start() else { return };
    let a = host(&slapd, OFFLINE).unwrap();
    let b = host(&slapd, OFFLINE).unwrap();
    let (secret, codes) = enroll(&*a.store, "tfback", 2).unwrap();
    enroll(&*a.store, "tfother", 0).unwrap();
    assert_eq!(
        check(&*a.store, "tfback", &code(&secret, -1).unwrap(), "10.9.3.1").unwrap(),
        Outcome::Code
    );
    slapd.stop().unwrap();
    assert_eq!(
        check(&*a.store, "tfback", &codes[0], "10.9.3.1").unwrap(),
        Outcome::RecoveryCode { left: 1 }
    );
    slapd.start_again().unwrap();
    // Someone else logs in on A: A reads the directory again.
    a.store.read_record(&user("tfother").unwrap()).unwrap();
    assert_eq!(
        check(&*b.store, "tfback", &codes[0], "10.9.3.2").unwrap(),
        Outcome::Invalid,
        "a recovery code used offline on A still opens B"
    );
}

/// The copy's age is counted from a refresh in the past: one dated in the future (a clock
/// set back, a file written by hand) is not taken as young.
#[test]
fn a_copy_dated_in_the_future_is_not_used() {
    let Some(mut slapd) = start() else { return };
    let a = host(&slapd, OFFLINE).unwrap();
    let (secret, _) = enroll(&*a.store, "tffuture", 0).unwrap();
    assert_eq!(
        check(
            &*a.store,
            "tffuture",
            &code(&secret, -1).unwrap(),
            "10.9.4.1"
        )
        .unwrap(),
        Outcome::Code
    );
    let synced = a.dir.path().join("state/tffuture.synced");
    let text = std::fs::read_to_string(&synced).unwrap();
    let (_, rest) = text.split_once('\n').unwrap();
    let later = twofold_policy::time::now() + 30 * 86_400;
    std::fs::write(&synced, format!("{later}\n{rest}")).unwrap();
    slapd.stop().unwrap();
    let err = check_error(
        &*a.store,
        "tffuture",
        &code(&secret, 0).unwrap(),
        "10.9.4.1",
    )
    .unwrap();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
}

/// The account's consecutive failures in the directory.
fn failures(slapd: &Slapd, name: &str) -> u64 {
    let ldif = account_ldif(
        slapd,
        name,
        "(objectClass=twofoldAccount)",
        &["twofoldFailureCount"],
    )
    .unwrap();
    ldif.lines()
        .find_map(|l| l.strip_prefix("twofoldFailureCount: "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// One code typed at once from several new places over four hosts: one login gets in, each
/// other is one failure of the per-user bound; none is counted twice because its first
/// check lost the race to the winner (its reservation stands, it is not made again).
#[test]
fn an_attempt_that_lost_a_race_is_counted_once() {
    let Some(slapd) = start() else { return };
    let hosts: Vec<Host> = (0..4).map(|_| host(&slapd, "").unwrap()).collect();
    const AT_ONCE: usize = 8;
    let mut over = Vec::new();
    for round in 0..30 {
        let name = format!("tfonce{round}");
        let (secret, _) = enroll(&*hosts[round % 4].store, &name, 0).unwrap();
        let c = code(&secret, 0).unwrap();
        let accepted = accepted_at_once(
            &hosts,
            &name,
            &c,
            AT_ONCE,
            |i| format!("10.8.{round}.{i}"),
            false,
        )
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(accepted, 1, "round {round}");
        let counted = failures(&slapd, &name);
        if counted > (AT_ONCE - 1) as u64 {
            over.push(format!(
                "round {round}: {counted} failures for {} refused",
                AT_ONCE - 1
            ));
        }
    }
    assert!(over.is_empty(), "{}", over.join("\n"));
}

/// Callers that cannot read the store (screen lockers, sandboxed helpers, `su` started by
/// another user) ask twofold-verifyd. A directory it cannot reach must come back as what the
/// module fails closed on whatever `on_error` says, as it does when it asks the directory
/// itself; not as an unusable store (`unavailable`), which `on_error = allow` lets through.
#[test]
fn through_the_verification_service_an_unreachable_directory_stays_closed() {
    use twofold_policy::verify::{self, Answer, Op, Request, ServerConfig, Serving};
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    Store::open_or_create(&state).unwrap();
    let policy = dir.path().join("policy.toml");
    let nowhere = dir.path().join("no-slapd-here");
    let uri: String = nowhere
        .to_str()
        .unwrap()
        .chars()
        .map(|c| {
            if c == '/' {
                "%2F".into()
            } else {
                c.to_string()
            }
        })
        .collect();
    std::fs::write(
        &policy,
        format!(
            "mode = \"required\"\n[store]\nbackend = \"ldap\"\n[store.ldap]\nuri = \"ldapi://{uri}\"\nbase = \"ou=twofold,dc=example,dc=org\"\ntimeout = \"500ms\"\n"
        ),
    )
    .unwrap();
    let config = ServerConfig {
        policy,
        state,
        directories: Default::default(),
    };
    let accounts = twofold_policy::slots::Slots::new(verify::ACCOUNT_LIMITS);
    for peer in [0, 65_534] {
        let req = Request {
            op: Op::Query,
            user: "root".into(),
            service: Some("swaylock".into()),
            rhost: String::new(),
            code: None,
        };
        let serving = Serving {
            accounts: &accounts,
            deadline: std::time::Instant::now() + Duration::from_secs(5),
            abandoned: None,
        };
        let resp = verify::serve(&config, peer, &req, serving);
        if peer == 0 {
            assert_eq!(resp.answer, Answer::Unreachable, "{}", resp.log);
        }
        assert!(
            !matches!(
                resp.answer,
                Answer::Unavailable | Answer::Ignore | Answer::Ask
            ),
            "peer {peer}: {:?} ({})",
            resp.answer,
            resp.log
        );
    }
}

/// A server that answers a user's search with the entries of another account (a wrong
/// base, a proxy that mixes answers up): that is never the user's state, and never "no
/// state" either (a user with no enrollment needs no code in `optional` mode).
#[test]
fn entries_of_another_name_are_not_the_users_state() {
    if !root_or_skip() {
        return;
    }
    let port = fake::serve(|id, op, _| match op {
        fake::BIND => fake::message(id, fake::result(0x61, 0)),
        fake::SEARCH => {
            let mut out = fake::message(
                id,
                fake::entry(
                    "uid=bob,ou=accounts,ou=twofold,dc=example,dc=org",
                    &[
                        ("objectClass", &[b"twofoldAccount"]),
                        ("uid", &[b"bob"]),
                        ("twofoldOverrideMode", &[b"disabled"]),
                    ],
                ),
            );
            out.extend(fake::message(id, fake::result(0x65, 0)));
            out
        }
        _ => fake::message(id, fake::result(0x67, 0)),
    });
    let (_dir, store) = fake_store(port, None);
    let read = store.read_record(&user("tfalice").unwrap());
    assert!(
        matches!(read, Err(StoreError::Directory { .. })),
        "{read:?}"
    );
}

/// A TCP proxy on 127.0.0.1 in front of `to` that, once `silent` is set, forwards nothing
/// more (connections accepted and held): a directory that stopped answering, or someone on
/// the path dropping every packet.
fn silencing_proxy(to: std::net::SocketAddr, silent: Arc<AtomicBool>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            if silent.load(Ordering::SeqCst) {
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(60));
                    drop(client);
                });
                continue;
            }
            let Ok(server) = TcpStream::connect(to) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let silent = silent.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        if silent.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_secs(60));
                            return;
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    port
}

/// A directory that stops answering (every server of the list) holds a login for one round
/// of the list before the prompt (the record, then the throttle's gate, which made every
/// connection again) and one at the check (the directory may be back by then).
#[test]
fn a_silent_directory_holds_a_login_for_one_round_of_its_servers() {
    let Some(slapd) = start() else { return };
    let to: std::net::SocketAddr = slapd
        .ldap_url()
        .trim_start_matches("ldap://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let silent = Arc::new(AtomicBool::new(false));
    let ports: Vec<u16> = (0..3)
        .map(|_| silencing_proxy(to, silent.clone()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = password_file(dir.path(), slapd.service_password()).unwrap();
    let timeout = Duration::from_millis(500);
    let settings = Settings {
        directory: LdapConfig {
            uris: ports
                .iter()
                .map(|p| format!("ldap://127.0.0.1:{p}"))
                .collect(),
            base: slapd.twofold_base(),
            bind: Bind::Simple {
                dn: slapd.service_dn(),
                password_file: secret_file,
            },
            starttls: false,
            ca_file: None,
            timeout,
            link_oath_users: false,
            user_base: None,
        },
        window: 1,
        offline_max_age: Some(3600),
    };
    let login = || {
        let local = Arc::new(Store::open_or_create(&dir.path().join("state")).unwrap());
        LdapStore::new(local, settings.clone())
    };
    let (secret, _) = enroll(&login(), "tfslow", 0).unwrap();
    // An online login keeps a copy.
    assert_eq!(
        check(&login(), "tfslow", &code(&secret, -1).unwrap(), "10.9.5.1").unwrap(),
        Outcome::Code
    );
    silent.store(true, Ordering::SeqCst);
    let store = login();
    let t = std::time::Instant::now();
    let name = user("tfslow").unwrap();
    assert!(store.read_record(&name).unwrap().is_some());
    store
        .gate_before_prompt(&name, "10.9.5.1", twofold_policy::time::now())
        .unwrap();
    let checked = store
        .check_attempt(&name, &attempt(&code(&secret, 0).unwrap(), "10.9.5.1"))
        .unwrap();
    assert_eq!(checked.outcome, Outcome::Code);
    let took = t.elapsed();
    // A round: three servers, each a connection and a bind that times out. Two rounds,
    // not three.
    assert!(took < timeout * 15 / 2, "{took:?}");
}

/// A fleet with more accounts than slapd returns to an ordinary account by default (500):
/// the daemon's listing must have them all, with the service account's limits as the
/// documentation gives them (packaging/ldap/README.md), which the fixture runs.
#[test]
fn more_accounts_than_the_default_size_limit_are_all_listed() {
    let Some(slapd) = start() else { return };
    let a = host(&slapd, "").unwrap();
    let mut ldif = String::new();
    for i in 0..620 {
        ldif.push_str(&format!(
            "dn: uid=tfmany{i:03},ou=accounts,{}\nobjectClass: twofoldAccount\nuid: tfmany{i:03}\ntwofoldRevision: 1\n\n",
            slapd.twofold_base()
        ));
    }
    slapd.ldapadd(&ldif).unwrap();
    let listed = a.store.users().unwrap();
    assert_eq!(listed.len(), 620);
}

/// With `link_oath_users`, the user's own entry is found by `uid`, which the directory
/// matches without regard to case and which a user who may write their own entry could add
/// to it: the entry linked is the user's own (named `uid=NAME`, with that exact value); a
/// user with no entry there (a local account) has nothing to link; and the entry is found
/// before anything is written, so a failure leaves no change made half-way.
#[test]
fn the_entry_linked_for_slapds_otp_binds_is_the_users_own() {
    let Some(slapd) = start() else { return };
    let link = format!(
        "link_oath_users = true\nuser_base = \"{}\"",
        slapd.people_base()
    );
    let a = host(&slapd, &link).unwrap();
    let own = slapd.add_user("tflink", 30001, 30001, "pw one").unwrap();
    // Another account whose name differs only in case; and one whose owner added the name
    // as a second uid of their own entry.
    slapd
        .ldapadd(&format!(
            "dn: cn=Other,{p}\nobjectClass: inetOrgPerson\ncn: Other\nsn: Other\nuid: TFLINK\n\n\
             dn: cn=Mallory,{p}\nobjectClass: inetOrgPerson\ncn: Mallory\nsn: Mallory\nuid: mallory\nuid: tflink\n",
            p = slapd.people_base()
        ))
        .unwrap();
    enroll(&*a.store, "tflink", 0).unwrap();
    let linked = slapd
        .ldapsearch(&slapd.people_base(), "(objectClass=oathTOTPUser)", &["dn"])
        .unwrap();
    assert_eq!(linked.trim(), format!("dn: {own}"), "linked: {linked}");
    // Mallory's own entry is named by cn: it is hers all the same (her uid, exactly).
    enroll(&*a.store, "mallory", 0).unwrap();
    let linked = slapd
        .ldapsearch(&slapd.people_base(), "(objectClass=oathTOTPUser)", &["dn"])
        .unwrap();
    assert!(
        linked.contains(&format!("dn: cn=Mallory,{}", slapd.people_base()))
            && linked.contains(&format!("dn: {own}"))
            && !linked.contains("cn=Other"),
        "linked: {linked}"
    );
    // A local account, with no entry there: nothing to link, the change is made.
    let ok = a.store.start_grace(&user("tflocal").unwrap(), 1);
    assert!(ok.is_ok(), "{ok:?}");
}

/// Whether the StartTLS-refusing server below saw a bind.
static BIND_IN_CLEAR: AtomicBool = AtomicBool::new(false);

/// Someone on the path answers StartTLS with a refusal (or the server is configured
/// without TLS): the store must not go on in clear text, so the password never crosses.
#[test]
fn a_refused_starttls_is_no_fallback_to_clear_text() {
    if !root_or_skip() {
        return;
    }
    let port = fake::serve(|id, op, _| match op {
        // ExtendedRequest (StartTLS): protocolError, "no TLS here".
        0x77 => fake::message(id, fake::result(0x78, 2)),
        fake::BIND => {
            BIND_IN_CLEAR.store(true, Ordering::SeqCst);
            fake::message(id, fake::result(0x61, 0))
        }
        _ => fake::message(id, fake::result(0x65, 0)),
    });
    let (dir, store) = fake_store(port, None);
    let mut settings = store.settings().clone();
    settings.directory.starttls = true;
    let local = Arc::new(Store::open_or_create(&dir.path().join("state")).unwrap());
    let store = LdapStore::new(local, settings);
    let err = store.read_record(&user("tftls").unwrap()).unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !BIND_IN_CLEAR.load(Ordering::SeqCst),
        "a bind went in clear text"
    );
}

/// A stranger with many addresses spends the user's fleet-wide bound (100 failures) on one
/// host: the user must still log in from where they logged in before, on every host of the
/// fleet, not only on the host that saw them there (the bound is the fleet's; so must be
/// what exempts the user's own places from it). A change that clears the counters clears
/// them in the directory too.
#[test]
fn a_place_the_user_logged_in_from_is_known_fleet_wide() {
    let Some(slapd) = start() else { return };
    let (a, b) = (host(&slapd, "").unwrap(), host(&slapd, "").unwrap());
    let (secret, _) = enroll(&*a.store, "tfknown", 0).unwrap();
    let office = "10.7.0.1";
    assert_eq!(
        check(&*a.store, "tfknown", &code(&secret, -1).unwrap(), office).unwrap(),
        Outcome::Code
    );
    let mut refused = 0;
    for i in 0..120u32 {
        let source = format!("10.6.{}.{}", i / 250, i % 250);
        match check(&*b.store, "tfknown", "000000", &source).unwrap() {
            Outcome::Invalid => {}
            Outcome::Throttled(_) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, 20);
    // From the office, on B: checked (and accepted), not refused as a stranger.
    assert_eq!(
        check(&*b.store, "tfknown", &code(&secret, 0).unwrap(), office).unwrap(),
        Outcome::Code
    );
    // Counters cleared (on A): the places are forgotten everywhere.
    a.store
        .update(&user("tfknown").unwrap(), &mut |state| {
            state.counters = Default::default();
            Ok(())
        })
        .unwrap()
        .unwrap();
    let ldif = account_ldif(
        &slapd,
        "tfknown",
        "(objectClass=twofoldAccount)",
        &["twofoldKnownSource"],
    )
    .unwrap();
    assert!(!ldif.contains("twofoldKnownSource"), "{ldif}");
}

/// What a change stopped half-way (or a hand) leaves: a token entry the account does not
/// list is never used, whatever secret it holds; an account listing a token whose entry is
/// gone reads as an error (its user is enrolled), never as a user with no enrollment.
#[test]
fn half_made_changes_open_nothing() {
    use data_encoding::BASE64;
    let Some(slapd) = start() else { return };
    let a = host(&slapd, "").unwrap();
    let (secret, _) = enroll(&*a.store, "tfhalf", 0).unwrap();
    let account = format!("uid=tfhalf,ou=accounts,{}", slapd.twofold_base());
    // A token entry (id 7) nobody lists, with a secret someone knows.
    let stray = Secret::generate().unwrap();
    slapd
        .ldapadd(&format!(
            "dn: cn=7,{account}\nobjectClass: twofoldToken\nobjectClass: oathTOTPToken\ncn: 7\n\
             oathSecret:: {}\noathTOTPParams: cn=totp-6-sha1-30-w1,ou=params,{}\n",
            BASE64.encode(stray.as_bytes()),
            slapd.twofold_base()
        ))
        .unwrap();
    assert_eq!(
        check(&*a.store, "tfhalf", &code(&stray, 0).unwrap(), "10.9.6.1").unwrap(),
        Outcome::Invalid
    );
    // The account's token entry gone.
    let out = Command::new("ldapdelete")
        .args(["-Q", "-Y", "EXTERNAL", "-H", &slapd.ldapi_url()])
        .arg(format!("cn=1,{account}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = a.store.read_record(&user("tfhalf").unwrap());
    assert!(
        matches!(read, Err(StoreError::Directory { .. })),
        "{read:?}"
    );
    let err = check_error(&*a.store, "tfhalf", &code(&secret, 0).unwrap(), "10.9.6.1").unwrap();
    assert!(matches!(err, StoreError::Directory { .. }), "{err:?}");
}

/// One recovery code typed at once on two hosts, from several places: used once.
#[test]
fn a_recovery_code_at_once_on_two_hosts_is_used_once() {
    let Some(slapd) = start() else { return };
    let hosts: Vec<Host> = (0..2).map(|_| host(&slapd, "").unwrap()).collect();
    for round in 0..10 {
        let name = format!("tfrec{round}");
        let (_, codes) = enroll(&*hosts[0].store, &name, 2).unwrap();
        let accepted = accepted_at_once(
            &hosts,
            &name,
            &codes[0],
            8,
            |i| format!("10.5.{round}.{i}"),
            true,
        )
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(accepted, 1, "round {round}");
        let left = hosts[1]
            .store
            .read_record(&user(&name).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(left.enrollment.unwrap().recovery_codes.len(), 1);
    }
}

/// Every character a user name may hold (`_ . - @ $`, digits, both cases) names one entry of
/// its own: none escapes its RDN or meets another name's entry.
#[test]
fn names_with_every_allowed_character_stay_apart() {
    let Some(slapd) = start() else { return };
    let a = host(&slapd, "").unwrap();
    let names = [
        "tf.dot",
        "tf_under",
        "tf-dash",
        "tf@example.org",
        "host$",
        "9tf",
        "tf.dot.x",
    ];
    for n in names {
        enroll(&*a.store, n, 0).unwrap();
    }
    let mut want: Vec<UserName> = names.iter().map(|n| user(n).unwrap()).collect();
    want.sort();
    assert_eq!(a.store.users().unwrap(), want);
    for n in names {
        let r = a.store.read_record(&user(n).unwrap()).unwrap().unwrap();
        assert_eq!(r.user, n);
    }
    // A name that is a prefix of another's entry, or of another's DN, has nothing.
    assert!(a.store.read_record(&user("tf").unwrap()).unwrap().is_none());
    assert!(
        a.store
            .read_record(&user("tf.do").unwrap())
            .unwrap()
            .is_none()
    );
}

/// The first server of the list answers with bytes that are no LDAP (someone on the path to
/// it, or a broken server): the next one is asked, as when the first cannot be reached;
/// one broken path does not stop every login.
#[test]
fn a_server_answering_garbage_is_passed_over_for_the_next() {
    let Some(slapd) = start() else { return };
    let garbage = fake::serve(|_, _, _| b"\x30\x03\x02\x01\x01".to_vec());
    let a = host(&slapd, "").unwrap();
    enroll(&*a.store, "tfnext", 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = password_file(dir.path(), slapd.service_password()).unwrap();
    let settings = Settings {
        directory: LdapConfig {
            uris: vec![format!("ldap://127.0.0.1:{garbage}"), slapd.ldap_url()],
            base: slapd.twofold_base(),
            bind: Bind::Simple {
                dn: slapd.service_dn(),
                password_file: secret_file,
            },
            starttls: false,
            ca_file: None,
            timeout: Duration::from_millis(500),
            link_oath_users: false,
            user_base: None,
        },
        window: 1,
        offline_max_age: None,
    };
    let local = Arc::new(Store::open_or_create(&dir.path().join("state")).unwrap());
    let store = LdapStore::new(local, settings);
    let read = store.read_record(&user("tfnext").unwrap());
    assert!(matches!(&read, Ok(Some(_))), "{read:?}");
}

/// `local` (a login on the host itself: su, sudo, a console, the service's non-root callers)
/// is no place shared by the hosts of a fleet: malware running as the user on another host
/// must not count as a place the user logged in from.
#[test]
fn local_logins_are_known_on_their_own_host_only() {
    let Some(slapd) = start() else { return };
    let (a, b) = (host(&slapd, "").unwrap(), host(&slapd, "").unwrap());
    let (secret, _) = enroll(&*a.store, "tflocal2", 0).unwrap();
    assert_eq!(
        check(&*a.store, "tflocal2", &code(&secret, -1).unwrap(), "local").unwrap(),
        Outcome::Code
    );
    for i in 0..100u32 {
        let source = format!("10.4.{}.{}", i / 250, i % 250);
        assert_eq!(
            check(&*b.store, "tflocal2", "000000", &source).unwrap(),
            Outcome::Invalid
        );
    }
    assert!(matches!(
        check(&*b.store, "tflocal2", "000000", "local").unwrap(),
        Outcome::Throttled(twofold_policy::throttle::Gate::Strangers { .. })
    ));
    // On A, where the user did log in locally, still checked.
    assert_eq!(
        check(&*a.store, "tflocal2", &code(&secret, 0).unwrap(), "local").unwrap(),
        Outcome::Code
    );
}

/// A stranger with many addresses guessing at once on two hosts, many guesses in flight:
/// still exactly 100 codes checked for the account, fleet-wide (each is counted before it is
/// checked, by a compare-and-swap).
#[test]
fn wrong_codes_at_once_over_two_hosts_are_bounded_per_account() {
    let Some(slapd) = start() else { return };
    let hosts: Vec<Host> = (0..2).map(|_| host(&slapd, "").unwrap()).collect();
    enroll(&*hosts[0].store, "tfbound", 0).unwrap();
    let checked = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..12usize {
            let store = hosts[t % 2].store.clone();
            let checked = &checked;
            s.spawn(move || {
                for i in 0..25usize {
                    let source = format!("10.3.{t}.{i}");
                    match store
                        .check_attempt(&user("tfbound").unwrap(), &attempt("000000", &source))
                    {
                        Ok(c) if matches!(c.outcome, Outcome::Invalid | Outcome::Replayed) => {
                            checked.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(c) => assert!(matches!(c.outcome, Outcome::Throttled(_)), "{c:?}"),
                        Err(StoreError::Busy { .. } | StoreError::Contended { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    assert_eq!(checked.load(Ordering::SeqCst), 100);
    assert_eq!(failures(&slapd, "tfbound"), 100);
}
