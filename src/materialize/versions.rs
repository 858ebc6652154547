//! Versions of an asset: what a new version announced by a listing drops, the flag that
//! keeps the old version's work out of the cache, and assets the remote is still processing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Manifest, Materializer};
use crate::remote::Remote;

impl<R: Remote> Materializer<R> {
    /// The flag of the version of `asset` being worked on (see `versions`).
    pub(super) fn version(&self, asset: &str) -> Arc<AtomicBool> {
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
}
