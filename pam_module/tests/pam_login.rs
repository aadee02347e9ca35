//! pam_twofold.so through the real libpam: pam_wrapper with a temporary service directory,
//! pamtester as the application, codes from `oathtool`. Needs root (the store is root's), as CI
//! runs.
//! Codes, replay, recovery codes, the status rows, broken configuration, garbage, the account
//! check, torn counters, the time of the answer; the rig is `common::rig`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::rig::{AT_LOGIN, POLICY, Rig, login_logged, ours};
use common::{Sandbox, module_path, oathtool, root_or_skip, wait_for_fresh_step};
use twofold_policy::UserName;

#[test]
fn codes_window_replay_and_recovery() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    // `sys` is optional and enrolled: status enabled.
    let (secret, codes) = rig.enroll("sys", 2);
    wait_for_fresh_step();
    let (ok, out) = rig.login("sys", "000000\n");
    assert!(!ok && out.contains("Authentication failure"), "{out}");
    // Code from 3 steps ago: refused.
    let (ok, out) = rig.login("sys", &format!("{}\n", oathtool(&secret, -3)));
    assert!(!ok, "{out}");
    // The previous step's code: accepted (window 1).
    let (ok, out) = rig.login("sys", &format!("{}\n", oathtool(&secret, -1)));
    assert!(ok, "{out}");
    // The current code: accepted once, then refused as a replay.
    let now = oathtool(&secret, 0);
    let (ok, out) = rig.login("sys", &format!("{now}\n"));
    assert!(ok, "{out}");
    let (ok, out) = rig.login("sys", &format!("{now}\n"));
    assert!(!ok, "replayed code accepted: {out}");
    // The previous step is older than the accepted one now: refused too.
    let (ok, _) = rig.login("sys", &format!("{}\n", oathtool(&secret, -1)));
    assert!(!ok);
    // The next step's code: accepted.
    let (ok, out) = rig.login("sys", &format!("{}\n", oathtool(&secret, 1)));
    assert!(ok, "{out}");
    // A recovery code, typed with spaces and capitals: accepted once.
    let (ok, out) = rig.login(
        "sys",
        &format!("{}\n", codes[0].to_uppercase().replace('-', " ")),
    );
    assert!(
        ok && out.contains("Recovery code accepted; 1 left."),
        "{out}"
    );
    let (ok, _) = rig.login("sys", &format!("{}\n", codes[0]));
    assert!(!ok, "recovery code accepted twice");
    // Failures were counted per source and cleared by success.
    let state = rig.store().read(&UserName::parse("sys").unwrap()).unwrap();
    assert_eq!(
        state.counters.failures.get("local").map(|f| f.count),
        Some(1),
        "{:?}",
        state.counters.failures
    );
    assert_eq!(
        state
            .record
            .unwrap()
            .enrollment
            .unwrap()
            .recovery_codes
            .len(),
        1
    );
}

#[test]
fn status_rows_give_the_documented_results() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    // off (optional, not enrolled) and exempt (disabled, even if enrolled): PAM_IGNORE, no
    // prompt. With the module alone in the stack, libpam turns "all ignored" into a failure.
    let (ok, out) = rig.login("games", "");
    assert!(!ok && !out.contains("Verification code"), "{out}");
    rig.enroll("bin", 1);
    let (ok, out) = rig.login("bin", "");
    assert!(
        !ok && !out.contains("Verification code"),
        "exempt must not prompt: {out}"
    );
    // enforced (required, enrolled): prompt and code.
    let (secret, _) = rig.enroll("daemon", 1);
    wait_for_fresh_step();
    let (ok, out) = rig.login("daemon", &format!("{}\n", oathtool(&secret, 0)));
    assert!(ok && out.contains("Verification code"), "{out}");
    // pending with at_login = false, in grace: a reminder, and the grace period starts.
    let rig2 = Rig::new(&POLICY.replace("[users.daemon]", "[users.man]"), "");
    let (_, out) = rig2.login("man", "");
    assert!(
        out.contains("set it up with `twofold enroll` before"),
        "{out}"
    );
    let rec = rig2
        .store()
        .read(&UserName::parse("man").unwrap())
        .unwrap()
        .record
        .unwrap();
    assert!(rec.required_since.is_some());
    // pending after the grace period: refused with what to do.
    let rig3 = Rig::new(
        &POLICY
            .replace("[users.daemon]", "[users.man]")
            .replace("\"7d\"", "\"0s\""),
        "",
    );
    let (ok, out) = rig3.login("man", "");
    assert!(
        !ok && out.contains("Ask an administrator to reset or exempt you"),
        "{out}"
    );
}

#[test]
fn broken_configuration_fails_closed() {
    if !root_or_skip() {
        return;
    }
    // A malformed policy: refused before any prompt.
    let rig = Rig::new("mode = \"sometimes\"\n", "");
    rig.enroll("sys", 0);
    let (ok, out) = rig.login("sys", "123456\n");
    assert!(
        !ok && out.contains("cannot retrieve authentication info"),
        "{out}"
    );
    // on_error=allow: ignored, the stack decides.
    let rig = Rig::new("mode = \"sometimes\"\n", "on_error=allow");
    let (ok, out) = rig.login("sys", "");
    assert!(!ok && !out.contains("cannot retrieve"), "{out}");
    // An unknown module argument: service error.
    let rig = Rig::new(POLICY, "nullok");
    let (ok, out) = rig.login("sys", "");
    assert!(!ok && out.contains("Error in service module"), "{out}");
    // A state directory that is missing, or a symlink: refused.
    let rig = Rig::new(POLICY, "");
    let state = rig.dir().join("state");
    std::fs::rename(&state, rig.dir().join("real-state")).unwrap();
    let (ok, out) = rig.login("daemon", "");
    assert!(
        !ok && out.contains("cannot retrieve authentication info"),
        "{out}"
    );
    std::os::unix::fs::symlink(rig.dir().join("real-state"), &state).unwrap();
    let (ok, out) = rig.login("daemon", "");
    assert!(
        !ok && out.contains("cannot retrieve authentication info"),
        "{out}"
    );
}

#[test]
fn garbage_answers_and_names() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (secret, _) = rig.enroll("sys", 1);
    let long = "9".repeat(10_000);
    // Each from its own address, so that every answer is checked (not throttled).
    for (i, answer) in [
        "\n",
        "abcdef\n",
        "12 34\n",
        &format!("{long}\n"),
        "１２３４５６\n",
        "1234\0\n",
    ]
    .into_iter()
    .enumerate()
    {
        let (ok, out) = rig.login_from("sys", answer, &format!("192.0.2.{i}"));
        assert!(
            !ok && out.contains("Authentication failure"),
            "{answer:?}: {out}"
        );
    }
    // Still works afterwards.
    wait_for_fresh_step();
    let (ok, out) = rig.login("sys", &format!("{}\n", oathtool(&secret, 0)));
    assert!(ok, "{out}");
    for user in ["../x", "-rf", &"a".repeat(300), "no-such-user-xyz"] {
        let (ok, out) = rig.login(user, "");
        assert!(!ok && out.contains("User not known"), "{user}: {out}");
    }
    // Nothing was written for any of those names (beside sys's files: the policy cache).
    let names: Vec<_> = std::fs::read_dir(rig.dir().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| {
            let n = n.to_string_lossy();
            n.starts_with("sys.") || n == twofold_policy::cache::CACHE_NAME
        }),
        "{names:?}"
    );
}

#[test]
fn account_management_refuses_logins_that_skipped_the_code() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (secret, _) = rig.enroll("daemon", 1);
    // As sshd does for a public-key login: acct_mgmt with no authenticate before it.
    let (ok, out) = rig.login_ops("daemon", "", None, &["acct_mgmt"]);
    assert!(
        !ok && out.contains("this login did not ask for a code")
            && out.contains("Permission denied"),
        "{out}"
    );
    // An enrolled optional user (status enabled) too.
    rig.enroll("sys", 1);
    let (ok, out) = rig.login_ops("sys", "", None, &["acct_mgmt"]);
    assert!(!ok, "{out}");
    // After a verified code in the same transaction: account passes, credentials are set.
    wait_for_fresh_step();
    let (ok, out) = rig.login_ops(
        "daemon",
        &format!("{}\n", oathtool(&secret, 0)),
        None,
        &["authenticate", "acct_mgmt"],
    );
    assert!(ok, "{out}");
    // A failed code does not leave the mark behind.
    let (ok, out) = rig.login_ops("daemon", "000000\n", None, &["authenticate", "acct_mgmt"]);
    assert!(!ok, "{out}");
    // Users who need no code pass account: off, exempt (even if enrolled).
    let (ok, out) = rig.login_ops("games", "", None, &["acct_mgmt"]);
    assert!(ok, "off: {out}");
    rig.enroll("bin", 1);
    let (ok, out) = rig.login_ops("bin", "", None, &["acct_mgmt"]);
    assert!(ok, "exempt: {out}");
    // A pending user in grace without enrollment at login is reminded, not refused ...
    let rig2 = Rig::new(&POLICY.replace("[users.daemon]", "[users.man]"), "");
    let (ok, out) = rig2.login_ops("man", "", None, &["acct_mgmt"]);
    assert!(ok, "{out}");
    // ... but one who would enroll at login must do so through authentication.
    let rig3 = Rig::new(AT_LOGIN, "");
    let (ok, out) = rig3.login_ops("man", "", None, &["acct_mgmt"]);
    assert!(!ok, "{out}");
    // A broken policy fails closed here too.
    let rig4 = Rig::new("mode = 3\n", "");
    let (ok, out) = rig4.login_ops("games", "", None, &["acct_mgmt"]);
    assert!(!ok, "{out}");
}

#[test]
fn a_torn_counters_file_refuses_only_the_codes_of_before_its_last_write() {
    if !root_or_skip() {
        return;
    }
    let rig = Rig::new(POLICY, "");
    let (secret, _) = rig.enroll("daemon", 1);
    let u = UserName::parse("daemon").unwrap();
    let path = rig.dir().join("state/daemon.counters");
    let tear = |age: u64| {
        std::fs::write(&path, b"version = 1\nlast_step = 5\0\xff\xfe[fail").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    };
    // Torn just now (a crash during a login's write): the step that login may have accepted is
    // lost, so every code that could have been accepted by then is refused.
    tear(0);
    assert!(rig.store().read_counters(&u).is_err());
    wait_for_fresh_step();
    let (ok, out, lines) = login_logged(
        &rig,
        "daemon",
        &format!("{}\n", oathtool(&secret, 0)),
        "192.0.2.4",
    );
    assert!(!ok, "a code of before the tear was accepted: {out}");
    assert!(
        ours(&lines)
            .iter()
            .any(|l| l.contains("corrupt counters ignored")),
        "{lines:#?}"
    );
    // Torn ten minutes ago: today's codes are newer than anything it could have held.
    tear(600);
    assert!(rig.store().read_counters(&u).is_err());
    wait_for_fresh_step();
    let code = oathtool(&secret, 0);
    let (ok, out, lines) = login_logged(&rig, "daemon", &format!("{code}\n"), "192.0.2.4");
    assert!(ok, "{out}");
    let mine = ours(&lines);
    assert!(
        mine.iter().any(|l| l.contains("corrupt counters ignored")),
        "{lines:#?}"
    );
    // The file is whole again, with the accepted step.
    let c = rig.store().read_counters(&u).unwrap();
    assert!(c.last_steps.contains_key(&1));
    assert_eq!(c.last_login_from.as_deref(), Some("192.0.2.4"));
    // And the code is not accepted twice.
    let (ok, _) = rig.login("daemon", &format!("{code}\n"));
    assert!(!ok);
}

#[test]
fn a_code_is_checked_at_the_time_of_the_answer() {
    if !root_or_skip() {
        return;
    }
    // Real libpam with a service in /etc/pam.d (no pam_wrapper, so this can run beside the
    // other tests while its prompts are held open).
    let sandbox = Sandbox::new(POLICY);
    let service = common::PamService::install(
        "held",
        &format!(
            "auth required {} {}\naccount required pam_permit.so\n",
            module_path().display(),
            sandbox.module_args()
        ),
    );
    let (secret, _) = sandbox.enroll("daemon", 1);
    let u = UserName::parse("daemon").unwrap();
    let start = || {
        Command::new("pamtester")
            .args([service.name.as_str(), "daemon", "authenticate"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let opened = twofold_policy::time::now();
    let mut wrong = start();
    let mut right = start();
    // Both prompts are held open 65 s (over two steps: a code from when they opened is out of
    // the ±1 window by then).
    std::thread::sleep(std::time::Duration::from_secs(65));
    let answered = twofold_policy::time::now();
    wrong.stdin.take().unwrap().write_all(b"000000\n").unwrap();
    let out = wrong.wait_with_output().unwrap();
    assert!(!out.status.success());
    // The failure carries the time of its answer, not of its prompt.
    let c = sandbox.store().read_counters(&u).unwrap();
    let last = c.failures["local"].last;
    assert!(
        last >= answered && last > opened + 60,
        "{last} vs {answered}"
    );
    let code = oathtool(&secret, 0);
    right
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{code}\n").as_bytes())
        .unwrap();
    let out = right.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a code valid when typed was refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_module_runs_no_cpuid_at_login() {
    // .cargo/config.toml selects the portable SHA code: the hardware detection runs CPUID,
    // which traps to the hypervisor on a VM, at every load of the module (every login).
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(module_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8_lossy(&out.stdout);
    assert!(code.contains("pam_sm_authenticate"), "no disassembly?");
    // The one exception: ring's feature detection (`OPENSSL_cpuid_setup`, `OPENSSL_cpuid`), which the LDAP
    // client's TLS links in. ring runs it once, lazily, at its first cryptographic operation
    // (a TLS handshake with a directory over `ldaps://` or StartTLS), never at load: ring has
    // no initializer, and a login with the files store or over `ldapi://` never calls ring.
    let mut function = "";
    let mut cpuid = Vec::new();
    for line in code.lines() {
        if let Some(name) = line.strip_suffix(">:").and_then(|l| l.split_once(" <")) {
            function = name.1;
        } else if line.contains("\tcpuid") && !function.contains("OPENSSL_cpuid") {
            cpuid.push(format!("{function}: {line}"));
        }
    }
    assert!(cpuid.is_empty(), "CPUID in the module: {cpuid:?}");
}

#[test]
fn a_panic_is_caught_at_the_boundary_with_the_static_unwinder() {
    if !root_or_skip() {
        return;
    }
    // The module needs neither libgcc_s (the unwinder is linked in statically) ...
    let out = Command::new("readelf")
        .args(["-d"])
        .arg(module_path())
        .output()
        .unwrap();
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(!dynamic.contains("libgcc_s"), "{dynamic}");
    // ... and a panic inside it still unwinds to pam-bindings' catch_unwind: PAM_ABORT, and
    // the application lives on to report it.
    let rig = Rig::new(POLICY, "test_panic");
    let (ok, out) = rig.login("sys", "000000\n");
    assert!(
        !ok && out.contains("Critical error - immediate abort"),
        "{out}"
    );
    assert!(
        !out.contains("Aborted") && !out.contains("core dumped"),
        "{out}"
    );
}
