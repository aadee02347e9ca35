//! The precedence chain (every rung) and every status row of the brief, as tables.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::path::Path;

use twofold_policy::record::Override;
use twofold_policy::resolve::{RecordFacts, Rule, Subject, resolve};
use twofold_policy::{Mode, Policy, Status};

const POLICY: &str = r#"
mode = "optional"
admin_group = "twofold-admin"

[enrollment]
at_login = true
grace_period = "7d"

[groups.wheel]
mode = "required"

[groups.staff]
mode = "optional"

[groups.robots]
mode = "disabled"

[services.sudo]
mode = "disabled"

[services.sshd]
mode = "required"

[users.backup]
mode = "disabled"

[users.ceo]
mode = "required"
"#;

fn policy() -> Policy {
    Policy::parse_one(Path::new("policy.toml"), POLICY).unwrap()
}

fn groups(g: &[&str]) -> Vec<String> {
    g.iter().map(|s| s.to_string()).collect()
}

/// user, groups, service, override → expected mode, rule kind, rule detail
type Case = (
    &'static str,
    Vec<String>,
    Option<&'static str>,
    Option<Override>,
    Mode,
    &'static str,
    &'static str,
);

#[test]
fn precedence_chain() {
    let p = policy();
    let ov = |mode| Override {
        mode,
        by: "root".into(),
        at: 1_795_000_000,
    };
    let cases: Vec<Case> = vec![
        // 1. admin override beats everything, in both directions.
        (
            "backup",
            groups(&["wheel"]),
            Some("sshd"),
            Some(ov(Mode::Required)),
            Mode::Required,
            "override",
            "root",
        ),
        (
            "ceo",
            groups(&["wheel"]),
            Some("sshd"),
            Some(ov(Mode::Disabled)),
            Mode::Disabled,
            "override",
            "root",
        ),
        // 2. [users.X] beats groups, services and default.
        (
            "backup",
            groups(&["wheel"]),
            Some("sshd"),
            None,
            Mode::Disabled,
            "user",
            "[users.backup]",
        ),
        (
            "ceo",
            groups(&["robots"]),
            Some("sudo"),
            None,
            Mode::Required,
            "user",
            "[users.ceo]",
        ),
        // 3. [groups.X] beats services and default; strongest group wins.
        (
            "alice",
            groups(&["wheel"]),
            Some("sudo"),
            None,
            Mode::Required,
            "group",
            "[groups.wheel]",
        ),
        (
            "alice",
            groups(&["robots", "wheel"]),
            None,
            None,
            Mode::Required,
            "group",
            "[groups.wheel]",
        ),
        (
            "alice",
            groups(&["staff", "robots"]),
            Some("sshd"),
            None,
            Mode::Optional,
            "group",
            "[groups.staff]",
        ),
        (
            "alice",
            groups(&["robots"]),
            Some("sshd"),
            None,
            Mode::Disabled,
            "group",
            "[groups.robots]",
        ),
        (
            "alice",
            groups(&["robots", "staff", "wheel"]),
            None,
            None,
            Mode::Required,
            "group",
            "[groups.wheel]",
        ),
        // 4. [services.X] beats default.
        (
            "alice",
            groups(&["users"]),
            Some("sudo"),
            None,
            Mode::Disabled,
            "service",
            "[services.sudo]",
        ),
        (
            "alice",
            groups(&["users"]),
            Some("sshd"),
            None,
            Mode::Required,
            "service",
            "[services.sshd]",
        ),
        // 5. top-level mode.
        (
            "alice",
            groups(&["users"]),
            Some("login"),
            None,
            Mode::Optional,
            "default",
            "mode",
        ),
        (
            "alice",
            vec![],
            None,
            None,
            Mode::Optional,
            "default",
            "mode",
        ),
    ];
    for (user, groups, service, ov, mode, kind, detail) in cases {
        let subject = Subject {
            user,
            groups: &groups,
            service,
            from: None,
        };
        let facts = RecordFacts {
            enrolled: false,
            admin_override: ov.as_ref(),
            required_since: None,
        };
        let r = resolve(&p, &subject, &facts, 1_795_000_000);
        let ctx = format!("{user} {groups:?} {service:?} {ov:?}");
        assert_eq!(r.mode, mode, "{ctx}");
        assert_eq!(r.rule.kind(), kind, "{ctx}");
        let shown = match &r.rule {
            Rule::Override { by, .. } => by.clone(),
            other => other.source().map(|s| s.table.clone()).unwrap_or_default(),
        };
        assert_eq!(shown, detail, "{ctx}");
    }
}

#[test]
fn rules_name_their_file_and_line() {
    let p = policy();
    let g = groups(&["wheel"]);
    let r = resolve(
        &p,
        &Subject {
            user: "alice",
            groups: &g,
            service: None,
            from: None,
        },
        &RecordFacts::default(),
        0,
    );
    assert_eq!(r.rule.to_string(), "[groups.wheel] (policy.toml:10)");
    let r = resolve(
        &p,
        &Subject {
            user: "x",
            groups: &[],
            service: None,
            from: None,
        },
        &RecordFacts::default(),
        0,
    );
    assert_eq!(r.rule.to_string(), "top-level mode (policy.toml:2)");
}

#[test]
fn builtin_default_is_optional() {
    let p = Policy::parse_one(Path::new("empty.toml"), "").unwrap();
    let r = resolve(
        &p,
        &Subject {
            user: "x",
            groups: &[],
            service: Some("sshd"),
            from: None,
        },
        &RecordFacts::default(),
        0,
    );
    assert_eq!(
        (r.mode, r.status, r.rule),
        (Mode::Optional, Status::Off, Rule::BuiltinDefault)
    );
}

#[test]
fn every_status_row() {
    // effective mode × enrolled → status, exactly the table of the brief.
    let rows = [
        (Mode::Required, false, Status::Pending),
        (Mode::Required, true, Status::Enforced),
        (Mode::Optional, true, Status::Enabled),
        (Mode::Optional, false, Status::Off),
        (Mode::Disabled, true, Status::Exempt),
        (Mode::Disabled, false, Status::Exempt),
    ];
    let p = policy();
    for (mode, enrolled, status) in rows {
        let ov = Override {
            mode,
            by: "root".into(),
            at: 0,
        };
        let facts = RecordFacts {
            enrolled,
            admin_override: Some(&ov),
            required_since: None,
        };
        let r = resolve(
            &p,
            &Subject {
                user: "u",
                groups: &[],
                service: None,
                from: None,
            },
            &facts,
            1000,
        );
        assert_eq!(r.status, status, "{mode} enrolled={enrolled}");
        assert_eq!(
            r.deadline.is_some(),
            status == Status::Pending,
            "deadline only when pending"
        );
    }
}

#[test]
fn grace_deadline_runs_from_required_since() {
    let p = policy();
    let g = groups(&["wheel"]);
    let s = Subject {
        user: "alice",
        groups: &g,
        service: None,
        from: None,
    };
    let week = 7 * 86_400;
    // First contact: the grace starts now and the caller is told to record it.
    let r = resolve(&p, &s, &RecordFacts::default(), 1_000);
    assert_eq!((r.deadline, r.starts_grace), (Some(1_000 + week), true));
    assert!(r.enroll_at_login(&p, 1_000));
    // Later: from the recorded time; inside and outside the grace.
    let facts = RecordFacts {
        enrolled: false,
        admin_override: None,
        required_since: Some(500),
    };
    let r = resolve(&p, &s, &facts, 1_000);
    assert_eq!((r.deadline, r.starts_grace), (Some(500 + week), false));
    assert!(r.in_grace(500 + week - 1));
    assert!(!r.in_grace(500 + week));
    assert!(!r.enroll_at_login(&p, 500 + week));
    // Enrollment at login switched off: never offered, grace still computed.
    let mut p2 = p.clone();
    p2.enrollment.at_login = false;
    assert!(!r.enroll_at_login(&p2, 1_000));
    // Enrolled users have no deadline.
    let facts = RecordFacts {
        enrolled: true,
        admin_override: None,
        required_since: Some(500),
    };
    assert_eq!(resolve(&p, &s, &facts, 1_000).deadline, None);
}

/// An alias (another passwd line with the account's uid) opens sessions with its own line's
/// groups as well as the account's: a rule that requires one of those groups holds for it, and
/// a group that exempts it cannot loosen what the account's own groups ask.
#[test]
fn an_alias_is_held_to_the_stricter_of_its_groups_and_the_accounts() {
    use twofold_policy::login::resolve_login;
    use twofold_policy::system::{Account, Typed};
    let p = policy();
    let account = |groups: &[&str], typed_groups: &[&str]| Account {
        name: "alice".into(),
        typed: Some(Box::new(Typed {
            name: "al".into(),
            gid: 1001,
            groups: typed_groups.iter().map(|g| g.to_string()).collect(),
        })),
        uid: 1000,
        gid: 1000,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    };
    let facts = RecordFacts::default();
    let mode =
        |a: &Account, service: Option<&str>| resolve_login(&p, a, service, "", &facts, 0).mode;
    // The alias is listed in wheel (required); the account is not: required.
    let a = account(&["staff"], &["wheel"]);
    assert_eq!(mode(&a, None), Mode::Required);
    assert!(matches!(
        resolve_login(&p, &a, None, "", &facts, 0).rule,
        Rule::Group(ref g, _) if g == "wheel"
    ));
    // The alias is in robots (disabled); the account is in wheel: still required.
    assert_eq!(
        mode(&account(&["wheel"], &["robots"]), None),
        Mode::Required
    );
    // The account alone would be required by sshd; robots on the alias changes nothing.
    assert_eq!(
        mode(&account(&[], &["robots"]), Some("sshd")),
        Mode::Required
    );
    // Nothing of the alias's own: the account's resolution, rule included.
    let plain = account(&["wheel"], &["wheel"]);
    assert_eq!(
        resolve_login(&p, &plain, None, "", &facts, 0),
        resolve(
            &p,
            &Subject {
                user: "alice",
                groups: &plain.groups,
                service: None,
                from: None,
            },
            &facts,
            0
        )
    );
}
