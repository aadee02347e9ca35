//! The commands that ask twofold-enrolld: enrollment, status, the admin console.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::json;
use twofold_enrolld::api::{ManagerProxy, UserInfo};
use twofold_policy::qr::Drawing;
use twofold_policy::time;
use zeroize::Zeroizing;

use crate::cli::{DefaultMode, QrChoice};
use crate::error::CliError;

/// Runs `f` against the daemon's proxy on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` honoured).
pub(crate) fn with_daemon<T>(
    f: impl AsyncFnOnce(&ManagerProxy<'static>) -> Result<T, twofold_enrolld::api::Error>,
) -> Result<T, CliError> {
    zbus::block_on(async {
        let conn = zbus::Connection::system()
            .await
            .map_err(|e| CliError::from_daemon(e.into()))?;
        let proxy = ManagerProxy::new(&conn)
            .await
            .map_err(|e| CliError::from_daemon(e.into()))?;
        f(&proxy).await.map_err(CliError::from_daemon)
    })
}

/// Colours on a terminal only, and never with `NO_COLOR` set.
struct Paint(bool);

impl Paint {
    fn detect() -> Paint {
        Paint(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
    }

    fn status(&self, status: &str, width: usize) -> String {
        let text = format!("{status:<width$}");
        if !self.0 {
            return text;
        }
        let code = match status {
            "pending" => "33",
            "enforced" => "32",
            "enabled" => "36",
            "exempt" => "34",
            _ => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

pub(crate) fn date(t: Option<u64>) -> String {
    t.map(|t| time::human(t).chars().take(10).collect())
        .unwrap_or_else(|| "-".into())
}

/// One sentence a person understands, about `who` ("you" or a name).
pub fn sentence(info: &UserInfo, myself: bool) -> String {
    let (you, your) = if myself {
        ("you".to_owned(), "your".to_owned())
    } else {
        (info.user.clone(), format!("{}'s", info.user))
    };
    let since = info
        .enrolled_at
        .map(|t| format!(" since {}", time::human(t)))
        .unwrap_or_default();
    let auths = info
        .authenticators
        .map(|n| format!(" {n} authenticator{}.", if n == 1 { "" } else { "s" }))
        .unwrap_or_default();
    let left = info
        .recovery_codes_left
        .map(|n| {
            format!(
                "{auths} {n} recovery code{} left.",
                if n == 1 { "" } else { "s" }
            )
        })
        .unwrap_or(auths);
    match info.status.as_str() {
        "pending" => {
            let deadline = info.deadline.map(time::human).unwrap_or_default();
            let now = time::now();
            if info.deadline.is_some_and(|d| d <= now) {
                format!(
                    "2FA is required for {you} and was not set up in time (the grace period ended {deadline}): logins are refused until an administrator resets or exempts {you}."
                )
            } else if info.enroll_at_login {
                format!(
                    "2FA is required for {you} and not set up: {} set it up at {your} next login, before {deadline}{}.",
                    if myself { "you will" } else { "they will" },
                    if myself {
                        " (or now, with `twofold enroll`)"
                    } else {
                        ""
                    }
                )
            } else {
                format!(
                    "2FA is required for {you} and not set up: run `twofold enroll` before {deadline}; after that, logins are refused."
                )
            }
        }
        "enforced" => format!(
            "2FA is required for {you} and set up{since}: every login asks for a code.{left}"
        ),
        "enabled" => format!(
            "2FA is set up for {you}{since}, by choice: every login asks for a code.{left}{}",
            if myself {
                " Turn it off with `twofold disable`."
            } else {
                ""
            }
        ),
        "off" => format!(
            "2FA is optional for {you} and not set up: logins ask for no code.{}",
            if myself {
                " Set it up with `twofold enroll`."
            } else {
                ""
            }
        ),
        "exempt" => format!("2FA is disabled for {you}: logins ask for no code."),
        other => format!("status {other}"),
    }
}

/// `twofold status [USER]`.
pub fn status(user: Option<&str>, json_out: bool) -> Result<(), CliError> {
    let info = with_daemon(async |p| match user {
        Some(u) => p.get_user(u).await,
        None => p.get_status().await,
    })?;
    if json_out {
        println!("{:#}", info.to_json());
        return Ok(());
    }
    let myself = user.is_none_or(|u| {
        nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .is_some_and(|me| me.name == u)
    });
    println!("{}", sentence(&info, myself));
    println!("  decided by {}", info.rule);
    if let (Some(m), Some(by), Some(at)) =
        (&info.override_mode, &info.override_by, info.override_at)
    {
        println!("  override {m}, set by {by} on {}", time::human(at));
    }
    if let Some(t) = info.last_login {
        println!(
            "  last login with a code {}{}",
            time::human(t),
            info.last_login_from
                .as_deref()
                .map(|f| format!(" from {f}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Rows asked of the daemon per page by `twofold list`.
const LIST_PAGE: u32 = 1000;

/// Whether the daemon does not know the method (an older daemon).
fn unknown_method(e: &twofold_enrolld::api::Error) -> bool {
    match e {
        twofold_enrolld::api::Error::ZBus(zbus::Error::MethodError(name, _, _)) => {
            name.as_str() == "org.freedesktop.DBus.Error.UnknownMethod"
        }
        twofold_enrolld::api::Error::ZBus(zbus::Error::FDO(e)) => {
            matches!(**e, zbus::fdo::Error::UnknownMethod(_))
        }
        _ => false,
    }
}

/// `twofold list`: the users page by page (`ListUsersPage`, or `FindUsers` with `--prefix` or
/// `--status`), each printed as it arrives (a table, or with `--json` one JSON document whose
/// `users` array is streamed), then the distribution of the rows shown. An older daemon
/// without pages is asked `ListUsers` once (unfiltered only).
pub fn list(prefix: Option<&str>, statuses: &[String], json_out: bool) -> Result<(), CliError> {
    let filtered = prefix.is_some() || !statuses.is_empty();
    let prefix = prefix.unwrap_or_default();
    let wanted: Vec<&str> = statuses.iter().map(String::as_str).collect();
    let statuses = ["pending", "enforced", "enabled", "off", "exempt"];
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut printer = ListPrinter {
        json: json_out,
        paint: Paint::detect(),
        widths: None,
        counts: [0; 5],
        total: 0,
        network_marks: false,
    };
    // A closed pipe (`twofold list | head`) ends the listing quietly.
    let mut closed = false;
    with_daemon(async |p| {
        let mut after = String::new();
        loop {
            let answer = if filtered {
                p.find_users(prefix, &wanted, &after, LIST_PAGE).await
            } else {
                p.list_users_page(&after, LIST_PAGE).await
            };
            let (page, next) = match answer {
                Ok(r) => r,
                Err(e) if !filtered && after.is_empty() && unknown_method(&e) => {
                    (p.list_users().await?, String::new())
                }
                Err(e) => return Err(e),
            };
            for u in &page {
                if let Some(n) = statuses
                    .iter()
                    .position(|s| *s == u.status)
                    .and_then(|i| printer.counts.get_mut(i))
                {
                    *n += 1;
                }
            }
            if !closed && printer.rows(&mut out, &page).is_err() {
                closed = true;
            }
            printer.total += page.len();
            // A cursor that does not move on would never end.
            if next.is_empty() || page.is_empty() || next <= after {
                break;
            }
            after = next;
        }
        Ok(())
    })?;
    if closed {
        return Ok(());
    }
    let total = printer.total;
    let end = if json_out {
        let summary: serde_json::Map<String, serde_json::Value> = statuses
            .iter()
            .zip(printer.counts)
            .map(|(s, n)| (s.to_string(), json!(n)))
            .collect();
        if printer.widths.is_none() {
            // No row: the document's start was never printed.
            format!(
                "{{\n  \"users\": [],\n  \"summary\": {:#},\n  \"total\": 0\n}}\n",
                json!(summary)
            )
        } else {
            format!(
                "\n  ],\n  \"summary\": {:#},\n  \"total\": {total}\n}}\n",
                json!(summary)
            )
        }
    } else {
        let mut end = String::new();
        if printer.widths.is_none() {
            end.push_str(&printer.header(4, 8));
        }
        let parts: Vec<String> = statuses
            .iter()
            .zip(printer.counts)
            .map(|(s, n)| {
                let pct = (n * 100 + total / 2).checked_div(total).unwrap_or(0);
                format!("{n} {s} ({pct}%)")
            })
            .collect();
        end.push_str(&format!(
            "{total} user{}: {}\n",
            if total == 1 { "" } else { "s" },
            parts.join(", ")
        ));
        if printer.network_marks {
            end.push_str(&format!(
                "{NETWORK_MARK} another mode for logins from some networks: see twofold explain USER, or --json\n"
            ));
        }
        end
    };
    // Errors writing to stdout (a closed pipe) are not the daemon's: nothing to report.
    let _ = out.write_all(end.as_bytes());
    let _ = out.flush();
    Ok(())
}

/// Prints the rows of `twofold list` as they come.
struct ListPrinter {
    json: bool,
    paint: Paint,
    /// Column widths of the user and override columns, from the first page (longer values
    /// of later pages overflow their column rather than wait for the whole list).
    widths: Option<(usize, usize)>,
    counts: [usize; 5],
    total: usize,
    /// Some row was marked with [`NETWORK_MARK`] (the legend is printed at the end).
    network_marks: bool,
}

/// The mark of a user whose mode differs for logins from some network (`[networks."CIDR"]`).
const NETWORK_MARK: char = '~';

impl ListPrinter {
    fn header(&self, w_user: usize, w_ov: usize) -> String {
        format!(
            "{:<w_user$}  {:<8}  {:<w_ov$}  {:<10}  {:<4}  LAST LOGIN\n",
            "USER", "STATUS", "OVERRIDE", "ENROLLED", "AUTH"
        )
    }

    fn rows(&mut self, out: &mut impl Write, users: &[UserInfo]) -> std::io::Result<()> {
        if users.is_empty() {
            return Ok(());
        }
        let overrides: Vec<String> = users
            .iter()
            .map(|u| match (&u.override_mode, &u.override_by) {
                (Some(m), Some(by)) => format!("{m} by {by} {}", date(u.override_at)),
                _ => "-".into(),
            })
            .collect();
        let first = self.widths.is_none();
        let (w_user, w_ov) = *self.widths.get_or_insert_with(|| {
            (
                users.iter().map(|u| u.user.len()).max().unwrap_or(4).max(4),
                overrides.iter().map(String::len).max().unwrap_or(8).max(8),
            )
        });
        let mut text = String::new();
        if self.json {
            for (i, u) in users.iter().enumerate() {
                text.push_str(if first && i == 0 {
                    "{\n  \"users\": [\n    "
                } else {
                    ",\n    "
                });
                text.push_str(&u.to_json().to_string());
            }
        } else {
            if first {
                text.push_str(&self.header(w_user, w_ov));
            }
            for (u, ov) in users.iter().zip(&overrides) {
                let last = match (u.last_login, &u.last_login_from) {
                    (Some(t), Some(from)) => format!("{} from {from}", date(Some(t))),
                    (t, _) => date(t),
                };
                // A mark after the status: some network rule would change this user's mode.
                let mark = if u.networks.as_ref().is_some_and(|n| !n.is_empty()) {
                    self.network_marks = true;
                    NETWORK_MARK
                } else {
                    ' '
                };
                text.push_str(&format!(
                    "{:<w_user$}  {}{mark} {:<w_ov$}  {:<10}  {:<4}  {}\n",
                    u.user,
                    self.paint.status(&u.status, 8),
                    ov,
                    date(u.enrolled_at),
                    u.authenticators
                        .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                    last
                ));
            }
        }
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

/// The admin verbs on several users: every user is tried; the first failure decides the exit.
pub fn admin(verb: &str, users: &[String], json_out: bool) -> Result<(), CliError> {
    let mut first_err = None;
    let mut json_rows = Vec::new();
    // One connection for all the users.
    let results = with_daemon(async |p| {
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            out.push(match verb {
                "require" => p.require(user).await,
                "exempt" => p.exempt(user).await,
                "allow" => p.allow(user).await,
                "inherit" => p.clear_override(user).await,
                _ => p.reset(user).await,
            });
        }
        Ok(out)
    })?;
    for (user, r) in users.iter().zip(results) {
        match r.map_err(CliError::from_daemon) {
            Ok(info) => {
                if json_out {
                    json_rows.push(info.to_json());
                } else {
                    println!("{}: {}", info.user, sentence(&info, false));
                }
            }
            Err(e) => {
                if json_out {
                    json_rows
                        .push(json!({ "user": user, "error": e.kind(), "message": e.to_string() }));
                } else {
                    eprintln!("twofold: {user}: {e}");
                }
                first_err.get_or_insert(e);
            }
        }
    }
    if json_out {
        println!("{:#}", serde_json::Value::Array(json_rows));
    }
    match first_err {
        Some(e) => Err(CliError::Reported(Box::new(e))),
        None => Ok(()),
    }
}

fn mode_word(mode: DefaultMode) -> &'static str {
    match mode {
        DefaultMode::Required => "required",
        DefaultMode::Optional => "optional",
        DefaultMode::Disabled => "disabled",
    }
}

/// `twofold policy set-default MODE --dry-run`: what the daemon counts the change would do
/// (`PreviewDefaultMode`); nothing is changed.
pub fn preview_default(mode: DefaultMode, json_out: bool) -> Result<(), CliError> {
    let m = mode_word(mode);
    let p = with_daemon(async |p| p.preview_default_mode(m).await)?;
    if json_out {
        let mut v = p.to_json();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("mode".into(), json!(m));
        }
        println!("{v:#}");
        return Ok(());
    }
    let mut transitions: Vec<(&String, &u32)> = p.transitions.iter().collect();
    transitions.sort();
    let users = |n: u32| if n == 1 { "user" } else { "users" };
    println!(
        "Setting the account-wide default to {m} would change {} {} (of {}).",
        p.moved,
        users(p.moved),
        p.total
    );
    println!(
        "  now {}, from {}; the default decides {} {}, the others keep their mode",
        p.current,
        p.current_rule,
        p.by_default,
        users(p.by_default)
    );
    for (key, n) in transitions {
        let (from, to) = key.split_once('>').unwrap_or((key.as_str(), "?"));
        println!("  {from} → {to}: {n} {}", users(*n));
    }
    println!("Nothing was changed (--dry-run).");
    Ok(())
}

/// `twofold policy set-default MODE`.
///
/// After `required`, what `twofold doctor` finds goes to stderr: the paths on which the new
/// requirement would be skipped. It never fails the command.
pub fn set_default(mode: DefaultMode, g: &crate::cli::Global) -> Result<(), CliError> {
    let m = mode_word(mode);
    with_daemon(async |p| p.set_default_mode(m).await)?;
    println!("The account-wide default is now {m}.");
    if let DefaultMode::Required = mode {
        let _ = std::io::stdout().flush();
        crate::doctor::warn_after_require(&g.policy, &g.state);
    }
    Ok(())
}

/// Reads one line from stdin, without echo on a terminal. `None` at end of input.
fn read_secret_line(prompt: &str) -> Result<Option<Zeroizing<String>>, CliError> {
    let stdin = std::io::stdin();
    let saved = if stdin.is_terminal() {
        nix::sys::termios::tcgetattr(&stdin).ok()
    } else {
        None
    };
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet
            .local_flags
            .remove(nix::sys::termios::LocalFlags::ECHO);
        quiet
            .local_flags
            .insert(nix::sys::termios::LocalFlags::ECHONL);
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &quiet);
    }
    // The prompt only once echo is off, so that nothing typed after it shows.
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let line = read_line();
    if let Some(t) = &saved {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, t);
    }
    line
}

fn read_line() -> Result<Option<Zeroizing<String>>, CliError> {
    let mut line = Zeroizing::new(String::new());
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::System(format!("reading the code: {e}")))?;
    if n == 0 {
        return Ok(None);
    }
    let trimmed = Zeroizing::new(line.trim().to_owned());
    Ok(Some(trimmed))
}

/// The drawing `choice` asks for (`auto` resolved: black on white on a terminal that takes
/// colours, otherwise for a dark terminal, as before colours), or `None` for no QR code.
fn qr_drawing(choice: QrChoice) -> Option<Drawing> {
    match choice {
        QrChoice::Auto => {
            let colours = std::io::stdout().is_terminal()
                && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
                && std::env::var_os("NO_COLOR").is_none();
            Some(if colours {
                Drawing::BlackOnWhite
            } else {
                Drawing::ForDark
            })
        }
        QrChoice::Color => Some(Drawing::BlackOnWhite),
        QrChoice::Dark => Some(Drawing::ForDark),
        QrChoice::Light => Some(Drawing::ForLight),
        QrChoice::None => None,
    }
}

fn terminal_width() -> Option<usize> {
    if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size() {
        return Some(usize::from(w));
    }
    std::env::var("COLUMNS").ok()?.parse().ok()
}

fn group4(s: &str) -> String {
    s.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_recovery_codes(codes: &[String]) {
    println!();
    println!(
        "Your recovery codes. Each works once in place of a code, if you lose your phone. They are shown only now: print them or store them offline, not on the phone."
    );
    println!();
    for c in codes {
        println!("    {c}");
    }
    println!();
}

/// `twofold enroll`.
pub fn enroll(replace: bool, qr: QrChoice) -> Result<(), CliError> {
    // Replacing needs the current factor: a code from the old app, or a recovery code.
    let proof = if replace && with_daemon(async |p| p.get_status().await)?.enrolled {
        read_secret_line(
            "To replace your enrollment, a current code from the old app (or a recovery code): ",
        )?
        .ok_or_else(|| CliError::Refused("no code given: nothing changed".into()))?
    } else {
        Zeroizing::new(String::new())
    };
    let new = with_daemon(async |p| p.begin_enrollment(replace, &proof).await)?;
    drop(proof);
    println!("Setting up two-factor authentication for {}.", new.label);
    println!();
    present(&new, qr);
    let codes = confirm("nothing was set up")?;
    println!(
        "Two-factor authentication is now set up: every login will ask for a code from the app."
    );
    print_recovery_codes(&codes);
    Ok(())
}

/// Shows a pending secret: the QR code drawn as `qr` asks (when the terminal is wide enough),
/// the key, the URI, the account, how long it waits.
pub(crate) fn present(new: &twofold_enrolld::api::NewEnrollment, qr: QrChoice) {
    let secret = Zeroizing::new(new.secret.clone());
    let drawing = qr_drawing(qr);
    let code = drawing.and_then(|d| twofold_policy::qr::draw(&new.uri, d));
    let apps = "an authenticator app (Aegis, FreeOTP, Google Authenticator, ...)";
    let shown = match (code, terminal_width()) {
        (Some(code), Some(cols)) if cols < code.columns => {
            println!(
                "Your terminal is {cols} columns wide and the QR code needs {}: widen it and run `twofold enroll` again to scan, or add the account in {apps} by hand:",
                code.columns
            );
            false
        }
        (Some(code), _) => {
            println!("Scan this QR code with {apps}:");
            println!("{}", code.text.as_str());
            if qr == QrChoice::Auto && drawing == Some(Drawing::ForDark) {
                println!(
                    "(Drawn for a dark terminal. On a light one, run `twofold enroll --qr light`.)"
                );
            }
            true
        }
        (None, _) => {
            println!("Add the account in {apps}:");
            false
        }
    };
    let key_label = if shown {
        "Or enter the key by hand:"
    } else {
        "Enter the key by hand:"
    };
    println!("{key_label:<26} {}", group4(&secret));
    println!("{:<26} {}", "Or open this URI:", new.uri);
    println!("{:<26} {}", "Account:", new.label);
    println!(
        "(This setup waits {} for the code.)",
        humantime::format_duration(std::time::Duration::from_secs(new.expires_in))
    );
    println!();
    let _ = std::io::stdout().flush();
}

/// Asks codes from the app until the daemon confirms the pending secret (or the attempts run
/// out); what the confirmation returns (recovery codes for a new enrollment, none for an added
/// authenticator). No code given cancels it, with `nothing` as the message.
pub(crate) fn confirm(nothing: &str) -> Result<Zeroizing<Vec<String>>, CliError> {
    loop {
        let Some(code) = read_secret_line("Code from the app: ")? else {
            let _ = with_daemon(async |p| p.cancel_enrollment().await);
            return Err(CliError::Refused(format!("no code given: {nothing}")));
        };
        match with_daemon(async |p| p.confirm_enrollment(&code).await) {
            Ok(codes) => return Ok(Zeroizing::new(codes)),
            Err(CliError::Refused(m)) if m.contains("attempts left") => {
                eprintln!("{m}");
            }
            Err(e) => return Err(e),
        }
    }
}

/// Asks the current code (or a recovery code) that proves the caller holds the second factor.
pub(crate) fn ask_proof() -> Result<Zeroizing<String>, CliError> {
    read_secret_line("Current code from the app (or a recovery code): ")?
        .ok_or_else(|| CliError::Refused("no code given: nothing changed".into()))
}

/// `twofold disable`.
pub fn disable(json_out: bool) -> Result<(), CliError> {
    // Ask the daemon first whether it may be done at all, before asking for a code.
    let info = with_daemon(async |p| p.get_status().await)?;
    if !info.enrolled {
        return Err(CliError::Refused(
            "2FA is not set up for you: nothing to disable".into(),
        ));
    }
    if info.mode == "required" {
        return Err(CliError::Refused(format!(
            "2FA is required for you ({}): only an administrator can exempt you",
            info.rule
        )));
    }
    let code = ask_proof()?;
    let info = with_daemon(async |p| p.disable(&code).await)?;
    if json_out {
        println!("{:#}", info.to_json());
    } else {
        println!("2FA is now off for you: logins ask for no code.");
    }
    Ok(())
}

/// `twofold recovery-codes`.
pub fn recovery_codes(json_out: bool) -> Result<(), CliError> {
    let code = ask_proof()?;
    let codes = Zeroizing::new(with_daemon(async |p| {
        p.regenerate_recovery_codes(&code).await
    })?);
    if json_out {
        println!("{:#}", json!({ "recovery_codes": codes }));
    } else {
        println!("New recovery codes; the old ones no longer work.");
        print_recovery_codes(&codes);
    }
    Ok(())
}
