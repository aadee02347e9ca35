//! The `twofold` command against a private bus and the real daemon, run as different Unix
//! users (`setpriv`); `twofold enroll` under a pseudo-terminal (`tests/pty_enroll.py`) with the
//! QR code on the screen decoded back by `zbarimg`. Needs root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{
    Account, Bus, Dir, Enrolld, Group, as_user, bin, fresh_step_within, output, root_or_skip,
};
use serde_json::{Value, json};
use twofold_policy::UserName;
use twofold_policy::store::Store;

/// Run only as a helper (see `common::call`); unused here but shared by the module.
#[test]
#[ignore]
fn helper() {
    common::helper_main();
}

#[allow(dead_code)] // kept alive for the test's duration
struct World {
    dir: Dir,
    bus: Bus,
    daemon: Enrolld,
    twofold: PathBuf,
    admins: Group,
    admin: Account,
    alice: Account,
    bob: Account,
}

impl World {
    fn new() -> World {
        let dir = Dir::new();
        let admins = Group::create("g");
        let admin = Account::create("adm", &[&admins.name]);
        let alice = Account::create("a", &[]);
        let bob = Account::create("b", &[]);
        let policy = dir.write(
            "policy.toml",
            &format!(
                "mode = \"optional\"\nadmin_group = \"{}\"\n[enrollment]\nrecovery_codes = 5\nissuer = \"Test Host\"\n",
                admins.name
            ),
        );
        let bus = Bus::start(&dir);
        let daemon = Enrolld::start(&bus, &policy, &dir.path().join("state"), &[]);
        let twofold = dir.install(&bin("twofold"), "twofold");
        World {
            dir,
            bus,
            daemon,
            twofold,
            admins,
            admin,
            alice,
            bob,
        }
    }

    /// `twofold ARGS…` as `who` (root when `None`).
    fn run(&self, who: Option<&Account>, args: &[&str]) -> Output {
        output(as_user(who, &self.twofold, &self.bus).args(args))
    }

    fn store(&self) -> Store {
        Store::open(&self.dir.path().join("state")).unwrap()
    }

    /// `twofold enroll` as `who` under a terminal `cols` wide, answering `answers`.
    fn enroll_on_a_terminal(&self, who: &Account, cols: u16, answers: &[&str]) -> Value {
        self.enroll_on_a_terminal_with(who, cols, &[], &[], answers)
    }

    /// The same with more arguments to `twofold enroll` and more environment variables.
    fn enroll_on_a_terminal_with(
        &self,
        who: &Account,
        cols: u16,
        args: &[&str],
        env: &[(&str, &str)],
        answers: &[&str],
    ) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pty_enroll.py");
        let out = std::process::Command::new("/usr/bin/python3")
            .arg(script)
            .arg(cols.to_string())
            .arg(json!(answers).to_string())
            .arg("--")
            .arg("setpriv")
            .args([
                format!("--reuid={}", who.uid),
                format!("--regid={}", who.gid),
                "--init-groups".into(),
            ])
            .arg(&self.twofold)
            .arg("enroll")
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus.address)
            .env("TERM", "xterm")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "driver: {e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn enroll_on_a_terminal_then_status_says_enrolled() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    fresh_step_within(8);
    // The code typed is the one of the secret the QR code holds, as a phone would read it.
    let r = w.enroll_on_a_terminal(&w.alice, 100, &["000000", "OATH_QR"]);
    let screen = r["screen"].as_str().unwrap();
    assert_eq!(r["exit"], 0, "{screen}");
    let key = r["key"].as_str().unwrap();
    // The QR code on the screen decodes to the otpauth URI of the key shown beside it, on a
    // dark and on a light terminal alike (black on white, by colour escapes).
    let uri = r["qr"]["dark"]
        .as_str()
        .unwrap_or_else(|| panic!("the QR code did not decode on a dark terminal: {screen}"));
    assert_eq!(r["qr"]["light"], uri, "on a light terminal: {screen}");
    assert!(
        uri.starts_with("otpauth://totp/Test%20Host:") && uri.contains(&format!("secret={key}&")),
        "{uri}"
    );
    assert!(
        screen.contains(&format!("Or open this URI:          {uri}\n")),
        "{screen}"
    );
    assert!(screen.contains("\x1b[30;47m"), "{screen}");
    assert!(
        screen.contains(&format!(
            "Account:                   Test Host:{}",
            w.alice.name
        )),
        "{screen}"
    );
    // A wrong code is retried; then the recovery codes, once, with a word on keeping them.
    assert!(
        screen.contains("does not match") && screen.contains("attempts left"),
        "{screen}"
    );
    assert!(screen.contains("shown only now"), "{screen}");
    let codes = screen
        .lines()
        .filter(|l| l.trim().len() == 14 && l.trim().matches('-').count() == 2)
        .count();
    assert_eq!(codes, 5, "{screen}");
    // The code typed never shows on the screen (no echo).
    assert!(!screen.contains("000000"), "echoed: {screen}");
    // The stored secret is the one shown; `twofold status` says so.
    let state = w
        .store()
        .read(&UserName::parse(&w.alice.name).unwrap())
        .unwrap();
    assert_eq!(
        state
            .record
            .unwrap()
            .enrollment
            .unwrap()
            .authenticators
            .first()
            .unwrap()
            .secret()
            .unwrap()
            .to_base32()
            .as_str(),
        key
    );
    let (out, _) = text(&w.run(Some(&w.alice), &["status"]));
    assert!(out.starts_with("2FA is set up for you since "), "{out}");
    assert!(out.contains("5 recovery codes left"), "{out}");
    // Enrolling again is refused unless --replace.
    let o = w.run(Some(&w.alice), &["enroll"]);
    assert_eq!(o.status.code(), Some(6));
    assert!(text(&o).1.contains("already enrolled"), "{:?}", text(&o));
}

#[test]
fn narrow_terminal_gets_the_uri() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let r = w.enroll_on_a_terminal(&w.bob, 40, &["EOF"]);
    let screen = r["screen"].as_str().unwrap();
    assert!(
        screen.contains("Your terminal is 40 columns wide and the QR code needs"),
        "{screen}"
    );
    assert!(screen.contains("otpauth://totp/"), "{screen}");
    assert!(
        r["qr"]["dark"].is_null() && r["qr"]["light"].is_null(),
        "no QR code drawn: {screen}"
    );
    // No code given: nothing was set up, exit 6.
    assert_eq!(r["exit"], 6, "{screen}");
    let state = w
        .store()
        .read(&UserName::parse(&w.bob.name).unwrap())
        .unwrap();
    assert!(state.record.is_none());
}

#[test]
fn admin_verbs_status_and_list() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let (alice, bob) = (w.alice.name.as_str(), w.bob.name.as_str());
    // As a plain user: refused, with who may, exit 5; nothing changed.
    for verb in ["require", "exempt", "allow", "inherit", "reset"] {
        let o = w.run(Some(&w.bob), &[verb, alice]);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(5), "{verb}: {err}");
        assert!(
            err.contains("is for administrators") && err.contains(&w.admins.name),
            "{verb}: {err}"
        );
    }
    let o = w.run(Some(&w.bob), &["list"]);
    assert_eq!(o.status.code(), Some(5));
    let o = w.run(Some(&w.bob), &["status", alice]);
    assert_eq!(o.status.code(), Some(5));
    assert!(!w.dir.path().join(format!("state/{alice}.toml")).exists());
    // As the admin group's member and as root.
    let o = w.run(Some(&w.admin), &["require", alice, bob]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains(&format!(
            "{alice}: 2FA is required for {alice} and not set up: they will set it up at {alice}'s next login, before "
        )),
        "{out}"
    );
    let o = w.run(None, &["exempt", bob, "no-such-user-tf"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(4), "{out}{err}");
    assert!(
        out.contains(&format!("{bob}: 2FA is disabled for {bob}")),
        "{out}"
    );
    assert!(err.contains("no-such-user-tf"), "{err}");
    // The user's own status: one sentence.
    let (out, _) = text(&w.run(Some(&w.alice), &["status"]));
    assert!(
        out.starts_with(
            "2FA is required for you and not set up: you will set it up at your next login, before "
        ),
        "{out}"
    );
    assert!(
        out.contains(&format!("override required, set by {}", w.admin.name)),
        "{out}"
    );
    // list --json, checked against the records.
    let o = w.run(Some(&w.admin), &["list", "--json"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let users = v["users"].as_array().unwrap();
    let store = w.store();
    for name in store.users().unwrap() {
        let rec = store.read(&name).unwrap().record.unwrap();
        let row = users
            .iter()
            .find(|u| u["user"] == name.as_str())
            .unwrap_or_else(|| panic!("{} not listed", name.as_str()));
        assert_eq!(
            row["override_mode"],
            rec.admin_override
                .map(|o| o.mode.to_string())
                .map_or(Value::Null, Value::from)
        );
        assert_eq!(row["enrolled"], rec.enrollment.is_some());
    }
    let count = |s: &str| users.iter().filter(|u| u["status"] == s).count() as u64;
    assert_eq!(v["summary"]["pending"], count("pending"));
    assert_eq!(v["summary"]["exempt"], count("exempt"));
    assert_eq!(v["total"], users.len() as u64);
    // The table, without colour off a terminal, with the distribution line.
    let (out, _) = text(&w.run(Some(&w.admin), &["list"]));
    assert!(out.starts_with("USER"), "{out}");
    assert!(!out.contains('\x1b'), "colour off a terminal: {out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.contains(&format!("{} users:", users.len())) && last.contains("pending ("),
        "{last}"
    );
    // list --prefix / --status (repeated or a comma list): the rows of FindUsers.
    let o = w.run(
        Some(&w.admin),
        &[
            "list",
            "--json",
            "--prefix",
            alice,
            "--status",
            "pending,exempt",
            "--status",
            "off",
        ],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    assert_eq!(names, [alice], "{v}");
    assert_eq!(v["total"], 1);
    let o = w.run(Some(&w.admin), &["list", "--json", "--status", "exempt"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let users = v["users"].as_array().unwrap();
    assert!(users.iter().all(|u| u["status"] == "exempt"), "{v}");
    assert!(users.iter().any(|u| u["user"] == bob), "{v}");
    let o = w.run(Some(&w.admin), &["list", "--status", "sometimes"]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    // Odd input: a prefix that is a path names nobody; one longer than any name, and a mode
    // that is no mode (also with --dry-run), are refused with exit 2.
    let o = w.run(Some(&w.admin), &["list", "--json", "--prefix", "../x"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["users"].as_array().map(Vec::len), Some(0), "{v}");
    let long = "x".repeat(1100);
    let o = w.run(Some(&w.admin), &["list", "--prefix", &long]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    for mode in ["../x", "Required", ""] {
        let o = w.run(
            Some(&w.admin),
            &["policy", "set-default", mode, "--dry-run"],
        );
        assert_eq!(o.status.code(), Some(2), "{mode:?}: {:?}", text(&o));
    }
    // Disable with nothing set up: refused, exit 6, before any code is asked.
    let o = w.run(Some(&w.alice), &["disable"]);
    assert_eq!(o.status.code(), Some(6), "{:?}", text(&o));
    assert!(text(&o).1.contains("nothing to disable"), "{:?}", text(&o));
    // policy set-default through the daemon.
    let o = w.run(Some(&w.admin), &["policy", "set-default", "disabled"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let policy = std::fs::read_to_string(w.dir.path().join("policy.toml")).unwrap();
    assert!(policy.starts_with("mode = \"disabled\"\n"), "{policy}");
}

/// What `zbarimg` reads from `text` rendered as a `theme` ("dark" or "light") terminal shows it
/// (tests/term_qr.py at the workspace's top); `None` when nothing decodes.
fn decode_as(theme: &str, text: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("screen.txt");
    std::fs::write(&file, text).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/term_qr.py");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(theme)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    (!got.is_empty()).then_some(got)
}

#[test]
fn enroll_draws_the_qr_code_for_the_terminal_asked() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let uri_of = |screen: &str| -> String {
        let line = screen
            .lines()
            .find_map(|l| l.strip_prefix("Or open this URI:          "))
            .unwrap_or_else(|| panic!("no URI: {screen}"));
        assert!(line.starts_with("otpauth://totp/"), "{line}");
        line.to_owned()
    };
    // --qr dark: for a dark terminal, no escapes; inverted on a light one, where nothing reads
    // it (the drawing of earlier versions, whatever the terminal: the test can fail).
    let r = w.enroll_on_a_terminal_with(&w.bob, 100, &["--qr", "dark"], &[], &["EOF"]);
    let screen = r["screen"].as_str().unwrap();
    assert_eq!(r["exit"], 6, "{screen}");
    assert!(!screen.contains('\x1b'), "{screen}");
    assert_eq!(r["qr"]["dark"], uri_of(screen), "{screen}");
    assert!(r["qr"]["light"].is_null(), "read inverted: {screen}");
    // --qr light: the other way round.
    let r = w.enroll_on_a_terminal_with(&w.bob, 100, &["--qr", "light"], &[], &["EOF"]);
    let screen = r["screen"].as_str().unwrap();
    assert!(!screen.contains('\x1b'), "{screen}");
    assert_eq!(r["qr"]["light"], uri_of(screen), "{screen}");
    assert!(r["qr"]["dark"].is_null(), "read inverted: {screen}");
    // --qr none: no code, the key and the URI.
    let r = w.enroll_on_a_terminal_with(&w.bob, 100, &["--qr", "none"], &[], &["EOF"]);
    let screen = r["screen"].as_str().unwrap();
    assert!(!screen.contains(['█', '▀', '▄', '\x1b']), "{screen}");
    assert!(r["key"].as_str().is_some_and(|k| k.len() >= 16), "{screen}");
    let uri = uri_of(screen);
    assert!(
        uri.contains(&format!("secret={}&", r["key"].as_str().unwrap())),
        "{screen}"
    );
    // NO_COLOR: no escapes, so drawn for a dark terminal, with a word on --qr light.
    let r = w.enroll_on_a_terminal_with(&w.bob, 100, &[], &[("NO_COLOR", "1")], &["EOF"]);
    let screen = r["screen"].as_str().unwrap();
    assert!(!screen.contains('\x1b'), "{screen}");
    assert_eq!(r["qr"]["dark"], uri_of(screen), "{screen}");
    assert!(screen.contains("--qr light"), "{screen}");
    // Not a terminal (a pipe): as before, drawn for a dark terminal without escapes; --qr color
    // puts black on white into the pipe all the same.
    let o = w.run(Some(&w.bob), &["enroll"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(6), "{out}{err}");
    assert!(!out.contains('\x1b') && out.contains('▀'), "{out}");
    assert_eq!(decode_as("dark", &out), Some(uri_of(&out)), "{out}");
    assert_eq!(decode_as("light", &out), None, "{out}");
    let o = w.run(Some(&w.bob), &["enroll", "--qr", "color"]);
    let (out, _) = text(&o);
    assert_eq!(decode_as("dark", &out), Some(uri_of(&out)), "{out}");
    assert_eq!(decode_as("light", &out), Some(uri_of(&out)), "{out}");
    // None of it set anything up.
    let state = w
        .store()
        .read(&UserName::parse(&w.bob.name).unwrap())
        .unwrap();
    assert!(state.record.is_none());
}

#[test]
fn list_shows_the_networks_that_change_a_users_mode() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    std::fs::write(
        w.dir.path().join("policy.toml"),
        format!(
            "mode = \"optional\"\nadmin_group = \"{}\"\n\n[networks.\"10.0.0.0/8\"]\nmode = \"disabled\"\n\n[networks.\"2001:db8::/32\"]\nmode = \"required\"\n\n[networks.\"192.0.2.0/24\"]\nmode = \"optional\"\n\n[users.{}]\nmode = \"required\"\n",
            w.admins.name, w.bob.name
        ),
    )
    .unwrap();
    // list --json: the mode without an origin, and the networks that would change it.
    let o = w.run(Some(&w.admin), &["list", "--json"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let users = v["users"].as_array().unwrap();
    let row = |n: &str| users.iter().find(|u| u["user"] == n).unwrap().clone();
    let alice = row(&w.alice.name);
    assert_eq!(alice["mode"], "optional", "{alice}");
    assert_eq!(
        alice["networks"],
        json!([
            { "network": "10.0.0.0/8", "mode": "disabled" },
            { "network": "2001:db8::/32", "mode": "required" },
        ]),
        "{alice}"
    );
    // A [users.X] rule beats every network: nothing to show.
    let bob = row(&w.bob.name);
    assert_eq!(
        (&bob["mode"], &bob["networks"]),
        (&json!("required"), &json!([])),
        "{bob}"
    );
    // The counts stay origin-free and add up.
    let count = |s: &str| users.iter().filter(|u| u["status"] == s).count() as u64;
    for s in ["pending", "enforced", "enabled", "off", "exempt"] {
        assert_eq!(v["summary"][s], count(s), "{s}: {v}");
    }
    assert_eq!(v["total"], users.len() as u64);
    // The table marks alice, not bob, and says what the mark means.
    let (out, _) = text(&w.run(Some(&w.admin), &["list"]));
    let line = |n: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(n))
            .unwrap()
            .to_owned()
    };
    assert!(line(&w.alice.name).contains("~"), "{out}");
    assert!(!line(&w.bob.name).contains("~"), "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("~ another mode for logins from some networks"),
        "{out}"
    );
    // The default's preview counts without origin: everyone but bob (his own rule) is decided
    // by the default and moves off → pending. (Accounts of other tests may come and go
    // between the listing and the preview, so its counts are checked against each other.)
    let o = w.run(
        Some(&w.admin),
        &["policy", "set-default", "required", "--dry-run", "--json"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = |k: &str| p[k].as_u64().unwrap();
    assert!(
        n("total") == n("by_default") + 1
            && n("moved") == n("by_default")
            && p["transitions"] == json!({ "off>pending": n("moved") }),
        "{p}"
    );
}
