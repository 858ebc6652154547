//! Mounting and unmounting: `damfs mount` checks what would make it fail (`preflight`),
//! then mounts in the foreground or starts a daemon and waits for its word (`daemon`);
//! the daemon wires the layers together over any [`Remote`], serves until unmounted, and
//! handles signals. `damfs umount` and the lazy detach live in `unmount`; the service
//! manager's readiness messages in `notify`.

mod daemon;
pub mod mountinfo;
pub mod notify;
mod preflight;
mod unmount;

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::config::MountConfig;
use crate::deadline::Budget;
use crate::fuse::session::{MountSpec, Session};
use crate::listing::{Formats, ListingConfig, Listings};
use crate::materialize::{MaterializeConfig, Materializer, RenditionSelection};
use crate::metrics::{Live, Metrics};
use crate::remote::aem::AemClient;
use crate::remote::{Remote, RemoteErrorKind};
use crate::stats::Stats;
use crate::vfs::{Vfs, VfsConfig};
pub use unmount::{umount, wait_mounted};

/// `damfs mount`: checks, then mounts in the foreground or starts the daemon and waits
/// until the mount answers.
pub fn mount(config: MountConfig) -> anyhow::Result<()> {
    if !daemon::is_daemon() {
        preflight::preflight(&config).with_context(|| {
            format!("cannot mount {} on {}", config.remote_url, config.mountpoint.display())
        })?;
    }
    if config.foreground || daemon::is_daemon() {
        let metrics = Arc::new(Metrics::new());
        let remote = Arc::new(AemClient::new(config.aem.clone())?.with_metrics(Arc::clone(&metrics)));
        return serve(config, remote, metrics, daemon::ready_pipe());
    }
    daemon::start(&config)
}

/// The daemon over `remote`: sets everything up, mounts, reports on `ready` (the pipe of the
/// `damfs mount` waiting for it, if any) and to the service manager, serves until unmounted.
/// Counts in `metrics`.
pub fn serve<R: Remote>(
    config: MountConfig,
    remote: Arc<R>,
    metrics: Arc<Metrics>,
    mut ready: Option<OwnedFd>,
) -> anyhow::Result<()> {
    let (runtime, session, cache, stopping) = match setup(&config, remote, metrics) {
        Ok(parts) => parts,
        Err(e) => {
            let text =
                format!("cannot mount {} on {}: {e:#}", config.remote_url, config.mountpoint.display());
            log::error!("{text}");
            daemon::report(&mut ready, &format!("error: {text}\n"));
            bail!("{text}");
        }
    };
    let _ = std::env::set_current_dir("/");
    let mountpoint = config.mountpoint.clone();
    let told_stopping = Arc::new(AtomicBool::new(false));
    let told = Arc::clone(&told_stopping);
    runtime.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            log::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        log::info!("signal received: unmounting {}", mountpoint.display());
        notify::stopping(&format!("unmounting {}", mountpoint.display()), &told);
        // Readers waiting on the remote get their answer now, not at their deadline.
        stopping.cancel();
        if let Err(e) = unmount::detach(&mountpoint) {
            log::error!("cannot unmount {}: {e:#}", mountpoint.display());
        }
    });
    if let Err(e) = crate::cache::control::serve(Arc::clone(&cache)) {
        log::warn!(
            "no control socket ({e:#}): damfs cache clear --drop-from-mount will not reach this mount"
        );
    }
    let reconciled = Arc::clone(&cache);
    // Orphans and missing files left by a crash are found in the background: the mount
    // serves meanwhile (a missing file is refetched when opened).
    let _ = std::thread::Builder::new().name("damfs-reconcile".into()).spawn(move || reconciled.reconcile());
    log::info!("{} mounted on {}", config.remote_url, config.mountpoint.display());
    daemon::report(&mut ready, "ready\n");
    notify::ready(&format!("{} mounted on {}", config.remote_url, config.mountpoint.display()));
    let outcome = session.run();
    notify::stopping(&format!("{} unmounted", config.mountpoint.display()), &told_stopping);
    log::info!("{} unmounted; saving the cache index", config.mountpoint.display());
    // Transfers still running are dropped with the runtime (removing their files) before
    // the cache is closed, so that nothing writes under tmp/ once it has been emptied.
    runtime.shutdown_timeout(Duration::from_secs(2));
    cache.close();
    let _ = std::fs::remove_file(cache.dir().join(crate::cache::control::SOCKET));
    outcome.context("the FUSE session ended with an error")
}

type Parts<R> = (tokio::runtime::Runtime, Session<R>, Arc<Cache>, CancellationToken);

/// Opens the cache, checks the remote (or decides to start offline), builds the namespace
/// and mounts it; starts the metrics listener and the listing walk when asked for.
fn setup<R: Remote>(config: &MountConfig, remote: Arc<R>, metrics: Arc<Metrics>) -> anyhow::Result<Parts<R>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("damfs-io")
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    // Bound first: a busy or wrong address fails the mount before anything else is done.
    let metrics_listener = config.metrics_listen.map(crate::metrics::bind).transpose()?;
    let cache = Arc::new(Cache::open(&config.cache_dir, &config.remote_id(), config.cache_size)?);
    let check = runtime
        .block_on(async { tokio::time::timeout(config.fetch_timeout, remote.check(&config.root)).await });
    let unreachable = match check {
        Ok(Ok(())) => None,
        Ok(Err(e)) => match e.kind {
            RemoteErrorKind::Denied => bail!("the remote refused the credentials: {e}"),
            RemoteErrorKind::NotFound => {
                bail!("/content/dam/{} does not exist on the remote: {e}", config.root)
            }
            // The remote answered; trusting it is a matter of configuration, which a warm
            // cache does not settle.
            RemoteErrorKind::Tls => bail!("{}", e.cause),
            RemoteErrorKind::Timeout | RemoteErrorKind::Other => Some(e.to_string()),
        },
        Err(_) => Some(format!("no answer within {:?}", config.fetch_timeout)),
    };
    if let Some(cause) = unreachable {
        if cache.listing(&config.root).is_none() {
            bail!("cannot reach the remote ({cause}) and the cache holds nothing to serve");
        }
        log::warn!("cannot reach the remote ({cause}): starting offline from the cache");
    }
    let vfs = namespace_counted(
        Layout {
            root: config.root.clone(),
            remote_url: config.aem.base.as_str().trim_end_matches('/').to_string(),
            fetch_timeout: config.fetch_timeout,
            dir_ttl: config.dir_ttl,
            formats: config.formats.clone(),
            async_threshold: config.async_threshold,
            renditions: config.renditions.clone(),
            revalidate: config.revalidate,
        },
        remote,
        Arc::clone(&cache),
        Arc::new(Stats::with_metrics(Arc::clone(&metrics))),
    );
    let stopping = CancellationToken::new();
    let spec = MountSpec {
        mountpoint: config.mountpoint.clone(),
        source: config.remote_url.clone(),
        allow_other: config.allow_other,
    };
    let session = Session::mount(Arc::clone(&vfs), runtime.handle().clone(), &spec, stopping.clone())?;
    if let Some(listener) = metrics_listener {
        let (shown, cancelled) = (config.metrics_listen, stopping.clone());
        let (vfs, cache) = (Arc::clone(&vfs), Arc::clone(&cache));
        metrics.set_live(move || live(&vfs, &cache));
        runtime.spawn(async move {
            if let Err(e) = crate::metrics::serve(listener, metrics, cancelled.cancelled_owned()).await {
                log::error!("--metrics-listen {shown:?}: the metrics listener failed: {e}");
            }
        });
    }
    if config.prefetch_listings {
        runtime.spawn(vfs.walk_listings(stopping.clone()));
    }
    Ok((runtime, session, cache, stopping))
}

/// What the layers under the mount are configured with.
#[derive(Debug, Clone)]
pub struct Layout {
    /// DAM path of the folder mounted as the root.
    pub root: String,
    /// The remote's base URL (no credentials).
    pub remote_url: String,
    /// Bound on every operation that needs the remote.
    pub fetch_timeout: Duration,
    /// Listings are re-read after this.
    pub dir_ttl: Duration,
    /// Which assets are shown.
    pub formats: Formats,
    /// Renditions larger than this are transferred in the background.
    pub async_threshold: u64,
    /// The renditions fetched at the first open of an asset.
    pub renditions: RenditionSelection,
    /// Whether new versions replace materialized assets.
    pub revalidate: bool,
}

/// What a scrape reads of a live mount.
fn live<R: Remote>(vfs: &Vfs<R>, cache: &Cache) -> Live {
    Live { stats: vfs.snapshot(), cache_cap: cache.cap(), token_expires: vfs.stats().auth.expires() }
}

/// Wires the namespace over `remote` and `cache`: the listing and search service and the
/// materializer beside it, both over the remote and the cache, and the namespace over them.
pub fn namespace<R: Remote>(layout: Layout, remote: Arc<R>, cache: Arc<Cache>) -> Arc<Vfs<R>> {
    namespace_counted(layout, remote, cache, Arc::default())
}

/// [`namespace`], counting in `stats`.
pub fn namespace_counted<R: Remote>(
    layout: Layout,
    remote: Arc<R>,
    cache: Arc<Cache>,
    stats: Arc<Stats>,
) -> Arc<Vfs<R>> {
    let probed = Arc::clone(&remote);
    stats.auth.set(move || {
        let status = probed.auth_status();
        (status.kind.to_string(), status.expires)
    });
    let listings = Listings::new(
        Arc::clone(&remote),
        Arc::clone(&cache),
        Arc::clone(&stats),
        ListingConfig {
            root: layout.root.clone(),
            step: Budget::new(layout.fetch_timeout),
            ttl: layout.dir_ttl,
            formats: layout.formats,
            remote_url: layout.remote_url,
        },
    );
    let materializer = Materializer::new(
        remote,
        Arc::clone(&cache),
        Arc::clone(&stats),
        MaterializeConfig {
            step: Budget::new(layout.fetch_timeout),
            async_threshold: layout.async_threshold,
            renditions: layout.renditions,
        },
    );
    let config = VfsConfig {
        root: layout.root,
        request_timeout: layout.fetch_timeout,
        dir_ttl: layout.dir_ttl,
        revalidate: layout.revalidate,
    };
    Vfs::new(config, listings, materializer, crate::cache::InodeStore::new(cache), stats)
}
