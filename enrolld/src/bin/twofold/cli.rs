//! Command-line syntax of `twofold`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// twofold: TOTP two-factor authentication for Unix logins.
///
/// `policy check` and `explain` read the policy and the state themselves; every other command
/// asks the daemon, twofold-enrolld, over the system bus, which decides from your Unix user who
/// may do what.
///
/// Exit status: 0 success; 1 the policy is invalid; 2 bad usage or argument; 3 the policy, the
/// state, the user database or the daemon cannot be reached; 4 unknown user; 5 permission
/// denied (admin commands are for root, the policy's admin_group and whom polkit authorizes); 6
/// refused: wrong code, not enrolled, already enrolled, or the policy forbids it. `doctor` (the
/// worst finding decides): 7 a bypass (a user whom the policy requires logs in without a code);
/// 8 a lockout (users who need a code cannot log in) and no bypass; 9 a part could not be
/// checked (e.g. `sshd -T` failed) and nothing worse was found.
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
    /// The policy file; drop-ins are read from policy.d/ beside it (policy check, explain).
    #[arg(long, global = true, env = "TWOFOLD_POLICY", default_value = twofold_policy::config::DEFAULT_POLICY, value_name = "FILE")]
    pub policy: PathBuf,
    /// The state directory holding enrollments and overrides (explain).
    #[arg(long, global = true, env = "TWOFOLD_STATE_DIR", default_value = twofold_policy::store::DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state: PathBuf,
    /// Print data as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up 2FA for yourself: QR code, key, a code from the app, recovery codes.
    ///
    /// The QR code is drawn in text blocks when the terminal is wide enough (otherwise it says
    /// so); the key and the otpauth URI are always printed beside it.
    Enroll {
        /// Replace an existing enrollment (a new phone).
        #[arg(long)]
        replace: bool,
        /// How to draw the QR code.
        ///
        /// A code drawn for the other kind of terminal than the one it is read on shows
        /// inverted, and most phones do not read it; black on white reads on both.
        #[arg(long, value_enum, default_value = "auto", value_name = "HOW")]
        qr: QrChoice,
    },
    /// Your 2FA status, or USER's (admins).
    Status {
        /// Another user (admins only).
        user: Option<String>,
    },
    /// Turn 2FA off for yourself (refused while it is required for you).
    Disable,
    /// Replace your recovery codes with new ones.
    RecoveryCodes,
    /// Your authenticators: list, add another phone or token, rename, remove.
    #[command(subcommand)]
    Authenticator(AuthenticatorCommand),
    /// Every user's 2FA status, with the distribution (admins).
    List {
        /// Only the users whose name starts with P.
        #[arg(long, value_name = "P")]
        prefix: Option<String>,
        /// Only the users with status S (repeat it, or give a comma list, for several).
        #[arg(long, value_name = "S", value_delimiter = ',', value_parser = ["pending", "enforced", "enabled", "off", "exempt"])]
        status: Vec<String>,
    },
    /// Require 2FA for USER… whatever the policy says (admins).
    Require {
        /// Users.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Exempt USER… from 2FA (admins).
    Exempt {
        /// Users.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Make 2FA optional for USER… (admins).
    Allow {
        /// Users.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove the override of USER…: the policy decides again (admins).
    Inherit {
        /// Users.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Delete USER…'s secret and recovery codes: they set up 2FA again (admins).
    Reset {
        /// Users.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Check and summarize the policy, or set its default mode.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Show a user's effective mode, status, and the rule that decided it.
    Explain {
        /// A user of this machine.
        user: String,
        /// The PAM service to resolve for (e.g. sshd, login, sudo).
        #[arg(long, short)]
        service: Option<String>,
        /// Resolve as a login from ADDRESS would (its PAM_RHOST, e.g. 10.1.2.3 or 2001:db8::7),
        /// for the [networks."CIDR"] rules. A host name is in no network. Without it: a login
        /// with no remote host (the console), and the networks that would change the mode.
        #[arg(long, value_name = "ADDRESS")]
        from: Option<String>,
    },
    /// Find the login paths that skip the code (PAM stacks, sshd's configuration, Cockpit).
    ///
    /// Reads the PAM stacks of every login service (sshd, login, su, sudo, cockpit, and any
    /// other that authenticates with a password module), sshd's effective configuration
    /// (`sshd -T`, also per Match block) and Cockpit's certificate and Kerberos logins
    /// (cockpit.conf, the keytab), and lists each bypass (a user whom the policy requires
    /// logs in without a code) and lockout (users who need a code cannot log in), with a fix.
    /// Exits 7 on a bypass, 8 on a lockout, 9 when a part could not be checked, else 0.
    Doctor {
        /// The PAM configuration directory.
        #[arg(long, default_value = "/etc/pam.d", value_name = "DIR")]
        pam_dir: PathBuf,
        /// sshd's configuration file.
        #[arg(long, default_value = "/etc/ssh/sshd_config", value_name = "FILE")]
        sshd_config: PathBuf,
        /// The sshd binary [default: /usr/sbin/sshd, else sshd in PATH].
        #[arg(long, value_name = "PATH")]
        sshd: Option<PathBuf>,
        /// Cockpit's configuration file (its own Kerberos keytab is krb5.keytab beside it).
        #[arg(long, default_value = "/etc/cockpit/cockpit.conf", value_name = "FILE")]
        cockpit_conf: PathBuf,
        /// The system's Kerberos keytab, which Cockpit uses when it has none of its own.
        #[arg(long, default_value = "/etc/krb5.keytab", value_name = "FILE")]
        krb5_keytab: PathBuf,
    },
    /// Write man pages and shell completions into DIR (used by `make build`).
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory.
        dir: PathBuf,
    },
}

/// How `twofold enroll` draws the QR code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QrChoice {
    /// Black on white (as color) when the output is a terminal, TERM is not dumb and NO_COLOR
    /// is not set; otherwise as dark.
    Auto,
    /// Black on white, set by colour escapes: reads on dark and light terminals alike (also
    /// into a pipe, e.g. for less -R).
    Color,
    /// For light text on a dark background, without escapes.
    Dark,
    /// For dark text on a light background (e.g. macOS Terminal's default), without escapes.
    Light,
    /// No QR code: the key and the otpauth URI only.
    None,
}

/// The account-wide default.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DefaultMode {
    /// Everyone must use 2FA (they enroll at their next login).
    Required,
    /// Users may set up 2FA.
    Optional,
    /// No one is asked for a code.
    Disabled,
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
    /// Set the account-wide default mode in policy.toml, keeping its comments (admins).
    ///
    /// With --dry-run, nothing is written: the daemon counts, over every user, how many the
    /// change would move and from which status to which (PreviewDefaultMode), and that is
    /// printed (with --json as an object).
    SetDefault {
        /// The new default.
        mode: DefaultMode,
        /// Only say how many users the change would move, and how; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `twofold authenticator …`: any of your authenticators is accepted at login.
#[derive(Debug, Subcommand)]
pub enum AuthenticatorCommand {
    /// Your authenticators, with their numbers and names.
    List,
    /// Add another authenticator (a second phone, a tablet, a hardware token) named NAME.
    ///
    /// Asks a current code of an authenticator you have (or a recovery code), then shows a QR
    /// code and key for the new one and asks a code from it. Recovery codes stay as they are.
    Add {
        /// Its name, e.g. "tablet".
        name: String,
        /// How to draw the QR code (as for `twofold enroll`).
        #[arg(long, value_enum, default_value = "auto", value_name = "HOW")]
        qr: QrChoice,
    },
    /// Rename an authenticator (WHICH: its number or its name).
    Rename {
        /// Its number or its current name.
        which: String,
        /// The new name.
        name: String,
    },
    /// Remove an authenticator (WHICH: its number or its name), e.g. a lost phone.
    ///
    /// Asks a current code of any of your authenticators, or a recovery code. The last one is
    /// removed only as `twofold disable` would: refused while 2FA is required for you.
    Remove {
        /// Its number or its name.
        which: String,
    },
}
