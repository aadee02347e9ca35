//! The findings, their severity, and the report in text and JSON.

use std::path::PathBuf;

use serde_json::json;

/// How bad a finding is, mildest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; no user is let in without a code or locked out by it today.
    Warning,
    /// A part doctor could not check (e.g. `sshd -T` failed).
    Unchecked,
    /// Users who need a code can never log in this way.
    Lockout,
    /// A user whom the policy requires logs in without a code.
    Bypass,
}

impl Severity {
    /// The name in the output.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Unchecked => "unchecked",
            Severity::Lockout => "lockout",
            Severity::Bypass => "bypass",
        }
    }
}

/// One finding, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The PAM service (or `sshd`).
    pub service: String,
    /// The file at fault, when there is one.
    pub file: Option<PathBuf>,
    /// Its line (1-based).
    pub line: Option<usize>,
    /// What happens.
    pub what: String,
    /// How to fix it.
    pub fix: String,
}

/// Everything doctor found.
#[derive(Debug, Default)]
pub struct Report {
    /// The findings, worst first.
    pub findings: Vec<Finding>,
    /// Context: what was checked, what was left out and why.
    pub notes: Vec<String>,
}

/// Exit status when a bypass was found.
pub const EXIT_BYPASS: u8 = 7;
/// Exit status when a lockout (and no bypass) was found.
pub const EXIT_LOCKOUT: u8 = 8;
/// Exit status when a part could not be checked (and no bypass or lockout was found).
pub const EXIT_UNCHECKED: u8 = 9;

impl Report {
    /// How many findings have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// The documented exit status: the worst finding decides.
    pub fn exit_code(&self) -> u8 {
        if self.count(Severity::Bypass) > 0 {
            EXIT_BYPASS
        } else if self.count(Severity::Lockout) > 0 {
            EXIT_LOCKOUT
        } else if self.count(Severity::Unchecked) > 0 {
            EXIT_UNCHECKED
        } else {
            0
        }
    }

    /// `{"findings":[…],"bypass":N,"lockout":N,…}`.
    pub fn to_json(&self) -> serde_json::Value {
        let findings: Vec<_> = self
            .findings
            .iter()
            .map(|f| {
                json!({
                    "severity": f.severity.as_str(),
                    "service": f.service,
                    "file": f.file,
                    "line": f.line,
                    "what": f.what,
                    "fix": f.fix,
                })
            })
            .collect();
        json!({
            "findings": findings,
            "bypass": self.count(Severity::Bypass),
            "lockout": self.count(Severity::Lockout),
            "unchecked": self.count(Severity::Unchecked),
            "warning": self.count(Severity::Warning),
            "notes": self.notes,
        })
    }

    /// One block per finding, then the notes and a summary line.
    pub fn to_text(&self, notes: bool) -> String {
        let mut o = String::new();
        for f in &self.findings {
            let place = match (&f.file, f.line) {
                (Some(p), Some(l)) => format!(" ({}:{l})", p.display()),
                (Some(p), None) => format!(" ({})", p.display()),
                _ => String::new(),
            };
            o.push_str(&format!(
                "{}: {}{place}\n  {}\n  fix: {}\n\n",
                f.severity.as_str(),
                f.service,
                f.what,
                f.fix
            ));
        }
        if notes {
            for n in &self.notes {
                o.push_str(&format!("note: {n}\n"));
            }
        }
        o.push_str(&self.summary());
        o.push('\n');
        o
    }

    /// `doctor: 1 bypass, 0 lockouts, …`.
    pub fn summary(&self) -> String {
        let n = |s: Severity, one: &str, many: &str| {
            let c = self.count(s);
            format!("{c} {}", if c == 1 { one } else { many })
        };
        let verdict = match self.exit_code() {
            EXIT_BYPASS => "a user who needs a code can log in without one",
            EXIT_LOCKOUT => "users who need a code are locked out somewhere",
            EXIT_UNCHECKED => "not everything could be checked",
            _ => "no path skips the code",
        };
        format!(
            "doctor: {}, {}, {}, {}: {verdict}",
            n(Severity::Bypass, "bypass", "bypasses"),
            n(Severity::Lockout, "lockout", "lockouts"),
            n(Severity::Unchecked, "unchecked", "unchecked"),
            n(Severity::Warning, "warning", "warnings"),
        )
    }
}
