//! `damfs sample`: writes a deterministic sample DAM into a new or empty folder, for
//! `damfs serve`, the demo and the tests.
//!
//! The tree holds generated JPEG and PNG pictures, PDF and text documents, one large PNG, and
//! the sidecar ([`crate::sidecar`]) with titles and tags. The same options give a
//! byte-identical tree, modification times included; the seed changes every file's content
//! but not the names (see `layout`). This module owns the folder checks, the writing and the
//! modification times; it never writes into a folder that already holds something.

mod documents;
mod images;
mod layout;
mod metadata;
mod rng;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use log::{debug, info};

use crate::sidecar::{AssetInfo, SIDECAR_NAME, Sidecar};
use crate::units::human_size;
use layout::{FOLDERS, Kind, PlannedAsset};
use metadata::Subject;
use rng::Rng;

pub use layout::{BULK_FOLDER, LARGE_ASSET};

/// The largest `large_size` accepted: the large asset is drawn in memory, so its size is
/// bounded by what a test machine can hold twice over.
pub const MAX_LARGE_SIZE: u64 = 1 << 30;

/// Threads writing assets at most: encoding is the cost, and it scales with cores; more
/// threads than this would mostly compete with whatever else the machine runs.
const MAX_WORKERS: usize = 4;

/// Log a progress line every this many assets.
const PROGRESS_EVERY: usize = 200;

/// Modification times start here: 2024-03-01 09:00:00 UTC.
const BASE_MTIME_SECS: u64 = 1_709_283_600;

/// Modification times spread over this many seconds after [`BASE_MTIME_SECS`] (about half a
/// year), whole seconds so that every filesystem and `Last-Modified` header keeps them exact.
const MTIME_SPREAD_SECS: u64 = 183 * 24 * 3600;

/// Options of `damfs sample`.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    /// Output folder.
    pub dir: PathBuf,
    /// Number of assets.
    pub assets: usize,
    /// Generator seed.
    pub seed: u64,
    /// Size of the large asset in bytes (0: none).
    pub large_size: u64,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSummary {
    /// The sample's root folder.
    pub dir: PathBuf,
    /// Number of assets written.
    pub assets: usize,
    /// Number of folders created below the root.
    pub folders: usize,
    /// Bytes of all assets together (the sidecar not included).
    pub total_bytes: u64,
    /// Relative path of the folder holding the most assets.
    pub largest_folder: String,
    /// Number of assets in that folder.
    pub largest_folder_assets: usize,
    /// Relative path and length of the large asset, if one was written.
    pub large_asset: Option<(String, u64)>,
}

impl fmt::Display for SampleSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "wrote {} assets in {} folders ({}) to {}",
            self.assets,
            self.folders,
            human_size(self.total_bytes),
            self.dir.display()
        )?;
        write!(f, "largest folder: {} ({} assets)", self.largest_folder, self.largest_folder_assets)?;
        match &self.large_asset {
            Some((path, len)) => write!(f, "\nlarge asset: {path} ({}, {len} bytes)", human_size(*len)),
            None => write!(f, "\nlarge asset: none"),
        }
    }
}

/// Writes the sample described by `options`: creates the folder if missing, refuses one that
/// is not empty, then writes every folder, asset and the sidecar, and sets modification
/// times last.
///
/// Five sixths of the assets (all but 200 of a large sample) go to [`BULK_FOLDER`]; the rest
/// are, in this order, the large asset at [`LARGE_ASSET`] (unless `large_size` is 0), the
/// named assets (documents, names with spaces, non-ASCII letters, `+` and `(1)`), and themed
/// pictures and documents in the other folders. From 54 assets on, all of them are there;
/// below 6 there is room for the bulk folder only.
pub fn generate(options: &SampleOptions) -> anyhow::Result<SampleSummary> {
    let dir = &options.dir;
    if options.large_size > MAX_LARGE_SIZE {
        bail!("the large asset can be at most {} bytes, not {}", MAX_LARGE_SIZE, options.large_size);
    }
    prepare_dir(dir)?;
    info!("writing a sample DAM of {} assets (seed {}) into {}", options.assets, options.seed, dir.display());
    for folder in FOLDERS {
        let path = dir.join(folder.path);
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
    }

    let plan = layout::plan(options.assets, options.large_size > 0);
    let mut sidecar = Sidecar::default();
    metadata::fill_taxonomy(&mut sidecar);
    let written = write_assets(options, &plan)
        .with_context(|| format!("the sample in {} is incomplete; remove it and try again", dir.display()))?;
    let mut per_folder: BTreeMap<&str, usize> = BTreeMap::new();
    let mut total_bytes = 0;
    let mut large_asset = None;
    for (asset, (len, info)) in plan.iter().zip(written) {
        total_bytes += len;
        *per_folder.entry(layout::parent_of(&asset.path)).or_default() += 1;
        if asset.kind == Kind::LargePng {
            large_asset = Some((asset.path.clone(), len));
        }
        sidecar.assets.insert(asset.path.clone(), info);
    }

    sidecar.store(dir)?;
    let sidecar_path = dir.join(SIDECAR_NAME);
    set_mtime(&sidecar_path, base_mtime())?;
    info!("wrote {} with {} tags", sidecar_path.display(), sidecar.tags.len());
    // Children before parents: setting a folder's time is the last thing that touches it.
    for folder in FOLDERS.iter().rev() {
        set_mtime(&dir.join(folder.path), mtime(options.seed, folder.path))?;
    }
    set_mtime(dir, base_mtime())?;

    let (largest_folder, largest_folder_assets) = per_folder
        .iter()
        .max_by_key(|(folder, count)| (**count, std::cmp::Reverse(**folder)))
        .map(|(folder, count)| (folder.to_string(), *count))
        .unwrap_or_default();
    Ok(SampleSummary {
        dir: dir.clone(),
        assets: plan.len(),
        folders: FOLDERS.len(),
        total_bytes,
        largest_folder,
        largest_folder_assets,
        large_asset,
    })
}

/// Creates `dir` if it is missing; refuses it if it is not a folder or not empty.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{}: exists and is not a folder; damfs sample writes into a new or empty folder",
            dir.display()
        );
    }
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{}: the folder is not empty; damfs sample writes only into a new or empty folder",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// Writes every planned asset on a few threads and returns, in plan order, each one's length
/// and sidecar entry. Every asset draws from its own random stream, so the bytes do not
/// depend on which thread writes what. The first error stops the other threads.
fn write_assets(options: &SampleOptions, plan: &[PlannedAsset]) -> anyhow::Result<Vec<(u64, AssetInfo)>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_WORKERS);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let worker = || -> anyhow::Result<Vec<(usize, u64, AssetInfo)>> {
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(asset) = plan.get(index) else { break };
            match write_asset(options, asset) {
                Ok((len, info)) => done.push((index, len, info)),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            if (index + 1) % PROGRESS_EVERY == 0 {
                info!("writing asset {} of {}", index + 1, plan.len());
            }
        }
        Ok(done)
    };
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(worker)).collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut written: Vec<Option<(u64, AssetInfo)>> = vec![None; plan.len()];
    for outcome in outcomes {
        let done = outcome.map_err(|_| anyhow::anyhow!("a sample writer thread panicked"))??;
        for (index, len, info) in done {
            written[index] = Some((len, info));
        }
    }
    written
        .into_iter()
        .zip(plan)
        .map(|(w, asset)| w.ok_or_else(|| anyhow::anyhow!("{} was not written", asset.path)))
        .collect()
}

/// Writes one asset and returns its length and its sidecar entry.
fn write_asset(options: &SampleOptions, asset: &PlannedAsset) -> anyhow::Result<(u64, AssetInfo)> {
    let path = options.dir.join(&asset.path);
    let mut rng = Rng::for_key(options.seed, &asset.path);
    let modified = mtime(options.seed, &asset.path);
    debug!("writing {}", path.display());
    let (bytes, info) = match asset.kind {
        Kind::Jpeg | Kind::Png => {
            let scene = images::Scene::choose(&mut rng, asset.theme, asset.kind, asset.bulk_index.is_some());
            let canvas = images::render(&scene, &mut rng);
            let bytes = images::encode(&canvas, asset.kind).with_context(|| path.display().to_string())?;
            (bytes, metadata::describe(&mut rng, asset, &Subject::Picture(&scene)))
        }
        Kind::LargePng => {
            info!("writing the large asset {} (at least {} bytes)", path.display(), options.large_size);
            let (len, width, height) = images::write_large_png(&path, options.large_size, &rng)?;
            set_mtime(&path, modified)?;
            let info = metadata::describe(&mut rng, asset, &Subject::Noise { width, height });
            return Ok((len, info));
        }
        Kind::Pdf | Kind::Text => {
            let info = metadata::describe(&mut rng, asset, &Subject::Document);
            let stem = asset.path.rsplit('/').next().unwrap_or(&asset.path);
            let title = info.title.as_deref().unwrap_or(stem);
            let bytes = if asset.kind == Kind::Pdf {
                documents::pdf(title, &pdf_date(modified), &mut rng)
            } else {
                documents::text(title, &mut rng)
            };
            (bytes, info)
        }
    };
    let mut file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(&bytes).with_context(|| format!("cannot write {}", path.display()))?;
    file.set_modified(modified).with_context(|| format!("cannot set the time of {}", path.display()))?;
    Ok((bytes.len() as u64, info))
}

/// The modification time of everything at the root.
fn base_mtime() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(BASE_MTIME_SECS)
}

/// The seeded modification time of the file or folder at `relative`.
fn mtime(seed: u64, relative: &str) -> SystemTime {
    let offset = Rng::for_key(seed, &format!("mtime:{relative}")).below(MTIME_SPREAD_SECS);
    base_mtime() + Duration::from_secs(offset)
}

/// A PDF date (`YYYYMMDDHHmmSS`, UTC) for a modification time.
fn pdf_date(time: SystemTime) -> String {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(0), 0)
        .map(|t| t.format("%Y%m%d%H%M%S").to_string())
        .unwrap_or_else(|| "20240301090000".to_string())
}

/// Sets the modification time of a file or folder. The owner may set it through a handle
/// opened for reading, which works for folders too.
fn set_mtime(path: &Path, time: SystemTime) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    file.set_modified(time).with_context(|| format!("cannot set the time of {}", path.display()))
}
