//! One rendition's bytes from the remote into the cache: streamed to a temporary file,
//! counted, hashed, checked against the announced length (and `dam:sha1` for the original),
//! fsynced, renamed into place. Progress is published so that readers of a file still in
//! transfer wait only for the bytes they need.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cache::{Cache, hex};
use crate::error::{FsError, FsResult};
use crate::remote::Remote;
use crate::stats::Stats;

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
}

/// A transfer in progress, shared by the task writing it and the readers waiting on it.
#[derive(Debug)]
pub struct Transfer {
    /// The temporary file being written (readers open it; the fd stays valid after the rename).
    pub temp: PathBuf,
    progress: watch::Sender<Progress>,
}

impl Transfer {
    /// The current progress.
    pub fn progress(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// Waits until bytes `[0, end)` are written (or the transfer ended), until `deadline`.
    /// Returns the progress seen then.
    pub async fn wait_for(&self, end: u64, deadline: Instant, what: &str) -> FsResult<Progress> {
        let mut rx = self.progress.subscribe();
        let ready = rx.wait_for(|p| {
            p.written >= end || p.total.is_some_and(|t| p.written >= t) || !matches!(p.phase, Phase::Running)
        });
        match tokio::time::timeout_at(deadline, ready).await {
            Ok(Ok(p)) => match &p.phase {
                Phase::Failed(e) => Err(e.clone()),
                _ => Ok(p.clone()),
            },
            Ok(Err(_)) => Err(FsError::Io(std::io::Error::other(format!("{what}: transfer abandoned")))),
            Err(_) => Err(FsError::Timeout(format!("waiting for bytes of {what}"))),
        }
    }
}

/// What a finished transfer produced.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The content file in the cache.
    pub path: PathBuf,
    /// Its length.
    pub size: u64,
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
    /// Longest wait for any single step (connect, headers, next chunk).
    pub idle_timeout: Duration,
    /// Whether the bytes enter the cache; if not, they stay in the temporary file.
    pub keep: bool,
}

/// Starts a transfer whose progress can be observed; the returned future does the work.
pub fn start<R: Remote>(
    remote: Arc<R>,
    cache: Arc<Cache>,
    stats: Arc<Stats>,
    job: Job,
) -> FsResult<(Arc<Transfer>, impl std::future::Future<Output = FsResult<Fetched>> + Send + 'static)> {
    let (file, temp) = cache.temp_file()?;
    let (tx, _) = watch::channel(Progress { written: 0, total: None, phase: Phase::Running });
    let transfer = Arc::new(Transfer { temp, progress: tx });
    let handle = Arc::clone(&transfer);
    let work = async move {
        let result = run(&*remote, &cache, &stats, &job, file, &handle).await;
        match &result {
            Ok(fetched) => handle.progress.send_modify(|p| p.phase = Phase::Done(fetched.path.clone())),
            Err(e) => {
                let _ = std::fs::remove_file(&handle.temp);
                handle.progress.send_modify(|p| p.phase = Phase::Failed(e.clone()));
            }
        }
        result
    };
    Ok((transfer, work))
}

async fn run<R: Remote>(
    remote: &R,
    cache: &Arc<Cache>,
    stats: &Stats,
    job: &Job,
    mut file: File,
    transfer: &Transfer,
) -> FsResult<Fetched> {
    let what = || format!("{} rendition {}", job.asset, job.rendition);
    let download =
        match tokio::time::timeout(job.idle_timeout, remote.fetch(&job.asset, &job.rendition, None)).await {
            Ok(result) => result?,
            Err(_) => return Err(FsError::Timeout(what())),
        };
    let total = download.total_size;
    transfer.progress.send_modify(|p| p.total = total);
    let mut body = download.body;
    let mut sha256 = Sha256::new();
    let mut sha1 = job.sha1.as_ref().map(|_| Sha1::new());
    let mut written = 0u64;
    loop {
        let chunk = match tokio::time::timeout(job.idle_timeout, body.next()).await {
            Ok(Some(chunk)) => chunk?,
            Ok(None) => break,
            Err(_) => return Err(FsError::Timeout(format!("{} (stalled after {written} bytes)", what()))),
        };
        file.write_all(&chunk)?;
        sha256.update(&chunk);
        if let Some(h) = sha1.as_mut() {
            h.update(&chunk);
        }
        written += chunk.len() as u64;
        Stats::add(&stats.bytes_fetched, chunk.len() as u64);
        transfer.progress.send_modify(|p| p.written = written);
    }
    if let Some(total) = total
        && total != written
    {
        return Err(FsError::Remote(crate::remote::RemoteError::new(
            crate::remote::RemoteErrorKind::Other,
            what(),
            format!("short body: {written} of {total} bytes"),
        )));
    }
    if let (Some(expected), Some(h)) = (&job.sha1, sha1) {
        let got = hex(&h.finalize());
        if !got.eq_ignore_ascii_case(expected) {
            return Err(FsError::Remote(crate::remote::RemoteError::new(
                crate::remote::RemoteErrorKind::Other,
                what(),
                format!("SHA-1 mismatch: dam:sha1 is {expected}, the bytes hash to {got}"),
            )));
        }
    }
    let digest = hex(&sha256.finalize());
    let temp = transfer.temp.clone();
    Stats::add(&stats.renditions_fetched, 1);
    if !job.keep {
        return Ok(Fetched { path: temp, size: written });
    }
    // fsync and rename wait on the disk: never on a runtime worker.
    let (cache, asset, rendition) = (Arc::clone(cache), job.asset.clone(), job.rendition.clone());
    let path = tokio::task::spawn_blocking(move || {
        file.sync_all()?;
        cache.commit(&asset, &rendition, &temp, written, &digest)
    })
    .await
    .map_err(|e| FsError::Io(std::io::Error::other(e)))??;
    Ok(Fetched { path, size: written })
}
