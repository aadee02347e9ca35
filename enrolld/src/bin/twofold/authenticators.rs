//! `twofold authenticator …`: the caller's several authenticators, through the daemon.

use serde_json::json;

use crate::cli::AuthenticatorCommand;
use crate::client::{ask_proof, confirm, date, present, with_daemon};
use crate::error::CliError;

/// Runs one `twofold authenticator` command.
pub fn run(cmd: &AuthenticatorCommand, json_out: bool) -> Result<(), CliError> {
    match cmd {
        AuthenticatorCommand::List => list(json_out),
        AuthenticatorCommand::Add { name, qr } => add(name, *qr, json_out),
        AuthenticatorCommand::Rename { which, name } => {
            let info = with_daemon(async |p| p.rename_authenticator(which, name).await)?;
            if json_out {
                println!("{:#}", info.to_json());
            } else {
                println!("Renamed {which:?} to {name:?}.");
            }
            Ok(())
        }
        AuthenticatorCommand::Remove { which } => remove(which, json_out),
    }
}

fn list(json_out: bool) -> Result<(), CliError> {
    let list = with_daemon(async |p| p.list_authenticators().await)?;
    if json_out {
        let all: Vec<_> = list.iter().map(|a| a.to_json()).collect();
        println!("{:#}", json!({ "authenticators": all }));
        return Ok(());
    }
    let w = list
        .iter()
        .map(|a| a.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:>3}  {:<w$}  {:<10}  CODES", "ID", "NAME", "ADDED");
    for a in &list {
        println!(
            "{:>3}  {:<w$}  {:<10}  {} digits, {} s, {}",
            a.id,
            a.name,
            date(Some(a.added_at)),
            a.digits,
            a.period,
            a.algorithm
        );
    }
    println!(
        "{} authenticator{}: a code from any of them is accepted at login.",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

fn add(name: &str, qr: crate::cli::QrChoice, json_out: bool) -> Result<(), CliError> {
    let status = with_daemon(async |p| p.get_status().await)?;
    if !status.enrolled {
        return Err(CliError::Refused(
            "2FA is not set up for you: run `twofold enroll` first (it sets up the first authenticator)".into(),
        ));
    }
    let proof = ask_proof()?;
    let new = with_daemon(async |p| p.add_authenticator(name, &proof).await)?;
    drop(proof);
    println!("Adding the authenticator {name:?} for {}.", new.label);
    println!();
    present(&new, qr);
    let _ = confirm("no authenticator was added")?;
    let info = with_daemon(async |p| p.get_status().await)?;
    if json_out {
        println!("{:#}", info.to_json());
    } else {
        println!(
            "Added {name:?}: a code from any of your {} authenticators is accepted at login.",
            info.authenticators.unwrap_or(0)
        );
    }
    Ok(())
}

fn remove(which: &str, json_out: bool) -> Result<(), CliError> {
    let list = with_daemon(async |p| p.list_authenticators().await)?;
    let target = match twofold_policy::record::as_number(which) {
        Some(id) => list.iter().find(|a| a.id == id),
        None => list.iter().find(|a| a.name == which),
    };
    let Some(target) = target else {
        return Err(CliError::Usage(format!(
            "no authenticator {which:?} (see `twofold authenticator list`)"
        )));
    };
    if list.len() == 1 {
        let status = with_daemon(async |p| p.get_status().await)?;
        if status.mode == "required" {
            return Err(CliError::Refused(format!(
                "{:?} is your only authenticator and 2FA is required for you ({}): add another one first",
                target.name, status.rule
            )));
        }
        eprintln!(
            "{:?} is your only authenticator: removing it turns 2FA off.",
            target.name
        );
    }
    let proof = ask_proof()?;
    // By the number of the one shown, not by the words typed: a rename while the proof is
    // asked for (no proof needed for that) cannot make this remove another one.
    let id = target.id.to_string();
    let info = with_daemon(async |p| p.remove_authenticator(&id, &proof).await)?;
    if json_out {
        println!("{:#}", info.to_json());
    } else if info.enrolled {
        println!(
            "Removed {:?}: {} authenticator{} left.",
            target.name,
            info.authenticators.unwrap_or(0),
            if info.authenticators == Some(1) {
                ""
            } else {
                "s"
            }
        );
    } else {
        println!("Removed {:?}: 2FA is now off for you.", target.name);
    }
    Ok(())
}
