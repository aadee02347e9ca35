//! `system::member_of_in` (a few named groups, asked by name) agrees with `system::groups_of`
//! (every group of the user, `getgrouplist`) on real accounts and groups. Needs root.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::process::Command;

use common::Gone;
use twofold_policy::system;

#[test]
fn asking_by_name_finds_the_same_groups() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("needs root (real accounts and groups): make test runs as root");
        return;
    }
    let user = format!("tfgm{}", std::process::id());
    let supp = format!("{user}s");
    let other = format!("{user}o");
    for g in [&supp, &other] {
        let _ = Command::new("groupdel").arg(g).output();
        assert!(Command::new("groupadd").arg(g).status().unwrap().success());
    }
    let _g1 = Gone("groupdel", supp.clone());
    let _g2 = Gone("groupdel", other.clone());
    let _ = Command::new("userdel").arg(&user).output();
    assert!(
        Command::new("useradd")
            .args(["-M", "-U", "-G", &supp, &user])
            .status()
            .unwrap()
            .success()
    );
    let _u = Gone("userdel", user.clone());
    let account = system::lookup(&user).unwrap().unwrap();
    let all = system::groups_of(&account).unwrap();
    assert!(
        all.contains(&user) && all.contains(&supp) && !all.contains(&other),
        "{all:?}"
    );
    let names = [
        user.as_str(),
        supp.as_str(),
        other.as_str(),
        "no-such-group-tf",
    ];
    let by_name = system::member_of_in(
        &twofold_policy::userfiles::UserFiles::default(),
        &account,
        &names,
    )
    .unwrap();
    let expected: Vec<String> = all
        .iter()
        .filter(|g| names.contains(&g.as_str()))
        .cloned()
        .collect();
    assert_eq!(by_name, expected);
}
