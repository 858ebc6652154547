//! Open directories: the entries of a directory are taken once, at the first read of an
//! open handle, and every later READDIR chunk is answered from them by offset. A listing
//! that refreshes underneath does not move the offsets of a reader in the middle of it, and
//! a directory of N entries costs one listing, not one per chunk.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{DirItem, Remote, Vfs};
use crate::deadline::Deadline;
use crate::error::FsResult;
use crate::stats::Stats;

impl<R: Remote> Vfs<R> {
    /// Opens directory `ino` for reading; nothing is listed yet.
    pub fn opendir(&self, ino: u64) -> FsResult<u64> {
        self.node(ino)?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dir_handles.lock().insert(fh, None);
        Ok(fh)
    }

    /// The entries of open directory `fh` (of inode `ino`), `.` and `..` excluded: taken
    /// at the first read, and again on a read from offset 0 (a rewind); kept otherwise. A
    /// handle this namespace did not open is listed afresh.
    pub async fn readdir_open(
        self: &Arc<Self>,
        ino: u64,
        fh: u64,
        offset: u64,
        deadline: Deadline,
    ) -> FsResult<Arc<Vec<DirItem>>> {
        if offset > 0
            && let Some(Some(taken)) = self.dir_handles.lock().get(&fh)
        {
            return Ok(Arc::clone(taken));
        }
        let items = Arc::new(self.readdir(ino, deadline).await?);
        Stats::add(&self.stats.dir_snapshots, 1);
        if let Some(slot) = self.dir_handles.lock().get_mut(&fh) {
            *slot = Some(Arc::clone(&items));
        }
        Ok(items)
    }

    /// Forgets an open directory.
    pub fn releasedir(&self, fh: u64) {
        self.dir_handles.lock().remove(&fh);
    }
}
