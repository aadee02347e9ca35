//! pam_twofold.so through the real libpam: pam_wrapper with a temporary service directory,
//! pamtester as the application, codes from `oathtool`. Needs root (the store is root's), as CI
//! runs.
//! Another name for the same account (aliases, groups that list an alias).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::process::Command;

use common::rig::{Rig, login_logged};
use common::{oathtool, root_or_skip, wait_for_fresh_step};
use twofold_policy::UserName;

/// A second passwd line with `of`'s uid (and primary group), removed on drop.
struct Alias(String);

impl Alias {
    fn of(user: &str) -> Alias {
        let u = nix::unistd::User::from_name(user).unwrap().unwrap();
        let name = format!("{user}al");
        let _ = Command::new("userdel").arg(&name).output();
        let st = Command::new("useradd")
            .args(["-o", "-u", &u.uid.to_string(), "-g", &u.gid.to_string()])
            .args(["-M", "-d", "/", "-s", "/bin/sh", &name])
            .status()
            .unwrap();
        assert!(st.success(), "useradd -o {name}");
        Alias(name)
    }
}

impl Drop for Alias {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).output();
    }
}

/// A group made with `groupadd`, removed on drop.
struct TestGroup(String);

impl TestGroup {
    fn create(name: &str) -> TestGroup {
        let _ = Command::new("groupdel").arg(name).output();
        let st = Command::new("groupadd").arg(name).status().unwrap();
        assert!(st.success(), "groupadd {name}");
        TestGroup(name.to_owned())
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.0).output();
    }
}

#[test]
fn another_name_for_the_same_account_gets_nothing_of_its_own() {
    if !root_or_skip() {
        return;
    }
    let user = common::TestUser::create("cn");
    let alias = Alias::of(&user.name);
    let policy = format!(
        "mode = \"optional\"\n[enrollment]\nat_login = true\n[users.{}]\nmode = \"required\"\n",
        user.name
    );
    let rig = Rig::new(&policy, "");
    let (secret, _) = rig.enroll(&user.name, 1);
    // The alias has the account's rule and record: no code, no login; no account check either.
    let (ok, out) = rig.login(&alias.0, "000000\n");
    assert!(!ok && out.contains("Verification code"), "{out}");
    let (ok, out) = rig.login_ops(&alias.0, "", None, &["acct_mgmt"]);
    assert!(
        !ok && out.contains("this login did not ask for a code"),
        "{out}"
    );
    // With the account's code it is the account: authenticate and account pass.
    wait_for_fresh_step();
    let code = oathtool(&secret, 0);
    let (ok, out) = rig.login_ops(
        &alias.0,
        &format!("{code}\n"),
        None,
        &["authenticate", "acct_mgmt"],
    );
    assert!(ok, "{out}");
    // ... once: the same code under the real name is a replay.
    let (ok, _) = rig.login(&user.name, &format!("{code}\n"));
    assert!(
        !ok,
        "a code used under the alias was accepted again under the name"
    );
    // Nothing of the alias's own in the store; the wrong code counted against the account.
    for ext in ["toml", "counters", "lock"] {
        assert!(!rig.dir().join(format!("state/{}.{ext}", alias.0)).exists());
    }
    let state = rig
        .store()
        .read(&UserName::parse(&user.name).unwrap())
        .unwrap();
    assert_eq!(state.counters.failures["local"].count, 1);

    // A group rule follows the account too: the alias of a member is required (pending, so
    // it would enroll inside the login and may not skip it in account).
    let group = TestGroup::create(&format!("{}g", user.name));
    let group = &group.0;
    assert!(
        Command::new("usermod")
            .args(["-aG", group, &user.name])
            .status()
            .unwrap()
            .success()
    );
    let rig2 = Rig::new(
        &format!(
            "mode = \"optional\"\n[enrollment]\nat_login = true\n[groups.{group}]\nmode = \"required\"\n"
        ),
        "",
    );
    let (ok, out) = rig2.login_ops(&alias.0, "", None, &["acct_mgmt"]);
    assert!(!ok, "alias of a required member skipped the code: {out}");
    let (ok, out) = rig2.login(&alias.0, "\n\n\n");
    assert!(!ok && out.contains("not set up yet"), "{out}");
}

/// A session opened under an alias gets the groups that list the alias (and its own line's
/// primary group): a rule requiring such a group holds for the alias even when the account
/// itself is not in it, while the account's own logins stay as its own groups decide.
#[test]
fn an_alias_listed_in_a_required_group_is_required() {
    if !root_or_skip() {
        return;
    }
    let user = common::TestUser::create("ag");
    let alias = Alias::of(&user.name);
    let group = TestGroup::create(&format!("{}g", user.name));
    let group = &group.0;
    // Only the alias is listed: `id <alias>` shows the group, `id <user>` does not.
    assert!(
        Command::new("gpasswd")
            .args(["-a", &alias.0, group])
            .output()
            .unwrap()
            .status
            .success()
    );
    let rig = Rig::new(
        &format!(
            "mode = \"optional\"\n[enrollment]\nat_login = true\n[groups.{group}]\nmode = \"required\"\n"
        ),
        "",
    );
    // The account, not enrolled and in no required group: optional and off, nothing asked.
    let (_, out, lines) = login_logged(&rig, &user.name, "", "local-test");
    assert!(!out.contains("Verification code"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("status=off") && l.contains("rule=default")),
        "{lines:?}"
    );
    // Its alias, whose sessions get the group: required by the group's rule, so pending, with
    // enrollment offered inside the login and no way past account without it.
    let (ok, out, lines) = login_logged(&rig, &alias.0, "\n\n\n", "local-test");
    assert!(!ok && out.contains("not set up yet"), "{out}");
    assert!(
        lines.iter().any(|l| l.contains(&format!("as={}", alias.0))
            && l.contains("status=pending")
            && l.contains(&format!("rule=group:[groups.{group}]"))),
        "{lines:?}"
    );
    let (ok, out) = rig.login_ops(&alias.0, "", None, &["acct_mgmt"]);
    assert!(!ok, "an alias in a required group skipped the code: {out}");
}
