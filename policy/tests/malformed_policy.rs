//! Every file in `data/malformed/` must be refused with exactly the error in its `.err` file:
//! `FILE:LINE:COL: message`. Set `TWOFOLD_BLESS=1` to (re)write the `.err` files, then review
//! them by hand before committing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

use std::path::Path;

use twofold_policy::Policy;

#[test]
fn malformed_policies_are_refused_with_exact_positions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/malformed");
    let bless = std::env::var_os("TWOFOLD_BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "only {} malformed cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap();
        let text = std::fs::read_to_string(case).unwrap();
        let got = match Policy::parse_one(Path::new(name), &text) {
            Ok(_) => format!("{}: ACCEPTED", name.to_string_lossy()),
            Err(e) => e.to_string(),
        };
        let expected_path = case.with_extension("err");
        if bless {
            std::fs::write(&expected_path, format!("{got}\n")).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}", expected_path.display()));
        if got != expected.trim_end_matches('\n') {
            failures.push(format!(
                "{}\n  expected: {}\n  got:      {got}",
                case.display(),
                expected.trim_end()
            ));
        }
        assert!(e_has_position(&got), "{got} has no line:col");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn e_has_position(msg: &str) -> bool {
    let mut parts = msg.splitn(4, ':');
    let _file = parts.next();
    let line = parts.next().and_then(|l| l.parse::<usize>().ok());
    let col = parts.next().and_then(|c| c.parse::<usize>().ok());
    line.is_some() && col.is_some()
}
