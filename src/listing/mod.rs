//! The listing and search service, beside the materializer under the namespace. Folder
//! listings: fetched from the remote (names, then attributes in bulk), checked (POSIX
//! names, reserved names, formats), persisted in the cache, served from memory, and re-read
//! after the TTL. A stale listing keeps serving while it is re-read in the background, and
//! keeps serving if that re-read fails: the remote being away never takes a listing away.
//! Full-text searches ([`search`]) are remote queries whose results are kept for the TTL.
//! [`walk`] lists the whole tree in the background (`--prefetch-listings`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::bounded::Bounded;
use crate::cache::Cache;
use crate::deadline::{Budget, Deadline};
use crate::error::{FsError, FsResult};
use crate::flight::SingleFlight;
use crate::names::invalid_name;
use crate::remote::{EntryKind, Remote};
use crate::stats::Stats;
pub use formats::{Formats, guess_format};

mod formats;
pub mod search;
pub mod walk;

/// Names reserved in every folder.
pub const RENDITIONS: &str = ".renditions";
/// Names reserved in every folder.
pub const METADATA: &str = ".metadata";
/// Names reserved at the mount root.
pub const TAGS: &str = ".tags";
/// Names reserved at the mount root.
pub const SEARCH: &str = ".search";

/// A child of a folder, with what `ls -l` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    /// Its name.
    pub name: String,
    /// Folder or asset.
    pub folder: bool,
    /// `dam:size` (assets).
    pub size: Option<u64>,
    /// Last modification, seconds since the epoch.
    pub mtime: Option<i64>,
    /// `dc:format` (assets).
    pub format: Option<String>,
    /// What tells this version of the asset from the next, when the remote said: its
    /// `jcr:lastModified`, size, `dam:sha1` and `dam:assetState`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<String>,
    /// The remote is still making its renditions (`dam:assetState` is not `processed`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub processing: bool,
}

impl Child {
    /// The modification time (the epoch when unknown).
    pub fn modified(&self) -> SystemTime {
        match self.mtime {
            Some(s) if s >= 0 => UNIX_EPOCH + Duration::from_secs(s as u64),
            _ => UNIX_EPOCH,
        }
    }
}

/// What a re-read listing found different from the listing before it (names of children).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A child that was not there.
    Added(String),
    /// A child that is gone.
    Removed(String),
    /// An asset whose stamp changed: a new version.
    Modified(String),
}

/// Called with a folder and what changed in it, once its new listing serves.
pub type ChangeHook = Box<dyn Fn(&str, &[Change]) + Send + Sync>;

/// The hook of a listing service, set once.
#[derive(Default)]
struct OnChange(std::sync::OnceLock<ChangeHook>);

impl std::fmt::Debug for OnChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "OnChange(set)" } else { "OnChange(unset)" })
    }
}

/// What changed from `old` to `new`. An asset is modified only when both listings have its
/// stamp and they differ: a listing without attributes never invalidates anything.
pub fn changes(old: &Listing, new: &Listing) -> Vec<Change> {
    let mut out = Vec::new();
    for child in &new.children {
        match old.get(&child.name) {
            None => out.push(Change::Added(child.name.clone())),
            Some(before) if before.folder != child.folder => {
                out.push(Change::Removed(child.name.clone()));
                out.push(Change::Added(child.name.clone()));
            }
            Some(before) => {
                if let (false, Some(a), Some(b)) = (child.folder, &before.stamp, &child.stamp)
                    && a != b
                {
                    out.push(Change::Modified(child.name.clone()));
                }
            }
        }
    }
    out.extend(
        old.children.iter().filter(|c| new.get(&c.name).is_none()).map(|c| Change::Removed(c.name.clone())),
    );
    out
}

/// A checked folder listing.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Listing {
    /// Children in the remote's order.
    pub children: Vec<Child>,
    #[serde(skip)]
    by_name: HashMap<String, usize>,
}

impl Listing {
    fn new(children: Vec<Child>) -> Listing {
        let by_name = children.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        Listing { children, by_name }
    }

    /// The child called `name`.
    pub fn get(&self, name: &str) -> Option<&Child> {
        self.by_name.get(name).map(|&i| &self.children[i])
    }
}

#[derive(Debug)]
struct Held {
    listing: Arc<Listing>,
    /// When it was fetched by this mount; `None` for a listing loaded from the cache.
    fetched: Option<Instant>,
}

/// How listings behave.
#[derive(Debug, Clone)]
pub struct ListingConfig {
    /// The folder that is the mount root (reserved names `.tags`, `.search` apply there).
    pub root: String,
    /// The budget of each remote request.
    pub step: Budget,
    /// Age after which a listing is re-read.
    pub ttl: Duration,
    /// Which assets are shown.
    pub formats: Formats,
    /// The remote's base URL (no credentials), for the URL of an asset.
    pub remote_url: String,
}

/// Steps' worth of budget a whole listing may take (its pages, its attribute queries), each
/// request bounded by one step: 60 steps, five minutes with the default fetch timeout.
const LISTING_CAP_STEPS: u32 = 60;

/// Children of the listings held in memory, at most: about 8 MiB of names, formats and
/// stamps, and more than the folders a walk or a web server works in at a time. A
/// listing larger than that alone is held alone.
const HELD_CHILDREN: u64 = 32_768;

/// A listing of at least this many children frees enough, once built, to be worth handing
/// the memory back to the system (see [`crate::bounded::give_back_memory`]).
const LARGE_LISTING: u64 = 1_000;

/// The listings of a mount.
#[derive(Debug)]
pub struct Listings<R> {
    remote: Arc<R>,
    cache: Arc<Cache>,
    stats: Arc<Stats>,
    config: ListingConfig,
    /// Listings in memory, bounded by their children ([`HELD_CHILDREN`]); the others are
    /// read back from the cache at their next use. Guards only the map; never held across
    /// I/O or an await.
    held: Mutex<Bounded<String, Held>>,
    flights: Arc<SingleFlight<String, Arc<Listing>>>,
    /// Search results by words, with when they were fetched, bounded by their results
    /// ([`search::HELD_RESULTS`]). Guards the map only.
    searches: Mutex<Bounded<String, (Instant, search::Results)>>,
    /// When this mount began, seconds since the epoch: a listing persisted since then
    /// was fetched by it, and keeps its age when read back.
    started: i64,
    /// Told of what each re-read listing changed.
    on_change: OnChange,
}

impl<R: Remote> Listings<R> {
    /// Listings over `remote`, persisted in `cache`.
    pub fn new(remote: Arc<R>, cache: Arc<Cache>, stats: Arc<Stats>, config: ListingConfig) -> Arc<Self> {
        Arc::new(Listings {
            remote,
            cache,
            stats,
            config,
            held: Mutex::new(Bounded::new(HELD_CHILDREN)),
            flights: Arc::default(),
            searches: Mutex::new(Bounded::new(search::HELD_RESULTS)),
            started: crate::cache::now_secs(),
            on_change: OnChange::default(),
        })
    }

    /// Sets what is told of the changes each re-read listing finds (once).
    pub fn on_change(&self, hook: ChangeHook) {
        let _ = self.on_change.0.set(hook);
    }

    /// The folder mounted as the root.
    pub fn root(&self) -> &str {
        &self.config.root
    }

    /// The URL of an asset's original on the remote (for `user.dam.remote`): percent-encoded
    /// per segment, never with credentials.
    pub fn asset_url(&self, asset: &str) -> String {
        crate::remote::asset_url(&self.config.remote_url, asset)
    }

    /// The listing of `folder` if one is known without the remote (memory or cache).
    pub fn known(&self, folder: &str) -> Option<Arc<Listing>> {
        if let Some(held) = self.held.lock().get(folder) {
            return Some(Arc::clone(&held.listing));
        }
        let (listing, fetched) = self.stored(folder)?;
        let weight = listing.children.len() as u64;
        self.held.lock().insert(folder.to_string(), Held { listing: Arc::clone(&listing), fetched }, weight);
        Some(listing)
    }

    /// The listing of `folder` persisted in the cache, with when it was fetched if this
    /// mount fetched it (one held in memory before, then dropped for room).
    fn stored(&self, folder: &str) -> Option<(Arc<Listing>, Option<Instant>)> {
        let (json, fetched_at) = self.cache.listing(folder)?;
        match serde_json::from_str::<Listing>(&json) {
            Ok(listing) => {
                let listing = Arc::new(Listing::new(listing.children));
                let age = crate::cache::now_secs().saturating_sub(fetched_at);
                let fetched = (fetched_at >= self.started)
                    .then(|| Instant::now().checked_sub(Duration::from_secs(age.max(0) as u64)))
                    .flatten();
                Some((listing, fetched))
            }
            Err(e) => {
                log::warn!("cache: the listing of /{folder} does not parse ({e}); it will be read again");
                None
            }
        }
    }

    /// The listing of `folder`: from memory if fresh; stale ones are served at once and
    /// re-read in the background; unknown ones are fetched within `deadline`.
    pub async fn get(self: &Arc<Self>, folder: &str, deadline: Deadline) -> FsResult<Arc<Listing>> {
        let fresh = {
            let mut held = self.held.lock();
            held.get(folder)
                .map(|h| (Arc::clone(&h.listing), h.fetched.is_some_and(|t| t.elapsed() < self.config.ttl)))
        };
        let known = match fresh {
            Some((listing, true)) => return Ok(listing),
            Some((listing, false)) => Some(listing),
            None => {
                // Reads the index and decodes the listing: on a blocking thread.
                let (this, key) = (Arc::clone(self), folder.to_string());
                tokio::task::spawn_blocking(move || this.known(&key)).await.ok().flatten()
            }
        };
        if let Some(listing) = known {
            self.refresh_in_background(folder);
            return Ok(listing);
        }
        self.fetch(folder, deadline).await
    }

    fn refresh_in_background(self: &Arc<Self>, folder: &str) {
        let key = folder.to_string();
        if self.flights.in_flight(&key) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let deadline = this.config.step.times(LISTING_CAP_STEPS).deadline();
            if let Err(e) = this.fetch(&key, deadline).await {
                log::warn!("/{key}: re-reading the listing failed, the old one keeps serving: {e}");
                // Try again after another TTL, not at every lookup: an offline mount would
                // otherwise ask (and log) on every access.
                if let Some(held) = this.held.lock().get_mut(&key) {
                    held.fetched = Some(Instant::now());
                }
            }
        });
    }

    async fn fetch(self: &Arc<Self>, folder: &str, deadline: Deadline) -> FsResult<Arc<Listing>> {
        let key = folder.to_string();
        self.flights
            .run(key.clone(), deadline, &format!("listing /{folder}"), || {
                let (this, key) = (Arc::clone(self), key.clone());
                async move { this.fetch_now(key).await }
            })
            .await
    }

    async fn fetch_now(self: Arc<Self>, key: String) -> FsResult<Arc<Listing>> {
        let listing = Arc::new(self.read_remote(&key).await?);
        match serde_json::to_string(&*listing) {
            Ok(json) => self.cache.put_listing(&key, json),
            Err(e) => log::warn!("/{key}: cannot persist the listing: {e}"),
        }
        let held = Held { listing: Arc::clone(&listing), fetched: Some(Instant::now()) };
        let weight = listing.children.len() as u64;
        if weight >= LARGE_LISTING {
            // Its pages, attributes and persisted form were freed: give that memory back
            // (off the runtime's workers; nobody waits for it).
            drop(tokio::task::spawn_blocking(crate::bounded::give_back_memory));
        }
        let mut old = self.held.lock().insert(key.clone(), held, weight).map(|h| h.listing);
        if old.is_none() {
            // Dropped from memory for room (or never read): the persisted one is the old one.
            let (this, folder) = (Arc::clone(&self), key.clone());
            old = tokio::task::spawn_blocking(move || this.stored(&folder).map(|(l, _)| l))
                .await
                .ok()
                .flatten();
        }
        if let (Some(old), Some(hook)) = (old, self.on_change.0.get()) {
            let changed = changes(&old, &listing);
            if !changed.is_empty() {
                log::info!("/{key}: the re-read listing changed {} entries", changed.len());
                hook(&key, &changed);
            }
        }
        Ok(listing)
    }

    async fn read_remote(&self, folder: &str) -> FsResult<Listing> {
        // Each request of the remote is bounded on its own (a page, a query page); the whole
        // listing only by a cap, so that a large folder on a slow remote still lists.
        let cap = self.config.step.times(LISTING_CAP_STEPS);
        // The attributes are asked for in bulk while the folder is listed: a large folder
        // costs the longer of the two, not their sum.
        let listed = cap.run(|| format!("listing /{folder}"), self.remote.list_folder(folder));
        let bulk = async {
            let bulk = cap.run(|| format!("attributes of /{folder}"), self.remote.bulk_folder_attrs(folder));
            Ok::<_, FsError>(bulk.await)
        };
        let (raw, bulk) = futures_util::future::try_join(listed, bulk).await?;
        Stats::add(&self.stats.listings_fetched, 1);
        let prefix = if folder.is_empty() { String::new() } else { format!("{folder}/") };
        let is_root = folder == self.config.root;
        let mut children: Vec<Child> = Vec::with_capacity(raw.children.len());
        let mut seen = std::collections::HashSet::new();
        for entry in raw.children {
            if let Some(why) = invalid_name(&entry.name) {
                log::warn!("/{prefix}{:?}: left out of the listing: {why}", entry.name);
                continue;
            }
            let reserved = entry.name == RENDITIONS
                || entry.name == METADATA
                || (is_root && (entry.name == TAGS || entry.name == SEARCH));
            if reserved {
                log::warn!("/{prefix}{}: left out of the listing: the name is reserved by damfs", entry.name);
                continue;
            }
            if !seen.insert(entry.name.clone()) {
                log::warn!("/{prefix}{}: listed twice by the remote; shown once", entry.name);
                continue;
            }
            children.push(Child {
                name: entry.name,
                folder: entry.kind == EntryKind::Folder,
                size: None,
                mtime: None,
                format: None,
                stamp: None,
                processing: false,
            });
        }
        let assets: Vec<String> =
            children.iter().filter(|c| !c.folder).map(|c| format!("{prefix}{}", c.name)).collect();
        if !assets.is_empty() {
            let attrs = match bulk {
                Ok(Some(attrs)) => Ok(attrs),
                Err(e) => Err(e),
                Ok(None) => {
                    cap.run(|| format!("attributes of /{folder}"), self.remote.folder_attrs(folder, &assets))
                        .await
                }
            };
            let attrs = match attrs {
                Ok(attrs) => attrs,
                // What the listing gives (names and kinds) still serves: sizes and dates
                // are unknown until the next re-read, never the folder itself.
                Err(e) => {
                    log::warn!("/{folder}: attributes of its assets failed, listed without them: {e}");
                    Vec::new()
                }
            };
            let by_name: HashMap<&str, &crate::remote::AssetAttrs> =
                attrs.iter().map(|a| (a.path.rsplit('/').next().unwrap_or(&a.path), a)).collect();
            for child in children.iter_mut().filter(|c| !c.folder) {
                if let Some(a) = by_name.get(child.name.as_str()) {
                    child.size = a.size;
                    child.format = a.format.clone();
                    let since_epoch = a.modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok());
                    child.mtime = since_epoch.map(|d| d.as_secs() as i64);
                    child.processing = a.state.as_deref().is_some_and(|s| s != "processed");
                    child.stamp = Some(format!(
                        "{}|{}|{}|{}",
                        since_epoch.map_or(-1, |d| d.as_millis() as i128),
                        a.size.map_or(-1, i128::from),
                        a.sha1.as_deref().unwrap_or(""),
                        a.state.as_deref().unwrap_or("")
                    ));
                }
            }
        }
        let formats = &self.config.formats;
        children.retain(|c| c.folder || formats.allows(c.format.as_deref(), &c.name));
        Ok(Listing::new(children))
    }
}
