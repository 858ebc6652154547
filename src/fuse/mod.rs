//! The FUSE adapter: the only module that names fuser types. Each kernel request becomes one
//! `vfs` call and one reply. A call that the cache can answer completes on the FUSE worker
//! thread at once; one that needs the remote is handed to the tokio runtime and replied from
//! there, so a slow remote never occupies a FUSE thread. Every mutating request is answered
//! EROFS explicitly.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

mod convert;
mod dispatch;
mod io_mode;
pub mod session;

use convert::{errno, fill_dir, fuse_attr, name_str, reply_xattr};
use io_mode::{IoModes, reply_open};

use crate::error::FsError;
use crate::remote::Remote;
use crate::stats::Stats;
use crate::vfs::Vfs;

/// The filesystem handed to fuser.
pub struct DamFs<R: Remote> {
    vfs: Arc<Vfs<R>>,
    runtime: tokio::runtime::Handle,
    uid: u32,
    gid: u32,
    passthrough: AtomicBool,
    /// How each open inode is read by the kernel. Guards the table only.
    io: Arc<Mutex<IoModes>>,
    notifier: Arc<OnceLock<Notifier>>,
    /// Cancelled when damfs is stopping: requests still waiting on the remote are answered
    /// at once (EIO) instead of at their own deadline.
    stopping: CancellationToken,
}

impl<R: Remote> std::fmt::Debug for DamFs<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DamFs").field("passthrough", &self.passthrough).finish()
    }
}

impl<R: Remote> Filesystem for DamFs<R> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_PARALLEL_DIROPS,
        ] {
            let _ = config.add_capabilities(cap);
        }
        if config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(2).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
            log::info!("the kernel offers FUSE passthrough: cached files are read natively");
        } else {
            log::info!("no FUSE passthrough: cached files are read through the daemon");
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.count("lookup");
        let name = name.to_owned();
        let (uid, gid) = (self.uid, self.gid);
        self.dispatch(
            move |vfs, deadline| async move {
                let result = match name_str(&name) {
                    Ok(n) => vfs.lookup(parent.0, n, deadline).await,
                    Err(e) => Err(e),
                };
                (name, result)
            },
            move |(name, result), vfs| match result {
                Ok(e) => reply.entry(&e.ttl, &fuse_attr(&e.attr, uid, gid), Generation(0)),
                Err(err) => reply.error(errno(vfs.stats(), &format!("lookup {name:?}"), err)),
            },
        );
    }

    // BATCH_FORGET comes here too, one node at a time (fuser's default `batch_forget`; its
    // argument type is not public to override it).
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.count("forget");
        self.vfs.forget(ino.0, nlookup);
        self.io.lock().forget(ino.0);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.count("getattr");
        let (uid, gid) = (self.uid, self.gid);
        self.dispatch(
            move |vfs, deadline| async move { vfs.getattr(ino.0, deadline).await },
            move |result, vfs| match result {
                Ok(e) => reply.attr(&e.ttl, &fuse_attr(&e.attr, uid, gid)),
                Err(err) => reply.error(errno(vfs.stats(), "getattr", err)),
            },
        );
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.count("opendir");
        match self.vfs.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(err) => reply.error(errno(self.vfs.stats(), "opendir", err)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.count("releasedir");
        self.vfs.releasedir(fh.0);
        reply.ok();
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        self.count("readdir");
        self.dispatch(
            move |vfs, deadline| async move { vfs.readdir_open(ino.0, fh.0, offset, deadline).await },
            move |result, vfs| match result {
                Ok(items) => {
                    fill_dir(vfs, ino.0, &items, offset, false, |next, name, entry| {
                        let kind = fuse_attr(&entry.attr, 0, 0).kind;
                        reply.add(INodeNo(entry.attr.ino), next, kind, name)
                    });
                    reply.ok();
                }
                Err(err) => reply.error(errno(vfs.stats(), "readdir", err)),
            },
        );
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.count("readdirplus");
        let (uid, gid) = (self.uid, self.gid);
        self.dispatch(
            move |vfs, deadline| async move { vfs.readdir_open(ino.0, fh.0, offset, deadline).await },
            move |result, vfs| match result {
                Ok(items) => {
                    fill_dir(vfs, ino.0, &items, offset, true, |next, name, entry| {
                        let attr = fuse_attr(&entry.attr, uid, gid);
                        reply.add(INodeNo(entry.attr.ino), next, name, &entry.ttl, &attr, Generation(0))
                    });
                    reply.ok();
                }
                Err(err) => reply.error(errno(vfs.stats(), "readdirplus", err)),
            },
        );
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.count("readlink");
        match self.vfs.readlink(ino.0) {
            Ok(target) => reply.data(target.as_bytes()),
            Err(err) => reply.error(errno(self.vfs.stats(), "readlink", err)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.count("open");
        let started = Instant::now();
        // A kept passthrough inode is answered here, on the FUSE thread, at once.
        let Err(reply) = io_mode::reopen(&self.io, ino, flags.0, &self.vfs, reply) else {
            self.vfs.stats().metrics.opened(started.elapsed());
            return;
        };
        let passthrough = self.passthrough.load(Ordering::Relaxed);
        let io = Arc::clone(&self.io);
        let notifier = Arc::clone(&self.notifier);
        self.dispatch(
            move |vfs, deadline| async move { vfs.open(ino.0, flags.0, deadline).await },
            move |result, vfs| {
                vfs.stats().metrics.opened(started.elapsed());
                let opened = match result {
                    Ok(o) => o,
                    Err(err) => return reply.error(errno(vfs.stats(), "open", err)),
                };
                reply_open(&io, passthrough, ino, &opened, vfs, reply);
                if opened.stale_attr {
                    // After the reply, never inside it: the kernel holds the inode meanwhile.
                    std::thread::spawn(move || {
                        if let Some(n) = notifier.get()
                            && let Err(e) = n.inval_inode(ino, -1, 0)
                        {
                            log::debug!("cannot invalidate inode {}: {e}", ino.0);
                        }
                    });
                }
            },
        );
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.count("read");
        self.dispatch(
            move |vfs, deadline| async move { vfs.read(fh.0, offset, size, deadline).await },
            move |result, vfs| match result {
                Ok(bytes) => {
                    Stats::add(&vfs.stats().bytes_served, bytes.len() as u64);
                    reply.data(&bytes)
                }
                Err(err) => reply.error(errno(vfs.stats(), "read", err)),
            },
        );
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.count("release");
        self.io.lock().release(fh.0);
        self.vfs.release(fh.0);
        reply.ok();
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.count("flush");
        // Nothing is ever written, so a flush has nothing to do; ENOSYS tells the kernel
        // so for good, and it stops sending one at every close(), which a web server
        // opening a file per request would otherwise wait on each time.
        reply.error(Errno::ENOSYS);
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.count("fsync");
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.count("statfs");
        let (assets, bytes) = self.vfs.cache_usage();
        let blocks = bytes.div_ceil(4096);
        reply.statfs(blocks, 0, 0, assets, 0, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        self.count("access");
        if mask.contains(AccessFlags::W_OK) {
            reply.error(self.refuse(Errno::EROFS));
        } else {
            reply.ok();
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.count("getxattr");
        let name = name.to_owned();
        self.dispatch(
            move |vfs, deadline| async move {
                match name_str(&name) {
                    Ok(n) => vfs.getxattr(ino.0, n, deadline).await,
                    Err(_) => Err(FsError::NoAttr),
                }
            },
            move |result, vfs| reply_xattr(reply, size, result, vfs.stats()),
        );
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.count("listxattr");
        self.dispatch(
            move |vfs, _deadline| async move {
                vfs.listxattr(ino.0).map(|names| {
                    let mut bytes = Vec::new();
                    for n in names {
                        bytes.extend_from_slice(n.as_bytes());
                        bytes.push(0);
                    }
                    bytes
                })
            },
            move |result, vfs| reply_xattr(reply, size, result, vfs.stats()),
        );
    }

    // Every mutating request: the filesystem is read-only.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.count("setattr");
        reply.error(self.refuse(Errno::EROFS));
    }

    fn mknod(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, _r: u32, reply: ReplyEntry) {
        self.count("mknod");
        reply.error(self.refuse(Errno::EROFS));
    }

    fn mkdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, reply: ReplyEntry) {
        self.count("mkdir");
        reply.error(self.refuse(Errno::EROFS));
    }

    fn unlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        self.count("unlink");
        reply.error(self.refuse(Errno::EROFS));
    }

    fn rmdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        self.count("rmdir");
        reply.error(self.refuse(Errno::EROFS));
    }

    fn symlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _t: &Path, reply: ReplyEntry) {
        self.count("symlink");
        reply.error(self.refuse(Errno::EROFS));
    }

    fn rename(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _np: INodeNo,
        _nn: &OsStr,
        _f: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.count("rename");
        reply.error(self.refuse(Errno::EROFS));
    }

    fn link(&self, _req: &Request, _ino: INodeNo, _np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        self.count("link");
        reply.error(self.refuse(Errno::EROFS));
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.count("write");
        reply.error(self.refuse(Errno::EROFS));
    }

    fn create(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, _f: i32, reply: ReplyCreate) {
        self.count("create");
        reply.error(self.refuse(Errno::EROFS));
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _n: &OsStr,
        _v: &[u8],
        _f: i32,
        _p: u32,
        reply: ReplyEmpty,
    ) {
        self.count("setxattr");
        reply.error(self.refuse(Errno::EROFS));
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        self.count("removexattr");
        reply.error(self.refuse(Errno::EROFS));
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _o: u64,
        _l: u64,
        _m: i32,
        reply: ReplyEmpty,
    ) {
        self.count("fallocate");
        reply.error(self.refuse(Errno::EROFS));
    }

    /// No ioctl is supported. `ls` and `file` probe terminals with TCGETS: the answer is the
    /// ENOTTY a regular file gives, without the log line fuser writes for each one.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        self.count("ioctl");
        reply.error(self.refuse(Errno::ENOTTY));
    }
}
