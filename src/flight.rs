//! Single-flight: concurrent requests for the same key share one piece of work.
//!
//! The work runs as its own tokio task, so a caller that gives up (its deadline passed, its
//! request was interrupted) never cancels the work for the others. What happens when the
//! *last* caller gives up is the table's [`Abandoned`] policy: listings and manifests go on
//! (the next caller is served from them), transfers stop (nobody would read their bytes).
//!
//! The entry is removed when the work ends, however it ends (success, failure, cancellation
//! or a panic): failures are not remembered, and the next caller starts afresh.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use crate::deadline::Deadline;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::error::{FsError, FsResult};

type Sender<V> = Arc<watch::Sender<Option<FsResult<V>>>>;

/// Most times one caller starts work that keeps ending without an answer for it (timed out
/// on its own, or cancelled as abandoned just as this caller joined).
const MAX_ATTEMPTS: usize = 3;

/// What becomes of work once every caller waiting for it has given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// It goes on, so that the next caller finds it done (bounded by its own budget).
    Continue,
    /// It is cancelled (its future dropped): nobody is left to use what it makes.
    Cancel,
}

/// A table of works in flight, by key.
#[derive(Debug)]
pub struct SingleFlight<K, V> {
    /// Guards only the map; never held across an await.
    flights: Mutex<HashMap<K, Sender<V>>>,
    abandoned: Abandoned,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight { flights: Mutex::new(HashMap::new()), abandoned: Abandoned::Continue }
    }
}

/// Removes a work's entry when its task ends in any way, a panic included, if the entry is
/// still that work's.
struct Entry<K: Eq + Hash, V> {
    table: Arc<SingleFlight<K, V>>,
    key: K,
    sender: Sender<V>,
}

impl<K: Eq + Hash, V> Drop for Entry<K, V> {
    fn drop(&mut self) {
        let mut flights = self.table.flights.lock();
        if flights.get(&self.key).is_some_and(|s| Arc::ptr_eq(s, &self.sender)) {
            flights.remove(&self.key);
        }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty table whose abandoned works follow `abandoned`.
    pub fn new(abandoned: Abandoned) -> SingleFlight<K, V> {
        SingleFlight { flights: Mutex::new(HashMap::new()), abandoned }
    }

    /// Joins the work for `key`, starting it with `work` if none is in flight, and waits for
    /// its result until `deadline`. `what` names the work in a timeout error.
    ///
    /// A caller that joined work which then timed out on its own (it started before this
    /// caller arrived) starts it again while its own deadline allows: a remote that just
    /// recovered is asked again rather than answered with an older failure.
    pub async fn run<F, Fut>(self: &Arc<Self>, key: K, deadline: Deadline, what: &str, work: F) -> FsResult<V>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = FsResult<V>> + Send + 'static,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let retry = attempts < MAX_ATTEMPTS && !deadline.passed();
            let mut slot = self.join(key.clone(), &work);
            let outcome = tokio::time::timeout_at(deadline.instant(), slot.wait_for(|v| v.is_some())).await;
            let result = match outcome {
                Ok(Ok(value)) => value.clone().unwrap_or(Err(FsError::Invalid)),
                // Ended without an answer: cancelled as abandoned just as this caller joined,
                // or its task panicked.
                Ok(Err(_)) if retry => continue,
                Ok(Err(_)) => Err(FsError::Abandoned(what.to_string())),
                Err(_) => return Err(FsError::Timeout(what.to_string())),
            };
            match result {
                Err(FsError::Timeout(_)) if retry => continue,
                other => return other,
            }
        }
    }

    /// Whether work for `key` is in flight.
    pub fn in_flight(&self, key: &K) -> bool {
        self.flights.lock().contains_key(key)
    }

    fn join<F, Fut>(self: &Arc<Self>, key: K, work: &F) -> watch::Receiver<Option<FsResult<V>>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = FsResult<V>> + Send + 'static,
    {
        let mut flights = self.flights.lock();
        if let Some(sender) = flights.get(&key) {
            return sender.subscribe();
        }
        let (tx, rx) = watch::channel(None);
        let sender = Arc::new(tx);
        flights.insert(key.clone(), Arc::clone(&sender));
        drop(flights);
        let fut = work();
        let entry = Entry { table: Arc::clone(self), key, sender };
        let abandoned = self.abandoned;
        tokio::spawn(async move {
            let result = match abandoned {
                Abandoned::Continue => Some(fut.await),
                Abandoned::Cancel => tokio::select! {
                    result = fut => Some(result),
                    () = entry.sender.closed() => None,
                },
            };
            let sender = Arc::clone(&entry.sender);
            // Remove first, then publish: a caller arriving in between starts new work
            // rather than joining a finished one.
            drop(entry);
            if let Some(result) = result {
                let _ = sender.send(Some(result));
            }
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
        let deadline = Deadline::after(Duration::from_secs(5));
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

    #[tokio::test(start_paused = true)]
    async fn a_caller_times_out_but_the_work_goes_on() {
        let flights: Arc<SingleFlight<u8, u8>> = Arc::default();
        let short = Deadline::after(Duration::from_millis(20));
        let work = || async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(3)
        };
        assert!(matches!(flights.run(1, short, "x", work).await, Err(FsError::Timeout(_))));
        assert!(flights.in_flight(&1));
        let long = Deadline::after(Duration::from_secs(5));
        assert_eq!(flights.run(1, long, "x", || async { Ok(9) }).await.unwrap(), 3);
    }

    /// Sets a flag when dropped: tells whether a work's future was dropped (cancelled).
    struct DropFlag(Arc<AtomicUsize>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_work_is_cancelled_when_the_table_says_so() {
        let flights: Arc<SingleFlight<u8, u8>> = Arc::new(SingleFlight::new(Abandoned::Cancel));
        let dropped = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let work = || {
            let (flag, finished) = (DropFlag(Arc::clone(&dropped)), Arc::clone(&finished));
            async move {
                let _flag = flag;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                Ok(1)
            }
        };
        let short = Deadline::after(Duration::from_millis(20));
        assert!(matches!(flights.run(1, short, "x", work).await, Err(FsError::Timeout(_))));
        // The work task notices that nobody waits any more.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "the abandoned work was not dropped");
        assert_eq!(finished.load(Ordering::SeqCst), 0);
        assert!(!flights.in_flight(&1), "a cancelled work left its entry");

        // With one caller still waiting, a caller that gives up cancels nothing.
        let (a, b) = (Arc::clone(&flights), Arc::clone(&flights));
        let patient = tokio::spawn(async move {
            let deadline = Deadline::after(Duration::from_secs(7200));
            a.run(2, deadline, "y", || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(5)
            })
            .await
        });
        tokio::task::yield_now().await;
        let short = Deadline::after(Duration::from_millis(20));
        let impatient = b.run(2, short, "y", || async { Ok(6) }).await;
        assert!(matches!(impatient, Err(FsError::Timeout(_))));
        assert_eq!(patient.await.unwrap().unwrap(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_work_leaves_no_poisoned_key() {
        let flights: Arc<SingleFlight<u8, u8>> = Arc::default();
        let deadline = Deadline::after(Duration::from_secs(5));
        let calls = Arc::new(AtomicUsize::new(0));
        let work = || {
            let calls = Arc::clone(&calls);
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("work panics once (expected by the test)");
                }
                Ok(4)
            }
        };
        // The first work panics; the caller starts it again and gets the second's answer.
        assert_eq!(flights.run(1, deadline, "p", work).await.unwrap(), 4);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(!flights.in_flight(&1));
        // A caller out of attempts is told the work was abandoned, and the key stays free.
        let always = || async { panic!("work always panics (expected by the test)") };
        let error = flights.run(2, deadline, "q", always).await;
        assert!(matches!(error, Err(FsError::Abandoned(_))), "{error:?}");
        assert!(!flights.in_flight(&2));
    }
}
