//! `damfs prefetch`: makes many remote assets available in one go. It walks the given paths
//! of a live mount and reads every asset and every one of its renditions to the end, which
//! materializes them (the mount fetches, verifies and caches; the cache cap applies as for
//! any open), with a progress bar on a terminal and plain periodic lines otherwise.

use std::collections::VecDeque;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parking_lot::Mutex;

use crate::cli::PrefetchArgs;
use crate::mount::mountinfo;
use crate::units::human_size;

/// How often progress lines are printed when the output is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// What a prefetch did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Assets materialized.
    pub assets: u64,
    /// Bytes read (originals and renditions).
    pub bytes: u64,
    /// Assets that failed, with the cause.
    pub failed: Vec<(PathBuf, String)>,
}

/// Runs `damfs prefetch`; the summary is printed, and failures make the exit status 1.
pub fn run(args: &PrefetchArgs) -> anyhow::Result<Summary> {
    if args.jobs == 0 {
        bail!("--jobs: must be at least 1");
    }
    let mut assets = Vec::new();
    for path in &args.paths {
        let path = std::path::absolute(path).with_context(|| path.display().to_string())?;
        check_in_mount(&path)?;
        collect(&path, args.recursive, &mut assets).with_context(|| format!("{}", path.display()))?;
    }
    let total = assets.len() as u64;
    let queue = Arc::new(Mutex::new(VecDeque::from(assets)));
    let done = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} assets  {msg}  elapsed {elapsed}  ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });

    let workers: Vec<_> = (0..args.jobs.min(total.max(1) as usize))
        .map(|_| {
            let (queue, done, bytes, failed) =
                (Arc::clone(&queue), Arc::clone(&done), Arc::clone(&bytes), Arc::clone(&failed));
            std::thread::spawn(move || {
                loop {
                    let Some(asset) = queue.lock().pop_front() else { break };
                    match materialize(&asset) {
                        Ok(n) => {
                            bytes.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => failed.lock().push((asset, format!("{e:#}"))),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let mut last_line = Instant::now();
    loop {
        let finished = workers.iter().all(|w| w.is_finished());
        let (n, b) = (done.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed));
        let rate = b as f64 / start.elapsed().as_secs_f64().max(0.001);
        match &bar {
            Some(bar) => {
                bar.set_position(n);
                bar.set_message(format!("{}  {}/s", human_size(b), human_size(rate as u64)));
            }
            None if finished || last_line.elapsed() >= PLAIN_EVERY => {
                let eta = if n > 0 && n < total {
                    let secs = start.elapsed().as_secs_f64() / n as f64 * (total - n) as f64;
                    format!(", ETA {secs:.0}s")
                } else {
                    String::new()
                };
                eprintln!(
                    "prefetch: {n}/{total} assets, {}, {}/s{eta}",
                    human_size(b),
                    human_size(rate as u64)
                );
                last_line = Instant::now();
            }
            None => {}
        }
        if finished {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for worker in workers {
        let _ = worker.join();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let failed = std::mem::take(&mut *failed.lock());
    let summary =
        Summary { assets: total - failed.len() as u64, bytes: bytes.load(Ordering::Relaxed), failed };
    println!(
        "prefetched {} of {total} assets ({}) in {:.1}s",
        summary.assets,
        human_size(summary.bytes),
        start.elapsed().as_secs_f64()
    );
    for (path, why) in &summary.failed {
        println!("failed: {}: {why}", path.display());
    }
    Ok(summary)
}

/// Refuses a path that is not inside a damfs mount.
fn check_in_mount(path: &Path) -> anyhow::Result<()> {
    let mut candidate = Some(path);
    while let Some(p) = candidate {
        if let Some(m) = mountinfo::find(p) {
            if m.fstype == "fuse.damfs" {
                return Ok(());
            }
            bail!("{} is not inside a damfs mount (it is on {}, {})", path.display(), m.mountpoint, m.fstype);
        }
        candidate = p.parent();
    }
    bail!("{} is not inside a damfs mount", path.display())
}

/// The assets under `path` (the path itself if it is a file).
fn collect(path: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if recursive {
                collect(&entry.path(), true, out)?;
            }
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Reads an asset and all of its renditions to the end; returns the bytes read.
fn materialize(asset: &Path) -> anyhow::Result<u64> {
    let mut total = read_to_end(asset)?;
    let (Some(folder), Some(name)) = (asset.parent(), asset.file_name()) else {
        return Ok(total);
    };
    let renditions = folder.join(".renditions").join(name);
    for entry in std::fs::read_dir(&renditions).with_context(|| format!("{}", renditions.display()))? {
        let entry = entry?;
        if entry.file_name() != "original" {
            total += read_to_end(&entry.path())?;
        }
    }
    Ok(total)
}

fn read_to_end(path: &Path) -> anyhow::Result<u64> {
    let mut file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
        }
    }
}
