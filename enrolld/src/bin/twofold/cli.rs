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
    /// Enroll users with the secrets they use with google-authenticator or pam_oath (admins).
    ///
    /// Users keep their authenticator app: the same secret, digits and step. A user already
    /// enrolled in twofold is skipped. The old files are never changed. Prints one line per
    /// user: imported (with what changed), or skipped and why. Exits 6 when a user or a line
    /// was skipped.
    #[command(subcommand)]
    Import(ImportCommand),
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
    /// Also warns about what a migration left behind: pam_google_authenticator.so or
    /// pam_oath.so still in a stack, and (as root) users with a ~/.google_authenticator and
    /// no twofold enrollment. Exits 7 on a bypass, 8 on a lockout, 9 when a part could not be checked, else 0.
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
        /// The user list whose home directories are looked at (as root) for a
        /// ~/.google_authenticator of a user not enrolled in twofold.
        #[arg(long, default_value = "/etc/passwd", value_name = "FILE")]
        passwd: PathBuf,
    },
    /// Write man pages and shell completions into DIR (used by `make build`).
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory.
        dir: PathBuf,
    },
}

/// `twofold import …`
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import each USER's ~/.google_authenticator (libpam-google-authenticator).
    ///
    /// The daemon reads the file itself: the home directory from the user database, the file
    /// only if it is a regular file owned by the user, readable by no one else (0600 or 0400)
    /// and at most 64 KiB. Scratch codes become one-time recovery codes; TIME_SKEW is kept;
    /// WINDOW_SIZE gives way to the policy's window; RATE_LIMIT to twofold's throttling; a
    /// counter-based (HOTP) file is skipped.
    #[command(name = "google-authenticator")]
    GoogleAuthenticator {
        /// Users whose file to import.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        users: Vec<String>,
        /// Every user of `twofold list` (login.defs' UID_MIN to UID_MAX, and users with a
        /// twofold record) who has a ~/.google_authenticator; root and system accounts only
        /// by name.
        #[arg(long)]
        all: bool,
        /// Only say what would be imported; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// A user already enrolled in twofold gets it as one more authenticator (named
        /// google-authenticator), its scratch codes added to the recovery codes; without
        /// --add such a user is skipped.
        #[arg(long)]
        add: bool,
    },
    /// Import the time-based lines of pam_oath's users file (e.g. /etc/users.oath).
    ///
    /// FILE is read by this command with your own permissions; each line's user gets its
    /// secret, digits and step (HOTP/T30, HOTP/T60, /6 /7 /8). The last code used (LASTOTP,
    /// TIME) stays refused. Counter-based lines (HOTP, HOTP/E) are skipped; a PIN is reported
    /// and not imported. A bad line is reported as FILE:LINE: message.
    Oath {
        /// The users file.
        file: PathBuf,
        /// Only say what would be imported; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// A user already enrolled in twofold gets it as one more authenticator (named oath);
        /// without --add such a user is skipped.
        #[arg(long)]
        add: bool,
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
    ///
    /// Asks a current code of any of your authenticators, or a recovery code: names are how
    /// you tell them apart when you remove one.
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
