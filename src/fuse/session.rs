//! The kernel side of a mount: `/dev/fuse` mounted on the mount point (with mount(2) itself
//! as root, so the kernel records the type as `fuse.damfs`; through fusermount3 otherwise)
//! and the fuser session that serves it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::DamFs;
use crate::remote::Remote;
use crate::vfs::Vfs;

/// Worker threads reading /dev/fuse: enough for parallel reads of cached files while
/// others wait on the remote (those are handed to the runtime and free their thread).
/// One thread alone was measured too, with nginx opening a cached asset per request: no
/// gain beyond the run-to-run spread of `scripts/bench`.
const FUSE_THREADS: usize = 4;

/// What the kernel is told about the mount.
#[derive(Debug, Clone)]
pub struct MountSpec {
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// The source shown by mount(8) and /proc/self/mountinfo (the remote URL).
    pub source: String,
    /// Whether every local user may read (`allow_other`).
    pub allow_other: bool,
}

/// A mounted filesystem, served once [`Session::run`] is called.
pub struct Session<R: Remote> {
    inner: fuser::Session<DamFs<R>>,
}

impl<R: Remote> std::fmt::Debug for Session<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl<R: Remote> Session<R> {
    /// Mounts `vfs` read-only as `spec` says, with remote work on `runtime`. Cancelling
    /// `stopping` answers every request still waiting on the remote.
    pub fn mount(
        vfs: Arc<Vfs<R>>,
        runtime: tokio::runtime::Handle,
        spec: &MountSpec,
        stopping: CancellationToken,
    ) -> anyhow::Result<Session<R>> {
        raise_open_files();
        limit_malloc_arenas();
        // SAFETY: geteuid/getegid have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let (fs, notifier) = DamFs::new(Arc::clone(&vfs), runtime, uid, gid, stopping);
        let mut options = fuser::Config::default();
        options.mount_options = vec![
            fuser::MountOption::FSName(spec.source.clone()),
            fuser::MountOption::Subtype("damfs".into()),
            fuser::MountOption::RO,
            fuser::MountOption::NoDev,
            fuser::MountOption::NoSuid,
            fuser::MountOption::NoAtime,
            fuser::MountOption::DefaultPermissions,
        ];
        options.acl = if spec.allow_other { fuser::SessionACL::All } else { fuser::SessionACL::Owner };
        options.n_threads = Some(FUSE_THREADS);
        options.clone_fd = true;
        let mp = spec.mountpoint.display();
        let inner = if uid == 0 {
            let fd = kernel_mount(spec).with_context(|| format!("cannot mount on {mp}"))?;
            fuser::Session::from_fd(fs, fd, options.acl, options.clone())
                .with_context(|| format!("the FUSE handshake on {mp} failed"))?
        } else {
            fuser::Session::new(fs, &spec.mountpoint, &options)
                .with_context(|| format!("cannot mount on {mp}"))?
        };
        let _ = notifier.set(inner.notifier());
        vfs.set_kernel(kernel_sink(inner.notifier()));
        Ok(Session { inner })
    }

    /// Serves requests until the filesystem is unmounted.
    pub fn run(self) -> std::io::Result<()> {
        self.inner.run()
    }
}

/// Raises the soft limit on open descriptors to the hard one: each open file and each
/// kept passthrough backing file ([`super::io_mode::KEPT_IDLE`]) holds one, and the usual
/// soft limit of 1,024 is below what a busy web server opens at once.
fn raise_open_files() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                log::debug!("cannot raise the open-files limit: {}", std::io::Error::last_os_error());
            }
        }
    }
}

/// Most malloc arenas the daemon's threads share. glibc gives each thread that meets
/// contention an arena of its own (up to 8 per core), and memory freed in one is never
/// reused by another: with the FUSE, runtime and blocking threads, resident memory would
/// swell with free blocks. Two keep allocation fast on these 2-core machines.
const MALLOC_ARENAS: libc::c_int = 2;

/// Blocks of at least this size get pages of their own (mmap), handed back when freed.
/// Setting it keeps glibc from raising it as large blocks are freed (up to 32 MiB), after
/// which the response bodies and parsed pages of large listings would be carved out of the
/// heap and leave it fragmented. At 1 MiB, the HTTP client's receive buffers (up to about
/// 400 KiB) and the FUSE read buffers stay on the heap: mapped afresh for every one, their
/// page faults and unmaps cost about a fifth of the daemon's time in a cold read.
const MALLOC_MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// Free memory at the top of the heap kept for reuse rather than handed back at once.
const MALLOC_TRIM_THRESHOLD: libc::c_int = 16 << 20;

fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD);
    }
}

/// Mounts /dev/fuse on the mount point read-only as type `fuse.damfs` and returns the
/// device descriptor the session serves.
fn kernel_mount(spec: &MountSpec) -> anyhow::Result<OwnedFd> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").context("/dev/fuse")?;
    let fd = OwnedFd::from(dev);
    let mode = std::fs::metadata(&spec.mountpoint)?.mode() & libc::S_IFMT;
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data =
        format!("fd={},rootmode={mode:o},user_id={uid},group_id={gid},default_permissions", fd.as_raw_fd());
    if spec.allow_other {
        data.push_str(",allow_other");
    }
    let source = CString::new(spec.source.as_str()).context("REMOTE_URL contains NUL")?;
    let target = cstring(&spec.mountpoint).context("mount point contains NUL")?;
    let fstype = CString::new("fuse.damfs").context("fstype")?;
    let data = CString::new(data).context("mount data")?;
    let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOATIME;
    // SAFETY: valid NUL-terminated strings; the data string outlives the call.
    let rc = unsafe {
        libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags, data.as_ptr().cast())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("mount(2)");
    }
    Ok(fd)
}

fn cstring(path: &Path) -> Result<CString, std::ffi::NulError> {
    CString::new(path.as_os_str().as_bytes())
}

/// Sends invalidations from a thread of their own: the kernel may be waiting for a reply
/// from the thread that found them, and a notification waits for the kernel.
fn kernel_sink(notifier: fuser::Notifier) -> crate::vfs::KernelSink {
    Box::new(move |invals| {
        let notifier = notifier.clone();
        std::thread::spawn(move || {
            for inval in invals {
                let result = match &inval {
                    crate::vfs::Inval::Inode(ino) => notifier.inval_inode(fuser::INodeNo(*ino), 0, -1),
                    crate::vfs::Inval::Entry { parent, name } => {
                        notifier.inval_entry(fuser::INodeNo(*parent), std::ffi::OsStr::new(name))
                    }
                };
                // ENOENT: the kernel no longer holds it, which is the point.
                if let Err(e) = result
                    && e.raw_os_error() != Some(libc::ENOENT)
                {
                    log::debug!("cannot invalidate {inval:?}: {e}");
                }
            }
        });
    })
}
