//! `make stress` (minutes, not in CI): what held under abuse, written to docs/RELIABILITY.md's
//! results file (`bench/stress-results.md`).
//!
//! 1. 64 concurrent logins with one valid code, 100 rounds: exactly one success each round;
//!    the same with one recovery code; google-authenticator in the same rounds (its
//!    acceptances counted, with and without DISALLOW_REUSE, scratch codes for recovery).
//! 2. The daemon SIGKILLed at random moments during 1,000 admin writes and enrollments: every
//!    record loads and every acknowledged change is there.
//! 3. A full disk: a login that cannot persist its replay step is refused, nothing is
//!    corrupted, and logins work once space returns.
//! 4. Randomized inputs (a fuzzer that runs on stable) against the policy parser, the record
//!    parser, the code normalisers and the user-name check, a fixed time each: no panic, and
//!    every policy error carries a position inside the text.
//! 5. Guessing: wrong codes from thousands of source addresses (the per-user tier), wrong codes
//!    through the daemon as the user, prompts held open and answered late, and randomized
//!    requests to the verification service (`twofold-verifyd`) and its protocol parser.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a stress tool: a failure aborts the run

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use twofold_bench::{NSS_WRAPPER, Service, enroll, secret_file_with};
use twofold_policy::totp::{self, Params, Secret};
use twofold_policy::{Store, UserName};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// A small xorshift generator seeded from the OS: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `n` concurrent pamtester logins as `user` on `service`, each from its own address, all
/// answering `answer`; how many succeeded.
fn race(t: &Path, service: &str, user: &str, answer: &str, n: usize) -> usize {
    let mut children: Vec<_> = (0..n)
        .map(|i| {
            Command::new("pamtester")
                .args(["-I", &format!("rhost=10.77.{}.{}", i / 250, i % 250 + 1)])
                .args([service, user, "authenticate"])
                .env("LD_PRELOAD", NSS_WRAPPER)
                .env("NSS_WRAPPER_PASSWD", t.join("passwd"))
                .env("NSS_WRAPPER_GROUP", t.join("group"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let stdins: Vec<_> = children
        .iter_mut()
        .map(|c| c.stdin.take().unwrap())
        .collect();
    for mut s in stdins {
        let _ = s.write_all(format!("{answer}\n").as_bytes());
    }
    children
        .into_iter()
        .map(|mut c| c.wait().unwrap())
        .filter(|s| s.success())
        .count()
}

fn concurrency(t: &Path, module: &Path, rounds: usize, n: usize, out: &mut String) {
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    for r in 0..rounds * 2 {
        let _ = writeln!(
            passwd,
            "s{r}:x:{}:{}::/nonexistent:/bin/sh",
            30000 + r,
            30000 + r
        );
    }
    std::fs::write(t.join("passwd"), passwd).unwrap();
    std::fs::write(t.join("group"), "root:x:0:\n").unwrap();
    std::fs::write(t.join("policy.toml"), "mode = \"optional\"\n").unwrap();
    let state = t.join("state");
    let store = Store::open_or_create(&state).unwrap();
    for d in ["ga", "gar"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    let pid = std::process::id();
    let tf = Service::new(
        &format!("twofold-stress-{pid}-tf"),
        &format!(
            "auth required {} policy={}/policy.toml state={}\n",
            module.display(),
            t.display(),
            state.display()
        ),
    );
    let ga = Service::new(
        &format!("twofold-stress-{pid}-ga"),
        &format!(
            "auth required pam_google_authenticator.so secret={}/ga/${{USER}} user=root\n",
            t.display()
        ),
    );
    let gar = Service::new(
        &format!("twofold-stress-{pid}-gar"),
        &format!(
            "auth required pam_google_authenticator.so secret={}/gar/${{USER}} user=root\n",
            t.display()
        ),
    );
    // counts[module][kind] = acceptances per round
    let mut counts: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for r in 0..rounds {
        for (kind, user) in [
            ("code", format!("s{}", 2 * r)),
            ("recovery", format!("s{}", 2 * r + 1)),
        ] {
            let secret = Secret::generate().unwrap();
            let recovery = enroll(&store, &user, &secret);
            let scratch = vec![
                format!("{:08}", 10_000_000 + r * 2 + 1),
                format!("{:08}", 20_000_000 + r),
            ];
            secret_file_with(&t.join("ga"), &user, &secret, false, &scratch);
            secret_file_with(&t.join("gar"), &user, &secret, true, &scratch);
            let code =
                totp::code_at(&secret, Params::default(), twofold_policy::time::now()).unwrap();
            let (tf_answer, ga_answer) = match kind {
                "code" => (code.to_string(), code.to_string()),
                _ => (recovery[0].clone(), scratch[0].clone()),
            };
            for (name, svc, answer) in [
                ("twofold", &tf, &tf_answer),
                ("ga-stateless", &ga, &ga_answer),
                ("ga-disallow-reuse", &gar, &ga_answer),
            ] {
                let ok = race(t, &svc.name(), &user, answer, n);
                counts.entry((name, kind)).or_default().push(ok);
            }
        }
        eprint!(".");
    }
    eprintln!();
    let _ = writeln!(
        out,
        "\n## 1. {n} concurrent logins with one code, {rounds} rounds\n\n| module | one valid code: accepted per round (min / max / rounds with exactly 1) | one recovery / scratch code: same |\n|---|---|---|"
    );
    for name in ["twofold", "ga-stateless", "ga-disallow-reuse"] {
        let cell = |kind| {
            let v = &counts[&(name, kind)];
            format!(
                "{} / {} / {} of {}",
                v.iter().min().unwrap(),
                v.iter().max().unwrap(),
                v.iter().filter(|&&c| c == 1).count(),
                v.len()
            )
        };
        let _ = writeln!(out, "| {name} | {} | {} |", cell("code"), cell("recovery"));
    }
    drop((tf, ga, gar));
}

fn daemon_kills(t: &Path, enrolld: &Path, writes: usize, rng: &mut Rng, out: &mut String) {
    let dir = t.join("kbus");
    let (mut bus, address) = twofold_bench::private_bus(&dir);
    std::fs::write(dir.join("policy.toml"), "mode = \"optional\"\n").unwrap();
    let state = dir.join("state");
    // Targets: real accounts every machine has.
    let targets = ["daemon", "bin", "sys", "games", "man"];
    let start_daemon = || twofold_bench::start_enrolld(enrolld, &dir, &state, &address);
    let (conn, proxy) = twofold_bench::connect(&address);
    let mut daemon = start_daemon();
    let wait_ready = |proxy: &twofold_enrolld::api::ManagerProxy<'_>| {
        let s = Instant::now();
        while zbus::block_on(proxy.get_status()).is_err() {
            assert!(s.elapsed() < Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_ready(&proxy);
    // The killer: SIGKILL to whichever daemon runs, at random moments, from another thread,
    // so that kills land in the middle of calls.
    let current = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(daemon.id()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kills = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let killer = {
        let (current, stop, kills) = (current.clone(), stop.clone(), kills.clone());
        let mut krng = Rng::new(rng.next());
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20 + krng.below(200) as u64));
                let pid = current.load(Ordering::SeqCst);
                if pid != 0
                    && Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                {
                    kills.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let mut acked_mode: HashMap<&str, &str> = HashMap::new();
    let mut maybe: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut acked_enrollment = false;
    let mut recovery: Vec<String> = Vec::new();
    let (mut done, mut refused) = (0, 0);
    while done < writes {
        // A dead daemon is restarted (the killer may strike again at any time).
        if daemon.try_wait().ok().flatten().is_some() {
            current.store(0, std::sync::atomic::Ordering::SeqCst);
            daemon = start_daemon();
            current.store(daemon.id(), std::sync::atomic::Ordering::SeqCst);
            let s = Instant::now();
            while zbus::block_on(proxy.get_status()).is_err()
                && s.elapsed() < Duration::from_secs(20)
            {
                std::thread::sleep(Duration::from_millis(10));
                if daemon.try_wait().ok().flatten().is_some() {
                    break;
                }
            }
            continue;
        }
        if rng.below(5) == 0 {
            // An enrollment of root (the caller) with a fresh secret, replacing the last.
            // Replacing needs the current factor: one of the recovery codes of the last
            // acknowledged enrollment (a code of the app would be refused as a replay within
            // the same 30 s step).
            let proof = recovery.pop().unwrap_or_default();
            let r = zbus::block_on(async {
                let new = proxy.begin_enrollment(true, &proof).await?;
                let secret = Secret::from_base32(&new.secret).unwrap();
                let code =
                    totp::code_at(&secret, Params::default(), twofold_policy::time::now()).unwrap();
                proxy.confirm_enrollment(&code).await
            });
            match r {
                Ok(codes) => {
                    recovery = codes;
                    acked_enrollment = true;
                    done += 1;
                }
                Err(_) => refused += 1,
            }
            continue;
        }
        let t = targets[rng.below(targets.len())];
        let (mode, call) = match rng.below(3) {
            0 => ("required", zbus::block_on(proxy.require(t))),
            1 => ("disabled", zbus::block_on(proxy.exempt(t))),
            _ => ("optional", zbus::block_on(proxy.allow(t))),
        };
        match call {
            Ok(_) => {
                acked_mode.insert(t, mode);
                maybe.remove(t);
                done += 1;
            }
            Err(_) => {
                maybe.entry(t).or_default().push(mode);
                refused += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    killer.join().unwrap();
    let kills = kills.load(std::sync::atomic::Ordering::SeqCst);
    let _ = daemon.kill();
    let _ = daemon.wait();
    drop(conn);
    let _ = bus.kill();
    let _ = bus.wait();
    // Every record loads and holds every acknowledged change.
    let store = Store::open(&state).unwrap();
    let mut problems = Vec::new();
    for (t, mode) in &acked_mode {
        let rec = store.read(&UserName::parse(t).unwrap());
        match rec {
            Ok(s) => {
                let got = s
                    .record
                    .and_then(|r| r.admin_override)
                    .map(|o| o.mode.to_string());
                // The acknowledged mode, or one of the calls cut off by a kill after it.
                let ok = got.as_deref() == Some(*mode)
                    || maybe
                        .get(t)
                        .is_some_and(|m| got.as_deref().is_some_and(|g| m.contains(&g)));
                if !ok {
                    problems.push(format!("{t}: {got:?}, acknowledged {mode}"));
                }
            }
            Err(e) => problems.push(format!("{t}: does not load: {e}")),
        }
    }
    if acked_enrollment {
        match store.read(&UserName::parse("root").unwrap()) {
            Ok(st) => {
                let got = st.record.and_then(|r| r.enrollment).and_then(|e| {
                    e.authenticators
                        .first()
                        .map(|a| a.secret().unwrap().to_base32().to_string())
                });
                // A later, unacknowledged enrollment may have landed too; only a loss is a problem.
                if got.is_none() {
                    problems.push("root: acknowledged enrollment lost".into());
                }
            }
            Err(e) => problems.push(format!("root: does not load: {e}")),
        }
    }
    let leftovers = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    let _ = writeln!(
        out,
        "\n## 2. The daemon SIGKILLed at random moments\n\n{done} acknowledged admin writes and enrollments, {kills} SIGKILLs from another thread at random moments (every 20–220 ms, so in the middle of calls), {refused} calls cut off or refused while the daemon was down. Records checked: {} users' overrides and root's enrollment. Problems: {}. Temporary files left by killed writers: {leftovers} (removed by the next writer of that user).",
        acked_mode.len(),
        if problems.is_empty() {
            "none".to_owned()
        } else {
            problems.join("; ")
        }
    );
    assert!(problems.is_empty(), "{problems:?}");
}

fn disk_full(t: &Path, module: &Path, out: &mut String) {
    let state = t.join("fullstate");
    std::fs::create_dir_all(&state).unwrap();
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64k,mode=0700",
            "twofold-stress-full",
        ])
        .arg(&state)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(state.clone());
    std::fs::write(
        t.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nfull1:x:31000:31000::/nonexistent:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(t.join("group"), "root:x:0:\n").unwrap();
    std::fs::write(t.join("policy.toml"), "mode = \"optional\"\n").unwrap();
    let store = Store::open(&state).unwrap();
    let secret = Secret::generate().unwrap();
    enroll(&store, "full1", &secret);
    let record_before = std::fs::read(state.join("full1.toml")).unwrap();
    let svc = Service::new(
        &format!("twofold-stress-{}-full", std::process::id()),
        &format!(
            "auth required {} policy={}/policy.toml state={}\n",
            module.display(),
            t.display(),
            state.display()
        ),
    );
    // Fill the disk.
    let mut filler = std::fs::File::create(state.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while filler.write_all(&chunk).is_ok() {}
    let _ = filler.sync_all();
    let login = |offset: i64| {
        let now = twofold_policy::time::now() as i64 + offset * 30;
        let code = totp::code_at(&secret, Params::default(), now as u64).unwrap();
        race(t, &svc.name(), "full1", &code, 1)
    };
    let refused_when_full = login(0) == 0;
    let record_intact = std::fs::read(state.join("full1.toml")).unwrap() == record_before;
    drop(filler);
    std::fs::remove_file(state.join("filler")).unwrap();
    let works_after = login(1) == 1;
    let _ = writeln!(
        out,
        "\n## 3. A full disk (64 KiB tmpfs as the state directory)\n\n| check | held |\n|---|---|\n| a valid code is refused when its replay step cannot be stored | {refused_when_full} |\n| the record is byte for byte unchanged | {record_intact} |\n| with space back, the next code logs in | {works_after} |"
    );
    assert!(refused_when_full && record_intact && works_after);
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..=rng.below(8) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            2 => {
                let i = rng.below(v.len() + 1);
                let pieces: [&[u8]; 12] = [
                    b"[",
                    b"]",
                    b"=",
                    b"\"",
                    b"\n",
                    b"[users.",
                    b"mode",
                    b"\"required\"",
                    b"#",
                    b"\\u0000",
                    b"'''",
                    b"1d",
                ];
                let p = pieces[rng.below(pieces.len())];
                for (k, b) in p.iter().enumerate() {
                    v.insert(i + k, *b);
                }
            }
            3 if v.len() > 2 => {
                let a = rng.below(v.len());
                let b = rng.below(v.len());
                let (a, b) = (a.min(b), a.max(b));
                let slice = v[a..b].to_vec();
                let i = rng.below(v.len() + 1);
                for (k, x) in slice.iter().enumerate() {
                    v.insert(i + k, *x);
                }
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v
}

fn fuzz(seconds: u64, rng: &mut Rng, out: &mut String) {
    let policy_seed = std::fs::read("packaging/policy.toml").unwrap();
    let record_seed = {
        let s = Secret::generate().unwrap();
        let mut r = twofold_policy::record::Record::new("alice");
        r.enrollment = Some(twofold_policy::record::Enrollment::new(
            &s,
            Params::default(),
            1,
            vec![],
        ));
        toml::to_string(&r).unwrap().into_bytes()
    };
    let mut rows = Vec::new();
    // Policy parser.
    let (mut n, mut errors, mut positioned) = (0u64, 0u64, 0u64);
    let stop = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < stop {
        let input = mutate(rng, &policy_seed);
        let text = String::from_utf8_lossy(&input);
        let r = std::panic::catch_unwind(|| {
            twofold_policy::Policy::parse_one(Path::new("fuzz.toml"), &text)
        });
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                errors += 1;
                if let Some((line, col)) = e.position {
                    positioned += 1;
                    assert!(
                        line >= 1 && col >= 1 && line <= text.lines().count().max(1) + 1,
                        "{e} for {text:?}"
                    );
                }
            }
            Err(_) => panic!("policy parser panicked on {text:?}"),
        }
        n += 1;
    }
    rows.push(format!("| policy parser (mutations of packaging/policy.toml) | {n} | {errors} rejected ({positioned} with line:col inside the text, the rest file-level), 0 panics |"));
    // Record parser.
    let (mut n, mut errors) = (0u64, 0u64);
    let stop = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < stop {
        let input = mutate(rng, &record_seed);
        let text = String::from_utf8_lossy(&input).into_owned();
        let r =
            std::panic::catch_unwind(|| toml::from_str::<twofold_policy::record::Record>(&text));
        match r {
            Ok(Ok(rec)) => {
                let _ = rec
                    .enrollment
                    .map(|e| e.authenticators.iter().all(|a| a.secret().is_ok()));
            }
            Ok(Err(_)) => errors += 1,
            Err(_) => panic!("record parser panicked on {text:?}"),
        }
        n += 1;
    }
    rows.push(format!(
        "| record parser (mutations of a real record) | {n} | {errors} rejected, 0 panics |"
    ));
    // Code input and names.
    let (mut n, mut accepted) = (0u64, 0u64);
    let stop = Instant::now() + Duration::from_secs(seconds);
    let secret = Secret::generate().unwrap();
    while Instant::now() < stop {
        let len = rng.below(40);
        let bytes: Vec<u8> = (0..len)
            .map(|_| match rng.below(4) {
                0 => b'0' + rng.below(10) as u8,
                1 => b" -\t\n\0"[rng.below(5)],
                _ => rng.next() as u8,
            })
            .collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let r = std::panic::catch_unwind(|| {
            let a = totp::normalize_code(&text, 6).is_some();
            let _ = twofold_policy::recovery::normalize(&text);
            let _ = UserName::parse(&text);
            let v = totp::verify(
                &secret,
                Params::default(),
                &text,
                twofold_policy::time::now(),
                1,
                None,
            );
            (a, v)
        });
        match r {
            Ok((_, Ok(totp::Verdict::Accepted { .. }))) => accepted += 1,
            Ok(_) => {}
            Err(_) => panic!("input handling panicked on {text:?}"),
        }
        n += 1;
    }
    rows.push(format!("| code normalisers, verify, recovery normaliser, user names (random bytes) | {n} | {accepted} random inputs happened to be a valid code, 0 panics |"));
    let _ = writeln!(
        out,
        "\n## 4. Randomized inputs, {seconds} s each (seeded xorshift; the seed is printed above)\n\n| target | inputs | outcome |\n|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(out, "{r}");
    }
}

/// pamtester as `user` on `service` from `rhost` (none: local) answering `answer`.
struct Tried {
    /// Authenticated.
    ok: bool,
    /// The code prompt was shown (a source the throttle refuses is refused before it).
    prompted: bool,
    /// The answer was checked as a code: prompted, and not then refused unchecked (the throttle
    /// deciding again under the user's lock, which a prompt shown meanwhile to a concurrent
    /// login of another source may find closed; or the lock busy).
    checked: bool,
}

fn login_tried(service: &str, user: &str, rhost: Option<&str>, answer: &str) -> Tried {
    let mut cmd = Command::new("pamtester");
    if let Some(h) = rhost {
        cmd.args(["-I", &format!("rhost={h}")]);
    }
    let mut c = cmd
        .args([service, user, "authenticate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = c.stdin.take().unwrap().write_all(answer.as_bytes());
    let out = c.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let prompted = text.contains("Verification code");
    let unchecked = [
        "Too many wrong codes",
        "Another login of this account",
        "was not one",
    ]
    .iter()
    .any(|m| text.contains(m));
    Tried {
        ok: out.status.success(),
        prompted,
        checked: prompted && !unchecked,
    }
}

/// [`login_tried`]: success and whether the code prompt was shown.
fn login(service: &str, user: &str, rhost: Option<&str>, answer: &str) -> (bool, bool) {
    let t = login_tried(service, user, rhost, answer);
    (t.ok, t.prompted)
}

fn guessing(t: &Path, target: &Path, sources: usize, rng: &mut Rng, out: &mut String) {
    let module = target.join("libpam_twofold.so").canonicalize().unwrap();
    let dir = t.join("guess");
    std::fs::create_dir_all(dir.join("state")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("state"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("policy.toml"), "mode = \"optional\"\n").unwrap();
    let store = Store::open(&dir.join("state")).unwrap();
    let secret = Secret::generate().unwrap();
    enroll(&store, "daemon", &secret);
    let svc = Service::new(
        &format!("twofold-stress-guess-{}", std::process::id()),
        &format!(
            "auth required {} policy={d}/policy.toml state={d}/state\n",
            module.display(),
            d = dir.display()
        ),
    );
    let name = svc.name();
    let code = || {
        totp::code_at(&secret, Params::default(), twofold_policy::time::now())
            .unwrap()
            .to_string()
    };
    let _ = writeln!(
        out,
        "\n## 5. Guessing\n\n| attack | tries | codes checked | outcome |\n|---|---|---|---|"
    );
    // a. Many addresses: one wrong code from each of `sources` IPv6 /64s, 4 at a time.
    let (ok, _) = login(
        &name,
        "daemon",
        Some("192.0.2.10"),
        &format!("{}\n", code()),
    );
    assert!(ok, "the user's own login from home");
    let shown = std::sync::atomic::AtomicUsize::new(0);
    let checked = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..4 {
            let (name, shown, checked) = (&name, &shown, &checked);
            s.spawn(move || {
                for i in (w..sources).step_by(4) {
                    let host = format!("2001:db8:{:x}:{:x}::1", i / 0x10000, i % 0x10000);
                    let t = login_tried(name, "daemon", Some(&host), "000000\n");
                    assert!(!t.ok);
                    if t.prompted {
                        shown.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    if t.checked {
                        checked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let took = started.elapsed().as_secs_f64();
    let u = UserName::parse("daemon").unwrap();
    let c = store.read_counters(&u).unwrap();
    let size = std::fs::metadata(dir.join("state/daemon.counters"))
        .unwrap()
        .len();
    let (home, _) = login(
        &name,
        "daemon",
        Some("192.0.2.10"),
        &format!("{}\n", {
            std::thread::sleep(Duration::from_secs(30 - twofold_policy::time::now() % 30));
            code()
        }),
    );
    let _ = writeln!(
        out,
        "| one wrong code from each of {sources} IPv6 /64s ({took:.0} s) | {sources} | {} (the user's consecutive failures: {}) | {} prompts shown (the pre-prompt throttle reads without the lock, so concurrent logins may see a prompt the check under the lock then refuses unchecked); the rest refused unchecked; {} sources remembered, counters file {size} bytes; the user then logged in from home: {} |",
        checked.load(std::sync::atomic::Ordering::SeqCst),
        c.user_failures,
        shown.load(std::sync::atomic::Ordering::SeqCst),
        c.failures.len(),
        if home { "yes" } else { "NO" }
    );
    // b. Held prompts: 32 prompts from one address opened at once, answered wrong 65 s later.
    let mut held: Vec<_> = (0..32)
        .map(|_| {
            Command::new("pamtester")
                .args(["-I", "rhost=198.51.100.99", &name, "daemon", "authenticate"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(65));
    let answered = twofold_policy::time::now();
    for c in &mut held {
        let _ = c.stdin.take().unwrap().write_all(b"000000\n");
    }
    for mut c in held {
        let _ = c.wait();
    }
    let c = store.read_counters(&u).unwrap();
    let f = c.failures.get("198.51.100.99").cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "| 32 prompts from one address held open 65 s, then answered wrong at once | 32 | {} | {} refused unchecked under the lock; the failures are stamped {} s after the prompts opened (at the answer) |",
        f.count,
        32 - f.count,
        f.last.saturating_sub(answered.saturating_sub(65))
    );
    drop(svc);
    // c. Through the daemon, as the user (root here): wrong codes to every method that checks one.
    let bdir = t.join("gbus");
    let (mut bus, address) = twofold_bench::private_bus(&bdir);
    std::fs::write(bdir.join("policy.toml"), "mode = \"optional\"\n").unwrap();
    let bstate = bdir.join("state");
    let enrolld = target.join("twofold-enrolld").canonicalize().unwrap();
    let mut daemon = twofold_bench::start_enrolld(&enrolld, &bdir, &bstate, &address);
    let (conn, proxy) = twofold_bench::connect(&address);
    let s = Instant::now();
    while zbus::block_on(proxy.get_status()).is_err() {
        assert!(s.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    let new = zbus::block_on(proxy.begin_enrollment(false, "")).unwrap();
    let key = Secret::from_base32(&new.secret).unwrap();
    zbus::block_on(proxy.confirm_enrollment(
        &totp::code_at(&key, Params::default(), twofold_policy::time::now()).unwrap(),
    ))
    .unwrap();
    let (mut checked, mut throttled, n) = (0, 0, 3000);
    let started = Instant::now();
    for i in 0..n {
        let r = match i % 3 {
            0 => zbus::block_on(proxy.disable("000000")).map(|_| ()),
            1 => zbus::block_on(proxy.regenerate_recovery_codes("000000")).map(|_| ()),
            _ => zbus::block_on(proxy.begin_enrollment(true, "000000")).map(|_| ()),
        };
        match r {
            Err(twofold_enrolld::api::Error::InvalidCode(_)) => checked += 1,
            Err(twofold_enrolld::api::Error::Throttled(_)) => throttled += 1,
            other => panic!("{other:?}"),
        }
    }
    let _ = writeln!(
        out,
        "| wrong codes to Disable, RegenerateRecoveryCodes, BeginEnrollment(replace) over D-Bus as the user ({:.0} calls/s) | {n} | {checked} | {throttled} refused unchecked (Throttled) |",
        n as f64 / started.elapsed().as_secs_f64()
    );
    drop(conn);
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = bus.kill();
    let _ = bus.wait();
    // d. The verification service: randomized requests over its socket, then a valid one.
    let verifyd = target.join("twofold-verifyd").canonicalize().unwrap();
    let sock = dir.join("verify.sock");
    let mut v = Command::new(&verifyd)
        .arg("--listen")
        .arg(&sock)
        .arg("--policy")
        .arg(dir.join("policy.toml"))
        .arg("--state")
        .arg(dir.join("state"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let s = Instant::now();
    while !sock.exists() {
        assert!(s.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    let valid = "twofold-verify 1\nop=query\nuser=daemon\nservice=x\nrhost=\n\n";
    let (mut sent, mut answered_ok, mut parsed) = (0u64, 0u64, 0u64);
    let stop = Instant::now() + Duration::from_secs(20);
    while Instant::now() < stop {
        let bytes = mutate(rng, valid.as_bytes());
        if twofold_policy::verify::Request::decode(&String::from_utf8_lossy(&bytes)).is_ok() {
            parsed += 1;
        }
        if let Ok(mut c) = std::os::unix::net::UnixStream::connect(&sock) {
            use std::io::Read;
            let _ = c.set_read_timeout(Some(Duration::from_secs(6)));
            let _ = c.write_all(&bytes);
            let _ = c.shutdown(std::net::Shutdown::Write);
            let mut buf = Vec::new();
            if c.read_to_end(&mut buf).is_ok() && buf.starts_with(b"twofold-verify 1") {
                answered_ok += 1;
            }
        }
        sent += 1;
    }
    let req = twofold_policy::verify::Request::decode(valid).unwrap();
    let alive = twofold_policy::verify::ask(&sock, &req).is_ok();
    let _ = v.kill();
    let _ = v.wait();
    let _ = writeln!(
        out,
        "| randomized requests to twofold-verifyd over its socket (20 s) | {sent} | - | {parsed} parsed as requests, {answered_ok} answered, the rest dropped; service still answering afterwards: {} |",
        if alive { "yes" } else { "NO" }
    );
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("make stress needs root");
        std::process::exit(1);
    }
    let target = PathBuf::from(arg("--target", "target/release"));
    let module = target.join("libpam_twofold.so").canonicalize().unwrap();
    let enrolld = target.join("twofold-enrolld").canonicalize().unwrap();
    let rounds: usize = arg("--rounds", "100").parse().unwrap();
    let logins: usize = arg("--logins", "64").parse().unwrap();
    let writes: usize = arg("--writes", "1000").parse().unwrap();
    let fuzz_secs: u64 = arg("--fuzz-seconds", "60").parse().unwrap();
    let out_path = PathBuf::from(arg("--out", "bench/stress-results.md"));
    let mut seed_bytes = [0u8; 8];
    getrandom_fill(&mut seed_bytes);
    let seed: u64 = arg("--seed", &u64::from_le_bytes(seed_bytes).to_string())
        .parse()
        .unwrap();
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let mut out = format!(
        "# twofold stress results\n\n{}, `make stress` (seed {seed}).\n",
        twofold_policy::time::human(twofold_policy::time::now())
    );
    let parts = arg("--parts", "12345");
    let sources: usize = arg("--sources", "5000").parse().unwrap();
    if parts.contains('1') {
        eprintln!("1. concurrency ({rounds} rounds of {logins})");
        concurrency(tmp.path(), &module, rounds, logins, &mut out);
    }
    if parts.contains('2') {
        eprintln!("2. daemon kills ({writes} writes)");
        daemon_kills(tmp.path(), &enrolld, writes, &mut rng, &mut out);
    }
    if parts.contains('3') {
        eprintln!("3. full disk");
        disk_full(tmp.path(), &module, &mut out);
    }
    if parts.contains('4') {
        eprintln!("4. fuzzing ({fuzz_secs} s each)");
        fuzz(fuzz_secs, &mut rng, &mut out);
    }
    if parts.contains('5') {
        eprintln!("5. guessing ({sources} sources, held prompts, daemon, verification socket)");
        guessing(tmp.path(), &target, sources, &mut rng, &mut out);
    }
    print!("{out}");
    std::fs::write(&out_path, out).unwrap();
    eprintln!("written to {}", out_path.display());
}

fn getrandom_fill(buf: &mut [u8]) {
    let f = std::fs::File::open("/dev/urandom").and_then(|mut f| {
        use std::io::Read;
        f.read_exact(buf)
    });
    if f.is_err() {
        let t = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
        buf.copy_from_slice(&t.to_le_bytes()[..buf.len().min(8)]);
    }
}
