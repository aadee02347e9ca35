//! Issue #23's "Must show" at the level of the real components: one private slapd, users and
//! groups in it only (nslcd + libnss-ldapd in a mount namespace: no line in /etc/passwd), two
//! hosts (two policy files, two state directories, two PAM services, a bus and
//! `twofold-enrolld` each) sharing it. Logins through the real libpam (pamtester) and the built
//! module, enrollment and admin verbs through the `twofold` command and the daemon, slapd's own
//! OTP bind, and a real sshd. Needs root, as CI runs. See `fleet_rig.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod fleet_rig;

use std::io::Write as _;

use fleet_rig::{
    Fleet, Options, Sshd, assert_not_local, code_at, enroll_store, fresh_step_within, ours,
    read_rest, read_until, step_now, wait_for_step, wrong_code,
};

/// A fleet whose stores link the user entries below `user_base` for slapd's OTP binds
/// (`link_oath_users`), with a daemon on each host if `daemons`.
fn linking_fleet(user_base: &str, daemons: bool) -> Option<Fleet> {
    Fleet::start(&Options {
        daemons,
        ldap: format!("link_oath_users = true\nuser_base = \"{user_base}\"\n"),
        ..Options::default()
    })
}

/// The attributes `attrs` of the user entry `dn`, read as the directory's admin.
fn user_entry(f: &Fleet, dn: &str, attrs: &[&str]) -> String {
    f.slapd.ldapsearch(dn, "(objectClass=*)", attrs).unwrap()
}

/// Enrolled through host A's daemon (`twofold enroll` as the user, on a terminal), the user logs
/// in on host B with a code; the same code is then a replay on A.
#[test]
fn enrolled_through_the_daemon_on_a_logs_in_on_b() {
    let Some(f) = Fleet::start(&Options {
        daemons: true,
        ..Options::default()
    }) else {
        return;
    };
    let alice = f.add_user("fleetalice", 41001);
    fresh_step_within(15);
    let step = step_now();
    let key = f.enroll_cli(f.a(), &alice);
    // The record is in the directory, not in A's state directory.
    let entry = f.account_entry(&alice.name, &["twofoldTokenId", "twofoldEnrolledAt"]);
    assert!(entry.contains("twofoldTokenId: 1"), "{entry}");
    assert!(!f.a().state().join("fleetalice.toml").exists());
    // B: the next step's code (the enrollment used this one).
    let code = code_at(&key, step + 1);
    let r = f.login(f.b(), &alice.name, &code, "192.0.2.10");
    assert!(r.ok, "{r}");
    assert!(r.logged("outcome=success: code accepted"), "{r}");
    // A: the same code again is a replay.
    let r = f.login(f.a(), &alice.name, &code, "192.0.2.11");
    assert!(!r.ok, "{r}");
    assert!(r.logged("code already used (replay)"), "{r}");
    // B's daemon says so too.
    let out = f.cli(f.b(), &["status", &alice.name]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains(&format!("2FA is set up for {}", alice.name)),
        "{text}"
    );
}

/// 32 logins at once, 16 on each host, each from its own address (so the per-source throttle
/// decides nothing), all with the same code: exactly one gets in, in each of 50 rounds (a
/// user of its own per round, enrolled through A's or B's store: a fresh code at once).
#[test]
fn the_same_code_on_a_and_b_at_once_lets_one_login_in() {
    const ROUNDS: u32 = 50;
    const LOGINS: usize = 32;
    let Some(f) = Fleet::start(&Options::default()) else {
        return;
    };
    let names = f.add_users("fleetrace", 42000, ROUNDS);
    let stores = [f.a().store(), f.b().store()];
    let (mut replays, mut other) = (0, 0);
    let started = std::time::Instant::now();
    for (round, name) in names.iter().enumerate() {
        let (key, _) = enroll_store(&*stores[round % 2], name, 0);
        let code = code_at(&key, step_now());
        let _ = f.syslog.lines();
        let mut children: Vec<_> = (0..LOGINS)
            .map(|i| {
                f.pamtester(&f.hosts[i % 2].service, name, &format!("10.{round}.{i}.1"))
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Every login at its prompt, then the same answer to all.
        for c in &mut children {
            let mut e = c.stderr.take().unwrap();
            let seen = read_until(&mut e, "Verification code: ");
            assert!(
                seen.is_some(),
                "round {round}: a login ended before its prompt: {}",
                read_rest(&mut e)
            );
            // What it says after the answer is read by nobody: a line or two, within the
            // pipe's buffer.
            std::mem::forget(e);
        }
        let stdins: Vec<_> = children
            .iter_mut()
            .map(|c| c.stdin.take().unwrap())
            .collect();
        for mut s in stdins {
            s.write_all(format!("{code}\n").as_bytes()).unwrap();
        }
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let ok = outs.iter().filter(|o| o.status.success()).count();
        let lines = ours(f.syslog.lines());
        let all = || {
            format!(
                "{lines:#?}\n{:#?}",
                outs.iter()
                    .map(|o| (o.status, String::from_utf8_lossy(&o.stdout)))
                    .collect::<Vec<_>>()
            )
        };
        let auth: Vec<&String> = lines.iter().filter(|l| l.contains(":auth)")).collect();
        let accepted = auth
            .iter()
            .filter(|l| l.contains("outcome=success: code accepted"))
            .count();
        replays += auth
            .iter()
            .filter(|l| l.contains("code already used (replay)"))
            .count();
        other += auth.len() - accepted;
        assert_eq!(
            ok,
            1,
            "round {round}: {ok} of {LOGINS} logins got in: {}",
            all()
        );
        assert_eq!(accepted, 1, "round {round}: {}", all());
        assert_eq!(auth.len(), LOGINS, "round {round}: {}", all());
    }
    other -= replays;
    eprintln!(
        "{ROUNDS} rounds of {LOGINS} logins in {:?}: one accepted each, {replays} refused as replays, {other} otherwise (busy or contended)",
        started.elapsed()
    );
}

/// A user required by a group rule naming a directory group, enrolled through A's daemon, logs
/// in on B; `twofold reset` on A: B's next login asks for enrollment (inside the login), which
/// then holds on A too.
#[test]
fn reset_on_a_and_b_asks_for_enrollment() {
    let Some(f) = Fleet::start(&Options {
        daemons: true,
        tables: "[groups.tfreq]\nmode = \"required\"\n".into(),
        ..Options::default()
    }) else {
        return;
    };
    let bob = f.add_user("fleetbob", 41002);
    assert_not_local("tfreq");
    f.slapd.add_group("tfreq", 41010, &["fleetbob"]).unwrap();
    fresh_step_within(15);
    let step = step_now();
    let key = f.enroll_cli(f.a(), &bob);
    let r = f.login(f.b(), &bob.name, &code_at(&key, step + 1), "192.0.2.20");
    assert!(r.ok, "{r}");
    assert!(
        r.logged("rule=group:[groups.tfreq]@") && r.logged("status=enforced"),
        "{r}"
    );
    let out = f.cli(f.a(), &["reset", &bob.name]);
    assert!(out.status.success(), "{out:?}\n{}", f.a().daemon_log());
    let entry = f.account_entry(&bob.name, &["twofoldTokenId"]);
    assert!(!entry.contains("twofoldTokenId"), "{entry}");
    // B: the enrollment prompt (QR code, key, URI), answered with the code of the new key.
    let _ = f.syslog.lines();
    let mut child = f
        .pamtester(&f.b().service, &bob.name, "192.0.2.21")
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let prompt = read_until(&mut stderr, "code the app shows: ")
        .unwrap_or_else(|| panic!("no enrollment prompt on B: {}", read_rest(&mut stderr)));
    assert!(prompt.contains("otpauth://totp/"), "{prompt}");
    let new_key = prompt
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(new_key, key);
    let now = step_now();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{}\n", code_at(&new_key, now)).as_bytes())
        .unwrap();
    drop(stdin);
    let rest = read_rest(&mut stderr);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{prompt}{rest}");
    assert!(rest.contains("now set up"), "{rest}");
    let lines = ours(f.syslog.lines());
    assert!(
        lines
            .iter()
            .any(|l| l.contains("status=pending") && l.contains("outcome=success")),
        "{lines:#?}"
    );
    // A: the new key, the next step.
    let r = f.login(f.a(), &bob.name, &code_at(&new_key, now + 1), "192.0.2.22");
    assert!(r.ok && r.logged("status=enforced"), "{r}");
}

/// `twofold require` through B's daemon: A's daemon lists the override (`twofold list`,
/// `twofold status USER`), and A's logins follow it.
#[test]
fn an_override_set_on_b_shows_on_a() {
    let Some(f) = Fleet::start(&Options {
        daemons: true,
        ..Options::default()
    }) else {
        return;
    };
    let carol = f.add_user("fleetcarol", 41003);
    // A daemon lists the local accounts, the store's users and the policy's: a directory
    // user who has no record yet is not among them (NSS is not enumerated).
    let row = |f: &Fleet| {
        let out = f.cli(f.a(), &["list", "--json"]);
        assert!(out.status.success(), "{out:?}\n{}", f.a().daemon_log());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user"] == carol.name.as_str())
            .cloned()
    };
    assert!(row(&f).is_none());
    let out = f.cli(f.b(), &["require", &carol.name]);
    assert!(out.status.success(), "{out:?}\n{}", f.b().daemon_log());
    let listed = row(&f).unwrap_or_else(|| panic!("{} not listed on A", carol.name));
    assert_eq!(listed["override_mode"], "required", "{listed}");
    assert_eq!(listed["status"], "pending", "{listed}");
    let out = f.cli(f.a(), &["status", &carol.name]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("override required, set by root"), "{text}");
    // A's login: pending now, so the enrollment inside the login is offered.
    let mut child = f
        .pamtester(&f.a().service, &carol.name, "192.0.2.30")
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let prompt = read_until(&mut stderr, "code the app shows: ");
    drop(child.stdin.take());
    let _ = child.wait_with_output();
    assert!(prompt.is_some(), "A did not ask {} to enroll", carol.name);
    // And back: `twofold inherit` on A, B's listing has no override.
    let out = f.cli(f.a(), &["inherit", &carol.name]);
    assert!(out.status.success(), "{out:?}");
    let out = f.cli(f.b(), &["status", &carol.name]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("override"), "{text}");
}

/// The store's directory stopped, no offline copy (users still resolve: nslcd asks the other
/// provider): an enrolled user's login fails closed (PAM_AUTHINFO_UNAVAIL) before any prompt,
/// with `on_error=allow` too; so does an optional user who never enrolled, since only the
/// directory can say whether they did (or whether an admin required them). Back: logins work
/// again.
#[test]
fn a_stopped_directory_fails_closed() {
    let Some(mut f) = Fleet::start(&Options {
        mirror: true,
        ..Options::default()
    }) else {
        return;
    };
    let dave = f.add_user("fleetdave", 41004);
    let erin = f.add_user("fleeterin", 41005);
    let (key, _) = enroll_store(&*f.a().store(), &dave.name, 0);
    fresh_step_within(10);
    let step = step_now();
    f.slapd.stop().unwrap();
    for service in [&f.a().service, &f.a().service_allow, &f.b().service_allow] {
        let r = f.login_with(service, &dave.name, &code_at(&key, step), "192.0.2.40");
        assert!(r.unavailable(), "{}: {r}", service.name);
        assert!(
            r.logged("failing closed (the directory cannot be reached"),
            "{r}"
        );
        assert!(!r.out.contains("Verification code"), "{r}");
        let r = f.login_with(service, &erin.name, "", "192.0.2.41");
        assert!(r.unavailable(), "{}: {r}", service.name);
        assert!(
            r.logged("failing closed (the directory cannot be reached"),
            "{r}"
        );
    }
    f.slapd.start_again().unwrap();
    let r = f.login(f.b(), &dave.name, &code_at(&key, step), "192.0.2.40");
    assert!(r.ok, "{r}");
    let r = f.login(f.a(), &erin.name, "", "192.0.2.41");
    assert!(r.ok && r.logged("outcome=ignore"), "{r}");
}

/// One directory for the users (nslcd, no cache) and the store, stopped: the users themselves
/// are unknown, so the module refuses with PAM_USER_UNKNOWN before the store is asked,
/// `on_error=allow` or not.
#[test]
fn users_of_a_stopped_directory_are_unknown() {
    let Some(mut f) = Fleet::start(&Options::default()) else {
        return;
    };
    let dave = f.add_user("fleetdave", 41004);
    let (key, _) = enroll_store(&*f.a().store(), &dave.name, 0);
    f.slapd.stop().unwrap();
    for service in [&f.a().service, &f.b().service_allow] {
        let r = f.login_with(
            service,
            &dave.name,
            &code_at(&key, step_now()),
            "192.0.2.42",
        );
        assert!(
            !r.ok
                && r.out
                    .contains("User not known to the underlying authentication module"),
            "{}: {r}",
            service.name
        );
        assert!(r.logged("outcome=refused: unknown user"), "{r}");
    }
}

/// `[store.offline] enabled = true`: a user who logged in on A logs in on A with a code while
/// slapd is down, not on B (no copy there); back, once A has checked a code online (which
/// pushes what it used offline), the code used offline is a replay on B.
#[test]
fn the_offline_copy_stands_in_on_the_host_that_kept_it() {
    let Some(mut f) = Fleet::start(&Options {
        offline: true,
        mirror: true,
        ..Options::default()
    }) else {
        return;
    };
    let frank = f.add_user("fleetfrank", 41006);
    let (key, _) = enroll_store(&*f.a().store(), &frank.name, 0);
    fresh_step_within(15);
    let step = step_now();
    let r = f.login(f.a(), &frank.name, &code_at(&key, step - 1), "192.0.2.50");
    assert!(r.ok, "{r}");
    f.slapd.stop().unwrap();
    let offline_code = code_at(&key, step);
    let r = f.login(f.a(), &frank.name, &offline_code, "192.0.2.50");
    assert!(r.ok && r.logged("code accepted"), "offline on A: {r}");
    let r = f.login(f.b(), &frank.name, &code_at(&key, step + 1), "192.0.2.51");
    assert!(r.unavailable(), "offline on B: {r}");
    // A's copy refuses the replay of its own offline step.
    let r = f.login(f.a(), &frank.name, &offline_code, "192.0.2.50");
    assert!(!r.ok && r.logged("code already used (replay)"), "{r}");
    f.slapd.start_again().unwrap();
    // A's next online check (a wrong code) merges the offline step into the directory.
    let r = f.login(f.a(), &frank.name, &wrong_code(&key, step), "192.0.2.50");
    assert!(!r.ok && r.logged("wrong code"), "{r}");
    let r = f.login(f.b(), &frank.name, &offline_code, "192.0.2.51");
    assert!(!r.ok, "{r}");
    assert!(r.logged("code already used (replay)"), "{r}");
}

/// `link_oath_users = true`: a token enrolled through A's daemon also serves slapd's own OTP
/// bind (password + code) for the user's entry; slapd records the step, so twofold then refuses
/// the same code: one replay protection for both.
#[test]
fn slapd_otp_bind_accepts_a_code_of_a_token_twofold_enrolled() {
    let Some(f) = linking_fleet(
        &format!("ou=people,{}", twofold_system_tests::slapd::BASE),
        true,
    ) else {
        return;
    };
    let grace = f.add_user("fleetgrace", 41007);
    // Before: the password alone binds.
    let bind = |password: &str| {
        f.slapd
            .tool_as("ldapwhoami", &grace.dn, password, &[], None)
            .unwrap()
    };
    assert!(bind(&grace.password).status.success());
    fresh_step_within(15);
    let step = step_now();
    let key = f.enroll_cli(f.a(), &grace);
    let linked = user_entry(&f, &grace.dn, &["objectClass", "oathTOTPToken"]);
    assert!(linked.contains("objectClass: oathTOTPUser"), "{linked}");
    assert!(
        linked.contains(&format!(
            "oathTOTPToken: cn=1,uid={},ou=accounts,{}",
            grace.name,
            f.slapd.twofold_base()
        )),
        "{linked}"
    );
    // slapd: the password alone no longer binds; password + the next step's code does.
    assert!(!bind(&grace.password).status.success());
    let code = code_at(&key, step + 1);
    let out = bind(&format!("{}{code}", grace.password));
    assert!(
        out.status.success(),
        "{out:?}\n{}",
        f.slapd
            .log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // twofold: that code is used.
    let r = f.login(f.b(), &grace.name, &code, "192.0.2.60");
    assert!(!r.ok && r.logged("code already used (replay)"), "{r}");
    // And the other way: a code twofold accepted does not bind (a step after slapd's, once
    // the window reaches it).
    wait_for_step(step + 1);
    let next = code_at(&key, step + 2);
    let r = f.login(f.b(), &grace.name, &next, "192.0.2.60");
    assert!(r.ok, "{r}");
    assert!(!bind(&format!("{}{next}", grace.password)).status.success());
    // The service account may write exactly the link on a user entry, nothing else.
    for change in [
        "add: objectClass\nobjectClass: pilotObject\n",
        "replace: loginShell\nloginShell: /bin/bash\n",
    ] {
        let out = f
            .slapd
            .tool_as(
                "ldapmodify",
                &f.slapd.service_dn(),
                f.slapd.service_password(),
                &[],
                Some(&format!("dn: {}\nchangetype: modify\n{change}", grace.dn)),
            )
            .unwrap();
        assert!(!out.status.success(), "the service account wrote {change}");
    }
    // A reset through A's daemon unlinks the entry: the password alone binds again.
    let out = f.cli(f.a(), &["reset", &grace.name]);
    assert!(out.status.success(), "{out:?}\n{}", f.a().daemon_log());
    let linked = user_entry(&f, &grace.dn, &["objectClass", "oathTOTPToken"]);
    assert!(!linked.contains("oathTOTP"), "{linked}");
    assert!(bind(&grace.password).status.success());
}

/// Wrong codes from 160 addresses, alternating between A and B: 100 are checked for the
/// account, fleet-wide; the rest are refused unchecked (the module's log says which), and the
/// account entry counts 100 failures.
#[test]
fn wrong_codes_over_two_hosts_are_bounded_per_account() {
    let Some(f) = Fleet::start(&Options::default()) else {
        return;
    };
    let heidi = f.add_user("fleetheidi", 41008);
    let (key, _) = enroll_store(&*f.a().store(), &heidi.name, 0);
    let (mut checked, mut throttled) = (0, 0);
    for i in 0..160u32 {
        let host = &f.hosts[(i % 2) as usize];
        let wrong = wrong_code(&key, step_now());
        let r = f.login(
            host,
            &heidi.name,
            &wrong,
            &format!("10.77.{}.{}", i / 200, i % 200 + 1),
        );
        assert!(!r.ok, "{r}");
        let auth: Vec<&String> = r.log.iter().filter(|l| l.contains(":auth)")).collect();
        assert_eq!(auth.len(), 1, "{r}");
        if auth[0].contains("outcome=refused: wrong code") {
            checked += 1;
        } else if auth[0].contains("outcome=refused: throttled: 100 wrong codes in a row") {
            throttled += 1;
        } else {
            panic!("attempt {i}: {r}");
        }
    }
    assert_eq!((checked, throttled), (100, 60));
    let entry = f.account_entry(&heidi.name, &["twofoldFailureCount"]);
    assert!(entry.contains("twofoldFailureCount: 100"), "{entry}");
}

/// A directory user (and group, whose rule requires a code) logs in through a real sshd on
/// 127.0.0.1 running inside the namespace: the module finds the user and the group through NSS
/// (not in /etc/passwd or /etc/group), asks for the code, and the session runs as that user.
#[test]
fn a_directory_user_logs_in_through_sshd() {
    let Some(f) = Fleet::start(&Options {
        tables: "[groups.tfssh]\nmode = \"required\"\n".into(),
        ..Options::default()
    }) else {
        return;
    };
    let ivan = f.add_user("fleetivan", 41009);
    assert_not_local("tfssh");
    f.slapd.add_group("tfssh", 41011, &["fleetivan"]).unwrap();
    let (key, _) = enroll_store(&*f.b().store(), &ivan.name, 0);
    let sshd = Sshd::start(&f, f.a());
    fresh_step_within(10);
    let step = step_now();
    let _ = f.syslog.lines();
    let r = sshd.client(
        &ivan.name,
        &serde_json::json!({"code": code_at(&key, step), "command": "id -un; id -gn; id -Gn"}),
    );
    assert_eq!(r["ok"], true, "{r}\n{}", sshd.log_text());
    let out = r["stdout"].as_str().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], ivan.name, "{out}");
    assert_eq!(lines[1], fleet_rig::USERS_GROUP, "{out}");
    assert!(lines[2].split(' ').any(|g| g == "tfssh"), "{out}");
    let logged = ours(f.syslog.lines());
    assert!(
        logged.iter().any(|l| l.contains("pam_twofold(")
            && l.contains(":auth): user=fleetivan source=127.0.0.1 rule=group:[groups.tfssh]@")
            && l.contains("status=enforced outcome=success: code accepted")),
        "{logged:#?}"
    );
    // A wrong code: no session.
    let r = sshd.client(
        &ivan.name,
        &serde_json::json!({"code": wrong_code(&key, step), "command": "true"}),
    );
    assert_eq!(r["ok"], false, "{r}");
}

/// A site that did not grant the service account the link's writes on people entries: an
/// enrollment through the daemon fails and stores nothing (neither host sees an enrollment,
/// the user entry is not linked), so the user can simply enroll again once the access is
/// granted.
#[test]
fn an_enrollment_whose_link_is_refused_stores_nothing() {
    let Some(f) = linking_fleet(
        &format!("ou=people,{}", twofold_system_tests::slapd::BASE),
        true,
    ) else {
        return;
    };
    let judy = f.add_user("fleetjudy", 41012);
    f.slapd.set_link_access(false).unwrap();
    let v = f.enroll_cli_raw(f.a(), &judy);
    let screen = v["screen"].as_str().unwrap();
    assert_ne!(v["exit"], 0, "{screen}");
    assert!(screen.contains("insufficientAccessRights"), "{screen}");
    let entry = f.account_entry(&judy.name, &["twofoldTokenId"]);
    assert!(
        !entry.contains("twofoldTokenId"),
        "enrolled anyway: {entry}"
    );
    let user = twofold_policy::UserName::parse(&judy.name).unwrap();
    for host in &f.hosts {
        let record = host.store().read_record(&user).unwrap();
        assert!(
            record.is_none_or(|r| r.enrollment.is_none()),
            "host {} sees an enrollment",
            host.name
        );
    }
    let linked = user_entry(&f, &judy.dn, &["objectClass"]);
    assert!(!linked.contains("oathTOTPUser"), "{linked}");
    // Granted: the same user enrolls, and is linked.
    f.slapd.set_link_access(true).unwrap();
    f.enroll_cli(f.a(), &judy);
    let linked = user_entry(&f, &judy.dn, &["objectClass"]);
    assert!(linked.contains("oathTOTPUser"), "{linked}");
}

/// `user_base` may be the directory's suffix, above twofold's own entries: the account entry
/// `uid=NAME,ou=accounts,…` is not taken for the user's entry, and the people entry is linked.
#[test]
fn a_user_base_above_twofolds_entries_links_the_user_entry() {
    let Some(f) = linking_fleet(twofold_system_tests::slapd::BASE, false) else {
        return;
    };
    let kim = f.add_user("fleetkim", 41013);
    let (key, _) = enroll_store(&*f.b().store(), &kim.name, 0);
    let linked = user_entry(&f, &kim.dn, &["objectClass", "oathTOTPToken"]);
    assert!(linked.contains("objectClass: oathTOTPUser"), "{linked}");
    let account = f.account_entry(&kim.name, &["objectClass"]);
    assert!(!account.contains("oathTOTPUser"), "{account}");
    // slapd's OTP bind with the current code.
    let code = code_at(&key, step_now());
    let out = f
        .slapd
        .tool_as(
            "ldapwhoami",
            &kim.dn,
            &format!("{}{code}", kim.password),
            &[],
            None,
        )
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}
