//! `SetDefaultMode`: changes the top-level `mode` of the main policy file with `toml_edit`,
//! keeping every comment and the layout byte for byte outside the changed value, validates the
//! result (as the login path would load it, drop-ins included) before writing, and replaces the
//! file atomically (temporary file, fsync, rename, fsync of the directory).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use twofold_policy::config::{self, Policy};
use twofold_policy::{Mode, PolicyError};

/// Why the edit was not made.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The current file (or a drop-in) is invalid, or the edit would make it so.
    #[error("{0}")]
    Invalid(PolicyError),
    /// A drop-in sets `mode` too and would override the main file.
    #[error("{0} sets mode as well and overrides the main file: change it there")]
    Overridden(String),
    /// Reading or writing failed; the file is unchanged.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        err: std::io::Error,
    },
}

/// The text of `text` with the top-level `mode` set to `mode`; comments and decor kept.
pub fn with_default_mode(text: &str, mode: Mode) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let root = doc.as_table_mut();
    match root.get_mut("mode").and_then(|i| i.as_value_mut()) {
        Some(v) => {
            let decor = v.decor().clone();
            *v = toml_edit::Value::from(mode.as_str());
            *v.decor_mut() = decor;
        }
        None => {
            // New key: after the other top-level keys, before any table; no comment moves.
            root.insert("mode", toml_edit::value(mode.as_str()));
        }
    }
    Ok(doc.to_string())
}

/// Why setting the default to `mode` in `main` would not take effect under `policy`: a
/// drop-in's own `mode` (the last one that sets it) overrides the main file's and differs from
/// `mode`. `None` when the main file's `mode` decides, or the drop-in says `mode` already.
/// Checked by [`set_default_mode`] on the policy as the edit would load, and by
/// `PreviewDefaultMode` on the policy as it is (the same answer: the edit changes the main
/// file only).
pub fn overridden(main: &Path, policy: &Policy, mode: Mode) -> Option<EditError> {
    if policy.mode.value == mode {
        return None;
    }
    match &policy.mode.source {
        Some(s) if s.file != main => Some(EditError::Overridden(format!(
            "{}:{}",
            s.file.display(),
            s.line
        ))),
        _ => None,
    }
}

/// Sets the account-wide default `mode` in `main` (the system policy file).
pub fn set_default_mode(main: &Path, mode: Mode) -> Result<(), EditError> {
    let io = |err| EditError::Io {
        path: main.display().to_string(),
        err,
    };
    // As the login path loads it: the current policy must be valid before it is touched.
    Policy::load_system(main).map_err(EditError::Invalid)?;
    let text = config::read_for_check(main).map_err(EditError::Invalid)?;
    let new_text = with_default_mode(&text, mode).map_err(|m| {
        EditError::Invalid(PolicyError {
            file: main.to_owned(),
            position: None,
            message: m,
        })
    })?;
    // Validate the new main file with the drop-ins on top, as it will be loaded.
    let policy = Policy::load_with(main, &new_text, config::dropin_dir(main).as_deref())
        .map_err(EditError::Invalid)?;
    if let Some(e) = overridden(main, &policy, mode) {
        return Err(e);
    }
    if new_text == text {
        return Ok(());
    }
    let meta = std::fs::symlink_metadata(main).map_err(io)?;
    let dir = main.parent().unwrap_or(Path::new("/"));
    let name = main
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.twofold-tmp"));
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(meta.mode() & 0o7777)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()))?;
        f.write_all(new_text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, main)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_comments_and_layout() {
        let text = "# head comment\n\nmode = \"optional\"   # the default\nadmin_group = \"adm\" # who\n\n[users.x] # a user\nmode = \"disabled\" # keep\n";
        let out = with_default_mode(text, Mode::Required).unwrap();
        assert_eq!(
            out,
            "# head comment\n\nmode = \"required\"   # the default\nadmin_group = \"adm\" # who\n\n[users.x] # a user\nmode = \"disabled\" # keep\n"
        );
    }

    #[test]
    fn adds_a_missing_mode_before_tables() {
        let text = "# only groups\nadmin_group = \"adm\"\n[groups.wheel]\nmode = \"required\"\n";
        let out = with_default_mode(text, Mode::Disabled).unwrap();
        let p = Policy::parse_one(Path::new("t.toml"), &out).unwrap();
        assert_eq!(p.mode.value, Mode::Disabled);
        assert!(out.starts_with("# only groups\n"), "{out}");
        assert!(
            out.contains("[groups.wheel]\nmode = \"required\"\n"),
            "{out}"
        );
    }
}
