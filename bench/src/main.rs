//! `make bench`: twofold side by side with google-authenticator-libpam, in one run, on this
//! machine. Prints a table and writes `bench/results.md`. Figures, not assertions.
//!
//! 1. Logins through the real libpam (`pam_bench`, a small C program: pam_start +
//!    pam_authenticate + pam_end in one process) over distinct enrolled users, each logging in
//!    once with a valid code; twofold against pam_google_authenticator stateless and with
//!    DISALLOW_REUSE, in interleaved rounds. Users come from nss_wrapper, so no account is made.
//! 2. The cost of a refused (wrong) code.
//! 3. Policy scale: 10,000 `[users.*]` and 1,000 `[groups.*]` tables, 100,000 records.
//! 4. The daemon: `ListUsers` over 100,000 records, status calls per second from 8 clients,
//!    resident memory.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a benchmark tool: a failure aborts the run

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use twofold_bench::{NSS_WRAPPER, Service, enroll, secret_file, stats};
use twofold_policy::record::{Enrollment, Record};
use twofold_policy::resolve::{RecordFacts, Subject, resolve};
use twofold_policy::totp::{self, Params, Secret};
use twofold_policy::{Policy, Store, UserName};

struct Args {
    /// Logins per module per round.
    per_round: usize,
    rounds: usize,
    records: usize,
    out: PathBuf,
    module: PathBuf,
    pam_bench: PathBuf,
    enrolld: PathBuf,
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// Runs `pam_bench SERVICE FILE`; returns (full µs, auth µs, succeeded) per login.
fn pam_bench(
    a: &Args,
    tmp: &Path,
    service: &str,
    logins: &[(String, String)],
) -> Vec<(f64, f64, bool)> {
    let file = tmp.join(format!("logins-{service}"));
    let mut text = String::new();
    for (u, c) in logins {
        let _ = writeln!(text, "{u} {c}");
    }
    std::fs::write(&file, text).unwrap();
    let out = Command::new(&a.pam_bench)
        .arg(service)
        .arg(&file)
        .env("LD_PRELOAD", NSS_WRAPPER)
        .env("NSS_WRAPPER_PASSWD", tmp.join("passwd"))
        .env("NSS_WRAPPER_GROUP", tmp.join("group"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse::<f64>().unwrap() / 1000.0,
                f[1].parse::<f64>().unwrap() / 1000.0,
                f[2] == "0",
            )
        })
        .collect()
}

struct Row {
    what: String,
    cells: Vec<String>,
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("make bench needs root (PAM service files in /etc/pam.d, root-owned state)");
        std::process::exit(1);
    }
    let target = PathBuf::from(arg("--target", "target/release"));
    let a = Args {
        per_round: arg("--logins", "200").parse().unwrap(),
        rounds: arg("--rounds", "5").parse().unwrap(),
        records: arg("--records", "100000").parse().unwrap(),
        out: PathBuf::from(arg("--out", "bench/results.md")),
        module: target.join("libpam_twofold.so").canonicalize().unwrap(),
        pam_bench: PathBuf::from(arg("--pam-bench", "target/pam_bench")),
        enrolld: target.join("twofold-enrolld").canonicalize().unwrap(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // ---- 1 and 2: logins through libpam ----
    let modules = ["twofold", "ga-stateless", "ga-disallow-reuse"];
    let total = a.per_round * a.rounds;
    // Users: per module, `total` for valid codes and `per_round` for wrong ones.
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut users: Vec<Vec<String>> = vec![Vec::new(); modules.len()];
    let mut wrong_users: Vec<Vec<String>> = vec![Vec::new(); modules.len()];
    let mut uid = 20000;
    for (m, _) in modules.iter().enumerate() {
        for i in 0..total + a.per_round {
            let name = format!("b{m}u{i}");
            let _ = writeln!(passwd, "{name}:x:{uid}:{uid}::/nonexistent:/bin/sh");
            uid += 1;
            if i < total {
                users[m].push(name);
            } else {
                wrong_users[m].push(name);
            }
        }
    }
    std::fs::write(t.join("passwd"), &passwd).unwrap();
    std::fs::write(t.join("group"), "root:x:0:\n").unwrap();
    std::fs::write(
        t.join("policy.toml"),
        "mode = \"optional\"\n[groups.wheel]\nmode = \"required\"\n[services.sudo]\nmode = \"disabled\"\n",
    )
    .unwrap();
    let state = t.join("state");
    let store = Store::open_or_create(&state).unwrap();
    for d in ["ga", "ga-reuse"] {
        std::fs::create_dir(t.join(d)).unwrap();
    }
    let mut secrets: Vec<Vec<Secret>> = vec![Vec::new(); modules.len()];
    for (m, list) in users
        .iter()
        .zip(&wrong_users)
        .enumerate()
        .map(|(m, (u, w))| (m, u.iter().chain(w)))
    {
        for u in list {
            let s = Secret::generate().unwrap();
            match m {
                0 => {
                    enroll(&store, u, &s);
                }
                1 => secret_file(&t.join("ga"), u, &s, false),
                _ => secret_file(&t.join("ga-reuse"), u, &s, true),
            }
            secrets[m].push(s);
        }
    }
    let pid = std::process::id();
    let services = [
        Service::new(
            &format!("twofold-bench-{pid}-tf"),
            &format!(
                "auth required {} policy={}/policy.toml state={}\n",
                a.module.display(),
                t.display(),
                state.display()
            ),
        ),
        Service::new(
            &format!("twofold-bench-{pid}-ga"),
            &format!(
                "auth required pam_google_authenticator.so secret={}/ga/${{USER}} user=root\n",
                t.display()
            ),
        ),
        Service::new(
            &format!("twofold-bench-{pid}-gar"),
            &format!(
                "auth required pam_google_authenticator.so secret={}/ga-reuse/${{USER}} user=root\n",
                t.display()
            ),
        ),
    ];
    let mut full: Vec<Vec<f64>> = vec![Vec::new(); modules.len()];
    let mut auth: Vec<Vec<f64>> = vec![Vec::new(); modules.len()];
    let mut failures = vec![0usize; modules.len()];
    for r in 0..a.rounds {
        // Interleaved: the order of the modules rotates every round.
        for k in 0..modules.len() {
            let m = (r + k) % modules.len();
            let now = twofold_policy::time::now();
            let logins: Vec<(String, String)> = (r * a.per_round..(r + 1) * a.per_round)
                .map(|i| {
                    let code = totp::code_at(&secrets[m][i], Params::default(), now).unwrap();
                    (users[m][i].clone(), code.to_string())
                })
                .collect();
            for (f, au, ok) in pam_bench(&a, t, &services[m].name(), &logins) {
                full[m].push(f);
                auth[m].push(au);
                if !ok {
                    failures[m] += 1;
                }
            }
        }
    }
    let mut wrong: Vec<Vec<f64>> = vec![Vec::new(); modules.len()];
    for m in 0..modules.len() {
        let logins: Vec<(String, String)> = wrong_users[m]
            .iter()
            .map(|u| (u.clone(), "000000".to_owned()))
            .collect();
        for (_, au, ok) in pam_bench(&a, t, &services[m].name(), &logins) {
            assert!(!ok, "a wrong code was accepted by {}", modules[m]);
            wrong[m].push(au);
        }
    }
    drop(services);
    let fmt = |(med, p90): (f64, f64)| format!("{med:.0} / {p90:.0}");
    let med = |v: &Vec<f64>| stats(v.clone()).0;
    for (m, name) in modules.iter().enumerate() {
        rows.push(Row {
            what: format!("login, {name}"),
            cells: vec![
                fmt(stats(full[m].clone())),
                fmt(stats(auth[m].clone())),
                fmt(stats(wrong[m].clone())),
                format!("{} of {}", full[m].len() - failures[m], full[m].len()),
            ],
        });
    }
    let ratio = |x: f64, y: f64| format!("{:.2}", x / y);
    notes.push(format!(
        "twofold / google-authenticator stateless: full login {}, pam_authenticate {}, wrong code {}",
        ratio(med(&full[0]), med(&full[1])),
        ratio(med(&auth[0]), med(&auth[1])),
        ratio(med(&wrong[0]), med(&wrong[1])),
    ));
    notes.push(format!(
        "twofold / google-authenticator DISALLOW_REUSE: full login {}, pam_authenticate {}, wrong code {}",
        ratio(med(&full[0]), med(&full[2])),
        ratio(med(&auth[0]), med(&auth[2])),
        ratio(med(&wrong[0]), med(&wrong[2])),
    ));

    // ---- 3: policy scale ----
    let scale = t.join("scale");
    std::fs::create_dir(&scale).unwrap();
    let mut big = String::from("mode = \"optional\"\nadmin_group = \"adm\"\n");
    for i in 0..10_000 {
        let _ = write!(
            big,
            "[users.user{i}]\nmode = \"{}\"\n",
            ["required", "optional", "disabled"][i % 3]
        );
    }
    for i in 0..1_000 {
        let _ = write!(
            big,
            "[groups.group{i}]\nmode = \"{}\"\n",
            ["required", "optional", "disabled"][i % 3]
        );
    }
    let big_path = scale.join("policy.toml");
    std::fs::write(&big_path, &big).unwrap();
    let mut load = Vec::new();
    for _ in 0..30 {
        let s = Instant::now();
        let p = Policy::load_system(&big_path).unwrap();
        load.push(s.elapsed().as_secs_f64() * 1e6);
        drop(p);
    }
    let policy = Policy::load_system(&big_path).unwrap();
    let groups: Vec<String> = (0..20).map(|i| format!("group{}", i * 37)).collect();
    let mut res = Vec::new();
    for i in 0..10_000 {
        let user = format!("someone{i}");
        let subject = Subject {
            user: &user,
            groups: &groups,
            service: Some("sshd"),
        };
        let s = Instant::now();
        let r = resolve(&policy, &subject, &RecordFacts::of(None), 0);
        res.push(s.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(r);
    }
    // 100,000 records (written directly, as a store of that size would hold them).
    let big_state = scale.join("state");
    let big_store = Store::open_or_create(&big_state).unwrap();
    let sample_secret = Secret::generate().unwrap();
    let mut template = Record::new("x");
    template.enrollment = Some(Enrollment::new(
        &sample_secret,
        Params::default(),
        1,
        vec![],
    ));
    let started = Instant::now();
    for i in 0..a.records {
        let name = format!("user{i}");
        let mut rec = template.clone();
        rec.user = name.clone();
        let text = toml::to_string(&rec).unwrap();
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(big_state.join(format!("{name}.toml")))
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    notes.push(format!(
        "{} records written in {:.1} s (for the scale tests)",
        a.records,
        started.elapsed().as_secs_f64()
    ));
    let mut read = Vec::new();
    let mut per_login = Vec::new();
    for i in 0..2_000 {
        let name = UserName::parse(&format!("user{}", (i * 7919) % a.records)).unwrap();
        let s = Instant::now();
        let r = big_store.read_record(&name).unwrap();
        read.push(s.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(r);
    }
    for i in 0..50 {
        let name = UserName::parse(&format!("user{}", (i * 7919) % a.records)).unwrap();
        let s = Instant::now();
        let p = Policy::load_system(&big_path).unwrap();
        let r = big_store.read_record(&name).unwrap();
        let subject = Subject {
            user: name.as_str(),
            groups: &groups,
            service: Some("sshd"),
        };
        let out = resolve(&p, &subject, &RecordFacts::of(r.as_ref()), 0);
        per_login.push(s.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(out);
    }
    // The login path: the compiled cache in the state directory (warm after the first login).
    let mut cached = Vec::new();
    for i in 0..2_000 {
        let name = format!("user{}", (i * 7919) % a.records);
        let w = twofold_policy::cache::Wanted {
            user: &name,
            groups: &groups,
            service: Some("sshd"),
        };
        let s = Instant::now();
        let p = Policy::load_for(&big_path, &big_store, &w).unwrap();
        let r = big_store
            .read_record(&UserName::parse(&name).unwrap())
            .unwrap();
        let subject = Subject {
            user: &name,
            groups: &groups,
            service: Some("sshd"),
        };
        let out = resolve(&p, &subject, &RecordFacts::of(r.as_ref()), 0);
        cached.push(s.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(out);
    }
    rows.push(Row {
        what: "policy of 10,000 users + 1,000 groups: load and parse".into(),
        cells: vec![
            fmt(stats(load)),
            String::new(),
            String::new(),
            String::new(),
        ],
    });
    rows.push(Row {
        what: "resolution in that policy (user in 20 groups)".into(),
        cells: vec![
            format!("{:.2} / {:.2}", stats(res.clone()).0, stats(res).1),
            String::new(),
            String::new(),
            String::new(),
        ],
    });
    rows.push(Row {
        what: format!("record read among {} records", a.records),
        cells: vec![
            format!("{:.1} / {:.1}", stats(read.clone()).0, stats(read).1),
            String::new(),
            String::new(),
            String::new(),
        ],
    });
    rows.push(Row {
        what: "per login, no cache: load that policy + read record + resolve".into(),
        cells: vec![
            fmt(stats(per_login)),
            String::new(),
            String::new(),
            String::new(),
        ],
    });
    rows.push(Row {
        what: "per login as the module does it: policy through its cache + read record + resolve"
            .into(),
        cells: vec![
            fmt(stats(cached)),
            String::new(),
            String::new(),
            String::new(),
        ],
    });

    // ---- 4: the daemon ----
    let daemon_rows = daemon_bench(&a, t, &big_state);
    rows.extend(daemon_rows);

    // ---- output ----
    let machine = format!(
        "{} ({} cores), {}",
        std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("model name\t: "))
            .unwrap_or("unknown CPU"),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        String::from_utf8_lossy(&Command::new("uname").arg("-sr").output().unwrap().stdout).trim()
    );
    let date = twofold_policy::time::human(twofold_policy::time::now());
    let mut md = format!(
        "# twofold benchmarks\n\n{date}, {machine}. `make bench` ({} logins per module in {} interleaved rounds; release build).\n\n\
         Times in µs, median / p90. Login: pam_start + pam_authenticate + pam_end in one process, through the real libpam, one valid code per distinct user; every twofold login writes its replay state.\n\n\
         | what | full login | pam_authenticate | refused (wrong code) | accepted |\n|---|---|---|---|---|\n",
        a.per_round, a.rounds
    );
    for r in &rows {
        let _ = writeln!(md, "| {} | {} |", r.what, r.cells.join(" | "));
    }
    md.push('\n');
    for n in &notes {
        let _ = writeln!(md, "- {n}");
    }
    print!("{md}");
    std::fs::write(&a.out, md).unwrap();
    eprintln!("written to {}", a.out.display());
}

fn rss_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn daemon_bench(a: &Args, t: &Path, state: &Path) -> Vec<Row> {
    let dir = t.join("bus");
    let (mut bus, address) = twofold_bench::private_bus(&dir);
    std::fs::write(dir.join("policy.toml"), "mode = \"optional\"\n").unwrap();
    let mut daemon = twofold_bench::start_enrolld(&a.enrolld, &dir, state, &address);
    let dpid = daemon.id();
    let (_c, proxy) = twofold_bench::connect(&address);
    let start = Instant::now();
    loop {
        if zbus::block_on(proxy.get_status()).is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_kb(dpid, "VmRSS:");
    let s = Instant::now();
    let n = zbus::block_on(proxy.list_users()).unwrap().len();
    let list_time = s.elapsed().as_secs_f64();
    let peak = rss_kb(dpid, "VmHWM:");
    // Status calls per second from 8 concurrent clients, for 3 s.
    let stop = Instant::now() + Duration::from_secs(3);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || {
                let (_c, p) = twofold_bench::connect(&address);
                let mut calls = 0u64;
                while Instant::now() < stop {
                    zbus::block_on(p.get_status()).unwrap();
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let calls: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = bus.kill();
    let _ = bus.wait();
    vec![
        Row {
            what: format!("daemon: ListUsers of {n} users (wall time)"),
            cells: vec![
                format!("{list_time:.2} s"),
                String::new(),
                String::new(),
                String::new(),
            ],
        },
        Row {
            what: "daemon: resident memory idle / peak during that list".into(),
            cells: vec![
                format!(
                    "{:.1} MiB / {:.1} MiB",
                    idle as f64 / 1024.0,
                    peak as f64 / 1024.0
                ),
                String::new(),
                String::new(),
                String::new(),
            ],
        },
        Row {
            what: "daemon: GetStatus calls per second, 8 concurrent clients".into(),
            cells: vec![
                format!("{:.0}/s", calls as f64 / 3.0),
                String::new(),
                String::new(),
                String::new(),
            ],
        },
    ]
}
