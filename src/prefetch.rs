//! `damfs prefetch`: makes many remote assets available in one go. It walks the given paths
//! of a live mount and reads every asset and every one of its renditions to the end, which
//! materializes them (the mount fetches, verifies and caches; the cache cap applies as for
//! any open), with a progress bar on a terminal and plain periodic lines otherwise. With
//! `--from` the paths come from a list (a Sites server's asset references, say): each line
//! relative to the mount point, absolute, or a DAM path or URL; a line that names nothing in
//! the mount is reported with its number and skipped.

use std::collections::{HashSet, VecDeque};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parking_lot::Mutex;

use crate::cli::PrefetchArgs;
use crate::materialize::{RenditionSelection, select};
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
    /// Lines of the `--from` list that named nothing to prefetch.
    pub bad_lines: u64,
}

/// Runs `damfs prefetch`; the summary is printed, and failures make the exit status 1.
pub fn run(args: &PrefetchArgs) -> anyhow::Result<Summary> {
    if args.jobs == 0 {
        bail!("--jobs: must be at least 1");
    }
    let mut assets = Vec::new();
    let mut bad_lines = 0;
    if let Some(from) = &args.from {
        let [base] = args.paths.as_slice() else {
            bail!("--from: give one PATH, the mount point the listed paths are relative to");
        };
        bad_lines = collect_listed(from, base, args.recursive, &mut assets)?;
    } else {
        for path in &args.paths {
            let path = std::path::absolute(path).with_context(|| path.display().to_string())?;
            check_in_mount(&path)?;
            collect(&path, args.recursive, &mut assets).with_context(|| format!("{}", path.display()))?;
        }
    }
    let mut seen = HashSet::new();
    assets.retain(|a| seen.insert(a.clone()));
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
    let summary = Summary {
        assets: total - failed.len() as u64,
        bytes: bytes.load(Ordering::Relaxed),
        failed,
        bad_lines,
    };
    println!(
        "prefetched {} of {total} assets ({}) in {:.1}s",
        summary.assets,
        human_size(summary.bytes),
        start.elapsed().as_secs_f64()
    );
    for (path, why) in &summary.failed {
        println!("failed: {}: {why}", path.display());
    }
    if summary.bad_lines > 0 {
        println!("skipped {} lines of the list that name nothing to prefetch", summary.bad_lines);
    }
    Ok(summary)
}

/// Adds the assets the lines of `from` (`-` for standard input) name, resolved against
/// `base` (a folder in a damfs mount); reports each bad line on stderr, with its number and
/// cause, and answers how many there were.
fn collect_listed(from: &Path, base: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<u64> {
    let text = if from == Path::new("-") {
        let mut text = Vec::new();
        std::io::stdin().read_to_end(&mut text).context("--from -: reading standard input")?;
        text
    } else {
        std::fs::read(from).with_context(|| format!("--from {}", from.display()))?
    };
    let base = std::path::absolute(base).with_context(|| base.display().to_string())?;
    let mount = ListMount::of(&base)?;
    let shown = if from == Path::new("-") { "<stdin>".into() } else { from.display().to_string() };
    let mut bad = 0;
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let result = std::str::from_utf8(line)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(|line| mount.resolve(&base, line.trim()))
            .and_then(|path| match path {
                Some(path) => collect(&path, recursive, out).map_err(|e| format!("{}: {e}", path.display())),
                None => Ok(()),
            });
        if let Err(cause) = result {
            eprintln!("prefetch: {shown} line {}: {cause}", n + 1);
            bad += 1;
        }
    }
    Ok(bad)
}

/// The mount a `--from` list is resolved in: its mount point and the DAM folder it shows.
#[derive(Debug)]
struct ListMount {
    mountpoint: PathBuf,
    /// The DAM path of the mounted folder (`""` for /content/dam).
    root: String,
}

impl ListMount {
    /// The damfs mount that holds `path`.
    fn of(path: &Path) -> anyhow::Result<ListMount> {
        check_in_mount(path)?;
        let mut candidate = Some(path);
        while let Some(p) = candidate {
            if let Some(m) = mountinfo::find(p) {
                let (_, root) = crate::remote::aem::parse_remote_url(&m.source)
                    .with_context(|| format!("{}: the mount's source {}", path.display(), m.source))?;
                return Ok(ListMount { mountpoint: PathBuf::from(&m.mountpoint), root });
            }
            candidate = p.parent();
        }
        bail!("{} is not inside a damfs mount", path.display())
    }

    /// The local path a line names: `None` for a blank line or a comment.
    fn resolve(&self, base: &Path, line: &str) -> Result<Option<PathBuf>, String> {
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        let url_path;
        let dam = if line.starts_with("http://") || line.starts_with("https://") {
            let url = url::Url::parse(line).map_err(|e| format!("{line}: not a URL ({e})"))?;
            url_path = url.path().to_string();
            Some(url_path.as_str())
        } else {
            Some(line).filter(|l| *l == "/content/dam" || l.starts_with("/content/dam/"))
        };
        if let Some(dam) = dam {
            return self.dam_path(dam).map(Some).map_err(|cause| format!("{line}: {cause}"));
        }
        let path = Path::new(line);
        if path.components().any(|c| c == std::path::Component::ParentDir) {
            return Err(format!("{line}: '..' is not allowed"));
        }
        let path = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
        if !path.starts_with(&self.mountpoint) {
            return Err(format!("{line}: not inside the mount at {}", self.mountpoint.display()));
        }
        Ok(Some(path))
    }

    /// The local path of a DAM path (`/content/dam/...`, percent-encoded or not; a
    /// reference to a rendition or to the metadata of an asset names the asset).
    fn dam_path(&self, dam: &str) -> Result<PathBuf, String> {
        let dam = dam.split(['?', '#']).next().unwrap_or_default();
        let decoded = percent_encoding::percent_decode_str(dam)
            .decode_utf8()
            .map_err(|_| "not UTF-8 once percent-decoded".to_string())?;
        let Some(rest) = decoded.strip_prefix("/content/dam") else {
            return Err("not a DAM path (/content/dam/...)".into());
        };
        let rest = rest.trim_matches('/');
        let asset = ["/jcr:content", "/_jcr_content"]
            .iter()
            .find_map(|marker| rest.find(marker).map(|i| &rest[..i]))
            .unwrap_or(rest);
        let inside = if self.root.is_empty() {
            Some(asset)
        } else if asset == self.root {
            Some("")
        } else {
            asset.strip_prefix(&format!("{}/", self.root))
        };
        let Some(inside) = inside else {
            return Err(format!("not under the mounted folder /content/dam/{}", self.root));
        };
        if inside.split('/').any(|s| s == "." || s == "..") {
            return Err("'.' and '..' are not allowed".into());
        }
        Ok(if inside.is_empty() { self.mountpoint.clone() } else { self.mountpoint.join(inside) })
    }
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

/// Reads an asset and the renditions its first open materializes to the end (those the
/// mount's `--renditions` selects, as its root says); returns the bytes read.
fn materialize(asset: &Path) -> anyhow::Result<u64> {
    let mut total = read_to_end(asset)?;
    let (Some(folder), Some(name)) = (asset.parent(), asset.file_name()) else {
        return Ok(total);
    };
    let selection = selection_of(asset);
    let renditions = folder.join(".renditions").join(name);
    for entry in std::fs::read_dir(&renditions).with_context(|| format!("{}", renditions.display()))? {
        let entry = entry?;
        let rendition = entry.file_name();
        if rendition != "original" && selection.eager(&rendition.to_string_lossy()) {
            total += read_to_end(&entry.path())?;
        }
    }
    Ok(total)
}

/// The rendition selection of the damfs mount holding `path` (every rendition when the
/// mount does not say).
fn selection_of(path: &Path) -> RenditionSelection {
    let root = path.ancestors().find_map(mountinfo::find).map(|m| PathBuf::from(m.mountpoint));
    let text = root.and_then(|r| crate::stats::read_xattr(&r, select::XATTR).ok());
    let text = text.map(|t| String::from_utf8_lossy(&t).into_owned());
    text.and_then(|t| RenditionSelection::parse(&t).ok()).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_paths_resolve_in_the_mount() {
        let mount = ListMount { mountpoint: PathBuf::from("/srv/ca"), root: "we-retail".into() };
        let base = Path::new("/srv/ca/en");
        let ok = |line: &str| mount.resolve(base, line).unwrap().map(|p| p.display().to_string());
        assert_eq!(ok(""), None);
        assert_eq!(ok("# a comment"), None);
        assert_eq!(ok("a.jpg").as_deref(), Some("/srv/ca/en/a.jpg"));
        assert_eq!(ok("/srv/ca/fr/b.jpg").as_deref(), Some("/srv/ca/fr/b.jpg"));
        assert_eq!(ok("/content/dam/we-retail/en/a%20b.jpg").as_deref(), Some("/srv/ca/en/a b.jpg"));
        assert_eq!(
            ok("/content/dam/we-retail/en/a.jpg/jcr:content/renditions/cq5dam.web.1280.1280.jpeg").as_deref(),
            Some("/srv/ca/en/a.jpg")
        );
        assert_eq!(
            ok("https://dam.example.com/content/dam/we-retail/en/a.jpg/_jcr_content/renditions/x.png?w=1")
                .as_deref(),
            Some("/srv/ca/en/a.jpg")
        );
        assert_eq!(ok("/content/dam/we-retail").as_deref(), Some("/srv/ca"));
        let bad = |line: &str| mount.resolve(base, line).unwrap_err();
        assert!(
            bad("/content/dam/other/x.jpg").contains("not under the mounted folder /content/dam/we-retail")
        );
        assert!(bad("/etc/passwd").contains("not inside the mount at /srv/ca"));
        assert!(bad("../../etc/passwd").contains("'..'"));
        assert!(bad("/content/dam/we-retail/../x").contains("'..'"));
        assert!(bad("http://[bad").contains("not a URL"));
    }
}
