//! Reading PAM configuration: files, logical lines, controls, and stacks with their
//! includes and substacks expanded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a module's return value makes the stack do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
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
pub(super) struct Actions {
    pub(super) map: BTreeMap<String, Action>,
    pub(super) default: Action,
}

impl Actions {
    pub(super) fn get(&self, value: &str) -> Action {
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
pub(super) enum Control {
    Include(String),
    Substack(String),
    Module(Actions),
}

/// One logical line of a PAM file.
#[derive(Debug, Clone)]
pub(super) struct PamLine {
    pub(super) file: PathBuf,
    pub(super) line: usize,
    /// `None` for `@include`.
    pub(super) kind: Option<String>,
    pub(super) control: Control,
    /// The module as written (`pam_unix.so`, `/lib/…/pam_unix.so`).
    pub(super) module: String,
    /// The line as written, for messages.
    pub(super) text: String,
}

impl PamLine {
    pub(super) fn module_name(&self) -> &str {
        self.module.rsplit('/').next().unwrap_or(&self.module)
    }

    pub(super) fn is_twofold(&self) -> bool {
        self.module_name() == "pam_twofold.so"
    }

    pub(super) fn place(&self) -> String {
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
pub(super) fn parse_pam(file: &Path, text: &str) -> (Vec<PamLine>, Vec<String>) {
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

pub(super) fn next_token<'a>(rest: &mut &'a str) -> &'a str {
    let s = rest.trim_start();
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    let (tok, after) = s.split_at(end);
    *rest = after;
    tok
}

/// A module line of an expanded stack, with the substacks it sits in.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) line: PamLine,
    /// Ids of the substacks from the outside in; empty at the top level.
    pub(super) scope: Vec<usize>,
}

/// The PAM directory, read once.
pub(super) struct PamDir {
    pub(super) dir: PathBuf,
    pub(super) files: BTreeMap<String, Vec<PamLine>>,
    pub(super) problems: Vec<String>,
}

impl PamDir {
    pub(super) fn read(dir: &Path) -> Result<PamDir, String> {
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

    /// The line of `service`'s own file that brings in `target` for `kind` (`@include
    /// common-auth`, `auth substack common-auth`), as written.
    pub(super) fn include_line(&self, service: &str, kind: &str, target: &str) -> Option<String> {
        self.files
            .get(service)?
            .iter()
            .find(|l| {
                matches!(&l.control, Control::Include(t) | Control::Substack(t)
                    if t.rsplit('/').next().unwrap_or(t) == target)
                    && l.kind.as_deref().is_none_or(|k| k == kind)
            })
            .map(|l| l.text.clone())
    }

    /// The stack of type `kind` of `service`, includes and substacks expanded.
    pub(super) fn stack(&self, service: &str, kind: &str) -> Stack {
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
pub(super) struct Stack {
    pub(super) entries: Vec<Entry>,
    pub(super) problems: Vec<String>,
}

/// The files whose lines make up the stack.
pub(super) fn stack_files(s: &Stack) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
