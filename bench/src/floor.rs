//! The floor costs of a login's operations, measured alone in this process: what the operations
//! the module performs cost at the least on this machine (dynamic loading, HMAC, small-file I/O,
//! one syslog line, the user database). The only unsafe code of the benchmarks: dlopen(3) and
//! syslog(3).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

/// Runs `f` `n` times; the time of each run, in µs.
pub fn sample(n: usize, mut f: impl FnMut()) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// dlopen(`path`, RTLD_NOW) as libpam opens a module, then dlclose, `n` times, with libpam held
/// loaded meanwhile (as it is in a PAM application, so only the module is mapped and unmapped).
/// Returns the times in µs and whether the module was really unmapped by dlclose (a module that
/// cannot be unloaded stays mapped and a later dlopen costs nothing). The libraries in `hold`
/// are held loaded too (e.g. `libgcc_s.so.1`, to see what loading it with the module costs).
pub fn dlopen_dlclose_holding(path: &Path, n: usize, hold: &[&std::ffi::CStr]) -> (Vec<f64>, bool) {
    let held: Vec<*mut libc::c_void> = std::iter::once(c"libpam.so.0")
        .chain(hold.iter().copied())
        .map(|lib| {
            // SAFETY: a valid NUL-terminated name of a system library; its handle is closed
            // below.
            let h = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            assert!(!h.is_null(), "dlopen {lib:?} failed");
            h
        })
        .collect();
    let cpath = CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in a path");
    let times = sample(n, || {
        // SAFETY: a valid NUL-terminated path to a PAM module; loading it runs only its ELF
        // constructors, as libpam does; the handle is closed right away and nothing from it is
        // used.
        let h = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW) };
        assert!(!h.is_null(), "dlopen {} failed", path.display());
        // SAFETY: `h` is the handle just opened, closed once.
        unsafe { libc::dlclose(h) };
    });
    let name = path.to_string_lossy().into_owned();
    let unmapped = !std::fs::read_to_string("/proc/self/maps")
        .unwrap_or_default()
        .contains(&name);
    for h in held {
        // SAFETY: a handle opened above, closed once.
        unsafe { libc::dlclose(h) };
    }
    (times, unmapped)
}

/// [`dlopen_dlclose_holding`] with libpam alone held, as in a PAM application.
pub fn dlopen_dlclose(path: &Path, n: usize) -> (Vec<f64>, bool) {
    dlopen_dlclose_holding(path, n, &[])
}

/// syslog(3) of one line at authpriv.notice with a fixed "%s" format, on this process's
/// connection (opened by the first call, as in a PAM application that logs more than once).
pub fn syslog_line(line: &str) {
    let msg = CString::new(line).expect("no NUL in a log line");
    // SAFETY: a static "%s" format with exactly one valid NUL-terminated string argument.
    unsafe {
        libc::syslog(
            libc::LOG_AUTHPRIV | libc::LOG_NOTICE,
            c"%s".as_ptr(),
            msg.as_ptr(),
        )
    };
}

/// google-authenticator's way of logging one line: openlog(LOG_CONS | LOG_PID, authpriv),
/// syslog, closelog, so a new connection to /dev/log for every message.
pub fn syslog_open_line_close(line: &str) {
    let msg = CString::new(line).expect("no NUL in a log line");
    // SAFETY: the ident is a static NUL-terminated string (openlog keeps the pointer; it lives
    // for the whole program); the format is a static "%s" with one valid C string argument.
    unsafe {
        libc::openlog(
            c"twofold-bench(pam_google_authenticator)".as_ptr(),
            libc::LOG_CONS | libc::LOG_PID,
            libc::LOG_AUTHPRIV,
        );
        libc::syslog(libc::LOG_NOTICE, c"%s".as_ptr(), msg.as_ptr());
        libc::closelog();
    }
}

/// open + read of a small file.
pub fn read_small(path: &Path) {
    std::hint::black_box(std::fs::read(path).expect("read"));
}

/// What the module does to store the counters of one login, at the least: open and flock the
/// lock file, write a temp file, rename it over the old one, close (unlocks).
pub fn lock_write_rename(dir: &Path, text: &[u8]) {
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("u.lock"))
        .expect("open lock");
    lock.lock().expect("flock");
    let tmp = dir.join(".u.counters.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .expect("create temp");
    f.write_all(text).expect("write");
    drop(f);
    std::fs::rename(&tmp, dir.join("u.counters")).expect("rename");
    drop(lock);
}

/// write + rename of a small file to a name that does not exist (what a rename over an
/// existing file costs beyond it: ext4's `auto_da_alloc` starts writeback of a file renamed
/// over another).
pub fn write_rename_new(dir: &Path, text: &[u8]) {
    let tmp = dir.join(".n.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .expect("create temp");
    f.write_all(text).expect("write");
    drop(f);
    let new = dir.join("n.new");
    std::fs::rename(&tmp, &new).expect("rename");
    std::fs::remove_file(&new).expect("remove");
}

/// open + write at offset 0 + close of an existing small file of the same size.
pub fn write_in_place(dir: &Path, text: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("inplace"))
        .expect("open");
    f.write_all_at(text, 0).expect("pwrite");
}
