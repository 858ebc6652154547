//! `damfs cache stats|verify|evict|clear`: looking after a cache directory from outside the
//! daemon. Works on a cache in use (SQLite's locking keeps the index consistent, and a
//! live mount refetches what disappears under it), except `clear`, which needs it unused.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rusqlite::{Connection, params};

use super::{ContentNamer, LAYOUT, index};
use crate::digest::{self, Digests, Wanted};
use crate::units::human_size;

/// A cache directory opened for administration.
#[derive(Debug)]
pub struct CacheDir {
    dir: PathBuf,
    conn: Connection,
    namer: ContentNamer,
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Content files checked.
    pub checked: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Removed entries: (asset, rendition, why).
    pub corrupt: Vec<(String, String, String)>,
}

impl CacheDir {
    /// Opens `dir`, which must be a damfs cache.
    pub fn open(dir: &Path) -> anyhow::Result<CacheDir> {
        let marker = fs::read_to_string(dir.join("VERSION"))
            .with_context(|| format!("{} is not a damfs cache (no VERSION)", dir.display()))?;
        if marker.trim() != LAYOUT {
            bail!("{} holds cache layout '{}', this damfs uses '{LAYOUT}'", dir.display(), marker.trim());
        }
        let conn = index::connect(&dir.join("index.sqlite"))?;
        let remote = index::meta(&conn, "remote")?.context("the cache index names no remote")?;
        let namer = ContentNamer { remote, dir: dir.to_path_buf() };
        Ok(CacheDir { dir: dir.to_path_buf(), conn, namer })
    }

    /// The `stats` table.
    pub fn stats(&self) -> anyhow::Result<String> {
        let rows = index::all_renditions(&self.conn)?;
        let usage = index::usage(&self.conn)?;
        let remote = index::meta(&self.conn, "remote")?.unwrap_or_default();
        let cap = index::meta(&self.conn, "cap")?.and_then(|c| c.parse::<u64>().ok());
        let listings: i64 = self.conn.query_row("SELECT COUNT(*) FROM listings", [], |r| r.get(0))?;
        let manifests: i64 = self.conn.query_row("SELECT COUNT(*) FROM assets", [], |r| r.get(0))?;
        let bytes: u64 = usage.iter().map(|u| u.bytes).sum();
        let access = |pick: fn(i64, i64) -> i64| usage.iter().map(|u| u.last_access).reduce(pick).map(date);
        let mut by_folder: HashMap<&str, (u64, u64)> = HashMap::new();
        for u in &usage {
            let folder = u.path.rsplit_once('/').map(|(f, _)| f).unwrap_or("");
            let entry = by_folder.entry(folder).or_default();
            entry.0 += 1;
            entry.1 += u.bytes;
        }
        let mut folders: Vec<_> = by_folder.into_iter().collect();
        folders.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(b.0)));

        let mut out = String::new();
        let _ = writeln!(out, "cache          {}", self.dir.display());
        let _ = writeln!(out, "remote         {remote}");
        let _ = writeln!(
            out,
            "assets         {} materialized ({} renditions), {manifests} with metadata",
            usage.len(),
            rows.len()
        );
        let _ = writeln!(out, "bytes          {} ({bytes})", human_size(bytes));
        let _ = writeln!(
            out,
            "cap            {}",
            cap.map(|c| format!("{} ({c})", human_size(c))).unwrap_or_else(|| "none".into())
        );
        let _ = writeln!(out, "oldest access  {}", access(i64::min).unwrap_or_else(|| "-".into()));
        let _ = writeln!(out, "newest access  {}", access(i64::max).unwrap_or_else(|| "-".into()));
        let _ = writeln!(out, "listings       {listings}");
        let _ = writeln!(out, "\n{:>12}  {:>7}  folder (top 10 by bytes)", "bytes", "assets");
        for (folder, (assets, bytes)) in folders.into_iter().take(10) {
            let _ = writeln!(out, "{:>12}  {:>7}  /{folder}", human_size(bytes), assets);
        }
        Ok(out)
    }

    /// Recomputes every content file's digest against the recorded one (its SHA-1 or its
    /// SHA-256, see [`crate::digest`]), and the original's SHA-1 against `dam:sha1` where the
    /// remote gave one; removes what does not match, so the next open refetches it.
    pub fn verify(&mut self, mut progress: impl FnMut(usize, usize)) -> anyhow::Result<VerifyReport> {
        let rows = index::all_renditions(&self.conn)?;
        let mut report = VerifyReport::default();
        let total = rows.len();
        for (i, (asset, name, size, recorded)) in rows.into_iter().enumerate() {
            progress(i, total);
            let path = self.namer.path(&asset, &name);
            let expected_sha1 = if name == "original" { self.dam_sha1(&asset)? } else { None };
            let recorded_sha1 = digest::parse_recorded(&recorded).is_ok();
            let wanted = Wanted { sha1: recorded_sha1 || expected_sha1.is_some(), sha256: !recorded_sha1 };
            let problem = match file_digests(&path, wanted) {
                Err(e) => Some(format!("cannot read {}: {e}", path.display())),
                Ok((len, _)) if len != size => Some(format!("{len} bytes on disk, {size} recorded")),
                Ok((_, got)) if !matches_recorded(&recorded, &got) => {
                    Some("the digest differs from the recorded one".into())
                }
                Ok((_, got))
                    if expected_sha1
                        .as_ref()
                        .is_some_and(|e| !got.sha1.as_deref().is_some_and(|g| e.eq_ignore_ascii_case(g))) =>
                {
                    Some("SHA-1 differs from the remote's dam:sha1".into())
                }
                Ok((len, _)) => {
                    report.bytes += len;
                    None
                }
            };
            report.checked += 1;
            if let Some(why) = problem {
                let _ = fs::remove_file(&path);
                self.conn
                    .execute("DELETE FROM renditions WHERE asset = ?1 AND name = ?2", params![asset, name])?;
                report.corrupt.push((asset, name, why));
            }
        }
        Ok(report)
    }

    fn dam_sha1(&self, asset: &str) -> anyhow::Result<Option<String>> {
        let Some(json) = index::manifest(&self.conn, asset)? else { return Ok(None) };
        let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        Ok(value.get("sha1").and_then(|s| s.as_str()).map(str::to_string))
    }

    /// Drops the content and the manifest (metadata, tags, rendition list) of an asset, or of
    /// every asset under a folder (DAM paths, with or without a leading `/content/dam/`), so
    /// that the next open fetches all of it again. Returns (assets, bytes) dropped.
    pub fn evict(&mut self, path: &str) -> anyhow::Result<(usize, u64)> {
        let path = path.trim_start_matches("/content/dam").trim_matches('/');
        let rows = index::all_renditions(&self.conn)?;
        let under = |asset: &str| path.is_empty() || asset == path || asset.starts_with(&format!("{path}/"));
        let mut assets = std::collections::HashSet::new();
        let mut bytes = 0u64;
        let manifests = index::assets_with_manifest(&self.conn)?;
        let tx = self.conn.transaction()?;
        for (asset, name, size, _) in rows.iter().filter(|r| under(&r.0)) {
            let _ = fs::remove_file(self.namer.path(asset, name));
            tx.execute("DELETE FROM renditions WHERE asset = ?1 AND name = ?2", params![asset, name])?;
            assets.insert(asset.clone());
            bytes = bytes.saturating_add(*size);
        }
        for asset in manifests.iter().filter(|a| under(a)) {
            tx.execute("DELETE FROM assets WHERE path = ?1", params![asset])?;
            assets.insert(asset.clone());
        }
        tx.commit()?;
        if assets.is_empty() {
            bail!("nothing cached under /{path}");
        }
        Ok((assets.len(), bytes))
    }

    /// Empties the cache: content, listings, manifests (inode numbers are kept so that a
    /// later mount still gives every path its number). Refused while a mount uses it; see
    /// [`super::control::clear`] for telling that mount to drop its content itself.
    pub fn clear(&mut self) -> anyhow::Result<()> {
        let _lock = super::lock(&self.dir).map_err(|e| {
            e.context("unmount it first, or give --drop-from-mount to have the mount drop what is not in use")
        })?;
        let tx = self.conn.transaction()?;
        tx.execute_batch("DELETE FROM renditions; DELETE FROM assets; DELETE FROM listings;")?;
        tx.commit()?;
        for sub in ["content", "tmp"] {
            let path = self.dir.join(sub);
            if path.exists() {
                fs::remove_dir_all(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            }
            fs::create_dir(&path)?;
        }
        Ok(())
    }
}

/// Whether a file whose digests are `got` is the one `recorded` names (see
/// [`crate::digest`]).
fn matches_recorded(recorded: &str, got: &Digests) -> bool {
    match digest::parse_recorded(recorded) {
        Ok(sha1) => got.sha1.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(sha1)),
        Err(sha256) => got.sha256.as_deref() == Some(sha256),
    }
}

/// The length of a file and its `wanted` digests.
fn file_digests(path: &Path, wanted: Wanted) -> std::io::Result<(u64, Digests)> {
    let file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    Ok((len, digest::of_file(&file, len, wanted)?))
}

fn date(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}
