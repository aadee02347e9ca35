//! 32 logins at once through the real libpam (pamtester with a service file in /etc/pam.d that
//! the test removes; pam_wrapper is not safe across concurrent processes): one code, or one
//! recovery code, lets exactly one of them in. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{
    PamService, Sandbox, module_path, oathtool, root_or_skip, wait_for_fresh_step_within,
};
use twofold_policy::UserName;

const LOGINS: usize = 32;

/// Starts `LOGINS` pamtester processes (each from its own address, so that every answer is
/// checked and none is merely throttled), lets them all reach the prompt, then gives every one
/// the same `answer` at once. Returns how many succeeded.
fn race(service: &PamService, user: &str, answer: &str) -> usize {
    let mut children: Vec<_> = (0..LOGINS)
        .map(|i| {
            Command::new("pamtester")
                .args(["-I", &format!("rhost=10.9.0.{i}"), &service.name, user])
                .arg("authenticate")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("pamtester must be installed (make test installs it)")
        })
        .collect();
    // Each is blocked reading its answer until now.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let stdins: Vec<_> = children
        .iter_mut()
        .map(|c| c.stdin.take().unwrap())
        .collect();
    for mut s in stdins {
        s.write_all(answer.as_bytes()).unwrap();
    }
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .filter(|o| o.status.success())
        .count()
}

#[test]
fn one_code_one_login_under_concurrency() {
    if !root_or_skip() {
        return;
    }
    let sandbox = Sandbox::new("mode = \"required\"\n");
    let service = PamService::install(
        "race",
        &format!(
            "auth required {} {}\n",
            module_path().display(),
            sandbox.module_args()
        ),
    );
    let (secret, codes) = sandbox.enroll("sys", 3);
    let user = UserName::parse("sys").unwrap();

    wait_for_fresh_step_within(10);
    let code = oathtool(&secret, 0);
    assert_eq!(race(&service, "sys", &format!("{code}\n")), 1);
    // Every other login was checked and refused as a replay, each counted for its address.
    let state = sandbox.store().read(&user).unwrap();
    assert_eq!(state.counters.failures.len(), LOGINS - 1);
    assert!(state.counters.failures.values().all(|f| f.count == 1));

    assert_eq!(race(&service, "sys", &format!("{}\n", codes[0])), 1);
    let record = sandbox.store().read(&user).unwrap().record.unwrap();
    assert_eq!(record.enrollment.unwrap().recovery_codes.len(), 2);
    // The code of the next step still works once: nothing else was consumed.
    wait_for_fresh_step_within(10);
    assert_eq!(
        race(&service, "sys", &format!("{}\n", oathtool(&secret, 1))),
        1
    );
}
