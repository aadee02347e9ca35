//! `make bench`: twofold side by side with google-authenticator-libpam, in one run, on this
//! machine. Prints the results and writes `bench/results.md`. Figures, not assertions.
//!
//! 1. A syslog receiver on `/dev/log` for the run, as every real host has one (the host's if it
//!    is live, otherwise the benchmark's own: [`twofold_bench::devlog`]).
//! 2. Logins through the real libpam (`pam_bench`, a small C program: pam_start +
//!    pam_authenticate + pam_end in one process) of the same users, once as real accounts in
//!    /etc/passwd (made with useradd, removed afterwards) and once from nss_wrapper; twofold,
//!    pam_google_authenticator stateless and with DISALLOW_REUSE, and pam_permit (libpam's own
//!    cost), each user with every module in turn (the order rotating from user to user); then
//!    the cost of a refused (wrong) code.
//! 3. Where a twofold login's time goes: system calls per login (strace), CPU samples by shared
//!    object and, with call stacks, inside pam_authenticate by kind of work beside
//!    google-authenticator's (perf, when it works), the module's login path replayed phase by
//!    phase through `twofold_policy`, and the floor of each operation alone; the module file's
//!    size and relocations.
//! 4. Policy scale: 10,000 `[users.*]` and 1,000 `[groups.*]` tables, 100,000 records.
//! 5. The daemon: `ListUsers` over 100,000 records, status calls per second from 8 clients,
//!    resident memory.
//! 6. The LDAP backend against files, against a private slapd ([`ldap`]): full logins side
//!    by side (ldapi, ldap://127.0.0.1, and through twofold-verifyd), the directory
//!    operations alone, logins per second from 8 processes.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a benchmark tool: a failure aborts the run

mod breakdown;
mod ldap;
mod scale;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use twofold_bench::accounts::{self, Accounts};
use twofold_bench::devlog::DevLog;
use twofold_bench::{NSS_WRAPPER, Service, enroll, secret_file_used, stats};
use twofold_policy::Store;
use twofold_policy::record::Counters;
use twofold_policy::totp::{self, Params, Secret};

/// The run's parameters.
pub struct Args {
    /// Users per population, and so logins per module per round.
    pub per_round: usize,
    /// Interleaved rounds.
    pub rounds: usize,
    /// Records of the scale test.
    pub records: usize,
    /// results.md.
    pub out: PathBuf,
    /// libpam_twofold.so.
    pub module: PathBuf,
    /// The C harness.
    pub pam_bench: PathBuf,
    /// The C module-loading floor (`bench/dl_bench.c`).
    pub dl_bench: PathBuf,
    /// twofold-enrolld.
    pub enrolld: PathBuf,
    /// Logins only: no scale or daemon part (for trying the method quickly).
    pub logins_only: bool,
    /// The scale and daemon part only: no logins, no breakdown, no accounts made.
    pub scale_only: bool,
    /// Where to write a full `strace -f -tt -T` of two logins per module, if anywhere.
    pub trace_dir: Option<PathBuf>,
    /// The LDAP part only (real accounts made for it): no other logins, breakdown or scale.
    pub ldap_only: bool,
    /// Users per process of the LDAP throughput part.
    pub tput_pool: usize,
    /// How long each throughput phase lasts, seconds.
    pub tput_seconds: f64,
    /// Throughput rounds (each a phase per store).
    pub tput_rounds: usize,
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// The modules compared, in the order of every table.
pub const MODULES: [&str; 4] = [
    "twofold",
    "ga-stateless",
    "ga-disallow-reuse",
    "pam_permit (libpam alone)",
];
/// Index of twofold, google-authenticator stateless and DISALLOW_REUSE, pam_permit.
pub const TF: usize = 0;
/// google-authenticator, stateless.
pub const GA: usize = 1;
/// google-authenticator with DISALLOW_REUSE.
pub const GAR: usize = 2;
/// pam_permit.
pub const PERMIT: usize = 3;

/// Seconds in a day: the "previous login" of every user was a day before the run.
const DAY: u64 = 86_400;

/// One set of users as one user database provides them, with twofold's state and
/// google-authenticator's files for them, and a PAM service per module.
pub struct Population {
    /// "real accounts" or "nss_wrapper".
    pub label: &'static str,
    /// The user names.
    pub users: Vec<String>,
    /// Their TOTP secrets (the same for every module).
    pub secrets: Vec<Secret>,
    /// twofold's state directory.
    pub store: Store,
    dirs: [PathBuf; 2],
    env: Vec<(String, PathBuf)>,
    services: Vec<Service>,
}

/// One login as pam_bench reports it.
#[derive(Clone, Copy)]
pub struct Login {
    /// pam_start + pam_authenticate + pam_end, µs.
    pub full: f64,
    /// pam_authenticate, µs.
    pub auth: f64,
    /// PAM_SUCCESS.
    pub ok: bool,
    /// Minor page faults during the login.
    pub minflt: f64,
    /// Minor page faults during pam_authenticate (the module's code and data touched first
    /// there; see pam_module/hot-symbols.txt).
    pub auth_minflt: f64,
}

impl Population {
    fn new(
        a: &Args,
        t: &Path,
        label: &'static str,
        key: &str,
        users: Vec<String>,
        env: Vec<(String, PathBuf)>,
    ) -> Population {
        let dir = t.join(key);
        std::fs::create_dir(&dir).unwrap();
        let state = dir.join("state");
        let store = Store::open_or_create(&state).unwrap();
        let dirs = [dir.join("ga"), dir.join("ga-reuse")];
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        let mut secrets = Vec::new();
        for u in &users {
            let s = Secret::generate().unwrap();
            enroll(&store, u, &s);
            secrets.push(s);
        }
        let pid = std::process::id();
        let services = vec![
            Service::new(
                &format!("twofold-bench-{pid}-{key}-tf"),
                &format!(
                    "auth required {} policy={}/policy/policy.toml state={}\n",
                    a.module.display(),
                    t.display(),
                    state.display()
                ),
            ),
            Service::new(
                &format!("twofold-bench-{pid}-{key}-ga"),
                &format!(
                    "auth required pam_google_authenticator.so secret={}/${{USER}} user=root\n",
                    dirs[0].display()
                ),
            ),
            Service::new(
                &format!("twofold-bench-{pid}-{key}-gar"),
                &format!(
                    "auth required pam_google_authenticator.so secret={}/${{USER}} user=root\n",
                    dirs[1].display()
                ),
            ),
            Service::new(
                &format!("twofold-bench-{pid}-{key}-permit"),
                "auth required pam_permit.so\n",
            ),
        ];
        Population {
            label,
            users,
            secrets,
            store,
            dirs,
            env,
            services,
        }
    }

    /// The PAM service of module `m`.
    pub fn service(&self, m: usize) -> String {
        self.services[m].name()
    }

    /// Puts every user's state for module `m` where a returning user's is: a previous login a
    /// day ago (twofold: counters with that step; DISALLOW_REUSE: that step in the used list).
    /// Done before every batch, outside the timed part, so the same users can log in again.
    pub fn prepare(&self, m: usize, now: u64) {
        let step = totp::step_of(now, Params::default()) - DAY / 30;
        for (u, s) in self.users.iter().zip(&self.secrets) {
            match m {
                TF => seed_counters(&self.store, u, now),
                GA => secret_file_used(&self.dirs[0], u, s, false, step),
                GAR => secret_file_used(&self.dirs[1], u, s, true, step),
                _ => {}
            }
        }
    }

    /// Logins of users `range` with their current codes (or a wrong code for each).
    pub fn logins(&self, range: std::ops::Range<usize>, wrong: bool) -> Vec<(String, String)> {
        let now = twofold_policy::time::now();
        range
            .map(|i| {
                let s = &self.secrets[i];
                let code = totp::code_at(s, Params::default(), now).unwrap();
                let code = if wrong {
                    wrong_code(s, now)
                } else {
                    code.to_string()
                };
                (self.users[i].clone(), code)
            })
            .collect()
    }

    /// A pam_bench command for module `m` with this population's environment, under `wrapper`
    /// (e.g. strace) if given.
    pub fn command(&self, a: &Args, wrapper: &[String], m: usize, file: &Path) -> Command {
        self.command_all(a, wrapper, &[m], file)
    }

    /// A pam_bench command that logs in with each of `modules` in turn for every line of
    /// `file`.
    pub fn command_all(
        &self,
        a: &Args,
        wrapper: &[String],
        modules: &[usize],
        file: &Path,
    ) -> Command {
        let mut c = match wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(&a.pam_bench);
                c
            }
            None => Command::new(&a.pam_bench),
        };
        let services: Vec<String> = modules.iter().map(|&m| self.service(m)).collect();
        c.arg(services.join(",")).arg(file);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs pam_bench for module `m` over `logins`.
    pub fn run(&self, a: &Args, t: &Path, m: usize, logins: &[(String, String)]) -> Vec<Login> {
        self.run_all(a, t, &[m], logins).swap_remove(0)
    }

    /// Runs pam_bench over `logins`, each line with every one of `modules` in turn (the
    /// order rotating from line to line), so a change in the host's speed during the run
    /// falls on all of them alike; the logins of each module, in `modules`' order.
    pub fn run_all(
        &self,
        a: &Args,
        t: &Path,
        modules: &[usize],
        logins: &[(String, String)],
    ) -> Vec<Vec<Login>> {
        let file = write_logins(t, logins);
        let out = self
            .command_all(a, &[], modules, &file)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        let mut by_module = vec![Vec::new(); modules.len()];
        for (k, login) in parse_pam_bench(&out.stdout) {
            by_module[k].push(login);
        }
        by_module
    }
}

/// twofold's counters of `user` as a login a day before `now` left them.
pub fn seed_counters(store: &Store, user: &str, now: u64) {
    let name = twofold_policy::UserName::parse(user).unwrap();
    let lock = store.lock(&name).unwrap();
    let counters = Counters {
        last_steps: std::collections::BTreeMap::from([(
            1,
            totp::step_of(now, Params::default()) - DAY / 30,
        )]),
        last_login: Some(now - DAY),
        last_login_from: Some("local".into()),
        ..Counters::default()
    };
    lock.write_counters(&counters).unwrap();
}

/// A 6-digit code that is none of the codes `now - 2` .. `now + 2` steps accept.
fn wrong_code(s: &Secret, now: u64) -> String {
    let near: Vec<String> = (0..5)
        .map(|k| {
            totp::code_at(s, Params::default(), now + k * 30 - 60)
                .unwrap()
                .to_string()
        })
        .collect();
    (0u32..)
        .map(|k| format!("{:06}", (k * 142_857 + 13) % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// Writes the "user code" lines pam_bench reads.
pub fn write_logins(t: &Path, logins: &[(String, String)]) -> PathBuf {
    let file = t.join("logins");
    let mut text = String::new();
    for (u, c) in logins {
        let _ = writeln!(text, "{u} {c}");
    }
    std::fs::write(&file, text).unwrap();
    file
}

fn parse_pam_bench(stdout: &[u8]) -> Vec<(usize, Login)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                Login {
                    full: f[1].parse::<f64>().unwrap() / 1000.0,
                    auth: f[2].parse::<f64>().unwrap() / 1000.0,
                    ok: f[3] == "0",
                    minflt: f[4].parse().unwrap(),
                    auth_minflt: f[5].parse().unwrap(),
                },
            )
        })
        .collect()
}

/// A table in Markdown.
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
    for r in rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    s
}

/// "median / p90" with no decimals.
pub fn mp(v: &[f64]) -> String {
    let (m, p) = stats(v.to_vec());
    format!("{m:.0} / {p:.0}")
}

/// The median.
pub fn med(v: &[f64]) -> f64 {
    stats(v.to_vec()).0
}

/// Lines in a file.
fn lines_of(p: &str) -> usize {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .count()
}

/// What the login part measured, per population and module.
pub struct LoginResults {
    /// [population][module] valid-code logins.
    pub valid: Vec<Vec<Vec<Login>>>,
    /// [population][module] wrong-code logins.
    pub wrong: Vec<Vec<Vec<Login>>>,
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "make bench needs root (accounts, PAM service files in /etc/pam.d, /dev/log, root-owned state)"
        );
        std::process::exit(1);
    }
    // First, before any thread: Ctrl-C and SIGTERM undo the host changes.
    twofold_bench::cleanup::catch_signals();
    let argv: Vec<String> = std::env::args().collect();
    if let Some(i) = argv.iter().position(|x| x == "--dlopen") {
        // `twofold-bench [--dl-bench target/dl_bench] --dlopen A.so B.so ...`: the dlopen +
        // dlclose floor, size and relocations of module builds side by side (for comparing
        // build profiles).
        let paths: Vec<PathBuf> = argv[i + 1..].iter().map(PathBuf::from).collect();
        let dl_bench = PathBuf::from(arg("--dl-bench", "target/dl_bench"));
        print!("{}", breakdown::compare_modules(&dl_bench, &paths));
        return;
    }
    let target = PathBuf::from(arg("--target", "target/release"));
    let scale_only = std::env::args().any(|x| x == "--scale-only");
    // Every file the run uses must exist, found now rather than after minutes; the scale part
    // alone needs only the daemon and the CLI.
    let needed = |p: PathBuf| {
        if scale_only {
            p.canonicalize().unwrap_or(p)
        } else {
            p.canonicalize().unwrap()
        }
    };
    let a = Args {
        per_round: arg("--logins", "200").parse().unwrap(),
        rounds: arg("--rounds", "5").parse().unwrap(),
        records: arg("--records", "100000").parse().unwrap(),
        out: PathBuf::from(arg("--out", "bench/results.md")),
        module: needed(target.join("libpam_twofold.so")),
        pam_bench: needed(PathBuf::from(arg("--pam-bench", "target/pam_bench"))),
        dl_bench: needed(PathBuf::from(arg("--dl-bench", "target/dl_bench"))),
        enrolld: target.join("twofold-enrolld").canonicalize().unwrap(),
        logins_only: std::env::args().any(|x| x == "--logins-only"),
        scale_only,
        trace_dir: Some(arg("--trace", ""))
            .filter(|d| !d.is_empty())
            .map(PathBuf::from),
        ldap_only: std::env::args().any(|x| x == "--ldap-only"),
        tput_pool: arg("--tput-pool", "1500").parse().unwrap(),
        tput_seconds: arg("--tput-seconds", "5").parse().unwrap(),
        tput_rounds: arg("--tput-rounds", "2").parse().unwrap(),
    };
    if let Some(out) = argv
        .iter()
        .position(|x| x == "--hot-symbols")
        .and_then(|i| argv.get(i + 1))
    {
        hot_symbols(&a, Path::new(out));
        twofold_bench::cleanup::run_all();
        return;
    }
    let md = run(&a);
    print!("{md}");
    std::fs::write(&a.out, md).unwrap();
    eprintln!("written to {}", a.out.display());
    // Anything still registered (nothing, normally) is undone before exiting.
    twofold_bench::cleanup::run_all();
}

fn run(a: &Args) -> String {
    if a.scale_only {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().to_owned();
        let _remove_tmp = twofold_bench::cleanup::register(move || {
            let _ = std::fs::remove_dir_all(&t);
        });
        eprintln!("policy scale and the daemon (--scale-only)");
        return scale::run(a, tmp.path());
    }
    let stale = accounts::remove_stale();
    if !stale.is_empty() {
        eprintln!(
            "removed {} accounts left by a killed benchmark run",
            stale.len()
        );
    }
    let devlog = DevLog::setup().expect("a syslog receiver on /dev/log");
    eprintln!("syslog: {}", devlog.description);
    let (tmp, _remove_tmp) = workdir();
    let t = tmp.path();
    if a.ldap_only {
        let n = a.per_round;
        eprintln!("creating {n} accounts with useradd (--ldap-only)");
        let real_accounts = Accounts::create("tfbench", n);
        let mut md = format!(
            "# twofold benchmarks: the LDAP part alone (--ldap-only)\n\n{}. Syslog: {}.\n\n",
            machine(),
            devlog.description
        );
        md.push_str(&ldap::run(a, t, &real_accounts.names));
        drop(real_accounts);
        drop(devlog);
        return md;
    }

    // The users: real accounts, and the same number from nss_wrapper.
    let n = a.per_round;
    eprintln!("creating {n} accounts with useradd");
    let real_accounts = Accounts::create("tfbench", n);
    let (passwd_lines, group_lines) = (lines_of("/etc/passwd"), lines_of("/etc/group"));
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut group = String::from("root:x:0:\n");
    let nssw_users: Vec<String> = (1..=n).map(|i| format!("tfbw{i}")).collect();
    for (i, u) in nssw_users.iter().enumerate() {
        let id = 20000 + i;
        let _ = writeln!(passwd, "{u}:x:{id}:{id}::/nonexistent:/usr/sbin/nologin");
        let _ = writeln!(group, "{u}:x:{id}:");
    }
    std::fs::write(t.join("passwd"), &passwd).unwrap();
    std::fs::write(t.join("group"), &group).unwrap();
    let pops = [
        Population::new(
            a,
            t,
            "real accounts",
            "real",
            real_accounts.names.clone(),
            vec![],
        ),
        Population::new(
            a,
            t,
            "nss_wrapper",
            "nssw",
            nssw_users,
            vec![
                ("LD_PRELOAD".into(), PathBuf::from(NSS_WRAPPER)),
                ("NSS_WRAPPER_PASSWD".into(), t.join("passwd")),
                ("NSS_WRAPPER_GROUP".into(), t.join("group")),
            ],
        ),
    ];

    let logins = logins_part(a, t, &pops);
    let received = devlog.counts.as_ref().map(|c| {
        use std::sync::atomic::Ordering::Relaxed;
        (
            c.datagrams.load(Relaxed),
            c.twofold.load(Relaxed),
            c.google_authenticator.load(Relaxed),
        )
    });
    let mut md = header(a, &devlog, passwd_lines, group_lines, &filesystem_of(t));
    if let Some((all, tf, ga)) = received {
        let _ = writeln!(
            md,
            "- The receiver got {all} messages during the logins (warm-up included): {tf} from pam_twofold, {ga} from pam_google_authenticator.\n"
        );
    }
    md.push_str(&logins_md(a, &pops, &logins));

    eprintln!("breakdown");
    md.push_str(&breakdown::run(a, t, &pops[0], &logins));

    // The LDAP backend, with the same real accounts.
    eprintln!("the LDAP backend");
    md.push_str(&ldap::run(a, t, &pops[0].users));

    // The accounts go before the daemon part, which lists every account of the host too.
    drop(pops);
    drop(real_accounts);
    if !a.logins_only {
        eprintln!("policy scale and the daemon");
        md.push_str(&scale::run(a, t));
    }
    drop(devlog);
    md
}

/// The run's temporary directory, removed at the end (by the `TempDir`) or at a signal (by
/// the registered undo), with the benchmark's policy in `policy/policy.toml`.
fn workdir() -> (tempfile::TempDir, twofold_bench::cleanup::Undo) {
    let tmp = tempfile::tempdir().unwrap();
    let undo = {
        let t = tmp.path().to_owned();
        twofold_bench::cleanup::register(move || {
            let _ = std::fs::remove_dir_all(&t);
        })
    };
    // A group rule naming a group the host has (Debian's `sudo`): a name missing from
    // /etc/group sends every lookup on to nss_systemd's userdb probes (~250 µs).
    // The policy in a directory of its own, as /etc/twofold is: the compiled cache is keyed by
    // the directory too, and the bench writes its other files beside the policy all the time.
    std::fs::create_dir(tmp.path().join("policy")).unwrap();
    std::fs::write(
        tmp.path().join("policy/policy.toml"),
        "mode = \"optional\"\n[groups.sudo]\nmode = \"required\"\n[services.sudo]\nmode = \"disabled\"\n",
    )
    .unwrap();
    (tmp, undo)
}

/// `--hot-symbols FILE`: writes the functions of pam_twofold.so that logins run (accepted
/// codes and refused ones, for real accounts, through the real libpam, with a `/dev/log`
/// receiver), as valgrind's callgrind sees them, for the linker to place together
/// (pam_module/build.rs). Run by `make hot-symbols` after changes to the login path or a new
/// toolchain (whose symbol names differ); `make bench`'s page-fault column shows when it is due.
fn hot_symbols(a: &Args, out: &Path) {
    let devlog = DevLog::setup().expect("a syslog receiver on /dev/log");
    // The benchmark's policy: a group rule, so the group lookup is part of the path.
    let (tmp, _remove_tmp) = workdir();
    let t = tmp.path();
    let accounts = Accounts::create("tfhot", 4);
    let pop = Population::new(
        a,
        t,
        "real accounts",
        "real",
        accounts.names.clone(),
        vec![],
    );
    let mut logins = pop.logins(0..2, false);
    logins.extend(pop.logins(2..4, true));
    let file = write_logins(t, &logins);
    // A first round unprofiled: it compiles the policy cache, as a host's first login does
    // (once the policy is 2 s old: a file changed within that is not cached yet).
    std::thread::sleep(std::time::Duration::from_secs(3));
    pop.prepare(TF, twofold_policy::time::now());
    pop.run(a, t, TF, &logins);
    pop.prepare(TF, twofold_policy::time::now());
    let profile = t.join("callgrind.out");
    let run = pop
        .command(
            a,
            &[
                "valgrind".into(),
                "--tool=callgrind".into(),
                "--demangle=no".into(),
                format!("--callgrind-out-file={}", profile.display()),
            ],
            TF,
            &file,
        )
        .stderr(Stdio::null())
        .output()
        .expect("valgrind (make hot-symbols installs it)");
    let results = parse_pam_bench(&run.stdout);
    assert_eq!(
        results.iter().map(|(_, l)| l.ok).collect::<Vec<_>>(),
        [true, true, false, false],
        "the profiled logins did not go as planned"
    );
    let annotate = Command::new("callgrind_annotate")
        .args(["--threshold=100", "--inclusive=no"])
        .arg(&profile)
        .output()
        .expect("callgrind_annotate");
    let module = a.module.display().to_string();
    let mut names: Vec<String> = String::from_utf8_lossy(&annotate.stdout)
        .lines()
        .filter(|l| l.ends_with(&format!("[{module}]")))
        .filter_map(|l| {
            let name = l.split("???:").nth(1)?.split(" [").next()?;
            // Code without a symbol shows as its address: nothing to name.
            (!name.starts_with("0x")).then(|| name.to_owned())
        })
        .collect();
    names.sort();
    names.dedup();
    assert!(
        names.len() > 50,
        "too few functions profiled: {}",
        names.len()
    );
    let mut text = String::from(
        "# The functions of pam_twofold.so that logins run, placed first and together in .text by\n\
         # the linker (pam_module/build.rs). Written by `make hot-symbols` (valgrind's callgrind over\n\
         # accepted and refused logins, bench/src/main.rs); regenerate it after changes to the\n\
         # login path or the toolchain. The names are those of `make build` (the whole workspace:\n\
         # building the module alone gives its crates other hashes). Names a build lacks are skipped.\n",
    );
    for n in &names {
        text.push_str(n);
        text.push('\n');
    }
    std::fs::write(out, text).unwrap();
    eprintln!(
        "{} functions written to {} ({})",
        names.len(),
        out.display(),
        devlog.description
    );
}

/// The type and device of the file system holding `p` (from /proc/self/mounts).
fn filesystem_of(p: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && p.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} ({}, {})", f[2], f[0], f[3])))
        })
        .max_by_key(|(len, _)| *len)
        .map_or("unknown".into(), |(_, d)| d)
}

/// The date, the CPU, its cores and the kernel.
fn machine() -> String {
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
    format!("{date}, {machine}")
}

fn header(a: &Args, devlog: &DevLog, passwd_lines: usize, group_lines: usize, fs: &str) -> String {
    format!(
        "# twofold benchmarks\n\n{machine}. `make bench`: {n} users per user database, each logging in once per round with each module, {r} rounds (in each, for each user database, every user logs in with each of the 4 modules in turn, the order rotating from one user to the next, so that the host's drift in speed falls on every module alike; a warm-up batch of each first, discarded); release build.\n\n\
         - Syslog: {dl}.\n\
         - Real accounts: {n} accounts `tfbench1`..`tfbench{n}` made with `useradd` (the distribution's defaults: a private group each), so /etc/passwd had {passwd_lines} lines and /etc/group {group_lines} during the run, resolved by glibc's NSS (`files`); removed with `userdel` afterwards.\n\
         - nss_wrapper: {n} users `tfbw1`..`tfbw{n}` with a private group each, from files given to `LD_PRELOAD`ed nss_wrapper; no account is made.\n\
         - State (twofold's and google-authenticator's files) in a temporary directory on {fs}.\n\
         - Every user is a returning one: before each batch (outside the timed part) twofold's counters say the last login was a day ago, and google-authenticator's `DISALLOW_REUSE` list holds that day-old step; every twofold login reads and replaces its counters (replay state).\n\n",
        n = a.per_round,
        r = a.rounds,
        machine = machine(),
        dl = devlog.description,
        fs = fs,
    )
}

fn logins_part(a: &Args, t: &Path, pops: &[Population]) -> LoginResults {
    let configs: Vec<(usize, usize)> = (0..pops.len())
        .flat_map(|p| (0..MODULES.len()).map(move |m| (p, m)))
        .collect();
    // Warm-up, discarded: the policy cache, the page cache, the harness.
    for &(p, m) in &configs {
        pops[p].prepare(m, twofold_policy::time::now());
        pops[p].run(a, t, m, &pops[p].logins(0..5.min(a.per_round), false));
    }
    // Each round, each population: every user logs in with every module in turn, the order
    // rotating from user to user (pam_bench), so that the host's drift in speed, large on a
    // VM, falls on all modules alike; the populations' order alternates from round to round.
    let all: Vec<usize> = (0..MODULES.len()).collect();
    let mut valid = vec![vec![Vec::new(); MODULES.len()]; pops.len()];
    for r in 0..a.rounds {
        eprintln!("round {} of {}", r + 1, a.rounds);
        for k in 0..pops.len() {
            let p = (r + k) % pops.len();
            let now = twofold_policy::time::now();
            for &m in &all {
                pops[p].prepare(m, now);
            }
            let logins = pops[p].logins(0..a.per_round, false);
            for (m, got) in pops[p].run_all(a, t, &all, &logins).into_iter().enumerate() {
                valid[p][m].extend(got);
            }
        }
    }
    let mut wrong = vec![vec![Vec::new(); MODULES.len()]; pops.len()];
    for &(p, m) in &configs {
        if m == PERMIT {
            continue;
        }
        pops[p].prepare(m, twofold_policy::time::now());
        let logins = pops[p].logins(0..a.per_round, true);
        let got = pops[p].run(a, t, m, &logins);
        assert!(
            got.iter().all(|l| !l.ok),
            "a wrong code was accepted by {}",
            MODULES[m]
        );
        wrong[p][m] = got;
    }
    LoginResults { valid, wrong }
}

fn logins_md(a: &Args, pops: &[Population], r: &LoginResults) -> String {
    let mut rows = Vec::new();
    for (p, pop) in pops.iter().enumerate() {
        for (m, name) in MODULES.iter().enumerate() {
            let v = &r.valid[p][m];
            let col = |f: fn(&Login) -> f64| v.iter().map(f).collect::<Vec<f64>>();
            let wrong: Vec<f64> = r.wrong[p][m].iter().map(|l| l.auth).collect();
            rows.push(vec![
                pop.label.to_owned(),
                (*name).to_owned(),
                mp(&col(|l| l.full)),
                mp(&col(|l| l.auth)),
                if wrong.is_empty() {
                    "—".into()
                } else {
                    mp(&wrong)
                },
                format!(
                    "{:.0} / {:.1}",
                    med(&col(|l| l.minflt)),
                    col(|l| l.auth_minflt).iter().sum::<f64>() / v.len().max(1) as f64
                ),
                format!("{} of {}", v.iter().filter(|l| l.ok).count(), v.len()),
            ]);
        }
    }
    let mut md = format!(
        "## Logins through libpam\n\nTimes in µs, median / p90 of {} logins per row. Full login: pam_start + pam_authenticate + pam_end in one process (pam_start and pam_end load and unload the module), through the real libpam; page faults: minor faults of the harness process per full login (median) / in pam_authenticate (mean), from getrusage.\n\n",
        a.per_round * a.rounds
    );
    md.push_str(&table(
        &[
            "users",
            "module",
            "full login",
            "pam_authenticate",
            "refused (wrong code)",
            "page faults (login / auth)",
            "accepted",
        ],
        &rows,
    ));
    md.push_str(
        "\nThe pam_permit rows are libpam's own cost on this host, which every module pays: pam_start parses the service file and also `/etc/pam.d/other` for the stacks the service file leaves out, so it loads (and pam_end unloads) the modules those name too.\n\n",
    );
    let ratios = |p: usize, other: usize| {
        let full = |m: usize| med(&r.valid[p][m].iter().map(|l| l.full).collect::<Vec<_>>());
        let auth = |m: usize| med(&r.valid[p][m].iter().map(|l| l.auth).collect::<Vec<_>>());
        let wrong = |m: usize| med(&r.wrong[p][m].iter().map(|l| l.auth).collect::<Vec<_>>());
        format!(
            "full login {:.2}, pam_authenticate {:.2}, wrong code {:.2}",
            full(TF) / full(other),
            auth(TF) / auth(other),
            wrong(TF) / wrong(other)
        )
    };
    let _ = writeln!(
        md,
        "Ratios of medians, real accounts (the run that matters):\n\n- twofold / google-authenticator stateless: {}\n- twofold / google-authenticator DISALLOW_REUSE: {}\n",
        ratios(0, GA),
        ratios(0, GAR)
    );
    let _ = writeln!(
        md,
        "The same with nss_wrapper users:\n\n- nss_wrapper run, twofold / google-authenticator stateless: {}\n- nss_wrapper run, twofold / google-authenticator DISALLOW_REUSE: {}\n",
        ratios(1, GA),
        ratios(1, GAR)
    );
    md
}
