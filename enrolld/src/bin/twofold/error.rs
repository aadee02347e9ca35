//! Errors of the CLI layer, each with its exit status.

use std::fmt;

use twofold_enrolld::api;

/// A failure the user can act on.
#[derive(Debug)]
pub enum CliError {
    /// The policy does not load (exit 1).
    Policy(twofold_policy::PolicyError),
    /// A bad argument (exit 2).
    Usage(String),
    /// State, policy, user database or daemon unreachable (exit 3).
    System(String),
    /// No such user (exit 4).
    UnknownUser(String),
    /// Not allowed (exit 5).
    PermissionDenied(String),
    /// Refused: wrong code, not enrolled, forbidden by the policy, throttled or busy (nothing
    /// done: try again) (exit 6).
    Refused(String),
    /// `doctor` printed its findings; exits with their status (7, 8 or 9).
    Found(u8),
    /// Already reported (per user, by the admin verbs); exits with the inner status.
    Reported(Box<CliError>),
}

impl CliError {
    /// The documented exit status.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Policy(_) => 1,
            CliError::Usage(_) => 2,
            CliError::System(_) => 3,
            CliError::UnknownUser(_) => 4,
            CliError::PermissionDenied(_) => 5,
            CliError::Refused(_) => 6,
            CliError::Found(code) => *code,
            CliError::Reported(e) => e.exit_code(),
        }
    }

    /// The daemon's answer as a CLI error.
    pub fn from_daemon(e: api::Error) -> CliError {
        match e {
            api::Error::ZBus(z) => CliError::System(format!(
                "cannot reach twofold-enrolld on the system bus ({z}). Is it running? Start it with `systemctl start twofold-enrolld` (as root)."
            )),
            api::Error::PermissionDenied(m) => CliError::PermissionDenied(m),
            api::Error::UnknownUser(m) => CliError::UnknownUser(m),
            api::Error::InvalidArgument(m) => CliError::Usage(m),
            api::Error::Failed(m) => CliError::System(format!("twofold-enrolld: {m}")),
            api::Error::InvalidCode(m)
            | api::Error::NotEnrolled(m)
            | api::Error::Forbidden(m)
            | api::Error::AlreadyEnrolled(m)
            | api::Error::NoPendingEnrollment(m)
            | api::Error::Throttled(m)
            | api::Error::Busy(m) => CliError::Refused(m),
        }
    }

    /// A short name for `--json` error output.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Policy(_) => "invalid-policy",
            CliError::Usage(_) => "usage",
            CliError::System(_) => "unavailable",
            CliError::UnknownUser(_) => "unknown-user",
            CliError::PermissionDenied(_) => "permission-denied",
            CliError::Refused(_) => "refused",
            CliError::Found(_) => "findings",
            CliError::Reported(e) => e.kind(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Policy(e) => write!(f, "{e}"),
            CliError::Usage(m)
            | CliError::System(m)
            | CliError::PermissionDenied(m)
            | CliError::Refused(m) => f.write_str(m),
            CliError::Reported(e) => write!(f, "{e}"),
            CliError::Found(code) => write!(f, "doctor found problems (exit {code})"),
            CliError::UnknownUser(u) => {
                if u.starts_with("no user") {
                    f.write_str(u)
                } else {
                    write!(f, "unknown user {u:?}: not in this machine's user database")
                }
            }
        }
    }
}
