//! Helpers of the system tests: where the workspace and its built artefacts are, and who runs.
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// The workspace root.
pub fn workspace() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// The directory of the debug build that `cargo test --workspace` made (`target/debug`), taken
/// from the running test binary (`target/debug/deps/…`).
pub fn build_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.to_path_buf())
}

/// True when running as root; otherwise says why the test does nothing. CI runs as root.
pub fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "this test needs root (it installs files and packages): run make test as root (CI does)"
    );
    false
}

/// The built `pam_twofold` module: `target/debug/libpam_twofold.so`, or the copy in `deps/`
/// where `cargo test` alone leaves it.
pub fn module_so() -> Option<PathBuf> {
    let d = build_dir()?;
    [
        d.join("libpam_twofold.so"),
        d.join("deps/libpam_twofold.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// A directory holding the built artefacts side by side (`twofold`, `twofold-enrolld`,
/// `twofold-verifyd`, `libpam_twofold.so`), as `BIN_DIR` of the Makefile expects: symlinks into the debug build.
pub fn staged_bins(dir: &std::path::Path) -> std::io::Result<PathBuf> {
    let out = dir.join("bin");
    std::fs::create_dir_all(&out)?;
    let d = build_dir().ok_or_else(|| std::io::Error::other("no build directory"))?;
    let module =
        module_so().ok_or_else(|| std::io::Error::other("libpam_twofold.so is not built"))?;
    for (from, name) in [
        (d.join("twofold"), "twofold"),
        (d.join("twofold-enrolld"), "twofold-enrolld"),
        (d.join("twofold-verifyd"), "twofold-verifyd"),
        (module, "libpam_twofold.so"),
    ] {
        let to = out.join(name);
        let _ = std::fs::remove_file(&to);
        std::fs::copy(&from, &to)?;
    }
    Ok(out)
}

/// Runs `cmd` and returns its output; a failure panics with what it printed (the tests that
/// use it treat a panic as a failed test).
#[allow(clippy::panic)]
pub fn run(cmd: &mut std::process::Command) -> std::process::Output {
    match cmd.output() {
        Ok(out) if out.status.success() => out,
        Ok(out) => panic!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}

/// Runs `argv` with `input` on its stdin: whether it succeeded, and its stdout then stderr.
#[allow(clippy::panic)]
pub fn run_with_input(argv: &[&str], input: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Some((program, args)) = argv.split_first() else {
        panic!("no command to run");
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
