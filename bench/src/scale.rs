//! Policy scale (10,000 user and 1,000 group tables, 100,000 records) and the daemon.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use twofold_bench::stats;
use twofold_policy::record::{Enrollment, Record};
use twofold_policy::resolve::{RecordFacts, Subject, resolve};
use twofold_policy::totp::{Params, Secret};
use twofold_policy::{Policy, Store, UserName};

use crate::{Args, med};

struct Row {
    what: String,
    cells: Vec<String>,
}

/// Runs both parts; their section of results.md.
pub fn run(a: &Args, t: &Path) -> String {
    let fmt = |(med, p90): (f64, f64)| format!("{med:.0} / {p90:.0}");
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
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
    // In a directory of its own, as /etc/twofold is (the compiled cache is keyed by it).
    std::fs::create_dir_all(scale.join("policy")).unwrap();
    let big_path = scale.join("policy/policy.toml");
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
            from: None,
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
            from: None,
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
            from: None,
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

    // ---- the daemon ----
    // The daemon: the records' users unknown to /etc/passwd (every name goes to NSS), then
    // the same users as 100,000 local accounts (passwd, group and login.defs made for the
    // daemon alone, bind-mounted in a mount namespace of its own: the host's files are not
    // touched, and NSS in the daemon reads the big files as it would on such a host).
    rows.extend(daemon_bench(a, t, &big_state, None));
    let etc = t.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let mut group = std::fs::read_to_string("/etc/group").unwrap();
    for i in 0..a.records {
        let id = 100_000 + i;
        let _ = writeln!(
            passwd,
            "user{i}:x:{id}:{id}::/nonexistent:/usr/sbin/nologin"
        );
        let _ = writeln!(group, "user{i}:x:{id}:");
    }
    std::fs::write(etc.join("passwd"), passwd).unwrap();
    std::fs::write(etc.join("group"), group).unwrap();
    std::fs::write(etc.join("login.defs"), "UID_MIN 1000\nUID_MAX 999999\n").unwrap();
    // Old enough for the daemon to trust its parse of them (see enrolld's index).
    std::thread::sleep(Duration::from_millis(2100));
    rows.extend(daemon_bench(a, t, &big_state, Some(&etc)));

    let mut md = String::from(
        "\n## At scale, and the daemon\n\nTimes in µs, median / p90, in this process (no PAM).\n\n| what | median / p90 |\n|---|---|\n",
    );
    for r in &rows {
        let _ = writeln!(md, "| {} | {} |", r.what, r.cells[0]);
    }
    md.push('\n');
    for n in &notes {
        let _ = writeln!(md, "- {n}");
    }
    md
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

fn daemon_bench(a: &Args, t: &Path, state: &Path, etc: Option<&Path>) -> Vec<Row> {
    let dir = t.join(if etc.is_some() { "bus-etc" } else { "bus" });
    let (mut bus, address) = twofold_bench::private_bus(&dir);
    std::fs::write(dir.join("policy.toml"), "mode = \"optional\"\n").unwrap();
    let mut daemon = match etc {
        None => twofold_bench::start_enrolld(&a.enrolld, &dir, state, &address),
        Some(etc) => {
            let mounts: String = ["passwd", "group", "login.defs"]
                .iter()
                .map(|f| format!("mount --bind {}/{f} /etc/{f} && ", etc.display()))
                .collect();
            std::process::Command::new("unshare")
                .args(["-m", "--propagation", "private", "sh", "-c"])
                .arg(format!(
                    "{mounts}exec {} --policy {} --state {}",
                    a.enrolld.display(),
                    dir.join("policy.toml").display(),
                    state.display()
                ))
                .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        }
    };
    let who = if etc.is_some() {
        "daemon, users in /etc/passwd"
    } else {
        "daemon, users not in /etc/passwd"
    };
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
    // The peak of each phase alone: VmHWM is reset between them (clear_refs 5).
    let reset_peak = || {
        let _ = std::fs::write(format!("/proc/{dpid}/clear_refs"), "5");
    };
    let mib = |kb: u64| kb as f64 / 1024.0;
    let mut rows = Vec::new();
    let mut row = |what: String, cell: String| {
        rows.push(Row {
            what,
            cells: vec![cell, String::new(), String::new(), String::new()],
        });
    };
    // The console's calls: a first page of FindUsers (everyone; a name prefix; a status that
    // the first rows have; a status no row has, so every row is read), and Summary. Cold: the
    // first calls after the start, in this order (the first builds the listing, a later one
    // finds what an earlier one read); warm: again after the walk below, median of 5.
    let searches: [(&str, &str, &[&str]); 4] = [
        ("FindUsers(\"\", [], \"\", 50)", "", &[]),
        (
            "FindUsers(\"user12\", [], \"\", 50) (1,111 names start with user12)",
            "user12",
            &[],
        ),
        (
            "FindUsers(\"\", [\"enabled\"], \"\", 50) (the first rows match)",
            "",
            &["enabled"],
        ),
        (
            "FindUsers(\"\", [\"exempt\"], \"\", 50) (no row matches: the whole range is read)",
            "",
            &["exempt"],
        ),
    ];
    let find_ms = |prefix: &str, statuses: &[&str]| {
        let s = Instant::now();
        let (page, _) = zbus::block_on(proxy.find_users(prefix, statuses, "", 50)).unwrap();
        // Every record of the run is enrolled (`enabled`), none `exempt`.
        let want = if statuses.contains(&"exempt") { 0 } else { 50 };
        assert_eq!(page.len(), want, "FindUsers({prefix:?}, {statuses:?})");
        assert!(page.iter().all(|u| u.user.starts_with(prefix)));
        s.elapsed().as_secs_f64() * 1e3
    };
    let summary_ms = || {
        let s = Instant::now();
        let m = zbus::block_on(proxy.summary()).unwrap();
        std::hint::black_box(m);
        s.elapsed().as_secs_f64() * 1e3
    };
    // The console's count before a new default: every user resolved twice, nothing written.
    let preview_ms = || {
        let s = Instant::now();
        let p = zbus::block_on(proxy.preview_default_mode("required")).unwrap();
        std::hint::black_box(p);
        s.elapsed().as_secs_f64() * 1e3
    };
    // In this order (a `chain([summary_ms()])` would call Summary before the searches).
    let mut cold: Vec<f64> = searches
        .iter()
        .map(|(_, prefix, statuses)| find_ms(prefix, statuses))
        .collect();
    cold.push(summary_ms());
    cold.push(preview_ms());
    // ListUsersPage, 1000 at a time, the whole list: first (nothing known yet), then again.
    for pass in ["first", "again"] {
        reset_peak();
        let s = Instant::now();
        let mut after = String::new();
        let mut n = 0;
        loop {
            let (page, next) = zbus::block_on(proxy.list_users_page(&after, 1000)).unwrap();
            n += page.len();
            if next.is_empty() {
                break;
            }
            after = next;
        }
        let wall = s.elapsed().as_secs_f64();
        row(
            format!(
                "{who}: ListUsersPage walk of {n} users, 1000 per page, {pass} (wall time / peak RSS)"
            ),
            format!("{wall:.2} s / {:.1} MiB", mib(rss_kb(dpid, "VmHWM:"))),
        );
    }
    let mut warm: Vec<f64> = searches
        .iter()
        .map(|(_, prefix, statuses)| {
            med(&(0..5)
                .map(|_| find_ms(prefix, statuses))
                .collect::<Vec<_>>())
        })
        .collect();
    warm.push(med(&(0..5).map(|_| summary_ms()).collect::<Vec<_>>()));
    warm.push(med(&(0..5).map(|_| preview_ms()).collect::<Vec<_>>()));
    for (i, what) in searches
        .iter()
        .map(|(what, _, _)| *what)
        .chain(["Summary", "PreviewDefaultMode(\"required\")"])
        .enumerate()
    {
        row(
            format!(
                "{who}: {what}, cold (first calls after the start, in this order) / warm (median of 5)"
            ),
            format!(
                "{:.1} ms / {:.1} ms",
                cold.get(i).copied().unwrap_or(f64::NAN),
                warm.get(i).copied().unwrap_or(f64::NAN)
            ),
        );
    }
    // `twofold list` end to end: the CLI process, paging, printing (to a file).
    let cli = a.enrolld.with_file_name("twofold");
    for args in [&["list"][..], &["list", "--json"][..]] {
        let out_path = t.join("list.out");
        let out = std::fs::File::create(&out_path).unwrap();
        let s = Instant::now();
        let st = std::process::Command::new(&cli)
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .env("NO_COLOR", "1")
            .stdout(out)
            .status()
            .unwrap();
        let wall = s.elapsed().as_secs_f64();
        assert!(st.success(), "twofold {args:?} failed");
        let text = std::fs::read_to_string(&out_path).unwrap();
        let rows_out = if args.len() == 2 {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["users"].as_array().unwrap().len()
        } else {
            text.lines().count().saturating_sub(2)
        };
        row(
            format!(
                "{who}: `twofold {}` of {rows_out} users, end to end (wall time)",
                args.join(" ")
            ),
            format!("{wall:.2} s"),
        );
    }
    // The old call: one reply with every user.
    reset_peak();
    let s = Instant::now();
    let n = zbus::block_on(proxy.list_users()).unwrap().len();
    let list_time = s.elapsed().as_secs_f64();
    let peak = rss_kb(dpid, "VmHWM:");
    // Calls per second from 8 concurrent clients for 2 s: GetStatus, and the bus's ceiling,
    // Peer.Ping to the daemon's connection (answered by zbus itself, nothing of twofold).
    // Three of each, alternating, so that a slow moment of the host falls on both; the
    // medians are reported, and the share is that of the medians.
    let rate = |ping: bool| {
        let secs = 2.0;
        let stop = Instant::now() + Duration::from_secs_f64(secs);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let address = address.clone();
                std::thread::spawn(move || {
                    let (c, p) = twofold_bench::connect(&address);
                    let mut calls = 0u64;
                    while Instant::now() < stop {
                        if ping {
                            zbus::block_on(c.call_method(
                                Some(twofold_enrolld::api::BUS_NAME),
                                twofold_enrolld::api::OBJECT_PATH,
                                Some("org.freedesktop.DBus.Peer"),
                                "Ping",
                                &(),
                            ))
                            .unwrap();
                        } else {
                            zbus::block_on(p.get_status()).unwrap();
                        }
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        let calls: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        calls as f64 / secs
    };
    let (mut pings, mut statuses) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        pings.push(rate(true));
        statuses.push(rate(false));
    }
    let ping = med(&pings);
    let calls = med(&statuses) * 3.0;
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = bus.kill();
    let _ = bus.wait();
    row(
        format!(
            "{who}: Peer.Ping calls per second, 8 concurrent clients (the bus's ceiling; median of 3 runs of 2 s)"
        ),
        format!("{ping:.0}/s"),
    );
    row(
        format!(
            "{who}: GetStatus calls per second, 8 concurrent clients (median of 3 runs of 2 s, alternating with the Ping runs), and its share of that ceiling"
        ),
        format!("{:.0}/s ({:.0}%)", calls / 3.0, calls / 3.0 / ping * 100.0),
    );
    let mut out = rows;
    out.splice(
        0..0,
        [
            Row {
                what: format!("{who}: ListUsers of {n} users, one reply (wall time)"),
                cells: vec![
                    format!("{list_time:.2} s"),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
            },
            Row {
                what: format!("{who}: resident memory idle / peak during that ListUsers"),
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
        ],
    );
    out
}
