//! A point-in-time copy of the counters of a mount: what `user.damfs.stats` serves and what
//! a metrics scrape reads. Plain values, depending on nothing.

use serde::Serialize;

/// A point-in-time copy of the counters of a mount, with its cache usage and open handles.
#[derive(Debug, Clone, Default, Serialize)]
#[allow(missing_docs)]
pub struct StatsSnapshot {
    pub listings_fetched: u64,
    pub manifests_fetched: u64,
    pub renditions_fetched: u64,
    pub bytes_fetched: u64,
    pub bytes_served: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub timeouts: u64,
    pub errors: u64,
    pub passthrough_opens: u64,
    pub dir_snapshots: u64,
    pub open_handles: u64,
    /// Nodes in the inode table: what the kernel holds, and what was named lately.
    pub inodes: u64,
    pub transfers_in_flight: u64,
    pub requests_waiting: u64,
    /// How the mount authenticates: none, basic, token, token file, service credentials.
    pub auth: String,
    /// When the token in use expires, if a token with a known lifetime is in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_expires: Option<String>,
    pub cached_assets: u64,
    pub cached_bytes: u64,
    pub pid: u32,
}
