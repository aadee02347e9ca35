//! `twofold import google-authenticator|oath`: migration from the tools twofold replaces,
//! through the daemon (which reads users' files itself; a users.oath is read here, with the
//! caller's own permissions).

use serde_json::json;
use twofold_enrolld::api::{ImportReport, ImportToken};
use twofold_policy::time;
use zeroize::Zeroizing;

use crate::client::with_daemon;
use crate::error::CliError;

/// The largest users file `twofold import oath` reads.
const MAX_OATH_FILE: u64 = 8 << 20;

/// Prints the reports (or, with `json_out`, a JSON array); `Err` (exit 6) when one was skipped.
fn print_imports(
    rows: &[ImportReport],
    extra: Vec<serde_json::Value>,
    json_out: bool,
    dry_run: bool,
) -> Result<(), CliError> {
    if json_out {
        let mut all: Vec<serde_json::Value> = rows.iter().map(ImportReport::to_json).collect();
        all.extend(extra);
        println!("{:#}", serde_json::Value::Array(all));
    } else {
        for r in rows {
            println!("{}", r.to_line());
        }
        if dry_run {
            println!("Nothing was changed (--dry-run).");
        }
    }
    let skipped = rows.iter().filter(|r| !r.imported()).count();
    if skipped > 0 {
        return Err(CliError::Reported(Box::new(CliError::Refused(format!(
            "{skipped} skipped"
        )))));
    }
    Ok(())
}

/// Whether `r` says the user has no file (or no home): `--all` counts these, one line for all.
fn is_missing_file(r: &ImportReport) -> bool {
    r.reason.as_deref().is_some_and(|why| {
        (why.starts_with("no /") && why.ends_with(twofold_policy::import::GA_FILE))
            || (why.starts_with("home directory ") && why.ends_with(" is missing"))
    })
}

/// A daemon error for one user, as a skipped row (an unknown user, a bad name).
fn error_row(user: &str, e: twofold_enrolld::api::Error) -> Result<ImportReport, CliError> {
    match CliError::from_daemon(e) {
        e @ (CliError::UnknownUser(_) | CliError::Usage(_) | CliError::Refused(_)) => {
            Ok(ImportReport {
                user: user.to_owned(),
                outcome: "skipped".into(),
                reason: Some(e.to_string()),
                ..ImportReport::default()
            })
        }
        other => Err(other),
    }
}

/// `twofold import google-authenticator [USER…] [--all] [--dry-run]`.
pub fn import_google_authenticator(
    users: &[String],
    all: bool,
    dry_run: bool,
    add: bool,
    json_out: bool,
) -> Result<(), CliError> {
    let results = with_daemon(async |p| {
        let names: Vec<String> = if all {
            p.list_users()
                .await?
                .into_iter()
                .filter(|u| u.uid.is_some())
                .map(|u| u.user)
                .collect()
        } else {
            users.to_vec()
        };
        let mut out = Vec::with_capacity(names.len());
        for user in names {
            let r = p.import_google_authenticator(&user, dry_run, add).await;
            out.push((user, r));
        }
        Ok(out)
    })?;
    let mut rows = Vec::new();
    let mut without = 0usize;
    for (user, r) in results {
        let row = match r {
            Ok(row) => row,
            Err(e @ twofold_enrolld::api::Error::PermissionDenied(_)) => {
                return Err(CliError::from_daemon(e));
            }
            Err(e) => error_row(&user, e)?,
        };
        if all && is_missing_file(&row) {
            without += 1;
            continue;
        }
        rows.push(row);
    }
    if all && !json_out {
        println!(
            "{without} other user{} of the listing {} no ~/.google_authenticator (or no home).",
            if without == 1 { "" } else { "s" },
            if without == 1 { "has" } else { "have" }
        );
    }
    print_imports(&rows, Vec::new(), json_out, dry_run)
}

/// `twofold import oath FILE [--dry-run]`: FILE read here, with the caller's permissions.
pub fn import_oath(
    file: &std::path::Path,
    dry_run: bool,
    add: bool,
    json_out: bool,
) -> Result<(), CliError> {
    use std::io::Read as _;
    let shown = file.display().to_string();
    let f = std::fs::File::open(file).map_err(|e| CliError::System(format!("{shown}: {e}")))?;
    let meta = f
        .metadata()
        .map_err(|e| CliError::System(format!("{shown}: {e}")))?;
    if !meta.is_file() {
        return Err(CliError::Usage(format!("{shown}: not a regular file")));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    f.take(MAX_OATH_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::System(format!("{shown}: {e}")))?;
    if bytes.len() as u64 > MAX_OATH_FILE {
        return Err(CliError::Usage(format!(
            "{shown}: larger than {MAX_OATH_FILE} bytes"
        )));
    }
    let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
    drop(bytes);
    let lines = twofold_policy::import::parse_oath(&text, time::now());
    drop(text);
    let mut bad = Vec::new();
    let mut tokens = Vec::new();
    for l in lines {
        match l.token {
            Ok(t) => {
                let wire = ImportToken {
                    secret: t.secret.to_base32().to_string(),
                    digits: t.params.digits,
                    period: t.params.period,
                    algorithm: None,
                    skew: (t.skew != 0).then_some(t.skew),
                    last_step: t.last_step,
                    ahead: Some(t.ahead),
                    name: None,
                };
                tokens.push((l.line, l.user.unwrap_or_default(), wire, t.notes.clone()));
            }
            Err(why) => {
                let who = l
                    .user
                    .as_deref()
                    .map(|u| format!("{}: ", twofold_policy::logfmt::value(u)))
                    .unwrap_or_default();
                bad.push((
                    l.line,
                    l.user.clone(),
                    format!("{shown}:{}: {who}{why}", l.line),
                ));
            }
        }
    }
    let results = with_daemon(async |p| {
        let mut out = Vec::with_capacity(tokens.len());
        for (line, user, wire, notes) in &tokens {
            let r = p.import_token(user, wire, dry_run, add).await;
            out.push((*line, user.clone(), notes.clone(), r));
        }
        Ok(out)
    })?;
    let mut rows = Vec::new();
    for (_, user, notes, r) in results {
        let mut row = match r {
            Ok(row) => row,
            Err(e @ twofold_enrolld::api::Error::PermissionDenied(_)) => {
                return Err(CliError::from_daemon(e));
            }
            Err(e) => error_row(&user, e)?,
        };
        if row.imported() {
            row.notes.extend(notes);
        }
        rows.push(row);
    }
    let mut extra = Vec::new();
    for (line, user, message) in &bad {
        if json_out {
            extra.push(json!({ "file": shown, "line": line, "user": user, "outcome": "skipped", "reason": message }));
        } else {
            eprintln!("{message}");
        }
    }
    let result = print_imports(&rows, extra, json_out, dry_run);
    if !bad.is_empty() {
        return Err(CliError::Reported(Box::new(CliError::Refused(format!(
            "{} line(s) skipped",
            bad.len()
        )))));
    }
    result
}
