//! The policy as last parsed ([`PolicyCache`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{FileId, now_ns, racy};
use crate::changes::{Checked, Kind, Snapshot};

/// The policy as last loaded, kept while the main file, the drop-in directory and every
/// drop-in keep their identity (and are not too recent to trust): a call that only reads
/// the policy does not parse it again.
#[derive(Debug, Default)]
pub struct PolicyCache {
    last: Mutex<Option<LoadedPolicy>>,
    /// The drop-in directory's file names as last listed, with the directory's identity then
    /// (adding, removing or renaming an entry changes it).
    pub(super) dropins: Mutex<Option<(FileId, Vec<PathBuf>)>>,
    /// The policy a read-only view may use while nothing changes ([`PolicyCache::load_view`]).
    quiet: Mutex<Option<(Checked, Arc<twofold_policy::Policy>)>>,
}

/// A policy and the identities of its files when it was read.
type LoadedPolicy = (Vec<Option<FileId>>, Arc<twofold_policy::Policy>);

impl PolicyCache {
    /// The identities the policy at `main` is made of, and whether any is too recent. The
    /// drop-in directory is listed again only when its own identity changed (or is too recent
    /// to trust); each drop-in file is `stat`ed every time.
    fn identity(&self, main: &Path) -> (Vec<Option<FileId>>, bool) {
        let read_at = now_ns();
        let mut ids = vec![FileId::stat(main).ok().flatten()];
        if let Some(dir) = twofold_policy::config::dropin_dir(main) {
            let dir_id = FileId::stat(&dir).ok().flatten();
            ids.push(dir_id);
            if let Some(dir_id) = dir_id {
                let mut listed = self.dropins.lock().unwrap_or_else(|e| e.into_inner());
                let known = listed
                    .as_ref()
                    .filter(|(id, _)| *id == dir_id && !id.racy(read_at));
                let files = match known {
                    Some((_, files)) => Some(files.clone()),
                    None => {
                        let files = twofold_policy::config::dropin_files(&dir).ok();
                        *listed = files.clone().map(|f| (dir_id, f));
                        files
                    }
                };
                if let Some(files) = files {
                    ids.extend(files.iter().map(|f| FileId::stat(f).ok().flatten()));
                }
            }
        }
        let is_racy = ids.iter().any(|id| racy(id, read_at));
        (ids, is_racy)
    }

    /// The policy at `main` with its drop-ins ([`twofold_policy::Policy::load_system`]).
    pub fn load(
        &self,
        main: &Path,
    ) -> Result<Arc<twofold_policy::Policy>, twofold_policy::PolicyError> {
        self.load_checked(main).map(|(policy, _)| policy)
    }

    /// [`PolicyCache::load`] for a read-only view: without checking the files while the snapshot `now`
    /// reports nothing new about them ([`crate::changes`]).
    pub fn load_view(
        &self,
        main: &Path,
        now: &Snapshot,
    ) -> Result<Arc<twofold_policy::Policy>, twofold_policy::PolicyError> {
        let mut quiet = self.quiet.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((checked, policy)) = &*quiet
            && now.quiet_since(Kind::Policy, Some(*checked))
        {
            return Ok(policy.clone());
        }
        let stamp = now.stamp(Kind::Policy);
        let (policy, kept) = self.load_checked(main)?;
        *quiet = stamp.filter(|_| kept).map(|s| (s, policy.clone()));
        Ok(policy)
    }

    /// The policy, and whether it is the one kept (files not too recent to trust).
    fn load_checked(
        &self,
        main: &Path,
    ) -> Result<(Arc<twofold_policy::Policy>, bool), twofold_policy::PolicyError> {
        let (ids, is_racy) = self.identity(main);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, policy)) = &*last
            && *known == ids
        {
            return Ok((policy.clone(), true));
        }
        let policy = Arc::new(twofold_policy::Policy::load_system(main)?);
        *last = (!is_racy).then(|| (ids, policy.clone()));
        Ok((policy, !is_racy))
    }
}
