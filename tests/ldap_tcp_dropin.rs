//! `packaging/systemd/twofold-ldap-tcp.conf`, the drop-in that lets twofold-enrolld and
//! twofold-verifyd reach a directory over TCP (issue #23): with it in each unit's `.d/`
//! directory, `systemd-analyze verify` accepts the units without a word, and `systemd-analyze
//! security` sees Internet sockets and the host's network allowed, with the exposure scores
//! printed beside those of the units alone (docs/SECURITY.md states them). Runs the real
//! `systemd-analyze` offline on copies of the units; no root needed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::path::Path;
use std::process::Command;

use twofold_system_tests::{run, workspace};

const SERVICES: [&str; 2] = ["twofold-enrolld.service", "twofold-verifyd.service"];

/// Copies of the units in `dir` (ExecStart pointing at an executable that exists, as verify
/// wants), with the drop-in beside each service when `dropin`.
fn units(dir: &Path, dropin: bool) {
    let src = workspace().join("packaging/systemd");
    for unit in SERVICES.iter().chain(&["twofold-verifyd.socket"]) {
        let text = std::fs::read_to_string(src.join(unit)).unwrap();
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("ExecStart=") {
                    "ExecStart=/bin/true\n".to_owned()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(dir.join(unit), text).unwrap();
        if dropin && unit.ends_with(".service") {
            let d = dir.join(format!("{unit}.d"));
            std::fs::create_dir(&d).unwrap();
            std::fs::copy(src.join("twofold-ldap-tcp.conf"), d.join("ldap-tcp.conf")).unwrap();
        }
    }
}

fn analyze(dir: &Path, args: &[&str]) -> String {
    let out = run(Command::new("systemd-analyze")
        .args(args)
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
        .current_dir(dir));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The overall exposure of `unit` and the lines of the network settings.
fn security(dir: &Path, unit: &str) -> (f64, String) {
    let text = analyze(dir, &["security", "--offline=true", "--no-pager", unit]);
    let score = text
        .split(&format!("Overall exposure level for {unit}: "))
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {text}"));
    (score, text)
}

#[test]
fn the_tcp_dropin_is_accepted_and_opens_the_network_only() {
    let plain = tempfile::tempdir().unwrap();
    let with = tempfile::tempdir().unwrap();
    units(plain.path(), false);
    units(with.path(), true);
    let mut all = vec!["verify", "--man=no", "twofold-verifyd.socket"];
    all.extend(SERVICES);
    let said = analyze(with.path(), &all);
    assert!(said.is_empty(), "{said}");
    for unit in SERVICES {
        let (before, text_before) = security(plain.path(), unit);
        let (after, text_after) = security(with.path(), unit);
        println!(
            "systemd-analyze security {unit}: {before} alone, {after} with twofold-ldap-tcp.conf"
        );
        assert!(
            text_before.contains("Service cannot allocate Internet sockets")
                && text_before.contains("Service has no access to the host's network"),
            "{text_before}"
        );
        assert!(
            text_after.contains("Service may allocate Internet sockets")
                && text_after.contains("Service has access to the host's network")
                && text_after.contains("Service defines IP address allow list"),
            "{text_after}"
        );
        // The rest of the hardening stays: the network is all it adds.
        assert!(
            after > before && after <= before + 1.0,
            "{before} -> {after}"
        );
    }
}
