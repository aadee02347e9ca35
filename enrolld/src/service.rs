//! The `org.twofold.Enroll1.Manager` interface. Every method first resolves the caller from
//! the bus (the sender's Unix uid, asked of the bus daemon), then calls [`crate::ops`], then
//! emits `UserChanged` for every change.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, interface};

use crate::api::{Error, NewEnrollment, UserInfo};
use crate::ops::{Caller, Daemon};
use twofold_policy::Mode;

/// The served object.
pub struct Manager {
    daemon: Arc<Daemon>,
}

impl Manager {
    /// Serves `daemon`.
    pub fn new(daemon: Arc<Daemon>) -> Manager {
        Manager { daemon }
    }
}

/// The caller as the bus daemon reports it: never from an argument.
async fn caller(conn: &Connection, hdr: &Header<'_>) -> Result<Caller, Error> {
    let sender = hdr
        .sender()
        .ok_or_else(|| Error::PermissionDenied("the call has no sender".into()))?;
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let uid = dbus
        .get_connection_unix_user(sender.clone().into())
        .await
        .map_err(|e| Error::PermissionDenied(format!("the bus cannot tell who called: {e}")))?;
    Caller::from_uid(uid)
}

/// Emits `UserChanged` for a changed user and passes the view on.
async fn announce(emitter: &SignalEmitter<'_>, info: UserInfo) -> Result<UserInfo, Error> {
    Manager::user_changed(emitter, &info.user, &info.status).await?;
    Ok(info)
}

#[interface(name = "org.twofold.Enroll1.Manager")]
impl Manager {
    /// Admin: 2FA required for `user`, whatever the policy says.
    async fn require(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let c = caller(conn, &hdr).await?;
        announce(
            &emitter,
            self.daemon.set_override(&c, user, Some(Mode::Required))?,
        )
        .await
    }

    /// Admin: `user` exempt (override `disabled`).
    async fn exempt(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let c = caller(conn, &hdr).await?;
        announce(
            &emitter,
            self.daemon.set_override(&c, user, Some(Mode::Disabled))?,
        )
        .await
    }

    /// Admin: 2FA optional for `user` (override `optional`).
    async fn allow(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let c = caller(conn, &hdr).await?;
        announce(
            &emitter,
            self.daemon.set_override(&c, user, Some(Mode::Optional))?,
        )
        .await
    }

    /// Admin: removes `user`'s override; the policy decides again.
    async fn clear_override(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let c = caller(conn, &hdr).await?;
        announce(&emitter, self.daemon.set_override(&c, user, None)?).await
    }

    /// Admin: deletes `user`'s secret and recovery codes.
    async fn reset(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let c = caller(conn, &hdr).await?;
        announce(&emitter, self.daemon.reset(&c, user)?).await
    }

    /// Admin, or the user themself: one user.
    async fn get_user(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<UserInfo, Error> {
        let c = caller(conn, &hdr).await?;
        self.daemon.get_user(&c, user)
    }

    /// Admin: all users.
    async fn list_users(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<UserInfo>, Error> {
        let c = caller(conn, &hdr).await?;
        self.daemon.list_users(&c)
    }

    /// Admin: count per status, and `total`.
    async fn summary(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<HashMap<String, u32>, Error> {
        let c = caller(conn, &hdr).await?;
        self.daemon.summary(&c)
    }

    /// Admin: the account-wide default mode.
    async fn set_default_mode(
        &self,
        mode: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), Error> {
        let c = caller(conn, &hdr).await?;
        self.daemon.set_default_mode(&c, mode)
    }

    /// Self: a fresh secret and its otpauth URI, pending until confirmed.
    /// Replacing an existing enrollment needs `proof`, a current code or a recovery code of it.
    async fn begin_enrollment(
        &self,
        replace: bool,
        proof: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<NewEnrollment, Error> {
        let c = caller(conn, &hdr).await?;
        self.daemon.begin_enrollment(&c, replace, proof)
    }

    /// Self: confirms with a code; returns the recovery codes, once.
    async fn confirm_enrollment(
        &self,
        code: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<Vec<String>, Error> {
        let c = caller(conn, &hdr).await?;
        let (info, codes) = self.daemon.confirm_enrollment(&c, code)?;
        Self::user_changed(&emitter, &info.user, &info.status).await?;
        Ok(codes)
    }

    /// Self: drops the pending enrollment; whether there was one.
    async fn cancel_enrollment(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<bool, Error> {
        let c = caller(conn, &hdr).await?;
        self.daemon.cancel_enrollment(&c)
    }

    /// Self: removes the enrollment (refused while required).
    async fn disable(
        &self,
        code: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let c = caller(conn, &hdr).await?;
        announce(&emitter, self.daemon.disable(&c, code)?).await
    }

    /// Self: new recovery codes, once.
    async fn regenerate_recovery_codes(
        &self,
        code: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<String>, Error> {
        let c = caller(conn, &hdr).await?;
        self.daemon.regenerate_recovery_codes(&c, code)
    }

    /// Self: the caller's own status.
    async fn get_status(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<UserInfo, Error> {
        let c = caller(conn, &hdr).await?;
        self.daemon.get_status(&c)
    }

    /// A user's status changed (after every change).
    #[zbus(signal)]
    async fn user_changed(
        emitter: &SignalEmitter<'_>,
        user: &str,
        status: &str,
    ) -> zbus::Result<()>;
}
