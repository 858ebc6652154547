//! What the namespace does when a re-read listing finds changes: it forgets what it holds
//! of an asset with a new version (or gone), so that the next open materializes it anew,
//! and tells the kernel to drop its cached attributes, pages and names of it.

use std::sync::{Arc, OnceLock};

use super::Remote;
use super::Vfs;
use super::inode::Node;
use crate::listing::Change;
use crate::names::join;

/// Something the kernel holds that no longer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inval {
    /// An inode's attributes and cached pages.
    Inode(u64),
    /// A name in a directory.
    Entry {
        /// The directory's inode.
        parent: u64,
        /// The name.
        name: String,
    },
}

/// Sends invalidations to the kernel (set by the FUSE layer once its session exists). It
/// must not block: the kernel may be waiting on a reply from the caller.
pub type KernelSink = Box<dyn Fn(Vec<Inval>) + Send + Sync>;

/// The sink, once set.
#[derive(Default)]
pub(super) struct Kernel(OnceLock<KernelSink>);

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "Kernel(set)" } else { "Kernel(unset)" })
    }
}

impl<R: Remote> Vfs<R> {
    /// Where invalidations go (once; later calls are ignored).
    pub fn set_kernel(&self, sink: KernelSink) {
        let _ = self.kernel.0.set(sink);
    }

    /// Has the listing service report what each re-read listing changed.
    pub(super) fn watch_listings(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        self.dirs.on_change(Box::new(move |folder, changes| {
            let Some(vfs) = weak.upgrade() else { return };
            let (folder, changes) = (folder.to_string(), changes.to_vec());
            // Forgetting content removes files: off the runtime's workers.
            drop(tokio::task::spawn_blocking(move || vfs.apply_changes(&folder, &changes)));
        }));
    }

    /// Forgets the assets of `folder` that changed or went away (unless revalidation is
    /// off: then materialized assets stay as they are), and invalidates what the kernel
    /// holds of them and of the names that came and went. A new version is a new file to
    /// the kernel: its nodes get new inode numbers, and handles open on the old ones keep
    /// reading the old version.
    pub(super) fn apply_changes(&self, folder: &str, changes: &[Change]) {
        let find = |node: Node| self.inodes.find(&node);
        let parent = find(Node::Folder(folder.to_string()));
        let renditions_dir = find(Node::RenditionsDir(folder.to_string()));
        let metadata_dir = find(Node::MetadataDir(folder.to_string()));
        let mut out = Vec::new();
        for change in changes {
            let (name, gone) = match change {
                Change::Added(name) => {
                    push_entry(&mut out, parent, name);
                    continue;
                }
                Change::Removed(name) => (name, true),
                Change::Modified(name) => (name, false),
            };
            let asset = join(folder, name);
            if gone {
                push_entry(&mut out, parent, name);
                push_entry(&mut out, renditions_dir, name);
                push_entry(&mut out, metadata_dir, &format!("{name}.json"));
            }
            if !self.config.revalidate {
                continue;
            }
            let old = self.materializer.invalidate(&asset);
            log::info!("/{asset}: {}; its cached copy is dropped", if gone { "gone" } else { "new version" });
            let of = find(Node::RenditionsOf(asset.clone()));
            let mut files = vec![
                (Node::Asset(asset.clone()), parent, name.clone()),
                (Node::MetadataFile(asset.clone()), metadata_dir, format!("{name}.json")),
            ];
            for rendition in old.iter().flat_map(|m| m.renditions.iter()) {
                files.push((
                    Node::Rendition(asset.clone(), rendition.name.clone()),
                    of,
                    rendition.name.clone(),
                ));
            }
            for (node, dir, entry_name) in files {
                let Some(old_ino) = self.inodes.find(&node) else { continue };
                if !gone {
                    let fresh = self.store.fresh();
                    self.inodes.renumber(&node, fresh);
                    self.store.put(&node.key(), fresh);
                }
                out.push(Inval::Inode(old_ino));
                push_entry(&mut out, dir, &entry_name);
            }
            out.extend(of.map(Inval::Inode));
        }
        if let (false, Some(sink)) = (out.is_empty(), self.kernel.0.get()) {
            sink(out);
        }
    }
}

/// Invalidates `name` in the directory `parent`, if the kernel knows that directory.
fn push_entry(out: &mut Vec<Inval>, parent: Option<u64>, name: &str) {
    if let Some(parent) = parent {
        out.push(Inval::Entry { parent, name: name.to_string() });
    }
}
