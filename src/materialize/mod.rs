//! Asset -> bytes, once. The first open of an asset fetches its manifest (metadata, tags,
//! rendition list) and every rendition the [`RenditionSelection`] makes eager: those at or
//! under the async threshold before the open returns, larger ones in the background while
//! readers wait only for the bytes they need. A rendition left out is fetched when it is
//! opened itself (`open`). Concurrent openers share one fetch ([`SingleFlight`]); every
//! remote step is bounded by the fetch timeout; a failure leaves nothing half-made and is
//! not remembered.

mod content;
mod jobs;
pub mod manifest;
mod open;
pub mod ranged;
pub mod select;
mod spool;
pub mod transfer;
mod versions;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::deadline::{Budget, Deadline};
use futures_util::StreamExt;
use parking_lot::Mutex;

use crate::bounded::Bounded;
use crate::cache::Cache;
use crate::error::{FsError, FsResult};
use crate::flight::{Abandoned, SingleFlight};
use crate::remote::Remote;
use crate::stats::Stats;
pub use content::{AssetContent, OpenRendition, PinGuard, RenditionState};
pub use manifest::{Manifest, RenditionEntry, TagRef};
pub use select::RenditionSelection;

/// Decoded manifests held in memory: a few KiB each (their metadata), a few MiB in all.
const HELD_MANIFESTS: u64 = 4096;

/// Materialized assets whose rendition states are held in memory (a few hundred bytes
/// each): more than the assets a web server serves at once.
const HELD_CONTENTS: u64 = 4096;

/// Most renditions of one asset downloaded at once: enough for AEM's standard set (the
/// original, three thumbnails, the web rendition) in one round.
const RENDITION_CONCURRENCY: usize = 8;

/// How the materializer behaves.
#[derive(Debug, Clone)]
pub struct MaterializeConfig {
    /// The budget of every remote step.
    pub step: Budget,
    /// Renditions larger than this are transferred in the background.
    pub async_threshold: u64,
    /// The renditions fetched at the first open of an asset.
    pub renditions: RenditionSelection,
}

/// Turns assets into local bytes.
#[derive(Debug)]
pub struct Materializer<R> {
    remote: Arc<R>,
    cache: Arc<Cache>,
    stats: Arc<Stats>,
    config: MaterializeConfig,
    titles: manifest::TagTitles,
    /// Decoded manifests (from the cache or the remote), the [`HELD_MANIFESTS`] used last;
    /// the others are decoded again from the index at their next use. Guards only the map.
    manifests: Mutex<Bounded<String, Arc<Manifest>>>,
    /// Assets with every rendition complete or in transfer, the [`HELD_CONTENTS`] used
    /// last; the others are found in the index again at their next open. Open files hold
    /// what they read, never this map. Guards only the map.
    contents: Mutex<Bounded<String, Arc<AssetContent>>>,
    manifest_flights: Arc<SingleFlight<String, Arc<Manifest>>>,
    content_flights: Arc<SingleFlight<String, Arc<AssetContent>>>,
    /// Renditions left out of the first open, fetched when opened: by asset, name and the
    /// content (its address) they are fetched for.
    rendition_flights: Arc<SingleFlight<(String, String, usize), RenditionState>>,
    /// Per asset with work in progress or content held: set (and removed) when a new
    /// version is announced, so that what the old version's work brings in is not kept.
    /// Guards the map only.
    versions: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// Assets the listings say the remote is still processing. Guards the set only.
    processing: Mutex<HashSet<String>>,
}

impl<R: Remote> Materializer<R> {
    /// A materializer over `remote` and `cache`.
    pub fn new(remote: Arc<R>, cache: Arc<Cache>, stats: Arc<Stats>, config: MaterializeConfig) -> Arc<Self> {
        Arc::new(Materializer {
            remote,
            cache,
            stats,
            config,
            titles: manifest::TagTitles::default(),
            manifests: Mutex::new(Bounded::new(HELD_MANIFESTS)),
            contents: Mutex::new(Bounded::new(HELD_CONTENTS)),
            manifest_flights: Arc::default(),
            content_flights: Arc::new(SingleFlight::new(Abandoned::Cancel)),
            rendition_flights: Arc::new(SingleFlight::new(Abandoned::Cancel)),
            versions: Mutex::new(HashMap::new()),
            processing: Mutex::new(HashSet::new()),
        })
    }

    /// The manifest of `asset` if it is known without the remote.
    pub fn cached_manifest(&self, asset: &str) -> Option<Arc<Manifest>> {
        if let Some(m) = self.manifests.lock().get(asset) {
            return Some(Arc::clone(m));
        }
        let json = self.cache.manifest(asset)?;
        match serde_json::from_str::<Manifest>(&json) {
            Ok(m) if m.defect().is_some() => {
                let why = m.defect().unwrap_or_default();
                log::warn!("cache: the manifest of {asset} is unusable ({why}); it will be fetched again");
                None
            }
            Ok(m) => {
                let m = Arc::new(m);
                self.manifests.lock().insert(asset.to_string(), Arc::clone(&m), 1);
                Some(m)
            }
            Err(e) => {
                log::warn!("cache: the manifest of {asset} does not parse ({e}); it will be fetched again");
                None
            }
        }
    }

    /// The renditions the first open of an asset fetches.
    pub fn selection(&self) -> &RenditionSelection {
        &self.config.renditions
    }

    /// Keeps `asset` from eviction until the guard is dropped (an open file of it).
    pub fn pin(&self, asset: &str) -> PinGuard {
        PinGuard::new(&self.cache, asset)
    }

    /// Records a use of `asset`'s content (its place in the cache's eviction order).
    pub fn touch(&self, asset: &str) {
        self.cache.touch(asset);
    }

    /// Has `hook` told of every asset whose content files leave the cache.
    pub fn on_content_dropped(&self, hook: Box<dyn Fn(&str) + Send + Sync>) {
        self.cache.on_content_dropped(hook);
    }

    /// Assets with content and bytes of content in the cache.
    pub fn cache_usage(&self) -> (u64, u64) {
        self.cache.usage()
    }

    /// The exact length of a rendition once it is in the cache or its transfer said it.
    pub fn rendition_size(&self, asset: &str, name: &str) -> Option<u64> {
        if name == "original" {
            return self.original_size(asset);
        }
        self.cache.rendition(asset, name).map(|r| r.size)
    }

    /// The tag ids of every asset with a stored manifest (the local taxonomy covers them
    /// all), read from the index one manifest at a time: none is kept. Waits for the
    /// index to have every manifest stored so far; reads the whole index: off the
    /// runtime's workers.
    pub fn stored_tags(&self) -> Vec<(String, Vec<String>)> {
        #[derive(serde::Deserialize)]
        struct Tagged {
            #[serde(default)]
            tags: Vec<TagId>,
        }
        #[derive(serde::Deserialize)]
        struct TagId {
            id: String,
        }
        self.cache.flush();
        let mut tagged = Vec::new();
        self.cache.each_manifest(|asset, json| match serde_json::from_str::<Tagged>(json) {
            Ok(t) if !t.tags.is_empty() => {
                tagged.push((asset.to_string(), t.tags.into_iter().map(|t| t.id).collect()));
            }
            Ok(_) => {}
            Err(e) => {
                log::warn!("cache: the manifest of {asset} does not parse ({e}); its tags are left out")
            }
        });
        tagged
    }

    /// Changes to the stored manifests so far: the taxonomy is built again when it moved.
    pub fn manifests_changed(&self) -> u64 {
        self.cache.manifest_writes()
    }

    /// [`Materializer::cached_manifest`] for async callers: what is not in memory is read
    /// from the index on a blocking thread.
    pub async fn stored_manifest(self: &Arc<Self>, asset: &str) -> Option<Arc<Manifest>> {
        if let Some(m) = self.manifests.lock().get(asset) {
            return Some(Arc::clone(m));
        }
        let (this, key) = (Arc::clone(self), asset.to_string());
        tokio::task::spawn_blocking(move || this.cached_manifest(&key)).await.ok().flatten()
    }

    /// The manifest of `asset`, from the cache or the remote.
    pub async fn manifest(self: &Arc<Self>, asset: &str, deadline: Deadline) -> FsResult<Arc<Manifest>> {
        if let Some(m) = self.stored_manifest(asset).await {
            return Ok(m);
        }
        self.remote_manifest(asset, deadline).await
    }

    /// The manifest of `asset`, from the remote (one fetch for concurrent callers).
    async fn remote_manifest(self: &Arc<Self>, asset: &str, deadline: Deadline) -> FsResult<Arc<Manifest>> {
        let key = asset.to_string();
        self.manifest_flights
            .run(key.clone(), deadline, &format!("metadata of {asset}"), || {
                let (this, key) = (Arc::clone(self), key.clone());
                async move { this.fetch_manifest(key).await }
            })
            .await
    }

    async fn fetch_manifest(self: Arc<Self>, key: String) -> FsResult<Arc<Manifest>> {
        let version = self.version(&key);
        let mut m = manifest::fetch(&*self.remote, &self.titles, &key, self.config.step).await?;
        m.provisional = self.processing.lock().contains(&key);
        Stats::add(&self.stats.manifests_fetched, 1);
        if version.load(Ordering::SeqCst) {
            // A newer version was announced meanwhile: serve this caller, keep nothing.
            return Ok(Arc::new(m));
        }
        let json =
            serde_json::to_string(&m).map_err(|e| FsError::Internal(format!("manifest of {key}: {e}")))?;
        self.cache.put_manifest(&key, json);
        let m = Arc::new(m);
        self.manifests.lock().insert(key, Arc::clone(&m), 1);
        Ok(m)
    }

    /// The length of the asset's original once it is known for certain (materialized, or
    /// announced by the transfer in progress).
    pub fn original_size(&self, asset: &str) -> Option<u64> {
        if let Some(content) = self.contents.lock().get(asset) {
            return match content.rendition("original")? {
                RenditionState::Complete { size, .. } => Some(size),
                RenditionState::InFlight(t) => t.progress().total,
            };
        }
        self.cache.rendition(asset, "original").map(|r| r.size)
    }

    /// Materializes `asset`: when this returns, every eager rendition (see
    /// [`RenditionSelection`]) is complete or in transfer.
    pub async fn materialize(
        self: &Arc<Self>,
        asset: &str,
        deadline: Deadline,
    ) -> FsResult<Arc<AssetContent>> {
        let held = self.contents.lock().get(asset).cloned();
        if let Some(content) = held {
            if content.manifest.provisional {
                // The remote was still making renditions: ask it again, keeping the files
                // of the renditions already here.
                self.forget(asset, &content);
                self.manifests.lock().remove(asset);
                self.cache.drop_manifest(asset);
            } else if self.still_cached(asset, &content) {
                self.cache.touch(asset);
                Stats::add(&self.stats.cache_hits, 1);
                return Ok(content);
            }
            // Evicted, or removed by `damfs cache verify`/`evict`, since: fetch it again.
            self.forget(asset, &content);
        }
        let this = Arc::clone(self);
        let key = asset.to_string();
        // Reads the index (and decodes a manifest) when the asset is not in memory; when the
        // content is not all there, tells whether the index has nothing of the asset (a cold
        // open), in the same trip off the runtime.
        let looked = tokio::task::spawn_blocking(move || match this.cached_manifest(&key) {
            Some(manifest) => this.cached_content(&key, manifest).ok_or(false),
            None => Err(this.cache.rendition(&key, "original").is_none()),
        })
        .await
        .unwrap_or(Err(false));
        let cold = match looked {
            Ok(content) => {
                Stats::add(&self.stats.cache_hits, 1);
                return Ok(content);
            }
            Err(cold) => cold,
        };
        Stats::add(&self.stats.cache_misses, 1);
        let key = asset.to_string();
        self.content_flights
            .run(key.clone(), deadline, &format!("materializing {asset}"), || {
                let (this, key) = (Arc::clone(self), key.clone());
                async move { this.fetch_content(&key, cold).await }
            })
            .await
    }

    /// Whether `content` can still be served: no transfer of it failed (its task may not
    /// have dropped it yet), and every complete rendition is still in the cache.
    fn still_cached(&self, asset: &str, content: &AssetContent) -> bool {
        let failed = content.renditions.lock().values().any(|state| {
            matches!(state, RenditionState::InFlight(t) if matches!(t.progress().phase, transfer::Phase::Failed(_)))
        });
        if failed {
            return false;
        }
        if content.uncached {
            return true;
        }
        let complete: Vec<String> = content
            .renditions
            .lock()
            .iter()
            .filter(|(_, state)| matches!(state, RenditionState::Complete { .. }))
            .map(|(name, _)| name.clone())
            .collect();
        complete.iter().all(|name| self.cache.rendition(asset, name).is_some())
    }

    /// Drops what is known of `asset`'s content, if it is still this `content`.
    fn forget(&self, asset: &str, content: &Arc<AssetContent>) {
        let mut contents = self.contents.lock();
        if contents.get(asset).is_some_and(|c| Arc::ptr_eq(c, content)) {
            contents.remove(asset);
        }
    }

    /// The content of an asset whose manifest is `manifest`, when every rendition its first
    /// open fetches is in the cache.
    fn cached_content(&self, asset: &str, manifest: Arc<Manifest>) -> Option<Arc<AssetContent>> {
        if manifest.provisional {
            return None;
        }
        let cached = self.cache.renditions(asset);
        let mut renditions = HashMap::new();
        for r in &manifest.renditions {
            // A file whose length is not the listed one belongs to another version.
            let listed = manifest.listed_size(r);
            match cached.get(&r.name).filter(|c| listed.is_none_or(|s| s == c.size)) {
                Some(c) => {
                    let path = self.cache.content_path(asset, &r.name);
                    renditions.insert(r.name.clone(), RenditionState::Complete { path, size: c.size });
                }
                None if self.config.renditions.eager(&r.name) => return None,
                // Left out of the first open: fetched when opened.
                None => {}
            }
        }
        let content = Arc::new(AssetContent::new(manifest, renditions, false, self.version(asset)));
        self.contents.lock().insert(asset.to_string(), Arc::clone(&content), 1);
        self.cache.touch(asset);
        Some(content)
    }

    /// Fetches what the cache lacks of `asset`. A `cold` asset has nothing in the index (no
    /// manifest, no original): its original is asked for beside its metadata.
    async fn fetch_content(self: Arc<Self>, asset: &str, cold: bool) -> FsResult<Arc<AssetContent>> {
        let version = self.version(asset);
        let mut early = if cold { self.early_original(asset, &version).await } else { None };
        // The flight bounds each remote step; the manifest wait gets the same budget.
        let deadline = self.config.step.deadline();
        let manifest = if cold {
            self.remote_manifest(asset, deadline).await
        } else {
            self.manifest(asset, deadline).await
        };
        let manifest = match manifest {
            Ok(m) => m,
            Err(e) => {
                if let Some(early) = early {
                    early.work.abort();
                }
                return Err(e);
            }
        };
        let _pin = PinGuard::new(&self.cache, asset);
        let eager: Vec<&RenditionEntry> =
            manifest.renditions.iter().filter(|r| self.config.renditions.eager(&r.name)).collect();
        let whole = eager.iter().filter_map(|r| manifest.listed_size(r)).fold(0u64, u64::saturating_add);
        let cap = self.cache.cap();
        let uncached = cap.is_some_and(|cap| whole > cap);
        if uncached {
            log::warn!(
                "{asset}: {whole} bytes is more than the whole cache ({cap:?}): served without caching"
            );
        }
        if let Some(early) = &early {
            early.sha1.send_replace(Some(transfer::Told {
                sha1: manifest.meta.sha1.clone(),
                size: manifest
                    .renditions
                    .iter()
                    .find(|r| r.name == "original")
                    .and_then(|r| r.size)
                    .or(manifest.meta.size),
                keep: !uncached,
            }));
        }
        let cached = if uncached { HashMap::new() } else { self.cache.renditions(asset) };
        let mut states = HashMap::new();
        let (mut sync_jobs, mut async_jobs) = (Vec::new(), Vec::new());
        let (mut early_sync, mut early_async) = (None, None);
        let mut need = 0u64;
        for r in eager {
            // A file whose length is not the listed one belongs to another version.
            let size = manifest.listed_size(r);
            if let Some(c) = cached.get(&r.name).filter(|c| size.is_none_or(|s| s == c.size)) {
                let path = self.cache.content_path(asset, &r.name);
                states.insert(r.name.clone(), RenditionState::Complete { path, size: c.size });
                continue;
            }
            if r.name == "original"
                && let Some(early) = early.take()
            {
                let large =
                    size.or(early.transfer.progress().total).is_some_and(|s| s > self.config.async_threshold);
                if large {
                    early_async = Some(early)
                } else {
                    early_sync = Some(early)
                }
                need = need.saturating_add(size.unwrap_or(0));
                continue;
            }
            let job = self.job(&manifest, r, !uncached, &version);
            need = need.saturating_add(size.unwrap_or(0));
            if self.in_background(&job) {
                async_jobs.push(job);
            } else {
                sync_jobs.push(job);
            }
        }
        if !uncached {
            self.make_room(asset, need).await;
        }

        let mut transfers: Vec<
            futures_util::future::BoxFuture<'static, FsResult<(String, transfer::Fetched)>>,
        > = Vec::new();
        if let Some(early) = early_sync {
            transfers
                .push(Box::pin(async move { early.finish().await.map(|f| ("original".to_string(), f)) }));
        }
        for job in sync_jobs {
            let this = Arc::clone(&self);
            transfers.push(Box::pin(async move {
                let (_, work) = transfer::start(
                    Arc::clone(&this.remote),
                    Arc::clone(&this.cache),
                    Arc::clone(&this.stats),
                    job.clone(),
                )
                .await?;
                work.await.map(|f| (job.rendition, f))
            }));
        }
        let results = futures_util::stream::iter(transfers)
            .buffer_unordered(RENDITION_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let content = Arc::new(AssetContent::new(
            Arc::clone(&manifest),
            HashMap::new(),
            uncached,
            Arc::clone(&version),
        ));
        let mut failure = None;
        for result in results {
            match result {
                Ok((name, fetched)) => {
                    content.complete(&name, &fetched);
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        content.renditions.lock().extend(states);
        if let Some(early) = early_async {
            let transfer = Arc::clone(&early.transfer);
            self.follow_background(asset, &content, "original".into(), transfer, early.finish());
        }
        for job in async_jobs {
            self.start_background(asset, &content, job).await?;
        }
        if !uncached && !version.load(Ordering::SeqCst) {
            self.contents.lock().insert(asset.to_string(), Arc::clone(&content), 1);
        }
        Ok(content)
    }
}
