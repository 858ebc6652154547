//! How the kernel reads each open inode (FUSE passthrough or through the daemon), tracked
//! so that every open of an inode agrees with the first.

use std::collections::HashMap;

use fuser::BackingId;

/// How the kernel reads an open inode. The kernel allows one mode per inode at a time:
/// every open of an inode in passthrough mode must name the same backing file, and an inode
/// cannot be open in passthrough and cached mode at once. So the first open chooses, and
/// later opens follow it until the last one is released.
#[derive(Debug)]
pub(super) enum IoMode {
    /// Reads go straight to this backing file.
    Passthrough { id: BackingId, opens: usize },
    /// Reads come to the daemon (and the page cache).
    Cached { opens: usize },
}

/// Open inodes and their modes, and which inode each handle belongs to.
#[derive(Debug, Default)]
pub(super) struct IoModes {
    pub(super) by_ino: HashMap<u64, IoMode>,
    pub(super) handles: HashMap<u64, u64>,
}

impl IoModes {
    pub(super) fn release(&mut self, fh: u64) {
        let Some(ino) = self.handles.remove(&fh) else { return };
        let last = match self.by_ino.get_mut(&ino) {
            Some(IoMode::Passthrough { opens, .. } | IoMode::Cached { opens }) => {
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
