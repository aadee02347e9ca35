//! Helpers of the system tests: where the workspace and its built artefacts are, and who runs.
#![forbid(unsafe_code)]

use std::path::PathBuf;

pub mod fleet_store;
pub mod slapd;

/// The workspace root.
pub fn workspace() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// The directory of the debug build that `cargo test --workspace` made (`target/debug`), taken
/// from the running test binary (`target/debug/deps/…`).
pub fn build_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.to_path_buf())
}

/// True when running as root; otherwise says why the test does nothing. CI runs as root.
pub fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "this test needs root (it installs files and packages): run make test as root (CI does)"
    );
    false
}

/// The built `pam_twofold` module: `target/debug/libpam_twofold.so`, or the copy in `deps/`
/// where `cargo test` alone leaves it.
pub fn module_so() -> Option<PathBuf> {
    let d = build_dir()?;
    [
        d.join("libpam_twofold.so"),
        d.join("deps/libpam_twofold.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// A directory holding the built artefacts side by side (`twofold`, `twofold-enrolld`,
/// `twofold-verifyd`, `libpam_twofold.so`), as `BIN_DIR` of the Makefile expects: symlinks into the debug build.
pub fn staged_bins(dir: &std::path::Path) -> std::io::Result<PathBuf> {
    let out = dir.join("bin");
    std::fs::create_dir_all(&out)?;
    let d = build_dir().ok_or_else(|| std::io::Error::other("no build directory"))?;
    let module =
        module_so().ok_or_else(|| std::io::Error::other("libpam_twofold.so is not built"))?;
    for (from, name) in [
        (d.join("twofold"), "twofold"),
        (d.join("twofold-enrolld"), "twofold-enrolld"),
        (d.join("twofold-verifyd"), "twofold-verifyd"),
        (module, "libpam_twofold.so"),
    ] {
        let to = out.join(name);
        let _ = std::fs::remove_file(&to);
        install_copy(&from, &to, "0755")?;
    }
    Ok(out)
}

/// Copies an executable with install(1): this process never holds the copy open for writing,
/// so a process another test thread forks meanwhile cannot inherit that descriptor and make
/// executing the copy fail with ETXTBSY ("Text file busy").
pub fn install_copy(
    from: &std::path::Path,
    to: &std::path::Path,
    mode: &str,
) -> std::io::Result<()> {
    let st = std::process::Command::new("install")
        .args(["-m", mode])
        .arg(from)
        .arg(to)
        .status()?;
    if st.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "install {} {}: {st}",
            from.display(),
            to.display()
        )))
    }
}

/// Runs `cmd` and returns its output; a failure panics with what it printed (the tests that
/// use it treat a panic as a failed test).
#[allow(clippy::panic)]
pub fn run(cmd: &mut std::process::Command) -> std::process::Output {
    match cmd.output() {
        Ok(out) if out.status.success() => out,
        Ok(out) => panic!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}

/// Runs `argv` with `input` on its stdin: whether it succeeded, and its stdout then stderr.
#[allow(clippy::panic)]
pub fn run_with_input(argv: &[&str], input: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Some((program, args)) = argv.split_first() else {
        panic!("no command to run");
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A free TCP port on 127.0.0.1 (bound and released: the caller binds it again soon after).
#[allow(clippy::panic)] // a test's helper: a panic is a failed test
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// /etc/passwd, /etc/group, /etc/shadow and /etc/gshadow as they are now.
pub fn user_db_snapshot() -> Vec<(String, String)> {
    ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"]
        .iter()
        .map(|f| {
            (
                (*f).to_owned(),
                std::fs::read_to_string(f).unwrap_or_default(),
            )
        })
        .collect()
}

/// A `make` demo target (`demo`, `console-demo`) running in the background in a process group
/// of its own, on the debug build's binaries, with its instructions read up to the line about
/// its logs.
pub struct Demo {
    child: std::process::Child,
    /// What it printed up to and including the `Logs:` line.
    pub text: String,
    stderr_path: PathBuf,
    rest: Option<std::thread::JoinHandle<Vec<String>>>,
    stopped: bool,
    _scratch: tempfile::TempDir,
}

#[allow(clippy::panic)] // a test's helper: a panic is a failed test
impl Demo {
    /// Starts `make TARGET` with `env` (its port and account names).
    pub fn start(target: &str, env: &[(&str, String)]) -> Demo {
        use std::io::{BufRead, BufReader};
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        std::fs::set_permissions(
            scratch.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap_or_else(|e| panic!("chmod: {e}"));
        let bins = staged_bins(scratch.path()).unwrap_or_else(|e| panic!("binaries: {e}"));
        let stderr_path = scratch.path().join("demo.stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap_or_else(|e| panic!("{e}"));
        let mut child = Command::new("make")
            .args(["--no-print-directory", "-s", "-C"])
            .arg(workspace())
            .arg(target)
            .arg(format!("DEMO_BIN_DIR={}", bins.display()))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("make {target}: {e}"));
        let Some(stdout) = child.stdout.take() else {
            panic!("make {target}: no stdout");
        };
        let mut lines = BufReader::new(stdout).lines();
        let mut text = String::new();
        let start = Instant::now();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("Logs:") || start.elapsed() > Duration::from_secs(120) {
                break;
            }
        }
        let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
        Demo {
            child,
            text,
            stderr_path,
            rest: Some(rest),
            stopped: false,
            _scratch: scratch,
        }
    }

    /// Ctrl-C: SIGINT to the demo's process group.
    pub fn interrupt(&self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", "--", &format!("-{}", self.child.id())])
            .status();
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Ctrl-C, then its exit status and what it printed after the instructions.
    pub fn stop(&mut self) -> (std::process::ExitStatus, String) {
        self.stopped = true;
        self.interrupt();
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("waiting for the demo: {e}"));
        let rest = self
            .rest
            .take()
            .and_then(|r| r.join().ok())
            .unwrap_or_default()
            .join("\n");
        (status, rest)
    }
}

/// A test that fails before [`Demo::stop`] still stops the demo (Ctrl-C, and its cleanup runs),
/// so no account, process or sandbox outlives it.
impl Drop for Demo {
    fn drop(&mut self) {
        if !self.stopped {
            self.interrupt();
            let _ = self.child.wait();
            if let Some(rest) = self.rest.take() {
                let _ = rest.join();
            }
        }
    }
}

/// `make install-files` of the debug build into `dir/root` (its assets generated into
/// `dir/assets`, its binaries staged in `dir/bin`): the tree a package would lay out. Returns
/// the root.
#[allow(clippy::panic)] // a test's helper: a panic is a failed test
pub fn install_files(dir: &std::path::Path) -> PathBuf {
    use std::process::Command;
    let Some(build) = build_dir() else {
        panic!("no build directory");
    };
    let assets = dir.join("assets");
    run(Command::new(build.join("twofold"))
        .arg("generate-assets")
        .arg(&assets));
    let bins = staged_bins(dir).unwrap_or_else(|e| panic!("binaries: {e}"));
    let root = dir.join("root");
    run(Command::new("make")
        .args(["--no-print-directory", "-s", "-C"])
        .arg(workspace())
        .arg("install-files")
        .arg(format!("DESTDIR={}", root.display()))
        .arg(format!("BIN_DIR={}", bins.display()))
        .arg(format!("ASSET_DIR={}", assets.display())));
    root
}
