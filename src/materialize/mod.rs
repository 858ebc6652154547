//! Asset -> bytes, once. The first open of an asset fetches its manifest (metadata, tags,
//! rendition list) and every rendition the [`RenditionSelection`] makes eager: those at or
//! under the async threshold before the open returns, larger ones in the background while
//! readers wait only for the bytes they need. A rendition left out is fetched when it is
//! opened itself (`open`). Concurrent openers share one fetch ([`SingleFlight`]); every
//! remote step is bounded by the fetch timeout; a failure leaves nothing half-made and is
//! not remembered.

pub mod manifest;
mod open;
pub mod select;
pub mod transfer;

use std::collections::{HashMap, HashSet};
use std::fs::File;
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
pub use manifest::{Manifest, RenditionEntry, TagRef};
pub use select::RenditionSelection;
use transfer::{Job, Transfer};

/// Decoded manifests held in memory: a few KiB each (their metadata), a few MiB in all.
const HELD_MANIFESTS: u64 = 4096;

/// Materialized assets whose rendition states are held in memory (a few hundred bytes
/// each): more than the assets a web server serves at once.
const HELD_CONTENTS: u64 = 4096;

/// Most renditions of one asset downloaded at once: enough for AEM's standard set (the
/// original, three thumbnails, the web rendition) in one round.
const RENDITION_CONCURRENCY: usize = 8;

/// The original of an asset whose manifest is not known, asked for beside its metadata
/// (its URL does not depend on them): the transfer, its work running on a task, and where
/// its expected SHA-1 is told once the metadata is in.
struct EarlyOriginal {
    transfer: Arc<Transfer>,
    work: tokio::task::JoinHandle<FsResult<transfer::Fetched>>,
    sha1: tokio::sync::watch::Sender<Option<transfer::Told>>,
}

impl EarlyOriginal {
    /// Its result, once its work ends.
    async fn finish(self) -> FsResult<transfer::Fetched> {
        let EarlyOriginal { work, sha1, .. } = self;
        // Kept until the work ends: dropping it fails the check it waits on.
        let _told = sha1;
        work.await.map_err(|e| FsError::Internal(format!("transfer of an original: {e}")))?
    }
}

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

/// Where one rendition's bytes are.
#[derive(Debug, Clone)]
pub enum RenditionState {
    /// Complete in the cache (or, for an asset larger than the whole cache, in a temporary
    /// file that lives as long as the content).
    Complete {
        /// The content file.
        path: std::path::PathBuf,
        /// Its length.
        size: u64,
    },
    /// Arriving in the background.
    InFlight(Arc<Transfer>),
}

/// The materialized (or materializing) content of one asset: every eager rendition is
/// complete or in flight; a rendition left out of the selection is in the map only once it
/// has been opened (until then it is neither, and its size is the manifest's listed one).
#[derive(Debug)]
pub struct AssetContent {
    /// Its manifest.
    pub manifest: Arc<Manifest>,
    /// Guards only the map; never held across I/O.
    renditions: Mutex<HashMap<String, RenditionState>>,
    /// The version flag of the asset when this content was made (see
    /// `Materializer::versions`): renditions fetched later for it carry the same flag.
    superseded: Arc<AtomicBool>,
    /// Served without caching (larger than the whole cache): its files are temporary.
    uncached: bool,
    /// Temporary files removed when the content is dropped (for uncached assets; open
    /// descriptors keep their bytes readable after that).
    temps: Mutex<Vec<std::path::PathBuf>>,
}

impl AssetContent {
    fn new(
        manifest: Arc<Manifest>,
        renditions: HashMap<String, RenditionState>,
        uncached: bool,
        superseded: Arc<AtomicBool>,
    ) -> AssetContent {
        AssetContent {
            manifest,
            renditions: Mutex::new(renditions),
            superseded,
            uncached,
            temps: Mutex::new(Vec::new()),
        }
    }

    /// The state of one rendition.
    pub fn rendition(&self, name: &str) -> Option<RenditionState> {
        self.renditions.lock().get(name).cloned()
    }

    /// Records a finished transfer of `name`; a temporary file (not cached) is removed
    /// with the content.
    fn complete(&self, name: &str, fetched: &transfer::Fetched) -> RenditionState {
        let mut temps = self.temps.lock();
        if !fetched.cached && !temps.contains(&fetched.path) {
            temps.push(fetched.path.clone());
        }
        drop(temps);
        let state = RenditionState::Complete { path: fetched.path.clone(), size: fetched.size };
        self.renditions.lock().insert(name.to_string(), state.clone());
        state
    }
}

impl Drop for AssetContent {
    fn drop(&mut self) {
        for path in self.temps.get_mut().drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Keeps an asset from eviction while it lives.
#[derive(Debug)]
pub struct PinGuard {
    cache: Arc<Cache>,
    asset: String,
}

impl PinGuard {
    fn new(cache: &Arc<Cache>, asset: &str) -> PinGuard {
        cache.pin(asset);
        PinGuard { cache: Arc::clone(cache), asset: asset.to_string() }
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        self.cache.unpin(&self.asset);
    }
}

/// An open rendition: the file to read, and the transfer to wait on if it is still arriving.
#[derive(Debug)]
pub struct OpenRendition {
    /// The file (content file, or the temporary file of a transfer in progress).
    pub file: File,
    /// Its length when known.
    pub size: Option<u64>,
    /// The transfer to wait on before reading past what it has written.
    pub transfer: Option<Arc<Transfer>>,
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

    /// The flag of the version of `asset` being worked on (see `versions`).
    fn version(&self, asset: &str) -> Arc<AtomicBool> {
        Arc::clone(self.versions.lock().entry(asset.to_string()).or_default())
    }

    /// Notes whether the remote is still making `asset`'s renditions (the listing's
    /// `dam:assetState`): a manifest fetched meanwhile is provisional.
    pub fn set_processing(&self, asset: &str, processing: bool) {
        let mut set = self.processing.lock();
        if processing {
            set.insert(asset.to_string());
        } else {
            set.remove(asset);
        }
    }

    /// Forgets everything known of `asset` because the remote has a new version of it (or
    /// no longer has it): its manifest and content, in memory and in the cache. Open files
    /// keep reading the version they opened (their descriptors hold its bytes), transfers
    /// of the old version finish for their readers but never enter the cache, and the next
    /// open materializes the new version. Returns the old manifest, if one was known.
    /// Removes files: call it off the runtime's workers.
    pub fn invalidate(&self, asset: &str) -> Option<Arc<Manifest>> {
        if let Some(flag) = self.versions.lock().remove(asset) {
            flag.store(true, Ordering::SeqCst);
        }
        let content = self.contents.lock().remove(asset);
        let manifest =
            self.manifests.lock().remove(asset).or_else(|| content.as_ref().map(|c| Arc::clone(&c.manifest)));
        drop(content);
        self.cache.drop_asset(asset);
        manifest
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
        // Reads the index (and decodes a manifest) when the asset is not in memory.
        let cached = tokio::task::spawn_blocking(move || this.cached_content(&key)).await.ok().flatten();
        if let Some(content) = cached {
            Stats::add(&self.stats.cache_hits, 1);
            return Ok(content);
        }
        Stats::add(&self.stats.cache_misses, 1);
        let key = asset.to_string();
        self.content_flights
            .run(key.clone(), deadline, &format!("materializing {asset}"), || {
                let (this, key) = (Arc::clone(self), key.clone());
                async move { this.fetch_content(&key).await }
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

    /// An asset whose manifest and every rendition are in the cache.
    fn cached_content(&self, asset: &str) -> Option<Arc<AssetContent>> {
        let manifest = self.cached_manifest(asset)?;
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

    async fn fetch_content(self: Arc<Self>, asset: &str) -> FsResult<Arc<AssetContent>> {
        let version = self.version(asset);
        let mut early = self.early_original(asset, &version).await;
        // The flight bounds each remote step; the manifest wait gets the same budget.
        let manifest = match self.manifest(asset, self.config.step.deadline()).await {
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

    /// The transfer of rendition `r` of the asset of `manifest`, kept in the cache if `keep`,
    /// for the version of `superseded`.
    fn job(&self, manifest: &Manifest, r: &RenditionEntry, keep: bool, superseded: &Arc<AtomicBool>) -> Job {
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
    fn in_background(&self, job: &Job) -> bool {
        job.expected.is_some_and(|s| s > self.config.async_threshold)
    }

    /// Evicts until `need` more bytes of `asset` fit, if they can.
    async fn make_room(&self, asset: &str, need: u64) {
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
    async fn start_background(
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

    /// Starts the original's transfer before its manifest is known, when neither the
    /// manifest nor the original is in the cache (a cold open). Its SHA-1 is checked once
    /// the metadata tells it. None when the transfer cannot start (the open then fetches
    /// the original the ordinary way).
    async fn early_original(
        self: &Arc<Self>,
        asset: &str,
        version: &Arc<AtomicBool>,
    ) -> Option<EarlyOriginal> {
        if self.stored_manifest(asset).await.is_some() || self.cache.rendition(asset, "original").is_some() {
            return None;
        }
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
    fn follow_background(
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
