//! The persistent on-disk store: content files, their index, manifests, persisted listings
//! and inode numbers, bounded in bytes with least-recently-used eviction of whole assets.
//! It knows no HTTP and no FUSE: manifests and listings are opaque JSON to it.
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
//! A content file enters `content/` only complete: written under `tmp/`, renamed. Its index
//! row is written after the rename and marked unsynced until the index writer's next syncfs
//! of the cache's filesystem (within `index::SYNC_WITHIN`, and when the daemon stops). The
//! next open drops rows still marked, since their bytes may not have reached the disk, so a
//! crash leaves at worst orphan files, which [`Cache::reconcile`] removes, and never an
//! index row naming a torn file.
//!
//! Lock order: `state` before nothing else; a reader connection's lock is taken alone.

pub mod admin;
pub mod control;
mod index;
mod lru;
mod reconcile;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use parking_lot::Mutex;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::digest::hex;
use index::{IndexOp, Writer};
use lru::{State, Usage};

/// Read connections to the index: one per FUSE worker thread and a spare, as lookups come
/// from those threads and from the runtime's blocking pool.
const READERS: usize = 4;

/// The layout version marker written to `VERSION`.
const LAYOUT: &str = "damfs-cache 1";

/// The allocation unit content files are charged in against the cap: the block size of
/// common Linux filesystems, so that the cap bounds real disk usage (`du`), not only the
/// sum of lengths, which many small thumbnails would undercount.
pub const BLOCK: u64 = 4096;

/// Bytes a content file of `size` occupies on disk, as charged against the cap.
pub fn charged(size: u64) -> u64 {
    size.div_ceil(BLOCK).max(1).saturating_mul(BLOCK)
}

/// A complete rendition file in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRendition {
    /// Its length in bytes.
    pub size: u64,
    /// The digest recorded for its bytes (see [`crate::digest`]); the index's column keeps
    /// the name `sha256` it had when that was the only kind.
    pub digest: String,
}

/// The on-disk cache of one remote.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    namer: ContentNamer,
    /// Most bytes of content kept (None: no bound).
    cap: Option<u64>,
    state: Mutex<State>,
    /// Connections for point lookups, each behind its own lock, taken alone; queries are
    /// primary-key lookups. Several, so that concurrent lookups do not queue on one.
    readers: Vec<Mutex<Connection>>,
    /// Queries run through `readers` (for tests that count them).
    queries: AtomicU64,
    writer: Mutex<Writer>,
    temp_seq: AtomicU64,
    /// While [`Cache::reconcile`] runs: every content file committed meanwhile, added before
    /// its rename, so that reconcile never takes a new file for an orphan.
    committing: Mutex<Option<HashSet<PathBuf>>>,
    /// Bytes written by transfers in progress under `tmp/` (charged as they arrive), which
    /// count against the cap beside `State::total`.
    temp_bytes: AtomicU64,
    next_ino: AtomicU64,
    /// Manifests stored or dropped so far.
    manifest_writes: AtomicU64,
    /// Told of each asset whose content files are removed.
    dropped: DroppedHook,
    _lock: File,
}

/// Told of an asset whose content files were removed.
pub type ContentHook = Box<dyn Fn(&str) + Send + Sync>;

/// The hook told of assets whose content files are removed, set once.
#[derive(Default)]
struct DroppedHook(std::sync::OnceLock<ContentHook>);

impl std::fmt::Debug for DroppedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "DroppedHook(set)" } else { "DroppedHook(unset)" })
    }
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Creates (or checks) the layout marker of a cache directory; refuses a non-empty
/// directory that is not a damfs cache.
fn ensure_layout(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the cache directory {}", dir.display()))?;
    let version_path = dir.join("VERSION");
    match fs::read_to_string(&version_path) {
        Ok(text) if text.trim() == LAYOUT => Ok(()),
        Ok(text) => {
            anyhow::bail!(
                "{} holds cache layout '{}', this damfs uses '{LAYOUT}'",
                dir.display(),
                text.trim()
            )
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if fs::read_dir(dir)?.next().is_some() {
                anyhow::bail!("{} is not empty and is not a damfs cache", dir.display());
            }
            fs::write(&version_path, format!("{LAYOUT}\n"))?;
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", version_path.display())),
    }
}

/// Takes the cache's lock, or says it is in use.
fn lock(dir: &Path) -> anyhow::Result<File> {
    let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        anyhow::bail!("the cache {} is in use by a damfs mount", dir.display());
    }
    Ok(lock)
}

impl Cache {
    /// Opens the cache at `dir` for `remote` (a URL identifying the remote folder), creating
    /// it if needed; fails if another daemon holds it or it belongs to another remote.
    /// `cap` bounds the bytes of content kept.
    pub fn open(dir: &Path, remote: &str, cap: Option<u64>) -> anyhow::Result<Cache> {
        ensure_layout(dir)?;
        let lock = lock(dir)?;
        for sub in ["content", "tmp"] {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(dir.join(sub))?;
        }
        clear_dir(&dir.join("tmp"))?;

        let db = dir.join("index.sqlite");
        let mut writer_conn = index::connect(&db)?;
        index::prepare(&writer_conn, remote)?;
        let torn = index::drop_unsynced(&mut writer_conn).context("cannot read the cache index")?;
        if torn > 0 {
            log::warn!(
                "cache: the last stop came before {torn} new renditions were synced to disk; they will be fetched again"
            );
        }
        index::set_meta(&writer_conn, "cap", &cap.map(|c| c.to_string()).unwrap_or_else(|| "none".into()))?;
        let reader = index::connect(&db)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 1..READERS {
            readers.push(Mutex::new(index::connect(&db)?));
        }
        let mut state = State::default();
        for row in index::usage(&reader)? {
            state.total = state.total.saturating_add(row.bytes);
            state.lru.insert((row.last_access, row.path.clone()));
            state.usage.insert(row.path, Usage { bytes: row.bytes, last_access: row.last_access });
        }
        // Inode 1 is the root.
        let next_ino = (index::max_inode(&reader)? + 1).max(2);
        Ok(Cache {
            dir: dir.to_path_buf(),
            namer: ContentNamer { remote: remote.to_string(), dir: dir.to_path_buf() },
            cap,
            state: Mutex::new(state),
            readers: {
                readers.push(Mutex::new(reader));
                readers
            },
            queries: AtomicU64::new(0),
            writer: Mutex::new(Writer::start(writer_conn, File::open(dir.join("content"))?)?),
            temp_seq: AtomicU64::new(0),
            committing: Mutex::new(None),
            temp_bytes: AtomicU64::new(0),
            next_ino: AtomicU64::new(next_ino),
            manifest_writes: AtomicU64::new(0),
            dropped: DroppedHook::default(),
            _lock: lock,
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bound on bytes of content, if any.
    pub fn cap(&self) -> Option<u64> {
        self.cap
    }

    /// Where the content of a rendition lives once complete.
    pub fn content_path(&self, asset: &str, rendition: &str) -> PathBuf {
        self.namer.path(asset, rendition)
    }

    /// Creates a new temporary file for a transfer (0600, under `tmp/`).
    pub fn temp_file(&self) -> io::Result<(File, PathBuf)> {
        let seq = self.temp_seq.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join("tmp").join(format!("{}-{seq}.part", std::process::id()));
        let file = OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path)?;
        Ok((file, path))
    }

    fn query<T>(&self, what: &str, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        // The first free connection, or (all busy) the one this thread's turn falls on.
        let conn = self.readers.iter().find_map(|r| r.try_lock()).unwrap_or_else(|| {
            let turn = self.queries.load(Ordering::Relaxed) as usize % self.readers.len();
            self.readers[turn].lock()
        });
        match f(&conn) {
            Ok(v) => Some(v),
            Err(e) => {
                log::error!("cache index: cannot read {what}: {e}");
                None
            }
        }
    }

    /// The complete renditions of an asset.
    pub fn renditions(&self, asset: &str) -> HashMap<String, CachedRendition> {
        {
            let state = self.state.lock();
            if let Some(known) = state.renditions.get(asset) {
                return known.clone();
            }
            // Every asset with content is in `usage` (loaded at open): no need to ask the
            // index about the others, which `ls -l` of a large folder would do for each.
            if !state.usage.contains_key(asset) {
                return HashMap::new();
            }
        }
        let rows = self.query("renditions", |c| index::renditions(c, asset)).unwrap_or_default();
        let map: HashMap<String, CachedRendition> =
            rows.into_iter().map(|(name, size, digest)| (name, CachedRendition { size, digest })).collect();
        self.state.lock().renditions.entry(asset.to_string()).or_insert_with(|| map.clone());
        map
    }

    /// One complete rendition, if the cache has it.
    pub fn rendition(&self, asset: &str, name: &str) -> Option<CachedRendition> {
        if let Some(known) = self.state.lock().renditions.get(asset) {
            return known.get(name).cloned();
        }
        self.renditions(asset).remove(name)
    }

    /// Moves a complete, verified temporary file into place and records it. Neither the
    /// file nor its directory is synced here: the index writer syncs the filesystem before
    /// it records the file (see the index writer).
    pub fn commit(
        &self,
        asset: &str,
        rendition: &str,
        temp: &Path,
        size: u64,
        digest: &str,
    ) -> io::Result<PathBuf> {
        // Load the asset's existing renditions first, so the in-memory view stays complete.
        self.renditions(asset);
        let dest = self.content_path(asset, rendition);
        if let Some(parent) = dest.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
        }
        if let Some(committed) = self.committing.lock().as_mut() {
            committed.insert(dest.clone());
        }
        fs::rename(temp, &dest)?;
        {
            let mut state = self.state.lock();
            let entry = CachedRendition { size, digest: digest.to_string() };
            let previous =
                state.renditions.entry(asset.to_string()).or_default().insert(rendition.to_string(), entry);
            let grown = charged(size).saturating_sub(previous.map(|p| charged(p.size)).unwrap_or(0));
            state.add(asset, grown, now_secs());
        }
        self.send(IndexOp::Rendition {
            asset: asset.into(),
            name: rendition.into(),
            size,
            digest: digest.into(),
        });
        Ok(dest)
    }

    /// Has `hook` told of each asset whose content files are removed (evicted, dropped for
    /// a new version, cleared on request), after the removal (once; later calls are
    /// ignored). It runs on the thread that removed them, with no lock of the cache held.
    pub fn on_content_dropped(&self, hook: ContentHook) {
        let _ = self.dropped.0.set(hook);
    }

    fn content_dropped(&self, asset: &str) {
        if let Some(hook) = self.dropped.0.get() {
            hook(asset);
        }
    }

    /// Forgets one rendition whose file turned out missing or damaged.
    pub fn forget_rendition(&self, asset: &str, name: &str) {
        let path = self.content_path(asset, name);
        self.renditions(asset);
        {
            let mut state = self.state.lock();
            let size = state
                .renditions
                .get_mut(asset)
                .and_then(|m| m.remove(name))
                .map(|r| charged(r.size))
                .unwrap_or(0);
            if let Some(usage) = state.usage.get_mut(asset) {
                usage.bytes = usage.bytes.saturating_sub(size);
                state.total = state.total.saturating_sub(size);
            }
            if state.renditions.get(asset).is_some_and(|m| m.is_empty()) {
                state.remove(asset);
            }
        }
        let _ = fs::remove_file(path);
        self.send(IndexOp::DropRendition { asset: asset.into(), name: name.into() });
        self.content_dropped(asset);
    }

    /// Forgets an asset the remote has a new version of, or no longer has: its content
    /// files (open descriptors keep their bytes) and its manifest, whether in use or not.
    pub fn drop_asset(&self, asset: &str) {
        let (_, names) = self.state.lock().remove(asset);
        self.remove_files(asset, &names);
        self.drop_manifest(asset);
    }

    /// Forgets an asset's stored manifest (it is fetched again at the next need).
    pub fn drop_manifest(&self, asset: &str) {
        self.manifest_writes.fetch_add(1, Ordering::Relaxed);
        self.send(IndexOp::DropManifest { path: asset.into() });
    }

    /// Manifests stored or dropped by this process so far.
    pub fn manifest_writes(&self) -> u64 {
        self.manifest_writes.load(Ordering::Relaxed)
    }

    /// Calls `f` with every stored manifest (asset path, JSON), one row at a time.
    pub fn each_manifest(&self, mut f: impl FnMut(&str, &str)) {
        self.query("manifests", |c| index::each_manifest(c, &mut f));
    }

    /// An asset's stored manifest.
    pub fn manifest(&self, asset: &str) -> Option<String> {
        self.query("a manifest", |c| index::manifest(c, asset)).flatten()
    }

    /// Stores an asset's manifest.
    pub fn put_manifest(&self, asset: &str, manifest: String) {
        self.manifest_writes.fetch_add(1, Ordering::Relaxed);
        self.send(IndexOp::Asset { path: asset.into(), manifest, fetched_at: now_secs() });
    }

    /// A persisted folder listing and when it was fetched.
    pub fn listing(&self, folder: &str) -> Option<(String, i64)> {
        self.query("a listing", |c| index::listing(c, folder)).flatten()
    }

    /// Persists a folder listing.
    pub fn put_listing(&self, folder: &str, json: String) {
        self.send(IndexOp::Listing { path: folder.into(), json, fetched_at: now_secs() });
    }

    /// The inode number an earlier mount gave a node key.
    pub fn inode(&self, key: &str) -> Option<u64> {
        self.query("an inode number", |c| index::inode(c, key)).flatten()
    }

    /// The inode numbers earlier mounts gave any of `keys`, in one query per few hundred.
    pub fn inodes(&self, keys: &[String]) -> HashMap<String, u64> {
        let mut found = HashMap::new();
        for batch in keys.chunks(index::MAX_BATCH_KEYS) {
            found.extend(self.query("inode numbers", |c| index::inodes(c, batch)).unwrap_or_default());
        }
        found
    }

    /// Queries run against the index so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// A fresh inode number, above every persisted one.
    pub fn new_inode(&self) -> u64 {
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }

    /// Persists the inode number of a node key.
    pub fn put_inode(&self, key: &str, ino: u64) {
        self.send(IndexOp::Inode { key: key.into(), ino });
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

    /// Writes everything out, stops the index writer and removes what transfers left under
    /// `tmp/` (none of it is served after this daemon ends).
    pub fn close(&self) {
        self.writer.lock().close();
        if let Err(e) = clear_dir(&self.dir.join("tmp")) {
            log::warn!("cache: cannot empty {}: {e}", self.dir.join("tmp").display());
        }
    }
}

/// Names content files: `content/<2 hex>/<62 hex>` of SHA-256(remote, asset, rendition).
#[derive(Debug, Clone)]
pub struct ContentNamer {
    remote: String,
    dir: PathBuf,
}

impl ContentNamer {
    /// The content file of a rendition.
    pub fn path(&self, asset: &str, rendition: &str) -> PathBuf {
        let mut hasher = Sha256::new();
        for part in [self.remote.as_str(), asset, rendition] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let hex = hex(&hasher.finalize());
        self.dir.join("content").join(&hex[..2]).join(&hex[2..])
    }
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
mod tests;

/// The one thing the namespace keeps in the cache itself: inode numbers, so that a path has
/// the same number across remounts. A narrow view of the [`Cache`].
#[derive(Debug, Clone)]
pub struct InodeStore(Arc<Cache>);

impl InodeStore {
    /// The inode numbers of `cache`.
    pub fn new(cache: Arc<Cache>) -> InodeStore {
        InodeStore(cache)
    }

    /// The number an earlier mount gave `key`.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.0.inode(key)
    }

    /// The numbers earlier mounts gave any of `keys`.
    pub fn get_many(&self, keys: &[String]) -> HashMap<String, u64> {
        self.0.inodes(keys)
    }

    /// A fresh number, above every persisted one.
    pub fn fresh(&self) -> u64 {
        self.0.new_inode()
    }

    /// Persists the number of `key`.
    pub fn put(&self, key: &str, ino: u64) {
        self.0.put_inode(key, ino)
    }
}
