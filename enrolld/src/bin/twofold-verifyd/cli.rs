//! Command line of `twofold-verifyd`.

use std::path::PathBuf;

use clap::Parser;

/// twofold's verification service for PAM callers that cannot read the state themselves.
#[derive(Debug, Parser)]
#[command(
    name = "twofold-verifyd",
    version,
    about = "twofold's verification service for screen lockers and sandboxed PAM callers",
    long_about = "twofold's verification service. pam_twofold.so asks it over a Unix socket when its process cannot use the state itself: a screen locker running as the user, or a sandboxed helper whose /var is read-only. The caller is identified by the socket (SO_PEERCRED): a caller that is not root may only ask about its own account, and its requests count as local. Started by systemd's socket unit (twofold-verifyd.socket, socket activation), or with --listen. Root logins (sshd, login, su, sudo) never use it."
)]
pub struct Args {
    /// The policy file (drop-ins in policy.d/ beside it).
    #[arg(long, env = "TWOFOLD_POLICY", default_value = twofold_policy::config::DEFAULT_POLICY)]
    pub policy: PathBuf,
    /// The state directory.
    #[arg(long, env = "TWOFOLD_STATE_DIR", default_value = twofold_policy::store::DEFAULT_STATE_DIR)]
    pub state: PathBuf,
    /// Listen on this socket path (mode 0666: who asks is decided per connection) instead of a
    /// socket passed by systemd (LISTEN_FDS).
    #[arg(long, value_name = "PATH")]
    pub listen: Option<PathBuf>,
}
