//! Mounting and unmounting: the checks that make `damfs mount` fail with one clear line,
//! background mode with a readiness pipe (the parent returns only once the mount answers,
//! or with the daemon's error), the daemon's life (signals, clean shutdown), and
//! `damfs umount`.

pub mod mountinfo;

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cache::Cache;
use crate::config::MountConfig;
use crate::fuse::DamFs;
use crate::remote::aem::AemClient;
use crate::remote::{Remote, RemoteErrorKind};
use crate::vfs::{Vfs, VfsConfig};
use tokio_util::sync::CancellationToken;

/// Environment variable naming the descriptor on which a background daemon reports
/// readiness to the `damfs mount` that started it.
const READY_FD_ENV: &str = "DAMFS_READY_FD";

/// The descriptor number the readiness pipe gets in the daemon.
const READY_FD: i32 = 3;

/// Worker threads reading /dev/fuse: enough for parallel reads of cached files while
/// others wait on the remote (those are handed to the runtime and free their thread).
const FUSE_THREADS: usize = 4;

/// How long `damfs mount` waits for the daemon beyond the remote check.
const READY_SLACK: Duration = Duration::from_secs(60);

/// `damfs mount`: checks, then mounts in the foreground or starts the daemon and waits
/// until the mount answers.
pub fn mount(config: MountConfig) -> anyhow::Result<()> {
    let ready = std::env::var(READY_FD_ENV).ok();
    if ready.is_none() {
        preflight(&config).with_context(|| {
            format!("cannot mount {} on {}", config.remote_url, config.mountpoint.display())
        })?;
    }
    if config.foreground || ready.is_some() {
        // SAFETY: READY_FD was set up by the parent for this process, which owns it now.
        let ready = ready.map(|_| unsafe { OwnedFd::from_raw_fd(READY_FD) });
        return run_daemon(config, ready);
    }
    start_background(&config)
}

/// Fails early, with the cause, on what would make the mount fail.
fn preflight(config: &MountConfig) -> anyhow::Result<()> {
    if !Path::new("/dev/fuse").exists() {
        bail!("/dev/fuse does not exist: load the fuse module (modprobe fuse)");
    }
    let mp = &config.mountpoint;
    if let Some(m) = mountinfo::find(mp) {
        // Opening the directory reaches the daemon (a stat may be answered by the kernel's
        // attribute cache).
        let stale = m.fstype == "fuse.damfs"
            && std::fs::read_dir(mp).is_err_and(|e| e.raw_os_error() == Some(libc::ENOTCONN));
        if !stale {
            bail!("{} is already mounted ({} from {})", mp.display(), m.fstype, m.source);
        }
        // A damfs that was killed leaves its mount behind, answering ENOTCONN; the cache
        // has its own lock, so detaching the dead mount is safe.
        log::warn!("{}: a damfs mount left by a daemon that died; detaching it", mp.display());
        detach(mp).with_context(|| {
            format!("{} is a stale damfs mount and cannot be detached: run damfs umount {0}", mp.display())
        })?;
    }
    let meta = std::fs::metadata(mp).with_context(|| format!("mount point {}", mp.display()))?;
    if !meta.is_dir() {
        bail!("mount point {}: not a directory", mp.display());
    }
    if std::fs::read_dir(mp).with_context(|| format!("mount point {}", mp.display()))?.next().is_some() {
        bail!("mount point {}: not empty", mp.display());
    }
    Ok(())
}

/// Starts this same command again as a detached daemon and waits for its word.
fn start_background(config: &MountConfig) -> anyhow::Result<()> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two descriptors it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot create the readiness pipe");
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "damfs".into());
    let exe = std::env::current_exe().context("cannot find the damfs executable")?;
    let mut command = Command::new(exe);
    command.arg0(argv0).args(args).env(READY_FD_ENV, READY_FD.to_string());
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let write_raw = write_end.as_raw_fd();
    // SAFETY: only async-signal-safe calls (setsid, dup2) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            libc::setsid();
            if libc::dup2(write_raw, READY_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().context("cannot start the damfs daemon")?;
    drop(write_end);

    let deadline = Instant::now() + config.fetch_timeout * 2 + READY_SLACK;
    let mut reader = File::from(read_end);
    let mut message = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill();
            bail!("the daemon did not report within {}s", (config.fetch_timeout * 2 + READY_SLACK).as_secs());
        }
        let mut poll = libc::pollfd { fd: reader.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut poll, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err).context("waiting for the daemon");
        }
        if n == 0 {
            continue;
        }
        match reader.read(&mut buf)? {
            0 => break,
            k => message.extend_from_slice(&buf[..k]),
        }
    }
    let message = String::from_utf8_lossy(&message);
    if message.trim() == "ready" {
        return Ok(());
    }
    if let Some(err) = message.trim().strip_prefix("error: ") {
        let _ = child.wait();
        bail!("{err}");
    }
    let status = child.wait().context("waiting for the daemon")?;
    bail!("the daemon ended ({status}) before the mount was ready; run with -f or --log-file to see why")
}

/// Sends the daemon's outcome to the waiting parent, if there is one.
fn report(ready: &mut Option<OwnedFd>, text: &str) {
    if let Some(fd) = ready.take() {
        let mut file = File::from(fd);
        let _ = file.write_all(text.as_bytes());
    }
}

/// The daemon: sets everything up, mounts, reports, serves until unmounted.
fn run_daemon(config: MountConfig, mut ready: Option<OwnedFd>) -> anyhow::Result<()> {
    let setup = setup(&config);
    let (runtime, session, vfs, stopping) = match setup {
        Ok(parts) => parts,
        Err(e) => {
            let text =
                format!("cannot mount {} on {}: {e:#}", config.remote_url, config.mountpoint.display());
            log::error!("{text}");
            report(&mut ready, &format!("error: {text}\n"));
            bail!("{text}");
        }
    };
    let _ = std::env::set_current_dir("/");
    let mountpoint = config.mountpoint.clone();
    runtime.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            log::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        log::info!("signal received: unmounting {}", mountpoint.display());
        // Readers waiting on the remote get their answer now, not at their deadline.
        stopping.cancel();
        if let Err(e) = detach(&mountpoint) {
            log::error!("cannot unmount {}: {e:#}", mountpoint.display());
        }
    });
    if let Err(e) = crate::cache::control::serve(Arc::clone(vfs.cache())) {
        log::warn!(
            "no control socket ({e:#}): damfs cache clear --drop-from-mount will not reach this mount"
        );
    }
    let cache = Arc::clone(vfs.cache());
    // Orphans and missing files left by a crash are found in the background: the mount
    // serves meanwhile (a missing file is refetched when opened).
    let _ = std::thread::Builder::new().name("damfs-reconcile".into()).spawn(move || cache.reconcile());
    log::info!("{} mounted on {}", config.remote_url, config.mountpoint.display());
    report(&mut ready, "ready\n");
    let outcome = session.run();
    log::info!("{} unmounted; saving the cache index", config.mountpoint.display());
    // Transfers still running are dropped with the runtime (removing their files) before
    // the cache is closed, so that nothing writes under tmp/ once it has been emptied.
    runtime.shutdown_timeout(Duration::from_secs(2));
    vfs.cache().close();
    let _ = std::fs::remove_file(vfs.cache().dir().join(crate::cache::control::SOCKET));
    outcome.context("the FUSE session ended with an error")
}

type Parts =
    (tokio::runtime::Runtime, fuser::Session<DamFs<AemClient>>, Arc<Vfs<AemClient>>, CancellationToken);

fn setup(config: &MountConfig) -> anyhow::Result<Parts> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("damfs-io")
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    let cache = Arc::new(Cache::open(&config.cache_dir, &config.remote_id(), config.cache_size)?);
    let client = Arc::new(AemClient::new(config.aem.clone())?);
    let check = runtime
        .block_on(async { tokio::time::timeout(config.fetch_timeout, client.check(&config.root)).await });
    let unreachable = match check {
        Ok(Ok(())) => None,
        Ok(Err(e)) => match e.kind {
            RemoteErrorKind::Denied => bail!("the remote refused the credentials: {e}"),
            RemoteErrorKind::NotFound => {
                bail!("/content/dam/{} does not exist on the remote: {e}", config.root)
            }
            RemoteErrorKind::Timeout | RemoteErrorKind::Other => Some(e.to_string()),
        },
        Err(_) => Some(format!("no answer within {:?}", config.fetch_timeout)),
    };
    if let Some(cause) = unreachable {
        if cache.listing(&config.root).is_none() {
            bail!("cannot reach the remote ({cause}) and the cache holds nothing to serve");
        }
        log::warn!("cannot reach the remote ({cause}): starting offline from the cache");
    }
    let vfs = Vfs::new(
        VfsConfig {
            root: config.root.clone(),
            remote_url: config.aem.base.as_str().trim_end_matches('/').to_string(),
            fetch_timeout: config.fetch_timeout,
            dir_ttl: config.dir_ttl,
            formats: config.formats.clone(),
        },
        client,
        cache,
        config.async_threshold,
    );
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let stopping = CancellationToken::new();
    let (fs, notifier) = DamFs::new(Arc::clone(&vfs), runtime.handle().clone(), uid, gid, stopping.clone());
    let mut options = fuser::Config::default();
    options.mount_options = vec![
        fuser::MountOption::FSName(config.remote_url.clone()),
        fuser::MountOption::Subtype("damfs".into()),
        fuser::MountOption::RO,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoAtime,
        fuser::MountOption::DefaultPermissions,
    ];
    options.acl = if config.allow_other { fuser::SessionACL::All } else { fuser::SessionACL::Owner };
    options.n_threads = Some(FUSE_THREADS);
    options.clone_fd = true;
    // SAFETY: geteuid has no preconditions.
    let session = if unsafe { libc::geteuid() } == 0 {
        // Root mounts with mount(2) itself, so the kernel records the type as fuse.damfs.
        let fd = kernel_mount(config)
            .with_context(|| format!("cannot mount on {}", config.mountpoint.display()))?;
        fuser::Session::from_fd(fs, fd, options.acl, options.clone())
            .with_context(|| format!("the FUSE handshake on {} failed", config.mountpoint.display()))?
    } else {
        fuser::Session::new(fs, &config.mountpoint, &options)
            .with_context(|| format!("cannot mount on {}", config.mountpoint.display()))?
    };
    let _ = notifier.set(session.notifier());
    Ok((runtime, session, vfs, stopping))
}

/// Mounts /dev/fuse on the mount point read-only as type `fuse.damfs` and returns the
/// device descriptor the session serves.
fn kernel_mount(config: &MountConfig) -> anyhow::Result<OwnedFd> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").context("/dev/fuse")?;
    let fd = OwnedFd::from(dev);
    let mode = std::fs::metadata(&config.mountpoint)?.mode() & libc::S_IFMT;
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data =
        format!("fd={},rootmode={mode:o},user_id={uid},group_id={gid},default_permissions", fd.as_raw_fd());
    if config.allow_other {
        data.push_str(",allow_other");
    }
    let source = CString::new(config.remote_url.as_str()).context("REMOTE_URL contains NUL")?;
    let target =
        CString::new(config.mountpoint.as_os_str().as_bytes()).context("mount point contains NUL")?;
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

/// Lazily unmounts `path` (as root: umount2 MNT_DETACH; otherwise fusermount3 -uz).
fn detach(path: &Path) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let target = CString::new(path.as_os_str().as_bytes()).context("mount point")?;
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
            return Err(std::io::Error::last_os_error()).context("umount2");
        }
        return Ok(());
    }
    let status =
        Command::new("fusermount3").arg("-uz").arg(path).status().context("cannot run fusermount3")?;
    if !status.success() {
        bail!("fusermount3 -uz failed ({status})");
    }
    Ok(())
}

/// Polls until `path` is a mount point, up to `timeout`.
pub fn wait_mounted(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if mountinfo::find(path).is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `damfs umount`: unmounts and waits (bounded) for the daemon to end.
pub fn umount(mountpoint: &Path) -> anyhow::Result<()> {
    let mp = std::path::absolute(mountpoint).with_context(|| format!("{}", mountpoint.display()))?;
    let Some(entry) = mountinfo::find(&mp) else {
        bail!("{} is not mounted", mp.display());
    };
    if entry.fstype != "fuse.damfs" {
        bail!("{} is not a damfs mount (it is {})", mp.display(), entry.fstype);
    }
    let pid = daemon_pid(&mp);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let path = CString::new(mp.as_os_str().as_bytes()).context("mount point")?;
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(path.as_ptr(), 0) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EBUSY) {
                bail!("{} is busy: a process is using it (see fuser -m {})", mp.display(), mp.display());
            }
            return Err(err).with_context(|| format!("cannot unmount {}", mp.display()));
        }
    } else {
        let status =
            Command::new("fusermount3").arg("-u").arg(&mp).status().context("cannot run fusermount3")?;
        if !status.success() {
            bail!("fusermount3 -u {} failed ({status})", mp.display());
        }
    }
    if let Some(pid) = pid {
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(pid) {
            if Instant::now() > deadline {
                bail!("{} is unmounted but its daemon (pid {pid}) is still running", mp.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// Whether process `pid` is still running (a zombie, ended but not yet reaped by its
/// parent, is not).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized command name, which may contain spaces.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// The daemon's pid, from the root's `user.damfs.stats`.
fn daemon_pid(mountpoint: &Path) -> Option<u32> {
    let stats = crate::stats::read_from(mountpoint).ok()?;
    stats.get("pid")?.as_u64().map(|p| p as u32)
}
