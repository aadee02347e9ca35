//! Links libpam and restricts the exported symbols to `pam_sm_*`.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/pam_twofold.map");
    println!("cargo:rerun-if-changed=pam_twofold.map");
    println!("cargo:rustc-link-lib=pam");
}
