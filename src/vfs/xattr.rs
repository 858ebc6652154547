//! Links and extended attributes: symlink targets in `.tags` and `.search`, the `user.dam.*`
//! attributes of assets and `user.damfs.stats` of the root, the local taxonomy and remote
//! search results behind those trees.

use std::sync::Arc;

use crate::deadline::Deadline;

use super::Remote;
use super::inode::Node;
use super::{Vfs, reserved};
use crate::error::{FsError, FsResult};

/// The one extended attribute namespace damfs serves.
const USER_NAMESPACE: &str = "user.";

impl<R: Remote> Vfs<R> {
    /// The target of a symbolic link.
    pub fn readlink(&self, ino: u64) -> FsResult<String> {
        let node = self.node(ino)?;
        self.link_target(&node)
    }

    pub(super) fn link_target(&self, node: &Node) -> FsResult<String> {
        match node {
            Node::TagLink(tag, asset) => {
                let depth = 1 + tag.split('/').count();
                Ok(reserved::link_target(depth, self.relative(asset)))
            }
            Node::SearchLink(_, asset) => Ok(reserved::link_target(2, self.relative(asset))),
            _ => Err(FsError::Invalid),
        }
    }

    /// Names of the extended attributes of a node. Never asks the remote: `ls -l` calls it
    /// for every file on current coreutils. An asset whose metadata is not known locally
    /// lists `user.dam.title` too; reading it then fetches the metadata, and answers
    /// ENODATA if the asset has no title.
    pub fn listxattr(&self, ino: u64) -> FsResult<Vec<String>> {
        let node = self.node(ino)?;
        Ok(match &*node {
            Node::Folder(f) if *f == self.config.root => {
                vec![crate::stats::XATTR.into(), crate::materialize::select::XATTR.into()]
            }
            Node::Asset(path) => {
                let titled = self.materializer.cached_manifest(path).is_none_or(|m| m.meta.title.is_some());
                let mut names = Vec::new();
                if titled {
                    names.push("user.dam.title".into());
                }
                names.extend(["user.dam.tags".into(), "user.dam.format".into(), "user.dam.remote".into()]);
                names
            }
            _ => Vec::new(),
        })
    }

    /// The value of an extended attribute. Every attribute damfs serves is in the `user.`
    /// namespace; a name in any other (`security.selinux`, `system.posix_acl_access`, which
    /// `ls -l` asks of every file) answers EOPNOTSUPP rather than ENODATA: coreutils then
    /// stops asking for the rest of the filesystem, instead of costing two requests per file.
    pub async fn getxattr(self: &Arc<Self>, ino: u64, name: &str, deadline: Deadline) -> FsResult<Vec<u8>> {
        let node = self.node(ino)?;
        if !name.starts_with(USER_NAMESPACE) {
            return Err(FsError::NoXattrNamespace);
        }
        match (&*node, name) {
            (Node::Folder(f), crate::stats::XATTR) if *f == self.config.root => {
                let snapshot = self.snapshot();
                serde_json::to_vec(&snapshot).map_err(|e| FsError::Internal(format!("stats: {e}")))
            }
            (Node::Folder(f), crate::materialize::select::XATTR) if *f == self.config.root => {
                Ok(self.materializer.selection().to_string().into_bytes())
            }
            (Node::Asset(path), "user.dam.remote") => Ok(self.dirs.asset_url(path).into_bytes()),
            (Node::Asset(path), "user.dam.title" | "user.dam.tags" | "user.dam.format") => {
                let manifest = self.materializer.manifest(path, deadline).await?;
                let value = match name {
                    "user.dam.title" => manifest.meta.title.clone().ok_or(FsError::NoAttr)?,
                    "user.dam.tags" => reserved::tags_xattr(&manifest),
                    _ => manifest
                        .meta
                        .format
                        .clone()
                        .or_else(|| self.asset_child(path).and_then(|c| c.format))
                        .unwrap_or_else(|| crate::listing::guess_format(path).to_string()),
                };
                Ok(value.into_bytes())
            }
            _ => Err(FsError::NoAttr),
        }
    }

    /// The local taxonomy of every asset with a stored manifest. Built from the index off
    /// the FUSE and runtime threads (reading every stored manifest's tags, keeping none of
    /// the manifests), and rebuilt only when a manifest was stored or dropped since.
    pub(super) async fn taxonomy(self: &Arc<Self>) -> FsResult<Arc<reserved::Taxonomy>> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.taxonomy_now())
            .await
            .map_err(|e| FsError::Internal(format!("building the tag taxonomy: {e}")))
    }

    fn taxonomy_now(&self) -> Arc<reserved::Taxonomy> {
        let changes = self.materializer.manifests_changed();
        if let Some((at, built)) = &*self.taxonomy.lock()
            && *at == changes
        {
            return Arc::clone(built);
        }
        let root = &self.config.root;
        let under_root =
            |(asset, _): &(String, Vec<String>)| root.is_empty() || asset.starts_with(&format!("{root}/"));
        let tagged = self.materializer.stored_tags();
        let built = Arc::new(reserved::Taxonomy::build(tagged.into_iter().filter(under_root)));
        *self.taxonomy.lock() = Some((changes, Arc::clone(&built)));
        built
    }
}
