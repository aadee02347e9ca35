//! Asking polkit whether a caller may do something, as fprintd and accountsservice do:
//! `org.freedesktop.PolicyKit1.Authority.CheckAuthorization` with the subject
//! `("system-bus-name", {"name": <the sender's unique name>})`, on the daemon's own bus
//! connection. The name comes from the message header the bus daemon filled in, never from an
//! argument: polkit resolves it to the connection's process, uid and session itself, so a
//! caller cannot name someone else.
//!
//! The call is asynchronous (no thread waits for it) and bounded by the connection's method
//! timeout (`twofold-enrolld --call-timeout`). Its answer is a [`Verdict`]: polkit said yes,
//! said no, is not on the bus at all, or failed otherwise (a timeout, an error of polkit, a
//! malformed reply), which the callers treat as no.
//!
//! "Not on the bus at all" is never read from the error's name: polkitd itself answers
//! `NameHasNoOwner` for a subject whose connection has left the bus, so a caller that sends a
//! self method and leaves at once would pass for "a host without polkitd". After any failed
//! call the bus daemon is asked instead: polkit is absent only when nobody owns its name and
//! the bus cannot start it.

use std::collections::HashMap;

use zbus::Connection;
use zbus::Variant;

/// polkit's bus name.
pub const POLKIT_NAME: &str = "org.freedesktop.PolicyKit1";
/// Managing other users' 2FA (the admin methods): `auth_admin_keep` for active sessions by
/// default; `50-twofold.rules` grants it to the group `twofold-admin`.
pub const MANAGE_OTHERS: &str = "org.twofold.Enroll1.manage-others";
/// Changing one's own enrollment (begin, confirm, cancel, disable, new recovery codes): yes
/// by default; a site may restrict it with a rule.
pub const MANAGE_OWN: &str = "org.twofold.Enroll1.manage-own";

/// `CheckAuthorizationFlags.AllowUserInteraction`.
const ALLOW_USER_INTERACTION: u32 = 1;

/// What polkit answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authorized.
    Yes,
    /// Not authorized (also: authentication was needed and no agent gave it).
    No,
    /// polkit is not on the bus (nobody owns its name and it cannot be started).
    Absent,
    /// polkit did not answer in time, or answered with an error: the reason.
    Failed(String),
}

/// Asks polkit whether the connection `sender` (a unique bus name, from the message header)
/// may do `action`; with `interactive`, polkit may ask the user to authenticate (through
/// their authentication agent, e.g. Cockpit's).
pub async fn check(conn: &Connection, sender: &str, action: &str, interactive: bool) -> Verdict {
    let mut subject_details: HashMap<&str, Variant<'_>> = HashMap::new();
    subject_details.insert("name", Variant::from(sender));
    let subject = ("system-bus-name", subject_details);
    let details: HashMap<&str, &str> = HashMap::new();
    let flags = if interactive {
        ALLOW_USER_INTERACTION
    } else {
        0
    };
    let reply = conn
        .call_method(
            Some(POLKIT_NAME),
            "/org/freedesktop/PolicyKit1/Authority",
            Some("org.freedesktop.PolicyKit1.Authority"),
            "CheckAuthorization",
            &(subject, action, details, flags, ""),
        )
        .await;
    let msg = match reply {
        Ok(msg) => msg,
        Err(_) if absent(conn).await => return Verdict::Absent,
        Err(e) => return Verdict::Failed(e.to_string()),
    };
    match msg
        .body()
        .deserialize::<(bool, bool, HashMap<String, String>)>()
    {
        Ok((true, _, _)) => Verdict::Yes,
        Ok((false, _, _)) => Verdict::No,
        Err(e) => Verdict::Failed(format!("malformed answer: {e}")),
    }
}

/// Whether polkit is not on the bus at all, as the bus daemon says: nobody owns its name and
/// it is not activatable. Any doubt (the bus does not answer) is "present", so the caller's
/// failure refuses.
async fn absent(conn: &Connection) -> bool {
    if has_owner(conn, POLKIT_NAME).await != Some(false) {
        return false;
    }
    let Ok(bus) = zbus::fdo::DBusProxy::new(conn).await else {
        return false;
    };
    match bus.list_activatable_names().await {
        Ok(names) => !names.iter().any(|n| n.as_str() == POLKIT_NAME),
        Err(_) => false,
    }
}

/// Whether `name` (a well-known or unique bus name) has an owner on `conn`'s bus, as the bus
/// daemon says; `None` when it cannot tell.
pub async fn has_owner(conn: &Connection, name: &str) -> Option<bool> {
    let bus = zbus::fdo::DBusProxy::new(conn).await.ok()?;
    let name = zbus::names::BusName::try_from(name).ok()?;
    bus.name_has_owner(name).await.ok()
}
