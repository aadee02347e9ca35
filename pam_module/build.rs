//! Links libpam, restricts the exported symbols to `pam_sm_*`, and links the unwinder
//! statically.
//!
//! Rust's standard library asks for `libgcc_s.so.1` (the unwinder that `panic = "unwind"`
//! needs: pam-bindings catches every panic at the FFI boundary). sshd, login, su and sudo do
//! not load that library themselves, so every `pam_start` would map it and run its
//! constructor, and every `pam_end` unmap it again (about 190 µs a login, bench/results.md).
//! A linker script named `libgcc_s.so`, found first in this build's search path, hands the
//! linker the static unwinder (`libgcc_eh.a`, position-independent on Debian) instead: the
//! module then needs only libpam and libc, and its unwinder stays private (the version script
//! exports nothing else). If the compiler has no `libgcc_eh.a`, the shared one is used.
//!
//! It also hands the linker `hot-symbols.txt`, the functions a login runs (see that file),
//! to place first and together in `.text`: every `pam_start` maps the module afresh, and each
//! 64 KiB of code a login touches for the first time costs a page fault (about 5 µs on the
//! benchmark's VM); spread over the whole 1 MB of code, a login took some 14 of them in
//! `pam_authenticate`, gathered it takes 1 or 2. Only lld reads such a file (rustc's default
//! linker on x86_64 Linux since 1.90); with another linker, found by a trial link, the build
//! goes on without it.
use std::path::PathBuf;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/pam_twofold.map");
    println!("cargo:rerun-if-changed=pam_twofold.map");
    println!("cargo:rustc-link-lib=pam");
    static_unwinder();
    hot_symbols(&dir);
}

/// Places the functions listed in `hot-symbols.txt` first in `.text`, if the linker can.
fn hot_symbols(dir: &str) {
    let list = PathBuf::from(dir).join("hot-symbols.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let args = [
        format!("-Wl,--symbol-ordering-file={}", list.display()),
        // Names the build does not have (another toolchain, a debug build) are skipped.
        "-Wl,--no-warn-symbol-ordering".to_owned(),
    ];
    if list.exists() && linker_takes(&out, &args) {
        for a in args {
            println!("cargo:rustc-cdylib-link-arg={a}");
        }
    }
}

/// Whether linking an empty cdylib with `args`, as this build links, succeeds.
fn linker_takes(out: &std::path::Path, args: &[String]) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let src = out.join("link_probe.rs");
    if std::fs::write(&src, "").is_err() {
        return false;
    }
    let mut cmd = std::process::Command::new(rustc);
    cmd.args([
        "--crate-type",
        "cdylib",
        "--crate-name",
        "link_probe",
        "--out-dir",
    ])
    .arg(out)
    .arg(&src);
    if let Ok(target) = std::env::var("TARGET") {
        cmd.args(["--target", &target]);
    }
    // The flags cargo passes this build's rustc (a linker chosen there counts).
    if let Ok(flags) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    }
    for a in args {
        cmd.arg(format!("-Clink-arg={a}"));
    }
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn static_unwinder() {
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let Ok(found) = std::process::Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let path = PathBuf::from(String::from_utf8_lossy(&found.stdout).trim());
    // `cc` echoes the bare name back when it has no such file.
    if !path.is_absolute() || !path.exists() {
        return;
    }
    let script = format!(
        "/* twofold: the static unwinder in place of libgcc_s */\nINPUT({})\n",
        path.display()
    );
    if std::fs::write(out.join("libgcc_s.so"), script).is_ok() {
        println!("cargo:rustc-link-search=native={}", out.display());
    }
}
