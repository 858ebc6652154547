//! The transfers an open starts: one job per rendition, the original asked for beside its
//! metadata on a cold open, and transfers that go on in the background after the open.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::transfer::{self, Job, Transfer};
use super::{AssetContent, Manifest, Materializer, PinGuard, RenditionEntry, RenditionState};
use crate::error::{FsError, FsResult};
use crate::remote::Remote;

/// The original of an asset whose manifest is not known, asked for beside its metadata
/// (its URL does not depend on them): the transfer, its work running on a task, and where
/// its expected SHA-1 is told once the metadata is in.
pub(super) struct EarlyOriginal {
    pub(super) transfer: Arc<Transfer>,
    pub(super) work: tokio::task::JoinHandle<FsResult<transfer::Fetched>>,
    pub(super) sha1: tokio::sync::watch::Sender<Option<transfer::Told>>,
}

impl EarlyOriginal {
    /// Its result, once its work ends.
    pub(super) async fn finish(self) -> FsResult<transfer::Fetched> {
        let EarlyOriginal { work, sha1, .. } = self;
        // Kept until the work ends: dropping it fails the check it waits on.
        let _told = sha1;
        work.await.map_err(|e| FsError::Internal(format!("transfer of an original: {e}")))?
    }
}

impl<R: Remote> Materializer<R> {
    /// The transfer of rendition `r` of the asset of `manifest`, kept in the cache if `keep`,
    /// for the version of `superseded`.
    pub(super) fn job(
        &self,
        manifest: &Manifest,
        r: &RenditionEntry,
        keep: bool,
        superseded: &Arc<AtomicBool>,
    ) -> Job {
        Job {
            asset: manifest.path.clone(),
            rendition: r.name.clone(),
            sha1: if r.name == "original" { manifest.meta.sha1.clone() } else { None },
            sha1_later: None,
            expected: manifest.listed_size(r),
            step: self.config.step,
            keep,
            superseded: Arc::clone(superseded),
        }
    }

    /// Whether `job` is transferred in the background (listed larger than the threshold).
    pub(super) fn in_background(&self, job: &Job) -> bool {
        job.expected.is_some_and(|s| s > self.config.async_threshold)
    }

    /// Evicts until `need` more bytes of `asset` fit, if they can.
    pub(super) async fn make_room(&self, asset: &str, need: u64) {
        if need == 0 {
            return;
        }
        // Eviction deletes files: off the runtime's workers.
        let cache = Arc::clone(&self.cache);
        let fits = tokio::task::spawn_blocking(move || cache.make_room(need)).await.unwrap_or(true);
        if !fits {
            log::info!("cache: {asset} takes the cache over its cap while the assets in use stay");
        }
    }

    /// Starts a transfer that continues after the opener has its answer.
    pub(super) async fn start_background(
        self: &Arc<Self>,
        asset: &str,
        content: &Arc<AssetContent>,
        job: Job,
    ) -> FsResult<()> {
        let name = job.rendition.clone();
        let (t, work) =
            transfer::start(Arc::clone(&self.remote), Arc::clone(&self.cache), Arc::clone(&self.stats), job)
                .await?;
        self.follow_background(asset, content, name, t, work);
        Ok(())
    }

    /// Starts the original's transfer before its manifest is known, for a cold open (neither
    /// the manifest nor the original is in the cache). Its SHA-1 is checked once the
    /// metadata tells it. None when the transfer cannot start (the open then fetches the
    /// original the ordinary way).
    pub(super) async fn early_original(
        self: &Arc<Self>,
        asset: &str,
        version: &Arc<AtomicBool>,
    ) -> Option<EarlyOriginal> {
        let (sha1, told) = tokio::sync::watch::channel(None);
        let job = Job {
            asset: asset.to_string(),
            rendition: "original".into(),
            sha1: None,
            sha1_later: Some(told),
            expected: None,
            step: self.config.step,
            keep: true,
            superseded: Arc::clone(version),
        };
        let (transfer, work) =
            transfer::start(Arc::clone(&self.remote), Arc::clone(&self.cache), Arc::clone(&self.stats), job)
                .await
                .ok()?;
        Some(EarlyOriginal { transfer, work: tokio::spawn(work), sha1 })
    }

    /// Makes `t` the state of rendition `name` of `content` until `work` ends, and then its
    /// result: complete, or forgotten so that the next open starts a new transfer.
    pub(super) fn follow_background(
        self: &Arc<Self>,
        asset: &str,
        content: &Arc<AssetContent>,
        name: String,
        t: Arc<Transfer>,
        work: impl std::future::Future<Output = FsResult<transfer::Fetched>> + Send + 'static,
    ) {
        if content.uncached {
            content.temps.lock().push(t.temp.clone());
        }
        content.renditions.lock().insert(name.clone(), RenditionState::InFlight(t));
        let (this, content, asset) = (Arc::clone(self), Arc::clone(content), asset.to_string());
        let pin = PinGuard::new(&self.cache, &asset);
        tokio::spawn(async move {
            let _pin = pin;
            match work.await {
                Ok(fetched) => {
                    content.complete(&name, &fetched);
                }
                Err(e) => {
                    log::warn!("{asset}: background transfer of {name} failed: {e}");
                    // The next open starts a new transfer.
                    this.forget(&asset, &content);
                }
            }
        });
    }
}
