//! The state store: one record and one counters file per user under `/var/lib/twofold/`.
//!
//! - The directory must be owned by root (the effective uid) and closed to everyone else
//!   (0700); it is opened once with `O_DIRECTORY|O_NOFOLLOW` and every file is opened relative to
//!   it with `O_NOFOLLOW`, so a symlink is never followed, and owner and mode (0600) of every file
//!   are checked.
//! - Every change is a read-modify-write under a waiting per-user `flock` on `USER.lock` (never
//!   an `O_EXCL` lock file: a killed process releases its lock). Records are written to a temp
//!   file, fsynced and renamed over the old one, and the directory is fsynced before the change
//!   returns; counters are written in place without fsync (see [`crate::record`] and
//!   [`Locked::write_counters`]).
//! - User names are validated ([`UserName`]) before they touch a path.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode as FileMode, fchmod};
use nix::unistd::{UnlinkatFlags, unlinkat};
use zeroize::Zeroizing;

use crate::record::{Counters, Record, VERSION};
use crate::username::{NameError, UserName};

/// Where the state lives.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/twofold";
/// No record or counters file is larger than this; a larger one is refused as corrupt.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

const RECORD: &str = "toml";
const COUNTERS: &str = "counters";
const LOCK: &str = "lock";

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The user name cannot name a record.
    #[error(transparent)]
    BadName(#[from] NameError),
    /// The state directory does not exist.
    #[error("{0}: state directory does not exist")]
    Missing(PathBuf),
    /// An I/O operation failed.
    #[error("{path}: cannot {op}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A file or the directory is a symlink, or has the wrong owner, type or mode.
    #[error("{path}: {why}")]
    Insecure {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A file does not parse, or does not belong to the user it is named for.
    #[error("{path}: corrupt: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

/// An open state directory.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    dir: File,
    owner: u32,
}

/// A user's state as read: the record (if any) and the counters.
#[derive(Debug, Clone, Default)]
pub struct UserState {
    /// The durable record; `None` for a user twofold never stored anything for.
    pub record: Option<Record>,
    /// The login-time counters (default when there are none).
    pub counters: Counters,
    /// Set when the counters file was unreadable and defaults were used instead. It is only
    /// written by atomic rename, so this happens only after a power loss; the login path logs
    /// it. The secret is never in that file, so nothing of value is lost.
    pub counters_recovered: Option<String>,
}

impl UserState {
    /// Whether the user has a confirmed enrollment.
    pub fn enrolled(&self) -> bool {
        self.record.as_ref().is_some_and(|r| r.enrollment.is_some())
    }
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
        })
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

    /// Records that the requirement meets `user` for the first time at `now` (the grace
    /// period runs from here), under the lock, unless a start is recorded already; durable.
    pub fn start_grace(&self, user: &UserName, now: u64) -> Result<()> {
        let lock = self.lock(user)?;
        let mut record = lock
            .read()?
            .record
            .unwrap_or_else(|| Record::new(user.as_str()));
        if record.required_since.is_none() {
            record.required_since = Some(now);
            lock.write_record(&record)?;
        }
        Ok(())
    }

    /// Takes the user's lock, waiting for any other holder.
    pub fn lock(&self, user: &UserName) -> Result<Locked<'_>> {
        let name = format!("{user}.{LOCK}");
        let path = self.file_path(&name);
        let fd = openat(
            self.dir.as_fd(),
            name.as_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            FileMode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.open_error(&path, e))?;
        let file = File::from(fd);
        self.check_file(&path, &file)?;
        file.lock().map_err(io_err(&path, "lock"))?;
        Ok(Locked {
            store: self,
            user: user.clone(),
            _lock: file,
        })
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
        if !meta.is_file() {
            return Err(StoreError::Insecure {
                path: path.to_owned(),
                why: "is not a regular file".into(),
            });
        }
        if meta.uid() != self.owner {
            return Err(StoreError::Insecure {
                path: path.to_owned(),
                why: format!(
                    "owned by uid {}, expected {}: refusing to use it",
                    meta.uid(),
                    self.owner
                ),
            });
        }
        if meta.mode() & 0o077 != 0 {
            return Err(StoreError::Insecure {
                path: path.to_owned(),
                why: format!(
                    "mode {:04o}, expected 0600: refusing to use it",
                    meta.mode() & 0o7777
                ),
            });
        }
        Ok(meta)
    }

    /// Reads a whole file, or `None` if it does not exist.
    fn read_file(&self, name: &str) -> Result<Option<Zeroizing<String>>> {
        let path = self.file_path(name);
        let fd = match openat(
            self.dir.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            FileMode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(self.open_error(&path, e)),
        };
        let file = File::from(fd);
        let meta = self.check_file(&path, &file)?;
        // Sized from the file: one read for the bytes, one to see the end.
        let size = usize::try_from(meta.len().min(MAX_FILE_SIZE)).unwrap_or(0);
        let mut bytes = Zeroizing::new(Vec::with_capacity(size + 1));
        (&file)
            .take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(&path, "read"))?;
        if bytes.len() as u64 > MAX_FILE_SIZE {
            return Err(StoreError::Corrupt {
                path,
                why: format!("larger than {MAX_FILE_SIZE} bytes"),
            });
        }
        let text =
            String::from_utf8(std::mem::take(&mut *bytes)).map_err(|_| StoreError::Corrupt {
                path: path.clone(),
                why: "not UTF-8 text".into(),
            })?;
        Ok(Some(Zeroizing::new(text)))
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
        let Some(text) = self.read_file(&name)? else {
            return Ok(None);
        };
        let record: Record = self.parse(&name, &text)?;
        self.check_version(&name, record.version)?;
        if record.user != user.as_str() {
            return Err(StoreError::Corrupt {
                path: self.file_path(&name),
                why: format!("holds the record of {:?}, not {user:?}", record.user),
            });
        }
        if let Some(e) = &record.enrollment {
            if let Err(err) = e.secret() {
                return Err(StoreError::Corrupt {
                    path: self.file_path(&name),
                    why: err.to_string(),
                });
            }
            if !(6..=8).contains(&e.params.digits) || !(1..=3600).contains(&e.params.period) {
                return Err(StoreError::Corrupt {
                    path: self.file_path(&name),
                    why: "invalid digits or period".into(),
                });
            }
            if !e
                .recovery_codes
                .iter()
                .all(|h| crate::recovery::hash_is_well_formed(h))
            {
                return Err(StoreError::Corrupt {
                    path: self.file_path(&name),
                    why: "malformed recovery-code hash".into(),
                });
            }
        }
        Ok(Some(record))
    }

    /// Reads a user's login counters like [`Store::read_counters`], but a file that does not
    /// parse (torn by a power loss: it is only ever replaced by rename, never written in place)
    /// reads as defaults, with a note saying so for the log. The next write replaces it whole.
    /// An unsafe file (symlink, owner, mode) is still an error: that is no accident.
    pub fn read_counters_lenient(&self, user: &UserName) -> Result<(Counters, Option<String>)> {
        match self.read_counters(user) {
            Ok(c) => Ok((c, None)),
            Err(StoreError::Corrupt { path, why }) => Ok((
                Counters::default(),
                Some(format!(
                    "{}: corrupt counters ignored (rewritten at the next write): {why}",
                    path.display()
                )),
            )),
            Err(e) => Err(e),
        }
    }

    /// Reads a user's login counters alone (defaults when there are none), without the lock.
    pub fn read_counters(&self, user: &UserName) -> Result<Counters> {
        let name = format!("{user}.{COUNTERS}");
        let Some(text) = self.read_file(&name)? else {
            return Ok(Counters::default());
        };
        let counters: Counters = self.parse(&name, &text)?;
        self.check_version(&name, counters.version)?;
        Ok(counters)
    }

    /// Reads a file of the store that is not a user's (e.g. the policy cache), with the same
    /// checks as a record; `None` if it does not exist.
    pub(crate) fn read_aux(&self, name: &str) -> Result<Option<Zeroizing<String>>> {
        self.read_file(name)
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

/// What a code typed by the user proved (the inner step of [`Store::check_attempt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// A current code, newer than the last one accepted.
    Code,
    /// One of the recovery codes; it is now used up, `left` remain.
    RecoveryCode {
        /// Recovery codes still unused.
        left: usize,
    },
    /// A code that was already accepted once (or an older one).
    Replayed,
    /// Neither a code nor a recovery code.
    Invalid,
    /// The user has no enrollment (any more).
    NotEnrolled,
}

/// A user's lock, held until dropped. Read, change and write through it.
#[derive(Debug)]
pub struct Locked<'a> {
    store: &'a Store,
    user: UserName,
    _lock: File,
}

impl Locked<'_> {
    /// The user.
    pub fn user(&self) -> &UserName {
        &self.user
    }

    /// Reads the current state (under the lock: nobody else changes it meanwhile).
    pub fn read(&self) -> Result<UserState> {
        self.store.read(&self.user)
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

    /// Checks `input`, typed by the user, as a code of their enrollment (only a step newer than
    /// the last accepted one, within `now ± window`) or else as one of their recovery codes, and
    /// consumes what it used: the accepted step goes into `state.counters` (the caller writes
    /// the counters with the rest of its bookkeeping); a used recovery code is removed from the
    /// record durably before this returns. `state` is what [`Locked::read`] gave.
    pub(crate) fn check_code(
        &self,
        state: &mut UserState,
        input: &str,
        window: u64,
        now: u64,
    ) -> Result<Proof> {
        let Some(enrollment) = state.record.as_mut().and_then(|r| r.enrollment.as_mut()) else {
            return Ok(Proof::NotEnrolled);
        };
        let corrupt = |e: crate::totp::TotpError| StoreError::Corrupt {
            path: self.store.file_path(&format!("{}.{RECORD}", self.user)),
            why: e.to_string(),
        };
        let secret = enrollment.secret().map_err(corrupt)?;
        let verdict = crate::totp::verify(
            &secret,
            enrollment.params,
            input,
            now,
            window,
            state.counters.last_step,
        )
        .map_err(corrupt)?;
        match verdict {
            crate::totp::Verdict::Accepted { step } => {
                state.counters.last_step = Some(step);
                Ok(Proof::Code)
            }
            crate::totp::Verdict::Replayed => Ok(Proof::Replayed),
            crate::totp::Verdict::Invalid => {
                let Some(i) = crate::recovery::find(&enrollment.recovery_codes, input) else {
                    return Ok(Proof::Invalid);
                };
                enrollment.recovery_codes.remove(i);
                let left = enrollment.recovery_codes.len();
                if let Some(record) = &state.record {
                    // Durable before it counts: a used recovery code stays used after a crash.
                    self.write_record(record)?;
                }
                Ok(Proof::RecoveryCode { left })
            }
        }
    }

    /// Writes the counters in place, under the lock, without fsync (see [`crate::record`]):
    /// one `pwrite` at offset 0 (padded with newlines to the old length, which TOML ignores, so
    /// that the file keeps its size) and a truncation only when the file has grown over twice
    /// what it holds. No temp file and no rename: the directory is not touched at every login.
    /// Writers hold the lock; a reader without it ([`Store::read`], the pre-prompt throttle)
    /// may see a torn file and then reads defaults, as after a crash ([`Store::read_counters_lenient`]);
    /// the check itself always reads under the lock.
    pub fn write_counters(&self, counters: &Counters) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let name = format!("{}.{COUNTERS}", self.user);
        let path = self.store.file_path(&name);
        let mut counters = counters.clone();
        counters.version = VERSION;
        let text = toml::to_string(&counters).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            why: format!("cannot serialize: {e}"),
        })?;
        let fd = openat(
            self.store.dir.as_fd(),
            name.as_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            FileMode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.store.open_error(&path, e))?;
        let file = File::from(fd);
        let old = self.store.check_file(&path, &file)?.len();
        let mut bytes = text.into_bytes();
        let len = bytes.len() as u64;
        let shrink = old > 2 * len + 4096;
        if !shrink && old > len {
            bytes.resize(usize::try_from(old).unwrap_or(bytes.len()), b'\n');
        }
        file.write_all_at(&bytes, 0)
            .map_err(io_err(&path, "write"))?;
        if shrink {
            file.set_len(len).map_err(io_err(&path, "truncate"))?;
        }
        Ok(())
    }
}
