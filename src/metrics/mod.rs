//! Metrics for a Prometheus scraper (`--metrics-listen`). This module owns what damfs
//! counts only to expose it: operations by kind, errors by errno, remote requests by endpoint
//! and status, the latency of remote requests and of opens, and the expiry of the bearer
//! token. At each scrape it adds the live values the mount hands it ([`Live`]: the counters
//! of `damfs status`, cache usage, handles, transfers). The exposition (Prometheus text and
//! OpenMetrics) is prometheus-client's. It knows nothing of FUSE, HTTP clients or the cache:
//! the layers call its methods, and [`serve`] serves the page.
//!
//! Every label has a small, fixed set of values (operation names, errno names, endpoint
//! kinds, HTTP statuses): never a path.

mod listen;

use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::stats::snapshot::StatsSnapshot;

pub use listen::{bind, serve};

/// Upper bounds (seconds) of the remote request latency buckets: from a cached answer of a
/// nearby dispatcher (5 ms) to past the longest fetch timeout anyone sets (30 s).
const REMOTE_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Upper bounds (seconds) of the open latency buckets: an open from the cache takes well
/// under a millisecond; one that materializes takes as long as the remote needs.
const OPEN_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The kind of remote endpoint a request went to (the `endpoint` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// The Assets API: folder pages and asset views (`/api/assets/…json`).
    Listing,
    /// Sling JSON of an asset's node (`/content/dam/…/jcr:content/metadata.json`, …).
    Metadata,
    /// Rendition lists (`…/renditions.json`, `…/jcr:content/renditions.1.json`).
    Renditions,
    /// Bytes of an original or a rendition.
    Binary,
    /// QueryBuilder (`/bin/querybuilder.json`): attributes of a folder, searches.
    Querybuilder,
    /// Tag titles (`/content/cq:tags/…`, `/etc/tags/…`).
    Tags,
    /// Anything else (e.g. a hop of a redirect off the DAM).
    Other,
}

impl Endpoint {
    /// The endpoint of a request for the URL path `path` (percent-encoded or not).
    pub fn of(path: &str) -> Endpoint {
        let json = path.ends_with(".json");
        if path.contains("/bin/querybuilder") {
            Endpoint::Querybuilder
        } else if path.contains("/content/cq:tags/") || path.contains("/etc/tags/") {
            Endpoint::Tags
        } else if json && (path.ends_with("/renditions.json") || path.contains("/renditions.")) {
            Endpoint::Renditions
        } else if path.contains("/api/assets") && json {
            Endpoint::Listing
        } else if path.contains("/content/dam") && json {
            Endpoint::Metadata
        } else if path.contains("/content/dam/") {
            Endpoint::Binary
        } else {
            Endpoint::Other
        }
    }

    fn label(self) -> &'static str {
        match self {
            Endpoint::Listing => "listing",
            Endpoint::Metadata => "metadata",
            Endpoint::Renditions => "renditions",
            Endpoint::Binary => "binary",
            Endpoint::Querybuilder => "querybuilder",
            Endpoint::Tags => "tags",
            Endpoint::Other => "other",
        }
    }
}

/// How a remote request ended (the `status` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer with this HTTP status.
    Status(u16),
    /// No answer in time, or the remote could not be reached.
    Timeout,
    /// Another transport failure (reset, TLS).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrnoLabels {
    errno: Cow<'static, str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RemoteLabels {
    endpoint: &'static str,
    status: Cow<'static, str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The values of a live mount read at each scrape: the counters of `damfs status`, and
/// the cache's bound.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// The counters, cache usage and gauges.
    pub stats: StatsSnapshot,
    /// The cache's bound (`--cache-size`), if any.
    pub cache_cap: Option<u64>,
    /// When the bearer token in use expires, if its lifetime is known.
    pub token_expires: Option<SystemTime>,
}

type LiveSource = Box<dyn Fn() -> Live + Send + Sync>;

/// What is read at each scrape: the mount's live values and the token's expiry.
#[derive(Default)]
struct Scraped {
    live: OnceLock<LiveSource>,
    /// Seconds since the epoch; 0 until a token with an expiry is in use.
    token_expiry: AtomicI64,
}

impl std::fmt::Debug for Scraped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraped").field("token_expiry", &self.token_expiry).finish_non_exhaustive()
    }
}

/// The metrics of one mount. Cheap to update from any thread (atomics, and a read lock
/// per labelled family).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    ops: Family<OpLabels, Counter>,
    errors: Family<ErrnoLabels, Counter>,
    remote: Family<RemoteLabels, Counter>,
    remote_latency: HistogramFamily<EndpointLabels>,
    open_latency: Histogram,
    scraped: Arc<Scraped>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Empty metrics, every family registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let ops = Family::<OpLabels, Counter>::default();
        let errors = Family::<ErrnoLabels, Counter>::default();
        let remote = Family::<RemoteLabels, Counter>::default();
        let remote_latency: HistogramFamily<EndpointLabels> =
            Family::new_with_constructor(|| Histogram::new(REMOTE_BUCKETS));
        let open_latency = Histogram::new(OPEN_BUCKETS);
        registry.register("damfs_operations", "Filesystem requests received, by operation", ops.clone());
        registry.register(
            "damfs_errors",
            "Filesystem requests answered with an error, by errno",
            errors.clone(),
        );
        registry.register(
            "damfs_remote_requests",
            "HTTP requests sent to the remote, by endpoint and status",
            remote.clone(),
        );
        registry.register(
            "damfs_remote_request_duration_seconds",
            "Time from sending a remote request to its answer's headers, by endpoint",
            remote_latency.clone(),
        );
        registry.register(
            "damfs_open_duration_seconds",
            "Time from an open request to its answer",
            open_latency.clone(),
        );
        let scraped = Arc::new(Scraped::default());
        registry.register_collector(Box::new(LiveCollector(Arc::clone(&scraped))));
        Metrics { registry, ops, errors, remote, remote_latency, open_latency, scraped }
    }

    /// Counts a filesystem request of kind `op` (`lookup`, `read`, …).
    pub fn op(&self, op: &'static str) {
        self.ops.get_or_create(&OpLabels { op }).inc();
    }

    /// Counts a request answered with errno `code`.
    pub fn error(&self, code: i32) {
        self.errors.get_or_create(&ErrnoLabels { errno: errno_name(code) }).inc();
    }

    /// Records how long an open took to answer.
    pub fn opened(&self, took: Duration) {
        self.open_latency.observe(took.as_secs_f64());
    }

    /// Sets when the bearer token in use expires, for a mount whose live values do not say
    /// (a token with a lifetime in [`Live::token_expires`] wins);
    /// `damfs_token_expiry_timestamp_seconds` is absent until one of them is known.
    pub fn set_token_expiry(&self, at: SystemTime) {
        self.scraped.token_expiry.store(epoch_seconds(at), Ordering::Relaxed);
    }

    /// Sets where the live values come from (once; later calls are ignored).
    pub fn set_live(&self, source: impl Fn() -> Live + Send + Sync + 'static) {
        let _ = self.scraped.live.set(Box::new(source));
    }

    /// The page in the Prometheus text format (version 0.0.4), with its content type.
    pub fn prometheus_text(&self) -> (String, &'static str) {
        let mut page = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut page, &self.registry);
        (page, prometheus_client::encoding::prometheus_text::CONTENT_TYPE)
    }

    /// The page in the OpenMetrics text format, with its content type.
    pub fn openmetrics_text(&self) -> (String, &'static str) {
        let mut page = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut page, &self.registry);
        (page, "application/openmetrics-text; version=1.0.0; charset=utf-8")
    }

    fn finish_remote(&self, endpoint: Endpoint, status: Cow<'static, str>, took: Duration) {
        let endpoint = endpoint.label();
        self.remote.get_or_create(&RemoteLabels { endpoint, status }).inc();
        self.remote_latency.get_or_create(&EndpointLabels { endpoint }).observe(took.as_secs_f64());
    }
}

/// A remote request being timed.
#[derive(Debug)]
pub struct RemoteTimer<'a> {
    /// Where it counts; `None` once counted, or when nothing is counted.
    metrics: Option<&'a Metrics>,
    endpoint: Endpoint,
    started: Instant,
}

impl<'a> RemoteTimer<'a> {
    /// Starts timing a request for the URL path `path`, counted in `metrics` (if any).
    /// Finish it with its outcome; dropped unfinished (its caller gave up: a deadline
    /// passed, or damfs is stopping), it counts with status `cancelled`.
    pub fn start(metrics: Option<&'a Metrics>, path: &str) -> RemoteTimer<'a> {
        RemoteTimer { metrics, endpoint: Endpoint::of(path), started: Instant::now() }
    }

    /// Counts the request with its outcome and latency.
    pub fn finish(mut self, outcome: Outcome) {
        let status = match outcome {
            Outcome::Status(code) => Cow::Owned(code.to_string()),
            Outcome::Timeout => Cow::Borrowed("timeout"),
            Outcome::Failed => Cow::Borrowed("error"),
        };
        if let Some(metrics) = self.metrics.take() {
            metrics.finish_remote(self.endpoint, status, self.started.elapsed());
        }
    }
}

impl Drop for RemoteTimer<'_> {
    fn drop(&mut self) {
        if let Some(metrics) = self.metrics.take() {
            metrics.finish_remote(self.endpoint, Cow::Borrowed("cancelled"), self.started.elapsed());
        }
    }
}

/// The name of an errno (`ENOENT`), or its number for one damfs does not answer.
fn errno_name(code: i32) -> Cow<'static, str> {
    let name = match code {
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EIO => "EIO",
        libc::EROFS => "EROFS",
        libc::ENOTTY => "ENOTTY",
        libc::ERANGE => "ERANGE",
        libc::ENODATA => "ENODATA",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EBADF => "EBADF",
        libc::ENOSPC => "ENOSPC",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOSYS => "ENOSYS",
        libc::EINTR => "EINTR",
        libc::ENOMEM => "ENOMEM",
        _ => return Cow::Owned(code.to_string()),
    };
    Cow::Borrowed(name)
}

/// Seconds since the epoch (0 before it).
fn epoch_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Encodes the live values and the token expiry at each scrape.
#[derive(Debug)]
struct LiveCollector(Arc<Scraped>);

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live = self.0.live.get().map(|source| source());
        let from_live = live.as_ref().and_then(|l| l.token_expires).map(epoch_seconds);
        let expiry = from_live.unwrap_or_else(|| self.0.token_expiry.load(Ordering::Relaxed));
        if expiry > 0 {
            gauge(
                &mut encoder,
                "damfs_token_expiry_timestamp_seconds",
                "When the bearer token expires",
                expiry,
            )?;
        }
        let Some(Live { stats: live, cache_cap, .. }) = live else { return Ok(()) };
        let counters = [
            ("damfs_listings_fetched", "Folder listings fetched from the remote", live.listings_fetched),
            ("damfs_manifests_fetched", "Asset manifests fetched from the remote", live.manifests_fetched),
            ("damfs_renditions_fetched", "Renditions downloaded from the remote", live.renditions_fetched),
            ("damfs_fetched_bytes", "Bytes downloaded from the remote", live.bytes_fetched),
            ("damfs_served_bytes", "Bytes answered to reads through the daemon", live.bytes_served),
            ("damfs_cache_hits", "Opens answered from complete cached content", live.cache_hits),
            ("damfs_cache_misses", "Opens that had to materialize", live.cache_misses),
            ("damfs_timeouts", "Requests that ended in ETIMEDOUT", live.timeouts),
            ("damfs_passthrough_opens", "Opens served through FUSE passthrough", live.passthrough_opens),
            ("damfs_dir_snapshots", "Listings taken for open directories", live.dir_snapshots),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let gauges = [
            ("damfs_cache_bytes", "Bytes of content in the cache", Some(live.cached_bytes)),
            ("damfs_cache_assets", "Assets with content in the cache", Some(live.cached_assets)),
            ("damfs_cache_cap_bytes", "The cache's bound (--cache-size)", cache_cap),
            ("damfs_open_handles", "Open file handles", Some(live.open_handles)),
            (
                "damfs_inodes",
                "Nodes in the inode table (held by the kernel, or named lately)",
                Some(live.inodes),
            ),
            ("damfs_transfers_in_flight", "Renditions being transferred", Some(live.transfers_in_flight)),
            (
                "damfs_requests_waiting",
                "Filesystem requests waiting on the remote",
                Some(live.requests_waiting),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                gauge(&mut encoder, name, help, as_i64(value))?;
            }
        }
        Ok(())
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let cases = [
            ("/api/assets.json", Endpoint::Listing),
            ("/api/assets/we-retail/en.json", Endpoint::Listing),
            ("/api/assets/we-retail/a.jpg/renditions.json", Endpoint::Renditions),
            ("/content/dam/we-retail/a.jpg/jcr:content/renditions.1.json", Endpoint::Renditions),
            ("/content/dam/we-retail/a.jpg/jcr:content/metadata.json", Endpoint::Metadata),
            ("/content/dam/we-retail/a.jpg/jcr:content/renditions/original", Endpoint::Binary),
            (
                "/content/dam/we-retail/a.jpg/jcr:content/renditions/cq5dam.web.1280.1280.jpeg",
                Endpoint::Binary,
            ),
            ("/bin/querybuilder.json", Endpoint::Querybuilder),
            ("/content/cq:tags/we-retail/activity.json", Endpoint::Tags),
            ("/etc/tags/we-retail.json", Endpoint::Tags),
            ("/blob/abc", Endpoint::Other),
        ];
        for (path, endpoint) in cases {
            assert_eq!(Endpoint::of(path), endpoint, "{path}");
        }
    }

    #[test]
    fn page_has_families_and_live_values() {
        let metrics = Metrics::new();
        metrics.op("lookup");
        metrics.op("lookup");
        metrics.error(libc::ENOENT);
        metrics.error(4242);
        RemoteTimer::start(Some(&metrics), "/api/assets.json").finish(Outcome::Status(200));
        drop(RemoteTimer::start(Some(&metrics), "/bin/querybuilder.json"));
        metrics.opened(Duration::from_millis(3));
        let (page, kind) = metrics.prometheus_text();
        assert!(kind.starts_with("text/plain"));
        assert!(page.contains("damfs_operations_total{op=\"lookup\"} 2"), "{page}");
        assert!(page.contains("damfs_errors_total{errno=\"ENOENT\"} 1"), "{page}");
        assert!(page.contains("damfs_errors_total{errno=\"4242\"} 1"), "{page}");
        assert!(
            page.contains("damfs_remote_requests_total{endpoint=\"listing\",status=\"200\"} 1"),
            "{page}"
        );
        assert!(page.contains("endpoint=\"querybuilder\",status=\"cancelled\""), "{page}");
        assert!(page.contains("damfs_open_duration_seconds_count 1"), "{page}");
        assert!(!page.contains("damfs_cache_bytes"), "no live values before a source is set");
        assert!(!page.contains("damfs_token_expiry"), "no token expiry until one is set");

        let stats = StatsSnapshot { cached_bytes: 12, ..StatsSnapshot::default() };
        metrics.set_live(move || Live { stats: stats.clone(), cache_cap: None, token_expires: None });
        metrics.set_token_expiry(UNIX_EPOCH + Duration::from_secs(2_000_000_000));
        let (page, _) = metrics.prometheus_text();
        assert!(page.contains("damfs_cache_bytes 12"), "{page}");
        assert!(!page.contains("damfs_cache_cap_bytes"), "no cap line without a cap: {page}");
        assert!(page.contains("damfs_token_expiry_timestamp_seconds 2000000000"), "{page}");
        let (open, kind) = metrics.openmetrics_text();
        assert!(kind.starts_with("application/openmetrics-text"));
        assert!(open.ends_with("# EOF\n"));
    }
}
