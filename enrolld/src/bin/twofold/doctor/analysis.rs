//! Whether pam_twofold.so takes effect in an expanded stack: absent, running, or defeated by a
//! `sufficient` line, a jump over it or its own control.

use super::pam::{Action, Control, Entry, PamLine, Stack, next_token};

/// How pam_twofold fares in one stack.
#[derive(Debug)]
pub(super) enum Twofold {
    /// No line runs it.
    Absent,
    /// It runs, and a failure fails the stack.
    Runs,
    /// It is there, but something lets the stack succeed without it.
    Defeated(Vec<Defeat>),
}

#[derive(Debug, Clone)]
pub(super) struct Defeat {
    /// The line at fault.
    pub(super) line: PamLine,
    /// What it does.
    pub(super) what: String,
    /// pam_rootok: root only, by design.
    pub(super) by_design: bool,
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

pub(super) fn analyze(stack: &Stack, fail_value: &str) -> Twofold {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::super::pam::{PamDir, parse_pam};
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
}
