//! The files backend: one record and one counters file per user under `/var/lib/twofold/`.
//!
//! - The directory must be owned by root (the effective uid) and closed to everyone else
//!   (0700); it is opened once with `O_DIRECTORY|O_NOFOLLOW` and every file is opened relative to
//!   it with `O_NOFOLLOW`, so a symlink is never followed, and owner and mode (0600) of every file
//!   are checked.
//! - Every change is a read-modify-write under a per-user `flock` on `USER.lock` (never an
//!   `O_EXCL` lock file: a killed process releases its lock). The wait for it is bounded
//!   ([`LOCK_WAIT`], or the caller's own deadline, see [`Store::wait_for_locks`]): a process
//!   that holds a user's lock and stops (a setuid `su` its caller sent SIGSTOP) makes that
//!   user's attempts fail as [`StoreError::Busy`], having checked nothing and counted nothing,
//!   and holds up nobody else. Records are written to a temp
//!   file, fsynced and renamed over the old one, and the directory is fsynced before the change
//!   returns; counters are written in place without fsync (see [`crate::record`] and
//!   [`Locked::write_counters`]).
//! - User names are validated ([`UserName`]) before they touch a path.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode as FileMode, fchmod};
use nix::unistd::{UnlinkatFlags, unlinkat};
use zeroize::Zeroizing;

use crate::record::{COUNTERS_VERSION, Counters, Record, VERSION};
use crate::username::UserName;

use super::{LOCK_WAIT, MAX_FILE_SIZE, Result, StoreError, UserState};

const RECORD: &str = "toml";
const COUNTERS: &str = "counters";
const LOCK: &str = "lock";

/// An open state directory.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    dir: File,
    owner: u32,
    /// Device and inode of the directory opened.
    dev: u64,
    ino: u64,
    /// Files read so far, kept open, when [`Store::hold_files`] asked for it (a login).
    held: Option<std::sync::Mutex<Vec<Held>>>,
    /// How long [`Store::lock`] waits for a user's lock.
    lock_wait: LockWait,
}

/// The bound of [`Store::lock`]'s wait (see [`Store::wait_for_locks`]).
#[derive(Default)]
struct LockWait {
    /// No wait past this instant (and never longer than [`LOCK_WAIT`]).
    until: Option<std::time::Instant>,
    /// Asked between tries: `true` when whoever wanted the answer has gone (the wait ends).
    abandoned: Option<Box<dyn Fn() -> bool + Send + Sync>>,
}

impl std::fmt::Debug for LockWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockWait")
            .field("until", &self.until)
            .field("abandoned", &self.abandoned.is_some())
            .finish()
    }
}

/// A user's file as a login read it before the prompt, kept open so that the read under the
/// lock afterwards costs a `statx` of the name and a `pread` instead of an open, a check, two
/// reads and a close, and so that what did not change is not parsed again. The open file pins
/// its inode: the name still leading to the same device and inode means the same file.
#[derive(Debug)]
struct Held {
    name: String,
    file: File,
    /// Opened for writing as well (the counters, written in place under the lock).
    writable: bool,
    dev: u64,
    ino: u64,
    text: Zeroizing<String>,
    /// What `text` parsed to, once it has been.
    record: Option<Record>,
    counters: Option<Counters>,
    /// Found current under the lock this store's caller holds (see [`Locked::read`]).
    current: bool,
}

/// Whether [`Store::read_file_as`] keeps the file open, and how.
#[derive(Clone, Copy, PartialEq)]
enum Hold {
    No,
    Read,
    /// For reading and writing, if the caller may (the counters, written through it later).
    Write,
}

/// What a file held open reads like under the lock.
enum Reread {
    /// The same inode with the same bytes: what was parsed before stands.
    Same,
    /// The same inode, other bytes (the counters, written in place).
    Changed(Zeroizing<String>),
    /// The name leads nowhere now.
    Gone,
    /// Not held, or the name leads to another file: read it afresh.
    Unknown,
}

/// The whole of `file` (at most [`MAX_FILE_SIZE`] + 1 bytes, read from offset 0), `size` long
/// by its metadata: one read asks for a byte more than that, and coming back short it has
/// seen the end. A file that grew meanwhile is read on into a larger buffer; every buffer left
/// behind is wiped (a record holds a secret).
fn read_whole(file: &File, size: u64) -> io::Result<Zeroizing<Vec<u8>>> {
    use std::os::unix::fs::FileExt;
    let mut want = usize::try_from(size.min(MAX_FILE_SIZE)).unwrap_or(0) + 1;
    let mut buf = Zeroizing::new(vec![0u8; want]);
    let mut n = 0;
    while let Some(spare) = buf.get_mut(n..) {
        match file.read_at(spare, n as u64) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                // The whole file as fstat measured it, and the read stopped short of the one
                // byte more asked for: that is the end (no second read to see 0).
                if k < spare.len() && n as u64 == size {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if n as u64 > MAX_FILE_SIZE {
            break;
        }
        if n == want {
            want = (want * 2).min(usize::try_from(MAX_FILE_SIZE).unwrap_or(usize::MAX) + 1);
            let mut bigger = Zeroizing::new(vec![0u8; want]);
            if let (Some(to), Some(from)) = (bigger.get_mut(..n), buf.get(..n)) {
                to.copy_from_slice(from);
            }
            buf = bigger;
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// The bytes of a store file as text: at most [`MAX_FILE_SIZE`] bytes of UTF-8.
fn into_text(path: PathBuf, mut bytes: Zeroizing<Vec<u8>>) -> Result<Zeroizing<String>> {
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(StoreError::Corrupt {
            path,
            why: format!("larger than {MAX_FILE_SIZE} bytes"),
        });
    }
    String::from_utf8(std::mem::take(&mut *bytes))
        .map(Zeroizing::new)
        .map_err(|e| {
            // The bytes may hold a secret: wiped here too.
            drop(Zeroizing::new(e.into_bytes()));
            StoreError::Corrupt {
                path,
                why: "not UTF-8 text".into(),
            }
        })
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

fn errno_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(Errno) -> StoreError + 'a {
    move |e| StoreError::Io {
        path: path.to_owned(),
        op,
        source: io::Error::from(e),
    }
}

impl Store {
    /// Opens an existing state directory, which must be owned by the effective uid (root in
    /// production) and have no permissions for group or others.
    pub fn open(path: &Path) -> Result<Store> {
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(nix::libc::ENOENT) => StoreError::Missing(path.to_owned()),
                Some(nix::libc::ELOOP) => StoreError::Insecure {
                    path: path.to_owned(),
                    why: "is a symbolic link: refusing to follow it".into(),
                },
                Some(nix::libc::ENOTDIR) => StoreError::Insecure {
                    path: path.to_owned(),
                    why: "is not a directory".into(),
                },
                _ => StoreError::Io {
                    path: path.to_owned(),
                    op: "open",
                    source: e,
                },
            })?;
        let owner = nix::unistd::geteuid().as_raw();
        let meta = dir.metadata().map_err(io_err(path, "stat"))?;
        if meta.uid() != owner {
            return Err(StoreError::Insecure {
                path: path.to_owned(),
                why: format!(
                    "owned by uid {}, expected {owner}: refusing to use it",
                    meta.uid()
                ),
            });
        }
        if meta.mode() & 0o077 != 0 {
            return Err(StoreError::Insecure {
                path: path.to_owned(),
                why: format!(
                    "mode {:04o} lets others in, expected 0700: refusing to use it (chmod 700)",
                    meta.mode() & 0o7777
                ),
            });
        }
        Ok(Store {
            path: path.to_owned(),
            dir,
            owner,
            dev: meta.dev(),
            ino: meta.ino(),
            held: None,
            lock_wait: LockWait::default(),
        })
    }

    /// Bounds every later wait for a user's lock by `until` as well as [`LOCK_WAIT`], and ends
    /// it early once `abandoned` says whoever asked has gone (a service whose client hung up).
    /// Past either, [`Store::lock`] gives up with [`StoreError::Busy`].
    pub fn wait_for_locks(
        &mut self,
        until: std::time::Instant,
        abandoned: Option<Box<dyn Fn() -> bool + Send + Sync>>,
    ) {
        self.lock_wait = LockWait {
            until: Some(until),
            abandoned,
        };
    }

    /// From now on, keeps the files it reads open: for one login, which reads the record and
    /// the counters before the prompt and again under the lock after it. Under the lock each is
    /// then read again with an `fstatat` of its name (the same device and inode as the open
    /// file, owner, mode and type checked again) and a `pread`, and parsed again only if its
    /// bytes changed; the counters are written through the open file while the name still
    /// leads to it.
    pub fn hold_files(&mut self) {
        if self.held.is_none() {
            self.held = Some(std::sync::Mutex::new(Vec::new()));
        }
    }

    fn with_held<T>(&self, name: &str, f: impl FnOnce(&mut Held) -> T) -> Option<T> {
        let mut held = self.held.as_ref()?.lock().ok()?;
        held.iter_mut().find(|h| h.name == name).map(f)
    }

    fn forget_held(&self, name: &str) {
        if let Some(Ok(mut held)) = self.held.as_ref().map(|h| h.lock()) {
            held.retain(|h| h.name != name);
        }
    }

    /// Under the lock: whether the held file `name` is still the one the name leads to, and
    /// its bytes now. Checks owner, mode and type again as an open would.
    fn reread(&self, name: &str) -> Result<Reread> {
        let Some((dev, ino)) = self.with_held(name, |h| (h.dev, h.ino)) else {
            return Ok(Reread::Unknown);
        };
        let path = self.file_path(name);
        let st = match nix::sys::stat::fstatat(
            self.dir.as_fd(),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => st,
            Err(Errno::ENOENT) => {
                self.forget_held(name);
                return Ok(Reread::Gone);
            }
            Err(e) => return Err(errno_err(&path, "stat")(e)),
        };
        if st.st_dev != dev || st.st_ino != ino {
            self.forget_held(name);
            return Ok(Reread::Unknown);
        }
        self.check_meta(&path, st.st_mode, st.st_uid)?;
        let size = u64::try_from(st.st_size).unwrap_or(0).min(MAX_FILE_SIZE);
        let read = self.with_held(name, |h| {
            let bytes = read_whole(&h.file, size)?;
            if *bytes == h.text.as_bytes() {
                h.current = true;
                return Ok(None);
            }
            Ok(Some(bytes))
        });
        let bytes = match read {
            None => return Ok(Reread::Unknown),
            Some(r) => r.map_err(io_err(&path, "read"))?,
        };
        let Some(bytes) = bytes else {
            return Ok(Reread::Same);
        };
        let text = into_text(path, bytes)?;
        self.with_held(name, |h| {
            h.text = text.clone();
            h.record = None;
            h.counters = None;
            h.current = true;
        });
        Ok(Reread::Changed(text))
    }

    /// Opens the state directory, creating it (mode 0700) if it does not exist. Its parent must
    /// exist.
    pub fn open_or_create(path: &Path) -> Result<Store> {
        match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {
                // Make the new directory's entry durable too.
                if let Some(p) = path.parent().and_then(|p| File::open(p).ok()) {
                    let _ = p.sync_all();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(StoreError::Io {
                    path: path.to_owned(),
                    op: "create directory",
                    source: e,
                });
            }
        }
        Store::open(path)
    }

    /// Whether the directory is on a read-only mount (a sandbox such as polkit's helper under
    /// `ProtectSystem=strict`): then no login can record its accepted step here.
    pub fn read_only(&self) -> bool {
        nix::sys::statvfs::fstatvfs(&self.dir)
            .map(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
            .unwrap_or(false)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open directory, for `*at` calls relative to it.
    pub fn dir_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.dir.as_fd()
    }

    /// Whether the path still leads to the directory this store opened, and that directory
    /// still passes the checks [`Store::open`] made (a directory, this owner, no access for
    /// others): one `lstat` of the path, for a long-lived caller (the daemon) that keeps a store
    /// open instead of opening it at every call. The same device and inode mean the same
    /// directory: the open descriptor keeps its inode from being freed and reused. `false`
    /// after a replacement, a move, a chmod or chown that the open would refuse: open again.
    pub fn still_current(&self) -> bool {
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| {
            m.is_dir()
                && m.dev() == self.dev
                && m.ino() == self.ino
                && m.uid() == self.owner
                && m.mode() & 0o077 == 0
        })
    }

    fn file_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Reads a user's state without taking the lock. The record is replaced atomically, so a
    /// read sees a whole version; the counters may read as empty while a writer holds the lock
    /// (see [`Locked::write_counters`]). Use [`Store::lock`] to read-modify-write.
    pub fn read(&self, user: &UserName) -> Result<UserState> {
        let record = self.read_record(user)?;
        let (counters, counters_recovered) = self.read_counters_lenient(user)?;
        Ok(UserState {
            record,
            counters,
            counters_recovered,
        })
    }

    /// Takes the user's lock, waiting for another holder at most [`LOCK_WAIT`] (or less, see
    /// [`Store::wait_for_locks`]), then [`StoreError::Busy`]. Every write is made under it, so
    /// the process's file size limit is settled here for all of them (see `FileSizeLimit` in this module):
    /// before anything is read or checked, or the lock is not taken.
    pub fn lock(&self, user: &UserName) -> Result<Locked<'_>> {
        let name = format!("{user}.{LOCK}");
        let path = self.file_path(&name);
        let fsize = FileSizeLimit::lift_for(WRITE_BOUND)
            .map_err(io_err(&path, "lift the file size limit"))?;
        let fd = openat(
            self.dir.as_fd(),
            name.as_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            FileMode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.open_error(&path, e))?;
        let file = File::from(fd);
        self.check_file(&path, &file)?;
        self.wait_lock(&file, &path)?;
        Ok(Locked {
            store: self,
            user: user.clone(),
            _lock: file,
            _fsize: fsize,
        })
    }

    /// Takes the `flock` of `file`, trying again with growing pauses ([`crate::time::Retry`])
    /// until the bound of [`Store::lock`]. An uncontended lock is one `flock` and nothing else.
    fn wait_lock(&self, file: &File, path: &Path) -> Result<()> {
        use std::fs::TryLockError;
        let mut wait: Option<(std::time::Instant, crate::time::Retry)> = None;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(()),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(TryLockError::Error(e)) => return Err(io_err(path, "lock")(e)),
            }
            let (start, retry) = wait.get_or_insert_with(|| {
                let start = std::time::Instant::now();
                let bound = start + LOCK_WAIT;
                let until = self.lock_wait.until.map_or(bound, |u| u.min(bound));
                (start, crate::time::Retry::until(until))
            });
            let gone = self.lock_wait.abandoned.as_ref().is_some_and(|f| f());
            if gone || !retry.pause() {
                return Err(StoreError::Busy {
                    path: path.to_owned(),
                    waited_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
    }

    /// Every user with a record, sorted. Files whose names are not valid user names are skipped.
    pub fn users(&self) -> Result<Vec<UserName>> {
        let mut out = Vec::new();
        let entries =
            std::fs::read_dir(&self.path).map_err(io_err(&self.path, "read directory"))?;
        for entry in entries {
            let entry = entry.map_err(io_err(&self.path, "read directory"))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(user) = name.strip_suffix(".toml") else {
                continue;
            };
            if let Ok(user) = UserName::parse(user) {
                out.push(user);
            }
        }
        out.sort();
        Ok(out)
    }

    fn open_error(&self, path: &Path, e: Errno) -> StoreError {
        match e {
            Errno::ELOOP => StoreError::Insecure {
                path: path.to_owned(),
                why: "is a symbolic link: refusing to follow it".into(),
            },
            e => StoreError::Io {
                path: path.to_owned(),
                op: "open",
                source: io::Error::from(e),
            },
        }
    }

    /// Checks a file of the store (regular, owner, mode 0600) and returns its metadata.
    fn check_file(&self, path: &Path, file: &File) -> Result<std::fs::Metadata> {
        let meta = file.metadata().map_err(io_err(path, "stat"))?;
        self.check_meta(path, meta.mode(), meta.uid())?;
        Ok(meta)
    }

    /// The checks of [`Store::check_file`] on a mode and owner.
    fn check_meta(&self, path: &Path, mode: u32, uid: u32) -> Result<()> {
        if mode & nix::libc::S_IFMT != nix::libc::S_IFREG {
            return Err(StoreError::Insecure {
                path: path.to_owned(),
                why: "is not a regular file".into(),
            });
        }
        if uid != self.owner {
            return Err(StoreError::Insecure {
                path: path.to_owned(),
                why: format!(
                    "owned by uid {uid}, expected {}: refusing to use it",
                    self.owner
                ),
            });
        }
        if mode & 0o077 != 0 {
            return Err(StoreError::Insecure {
                path: path.to_owned(),
                why: format!(
                    "mode {:04o}, expected 0600: refusing to use it",
                    mode & 0o7777
                ),
            });
        }
        Ok(())
    }

    /// Reads a whole file, or `None` if it does not exist; a store that holds its files keeps
    /// it open, for writing too with `write`.
    fn read_file(&self, name: &str, write: bool) -> Result<Option<Zeroizing<String>>> {
        let hold = match (self.held.is_some(), write) {
            (false, _) => Hold::No,
            (true, false) => Hold::Read,
            (true, true) => Hold::Write,
        };
        self.read_file_as(name, hold)
    }

    /// [`Store::read_file`], keeping the file open ([`Held`]) as `hold` says.
    fn read_file_as(&self, name: &str, hold: Hold) -> Result<Option<Zeroizing<String>>> {
        let path = self.file_path(name);
        let open = |access: OFlag| {
            openat(
                self.dir.as_fd(),
                name,
                access | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                FileMode::empty(),
            )
        };
        let (fd, writable) = match (hold == Hold::Write).then(|| open(OFlag::O_RDWR)) {
            Some(Ok(fd)) => (Ok(fd), true),
            _ => (open(OFlag::O_RDONLY), false),
        };
        let fd = match fd {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                self.forget_held(name);
                return Ok(None);
            }
            Err(e) => return Err(self.open_error(&path, e)),
        };
        let file = File::from(fd);
        let meta = self.check_file(&path, &file)?;
        let bytes = read_whole(&file, meta.len()).map_err(io_err(&path, "read"))?;
        let text = into_text(path, bytes)?;
        if let Some(Ok(mut held)) = self
            .held
            .as_ref()
            .filter(|_| hold != Hold::No)
            .map(|h| h.lock())
        {
            held.retain(|h| h.name != name);
            held.push(Held {
                name: name.to_owned(),
                file,
                writable,
                dev: meta.dev(),
                ino: meta.ino(),
                text: text.clone(),
                record: None,
                counters: None,
                current: false,
            });
        }
        Ok(Some(text))
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, name: &str, text: &str) -> Result<T> {
        toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let (l, c) = crate::config::line_col(text, s.start);
                    format!("{l}:{c}: ")
                })
                .unwrap_or_default();
            StoreError::Corrupt {
                path: self.file_path(name),
                why: format!("{at}{}", e.message().trim_end()),
            }
        })
    }

    fn check_version(&self, name: &str, version: u32) -> Result<()> {
        if version > VERSION {
            return Err(StoreError::Corrupt {
                path: self.file_path(name),
                why: format!(
                    "format version {version} was written by a newer twofold (this one reads up to {VERSION})"
                ),
            });
        }
        Ok(())
    }

    /// Reads only the user's durable record (enrollment, override, grace start), without the
    /// lock: what resolution needs. `None` for a user with no record.
    pub fn read_record(&self, user: &UserName) -> Result<Option<Record>> {
        let name = format!("{user}.{RECORD}");
        let Some(text) = self.read_file(&name, false)? else {
            return Ok(None);
        };
        self.parse_record(user, &name, &text).map(Some)
    }

    /// Under the lock: `name` through the file held open since the read before the prompt,
    /// if there is one, read again (`fstatat` + `pread`) and parsed again only if its bytes
    /// changed (`cached` gives what it parsed to); else read afresh by `fresh`. `None` when the
    /// file is gone.
    fn read_locked<T>(
        &self,
        name: &str,
        cached: impl FnOnce(&Held) -> Option<T>,
        fresh: impl FnOnce() -> Result<Option<T>>,
        parse: impl FnOnce(&str) -> Result<T>,
    ) -> Result<Option<T>> {
        let text = match self.reread(name)? {
            Reread::Unknown => {
                let read = fresh();
                // Read under this lock: current until it is released.
                self.with_held(name, |h| h.current = true);
                return read;
            }
            Reread::Gone => return Ok(None),
            Reread::Same => match self.with_held(name, |h| cached(h).ok_or_else(|| h.text.clone()))
            {
                Some(Ok(value)) => return Ok(Some(value)),
                Some(Err(text)) => text,
                None => return fresh(),
            },
            Reread::Changed(text) => text,
        };
        parse(&text).map(Some)
    }

    /// A record's text parsed and checked: version, owner, secret, parameters, hashes; kept
    /// beside the held file, if any.
    fn parse_record(&self, user: &UserName, name: &str, text: &str) -> Result<Record> {
        let name = name.to_owned();
        // The shape twofold writes is read without the TOML parser; anything else with it.
        let record: Record = match Record::parse_canonical(text) {
            Some(r) => r,
            None => self.parse(&name, text)?,
        };
        self.check_version(&name, record.version)?;
        if record.user != user.as_str() {
            return Err(StoreError::Corrupt {
                path: self.file_path(&name),
                why: format!("holds the record of {:?}, not {user:?}", record.user),
            });
        }
        if let Some(e) = &record.enrollment
            && let Err(why) = e.validate()
        {
            return Err(StoreError::Corrupt {
                path: self.file_path(&name),
                why,
            });
        }
        self.with_held(&name, |h| h.record = Some(record.clone()));
        Ok(record)
    }

    /// Reads a user's login counters like [`Store::read_counters`], but a file that does not
    /// parse (torn by a crash during a write in place, or a power loss) reads as defaults, with
    /// a note saying so for the log; the next write overwrites it.
    /// An unsafe file (symlink, owner, mode) is still an error: that is no accident.
    pub fn read_counters_lenient(&self, user: &UserName) -> Result<(Counters, Option<String>)> {
        Self::lenient(self.read_counters(user))
    }

    fn lenient(read: Result<Counters>) -> Result<(Counters, Option<String>)> {
        match read {
            Ok(c) => Ok((c, None)),
            Err(StoreError::Corrupt { path, why }) => Ok((
                Counters::default(),
                Some(format!(
                    "{}: corrupt counters ignored (rewritten at the next write; no code from before their last write is accepted): {why}",
                    path.display()
                )),
            )),
            Err(e) => Err(e),
        }
    }

    /// What a code check may decide before it takes the user's lock: the enrollment's code
    /// length (`None`: not enrolled) and the throttle's verdict for `source` at `at`, on what
    /// this store last read when it holds its files (a login: no I/O, nothing copied), else on
    /// a read now without the lock (torn counters read as defaults). Only ever a reason to
    /// refuse early; the check under the lock decides the rest.
    pub(crate) fn before_lock(
        &self,
        user: &UserName,
        source: &str,
        at: u64,
    ) -> Result<(Option<crate::record::DigitSet>, crate::throttle::Gate)> {
        let digits_of = |r: &Record| r.enrollment.as_ref().map(|e| e.digit_set());
        let name = format!("{user}.{RECORD}");
        let digits = match self
            .with_held(&name, |h| h.record.as_ref().map(digits_of))
            .flatten()
        {
            Some(d) => d,
            None => self.read_record(user)?.as_ref().and_then(digits_of),
        };
        let gate = |c: &Counters| crate::throttle::gate(c, source, at);
        let name = format!("{user}.{COUNTERS}");
        let gate = match self
            .with_held(&name, |h| h.counters.as_ref().map(gate))
            .flatten()
        {
            Some(g) => g,
            None => gate(&self.read_counters_lenient(user)?.0),
        };
        Ok((digits, gate))
    }

    /// When the user's counters file was last modified (Unix seconds), if it exists.
    pub(crate) fn counters_modified(&self, user: &UserName) -> Option<u64> {
        let name = format!("{user}.{COUNTERS}");
        let st = nix::sys::stat::fstatat(
            self.dir.as_fd(),
            name.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok()?;
        u64::try_from(st.st_mtime).ok()
    }

    /// Reads a user's login counters alone (defaults when there are none), without the lock.
    pub fn read_counters(&self, user: &UserName) -> Result<Counters> {
        let name = format!("{user}.{COUNTERS}");
        let Some(text) = self.read_file(&name, true)? else {
            return Ok(Counters::default());
        };
        self.parse_counters(&name, &text)
    }

    /// Counters' text parsed and checked; kept beside the held file, if any.
    fn parse_counters(&self, name: &str, text: &str) -> Result<Counters> {
        // The shape twofold writes is read without the TOML parser; anything else with it.
        let counters: Counters = match Counters::parse_canonical(text) {
            Some(c) => c,
            None => self.parse(name, text)?,
        };
        self.check_version(name, counters.version)?;
        self.with_held(name, |h| h.counters = Some(counters.clone()));
        Ok(counters)
    }

    /// Reads a file of the store that is not a user's (e.g. the policy cache), with the same
    /// checks as a record; `None` if it does not exist.
    pub(crate) fn read_aux(&self, name: &str) -> Result<Option<Zeroizing<String>>> {
        self.read_file_as(name, Hold::No)
    }

    /// Replaces a file of the store that is not a user's, atomically, without a lock: the
    /// temp file is this process's own, so concurrent writers never touch each other's.
    pub(crate) fn replace_aux(&self, name: &str, text: &str) -> Result<()> {
        self.replace_via(
            name,
            &format!(".{name}.{}.tmp", std::process::id()),
            text,
            false,
        )
    }

    /// Removes a file of the store that is not a user's; nothing if it does not exist.
    pub(crate) fn remove_aux(&self, name: &str) -> Result<()> {
        match unlinkat(self.dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(errno_err(&self.file_path(name), "remove")(e)),
        }
    }

    /// The users that have a file `USER.SUFFIX` in the store, sorted; names that are not
    /// user names are skipped.
    pub(crate) fn users_with(&self, suffix: &str) -> Result<Vec<UserName>> {
        let mut out = Vec::new();
        let entries =
            std::fs::read_dir(&self.path).map_err(io_err(&self.path, "read directory"))?;
        for entry in entries {
            let entry = entry.map_err(io_err(&self.path, "read directory"))?;
            let name = entry.file_name();
            let Some(user) = name
                .to_str()
                .and_then(|n| n.strip_suffix(suffix))
                .and_then(|n| n.strip_suffix('.'))
            else {
                continue;
            };
            if let Ok(user) = UserName::parse(user) {
                out.push(user);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Writes `text` to `name` through a temp file and a rename; with `durable`, the file and
    /// the directory are fsynced before returning. On any error the old file is untouched and
    /// the temp file is removed.
    fn replace(&self, name: &str, text: &str, durable: bool) -> Result<()> {
        self.replace_via(name, &format!(".{name}.tmp"), text, durable)
    }

    /// [`Store::replace`] through the temp file `tmp`, which only this writer uses (the lock
    /// holder's `.NAME.tmp`, or a per-process name): a leftover is from a killed writer.
    fn replace_via(&self, name: &str, tmp: &str, text: &str, durable: bool) -> Result<()> {
        let tmp_path = self.file_path(tmp);
        let path = self.file_path(name);
        match unlinkat(self.dir.as_fd(), tmp, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(errno_err(&tmp_path, "remove stale temp file")(e)),
        }
        let fd: OwnedFd = openat(
            self.dir.as_fd(),
            tmp,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            FileMode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.open_error(&tmp_path, e))?;
        let mut file = File::from(fd);
        let written = (|| -> Result<()> {
            fchmod(file.as_fd(), FileMode::from_bits_truncate(0o600))
                .map_err(errno_err(&tmp_path, "chmod"))?;
            file.write_all(text.as_bytes())
                .map_err(io_err(&tmp_path, "write"))?;
            if durable {
                file.sync_all().map_err(io_err(&tmp_path, "fsync"))?;
            }
            renameat(self.dir.as_fd(), tmp, self.dir.as_fd(), name)
                .map_err(errno_err(&path, "rename into place"))?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = unlinkat(self.dir.as_fd(), tmp, UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        if durable {
            self.dir
                .sync_all()
                .map_err(io_err(&self.path, "fsync directory"))?;
        }
        Ok(())
    }
}

/// A user's lock, held until dropped. Read, change and write through it.
#[derive(Debug)]
pub struct Locked<'a> {
    store: &'a Store,
    user: UserName,
    _lock: File,
    /// The file size limit, lifted while the lock is held.
    _fsize: FileSizeLimit,
}

impl Drop for Locked<'_> {
    /// What was current under this lock is no longer known to be once it is released.
    fn drop(&mut self) {
        if let Some(Ok(mut held)) = self.store.held.as_ref().map(|h| h.lock()) {
            for h in held.iter_mut() {
                h.current = false;
            }
        }
    }
}

impl Locked<'_> {
    /// The user.
    pub fn user(&self) -> &UserName {
        &self.user
    }

    /// Reads the current state (under the lock: nobody else changes it meanwhile).
    pub fn read(&self) -> Result<UserState> {
        let (store, user) = (self.store, &self.user);
        let name = format!("{user}.{RECORD}");
        let record = store.read_locked(
            &name,
            |h| h.record.clone(),
            || store.read_record(user),
            |text| store.parse_record(user, &name, text),
        )?;
        let name = format!("{user}.{COUNTERS}");
        let counters = store.read_locked(
            &name,
            |h| h.counters.clone(),
            || store.read_counters(user).map(Some),
            |text| store.parse_counters(&name, text),
        );
        let (counters, counters_recovered) =
            Store::lenient(counters.map(Option::unwrap_or_default))?;
        Ok(UserState {
            record,
            counters,
            counters_recovered,
        })
    }

    /// Replaces the record durably: file and directory are fsynced before this returns.
    pub fn write_record(&self, record: &Record) -> Result<()> {
        let name = format!("{}.{RECORD}", self.user);
        if record.user != self.user.as_str() {
            return Err(StoreError::Corrupt {
                path: self.store.file_path(&name),
                why: format!(
                    "refusing to write the record of {:?} as {:?}",
                    record.user,
                    self.user.as_str()
                ),
            });
        }
        let mut record = record.clone();
        record.version = VERSION;
        let text = Zeroizing::new(toml::to_string(&record).map_err(|e| StoreError::Corrupt {
            path: self.store.file_path(&name),
            why: format!("cannot serialize: {e}"),
        })?);
        self.store.replace(&name, &text, true)
    }

    /// Writes the counters in place, under the lock, without fsync (see [`crate::record`]):
    /// one `pwrite` at offset 0 (padded with newlines to the old length, which TOML ignores, so
    /// that the file keeps its size) and a truncation only when the file has grown over twice
    /// what it holds. No temp file and no rename: the directory is not touched at every login.
    /// Writers hold the lock; a reader without it ([`Store::read`], the pre-prompt throttle)
    /// may see a torn file and then reads defaults, as after a crash ([`Store::read_counters_lenient`]);
    /// the check itself always reads under the lock.
    pub fn write_counters(&self, counters: &Counters) -> Result<()> {
        let name = format!("{}.{COUNTERS}", self.user);
        let path = self.store.file_path(&name);
        let mut counters = counters.clone();
        counters.version = COUNTERS_VERSION;
        let text = counters.to_toml();
        let mut bytes = text.into_bytes();
        // The file held open since before the prompt, found current under this lock by
        // [`Locked::read`]: written through without opening it again (one `fstatat` instead of
        // an open, a check and a close).
        // Only if the name still leads to it now: a counters file replaced or removed since
        // the read (by hand, without the lock) gets the step by name, as without holding.
        let same = match nix::sys::stat::fstatat(
            self.store.dir.as_fd(),
            name.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Some((st.st_dev, st.st_ino)),
            Err(_) => None,
        };
        let through_held = self.store.with_held(&name, |h| {
            if !(h.writable && h.current && same == Some((h.dev, h.ino))) {
                return None;
            }
            Some(
                write_in_place(&h.file, &mut bytes, h.text.len() as u64).map(|()| {
                    h.text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
                    h.counters = None;
                }),
            )
        });
        if let Some(Some(done)) = through_held {
            return done.map_err(io_err(&path, "write"));
        }
        let fd = openat(
            self.store.dir.as_fd(),
            name.as_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            FileMode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.store.open_error(&path, e))?;
        let file = File::from(fd);
        let old = self.store.check_file(&path, &file)?.len();
        write_in_place(&file, &mut bytes, old).map_err(io_err(&path, "write"))
    }
}

/// Writes `bytes` at offset 0 of `file`, whose length is `old`: padded with newlines to the
/// old length (which TOML ignores, so that the file keeps its size), and truncated only when
/// the file has grown over twice what it holds.
fn write_in_place(file: &File, bytes: &mut Vec<u8>, old: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = bytes.len() as u64;
    let shrink = old > 2 * len + 4096;
    if !shrink && old > len {
        bytes.resize(usize::try_from(old).unwrap_or(bytes.len()), b'\n');
    }
    file.write_all_at(bytes, 0)?;
    if shrink {
        file.set_len(len)?;
    }
    Ok(())
}

/// The caller's `RLIMIT_FSIZE`, lifted while a user's lock is held and put back when dropped.
///
/// A setuid program (`su`, `chfn`) runs the module under the resource limits of whoever
/// started it. Under a file size limit a `pwrite` stops at the limit, leaving the start of the
/// new counters over the rest of the old ones: a file that no longer parses, whose accepted
/// step and failure counts would be lost. And a limit that only a longer write outgrows (a wrong
/// code's counters, with the failure) would refuse that write and not a right code's: guesses
/// uncounted. So the limit is settled when the lock is taken, before anything is checked:
/// lifted (the module runs as root, which may), or the lock is refused and nothing is checked or
/// written. No signal handler is involved: with the limit lifted no `SIGXFSZ` is raised.
#[derive(Debug)]
struct FileSizeLimit(Option<(nix::libc::rlim_t, nix::libc::rlim_t)>);

/// More than any write made under a lock (the counters with every remembered source, a record).
const WRITE_BOUND: u64 = 1 << 20;

impl FileSizeLimit {
    /// Lifts the limit so that `len` bytes can be written, until dropped; an error when the
    /// process may not (a hard limit below `len` and no CAP_SYS_RESOURCE).
    fn lift_for(len: u64) -> io::Result<FileSizeLimit> {
        use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
        let (soft, hard) = getrlimit(Resource::RLIMIT_FSIZE).map_err(io::Error::from)?;
        if soft == RLIM_INFINITY || soft >= len {
            return Ok(FileSizeLimit(None));
        }
        if setrlimit(Resource::RLIMIT_FSIZE, RLIM_INFINITY, RLIM_INFINITY).is_ok() {
            return Ok(FileSizeLimit(Some((soft, hard))));
        }
        if (hard == RLIM_INFINITY || hard >= len)
            && setrlimit(Resource::RLIMIT_FSIZE, hard, hard).is_ok()
        {
            return Ok(FileSizeLimit(Some((soft, hard))));
        }
        Err(io::Error::other(format!(
            "the process's file size limit ({soft} bytes) is below the {len} bytes to write"
        )))
    }
}

impl Drop for FileSizeLimit {
    fn drop(&mut self) {
        if let Some((soft, hard)) = self.0 {
            let _ = nix::sys::resource::setrlimit(
                nix::sys::resource::Resource::RLIMIT_FSIZE,
                soft,
                hard,
            );
        }
    }
}
