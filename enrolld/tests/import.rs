//! `twofold import` for real: files made by the real `google-authenticator` tool
//! (libpam-google-authenticator, non-interactive flags) and a `users.oath` with an `oathtool`
//! secret, imported through the real daemon on a private bus and through the CLI, then real
//! logins through libpam (pam_wrapper + pamtester, the built pam_twofold.so): the app's code
//! works, the same code again is refused, a scratch code works once, the last code of a
//! `users.oath` line stays refused and the next one works. Attacks through the file a user
//! controls (symlink, FIFO, hard link, huge, group-writable, another owner, a symlinked home, a
//! name like `../x`) are skipped with a reason, and nothing of another file is read. Needs
//! root, as CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a panic here is a failed test

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::world::{World, ok};
use common::{Account, as_user, bin, output, root_or_skip};
use serde_json::{Value, json};

/// Run only as a helper, under setpriv (see `common::call`).
#[test]
#[ignore]
fn helper() {
    common::helper_main();
}

const WRAPPER: &str = "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so";

/// The built module: `target/debug/libpam_twofold.so` (or `deps/`), which `cargo test
/// --workspace` builds.
fn module_so() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().unwrap().parent().unwrap();
    [
        debug.join("libpam_twofold.so"),
        debug.join("deps/libpam_twofold.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("libpam_twofold.so is not built: cargo build -p pam_twofold (make test builds it)")
}

/// A user with a home directory `DIR/home/NAME`, removed on drop.
struct HomeUser {
    name: String,
    home: PathBuf,
    uid: u32,
}

impl HomeUser {
    fn create(w: &World, tag: &str) -> HomeUser {
        let a = Account::create(tag, &[]);
        let home = w.dir.path().join("home").join(&a.name);
        std::fs::create_dir_all(home.parent().unwrap()).unwrap();
        std::fs::set_permissions(
            home.parent().unwrap(),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::create_dir(&home).unwrap();
        nix::unistd::chown(&home, Some(a.uid.into()), Some(a.gid.into())).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(
            Command::new("usermod")
                .args(["-d", home.to_str().unwrap(), &a.name])
                .status()
                .unwrap()
                .success()
        );
        let (name, uid) = (a.name.clone(), a.uid);
        std::mem::forget(a);
        HomeUser { name, home, uid }
    }

    fn ga_file(&self) -> PathBuf {
        self.home.join(".google_authenticator")
    }

    /// Runs the real tool as this user (non-interactive), writing ~/.google_authenticator.
    fn google_authenticator(&self, flags: &[&str]) {
        let out = Command::new("runuser")
            .args([
                "-u",
                &self.name,
                "--",
                "env",
                &format!("HOME={}", self.home.display()),
            ])
            .arg("google-authenticator")
            .args(flags)
            .output()
            .expect("google-authenticator (libpam-google-authenticator; make test installs it)");
        assert!(out.status.success(), "{out:?}");
    }

    fn secret(&self) -> String {
        let text = std::fs::read_to_string(self.ga_file()).unwrap();
        text.lines().next().unwrap().to_owned()
    }

    fn scratch(&self) -> Vec<String> {
        std::fs::read_to_string(self.ga_file())
            .unwrap()
            .lines()
            .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for HomeUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// The PAM service `twofold-import` for pam_wrapper, on the world's policy and state.
fn pam_dir(w: &World) -> PathBuf {
    let dir = w.dir.path().join("pam.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("twofold-import"),
        format!(
            "auth required {m} policy={p} state={s}\naccount required pam_permit.so\n",
            m = module_so().display(),
            p = w.policy.display(),
            s = w.dir.path().join("state").display()
        ),
    )
    .unwrap();
    dir
}

/// One login through the real libpam with `answer` at the prompt.
fn login(pam: &Path, user: &str, answer: &str) -> (bool, String) {
    let mut child = Command::new("pamtester")
        .args(["-v", "twofold-import", user, "authenticate"])
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", pam)
        .env("LD_PRELOAD", WRAPPER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pamtester (make test installs it)");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(format!("{answer}\n").as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `oathtool --totp` for a base32 (`-b`) or hex key at now + `offset` steps of `period`.
fn oathtool(key: &str, base32: bool, offset: i64, period: u64) -> String {
    let t = twofold_policy::time::now() as i64 + offset * period as i64;
    let mut cmd = Command::new("oathtool");
    cmd.arg("--totp");
    if base32 {
        cmd.arg("-b");
    }
    let out = cmd
        .args([
            format!("--now=@{t}"),
            format!("--time-step-size={period}s"),
            key.to_owned(),
        ])
        .output()
        .expect("oathtool");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Waits until the step after `step` (of 30 s) has begun and at least 3 s are left in it.
fn wait_past(step: u64) {
    loop {
        let now = twofold_policy::time::now();
        if now / 30 > step && now % 30 < 27 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn twofold(w: &World, args: &[&str]) -> (i32, String, String) {
    let out = output(as_user(None, &bin("twofold"), &w.bus).args(args));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file of the state directory and its bytes.
fn state_bytes(w: &World) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(w.dir.path().join("state"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    all
}

#[test]
fn google_authenticator_files_of_the_real_tool_then_real_logins() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let pam = pam_dir(&w);
    let alice = HomeUser::create(&w, "ga");
    alice.google_authenticator(&[
        "-t", "-d", "-f", "-C", "-q", "-Q", "NONE", "-r", "3", "-R", "30", "-w", "3", "-e", "5",
    ]);
    let wide = HomeUser::create(&w, "gw");
    wide.google_authenticator(&[
        "-t", "-D", "-f", "-C", "-q", "-Q", "NONE", "-u", "-w", "17", "-e", "2",
    ]);
    // A clock offset the old module had learned (it writes TIME_SKEW after three codes in a
    // row from a phone whose clock is off): 4 steps ahead.
    let skewed = HomeUser::create(&w, "gk");
    skewed.google_authenticator(&[
        "-t", "-d", "-f", "-C", "-q", "-Q", "NONE", "-u", "-w", "3", "-e", "1",
    ]);
    {
        let f = skewed.ga_file();
        let text = std::fs::read_to_string(&f).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&f, text.replacen('\n', "\n\" TIME_SKEW 4\n", 1)).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    let hotp = HomeUser::create(&w, "gh");
    hotp.google_authenticator(&[
        "-c", "-f", "-C", "-q", "-Q", "NONE", "-u", "-w", "3", "-e", "1",
    ]);
    let before_file = std::fs::read(alice.ga_file()).unwrap();

    // A dry run changes nothing (record files byte-identical) and says what it would do.
    let before = state_bytes(&w);
    let (code, out, errtext) = twofold(
        &w,
        &[
            "import",
            "google-authenticator",
            &alice.name,
            &wide.name,
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{out}{errtext}");
    assert!(
        out.contains(&format!(
            "{}: would import (6 digits, 30 s, 5 recovery codes",
            alice.name
        )),
        "{out}"
    );
    assert!(
        out.contains("window ±8 reduced to the policy's ±1"),
        "{out}"
    );
    assert_eq!(state_bytes(&w), before, "--dry-run changed the store");

    // --all: the listing's users, those without a file counted on one line.
    let (_, out, errtext) = twofold(
        &w,
        &["import", "google-authenticator", "--all", "--dry-run"],
    );
    assert!(
        out.contains(&format!("{}: would import (6 digits", alice.name)),
        "{out}{errtext}"
    );
    assert!(
        out.contains("of the listing have no ~/.google_authenticator")
            || out.contains("of the listing has no"),
        "{out}"
    );
    assert_eq!(state_bytes(&w), before, "--dry-run changed the store");

    // Through the daemon directly, as an admin would with any client.
    let r = ok(&w.call(None, "ImportGoogleAuthenticator", json!([hotp.name, false]))).clone();
    assert_eq!(r["outcome"], "skipped", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("HOTP (counter-based) is not supported"),
        "{r}"
    );

    // The real import, through the CLI, as JSON.
    let (code, out, errtext) = twofold(
        &w,
        &[
            "--json",
            "import",
            "google-authenticator",
            &alice.name,
            &wide.name,
            &skewed.name,
        ],
    );
    assert_eq!(code, 0, "{out}{errtext}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["outcome"], "imported", "{rows}");
    assert_eq!(rows[0]["recovery_codes"], 5);
    assert!(!out.contains(&alice.secret()), "the report holds no secret");
    for c in alice.scratch() {
        assert!(!out.contains(&c), "the report holds no scratch code");
    }
    let import_step = twofold_policy::time::now() / 30;
    assert_eq!(
        std::fs::read(alice.ga_file()).unwrap(),
        before_file,
        "source changed"
    );
    let log = w.daemon.log_text();
    assert!(
        log.contains("action=import from=google-authenticator"),
        "{log}"
    );
    assert!(!log.contains(&alice.secret()), "{log}");
    // Already enrolled: skipped, nothing changed.
    let before = state_bytes(&w);
    let (code, out, _) = twofold(&w, &["import", "google-authenticator", &alice.name]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("skipped: already enrolled"), "{out}");
    assert_eq!(state_bytes(&w), before);

    // --add: one more authenticator for a user already enrolled (a pam_oath token here).
    let hex_extra = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c";
    let extra = w.dir.write(
        "extra.oath",
        &format!("HOTP/T30 {} - {hex_extra}\n", alice.name),
    );
    let (code, out, errtext) = twofold(&w, &["import", "oath", extra.to_str().unwrap()]);
    assert_eq!(code, 6, "{out}{errtext}");
    assert!(
        out.contains("or add it beside the others with --add"),
        "{out}"
    );
    let (code, out, errtext) = twofold(&w, &["import", "oath", extra.to_str().unwrap(), "--add"]);
    assert_eq!(code, 0, "{out}{errtext}");
    assert!(
        out.contains("added beside the existing authenticators as number 2"),
        "{out}"
    );
    let (code, out, _) = twofold(&w, &["import", "oath", extra.to_str().unwrap(), "--add"]);
    assert_eq!(code, 6, "{out}");
    assert!(
        out.contains("already has an authenticator named \"oath\""),
        "{out}"
    );

    // A scratch code of the real file works once, and only once.
    let scratch = alice.scratch();
    let (okd, text) = login(&pam, &alice.name, &scratch[0]);
    assert!(okd, "scratch code refused: {text}");
    let (okd, text) = login(&pam, &alice.name, &scratch[0]);
    assert!(!okd, "scratch code accepted twice: {text}");

    // The app's code: codes of the import's moment (which the old module may have accepted)
    // are refused; the next ones work, once.
    let early = oathtool(&alice.secret(), true, 0, 30);
    let (okd, text) = login(&pam, &alice.name, &early);
    assert!(!okd, "a code of the import's step was accepted: {text}");
    wait_past(import_step + 1);
    let code_now = oathtool(&alice.secret(), true, 0, 30);
    let (okd, text) = login(&pam, &alice.name, &code_now);
    assert!(okd, "the app's code after the import was refused: {text}");
    let (okd, text) = login(&pam, &alice.name, &code_now);
    assert!(!okd, "the same code was accepted twice: {text}");
    // The added authenticator logs in too.
    let (okd, text) = login(&pam, &alice.name, &oathtool(hex_extra, false, 0, 30));
    assert!(okd, "the added authenticator's code was refused: {text}");
    // The skewed phone's code (4 steps ahead) works; a code of the server's own time does not.
    assert_eq!(rows[2]["skew"], 4, "{rows}");
    let (okd, text) = login(&pam, &skewed.name, &oathtool(&skewed.secret(), true, 0, 30));
    assert!(
        !okd,
        "a code outside the skewed window was accepted: {text}"
    );
    let (okd, text) = login(&pam, &skewed.name, &oathtool(&skewed.secret(), true, 4, 30));
    assert!(okd, "the skewed phone's code was refused: {text}");
    // The wide window of the other file (±8, codes reused freely) reached 8 steps ahead of
    // the import: those codes may have been used, and stay refused until then.
    let (okd, text) = login(&pam, &wide.name, &oathtool(&wide.secret(), true, 0, 30));
    assert!(
        !okd,
        "a code the old module's window reached was accepted: {text}"
    );
}

#[test]
fn oath_users_file_then_real_logins() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    let pam = pam_dir(&w);
    let carol = Account::create("oc", &[]);
    let dave = Account::create("od", &[]);
    let erin = Account::create("oe", &[]);
    // Secrets as oathtool takes them (hex).
    let hex_c = "3132333435363738393031323334353637383930";
    let hex_d = "00112233445566778899aabbccddeeff00112233";
    common::fresh_step_within(8);
    let used = oathtool(hex_c, false, 0, 30);
    let used_step = twofold_policy::time::now() / 30;
    // liboath's TIME: local time with an L (this test runs with TZ=UTC).
    let stamp = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SL"])
        .output()
        .unwrap();
    let stamp = String::from_utf8_lossy(&stamp.stdout).trim().to_owned();
    let users = w.dir.write(
        "users.oath",
        &format!(
            "# pam_oath users\nHOTP/T30 {c} - {hex_c} 0 {used} {stamp}\nHOTP/T30/8\t{d}\t4711\t{hex_d}\nHOTP {e} - {hex_d}\nHOTP/T45 {e} - {hex_d}\nHOTP/T30 {e} - 12zz\n",
            c = carol.name,
            d = dave.name,
            e = erin.name
        ),
    );
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = state_bytes(&w);
    let (code, out, errtext) = twofold(
        &w,
        &["import", "oath", users.to_str().unwrap(), "--dry-run"],
    );
    assert_eq!(code, 6, "bad lines make it exit 6: {out}{errtext}");
    assert_eq!(state_bytes(&w), before, "--dry-run changed the store");
    let f = users.display().to_string();
    assert!(
        errtext.contains(&format!(
            "{f}:4: {}: HOTP (counter-based) is not supported",
            erin.name
        )),
        "{errtext}"
    );
    assert!(
        errtext.contains(&format!("{f}:5: {}: unknown token type", erin.name)),
        "{errtext}"
    );
    assert!(
        errtext.contains(&format!("{f}:6: {}: the secret is not hex", erin.name)),
        "{errtext}"
    );
    assert!(
        out.contains(&format!(
            "{}: would import (6 digits, 30 s, 0 recovery codes",
            carol.name
        )),
        "{out}"
    );
    assert!(
        out.contains("a PIN is set on this line and is not imported"),
        "{out}"
    );
    assert!(
        !out.contains("4711") && !errtext.contains("4711"),
        "the PIN is never shown"
    );

    let (code, out, errtext) = twofold(&w, &["import", "oath", users.to_str().unwrap()]);
    assert_eq!(code, 6, "{out}{errtext}");
    let import_step = twofold_policy::time::now() / 30;
    assert!(
        out.contains(&format!("{}: imported (6 digits", carol.name)),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}: imported (8 digits", dave.name)),
        "{out}"
    );
    // The last code of the line stays refused; the next one works.
    let (okd, text) = login(&pam, &carol.name, &used);
    assert!(!okd, "LASTOTP accepted again: {text}");
    wait_past(used_step.max(import_step + 1));
    let next = oathtool(hex_c, false, 0, 30);
    let (okd, text) = login(&pam, &carol.name, &next);
    assert!(okd, "the next code was refused: {text}");
    // An 8-digit authenticator logs in with 8 digits, once.
    let eight = Command::new("oathtool")
        .args(["--totp", "--digits=8", hex_d])
        .output()
        .unwrap();
    let eight = String::from_utf8_lossy(&eight.stdout).trim().to_owned();
    assert_eq!(eight.len(), 8);
    let (okd, text) = login(&pam, &dave.name, &eight);
    assert!(okd, "the 8-digit code was refused: {text}");
    let (okd, text) = login(&pam, &dave.name, &eight);
    assert!(!okd, "the 8-digit code was accepted twice: {text}");
}

#[test]
fn a_users_file_cannot_make_the_import_read_another_file() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(&[]);
    // A root-only file with a marker, and a file of another user.
    let marker = "TOPSECRET-MARKER-7f3a";
    let root_dir = w.dir.path().join("home");
    std::fs::create_dir_all(&root_dir).unwrap();
    let root_file = root_dir.join("root-only");
    std::fs::write(&root_file, format!("{marker}\n\" TOTP_AUTH\n")).unwrap();
    std::fs::set_permissions(&root_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let victim = HomeUser::create(&w, "v");
    victim.google_authenticator(&[
        "-t", "-d", "-f", "-C", "-q", "-Q", "NONE", "-u", "-w", "3", "-e", "1",
    ]);
    let as_owner = |u: &HomeUser, p: &Path| {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            p,
            Some(u.uid.into()),
            None,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
    };
    let mut cases: Vec<(HomeUser, &str)> = Vec::new();
    let sym = HomeUser::create(&w, "s");
    std::os::unix::fs::symlink("/etc/shadow", sym.ga_file()).unwrap();
    as_owner(&sym, &sym.ga_file());
    cases.push((sym, "symbolic link"));
    let fifo = HomeUser::create(&w, "f");
    nix::unistd::mkfifo(
        &fifo.ga_file(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    as_owner(&fifo, &fifo.ga_file());
    cases.push((fifo, "a FIFO"));
    let hard = HomeUser::create(&w, "h");
    std::fs::hard_link(&root_file, hard.ga_file()).unwrap();
    cases.push((hard, "owned by uid 0"));
    let big = HomeUser::create(&w, "big");
    {
        let f = std::fs::File::create(big.ga_file()).unwrap();
        f.set_len(100 << 20).unwrap();
        std::fs::set_permissions(big.ga_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
        as_owner(&big, &big.ga_file());
    }
    cases.push((big, "more than 65536"));
    let gw = HomeUser::create(&w, "gw");
    gw.google_authenticator(&[
        "-t", "-d", "-f", "-C", "-q", "-Q", "NONE", "-u", "-w", "3", "-e", "1",
    ]);
    std::fs::set_permissions(gw.ga_file(), std::fs::Permissions::from_mode(0o620)).unwrap();
    cases.push((gw, "mode 0620"));
    let other = HomeUser::create(&w, "o");
    std::fs::copy(victim.ga_file(), other.ga_file()).unwrap();
    as_owner(&victim, &other.ga_file());
    std::fs::set_permissions(other.ga_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
    cases.push((other, "not by the user"));
    let linked = HomeUser::create(&w, "l");
    // The home in the user database is a symlink (to the victim's home).
    let link = w
        .dir
        .path()
        .join("home")
        .join(format!("{}-link", linked.name));
    std::os::unix::fs::symlink(&victim.home, &link).unwrap();
    assert!(
        Command::new("usermod")
            .args(["-d", link.to_str().unwrap(), &linked.name])
            .status()
            .unwrap()
            .success()
    );
    cases.push((linked, "symbolic link or not a directory"));

    let before = state_bytes(&w);
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    for (u, why) in &cases {
        let r = ok(&w.call(None, "ImportGoogleAuthenticator", json!([u.name, false]))).clone();
        assert_eq!(r["outcome"], "skipped", "{}: {r}", u.name);
        let reason = r["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{}: {reason}", u.name);
        assert!(!reason.contains(marker), "{reason}");
        assert!(!reason.contains(&victim.secret()), "{reason}");
        for l in shadow.lines().filter(|l| !l.is_empty()) {
            assert!(!r.to_string().contains(l), "{r}");
        }
    }
    let (code, out, errtext) = twofold(
        &w,
        &["import", "google-authenticator", "../x", "no-such-user-tf"],
    );
    assert_eq!(code, 6, "{out}{errtext}");
    assert!(out.contains("../x: skipped:"), "{out}");
    assert!(out.contains("no-such-user-tf: skipped:"), "{out}");
    assert_eq!(
        state_bytes(&w),
        before,
        "a refused import changed the store"
    );
    let log = w.daemon.log_text();
    assert!(
        !log.contains(marker) && !log.contains(&victim.secret()),
        "{log}"
    );
}
