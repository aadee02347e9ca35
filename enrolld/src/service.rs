//! The `org.twofold.Enroll1.Manager` interface. Every method first asks the bus who called
//! (the sender's Unix uid), then runs the rest on a thread of a [`Pool`], off the bus's
//! executor, within the caller's share of [`Slots`] ([`crate::worker`]): the caller's account
//! (NSS) and the operation of [`crate::ops`] (policy, store, the user's lock). It then emits
//! `UserChanged` for every change. A call that waits (for a user's lock held by a stopped
//! process) holds up nobody else's. Only `GetStatus` may answer on the executor itself, from
//! memory alone, while nothing its answer is made from changed
//! ([`Daemon::own_status_quick`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, interface};
use zeroize::Zeroizing;

use crate::api::{Error, NewEnrollment, UserInfo};
use crate::ops::{Caller, Daemon};
use crate::worker::{Full, LIMITS, PER_UID, Pool, Slots};
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
    /// The threads that run the calls' work.
    pool: Pool,
    /// The calls running, per caller and in all.
    slots: Arc<Slots>,
}

impl Manager {
    /// Serves `daemon`.
    pub fn new(daemon: Arc<Daemon>) -> Manager {
        Manager {
            daemon,
            uids: Mutex::new(HashMap::new()),
            pool: Pool::new(),
            slots: Slots::new(LIMITS),
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

    /// Runs `op` for the caller, off the executor: the caller as the bus daemon reports it
    /// (`GetConnectionUnixUser` of the sender, once per sender; never from an argument), its
    /// account and groups resolved, then the operation.
    async fn as_caller<T: Send + 'static>(
        &self,
        conn: &Connection,
        hdr: &Header<'_>,
        op: impl FnOnce(&Daemon, &Caller) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let uid = self.uid(conn, hdr).await?;
        self.off_executor(uid, move |daemon| op(daemon, &daemon.caller(uid)?))
            .await
    }

    /// Runs `work` for a call of `uid` on a thread of the pool, in one of `uid`'s slots (taken
    /// now, released when the work ends); `Busy` at once, nothing started, when `uid` or the
    /// daemon has no slot left.
    async fn off_executor<T: Send + 'static>(
        &self,
        uid: u32,
        work: impl FnOnce(&Daemon) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let slot = self.slots.take(uid).map_err(|full| busy(uid, full))?;
        let daemon = self.daemon.clone();
        self.pool
            .run(move || {
                let _slot = slot;
                work(&daemon)
            })
            .await
            .map_err(|_| {
                Error::Failed(
                    "the call stopped without an answer (a bug in twofold-enrolld: see its log)"
                        .into(),
                )
            })?
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

/// The refusal of a call over a cap.
fn busy(uid: u32, full: Full) -> Error {
    Error::Busy(match full {
        Full::Key => format!(
            "uid {uid} has {PER_UID} calls in progress already: this one was not started (nothing was checked, counted or changed); try again when they have ended"
        ),
        Full::Total => "twofold-enrolld has too many calls in progress: this one was not started (nothing was checked, counted or changed); try again in a moment".into(),
    })
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
        let user = user.to_owned();
        let info = self
            .as_caller(conn, &hdr, move |d, c| {
                d.set_override(c, &user, Some(Mode::Required))
            })
            .await?;
        announce(&emitter, info).await
    }

    /// Admin: `user` exempt (override `disabled`).
    async fn exempt(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let user = user.to_owned();
        let info = self
            .as_caller(conn, &hdr, move |d, c| {
                d.set_override(c, &user, Some(Mode::Disabled))
            })
            .await?;
        announce(&emitter, info).await
    }

    /// Admin: 2FA optional for `user` (override `optional`).
    async fn allow(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let user = user.to_owned();
        let info = self
            .as_caller(conn, &hdr, move |d, c| {
                d.set_override(c, &user, Some(Mode::Optional))
            })
            .await?;
        announce(&emitter, info).await
    }

    /// Admin: removes `user`'s override; the policy decides again.
    async fn clear_override(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let user = user.to_owned();
        let info = self
            .as_caller(conn, &hdr, move |d, c| d.set_override(c, &user, None))
            .await?;
        announce(&emitter, info).await
    }

    /// Admin: deletes `user`'s secret and recovery codes.
    async fn reset(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let user = user.to_owned();
        let info = self
            .as_caller(conn, &hdr, move |d, c| d.reset(c, &user))
            .await?;
        announce(&emitter, info).await
    }

    /// Admin, or the user themself: one user.
    async fn get_user(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<UserInfo, Error> {
        let user = user.to_owned();
        self.as_caller(conn, &hdr, move |d, c| d.get_user(c, &user))
            .await
    }

    /// Admin: all users.
    async fn list_users(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<UserInfo>, Error> {
        self.as_caller(conn, &hdr, |d, c| d.list_users(c)).await
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
        let after = after.to_owned();
        self.as_caller(conn, &hdr, move |d, c| d.list_users_page(c, &after, limit))
            .await
    }

    /// Admin: the users whose canonical name starts with `prefix` (`""`: all) and, when
    /// `statuses` is not empty, whose status is one of them (`pending`, `enforced`,
    /// `enabled`, `off`, `exempt`; another word is `InvalidArgument`); by name, after the
    /// cursor `after`, at most `limit` (1000 when 0 or more); and the cursor of the next
    /// page, `""` after the last.
    async fn find_users(
        &self,
        prefix: &str,
        statuses: Vec<String>,
        after: &str,
        limit: u32,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(Vec<UserInfo>, String), Error> {
        let (prefix, after) = (prefix.to_owned(), after.to_owned());
        self.as_caller(conn, &hdr, move |d, c| {
            d.find_users(c, &prefix, &statuses, &after, limit)
        })
        .await
    }

    /// Admin: count per status, and `total`.
    async fn summary(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<HashMap<String, u32>, Error> {
        self.as_caller(conn, &hdr, |d, c| d.summary(c)).await
    }

    /// Admin: the account-wide default mode.
    async fn set_default_mode(
        &self,
        mode: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), Error> {
        let mode = mode.to_owned();
        self.as_caller(conn, &hdr, move |d, c| d.set_default_mode(c, &mode))
            .await
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
        let proof = Zeroizing::new(proof.to_owned());
        self.as_caller(conn, &hdr, move |d, c| {
            d.begin_enrollment(c, replace, &proof)
        })
        .await
    }

    /// Self: confirms with a code; returns the recovery codes, once.
    async fn confirm_enrollment(
        &self,
        code: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<Vec<String>, Error> {
        let code = Zeroizing::new(code.to_owned());
        let (info, codes) = self
            .as_caller(conn, &hdr, move |d, c| d.confirm_enrollment(c, &code))
            .await?;
        Self::user_changed(&emitter, &info.user, &info.status).await?;
        Ok(codes)
    }

    /// Self: drops the pending enrollment; whether there was one.
    async fn cancel_enrollment(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<bool, Error> {
        self.as_caller(conn, &hdr, |d, c| d.cancel_enrollment(c))
            .await
    }

    /// Self: removes the enrollment (refused while required).
    async fn disable(
        &self,
        code: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let code = Zeroizing::new(code.to_owned());
        let info = self
            .as_caller(conn, &hdr, move |d, c| d.disable(c, &code))
            .await?;
        announce(&emitter, info).await
    }

    /// Self: new recovery codes, once.
    async fn regenerate_recovery_codes(
        &self,
        code: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<String>, Error> {
        let code = Zeroizing::new(code.to_owned());
        self.as_caller(conn, &hdr, move |d, c| {
            d.regenerate_recovery_codes(c, &code)
        })
        .await
    }

    /// Self: the caller's own status.
    async fn get_status(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<UserInfo, Error> {
        let uid = self.uid(conn, &hdr).await?;
        // Nothing it is made from changed: from memory, here (no file, lock or NSS).
        if let Some(info) = self.daemon.own_status_quick(uid) {
            return Ok(info);
        }
        self.off_executor(uid, move |d| d.own_status(uid)).await
    }

    /// A user's status changed (after every change).
    #[zbus(signal)]
    async fn user_changed(
        emitter: &SignalEmitter<'_>,
        user: &str,
        status: &str,
    ) -> zbus::Result<()>;
}
