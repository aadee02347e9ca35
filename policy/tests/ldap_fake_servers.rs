//! The LDAP client (`twofold_policy::ldap`) against small fake servers on 127.0.0.1, for what
//! a real slapd would not do: never answer, answer one byte at a time, hang up, send a notice
//! of disconnection or a 2 GiB length; and against nothing at all. No root, no slapd.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use twofold_policy::ldap::{Auth, Conn, LdapError, LdapUrl, Options};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server on 127.0.0.1 that runs `serve` on each connection, in a thread of its own.
fn fake_server(serve: fn(TcpStream)) -> LdapUrl {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || serve(s));
        }
    });
    format!("ldap://127.0.0.1:{port}").parse().unwrap()
}

fn quick() -> Options {
    Options {
        timeout: Duration::from_millis(600),
        ..Options::default()
    }
}

fn within(start: Instant, bound: Duration) {
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < bound, "{took:?}");
}

#[test]
fn ldap_a_silent_server_times_out() {
    let url = fake_server(|s| {
        thread::sleep(Duration::from_secs(30));
        drop(s);
    });
    let mut c = Conn::connect(&url, &quick()).unwrap();
    let start = Instant::now();
    let e = c.bind(&Auth::Anonymous).unwrap_err();
    assert!(matches!(e, LdapError::Timeout), "{e}");
    assert!(e.is_unreachable());
    within(start, Duration::from_secs(2));
    // The connection is given up.
    let start = Instant::now();
    assert!(c.bind(&Auth::Anonymous).unwrap_err().is_unreachable());
    assert!(start.elapsed() < Duration::from_millis(100));

    // StartTLS and ldaps wait no longer.
    if cfg!(not(feature = "tls")) {
        return;
    }
    let start = Instant::now();
    let o = Options {
        starttls: true,
        ..quick()
    };
    assert!(matches!(Conn::connect(&url, &o), Err(LdapError::Timeout)));
    within(start, Duration::from_secs(2));
    let LdapUrl::Tcp { host, port, .. } = url else {
        unreachable!()
    };
    let ldaps = LdapUrl::Tcp {
        host,
        port,
        tls: true,
    };
    let start = Instant::now();
    let e = Conn::connect(&ldaps, &quick()).unwrap_err();
    assert!(matches!(e, LdapError::Timeout), "{e}");
    within(start, Duration::from_secs(2));
}

#[test]
fn ldap_a_trickling_server_times_out() {
    // The start of a response of 4 KiB, then one byte every 100 ms: each read is quick, the
    // whole would take 7 minutes.
    let url = fake_server(|mut s| {
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
        let _ = s.write_all(&[0x30, 0x82, 0x10, 0x00, 0x02, 0x01, 0x01]);
        for _ in 0..300 {
            thread::sleep(Duration::from_millis(100));
            if s.write_all(&[0x04]).is_err() {
                return;
            }
        }
    });
    let mut c = Conn::connect(&url, &quick()).unwrap();
    let start = Instant::now();
    let e = c.bind(&Auth::Anonymous).unwrap_err();
    assert!(matches!(e, LdapError::Timeout), "{e}");
    within(start, Duration::from_secs(2));
}

#[test]
fn ldap_a_server_hanging_up_is_unreachable() {
    let url = fake_server(|mut s| {
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
    });
    let mut c = Conn::connect(&url, &quick()).unwrap();
    let e = c.bind(&Auth::Anonymous).unwrap_err();
    assert!(matches!(e, LdapError::Io(_)) && e.is_unreachable(), "{e:?}");
}

#[test]
fn ldap_a_notice_of_disconnection_is_unreachable() {
    let url = fake_server(|mut s| {
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
        // messageID 0, ExtendedResponse: unavailable (52), "bye", responseName 1.3.6.1.4.1.1466.20036.
        let mut notice = vec![0x30, 0x27, 0x02, 0x01, 0x00, 0x78, 0x22];
        notice.extend_from_slice(&[0x0a, 0x01, 52, 0x04, 0x00, 0x04, 0x03]);
        notice.extend_from_slice(b"bye");
        notice.extend_from_slice(&[0x8a, 0x16]);
        notice.extend_from_slice(b"1.3.6.1.4.1.1466.20036");
        let _ = s.write_all(&notice);
        thread::sleep(Duration::from_secs(5));
    });
    let mut c = Conn::connect(&url, &quick()).unwrap();
    let e = c.bind(&Auth::Anonymous).unwrap_err();
    assert!(
        matches!(e, LdapError::Disconnected { code: 52, .. }),
        "{e:?}"
    );
    assert!(e.is_unreachable());
    assert!(e.to_string().contains("bye"), "{e}");
}

#[test]
fn ldap_a_huge_length_is_refused_unread() {
    let url = fake_server(|mut s| {
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
        let _ = s.write_all(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]);
        thread::sleep(Duration::from_secs(5));
    });
    let mut c = Conn::connect(&url, &quick()).unwrap();
    let e = c.bind(&Auth::Anonymous).unwrap_err();
    assert!(matches!(e, LdapError::Protocol(_)), "{e:?}");
}

#[test]
fn ldap_nothing_listening_is_unreachable() {
    let port = free_port();
    let url: LdapUrl = format!("ldap://127.0.0.1:{port}").parse().unwrap();
    let e = Conn::connect(&url, &quick()).unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
    let dir = tempfile::tempdir().unwrap();
    let url = LdapUrl::Ldapi(dir.path().join("no-socket"));
    let e = Conn::connect(&url, &quick()).unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
}
