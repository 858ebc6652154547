//! What an open holds: the materialized (or materializing) content of an asset with the
//! state of each rendition, the pin that keeps it from eviction, and an open rendition.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::Mutex;

use super::manifest::Manifest;
use super::transfer::{self, Transfer};
use crate::cache::Cache;

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
    pub(super) renditions: Mutex<HashMap<String, RenditionState>>,
    /// The version flag of the asset when this content was made (see
    /// `Materializer::versions`): renditions fetched later for it carry the same flag.
    pub(super) superseded: Arc<AtomicBool>,
    /// Served without caching (larger than the whole cache): its files are temporary.
    pub(super) uncached: bool,
    /// Temporary files removed when the content is dropped (for uncached assets; open
    /// descriptors keep their bytes readable after that).
    pub(super) temps: Mutex<Vec<std::path::PathBuf>>,
}

impl AssetContent {
    pub(super) fn new(
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
    pub(super) fn complete(&self, name: &str, fetched: &transfer::Fetched) -> RenditionState {
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
    pub(super) fn new(cache: &Arc<Cache>, asset: &str) -> PinGuard {
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
