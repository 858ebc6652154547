//! Received bytes on their way to a transfer's temporary file: gathered, then written with
//! one writev and hashed on a blocking thread while the next ones arrive.

use std::fs::File;
use std::io::{IoSlice, Write};

use tokio::task::JoinHandle;

use crate::digest::Hasher;
use crate::error::{FsError, FsResult};

/// Bytes gathered before they are written out in one go, off the runtime's workers.
pub(super) const WRITE_BATCH: usize = 256 << 10;

/// Chunks gathered before they are written out: well under the most one writev takes.
pub(super) const WRITE_CHUNKS: usize = 256;

/// The temporary file and the digests of what was written to it: moved to a blocking
/// thread for each write, with the bytes gathered since the last one.
pub(super) struct Sink {
    pub(super) file: File,
    pub(super) hasher: Hasher,
}

impl Sink {
    /// Writes `chunks` with one writev (never copied in memory) and hashes them, on a
    /// blocking thread; gives the sink back when done.
    fn write(mut self, chunks: Vec<bytes::Bytes>) -> JoinHandle<FsResult<Sink>> {
        tokio::task::spawn_blocking(move || {
            let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|b| IoSlice::new(b)).collect();
            let mut slices = &mut slices[..];
            while !slices.is_empty() {
                match self.file.write_vectored(slices) {
                    Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                    Ok(n) => IoSlice::advance_slices(&mut slices, n),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            for chunk in &chunks {
                self.hasher.update(chunk);
            }
            Ok(self)
        })
    }
}

/// Received chunks on their way to the temporary file. They gather while the batch before
/// them is written and hashed on a blocking thread, so receiving waits on the disk only
/// when a whole batch is ready behind a write still running.
pub(super) struct Spool {
    /// The sink, when no write holds it.
    idle: Option<Sink>,
    /// The write running, and the length of the file once it is done.
    busy: Option<(JoinHandle<FsResult<Sink>>, u64)>,
    /// Chunks received since the last write began, and their length.
    pending: Vec<bytes::Bytes>,
    pending_len: usize,
    /// Bytes handed to writes so far.
    queued: u64,
}

impl Spool {
    pub(super) fn new(sink: Sink) -> Spool {
        Spool { idle: Some(sink), busy: None, pending: Vec::new(), pending_len: 0, queued: 0 }
    }

    pub(super) fn push(&mut self, chunk: bytes::Bytes) {
        self.pending_len += chunk.len();
        self.pending.push(chunk);
    }

    /// Whether enough has gathered to be written at once.
    pub(super) fn batch_ready(&self) -> bool {
        self.pending_len >= WRITE_BATCH || self.pending.len() >= WRITE_CHUNKS
    }

    /// Starts writing what has gathered, unless a write is running or nothing has.
    pub(super) fn start(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(sink) = self.idle.take() else { return };
        self.queued += self.pending_len as u64;
        self.pending_len = 0;
        self.busy = Some((sink.write(std::mem::take(&mut self.pending)), self.queued));
    }

    /// Whether a write is running.
    pub(super) fn is_busy(&self) -> bool {
        self.busy.is_some()
    }

    /// The sink, once every write has ended.
    pub(super) fn into_sink(mut self) -> Sink {
        self.idle.take().expect("no write is running")
    }

    /// Waits for the running write; returns the length of the file after it. Cancel-safe:
    /// nothing changes until the write has ended.
    pub(super) async fn settle(&mut self) -> FsResult<u64> {
        let Some((write, _)) = self.busy.as_mut() else {
            return Ok(self.queued);
        };
        let result = write.await;
        let (_, written) = self.busy.take().expect("a write was running");
        let sink = result.map_err(|e| FsError::Internal(format!("writing a transfer: {e}")))??;
        self.idle = Some(sink);
        Ok(written)
    }
}
