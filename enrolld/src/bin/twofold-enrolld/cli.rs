//! Command line of `twofold-enrolld`.

use std::path::PathBuf;

use clap::Parser;

/// twofold's D-Bus daemon: admins require, exempt and reset users; users enroll.
#[derive(Debug, Parser)]
#[command(
    name = "twofold-enrolld",
    version,
    about = "twofold's D-Bus daemon: admins require, exempt and reset users; users enroll",
    long_about = "twofold's D-Bus daemon on the system bus (or DBUS_SYSTEM_BUS_ADDRESS), owning org.twofold.Enroll1. Admins (root, the policy's admin_group, or whom polkit authorizes for org.twofold.Enroll1.manage-others) require, exempt and reset users and set the default mode; users enroll, disable and regenerate recovery codes for themselves (polkit's org.twofold.Enroll1.manage-own, allowed by default; without polkitd on the bus, root and admin_group only, and the self methods allowed). The caller is the sender's Unix uid as the bus reports it. Logins never depend on this daemon."
)]
pub struct Args {
    /// The policy file (drop-ins in policy.d/ beside it).
    #[arg(long, env = "TWOFOLD_POLICY", default_value = twofold_policy::config::DEFAULT_POLICY)]
    pub policy: PathBuf,
    /// The state directory.
    #[arg(long, env = "TWOFOLD_STATE_DIR", default_value = twofold_policy::store::DEFAULT_STATE_DIR)]
    pub state: PathBuf,
    /// How long a begun enrollment waits for its first code (e.g. 5m, 90s).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub enroll_timeout: std::time::Duration,
    /// How long the daemon waits for an answer to its own calls on the bus (polkit's
    /// CheckAuthorization, the bus daemon's credentials); past it, polkit's answer counts
    /// as a refusal.
    #[arg(long, default_value = "25s", value_parser = humantime::parse_duration)]
    pub call_timeout: std::time::Duration,
    /// How often a subscriber's authorization is checked again when a change is delivered.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, hide = true)]
    pub subscriber_recheck: std::time::Duration,
}
