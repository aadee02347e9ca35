//! Errors of the CLI layer, each with its exit status.

use std::fmt;

/// A failure the user can act on.
#[derive(Debug)]
pub enum CliError {
    /// The policy does not load (exit 1).
    Policy(twofold_policy::PolicyError),
    /// A bad argument (exit 2).
    Usage(String),
    /// State, policy or user database unreadable (exit 3).
    System(String),
    /// No such user (exit 4).
    UnknownUser(String),
}

impl CliError {
    /// The documented exit status.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Policy(_) => 1,
            CliError::Usage(_) => 2,
            CliError::System(_) => 3,
            CliError::UnknownUser(_) => 4,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Policy(e) => write!(f, "{e}"),
            CliError::Usage(m) | CliError::System(m) => f.write_str(m),
            CliError::UnknownUser(u) => {
                write!(f, "unknown user {u:?}: not in this machine's user database")
            }
        }
    }
}
