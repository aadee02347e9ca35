//! `twofold doctor`: the paths through PAM and sshd on which a user whom the policy requires
//! logs in without a code (bypass), or can never log in (lockout).
//!
//! It reads the PAM stacks itself (`@include`, `include`, `substack`, `[value=action]`
//! controls, `-` prefixed lines, comments, continuation lines) and asks the real `sshd -T`
//! for sshd's effective configuration, once for the base and once per representative
//! connection when the configuration has `Match` blocks. Nothing is changed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use twofold_policy::Mode;
use twofold_policy::config::Policy;
use twofold_policy::store::Store;

/// Where to look.
#[derive(Debug, Clone)]
pub struct Options {
    /// The PAM configuration directory (`/etc/pam.d`).
    pub pam_dir: PathBuf,
    /// sshd's configuration file (`/etc/ssh/sshd_config`).
    pub sshd_config: PathBuf,
    /// The sshd binary; `None`: `/usr/sbin/sshd`, else `sshd` in `PATH`.
    pub sshd: Option<PathBuf>,
    /// The policy file (drop-ins beside it).
    pub policy: PathBuf,
    /// The state directory (admin overrides).
    pub state: PathBuf,
}

impl Options {
    /// The system's own files.
    pub fn system(policy: &Path, state: &Path) -> Options {
        Options {
            pam_dir: PathBuf::from(DEFAULT_PAM_DIR),
            sshd_config: PathBuf::from(DEFAULT_SSHD_CONFIG),
            sshd: None,
            policy: policy.to_owned(),
            state: state.to_owned(),
        }
    }
}

/// Default PAM directory.
pub const DEFAULT_PAM_DIR: &str = "/etc/pam.d";
/// Default sshd configuration.
pub const DEFAULT_SSHD_CONFIG: &str = "/etc/ssh/sshd_config";

/// How bad a finding is, mildest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; no user is let in without a code or locked out by it today.
    Warning,
    /// A part doctor could not check (e.g. `sshd -T` failed).
    Unchecked,
    /// Users who need a code can never log in this way.
    Lockout,
    /// A user whom the policy requires logs in without a code.
    Bypass,
}

impl Severity {
    /// The name in the output.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Unchecked => "unchecked",
            Severity::Lockout => "lockout",
            Severity::Bypass => "bypass",
        }
    }
}

/// One finding, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The PAM service (or `sshd`).
    pub service: String,
    /// The file at fault, when there is one.
    pub file: Option<PathBuf>,
    /// Its line (1-based).
    pub line: Option<usize>,
    /// What happens.
    pub what: String,
    /// How to fix it.
    pub fix: String,
}

/// Everything doctor found.
#[derive(Debug, Default)]
pub struct Report {
    /// The findings, worst first.
    pub findings: Vec<Finding>,
    /// Context: what was checked, what was left out and why.
    pub notes: Vec<String>,
}

/// Exit status when a bypass was found.
pub const EXIT_BYPASS: u8 = 7;
/// Exit status when a lockout (and no bypass) was found.
pub const EXIT_LOCKOUT: u8 = 8;
/// Exit status when a part could not be checked (and no bypass or lockout was found).
pub const EXIT_UNCHECKED: u8 = 9;

impl Report {
    /// How many findings have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// The documented exit status: the worst finding decides.
    pub fn exit_code(&self) -> u8 {
        if self.count(Severity::Bypass) > 0 {
            EXIT_BYPASS
        } else if self.count(Severity::Lockout) > 0 {
            EXIT_LOCKOUT
        } else if self.count(Severity::Unchecked) > 0 {
            EXIT_UNCHECKED
        } else {
            0
        }
    }

    /// `{"findings":[…],"bypass":N,"lockout":N,…}`.
    pub fn to_json(&self) -> serde_json::Value {
        let findings: Vec<_> = self
            .findings
            .iter()
            .map(|f| {
                json!({
                    "severity": f.severity.as_str(),
                    "service": f.service,
                    "file": f.file,
                    "line": f.line,
                    "what": f.what,
                    "fix": f.fix,
                })
            })
            .collect();
        json!({
            "findings": findings,
            "bypass": self.count(Severity::Bypass),
            "lockout": self.count(Severity::Lockout),
            "unchecked": self.count(Severity::Unchecked),
            "warning": self.count(Severity::Warning),
            "notes": self.notes,
        })
    }

    /// One block per finding, then the notes and a summary line.
    pub fn to_text(&self, notes: bool) -> String {
        let mut o = String::new();
        for f in &self.findings {
            let place = match (&f.file, f.line) {
                (Some(p), Some(l)) => format!(" ({}:{l})", p.display()),
                (Some(p), None) => format!(" ({})", p.display()),
                _ => String::new(),
            };
            o.push_str(&format!(
                "{}: {}{place}\n  {}\n  fix: {}\n\n",
                f.severity.as_str(),
                f.service,
                f.what,
                f.fix
            ));
        }
        if notes {
            for n in &self.notes {
                o.push_str(&format!("note: {n}\n"));
            }
        }
        o.push_str(&self.summary());
        o.push('\n');
        o
    }

    /// `doctor: 1 bypass, 0 lockouts, …`.
    pub fn summary(&self) -> String {
        let n = |s: Severity, one: &str, many: &str| {
            let c = self.count(s);
            format!("{c} {}", if c == 1 { one } else { many })
        };
        let verdict = match self.exit_code() {
            EXIT_BYPASS => "a user who needs a code can log in without one",
            EXIT_LOCKOUT => "users who need a code are locked out somewhere",
            EXIT_UNCHECKED => "not everything could be checked",
            _ => "no path skips the code",
        };
        format!(
            "doctor: {}, {}, {}, {}: {verdict}",
            n(Severity::Bypass, "bypass", "bypasses"),
            n(Severity::Lockout, "lockout", "lockouts"),
            n(Severity::Unchecked, "unchecked", "unchecked"),
            n(Severity::Warning, "warning", "warnings"),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// PAM configuration

/// What a module's return value makes the stack do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Ignore,
    Ok,
    Bad,
    Die,
    Done,
    Reset,
    Jump(usize),
}

/// A control field: `[value=action …]` or the keyword it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Actions {
    map: BTreeMap<String, Action>,
    default: Action,
}

impl Actions {
    fn get(&self, value: &str) -> Action {
        self.map.get(value).copied().unwrap_or(self.default)
    }

    fn keyword(k: &str) -> Option<Actions> {
        let (success, default, ignore) = match k {
            "required" => (Action::Ok, Action::Bad, Some(Action::Ignore)),
            "requisite" => (Action::Ok, Action::Die, Some(Action::Ignore)),
            "sufficient" => (Action::Done, Action::Ignore, None),
            "optional" => (Action::Ok, Action::Ignore, None),
            _ => return None,
        };
        let mut map = BTreeMap::new();
        map.insert("success".to_owned(), success);
        map.insert("new_authtok_reqd".to_owned(), success);
        if let Some(i) = ignore {
            map.insert("ignore".to_owned(), i);
        }
        Some(Actions { map, default })
    }

    /// `[success=1 default=ignore]`; values libpam does not know are kept (harmless).
    fn bracket(inner: &str) -> Result<Actions, String> {
        let mut map = BTreeMap::new();
        // libpam: an unspecified `default` is `bad`.
        let mut default = Action::Bad;
        for tok in inner.split_whitespace() {
            let (k, v) = tok
                .split_once('=')
                .ok_or_else(|| format!("{tok:?} is not value=action"))?;
            let a = match v.to_ascii_lowercase().as_str() {
                "ignore" => Action::Ignore,
                "ok" => Action::Ok,
                "bad" => Action::Bad,
                "die" => Action::Die,
                "done" => Action::Done,
                "reset" => Action::Reset,
                n => Action::Jump(
                    n.parse()
                        .map_err(|_| format!("{v:?} is not an action or a number"))?,
                ),
            };
            let k = k.to_ascii_lowercase();
            if k == "default" {
                default = a;
            } else {
                map.insert(k, a);
            }
        }
        Ok(Actions { map, default })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Control {
    Include(String),
    Substack(String),
    Module(Actions),
}

/// One logical line of a PAM file.
#[derive(Debug, Clone)]
struct PamLine {
    file: PathBuf,
    line: usize,
    /// `None` for `@include`.
    kind: Option<String>,
    control: Control,
    /// The module as written (`pam_unix.so`, `/lib/…/pam_unix.so`).
    module: String,
    /// The line as written, for messages.
    text: String,
}

impl PamLine {
    fn module_name(&self) -> &str {
        self.module.rsplit('/').next().unwrap_or(&self.module)
    }

    fn is_twofold(&self) -> bool {
        self.module_name() == "pam_twofold.so"
    }

    fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// Logical lines: comments cut at `#`, `\` at the end joins the next line (as libpam does).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut acc = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if acc.is_empty() {
            start = i + 1;
        }
        let content = raw.split('#').next().unwrap_or("");
        let t = content.trim_end();
        if let Some(cont) = t.strip_suffix('\\') {
            acc.push_str(cont);
            acc.push(' ');
            continue;
        }
        acc.push_str(t);
        if !acc.trim().is_empty() {
            out.push((start, acc.trim().to_owned()));
        }
        acc.clear();
    }
    if !acc.trim().is_empty() {
        out.push((start, acc.trim().to_owned()));
    }
    out
}

/// Parses one PAM file. Lines it cannot read are returned as problems (libpam skips them too).
fn parse_pam(file: &Path, text: &str) -> (Vec<PamLine>, Vec<String>) {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for (n, l) in logical_lines(text) {
        let mut rest = l.as_str();
        let first = next_token(&mut rest);
        if first == "@include" {
            let target = next_token(&mut rest);
            lines.push(PamLine {
                file: file.to_owned(),
                line: n,
                kind: None,
                control: Control::Include(target.to_owned()),
                module: String::new(),
                text: l.split_whitespace().collect::<Vec<_>>().join(" "),
            });
            continue;
        }
        let kind = first.trim_start_matches('-').to_ascii_lowercase();
        if !matches!(kind.as_str(), "auth" | "account" | "password" | "session") {
            problems.push(format!(
                "{}:{n}: {l:?}: unknown type {first:?}",
                file.display()
            ));
            continue;
        }
        rest = rest.trim_start();
        let control = if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                problems.push(format!("{}:{n}: {l:?}: no closing ]", file.display()));
                continue;
            };
            let inner = after.get(..end).unwrap_or("");
            rest = after.get(end + 1..).unwrap_or("");
            match Actions::bracket(inner) {
                Ok(a) => Control::Module(a),
                Err(e) => {
                    problems.push(format!("{}:{n}: {l:?}: {e}", file.display()));
                    continue;
                }
            }
        } else {
            let word = next_token(&mut rest).to_ascii_lowercase();
            match word.as_str() {
                "include" => Control::Include(next_token(&mut rest).to_owned()),
                "substack" => Control::Substack(next_token(&mut rest).to_owned()),
                w => match Actions::keyword(w) {
                    Some(a) => Control::Module(a),
                    None => {
                        problems.push(format!(
                            "{}:{n}: {l:?}: unknown control {w:?}",
                            file.display()
                        ));
                        continue;
                    }
                },
            }
        };
        let module = match control {
            Control::Module(_) => next_token(&mut rest).to_owned(),
            _ => String::new(),
        };
        lines.push(PamLine {
            file: file.to_owned(),
            line: n,
            kind: Some(kind),
            control,
            module,
            text: l.split_whitespace().collect::<Vec<_>>().join(" "),
        });
    }
    (lines, problems)
}

fn next_token<'a>(rest: &mut &'a str) -> &'a str {
    let s = rest.trim_start();
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    let (tok, after) = s.split_at(end);
    *rest = after;
    tok
}

/// A module line of an expanded stack, with the substacks it sits in.
#[derive(Debug, Clone)]
struct Entry {
    line: PamLine,
    /// Ids of the substacks from the outside in; empty at the top level.
    scope: Vec<usize>,
}

/// The PAM directory, read once.
struct PamDir {
    dir: PathBuf,
    files: BTreeMap<String, Vec<PamLine>>,
    problems: Vec<String>,
}

impl PamDir {
    fn read(dir: &Path) -> Result<PamDir, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut files = BTreeMap::new();
        let mut problems = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with('~') || name.contains(".dpkg-") {
                continue;
            }
            let path = e.path();
            if !path.is_file() {
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let (lines, p) = parse_pam(&path, &text);
                    problems.extend(p);
                    files.insert(name, lines);
                }
                Err(err) => problems.push(format!("{}: {err}", path.display())),
            }
        }
        Ok(PamDir {
            dir: dir.to_owned(),
            files,
            problems,
        })
    }

    /// The lines of an included file: a name in the directory, or an absolute path.
    fn lines_of(&self, name: &str) -> Option<Vec<PamLine>> {
        if let Some(l) = self.files.get(name) {
            return Some(l.clone());
        }
        let p = Path::new(name);
        if p.is_absolute() {
            if let Some(l) = p
                .strip_prefix(&self.dir)
                .ok()
                .and_then(|rel| self.files.get(&rel.to_string_lossy().into_owned()))
            {
                return Some(l.clone());
            }
            let text = std::fs::read_to_string(p).ok()?;
            return Some(parse_pam(p, &text).0);
        }
        None
    }

    /// The stack of type `kind` of `service`, includes and substacks expanded.
    fn stack(&self, service: &str, kind: &str) -> Stack {
        let mut s = Stack::default();
        let mut next_scope = 0;
        self.expand(service, kind, &[], 0, &mut s, &mut next_scope);
        s
    }

    fn expand(
        &self,
        name: &str,
        kind: &str,
        scope: &[usize],
        depth: usize,
        out: &mut Stack,
        next_scope: &mut usize,
    ) {
        if depth > 16 {
            out.problems
                .push(format!("{name}: includes nested deeper than 16 (a loop?)"));
            return;
        }
        let Some(lines) = self.lines_of(name) else {
            out.problems.push(format!(
                "{}: included but missing",
                self.dir.join(name).display()
            ));
            return;
        };
        for l in lines {
            match (&l.kind, &l.control) {
                (None, Control::Include(target)) => {
                    self.expand(target, kind, scope, depth + 1, out, next_scope)
                }
                (Some(k), _) if k != kind => {}
                (_, Control::Include(target)) => {
                    self.expand(target, kind, scope, depth + 1, out, next_scope)
                }
                (_, Control::Substack(target)) => {
                    *next_scope += 1;
                    let mut inner = scope.to_vec();
                    inner.push(*next_scope);
                    self.expand(target, kind, &inner, depth + 1, out, next_scope)
                }
                (_, Control::Module(_)) => out.entries.push(Entry {
                    line: l,
                    scope: scope.to_vec(),
                }),
            }
        }
    }
}

/// An expanded stack.
#[derive(Debug, Default)]
struct Stack {
    entries: Vec<Entry>,
    problems: Vec<String>,
}

/// The files whose lines make up the stack.
fn stack_files(s: &Stack) -> String {
    let files: BTreeSet<String> = s
        .entries
        .iter()
        .map(|e| e.line.file.display().to_string())
        .collect();
    if files.is_empty() {
        "no auth lines".into()
    } else {
        files.into_iter().collect::<Vec<_>>().join(", ")
    }
}

/// How pam_twofold fares in one stack.
#[derive(Debug)]
enum Twofold {
    /// No line runs it.
    Absent,
    /// It runs, and a failure fails the stack.
    Runs,
    /// It is there, but something lets the stack succeed without it.
    Defeated(Vec<Defeat>),
}

#[derive(Debug, Clone)]
struct Defeat {
    /// The line at fault.
    line: PamLine,
    /// What it does.
    what: String,
    /// pam_rootok: root only, by design.
    by_design: bool,
}

/// The units of `scope`'s own level after `from` (a nested substack counts as one, as libpam
/// counts it for jumps), as (first index, last index) ranges.
fn units_after(entries: &[Entry], from: usize, scope: &[usize]) -> Vec<(usize, usize)> {
    let mut units: Vec<(usize, usize)> = Vec::new();
    let mut open: Option<usize> = None; // the substack id of the unit being extended
    for (i, e) in entries.iter().enumerate().skip(from + 1) {
        if !e.scope.starts_with(scope) {
            break; // left the substack `scope`
        }
        if e.scope.len() == scope.len() {
            units.push((i, i));
            open = None;
        } else {
            let id = e.scope.get(scope.len()).copied();
            match (open, units.last_mut()) {
                (Some(o), Some(last)) if Some(o) == id => last.1 = i,
                _ => {
                    units.push((i, i));
                    open = id;
                }
            }
        }
    }
    units
}

fn analyze(stack: &Stack, fail_value: &str) -> Twofold {
    let e = &stack.entries;
    let positions: Vec<usize> = e
        .iter()
        .enumerate()
        .filter(|(_, x)| x.line.is_twofold())
        .map(|(i, _)| i)
        .collect();
    if positions.is_empty() {
        return Twofold::Absent;
    }
    let mut first_defeats: Option<Vec<Defeat>> = None;
    for &t in &positions {
        let Some(te) = e.get(t) else { continue };
        let mut defeats = Vec::new();
        if let Control::Module(a) = &te.line.control {
            let on_fail = a.get(fail_value);
            if !matches!(on_fail, Action::Bad | Action::Die) {
                defeats.push(Defeat {
                    line: te.line.clone(),
                    what: format!(
                        "it runs as `{}`: a wrong or missing code ({fail_value}) does not fail the stack",
                        control_text(&te.line)
                    ),
                    by_design: false,
                });
            }
        }
        for (i, x) in e.iter().enumerate().take(t) {
            if !te.scope.starts_with(&x.scope) {
                continue; // a substack that ended before twofold: its done/jump stays inside
            }
            let Control::Module(a) = &x.line.control else {
                continue;
            };
            let how = match a.get("success") {
                Action::Done => Some(format!(
                    "its success ({}) ends the stack before pam_twofold.so runs",
                    control_text(&x.line)
                )),
                Action::Jump(n) => {
                    let units = units_after(e, i, &x.scope);
                    let skipped = units.iter().take(n).any(|(a, b)| (*a..=*b).contains(&t));
                    skipped.then(|| {
                        format!(
                            "its success ({}) jumps over pam_twofold.so",
                            control_text(&x.line)
                        )
                    })
                }
                _ => None,
            };
            if let Some(what) = how {
                defeats.push(Defeat {
                    by_design: x.line.module_name() == "pam_rootok.so",
                    line: x.line.clone(),
                    what,
                });
            }
        }
        if defeats.is_empty() {
            return Twofold::Runs;
        }
        if first_defeats.is_none() {
            first_defeats = Some(defeats);
        }
    }
    Twofold::Defeated(first_defeats.unwrap_or_default())
}

/// The control field as written (`sufficient`, `[success=done …]`).
fn control_text(l: &PamLine) -> String {
    let mut rest = l.text.as_str();
    next_token(&mut rest);
    let r = rest.trim_start();
    if r.starts_with('[') {
        match r.find(']') {
            Some(end) => r.get(..=end).unwrap_or(r).to_owned(),
            None => r.to_owned(),
        }
    } else {
        next_token(&mut rest).to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// The policy: who can be required where

/// What the policy can require, per service.
struct Requirement {
    /// The policy loaded (or why not: then we assume someone is required, as the module fails
    /// closed).
    policy: Option<Policy>,
    /// Users with an admin override to required (from the state directory).
    override_required: Vec<String>,
}

impl Requirement {
    /// `Some(reason)` when some user must give a code on `service`.
    fn on(&self, service: &str) -> Option<String> {
        // A policy that does not load requires no one we could name (and is a finding itself).
        let p = self.policy.as_ref()?;
        if let Some(s) = p.services.get(service) {
            match s.mode {
                Mode::Required => return Some(format!("{} requires everyone", s.source.table)),
                Mode::Disabled => return None,
                Mode::Optional => {}
            }
        } else if p.mode.value == Mode::Required {
            return Some("the default mode is required".into());
        }
        if let Some((name, _)) = p.users.iter().find(|(_, r)| r.mode == Mode::Required) {
            return Some(format!("[users.{name}] is required"));
        }
        if let Some((name, _)) = p.groups.iter().find(|(_, r)| r.mode == Mode::Required) {
            return Some(format!("[groups.{name}] is required"));
        }
        if let Some(u) = self.override_required.first() {
            return Some(format!("an admin override requires {u}"));
        }
        None
    }

    /// `[services.X] mode = "disabled"`: the admin left X alone on purpose.
    fn disabled(&self, service: &str) -> bool {
        self.policy
            .as_ref()
            .and_then(|p| p.services.get(service))
            .is_some_and(|s| s.mode == Mode::Disabled)
    }

    /// Some users the policy requires (for sshd's Match blocks), at most `max`.
    fn users(&self, max: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(p) = &self.policy {
            out.extend(
                p.users
                    .iter()
                    .filter(|(_, r)| r.mode == Mode::Required)
                    .map(|(n, _)| n.clone()),
            );
            for (g, r) in &p.groups {
                if r.mode == Mode::Required
                    && let Ok(Some(group)) = nix::unistd::Group::from_name(g)
                {
                    out.extend(group.mem);
                }
            }
        }
        out.extend(self.override_required.iter().cloned());
        let mut seen = BTreeSet::new();
        out.retain(|u| seen.insert(u.clone()));
        out.truncate(max);
        out
    }
}

fn requirement(opts: &Options, notes: &mut Vec<String>) -> (Requirement, Option<Finding>) {
    let (policy, finding) = match Policy::load_system(&opts.policy) {
        Ok(p) => (Some(p), None),
        Err(e) => (
            None,
            Some(Finding {
                severity: Severity::Lockout,
                service: "policy".into(),
                file: Some(e.file.clone()),
                line: e.position.map(|p| p.0),
                what: format!(
                    "the policy does not load ({e}): every login through pam_twofold.so is refused (fail closed)"
                ),
                fix: "fix the policy: `twofold policy check` shows where".into(),
            }),
        ),
    };
    let mut override_required = Vec::new();
    match Store::open(&opts.state) {
        Ok(store) => match store.users() {
            Ok(users) => {
                for u in users {
                    if let Ok(Some(r)) = store.read_record(&u)
                        && r.admin_override.is_some_and(|o| o.mode == Mode::Required)
                    {
                        override_required.push(u.as_str().to_owned());
                    }
                }
            }
            Err(e) => notes.push(format!("admin overrides not read: {e}")),
        },
        Err(twofold_policy::store::StoreError::Missing(_)) => {}
        Err(e) => notes.push(format!(
            "admin overrides not read ({e}){}",
            if nix::unistd::geteuid().is_root() {
                ""
            } else {
                ": run as root to count them"
            }
        )),
    }
    (
        Requirement {
            policy,
            override_required,
        },
        finding,
    )
}

// ---------------------------------------------------------------------------------------------
// sshd

/// The parts of `sshd -T` that decide whether a code is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SshdConf {
    use_pam: bool,
    pubkey: bool,
    password: bool,
    kbd_interactive: bool,
    hostbased: bool,
    gssapi: bool,
    /// `None` for `any`.
    methods: Option<Vec<Vec<String>>>,
}

fn parse_sshd_t(text: &str) -> SshdConf {
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.trim().split_once(' ') {
            kv.entry(k.to_ascii_lowercase())
                .or_insert_with(|| v.trim().to_owned());
        }
    }
    let yes = |k: &str, default: bool| {
        kv.get(k)
            .map(|v| v.eq_ignore_ascii_case("yes"))
            .unwrap_or(default)
    };
    let methods = match kv.get("authenticationmethods").map(String::as_str) {
        None | Some("any") => None,
        Some(list) => Some(
            list.split_whitespace()
                .map(|chain| chain.split(',').map(str::to_owned).collect())
                .collect(),
        ),
    };
    SshdConf {
        use_pam: yes("usepam", false),
        pubkey: yes("pubkeyauthentication", true),
        password: yes("passwordauthentication", true),
        kbd_interactive: yes(
            "kbdinteractiveauthentication",
            yes("challengeresponseauthentication", true),
        ),
        hostbased: yes("hostbasedauthentication", false),
        gssapi: yes("gssapiauthentication", false),
        methods,
    }
}

impl SshdConf {
    fn enabled(&self, method: &str) -> bool {
        match method.split(':').next().unwrap_or(method) {
            "publickey" => self.pubkey,
            "password" => self.password,
            "keyboard-interactive" => self.kbd_interactive,
            "hostbased" => self.hostbased,
            "gssapi-with-mic" => self.gssapi,
            _ => false,
        }
    }

    /// The method chains a client can complete.
    fn chains(&self) -> Vec<Vec<String>> {
        match &self.methods {
            None => [
                "publickey",
                "keyboard-interactive",
                "password",
                "hostbased",
                "gssapi-with-mic",
            ]
            .iter()
            .filter(|m| self.enabled(m))
            .map(|m| vec![(*m).to_owned()])
            .collect(),
            Some(chains) => chains
                .iter()
                .filter(|c| c.iter().all(|m| self.enabled(m)))
                .cloned()
                .collect(),
        }
    }

    fn methods_text(&self) -> String {
        match &self.methods {
            None => "any".into(),
            Some(c) => c.iter().map(|m| m.join(",")).collect::<Vec<_>>().join(" "),
        }
    }
}

fn base(m: &str) -> &str {
    m.split(':').next().unwrap_or(m)
}

/// What sshd's configuration does with the PAM stacks of its service.
struct SshdPam<'a> {
    /// The PAM file sshd's stacks start from.
    file: &'a Path,
    auth: &'a Twofold,
    account: &'a Twofold,
}

/// (severity, what, fix) for one effective configuration; severities before the policy
/// downgrade.
fn sshd_problems(c: &SshdConf, pam: &SshdPam, config: &Path) -> Vec<(Severity, String, String)> {
    let mut out = Vec::new();
    let cfg = config.display();
    if !c.use_pam {
        out.push((
            Severity::Bypass,
            "UsePAM no: sshd never runs PAM, so no SSH login asks a code".to_owned(),
            format!("set `UsePAM yes` in {cfg} (and `KbdInteractiveAuthentication yes`)"),
        ));
        return out;
    }
    let auth_runs = matches!(pam.auth, Twofold::Runs);
    let account_runs = matches!(pam.account, Twofold::Runs);
    let chains = c.chains();
    let has = |chain: &Vec<String>, m: &str| chain.iter().any(|x| base(x) == m);
    let kbd: Vec<&Vec<String>> = chains
        .iter()
        .filter(|ch| has(ch, "keyboard-interactive"))
        .collect();
    let pw: Vec<&Vec<String>> = chains
        .iter()
        .filter(|ch| !has(ch, "keyboard-interactive") && has(ch, "password"))
        .collect();
    let nopam: Vec<&Vec<String>> = chains
        .iter()
        .filter(|ch| !has(ch, "keyboard-interactive") && !has(ch, "password"))
        .collect();
    let list = |v: &[&Vec<String>]| {
        v.iter()
            .map(|c| format!("`{}`", c.join(",")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let methods = format!(
        "AuthenticationMethods {}, PubkeyAuthentication {}, PasswordAuthentication {}, KbdInteractiveAuthentication {}",
        c.methods_text(),
        yn(c.pubkey),
        yn(c.password),
        yn(c.kbd_interactive)
    );
    let pam_file = pam.file.display();
    if !nopam.is_empty() {
        if !account_runs {
            let no_account = match pam.account {
                Twofold::Absent => {
                    format!("{pam_file} has no `account` line running pam_twofold.so")
                }
                _ => format!(
                    "the `account` line of pam_twofold.so in {pam_file} does not take effect"
                ),
            };
            out.push((
                Severity::Bypass,
                format!(
                    "{} logins never run the PAM auth stack ({methods}) and {no_account}: a required user logs in with the key alone",
                    list(&nopam)
                ),
                format!(
                    "add `account required pam_twofold.so` after `@include common-account` in {pam_file}; or ask a code of every key login in {cfg}: `AuthenticationMethods publickey,keyboard-interactive`"
                ),
            ));
        } else if kbd.is_empty() && pw.is_empty() {
            out.push((
                Severity::Lockout,
                format!(
                    "no method chain reaches keyboard-interactive ({methods}): sshd never asks the code, and the account check refuses every user who needs one"
                ),
                format!(
                    "in {cfg}: `KbdInteractiveAuthentication yes` and `AuthenticationMethods publickey,keyboard-interactive` (README, sshd: key + code)"
                ),
            ));
        }
    }
    if !pw.is_empty() && auth_runs {
        let alone = kbd.is_empty();
        out.push((
            if alone {
                Severity::Lockout
            } else {
                Severity::Warning
            },
            format!(
                "{} runs the PAM auth stack with sshd answering every prompt with the password ({methods}): pam_twofold.so gets the password as the code, so users who need a code are refused{}",
                list(&pw),
                if alone {
                    " (and each try counts as a wrong code)"
                } else {
                    " when their client uses the password method (keyboard-interactive still works)"
                }
            ),
            format!(
                "in {cfg}: `PasswordAuthentication no`, `KbdInteractiveAuthentication yes`, `AuthenticationMethods keyboard-interactive` (README, sshd: password + code)"
            ),
        ));
    }
    if kbd.is_empty() && auth_runs && nopam.is_empty() && pw.is_empty() {
        out.push((
            Severity::Lockout,
            format!("no usable method chain ({methods}): nobody can log in over SSH"),
            format!("in {cfg}: `KbdInteractiveAuthentication yes`, `AuthenticationMethods keyboard-interactive`"),
        ));
    }
    out
}

fn yn(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Runs `sshd -T -f CONFIG [-C SPEC]`.
fn sshd_t(sshd: &Path, config: &Path, spec: Option<&str>) -> Result<SshdConf, String> {
    let mut cmd = Command::new(sshd);
    cmd.arg("-T").arg("-f").arg(config);
    if let Some(s) = spec {
        cmd.arg("-C").arg(s);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", sshd.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "`{} -T -f {}{}` failed: {}",
            sshd.display(),
            config.display(),
            spec.map(|s| format!(" -C {s}")).unwrap_or_default(),
            err.trim().trim_end_matches('.')
        ));
    }
    Ok(parse_sshd_t(&String::from_utf8_lossy(&out.stdout)))
}

/// A `Match` line of sshd's configuration.
#[derive(Debug, Clone)]
struct MatchBlock {
    file: PathBuf,
    line: usize,
    text: String,
    criteria: Vec<(String, String)>,
}

/// `Match` lines of `config` and the files it `Include`s (globs in the last component).
fn match_blocks(config: &Path, depth: usize, out: &mut Vec<MatchBlock>) {
    let Ok(text) = std::fs::read_to_string(config) else {
        return;
    };
    for (i, raw) in text.lines().enumerate() {
        let l = raw.split('#').next().unwrap_or("").trim();
        let mut words = l.split_whitespace();
        let Some(key) = words.next() else { continue };
        if key.eq_ignore_ascii_case("include") && depth < 8 {
            for pat in words {
                let p = if Path::new(pat).is_absolute() {
                    PathBuf::from(pat)
                } else {
                    Path::new("/etc/ssh").join(pat)
                };
                for f in glob_last(&p) {
                    match_blocks(&f, depth + 1, out);
                }
            }
        } else if key.eq_ignore_ascii_case("match") {
            let toks: Vec<&str> = words.collect();
            let mut criteria = Vec::new();
            let mut it = toks.iter();
            while let Some(k) = it.next() {
                let k = k.to_ascii_lowercase();
                if k == "all" {
                    criteria.push((k, String::new()));
                } else {
                    criteria.push((k, it.next().map(|s| (*s).to_owned()).unwrap_or_default()));
                }
            }
            out.push(MatchBlock {
                file: config.to_owned(),
                line: i + 1,
                text: l.to_owned(),
                criteria,
            });
        }
    }
}

/// Files matching `p`, whose last component may hold `*` and `?`.
fn glob_last(p: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(pat)) = (p.parent(), p.file_name()) else {
        return Vec::new();
    };
    let pat = pat.to_string_lossy();
    if !pat.contains(['*', '?']) {
        return vec![p.to_owned()];
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| wildcard(&pat, &e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// sshd's pattern matching: `*` and `?`.
fn wildcard(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = s.chars().collect();
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, t.get(i..).unwrap_or(&[]))),
            Some(('?', rest)) => t.split_first().is_some_and(|(_, tr)| go(rest, tr)),
            Some((c, rest)) => t
                .split_first()
                .is_some_and(|(tc, tr)| tc == c && go(rest, tr)),
        }
    }
    go(&p, &t)
}

/// A pattern list (`a,b,!c`) against `s`: some positive pattern matches and no negated one.
fn pattern_list(list: &str, s: &str) -> bool {
    let mut hit = false;
    for p in list.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if wildcard(neg, s) {
                return false;
            }
        } else if wildcard(p, s) {
            hit = true;
        }
    }
    hit
}

/// Whether `m` can apply to a connection of `user` from `addr` (criteria doctor cannot
/// evaluate count as matching).
fn match_applies(m: &MatchBlock, user: &str, addr: &str) -> bool {
    m.criteria.iter().all(|(k, v)| match k.as_str() {
        "user" => pattern_list(v, user),
        "group" => twofold_policy::system::lookup(user)
            .ok()
            .flatten()
            .is_some_and(|a| a.groups.iter().any(|g| pattern_list(v, g))),
        "address" => v.split(',').any(|p| {
            let p = p.trim_start_matches('!');
            p.contains('/') || wildcard(p, addr)
        }),
        _ => true,
    })
}

/// Connection specs for `sshd -T -C`: the required users, root, a plain user, and the users
/// and addresses the Match lines name; local and a documentation address.
fn specs(blocks: &[MatchBlock], required: &[String]) -> Vec<(String, String)> {
    let mut users: Vec<String> = vec!["root".into()];
    users.extend(required.iter().cloned());
    let mut addrs: Vec<String> = vec!["127.0.0.1".into(), "203.0.113.7".into()];
    for b in blocks {
        for (k, v) in &b.criteria {
            for item in v.split(',') {
                if item.starts_with('!') || item.contains(['*', '?']) || item.is_empty() {
                    continue;
                }
                match k.as_str() {
                    "user" => users.push(item.to_owned()),
                    "group" => {
                        if let Ok(Some(g)) = nix::unistd::Group::from_name(item) {
                            users.extend(g.mem.into_iter().take(2));
                        }
                    }
                    "address" => addrs.push(cidr_host(item)),
                    _ => {}
                }
            }
        }
    }
    users.push("nobody".into());
    let mut seen = BTreeSet::new();
    users.retain(|u| seen.insert(u.clone()) && twofold_policy::UserName::parse(u).is_ok());
    users.truncate(32);
    let mut seen = BTreeSet::new();
    addrs.retain(|a| seen.insert(a.clone()) && a.parse::<std::net::IpAddr>().is_ok());
    addrs.truncate(6);
    let mut out = Vec::new();
    for u in &users {
        for a in &addrs {
            out.push((u.clone(), a.clone()));
        }
    }
    out
}

/// A host address inside `a/len` (the network address + 1 for IPv4), or `a` itself.
fn cidr_host(item: &str) -> String {
    let Some((a, _)) = item.split_once('/') else {
        return item.to_owned();
    };
    match a.parse::<std::net::Ipv4Addr>() {
        Ok(v4) => std::net::Ipv4Addr::from(u32::from(v4).wrapping_add(1)).to_string(),
        Err(_) => a.to_owned(),
    }
}

fn sshd_binary(opts: &Options) -> Option<PathBuf> {
    if let Some(p) = &opts.sshd {
        return Some(p.clone());
    }
    let sbin = PathBuf::from("/usr/sbin/sshd");
    if sbin.exists() {
        return Some(sbin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("sshd"))
            .find(|p| p.exists())
    })
}

// ---------------------------------------------------------------------------------------------
// The check

/// PAM services that log a user in (or make them someone else).
const LOGIN_SERVICES: &[&str] = &["sshd", "login", "su", "su-l", "sudo", "sudo-i"];

/// Services that authenticate without logging anyone in (changing one's own details, cron).
const NOT_LOGINS: &[&str] = &[
    "other", // the fallback for services without a file (sshd's is checked on its own)
    "chfn",
    "chsh",
    "chpasswd",
    "newusers",
    "passwd",
    "runuser",
    "runuser-l",
    "cron",
    "atd",
];

/// Modules that prove who a user is: a stack with one of them logs someone in.
const AUTHENTICATORS: &[&str] = &[
    "pam_unix.so",
    "pam_sss.so",
    "pam_ldap.so",
    "pam_krb5.so",
    "pam_winbind.so",
    "pam_fprintd.so",
    "pam_systemd_home.so",
    "pam_u2f.so",
    "pam_yubico.so",
    "pam_oath.so",
    "pam_google_authenticator.so",
    "pam_twofold.so",
];

/// Checks everything and returns what it found.
pub fn check(opts: &Options) -> Report {
    let mut report = Report::default();
    let (req, policy_finding) = requirement(opts, &mut report.notes);
    let pam = match PamDir::read(&opts.pam_dir) {
        Ok(p) => Some(p),
        Err(e) => {
            report.findings.push(Finding {
                severity: Severity::Unchecked,
                service: "pam".into(),
                file: Some(opts.pam_dir.clone()),
                line: None,
                what: format!("cannot read the PAM directory: {e}"),
                fix: "run doctor as root, or pass --pam-dir".into(),
            });
            None
        }
    };
    let twofold_anywhere = pam.as_ref().is_none_or(|p| {
        p.files
            .values()
            .any(|lines| lines.iter().any(PamLine::is_twofold))
    });
    match policy_finding {
        Some(f) if twofold_anywhere => report.findings.push(f),
        Some(f) => report.notes.push(format!(
            "no PAM file names pam_twofold.so, and {}",
            f.what.split(": every login").next().unwrap_or(&f.what)
        )),
        None => {}
    }
    if let Some(pam) = &pam {
        for p in &pam.problems {
            report
                .notes
                .push(format!("skipped a line libpam would not use: {p}"));
        }
        check_services(pam, &req, &mut report);
        check_sshd(pam, &req, opts, &mut report);
    }
    report.findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.service.cmp(&b.service))
            .then_with(|| a.line.cmp(&b.line))
    });
    report.findings.dedup();
    report
}

/// A finding whose severity drops to a warning when nobody is required on the service.
fn graded(
    severity: Severity,
    required: &Option<String>,
    service: &str,
    what: String,
) -> (Severity, String) {
    match required {
        Some(_) => (severity, what),
        None if severity >= Severity::Lockout => (
            Severity::Warning,
            format!(
                "{what} [a {} once the policy requires someone on {service}; it requires no one there now]",
                severity.as_str()
            ),
        ),
        None => (severity, what),
    }
}

fn check_services(pam: &PamDir, req: &Requirement, report: &mut Report) {
    // Files other files include are building blocks (common-auth), not services.
    let mut included: BTreeSet<String> = BTreeSet::new();
    for lines in pam.files.values() {
        for l in lines {
            if let Control::Include(t) | Control::Substack(t) = &l.control {
                included.insert(t.rsplit('/').next().unwrap_or(t).to_owned());
            }
        }
    }
    let mut unrequired = Vec::new();
    let mut exempt = Vec::new();
    for name in pam.files.keys() {
        let standard = LOGIN_SERVICES.contains(&name.as_str());
        if !standard
            && (NOT_LOGINS.contains(&name.as_str())
                || name.starts_with("common-")
                || included.contains(name))
        {
            continue;
        }
        let auth = pam.stack(name, "auth");
        let logs_in = standard
            || auth
                .entries
                .iter()
                .any(|e| AUTHENTICATORS.contains(&e.line.module_name()));
        if !logs_in {
            continue;
        }
        if req.disabled(name) {
            exempt.push(name.clone());
            continue;
        }
        let required = req.on(name);
        let file = pam.dir.join(name);
        for p in &auth.problems {
            report.findings.push(Finding {
                severity: Severity::Unchecked,
                service: name.clone(),
                file: Some(file.clone()),
                line: None,
                what: format!("the auth stack could not be read whole: {p}"),
                fix: "make the included file exist, or fix the include line".into(),
            });
        }
        match analyze(&auth, "auth_err") {
            Twofold::Runs => {}
            Twofold::Absent => {
                let account = analyze(&pam.stack(name, "account"), "perm_denied");
                let Some(why) = &required else {
                    unrequired.push(name.clone());
                    continue;
                };
                if matches!(account, Twofold::Runs) {
                    report.findings.push(Finding {
                        severity: Severity::Lockout,
                        service: name.clone(),
                        file: Some(file.clone()),
                        line: None,
                        what: format!(
                            "the auth stack never runs pam_twofold.so, but the account stack does: it refuses every user who needs a code ({why})"
                        ),
                        fix: format!(
                            "add `auth required pam_twofold.so` right after `@include common-auth` in {}",
                            file.display()
                        ),
                    });
                } else {
                    report.findings.push(Finding {
                        severity: Severity::Bypass,
                        service: name.clone(),
                        file: Some(file.clone()),
                        line: None,
                        what: format!(
                            "the auth stack never runs pam_twofold.so (read: {}): users log in through {name} without a code, though {why}",
                            stack_files(&auth)
                        ),
                        fix: format!(
                            "add `auth required pam_twofold.so` right after `@include common-auth` in {}, or `pam-auth-update --enable twofold` to put it into common-auth; or, to leave {name} alone on purpose, `[services.{name}] mode = \"disabled\"` in the policy",
                            file.display()
                        ),
                    });
                }
            }
            Twofold::Defeated(defeats) => {
                for d in defeats {
                    let (severity, what) = if d.by_design {
                        (
                            Severity::Warning,
                            format!(
                                "`{}` ({}): {}: root becomes any user without a code; by design (root can do that anyway)",
                                d.line.text,
                                d.line.place(),
                                d.what
                            ),
                        )
                    } else {
                        graded(
                            Severity::Bypass,
                            &required,
                            name,
                            format!(
                                "`{}` ({}): {}: a user logs in without a code{}",
                                d.line.text,
                                d.line.place(),
                                d.what,
                                required
                                    .as_ref()
                                    .map(|w| format!(" ({w})"))
                                    .unwrap_or_default()
                            ),
                        )
                    };
                    let fix = if d.line.is_twofold() {
                        "make the line `auth required pam_twofold.so`".to_owned()
                    } else if d.by_design {
                        format!(
                            "nothing, if root may switch users freely; else remove pam_rootok.so from {}",
                            d.line.file.display()
                        )
                    } else if d.what.contains("jumps") {
                        format!(
                            "in {}, make that jump land at or before pam_twofold.so, or put `auth required pam_twofold.so` above line {}",
                            d.line.file.display(),
                            d.line.line
                        )
                    } else {
                        format!(
                            "in {}, put `auth required pam_twofold.so` above line {} (the code first), or make that line `required`",
                            d.line.file.display(),
                            d.line.line
                        )
                    };
                    report.findings.push(Finding {
                        severity,
                        service: name.clone(),
                        file: Some(d.line.file.clone()),
                        line: Some(d.line.line),
                        what,
                        fix,
                    });
                }
            }
        }
    }
    if !unrequired.is_empty() {
        report.notes.push(format!(
            "no twofold in the auth stack of {}: not a finding, as the policy requires no one there",
            unrequired.join(", ")
        ));
    }
    if !exempt.is_empty() {
        report.notes.push(format!(
            "not checked, the policy disables twofold there ([services.X] mode = \"disabled\"): {}",
            exempt.join(", ")
        ));
    }
}

fn check_sshd(pam: &PamDir, req: &Requirement, opts: &Options, report: &mut Report) {
    if req.disabled("sshd") {
        return;
    }
    let Some(sshd) = sshd_binary(opts) else {
        report
            .notes
            .push("sshd is not installed: SSH logins not checked".into());
        return;
    };
    // libpam falls back to `other` when a service has no file.
    let service = if pam.files.contains_key("sshd") {
        "sshd"
    } else {
        "other"
    };
    let pam_file = pam.dir.join(service);
    let auth = analyze(&pam.stack(service, "auth"), "auth_err");
    let account = analyze(&pam.stack(service, "account"), "perm_denied");
    let sp = SshdPam {
        file: &pam_file,
        auth: &auth,
        account: &account,
    };
    let base = match sshd_t(&sshd, &opts.sshd_config, None) {
        Ok(c) => c,
        Err(e) => {
            let root = nix::unistd::geteuid().is_root();
            let hint = if root {
                ""
            } else {
                " Run as root: sshd -T needs to read the host keys."
            };
            let fix = if root {
                format!(
                    "make `{} -T -f {}` work (host keys present, the configuration valid), then run doctor again",
                    sshd.display(),
                    opts.sshd_config.display()
                )
            } else {
                "run `twofold doctor` as root".to_owned()
            };
            report.findings.push(Finding {
                severity: Severity::Unchecked,
                service: "sshd".into(),
                file: Some(opts.sshd_config.clone()),
                line: None,
                what: format!("doctor could not check sshd: {e}.{hint}"),
                fix,
            });
            return;
        }
    };
    let required = req.on("sshd");
    let base_problems = sshd_problems(&base, &sp, &opts.sshd_config);
    for (severity, what, fix) in &base_problems {
        let (severity, what) = graded(*severity, &required, "sshd", what.clone());
        report.findings.push(Finding {
            severity,
            service: "sshd".into(),
            file: Some(opts.sshd_config.clone()),
            line: None,
            what,
            fix: fix.clone(),
        });
    }
    let mut blocks = Vec::new();
    match_blocks(&opts.sshd_config, 0, &mut blocks);
    if blocks.is_empty() {
        return;
    }
    // problem → the connections it appears for
    let mut extra: BTreeMap<(Severity, String, String), Vec<(String, String)>> = BTreeMap::new();
    for (user, addr) in specs(&blocks, &req.users(24)) {
        let spec = format!("user={user},host=client.invalid,addr={addr}");
        let conf = match sshd_t(&sshd, &opts.sshd_config, Some(&spec)) {
            Ok(c) => c,
            Err(e) => {
                report
                    .notes
                    .push(format!("Match blocks not checked for {spec}: {e}"));
                continue;
            }
        };
        if conf == base {
            continue;
        }
        for p in sshd_problems(&conf, &sp, &opts.sshd_config) {
            if !base_problems.contains(&p) {
                extra
                    .entry(p)
                    .or_default()
                    .push((user.clone(), addr.clone()));
            }
        }
    }
    for ((severity, what, fix), conns) in extra {
        let users: BTreeSet<&str> = conns.iter().map(|(u, _)| u.as_str()).collect();
        let addrs: BTreeSet<&str> = conns.iter().map(|(_, a)| a.as_str()).collect();
        let applying: Vec<&MatchBlock> = blocks
            .iter()
            .filter(|b| conns.iter().any(|(u, a)| match_applies(b, u, a)))
            .collect();
        let named = if applying.is_empty() {
            blocks.iter().collect::<Vec<_>>()
        } else {
            applying
        };
        let where_ = named
            .iter()
            .map(|b| format!("`{}` ({}:{})", b.text, b.file.display(), b.line))
            .collect::<Vec<_>>()
            .join(", ");
        let who = format!(
            "for user {} from {}",
            users.into_iter().collect::<Vec<_>>().join(", "),
            addrs.into_iter().collect::<Vec<_>>().join(", ")
        );
        let (severity, what) = graded(
            severity,
            &required,
            "sshd",
            format!("{where_} changes sshd {who}: {what}"),
        );
        let first = named.first();
        report.findings.push(Finding {
            severity,
            service: "sshd".into(),
            file: Some(
                first
                    .map(|b| b.file.clone())
                    .unwrap_or_else(|| opts.sshd_config.clone()),
            ),
            line: first.map(|b| b.line),
            what,
            fix: format!("{fix} (the setting at fault is in the Match block)"),
        });
    }
}

/// Reports, for `twofold policy set-default required`: what doctor finds, on stderr, never
/// failing the caller.
pub fn warn_after_require(policy: &Path, state: &Path) {
    let report = check(&Options::system(policy, state));
    let serious: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Warning)
        .collect();
    if serious.is_empty() {
        return;
    }
    let shown = Report {
        findings: serious.into_iter().cloned().collect(),
        notes: Vec::new(),
    };
    eprintln!("twofold doctor found paths that skip the code:\n");
    eprint!("{}", shown.to_text(false));
    eprintln!("(`twofold doctor` checks again)");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(files: &[(&str, &str)], service: &str, kind: &str) -> Twofold {
        let mut map = BTreeMap::new();
        for (n, t) in files {
            map.insert((*n).to_owned(), parse_pam(Path::new(n), t).0);
        }
        let dir = PamDir {
            dir: PathBuf::from("/x"),
            files: map,
            problems: Vec::new(),
        };
        analyze(&dir.stack(service, kind), "auth_err")
    }

    #[test]
    fn continuation_comments_and_brackets() {
        let (l, p) = parse_pam(
            Path::new("f"),
            "# c\nauth [success=1 \\\n default=ignore] pam_unix.so nullok # x\n-auth optional pam_x.so\nbogus line\n",
        );
        assert_eq!(p.len(), 1);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].line, 2);
        assert_eq!(l[0].module, "pam_unix.so");
        assert_eq!(l[1].kind.as_deref(), Some("auth"));
    }

    #[test]
    fn debian_common_auth_runs_twofold() {
        let common = "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\nauth required pam_permit.so\nauth required pam_twofold.so\n";
        assert!(matches!(
            stack(
                &[("common-auth", common), ("login", "@include common-auth\n")],
                "login",
                "auth"
            ),
            Twofold::Runs
        ));
        let jumping = "auth [success=3 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\nauth required pam_permit.so\nauth required pam_twofold.so\n";
        assert!(matches!(
            stack(&[("s", jumping)], "s", "auth"),
            Twofold::Defeated(_)
        ));
    }

    #[test]
    fn sufficient_in_a_substack_ends_only_the_substack() {
        let files = [
            (
                "sub",
                "auth sufficient pam_unix.so\nauth required pam_deny.so\n",
            ),
            ("s", "auth substack sub\nauth required pam_twofold.so\n"),
            ("t", "auth include sub\nauth required pam_twofold.so\n"),
        ];
        assert!(matches!(stack(&files, "s", "auth"), Twofold::Runs));
        assert!(matches!(stack(&files, "t", "auth"), Twofold::Defeated(_)));
    }

    #[test]
    fn twofold_must_fail_the_stack() {
        assert!(matches!(
            stack(&[("s", "auth optional pam_twofold.so\n")], "s", "auth"),
            Twofold::Defeated(_)
        ));
        assert!(matches!(
            stack(
                &[(
                    "s",
                    "auth [success=done ignore=ignore default=die] pam_twofold.so\nauth required pam_permit.so\n"
                )],
                "s",
                "auth"
            ),
            Twofold::Runs
        ));
    }

    #[test]
    fn sshd_t_chains() {
        let c = parse_sshd_t(
            "usepam yes\npubkeyauthentication yes\npasswordauthentication no\nkbdinteractiveauthentication yes\nauthenticationmethods publickey,keyboard-interactive password\n",
        );
        assert_eq!(
            c.chains(),
            vec![vec![
                "publickey".to_owned(),
                "keyboard-interactive".to_owned()
            ]]
        );
        assert!(wildcard("b*", "bob") && !wildcard("b?", "bob"));
        assert!(pattern_list("*,!root", "bob") && !pattern_list("*,!root", "root"));
    }
}
