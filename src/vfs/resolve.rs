//! Names to nodes and nodes to attributes: LOOKUP and GETATTR, and the attributes READDIRPLUS
//! hands out, from the listings and the cache (the remote only through them).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::inode::Node;
use super::{Attr, Entry, Kind, Remote, SHORT_TTL, Vfs, reserved};
use crate::deadline::Deadline;
use crate::error::{FsError, FsResult};
use crate::listing::{METADATA, RENDITIONS, SEARCH, TAGS};
use crate::names::{join, split};

impl<R: Remote> Vfs<R> {
    pub(super) fn dir_attr(&self, ino: u64) -> Entry {
        Entry {
            attr: Attr { ino, kind: Kind::Dir, size: 0, mtime: self.started, perm: 0o555 },
            ttl: self.config.dir_ttl,
        }
    }

    /// The listing child of an asset, if its folder's listing is known locally.
    pub(super) fn asset_child(&self, asset: &str) -> Option<crate::listing::Child> {
        let (folder, name) = split(asset);
        self.dirs.known(folder)?.get(name).cloned()
    }

    /// Attributes of a node. With `fetch` false nothing is asked of the remote (readdirplus):
    /// what is unknown gets a zero TTL so that the next stat asks again.
    pub(super) async fn entry(
        self: &Arc<Self>,
        node: &Node,
        ino: u64,
        fetch: bool,
        deadline: Deadline,
    ) -> FsResult<Entry> {
        if node.is_dir() {
            return Ok(self.dir_attr(ino));
        }
        let file = |size: u64, mtime: SystemTime, ttl: Duration| Entry {
            attr: Attr { ino, kind: Kind::File, size, mtime, perm: 0o444 },
            ttl,
        };
        match node {
            Node::Asset(path) => {
                let child = self.asset_child(path);
                let mtime = child.as_ref().map(|c| c.modified()).unwrap_or(self.started);
                // A listed size holds for the listing's life: the open that finds the
                // original's real length different invalidates the kernel's copy.
                match (self.materializer.original_size(path), child.and_then(|c| c.size)) {
                    (Some(size), _) => Ok(file(size, mtime, self.config.dir_ttl)),
                    (None, Some(listed)) => Ok(file(listed, mtime, self.config.dir_ttl)),
                    (None, None) => Ok(file(0, mtime, SHORT_TTL)),
                }
            }
            Node::Rendition(asset, name) => {
                let mtime = self.asset_child(asset).map(|c| c.modified()).unwrap_or(self.started);
                let manifest = match self.materializer.stored_manifest(asset).await {
                    Some(m) => m,
                    None if fetch => self.materializer.manifest(asset, deadline).await?,
                    None => return Ok(file(0, mtime, Duration::ZERO)),
                };
                let listed = manifest.renditions.iter().find(|r| &r.name == name).ok_or(FsError::NotFound)?;
                let known = self.rendition_size(asset, name);
                match known.or(listed.size) {
                    Some(size) => {
                        Ok(file(size, mtime, if known.is_some() { self.config.dir_ttl } else { SHORT_TTL }))
                    }
                    None => Ok(file(0, mtime, Duration::ZERO)),
                }
            }
            Node::MetadataFile(asset) => {
                let mtime = self.asset_child(asset).map(|c| c.modified()).unwrap_or(self.started);
                let manifest = match self.materializer.stored_manifest(asset).await {
                    Some(m) => m,
                    None if fetch => self.materializer.manifest(asset, deadline).await?,
                    None => return Ok(file(0, mtime, Duration::ZERO)),
                };
                let len = reserved::metadata_json(&manifest, &self.dirs.asset_url(asset)).len() as u64;
                Ok(file(len, mtime, self.config.dir_ttl))
            }
            Node::TagLink(..) | Node::SearchLink(..) => {
                let target = self.link_target(node)?;
                Ok(Entry {
                    attr: Attr {
                        ino,
                        kind: Kind::Symlink,
                        size: target.len() as u64,
                        mtime: self.started,
                        perm: 0o777,
                    },
                    ttl: self.config.dir_ttl,
                })
            }
            _ => Ok(self.dir_attr(ino)),
        }
    }

    /// The exact length of a rendition once it is in the cache or its transfer said it.
    fn rendition_size(&self, asset: &str, name: &str) -> Option<u64> {
        self.materializer.rendition_size(asset, name)
    }

    /// Looks `name` up in directory `parent`.
    pub async fn lookup(self: &Arc<Self>, parent: u64, name: &str, deadline: Deadline) -> FsResult<Entry> {
        let node = self.node(parent)?;
        let child = self.child(&node, name, deadline).await?;
        let ino = self.ino(&child, true);
        let entry = self.entry(&child, ino, true, deadline).await;
        if entry.is_err() {
            // The kernel gets no entry: nothing for it to forget.
            self.inodes.forget(ino, 1);
        }
        entry
    }

    async fn child(self: &Arc<Self>, node: &Node, name: &str, deadline: Deadline) -> FsResult<Node> {
        Ok(match node {
            Node::Folder(folder) => {
                let is_root = *folder == self.config.root;
                match name {
                    RENDITIONS => Node::RenditionsDir(folder.clone()),
                    METADATA => Node::MetadataDir(folder.clone()),
                    TAGS if is_root => Node::TagDir(String::new()),
                    SEARCH if is_root => Node::SearchRoot,
                    _ => {
                        let listing = self.dirs.get(folder, deadline).await?;
                        let child = listing.get(name).ok_or(FsError::NotFound)?;
                        let path = join(folder, name);
                        if child.folder { Node::Folder(path) } else { Node::Asset(path) }
                    }
                }
            }
            Node::RenditionsDir(folder) => Node::RenditionsOf(self.asset_in(folder, name, deadline).await?),
            Node::MetadataDir(folder) => {
                let asset_name = name.strip_suffix(".json").ok_or(FsError::NotFound)?;
                Node::MetadataFile(self.asset_in(folder, asset_name, deadline).await?)
            }
            Node::RenditionsOf(asset) => {
                let manifest = self.materializer.manifest(asset, deadline).await?;
                manifest.renditions.iter().find(|r| r.name == name).ok_or(FsError::NotFound)?;
                Node::Rendition(asset.clone(), name.to_string())
            }
            Node::TagDir(tag) => {
                let taxonomy = self.taxonomy().await?;
                let dir = taxonomy.dirs.get(tag).ok_or(FsError::NotFound)?;
                if dir.subtags.contains(name) {
                    Node::TagDir(join(tag, name))
                } else {
                    let (_, asset) = dir.links.iter().find(|(n, _)| n == name).ok_or(FsError::NotFound)?;
                    Node::TagLink(tag.clone(), asset.clone())
                }
            }
            Node::SearchRoot => Node::SearchDir(name.to_string()),
            Node::SearchDir(words) => {
                let results = self.dirs.search(words, deadline).await?;
                let (_, asset) = results.iter().find(|(n, _)| n == name).ok_or(FsError::NotFound)?;
                Node::SearchLink(words.clone(), asset.clone())
            }
            Node::Asset(_)
            | Node::Rendition(..)
            | Node::MetadataFile(_)
            | Node::TagLink(..)
            | Node::SearchLink(..) => {
                return Err(FsError::NotDir);
            }
        })
    }

    /// The asset `name` of `folder`, checked against the folder's listing.
    async fn asset_in(self: &Arc<Self>, folder: &str, name: &str, deadline: Deadline) -> FsResult<String> {
        let listing = self.dirs.get(folder, deadline).await?;
        match listing.get(name) {
            Some(child) if !child.folder => Ok(join(folder, name)),
            _ => Err(FsError::NotFound),
        }
    }

    /// Attributes of an inode.
    pub async fn getattr(self: &Arc<Self>, ino: u64, deadline: Deadline) -> FsResult<Entry> {
        let node = self.node(ino)?;
        self.entry(&node, ino, true, deadline).await
    }
}
