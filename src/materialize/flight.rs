//! Single-flight: concurrent requests for the same key share one piece of work.
//!
//! The work runs as its own tokio task, so a caller that gives up (its deadline passed, its
//! request was interrupted) never cancels the work for the others. The entry is removed
//! when the work ends, success or failure: failures are not remembered, and the next
//! caller starts afresh.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{FsError, FsResult};

type Slot<V> = watch::Receiver<Option<FsResult<V>>>;

/// Most times one caller starts work that keeps timing out before its own deadline.
const MAX_ATTEMPTS: usize = 3;

/// A table of works in flight, by key.
#[derive(Debug)]
pub struct SingleFlight<K, V> {
    /// Guards only the map; never held across an await.
    flights: Mutex<HashMap<K, Slot<V>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight { flights: Mutex::new(HashMap::new()) }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Joins the work for `key`, starting it with `work` if none is in flight, and waits for
    /// its result until `deadline`. `what` names the work in a timeout error.
    ///
    /// A caller that joined work which then timed out on its own (it started before this
    /// caller arrived) starts it again while its own deadline allows: a remote that just
    /// recovered is asked again rather than answered with an older failure.
    pub async fn run<F, Fut>(self: &Arc<Self>, key: K, deadline: Instant, what: &str, work: F) -> FsResult<V>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = FsResult<V>> + Send + 'static,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut slot = self.join(key.clone(), &work);
            let outcome = tokio::time::timeout_at(deadline, slot.wait_for(|v| v.is_some())).await;
            let result = match outcome {
                Ok(Ok(value)) => value.clone().unwrap_or_else(|| Err(FsError::Invalid)),
                Ok(Err(_)) => {
                    Err(FsError::Io(std::io::Error::other(format!("{what}: the work was abandoned"))))
                }
                Err(_) => return Err(FsError::Timeout(what.to_string())),
            };
            match result {
                Err(FsError::Timeout(_)) if attempts < MAX_ATTEMPTS && Instant::now() < deadline => continue,
                other => return other,
            }
        }
    }

    /// Whether work for `key` is in flight.
    pub fn in_flight(&self, key: &K) -> bool {
        self.flights.lock().contains_key(key)
    }

    fn join<F, Fut>(self: &Arc<Self>, key: K, work: &F) -> Slot<V>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = FsResult<V>> + Send + 'static,
    {
        let mut flights = self.flights.lock();
        if let Some(slot) = flights.get(&key) {
            return slot.clone();
        }
        let (tx, rx) = watch::channel(None);
        flights.insert(key.clone(), rx.clone());
        drop(flights);
        let fut = work();
        let table = Arc::clone(self);
        tokio::spawn(async move {
            let result = fut.await;
            // Remove first, then publish: a caller arriving in between starts new work
            // rather than joining a finished one.
            table.flights.lock().remove(&key);
            let _ = tx.send(Some(result));
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_work_and_failures_are_forgotten() {
        let flights: Arc<SingleFlight<&'static str, u32>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut waiters = Vec::new();
        for _ in 0..16 {
            let (flights, runs) = (flights.clone(), runs.clone());
            waiters.push(tokio::spawn(async move {
                flights
                    .run("a", deadline, "a", || {
                        let runs = Arc::clone(&runs);
                        async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(7)
                        }
                    })
                    .await
            }));
        }
        for w in waiters {
            assert_eq!(w.await.unwrap().unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        let err = flights.run("b", deadline, "b", || async { Err(FsError::NotFound) }).await;
        assert!(matches!(err, Err(FsError::NotFound)));
        assert!(!flights.in_flight(&"b"));
        assert_eq!(flights.run("b", deadline, "b", || async { Ok(1) }).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_caller_times_out_but_the_work_goes_on() {
        let flights: Arc<SingleFlight<u8, u8>> = Arc::default();
        let short = Instant::now() + Duration::from_millis(20);
        let work = || async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(3)
        };
        assert!(matches!(flights.run(1, short, "x", work).await, Err(FsError::Timeout(_))));
        assert!(flights.in_flight(&1));
        let long = Instant::now() + Duration::from_secs(5);
        assert_eq!(flights.run(1, long, "x", || async { Ok(9) }).await.unwrap(), 3);
    }
}
