//! Change notification for the daemon's read-only views: the caller's own status
//! (`GetStatus`) is answered from what the daemon last read, without a `stat` of every file it
//! is made from, while the kernel reports no change to them.
//!
//! One inotify instance watches the directories the views are made from: the user database's
//! (`/etc`: `passwd`, `group`, `nsswitch.conf`, `login.defs`), the policy's (the main file's
//! directory and `policy.d/`), and the state directory (with its parent, for the directory
//! itself being renamed or replaced). Every event bumps the generation of what it concerns.
//! A cache keeps the [`Checked`] stamp taken *before* it last checked its files the usual way
//! (identity by `stat`); it may skip that check while the generation is still the same, which
//! means the kernel queued no event for those files since. The queue is read, without
//! blocking, once at the start of each call ([`Snapshot`]), so a change that completed before
//! the call is always seen.
//!
//! A watched directory can be replaced while something still holds the old one open (a
//! shell's working directory): the kernel then reports no end of the old one. So the parents
//! are watched for the directories' names too (and the policy directory's parent), and when
//! one of those names changes, or events were lost (queue overflow, which also bumps every
//! generation), every path is watched again: the same directory gives the same watch. A new
//! drop-in directory takes the old one's place; any other directory replaced, removed, moved
//! or unmounted ends the notification, and every call then checks its files as if there were
//! none.
//!
//! What a notification cannot see, the stamp bounds in time ([`TRUST`]): a write through a
//! hard link in another directory, a mount over a watched directory, a file system whose
//! changes happen elsewhere (NFS). Calls that change something never rely on it: they check
//! the files every time.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// What a view is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `passwd`, `group`, `nsswitch.conf`, `login.defs`.
    Users,
    /// The policy file and its drop-ins.
    Policy,
    /// The state directory: records and counters.
    State,
}

impl Kind {
    fn slot(self) -> usize {
        match self {
            Kind::Users => 0,
            Kind::Policy => 1,
            Kind::State => 2,
        }
    }
}

/// Reads of the queue per question at most (each takes up to 4 KiB of events).
const DRAIN_READS: usize = 4;

/// The longest a view relies on the notification alone; past it, it checks its files again.
pub const TRUST: Duration = Duration::from_secs(1);

/// When a cache was last checked against its files: the generation of its kind just before,
/// and the time.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    generation: u64,
    at: Instant,
}

/// One watched directory: events for the entries named in `names` (every entry when empty)
/// concern `kind`.
#[derive(Debug)]
struct Watch {
    wd: WatchDescriptor,
    kind: Kind,
    names: Vec<OsString>,
    /// The directory, to check again that the watch is still on what the path leads to.
    path: std::path::PathBuf,
}

#[derive(Debug)]
struct Watcher {
    fd: Inotify,
    watches: Vec<Watch>,
    generations: [u64; 3],
    /// Whether each kind's directories are all watched (the state directory may not exist
    /// yet when the daemon starts; it is watched from the first call after it does).
    ready: [bool; 3],
    state: std::path::PathBuf,
    /// The drop-in directory, watched once it exists (and again after it is removed and made
    /// anew), with its watch.
    dropins: Option<std::path::PathBuf>,
    dropins_wd: Option<WatchDescriptor>,
    /// A policy event came while the drop-in directory was not watched: try to watch it.
    dropins_maybe: bool,
    /// A watched directory went away or the queue could not be read: no notification.
    broken: bool,
    /// An entry that is a watched directory was made, removed or renamed, or events were
    /// lost: check that every watch is still on the directory its path leads to.
    recheck: bool,
    /// The drop-in directory exists but could not be watched: the policy is not watched.
    dropins_unwatched: bool,
}

/// The daemon's change notification; without it (inotify unavailable, or a watch could not be
/// set) every view checks its files.
#[derive(Debug, Default)]
pub struct Changes {
    watcher: Option<Mutex<Watcher>>,
}

/// What a watched directory reports: changes to its entries, and its own end.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// The directory of `file` and its name there.
fn split(file: &Path) -> Option<(&Path, OsString)> {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty())?;
    Some((dir, file.file_name()?.to_owned()))
}

impl Watcher {
    fn add(&mut self, dir: &Path, kind: Kind, names: Vec<OsString>) -> nix::Result<()> {
        let wd = self.fd.add_watch(dir, mask())?;
        // Watching a directory again gives the same descriptor: one entry per kind.
        if !self.watches.iter().any(|w| w.wd == wd && w.kind == kind) {
            self.watches.push(Watch {
                wd,
                kind,
                names,
                path: dir.to_path_buf(),
            });
        }
        Ok(())
    }

    /// Reads the queued events: a few reads at most, so that a directory busy with other
    /// files cannot keep a call here; what is left counts as a change to everything.
    fn drain(&mut self) {
        for _ in 0..DRAIN_READS {
            let events = match self.fd.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    self.broken = true;
                    return;
                }
            };
            for e in events {
                if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    for g in &mut self.generations {
                        *g += 1;
                    }
                    // Lost events may have been the end of a watched directory.
                    self.recheck = true;
                    continue;
                }
                let gone = e.mask.intersects(
                    AddWatchFlags::IN_IGNORED
                        | AddWatchFlags::IN_DELETE_SELF
                        | AddWatchFlags::IN_MOVE_SELF
                        | AddWatchFlags::IN_UNMOUNT,
                );
                for w in self.watches.iter().filter(|w| w.wd == e.wd) {
                    let named = match &e.name {
                        Some(n) => w.names.is_empty() || w.names.contains(n),
                        None => true,
                    };
                    if named && let Some(g) = self.generations.get_mut(w.kind.slot()) {
                        *g += 1;
                        self.dropins_maybe |= w.kind == Kind::Policy;
                        // A name in a parent's watch: a watched directory may be another one.
                        self.recheck |=
                            e.name.is_some() && !w.names.is_empty() && w.kind != Kind::Users;
                    }
                }
                if gone {
                    if self.dropins_wd == Some(e.wd) {
                        // The drop-in directory went away: its parent's watch saw that too;
                        // it is watched again if it comes back. (Moved, its kernel watch
                        // would stay: removed.)
                        let _ = self.fd.rm_watch(e.wd);
                        self.watches.retain(|w| w.wd != e.wd);
                        self.dropins_wd = None;
                    } else if self.watches.iter().any(|w| w.wd == e.wd) {
                        self.broken = true;
                    }
                    // Else the end of a watch dropped already (IN_IGNORED after IN_DELETE_SELF).
                }
            }
        }
        // Still events after those reads: assume everything changed.
        for g in &mut self.generations {
            *g += 1;
        }
    }
}

impl Changes {
    /// Watches the directories of `etc_files`, of the policy at `policy` (and its drop-in
    /// directory `dropins`), and the state directory `state` with its parent. Any failure
    /// leaves the daemon without notification (every view checks its files).
    pub fn watch(
        etc_files: &[&Path],
        policy: &Path,
        dropins: Option<&Path>,
        state: &Path,
    ) -> Changes {
        let build = || -> Option<Watcher> {
            let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
            let mut w = Watcher {
                fd,
                watches: Vec::new(),
                generations: [0; 3],
                ready: [false; 3],
                state: state.to_path_buf(),
                dropins: dropins.map(Path::to_path_buf),
                dropins_wd: None,
                dropins_maybe: false,
                broken: false,
                recheck: false,
                dropins_unwatched: false,
            };
            let mut etc: Vec<(&Path, Vec<OsString>)> = Vec::new();
            for f in etc_files {
                let (dir, name) = split(f)?;
                match etc.iter_mut().find(|(d, _)| *d == dir) {
                    Some((_, names)) => names.push(name),
                    None => etc.push((dir, vec![name])),
                }
            }
            let users = etc
                .into_iter()
                .all(|(dir, names)| w.add(dir, Kind::Users, names).is_ok());
            w.set_ready(Kind::Users, users);
            let policy = split(policy).is_some_and(|(dir, name)| {
                let mut names = vec![name];
                if let Some(d) = dropins.and_then(Path::file_name) {
                    names.push(d.to_owned());
                }
                // And the policy's directory in its parent (made again while held open).
                w.add(dir, Kind::Policy, names).is_ok()
                    && split(dir).is_none_or(|(parent, name)| {
                        w.add(parent, Kind::Policy, vec![name]).is_ok()
                    })
            });
            w.set_ready(Kind::Policy, policy);
            w.watch_dropins();
            w.watch_state();
            Some(w)
        };
        Changes {
            watcher: build().map(Mutex::new),
        }
    }

    /// Reads the queue once, for the questions of one call: what changed up to now.
    pub fn snapshot(&self) -> Snapshot {
        let at = Instant::now();
        let Some(watcher) = self.watcher.as_ref() else {
            return Snapshot {
                generations: [None; 3],
                at,
            };
        };
        let mut w = watcher.lock().unwrap_or_else(|e| e.into_inner());
        w.drain();
        if std::mem::take(&mut w.recheck) {
            w.revalidate();
        }
        if std::mem::take(&mut w.dropins_maybe) && w.dropins_wd.is_none() {
            // The drop-in directory may have appeared: watch it from now on (a change made in
            // it before is seen by the check that follows this policy change).
            w.watch_dropins();
        }
        if !w.is_ready(Kind::State) {
            w.watch_state();
        }
        let generation = |k: Kind| (!w.broken && w.is_ready(k)).then(|| w.generation(k));
        Snapshot {
            generations: [Kind::Users, Kind::Policy, Kind::State].map(generation),
            at,
        }
    }

    /// [`Snapshot::stamp`] of a fresh snapshot (the tests' one question per read).
    #[cfg(test)]
    fn stamp(&self, kind: Kind) -> Option<Checked> {
        self.snapshot().stamp(kind)
    }

    /// [`Snapshot::quiet_since`] of a fresh snapshot.
    #[cfg(test)]
    fn quiet_since(&self, kind: Kind, checked: Option<Checked>) -> bool {
        self.snapshot().quiet_since(kind, checked)
    }
}

/// What the queue said when it was last read: one read for all the questions of a call (a
/// change made after it is seen by the next call).
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// Per kind, its generation; `None` when it is not watched.
    generations: [Option<u64>; 3],
    at: Instant,
}

impl Snapshot {
    fn generation(&self, kind: Kind) -> Option<u64> {
        self.generations.get(kind.slot()).copied().flatten()
    }

    /// A stamp for a cache about to be checked against its files; `None` when `kind` is not
    /// watched.
    pub fn stamp(&self, kind: Kind) -> Option<Checked> {
        self.generation(kind).map(|generation| Checked {
            generation,
            at: self.at,
        })
    }

    /// Whether nothing `kind` is made from changed since `checked`, and that was less than
    /// [`TRUST`] ago.
    pub fn quiet_since(&self, kind: Kind, checked: Option<Checked>) -> bool {
        checked.is_some_and(|c| {
            self.at.saturating_duration_since(c.at) < TRUST
                && self.generation(kind) == Some(c.generation)
        })
    }
}

impl Watcher {
    fn is_ready(&self, kind: Kind) -> bool {
        !(kind == Kind::Policy && self.dropins_unwatched)
            && self.ready.get(kind.slot()).copied().unwrap_or(false)
    }

    /// Checks that every watch is on the directory its path leads to now (watching a path
    /// again gives the same descriptor for the same directory): the drop-in directory's watch
    /// moves to the new one; any other directory replaced ends the notification.
    fn revalidate(&mut self) {
        let dropins = self.dropins_wd;
        let fixed: Vec<(WatchDescriptor, std::path::PathBuf)> = self
            .watches
            .iter()
            .filter(|w| Some(w.wd) != dropins)
            .map(|w| (w.wd, w.path.clone()))
            .collect();
        for (wd, path) in fixed {
            if self.fd.add_watch(&path, mask()).ok() != Some(wd) {
                self.broken = true;
            }
        }
        let Some(dir) = self.dropins.clone() else {
            return;
        };
        let now = self.fd.add_watch(&dir, mask());
        match now {
            Ok(wd) if Some(wd) == dropins => {}
            _ => {
                if let Some(old) = dropins {
                    self.watches.retain(|w| w.wd != old);
                    let _ = self.fd.rm_watch(old);
                    self.dropins_wd = None;
                }
                if let Ok(wd) = now {
                    self.dropins_wd = Some(wd);
                    self.watches.push(Watch {
                        wd,
                        kind: Kind::Policy,
                        names: Vec::new(),
                        path: dir.clone(),
                    });
                }
                if let Some(g) = self.generations.get_mut(Kind::Policy.slot()) {
                    *g += 1;
                }
            }
        }
        self.dropins_unwatched = matches!(now, Err(e) if e != Errno::ENOENT);
    }

    fn set_ready(&mut self, kind: Kind, ready: bool) {
        if let Some(r) = self.ready.get_mut(kind.slot()) {
            *r = ready;
        }
    }

    /// Watches the state directory and its parent, if it exists (once both are watched, the
    /// kind is ready).
    fn watch_state(&mut self) {
        let state = self.state.clone();
        let ready = split(&state).is_some_and(|(parent, name)| {
            self.add(parent, Kind::State, vec![name]).is_ok()
                && self.add(&state, Kind::State, Vec::new()).is_ok()
        });
        self.set_ready(Kind::State, ready);
    }

    fn generation(&self, kind: Kind) -> u64 {
        self.generations
            .get(kind.slot())
            .copied()
            .unwrap_or_default()
    }

    /// Watches the drop-in directory if it exists.
    fn watch_dropins(&mut self) {
        let Some(dir) = self.dropins.clone() else {
            return;
        };
        match self.fd.add_watch(&dir, mask()) {
            Ok(wd) => {
                self.dropins_wd = Some(wd);
                self.dropins_unwatched = false;
                if !self.watches.iter().any(|w| w.wd == wd) {
                    self.watches.push(Watch {
                        wd,
                        kind: Kind::Policy,
                        names: Vec::new(),
                        path: dir.clone(),
                    });
                }
            }
            // Not there (yet): its parent's watch tells when it comes.
            Err(Errno::ENOENT) => self.dropins_unwatched = false,
            // There but not watched (no watches left, say): the policy is not watched.
            Err(_) => self.dropins_unwatched = true,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct Setup {
        _dir: tempfile::TempDir,
        etc: std::path::PathBuf,
        policy: std::path::PathBuf,
        dropins: std::path::PathBuf,
        state: std::path::PathBuf,
        changes: Changes,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        let conf = dir.path().join("conf");
        let state = dir.path().join("lib/state");
        for d in [&etc, &conf, &state] {
            std::fs::create_dir_all(d).unwrap();
        }
        for f in ["passwd", "group", "nsswitch.conf", "login.defs", "hosts"] {
            std::fs::write(etc.join(f), "x\n").unwrap();
        }
        let policy = conf.join("policy.toml");
        std::fs::write(&policy, "mode = \"optional\"\n").unwrap();
        let dropins = conf.join("policy.d");
        let files: Vec<_> = ["passwd", "group", "nsswitch.conf", "login.defs"]
            .map(|f| etc.join(f))
            .to_vec();
        let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
        let changes = Changes::watch(&refs, &policy, Some(&dropins), &state);
        Setup {
            _dir: dir,
            etc,
            policy,
            dropins,
            state,
            changes,
        }
    }

    /// More events than the queue holds, for a file no view uses.
    fn overflow(s: &Setup) {
        let max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        for i in 0..max + 10 {
            std::fs::write(s.etc.join("hosts"), format!("{i}\n")).unwrap();
        }
    }

    /// Asks about `kind` until the whole queue is read (every question reads a few KiB):
    /// false if the notification ended instead.
    fn read_until_quiet(s: &Setup, kind: Kind) -> bool {
        for _ in 0..1000 {
            let checked = s.changes.stamp(kind);
            if checked.is_none() {
                return false;
            }
            if s.changes.quiet_since(kind, checked) {
                return true;
            }
        }
        panic!("the queue is never read to its end");
    }

    /// Whether a cache checked before `change` is still quiet after it.
    fn quiet_after(s: &Setup, kind: Kind, change: impl FnOnce()) -> bool {
        let checked = s.changes.stamp(kind);
        assert!(checked.is_some(), "{kind:?} is watched");
        assert!(s.changes.quiet_since(kind, checked), "nothing changed yet");
        change();
        s.changes.quiet_since(kind, checked)
    }

    #[test]
    fn every_change_to_a_views_files_is_seen_at_once() {
        let s = setup();
        // The user database: written in place, replaced by rename, chmod-ed.
        let passwd = s.etc.join("passwd");
        assert!(!quiet_after(&s, Kind::Users, || {
            std::fs::write(&passwd, "y\n").unwrap()
        }));
        assert!(!quiet_after(&s, Kind::Users, || {
            std::fs::write(s.etc.join("group+"), "g\n").unwrap();
            std::fs::rename(s.etc.join("group+"), s.etc.join("group")).unwrap();
        }));
        assert!(!quiet_after(&s, Kind::Users, || {
            std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600)).unwrap()
        }));
        // Another file of /etc is not the user database; nor is a user file a policy.
        assert!(quiet_after(&s, Kind::Users, || {
            std::fs::write(s.etc.join("hosts"), "h\n").unwrap()
        }));
        assert!(quiet_after(&s, Kind::Policy, || {
            std::fs::write(&passwd, "z\n").unwrap()
        }));
        // The policy, edited in place with the same size.
        assert!(!quiet_after(&s, Kind::Policy, || {
            std::fs::write(&s.policy, "mode = \"required\"\n").unwrap()
        }));
        // A drop-in directory made after the start, then a file in it, then that file edited.
        assert!(!quiet_after(&s, Kind::Policy, || {
            std::fs::create_dir(&s.dropins).unwrap()
        }));
        assert!(!quiet_after(&s, Kind::Policy, || {
            std::fs::write(s.dropins.join("10-a.toml"), "mode = \"disabled\"\n").unwrap()
        }));
        assert!(!quiet_after(&s, Kind::Policy, || {
            std::fs::write(s.dropins.join("10-a.toml"), "mode = \"required\"\n").unwrap()
        }));
        // Removed and made again: still watched.
        std::fs::remove_file(s.dropins.join("10-a.toml")).unwrap();
        assert!(!quiet_after(&s, Kind::Policy, || {
            std::fs::remove_dir(&s.dropins).unwrap()
        }));
        assert!(!quiet_after(&s, Kind::Policy, || {
            std::fs::create_dir(&s.dropins).unwrap()
        }));
        assert!(!quiet_after(&s, Kind::Policy, || {
            std::fs::write(s.dropins.join("20-b.toml"), "mode = \"required\"\n").unwrap()
        }));
        // The state directory: a record renamed into place, counters written in place.
        assert!(!quiet_after(&s, Kind::State, || {
            std::fs::write(s.state.join("u.toml.tmp"), "r\n").unwrap();
            std::fs::rename(s.state.join("u.toml.tmp"), s.state.join("u.toml")).unwrap();
        }));
        let counters = s.state.join("u.counters");
        std::fs::write(&counters, "c\n").unwrap();
        assert!(!quiet_after(&s, Kind::State, || {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&counters)
                .unwrap();
            f.write_all_at(b"d\n", 0).unwrap();
        }));
        // Its mode opened up.
        assert!(!quiet_after(&s, Kind::State, || {
            std::fs::set_permissions(&s.state, std::fs::Permissions::from_mode(0o755)).unwrap()
        }));
    }

    #[test]
    fn a_drop_in_directory_is_watched_whichever_question_saw_it_appear() {
        let s = setup();
        std::fs::create_dir(&s.dropins).unwrap();
        // Another view reads the queue first.
        assert!(s.changes.stamp(Kind::Users).is_some());
        assert!(!quiet_after(&s, Kind::Policy, || {
            std::fs::write(s.dropins.join("10-a.toml"), "mode = \"disabled\"\n").unwrap()
        }));
    }

    #[test]
    fn a_moved_state_directory_ends_the_notification() {
        let s = setup();
        assert!(!quiet_after(&s, Kind::State, || {
            std::fs::rename(&s.state, s.state.with_file_name("old")).unwrap();
            std::fs::create_dir(&s.state).unwrap();
        }));
        // From now on every view checks its files.
        for kind in [Kind::Users, Kind::Policy, Kind::State] {
            assert!(s.changes.stamp(kind).is_none(), "{kind:?}");
            assert!(!s.changes.quiet_since(kind, None));
        }
    }

    #[test]
    fn a_state_directory_made_after_the_start_is_watched_from_then() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, "").unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "").unwrap();
        let state = dir.path().join("state");
        let changes = Changes::watch(&[&passwd], &policy, None, &state);
        assert!(changes.stamp(Kind::State).is_none(), "nothing to watch yet");
        assert!(changes.stamp(Kind::Users).is_some());
        std::fs::create_dir(&state).unwrap();
        let checked = changes.stamp(Kind::State);
        assert!(changes.quiet_since(Kind::State, checked));
        std::fs::write(state.join("u.toml"), "r\n").unwrap();
        assert!(!changes.quiet_since(Kind::State, checked));
    }

    #[test]
    fn a_flood_of_events_counts_as_a_change() {
        let s = setup();
        let checked = s.changes.stamp(Kind::Policy);
        // Many events for a file no view uses, more than a few reads take.
        for i in 0..2000 {
            std::fs::write(s.etc.join("hosts"), format!("{i}\n")).unwrap();
        }
        assert!(!s.changes.quiet_since(Kind::Policy, checked));
        // Each question reads a few KiB of them; once all are read, quiet again.
        let mut questions = 0;
        loop {
            let checked = s.changes.stamp(Kind::Policy);
            if s.changes.quiet_since(Kind::Policy, checked) {
                break;
            }
            questions += 1;
            assert!(questions < 100, "the queue is read");
        }
        assert!(questions > 1, "more events than one question reads");
    }

    /// The drop-in directory replaced while something holds the old one open (a shell's cwd,
    /// an editor, `find`): removed and made again, or an empty one renamed over it. The kernel
    /// reports the end of the old one only when the last reference goes; its parent's watch
    /// of the name tells at once, and the new directory is watched.
    #[test]
    fn a_drop_in_directory_replaced_while_held_open_is_watched() {
        let ways: [fn(&Path); 2] = [
            |d| {
                std::fs::remove_dir(d).unwrap();
                std::fs::create_dir(d).unwrap();
            },
            |d| {
                let new = d.with_file_name("policy.d.new");
                std::fs::create_dir(&new).unwrap();
                std::fs::rename(&new, d).unwrap();
            },
        ];
        for replace in ways {
            let s = setup();
            std::fs::create_dir(&s.dropins).unwrap();
            assert!(s.changes.stamp(Kind::Policy).is_some());
            let held = std::fs::File::open(&s.dropins).unwrap();
            replace(&s.dropins);
            assert!(s.changes.stamp(Kind::Policy).is_some());
            let quiet = quiet_after(&s, Kind::Policy, || {
                std::fs::write(s.dropins.join("10-a.toml"), "mode = \"disabled\"\n").unwrap()
            });
            drop(held);
            assert!(
                !quiet,
                "a drop-in written in the new policy.d is seen at once"
            );
        }
    }

    /// Events lost to an overflow may include the end of a watched directory: then the
    /// notification goes on over a directory that is no longer the one the views read.
    #[test]
    fn an_overflow_that_lost_the_end_of_the_drop_in_directory_is_caught() {
        let s = setup();
        std::fs::create_dir(&s.dropins).unwrap();
        assert!(s.changes.stamp(Kind::Policy).is_some());
        overflow(&s);
        std::fs::remove_dir(&s.dropins).unwrap();
        std::fs::create_dir(&s.dropins).unwrap();
        assert!(read_until_quiet(&s, Kind::Policy));
        let quiet = quiet_after(&s, Kind::Policy, || {
            std::fs::write(s.dropins.join("10-a.toml"), "mode = \"disabled\"\n").unwrap()
        });
        assert!(
            !quiet,
            "a drop-in written in the new policy.d is seen at once"
        );
    }

    #[test]
    fn an_overflow_that_lost_the_move_of_the_state_directory_is_caught() {
        let s = setup();
        assert!(s.changes.stamp(Kind::State).is_some());
        overflow(&s);
        std::fs::rename(&s.state, s.state.with_file_name("old")).unwrap();
        std::fs::create_dir(&s.state).unwrap();
        if !read_until_quiet(&s, Kind::State) {
            return; // the notification ended: every call checks its files
        }
        let quiet = quiet_after(&s, Kind::State, || {
            std::fs::write(s.state.join("u.toml"), "r\n").unwrap()
        });
        assert!(
            !quiet,
            "a record written in the new state directory is seen at once"
        );
    }

    /// The state directory removed and made again while another process holds the old one
    /// (an admin's shell with its cwd there): the kernel reports the end of the old one only
    /// when that process lets go; the parent's watch of its name tells at once.
    #[test]
    fn a_state_directory_made_again_while_the_old_one_is_held_open_is_caught() {
        let s = setup();
        assert!(s.changes.stamp(Kind::State).is_some());
        let held = std::fs::File::open(&s.state).unwrap();
        std::fs::remove_dir(&s.state).unwrap();
        std::fs::create_dir(&s.state).unwrap();
        let checked = s.changes.stamp(Kind::State);
        std::fs::write(s.state.join("u.toml"), "r\n").unwrap();
        let quiet = s.changes.quiet_since(Kind::State, checked);
        drop(held);
        assert!(
            !quiet,
            "a record written in the new state directory is seen at once"
        );
    }
}
