//! What the caller of a setuid program controls cannot weaken the module: `su`, `chfn` and
//! `chsh` include common-auth (where the package puts the module) and run it as root under
//! the resource limits, signal dispositions and descriptors of whoever started them.
//!
//! pamtester stands for such a program: run as root under the limits a caller would pass on
//! (`prlimit`, with SIGXFSZ ignored, which `execve` keeps), or as a setuid-root copy run by an
//! unprivileged account. pam_permit stands for pam_unix: the attacker has the password. Needs
//! root (real accounts, /etc/pam.d).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::{
    PamService, Sandbox, TestUser, module_path, oathtool, root_or_skip, wait_for_fresh_step_within,
};
use twofold_policy::UserName;

/// Runs `program SERVICE USER authenticate` with `answer` on stdin through `sh -c`, after
/// `prefix` (e.g. a `prlimit`); `as_user` runs it as that account. Whether it authenticated,
/// and what it printed.
fn pamtester(
    program: &str,
    prefix: &str,
    service: &str,
    user: &str,
    answer: &str,
    as_user: Option<&str>,
) -> (bool, String) {
    let script = format!("{prefix} {program} -v {service} {user} authenticate");
    let mut cmd = match as_user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--", "sh", "-c", &script]);
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.args(["-c", &script]);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(answer.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Whether this process holds CAP_SYS_RESOURCE (bit 24 of CapEff), which lets root raise a
/// hard resource limit: the module's processes, run by this test as root, hold the same.
fn may_lift_limits() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// `exec` under a file size limit of `n` bytes, SIGXFSZ ignored.
fn fsize(n: u64) -> String {
    format!("trap '' XFSZ; exec prlimit --fsize={n}:{n} --")
}

/// A required, enrolled account, a sandbox and a service: pam_permit, then the module with
/// `extra` arguments.
fn setup(tag: &str, extra: &str) -> (TestUser, Sandbox, PamService) {
    let victim = TestUser::create(tag);
    let sandbox = Sandbox::new(&format!(
        "mode = \"optional\"\n[users.{}]\nmode = \"required\"\n",
        victim.name
    ));
    let service = PamService::install(
        tag,
        &format!(
            "auth required pam_permit.so\nauth required {} {} {extra}\naccount required pam_permit.so\n",
            module_path().display(),
            sandbox.module_args()
        ),
    );
    (victim, sandbox, service)
}

/// A required account, enrolled, that has just logged in with `code`, and its counters file.
struct Rig {
    victim: TestUser,
    sandbox: Sandbox,
    svc: PamService,
    secret: twofold_policy::totp::Secret,
    u: UserName,
    code: String,
    path: std::path::PathBuf,
}

impl Rig {
    fn logged_in(tag: &str) -> Rig {
        let (victim, sandbox, svc) = setup(tag, "");
        let (secret, _) = sandbox.enroll(&victim.name, 1);
        let u = UserName::parse(&victim.name).unwrap();
        wait_for_fresh_step_within(20);
        let code = oathtool(&secret, 0);
        let (ok, out) = pamtester(
            "pamtester",
            "exec",
            &svc.name,
            &victim.name,
            &format!("{code}\n"),
            None,
        );
        assert!(ok, "{out}");
        let path = sandbox
            .dir()
            .join(format!("state/{}.counters", victim.name));
        Rig {
            victim,
            sandbox,
            svc,
            secret,
            u,
            code,
            path,
        }
    }
}

#[test]
fn a_file_size_limit_neither_tears_the_counters_nor_reopens_a_used_code() {
    if !root_or_skip() {
        return;
    }
    // The user logs in with a code; the attacker watched it being typed.
    let Rig {
        victim,
        sandbox,
        svc,
        secret: _,
        u,
        code,
        path,
    } = Rig::logged_in("fs1");
    let before = std::fs::read_to_string(&path).unwrap();
    // A wrong code's counters first differ from these after the last_login_from line: every
    // limit from there to the end of the file would cut the write in place.
    let first_change = before.find("\n\n[known_sources").unwrap() + 1;
    // A soft limit alone (the module raises it to the hard one), then hard limits (which only
    // a root with CAP_SYS_RESOURCE may lift).
    let soft_only = format!(
        "trap '' XFSZ; exec prlimit --fsize={}:unlimited --",
        first_change + 1
    );
    for (limit, prefix) in [
        (first_change as u64 + 1, soft_only),
        (first_change as u64 + 1, fsize(first_change as u64 + 1)),
        (before.len() as u64 - 1, fsize(before.len() as u64 - 1)),
    ] {
        let (ok, out) = pamtester(
            "pamtester",
            &prefix,
            &svc.name,
            &victim.name,
            "000000\n",
            None,
        );
        assert!(!ok, "{out}");
        // The counters are whole: the failure is counted, the accepted step kept.
        let c = sandbox.store().read_counters(&u).unwrap_or_else(|e| {
            panic!(
                "limit {limit}: the counters no longer parse ({e}):\n{:?}",
                std::fs::read_to_string(&path)
            )
        });
        assert!(c.last_steps.contains_key(&1), "limit {limit}");
    }
    // Where root may lift the limit (CAP_SYS_RESOURCE), each wrong code was checked and
    // counted; where it may not (some containers and VMs), none was checked: refused, with
    // nothing written.
    let c = sandbox.store().read_counters(&u).unwrap();
    let expected = if may_lift_limits() { 3 } else { 1 };
    assert_eq!(c.user_failures, expected, "{c:?}");
    // The code the user already used stays used.
    let (ok, out) = pamtester(
        "pamtester",
        "exec",
        &svc.name,
        &victim.name,
        &format!("{code}\n"),
        None,
    );
    assert!(!ok, "an accepted code was accepted again:\n{out}");
}

#[test]
fn an_error_once_the_code_is_asked_refuses_even_with_on_error_allow() {
    if !root_or_skip() {
        return;
    }
    let (victim, sandbox, svc) = setup("fs2", "on_error=allow");
    let _ = sandbox.enroll(&victim.name, 1);
    let (ok, out) = pamtester(
        "pamtester",
        "exec",
        &svc.name,
        &victim.name,
        "000000\n",
        None,
    );
    assert!(!ok, "a wrong code is refused:\n{out}");
    // The user's lock cannot be taken (its name is now a symbolic link): the code, asked
    // already, cannot be checked.
    let lock = sandbox.dir().join(format!("state/{}.lock", victim.name));
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink("/nonexistent", &lock).unwrap();
    let (ok, out) = pamtester(
        "pamtester",
        "exec",
        &svc.name,
        &victim.name,
        "000000\n",
        None,
    );
    assert!(
        !ok,
        "an error after the prompt let a wrong code pass with on_error=allow:\n{out}"
    );
}

#[test]
fn on_error_allow_does_not_apply_in_a_setuid_program_started_by_a_user() {
    if !root_or_skip() {
        return;
    }
    let caller = TestUser::create("fs3");
    let sandbox = Sandbox::new("mode = \"required\"\n");
    // The state is unreadable (here: missing), as a caller's limits could make it.
    let svc = PamService::install(
        "fs3",
        &format!(
            "auth required pam_permit.so\nauth required {} policy={}/policy.toml state={}/missing on_error=allow\naccount required pam_permit.so\n",
            module_path().display(),
            sandbox.dir().display(),
            sandbox.dir().display()
        ),
    );
    // A setuid-root copy of pamtester, as su is.
    let bin = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let setuid = bin.path().join("pamtester");
    let which = Command::new("sh")
        .args(["-c", "command -v pamtester"])
        .output()
        .unwrap();
    // install(1), not a copy by this process: a process another test thread forks while the
    // copy is open for writing would keep it open, and executing it would fail (ETXTBSY).
    let st = Command::new("install")
        .args([
            "-m",
            "4755",
            String::from_utf8(which.stdout).unwrap().trim(),
        ])
        .arg(&setuid)
        .status()
        .unwrap();
    assert!(st.success());
    let setuid = setuid.display().to_string();
    // Started by root, on_error=allow applies: the module steps aside.
    let (ok, out) = pamtester(&setuid, "exec", &svc.name, &caller.name, "", None);
    assert!(ok, "on_error=allow, root caller:\n{out}");
    // Started by the user, the same program fails closed.
    let (ok, out) = pamtester(
        &setuid,
        "exec",
        &svc.name,
        &caller.name,
        "",
        Some(&caller.name),
    );
    assert!(
        !ok,
        "a setuid program started by a user failed open with on_error=allow:\n{out}"
    );
}

/// Found by an attack on the fix above: where the limit could not be lifted, only the write
/// that outgrew it was refused, and a wrong code's counters (longer, with the failure) outgrow
/// a limit that a right code's fit in. Wrong guesses went uncounted, and a right one passed.
/// Now the limit is settled before any code is looked at.
#[test]
fn a_hard_file_size_limit_does_not_turn_off_the_throttle() {
    if !root_or_skip() {
        return;
    }
    let Rig {
        victim,
        sandbox,
        svc,
        secret,
        u,
        path,
        ..
    } = Rig::logged_in("fs4");
    let limit = fsize(std::fs::metadata(&path).unwrap().len());
    // Three wrong guesses under a hard limit of the file's length.
    let valid: Vec<String> = (-1..=1).map(|o| oathtool(&secret, o)).collect();
    let guesses: Vec<String> = (100_000..100_010)
        .map(|g| g.to_string())
        .filter(|g| !valid.contains(g))
        .take(3)
        .collect();
    for g in &guesses {
        let (ok, out) = pamtester(
            "pamtester",
            &limit,
            &svc.name,
            &victim.name,
            &format!("{g}\n"),
            None,
        );
        assert!(!ok, "{out}");
    }
    let c = sandbox.store().read_counters(&u).unwrap();
    // Counted where the limit can be lifted; not checked at all where it cannot.
    let counted = if may_lift_limits() { 3 } else { 0 };
    assert_eq!(c.user_failures, counted, "{c:?}");
    // A right code (the next step's, within the window and not used yet) under the same
    // limit: its counters fit where the failures' did not. Throttled after three counted
    // failures, or not checked; never accepted.
    let (ok, out) = pamtester(
        "pamtester",
        &limit,
        &svc.name,
        &victim.name,
        &format!("{}\n", valid[2]),
        None,
    );
    assert!(!ok, "a right code passed after uncounted guesses:\n{out}");
}
