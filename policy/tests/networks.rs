//! `[networks."CIDR"]` rules: what an attacker can send as `PAM_RHOST` first (host names that
//! look like addresses, junk after an address, no remote host), then parsing (every malformed
//! key with its file:line:col), matching (IPv4, IPv6, mapped IPv4, zones, longest prefix) and
//! the place in the precedence.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::path::Path;

use twofold_policy::net::{Network, rhost_addr};
use twofold_policy::record::Override;
use twofold_policy::resolve::{
    RecordFacts, Rule, Subject, network_differences, required_anywhere, resolve,
};
use twofold_policy::system::Account;
use twofold_policy::{Mode, Policy};

const POLICY: &str = r#"
mode = "required"

[networks."10.0.0.0/8"]
mode = "disabled"

[networks."10.9.0.0/16"]
mode = "required"

[networks."10.9.8.7"]
mode = "optional"

[networks."2001:db8::/32"]
mode = "disabled"

[networks."fe80::/10"]
mode = "disabled"

[groups.wheel]
mode = "required"

[services.sudo]
mode = "disabled"

[users.ceo]
mode = "required"
"#;

fn policy() -> Policy {
    Policy::parse_one(Path::new("policy.toml"), POLICY).unwrap()
}

/// The mode and rule kind of a login of `user` (groups `groups`) from `rhost`.
fn login(p: &Policy, user: &str, groups: &[&str], rhost: &str) -> (Mode, &'static str) {
    let groups: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
    let account = Account {
        name: user.into(),
        uid: 1000,
        gid: 1000,
        groups,
        typed: None,
    };
    let r = twofold_policy::login::resolve_login(
        p,
        &account,
        Some("sshd"),
        rhost,
        &RecordFacts::default(),
        0,
    );
    (r.mode, r.rule.kind())
}

#[test]
fn host_names_and_junk_are_in_no_network() {
    let p = policy();
    // The network would exempt; every one of these must get the default (required).
    for rhost in [
        "10.0.0.1.attacker.example",
        "10.0.0.1.",
        "10.0.0.1 ",
        " 10.0.0.1",
        "10.0.0.1x",
        "10.0.0.1:22",
        "10.0.0.1/8",
        "10.0.0.1%eth0",
        "10.0.0.1?",
        "10.0.0.1\n",
        "10.0.0.1\0",
        "010.0.0.1",
        "10.1",
        "167772161",
        "0x0a000001",
        "[10.0.0.1]",
        "::ffff:10.0.0.1.attacker.example",
        "2001:db8::1.attacker.example",
        "[2001:db8::1]",
        "2001:db8::1/32",
        "2001:db8::1 junk",
        "localhost",
        "",
    ] {
        assert_eq!(
            login(&p, "alice", &[], rhost),
            (Mode::Required, "default"),
            "{rhost:?}"
        );
        assert_eq!(rhost_addr(rhost), None, "{rhost:?}");
    }
}

#[test]
fn addresses_fall_in_their_longest_network() {
    let p = policy();
    for (rhost, want) in [
        ("10.1.2.3", (Mode::Disabled, "network")),
        ("::ffff:10.1.2.3", (Mode::Disabled, "network")),
        ("::FFFF:10.1.2.3", (Mode::Disabled, "network")),
        ("10.9.1.1", (Mode::Required, "network")),
        ("10.9.8.7", (Mode::Optional, "network")),
        ("::ffff:10.9.8.7", (Mode::Optional, "network")),
        ("11.0.0.1", (Mode::Required, "default")),
        ("2001:db8::5", (Mode::Disabled, "network")),
        ("2001:DB8:0:0::5", (Mode::Disabled, "network")),
        ("2001:db9::5", (Mode::Required, "default")),
        ("fe80::1%eth0", (Mode::Disabled, "network")),
        ("fe80::1", (Mode::Disabled, "network")),
        // IPv4-compatible (deprecated) and NAT64 forms are not IPv4.
        ("::10.1.2.3", (Mode::Required, "default")),
        ("64:ff9b::10.1.2.3", (Mode::Required, "default")),
    ] {
        assert_eq!(login(&p, "alice", &[], rhost), want, "{rhost}");
    }
    // The rule names its network.
    let r = resolve(
        &p,
        &Subject {
            user: "alice",
            groups: &[],
            service: None,
            from: rhost_addr("10.9.8.7"),
        },
        &RecordFacts::default(),
        0,
    );
    match r.rule {
        Rule::Network(n, s) => {
            assert_eq!(n.to_string(), "10.9.8.7/32");
            assert_eq!(s.table, "[networks.\"10.9.8.7\"]");
            assert_eq!(s.line, 11);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn precedence_override_user_network_group_service_default() {
    let p = policy();
    // [users.X] beats the network.
    assert_eq!(login(&p, "ceo", &[], "10.1.2.3"), (Mode::Required, "user"));
    // The network beats groups and services.
    assert_eq!(
        login(&p, "alice", &["wheel"], "10.1.2.3"),
        (Mode::Disabled, "network")
    );
    assert_eq!(
        login(&p, "alice", &["wheel"], "11.1.2.3"),
        (Mode::Required, "group")
    );
    let sudo = |rhost: &str| {
        resolve(
            &p,
            &Subject {
                user: "alice",
                groups: &[],
                service: Some("sudo"),
                from: rhost_addr(rhost),
            },
            &RecordFacts::default(),
            0,
        )
    };
    assert_eq!(sudo("").rule.kind(), "service");
    assert_eq!(sudo("10.9.1.1").mode, Mode::Required);
    assert_eq!(sudo("10.9.1.1").rule.kind(), "network");
    // The admin override beats everything.
    let ov = Override {
        mode: Mode::Required,
        by: "root".into(),
        at: 1,
    };
    let facts = RecordFacts {
        admin_override: Some(&ov),
        ..RecordFacts::default()
    };
    let r = resolve(
        &p,
        &Subject {
            user: "alice",
            groups: &[],
            service: None,
            from: rhost_addr("10.1.2.3"),
        },
        &facts,
        0,
    );
    assert_eq!((r.mode, r.rule.kind()), (Mode::Required, "override"));
}

#[test]
fn required_from_outside_counts_as_required() {
    // Exempt by default, required only from outside 10/8: a user may not switch 2FA off.
    let p = Policy::parse_one(
        Path::new("p.toml"),
        "mode = \"disabled\"\n[networks.\"0.0.0.0/0\"]\nmode = \"required\"\n[networks.\"10.0.0.0/8\"]\nmode = \"disabled\"\n",
    )
    .unwrap();
    let r = required_anywhere(&p, "alice", &[], &RecordFacts::default(), 0).unwrap();
    assert_eq!(r.rule.kind(), "network");
    // Required from no network at all: nothing requires.
    let p = Policy::parse_one(
        Path::new("p.toml"),
        "mode = \"optional\"\n[networks.\"10.0.0.0/8\"]\nmode = \"disabled\"\n",
    )
    .unwrap();
    assert!(required_anywhere(&p, "alice", &[], &RecordFacts::default(), 0).is_none());
    // A user rule beats the network: optional everywhere.
    let p = Policy::parse_one(
        Path::new("p.toml"),
        "[networks.\"::/0\"]\nmode = \"required\"\n[users.alice]\nmode = \"optional\"\n",
    )
    .unwrap();
    assert!(required_anywhere(&p, "alice", &[], &RecordFacts::default(), 0).is_none());
    assert!(required_anywhere(&p, "bob", &[], &RecordFacts::default(), 0).is_some());
}

#[test]
fn views_list_the_networks_that_change_the_mode() {
    let p = policy();
    let s = |user| Subject {
        user,
        groups: &[],
        service: None,
        from: None,
    };
    let got: Vec<(String, Mode)> = network_differences(&p, &s("alice"), None)
        .into_iter()
        .map(|(n, m)| (n.to_string(), m))
        .collect();
    assert_eq!(
        got,
        [
            ("10.0.0.0/8".to_string(), Mode::Disabled),
            ("10.9.8.7/32".to_string(), Mode::Optional),
            ("2001:db8::/32".to_string(), Mode::Disabled),
            ("fe80::/10".to_string(), Mode::Disabled),
        ]
    );
    // A user rule decides wherever they come from.
    assert!(network_differences(&p, &s("ceo"), None).is_empty());
}

/// The error `text` gives as `policy.toml:LINE:COL: MESSAGE`.
fn error(text: &str) -> String {
    Policy::parse_one(Path::new("policy.toml"), text)
        .unwrap_err()
        .to_string()
}

#[test]
fn malformed_network_keys_are_errors_with_their_place() {
    let t = |key: &str| format!("mode = \"optional\"\n\n[networks.{key}]\nmode = \"disabled\"\n");
    let expected =
        "expected an IPv4 or IPv6 network (10.0.0.0/8, 2001:db8::/32) or address (192.0.2.7)";
    for (key, why) in [
        (
            r#""10.0.0.0/33""#,
            "prefix length \"33\" is not a number from 0 to 32 (IPv4)",
        ),
        (
            r#""2001:db8::/129""#,
            "prefix length \"129\" is not a number from 0 to 128 (IPv6)",
        ),
        (
            r#""10.0.0.0/""#,
            "prefix length \"\" is not a number from 0 to 32 (IPv4)",
        ),
        (r#""""#, "not an address or a network"),
        (r#""10.0.0""#, "not an address or a network"),
        (r#""10.0.0.256""#, "not an address or a network"),
        (
            r#""10.1.2.3/8""#,
            "host bits set after the /8: the network is 10.0.0.0/8",
        ),
        (
            r#""2001:db8::1/32""#,
            "host bits set after the /32: the network is 2001:db8::/32",
        ),
        (
            r#""example.org""#,
            "a host name is no network: network rules match addresses only",
        ),
        (
            r#""local""#,
            "\"local\" is no network (a console login has no address, and no network rule applies to it)",
        ),
        (
            r#""fe80::1%eth0""#,
            "a zone index (%...) belongs to no network",
        ),
        (
            r#""::ffff:10.0.0.0/104""#,
            "an IPv4-mapped address: write it as IPv4 (10.0.0.0/8), which also matches IPv4 clients of a dual-stack server",
        ),
        (
            r#""host.example/24""#,
            "\"host.example\" before the '/' is not an IP address",
        ),
    ] {
        let written: String = toml::from_str::<toml::Value>(&format!("k = {key}")).unwrap()["k"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            error(&t(key)),
            format!("policy.toml:3:11: invalid network {written:?}: {why}; {expected}"),
            "{key}"
        );
    }
    // A rule without a mode, or with a bad one.
    assert!(
        error("[networks.\"10.0.0.0/8\"]\nmode = \"off\"\n").starts_with("policy.toml:2:8: "),
        "{}",
        error("[networks.\"10.0.0.0/8\"]\nmode = \"off\"\n")
    );
    assert!(error("[networks.\"10.0.0.0/8\"]\n").contains("missing key `mode`"));
}

#[test]
fn one_network_twice_in_a_file_is_an_error() {
    for (first, second) in [
        ("10.0.0.1", "10.0.0.1/32"),
        ("2001:db8::/32", "2001:DB8::/32"),
        ("2001:db8::/32", "2001:db8:0::/32"),
        ("::1", "0:0::1/128"),
    ] {
        let text = format!(
            "[networks.\"{first}\"]\nmode = \"disabled\"\n\n[networks.\"{second}\"]\nmode = \"required\"\n"
        );
        let net: Network = first.parse().unwrap();
        assert_eq!(
            error(&text),
            format!(
                "policy.toml:4:11: [networks.{second:?}] names the network {net} again, as [networks.{first:?}] did at line 1, column 11: write each network once"
            ),
            "{first} {second}"
        );
    }
    // Across files, the later rule replaces the earlier one (as for every table).
    let mut p = Policy::parse_one(
        Path::new("a.toml"),
        "[networks.\"10.0.0.1\"]\nmode = \"disabled\"\n",
    )
    .unwrap();
    p.apply(
        Path::new("b.toml"),
        "[networks.\"10.0.0.1/32\"]\nmode = \"required\"\n",
    )
    .unwrap();
    assert_eq!(p.networks.len(), 1);
    let (_, r) = p.network_for(&"10.0.0.1".parse().unwrap()).unwrap();
    assert_eq!(r.mode, Mode::Required);
    assert_eq!(r.source.file, Path::new("b.toml"));
}

#[test]
fn network_helpers() {
    let n = |s: &str| s.parse::<Network>().unwrap();
    assert!(n("0.0.0.0/0").is_everything());
    assert!(n("::/0").is_everything());
    assert!(!n("10.0.0.0/8").is_everything());
    assert!(n("127.0.0.0/8").holds_loopback());
    assert!(n("0.0.0.0/1").holds_loopback());
    assert!(!n("128.0.0.0/1").holds_loopback());
    assert!(n("::1").holds_loopback());
    assert!(n("::/64").holds_loopback());
    assert!(!n("2001:db8::/32").holds_loopback());
    // A mapped address given to contains is its IPv4 address.
    assert!(n("10.0.0.0/8").contains(&"::ffff:10.1.1.1".parse().unwrap()));
    assert!(!n("::/0").contains(&"::ffff:10.1.1.1".parse().unwrap()));
}
