//! The only unsafe code of the module: syslog(3) with a fixed format.

use std::ffi::CString;

/// Log priorities used by the module.
#[derive(Clone, Copy)]
pub enum Level {
    /// Decisions and refusals.
    Notice,
    /// Broken configuration or state.
    Err,
    /// Steps of the flow, with the `debug` module argument.
    Debug,
}

/// Writes one line to syslog, facility authpriv, with a fixed `"%s"` format. The host process's
/// `openlog` settings are left alone (no `openlog` here). NUL bytes are dropped from `msg`.
pub fn syslog(level: Level, msg: &str) {
    let priority = libc::LOG_AUTHPRIV
        | match level {
            Level::Notice => libc::LOG_NOTICE,
            Level::Err => libc::LOG_ERR,
            Level::Debug => libc::LOG_DEBUG,
        };
    let Ok(line) = CString::new(msg.replace('\0', "")) else {
        return;
    };
    // SAFETY: the format is a static NUL-terminated "%s" and exactly one argument, a valid
    // NUL-terminated C string that outlives the call, is passed for it; syslog keeps no pointer.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), line.as_ptr()) }
}
