//! The served folder seen as a DAM: which names are folders and which are assets, in which
//! repository order, with which sidecar titles and tags (the parsed sidecar is cached by the
//! file's stamp). It owns the state dir and the caches kept there (digests via `metadata`,
//! renditions via `renditions`), the runtime controls that tests of damfs use (credentials,
//! stall, QueryBuilder switch) and the record of requests seen.
//!
//! It knows nothing of HTTP or URLs: paths here are lists of names relative to the served
//! folder, already percent-decoded and checked by `routes`. Nothing here ever writes inside the
//! served folder.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use parking_lot::{Mutex, RwLock};
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::Auth;
pub(crate) use super::files::{Asset, Stamp};
use super::metadata::{Digests, MetaNeeds, describe};
use super::renditions::{Generator, ORIGINAL, Rendition};
use crate::bounded::Bounded;
use crate::sidecar::{SIDECAR_NAME, Sidecar};

mod controls;

/// At most this many request records are kept (oldest dropped first), so that a long-running
/// `damfs serve` does not grow without bound; tests clear the record long before.
const MAX_RECORDS: usize = 100_000;

/// Marker written into a fresh state dir; bump the number when the layout changes.
const STATE_VERSION: &str = "damfs-serve state 1\n";

/// A folder of images served as an AEM Assets DAM, its state dir and the runtime controls of
/// the server.
///
/// Lock order: no two of the locks below are ever held at once, and none is held across an
/// `.await` or disk I/O.
pub struct Catalog {
    /// The served folder, canonical: `/content/dam`.
    root: PathBuf,
    /// Canonical state dir: digests and generated renditions (outside `root`).
    state_dir: PathBuf,
    /// Credentials accepted now; read on every request, replaced by [`Catalog::set_auth`].
    auth: RwLock<Auth>,
    /// Tokens issued by the IMS endpoints.
    issued: super::ims::Issued,
    /// True while requests must wait (see [`Catalog::set_stall`]).
    stall: watch::Sender<bool>,
    /// Requests waiting on the stall right now.
    stalled: AtomicU64,
    /// Milliseconds every folder listing page waits before it is answered (0: none).
    listing_delay_ms: AtomicU64,
    /// False when `/bin/querybuilder.json` answers 404.
    querybuilder: AtomicBool,
    /// Assets (relative paths) shown as still being processed: `dam:assetState`
    /// `processing` and no rendition but the original.
    processing: RwLock<std::collections::HashSet<String>>,
    /// Bytes per second each binary body is held to (0: no limit).
    throttle: std::sync::atomic::AtomicU64,
    /// Requests seen, oldest first, at most [`MAX_RECORDS`].
    records: Mutex<VecDeque<Arc<LiveRecord>>>,
    /// The sidecar as last parsed, with the stamp of the file it came from.
    sidecar: Mutex<Option<(Option<Stamp>, Arc<Sidecar>)>>,
    /// SHA-1 digests of assets.
    digests: Digests,
    /// Makes and finds generated renditions.
    pub(super) renditions: Generator,
    /// The children of folders as last read, by folder (see [`Catalog::children`]).
    listed: Mutex<Bounded<PathBuf, Listed>>,
}

/// Children of folders kept in memory, counted in children: a listing is read a page at a
/// time, and every page would otherwise read and sort the whole folder again. A hundred
/// thousand children take a few MiB.
const LISTED_CHILDREN: u64 = 100_000;

/// How old a folder's modification time must be before its children are kept. A folder
/// changed within the same tick of the kernel's coarse clock as the last read would keep
/// that modification time, so the kept children of a folder changed lately would hide the
/// change. A change after the read then always shows as a newer time.
const LISTED_SETTLED: Duration = Duration::from_secs(1);

/// The children of a folder as read, and what its directory looked like then.
struct Listed {
    /// Inode and modification time (ns) of the directory: any child added, removed or
    /// renamed changes the time.
    dir: (u64, u64),
    children: Arc<[Child]>,
}

/// A request as recorded while it is answered: the byte count grows as the body streams.
#[derive(Debug)]
pub(super) struct LiveRecord {
    method: String,
    path: String,
    status: u16,
    /// Body bytes handed to the connection so far.
    pub(super) bytes: AtomicU64,
}

/// Folder or asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Folder,
    Asset,
}

/// A child of a folder, as listed.
#[derive(Debug, Clone)]
pub(crate) struct Child {
    pub name: String,
    pub kind: Kind,
}

/// A folder of the DAM.
#[derive(Debug, Clone)]
pub(crate) struct Folder {
    /// Relative path with `/` separators; empty for the root.
    pub rel: String,
    /// Last segment of `rel` (`dam` for the root).
    pub name: String,
    /// Where it is on disk.
    pub dir: PathBuf,
    pub mtime: SystemTime,
}

/// What a relative path names.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Folder(Folder),
    Asset(Asset),
}

/// Why a name cannot be a folder or asset of the DAM, if it cannot.
pub(crate) fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty name")
    } else if name == "." || name == ".." {
        Some("relative path segment")
    } else if name.contains(['/', '\\', '\0']) {
        Some("slash, backslash or NUL in a name")
    } else if name.starts_with('.') {
        Some("names beginning with '.' are not served")
    } else {
        None
    }
}

/// Repository order: children are sorted by a 64-bit FNV-1a hash of their name (then by
/// name), which is deterministic but deliberately not alphabetical, as a real repository's
/// order is not.
fn repository_order(name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl Catalog {
    /// Opens `dir` as the DAM root, with `state_dir` for digests and generated renditions
    /// (created if missing; it must not lie inside `dir`). Nothing is ever written inside `dir`.
    pub fn open(dir: &Path, state_dir: &Path, auth: Auth) -> anyhow::Result<Arc<Catalog>> {
        let root = dir.canonicalize().with_context(|| format!("{}", dir.display()))?;
        if !root.is_dir() {
            bail!("{}: not a folder", dir.display());
        }
        fs::create_dir_all(state_dir)
            .with_context(|| format!("cannot create the state dir {}", state_dir.display()))?;
        let state_dir = state_dir.canonicalize().with_context(|| format!("{}", state_dir.display()))?;
        if state_dir.starts_with(&root) {
            bail!(
                "the state dir {} lies inside the served folder {}: choose one outside it",
                state_dir.display(),
                root.display()
            );
        }
        let marker = state_dir.join("VERSION");
        if !marker.exists() {
            fs::write(&marker, STATE_VERSION)
                .with_context(|| format!("cannot write {}", marker.display()))?;
        }
        let renditions = Generator::new(&state_dir)?;
        let digests = Digests::new(&state_dir)?;
        Ok(Arc::new(Catalog {
            root,
            state_dir,
            auth: RwLock::new(auth),
            issued: super::ims::Issued::default(),
            stall: watch::channel(false).0,
            stalled: AtomicU64::new(0),
            listing_delay_ms: AtomicU64::new(0),
            querybuilder: AtomicBool::new(true),
            processing: RwLock::default(),
            throttle: std::sync::atomic::AtomicU64::new(0),
            records: Mutex::new(VecDeque::new()),
            sidecar: Mutex::new(None),
            digests,
            renditions,
            listed: Mutex::new(Bounded::new(LISTED_CHILDREN)),
        }))
    }

    /// The served folder (canonical).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The state dir (canonical).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The sidecar, re-read when its file changed. A sidecar that cannot be read or parsed is
    /// logged once and served as empty.
    pub(crate) fn sidecar(&self) -> Arc<Sidecar> {
        let path = self.root.join(SIDECAR_NAME);
        let stamp = fs::metadata(&path).ok().map(|m| Stamp::of(&m));
        if let Some((cached, sidecar)) = &*self.sidecar.lock() {
            if *cached == stamp {
                return Arc::clone(sidecar);
            }
        }
        let sidecar = match Sidecar::load(&self.root) {
            Ok(sidecar) => Arc::new(sidecar),
            Err(e) => {
                log::warn!("{e:#}; serving without titles and tags");
                Arc::new(Sidecar::default())
            }
        };
        *self.sidecar.lock() = Some((stamp, Arc::clone(&sidecar)));
        sidecar
    }

    /// The DAM root.
    pub(crate) fn root_folder(&self) -> io::Result<Folder> {
        let meta = fs::metadata(&self.root)?;
        Ok(Folder {
            rel: String::new(),
            name: "dam".into(),
            dir: self.root.clone(),
            mtime: meta.modified().unwrap_or(UNIX_EPOCH),
        })
    }

    /// What `segments` (checked names, relative to the root) name: a folder, an asset, or
    /// nothing (missing, not a regular file or folder, or reached through a symbolic link that
    /// leads out of the served folder).
    pub(crate) fn lookup(&self, segments: &[String]) -> io::Result<Option<Entry>> {
        if segments.is_empty() {
            return self.root_folder().map(|f| Some(Entry::Folder(f)));
        }
        let mut path = self.root.clone();
        for segment in segments {
            if let Some(problem) = name_problem(segment) {
                log::debug!("refusing {segment:?}: {problem}");
                return Ok(None);
            }
            path.push(segment);
        }
        let canonical = match fs::canonicalize(&path) {
            Ok(p) => p,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        if !canonical.starts_with(&self.root) {
            log::debug!("{} leads out of the served folder", path.display());
            return Ok(None);
        }
        let rel = segments.join("/");
        let name = segments.last().cloned().unwrap_or_default();
        entry_at(rel, name, canonical)
    }

    /// The children of `folder` in repository order: folders and regular files whose names
    /// can be served; symbolic links only when they stay inside the served folder. Kept while
    /// the directory's modification time stays the same (unless it was too recent to tell a
    /// later change, or the folder holds symbolic links, whose targets may change apart).
    pub(crate) fn children(&self, folder: &Folder) -> io::Result<Arc<[Child]>> {
        use std::os::unix::fs::MetadataExt;
        let read_at = SystemTime::now();
        let meta = fs::metadata(&folder.dir)?;
        let dir = (meta.ino(), super::files::nanos(meta.modified().unwrap_or(UNIX_EPOCH)));
        if let Some(listed) = self.listed.lock().get(&folder.dir)
            && listed.dir == dir
        {
            return Ok(Arc::clone(&listed.children));
        }
        let (children, links) = self.read_children(folder)?;
        let children: Arc<[Child]> = children.into();
        let settled = meta.modified().is_ok_and(|m| m + LISTED_SETTLED <= read_at);
        if settled && !links {
            let weight = children.len() as u64;
            let kept = Listed { dir, children: Arc::clone(&children) };
            self.listed.lock().insert(folder.dir.clone(), kept, weight);
        }
        Ok(children)
    }

    /// Reads the children of `folder` from disk, sorted, and whether any was a link.
    fn read_children(&self, folder: &Folder) -> io::Result<(Vec<Child>, bool)> {
        let mut children = Vec::new();
        let mut links = false;
        for dirent in fs::read_dir(&folder.dir)? {
            let dirent = dirent?;
            let Ok(name) = dirent.file_name().into_string() else {
                log::debug!("skipping a name that is not UTF-8 in {}", folder.dir.display());
                continue;
            };
            if name_problem(&name).is_some() {
                continue;
            }
            let file_type = dirent.file_type()?;
            let kind = if file_type.is_symlink() {
                links = true;
                match self.symlink_kind(&dirent.path()) {
                    Some(kind) => kind,
                    None => continue,
                }
            } else if file_type.is_dir() {
                Kind::Folder
            } else if file_type.is_file() {
                Kind::Asset
            } else {
                continue;
            };
            children.push(Child { name, kind });
        }
        children.sort_by_cached_key(|c| (repository_order(&c.name), c.name.clone()));
        Ok((children, links))
    }

    /// The kind of what a symbolic link leads to, if it stays inside the served folder.
    fn symlink_kind(&self, path: &Path) -> Option<Kind> {
        let target = fs::canonicalize(path).ok()?;
        if !target.starts_with(&self.root) {
            log::debug!("{} leads out of the served folder", path.display());
            return None;
        }
        let meta = fs::metadata(&target).ok()?;
        if meta.is_dir() {
            Some(Kind::Folder)
        } else if meta.is_file() {
            Some(Kind::Asset)
        } else {
            None
        }
    }

    /// The entry for a listed child of `folder` (None if it vanished meanwhile).
    pub(crate) fn child_entry(&self, folder: &Folder, child: &Child) -> io::Result<Option<Entry>> {
        let rel = crate::names::join(&folder.rel, &child.name);
        let path = folder.dir.join(&child.name);
        entry_at(rel, child.name.clone(), path)
    }

    /// The title of a folder from the sidecar.
    pub(crate) fn folder_title(&self, sidecar: &Sidecar, folder: &Folder) -> Option<String> {
        sidecar.folders.get(&folder.rel).map(|f| f.title.clone()).filter(|t| !t.is_empty())
    }

    /// The metadata node of an asset (`jcr:content/metadata`), as Sling renders it.
    pub(crate) async fn metadata(
        &self,
        sidecar: &Sidecar,
        asset: &Asset,
        needs: MetaNeeds,
    ) -> anyhow::Result<Map<String, Value>> {
        describe(&self.digests, sidecar, asset, needs).await
    }
}

/// The entry at `path` (already known to be inside the served folder).
pub(crate) fn entry_at(rel: String, name: String, path: PathBuf) -> io::Result<Option<Entry>> {
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    if meta.is_dir() {
        Ok(Some(Entry::Folder(Folder { rel, name, dir: path, mtime })))
    } else if meta.is_file() {
        Ok(Some(Entry::Asset(Asset { rel, name, file: path, size: meta.len(), mtime })))
    } else {
        Ok(None)
    }
}

/// Errors that mean "there is nothing there".
fn is_missing(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// One request waiting on the stall (see [`Catalog::stalled`]).
pub(super) struct StalledGuard(Arc<Catalog>);

impl Drop for StalledGuard {
    fn drop(&mut self) {
        self.0.stalled.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests;
