//! Reading a user's `~/.google_authenticator` as root without letting that user point the
//! read anywhere else.

use super::*;

/// Why a `~/.google_authenticator` was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadRefusal {
    /// The user has none: not an error for `--all`.
    Missing,
    /// Anything else, in words (never the file's content).
    Refused(String),
}

impl std::fmt::Display for ReadRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadRefusal::Missing => write!(f, "no ~/{GA_FILE}"),
            ReadRefusal::Refused(why) => f.write_str(why),
        }
    }
}

/// The FUSE mount, if any, whose mount point is `path` or one of its ancestors, in the text of
/// `/proc/self/mountinfo`: `(mount point, filesystem type)`. A filesystem served by a user's
/// process (FUSE with `allow_other`) can leave a lookup unanswered for ever, and `O_NONBLOCK`
/// does not help with that: a home on one, or a mount over the file itself, is not touched.
pub fn fuse_mount_over(path: &Path, mountinfo: &str) -> Option<(String, String)> {
    let mut found: Option<(String, String)> = None;
    for line in mountinfo.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPER-OPTIONS
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(point) = left.split(' ').nth(4) else {
            continue;
        };
        let Some(fstype) = right.split(' ').next() else {
            continue;
        };
        if !fstype.starts_with("fuse") {
            continue;
        }
        let point = unescape_mountinfo(point);
        if path.starts_with(Path::new(&point))
            && found.as_ref().is_none_or(|(p, _)| point.len() > p.len())
        {
            found = Some((point, fstype.to_owned()));
        }
    }
    found
}

/// A mount point as mountinfo escapes it (`\040` for a space, octal `\ooo`).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b.get(i), octal) {
            (Some(b'\\'), Some(d)) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            (Some(&c), _) => {
                out.push(c);
                i += 1;
            }
            (None, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens the home directory `home` (from the user database) without following a symlink.
pub(crate) fn open_home(home: &Path) -> Result<OwnedFd, ReadRefusal> {
    if !home.is_absolute() {
        return Err(ReadRefusal::Refused(format!(
            "home directory {:?} in the user database is not an absolute path",
            home.display().to_string()
        )));
    }
    // Before any lookup in the home: a FUSE filesystem there (or over the file) is a user's
    // process answering, or not. Without /proc to ask, the read goes on as before.
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo")
        && let Some((point, fstype)) = fuse_mount_over(&home.join(GA_FILE), &info)
    {
        return Err(ReadRefusal::Refused(format!(
            "{} is on a {fstype} filesystem mounted at {point}: not read (a user's filesystem could stall the import)",
            home.join(GA_FILE).display()
        )));
    }
    nix::fcntl::open(
        home,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        ReadRefusal::Refused(match e {
            nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => format!(
                "home directory {} is a symbolic link or not a directory: not followed",
                home.display()
            ),
            nix::errno::Errno::ENOENT => format!("home directory {} is missing", home.display()),
            e => format!("home directory {}: {}", home.display(), e.desc()),
        })
    })
}

/// Whether the user with home `home` has a `~/.google_authenticator` (any kind of entry,
/// symbolic links not followed): for `twofold doctor`.
pub fn has_google_authenticator(home: &Path) -> Result<bool, ReadRefusal> {
    let dir = open_home(home)?;
    match nix::sys::stat::fstatat(dir.as_fd(), GA_FILE, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(ReadRefusal::Refused(format!(
            "{}/{GA_FILE}: {}",
            home.display(),
            e.desc()
        ))),
    }
}

/// Reads the `~/.google_authenticator` of the user `uid` whose home directory is `home` (from
/// the user database), as root, so that the user cannot make it read anything else: the home
/// directory opened without following a symbolic link, the file looked at without following
/// one, then opened (`O_NOFOLLOW`, `O_NONBLOCK`: a FIFO does not block) and checked on the
/// open descriptor before one byte is read: the same file, a regular file, owned by `uid`,
/// no permission for group or others (google-authenticator's own rule: 0600 or 0400), at most
/// [`MAX_FILE_BYTES`]; then read up to one byte past that. The content is wiped when dropped.
pub fn read_google_authenticator(home: &Path, uid: u32) -> Result<Zeroizing<Vec<u8>>, ReadRefusal> {
    read_google_authenticator_written(home, uid).map(|(bytes, _)| bytes)
}

/// [`read_google_authenticator`], with the file's modification time (Unix seconds, 0 before
/// 1970) after it was read, for [`after_last_write`].
pub fn read_google_authenticator_written(
    home: &Path,
    uid: u32,
) -> Result<(Zeroizing<Vec<u8>>, u64), ReadRefusal> {
    let path = format!("{}/{GA_FILE}", home.display());
    let refuse = |why: String| ReadRefusal::Refused(format!("{path}: {why}"));
    let dir = open_home(home)?;
    let before = match nix::sys::stat::fstatat(dir.as_fd(), GA_FILE, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(nix::errno::Errno::ENOENT) => return Err(ReadRefusal::Missing),
        Err(e) => return Err(refuse(e.desc().into())),
    };
    let kind = SFlag::from_bits_truncate(before.st_mode & SFlag::S_IFMT.bits());
    if kind != SFlag::S_IFREG {
        return Err(refuse(format!(
            "{}, not a regular file: not opened",
            kind_name(kind)
        )));
    }
    check_stat(&before, uid).map_err(refuse)?;
    let fd = nix::fcntl::openat(
        dir.as_fd(),
        GA_FILE,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| refuse(e.desc().into()))?;
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| refuse(e.desc().into()))?;
    if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) {
        return Err(refuse("replaced while it was being opened".into()));
    }
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind != SFlag::S_IFREG {
        return Err(refuse(format!("{}, not a regular file", kind_name(kind))));
    }
    check_stat(&st, uid).map_err(refuse)?;
    let file = std::fs::File::from(fd);
    let mut out = Zeroizing::new(Vec::with_capacity(usize::try_from(st.st_size).unwrap_or(0)));
    use std::io::Read as _;
    let mut limited = (&file).take(MAX_FILE_BYTES + 1);
    let mut buf = Zeroizing::new([0u8; 4096]);
    loop {
        match limited.read(buf.as_mut()) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or(&[])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(refuse(format!("cannot read: {e}"))),
        }
    }
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(refuse(format!(
            "grew past {MAX_FILE_BYTES} bytes while it was read"
        )));
    }
    if out.is_empty() {
        return Err(refuse("empty".into()));
    }
    let written = nix::sys::stat::fstat(file.as_fd())
        .map_err(|e| refuse(e.desc().into()))?
        .st_mtime;
    Ok((out, u64::try_from(written).unwrap_or(0)))
}

pub(crate) fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        k if k == SFlag::S_IFLNK => "a symbolic link",
        k if k == SFlag::S_IFIFO => "a FIFO",
        k if k == SFlag::S_IFSOCK => "a socket",
        k if k == SFlag::S_IFCHR => "a character device",
        k if k == SFlag::S_IFBLK => "a block device",
        k if k == SFlag::S_IFDIR => "a directory",
        _ => "not a regular file",
    }
}

pub(crate) fn check_stat(st: &nix::sys::stat::FileStat, uid: u32) -> Result<(), String> {
    if st.st_uid != uid {
        return Err(format!(
            "owned by uid {}, not by the user (uid {uid}): not read",
            st.st_uid
        ));
    }
    let mode = st.st_mode & 0o7777;
    if mode & !0o600 != 0 {
        return Err(format!(
            "mode {mode:04o}: only its owner may read or write it (0600 or 0400, as google-authenticator requires): not read"
        ));
    }
    if st.st_size < 1 || st.st_size as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{} bytes: more than {MAX_FILE_BYTES} (or empty): not read",
            st.st_size
        ));
    }
    Ok(())
}
