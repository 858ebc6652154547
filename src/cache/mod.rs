//! The persistent on-disk store: content files, their index, persisted listings and inode
//! numbers. It knows no HTTP and no FUSE: manifests and listings are opaque JSON to it.
//!
//! Layout of a cache directory (created 0700):
//!
//! ```text
//! VERSION                 "damfs-cache 1": the layout version marker
//! lock                    flock()ed by the one daemon using the cache
//! index.sqlite            the index (see `index`)
//! content/ab/abcdef…      complete, verified rendition bytes, named by a digest of
//!                         (remote, asset path, rendition name), never by remote names
//! tmp/                    transfers in progress; emptied at open, never served from a cache lookup
//! ```
//!
//! A content file enters `content/` only complete: written under `tmp/`, fsynced, renamed.
//! Its index row is written after the rename, so a crash leaves at worst an orphan file,
//! which the next open removes.

mod index;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use index::{IndexOp, Writer};

/// The layout version marker written to `VERSION`.
const LAYOUT: &str = "damfs-cache 1";

/// A complete rendition file in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRendition {
    /// Its length in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, lower-case hex.
    pub sha256: String,
}

/// What the cache holds for one asset.
#[derive(Debug, Clone, Default)]
pub struct CachedAsset {
    /// The manifest JSON (metadata, tags, rendition list), as the materializer wrote it.
    pub manifest: Option<String>,
    /// Complete renditions by name.
    pub renditions: HashMap<String, CachedRendition>,
    /// Last access, seconds since the epoch.
    pub last_access: i64,
}

/// The on-disk cache of one remote.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    remote: String,
    /// Guards the in-memory view only; never held across disk I/O.
    assets: Mutex<HashMap<String, CachedAsset>>,
    /// Persisted listings: folder path -> (JSON, fetched at).
    listings: Mutex<HashMap<String, (String, i64)>>,
    inodes: Mutex<Option<Vec<(String, u64)>>>,
    writer: Mutex<Writer>,
    temp_seq: AtomicU64,
    _lock: File,
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Cache {
    /// Opens the cache at `dir` for `remote` (a URL identifying the remote root), creating
    /// it if needed; fails if another daemon holds it or it belongs to another remote.
    pub fn open(dir: &Path, remote: &str) -> anyhow::Result<Cache> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the cache directory {}", dir.display()))?;
        let version_path = dir.join("VERSION");
        match fs::read_to_string(&version_path) {
            Ok(text) if text.trim() == LAYOUT => {}
            Ok(text) => anyhow::bail!(
                "{} holds cache layout '{}', this damfs uses '{LAYOUT}'",
                dir.display(),
                text.trim()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if fs::read_dir(dir)?.next().is_some() {
                    anyhow::bail!("{} is not empty and is not a damfs cache", dir.display());
                }
                fs::write(&version_path, format!("{LAYOUT}\n"))?;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", version_path.display())),
        }
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX | libc::LOCK_NB) } != 0
        {
            anyhow::bail!("the cache {} is in use by another damfs", dir.display());
        }
        for sub in ["content", "tmp"] {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(dir.join(sub))?;
        }
        clear_dir(&dir.join("tmp"))?;

        let (conn, snapshot) = index::load(&dir.join("index.sqlite"), remote)?;
        let writer = Writer::start(conn)?;
        let mut assets: HashMap<String, CachedAsset> = HashMap::new();
        for (path, manifest, _fetched, last_access) in snapshot.assets {
            let entry = assets.entry(path).or_default();
            entry.manifest = Some(manifest);
            entry.last_access = last_access;
        }
        let cache_probe = ContentNamer { remote: remote.to_string(), dir: dir.to_path_buf() };
        for (asset, name, size, sha256) in snapshot.renditions {
            // A row whose file is gone (deleted by hand, lost in a crash) is dropped.
            let path = cache_probe.path(&asset, &name);
            match fs::metadata(&path) {
                Ok(meta) if meta.len() == size => {
                    assets
                        .entry(asset)
                        .or_default()
                        .renditions
                        .insert(name, CachedRendition { size, sha256 });
                }
                _ => {
                    log::warn!(
                        "cache: {asset} rendition {name} is missing or damaged on disk; it will be fetched again"
                    );
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let listings = snapshot.listings.into_iter().map(|(p, j, t)| (p, (j, t))).collect();
        Ok(Cache {
            dir: dir.to_path_buf(),
            remote: remote.to_string(),
            assets: Mutex::new(assets),
            listings: Mutex::new(listings),
            inodes: Mutex::new(Some(snapshot.inodes)),
            writer: Mutex::new(writer),
            temp_seq: AtomicU64::new(0),
            _lock: lock,
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn namer(&self) -> ContentNamer {
        ContentNamer { remote: self.remote.clone(), dir: self.dir.clone() }
    }

    /// Where the content of a rendition lives once complete.
    pub fn content_path(&self, asset: &str, rendition: &str) -> PathBuf {
        self.namer().path(asset, rendition)
    }

    /// Creates a new temporary file for a transfer (0600, under `tmp/`).
    pub fn temp_file(&self) -> io::Result<(File, PathBuf)> {
        let seq = self.temp_seq.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join("tmp").join(format!("{}-{seq}.part", std::process::id()));
        let file = OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path)?;
        Ok((file, path))
    }

    /// Moves a complete, verified temporary file into place and records it. The file must
    /// already be fsynced by the caller (it wrote it).
    pub fn commit(
        &self,
        asset: &str,
        rendition: &str,
        temp: &Path,
        size: u64,
        sha256: &str,
    ) -> io::Result<PathBuf> {
        let dest = self.content_path(asset, rendition);
        if let Some(parent) = dest.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
        }
        fs::rename(temp, &dest)?;
        if let Some(parent) = dest.parent() {
            File::open(parent)?.sync_all()?;
        }
        self.assets
            .lock()
            .entry(asset.to_string())
            .or_default()
            .renditions
            .insert(rendition.to_string(), CachedRendition { size, sha256: sha256.to_string() });
        self.send(IndexOp::Rendition {
            asset: asset.into(),
            name: rendition.into(),
            size,
            sha256: sha256.into(),
        });
        Ok(dest)
    }

    /// The cached state of an asset.
    pub fn asset(&self, asset: &str) -> Option<CachedAsset> {
        self.assets.lock().get(asset).cloned()
    }

    /// Paths of every asset with a stored manifest.
    pub fn assets_with_manifest(&self) -> Vec<String> {
        self.assets.lock().iter().filter(|(_, a)| a.manifest.is_some()).map(|(p, _)| p.clone()).collect()
    }

    /// Stores an asset's manifest.
    pub fn put_manifest(&self, asset: &str, manifest: String) {
        let now = now_secs();
        {
            let mut assets = self.assets.lock();
            let entry = assets.entry(asset.to_string()).or_default();
            entry.manifest = Some(manifest.clone());
            entry.last_access = now;
        }
        self.send(IndexOp::Asset { path: asset.into(), manifest, fetched_at: now });
    }

    /// Records an access to an asset (for LRU).
    pub fn touch(&self, asset: &str) {
        let now = now_secs();
        let changed = match self.assets.lock().get_mut(asset) {
            Some(entry) if entry.last_access != now => {
                entry.last_access = now;
                true
            }
            _ => false,
        };
        if changed {
            self.send(IndexOp::Touch { path: asset.into(), at: now });
        }
    }

    /// A persisted folder listing and when it was fetched.
    pub fn listing(&self, folder: &str) -> Option<(String, i64)> {
        self.listings.lock().get(folder).cloned()
    }

    /// Persists a folder listing.
    pub fn put_listing(&self, folder: &str, json: String) {
        let now = now_secs();
        self.listings.lock().insert(folder.to_string(), (json.clone(), now));
        self.send(IndexOp::Listing { path: folder.into(), json, fetched_at: now });
    }

    /// The inode numbers persisted by earlier mounts (given out once).
    pub fn take_inodes(&self) -> Vec<(String, u64)> {
        self.inodes.lock().take().unwrap_or_default()
    }

    /// Persists the inode number of a node key.
    pub fn put_inode(&self, key: &str, ino: u64) {
        self.send(IndexOp::Inode { key: key.into(), ino });
    }

    /// Number of assets and bytes of complete content.
    pub fn usage(&self) -> (u64, u64) {
        let assets = self.assets.lock();
        let bytes = assets.values().flat_map(|a| a.renditions.values()).map(|r| r.size).sum();
        (assets.values().filter(|a| !a.renditions.is_empty()).count() as u64, bytes)
    }

    fn send(&self, op: IndexOp) {
        self.writer.lock().send(op);
    }

    /// Waits until every change so far is in the index.
    pub fn flush(&self) {
        let Some(sender) = self.writer.lock().handle() else { return };
        let (done, wait) = std::sync::mpsc::channel();
        if sender.send(IndexOp::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Writes everything out and stops the index writer.
    pub fn close(&self) {
        self.writer.lock().close();
    }
}

/// Names content files: `content/<2 hex>/<62 hex>` of SHA-256(remote, asset, rendition).
#[derive(Debug)]
struct ContentNamer {
    remote: String,
    dir: PathBuf,
}

impl ContentNamer {
    fn path(&self, asset: &str, rendition: &str) -> PathBuf {
        let mut hasher = Sha256::new();
        for part in [self.remote.as_str(), asset, rendition] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let hex = hex(&hasher.finalize());
        self.dir.join("content").join(&hex[..2]).join(&hex[2..])
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn clear_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if let Err(e) = fs::remove_file(&path) {
            log::warn!("cache: cannot remove {}: {e}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn content_survives_reopen_and_names_are_digests() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        {
            let cache = Cache::open(&dir, "http://dam/content/dam").unwrap();
            let (mut file, temp) = cache.temp_file().unwrap();
            file.write_all(b"hello").unwrap();
            file.sync_all().unwrap();
            let dest = cache.commit("a/b c.jpg", "original", &temp, 5, "x").unwrap();
            assert!(!dest.to_string_lossy().contains("b c"));
            cache.put_manifest("a/b c.jpg", "{}".into());
            cache.put_listing("a", "[]".into());
            cache.put_inode("a/b c.jpg", 42);
            cache.close();
        }
        let mode = fs::metadata(&dir).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o700);
        let cache = Cache::open(&dir, "http://dam/content/dam").unwrap();
        let asset = cache.asset("a/b c.jpg").unwrap();
        assert_eq!(asset.renditions["original"].size, 5);
        assert_eq!(asset.manifest.as_deref(), Some("{}"));
        assert_eq!(cache.listing("a").unwrap().0, "[]");
        assert_eq!(cache.take_inodes(), vec![("a/b c.jpg".to_string(), 42)]);
        assert_eq!(fs::read(cache.content_path("a/b c.jpg", "original")).unwrap(), b"hello");
    }

    #[test]
    fn refuses_a_second_user_and_another_remote() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let cache = Cache::open(&dir, "http://one").unwrap();
        let err = Cache::open(&dir, "http://one").unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
        cache.close();
        drop(cache);
        let err = Cache::open(&dir, "http://two").unwrap_err().to_string();
        assert!(err.contains("belongs to http://one"), "{err}");
    }

    #[test]
    fn partial_and_missing_files_are_never_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        {
            let cache = Cache::open(&dir, "r").unwrap();
            let (mut file, temp) = cache.temp_file().unwrap();
            file.write_all(b"12345").unwrap();
            cache.commit("x", "original", &temp, 5, "d").unwrap();
            let (mut partial, _) = cache.temp_file().unwrap();
            partial.write_all(b"half").unwrap();
            fs::remove_file(cache.content_path("x", "original")).unwrap();
            cache.close();
        }
        let cache = Cache::open(&dir, "r").unwrap();
        assert!(cache.asset("x").is_none_or(|a| a.renditions.is_empty()));
        assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    }
}
