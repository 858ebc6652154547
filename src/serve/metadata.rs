//! The metadata node of an asset (`jcr:content/metadata`): MIME type by extension, size,
//! sidecar title, description, creator and tags, image dimensions read from the header only,
//! and the SHA-1 digest, computed once per size and mtime and kept in memory and in the state
//! dir (`<state>/digests/<hash of the relative path>`), so a multi-GiB file is never rehashed
//! per request. Which asset a path names is `catalog`'s job; rendering is `sling`'s.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use sha1::Digest;

use super::files::{Asset, KeyedLocks, Stamp, short_hash, write_atomically};
use crate::digest::hex as to_hex;
use crate::sidecar::Sidecar;

/// Read buffer for hashing: large enough that a multi-GiB file hashes at disk speed.
const HASH_BUFFER: usize = 1 << 20;

/// Which of the costlier metadata to compute (the rest is always there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetaNeeds {
    /// `dam:sha1` (reads the whole file the first time).
    pub sha1: bool,
    /// `tiff:ImageWidth` / `tiff:ImageLength` (reads the image header).
    pub dims: bool,
}

impl MetaNeeds {
    /// Everything.
    pub const ALL: MetaNeeds = MetaNeeds { sha1: true, dims: true };
    /// Only what needs no reading of the file.
    pub const CHEAP: MetaNeeds = MetaNeeds { sha1: false, dims: false };
}

/// The metadata node of `asset`, as Sling renders it.
pub(crate) async fn describe(
    digests: &Digests,
    sidecar: &Sidecar,
    asset: &Asset,
    needs: MetaNeeds,
) -> anyhow::Result<Map<String, Value>> {
    let mime = asset.mime();
    let mut meta = Map::new();
    meta.insert("jcr:primaryType".into(), json!("nt:unstructured"));
    meta.insert("dc:format".into(), json!(mime));
    meta.insert("dam:MIMEtype".into(), json!(mime));
    meta.insert("dam:size".into(), json!(asset.size));
    if let Some(ext) = asset.name.rsplit_once('.').map(|(_, e)| e.to_ascii_uppercase()) {
        meta.insert("dam:Fileformat".into(), json!(ext));
    }
    let info = sidecar.assets.get(&asset.rel);
    if let Some(title) = info.and_then(|i| i.title.as_ref()) {
        meta.insert("dc:title".into(), json!(title));
    }
    if let Some(description) = info.and_then(|i| i.description.as_ref()) {
        meta.insert("dc:description".into(), json!(description));
    }
    if let Some(creator) = info.and_then(|i| i.creator.as_ref()) {
        meta.insert("dc:creator".into(), json!(creator));
    }
    let tags = info.map(|i| i.tags.clone()).unwrap_or_default();
    meta.insert("cq:tags".into(), json!(tags));
    if needs.sha1 {
        let digest = digests.sha1(asset).await.with_context(|| format!("cannot hash {}", asset.rel))?;
        meta.insert("dam:sha1".into(), json!(digest));
    }
    if needs.dims && mime.starts_with("image/") {
        let file = asset.file.clone();
        let dims = tokio::task::spawn_blocking(move || image_dimensions(&file)).await?;
        if let Some((width, height)) = dims {
            meta.insert("tiff:ImageWidth".into(), json!(width));
            meta.insert("tiff:ImageLength".into(), json!(height));
        }
    }
    Ok(meta)
}

/// Width and height from the image header, without decoding pixels; None for files the
/// compiled-in decoders do not recognize.
fn image_dimensions(path: &Path) -> Option<(u32, u32)> {
    match image::ImageReader::open(path).and_then(|r| r.with_guessed_format()) {
        Ok(reader) => reader.into_dimensions().ok(),
        Err(_) => None,
    }
}

/// SHA-1 digests of assets, cached by relative path and stamp.
pub(crate) struct Digests {
    /// `<state>/digests`.
    dir: PathBuf,
    /// Digests by relative path, with the stamp of the file they were computed from.
    memory: Mutex<HashMap<String, (Stamp, String)>>,
    /// One computation per asset at a time.
    locks: KeyedLocks,
}

impl Digests {
    /// Prepares `<state_dir>/digests`.
    pub fn new(state_dir: &Path) -> anyhow::Result<Digests> {
        let dir = state_dir.join("digests");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Digests { dir, memory: Mutex::new(HashMap::new()), locks: KeyedLocks::default() })
    }

    /// The SHA-1 of an asset's bytes in hex.
    pub async fn sha1(&self, asset: &Asset) -> anyhow::Result<String> {
        let stamp = asset.stamp();
        if let Some(hex) = self.cached(&asset.rel, stamp) {
            return Ok(hex);
        }
        let _turn = self.locks.lock(&asset.rel).await;
        if let Some(hex) = self.cached(&asset.rel, stamp) {
            return Ok(hex);
        }
        let store = self.dir.join(short_hash(&asset.rel));
        let owned = asset.clone();
        let (hex, stable) = tokio::task::spawn_blocking(move || compute(&store, &owned, stamp)).await??;
        if stable {
            self.memory.lock().insert(asset.rel.clone(), (stamp, hex.clone()));
        }
        Ok(hex)
    }

    fn cached(&self, rel: &str, stamp: Stamp) -> Option<String> {
        match self.memory.lock().get(rel) {
            Some((cached, hex)) if *cached == stamp => Some(hex.clone()),
            _ => None,
        }
    }
}

/// Reads the digest stored at `store`, or hashes the file and stores it there. Also says
/// whether the digest belongs to `stamp` (false when the file changed while it was read).
fn compute(store: &Path, asset: &Asset, stamp: Stamp) -> anyhow::Result<(String, bool)> {
    let stored = fs::read_to_string(store).ok();
    if let Some(hex) = stored.and_then(|text| parse_digest_line(&text, stamp, &asset.rel)) {
        return Ok((hex, true));
    }
    let mut file = fs::File::open(&asset.file)?;
    let mut hasher = sha1::Sha1::new();
    let mut buffer = vec![0u8; HASH_BUFFER];
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buffer[..n]);
    }
    let hex = to_hex(&hasher.finalize());
    let stable = fs::metadata(&asset.file).map(|m| Stamp::of(&m)).ok() == Some(stamp);
    if stable {
        let line = format!("{} {} {} {}\n", stamp.size, stamp.mtime_ns, hex, asset.rel);
        if let Err(e) = write_atomically(store, line.as_bytes()) {
            log::warn!("cannot store the digest of {}: {e}", asset.rel);
        }
    }
    Ok((hex, stable))
}

/// The digest in a stored line `size mtime_ns sha1 rel`, if it matches `stamp` and `rel`.
fn parse_digest_line(text: &str, stamp: Stamp, rel: &str) -> Option<String> {
    let line = text.strip_suffix('\n')?;
    let mut parts = line.splitn(4, ' ');
    let size: u64 = parts.next()?.parse().ok()?;
    let mtime_ns: u64 = parts.next()?.parse().ok()?;
    let hex = parts.next()?;
    let stored_rel = parts.next()?;
    let valid = hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    (Stamp { size, mtime_ns } == stamp && stored_rel == rel && valid).then(|| hex.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::files::mime_for;

    #[test]
    fn digest_lines_round_trip_and_reject_stale() {
        let stamp = Stamp { size: 5, mtime_ns: 7 };
        let hex = "a".repeat(40);
        let line = format!("5 7 {hex} a b/c.jpg\n");
        assert_eq!(parse_digest_line(&line, stamp, "a b/c.jpg"), Some(hex.clone()));
        assert_eq!(parse_digest_line(&line, Stamp { size: 5, mtime_ns: 8 }, "a b/c.jpg"), None);
        assert_eq!(parse_digest_line(&line, stamp, "other"), None);
        assert_eq!(parse_digest_line("garbage", stamp, "a b/c.jpg"), None);
    }

    #[test]
    fn mime_by_extension() {
        assert_eq!(mime_for("a.JPG"), "image/jpeg");
        assert_eq!(mime_for("a.png"), "image/png");
        assert_eq!(mime_for("notes.txt"), "text/plain");
        assert_eq!(mime_for("big.bin"), "application/octet-stream");
        assert_eq!(mime_for("noext"), "application/octet-stream");
    }
}
