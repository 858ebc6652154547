//! Fetch bodies of the fake: cut into chunks, optionally slowed, held while the fake is
//! stalled, and optionally cut short with an error.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::super::{RemoteError, RemoteErrorKind, RemoteResult};

/// The state of one fetch body being streamed.
pub(super) struct Body {
    pub(super) data: Bytes,
    pub(super) pos: usize,
    pub(super) chunk_size: usize,
    pub(super) delay: Duration,
    pub(super) fails_after: Option<u64>,
    pub(super) stall: watch::Receiver<bool>,
    pub(super) path: String,
}

impl Body {
    /// The next chunk, after any stall and delay; `None` at the end.
    pub(super) async fn next(mut self) -> Option<(RemoteResult<Bytes>, Body)> {
        if self.pos >= self.data.len() {
            return None;
        }
        // A body stream does not count in `stalled()`: it holds no reference to the fake.
        let _ = self.stall.wait_for(|stalled| !*stalled).await;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mut end = (self.pos + self.chunk_size).min(self.data.len());
        if let Some(limit) = self.fails_after.map(|n| usize::try_from(n).unwrap_or(usize::MAX)) {
            if self.pos >= limit {
                self.pos = self.data.len();
                let error = RemoteError::new(RemoteErrorKind::Other, self.path.clone(), "connection reset");
                return Some((Err(error), self));
            }
            end = end.min(limit);
        }
        let chunk = self.data.slice(self.pos..end);
        self.pos = end;
        Some((Ok(chunk), self))
    }
}
