//! Command-line syntax of `twofold`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// twofold: TOTP two-factor authentication for Unix logins.
///
/// Exit status: 0 success; 1 the policy is invalid; 2 bad usage or argument; 3 the policy,
/// the state or the user database cannot be read; 4 unknown user.
#[derive(Debug, Parser)]
#[command(name = "twofold", version, max_term_width = 100)]
pub struct Cli {
    /// Options for every command.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options for every command.
#[derive(Debug, Args)]
pub struct Global {
    /// The policy file; drop-ins are read from policy.d/ beside it.
    #[arg(long, global = true, env = "TWOFOLD_POLICY", default_value = twofold_policy::config::DEFAULT_POLICY, value_name = "FILE")]
    pub policy: PathBuf,
    /// The state directory holding enrollments and overrides.
    #[arg(long, global = true, env = "TWOFOLD_STATE_DIR", default_value = twofold_policy::store::DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state: PathBuf,
    /// Print data as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check and summarize the policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Show a user's effective mode, status, and the rule that decided it.
    Explain {
        /// A user of this machine.
        user: String,
        /// The PAM service to resolve for (e.g. sshd, login, sudo).
        #[arg(long, short)]
        service: Option<String>,
    },
}

/// `twofold policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check the system policy (policy.toml and policy.d/*.toml), or just FILE.
    ///
    /// Prints a summary of the rules and exits 0, or prints FILE:LINE:COL: MESSAGE and exits 1.
    Check {
        /// A single file to check (e.g. a draft) instead of the system policy.
        file: Option<PathBuf>,
    },
}
