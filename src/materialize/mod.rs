//! Asset -> bytes, once. The first open of an asset fetches its manifest (metadata, tags,
//! rendition list) and every rendition: those at or under the async threshold before the
//! open returns, larger ones in the background while readers wait only for the bytes they
//! need. Concurrent openers share one fetch ([`flight::SingleFlight`]); every remote step is
//! bounded by the fetch timeout; a failure leaves nothing half-made and is not remembered.

pub mod flight;
pub mod manifest;
pub mod transfer;

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::cache::Cache;
use crate::error::{FsError, FsResult};
use crate::remote::Remote;
use crate::stats::Stats;
use flight::SingleFlight;
pub use manifest::{Manifest, RenditionEntry, TagRef};
use transfer::{Job, Transfer};

/// Most renditions of one asset downloaded at once.
const RENDITION_CONCURRENCY: usize = 4;

/// How the materializer behaves.
#[derive(Debug, Clone)]
pub struct MaterializeConfig {
    /// Bound on every remote step.
    pub fetch_timeout: Duration,
    /// Renditions larger than this are transferred in the background.
    pub async_threshold: u64,
}

/// Where one rendition's bytes are.
#[derive(Debug, Clone)]
pub enum RenditionState {
    /// Complete in the cache.
    Complete {
        /// The content file.
        path: std::path::PathBuf,
        /// Its length.
        size: u64,
    },
    /// Arriving in the background.
    InFlight(Arc<Transfer>),
}

/// The materialized (or materializing) content of one asset.
#[derive(Debug)]
pub struct AssetContent {
    /// Its manifest.
    pub manifest: Arc<Manifest>,
    /// Guards only the map; never held across I/O.
    renditions: Mutex<HashMap<String, RenditionState>>,
}

impl AssetContent {
    /// The state of one rendition.
    pub fn rendition(&self, name: &str) -> Option<RenditionState> {
        self.renditions.lock().get(name).cloned()
    }

    fn complete(&self, name: &str, fetched: &transfer::Fetched) {
        self.renditions.lock().insert(
            name.to_string(),
            RenditionState::Complete { path: fetched.path.clone(), size: fetched.size },
        );
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
    /// Decoded manifests (from the cache or the remote). Guards only the map.
    manifests: Mutex<HashMap<String, Arc<Manifest>>>,
    /// Assets with every rendition complete or in transfer. Guards only the map.
    contents: Mutex<HashMap<String, Arc<AssetContent>>>,
    manifest_flights: Arc<SingleFlight<String, Arc<Manifest>>>,
    content_flights: Arc<SingleFlight<String, Arc<AssetContent>>>,
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
            manifests: Mutex::new(HashMap::new()),
            contents: Mutex::new(HashMap::new()),
            manifest_flights: Arc::default(),
            content_flights: Arc::default(),
        })
    }

    /// The fetch timeout.
    pub fn fetch_timeout(&self) -> Duration {
        self.config.fetch_timeout
    }

    /// The manifest of `asset` if it is known without the remote.
    pub fn cached_manifest(&self, asset: &str) -> Option<Arc<Manifest>> {
        if let Some(m) = self.manifests.lock().get(asset) {
            return Some(Arc::clone(m));
        }
        let json = self.cache.asset(asset)?.manifest?;
        match serde_json::from_str::<Manifest>(&json) {
            Ok(m) => {
                let m = Arc::new(m);
                self.manifests.lock().insert(asset.to_string(), Arc::clone(&m));
                Some(m)
            }
            Err(e) => {
                log::warn!("cache: the manifest of {asset} does not parse ({e}); it will be fetched again");
                None
            }
        }
    }

    /// Every manifest known locally (for the local tag taxonomy).
    pub fn known_manifests(&self) -> Vec<Arc<Manifest>> {
        self.manifests.lock().values().cloned().collect()
    }

    /// The manifest of `asset`, from the cache or the remote.
    pub async fn manifest(self: &Arc<Self>, asset: &str, deadline: Instant) -> FsResult<Arc<Manifest>> {
        if let Some(m) = self.cached_manifest(asset) {
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
        let m = manifest::fetch(&*self.remote, &self.titles, &key, self.config.fetch_timeout).await?;
        Stats::add(&self.stats.manifests_fetched, 1);
        let json = serde_json::to_string(&m).map_err(|e| FsError::Io(std::io::Error::other(e)))?;
        self.cache.put_manifest(&key, json);
        let m = Arc::new(m);
        self.manifests.lock().insert(key, Arc::clone(&m));
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
        self.cache.asset(asset)?.renditions.get("original").map(|r| r.size)
    }

    /// Materializes `asset`: when this returns, every rendition is complete or in transfer.
    pub async fn materialize(
        self: &Arc<Self>,
        asset: &str,
        deadline: Instant,
    ) -> FsResult<Arc<AssetContent>> {
        if let Some(content) = self.contents.lock().get(asset) {
            self.cache.touch(asset);
            Stats::add(&self.stats.cache_hits, 1);
            return Ok(Arc::clone(content));
        }
        if let Some(content) = self.from_cache(asset) {
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

    /// An asset whose manifest and every rendition are in the cache.
    fn from_cache(&self, asset: &str) -> Option<Arc<AssetContent>> {
        let manifest = self.cached_manifest(asset)?;
        let cached = self.cache.asset(asset)?;
        let mut renditions = HashMap::new();
        for r in &manifest.renditions {
            let c = cached.renditions.get(&r.name)?;
            let path = self.cache.content_path(asset, &r.name);
            renditions.insert(r.name.clone(), RenditionState::Complete { path, size: c.size });
        }
        let content = Arc::new(AssetContent { manifest, renditions: Mutex::new(renditions) });
        self.contents.lock().insert(asset.to_string(), Arc::clone(&content));
        self.cache.touch(asset);
        Some(content)
    }

    async fn fetch_content(self: Arc<Self>, asset: &str) -> FsResult<Arc<AssetContent>> {
        // The flight bounds each remote step; the manifest wait gets the same budget.
        let manifest = self.manifest(asset, Instant::now() + self.config.fetch_timeout).await?;
        let cached = self.cache.asset(asset).unwrap_or_default();
        let mut states = HashMap::new();
        let mut sync_jobs = Vec::new();
        let mut async_jobs = Vec::new();
        for r in &manifest.renditions {
            if let Some(c) = cached.renditions.get(&r.name) {
                let path = self.cache.content_path(asset, &r.name);
                states.insert(r.name.clone(), RenditionState::Complete { path, size: c.size });
                continue;
            }
            let job = Job {
                asset: asset.to_string(),
                rendition: r.name.clone(),
                sha1: if r.name == "original" { manifest.sha1.clone() } else { None },
                idle_timeout: self.config.fetch_timeout,
            };
            // The size of the original may only be known from dam:size.
            let size = r.size.or(if r.name == "original" { manifest.size } else { None });
            if size.is_some_and(|s| s > self.config.async_threshold) {
                async_jobs.push(job);
            } else {
                sync_jobs.push(job);
            }
        }

        let results = futures_util::stream::iter(sync_jobs)
            .map(|job| {
                let this = Arc::clone(&self);
                async move {
                    let (_, work) = transfer::start(
                        Arc::clone(&this.remote),
                        Arc::clone(&this.cache),
                        Arc::clone(&this.stats),
                        job.clone(),
                    )?;
                    work.await.map(|f| (job.rendition, f))
                }
            })
            .buffer_unordered(RENDITION_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for result in results {
            let (name, fetched) = result?;
            states.insert(name, RenditionState::Complete { path: fetched.path, size: fetched.size });
        }

        let content =
            Arc::new(AssetContent { manifest: Arc::clone(&manifest), renditions: Mutex::new(states) });
        for job in async_jobs {
            let name = job.rendition.clone();
            let (t, work) = transfer::start(
                Arc::clone(&self.remote),
                Arc::clone(&self.cache),
                Arc::clone(&self.stats),
                job,
            )?;
            content.renditions.lock().insert(name.clone(), RenditionState::InFlight(t));
            let this = Arc::clone(&self);
            let content_ref = Arc::clone(&content);
            let asset = asset.to_string();
            tokio::spawn(async move {
                match work.await {
                    Ok(fetched) => content_ref.complete(&name, &fetched),
                    Err(e) => {
                        log::warn!("{asset}: background transfer of {name} failed: {e}");
                        // Forget the content so that the next open starts a new transfer.
                        let mut contents = this.contents.lock();
                        if contents.get(&asset).is_some_and(|c| Arc::ptr_eq(c, &content_ref)) {
                            contents.remove(&asset);
                        }
                    }
                }
            });
        }
        self.contents.lock().insert(asset.to_string(), Arc::clone(&content));
        Ok(content)
    }

    /// Opens a rendition for reading, materializing its asset first.
    pub async fn open(
        self: &Arc<Self>,
        asset: &str,
        rendition: &str,
        deadline: Instant,
    ) -> FsResult<OpenRendition> {
        let content = self.materialize(asset, deadline).await?;
        // A transfer may finish (and rename its file) between reading the state and
        // opening the file: read the state again then.
        for _ in 0..3 {
            match content.rendition(rendition).ok_or(FsError::NotFound)? {
                RenditionState::Complete { path, size } => match File::open(&path) {
                    Ok(file) => return Ok(OpenRendition { file, size: Some(size), transfer: None }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        log::warn!("cache: {} vanished; {asset} will be fetched again", path.display());
                        self.contents.lock().remove(asset);
                        return Err(FsError::Io(e));
                    }
                    Err(e) => return Err(FsError::Io(e)),
                },
                RenditionState::InFlight(t) => match File::open(&t.temp) {
                    Ok(file) => {
                        let size = t.progress().total;
                        return Ok(OpenRendition { file, size, transfer: Some(t) });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let progress = t.wait_for(u64::MAX, deadline, rendition).await?;
                        if let transfer::Phase::Done(path) = progress.phase {
                            let file = File::open(&path)?;
                            return Ok(OpenRendition { file, size: Some(progress.written), transfer: None });
                        }
                    }
                    Err(e) => return Err(FsError::Io(e)),
                },
            }
        }
        Err(FsError::Io(std::io::Error::other(format!("{asset} {rendition}: cannot open the transfer"))))
    }
}
