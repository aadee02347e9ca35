//! The LDAP fixture of issue #23 (`twofold_system_tests::slapd`) does what the directory tests
//! will rely on: a private slapd with twofold's schema beside the otp overlay's OATH-LDAP
//! schema; the service account's and users' access; slapd's own TOTP binds (password + code,
//! a code used once); TLS; a mirror pair and its replication delay; and directory users that
//! exist inside an `NssHost` namespace and not on the host, which it leaves as it was. Needs
//! root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::process::{Command, Output};
use std::time::Duration;

use twofold_system_tests::root_or_skip;
use twofold_system_tests::slapd::{NssHost, Options, Slapd};

/// The test's TOTP secret (base32), as an authenticator app would show it.
const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn totp_now() -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", SECRET])
        .output()
        .expect("oathtool");
    assert!(out.status.success(), "oathtool: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The attribute `attr`'s values in LDIF `ldif` (`ldapsearch -LLL`, unwrapped).
fn values(ldif: &str, attr: &str) -> Vec<String> {
    let prefix = format!("{attr}: ");
    ldif.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn directory_access_and_otp_binds() {
    if !root_or_skip() {
        return;
    }
    let slapd = Slapd::start(&Options::default()).expect("slapd");
    let base = slapd.base();
    let twofold = slapd.twofold_base();
    let carol = slapd
        .add_user("tfcarol", 64101, 64100, "carol-password")
        .unwrap();
    let dave = slapd
        .add_user("tfdave", 64102, 64100, "dave-password")
        .unwrap();
    slapd
        .add_group("tfstaff", 64100, &["tfcarol", "tfdave"])
        .unwrap();

    // Users bind with their own password; anonymous binds (nslcd) read users and groups
    // but never a password.
    let who = slapd
        .tool_as("ldapwhoami", &dave, "dave-password", &[], None)
        .unwrap();
    assert!(who.status.success(), "{}", text(&who));
    let who = slapd
        .tool_as("ldapwhoami", &dave, "wrong", &[], None)
        .unwrap();
    assert!(!who.status.success());
    let anon = Command::new("ldapsearch")
        .args(["-x", "-LLL", "-H", &slapd.ldap_url(), "-b", base])
        .args(["(uid=tfdave)", "uid", "userPassword"])
        .output()
        .unwrap();
    assert!(anon.status.success(), "{}", text(&anon));
    let anon = text(&anon);
    assert_eq!(values(&anon, "uid"), ["tfdave"]);
    assert!(!anon.contains("userPassword"), "{anon}");

    // The service account: writes under ou=twofold (the revision as a compare-and-swap
    // guard), reads users but not their passwords, writes no user.
    let (service, service_pw) = (slapd.service_dn(), slapd.service_password().to_owned());
    let account = format!("uid=tfdave,ou=accounts,{twofold}");
    let add = slapd
        .tool_as(
            "ldapadd",
            &service,
            &service_pw,
            &[],
            Some(&format!(
                "dn: {account}\nobjectClass: twofoldAccount\nuid: tfdave\n\
                 twofoldRevision: 1\ntwofoldRequiredSince: 1700000000\ntwofoldNextId: 3\n\
                 twofoldTokenId: 1\ntwofoldTokenId: 2\ntwofoldRecoveryCode: $sha256$salt$hash1\n\
                 twofoldRecoveryCode: $sha256$salt$hash2\ntwofoldFailureCount: 0\n\
                 twofoldOverrideMode: optional\ntwofoldOverrideBy: root\n\
                 twofoldLastLoginFrom: 192.0.2.7\n\n\
                 dn: cn=1,{account}\nobjectClass: twofoldToken\nobjectClass: oathTOTPToken\n\
                 cn: 1\ntwofoldName: phone\ntwofoldKind: totp\ntwofoldSkew: -1\n\
                 twofoldAddedAt: 1700000000\noathSecret: 0123456789\n"
            )),
        )
        .unwrap();
    assert!(add.status.success(), "{}", text(&add));
    let cas = |from: u32, to: u32| {
        slapd
            .tool_as(
                "ldapmodify",
                &service,
                &service_pw,
                &[],
                Some(&format!(
                    "dn: {account}\nchangetype: modify\ndelete: twofoldRevision\n\
                     twofoldRevision: {from}\n-\nadd: twofoldRevision\ntwofoldRevision: {to}\n-\n\
                     replace: twofoldFailureCount\ntwofoldFailureCount: 1\n"
                )),
            )
            .unwrap()
    };
    let first = cas(1, 2);
    assert!(first.status.success(), "{}", text(&first));
    let stale = cas(1, 2);
    assert!(!stale.status.success(), "a stale revision was accepted");
    assert!(
        text(&stale).contains("No such attribute"),
        "{}",
        text(&stale)
    );
    let read = slapd
        .tool_as(
            "ldapsearch",
            &service,
            &service_pw,
            &["-LLL", "-b", &twofold, "(objectClass=*)", "*"],
            None,
        )
        .unwrap();
    let read = text(&read);
    assert_eq!(values(&read, "twofoldRevision"), ["2"], "{read}");
    assert!(read.contains("oathSecret"), "{read}");
    let people = slapd
        .tool_as(
            "ldapsearch",
            &service,
            &service_pw,
            &[
                "-LLL",
                "-b",
                &slapd.people_base(),
                "(uid=tfdave)",
                "uid",
                "userPassword",
            ],
            None,
        )
        .unwrap();
    assert!(people.status.success(), "{}", text(&people));
    assert_eq!(values(&text(&people), "uid"), ["tfdave"]);
    assert!(!text(&people).contains("userPassword"), "{}", text(&people));
    let write_user = slapd
        .tool_as(
            "ldapmodify",
            &service,
            &service_pw,
            &[],
            Some(&format!(
                "dn: {dave}\nchangetype: modify\nreplace: loginShell\nloginShell: /bin/bash\n"
            )),
        )
        .unwrap();
    assert!(!write_user.status.success(), "the service wrote a user");

    // Neither a user nor anonymous reads anything of ou=twofold.
    for (dn, pw) in [(dave.as_str(), "dave-password"), ("", "")] {
        let out = slapd
            .tool_as(
                "ldapsearch",
                dn,
                pw,
                &["-LLL", "-b", base, "(objectClass=*)", "*", "oathSecret"],
                None,
            )
            .unwrap();
        let out = text(&out);
        assert!(out.contains("uid=tfdave,ou=people"), "{dn:?} read: {out}");
        assert!(!out.contains("ou=twofold"), "{dn:?} read: {out}");
        assert!(!out.contains("oathSecret"), "{dn:?} read: {out}");
        let out = slapd
            .tool_as(
                "ldapsearch",
                dn,
                pw,
                &["-LLL", "-b", &account, "-s", "base"],
                None,
            )
            .unwrap();
        assert!(
            !out.status.success(),
            "{dn:?} read {account}: {}",
            text(&out)
        );
    }

    // slapd's own OATH binds (otp overlay): params, a token with the secret's raw bytes, the
    // user linked to it.
    let params = format!("cn=totp-sha1-6,ou=params,{twofold}");
    let token = format!("cn=1,uid=tfcarol,ou=accounts,{twofold}");
    let raw = data_encoding::BASE32_NOPAD
        .decode(SECRET.as_bytes())
        .unwrap();
    slapd
        .ldapadd(&format!(
            "dn: {params}\nobjectClass: twofoldParams\nobjectClass: oathTOTPParams\n\
             cn: totp-sha1-6\noathOTPLength: 6\noathHMACAlgorithm: 1.2.840.113549.2.7\n\
             oathTOTPTimeStepPeriod: 30\noathTOTPTimeStepWindow: 1\n\n\
             dn: uid=tfcarol,ou=accounts,{twofold}\nobjectClass: twofoldAccount\nuid: tfcarol\n\
             twofoldRevision: 1\ntwofoldTokenId: 1\ntwofoldNextId: 2\n\n\
             dn: {token}\nobjectClass: twofoldToken\nobjectClass: oathTOTPToken\ncn: 1\n\
             twofoldName: phone\ntwofoldKind: totp\ntwofoldSkew: 0\ntwofoldAddedAt: 1700000000\n\
             oathTokenIdentifier: tfcarol-1\noathSecret:: {}\noathTOTPParams: {params}\n",
            data_encoding::BASE64.encode(&raw)
        ))
        .unwrap();
    let carol_bind = |password: &str| {
        slapd
            .tool_as("ldapwhoami", &carol, password, &[], None)
            .unwrap()
    };
    assert!(carol_bind("carol-password").status.success());
    slapd
        .ldapmodify(&format!(
            "dn: {carol}\nchangetype: modify\nadd: objectClass\nobjectClass: oathTOTPUser\n-\n\
             add: oathTOTPToken\noathTOTPToken: {token}\n"
        ))
        .unwrap();
    let plain = carol_bind("carol-password");
    assert!(
        !plain.status.success(),
        "the password alone still binds a linked user"
    );
    let code = totp_now();
    let ok = carol_bind(&format!("carol-password{code}"));
    assert!(
        ok.status.success(),
        "password+code refused: {}\n{}",
        text(&ok),
        slapd.log()
    );
    assert!(text(&ok).contains(&carol), "{}", text(&ok));
    let step = values(
        &slapd
            .ldapsearch(&token, "(objectClass=*)", &["oathTOTPLastTimeStep"])
            .unwrap(),
        "oathTOTPLastTimeStep",
    );
    assert_eq!(step.len(), 1, "slapd set no oathTOTPLastTimeStep");
    let now_step = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30;
    let step: u64 = step[0].parse().unwrap();
    assert!(step.abs_diff(now_step) <= 1, "{step} vs {now_step}");
    let replay = carol_bind(&format!("carol-password{code}"));
    assert!(!replay.status.success(), "a code was accepted twice");
    let wrong = carol_bind(&format!("wrong-password{}", totp_now()));
    assert!(!wrong.status.success());

    // Unreachable, then back on the same port and data.
    let mut slapd = slapd;
    slapd.stop().unwrap();
    let down = Command::new("ldapsearch")
        .args(["-x", "-H", &slapd.ldap_url(), "-b", "", "-s", "base"])
        .output()
        .unwrap();
    assert!(!down.status.success());
    slapd.start_again().unwrap();
    assert!(
        slapd
            .ldapsearch(&account, "(objectClass=*)", &["twofoldRevision"])
            .unwrap()
            .contains("twofoldRevision: 2")
    );
}

#[test]
fn tls_and_starttls() {
    if !root_or_skip() {
        return;
    }
    let slapd = Slapd::start(&Options { tls: true }).expect("slapd with TLS");
    let ca = slapd.ca_file().unwrap();
    let ldaps = slapd.ldaps_url().unwrap();
    for args in [
        vec!["-H", ldaps.as_str()],
        vec!["-ZZ", "-H", &slapd.ldap_url()],
    ] {
        let out = Command::new("ldapwhoami")
            .args([
                "-x",
                "-D",
                &slapd.service_dn(),
                "-w",
                slapd.service_password(),
            ])
            .args(&args)
            .env("LDAPTLS_CACERT", &ca)
            .env("LDAPTLS_REQCERT", "demand")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        // Not trusted without the test CA.
        let out = Command::new("ldapwhoami")
            .args([
                "-x",
                "-D",
                &slapd.service_dn(),
                "-w",
                slapd.service_password(),
            ])
            .args(&args)
            .env("LDAPTLS_CACERT", "/etc/ssl/certs/ca-certificates.crt")
            .env("LDAPTLS_REQCERT", "demand")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} without the CA");
    }
}

#[test]
fn mirror_pair_replicates_both_ways() {
    if !root_or_skip() {
        return;
    }
    let (one, two) = Slapd::start_mirror_pair(&Options::default()).expect("mirror pair");
    let timeout = Duration::from_secs(10);
    let dn = one.add_user("tfmirror", 64201, 64200, "pw").unwrap();
    two.wait_replicated(&dn, "uid", "tfmirror", timeout)
        .unwrap();
    let mut delays = Vec::new();
    for i in 0..10u32 {
        let (from, to) = if i % 2 == 0 {
            (&one, &two)
        } else {
            (&two, &one)
        };
        let value = format!("change {i}");
        let t = std::time::Instant::now();
        from.ldapmodify(&format!(
            "dn: {dn}\nchangetype: modify\nreplace: description\ndescription: {value}\n"
        ))
        .unwrap();
        let written = t.elapsed();
        to.wait_replicated(&dn, "description", &value, timeout)
            .unwrap_or_else(|e| panic!("{e}\n{}", to.log()));
        delays.push(t.elapsed().saturating_sub(written));
    }
    delays.sort();
    println!(
        "mirror pair replication delay over {} modifies (both ways, polled every 10 ms): \
         min {:?}, median {:?}, max {:?}",
        delays.len(),
        delays[0],
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    // The service account's writes under ou=twofold replicate too.
    let account = format!("uid=tfmirror,ou=accounts,{}", two.twofold_base());
    let add = two
        .tool_as(
            "ldapadd",
            &two.service_dn(),
            two.service_password(),
            &[],
            Some(&format!(
                "dn: {account}\nobjectClass: twofoldAccount\nuid: tfmirror\ntwofoldRevision: 1\n"
            )),
        )
        .unwrap();
    assert!(add.status.success(), "{}", text(&add));
    one.wait_replicated(&account, "twofoldRevision", "1", timeout)
        .unwrap();
}

#[test]
fn nss_host_sees_directory_users_and_the_host_does_not() {
    if !root_or_skip() {
        return;
    }
    let nsswitch = std::fs::read("/etc/nsswitch.conf").unwrap();
    let nslcd_conf = std::fs::read("/etc/nslcd.conf").ok();
    let run_nslcd = std::path::Path::new("/run/nslcd").exists();
    let ours = |mountinfo: &str| -> Vec<String> {
        mountinfo
            .lines()
            .filter(|l| {
                l.contains(" /etc/nsswitch.conf ")
                    || l.contains(" /etc/nslcd.conf ")
                    || l.contains("twofold-run")
                    || l.contains("twofold-nss.")
                    || l.contains(" /run ")
            })
            .map(str::to_owned)
            .collect()
    };
    let before = ours(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());

    let slapd = Slapd::start(&Options::default()).expect("slapd");
    slapd.add_user("tfalice", 64301, 64300, "pw").unwrap();
    slapd.add_group("tfusers", 64300, &[]).unwrap();
    slapd
        .add_group("tfextra", 64302, &["tfalice", "tfnobody"])
        .unwrap();
    let nss = NssHost::start(&slapd).expect("NssHost");

    let inside = |program: &str, args: &[&str]| {
        let out = nss.command(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} inside: {}\n{}",
            text(&out),
            nss.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let passwd = inside("getent", &["passwd", "tfalice"]);
    assert!(
        passwd.starts_with("tfalice:") && passwd.contains(":64301:64300:"),
        "{passwd}"
    );
    assert!(
        passwd.trim_end().ends_with(":/home/tfalice:/bin/sh"),
        "{passwd}"
    );
    let by_uid = inside("getent", &["passwd", "64301"]);
    assert!(by_uid.starts_with("tfalice:"), "{by_uid}");
    let group = inside("getent", &["group", "tfextra"]);
    assert!(
        group.starts_with("tfextra:") && group.contains(":64302:"),
        "{group}"
    );
    assert!(group.contains("tfalice"), "{group}");
    let id = inside("id", &["tfalice"]);
    assert!(id.contains("uid=64301(tfalice)"), "{id}");
    assert!(id.contains("gid=64300(tfusers)"), "{id}");
    assert!(id.contains("64302(tfextra)"), "{id}");
    // Local accounts still come from the files.
    assert!(inside("getent", &["passwd", "root"]).starts_with("root:"));
    // The namespace has its own /etc/nsswitch.conf; the host's is unchanged meanwhile.
    let ns_nsswitch = inside("cat", &["/etc/nsswitch.conf"]);
    assert!(ns_nsswitch.contains("passwd: files ldap"), "{ns_nsswitch}");

    // The host sees no directory user, no mount, no change, even while it runs.
    for args in [["passwd", "tfalice"], ["group", "tfextra"]] {
        let out = Command::new("getent").args(args).output().unwrap();
        assert!(
            !out.status.success(),
            "the host sees {args:?}: {}",
            text(&out)
        );
    }
    let out = Command::new("id").arg("tfalice").output().unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read("/etc/nsswitch.conf").unwrap(), nsswitch);
    assert_eq!(
        ours(&std::fs::read_to_string("/proc/self/mountinfo").unwrap()),
        before
    );
    assert_eq!(std::path::Path::new("/run/nslcd").exists(), run_nslcd);

    // Directory down: nothing found inside (nslcd answers, finding nothing), and back.
    let mut slapd = slapd;
    slapd.stop().unwrap();
    let out = nss
        .command("getent")
        .args(["passwd", "tfalice"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "found with the directory down");
    slapd.start_again().unwrap();
    let t = std::time::Instant::now();
    loop {
        let out = nss
            .command("getent")
            .args(["passwd", "tfalice"])
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "not found again after the restart: {}",
            nss.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let pid = nss.pid();
    drop(nss);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the holder outlived NssHost"
    );
    assert_eq!(std::fs::read("/etc/nsswitch.conf").unwrap(), nsswitch);
    assert_eq!(std::fs::read("/etc/nslcd.conf").ok(), nslcd_conf);
    assert_eq!(std::path::Path::new("/run/nslcd").exists(), run_nslcd);
    assert_eq!(
        ours(&std::fs::read_to_string("/proc/self/mountinfo").unwrap()),
        before
    );
}
