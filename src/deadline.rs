//! The two meanings of time for remote work, each with its own name.
//!
//! A [`Deadline`] is when a caller stops waiting: a kernel request's arrival plus the fetch
//! timeout. Everything done for that request, however many steps it takes, fits before it.
//!
//! A [`Budget`] is how long one step of work may take (one request, or the wait for the
//! next chunk of a body), counted afresh for each step. Work that outlives its callers
//! (a listing refresh, a background transfer) runs step by step within budgets, under an
//! overall cap of its own: see damfs(7), TIMEOUTS.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{FsError, FsResult};
use crate::remote::RemoteResult;

/// When a caller stops waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now() + timeout)
    }

    /// The instant itself.
    pub fn instant(self) -> Instant {
        self.0
    }

    /// Time left (zero once passed).
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether it has passed.
    pub fn passed(self) -> bool {
        Instant::now() >= self.0
    }

    /// Runs a remote call until the deadline; a call still running then is dropped
    /// (cancelled) and the answer is a timeout that names `what`.
    pub async fn run<T, F>(self, what: impl FnOnce() -> String, call: F) -> FsResult<T>
    where
        F: Future<Output = RemoteResult<T>>,
    {
        match tokio::time::timeout_at(self.0, call).await {
            Ok(result) => result.map_err(FsError::from),
            Err(_) => Err(FsError::Timeout(what())),
        }
    }
}

/// How long one step of work may take, counted afresh for each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget(Duration);

impl Budget {
    /// A budget of `step` per step.
    pub fn new(step: Duration) -> Budget {
        Budget(step)
    }

    /// The length of one step.
    pub fn step(self) -> Duration {
        self.0
    }

    /// The deadline of a step that starts now.
    pub fn deadline(self) -> Deadline {
        Deadline::after(self.0)
    }

    /// `n` steps' worth, for work of several steps under one cap.
    pub fn times(self, n: u32) -> Budget {
        Budget(self.0.saturating_mul(n))
    }

    /// Runs one remote call as a step starting now.
    pub async fn run<T, F>(self, what: impl FnOnce() -> String, call: F) -> FsResult<T>
    where
        F: Future<Output = RemoteResult<T>>,
    {
        self.deadline().run(what, call).await
    }
}
