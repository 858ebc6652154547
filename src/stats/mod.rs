//! Counters of a live mount, served as JSON in the root's `user.damfs.stats` xattr, and the
//! [`Metrics`] that only a scraper sees, carried beside them so that every layer that counts
//! reaches both.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::metrics::Metrics;
pub use snapshot::StatsSnapshot;

pub mod snapshot;

/// Monotonic counters; relaxed atomics (they are statistics, not synchronization).
#[derive(Debug, Default)]
pub struct Stats {
    /// Folder listings fetched from the remote.
    pub listings_fetched: AtomicU64,
    /// Asset manifests (metadata, tags, rendition list) fetched from the remote.
    pub manifests_fetched: AtomicU64,
    /// Renditions downloaded.
    pub renditions_fetched: AtomicU64,
    /// Bytes downloaded.
    pub bytes_fetched: AtomicU64,
    /// Bytes answered to reads through the daemon (reads under FUSE passthrough go from the
    /// kernel to the cache file and are not seen).
    pub bytes_served: AtomicU64,
    /// Opens answered from complete cached content.
    pub cache_hits: AtomicU64,
    /// Opens that had to materialize.
    pub cache_misses: AtomicU64,
    /// Operations that ended in ETIMEDOUT.
    pub timeouts: AtomicU64,
    /// Operations that ended in another remote or disk error.
    pub errors: AtomicU64,
    /// Opens served through FUSE passthrough.
    pub passthrough_opens: AtomicU64,
    /// Directory listings built for an open directory (one per opendir and rewind, however
    /// many READDIR chunks the kernel asks for).
    pub dir_snapshots: AtomicU64,
    /// What is known of authentication (set once at mount).
    pub auth: AuthProbe,
    /// Gauge: renditions being transferred now.
    pub transfers_in_flight: AtomicU64,
    /// Gauge: kernel requests waiting on the remote now.
    pub requests_waiting: AtomicU64,
    /// Operations by kind, errors by errno, remote requests, latencies.
    pub metrics: Arc<Metrics>,
}

/// The kind of authentication and when its token expires, asked when the stats are read.
#[derive(Default)]
pub struct AuthProbe(std::sync::OnceLock<Box<Probe>>);

/// Answers the kind of authentication and the token's expiry.
type Probe = dyn Fn() -> (String, Option<SystemTime>) + Send + Sync;

impl AuthProbe {
    /// Sets the probe (once; later calls are ignored).
    pub fn set(&self, probe: impl Fn() -> (String, Option<SystemTime>) + Send + Sync + 'static) {
        let _ = self.0.set(Box::new(probe));
    }

    /// When the token in use expires, if known.
    pub fn expires(&self) -> Option<SystemTime> {
        self.0.get().and_then(|probe| probe().1)
    }

    /// The kind and, when known, the token's expiry as `YYYY-MM-DD HH:MM:SS UTC (in 3h 2m)`.
    fn read(&self) -> (String, Option<String>) {
        let Some(probe) = self.0.get() else { return ("none".into(), None) };
        let (kind, expires) = probe();
        (kind, expires.map(describe_expiry))
    }
}

impl std::fmt::Debug for AuthProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthProbe")
    }
}

fn describe_expiry(at: SystemTime) -> String {
    let when = chrono::DateTime::<chrono::Utc>::from(at).format("%Y-%m-%d %H:%M:%S UTC");
    match at.duration_since(SystemTime::now()) {
        Ok(left) => {
            let s = left.as_secs();
            format!("{when} (in {}h {}m {}s)", s / 3600, s % 3600 / 60, s % 60)
        }
        Err(_) => format!("{when} (expired)"),
    }
}

impl Stats {
    /// Counters that report to `metrics` as well.
    pub fn with_metrics(metrics: Arc<Metrics>) -> Stats {
        Stats { metrics, ..Stats::default() }
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Copies the counters, with the values kept elsewhere.
    pub fn snapshot(&self, cached_assets: u64, cached_bytes: u64, open_handles: u64) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let auth = self.auth.read();
        StatsSnapshot {
            listings_fetched: get(&self.listings_fetched),
            manifests_fetched: get(&self.manifests_fetched),
            renditions_fetched: get(&self.renditions_fetched),
            bytes_fetched: get(&self.bytes_fetched),
            bytes_served: get(&self.bytes_served),
            cache_hits: get(&self.cache_hits),
            cache_misses: get(&self.cache_misses),
            timeouts: get(&self.timeouts),
            errors: get(&self.errors),
            passthrough_opens: get(&self.passthrough_opens),
            dir_snapshots: get(&self.dir_snapshots),
            open_handles,
            inodes: 0,
            transfers_in_flight: get(&self.transfers_in_flight),
            requests_waiting: get(&self.requests_waiting),
            auth: auth.0,
            token_expires: auth.1,
            cached_assets,
            cached_bytes,
            pid: std::process::id(),
        }
    }
}

/// One unit of a gauge (a transfer, a waiting request) for as long as it lives.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    /// Adds one to `gauge` until the guard is dropped.
    pub fn enter(gauge: &'a AtomicU64) -> InFlight<'a> {
        gauge.fetch_add(1, Ordering::Relaxed);
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The name of the root's extended attribute that serves the counters.
pub const XATTR: &str = "user.damfs.stats";

/// Reads the counters a live mount serves at `mountpoint` (its root's [`XATTR`]).
pub fn read_from(mountpoint: &Path) -> std::io::Result<serde_json::Map<String, serde_json::Value>> {
    let value = read_xattr(mountpoint, XATTR)?;
    serde_json::from_slice(&value).map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{XATTR} is not JSON: {e}"))
    })
}

/// The value (at most 64 KiB) of the extended attribute `name` of `path`.
pub fn read_xattr(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let path = CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let name = CString::new(name).map_err(std::io::Error::other)?;
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let n = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}
