//! Renditions as AEM 6.5 makes them: `original` plus three PNG thumbnails and a web rendition
//! for every JPEG or PNG asset, generated lazily on first need into the state dir (never into
//! the served folder).
//!
//! Layout: `<state>/renditions/<hash of the relative path>/<size>-<mtime ns>/` holds the
//! rendition files and a `manifest.json` written last; a version directory is made under a
//! temporary name and renamed into place whole, so a present version is always complete. A
//! changed original has a new size or mtime, hence a new version directory (older ones are
//! removed). One generation per asset at a time: concurrent requests wait for the same one.
//! Images that fail to decode get a manifest with no renditions and one warning, so they are
//! not retried on every request. What a rendition URL means is decided by `routes`.

use std::fs;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, GenericImageView};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::files::{Asset, KeyedLocks, short_hash, temp_name};

/// Name of the original rendition.
pub(crate) const ORIGINAL: &str = "original";

/// The thumbnail boxes AEM 6.5's DAM Update Asset workflow makes, as (width, height).
const THUMBNAILS: [(u32, u32); 3] = [(48, 48), (140, 100), (319, 319)];

/// The web rendition's box.
const WEB: (u32, u32) = (1280, 1280);

/// JPEG quality of web renditions (AEM's default is 90; 80 keeps the sample light).
const JPEG_QUALITY: u8 = 80;

/// One rendition of an asset, ready to be listed or served.
#[derive(Debug, Clone)]
pub(crate) struct Rendition {
    pub name: String,
    pub mime: String,
    pub file: PathBuf,
    pub size: u64,
    pub mtime: SystemTime,
}

/// What a version directory holds; written last, so its presence means "complete".
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// Relative path of the original (for people reading the state dir).
    source: String,
    size: u64,
    mtime_ns: u64,
    /// Generated renditions, in listing order.
    renditions: Vec<ManifestEntry>,
    /// Why there are none, when decoding failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestEntry {
    name: String,
    mime: String,
}

/// Makes and finds generated renditions.
pub(crate) struct Generator {
    /// `<state>/renditions`.
    dir: PathBuf,
    /// One generation per asset (keyed by relative path) at a time.
    locks: KeyedLocks,
    /// Bounds concurrent generations to the number of cores: each holds a decoded image.
    permits: Semaphore,
}

/// Whether renditions are generated for this MIME type (the decoders compiled in).
fn generates_for(mime: &str) -> bool {
    matches!(mime, "image/jpeg" | "image/png")
}

impl Generator {
    /// Prepares `<state_dir>/renditions`.
    pub fn new(state_dir: &Path) -> anyhow::Result<Generator> {
        let dir = state_dir.join("renditions");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Ok(Generator { dir, locks: KeyedLocks::default(), permits: Semaphore::new(cores) })
    }

    /// Every rendition of `asset`, `original` first, generating the others if they are not
    /// there yet.
    pub async fn list(&self, asset: &Asset) -> anyhow::Result<Vec<Rendition>> {
        let mut all = vec![Rendition {
            name: ORIGINAL.into(),
            mime: asset.mime().into(),
            file: asset.file.clone(),
            size: asset.size,
            mtime: asset.mtime,
        }];
        if !generates_for(asset.mime()) {
            return Ok(all);
        }
        let version = self.version_dir(asset);
        let manifest = match read_manifest(&version) {
            Some(manifest) => manifest,
            None => self.generate(asset, &version).await?,
        };
        for entry in manifest.renditions {
            let file = version.join(&entry.name);
            let meta = fs::metadata(&file)
                .with_context(|| format!("rendition {} of {} is missing", entry.name, asset.rel))?;
            all.push(Rendition {
                name: entry.name,
                mime: entry.mime,
                file,
                size: meta.len(),
                mtime: meta.modified().unwrap_or(UNIX_EPOCH),
            });
        }
        Ok(all)
    }

    /// The rendition `name` of `asset`, if it has one (only `original` needs no generation).
    pub async fn find(&self, asset: &Asset, name: &str) -> anyhow::Result<Option<Rendition>> {
        if name == ORIGINAL || !generates_for(asset.mime()) {
            let all = vec![Rendition {
                name: ORIGINAL.into(),
                mime: asset.mime().into(),
                file: asset.file.clone(),
                size: asset.size,
                mtime: asset.mtime,
            }];
            return Ok(all.into_iter().find(|r| r.name == name));
        }
        Ok(self.list(asset).await?.into_iter().find(|r| r.name == name))
    }

    fn asset_dir(&self, asset: &Asset) -> PathBuf {
        self.dir.join(short_hash(&asset.rel))
    }

    fn version_dir(&self, asset: &Asset) -> PathBuf {
        let stamp = asset.stamp();
        self.asset_dir(asset).join(format!("{}-{}", stamp.size, stamp.mtime_ns))
    }

    /// Generates the renditions of `asset` into `version` once, however many ask at once.
    async fn generate(&self, asset: &Asset, version: &Path) -> anyhow::Result<Manifest> {
        let _turn = self.locks.lock(&asset.rel).await;
        if let Some(manifest) = read_manifest(version) {
            return Ok(manifest);
        }
        let _permit = self.permits.acquire().await.context("rendition generation stopped")?;
        let asset = asset.clone();
        let asset_dir = self.asset_dir(&asset);
        let version = version.to_path_buf();
        tokio::task::spawn_blocking(move || generate_into(&asset, &asset_dir, &version))
            .await
            .context("rendition generation failed")?
    }
}

fn read_manifest(version: &Path) -> Option<Manifest> {
    let bytes = fs::read(version.join("manifest.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Decodes the original, writes every rendition and the manifest into a temporary directory,
/// renames it to `version` and removes older versions.
fn generate_into(asset: &Asset, asset_dir: &Path, version: &Path) -> anyhow::Result<Manifest> {
    fs::create_dir_all(asset_dir).with_context(|| format!("cannot create {}", asset_dir.display()))?;
    let tmp = temp_name(version);
    fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let started = std::time::Instant::now();
    let result = write_renditions(asset, &tmp);
    let (renditions, error) = match result {
        Ok(renditions) => (renditions, None),
        Err(RenderError::Decode(e)) => {
            log::warn!("{}: cannot decode the image, serving only its original: {e}", asset.rel);
            (Vec::new(), Some(e))
        }
        Err(RenderError::Io(e)) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e).with_context(|| format!("cannot write the renditions of {}", asset.rel));
        }
    };
    let stamp = asset.stamp();
    let manifest =
        Manifest { source: asset.rel.clone(), size: stamp.size, mtime_ns: stamp.mtime_ns, renditions, error };
    let finish = || -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(&manifest)?;
        fs::write(tmp.join("manifest.json"), bytes)?;
        match fs::rename(&tmp, version) {
            Ok(()) => Ok(()),
            // Another process made the same version meanwhile: keep theirs.
            Err(_) if version.join("manifest.json").exists() => fs::remove_dir_all(&tmp),
            Err(e) => Err(e),
        }
    };
    if let Err(e) = finish() {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e).with_context(|| format!("cannot store the renditions of {}", asset.rel));
    }
    remove_other_versions(asset_dir, version);
    log::debug!(
        "{}: {} renditions generated in {} ms",
        asset.rel,
        manifest.renditions.len(),
        started.elapsed().as_millis()
    );
    Ok(manifest)
}

/// Deletes version directories of the same asset other than `keep` (stale originals).
/// Temporary directories are left to whoever is writing them.
fn remove_other_versions(asset_dir: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(asset_dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let temporary = entry.file_name().to_string_lossy().starts_with(".tmp-");
        if path != keep && !temporary {
            if let Err(e) = fs::remove_dir_all(&path) {
                log::warn!("cannot remove stale renditions {}: {e}", path.display());
            }
        }
    }
}

enum RenderError {
    /// The original is not a decodable image.
    Decode(String),
    /// Writing failed.
    Io(anyhow::Error),
}

/// Writes the web rendition and the thumbnails of `asset` into `dir`, largest first, each
/// made from the previous one (fitting into a smaller box gives the same size as fitting the
/// original, at a fraction of the cost).
fn write_renditions(asset: &Asset, dir: &Path) -> Result<Vec<ManifestEntry>, RenderError> {
    let original = image::ImageReader::open(&asset.file)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| RenderError::Decode(e.to_string()))?
        .decode()
        .map_err(|e| RenderError::Decode(e.to_string()))?;
    let png_original = asset.mime() == "image/png";
    let web = fit(&original, WEB);
    drop(original);
    let mut written = Vec::new();
    let web_name = if png_original { "cq5dam.web.1280.1280.png" } else { "cq5dam.web.1280.1280.jpeg" };
    if png_original {
        write_png(&web, &dir.join(web_name)).map_err(RenderError::Io)?;
        written.push(ManifestEntry { name: web_name.into(), mime: "image/png".into() });
    } else {
        write_jpeg(&web, &dir.join(web_name)).map_err(RenderError::Io)?;
        written.push(ManifestEntry { name: web_name.into(), mime: "image/jpeg".into() });
    }
    let mut source = web;
    let mut thumbnails = Vec::new();
    for &(w, h) in THUMBNAILS.iter().rev() {
        let thumbnail = fit(&source, (w, h));
        let name = format!("cq5dam.thumbnail.{w}.{h}.png");
        write_png(&thumbnail, &dir.join(&name)).map_err(RenderError::Io)?;
        thumbnails.push(ManifestEntry { name, mime: "image/png".into() });
        source = thumbnail;
    }
    // List as AEM does: thumbnails from small to large, then the web rendition.
    thumbnails.reverse();
    thumbnails.append(&mut written);
    Ok(thumbnails)
}

/// The largest size with the aspect ratio of `(width, height)` that fits into `(bw, bh)`,
/// never larger than the original (no upscaling) and never 0.
pub(crate) fn fitted(width: u32, height: u32, (bw, bh): (u32, u32)) -> (u32, u32) {
    if width <= bw && height <= bh {
        return (width.max(1), height.max(1));
    }
    let (w, h, bw64, bh64) = (u64::from(width), u64::from(height), u64::from(bw), u64::from(bh));
    // Compare width/height with bw/bh without floating point.
    if w * bh64 >= h * bw64 {
        let nh = (h * bw64 + w / 2) / w;
        (bw, u32::try_from(nh.clamp(1, bh64)).unwrap_or(bh))
    } else {
        let nw = (w * bh64 + h / 2) / h;
        (u32::try_from(nw.clamp(1, bw64)).unwrap_or(bw), bh)
    }
}

/// `image` scaled down to fit `bounds` with the fast integer thumbnail filter.
fn fit(image: &DynamicImage, bounds: (u32, u32)) -> DynamicImage {
    let (width, height) = image.dimensions();
    let (nw, nh) = fitted(width, height, bounds);
    if (nw, nh) == (width, height) { image.clone() } else { image.thumbnail_exact(nw, nh) }
}

fn write_png(image: &DynamicImage, path: &Path) -> anyhow::Result<()> {
    let out = BufWriter::new(fs::File::create(path)?);
    let encoder = PngEncoder::new_with_quality(out, CompressionType::Fast, FilterType::Adaptive);
    let pixels =
        if image.color().has_alpha() { DynamicImage::from(image.to_rgba8()) } else { image.to_rgb8().into() };
    pixels.write_with_encoder(encoder).with_context(|| format!("cannot encode {}", path.display()))
}

fn write_jpeg(image: &DynamicImage, path: &Path) -> anyhow::Result<()> {
    let mut out = BufWriter::new(fs::File::create(path)?);
    let encoder = JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
    DynamicImage::from(image.to_rgb8())
        .write_with_encoder(encoder)
        .with_context(|| format!("cannot encode {}", path.display()))?;
    io::Write::flush(&mut out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fitted;

    #[test]
    fn fitting_keeps_the_aspect_ratio_inside_the_box() {
        assert_eq!(fitted(4000, 3000, (1280, 1280)), (1280, 960));
        assert_eq!(fitted(3000, 4000, (1280, 1280)), (960, 1280));
        assert_eq!(fitted(4000, 3000, (140, 100)), (133, 100));
        assert_eq!(fitted(1000, 100, (140, 100)), (140, 14));
        assert_eq!(fitted(640, 480, (1280, 1280)), (640, 480));
        assert_eq!(fitted(10_000, 1, (48, 48)), (48, 1));
        assert_eq!(fitted(1, 10_000, (48, 48)), (1, 48));
        for (w, h) in [(1, 1), (7, 3000), (3001, 2999), (320, 320), (141, 99)] {
            for bounds in [(48, 48), (140, 100), (319, 319), (1280, 1280)] {
                let (nw, nh) = fitted(w, h, bounds);
                assert!(nw >= 1 && nh >= 1 && nw <= bounds.0.max(w.min(bounds.0)) && nh <= bounds.1);
                assert!(nw <= w && nh <= h);
            }
        }
    }
}
