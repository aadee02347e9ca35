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
use std::path::PathBuf;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/pam_twofold.map");
    println!("cargo:rerun-if-changed=pam_twofold.map");
    println!("cargo:rustc-link-lib=pam");
    static_unwinder();
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
