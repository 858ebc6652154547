//! The namespace: inode numbers, names and attributes of everything the mount shows, the
//! reserved trees, and open handles. Not tied to the FUSE bindings: every operation takes
//! plain values and a deadline, and answers plain values or an [`FsError`].

mod changes;
mod dir_handles;
mod handles;
pub mod inode;
pub mod reserved;
mod resolve;
pub use changes::{Inval, KernelSink};
mod xattr;

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use crate::deadline::Deadline;
use parking_lot::Mutex;

use crate::cache::InodeStore;
use crate::error::{FsError, FsResult};
use crate::listing::{Listing, Listings};
use crate::materialize::Materializer;
use crate::materialize::PinGuard;
use crate::materialize::transfer::Transfer;
use crate::names::{join, split};
// The services below are generic over the remote; the namespace never calls it.
use crate::remote::Remote;
use crate::stats::Stats;
use inode::{InodeTable, Node, ROOT_INO};

/// Attribute and entry lifetime in the kernel for nodes whose attributes may still change
/// (an asset whose size is a hint until it is materialized).
const SHORT_TTL: Duration = Duration::from_secs(1);

/// Kind of a node, as `stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory (0555).
    Dir,
    /// A regular file (0444).
    File,
    /// A symbolic link.
    Symlink,
}

/// Attributes of a node.
#[derive(Debug, Clone, Copy)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// Kind.
    pub kind: Kind,
    /// Length in bytes.
    pub size: u64,
    /// Modification time (also used as ctime).
    pub mtime: SystemTime,
    /// Permission bits.
    pub perm: u16,
}

/// A node with how long the kernel may cache it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Its attributes.
    pub attr: Attr,
    /// Entry and attribute lifetime.
    pub ttl: Duration,
}

/// One directory entry.
#[derive(Debug, Clone)]
pub struct DirItem {
    /// Name in the directory.
    pub name: String,
    /// The child.
    pub entry: Entry,
    /// What the child is (for counting the entry when a READDIRPLUS reply hands it over).
    node: Arc<Node>,
}

/// An opened file.
#[derive(Debug)]
pub struct Opened {
    /// The handle for reads and release.
    pub fh: u64,
    /// A complete local file backing the handle: a candidate for FUSE passthrough.
    pub backing: Option<Arc<File>>,
    /// The kernel's cached attributes of this inode are wrong (the real length of the
    /// original differs from the listed `dam:size`) and must be invalidated.
    pub stale_attr: bool,
    /// The asset whose complete, final content `backing` is: the inode may be opened
    /// again on the same file ([`Vfs::reopen`]) until that content leaves the cache. None
    /// while the remote is still processing the asset (a later open asks again).
    pub keep: Option<String>,
}

#[derive(Debug)]
enum Handle {
    /// An asset's or rendition's bytes; the asset is pinned in the cache while open.
    File {
        file: Arc<File>,
        transfer: Option<Arc<Transfer>>,
        what: String,
        _pin: PinGuard,
    },
    Bytes(Arc<Vec<u8>>),
}

/// How the namespace behaves.
#[derive(Debug, Clone)]
pub struct VfsConfig {
    /// DAM path of the folder mounted as the root.
    pub root: String,
    /// How long a kernel request may wait for the remote (its [`Deadline`]).
    pub request_timeout: Duration,
    /// How long the kernel may keep what does not change before a listing is re-read.
    pub dir_ttl: Duration,
    /// Whether a new version of a materialized asset, found by a re-read listing, replaces
    /// it (otherwise materialized assets are snapshots).
    pub revalidate: bool,
}

/// The namespace of a mount.
#[derive(Debug)]
pub struct Vfs<R> {
    config: VfsConfig,
    stats: Arc<Stats>,
    inodes: InodeTable,
    /// Where inode numbers persist across mounts.
    store: InodeStore,
    dirs: Arc<Listings<R>>,
    materializer: Arc<Materializer<R>>,
    /// Guards the map only.
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    /// Open directories and the entries taken at their first read. Guards the map only.
    dir_handles: Mutex<HashMap<u64, Option<Arc<Vec<DirItem>>>>>,
    next_fh: AtomicU64,
    /// The last taxonomy built, with the count of manifest changes it was built at. Guards
    /// the value only: building happens outside.
    taxonomy: Mutex<Option<(u64, Arc<reserved::Taxonomy>)>>,
    started: SystemTime,
    /// Where invalidations for the kernel go.
    kernel: changes::Kernel,
}

impl<R: Remote> Vfs<R> {
    /// The namespace over the listing service and the materializer, keeping inode numbers
    /// in `store` and counting in `stats`.
    pub fn new(
        config: VfsConfig,
        dirs: Arc<Listings<R>>,
        materializer: Arc<Materializer<R>>,
        store: InodeStore,
        stats: Arc<Stats>,
    ) -> Arc<Self> {
        let inodes = InodeTable::new(&config.root);
        let vfs = Arc::new(Vfs {
            config,
            stats,
            inodes,
            store,
            dirs,
            materializer,
            handles: Mutex::new(HashMap::new()),
            dir_handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            taxonomy: Mutex::new(None),
            started: SystemTime::now(),
            kernel: changes::Kernel::default(),
        });
        vfs.watch_listings();
        vfs
    }

    /// The counters of this mount.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Assets with content and bytes of content in the cache.
    pub fn cache_usage(&self) -> (u64, u64) {
        self.materializer.cache_usage()
    }

    /// Lists every folder of the mount in the background, at the lowest priority, until
    /// done or `stopping` is cancelled (`--prefetch-listings`).
    pub fn walk_listings(
        &self,
        stopping: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = crate::listing::walk::Walked> + Send + 'static {
        Arc::clone(&self.dirs).walk(stopping)
    }

    /// Open file handles.
    pub fn open_handles(&self) -> u64 {
        self.handles.lock().len() as u64
    }

    /// The deadline of an operation that arrives now.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.config.request_timeout)
    }

    fn node(&self, ino: u64) -> FsResult<Arc<Node>> {
        self.inodes.get(ino).ok_or(FsError::NotFound)
    }

    /// The inode number of a node: the one it had (in this mount or an earlier one), or a
    /// new one, persisted.
    /// With `counted`, the kernel is about to be given an entry of it (a LOOKUP reply).
    fn ino(&self, node: &Node, counted: bool) -> u64 {
        if let Some(ino) = self.inodes.find(node) {
            return if counted { self.inodes.insert(node, ino, true) } else { ino };
        }
        let key = node.key();
        match self.store.get(&key) {
            Some(ino) => self.inodes.insert(node, ino, counted),
            None => {
                let fresh = self.store.fresh();
                let ino = self.inodes.insert(node, fresh, counted);
                if ino == fresh {
                    self.store.put(&key, ino);
                }
                ino
            }
        }
    }

    /// Numbers those of `nodes` this mount has not numbered yet: with the numbers earlier
    /// mounts gave them, read in a few queries (a readdir would otherwise ask once per
    /// entry), or with fresh ones.
    fn load_inodes<'a>(&self, nodes: impl Iterator<Item = &'a Node>) {
        let missing: Vec<(String, &Node)> =
            nodes.filter(|n| self.inodes.find(n).is_none()).map(|n| (n.key(), n)).collect();
        if missing.is_empty() {
            return;
        }
        let keys: Vec<String> = missing.iter().map(|(k, _)| k.clone()).collect();
        let known = self.store.get_many(&keys);
        for (key, node) in &missing {
            match known.get(key) {
                Some(&ino) => {
                    self.inodes.insert(node, ino, false);
                }
                None => {
                    let fresh = self.store.fresh();
                    if self.inodes.insert(node, fresh, false) == fresh {
                        self.store.put(key, fresh);
                    }
                }
            }
        }
    }

    /// A path relative to the mount root (for link targets).
    fn relative<'a>(&self, path: &'a str) -> &'a str {
        let root = &self.config.root;
        if root.is_empty() {
            path
        } else {
            path.strip_prefix(root.as_str()).map(|p| p.trim_start_matches('/')).unwrap_or(path)
        }
    }

    /// The kernel forgot `n` entries of `ino` (FORGET): at zero the node leaves the
    /// inode table; a later lookup finds its number in the index again.
    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.forget(ino, n);
    }

    /// A READDIRPLUS reply handed the kernel this entry (one more lookup to forget).
    pub fn entry_sent(&self, item: &DirItem) {
        self.inodes.count(item.entry.attr.ino, &item.node);
    }

    /// Nodes in the inode table: those the kernel holds, and those named lately.
    pub fn inodes_held(&self) -> u64 {
        self.inodes.len() as u64
    }

    /// The counters of the mount with the values kept elsewhere (cache usage, handles,
    /// the inode table).
    pub fn snapshot(&self) -> crate::stats::StatsSnapshot {
        let (assets, bytes) = self.cache_usage();
        let mut snapshot = self.stats.snapshot(assets, bytes, self.open_handles());
        snapshot.inodes = self.inodes_held();
        snapshot
    }

    /// Every entry of a directory, `.` and `..` excluded, with attributes.
    pub async fn readdir(self: &Arc<Self>, ino: u64, deadline: Deadline) -> FsResult<Vec<DirItem>> {
        let node = self.node(ino)?;
        let children: Vec<(String, Node)> = match &*node {
            Node::Folder(folder) => {
                let listing = self.dirs.get(folder, deadline).await?;
                listing
                    .children
                    .iter()
                    .map(|c| {
                        let path = join(folder, &c.name);
                        (c.name.clone(), if c.folder { Node::Folder(path) } else { Node::Asset(path) })
                    })
                    .collect()
            }
            Node::RenditionsDir(folder) => assets_of(&*self.dirs.get(folder, deadline).await?)
                .map(|name| (name.to_string(), Node::RenditionsOf(join(folder, name))))
                .collect(),
            Node::MetadataDir(folder) => assets_of(&*self.dirs.get(folder, deadline).await?)
                .filter_map(|name| {
                    let file = crate::names::with_suffix(name, ".json")?;
                    Some((file, Node::MetadataFile(join(folder, name))))
                })
                .collect(),
            Node::RenditionsOf(asset) => {
                let manifest = self.materializer.manifest(asset, deadline).await?;
                manifest
                    .renditions
                    .iter()
                    .map(|r| (r.name.clone(), Node::Rendition(asset.clone(), r.name.clone())))
                    .collect()
            }
            Node::TagDir(tag) => {
                let taxonomy = self.taxonomy().await?;
                let dir = taxonomy.dirs.get(tag).ok_or(FsError::NotFound)?;
                dir.subtags
                    .iter()
                    .map(|s| (s.clone(), Node::TagDir(join(tag, s))))
                    .chain(dir.links.iter().map(|(n, a)| (n.clone(), Node::TagLink(tag.clone(), a.clone()))))
                    .collect()
            }
            Node::SearchRoot => {
                self.dirs.searched().into_iter().map(|w| (w.clone(), Node::SearchDir(w))).collect()
            }
            Node::SearchDir(words) => {
                let results = self.dirs.search(words, deadline).await?;
                results.iter().map(|(n, a)| (n.clone(), Node::SearchLink(words.clone(), a.clone()))).collect()
            }
            _ => return Err(FsError::NotDir),
        };
        self.load_inodes(children.iter().map(|(_, child)| child));
        let mut items = Vec::with_capacity(children.len());
        for (name, child) in children {
            let ino = self.ino(&child, false);
            let entry = self.entry(&child, ino, false, deadline).await?;
            items.push(DirItem { name, entry, node: Arc::new(child) });
        }
        Ok(items)
    }

    /// The inode of a directory's parent (for `..`).
    pub fn parent_ino(&self, ino: u64) -> u64 {
        let Ok(node) = self.node(ino) else { return ROOT_INO };
        let parent = match &*node {
            Node::Folder(f) if *f == self.config.root => return ROOT_INO,
            Node::Folder(f) => Node::Folder(split(f).0.to_string()),
            Node::RenditionsDir(f) | Node::MetadataDir(f) => Node::Folder(f.clone()),
            Node::RenditionsOf(a) => Node::RenditionsDir(split(a).0.to_string()),
            Node::TagDir(t) if t.is_empty() => return ROOT_INO,
            Node::TagDir(t) => Node::TagDir(split(t).0.to_string()),
            Node::SearchRoot => return ROOT_INO,
            Node::SearchDir(_) => Node::SearchRoot,
            _ => return ROOT_INO,
        };
        self.ino(&parent, false)
    }
}

fn assets_of(listing: &Listing) -> impl Iterator<Item = &str> {
    listing.children.iter().filter(|c| !c.folder).map(|c| c.name.as_str())
}
