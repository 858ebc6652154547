//! `damfs demo`: the sample DAM, served on a free loopback port, mounted in the foreground,
//! with a few things to try. Ctrl-C unmounts and stops everything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cli::DemoArgs;
use crate::config::MountConfig;
use crate::listing::Formats;
use crate::materialize::RenditionSelection;
use crate::remote::aem::{AemConfig, parse_remote_url};
use crate::sample::SampleOptions;
use crate::serve::{Auth, Catalog};

/// Marker written once the sample is complete, so an interrupted generation starts over.
const SAMPLE_DONE: &str = ".damfs-sample-complete";

/// Runs the demo until Ctrl-C.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let state = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache"))
            .unwrap_or_else(std::env::temp_dir)
            .join("damfs-demo"),
    };
    let state = std::path::absolute(&state)?;
    let sample = state.join("sample");
    if !sample.join(SAMPLE_DONE).exists() {
        if sample.exists() {
            std::fs::remove_dir_all(&sample).with_context(|| format!("cannot clear {}", sample.display()))?;
        }
        println!("Generating the sample DAM in {} (first run only)...", sample.display());
        let summary = crate::sample::generate(&SampleOptions {
            dir: sample.clone(),
            assets: args.assets,
            seed: 1,
            large_size: 64 << 20,
        })?;
        println!("{summary}");
        std::fs::write(sample.join(SAMPLE_DONE), b"")?;
    }

    let catalog = Catalog::open(&sample, &state.join("serve-state"), Auth::default())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("damfs-demo-server")
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
        .context("cannot listen on 127.0.0.1")?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(crate::serve::run(listener, Arc::clone(&catalog), async move {
        let _ = stopped.await;
    }));
    let url = format!("http://{addr}/content/dam");

    std::fs::create_dir_all(&args.mountpoint)
        .with_context(|| format!("cannot create the mount point {}", args.mountpoint.display()))?;
    let mountpoint = std::path::absolute(&args.mountpoint)?;
    // A fresh cache each run: the sample server's port (part of the cache's identity) changes.
    let cache_dir = state.join("cache");
    if cache_dir.exists() {
        std::fs::remove_dir_all(&cache_dir)
            .with_context(|| format!("cannot clear {}", cache_dir.display()))?;
    }
    let (base, root) = parse_remote_url(&url)?;
    let config = MountConfig {
        remote_url: url.clone(),
        aem: AemConfig::new(base),
        root,
        mountpoint: mountpoint.clone(),
        cache_dir,
        cache_size: None,
        fetch_timeout: Duration::from_secs(5),
        async_threshold: 10 << 20,
        renditions: RenditionSelection::all(),
        dir_ttl: Duration::from_secs(60),
        revalidate: true,
        formats: Formats::Images,
        allow_other: false,
        log_file: None,
        metrics_listen: None,
        prefetch_listings: false,
        verbose: args.verbose,
        foreground: true,
    };
    let hint = mountpoint.clone();
    std::thread::spawn(move || {
        if crate::mount::wait_mounted(&hint, Duration::from_secs(30)) {
            print_tour(&hint, &url);
        }
    });
    let result = crate::mount::mount(config);
    let _ = stop.send(());
    let _ = runtime.block_on(server);
    result
}

fn print_tour(mountpoint: &Path, url: &str) {
    let m = mountpoint.display();
    println!(
        "\nThe sample DAM at {url} is mounted read-only on {m}.\n\
         Try, in another terminal:\n\
         \n  ls -l {m}/we-retail/en/activities/hiking | head\
         \n  cat {m}/we-retail/en/activities/hiking/hiking-0001.jpg > /tmp/hiking.jpg\
         \n  ls -l {m}/we-retail/en/activities/hiking/.renditions/hiking-0001.jpg/\
         \n  cat {m}/we-retail/en/activities/hiking/.metadata/hiking-0001.jpg.json\
         \n  getfattr -d {m}/we-retail/en/activities/hiking/hiking-0001.jpg\
         \n  find {m}/.tags\
         \n  touch {m}/x          (Read-only file system)\
         \n\nPress Ctrl-C to unmount.\n"
    );
}
