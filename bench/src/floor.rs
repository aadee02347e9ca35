//! The floor costs of a login's operations, measured alone in this process: what the operations
//! the module performs cost at the least on this machine (dynamic loading, HMAC, small-file I/O,
//! one syslog line, the user database). The only unsafe code of the benchmarks: syslog(3).
//! Module loading is timed in a C process (`dl_bench`), as a PAM application loads modules.
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

/// dlopen(RTLD_NOW) + dlclose of each module in `modules`, in a C process linked with libpam
/// (`dl_bench`, as a PAM application loads modules: a Rust module's libgcc_s.so.1 is loaded and
/// unloaded with it, unless held), in `rounds` interleaved rounds of `per_round` each; the
/// libraries in `hold` are kept loaded. Returns, per module, the times in µs and whether dlclose
/// really unmapped it (a module that cannot be unloaded stays mapped and costs nothing later).
pub fn dlopen_dlclose(
    dl_bench: &Path,
    modules: &[&Path],
    hold: &[&str],
    rounds: usize,
    per_round: usize,
) -> Vec<(Vec<f64>, bool)> {
    let mut cmd = std::process::Command::new(dl_bench);
    cmd.arg(rounds.to_string()).arg(per_round.to_string());
    for h in hold {
        cmd.arg("--hold").arg(h);
    }
    cmd.args(modules);
    let out = cmd.output().expect("run dl_bench");
    assert!(
        out.status.success(),
        "dl_bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut res: Vec<(Vec<f64>, bool)> = vec![(Vec::new(), false); modules.len()];
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["unmapped", i, u] => res[i.parse::<usize>().unwrap()].1 = *u == "1",
            [i, ns] => res[i.parse::<usize>().unwrap()]
                .0
                .push(ns.parse::<f64>().unwrap() / 1000.0),
            _ => {}
        }
    }
    res
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
