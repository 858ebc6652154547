//! Open files: opening (materializing) assets, renditions and metadata documents, reading
//! them (waiting for bytes still in transfer), and releasing them.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::deadline::Deadline;

use super::Remote;
use super::inode::Node;
use super::{Handle, Opened, Vfs, reserved};
use crate::error::{FsError, FsResult};
use crate::stats::Stats;

impl<R: Remote> Vfs<R> {
    /// Opens a file for reading. Any write access is refused.
    pub async fn open(self: &Arc<Self>, ino: u64, flags: i32, deadline: Deadline) -> FsResult<Opened> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & (libc::O_TRUNC | libc::O_CREAT) != 0 {
            return Err(FsError::ReadOnly);
        }
        let node = self.node(ino)?;
        let mut processing = false;
        if let Node::Asset(asset) | Node::Rendition(asset, _) | Node::MetadataFile(asset) = &*node {
            processing = self.asset_child(asset).is_some_and(|c| c.processing);
            self.materializer.set_processing(asset, processing);
        }
        let (handle, stale_attr) = match &*node {
            Node::Asset(path) => {
                let hint = self.asset_child(path).and_then(|c| c.size);
                let opened = self.materializer.open(path, "original", deadline).await?;
                // An unknown size was shown as 0: that is stale too.
                let stale = opened.size.is_some_and(|s| hint.unwrap_or(0) != s);
                if stale {
                    log::info!(
                        "/{path}: dam:size said {} bytes, the original has {}",
                        hint.unwrap_or(0),
                        opened.size.unwrap_or(0)
                    );
                }
                (
                    Handle::File {
                        file: Arc::new(opened.file),
                        transfer: opened.transfer,
                        what: path.clone(),
                        _pin: self.materializer.pin(path),
                    },
                    stale,
                )
            }
            Node::Rendition(asset, name) => {
                let opened = self.materializer.open(asset, name, deadline).await?;
                let what = format!("{asset} rendition {name}");
                (
                    Handle::File {
                        file: Arc::new(opened.file),
                        transfer: opened.transfer,
                        what,
                        _pin: self.materializer.pin(asset),
                    },
                    false,
                )
            }
            Node::MetadataFile(asset) => {
                let content = self.materializer.materialize(asset, deadline).await?;
                (
                    Handle::Bytes(Arc::new(reserved::metadata_json(
                        &content.manifest,
                        &self.dirs.asset_url(asset),
                    ))),
                    false,
                )
            }
            Node::TagLink(..) | Node::SearchLink(..) => return Err(FsError::Invalid),
            _ => return Err(FsError::IsDir),
        };
        let backing = match &handle {
            Handle::File { file, transfer: None, .. } => Some(Arc::clone(file)),
            _ => None,
        };
        let keep = match (&*node, &backing) {
            (Node::Asset(asset) | Node::Rendition(asset, _), Some(_)) if !processing => Some(asset.clone()),
            _ => None,
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, Arc::new(handle));
        Ok(Opened { fh, backing, stale_attr, keep })
    }

    /// Opens `ino` again on `file`, the complete content an earlier open of it returned
    /// (its [`Opened::keep`]), without asking the cache or the remote: no index query, no
    /// request, no wait. None when `ino` no longer names an asset or a rendition, or the
    /// file has left the cache (unlinked): the caller opens it the usual way.
    pub fn reopen(&self, ino: u64, flags: i32, file: Arc<File>) -> Option<FsResult<Opened>> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & (libc::O_TRUNC | libc::O_CREAT) != 0 {
            return Some(Err(FsError::ReadOnly));
        }
        let node = self.inodes.get(ino)?;
        let (asset, what) = match &*node {
            Node::Asset(asset) => (asset, asset.clone()),
            Node::Rendition(asset, name) => (asset, format!("{asset} rendition {name}")),
            _ => return None,
        };
        // Evicted, verified away or replaced by a new version since: its name is gone.
        if file.metadata().ok()?.nlink() == 0 {
            return None;
        }
        let pin = self.materializer.pin(asset);
        self.materializer.touch(asset);
        Stats::add(&self.stats.cache_hits, 1);
        let handle = Handle::File { file: Arc::clone(&file), transfer: None, what, _pin: pin };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, Arc::new(handle));
        Some(Ok(Opened { fh, backing: Some(file), stale_attr: false, keep: Some(asset.clone()) }))
    }

    /// Has `hook` told of every asset whose content leaves the cache (evicted, dropped for
    /// a new version or on request): what was opened on that content must not be reopened.
    pub fn on_content_dropped(&self, hook: Box<dyn Fn(&str) + Send + Sync>) {
        self.materializer.on_content_dropped(hook);
    }

    /// Reads from an open handle; waits (until `deadline`) for bytes still in transfer.
    pub async fn read(&self, fh: u64, offset: u64, size: u32, deadline: Deadline) -> FsResult<Vec<u8>> {
        let handle = self.handles.lock().get(&fh).cloned().ok_or(FsError::Invalid)?;
        match &*handle {
            Handle::Bytes(bytes) => {
                let start = (offset as usize).min(bytes.len());
                let end = start.saturating_add(size as usize).min(bytes.len());
                Ok(bytes[start..end].to_vec())
            }
            Handle::File { file, transfer, what, .. } => {
                let mut len = size as u64;
                if let Some(t) = transfer {
                    let progress = t.wait_range(offset, offset.saturating_add(len), deadline, what).await?;
                    if !matches!(progress.phase, crate::materialize::transfer::Phase::Done(_)) {
                        len = len.min(progress.present_from(offset));
                    }
                }
                let file = Arc::clone(file);
                crate::fileio::read_at(&file, offset, len as usize).map_err(FsError::Io)
            }
        }
    }

    /// Forgets a handle (its asset stays pinned until a read still using it ends).
    pub fn release(&self, fh: u64) {
        let handle = self.handles.lock().remove(&fh);
        drop(handle);
    }
}
