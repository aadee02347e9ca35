//! The pure core of twofold.
//!
//! Everything that decides a login or changes a user's 2FA state lives here, so that the PAM
//! module (which must never depend on the daemon), the daemon and the CLI all share one
//! implementation:
//!
//! - [`config`]: the policy model, loaded from `/etc/twofold/policy.toml` and
//!   `/etc/twofold/policy.d/*.toml`, with errors that name file, line and column, and its
//!   [`config::store`] section (where the records live: files, or an LDAP directory);
//! - [`cache`]: a compiled copy of a big policy, so that a login reads only its own rules;
//! - [`net`]: login sources (`local`, addresses, networks, host names) for `at_login_from`;
//! - [`qr`]: the QR code of an otpauth URI drawn as text, for dark, light or any terminal;
//! - [`resolve`]: who must do what, and which rule decided it;
//! - [`store`]: the per-user state records under `/var/lib/twofold/`;
//! - [`totp`] and [`recovery`]: code verification with replay refusal, and one-time recovery codes;
//! - [`ldap`]: a small blocking LDAPv3 client (ldapi, ldap with StartTLS, ldaps) for state kept
//!   in a directory;
//! - [`import`]: the files of google-authenticator and pam_oath, read for `twofold import`;
//! - [`login`]: the one code check every caller goes through (throttle, replay, the time of the
//!   answer, under the user's lock);
//! - [`throttle`]: growing delays after wrong codes, per (user, source address) and per user;
//! - [`system`]: user and group lookup through the system's user database, and [`userfiles`]:
//!   the same from `/etc/passwd` and `/etc/group` read directly when they answer as NSS would;
//! - [`verify`]: the verification service's protocol and server side, for PAM callers that
//!   cannot use the store themselves (screen lockers, sandboxed helpers).
//!
//! This crate contains no `unsafe` code.
#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod duration;
pub mod encoding;
pub mod import;
pub mod ldap;
pub mod logfmt;
pub mod login;
pub mod mode;
pub mod net;
pub mod qr;
pub mod record;
pub mod recovery;
pub mod resolve;
pub mod slots;
pub mod store;
pub mod system;
pub mod throttle;
pub mod time;
pub mod totp;
pub mod userfiles;
pub mod username;
pub mod verify;

pub use config::{Policy, PolicyError};
pub use mode::{Mode, Status};
pub use resolve::{Resolution, Rule, Subject};
pub use store::{Store, StoreError};
pub use username::UserName;
