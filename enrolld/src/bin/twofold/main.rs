//! `twofold`: the command line of twofold.
#![forbid(unsafe_code)]

mod authenticators;
mod cli;
mod client;
mod doctor;
/// The daemon's command line, for its man page.
#[path = "../twofold-enrolld/cli.rs"]
#[allow(dead_code)]
mod enrolld_cli;
mod error;
mod import;
/// The verification service's command line, for its man page.
#[path = "../twofold-verifyd/cli.rs"]
#[allow(dead_code)]
mod verifyd_cli;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use serde_json::json;
use twofold_policy::config::store::{Backend, Bind, StoreConfig};
use twofold_policy::config::{Policy, RuleEntry, Source};
use twofold_policy::net::Network;
use twofold_policy::resolve::{RecordFacts, Resolution, Rule, Subject, network_differences};
use twofold_policy::store::{Store, StoreError};
use twofold_policy::{Status, UserName, system, time};

use cli::{Cli, Command, ImportCommand, PolicyCommand};
use error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_out = cli.global.json;
    let result = match &cli.command {
        Command::Policy(PolicyCommand::Check { file }) => {
            policy_check(&cli.global, file.as_deref())
        }
        Command::Policy(PolicyCommand::SetDefault {
            mode,
            dry_run: true,
        }) => client::preview_default(*mode, json_out),
        Command::Policy(PolicyCommand::SetDefault {
            mode,
            dry_run: false,
        }) => client::set_default(*mode, &cli.global),
        Command::Explain {
            user,
            service,
            from,
        } => explain(&cli.global, user, service.as_deref(), from.as_deref()),
        Command::Enroll { replace, qr } => client::enroll(*replace, *qr),
        Command::Status { user } => client::status(user.as_deref(), json_out),
        Command::Disable => client::disable(json_out),
        Command::RecoveryCodes => client::recovery_codes(json_out),
        Command::Authenticator(c) => authenticators::run(c, json_out),
        Command::List { prefix, status } => client::list(prefix.as_deref(), status, json_out),
        Command::Require { users } => client::admin("require", users, json_out),
        Command::Exempt { users } => client::admin("exempt", users, json_out),
        Command::Allow { users } => client::admin("allow", users, json_out),
        Command::Inherit { users } => client::admin("inherit", users, json_out),
        Command::Reset { users } => client::admin("reset", users, json_out),
        Command::Import(ImportCommand::GoogleAuthenticator {
            users,
            all,
            dry_run,
            add,
        }) => import::import_google_authenticator(users, *all, *dry_run, *add, json_out),
        Command::Import(ImportCommand::Oath { file, dry_run, add }) => {
            import::import_oath(file, *dry_run, *add, json_out)
        }
        Command::Doctor {
            pam_dir,
            sshd_config,
            sshd,
            cockpit_conf,
            krb5_keytab,
            passwd,
        } => doctor(
            &cli.global,
            doctor::Options {
                pam_dir: pam_dir.clone(),
                sshd_config: sshd_config.clone(),
                sshd: sshd.clone(),
                cockpit_conf: cockpit_conf.clone(),
                krb5_keytab: krb5_keytab.clone(),
                policy: cli.global.policy.clone(),
                state: cli.global.state.clone(),
                passwd: passwd.clone(),
            },
        ),
        Command::GenerateAssets { dir } => generate_assets(dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Reported(e)) => ExitCode::from(e.exit_code()),
        Err(CliError::Found(code)) => ExitCode::from(code),
        Err(e) => {
            if json_out {
                match &e {
                    CliError::Policy(p) => println!("{}", policy_error_json(p)),
                    _ => println!(
                        "{:#}",
                        json!({ "error": e.kind(), "message": e.to_string() })
                    ),
                }
            }
            eprintln!("twofold: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn policy_error_json(e: &twofold_policy::PolicyError) -> serde_json::Value {
    json!({
        "valid": false,
        "error": {
            "file": e.file,
            "line": e.position.map(|p| p.0),
            "column": e.position.map(|p| p.1),
            "message": e.message,
        }
    })
}

/// Loads the policy the login path would load.
fn load_policy(g: &cli::Global) -> Result<Policy, CliError> {
    Policy::load_system(&g.policy).map_err(CliError::Policy)
}

fn source_json(s: &Source) -> serde_json::Value {
    json!({ "table": s.table, "file": s.file, "line": s.line })
}

fn rules_of<'a>(p: &'a Policy) -> impl Iterator<Item = (&'static str, String, &'a RuleEntry)> {
    let tag =
        |kind: &'static str| move |(name, r): (&'a String, &'a RuleEntry)| (kind, name.clone(), r);
    p.users
        .iter()
        .map(tag("user"))
        .chain(
            p.networks
                .iter()
                .map(|(n, r)| ("network", n.to_string(), r)),
        )
        .chain(p.groups.iter().map(tag("group")))
        .chain(p.services.iter().map(tag("service")))
}

/// What `policy check` warns about in the network rules (none is an error): a rule that turns
/// 2FA off for all of IPv4 or IPv6, or for a network holding the loopback address, where
/// every login relayed by a local proxy comes from.
fn network_warnings(p: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    for (net, r) in &p.networks {
        if r.mode != twofold_policy::Mode::Disabled {
            continue;
        }
        if net.is_everything() {
            out.push(format!(
                "{} disables 2FA for every {} login with a remote address: is that meant? (only users' own rules and overrides still count)",
                r.source,
                if net.addr().is_ipv4() { "IPv4" } else { "IPv6" }
            ));
        } else if net.holds_loopback() {
            out.push(format!(
                "{} disables 2FA for {}, which holds the loopback address {}: logins relayed by a local proxy (Cockpit behind a reverse proxy, an sshd jump host on this machine) come from there and would skip the code",
                r.source,
                net,
                if net.addr().is_ipv4() { "127.0.0.1" } else { "::1" }
            ));
        }
    }
    out
}

/// `[store]` in one line: the backend, the directory and offline copies, where it was set.
fn store_summary(s: &StoreConfig) -> String {
    let mut out = s.backend.to_string();
    if let (Backend::Ldap, Some(l)) = (s.backend, &s.ldap) {
        out.push_str(&format!(" {}, base {}", l.uris.join(" then "), l.base));
        if s.offline.enabled {
            out.push_str(&format!(", offline copies for {}", s.offline.max_age));
        }
    }
    match s.sources.get("backend") {
        Some(p) => format!("{out} ({}:{})", p.file.display(), p.line),
        None => format!("{out} (built-in default)"),
    }
}

fn store_json(s: &StoreConfig) -> serde_json::Value {
    json!({
        "backend": s.backend.as_str(),
        "ldap": s.ldap.as_ref().map(|l| json!({
            "uris": l.uris,
            "base": l.base,
            "bind_dn": match &l.bind { Bind::Simple { dn, .. } => Some(dn), Bind::SaslExternal => None },
            "starttls": l.starttls,
            "timeout_ms": u64::try_from(l.timeout.as_millis()).unwrap_or(u64::MAX),
            "link_oath_users": l.link_oath_users,
        })),
        "offline": { "enabled": s.offline.enabled, "max_age_seconds": s.offline.max_age.secs() },
    })
}

fn where_set<T>(s: &twofold_policy::config::Setting<T>) -> String {
    match &s.source {
        Some(src) => format!("{}:{}", src.file.display(), src.line),
        None => "built-in default".into(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn policy_check(g: &cli::Global, file: Option<&Path>) -> Result<(), CliError> {
    let policy = match file {
        Some(f) => {
            let text = twofold_policy::config::read_for_check(f).map_err(CliError::Policy)?;
            Policy::parse_one(f, &text).map_err(CliError::Policy)?
        }
        None => load_policy(g)?,
    };
    if g.json {
        let rules: Vec<_> = rules_of(&policy)
            .map(|(kind, name, r)| json!({ "kind": kind, "name": name, "mode": r.mode.as_str(), "source": source_json(&r.source) }))
            .collect();
        let networks: Vec<_> = policy
            .networks
            .iter()
            .map(|(n, r)| json!({ "network": n.to_string(), "mode": r.mode.as_str(), "source": source_json(&r.source) }))
            .collect();
        let at_login_from: Option<Vec<String>> = policy
            .enrollment
            .at_login_from
            .as_ref()
            .map(|l| l.iter().map(|o| o.to_string()).collect());
        let out = json!({
            "valid": true,
            "files": policy.files,
            "mode": policy.mode.value.as_str(),
            "mode_source": policy.mode.source.as_ref().map(source_json),
            "admin_group": policy.admin_group.value,
            "enrollment": {
                "at_login": policy.enrollment.at_login,
                "grace_period_seconds": policy.enrollment.grace_period.secs(),
                "issuer": policy.enrollment.issuer,
                "recovery_codes": policy.enrollment.recovery_codes,
                "at_login_from": at_login_from,
                "qr": policy.enrollment.qr.as_str(),
            },
            "totp": {
                "algorithm": policy.totp.params.algorithm.as_str(),
                "digits": policy.totp.params.digits,
                "period": policy.totp.params.period,
                "window": policy.totp.window,
            },
            "rules": rules,
            "networks": networks,
            "store": store_json(&policy.store),
            "warnings": network_warnings(&policy).into_iter().chain(policy.store.warnings()).collect::<Vec<_>>(),
        });
        println!("{out:#}");
        return Ok(());
    }
    let mut o = String::new();
    let files: Vec<String> = policy
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    o.push_str(&format!("policy OK: {}\n", files.join(", ")));
    o.push_str(&format!(
        "  default mode   {} ({})\n",
        policy.mode.value,
        where_set(&policy.mode)
    ));
    o.push_str(&format!(
        "  admin group    {} ({})\n",
        policy.admin_group.value,
        where_set(&policy.admin_group)
    ));
    let e = &policy.enrollment;
    o.push_str(&format!(
        "  enrollment     {}, grace period {}, {}{}{}\n",
        match (&e.at_login_from, e.at_login) {
            (_, false) => "not at login".to_owned(),
            (None, true) => "at login allowed".to_owned(),
            (Some(l), true) => format!(
                "at login from {}",
                l.iter()
                    .map(|o| o.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        },
        e.grace_period,
        plural(e.recovery_codes as usize, "recovery code", "recovery codes"),
        e.issuer
            .as_ref()
            .map(|i| format!(", issuer {i:?}"))
            .unwrap_or_default(),
        match e.qr {
            twofold_policy::qr::LoginQr::Dark => "",
            twofold_policy::qr::LoginQr::Light => ", QR code at login for light terminals",
            twofold_policy::qr::LoginQr::None => ", no QR code at login",
        }
    ));
    let t = &policy.totp;
    o.push_str(&format!(
        "  codes          {}, {} digits, {}s steps, window ±{}\n",
        t.params.algorithm, t.params.digits, t.params.period, t.window
    ));
    o.push_str(&format!(
        "  store          {}\n",
        store_summary(&policy.store)
    ));
    let (u, gr, s, n) = (
        policy.users.len(),
        policy.groups.len(),
        policy.services.len(),
        policy.networks.len(),
    );
    o.push_str(&format!(
        "  rules          {}, {}, {}{}\n",
        plural(u, "user", "users"),
        plural(gr, "group", "groups"),
        plural(s, "service", "services"),
        if n == 0 {
            String::new()
        } else {
            format!(", {}", plural(n, "network", "networks"))
        }
    ));
    let width = rules_of(&policy)
        .map(|(_, _, r)| r.source.table.len())
        .max()
        .unwrap_or(0);
    for (_, _, r) in rules_of(&policy) {
        o.push_str(&format!(
            "    {:<width$}  {:<8}  {}:{}\n",
            r.source.table,
            r.mode.as_str(),
            r.source.file.display(),
            r.source.line
        ));
    }
    for w in network_warnings(&policy)
        .into_iter()
        .chain(policy.store.warnings())
    {
        o.push_str(&format!("warning: {w}\n"));
    }
    print!("{o}");
    let _ = std::io::stdout().flush();
    Ok(())
}

/// A sentence a person understands for a status.
fn describe(res: &Resolution, policy: &Policy, now: u64) -> String {
    match res.status {
        Status::Enforced => "2FA is required and set up: every login asks for a code".into(),
        Status::Enabled => "2FA is set up by choice: every login asks for a code".into(),
        Status::Off => "2FA is optional and not set up: logins ask for no code".into(),
        Status::Exempt => "2FA is disabled for this user: logins ask for no code".into(),
        Status::Pending => {
            let grace = policy.enrollment.grace_period;
            if res.starts_grace {
                if policy.enrollment.at_login && grace.secs() > 0 {
                    format!(
                        "2FA is required and not set up: the next login sets it up; the grace period of {grace} starts then"
                    )
                } else if grace.secs() > 0 {
                    format!(
                        "2FA is required and not set up: they must run `twofold enroll` within {grace} of their next login"
                    )
                } else {
                    "2FA is required and not set up, with no grace period: logins are refused until it is set up".into()
                }
            } else if res.in_grace(now) {
                let until = res.deadline.map(time::human).unwrap_or_default();
                if policy.enrollment.at_login {
                    format!(
                        "2FA is required and not set up: the next login sets it up, before {until}"
                    )
                } else {
                    format!(
                        "2FA is required and not set up: they must run `twofold enroll` before {until}"
                    )
                }
            } else {
                let since = res.deadline.map(time::human).unwrap_or_default();
                format!(
                    "2FA is required and not set up, and the grace period ended on {since}: logins are refused until an admin resets or exempts them"
                )
            }
        }
    }
}

fn rule_json(rule: &Rule) -> serde_json::Value {
    match rule {
        Rule::Override { by, at } => {
            json!({ "kind": "override", "by": by, "at": time::rfc3339(*at) })
        }
        Rule::User(s) | Rule::Default(s) => {
            json!({ "kind": rule.kind(), "source": source_json(s) })
        }
        Rule::Network(n, s) => {
            json!({ "kind": rule.kind(), "network": n.to_string(), "source": source_json(s) })
        }
        Rule::Group(n, s) | Rule::Service(n, s) => {
            json!({ "kind": rule.kind(), "name": n, "source": source_json(s) })
        }
        Rule::BuiltinDefault => json!({ "kind": "default", "source": null }),
    }
}

fn explain(
    g: &cli::Global,
    user: &str,
    service: Option<&str>,
    from: Option<&str>,
) -> Result<(), CliError> {
    let typed = UserName::parse(user).map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(s) = service {
        twofold_policy::config::check_service_name(s)
            .map_err(|_| CliError::Usage(format!("invalid service name {s:?}")))?;
    }
    let account = system::lookup(typed.as_str())
        .map_err(|e| CliError::System(e.to_string()))?
        .ok_or_else(|| CliError::UnknownUser(user.to_owned()))?;
    // The account decides, under its canonical name: an alias explains as its account.
    let name = UserName::parse(&account.name).map_err(|e| CliError::Usage(e.to_string()))?;
    let policy = load_policy(g)?;
    let mut note = None;
    let record = match Store::open(&g.state) {
        // The backend the policy chose (a directory: read there).
        Ok(store) => twofold_policy::store::open_backend(std::sync::Arc::new(store), &policy)
            .and_then(|b| b.read_record(&name))
            .map_err(|e| CliError::System(e.to_string()))?,
        Err(StoreError::Missing(p)) => {
            note = Some(format!(
                "{} does not exist: nobody is enrolled yet",
                p.display()
            ));
            None
        }
        Err(e) => {
            let hint = if nix::unistd::geteuid().is_root() {
                ""
            } else {
                " (enrollments and overrides are readable by root only)"
            };
            return Err(CliError::System(format!("{e}{hint}")));
        }
    };
    let facts = RecordFacts::of(record.as_ref());
    let authenticators: Vec<&str> = record
        .as_ref()
        .and_then(|r| r.enrollment.as_ref())
        .map(|e| e.authenticators.iter().map(|a| a.name.as_str()).collect())
        .unwrap_or_default();
    let now = time::now();
    // An alias's session has its own line's groups too: the stricter outcome stands.
    let res = twofold_policy::login::resolve_login(
        &policy,
        &account,
        service,
        from.unwrap_or(""),
        &facts,
        now,
    );
    let sentence = describe(&res, &policy, now);
    // The address --from names, if it is one (as the login path reads PAM_RHOST).
    let from_addr = from.and_then(twofold_policy::net::rhost_addr);
    let from_note = match (from, from_addr) {
        (Some(f), None) => Some(format!(
            "{f:?} is not an IP address: a login whose remote host is this name (sshd's UseDNS yes) is in no network"
        )),
        _ => None,
    };
    // Without --from: the network rules under which a login would get another mode.
    let differences: Vec<(Network, twofold_policy::Mode)> = if from.is_some() {
        Vec::new()
    } else {
        let subject = Subject {
            user: &account.name,
            groups: &account.groups,
            service,
            from: None,
        };
        network_differences(&policy, &subject, facts.admin_override)
    };
    if g.json {
        let out = json!({
            "user": account.name,
            "typed_as": account.typed.as_ref().map(|t| &t.name),
            "uid": account.uid,
            "groups": account.groups,
            "typed_groups": account.typed.as_ref().map(|t| &t.groups),
            "service": service,
            "mode": res.mode.as_str(),
            "status": res.status.as_str(),
            "enrolled": facts.enrolled,
            "authenticators": facts.enrolled.then_some(&authenticators),
            "deadline": res.deadline.filter(|_| !res.starts_grace).map(time::rfc3339),
            "grace_starts_at_next_login": res.starts_grace,
            "rule": rule_json(&res.rule),
            "explanation": sentence,
            "from": from,
            "from_address": from_addr.map(|a| a.to_string()),
            "networks": differences
                .iter()
                .map(|(n, m)| json!({ "network": n.to_string(), "mode": m.as_str() }))
                .collect::<Vec<_>>(),
        });
        println!("{out:#}");
    } else {
        let groups = if account.groups.is_empty() {
            "(none)".to_owned()
        } else {
            account.groups.join(", ")
        };
        match account.typed.as_ref().map(|t| &t.name) {
            Some(t) => println!(
                "user      {} (uid {}; {t:?} is another name for this account)",
                account.name, account.uid
            ),
            None => println!("user      {} (uid {})", account.name, account.uid),
        }
        println!("groups    {groups}");
        if let Some(t) = account.typed.as_ref().map(|t| &t.name) {
            let extra: Vec<&str> = account
                .typed_groups()
                .iter()
                .filter(|g| !account.groups.contains(g))
                .map(String::as_str)
                .collect();
            if !extra.is_empty() {
                println!("          and, logged in as {t:?}: {}", extra.join(", "));
            }
        }
        println!("service   {}", service.unwrap_or("(any)"));
        match (from, from_addr) {
            (None, _) => {}
            (Some(_), Some(a)) => println!("from      {a}"),
            (Some(f), None) => println!("from      {f:?} (a host name: in no network)"),
        }
        println!("mode      {}", res.mode);
        println!("status    {}: {sentence}", res.status);
        println!("rule      {}", res.rule);
        for (n, m) in &differences {
            println!("network   from {n}: {m} (twofold explain {user} --from ADDRESS)");
        }
        if facts.enrolled {
            println!(
                "enrolled  {} authenticator{}: {}",
                authenticators.len(),
                if authenticators.len() == 1 { "" } else { "s" },
                authenticators
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if let Some(n) = from_note {
        eprintln!("note: {n}");
    }
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    Ok(())
}

/// `twofold doctor`: prints the findings (text or JSON); the worst decides the exit status.
fn doctor(g: &cli::Global, opts: doctor::Options) -> Result<(), CliError> {
    let report = doctor::check(&opts);
    if g.json {
        println!("{:#}", report.to_json());
    } else {
        print!("{}", report.to_text(true));
    }
    let _ = std::io::stdout().flush();
    match report.exit_code() {
        0 => Ok(()),
        code => Err(CliError::Found(code)),
    }
}

/// Man pages (`twofold.1`, `twofold-SUBCOMMAND.1`, `twofold-enrolld.8`) and completions for
/// bash, zsh and fish, into `dir/man` and `dir/completions`.
fn generate_assets(dir: &Path) -> Result<(), CliError> {
    use clap::CommandFactory;
    let io = |e: std::io::Error| CliError::System(format!("{}: {e}", dir.display()));
    let man = dir.join("man");
    let comp = dir.join("completions");
    std::fs::create_dir_all(&man).map_err(io)?;
    std::fs::create_dir_all(&comp).map_err(io)?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd.clone(), &man).map_err(io)?;
    let daemon = enrolld_cli::Args::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(daemon)
        .section("8")
        .render(&mut page)
        .map_err(io)?;
    std::fs::write(man.join("twofold-enrolld.8"), page).map_err(io)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(verifyd_cli::Args::command())
        .section("8")
        .render(&mut page)
        .map_err(io)?;
    std::fs::write(man.join("twofold-verifyd.8"), page).map_err(io)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "twofold", &comp).map_err(io)?;
    }
    Ok(())
}
