//! The switches and records of a catalog: the credentials accepted, assets shown as still
//! processed, and the controls tests of damfs set (stall, throttle, listing delay,
//! QueryBuilder on or off) and read (the requests seen, the tokens issued).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::{Asset, Catalog, LiveRecord, MAX_RECORDS, ORIGINAL, Rendition, StalledGuard};
use crate::serve::{Auth, RequestRecord};

impl Catalog {
    /// Control for tests of damfs: replaces the accepted credentials; the next request is
    /// checked against the new ones (so a token that worked can later answer 401).
    pub fn set_auth(&self, auth: Auth) {
        *self.auth.write() = auth;
    }

    /// Control for tests of damfs: shows the asset at `rel` (relative to the served folder)
    /// as still being processed, or no longer.
    pub fn set_processing(&self, rel: &str, processing: bool) {
        let mut set = self.processing.write();
        if processing {
            set.insert(rel.to_string());
        } else {
            set.remove(rel);
        }
    }

    /// Whether the asset at `rel` shows as still being processed.
    pub(in crate::serve) fn processing(&self, rel: &str) -> bool {
        self.processing.read().contains(rel)
    }

    /// The renditions of `asset` that exist now: only the original while it is processed.
    pub(in crate::serve) async fn renditions_of(&self, asset: &Asset) -> anyhow::Result<Vec<Rendition>> {
        let mut all = self.renditions.list(asset).await?;
        if self.processing(&asset.rel) {
            all.retain(|r| r.name == ORIGINAL);
        }
        Ok(all)
    }

    /// The credentials accepted now.
    pub(in crate::serve) fn auth(&self) -> Auth {
        self.auth.read().clone()
    }

    /// The tokens issued by the IMS endpoints.
    pub(in crate::serve) fn issued(&self) -> &crate::serve::ims::Issued {
        &self.issued
    }

    /// How many tokens the IMS endpoints have issued (tests count renewals with it).
    pub fn tokens_issued(&self) -> u64 {
        self.issued.count()
    }

    /// Control for tests of damfs: while `stall` is true, every new request waits before it
    /// is answered, until the stall is cleared, the client goes away or the server shuts
    /// down. Bodies already streaming are not held up.
    pub fn set_stall(&self, stall: bool) {
        self.stall.send_replace(stall);
    }

    /// A receiver of the stall flag.
    pub(in crate::serve) fn stall_watch(&self) -> watch::Receiver<bool> {
        self.stall.subscribe()
    }

    /// How many requests wait on the stall right now: tests wait for this rather than sleep.
    pub fn stalled(&self) -> u64 {
        self.stalled.load(Ordering::SeqCst)
    }

    /// Counts a request as waiting on the stall until the guard is dropped.
    pub(in crate::serve) fn stalled_guard(self: &Arc<Self>) -> StalledGuard {
        self.stalled.fetch_add(1, Ordering::SeqCst);
        StalledGuard(Arc::clone(self))
    }

    /// Control for tests of damfs: holds every binary body started from now on to
    /// `bytes_per_second` (None: full speed), so a test can act in the middle of a transfer.
    pub fn set_throttle(&self, bytes_per_second: Option<u64>) {
        self.throttle.store(bytes_per_second.unwrap_or(0), Ordering::Relaxed);
    }

    /// Control for tests of damfs: every folder listing page waits `delay` before it is
    /// answered (an AEM author under load), so that paging is slow.
    pub fn set_listing_delay(&self, delay: Option<Duration>) {
        let ms = delay.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.listing_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// The delay of folder listing pages, if any.
    pub(in crate::serve) fn listing_delay(&self) -> Option<Duration> {
        Some(self.listing_delay_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0).map(Duration::from_millis)
    }

    /// The binary body rate limit, if any.
    pub(in crate::serve) fn throttle(&self) -> Option<u64> {
        Some(self.throttle.load(Ordering::Relaxed)).filter(|&r| r > 0)
    }

    /// Control for tests of damfs: with `false`, `/bin/querybuilder.json` answers 404, as it
    /// does behind a dispatcher that blocks it. On by default.
    pub fn set_querybuilder(&self, enabled: bool) {
        self.querybuilder.store(enabled, Ordering::Relaxed);
    }

    /// Whether QueryBuilder answers.
    pub(in crate::serve) fn querybuilder_enabled(&self) -> bool {
        self.querybuilder.load(Ordering::Relaxed)
    }

    /// Control for tests of damfs: every request seen since the start (or the last
    /// [`Catalog::clear_requests`]), oldest first. A record appears when the response head is
    /// ready; its `bytes` count what the body has handed to the connection so far, so it is
    /// complete once the client has read the whole body. A request whose client went away
    /// before it was answered (e.g. while stalled) is recorded with status 499.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.records
            .lock()
            .iter()
            .map(|r| RequestRecord {
                method: r.method.clone(),
                path: r.path.clone(),
                status: r.status,
                bytes: r.bytes.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Control for tests of damfs: forgets every request recorded so far.
    pub fn clear_requests(&self) {
        self.records.lock().clear();
    }

    /// Records a request answered with `status`; the caller adds body bytes as they go.
    pub(in crate::serve) fn record(&self, method: &str, path: &str, status: u16) -> Arc<LiveRecord> {
        let record = Arc::new(LiveRecord {
            method: method.to_string(),
            path: path.to_string(),
            status,
            bytes: AtomicU64::new(0),
        });
        let mut records = self.records.lock();
        if records.len() >= MAX_RECORDS {
            records.pop_front();
        }
        records.push_back(Arc::clone(&record));
        record
    }
}
