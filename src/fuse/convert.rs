//! Conversions between the namespace's values and fuser's: attributes, errors, names and
//! xattr replies.

use std::ffi::OsStr;

use fuser::{Errno, FileAttr, FileType, INodeNo, ReplyXattr};

use crate::error::{FsError, FsResult};
use crate::stats::Stats;
use std::time::{Duration, SystemTime};

use crate::remote::Remote;
use crate::vfs::{Attr, DirItem, Entry, Kind, Vfs};

pub(super) fn fuse_attr(attr: &Attr, uid: u32, gid: u32) -> FileAttr {
    let (kind, nlink) = match attr.kind {
        Kind::Dir => (FileType::Directory, 2),
        Kind::File => (FileType::RegularFile, 1),
        Kind::Symlink => (FileType::Symlink, 1),
    };
    // The kernel's file sizes are signed.
    let size = attr.size.min(i64::MAX as u64);
    FileAttr {
        ino: INodeNo(attr.ino),
        size,
        blocks: size.div_ceil(512),
        atime: attr.mtime,
        mtime: attr.mtime,
        ctime: attr.mtime,
        crtime: attr.mtime,
        kind,
        perm: attr.perm,
        nlink,
        uid,
        gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// Turns an error into an errno, logging the ones worth a line (once, here) and counting.
pub(super) fn errno(stats: &Stats, op: &str, err: FsError) -> Errno {
    match &err {
        FsError::Timeout(_) => Stats::add(&stats.timeouts, 1),
        e if e.is_noteworthy() => Stats::add(&stats.errors, 1),
        _ => {}
    }
    if err.is_noteworthy() {
        log::warn!("{op}: {err}");
    }
    let code = err.errno();
    stats.metrics.error(code);
    Errno::from_i32(code)
}

pub(super) fn name_str(name: &OsStr) -> FsResult<&str> {
    // Remote names are UTF-8; a name that is not cannot exist in the mount.
    name.to_str().ok_or(FsError::NotFound)
}

pub(super) fn reply_xattr(reply: ReplyXattr, size: u32, result: FsResult<Vec<u8>>, stats: &Stats) {
    match result {
        Ok(value) if size == 0 => reply.size(value.len() as u32),
        Ok(value) if value.len() > size as usize => {
            stats.metrics.error(libc::ERANGE);
            reply.error(Errno::ERANGE)
        }
        Ok(value) => reply.data(&value),
        Err(err) => reply.error(errno(stats, "xattr", err)),
    }
}

/// Sends a directory's entries from `offset` on, `.` and `..` first, to `add` (a READDIR or a
/// READDIRPLUS reply) until it says the reply is full. `add` gets the offset of the entry
/// after this one, its name and its attributes. Costs only the entries sent. With `plus`
/// (READDIRPLUS), each entry that fits is one lookup the kernel will forget; `.` and `..`
/// are not (the kernel takes no reference from them).
pub(super) fn fill_dir<R: Remote>(
    vfs: &Vfs<R>,
    ino: u64,
    items: &[DirItem],
    offset: u64,
    plus: bool,
    mut add: impl FnMut(u64, &str, &Entry) -> bool,
) {
    let dir = |ino| Entry {
        attr: Attr { ino, kind: Kind::Dir, size: 0, mtime: SystemTime::UNIX_EPOCH, perm: 0o555 },
        ttl: Duration::ZERO,
    };
    let mut at = offset;
    while at < 2 {
        let (name, entry) = if at == 0 { (".", dir(ino)) } else { ("..", dir(vfs.parent_ino(ino))) };
        at += 1;
        if add(at, name, &entry) {
            return;
        }
    }
    let start = usize::try_from(at - 2).unwrap_or(usize::MAX);
    for item in items.iter().skip(start) {
        at += 1;
        if add(at, &item.name, &item.entry) {
            return;
        }
        if plus {
            vfs.entry_sent(item);
        }
    }
}
