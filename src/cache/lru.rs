//! The cache's bound in bytes: the in-memory view of what content takes (per asset, in
//! whole blocks), the order of last access, pins of assets in use, bytes of transfers in
//! progress, and eviction of whole least-recently-used assets.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::sync::atomic::Ordering;

use super::{Cache, CachedRendition, IndexOp, index, now_secs};

/// LRU bookkeeping of one asset with content.
#[derive(Debug, Clone, Copy)]
pub(super) struct Usage {
    pub(super) bytes: u64,
    pub(super) last_access: i64,
}

/// The in-memory view. Guarded by `Cache::state`; never held across disk I/O.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Every asset with content, loaded at open.
    pub(super) usage: HashMap<String, Usage>,
    /// The same assets by (last access, path): the eviction order.
    pub(super) lru: BTreeSet<(i64, String)>,
    /// Sum of `usage` bytes.
    pub(super) total: u64,
    /// Renditions of the assets looked at so far (loaded from the index on first need).
    pub(super) renditions: HashMap<String, HashMap<String, CachedRendition>>,
    /// Assets that must not be evicted (open, or being materialized), with a count.
    pub(super) pins: HashMap<String, usize>,
}

impl State {
    pub(super) fn touch(&mut self, asset: &str, at: i64) -> bool {
        let Some(usage) = self.usage.get_mut(asset) else { return false };
        if usage.last_access == at {
            return false;
        }
        self.lru.remove(&(usage.last_access, asset.to_string()));
        usage.last_access = at;
        self.lru.insert((at, asset.to_string()));
        true
    }

    pub(super) fn add(&mut self, asset: &str, bytes: u64, at: i64) {
        let usage = self.usage.entry(asset.to_string()).or_insert(Usage { bytes: 0, last_access: at });
        self.lru.remove(&(usage.last_access, asset.to_string()));
        usage.bytes = usage.bytes.saturating_add(bytes);
        usage.last_access = at;
        self.lru.insert((at, asset.to_string()));
        self.total = self.total.saturating_add(bytes);
    }

    /// Drops an asset's content from the view. Returns its bytes and the renditions the
    /// view knew of: those committed by this process may not be in the index yet.
    pub(super) fn remove(&mut self, asset: &str) -> (u64, Vec<String>) {
        // Known empty, not unknown: the index may not have applied the drop yet.
        let known = self.renditions.insert(asset.to_string(), HashMap::new());
        let names = known.map(|m| m.into_keys().collect()).unwrap_or_default();
        let bytes = match self.usage.remove(asset) {
            Some(usage) => {
                self.lru.remove(&(usage.last_access, asset.to_string()));
                self.total = self.total.saturating_sub(usage.bytes);
                usage.bytes
            }
            None => 0,
        };
        (bytes, names)
    }
}

impl Cache {
    /// Records an access to an asset (for LRU).
    pub fn touch(&self, asset: &str) {
        let now = now_secs();
        if self.state.lock().touch(asset, now) {
            self.send(IndexOp::Touch { path: asset.into(), at: now });
        }
    }
    /// Keeps `asset` from eviction until [`Cache::unpin`].
    pub fn pin(&self, asset: &str) {
        *self.state.lock().pins.entry(asset.to_string()).or_default() += 1;
    }
    /// Releases one [`Cache::pin`].
    pub fn unpin(&self, asset: &str) {
        let mut state = self.state.lock();
        if let Some(n) = state.pins.get_mut(asset) {
            *n -= 1;
            if *n == 0 {
                state.pins.remove(asset);
            }
        }
    }
    /// Makes room for `need` more bytes by evicting least-recently-used assets that are not
    /// pinned. Returns false when even that cannot bring the total under the cap (the
    /// transfer then goes ahead: the cap is exceeded only by what is open).
    pub fn make_room(&self, need: u64) -> bool {
        let Some(cap) = self.cap else { return true };
        // Transfers in progress take room too: they are about to become content.
        let need = need.saturating_add(self.temp_bytes());
        let victims: Vec<(Vec<String>, String)> = {
            let mut state = self.state.lock();
            let mut victims = Vec::new();
            let mut total = state.total;
            for (_, asset) in state.lru.iter() {
                if total.saturating_add(need) <= cap {
                    break;
                }
                if state.pins.contains_key(asset) {
                    continue;
                }
                total = total.saturating_sub(state.usage.get(asset).map(|u| u.bytes).unwrap_or(0));
                victims.push(asset.clone());
            }
            victims.into_iter().map(|asset| (state.remove(&asset).1, asset)).collect()
        };
        for (names, asset) in &victims {
            log::info!("cache: evicting {asset} (least recently used) to stay under {cap} bytes");
            self.remove_files(asset, names);
        }
        self.state.lock().total.saturating_add(need) <= cap
    }
    /// Drops the content of every asset not in use; returns (assets, bytes) dropped.
    pub fn drop_unused(&self) -> (u64, u64) {
        let victims: Vec<(String, (u64, Vec<String>))> = {
            let mut state = self.state.lock();
            let unused: Vec<String> =
                state.usage.keys().filter(|a| !state.pins.contains_key(*a)).cloned().collect();
            unused.into_iter().map(|a| (a.clone(), state.remove(&a))).collect()
        };
        for (asset, (_, names)) in &victims {
            self.remove_files(asset, names);
        }
        (victims.len() as u64, victims.iter().map(|(_, (b, _))| *b).fold(0, u64::saturating_add))
    }
    /// Deletes an asset's content files: the renditions the in-memory view knew (`known`)
    /// and those the index has, which differ while the index writer lags behind a commit.
    pub(super) fn remove_files(&self, asset: &str, known: &[String]) {
        let mut names: HashSet<String> = known.iter().cloned().collect();
        let indexed = self.query("renditions", |c| index::renditions(c, asset)).unwrap_or_default();
        names.extend(indexed.into_iter().map(|(n, _, _)| n));
        for name in names {
            let _ = fs::remove_file(self.content_path(asset, &name));
        }
        self.send(IndexOp::DropContent { path: asset.into() });
        self.content_dropped(asset);
    }
    /// Number of assets with content and bytes of content (charged in whole blocks).
    pub fn usage(&self) -> (u64, u64) {
        let state = self.state.lock();
        (state.usage.len() as u64, state.total)
    }
    /// Charges `bytes` a transfer wrote under `tmp/` against the cap.
    pub fn charge_temp(&self, bytes: u64) {
        self.temp_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    /// Gives back a [`Cache::charge_temp`] charge (the transfer ended or committed).
    pub fn release_temp(&self, bytes: u64) {
        let _ = self
            .temp_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(t.saturating_sub(bytes)));
    }
    /// Bytes of transfers in progress.
    pub fn temp_bytes(&self) -> u64 {
        self.temp_bytes.load(Ordering::Relaxed)
    }
    /// Whether content plus transfers in progress exceed the cap.
    pub fn over_cap(&self) -> bool {
        let total = self.state.lock().total;
        self.cap.is_some_and(|cap| total.saturating_add(self.temp_bytes()) > cap)
    }
}
