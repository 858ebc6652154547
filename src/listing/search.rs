//! `.search`: a remote full-text search under the mount root, its results named as links
//! and kept for the listing TTL.

use std::sync::Arc;

use tokio::time::Instant;

use super::Listings;
use crate::deadline::Deadline;
use crate::error::FsResult;
use crate::remote::Remote;

/// Most search results listed in a `.search` directory.
const SEARCH_LIMIT: usize = 1000;

/// Search results held in memory, at most (the oldest searches are dropped first, and asked
/// again at their next use).
pub(super) const HELD_RESULTS: u64 = 20 * SEARCH_LIMIT as u64;

/// Search results: (link name, asset path), by path.
pub type Results = Arc<Vec<(String, String)>>;

impl<R: Remote> Listings<R> {
    /// The words searched so far (the entries of `.search`).
    pub fn searched(&self) -> Vec<String> {
        self.searches.lock().keys().cloned().collect()
    }

    /// The assets under the root matching `words`, from memory within the TTL.
    pub async fn search(self: &Arc<Self>, words: &str, deadline: Deadline) -> FsResult<Results> {
        if let Some((at, results)) = self.searches.lock().get(words)
            && at.elapsed() < self.config.ttl
        {
            return Ok(Arc::clone(results));
        }
        let root = &self.config.root;
        let paths = deadline
            .run(|| format!("search for {words:?}"), self.remote.search(root, words, SEARCH_LIMIT))
            .await?;
        let mut paths: Vec<String> = paths
            .into_iter()
            .filter(|p| root.is_empty() || p.starts_with(&format!("{root}/")))
            .filter(|p| p.split('/').all(|s| crate::names::invalid_name(s).is_none()))
            .collect();
        paths.sort();
        paths.dedup();
        let results = Arc::new(crate::names::link_names(paths));
        let weight = results.len() as u64;
        self.searches.lock().insert(words.to_string(), (Instant::now(), Arc::clone(&results)), weight);
        Ok(results)
    }
}
