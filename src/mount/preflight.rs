//! The checks that make `damfs mount` fail early with one clear line: /dev/fuse, the
//! mount point (a directory, empty, not mounted), and a mount left by a daemon that died,
//! which is detached so that the new mount can take its place.

use std::path::Path;

use anyhow::{Context, bail};

use super::mountinfo;
use super::unmount::detach;
use crate::config::MountConfig;

/// Fails early, with the cause, on what would make the mount fail.
pub(super) fn preflight(config: &MountConfig) -> anyhow::Result<()> {
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
