//! `damfs umount`, the lazy detach used on a signal and for a stale mount, and waiting
//! for a mount to appear.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::mountinfo;

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

/// Lazily unmounts `path` (as root: umount2 MNT_DETACH; otherwise fusermount3 -uz).
pub(super) fn detach(path: &Path) -> anyhow::Result<()> {
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
