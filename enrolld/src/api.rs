//! The D-Bus contract of `twofold-enrolld`, shared by the daemon and its clients.

use serde::{Deserialize, Serialize};
use zbus::{DeserializeDict, SerializeDict, Type};

/// The well-known bus name, owned by root only (see `packaging/dbus/`).
pub const BUS_NAME: &str = "org.twofold.Enroll1";
/// The one object.
pub const OBJECT_PATH: &str = "/org/twofold/Enroll1";
/// The interface with every method and the `UserChanged` and `Changed` signals.
pub const INTERFACE: &str = "org.twofold.Enroll1.Manager";

/// Named errors, `org.twofold.Enroll1.Error.*`, each with a message a person can act on.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.twofold.Enroll1.Error")]
pub enum Error {
    /// A D-Bus level failure.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller may not do this (admin methods: root, the policy's `admin_group`, or whom
    /// polkit authorizes for `org.twofold.Enroll1.manage-others`; the self methods that change
    /// an enrollment: polkit's `org.twofold.Enroll1.manage-own`).
    PermissionDenied(String),
    /// The code does not match.
    InvalidCode(String),
    /// The user has no enrollment.
    NotEnrolled(String),
    /// The policy forbids it (e.g. disabling 2FA while it is required).
    Forbidden(String),
    /// No such user in the system's user database.
    UnknownUser(String),
    /// A malformed argument (user name, mode).
    InvalidArgument(String),
    /// Already enrolled (begin again with `replace`).
    AlreadyEnrolled(String),
    /// No enrollment is pending for the caller, or it expired.
    NoPendingEnrollment(String),
    /// Too many wrong codes: this one was not checked (like a throttled login).
    Throttled(String),
    /// Not now, try again: the user's record stayed locked by another process (a login in
    /// progress, or a stopped one) past the bounded wait, or the caller has too many calls in
    /// progress already. Nothing was checked, counted or changed.
    Busy(String),
    /// The policy, the store or the user database cannot be read or written.
    Failed(String),
}

impl Error {
    /// The D-Bus error name without the prefix, e.g. `PermissionDenied`.
    pub fn short_name(&self) -> &'static str {
        match self {
            Error::ZBus(_) => "ZBus",
            Error::PermissionDenied(_) => "PermissionDenied",
            Error::InvalidCode(_) => "InvalidCode",
            Error::NotEnrolled(_) => "NotEnrolled",
            Error::Forbidden(_) => "Forbidden",
            Error::UnknownUser(_) => "UnknownUser",
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::AlreadyEnrolled(_) => "AlreadyEnrolled",
            Error::NoPendingEnrollment(_) => "NoPendingEnrollment",
            Error::Throttled(_) => "Throttled",
            Error::Busy(_) => "Busy",
            Error::Failed(_) => "Failed",
        }
    }
}

/// One user as admins and the user see them (`a{sv}` on the bus). Never holds a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct UserInfo {
    /// Login name.
    pub user: String,
    /// Unix uid, when the account exists.
    pub uid: Option<u32>,
    /// `pending`, `enforced`, `enabled`, `off` or `exempt`.
    pub status: String,
    /// The effective mode: `required`, `optional` or `disabled`.
    pub mode: String,
    /// What decided the mode, in words, e.g. `[groups.wheel] (/etc/twofold/policy.toml:9)`.
    pub rule: String,
    /// Whether a secret is enrolled.
    pub enrolled: bool,
    /// When it was enrolled (Unix seconds).
    pub enrolled_at: Option<u64>,
    /// The admin override's mode, if any.
    pub override_mode: Option<String>,
    /// Who set the override.
    pub override_by: Option<String>,
    /// When the override was set (Unix seconds).
    pub override_at: Option<u64>,
    /// When the requirement first met the user unenrolled (Unix seconds).
    pub required_since: Option<u64>,
    /// For `pending`: the end of the grace period (Unix seconds).
    pub deadline: Option<u64>,
    /// Whether enrollment inside the login is offered (`[enrollment] at_login`).
    pub enroll_at_login: bool,
    /// Last successful login with a code (Unix seconds).
    pub last_login: Option<u64>,
    /// Where that login came from.
    pub last_login_from: Option<String>,
    /// Unused recovery codes.
    pub recovery_codes_left: Option<u32>,
    /// How many authenticators are enrolled (when enrolled).
    pub authenticators: Option<u32>,
    /// The `[networks."CIDR"]` rules under which a login would get another mode than `mode`
    /// (which is that of a login from no network), as (network, mode) pairs; absent when none.
    pub networks: Option<Vec<(String, String)>>,
}

impl UserInfo {
    /// Plain JSON (the `--json` output of the CLI): every field, absent ones as `null`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "user": self.user,
            "uid": self.uid,
            "status": self.status,
            "mode": self.mode,
            "rule": self.rule,
            "enrolled": self.enrolled,
            "enrolled_at": self.enrolled_at,
            "override_mode": self.override_mode,
            "override_by": self.override_by,
            "override_at": self.override_at,
            "required_since": self.required_since,
            "deadline": self.deadline,
            "enroll_at_login": self.enroll_at_login,
            "last_login": self.last_login,
            "last_login_from": self.last_login_from,
            "recovery_codes_left": self.recovery_codes_left,
            "authenticators": self.authenticators,
            "networks": self
                .networks
                .iter()
                .flatten()
                .map(|(n, m)| serde_json::json!({ "network": n, "mode": m }))
                .collect::<Vec<_>>(),
        })
    }
}

/// What `PreviewDefaultMode` answers (`a{sv}` on the bus): what setting the account-wide
/// default to a mode would do, counted by the daemon over every user of the listing (the
/// users `Summary` counts) from the policy model. Nothing is changed by asking.
#[derive(Debug, Clone, Default, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct DefaultPreview {
    /// The effective default mode now: `required`, `optional` or `disabled`.
    pub current: String,
    /// Where that default comes from, as a user's `rule` shows it: `top-level mode
    /// (/etc/twofold/policy.toml:1)`, or `built-in default (no policy file sets mode)`.
    pub current_rule: String,
    /// Users of the listing.
    pub total: u32,
    /// Users whose mode the default decides: no admin override, `[users.X]` or `[groups.X]`
    /// rule applies to them (the listing resolves without a service, as `ListUsers` does).
    pub by_default: u32,
    /// Users whose status the change would change.
    pub moved: u32,
    /// How many users go from one status to another, keyed `"<from>><to>"` (e.g.
    /// `"off>pending"`); only the transitions that happen.
    pub transitions: std::collections::HashMap<String, u32>,
}

impl DefaultPreview {
    /// Plain JSON (the `--json` output of the CLI), transitions sorted by key.
    pub fn to_json(&self) -> serde_json::Value {
        let transitions: std::collections::BTreeMap<&String, &u32> =
            self.transitions.iter().collect();
        serde_json::json!({
            "current": self.current,
            "current_rule": self.current_rule,
            "total": self.total,
            "by_default": self.by_default,
            "moved": self.moved,
            "transitions": transitions,
        })
    }
}

/// One of the caller's authenticators (`a{sv}` on the bus). Never holds the secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct AuthenticatorInfo {
    /// Its number: stable while the enrollment lasts, never reused.
    pub id: u32,
    /// The name the user gave it.
    pub name: String,
    /// What it is: `totp`.
    pub kind: String,
    /// When it was added (Unix seconds).
    pub added_at: u64,
    /// Code length.
    pub digits: u32,
    /// Step length in seconds.
    pub period: u64,
    /// HMAC algorithm: `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
}

impl AuthenticatorInfo {
    /// Plain JSON (the `--json` output of the CLI).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "added_at": self.added_at,
            "digits": self.digits,
            "period": self.period,
            "algorithm": self.algorithm,
        })
    }
}

/// What `BeginEnrollment` returns to the enrolling user, and only to them. The secret and the
/// URI (which holds it) are wiped from memory when this is dropped, and never printed by
/// `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct NewEnrollment {
    /// The `otpauth://totp/...` URI (for the QR code).
    pub uri: String,
    /// The secret in base32, for typing by hand.
    pub secret: String,
    /// The account label the app will show (`issuer:user`).
    pub label: String,
    /// Seconds until the pending enrollment expires.
    pub expires_in: u64,
}

impl Drop for NewEnrollment {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.uri.zeroize();
        self.secret.zeroize();
    }
}

impl std::fmt::Debug for NewEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEnrollment")
            .field("uri", &"<redacted>")
            .field("secret", &"<redacted>")
            .field("label", &self.label)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// What `ImportGoogleAuthenticator` and `ImportToken` answer for one user (`a{sv}` on the
/// bus). Never holds a secret or a code.
#[derive(Debug, Clone, Default, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct ImportReport {
    /// The user (canonical name).
    pub user: String,
    /// `imported`, `would import` (`dry_run`) or `skipped`.
    pub outcome: String,
    /// Why it was skipped.
    pub reason: Option<String>,
    /// Digits of the codes.
    pub digits: Option<u8>,
    /// Step in seconds.
    pub period: Option<u64>,
    /// Recovery codes made from the scratch codes.
    pub recovery_codes: Option<u32>,
    /// The clock offset kept, in steps.
    pub skew: Option<i64>,
    /// What the import changed or left out, one sentence each.
    pub notes: Vec<String>,
}

impl ImportReport {
    /// Whether the user was (or, with `dry_run`, would be) imported.
    pub fn imported(&self) -> bool {
        self.outcome != "skipped"
    }

    /// One line: `alice: imported (6 digits, 30 s, 5 recovery codes; window ±8 reduced to ±1)`.
    pub fn to_line(&self) -> String {
        let line = self.line_text();
        // The reasons and notes may quote a file a user wrote: no control character reaches
        // the admin's terminal.
        line.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    }

    fn line_text(&self) -> String {
        if !self.imported() {
            return format!(
                "{}: skipped: {}",
                self.user,
                self.reason.as_deref().unwrap_or("no reason given")
            );
        }
        let mut what = Vec::new();
        if let Some(d) = self.digits {
            what.push(format!("{d} digits"));
        }
        if let Some(p) = self.period {
            what.push(format!("{p} s"));
        }
        if let Some(n) = self.recovery_codes {
            what.push(format!(
                "{n} recovery code{}",
                if n == 1 { "" } else { "s" }
            ));
        }
        let mut line = format!("{}: {} ({}", self.user, self.outcome, what.join(", "));
        if !self.notes.is_empty() {
            line.push_str("; ");
            line.push_str(&self.notes.join("; "));
        }
        line.push(')');
        line
    }

    /// Plain JSON (the `--json` output of the CLI).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "user": self.user,
            "outcome": self.outcome,
            "reason": self.reason,
            "digits": self.digits,
            "period": self.period,
            "recovery_codes": self.recovery_codes,
            "skew": self.skew,
            "notes": self.notes,
        })
    }
}

/// A token another tool's file held, read by the caller (`ImportToken`, `a{sv}` on the bus):
/// the CLI reads a `users.oath` with its own permissions and sends one of these per user. The
/// secret is wiped from memory when this is dropped and never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, SerializeDict, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct ImportToken {
    /// The secret, base32 (at least 128 bits).
    pub secret: String,
    /// Digits of the codes (6 to 8).
    pub digits: u8,
    /// Step in seconds.
    pub period: u64,
    /// `SHA1` (the default), `SHA256` or `SHA512`.
    pub algorithm: Option<String>,
    /// The clock offset to keep, in steps.
    pub skew: Option<i64>,
    /// The last step the old module accepted, when known.
    pub last_step: Option<u64>,
    /// Steps ahead of the current one the old module accepted (its window's upper side).
    pub ahead: Option<u64>,
    /// The authenticator's name (`oath` when absent).
    pub name: Option<String>,
}

impl Drop for ImportToken {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret.zeroize();
    }
}

impl std::fmt::Debug for ImportToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportToken")
            .field("secret", &"<redacted>")
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("algorithm", &self.algorithm)
            .field("skew", &self.skew)
            .field("last_step", &self.last_step)
            .field("ahead", &self.ahead)
            .field("name", &self.name)
            .finish()
    }
}

/// The client side of the interface (used by the `twofold` command).
#[zbus::proxy(
    interface = "org.twofold.Enroll1.Manager",
    default_service = "org.twofold.Enroll1",
    default_path = "/org/twofold/Enroll1"
)]
pub trait Manager {
    /// Admin: make 2FA required for `user` (an override beating every policy rule).
    fn require(&self, user: &str) -> Result<UserInfo, Error>;
    /// Admin: exempt `user` (override `disabled`).
    fn exempt(&self, user: &str) -> Result<UserInfo, Error>;
    /// Admin: make 2FA optional for `user` (override `optional`).
    fn allow(&self, user: &str) -> Result<UserInfo, Error>;
    /// Admin: remove the override; the policy decides again.
    fn clear_override(&self, user: &str) -> Result<UserInfo, Error>;
    /// Admin: delete `user`'s secret and recovery codes; they enroll again.
    fn reset(&self, user: &str) -> Result<UserInfo, Error>;
    /// Admin: enrolls `user` with the secret, parameters and scratch codes of their
    /// `~/.google_authenticator`, which the daemon reads itself (the home directory from the
    /// user database; the file checked before it is read); with `dry_run`, only says what it
    /// would do; with `add`, a user already enrolled gets it as one more authenticator (else
    /// such a user is skipped).
    fn import_google_authenticator(
        &self,
        user: &str,
        dry_run: bool,
        add: bool,
    ) -> Result<ImportReport, Error>;
    /// Admin: enrolls `user` with a token the caller read (a `users.oath` line); `dry_run` and
    /// `add` as for `ImportGoogleAuthenticator`.
    fn import_token(
        &self,
        user: &str,
        token: &ImportToken,
        dry_run: bool,
        add: bool,
    ) -> Result<ImportReport, Error>;
    /// Admin, or the user themself: one user.
    fn get_user(&self, user: &str) -> Result<UserInfo, Error>;
    /// Admin: every local account and every user with a record or a policy entry.
    fn list_users(&self) -> Result<Vec<UserInfo>, Error>;
    /// Admin: the users after the cursor `after` (`""`: from the start), by name, at most
    /// `limit` (1000 when 0 or more), and the cursor of the next page (`""` after the last).
    fn list_users_page(&self, after: &str, limit: u32) -> Result<(Vec<UserInfo>, String), Error>;
    /// Admin: the users whose canonical name starts with `prefix` (`""`: all) and, when
    /// `statuses` is not empty, whose status is one of them; by name, after the cursor
    /// `after`, at most `limit` (1000 when 0 or more); and the cursor of the next page (`""`
    /// after the last; with a status filter the page it leads to may be empty).
    fn find_users(
        &self,
        prefix: &str,
        statuses: &[&str],
        after: &str,
        limit: u32,
    ) -> Result<(Vec<UserInfo>, String), Error>;
    /// Admin: how many users have each status.
    fn summary(&self) -> Result<std::collections::HashMap<String, u32>, Error>;
    /// Admin: the account-wide default mode, written to policy.toml.
    fn set_default_mode(&self, mode: &str) -> Result<(), Error>;
    /// Admin: what `SetDefaultMode(mode)` would change, counted over every user; changes
    /// nothing. `Forbidden` (as `SetDefaultMode` would answer) when a `policy.d` file's own
    /// `mode` overrides the main file's.
    fn preview_default_mode(&self, mode: &str) -> Result<DefaultPreview, Error>;
    /// Self: a fresh secret, pending until confirmed.
    fn begin_enrollment(&self, replace: bool, proof: &str) -> Result<NewEnrollment, Error>;
    /// Self: confirm with a code; returns the recovery codes, once.
    fn confirm_enrollment(&self, code: &str) -> Result<Vec<String>, Error>;
    /// Self: drop the pending enrollment.
    fn cancel_enrollment(&self) -> Result<bool, Error>;
    /// Self: remove the enrollment (a current code or a recovery code proves it is you).
    fn disable(&self, code: &str) -> Result<UserInfo, Error>;
    /// Self: new recovery codes (a current code or a recovery code proves it is you).
    fn regenerate_recovery_codes(&self, code: &str) -> Result<Vec<String>, Error>;
    /// Self: the caller's own status.
    fn get_status(&self) -> Result<UserInfo, Error>;
    /// Self: the caller's authenticators (never a secret).
    fn list_authenticators(&self) -> Result<Vec<AuthenticatorInfo>, Error>;
    /// Self: a fresh secret for another authenticator named `name`, pending until
    /// `ConfirmEnrollment` (which then returns no recovery codes: the enrollment's stay).
    /// `proof`: a current code of an enrolled authenticator or a recovery code.
    fn add_authenticator(&self, name: &str, proof: &str) -> Result<NewEnrollment, Error>;
    /// Self: renames an authenticator (`which`: its number or its name); `proof` as for
    /// `RemoveAuthenticator` (names are how the user tells them apart).
    fn rename_authenticator(&self, which: &str, name: &str, proof: &str)
    -> Result<UserInfo, Error>;
    /// Self: removes an authenticator (`which`: its number or its name); `proof` as for
    /// `Disable`. The last one goes only as `Disable` would (refused while required).
    fn remove_authenticator(&self, which: &str, proof: &str) -> Result<UserInfo, Error>;
    /// Admin: this connection gets `Changed` for every change, addressed to it alone, until
    /// `Unsubscribe`, until it leaves the bus, or until it is no longer an admin (checked
    /// again at most once a minute). `Busy` beyond 4 connections per uid or 64 in all.
    fn subscribe(&self) -> Result<(), Error>;
    /// This connection no longer gets `Changed`.
    fn unsubscribe(&self) -> Result<(), Error>;
    /// A user's status changed (broadcast; the bus policy lets root and `twofold-admin`
    /// receive it).
    #[zbus(signal)]
    fn user_changed(&self, user: String, status: String) -> zbus::Result<()>;
    /// A user's status changed: a unicast signal to each subscribed connection.
    #[zbus(signal)]
    fn changed(&self, user: String, status: String) -> zbus::Result<()>;
}
