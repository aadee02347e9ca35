//! `twofold-enrolld`: the D-Bus daemon of twofold on the system bus (or the bus at
//! `DBUS_SYSTEM_BUS_ADDRESS`), owning `org.twofold.Enroll1`.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use futures_util::StreamExt;
use twofold_enrolld::api::{BUS_NAME, OBJECT_PATH};
use twofold_enrolld::ops::Daemon;
use twofold_enrolld::service::Manager;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let daemon = Arc::new(Daemon::new(
        args.policy.clone(),
        args.state.clone(),
        args.enroll_timeout,
    ));
    // The policy is read at every call (config management may change it); say now if it is
    // broken, but serve anyway: the calls then fail with the reason.
    if let Err(e) = twofold_policy::Policy::load_system(&args.policy) {
        daemon.log.error(&format!("policy: {e}"));
    }
    // Expired pending enrollments leave memory (their secrets wiped) even when nobody calls.
    {
        let daemon = daemon.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(30));
                daemon.purge_expired();
            }
        });
    }
    let manager = Manager::with_recheck(daemon.clone(), args.subscriber_recheck);
    let senders = manager.senders();
    let result = zbus::block_on(async {
        let conn = zbus::connection::Builder::system()
            .method_timeout(args.call_timeout)
            .name(BUS_NAME)
            .serve_at(OBJECT_PATH, manager)
            .build()
            .await?;
        // Connections that leave the bus are forgotten: their uid and their subscription.
        let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
        let mut gone = dbus.receive_name_owner_changed().await?;
        daemon.log.notice(&format!(
            "serving {BUS_NAME} (policy {}, state {})",
            args.policy.display(),
            args.state.display()
        ));
        // Runs until killed; the connection is served by zbus's executor meanwhile.
        while let Some(signal) = gone.next().await {
            if let Ok(a) = signal.args()
                && a.new_owner().is_none()
                && a.name().starts_with(':')
            {
                senders.left(a.name());
            }
        }
        std::future::pending::<()>().await;
        drop(conn);
        Ok::<(), zbus::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            daemon.log.error(&format!(
                "cannot serve {BUS_NAME} on the system bus: {e} (the name is root's only; is dbus running?)"
            ));
            ExitCode::from(3)
        }
    }
}
