//! `damfs status`: the counters of a live mount, read from its root's `user.damfs.stats`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, bail};

use crate::mount::mountinfo;
use crate::units::human_size;

/// Reads the stats JSON of the mount at `mountpoint`.
pub fn read(mountpoint: &Path) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mp = std::path::absolute(mountpoint)?;
    match mountinfo::find(&mp) {
        Some(m) if m.fstype == "fuse.damfs" => {}
        Some(m) => bail!("{} is not a damfs mount (it is {})", mp.display(), m.fstype),
        None => bail!("{} is not mounted", mp.display()),
    }
    let path = CString::new(mp.as_os_str().as_bytes()).context("mount point")?;
    let name = CString::new("user.damfs.stats").context("name")?;
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let n = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("{}: user.damfs.stats", mp.display()));
    }
    serde_json::from_slice(&buf[..n as usize]).context("user.damfs.stats is not JSON")
}

/// The stats as an aligned table.
pub fn render(stats: &serde_json::Map<String, serde_json::Value>) -> String {
    let width = stats.keys().map(|k| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in stats {
        let shown = match (key.ends_with("bytes") || key.starts_with("bytes"), value.as_u64()) {
            (true, Some(n)) => format!("{} ({n})", human_size(n)),
            _ => value.to_string().trim_matches('"').to_string(),
        };
        out.push_str(&format!("{:width$}  {shown}\n", key.replace('_', " ")));
    }
    out
}
