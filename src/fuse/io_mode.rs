//! How the kernel reads each open inode (FUSE passthrough or through the daemon), tracked
//! so that every open of an inode agrees with the first.
//!
//! A passthrough inode keeps its backing file registered after its last release (up to
//! [`KEPT_IDLE`] such inodes, least recently released dropped first), so that the next
//! open of it, the usual pattern of a web server opening a file per request, costs no
//! registration and no visit to the cache: it is answered on the FUSE thread at once (see
//! [`super::DamFs`]'s `open`). A kept backing file serves the same bytes for as long as it
//! is kept: a new version of an asset comes under a new inode number (`vfs::changes`). It
//! is let go of when the kernel forgets the inode, when the asset's content leaves the
//! cache (eviction, a new version, `damfs cache clear --drop-from-mount`), and at the next
//! open once its file was unlinked from the cache by anyone else (`damfs cache evict`):
//! until then it keeps the unlinked file's blocks on disk.
//!
//! An open of another content file than the one an inode read through the daemon is
//! reading (a newer version) reads without the page cache (`FOPEN_DIRECT_IO`): the kernel
//! holds one set of cached pages per inode. Once the old handles are released, the next
//! open drops the pages they may have brought back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;

use fuser::{BackingId, Errno, FileHandle, FopenFlags, INodeNo, ReplyOpen};
use parking_lot::Mutex;

use crate::remote::Remote;
use crate::stats::Stats;
use crate::vfs::{Opened, Vfs};

/// Passthrough inodes whose backing file stays registered with no open handle. Each holds
/// one descriptor in the daemon and one reference in the kernel; 1,024 covers the working
/// set of a web server's hot assets and stays well under the descriptor limit the daemon
/// raises itself to (see `session`).
pub(super) const KEPT_IDLE: usize = 1024;

/// How the kernel reads an open inode. The kernel allows one mode per inode at a time:
/// every open of an inode in passthrough mode must name the same backing file, and an inode
/// cannot be open in passthrough and cached mode at once. So the first open chooses, and
/// later opens follow it until the last one is released (a kept passthrough inode: until
/// its backing file is let go of).
#[derive(Debug)]
pub(super) enum IoMode {
    /// Reads go straight to this backing file.
    Passthrough(Backing),
    /// Reads come to the daemon (and the page cache).
    Cached { opens: usize, file: Option<FileId> },
}

/// A registered backing file and what keeping it needs.
#[derive(Debug)]
pub(super) struct Backing {
    id: BackingId,
    opens: usize,
    /// The file (for the handles of later opens) and the asset it belongs to, when it may
    /// be kept after the last release.
    kept: Option<(Arc<File>, String)>,
    /// When it went idle (no handle open): its place in `IoModes::idle`.
    idle: Option<u64>,
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
    /// Kept passthrough inodes with no handle open, by when they went idle.
    idle: BTreeMap<u64, u64>,
    tick: u64,
}

impl IoModes {
    pub(super) fn release(&mut self, fh: u64) {
        let Some(ino) = self.handles.remove(&fh) else { return };
        let last = match self.by_ino.get_mut(&ino) {
            Some(IoMode::Passthrough(b)) => {
                b.opens -= 1;
                if b.opens == 0 && b.kept.is_some() {
                    self.tick += 1;
                    b.idle = Some(self.tick);
                    self.idle.insert(self.tick, ino);
                    false
                } else {
                    b.opens == 0
                }
            }
            Some(IoMode::Cached { opens, .. }) => {
                *opens -= 1;
                *opens == 0
            }
            None => false,
        };
        if last {
            // Dropping a BackingId closes it in the kernel.
            self.by_ino.remove(&ino);
        }
        while self.idle.len() > KEPT_IDLE {
            let Some((_, oldest)) = self.idle.pop_first() else { break };
            self.by_ino.remove(&oldest);
        }
    }

    /// The file of a kept passthrough inode, for an open answered without the cache.
    pub(super) fn kept(&self, ino: u64) -> Option<Arc<File>> {
        match self.by_ino.get(&ino) {
            Some(IoMode::Passthrough(Backing { kept: Some((file, _)), .. })) => Some(Arc::clone(file)),
            _ => None,
        }
    }

    /// Lets go of `ino`'s backing file once no handle uses it (and no longer keeps it
    /// after that).
    fn let_go(&mut self, ino: u64) {
        if let Some(IoMode::Passthrough(b)) = self.by_ino.get_mut(&ino) {
            b.kept = None;
            if let Some(at) = b.idle.take() {
                self.idle.remove(&at);
            }
            if b.opens == 0 {
                self.by_ino.remove(&ino);
            }
        }
    }

    /// The kernel forgot `ino`: nothing opens it again.
    pub(super) fn forget(&mut self, ino: u64) {
        self.let_go(ino);
    }

    /// The content of `asset` left the cache: its kept backing files go.
    pub(super) fn content_dropped(&mut self, asset: &str) {
        let inos: Vec<u64> = self
            .by_ino
            .iter()
            .filter(
                |(_, m)| matches!(m, IoMode::Passthrough(Backing { kept: Some((_, a)), .. }) if a == asset),
            )
            .map(|(&ino, _)| ino)
            .collect();
        for ino in inos {
            self.let_go(ino);
        }
    }
}

/// Answers an OPEN of a kept passthrough inode: a handle on the kept file, with its
/// backing id, without asking the cache. None if `ino` is not kept or the namespace will
/// not reopen it (its file left the cache): the caller takes the usual path.
pub(super) fn reopen<R: Remote>(
    io: &Mutex<IoModes>,
    ino: INodeNo,
    flags: i32,
    vfs: &Vfs<R>,
    reply: ReplyOpen,
) -> Result<(), ReplyOpen> {
    let Some(file) = io.lock().kept(ino.0) else { return Err(reply) };
    let opened = match vfs.reopen(ino.0, flags, file) {
        Some(Ok(opened)) => opened,
        Some(Err(err)) => {
            reply.error(super::convert::errno(vfs.stats(), "open", err));
            return Ok(());
        }
        None => {
            io.lock().let_go(ino.0);
            return Err(reply);
        }
    };
    let mut guard = io.lock();
    let io = &mut *guard;
    match io.by_ino.get_mut(&ino.0) {
        Some(IoMode::Passthrough(b)) if b.kept.is_some() => {
            b.opens += 1;
            if let Some(at) = b.idle.take() {
                io.idle.remove(&at);
            }
            Stats::add(&vfs.stats().passthrough_opens, 1);
            reply.opened_passthrough(FileHandle(opened.fh), FopenFlags::empty(), &b.id);
            io.handles.insert(opened.fh, ino.0);
            Ok(())
        }
        _ => {
            // Let go of meanwhile (forgotten, evicted): the usual path, from the start.
            drop(guard);
            vfs.release(opened.fh);
            Err(reply)
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
    let mut guard = io.lock();
    let io = &mut *guard;
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
        Some(IoMode::Passthrough(b)) if opened.backing.is_some() => {
            b.opens += 1;
            let idle = b.idle.take();
            Stats::add(&vfs.stats().passthrough_opens, 1);
            reply.opened_passthrough(fh, FopenFlags::empty(), &b.id);
            if let Some(at) = idle {
                io.idle.remove(&at);
            }
        }
        Some(IoMode::Passthrough(_)) => {
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
                    let kept = match (&opened.backing, &opened.keep) {
                        (Some(file), Some(asset)) => Some((Arc::clone(file), asset.clone())),
                        _ => None,
                    };
                    io.by_ino.insert(ino.0, IoMode::Passthrough(Backing { id, opens: 1, kept, idle: None }));
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
