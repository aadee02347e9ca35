//! `/etc/passwd` and `/etc/group` read directly ([`twofold_policy::userfiles`]) give the same
//! accounts and memberships as glibc's NSS on this host's real files: every name of the
//! host, and (as root) an account with an alias sharing its uid and groups listing either.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::process::Command;

use common::Gone;
use twofold_policy::system::{self, Account};
use twofold_policy::userfiles::{Answer, UserFiles};

/// Files that never answer: every lookup goes to NSS (the code before the fast path).
fn nss_only() -> UserFiles {
    UserFiles::nss_only()
}

fn names_of(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Whether this host's nsswitch.conf has the shape the fast path answers for.
fn files_first_here() -> bool {
    let text = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    let first = |db: &str| {
        text.lines().any(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some(&format!("{db}:")) && w.next() == Some("files") && !l.contains('[')
        })
    };
    first("passwd") && first("group")
}

/// The two tests here change and read the host's files: one at a time.
static HOST_FILES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Both answers for `name`. Another test binary may add or remove an account between the
/// two reads: a difference is asked again (a real one stays).
fn both(name: &str) -> (Option<Account>, Option<Account>) {
    let ask = || {
        (
            system::lookup_account_in(&UserFiles::default(), name).unwrap(),
            system::lookup_account_in(&nss_only(), name).unwrap(),
        )
    };
    let mut answers = ask();
    for _ in 0..3 {
        if answers.0 == answers.1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        answers = ask();
    }
    answers
}

fn check_all_names() -> usize {
    let groups = names_of("/etc/group");
    let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let mut answered = 0;
    for name in names_of("/etc/passwd") {
        let (fast, nss) = both(&name);
        assert_eq!(fast, nss, "account {name}");
        if matches!(UserFiles::default().account(&name), Answer::Found(_)) {
            answered += 1;
        }
        // Removed meanwhile by another test.
        let Some(account) = nss else { continue };
        assert_eq!(
            system::member_of_in(&UserFiles::default(), &account, &group_refs).unwrap(),
            system::member_of_in(&nss_only(), &account, &group_refs).unwrap(),
            "groups of {name}"
        );
    }
    for name in ["no-such-user-tf", "ROOT", "root ", "../x"] {
        let (fast, nss) = both(name);
        assert_eq!(fast, nss, "account {name:?}");
    }
    answered
}

#[test]
fn the_files_answer_as_nss_does_for_every_name_of_the_host() {
    let _one = HOST_FILES.lock().unwrap_or_else(|e| e.into_inner());
    let answered = check_all_names();
    if files_first_here() {
        assert!(answered > 0, "the files answered for no name of this host");
    }
}

#[test]
fn an_alias_and_its_groups_resolve_as_nss_does() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("needs root (real accounts and groups): make test runs as root");
        return;
    }
    let _one = HOST_FILES.lock().unwrap_or_else(|e| e.into_inner());
    let user = format!("tfuf{}", std::process::id());
    let alias = format!("{user}a");
    let lists_alias = format!("{user}g");
    let _ = Command::new("groupdel").arg(&lists_alias).output();
    assert!(
        Command::new("groupadd")
            .arg(&lists_alias)
            .status()
            .unwrap()
            .success()
    );
    let _g = Gone("groupdel", lists_alias.clone());
    let _ = Command::new("userdel").arg(&user).output();
    assert!(
        Command::new("useradd")
            .args(["-M", "-U", &user])
            .status()
            .unwrap()
            .success()
    );
    let _u = Gone("userdel", user.clone());
    let uid = nix::unistd::User::from_name(&user).unwrap().unwrap().uid;
    let _ = Command::new("userdel").arg(&alias).output();
    assert!(
        Command::new("useradd")
            .args(["-M", "-N", "-o", "-u", &uid.to_string(), "-g", "0", &alias])
            .status()
            .unwrap()
            .success()
    );
    let _a = Gone("userdel", alias.clone());
    assert!(
        Command::new("gpasswd")
            .args(["-a", &user, &lists_alias])
            .output()
            .unwrap()
            .status
            .success()
    );
    let (fast, nss) = both(&alias);
    assert_eq!(fast, nss);
    let account = fast.unwrap();
    assert_eq!(account.name, user);
    assert_eq!(
        account.typed.as_ref().map(|t| t.name.as_str()),
        Some(alias.as_str())
    );
    if files_first_here() {
        assert!(matches!(
            UserFiles::default().account(&alias),
            Answer::Found(_)
        ));
    }
    let names = [
        user.as_str(),
        lists_alias.as_str(),
        "root",
        "no-such-group-tf",
    ];
    let fast = system::member_of_in(&UserFiles::default(), &account, &names).unwrap();
    assert_eq!(
        fast,
        system::member_of_in(&nss_only(), &account, &names).unwrap()
    );
    assert_eq!(fast, {
        let mut v = vec![user.clone(), lists_alias.clone()];
        v.sort();
        v
    });
    check_all_names();
}
