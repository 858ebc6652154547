//! Reading `/proc/self/mountinfo`: is a path a mount point, and of what.

use std::path::Path;

/// One mount as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount point.
    pub mountpoint: String,
    /// Filesystem type (`fuse.damfs`).
    pub fstype: String,
    /// The source (the remote URL).
    pub source: String,
    /// Per-mount options (`ro,nosuid,…`).
    pub options: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && let Some(v) = field.get(i + 1..i + 4).and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some(MountEntry {
                mountpoint: unescape(left.get(4)?),
                options: left.get(5)?.to_string(),
                fstype: right.first()?.to_string(),
                source: unescape(right.get(1)?),
            })
        })
        .collect()
}

/// The mount at `path` (the last one, if mounts are stacked).
pub fn find(path: &Path) -> Option<MountEntry> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let wanted = path.to_string_lossy();
    parse(&text).into_iter().rev().find(|m| m.mountpoint == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escaped_fuse_lines() {
        let text = "36 35 0:42 / /srv/my\\040dam ro,nosuid,nodev,relatime shared:1 - fuse.damfs http://127.0.0.1:4502/content/dam ro,user_id=0\n";
        let m = &parse(text)[0];
        assert_eq!(m.mountpoint, "/srv/my dam");
        assert_eq!(m.fstype, "fuse.damfs");
        assert_eq!(m.source, "http://127.0.0.1:4502/content/dam");
        assert!(m.options.starts_with("ro,"));
    }
}
