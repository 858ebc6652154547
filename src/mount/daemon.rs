//! Background mode: `damfs mount` starts itself again as a detached daemon and returns only
//! once the daemon reports over a pipe that the mount answers, or with the daemon's error.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::config::MountConfig;

/// Environment variable naming the descriptor on which a background daemon reports
/// readiness to the `damfs mount` that started it.
const READY_FD_ENV: &str = "DAMFS_READY_FD";

/// The descriptor number the readiness pipe gets in the daemon.
const READY_FD: i32 = 3;

/// How long `damfs mount` waits for the daemon beyond the remote check.
const READY_SLACK: Duration = Duration::from_secs(60);

/// The readiness pipe this process was given, if it is a daemon started by [`start`].
pub(super) fn ready_pipe() -> Option<OwnedFd> {
    std::env::var(READY_FD_ENV).ok()?;
    // SAFETY: READY_FD was set up by the parent for this process, which owns it now.
    Some(unsafe { OwnedFd::from_raw_fd(READY_FD) })
}

/// Whether this process is a daemon started by [`start`].
pub(super) fn is_daemon() -> bool {
    std::env::var_os(READY_FD_ENV).is_some()
}

/// Starts this same command again as a detached daemon and waits for its word.
pub(super) fn start(config: &MountConfig) -> anyhow::Result<()> {
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
pub(super) fn report(ready: &mut Option<OwnedFd>, text: &str) {
    if let Some(fd) = ready.take() {
        let mut file = File::from(fd);
        let _ = file.write_all(text.as_bytes());
    }
}
