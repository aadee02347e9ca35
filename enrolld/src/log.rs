//! The daemon's log: one line per admin action and enrollment (who, what, to whom, result),
//! never a code or a secret. Under systemd (`JOURNAL_STREAM` set) lines go to stderr, which the
//! journal keeps; otherwise to syslog (authpriv), and to stderr if there is no syslog.

use std::sync::Mutex;

/// Where log lines go.
pub struct Log {
    syslog: Option<Mutex<syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>>>,
}

impl Log {
    /// Chooses the destination once, at start.
    pub fn open() -> Log {
        Log::open_as("twofold-enrolld")
    }

    /// Like [`Log::open`], with the lines tagged `process`.
    pub fn open_as(process: &str) -> Log {
        if std::env::var_os("JOURNAL_STREAM").is_some() {
            return Log { syslog: None };
        }
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_AUTHPRIV,
            hostname: None,
            process: process.into(),
            pid: std::process::id(),
        };
        Log {
            syslog: syslog::unix(formatter).ok().map(Mutex::new),
        }
    }

    /// A notice: an action that was done or refused.
    pub fn notice(&self, line: &str) {
        self.write(false, line);
    }

    /// An error of the daemon itself (unreadable policy or store).
    pub fn error(&self, line: &str) {
        self.write(true, line);
    }

    fn write(&self, error: bool, line: &str) {
        let line: String = line
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        if let Some(s) = &self.syslog
            && let Ok(mut logger) = s.lock()
        {
            let sent = if error {
                logger.err(&line)
            } else {
                logger.notice(&line)
            };
            if sent.is_ok() {
                return;
            }
        }
        eprintln!("{}{line}", if error { "<3>" } else { "<5>" });
    }
}
