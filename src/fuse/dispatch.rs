//! Building the adapter, and handing each request to the namespace: at once on the FUSE
//! thread when the namespace can answer without waiting, on the runtime otherwise.

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use fuser::{Errno, Notifier};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::DamFs;
use super::io_mode::IoModes;
use crate::deadline::Deadline;
use crate::remote::Remote;
use crate::stats::InFlight;
use crate::vfs::Vfs;

impl<R: Remote> DamFs<R> {
    /// The adapter for `vfs`, running remote work on `runtime`. Files show as owned by
    /// `uid`/`gid`. The notifier slot is filled once the session exists. Cancelling
    /// `stopping` answers every request still waiting on the remote.
    pub fn new(
        vfs: Arc<Vfs<R>>,
        runtime: tokio::runtime::Handle,
        uid: u32,
        gid: u32,
        stopping: CancellationToken,
    ) -> (Self, Arc<OnceLock<Notifier>>) {
        let notifier = Arc::new(OnceLock::new());
        let io = Arc::new(Mutex::new(IoModes::default()));
        let kept = Arc::downgrade(&io);
        vfs.on_content_dropped(Box::new(move |asset| {
            if let Some(io) = kept.upgrade() {
                io.lock().content_dropped(asset);
            }
        }));
        let fs = DamFs {
            vfs,
            runtime,
            uid,
            gid,
            passthrough: AtomicBool::new(false),
            io,
            notifier: Arc::clone(&notifier),
            stopping,
        };
        (fs, notifier)
    }

    /// Counts a request of kind `op`.
    pub(super) fn count(&self, op: &'static str) {
        self.vfs.stats().metrics.op(op);
    }

    /// Counts an answer of `errno` given without asking the namespace (EROFS, ENOTTY).
    pub(super) fn refuse(&self, errno: Errno) -> Errno {
        self.vfs.stats().metrics.error(errno.code());
        errno
    }

    /// Runs `work` on the namespace with the request's deadline (counted from now, its
    /// arrival): to completion right here if it needs nothing from the remote, otherwise on
    /// the runtime. `done` gets the result and the namespace either way.
    pub(super) fn dispatch<T, W, Fut, D>(&self, work: W, done: D)
    where
        T: Send + 'static,
        W: FnOnce(Arc<Vfs<R>>, Deadline) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        D: FnOnce(T, &Vfs<R>) + Send + 'static,
    {
        let vfs = Arc::clone(&self.vfs);
        let deadline = vfs.deadline();
        let _entered = self.runtime.enter();
        let mut fut = Box::pin(work(Arc::clone(&vfs), deadline));
        let mut cx = Context::from_waker(Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(value) => done(value, &vfs),
            // The task polls again at once with a real waker, so nothing signalled to the
            // no-op waker in between is lost.
            Poll::Pending => {
                let stopping = self.stopping.clone();
                self.runtime.spawn(async move {
                    let _waiting = InFlight::enter(&vfs.stats().requests_waiting);
                    tokio::select! {
                        value = fut => done(value, &vfs),
                        // Dropping `done` drops its reply unsent, which fuser answers EIO.
                        () = stopping.cancelled() => {}
                    }
                });
            }
        }
    }
}
