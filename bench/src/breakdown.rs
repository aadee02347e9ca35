//! Where the microseconds of one twofold login go (real accounts): the login split into its
//! measured parts, system calls per login (strace), CPU samples by shared object and, with call
//! stacks, inside pam_authenticate by kind of work (perf, when it works here), the module's login
//! path replayed phase by phase in this process through `twofold_policy`, the floor of each
//! operation alone, and the module file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use twofold_bench::floor;
use twofold_policy::resolve::{RecordFacts, Subject, resolve};
use twofold_policy::store::StateStore as _;
use twofold_policy::totp::{self, Params};
use twofold_policy::{Store, UserName, system, throttle};

use crate::{
    Args, GA, GAR, LoginResults, MODULES, PERMIT, Population, TF, med, seed_counters, table,
    write_logins,
};

/// Logins per strace run (over one login's run, to cancel the harness's start).
const STRACE_LOGINS: usize = 50;

/// The breakdown section of results.md.
pub fn run(a: &Args, t: &Path, pop: &Population, logins: &LoginResults) -> String {
    let mut md = String::from("\n## Where a twofold login's time goes (real accounts)\n\n");
    let phases = phases(a, t, pop);
    let floors = floors(a, t, pop);
    md.push_str(&split(logins, &phases, &floors));
    md.push_str(&syscalls(a, t, pop));
    md.push_str(&profile(a, t, pop));
    md.push_str(&inside_auth(a, t, pop, logins));
    md.push_str(&phases_md(&phases, logins));
    md.push_str(&floors_md(&floors));
    md.push_str(&module_file(&a.module));
    md
}

/// Floor measurements: (what, samples in µs).
struct Floors {
    rows: Vec<(String, Vec<f64>)>,
    /// Median µs of dlopen + dlclose of pam_twofold.so.
    dlopen_twofold: f64,
}

/// The phases of the replayed login path: (phase, samples in µs).
type Phases = Vec<(&'static str, Vec<f64>)>;

fn col(v: &[crate::Login], f: fn(&crate::Login) -> f64) -> Vec<f64> {
    v.iter().map(f).collect()
}

fn split(logins: &LoginResults, phases: &Phases, floors: &Floors) -> String {
    let tf = &logins.valid[0][TF];
    let full = med(&col(tf, |l| l.full));
    let auth = med(&col(tf, |l| l.auth));
    let permit_full = med(&col(&logins.valid[0][PERMIT], |l| l.full));
    let replay: f64 = phases.iter().map(|(_, v)| med(v)).sum();
    let rows = vec![
        vec![
            "full login (median)".into(),
            format!("{full:.0}"),
            "measured (harness)".into(),
        ],
        vec![
            "· pam_start + pam_end (full − pam_authenticate)".into(),
            format!("{:.0}", full - auth),
            "measured".into(),
        ],
        vec![
            "·· of which libpam alone (a pam_permit full login)".into(),
            format!("{permit_full:.0}"),
            "measured (harness)".into(),
        ],
        vec![
            "·· of which dlopen + dlclose of pam_twofold.so (it needs only libpam and libc, loaded already)".into(),
            format!("{:.0}", floors.dlopen_twofold),
            "floor, alone in a C process".into(),
        ],
        vec![
            "· pam_authenticate (median)".into(),
            format!("{auth:.0}"),
            "measured".into(),
        ],
        vec![
            "·· of which the login path's work (sum of the phase medians below)".into(),
            format!("{replay:.0}"),
            "replayed in this process through twofold_policy".into(),
        ],
        vec![
            "·· rest: the same work in a freshly mapped module with cold caches (its code, page faults and system calls run slower than in the replay), PAM glue, conversation; see \"Inside pam_authenticate, sampled\"".into(),
            format!("{:.0}", auth - replay),
            "difference".into(),
        ],
    ];
    let mut md = String::from(
        "Medians can be subtracted only roughly (each is the median of its own samples), so the parts are approximate.\n\n",
    );
    md.push_str(&table(&["part of a twofold login", "µs", "how"], &rows));
    md
}

fn tool_works(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `strace -f -c` of the harness over `logins` of module `m`: calls per syscall.
fn strace_counts(
    a: &Args,
    t: &Path,
    pop: &Population,
    m: usize,
    logins: usize,
) -> BTreeMap<String, f64> {
    pop.prepare(m, twofold_policy::time::now());
    let file = write_logins(t, &pop.logins(0..logins, false));
    let out = t.join("strace.txt");
    let wrapper: Vec<String> = ["strace", "-f", "-c", "-o"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([out.display().to_string(), "--".into()])
        .collect();
    let status = pop
        .command(a, &wrapper, m, &file)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "strace of pam_bench failed");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut calls = BTreeMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 5 || f[0].starts_with('%') || f[0].starts_with('-') {
            continue;
        }
        let name = f[f.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(n) = f[3].parse::<f64>() {
            calls.insert(name.to_owned(), n);
        }
    }
    calls
}

fn syscalls(a: &Args, t: &Path, pop: &Population) -> String {
    let mut md = format!(
        "\n### System calls per login\n\n`strace -f -c` of the harness over {} logins and over 1 login; per login = the difference / {}, so the harness's own start cancels. Counts only (strace's times are its own overhead).\n\n",
        STRACE_LOGINS + 1,
        STRACE_LOGINS
    );
    if !tool_works("strace", "-V") {
        md.push_str("strace is not installed here: not measured.\n");
        return md;
    }
    if let Some(dir) = &a.trace_dir {
        std::fs::create_dir_all(dir).unwrap();
        for (m, name) in MODULES.iter().enumerate() {
            pop.prepare(m, twofold_policy::time::now());
            let file = write_logins(t, &pop.logins(0..2.min(pop.users.len()), false));
            let out = dir.join(format!(
                "two-logins-{}.strace",
                name.split(' ').next().unwrap_or(name)
            ));
            let wrapper: Vec<String> = ["strace", "-f", "-tt", "-T", "-s", "80", "-o"]
                .iter()
                .map(|s| (*s).to_owned())
                .chain([out.display().to_string(), "--".into()])
                .collect();
            let _ = pop
                .command(a, &wrapper, m, &file)
                .stdout(Stdio::null())
                .status();
        }
    }
    let k = STRACE_LOGINS.min(pop.users.len() - 1);
    let per_login: Vec<BTreeMap<String, f64>> = (0..MODULES.len())
        .map(|m| {
            let one = strace_counts(a, t, pop, m, 1);
            let many = strace_counts(a, t, pop, m, k + 1);
            many.iter()
                .map(|(name, n)| {
                    let d = (n - one.get(name).copied().unwrap_or(0.0)) / k as f64;
                    (name.clone(), d)
                })
                .filter(|(_, d)| *d >= 0.05)
                .collect()
        })
        .collect();
    let total = |m: usize| per_login[m].values().sum::<f64>();
    let mut names: Vec<&String> = per_login[TF].keys().collect();
    for m in [GA, GAR, PERMIT] {
        for n in per_login[m].keys() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names.sort_by(|x, y| {
        let c = |n: &String| per_login[TF].get(n).copied().unwrap_or(0.0);
        c(y).partial_cmp(&c(x)).unwrap().then(x.cmp(y))
    });
    let cell = |m: usize, n: &String| {
        per_login[m]
            .get(n)
            .map_or("—".into(), |v| format!("{v:.1}"))
    };
    let mut rows = vec![vec![
        "**all**".into(),
        format!("**{:.0}**", total(TF)),
        format!("**{:.0}**", total(GA)),
        format!("**{:.0}**", total(GAR)),
        format!("**{:.0}**", total(PERMIT)),
    ]];
    for n in names {
        rows.push(vec![
            n.clone(),
            cell(TF, n),
            cell(GA, n),
            cell(GAR, n),
            cell(PERMIT, n),
        ]);
    }
    md.push_str(&table(
        &[
            "syscall",
            "twofold",
            "ga-stateless",
            "ga-disallow-reuse",
            "pam_permit",
        ],
        &rows,
    ));
    md
}

/// `perf report` lines "  12.34%  what" as (percent, what).
fn perf_report(data: &Path, sort: &str) -> Vec<(f64, String)> {
    let out = Command::new("perf")
        .arg("report")
        .arg("-i")
        .arg(data)
        .args(["--stdio", "-q", "--sort", sort])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (pct, rest) = l.split_once('%')?;
            Some((
                pct.trim().parse().ok()?,
                rest.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        })
        .collect()
}

/// A batch of accepted logins of every user with module `m` under `perf record` with
/// `options`, into `t/{name}-{m}.data`; `None` if perf failed.
fn perf_record(
    a: &Args,
    t: &Path,
    pop: &Population,
    m: usize,
    name: &str,
    options: &[&str],
) -> Option<PathBuf> {
    pop.prepare(m, twofold_policy::time::now());
    let file = write_logins(t, &pop.logins(0..pop.users.len(), false));
    let data = t.join(format!("{name}-{m}.data"));
    let wrapper: Vec<String> = ["perf", "record", "-q"]
        .iter()
        .chain(options)
        .map(|s| (*s).to_owned())
        .chain(["-o".into(), data.display().to_string(), "--".into()])
        .collect();
    pop.command(a, &wrapper, m, &file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        .then_some(data)
}

fn profile(a: &Args, t: &Path, pop: &Population) -> String {
    let mut md = format!(
        "\n### CPU samples by shared object\n\n`perf record -F 20000` of the harness over {} logins (user and kernel time of the harness process; its start is included but small).\n\n",
        pop.users.len()
    );
    if !tool_works("perf", "--version") {
        md.push_str("perf is not available here: not measured.\n");
        return md;
    }
    let mut by_dso: Vec<BTreeMap<String, f64>> = Vec::new();
    let mut top_syms = Vec::new();
    for m in [TF, GA] {
        let Some(data) = perf_record(a, t, pop, m, "perf", &["-F", "20000"]) else {
            md.push_str("perf record failed here: not measured.\n");
            return md;
        };
        by_dso.push(
            perf_report(&data, "dso")
                .into_iter()
                .map(|(p, d)| (d, p))
                .collect(),
        );
        if m == TF {
            top_syms = perf_report(&data, "dso,sym");
        }
    }
    let mut dsos: Vec<&String> = by_dso[0].keys().collect();
    for d in by_dso[1].keys() {
        if !dsos.contains(&d) {
            dsos.push(d);
        }
    }
    dsos.sort_by(|x, y| {
        let c = |d: &String| by_dso[0].get(d).copied().unwrap_or(0.0);
        c(y).partial_cmp(&c(x)).unwrap()
    });
    let rows: Vec<Vec<String>> = dsos
        .into_iter()
        .filter(|d| {
            by_dso
                .iter()
                .any(|m| m.get(*d).copied().unwrap_or(0.0) >= 0.5)
        })
        .map(|d| {
            let c = |m: usize| by_dso[m].get(d).map_or("—".into(), |p| format!("{p:.1}%"));
            vec![format!("`{d}`"), c(0), c(1)]
        })
        .collect();
    md.push_str(&table(&["shared object", "twofold", "ga-stateless"], &rows));
    md.push_str("\nThe 15 hottest symbols of the twofold run:\n\n");
    let rows: Vec<Vec<String>> = top_syms
        .into_iter()
        .take(15)
        .map(|(p, s)| vec![format!("{p:.1}%"), format!("`{}`", s.replace('|', "\\|"))])
        .collect();
    md.push_str(&table(&["samples", "shared object, symbol"], &rows));
    md
}

/// Sampling rate of the attribution inside pam_authenticate (Hz).
const KIND_HZ: u32 = 20_000;

/// What a sample inside pam_authenticate was doing, from its call stack (leaf first; each frame
/// `address symbol (object)` as `perf script -F ip,sym,dso` prints it): a system call by name,
/// a page fault, other kernel work, the module's own code, or another library's code.
fn sample_kind(frames: &[&str], module: &str) -> String {
    let kernel = |f: &&str| f.contains("[kernel.kallsyms]");
    if frames.first().is_some_and(kernel) {
        let sym = |f: &str| f.split_whitespace().nth(1).unwrap_or("").to_owned();
        let call = frames.iter().filter(|f| kernel(f)).find_map(|f| {
            let s = sym(f);
            let s = s.split('+').next().unwrap_or("");
            s.strip_prefix("__x64_sys_")
                .or_else(|| s.strip_prefix("__do_sys_"))
                .map(str::to_owned)
        });
        return match call {
            Some(c) => format!("system call `{c}`"),
            None if frames.iter().any(|f| f.contains("exc_page_fault")) => "page fault".into(),
            None => "other kernel work (system call entry and exit, interrupts)".into(),
        };
    }
    let Some(leaf) = frames.first() else {
        return "?".into();
    };
    if leaf.contains(module) {
        return "the module's own code".into();
    }
    let object = leaf
        .rsplit_once(" (")
        .map_or("?", |(_, o)| o.trim_end_matches(')'));
    let object = object.rsplit('/').next().unwrap_or(object);
    // perf names an inlined frame "(inlined)"; it sits in whatever object its caller is in.
    if object == "inlined" {
        return match frames.iter().find(|f| !f.ends_with("(inlined)")) {
            Some(f) if f.contains(module) => "the module's own code".into(),
            Some(f) => sample_kind(&[f], module),
            None => "?".into(),
        };
    }
    format!("user code in `{object}`")
}

/// Samples of `perf script` text whose stack is inside libpam's pam_authenticate and passes
/// through `module`, counted by [`sample_kind`].
fn kinds_in(script: &str, module: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for sample in script.split("\n\n") {
        let frames: Vec<&str> = sample
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let inside = frames.iter().any(|f| f.contains(" pam_authenticate"))
            && frames.iter().any(|f| f.contains(module));
        if inside {
            *out.entry(sample_kind(&frames, module)).or_default() += 1;
        }
    }
    out
}

/// pam_authenticate of twofold and of google-authenticator stateless, each sampled with its
/// call stacks over one batch of logins: where each one's time goes, by kind.
fn inside_auth(a: &Args, t: &Path, pop: &Population, logins: &LoginResults) -> String {
    let n = pop.users.len();
    let mut md = format!(
        "\n### Inside pam_authenticate, sampled\n\n`perf record -F {KIND_HZ} --call-graph dwarf` of the harness over {n} logins per module (one batch each), then every sample whose call stack is inside libpam's `pam_authenticate` and passes through the module, sorted by what it was doing: a system call (by name), a page fault, other kernel work, the module's own code, or code of another library (libc: malloc, memcpy, syslog's formatting). µs per login = samples / logins / rate. Unwinding every sample slows the process, so the totals run above the medians measured above (twofold {:.0} µs, google-authenticator {:.0} µs); compare the columns with each other.\n\n",
        med(&col(&logins.valid[0][TF], |l| l.auth)),
        med(&col(&logins.valid[0][GA], |l| l.auth)),
    );
    if !tool_works("perf", "--version") {
        md.push_str("perf is not available here: not measured.\n");
        return md;
    }
    let Some(ga_path) = ga_module() else {
        md.push_str("google-authenticator's module is not installed: not measured.\n");
        return md;
    };
    let module_name = |p: &Path| {
        p.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut kinds: Vec<BTreeMap<String, u64>> = Vec::new();
    for (m, name) in [(TF, module_name(&a.module)), (GA, module_name(&ga_path))] {
        let hz = KIND_HZ.to_string();
        let data = perf_record(
            a,
            t,
            pop,
            m,
            "perf-kinds",
            &["-F", &hz, "--call-graph", "dwarf,16384"],
        );
        let script = data.as_ref().and_then(|data| {
            Command::new("perf")
                .args(["script", "--no-inline", "-F", "ip,sym,dso", "-i"])
                .arg(data)
                .stderr(Stdio::null())
                .output()
                .ok()
        });
        if let Some(data) = &data {
            let _ = std::fs::remove_file(data);
        }
        let Some(script) = script.filter(|o| o.status.success()) else {
            md.push_str("perf record --call-graph dwarf failed here: not measured.\n");
            return md;
        };
        kinds.push(kinds_in(&String::from_utf8_lossy(&script.stdout), &name));
    }
    let per_login = |c: u64| c as f64 / n as f64 * 1e6 / f64::from(KIND_HZ);
    let mut names: Vec<&String> = kinds.iter().flat_map(|k| k.keys()).collect();
    names.sort();
    names.dedup();
    names.sort_by(|x, y| {
        let c = |k: &String| kinds[0].get(k).copied().unwrap_or(0);
        c(y).cmp(&c(x))
    });
    let mut rows: Vec<Vec<String>> = names
        .into_iter()
        .filter(|k| {
            kinds
                .iter()
                .any(|m| per_login(m.get(*k).copied().unwrap_or(0)) >= 0.5)
        })
        .map(|k| {
            let c = |m: usize| {
                kinds[m]
                    .get(k)
                    .map_or("—".into(), |&v| format!("{:.1}", per_login(v)))
            };
            let diff = per_login(kinds[0].get(k).copied().unwrap_or(0))
                - per_login(kinds[1].get(k).copied().unwrap_or(0));
            vec![k.clone(), c(0), c(1), format!("{diff:+.1}")]
        })
        .collect();
    let total = |m: usize| per_login(kinds[m].values().sum());
    rows.push(vec![
        "**all**".into(),
        format!("**{:.1}**", total(0)),
        format!("**{:.1}**", total(1)),
        format!("**{:+.1}**", total(0) - total(1)),
    ]);
    md.push_str(&table(
        &[
            "what the sample was doing",
            "twofold",
            "ga-stateless",
            "difference",
        ],
        &rows,
    ));
    md
}

/// The module's login path (`pam_module/src/flow.rs`: evaluate, then verify_code) replayed
/// through `twofold_policy`, each phase timed, for every real account, as many rounds as the
/// login part; a separate state directory holds the same enrollments.
fn phases(a: &Args, t: &Path, pop: &Population) -> Phases {
    let state = t.join("phases-state");
    let store = Store::open_or_create(&state).unwrap();
    for (u, s) in pop.users.iter().zip(&pop.secrets) {
        twofold_bench::enroll(&store, u, s);
    }
    drop(store);
    let policy_path = t.join("policy/policy.toml");
    let names = [
        "user lookup (/etc/passwd read up to the name when it answers as NSS would, else getpwnam_r + getpwuid_r; the canonical name)",
        "state directory open + checks (fstat, fstatvfs)",
        "policy freshness (stat of the policy files, fingerprint) + compiled cache read; groups only if a [groups.X] rule exists",
        "record read (open, fstat checks, read, parse, checks; the file is held open)",
        "resolution",
        "throttle before the prompt (counters read; held open)",
        "the code check: lock, record + counters read again through the held files (fstatat + pread each, parsed again only if changed), HMAC-SHA1 over the window, counters pwrite through the held file",
        "unlock + close",
        "log line (syslog(3) to /dev/log)",
    ];
    let mut out: Phases = names.iter().map(|n| (*n, Vec::new())).collect();
    let key = throttle::source_key("");
    floor::syslog_line("twofold-bench: phases start");
    for round in 0..=a.rounds {
        let now = twofold_policy::time::now();
        {
            let store = Store::open(&state).unwrap();
            for u in &pop.users {
                seed_counters(&store, u, now);
            }
        }
        for (u, secret) in pop.users.iter().zip(&pop.secrets) {
            let code = totp::code_at(secret, Params::default(), now).unwrap();
            let mut times = Vec::with_capacity(names.len());
            let mut lap = Instant::now();
            let mut mark = |times: &mut Vec<f64>| {
                let e = lap.elapsed().as_secs_f64() * 1e6;
                times.push(e);
                lap = Instant::now();
            };
            let user = UserName::parse(u).unwrap();
            let files = twofold_policy::userfiles::UserFiles::default();
            let mut account = system::lookup_account_in(&files, user.as_str())
                .unwrap()
                .unwrap();
            mark(&mut times);
            let mut store = Store::open(&state).unwrap();
            std::hint::black_box(store.read_only());
            store.hold_files();
            mark(&mut times);
            let policy = twofold_policy::login::policy_for(
                &policy_path,
                &store,
                &files,
                &mut account,
                Some("sshd"),
            )
            .unwrap();
            mark(&mut times);
            let record = store.read_record(&user).unwrap();
            mark(&mut times);
            let subject = Subject {
                user: user.as_str(),
                groups: &account.groups,
                service: Some("sshd"),
                from: None,
            };
            let res = resolve(&policy, &subject, &RecordFacts::of(record.as_ref()), now);
            std::hint::black_box(&res);
            mark(&mut times);
            std::hint::black_box(store.gate_before_prompt(&user, &key, now).unwrap());
            mark(&mut times);
            let checked = store
                .check_attempt(
                    &user,
                    &twofold_policy::login::Attempt {
                        input: &code,
                        source: &key,
                        from: "local",
                        window: policy.totp.window,
                        at: now,
                    },
                )
                .unwrap();
            assert_eq!(
                checked.outcome,
                twofold_policy::login::Outcome::Code,
                "the replayed login's code was refused"
            );
            mark(&mut times);
            drop(store);
            mark(&mut times);
            floor::syslog_line(&format!(
                "pam_twofold(sshd:auth): user={u} source=local rule=default:built-in status={} outcome=success: code accepted",
                res.status
            ));
            mark(&mut times);
            // Round 0 warms the policy cache and the page cache; not counted.
            if round > 0 {
                for (slot, v) in out.iter_mut().zip(times) {
                    slot.1.push(v);
                }
            }
        }
    }
    out
}

fn phases_md(phases: &Phases, logins: &LoginResults) -> String {
    let auth = med(&col(&logins.valid[0][TF], |l| l.auth));
    let sum: f64 = phases.iter().map(|(_, v)| med(v)).sum();
    let mut rows: Vec<Vec<String>> = phases
        .iter()
        .map(|(n, v)| {
            vec![
                (*n).to_owned(),
                mp2(v),
                format!("{:.0}%", 100.0 * med(v) / sum),
            ]
        })
        .collect();
    rows.push(vec![
        "**sum of the medians**".into(),
        format!("**{sum:.1}**"),
        format!(
            "{:.0}% of pam_authenticate's median ({auth:.0} µs)",
            100.0 * sum / auth
        ),
    ]);
    let mut md = String::from(
        "\n### The login path, phase by phase\n\nThe module's path for an enrolled user with a valid code (`evaluate` then `verify_code` in `pam_module/src/flow.rs`) replayed in this process through the same `twofold_policy` calls, on the real accounts, each phase timed (µs, median / p90). It leaves out what only the module in libpam does: PAM items and conversation, argument parsing, the log line's formatting, and running in a module libpam has just mapped (cold caches, first-use initialisation).\n\n",
    );
    md.push_str(&table(&["phase", "µs", "share of the sum"], &rows));
    md
}

/// "median / p90" with one decimal.
fn mp2(v: &[f64]) -> String {
    let (m, p) = twofold_bench::stats(v.to_vec());
    format!("{m:.1} / {p:.1}")
}

fn ga_module() -> Option<PathBuf> {
    [
        "/lib/x86_64-linux-gnu/security",
        "/usr/lib/x86_64-linux-gnu/security",
        "/lib/security",
    ]
    .iter()
    .map(|d| Path::new(d).join("pam_google_authenticator.so"))
    .find(|p| p.exists())
}

fn floors(a: &Args, t: &Path, pop: &Population) -> Floors {
    let n = 2000;
    let mut rows = Vec::new();
    let secret = &pop.secrets[0];
    let now = twofold_policy::time::now();
    rows.push((
        "HMAC-SHA1: one TOTP code (`totp::code_at`; a check at window 1 computes up to 3)".into(),
        floor::sample(n, || {
            std::hint::black_box(totp::code_at(secret, Params::default(), now).unwrap());
        }),
    ));
    let record = t.join("real/state").join(format!("{}.toml", pop.users[0]));
    let size = std::fs::metadata(&record).map(|m| m.len()).unwrap_or(0);
    rows.push((
        format!("open + read of a small file (a user's record, {size} bytes)"),
        floor::sample(n, || floor::read_small(&record)),
    ));
    let dir = t.join("floor");
    std::fs::create_dir_all(&dir).unwrap();
    let text = vec![b'x'; 120];
    rows.push((
        "open + flock + write temp + rename + close of a small file (120 bytes)".into(),
        floor::sample(n, || floor::lock_write_rename(&dir, &text)),
    ));
    let line = "pam_twofold(sshd:auth): user=tfbench1 source=local rule=default:built-in status=enabled outcome=success: code accepted";
    floor::syslog_line(line);
    rows.push((
        "syslog(3), one line, connection already open (twofold's way)".into(),
        floor::sample(n, || floor::syslog_line(line)),
    ));
    rows.push((
        "openlog + syslog(3) + closelog, one line (google-authenticator's way)".into(),
        floor::sample(n, || floor::syslog_open_line_close(line)),
    ));
    rows.push((
        "open + write temp + rename to a new name + unlink it (no file replaced by the rename)"
            .into(),
        floor::sample(n, || floor::write_rename_new(&dir, &text)),
    ));
    rows.push((
        "open + pwrite in place + close of the same small file (no temp file, no rename)".into(),
        floor::sample(n, || floor::write_in_place(&dir, &text)),
    ));
    let user = pop.users[0].clone();
    {
        use nix::unistd::{User, getgrouplist};
        let u = User::from_name(&user).unwrap().unwrap();
        let cname = std::ffi::CString::new(user.clone()).unwrap();
        rows.push((
            format!("getpwnam_r alone, real account {user}"),
            floor::sample(n, || {
                std::hint::black_box(User::from_name(&user).unwrap());
            }),
        ));
        rows.push((
            format!("getgrouplist alone (every NSS module of `group:` in nsswitch.conf), real account {user}"),
            floor::sample(n, || {
                std::hint::black_box(getgrouplist(&cname, u.gid).unwrap());
            }),
        ));
    }
    rows.push((
        format!("getpwnam_r + getgrouplist + getgrgid_r (`system::lookup`), real account {user}"),
        floor::sample(n, || {
            std::hint::black_box(system::lookup(&user).unwrap());
        }),
    ));
    let ga = ga_module();
    let permit = ga
        .as_ref()
        .and_then(|g| g.parent())
        .map(|d| d.join("pam_permit.so"));
    let mut modules: Vec<&Path> = vec![&a.module];
    modules.extend(ga.as_deref());
    modules.extend(permit.as_deref());
    let mut loaded = floor::dlopen_dlclose(&a.dl_bench, &modules, &[], 10, 50).into_iter();
    let held = floor::dlopen_dlclose(&a.dl_bench, &[&a.module], &["libgcc_s.so.1"], 10, 50);
    let unmapped = |u: bool| if u { "" } else { " (NOT unmapped by dlclose)" };
    let (tf, tf_unmapped) = loaded.next().unwrap();
    let dlopen_twofold = med(&tf);
    rows.push((
        format!(
            "dlopen(RTLD_NOW) + dlclose of pam_twofold.so, in a C process linked with libpam{}",
            unmapped(tf_unmapped)
        ),
        tf,
    ));
    if let Some((v, u)) = held.into_iter().next() {
        rows.push((
            format!("the same with libgcc_s.so.1 held loaded (no longer a NEEDED library of the module: its unwinder is linked statically){}", unmapped(u)),
            v,
        ));
    }
    for (m, (v, u)) in modules.iter().skip(1).zip(loaded) {
        rows.push((
            format!(
                "dlopen(RTLD_NOW) + dlclose of {}{}",
                m.file_name().unwrap_or_default().to_string_lossy(),
                unmapped(u)
            ),
            v,
        ));
    }
    Floors {
        rows,
        dlopen_twofold,
    }
}

fn floors_md(f: &Floors) -> String {
    let rows: Vec<Vec<String>> = f
        .rows
        .iter()
        .map(|(what, v)| vec![what.clone(), mp2(v)])
        .collect();
    let mut md = String::from(
        "\n### Floor\n\nEach operation alone, in this process, on this machine (µs, median / p90): what the parts above cost at the least.\n\n",
    );
    md.push_str(&table(&["operation", "µs"], &rows));
    md
}

fn readelf(args: &[&str], path: &Path) -> Option<String> {
    let out = Command::new("readelf").args(args).arg(path).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Size, relocations and exports of a module file.
pub fn module_facts(path: &Path) -> Vec<(String, String)> {
    let mut facts = vec![(
        "file size".to_owned(),
        format!(
            "{} bytes",
            std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        ),
    )];
    let Some(relocs) = readelf(&["-r", "-W"], path) else {
        facts.push(("relocations".into(), "readelf not available".into()));
        return facts;
    };
    let relative = relocs
        .lines()
        .filter(|l| l.contains("R_X86_64_RELATIVE"))
        .count();
    facts.push((
        "`readelf -r | wc -l`".into(),
        format!("{} ({relative} R_X86_64_RELATIVE)", relocs.lines().count()),
    ));
    if let Some(dynamic) = readelf(&["-d", "-W"], path)
        && dynamic.contains("RELR")
    {
        facts.push(("packed relative relocations (DT_RELR)".into(), "yes".into()));
    }
    if let Some(segs) = readelf(&["-l", "-W"], path) {
        let load: u64 = segs
            .lines()
            .filter(|l| l.trim_start().starts_with("LOAD"))
            .filter_map(|l| l.split_whitespace().nth(5))
            .filter_map(|m| u64::from_str_radix(m.trim_start_matches("0x"), 16).ok())
            .sum();
        facts.push((
            "mapped (LOAD segments, memory size)".into(),
            format!("{load} bytes"),
        ));
    }
    if let Some(syms) = readelf(&["--dyn-syms", "-W"], path) {
        let exported: Vec<&str> = syms
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 8 && f[4] == "GLOBAL" && f[6] != "UND").then(|| f[7])
            })
            .collect();
        facts.push((
            "exported symbols".into(),
            format!("{}: {}", exported.len(), exported.join(", ")),
        ));
    }
    // How much of pam_module/hot-symbols.txt this build has (names carry hashes that change
    // with the code and the toolchain): what is missing lies outside the login's code.
    if let (Ok(list), Some(syms)) = (
        std::fs::read_to_string("pam_module/hot-symbols.txt"),
        readelf(&["--syms", "-W"], path),
    ) {
        let have: std::collections::HashSet<&str> = syms
            .lines()
            .filter_map(|l| l.split_whitespace().nth(7))
            .collect();
        let wanted: Vec<&str> = list
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let found = wanted.iter().filter(|n| have.contains(*n)).count();
        facts.push((
            "functions of pam_module/hot-symbols.txt in this build (placed together)".into(),
            format!(
                "{found} of {}{}",
                wanted.len(),
                if found * 10 < wanted.len() * 9 {
                    ": stale, run `make hot-symbols`"
                } else {
                    ""
                }
            ),
        ));
    }
    facts
}

/// dlopen + dlclose floor, size and relocations of each module in `paths`, measured in
/// interleaved rounds (10 × 100 per module).
pub fn compare_modules(dl_bench: &Path, paths: &[PathBuf]) -> String {
    let modules: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let times: Vec<Vec<f64>> = floor::dlopen_dlclose(dl_bench, &modules, &[], 10, 100)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    let rows: Vec<Vec<String>> = paths
        .iter()
        .zip(&times)
        .map(|(p, t)| {
            let facts = module_facts(p);
            let get = |k: &str| {
                facts
                    .iter()
                    .find(|(n, _)| n.contains(k))
                    .map_or(String::new(), |(_, v)| v.clone())
            };
            vec![
                format!("`{}`", p.display()),
                get("file size"),
                get("wc -l"),
                get("mapped"),
                mp2(t),
            ]
        })
        .collect();
    table(
        &[
            "module",
            "file size",
            "`readelf -r | wc -l`",
            "mapped",
            "dlopen + dlclose µs, median / p90",
        ],
        &rows,
    )
}

fn module_file(path: &Path) -> String {
    let profile = std::fs::read_to_string("Cargo.toml")
        .unwrap_or_default()
        .split("[profile.release]")
        .nth(1)
        .map(|s| {
            s.lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with('['))
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let mut rows: Vec<Vec<String>> = module_facts(path)
        .into_iter()
        .map(|(k, v)| vec![k, v])
        .collect();
    rows.insert(
        0,
        vec!["`[profile.release]`".into(), format!("`{profile}`")],
    );
    let mut md = format!(
        "\n### The module file\n\n`{}` as built for this run (pam_start maps it and applies its relocations, pam_end unmaps it, at every login).\n\n",
        path.display()
    );
    md.push_str(&table(&["", "pam_twofold.so"], &rows));
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_sorted_by_what_they_were_doing() {
        let script = "\
\tffffffff8163 do_sys_openat2 ([kernel.kallsyms])
\tffffffff8164 __x64_sys_openat ([kernel.kallsyms])
\tffffffff8165 entry_SYSCALL_64_after_hwframe ([kernel.kallsyms])
\t7f01 __libc_open64 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t7f02 twofold_policy::store::Store::open (/t/libpam_twofold.so)
\t7f03 pam_sm_authenticate (/t/libpam_twofold.so)
\t7f04 pam_authenticate (/usr/lib/x86_64-linux-gnu/libpam.so.0.85.1)

\t7f05 twofold_policy::userfiles::plain_line (/t/libpam_twofold.so)
\t7f03 pam_sm_authenticate (/t/libpam_twofold.so)
\t7f04 pam_authenticate (/usr/lib/x86_64-linux-gnu/libpam.so.0.85.1)

\t7f06 __memcpy_avx_unaligned_erms (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t7f03 pam_sm_authenticate (/t/libpam_twofold.so)
\t7f04 pam_authenticate (/usr/lib/x86_64-linux-gnu/libpam.so.0.85.1)

\t7f07 core::str::from_utf8 (inlined)
\t7f03 pam_sm_authenticate (/t/libpam_twofold.so)
\t7f04 pam_authenticate (/usr/lib/x86_64-linux-gnu/libpam.so.0.85.1)

\tffffffff8166 next_uptodate_folio ([kernel.kallsyms])
\tffffffff8167 exc_page_fault ([kernel.kallsyms])
\t7f03 pam_sm_authenticate (/t/libpam_twofold.so)
\t7f04 pam_authenticate (/usr/lib/x86_64-linux-gnu/libpam.so.0.85.1)

\tffffffff8168 unmap_page_range ([kernel.kallsyms])
\t7f08 pam_end (/usr/lib/x86_64-linux-gnu/libpam.so.0.85.1)

\t7f09 0x2b52 (/usr/lib/x86_64-linux-gnu/security/pam_google_authenticator.so)
\t7f04 pam_authenticate (/usr/lib/x86_64-linux-gnu/libpam.so.0.85.1)
";
        let k = kinds_in(script, "libpam_twofold.so");
        let want: BTreeMap<String, u64> = [
            ("system call `openat`", 1),
            ("the module's own code", 2),
            ("user code in `libc.so.6`", 1),
            ("page fault", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(k, want);
        let g = kinds_in(script, "pam_google_authenticator.so");
        assert_eq!(g.get("the module's own code"), Some(&1));
        assert_eq!(g.values().sum::<u64>(), 1);
    }
}
