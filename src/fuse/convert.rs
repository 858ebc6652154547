//! Conversions between the namespace's values and fuser's: attributes, errors, names and
//! xattr replies.

use std::ffi::OsStr;

use fuser::{Errno, FileAttr, FileType, INodeNo, ReplyXattr};

use crate::error::{FsError, FsResult};
use crate::stats::Stats;
use crate::vfs::{Attr, Kind};

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
