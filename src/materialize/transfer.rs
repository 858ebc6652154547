//! One rendition's bytes from the remote into the cache: streamed to a temporary file,
//! counted, hashed, checked against the announced length (and `dam:sha1` for the original),
//! renamed into place. Progress is published so that readers of a file still in
//! transfer wait only for the bytes they need.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::ranged;
use super::spool::{Sink, Spool};
use crate::cache::Cache;
use crate::deadline::{Budget, Deadline};
use crate::digest::{self, Digests, Hasher, Wanted};
use crate::error::{FsError, FsResult};
use crate::remote::Remote;
use crate::stats::{InFlight, Stats};

/// Where a transfer stands.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Bytes are arriving.
    Running,
    /// Complete and in the cache at this path.
    Done(PathBuf),
    /// Failed; the temporary file is gone.
    Failed(FsError),
}

/// Progress of a transfer.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Bytes written to the temporary file so far.
    pub written: u64,
    /// The whole length, once the remote said it.
    pub total: Option<u64>,
    /// Where it stands.
    pub phase: Phase,
    /// For a rendition fetched in parts, the bytes present in each part (`written` then
    /// counts those from offset 0 on without a gap).
    pub parts: Option<ranged::Filled>,
}

impl Progress {
    /// How many bytes from `offset` on are in the temporary file without a gap.
    pub fn present_from(&self, offset: u64) -> u64 {
        match &self.parts {
            Some(filled) => ranged::present_from(filled, offset),
            None => self.written.saturating_sub(offset),
        }
    }
}

/// A transfer in progress, shared by the task writing it and the readers waiting on it.
#[derive(Debug)]
pub struct Transfer {
    /// The temporary file being written (readers open it; the fd stays valid after the rename).
    pub temp: PathBuf,
    progress: watch::Sender<Progress>,
    /// Offsets readers wait for (a rendition fetched in parts fetches them first).
    demand: ranged::Demand,
}

impl Transfer {
    /// The current progress.
    pub fn progress(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// Waits until bytes `[0, end)` are written (or the transfer ended), until `deadline`.
    /// Returns the progress seen then.
    pub async fn wait_for(&self, end: u64, deadline: Deadline, what: &str) -> FsResult<Progress> {
        self.wait_range(0, end, deadline, what).await
    }

    /// Waits until bytes `[offset, end)` are written (or the transfer ended, or the bytes
    /// from `offset` reach the end of the file), until `deadline`. Returns the progress
    /// seen then. A transfer in parts is told to fetch the part at `offset` first.
    pub async fn wait_range(
        &self,
        offset: u64,
        end: u64,
        deadline: Deadline,
        what: &str,
    ) -> FsResult<Progress> {
        let ready = |p: &Progress| {
            let have = offset.saturating_add(p.present_from(offset));
            have >= end || p.total.is_some_and(|t| have >= t) || !matches!(p.phase, Phase::Running)
        };
        let mut rx = self.progress.subscribe();
        if !ready(&rx.borrow()) {
            self.demand.want(offset);
        }
        let ready = rx.wait_for(ready);
        match tokio::time::timeout_at(deadline.instant(), ready).await {
            Ok(Ok(p)) => match &p.phase {
                Phase::Failed(e) => Err(e.clone()),
                _ => Ok(p.clone()),
            },
            Ok(Err(_)) => Err(FsError::Abandoned(format!("transfer of {what}"))),
            Err(_) => Err(FsError::Timeout(format!("waiting for bytes of {what}"))),
        }
    }
}

/// What a finished transfer produced.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The content file in the cache, or the temporary file when it was not cached.
    pub path: PathBuf,
    /// Its length.
    pub size: u64,
    /// Whether `path` is in the cache (else it is a temporary file its content removes).
    pub cached: bool,
}

/// What an original's metadata says of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    /// `dam:sha1`.
    pub sha1: Option<String>,
    /// `dam:size`.
    pub size: Option<u64>,
    /// Whether the bytes may enter the cache (not when the asset is larger than it).
    pub keep: bool,
}

/// What to fetch and how to check it.
#[derive(Debug, Clone)]
pub struct Job {
    /// DAM path of the asset.
    pub asset: String,
    /// Rendition name.
    pub rendition: String,
    /// Expected SHA-1 (hex) of the bytes, when the remote gave one.
    pub sha1: Option<String>,
    /// What the metadata says of the bytes, told while they arrive (the original fetched
    /// beside its metadata): `None` until told. The bytes are kept only once it is told, and
    /// checked against it; its length bounds a body of unannounced length from then on.
    pub sha1_later: Option<watch::Receiver<Option<Told>>>,
    /// Length the listing announced (`:jcr:data`, or `dam:size` for the original), a hint.
    pub expected: Option<u64>,
    /// Longest wait for any single step (connect, headers, next chunk).
    pub step: Budget,
    /// Whether the bytes enter the cache; if not, they stay in the temporary file.
    pub keep: bool,
    /// Set when the asset has a newer version than the one this job fetches: the bytes
    /// then stay in the temporary file (for the readers of the old version) and never
    /// enter the cache.
    pub superseded: Arc<std::sync::atomic::AtomicBool>,
}

/// Slack over an expected length before a body is cut off as endless: a quarter more plus
/// 1 MiB. `:jcr:data` lengths are exact; `dam:size` can lag a new version by a little, and a
/// body that is twice as long as announced is broken or hostile either way.
fn slack(expected: u64) -> u64 {
    expected.saturating_add(expected / 4).saturating_add(1 << 20)
}

/// The slowest transfer rate allowed over a whole transfer of known length (256 KiB/s, a
/// 2 Mbit/s line): with the idle timeout, it bounds how long a transfer may run, however
/// steadily a server drips.
const FLOOR_RATE: u64 = 256 << 10;

/// The most bytes a transfer may take, and why: the announced length (Content-Length or a
/// Content-Range's size) or, when the answer announced none, the listed length with
/// [`slack`]; and for a transfer that is to be cached, the whole cache (a larger rendition
/// could never be kept). An announced length wins over the listed one: it comes with the
/// bytes, and the listing may predate a new version.
fn byte_limit(job: &Job, announced: Option<u64>, cap: Option<u64>) -> (u64, &'static str) {
    let mut limit = (u64::MAX, "");
    let mut lower = |bound: Option<u64>, why| {
        if let Some(bound) = bound.filter(|b| *b < limit.0) {
            limit = (bound, why);
        }
    };
    lower(announced, "the announced length");
    lower(job.expected.filter(|_| announced.is_none()).map(slack), "the listed length with slack");
    // Told later for a job whose metadata is still coming (see `Job::sha1_later`).
    lower(cap.filter(|_| job.keep && job.sha1_later.is_none()), "the whole cache (--cache-size)");
    limit
}

/// Removes a transfer's temporary file and gives back the bytes charged for it against the
/// cache, whenever the transfer ends without handing its file on: failed, or cancelled by
/// dropping its future (nobody waits for it any more, or damfs is stopping).
struct TempFile {
    cache: Arc<Cache>,
    path: PathBuf,
    charged: u64,
    keep_file: bool,
}

impl TempFile {
    fn charge(&mut self, bytes: u64) {
        self.cache.charge_temp(bytes);
        self.charged += bytes;
    }

    fn release(&mut self) {
        self.cache.release_temp(std::mem::take(&mut self.charged));
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.release();
        if self.keep_file {
            return;
        }
        let path = std::mem::take(&mut self.path);
        // Off the runtime's workers when there is a runtime (not while it shuts down: its
        // blocking pool takes no new work then, and the file must go all the same).
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let unlink = runtime.spawn_blocking(move || std::fs::remove_file(path));
                drop(unlink);
            }
            Err(_) => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Starts a transfer whose progress can be observed; the returned future does the work.
pub async fn start<R: Remote>(
    remote: Arc<R>,
    cache: Arc<Cache>,
    stats: Arc<Stats>,
    job: Job,
) -> FsResult<(Arc<Transfer>, impl std::future::Future<Output = FsResult<Fetched>> + Send + 'static)> {
    let store = Arc::clone(&cache);
    let (file, temp) = tokio::task::spawn_blocking(move || store.temp_file())
        .await
        .map_err(|e| FsError::Internal(format!("creating a temporary file: {e}")))??;
    let (tx, _) = watch::channel(Progress { written: 0, total: None, phase: Phase::Running, parts: None });
    let transfer = Arc::new(Transfer { temp: temp.clone(), progress: tx, demand: ranged::Demand::default() });
    let handle = Arc::clone(&transfer);
    // Made before the future is first polled, so that a future dropped unpolled still
    // removes the file.
    let mut guard = TempFile { cache: Arc::clone(&cache), path: temp, charged: 0, keep_file: false };
    let work = async move {
        let _in_flight = InFlight::enter(&stats.transfers_in_flight);
        let result = run(&*remote, &cache, &stats, &job, file, &handle, &mut guard).await;
        match &result {
            Ok(fetched) => {
                // Committed (renamed away), or an uncached asset's file that lives on.
                guard.keep_file = true;
                handle.progress.send_modify(|p| p.phase = Phase::Done(fetched.path.clone()));
            }
            Err(e) => handle.progress.send_modify(|p| p.phase = Phase::Failed(e.clone())),
        }
        drop(guard);
        result
    };
    Ok((transfer, work))
}

/// What a receiver waiting on the network and on a write woke up for.
enum Woke<T> {
    /// The write ended (the file's length after it).
    Written(FsResult<u64>),
    /// The body gave its next item, or the wait timed out.
    Arrived(T),
}

/// Completes `digests` of the `len` bytes of `file` with the one a transfer is checked and
/// recorded with: their SHA-1 when the remote gave `dam:sha1` (`checked`), else their
/// SHA-256. The file is hashed again only when that one is missing.
async fn complete_digests(file: Arc<File>, len: u64, digests: Digests, checked: bool) -> FsResult<Digests> {
    let lacks =
        Wanted { sha1: checked && digests.sha1.is_none(), sha256: !checked && digests.sha256.is_none() };
    if !lacks.sha1 && !lacks.sha256 {
        return Ok(digests);
    }
    let more = tokio::task::spawn_blocking(move || digest::of_file(&file, len, lacks))
        .await
        .map_err(|e| FsError::Internal(format!("hashing a transfer: {e}")))??;
    Ok(Digests { sha1: digests.sha1.or(more.sha1), sha256: digests.sha256.or(more.sha256) })
}

/// The error for a transfer the remote botched.
fn broken(what: String, cause: String) -> FsError {
    FsError::Remote(crate::remote::RemoteError::new(crate::remote::RemoteErrorKind::Other, what, cause))
}

async fn run<R: Remote>(
    remote: &R,
    cache: &Arc<Cache>,
    stats: &Stats,
    job: &Job,
    file: File,
    transfer: &Transfer,
    guard: &mut TempFile,
) -> FsResult<Fetched> {
    let what = || format!("{} rendition {}", job.asset, job.rendition);
    let started = Instant::now();
    let download =
        match tokio::time::timeout(job.step.step(), remote.fetch(&job.asset, &job.rendition, None)).await {
            Ok(result) => result?,
            Err(_) => return Err(FsError::Timeout(what())),
        };
    let total = download.total_size;
    transfer.progress.send_modify(|p| p.total = total);
    let (mut limit, mut why) = byte_limit(job, total, cache.cap());
    // A transfer of known length must also end in time, however steadily it trickles.
    let deadline_for =
        |n: u64| started + job.step.step() + Duration::from_secs(n / FLOOR_RATE).max(job.step.step());
    let known = total.or(job.expected).map(|n| n.min(limit));
    let mut overall = known.map(deadline_for);
    // The length the metadata tells later bounds a body whose length nobody announced.
    let mut listed_later = job.sha1_later.as_ref().filter(|_| total.is_none() && job.expected.is_none());
    let ranged_total = total.filter(|t| *t >= ranged::MIN_LENGTH && download.offset == 0);
    // A SHA-1 checked against dam:sha1 is also the digest recorded; a SHA-256 is computed
    // only for bytes without one.
    let checked = job.sha1.is_some() || job.sha1_later.is_some();
    let wanted = Wanted { sha1: checked, sha256: !checked };
    let (written, file, digests) = if let Some(total) = ranged_total {
        if total > limit {
            return Err(broken(what(), format!("{total} bytes is past {why} ({limit} bytes)")));
        }
        guard.charge(total);
        let source = ranged::Source {
            remote,
            asset: &job.asset,
            rendition: &job.rendition,
            step: job.step,
            overall: deadline_for(total),
        };
        let publish = |filled: ranged::Filled| {
            let written = ranged::present_from(&filled, 0);
            transfer.progress.send_modify(|p| {
                p.written = written;
                p.parts = Some(filled);
            });
        };
        let file = Arc::new(file);
        ranged::receive(&source, download, total, &file, stats, &transfer.demand, &publish).await?;
        // Hashed once every part is in, below.
        (total, file, Digests::default())
    } else {
        let mut body = download.body;
        let mut spool = Spool::new(Sink { file, hasher: Hasher::new(wanted) });
        let publish = |written: u64| transfer.progress.send_modify(|p| p.written = written);
        let mut received = 0u64;
        loop {
            // Take what has arrived without waiting. When the network pauses, write out
            // what has gathered, so that readers see bytes as soon as possible, and keep
            // receiving while it is written.
            let next = match body.next().now_or_never() {
                // Arrived, or the end.
                Some(next) => next,
                None => {
                    spool.start();
                    let idle = job.step.deadline().instant();
                    let wait_until = overall.map_or(idle, |o| o.min(idle));
                    let woke = tokio::select! {
                        biased;
                        written = spool.settle(), if spool.is_busy() => Woke::Written(written),
                        next = tokio::time::timeout_at(wait_until, body.next()) => Woke::Arrived(next),
                    };
                    match woke {
                        Woke::Written(written) => {
                            publish(written?);
                            continue;
                        }
                        Woke::Arrived(Ok(next)) => next,
                        Woke::Arrived(Err(_)) if overall.is_some_and(|o| o <= idle) => {
                            let secs = started.elapsed().as_secs();
                            return Err(FsError::Timeout(format!(
                                "{} (only {received} bytes in {secs} s)",
                                what()
                            )));
                        }
                        Woke::Arrived(Err(_)) => {
                            return Err(FsError::Timeout(format!(
                                "{} (stalled after {received} bytes)",
                                what()
                            )));
                        }
                    }
                }
            };
            let Some(chunk) = next else { break };
            let chunk = chunk?;
            let len = chunk.len() as u64;
            if let Some(told) = listed_later.and_then(|told| told.borrow().clone()) {
                listed_later = None;
                if let Some(bound) = told.size.map(slack).filter(|b| *b < limit) {
                    (limit, why) = (bound, "the listed length with slack");
                    overall = Some(deadline_for(bound));
                }
                if let Some(cap) = cache.cap().filter(|c| told.keep && *c < limit) {
                    (limit, why) = (cap, "the whole cache (--cache-size)");
                }
            }
            if received.saturating_add(len) > limit {
                return Err(broken(what(), format!("body runs past {why} ({limit} bytes); stopped")));
            }
            guard.charge(len);
            received += len;
            Stats::add(&stats.bytes_fetched, len);
            spool.push(chunk);
            if spool.batch_ready() {
                if spool.is_busy() {
                    publish(spool.settle().await?);
                }
                spool.start();
            }
        }
        publish(spool.settle().await?);
        spool.start();
        let written = spool.settle().await?;
        publish(written);
        let Sink { file, hasher } = spool.into_sink();
        if let Some(total) = total
            && total != written
        {
            return Err(broken(what(), format!("short body: {written} of {total} bytes")));
        }
        (written, Arc::new(file), hasher.finish())
    };
    let mut keep = job.keep;
    let expected_sha1 = match &job.sha1_later {
        None => job.sha1.clone(),
        Some(told) => {
            let mut told = told.clone();
            let waited = tokio::time::timeout(job.step.step(), told.wait_for(Option::is_some)).await;
            match waited {
                Ok(Ok(value)) => {
                    let told = value.clone().unwrap_or(Told { sha1: None, size: None, keep: false });
                    keep &= told.keep;
                    told.sha1
                }
                // The metadata failed (the sender is gone) or never came: nothing is kept.
                Ok(Err(_)) => return Err(FsError::Abandoned(format!("{}: its metadata failed", what()))),
                Err(_) => return Err(FsError::Timeout(format!("{}: waiting for its metadata", what()))),
            }
        }
    };
    let digests = complete_digests(file, written, digests, expected_sha1.is_some()).await?;
    let digest = match &expected_sha1 {
        Some(expected) => {
            let got = digests.sha1.unwrap_or_default();
            if !got.eq_ignore_ascii_case(expected) {
                return Err(broken(
                    what(),
                    format!("SHA-1 mismatch: dam:sha1 is {expected}, the bytes hash to {got}"),
                ));
            }
            digest::recorded_sha1(&got)
        }
        None => digests.sha256.unwrap_or_default(),
    };
    let temp = transfer.temp.clone();
    Stats::add(&stats.renditions_fetched, 1);
    let superseded = || job.superseded.load(std::sync::atomic::Ordering::SeqCst);
    if !keep || superseded() {
        return Ok(Fetched { path: temp, size: written, cached: false });
    }
    // The rename waits on the disk: never on a runtime worker. The file is not synced here
    // (the index writer syncs the filesystem before it records the file).
    let (store, asset, rendition) = (Arc::clone(cache), job.asset.clone(), job.rendition.clone());
    let path = tokio::task::spawn_blocking(move || store.commit(&asset, &rendition, &temp, written, &digest))
        .await
        .map_err(|e| FsError::Internal(format!("committing {}: {e}", what())))??;
    if superseded() {
        // A new version was announced while the file was renamed into place: it must not
        // stay, and the reader of the old version has lost the race.
        cache.forget_rendition(&job.asset, &job.rendition);
        return Err(FsError::Abandoned(format!("{}: a new version arrived meanwhile", what())));
    }
    // The bytes are now charged as content: stop charging them as a transfer's, then evict
    // if this rendition (of a length nobody announced) took the cache over its cap.
    guard.release();
    if cache.over_cap() {
        let store = Arc::clone(cache);
        let _ = tokio::task::spawn_blocking(move || store.make_room(0)).await;
    }
    Ok(Fetched { path, size: written, cached: true })
}
