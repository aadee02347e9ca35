//! The `org.twofold.Enroll1.Manager` interface. Every method first resolves the caller from
//! the bus (the sender's Unix uid, asked of the bus daemon), then calls [`crate::ops`], then
//! emits `UserChanged` for every change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, interface};

use crate::api::{Error, NewEnrollment, UserInfo};
use crate::ops::{Caller, Daemon};
use twofold_policy::Mode;

/// The most senders whose uid is remembered; past it the memory starts again empty.
pub const UID_CACHE_MAX: usize = 4096;

/// The served object.
pub struct Manager {
    daemon: Arc<Daemon>,
    /// Unique bus name of a sender → its Unix uid, as the bus daemon said. A unique name is
    /// never given to another connection on the same bus, and a connection's credentials are
    /// those it connected with, so the answer cannot go stale; only the uid is kept (the
    /// account and its groups, admin rights included, are resolved again at every call).
    uids: Mutex<HashMap<String, u32>>,
}

impl Manager {
    /// Serves `daemon`.
    pub fn new(daemon: Arc<Daemon>) -> Manager {
        Manager {
            daemon,
            uids: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets a sender (its connection left the bus: `NameOwnerChanged` with no new owner).
    pub fn forget(&self, unique_name: &str) {
        self.uids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(unique_name);
    }

    /// How many senders are remembered.
    pub fn remembered(&self) -> usize {
        self.uids.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The caller as the bus daemon reports it (`GetConnectionUnixUser` of the sender, once
    /// per sender): never from an argument.
    async fn caller(&self, conn: &Connection, hdr: &Header<'_>) -> Result<Caller, Error> {
        let uid = self.uid(conn, hdr).await?;
        self.daemon.caller(uid)
    }

    /// The sender's Unix uid, as the bus reports it (kept per unique bus name).
    async fn uid(&self, conn: &Connection, hdr: &Header<'_>) -> Result<u32, Error> {
        let sender = hdr
            .sender()
            .ok_or_else(|| Error::PermissionDenied("the call has no sender".into()))?;
        let known = self
            .uids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sender.as_str())
            .copied();
        let uid = match known {
            Some(uid) => uid,
            None => {
                let reply = conn
                    .call_method(
                        Some("org.freedesktop.DBus"),
                        "/org/freedesktop/DBus",
                        Some("org.freedesktop.DBus"),
                        "GetConnectionUnixUser",
                        &(sender.as_str(),),
                    )
                    .await
                    .map_err(|e| {
                        Error::PermissionDenied(format!("the bus cannot tell who called: {e}"))
                    })?;
                let uid: u32 = reply.body().deserialize().map_err(|e| {
                    Error::PermissionDenied(format!("the bus cannot tell who called: {e}"))
                })?;
                let mut uids = self.uids.lock().unwrap_or_else(|e| e.into_inner());
                if uids.len() >= UID_CACHE_MAX {
                    uids.clear();
                }
                uids.insert(sender.as_str().to_owned(), uid);
                uid
            }
        };
        Ok(uid)
    }
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
        let c = self.caller(conn, &hdr).await?;
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
        let c = self.caller(conn, &hdr).await?;
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
        let c = self.caller(conn, &hdr).await?;
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
        let c = self.caller(conn, &hdr).await?;
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
        let c = self.caller(conn, &hdr).await?;
        announce(&emitter, self.daemon.reset(&c, user)?).await
    }

    /// Admin, or the user themself: one user.
    async fn get_user(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<UserInfo, Error> {
        let c = self.caller(conn, &hdr).await?;
        self.daemon.get_user(&c, user)
    }

    /// Admin: all users.
    async fn list_users(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<UserInfo>, Error> {
        let c = self.caller(conn, &hdr).await?;
        self.daemon.list_users(&c)
    }

    /// Admin: one page of the users, by name: those after the cursor `after` (`""` for the
    /// first page), at most `limit` (1000 when 0 or more); and the cursor of the next page,
    /// `""` after the last.
    async fn list_users_page(
        &self,
        after: &str,
        limit: u32,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(Vec<UserInfo>, String), Error> {
        let c = self.caller(conn, &hdr).await?;
        self.daemon.list_users_page(&c, after, limit)
    }

    /// Admin: count per status, and `total`.
    async fn summary(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<HashMap<String, u32>, Error> {
        let c = self.caller(conn, &hdr).await?;
        self.daemon.summary(&c)
    }

    /// Admin: the account-wide default mode.
    async fn set_default_mode(
        &self,
        mode: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), Error> {
        let c = self.caller(conn, &hdr).await?;
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
        let c = self.caller(conn, &hdr).await?;
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
        let c = self.caller(conn, &hdr).await?;
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
        let c = self.caller(conn, &hdr).await?;
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
        let c = self.caller(conn, &hdr).await?;
        announce(&emitter, self.daemon.disable(&c, code)?).await
    }

    /// Self: new recovery codes, once.
    async fn regenerate_recovery_codes(
        &self,
        code: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<String>, Error> {
        let c = self.caller(conn, &hdr).await?;
        self.daemon.regenerate_recovery_codes(&c, code)
    }

    /// Self: the caller's own status.
    async fn get_status(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<UserInfo, Error> {
        let uid = self.uid(conn, &hdr).await?;
        self.daemon.own_status(uid)
    }

    /// A user's status changed (after every change).
    #[zbus(signal)]
    async fn user_changed(
        emitter: &SignalEmitter<'_>,
        user: &str,
        status: &str,
    ) -> zbus::Result<()>;
}
