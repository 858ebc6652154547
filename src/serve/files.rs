//! The served folder's files as the state caches see them: an asset and its stamp (size
//! and modification time, which key every cache derived from it), its MIME type, stable
//! short names, atomic writes into the state dir, and one lock per key. Below the catalog,
//! the digests (`metadata`) and the renditions, which all use it.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use sha2::Digest;
use tokio::sync::OwnedMutexGuard;

/// Size and modification time (nanoseconds since the epoch) of a file: what keys every cache
/// derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub size: u64,
    pub mtime_ns: u64,
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(meta: &fs::Metadata) -> Stamp {
        Stamp { size: meta.len(), mtime_ns: nanos(meta.modified().unwrap_or(UNIX_EPOCH)) }
    }
}

/// Nanoseconds since the epoch (0 for earlier times).
pub(crate) fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// An asset of the DAM: a regular file.
#[derive(Debug, Clone)]
pub(crate) struct Asset {
    /// Relative path with `/` separators.
    pub rel: String,
    pub name: String,
    /// Where it is on disk.
    pub file: PathBuf,
    pub size: u64,
    pub mtime: SystemTime,
}

impl Asset {
    pub fn stamp(&self) -> Stamp {
        Stamp { size: self.size, mtime_ns: nanos(self.mtime) }
    }

    /// The MIME type, from the name's extension.
    pub fn mime(&self) -> &'static str {
        mime_for(&self.name)
    }
}

/// MIME type by file extension (`application/octet-stream` when unknown).
pub(crate) fn mime_for(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" | "jpe" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "tif" | "tiff" => "image/tiff",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "bmp" => "image/bmp",
        "psd" => "image/vnd.adobe.photoshop",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "json" => "application/json",
        "zip" => "application/zip",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

/// A file-name-safe fixed-length key for a relative path (32 hex digits of its SHA-256).
pub(crate) fn short_hash(rel: &str) -> String {
    crate::digest::hex(&sha2::Sha256::digest(rel.as_bytes())[..16])
}

/// Writes `bytes` to a temporary name beside `path`, then renames it into place.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_name(path);
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// A name beside `path` that no other writer (thread or process) uses.
pub(crate) fn temp_name(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{n}-{name}", std::process::id()))
}

/// One async lock per key, for work that must happen once per key at a time (hashing or
/// generating renditions of one asset). Entries disappear once nobody holds or waits for them.
#[derive(Default)]
pub(crate) struct KeyedLocks {
    map: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl KeyedLocks {
    /// Waits for the turn of `key`.
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.map.lock();
            if map.len() > 256 {
                map.retain(|_, weak| weak.strong_count() > 0);
            }
            match map.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}
