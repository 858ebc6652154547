//! `damfs status`: the counters of a live mount, read from its root's `user.damfs.stats`.

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
    crate::stats::read_from(&mp).with_context(|| format!("{}: {}", mp.display(), crate::stats::XATTR))
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
