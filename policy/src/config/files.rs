//! Reading the policy's files: the drop-in directory, and the checks that make a file trusted
//! (owner, mode, no symlink, size, UTF-8).

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{MAX_FILE_SIZE, PolicyError};

/// The drop-in directory of the main policy file `main`: `policy.d` beside it.
pub fn dropin_dir(main: &Path) -> Option<PathBuf> {
    main.parent().map(|p| p.join("policy.d"))
}

/// The `*.toml` files of a drop-in directory in name order; a missing directory has none.
/// Hidden files (editor leftovers such as `.50-x.toml.swp`) are skipped.
pub fn dropin_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(PolicyError::file(
                dir,
                format!("cannot read directory: {e}"),
            ));
        }
    };
    check_trusted(
        dir,
        &fs::symlink_metadata(dir)
            .map_err(|e| PolicyError::file(dir, format!("cannot read directory: {e}")))?,
    )?;
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| PolicyError::file(dir, format!("cannot read directory: {e}")))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        files.push(entry.path());
    }
    files.sort();
    Ok(files)
}

fn check_trusted(path: &Path, meta: &fs::Metadata) -> Result<(), PolicyError> {
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(PolicyError::file(
            path,
            format!(
                "owned by uid {}, not root: refusing to trust it (chown root)",
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(PolicyError::file(
            path,
            format!(
                "writable by group or others (mode {:04o}): refusing to trust it (chmod go-w)",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Reads a policy file that must be a regular file (not a symlink to elsewhere), owned by root
/// or the current user, not writable by group or others, and of sane size.
pub(super) fn read_trusted(path: &Path) -> Result<String, PolicyError> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP) => {
                PolicyError::file(path, "is a symbolic link: refusing to follow it")
            }
            _ => PolicyError::file(path, format!("cannot read: {e}")),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| PolicyError::file(path, format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(PolicyError::file(path, "is not a regular file"));
    }
    check_trusted(path, &meta)?;
    if meta.len() > MAX_FILE_SIZE {
        return Err(PolicyError::file(
            path,
            format!(
                "is {} bytes, larger than any policy (at most {MAX_FILE_SIZE})",
                meta.len()
            ),
        ));
    }
    let mut text = String::new();
    (&mut file)
        .take(MAX_FILE_SIZE + 1)
        .read_to_string(&mut text)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => PolicyError::file(path, "is not valid UTF-8 text"),
            _ => PolicyError::file(path, format!("cannot read: {e}")),
        })?;
    Ok(text)
}

/// Reads a file for a plain syntax check (no ownership rules), UTF-8 and size checked.
pub fn read_for_check(path: &Path) -> Result<String, PolicyError> {
    let meta =
        fs::metadata(path).map_err(|e| PolicyError::file(path, format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(PolicyError::file(path, "is not a regular file"));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(PolicyError::file(
            path,
            format!(
                "is {} bytes, larger than any policy (at most {MAX_FILE_SIZE})",
                meta.len()
            ),
        ));
    }
    let bytes = fs::read(path).map_err(|e| PolicyError::file(path, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes());
        PolicyError::at(
            path,
            &text,
            good,
            "invalid UTF-8: a policy file is UTF-8 text",
        )
    })
}
