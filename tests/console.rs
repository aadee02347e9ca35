//! The admin console (`packaging/cockpit/twofold`) in a real browser: a real `cockpit-ws` in a
//! private mount namespace, its PAM login asking the password then the built `pam_twofold.so`,
//! a private bus with the real daemon, a headless Chromium driven through WebDriver
//! (`tests/console/browser.py`). What the page shows is checked against the daemon (the
//! `twofold` CLI, `Summary` through busctl); what it does is checked in the records afterwards.
//! Needs root, as CI runs. `TWOFOLD_SCREENSHOTS=1` writes the screenshots to `docs/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod console_rig;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use console_rig::*;
use serde_json::{Value, json};
use twofold_system_tests::{root_or_skip, workspace};

/// user → status of the rows a `rows` answer holds.
fn statuses(rows: &Value) -> BTreeMap<String, String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// "This changes N users (of T)." → N.
fn changes(dialog: &Value) -> u64 {
    let intro = dialog["intro"].as_str().unwrap();
    intro
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {intro:?}"))
}

/// The users whose status differs between two `twofold list` readings (of the same users):
/// how many, and the dialog's lines for them (`"Off → Pending: 3 users"`, by `from>to`).
fn transitions(
    before: &BTreeMap<String, Value>,
    after: &BTreeMap<String, Value>,
) -> (u64, Vec<String>) {
    let mut by: BTreeMap<String, (String, String, u64)> = BTreeMap::new();
    for (user, row) in before {
        let (from, to) = (
            row["status"].as_str().unwrap(),
            after[user]["status"].as_str().unwrap(),
        );
        if from != to {
            by.entry(format!("{from}>{to}"))
                .or_insert_with(|| (from.to_owned(), to.to_owned(), 0))
                .2 += 1;
        }
    }
    let word = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    let lines = by
        .values()
        .map(|(from, to, n)| {
            format!(
                "{} → {}: {n} user{}",
                word(from),
                word(to),
                if *n == 1 { "" } else { "s" }
            )
        })
        .collect();
    (by.values().map(|(_, _, n)| n).sum(), lines)
}

/// Sets the default to `mode` from the page: the confirmation, cancelled, changes nothing;
/// confirmed, its count is exactly the users whose status then changed (`twofold list`
/// before and after) and its lines are their transitions. Done again (the default set back
/// first) when an account elsewhere on the host came or went between the readings. Returns
/// the count.
fn set_default(b: &mut Browser, sb: &Sandbox, mode: &str) -> u64 {
    for attempt in 0.. {
        let before = sb.list();
        let was = sb.cli(&["--json", "policy", "set-default", mode, "--dry-run"]);
        let was: Value = serde_json::from_slice(&was.stdout).unwrap();
        let shown =
            b.cmd(json!({"op": "default", "mode": mode, "confirm": false}))["dialog"].clone();
        let unchanged = sb.list();
        let done = b.cmd(json!({"op": "default", "mode": mode, "confirm": true}))["dialog"].clone();
        let after = sb.list();
        if before.keys().ne(after.keys()) || before.keys().ne(unchanged.keys()) {
            assert!(attempt < 3, "the host's accounts keep changing");
            sb.cli(&["policy", "set-default", was["current"].as_str().unwrap()]);
            continue;
        }
        assert_eq!(
            unchanged, before,
            "the cancelled confirmation changed a row"
        );
        let (moved, lines) = transitions(&before, &after);
        assert_eq!(changes(&shown), moved, "{shown}");
        assert_eq!(changes(&done), moved, "{done}");
        assert_eq!(done["items"], json!(lines), "{done}");
        assert!(
            done["intro"]
                .as_str()
                .unwrap()
                .ends_with(&format!("(of {}).", before.len())),
            "{done}"
        );
        assert!(
            done["note"]
                .as_str()
                .unwrap()
                .starts_with("Counted by the daemon from the policy"),
            "{done}"
        );
        return moved;
    }
    unreachable!()
}

/// The chart against `Summary`, read at the same moment (again after a reload when a host
/// account came or went meanwhile, which signals nothing).
fn chart_matches_summary(b: &mut Browser, sb: &Sandbox) -> Value {
    for attempt in 0.. {
        let chart = b.cmd(json!({"op": "chart"}))["chart"].clone();
        let summary = sb.summary();
        let total = summary["total"];
        let expected: Vec<Value> = ["pending", "enforced", "enabled", "off", "exempt"]
            .iter()
            .map(|s| {
                json!({
                    "status": s,
                    "count": summary[*s].to_string(),
                    "percent": format!("{:.1} %", 100.0 * summary[*s] as f64 / total as f64),
                })
            })
            .collect();
        if chart == Value::Array(expected.clone()) {
            return chart;
        }
        assert!(attempt < 3, "chart {chart} but Summary {summary:?}");
        b.cmd(json!({"op": "open"}));
    }
    unreachable!()
}

fn screenshot_path(scratch: &std::path::Path, name: &str) -> PathBuf {
    if std::env::var_os("TWOFOLD_SCREENSHOTS").is_some_and(|v| v == "1") {
        workspace().join("docs").join(name)
    } else {
        scratch.join(name)
    }
}

#[test]
fn the_console_in_a_browser_admin_and_user() {
    if !root_or_skip() {
        return;
    }
    let started = Instant::now();
    let tag = std::process::id() % 100_000;
    // Declared first: dropped last, after the browser and cockpit-ws are gone.
    let group = Group::create(&format!("tfc{tag}adm"));
    let admin = Account::create(&format!("tfc{tag}admin"), &[&group.0]);
    let user = Account::create(&format!("tfc{tag}user"), &[]);
    let req = Account::create(&format!("tfc{tag}req"), &[]);
    let exm = Account::create(&format!("tfc{tag}exm"), &[]);
    let opt = Account::create(&format!("tfc{tag}opt"), &[]);
    let sudoer = Account::create(&format!("tfu{tag}sudo"), &[]);
    let prefix = format!("tfc{tag}");
    let policy = format!(
        "mode = \"optional\"\nadmin_group = \"{g}\"\n[enrollment]\nat_login = true\nrecovery_codes = 5\n\
         [groups.{g}]\nmode = \"required\"\n[users.{r}]\nmode = \"required\"\n[users.{e}]\nmode = \"disabled\"\n",
        g = group.0,
        r = req.name,
        e = exm.name
    );
    let sb = Sandbox::start_with(
        &policy,
        &Options {
            sudoer: Some(sudoer.name.clone()),
            ..Options::default()
        },
    );
    let admin_key = sb.enroll(&admin.name);
    sb.enroll(&opt.name);
    let scratch = sb.dir().join("browser");
    std::fs::create_dir(&scratch).unwrap();
    let base = format!("http://127.0.0.1:{}", sb.port);

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut b = Browser::start(&base, &scratch);

        // The admin: the password, then the code from oathtool in Cockpit's second step.
        fresh_step_within(10);
        let login = b.cmd(
            json!({"op": "login", "user": admin.name, "password": admin.password,
                                 "code": oathtool(&admin_key)}),
        );
        assert_eq!(login["logged_in"], true, "{login}");
        assert!(
            login["prompt"]
                .as_str()
                .unwrap()
                .contains("Verification code"),
            "{login}"
        );
        let page = b.cmd(json!({"op": "open"}));
        assert_eq!(page["view"], "admin", "{page}");
        eprintln!(
            "admin page ready in {:.2} s",
            page["seconds"].as_f64().unwrap()
        );

        // The same statuses as `twofold list --json` (this test's accounts: others may come
        // and go on the host meanwhile).
        let shown = b.cmd(json!({"op": "search", "text": prefix, "query": format!("{prefix}|")}));
        let cli: BTreeMap<String, Value> = sb
            .list()
            .into_iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .collect();
        let cli_statuses: BTreeMap<String, String> = cli
            .iter()
            .map(|(n, u)| (n.clone(), u["status"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(statuses(&shown["rows"]), cli_statuses);
        assert_eq!(cli_statuses.len(), 5);
        let seen: std::collections::BTreeSet<&str> =
            cli_statuses.values().map(String::as_str).collect();
        assert_eq!(seen.len(), 5, "every status once: {cli_statuses:?}");
        for row in shown["rows"].as_array().unwrap() {
            let u = &cli[row["user"].as_str().unwrap()];
            assert_eq!(row["icon"], u["status"], "{row}");
            assert_eq!(row["cells"][4], u["rule"], "{row}");
        }
        b.cmd(json!({"op": "screenshot", "path": screenshot_path(&scratch, "console-users.png")}));

        // Sorting orders the loaded rows, and says so.
        let order = ["pending", "enforced", "enabled", "off", "exempt"];
        let rank = |rows: &Value| -> Vec<usize> {
            rows.as_array()
                .unwrap()
                .iter()
                .map(|r| order.iter().position(|s| r["status"] == *s).unwrap())
                .collect()
        };
        let sorted = b.cmd(json!({"op": "sort", "key": "status"}));
        let ranks = rank(&sorted["rows"]);
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{sorted}");
        assert!(
            sorted["note"].as_str().unwrap().contains("loaded rows"),
            "{sorted}"
        );
        let reversed = b.cmd(json!({"op": "sort", "key": "status"}));
        let ranks = rank(&reversed["rows"]);
        assert!(ranks.windows(2).all(|w| w[0] >= w[1]), "{reversed}");
        b.cmd(json!({"op": "sort", "key": "user"}));

        // Pages: more users than a page, as records of names no account has (the daemon lists
        // them too; written after the screenshot, which shows the test's own users): the
        // first 100 of the 101, then the rest through the cursor.
        let many = format!("tfp{tag}x");
        for i in 0..101 {
            sb.enroll(&format!("{many}{i:03}"));
        }
        let first = b.cmd(json!({"op": "search", "text": many, "query": format!("{many}|")}));
        assert_eq!(first["rows"].as_array().unwrap().len(), 100);
        let all = b.cmd(json!({"op": "more"}));
        let want: Vec<String> = sb
            .list()
            .into_keys()
            .filter(|n| n.starts_with(&many))
            .collect();
        assert_eq!(want.len(), 101);
        assert_eq!(statuses(&all["rows"]).into_keys().collect::<Vec<_>>(), want);
        b.cmd(json!({"op": "search", "text": prefix, "query": format!("{prefix}|")}));

        // The status filter asks the daemon for those statuses only.
        let pending = b.cmd(
            json!({"op": "filter", "status": "pending", "query": format!("{prefix}|pending")}),
        );
        assert_eq!(
            statuses(&pending["rows"]),
            cli_statuses
                .iter()
                .filter(|(_, s)| *s == "pending")
                .map(|(n, s)| (n.clone(), s.clone()))
                .collect()
        );
        b.cmd(json!({"op": "filter", "status": "pending", "query": format!("{prefix}|")}));

        // A name that is markup stays text: nothing injected, nothing run.
        for evil in [
            "<img src=x onerror=\"window.__tfpwned=1\">",
            "../x",
            "a\"'><b>",
        ] {
            let r = b.cmd(json!({"op": "search", "text": evil, "query": format!("{evil}|")}));
            assert_eq!(r["rows"], json!([]), "{r}");
            let injected = b.cmd(json!({"op": "js", "script":
                "return [window.__tfpwned === undefined, document.querySelectorAll('#tf-admin img, #tf-admin b').length]"}));
            assert_eq!(injected["value"], json!([true, 0]), "{evil}");
        }
        b.cmd(json!({"op": "search", "text": prefix, "query": format!("{prefix}|")}));

        // Require from the page: the confirmation says for whom, from what to what; the record
        // has the override, set by the admin.
        let r = b.cmd(json!({"op": "action", "user": user.name, "action": "require"}));
        assert_eq!(
            r["dialog"]["items"],
            json!([format!(
                "{}: Off → Pending (override: none → required)",
                user.name
            )]),
            "{r}"
        );
        let u = &sb.list()[&user.name];
        assert_eq!(
            (&u["status"], &u["override_mode"], &u["override_by"]),
            (&json!("pending"), &json!("required"), &json!(admin.name)),
            "{u}"
        );
        b.cmd(json!({"op": "wait_row", "user": user.name, "status": "pending"}));

        // Reset from the page: the enrollment is gone.
        let r = b.cmd(json!({"op": "action", "user": opt.name, "action": "reset"}));
        assert_eq!(
            r["dialog"]["items"],
            json!([format!(
                "{}: enrollment and 5 unused recovery codes deleted; Enabled → Off (enrolls again)",
                opt.name
            )]),
            "{r}"
        );
        let o = &sb.list()[&opt.name];
        assert_eq!(
            (&o["enrolled"], &o["status"]),
            (&json!(false), &json!("off")),
            "{o}"
        );

        // Exempt, then allow, from the row's menu: the override follows, the dialog says it.
        for (action, status, mode) in [
            ("exempt", "exempt", "disabled"),
            ("allow", "off", "optional"),
        ] {
            let r = b.cmd(json!({"op": "action", "user": req.name, "action": action}));
            assert!(
                r["dialog"]["items"][0]
                    .as_str()
                    .unwrap()
                    .contains(&format!("→ {mode}")),
                "{r}"
            );
            let q = &sb.list()[&req.name];
            assert_eq!(
                (&q["status"], &q["override_mode"]),
                (&json!(status), &json!(mode)),
                "{q}"
            );
            b.cmd(json!({"op": "wait_row", "user": req.name, "status": status}));
        }

        // For a selection: inherit for two users (the overrides go; the policy decides).
        let r = b.cmd(json!({"op": "bulk", "users": [user.name, req.name], "action": "inherit"}));
        assert_eq!(r["dialog"]["items"].as_array().unwrap().len(), 2, "{r}");
        let l = sb.list();
        assert_eq!(
            (&l[&user.name]["override_mode"], &l[&user.name]["status"]),
            (&Value::Null, &json!("off"))
        );
        assert_eq!(l[&req.name]["status"], "pending");

        // A change made with the CLI shows on the open page, without a reload (through the
        // unicast Changed the page subscribed to: this admin group gets no broadcast).
        sb.cli(&["require", &opt.name]);
        let live =
            b.cmd(json!({"op": "wait_row", "user": opt.name, "status": "pending", "timeout": 10}));
        eprintln!(
            "the CLI's change showed after {:.2} s",
            live["seconds"].as_f64().unwrap()
        );
        let summary = sb.summary();
        b.cmd(json!({"op": "wait_chart", "status": "pending", "count": summary["pending"], "timeout": 10}));

        // The chart's counts and percentages are Summary's.
        chart_matches_summary(&mut b, &sb);

        // The default: the confirmation's count is exact, and the records follow.
        let moved = set_default(&mut b, &sb, "required");
        assert!(moved >= 1, "the plain user is decided by the default");
        let l = sb.list();
        assert_eq!(l[&user.name]["status"], "pending");
        assert_eq!(l[&exm.name]["status"], "exempt");
        let back = set_default(&mut b, &sb, "optional");
        assert!(back >= 1);
        assert_eq!(sb.list()[&user.name]["status"], "off");
        // A policy.d file's own mode outranks the main file's: the daemon refuses to count,
        // and the page says why and offers no change.
        let dropins = sb.dir().join("policy.d");
        std::fs::create_dir_all(&dropins).unwrap();
        std::fs::write(dropins.join("60-mode.toml"), "mode = \"disabled\"\n").unwrap();
        let policy_before = std::fs::read(sb.policy()).unwrap();
        let refused = b.cmd(json!({"op": "default_refused", "mode": "required"}));
        assert_eq!(refused["dialog"], false, "{refused}");
        let alert = refused["alert"].as_str().unwrap();
        assert!(
            alert.contains("not offered")
                && alert.contains("Forbidden")
                && alert.contains("60-mode.toml:1"),
            "{refused}"
        );
        assert_eq!(std::fs::read(sb.policy()).unwrap(), policy_before);
        std::fs::remove_file(dropins.join("60-mode.toml")).unwrap();
        drop(b);

        // The plain user: only their own page; another user's methods refused by the daemon
        // through this very page's cockpit.dbus, with and without administrative access.
        let mut b = Browser::start(&base, &scratch);
        let login = b.cmd(json!({"op": "login", "user": user.name, "password": user.password}));
        assert_eq!(login, json!({"prompt": null, "logged_in": true}));
        let page = b.cmd(json!({"op": "open"}));
        assert_eq!(
            (
                &page["view"],
                &page["admin_visible"],
                &page["tabs_visible"],
                &page["own_visible"]
            ),
            (&json!("own"), &json!(false), &json!(false), &json!(true)),
            "{page}"
        );
        let admin_before = sb.list()[&admin.name].clone();
        for (method, signature, args) in [
            ("GetUser", "s", json!([admin.name])),
            ("Reset", "s", json!([admin.name])),
            ("Require", "s", json!([opt.name])),
            ("Exempt", "s", json!([user.name])),
            ("ClearOverride", "s", json!([opt.name])),
            ("ListUsersPage", "su", json!(["", 10])),
            ("FindUsers", "sassu", json!([admin.name, [], "", 10])),
            ("Subscribe", "", json!([])),
            ("Summary", "", json!([])),
            ("SetDefaultMode", "s", json!(["disabled"])),
        ] {
            for superuser in [false, true] {
                let r = b.cmd(
                    json!({"op": "dbus", "method": method, "signature": signature,
                                     "args": args, "superuser": superuser}),
                );
                assert_eq!(
                    r["error"], "org.twofold.Enroll1.Error.PermissionDenied",
                    "{method} {args} (superuser {superuser}): {r}"
                );
            }
        }
        assert_eq!(sb.list()[&admin.name], admin_before);
        // Its own status, it may read.
        let own = b.cmd(json!({"op": "dbus", "method": "GetStatus", "signature": "", "args": []}));
        assert!(own["ok"].as_str().unwrap().contains(&user.name), "{own}");

        // Enrollment from the page: cancelled first (the key leaves the page), then for real.
        let first = b.cmd(json!({"op": "enroll"}));
        let first_key = first["key"].as_str().unwrap().to_owned();
        // While it is shown, the search finds it (in the frame, not in the shell).
        assert_eq!(
            b.cmd(json!({"op": "contains", "text": first_key})),
            json!({"frame": true, "shell": false})
        );
        assert!(
            first_key.len() >= 16
                && first_key
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)),
            "not a base32 key: {first}"
        );
        b.cmd(json!({"op": "js", "script": "document.getElementById('tf-cancel').click()"}));
        assert_eq!(
            b.cmd(json!({"op": "contains", "text": first_key})),
            json!({"frame": false, "shell": false})
        );
        let second = b.cmd(json!({"op": "enroll"}));
        eprintln!("enrollment: {}", second["label"]);
        let key = second["key"].as_str().unwrap().to_owned();
        assert_ne!(key, first_key);
        assert!(second["qr_modules"].as_u64().unwrap() >= 1, "{second}");
        assert!(second["qr_size"][0].as_f64().unwrap() >= 100.0, "{second}");
        let shot = screenshot_path(&scratch, "console-enroll.png");
        b.cmd(json!({"op": "screenshot", "path": shot}));
        // The QR code drawn by the page is the otpauth URI of that key (zbarimg reads it).
        let qr = twofold_system_tests::run(
            std::process::Command::new("zbarimg")
                .args(["--raw", "-q"])
                .arg(&shot),
        );
        let uri = String::from_utf8(qr.stdout).unwrap();
        assert!(
            uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={key}")),
            "the QR code reads {uri:?}"
        );
        fresh_step_within(8);
        let done = b.cmd(json!({"op": "confirm_enroll", "code": oathtool(&key)}));
        let codes = done["codes"].as_array().unwrap();
        assert_eq!(codes.len(), 5, "{done}");
        assert_eq!(done["enrolling"], "", "{done}");
        assert_eq!(
            b.cmd(json!({"op": "contains", "text": key})),
            json!({"frame": false, "shell": false})
        );
        let u = &sb.list()[&user.name];
        assert_eq!(
            (&u["enrolled"], &u["status"]),
            (&json!(true), &json!("enabled")),
            "{u}"
        );
        let own = b.cmd(json!({"op": "own"}));
        assert_eq!(own["status"], "enabled", "{own}");

        // New recovery codes, proven with one of the first ones; the old ones stop working.
        let old: Vec<String> = codes
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        let r = b.cmd(json!({"op": "proof", "action": "regen", "code": old[0]}));
        let new: Vec<String> = r["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(new.len(), 5, "{r}");
        assert!(new.iter().all(|c| !old.contains(c)), "{r}");
        assert_eq!(sb.list()[&user.name]["recovery_codes_left"], 5);

        // A second authenticator, from the page: named with markup (which stays text), proven
        // with a recovery code, confirmed with a code of its own key read from the page.
        let r = b.cmd(json!({"op": "auths"}));
        assert_eq!(r["auths"], json!([["1", "default", 0]]), "{r}");
        let r = b.cmd(json!({"op": "add_auth", "name": "<b>tablet</b>", "code": "000000"}));
        assert!(r["alert"].as_str().unwrap().contains("InvalidCode"), "{r}");
        let added = b.cmd(json!({"op": "add_auth", "name": "<b>tablet</b>", "code": new[1]}));
        let key2 = added["key"]
            .as_str()
            .unwrap_or_else(|| panic!("{added}"))
            .to_owned();
        assert_ne!(key2, key);
        let done = b.cmd(json!({"op": "confirm_add", "code": oathtool(&key2)}));
        assert_eq!(
            done["auths"],
            json!([["1", "default", 0], ["2", "<b>tablet</b>", 0]]),
            "{done}"
        );
        assert_eq!(done["codes_shown"], false, "{done}");
        assert_eq!(done["enrolling"], "", "{done}");
        assert_eq!(
            b.cmd(json!({"op": "contains", "text": key2})),
            json!({"frame": false, "shell": false})
        );
        assert_eq!(sb.list()[&user.name]["authenticators"], 2);
        let r = b.cmd(json!({"op": "rename_auth", "id": "2", "name": "tablet"}));
        assert_eq!(r["auths"][1], json!(["2", "tablet", 0]), "{r}");
        // The first one goes, proven with a recovery code; the tablet stays.
        let r = b.cmd(json!({"op": "remove_auth", "id": "1", "code": new[2]}));
        assert_eq!(r["auths"], json!([["2", "tablet", 0]]), "{r}");
        assert_eq!(sb.list()[&user.name]["authenticators"], 1);

        let r = b.cmd(json!({"op": "proof", "action": "disable", "code": old[1]}));
        assert!(r["alert"].as_str().unwrap().contains("InvalidCode"), "{r}");
        assert_eq!(r["proof_left"], "", "{r}");
        assert_eq!(sb.list()[&user.name]["enrolled"], true);
        // Turned off with a new one (optional for this user, so allowed).
        let r = b.cmd(json!({"op": "proof", "action": "disable", "code": new[0]}));
        assert_eq!(r["status"], "off", "{r}");
        let u = &sb.list()[&user.name];
        assert_eq!(
            (&u["enrolled"], &u["status"]),
            (&json!(false), &json!("off")),
            "{u}"
        );

        // No key in the browser's console or in any log of the sandbox; no script error.
        let log = b.cmd(json!({"op": "console_log"}));
        for k in [&key, &first_key, &key2] {
            assert!(!log.to_string().contains(k.as_str()), "{log}");
            assert!(!sb.logs().contains(k.as_str()));
        }
        let errors: Vec<&Value> = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["level"] == "SEVERE" && e["message"].as_str().unwrap().contains("twofold/")
            })
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        drop(b);

        // A user who is no admin of twofold but may use sudo: the own page only, until they
        // switch Cockpit to administrative access; then the admin view, its calls made as root
        // (the superuser bridge), and recorded so.
        let mut b = Browser::start(&base, &scratch);
        let login = b.cmd(json!({"op": "login", "user": sudoer.name, "password": sudoer.password}));
        assert_eq!(login["logged_in"], true, "{login}");
        let page = b.cmd(json!({"op": "open"}));
        assert_eq!(page["view"], "own", "{page}");
        let access = b.cmd(json!({"op": "gain_admin", "password": sudoer.password}));
        eprintln!("{access}");
        let page = b.cmd(json!({"op": "open"}));
        assert_eq!(page["view"], "admin", "{page}");
        b.cmd(json!({"op": "search", "text": prefix, "query": format!("{prefix}|")}));
        b.cmd(json!({"op": "action", "user": exm.name, "action": "require"}));
        let e = &sb.list()[&exm.name];
        assert_eq!(
            (&e["override_mode"], &e["override_by"]),
            (&json!("required"), &json!("root")),
            "{e}"
        );
        // Its own page still acts on itself, not on root.
        let own = b.cmd(json!({"op": "dbus", "method": "GetStatus", "signature": "", "args": []}));
        assert!(own["ok"].as_str().unwrap().contains(&sudoer.name), "{own}");
    }));
    eprintln!(
        "console browser test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        eprintln!("{}", sb.logs());
        std::panic::resume_unwind(e);
    }
}

/// The first rows with 100,000 users: the page asks for one page (100 rows, by name) and a
/// search for one prefix, never every page; both show within seconds. The daemon sees the
/// 100,000 extra local accounts in a mount namespace of its own.
#[test]
fn the_console_opens_fast_with_100000_users() {
    if !root_or_skip() {
        return;
    }
    let tag = std::process::id() % 100_000;
    let group = Group::create(&format!("tfs{tag}adm"));
    let admin = Account::create(&format!("tfs{tag}admin"), &[&group.0]);
    let policy = format!("mode = \"optional\"\nadmin_group = \"{}\"\n", group.0);
    // The daemon reads the policy through a directory whose name is markup: every rule text
    // the page shows carries it, and it must stay text.
    let evil = "<img src=x onerror=window.__tfpwned=1>";
    let sb = Sandbox::start_with(
        &policy,
        &Options {
            extra_users: 100_000,
            policy_link: Some(evil.into()),
            ..Options::default()
        },
    );
    let clean = |b: &mut Browser, when: &str| {
        let v = b.cmd(json!({"op": "js", "script":
            "return [window.__tfpwned === undefined, document.querySelectorAll('img').length]"}));
        assert_eq!(v["value"], json!([true, 0]), "markup ran {when}");
    };
    let scratch = sb.dir().join("browser");
    std::fs::create_dir(&scratch).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut figures = Figures::default();
        let mut b = Browser::start(&format!("http://127.0.0.1:{}", sb.port), &scratch);
        let login = b.cmd(json!({"op": "login", "user": admin.name, "password": admin.password}));
        assert_eq!(login["logged_in"], true, "{login}");
        let page = b.cmd(json!({"op": "open"}));
        let seconds = page["seconds"].as_f64().unwrap();
        figures.add(
            "page opened, first time after the daemon's start: the first 100 rows",
            seconds,
        );
        figures.add(
            "page opened, first time after the daemon's start: the chart (Summary)",
            page["chart_seconds"].as_f64().unwrap(),
        );
        assert_eq!(page["view"], "admin", "{page}");
        let rows = page["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 100, "one page");
        assert!(
            rows[0]["cells"][4].as_str().unwrap().contains(evil),
            "the rule as text: {}",
            rows[0]
        );
        clean(&mut b, "in the table");
        let own = b.cmd(json!({"op": "js", "script": "return document.getElementById('tf-own-rule').textContent"}));
        assert!(own["value"].as_str().unwrap().contains(evil), "{own}");
        clean(&mut b, "in the own page");
        let total: u64 = b.cmd(json!({"op": "js", "script":
            "return Number(document.getElementById('tf-chart').dataset.total)"}))["value"]
            .as_u64()
            .unwrap();
        assert!(total > 100_000, "{total}");
        assert!(seconds < 20.0, "{seconds} s to the first rows");
        // Opened again: the daemon has read the users once (its first answer after a start
        // reads every account).
        let again = b.cmd(json!({"op": "open"}));
        figures.add(
            "page opened again: the first 100 rows",
            again["seconds"].as_f64().unwrap(),
        );
        figures.add(
            "page opened again: the chart (Summary)",
            again["chart_seconds"].as_f64().unwrap(),
        );
        assert_eq!(again["rows"].as_array().unwrap().len(), 100);
        for (what, args) in [
            (
                "FindUsers, one page",
                vec!["FindUsers", "sassu", "", "0", "", "100"],
            ),
            ("Summary", vec!["Summary"]),
            (
                "PreviewDefaultMode",
                vec!["PreviewDefaultMode", "s", "required"],
            ),
        ] {
            let t = Instant::now();
            twofold_system_tests::run(
                std::process::Command::new("busctl")
                    .arg(format!("--address={}", sb.bus_address))
                    .args(["call", "org.twofold.Enroll1", "/org/twofold/Enroll1"])
                    .arg("org.twofold.Enroll1.Manager")
                    .args(args),
            );
            figures.add(&format!("{what}, from busctl"), t.elapsed().as_secs_f64());
        }
        // Search as you type: the names starting with user9999 (user9999, user99990..99999).
        let t = Instant::now();
        let found = b.cmd(json!({"op": "search", "text": "user9999", "query": "user9999|"}));
        let took = t.elapsed().as_secs_f64();
        figures.add(
            "search as you type: the rows of a name prefix (0.3 s of it the typing pause)",
            took,
        );
        let mut want: Vec<String> = (0..10).map(|i| format!("user9999{i}")).collect();
        want.push("user9999".into());
        want.sort();
        assert_eq!(
            statuses(&found["rows"]).into_keys().collect::<Vec<_>>(),
            want
        );
        assert!(took < 10.0, "{took} s");
        // The default's confirmation counts every user exactly, here too: its count is the
        // users whose status the change then made differ.
        let before = sb.list();
        let t = Instant::now();
        let done =
            b.cmd(json!({"op": "default", "mode": "required", "confirm": true}))["dialog"].clone();
        figures.add(
            "the default's count (PreviewDefaultMode), its confirmation and the change",
            t.elapsed().as_secs_f64(),
        );
        let after = sb.list();
        assert!(
            before.keys().eq(after.keys()),
            "an account came or went during the change"
        );
        let (moved, lines) = transitions(&before, &after);
        assert!(moved >= 100_000, "{moved} of {}", before.len());
        assert_eq!(changes(&done), moved, "{done}");
        assert_eq!(done["items"], json!(lines), "{done}");
        let now = b.cmd(json!({"op": "js", "script": "return document.getElementById('tf-default-now').textContent"}));
        assert!(now["value"].as_str().unwrap().contains(evil), "{now}");
        clean(&mut b, "in the default's card");
        figures.write();
    }));
    if let Err(e) = result {
        eprintln!("{}", sb.logs());
        std::panic::resume_unwind(e);
    }
}

/// The scale test's times: printed, and written as a table to the file named by
/// `TWOFOLD_CONSOLE_BENCH_OUT` (`make bench` sets it: bench/console-results.md). Never asserted
/// beyond a bound that only catches a hang.
#[derive(Default)]
struct Figures(Vec<(String, f64)>);

impl Figures {
    fn add(&mut self, what: &str, seconds: f64) {
        eprintln!("100,000 users: {what}: {seconds:.2} s");
        self.0.push((what.to_owned(), seconds));
    }

    fn write(&self) {
        let Some(out) = std::env::var_os("TWOFOLD_CONSOLE_BENCH_OUT") else {
            return;
        };
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mut text = format!(
            "# The admin console at 100,000 users\n\n\
             Written by `make bench` (the test `the_console_opens_fast_with_100000_users` of \
             tests/console.rs, release build): a real cockpit-ws and Chromium through WebDriver, \
             the daemon on a private bus, 100,000 accounts in its /etc, syslog on /dev/log as \
             on the host; {cores} cores. Wall time, one run, as the browser sees it (the Cockpit \
             bridge and page included).\n\n| what | seconds |\n|---|---|\n"
        );
        for (what, s) in &self.0 {
            text.push_str(&format!("| {what} | {s:.2} |\n"));
        }
        std::fs::write(&out, text).unwrap();
    }
}
