//! The `org.twofold.Enroll1.Manager` interface. Every method first asks the bus who called
//! (the sender's Unix uid), then runs the rest on a thread of a [`Pool`], off the bus's
//! executor, within the caller's share of [`Slots`] ([`crate::worker`]): the caller's account
//! (NSS) and the operation of [`crate::ops`] (policy, store, the user's lock). It then emits
//! `UserChanged` for every change. A call that waits (for a user's lock held by a stopped
//! process) holds up nobody else's. Only `GetStatus` may answer on the executor itself, from
//! memory alone, while nothing its answer is made from changed
//! ([`Daemon::own_status_quick`]).
//!
//! Authorization: admin methods are for root and the policy's `admin_group` (decided in
//! [`crate::ops`], no polkit round trip), or for a caller polkit authorizes for
//! `org.twofold.Enroll1.manage-others`: a call the admin check refused is run again once polkit
//! said yes ([`crate::polkit`], asked asynchronously, allowing interaction). The self methods
//! that change the caller's enrollment first need `org.twofold.Enroll1.manage-own` (root
//! excepted). Without polkit on the bus, admin methods stay root's and `admin_group`'s and the
//! self methods are allowed; any other failure of polkit refuses.
//!
//! Live updates: besides the broadcast `UserChanged` (which the bus policy delivers to root and
//! `twofold-admin` only), every subscribed connection ([`crate::subscribers`]) gets `Changed`
//! as a unicast signal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zbus::message::Header;
use zbus::names::BusName;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, interface};
use zeroize::Zeroizing;

use crate::api::{AuthenticatorInfo, DefaultPreview, Error, NewEnrollment, UserInfo};
use crate::ops::{Caller, Daemon, PolkitAdmin};
use crate::polkit::{self, MANAGE_OTHERS, MANAGE_OWN, Verdict};
use crate::subscribers::{self, Refused, Subscribers};
use crate::worker::{Full, LIMITS, PER_UID, Pool, Slots};
use twofold_policy::Mode;

/// The most senders whose uid is remembered; past it the memory starts again empty.
pub const UID_CACHE_MAX: usize = 4096;

/// What the daemon keeps per sender (by unique bus name), shared with the watcher of
/// connections leaving the bus.
#[derive(Debug, Default)]
pub struct Senders {
    /// Unique bus name of a sender → its Unix uid, as the bus daemon said. A unique name is
    /// never given to another connection on the same bus, and a connection's credentials are
    /// those it connected with, so the answer cannot go stale; only the uid is kept (the
    /// account and its groups, admin rights included, are resolved again at every call).
    uids: Mutex<HashMap<String, u32>>,
    /// The connections that get `Changed`.
    subscribers: Subscribers,
}

impl Senders {
    /// Forgets a sender whose connection left the bus (`NameOwnerChanged` with no new owner):
    /// its uid and its subscription.
    pub fn left(&self, unique_name: &str) {
        self.uids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(unique_name);
        self.subscribers.remove(unique_name);
    }

    /// How many senders' uids are remembered.
    pub fn remembered(&self) -> usize {
        self.uids.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// How many connections are subscribed.
    pub fn subscribed(&self) -> usize {
        self.subscribers.len()
    }
}

/// The served object.
pub struct Manager {
    daemon: Arc<Daemon>,
    senders: Arc<Senders>,
    /// The threads that run the calls' work.
    pool: Pool,
    /// The calls running, per caller and in all.
    slots: Arc<Slots>,
}

/// The sender of a call, as the bus daemon wrote it in the header.
fn sender_of(hdr: &Header<'_>) -> Result<String, Error> {
    hdr.sender()
        .map(|s| s.as_str().to_owned())
        .ok_or_else(|| Error::PermissionDenied("the call has no sender".into()))
}

impl Manager {
    /// Serves `daemon`.
    pub fn new(daemon: Arc<Daemon>) -> Manager {
        Manager::with_recheck(daemon, subscribers::RECHECK)
    }

    /// Serves `daemon`, checking subscribers' authorization again after `recheck`.
    pub fn with_recheck(daemon: Arc<Daemon>, recheck: Duration) -> Manager {
        Manager {
            daemon,
            senders: Arc::new(Senders {
                uids: Mutex::new(HashMap::new()),
                subscribers: Subscribers::new(recheck),
            }),
            pool: Pool::new(),
            slots: Slots::new(LIMITS),
        }
    }

    /// What is kept per sender, for the watcher of connections leaving the bus.
    pub fn senders(&self) -> Arc<Senders> {
        self.senders.clone()
    }

    /// Forgets a sender (its connection left the bus: `NameOwnerChanged` with no new owner).
    pub fn forget(&self, unique_name: &str) {
        self.senders.left(unique_name);
    }

    /// How many senders are remembered.
    pub fn remembered(&self) -> usize {
        self.senders.remembered()
    }

    /// Runs `op` for the caller, off the executor, in one of the caller's slots held for the
    /// whole call: the caller as the bus daemon reports it (`GetConnectionUnixUser` of the
    /// sender, once per sender; never from an argument), its account and groups resolved, then
    /// the operation. With `own` (an action name), polkit must first authorize the caller for
    /// `manage-own` (root excepted; allowed when polkit is not on the bus). When an admin check
    /// of `op` refused a caller who is neither root nor in `admin_group`, polkit is asked about
    /// `manage-others` (interaction allowed) and `op` runs again with its answer: `op` must
    /// check the caller before it changes anything (every admin operation does).
    async fn as_caller<T: Send + 'static>(
        &self,
        conn: &Connection,
        hdr: &Header<'_>,
        own: Option<&str>,
        op: impl Fn(&Daemon, &Caller) -> Result<T, Error> + Send + Sync + 'static,
    ) -> Result<T, Error> {
        let sender = sender_of(hdr)?;
        let uid = self.uid(conn, hdr).await?;
        let _slot = self.slots.take(uid).map_err(|full| busy(uid, full))?;
        if let Some(action) = own
            && uid != 0
        {
            self.authorize_own(conn, &sender, uid, action).await?;
        }
        let op = Arc::new(op);
        let (result, needs_admin) = {
            let op = op.clone();
            self.run(move |d| {
                let caller = d.caller(uid)?;
                let result = op(d, &caller);
                Ok((result, caller.needs_admin()))
            })
            .await?
        };
        if !needs_admin {
            return result;
        }
        let answer = match polkit::check(conn, &sender, MANAGE_OTHERS, true).await {
            Verdict::Yes => PolkitAdmin::Granted,
            Verdict::No => PolkitAdmin::Refused(format!("not authorized for {MANAGE_OTHERS}")),
            Verdict::Absent => PolkitAdmin::Refused("not running on this host".into()),
            Verdict::Failed(why) => PolkitAdmin::Refused(format!(
                "could not be asked ({why}): refused, failing closed"
            )),
        };
        self.run(move |d| {
            let mut caller = d.caller(uid)?;
            caller.polkit = answer;
            op(d, &caller)
        })
        .await
    }

    /// polkit's `manage-own` for a self method that changes the caller's enrollment: yes, or
    /// polkit absent from the bus, lets it run; anything else refuses.
    async fn authorize_own(
        &self,
        conn: &Connection,
        sender: &str,
        uid: u32,
        action: &str,
    ) -> Result<(), Error> {
        let why = match polkit::check(conn, sender, MANAGE_OWN, true).await {
            Verdict::Yes | Verdict::Absent => return Ok(()),
            Verdict::No => format!(
                "this host's polkit does not authorize you for {MANAGE_OWN} (a rule of the site): ask an administrator"
            ),
            Verdict::Failed(e) => format!(
                "polkit could not be asked whether you may ({e}): refused, failing closed; try again"
            ),
        };
        self.daemon.log.notice(&format!(
            "caller=uid:{uid} action={action} result=denied: {why}"
        ));
        Err(Error::PermissionDenied(format!("{action}: {why}")))
    }

    /// Runs `work` on a thread of the pool (the caller's slot is held by the call).
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Daemon) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let daemon = self.daemon.clone();
        self.pool.run(move || work(&daemon)).await.map_err(|_| {
            Error::Failed(
                "the call stopped without an answer (a bug in twofold-enrolld: see its log)".into(),
            )
        })?
    }

    /// Emits `UserChanged` for a changed user, then `Changed` to each subscriber, and passes
    /// the view on. The change is made already: a signal that cannot be sent is logged, never
    /// turned into the call's answer (an enrollment's recovery codes, shown once, would be
    /// lost with it).
    async fn announce(
        &self,
        conn: &Connection,
        emitter: &SignalEmitter<'_>,
        info: UserInfo,
    ) -> Result<UserInfo, Error> {
        if let Err(e) = Self::user_changed(emitter, &info.user, &info.status).await {
            self.daemon.log.error(&format!("UserChanged: {e}"));
        }
        self.deliver(conn, emitter, &info.user, &info.status).await;
        Ok(info)
    }

    /// Sends `Changed` to every subscriber, each addressed to its own connection. A subscriber
    /// whose last check is older than the period is checked again first, without interaction,
    /// and dropped when no longer authorized.
    async fn deliver(
        &self,
        conn: &Connection,
        emitter: &SignalEmitter<'_>,
        user: &str,
        status: &str,
    ) {
        let subs = &self.senders.subscribers;
        if subs.is_empty() {
            return;
        }
        let now = Instant::now();
        let (mut fresh, due) = subs.split(now);
        // All at once: a polkit that does not answer delays this call by one timeout, not one
        // per subscriber, and fails every check (those subscribers are dropped).
        let checks = due.into_iter().map(|(name, uid)| async move {
            let ok = self.still_admin(conn, &name, uid).await;
            (name, uid, ok)
        });
        for (name, uid, ok) in futures_util::future::join_all(checks).await {
            if ok {
                subs.checked(&name, now);
                fresh.push(name);
            } else if subs.remove(&name) {
                self.daemon.log.notice(&format!(
                    "caller=uid:{uid} action=subscribe result=dropped: no longer authorized"
                ));
            }
        }
        for name in fresh {
            let Ok(dest) = BusName::try_from(name.clone()) else {
                subs.remove(&name);
                continue;
            };
            let to = emitter.to_owned().set_destination(dest);
            if let Err(e) = Self::changed(&to, user, status).await {
                self.daemon
                    .log
                    .error(&format!("Changed to a subscriber: {e}"));
            }
        }
    }

    /// Whether the subscriber `name` of `uid` is still an admin: root, `admin_group`, or
    /// polkit's `manage-others` without interaction. Any failure says no.
    async fn still_admin(&self, conn: &Connection, name: &str, uid: u32) -> bool {
        let by_group = self
            .run(move |d| {
                let caller = d.caller(uid)?;
                match d.check_admin(&caller, "subscribe") {
                    Ok(()) => Ok(true),
                    Err(_) if caller.needs_admin() => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await;
        match by_group {
            Ok(true) => true,
            Ok(false) => polkit::check(conn, name, MANAGE_OTHERS, false).await == Verdict::Yes,
            Err(_) => false,
        }
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
        self.run(move |daemon| {
            let _slot = slot;
            work(daemon)
        })
        .await
    }

    /// The sender's Unix uid, as the bus reports it (kept per unique bus name).
    async fn uid(&self, conn: &Connection, hdr: &Header<'_>) -> Result<u32, Error> {
        let sender = sender_of(hdr)?;
        let known = self
            .senders
            .uids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sender)
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
                let mut uids = self.senders.uids.lock().unwrap_or_else(|e| e.into_inner());
                if uids.len() >= UID_CACHE_MAX {
                    uids.clear();
                }
                uids.insert(sender, uid);
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
            .as_caller(conn, &hdr, None, move |d, c| {
                d.set_override(c, &user, Some(Mode::Required))
            })
            .await?;
        self.announce(conn, &emitter, info).await
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
            .as_caller(conn, &hdr, None, move |d, c| {
                d.set_override(c, &user, Some(Mode::Disabled))
            })
            .await?;
        self.announce(conn, &emitter, info).await
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
            .as_caller(conn, &hdr, None, move |d, c| {
                d.set_override(c, &user, Some(Mode::Optional))
            })
            .await?;
        self.announce(conn, &emitter, info).await
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
            .as_caller(conn, &hdr, None, move |d, c| d.set_override(c, &user, None))
            .await?;
        self.announce(conn, &emitter, info).await
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
            .as_caller(conn, &hdr, None, move |d, c| d.reset(c, &user))
            .await?;
        self.announce(conn, &emitter, info).await
    }

    /// Admin, or the user themself: one user.
    async fn get_user(
        &self,
        user: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<UserInfo, Error> {
        let user = user.to_owned();
        self.as_caller(conn, &hdr, None, move |d, c| d.get_user(c, &user))
            .await
    }

    /// Admin: all users.
    async fn list_users(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<UserInfo>, Error> {
        self.as_caller(conn, &hdr, None, |d, c| d.list_users(c))
            .await
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
        self.as_caller(conn, &hdr, None, move |d, c| {
            d.list_users_page(c, &after, limit)
        })
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
        self.as_caller(conn, &hdr, None, move |d, c| {
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
        self.as_caller(conn, &hdr, None, |d, c| d.summary(c)).await
    }

    /// Admin: the account-wide default mode.
    async fn set_default_mode(
        &self,
        mode: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), Error> {
        let mode = mode.to_owned();
        self.as_caller(conn, &hdr, None, move |d, c| d.set_default_mode(c, &mode))
            .await
    }

    /// Admin: what `SetDefaultMode(mode)` would change, counted over every user from the
    /// policy (each user resolved now and with the new default); changes nothing. Refused
    /// like `SetDefaultMode`: a bad mode, a caller who is no admin (polkit asked as for every
    /// admin method), a `policy.d` file whose own `mode` overrides the main file's.
    async fn preview_default_mode(
        &self,
        mode: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<DefaultPreview, Error> {
        let mode = mode.to_owned();
        self.as_caller(conn, &hdr, None, move |d, c| {
            d.preview_default_mode(c, &mode)
        })
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
        self.as_caller(conn, &hdr, Some("begin-enrollment"), move |d, c| {
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
            .as_caller(conn, &hdr, Some("confirm-enrollment"), move |d, c| {
                d.confirm_enrollment(c, &code)
            })
            .await?;
        self.announce(conn, &emitter, info).await?;
        Ok(codes)
    }

    /// Self: drops the pending enrollment; whether there was one.
    async fn cancel_enrollment(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<bool, Error> {
        self.as_caller(conn, &hdr, Some("cancel-enrollment"), |d, c| {
            d.cancel_enrollment(c)
        })
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
            .as_caller(conn, &hdr, Some("disable"), move |d, c| d.disable(c, &code))
            .await?;
        self.announce(conn, &emitter, info).await
    }

    /// Self: new recovery codes, once.
    async fn regenerate_recovery_codes(
        &self,
        code: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<String>, Error> {
        let code = Zeroizing::new(code.to_owned());
        self.as_caller(
            conn,
            &hdr,
            Some("regenerate-recovery-codes"),
            move |d, c| d.regenerate_recovery_codes(c, &code),
        )
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

    /// Self: the caller's authenticators (never a secret).
    async fn list_authenticators(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<AuthenticatorInfo>, Error> {
        self.as_caller(conn, &hdr, None, |d, c| d.list_authenticators(c))
            .await
    }

    /// Self: a fresh secret for another authenticator, pending until `ConfirmEnrollment`;
    /// `proof` is a current code of an enrolled authenticator or a recovery code.
    async fn add_authenticator(
        &self,
        name: &str,
        proof: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<NewEnrollment, Error> {
        let proof = Zeroizing::new(proof.to_owned());
        let name = name.to_owned();
        self.as_caller(conn, &hdr, Some("add-authenticator"), move |d, c| {
            d.add_authenticator(c, &name, &proof)
        })
        .await
    }

    /// Self: renames an authenticator (`which`: its number or its name).
    async fn rename_authenticator(
        &self,
        which: &str,
        name: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let (which, name) = (which.to_owned(), name.to_owned());
        let info = self
            .as_caller(conn, &hdr, Some("rename-authenticator"), move |d, c| {
                d.rename_authenticator(c, &which, &name)
            })
            .await?;
        self.announce(conn, &emitter, info).await
    }

    /// Self: removes an authenticator; the last one only as `Disable` would.
    async fn remove_authenticator(
        &self,
        which: &str,
        proof: &str,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<UserInfo, Error> {
        let proof = Zeroizing::new(proof.to_owned());
        let which = which.to_owned();
        let info = self
            .as_caller(conn, &hdr, Some("remove-authenticator"), move |d, c| {
                d.remove_authenticator(c, &which, &proof)
            })
            .await?;
        self.announce(conn, &emitter, info).await
    }

    /// Admin: from now on, this connection gets `Changed` for every change, addressed to it
    /// alone, until it calls `Unsubscribe` or leaves the bus (or, checked again at most once a
    /// minute, is no longer an admin). `Busy` beyond 4 subscribed connections per uid or 64
    /// in all.
    async fn subscribe(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), Error> {
        let sender = sender_of(&hdr)?;
        let uid = self
            .as_caller(conn, &hdr, None, |d, c| {
                d.check_admin(c, "subscribe")?;
                Ok(c.account.uid)
            })
            .await?;
        let subs = &self.senders.subscribers;
        subs.add(&sender, uid, Instant::now()).map_err(|r| {
            Error::Busy(match r {
                Refused::PerUid => format!(
                    "uid {uid} has {} subscribed connections already: unsubscribe one (or close it) first",
                    subscribers::PER_UID
                ),
                Refused::Total => format!(
                    "twofold-enrolld has {} subscribed connections already: try again later",
                    subscribers::MAX
                ),
            })
        })?;
        // A connection that left while it was being authorized is not kept (its
        // NameOwnerChanged may have come before it was added).
        if polkit::has_owner(conn, &sender).await != Some(true) {
            subs.remove(&sender);
            return Ok(());
        }
        self.daemon
            .log
            .notice(&format!("caller=uid:{uid} action=subscribe result=ok"));
        Ok(())
    }

    /// This connection no longer gets `Changed` (nothing if it did not).
    async fn unsubscribe(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        let sender = sender_of(&hdr)?;
        self.senders.subscribers.remove(&sender);
        Ok(())
    }

    /// A user's status changed (after every change).
    #[zbus(signal)]
    async fn user_changed(
        emitter: &SignalEmitter<'_>,
        user: &str,
        status: &str,
    ) -> zbus::Result<()>;

    /// A user's status changed: sent to each subscriber alone (`Subscribe`).
    #[zbus(signal)]
    async fn changed(emitter: &SignalEmitter<'_>, user: &str, status: &str) -> zbus::Result<()>;
}
