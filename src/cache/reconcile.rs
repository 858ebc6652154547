//! Bringing the index and the content files into agreement after a crash or a hand edit,
//! while the mount already serves: rows whose file is missing or of the wrong length are
//! dropped, files no row names are removed, and a file committed meanwhile is neither.

use std::collections::HashSet;
use std::fs;

use super::{Cache, index};

impl Cache {
    /// Brings the index and the files into agreement after a crash or a hand edit: rows whose
    /// file is missing or of the wrong length are dropped, files no row names are removed.
    /// Meant to run in the background after mounting.
    pub fn reconcile(&self) -> (usize, usize) {
        self.reconcile_with(|| {})
    }
    /// [`Cache::reconcile`], running `between` after the index and the files were read and
    /// before anything is deleted (tests put a commit there).
    pub(super) fn reconcile_with(&self, between: impl FnOnce()) -> (usize, usize) {
        *self.committing.lock() = Some(HashSet::new());
        let result = self.reconcile_now(between);
        *self.committing.lock() = None;
        result
    }
    fn reconcile_now(&self, between: impl FnOnce()) -> (usize, usize) {
        self.flush();
        let rows = self.query("renditions", index::all_renditions).unwrap_or_default();
        let mut expected = HashSet::with_capacity(rows.len());
        let mut dropped = 0;
        for (asset, name, size, _) in rows {
            let path = self.content_path(&asset, &name);
            match fs::metadata(&path) {
                Ok(meta) if meta.len() == size => {
                    expected.insert(path);
                }
                // Committed again since the index was read: the row is what is stale.
                _ if self.committing.lock().as_ref().is_some_and(|c| c.contains(&path)) => {
                    expected.insert(path);
                }
                _ => {
                    log::warn!(
                        "cache: {asset} rendition {name} is missing or damaged on disk; it will be fetched again"
                    );
                    self.forget_rendition(&asset, &name);
                    dropped += 1;
                }
            }
        }
        let mut candidates = Vec::new();
        for shard in fs::read_dir(self.dir.join("content")).into_iter().flatten().flatten() {
            for file in fs::read_dir(shard.path()).into_iter().flatten().flatten() {
                if !expected.contains(&file.path()) {
                    candidates.push(file.path());
                }
            }
        }
        between();
        // A file listed above got there by a rename that its commit announced first: one
        // committed since the index was read is in `committing`, not an orphan.
        let mut orphans = 0;
        for path in candidates {
            let committed = self.committing.lock().as_ref().is_some_and(|c| c.contains(&path));
            if !committed {
                let _ = fs::remove_file(&path);
                orphans += 1;
            }
        }
        if dropped + orphans > 0 {
            log::warn!("cache: reconciled {dropped} missing file(s) and {orphans} orphan file(s)");
        }
        (dropped, orphans)
    }
}
