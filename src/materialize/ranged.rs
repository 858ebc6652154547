//! A large rendition fetched as concurrent ranged GETs. The file is cut into parts of
//! [`PART`] bytes; at most [`WINDOW`] are in transfer at a time, in the order readers need
//! them: ascending from the last offset a reader waited for, and a part a reader waits for
//! starts at once. The answer that announced the length is kept as the transfer of the first
//! part and goes on into the next parts for as long as nobody else has taken them. A remote
//! that ignores `Range` answers with the whole body: that answer then fills every part still
//! missing, in order, and no more ranged GETs are sent.
//!
//! Each part is written at its offset as it arrives, so a reader waits only for the bytes
//! it asked for. The caller computes the digests once every part is in, from the file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Buf, Bytes};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::spool::{WRITE_BATCH, WRITE_CHUNKS};
use crate::deadline::Budget;
use crate::error::{FsError, FsResult};
use crate::remote::{Download, Remote, RemoteError, RemoteErrorKind};
use crate::stats::Stats;

/// Length of a part: one ranged GET.
pub const PART: u64 = 8 << 20;

/// The smallest rendition fetched in parts: smaller ones come in one answer.
pub const MIN_LENGTH: u64 = 2 * PART;

/// Most parts in transfer at a time. A part a reader waits for may start beyond it, by
/// two more.
pub const WINDOW: usize = 4;

/// Parts started beyond the window for readers waiting on them.
const URGENT: usize = 2;

/// The bytes present from the start of each part ([`PART`] bytes each, the last one
/// shorter), as readers see them.
pub type Filled = Arc<[u64]>;

/// How many bytes from `offset` on are present without a gap, by `filled`.
pub fn present_from(filled: &[u64], offset: u64) -> u64 {
    let mut at = offset;
    while let Some(&have) = usize::try_from(at / PART).ok().and_then(|i| filled.get(i)) {
        let end = (at / PART) * PART + have;
        if end <= at {
            break;
        }
        at = end;
        if have < PART {
            break;
        }
    }
    at - offset
}

/// Offsets readers are waiting for, told to the transfer so that it fetches them first.
#[derive(Debug, Default)]
pub struct Demand {
    wanted: Mutex<Vec<u64>>,
    told: Notify,
}

impl Demand {
    /// A reader waits for the bytes at `offset`.
    pub fn want(&self, offset: u64) {
        self.wanted.lock().push(offset);
        self.told.notify_one();
    }

    fn take(&self) -> Vec<u64> {
        std::mem::take(&mut *self.wanted.lock())
    }
}

/// What a ranged transfer fetches and within which bounds.
pub struct Source<'a, R: Remote> {
    /// The remote.
    pub remote: &'a R,
    /// DAM path of the asset.
    pub asset: &'a str,
    /// Rendition name.
    pub rendition: &'a str,
    /// Longest wait for any single step (a part's headers, the next chunk).
    pub step: Budget,
    /// When the whole transfer must have ended.
    pub overall: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Missing,
    Running,
    Done,
}

/// One part: who has it, and how much of it is written.
#[derive(Debug, Clone, Copy)]
struct Slot {
    claim: Claim,
    filled: u64,
}

/// The parts of one transfer, shared by its workers.
struct Parts {
    total: u64,
    /// Each part's claim and the bytes written from its start, under one lock.
    slots: Mutex<Vec<Slot>>,
    /// Set once the remote answered a range with the whole body.
    no_ranges: AtomicBool,
}

impl Parts {
    fn span(&self, part: usize) -> (u64, u64) {
        let start = part as u64 * PART;
        (start, (start + PART).min(self.total))
    }

    /// Takes part `i` if nobody has it.
    fn claim(&self, i: usize) -> bool {
        let mut slots = self.slots.lock();
        match slots.get_mut(i) {
            Some(slot) if slot.claim == Claim::Missing => {
                slot.claim = Claim::Running;
                true
            }
            _ => false,
        }
    }

    /// The first missing part from `from` on, wrapping round.
    fn next_missing(&self, from: usize) -> Option<usize> {
        let slots = self.slots.lock();
        let n = slots.len();
        (0..n).map(|k| (from + k) % n).find(|&i| slots[i].claim == Claim::Missing)
    }

    fn all_done(&self) -> bool {
        self.slots.lock().iter().all(|s| s.claim == Claim::Done)
    }
}

/// The error for a transfer the remote botched.
fn broken(what: String, cause: String) -> FsError {
    FsError::Remote(RemoteError::new(RemoteErrorKind::Other, what, cause))
}

/// Fetches the whole of a rendition of `total` bytes into `file` in parts, `head` (an
/// answer from offset 0 on) being the first. `publish` is told the bytes present in each
/// part whenever they grow; `demand` tells which offsets readers wait for.
pub async fn receive<R: Remote>(
    source: &Source<'_, R>,
    head: Download,
    total: u64,
    file: &Arc<File>,
    stats: &Stats,
    demand: &Demand,
    publish: &(dyn Fn(Filled) + Sync),
) -> FsResult<()> {
    let n = usize::try_from(total.div_ceil(PART)).map_err(|_| FsError::Invalid)?;
    let parts = Parts {
        total,
        slots: Mutex::new(vec![Slot { claim: Claim::Missing, filled: 0 }; n]),
        no_ranges: AtomicBool::new(false),
    };
    let worker = Worker { source, parts: &parts, file, stats, publish };
    parts.claim(0);
    let mut running = FuturesUnordered::new();
    running.push(worker.run(0, Some(head)).boxed());
    let mut next = 1usize;
    loop {
        for offset in demand.take() {
            let Ok(i) = usize::try_from(offset / PART) else { continue };
            if i >= n {
                continue;
            }
            // What follows a reader is what it reads next.
            next = (i + 1) % n;
            if running.len() < WINDOW + URGENT && !parts.no_ranges.load(Ordering::SeqCst) && parts.claim(i) {
                running.push(worker.run(i, None).boxed());
            }
        }
        while running.len() < WINDOW && !parts.no_ranges.load(Ordering::SeqCst) {
            let Some(i) = parts.next_missing(next) else { break };
            parts.claim(i);
            next = (i + 1) % n;
            running.push(worker.run(i, None).boxed());
        }
        if running.is_empty() {
            if parts.all_done() {
                break;
            }
            // Every answer stopped short of a part nobody has: ask for it again.
            let Some(i) = parts.next_missing(0) else { break };
            parts.claim(i);
            running.push(worker.run(i, None).boxed());
        }
        tokio::select! {
            ended = running.next() => {
                if let Some(result) = ended {
                    result?;
                }
            }
            () = demand.told.notified() => {}
        }
    }
    Ok(())
}

/// One answer's worth of parts.
struct Worker<'a, R: Remote> {
    source: &'a Source<'a, R>,
    parts: &'a Parts,
    file: &'a Arc<File>,
    stats: &'a Stats,
    publish: &'a (dyn Fn(Filled) + Sync),
}

impl<R: Remote> Worker<'_, R> {
    fn what(&self) -> String {
        format!("{} rendition {}", self.source.asset, self.source.rendition)
    }

    /// Fetches part `first` (already claimed for it) with a ranged GET, or takes `head`
    /// for it; an answer that goes on past the part fills the parts after it while they are
    /// missing.
    async fn run(&self, first: usize, head: Option<Download>) -> FsResult<()> {
        let (start, end) = self.parts.span(first);
        let ranged = head.is_none();
        let download = match head {
            Some(download) => download,
            None => {
                let fetch =
                    self.source.remote.fetch(self.source.asset, self.source.rendition, Some(start..end));
                match tokio::time::timeout(self.source.step.step(), fetch).await {
                    Ok(result) => result?,
                    Err(_) => return Err(FsError::Timeout(self.what())),
                }
            }
        };
        if ranged && download.offset != start {
            if download.offset != 0 {
                return Err(broken(
                    self.what(),
                    format!("asked for bytes from {start}, the answer starts at {}", download.offset),
                ));
            }
            // The whole body: this answer fills what is missing, and no more ranges are sent.
            log::info!("{}: the remote ignores Range; the rest comes in one answer", self.what());
            self.parts.no_ranges.store(true, Ordering::SeqCst);
            self.release(first);
            return self.stream(download, None, true).await;
        }
        // An answer from offset 0 (the head) may go on into the next parts.
        let open_ended = !ranged;
        self.stream(download, Some(first), open_ended).await
    }

    /// Gives part `i` back, unfilled.
    fn release(&self, i: usize) {
        let mut slots = self.parts.slots.lock();
        if slots[i].claim == Claim::Running {
            slots[i].claim = Claim::Missing;
        }
    }

    /// Writes an answer's bytes into the parts it owns: `owned` to start with, then (when
    /// `open_ended`) each next part nobody has. Bytes of parts others have are skipped
    /// when the remote ignores ranges; otherwise the answer stops there.
    async fn stream(&self, download: Download, mut owned: Option<usize>, open_ended: bool) -> FsResult<()> {
        let mut body = download.body;
        let mut pos = download.offset;
        // Chunks of one part from `pending_at` on, as they arrived (never copied in memory).
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = 0usize;
        let mut pending_at = pos;
        loop {
            let next = match body.next().now_or_never() {
                Some(next) => next,
                None => {
                    if !pending.is_empty() {
                        self.write(&mut pending, pending_at).await?;
                        pending_len = 0;
                        continue;
                    }
                    let idle = self.source.step.deadline().instant();
                    match tokio::time::timeout_at(idle.min(self.source.overall), body.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            let why = if self.source.overall <= idle { "too slow" } else { "stalled" };
                            return Err(FsError::Timeout(format!("{} ({why} at byte {pos})", self.what())));
                        }
                    }
                }
            };
            let Some(chunk) = next else { break };
            let chunk = chunk?;
            Stats::add(&self.stats.bytes_fetched, chunk.len() as u64);
            let mut rest = chunk;
            while !rest.is_empty() {
                if pos >= self.parts.total {
                    return Err(broken(
                        self.what(),
                        format!("body runs past the announced length ({} bytes); stopped", self.parts.total),
                    ));
                }
                let i = usize::try_from(pos / PART).unwrap_or(usize::MAX);
                let (_, part_end) = self.parts.span(i);
                let take = rest.len().min(usize::try_from(part_end - pos).unwrap_or(usize::MAX));
                if owned != Some(i) {
                    // Crossing into part `i`: the bytes gathered so far belong to the one before.
                    if !pending.is_empty() {
                        self.write(&mut pending, pending_at).await?;
                        pending_len = 0;
                    }
                    let skipping = self.parts.no_ranges.load(Ordering::SeqCst) && open_ended;
                    if open_ended && self.parts.claim(i) {
                        owned = Some(i);
                    } else if skipping || (owned.is_none() && open_ended) {
                        owned = None;
                        pos += take as u64;
                        rest.advance(take);
                        continue;
                    } else if owned.is_some() && open_ended {
                        // The next part is someone else's: this answer has done its share.
                        return Ok(());
                    } else {
                        return Err(broken(
                            self.what(),
                            format!("the answer runs past the range asked for (byte {pos})"),
                        ));
                    }
                }
                if pending.is_empty() {
                    pending_at = pos;
                }
                pending.push(rest.split_to(take));
                pending_len += take;
                pos += take as u64;
                if pending_len >= WRITE_BATCH || pending.len() >= WRITE_CHUNKS || pos == part_end {
                    self.write(&mut pending, pending_at).await?;
                    pending_len = 0;
                }
            }
        }
        if !pending.is_empty() {
            self.write(&mut pending, pending_at).await?;
        }
        if let Some(i) = owned {
            let (start, end) = self.parts.span(i);
            let have = self.parts.slots.lock()[i].filled;
            if start + have < end {
                return Err(broken(
                    self.what(),
                    format!("short body: {have} of the {} bytes from {start}", end - start),
                ));
            }
        }
        Ok(())
    }

    /// Writes `pending` (bytes of one part, from `at`) to the file off the runtime's
    /// workers, and publishes them.
    async fn write(&self, pending: &mut Vec<Bytes>, at: u64) -> FsResult<()> {
        let chunks = std::mem::take(pending);
        let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let file = Arc::clone(self.file);
        tokio::task::spawn_blocking(move || {
            let mut to = at;
            for chunk in &chunks {
                file.write_all_at(chunk, to)?;
                to += chunk.len() as u64;
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(|e| FsError::Internal(format!("writing a transfer: {e}")))??;
        let i = usize::try_from(at / PART).unwrap_or(usize::MAX);
        let (start, end) = self.parts.span(i);
        let filled: Filled = {
            let mut slots = self.parts.slots.lock();
            let slot = &mut slots[i];
            slot.filled = (at + len - start).max(slot.filled);
            if start + slot.filled >= end {
                slot.claim = Claim::Done;
            }
            slots.iter().map(|s| s.filled).collect()
        };
        (self.publish)(filled);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_from_follows_complete_parts_only() {
        let filled = [PART, PART, 10, 0];
        assert_eq!(present_from(&filled, 0), 2 * PART + 10);
        assert_eq!(present_from(&filled, PART + 5), PART - 5 + 10);
        assert_eq!(present_from(&filled, 2 * PART + 10), 0);
        assert_eq!(present_from(&filled, 3 * PART), 0);
        assert_eq!(present_from(&filled, 9 * PART), 0);
        let last = [PART, 3];
        assert_eq!(present_from(&last, 0), PART + 3);
    }
}
