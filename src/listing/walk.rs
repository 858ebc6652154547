//! The background walk of `--prefetch-listings`: every folder under the mount root is
//! listed once after mounting, breadth first, so that the first `ls` anywhere is answered
//! from memory. It runs at the lowest priority: at most [`WALK_CONCURRENCY`] listings at a
//! time, each started only while no kernel request waits on the remote, and it never holds
//! anything a request needs (a request for a folder being walked shares its fetch). It ends
//! when the tree has been walked or when damfs stops.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{LISTING_CAP_STEPS, Listing, Listings};
use crate::error::FsResult;
use crate::names::join;
use crate::remote::Remote;

/// Listings the walk fetches at once: enough to hide one request's latency, few enough to
/// leave the remote and its connection pool to the readers.
pub const WALK_CONCURRENCY: usize = 2;

/// How often a walk that gave way looks again whether requests still wait on the remote.
const YIELD_POLL: Duration = Duration::from_millis(50);

/// What a walk did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    /// Folders whose listing is now in memory.
    pub listed: u64,
    /// Folders whose listing failed (their sub-folders are not walked).
    pub failed: u64,
}

impl<R: Remote> Listings<R> {
    /// Lists every folder under the mount root, breadth first, until done or `stopping` is
    /// cancelled.
    pub async fn walk(self: Arc<Self>, stopping: CancellationToken) -> Walked {
        let started = Instant::now();
        let mut walked = Walked::default();
        let mut level = vec![self.config.root.clone()];
        while !level.is_empty() {
            let mut next = Vec::new();
            let mut results = stream::iter(level)
                .map(|folder| {
                    let this = Arc::clone(&self);
                    async move {
                        let result = this.walk_one(&folder).await;
                        (folder, result)
                    }
                })
                .buffer_unordered(WALK_CONCURRENCY);
            loop {
                let item = tokio::select! {
                    () = stopping.cancelled() => {
                        log::info!("listing walk stopped: {} folders listed", walked.listed);
                        return walked;
                    }
                    item = results.next() => item,
                };
                let Some((folder, result)) = item else { break };
                match result {
                    Ok(listing) => {
                        walked.listed += 1;
                        let folders = listing.children.iter().filter(|c| c.folder);
                        next.extend(folders.map(|c| join(&folder, &c.name)));
                    }
                    Err(e) => {
                        walked.failed += 1;
                        log::info!("listing walk: /{folder} not listed, nor anything under it: {e}");
                    }
                }
            }
            level = next;
        }
        log::info!(
            "listing walk done: {} folders listed, {} failed, in {:.1}s",
            walked.listed,
            walked.failed,
            started.elapsed().as_secs_f64()
        );
        walked
    }

    /// The listing of one folder for the walk: the one in memory if it is fresh, otherwise
    /// fetched once no request waits on the remote.
    async fn walk_one(self: &Arc<Self>, folder: &str) -> FsResult<Arc<Listing>> {
        while self.stats.requests_waiting.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(YIELD_POLL).await;
        }
        let fresh = self.held.lock().get(folder).and_then(|h| {
            h.fetched.is_some_and(|t| t.elapsed() < self.config.ttl).then(|| Arc::clone(&h.listing))
        });
        if let Some(listing) = fresh {
            return Ok(listing);
        }
        self.fetch(folder, self.config.step.times(LISTING_CAP_STEPS).deadline()).await
    }
}
