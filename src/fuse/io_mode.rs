//! How the kernel reads each open inode (FUSE passthrough or through the daemon), tracked
//! so that every open of an inode agrees with the first.
//!
//! An open of another content file than the one an inode read through the daemon is
//! reading (a newer version) reads without the page cache (`FOPEN_DIRECT_IO`): the kernel
//! holds one set of cached pages per inode. Once the old handles are released, the next
//! open drops the pages they may have brought back.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt as _;

use fuser::{BackingId, Errno, FileHandle, FopenFlags, INodeNo, ReplyOpen};
use parking_lot::Mutex;

use crate::remote::Remote;
use crate::stats::Stats;
use crate::vfs::{Opened, Vfs};

/// How the kernel reads an open inode. The kernel allows one mode per inode at a time:
/// every open of an inode in passthrough mode must name the same backing file, and an inode
/// cannot be open in passthrough and cached mode at once. So the first open chooses, and
/// later opens follow it until the last one is released.
#[derive(Debug)]
pub(super) enum IoMode {
    /// Reads go straight to this backing file.
    Passthrough { id: BackingId, opens: usize },
    /// Reads come to the daemon (and the page cache).
    Cached { opens: usize, file: Option<FileId> },
}

/// Which file a handle reads: device and inode number.
type FileId = (u64, u64);

fn file_id(opened: &Opened) -> Option<FileId> {
    let meta = opened.backing.as_ref()?.metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Open inodes and their modes, and which inode each handle belongs to.
#[derive(Debug, Default)]
pub(super) struct IoModes {
    pub(super) by_ino: HashMap<u64, IoMode>,
    pub(super) handles: HashMap<u64, u64>,
    /// Inodes opened at a newer version while an older one was open: their next cached
    /// open starts without the old pages.
    superseded: HashSet<u64>,
}

impl IoModes {
    pub(super) fn release(&mut self, fh: u64) {
        let Some(ino) = self.handles.remove(&fh) else { return };
        let last = match self.by_ino.get_mut(&ino) {
            Some(IoMode::Passthrough { opens, .. } | IoMode::Cached { opens, .. }) => {
                *opens -= 1;
                *opens == 0
            }
            None => false,
        };
        if last {
            // Dropping a BackingId closes it in the kernel.
            self.by_ino.remove(&ino);
        }
    }
}

/// Answers an OPEN that the namespace granted: in passthrough mode when the inode is read
/// that way already, or is not open and the kernel takes the backing file; through the
/// daemon otherwise. A complete file stays complete, so a passthrough inode refuses a
/// handle without a backing file (EBUSY).
pub(super) fn reply_open<R: Remote>(
    io: &Mutex<IoModes>,
    passthrough: bool,
    ino: INodeNo,
    opened: &Opened,
    vfs: &Vfs<R>,
    reply: ReplyOpen,
) {
    let fh = FileHandle(opened.fh);
    // The table lock is held across the reply so that the table always says
    // what the kernel was told; replies do not block.
    let mut io = io.lock();
    let file = file_id(opened);
    // (A passthrough inode must get the same backing file for every open: a new version
    // comes under a new inode number, see `vfs::changes`.)
    let newer = match io.by_ino.get(&ino.0) {
        Some(IoMode::Cached { file: held, .. }) => matches!((held, file), (Some(a), Some(b)) if *a != b),
        _ => false,
    };
    if newer {
        // Not counted in the inode's mode: its release changes nothing there.
        io.superseded.insert(ino.0);
        reply.opened(fh, FopenFlags::FOPEN_DIRECT_IO);
        return;
    }
    io.handles.insert(opened.fh, ino.0);
    match io.by_ino.get_mut(&ino.0) {
        Some(IoMode::Passthrough { id, opens, .. }) if opened.backing.is_some() => {
            *opens += 1;
            Stats::add(&vfs.stats().passthrough_opens, 1);
            reply.opened_passthrough(fh, FopenFlags::empty(), id);
        }
        Some(IoMode::Passthrough { .. }) => {
            // A complete file stays complete; a passthrough inode cannot get a
            // handle without a backing file.
            io.handles.remove(&opened.fh);
            vfs.release(opened.fh);
            reply.error(Errno::EBUSY);
        }
        Some(IoMode::Cached { opens, .. }) => {
            *opens += 1;
            reply.opened(fh, FopenFlags::FOPEN_KEEP_CACHE);
        }
        None => {
            let id = match &opened.backing {
                Some(file) if passthrough => match reply.open_backing(&**file) {
                    Ok(id) => Some(id),
                    Err(e) => {
                        log::debug!("passthrough refused ({e}); reading through the daemon");
                        None
                    }
                },
                _ => None,
            };
            match id {
                Some(id) => {
                    Stats::add(&vfs.stats().passthrough_opens, 1);
                    reply.opened_passthrough(fh, FopenFlags::empty(), &id);
                    io.by_ino.insert(ino.0, IoMode::Passthrough { id, opens: 1 });
                }
                None => {
                    // Without KEEP_CACHE the kernel drops the inode's pages at this open.
                    let fresh = io.superseded.remove(&ino.0);
                    reply.opened(fh, if fresh { FopenFlags::empty() } else { FopenFlags::FOPEN_KEEP_CACHE });
                    io.by_ino.insert(ino.0, IoMode::Cached { opens: 1, file });
                }
            }
        }
    }
}
