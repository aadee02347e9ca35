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
