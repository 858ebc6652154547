//! The JCR view Sling's default GET servlet renders as JSON: small in-memory node trees for an
//! asset (`jcr:content`, `metadata`, `renditions`), a folder and the tag taxonomy, rendered to a
//! depth given by a selector (`.json`, `.1.json`, `.infinity.json`), plus the name resolution
//! Sling applies to the last path segment (an exact node name first, then `.json` and a depth
//! selector stripped). Dates use Sling's ECMA format. Which file backs a node and what the
//! metadata says comes from `catalog` and `renditions`; URL decoding is `routes`' job.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::catalog::{Asset, Catalog, Folder, Kind};
use super::metadata::MetaNeeds;
use super::renditions::Rendition;
use crate::sidecar::Sidecar;

/// Sling date format, always in UTC: `Fri Oct 25 2024 18:11:57 GMT+0000`.
pub(crate) fn sling_date(time: SystemTime) -> String {
    let time: chrono::DateTime<chrono::Utc> = time.into();
    time.format("%a %b %d %Y %H:%M:%S GMT+0000").to_string()
}

/// QueryBuilder's date format in simple hits: `2024-10-25 18:11:57`.
pub(crate) fn short_date(time: SystemTime) -> String {
    let time: chrono::DateTime<chrono::Utc> = time.into();
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A file that a node stands for: GET of the node's path without an extension streams it.
#[derive(Debug, Clone)]
pub(crate) struct FileRef {
    pub path: PathBuf,
    pub mime: String,
}

/// A JCR node: properties, ordered child nodes, and optionally the file it stands for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub props: Map<String, Value>,
    pub children: Vec<(String, Node)>,
    pub file: Option<FileRef>,
}

impl Node {
    /// A node with only a `jcr:primaryType`.
    pub fn typed(primary_type: &str) -> Node {
        let mut node = Node::default();
        node.props.insert("jcr:primaryType".into(), json!(primary_type));
        node
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|(n, _)| n == name).map(|(_, node)| node)
    }

    fn child_mut_or_insert(&mut self, name: &str, make: impl FnOnce() -> Node) -> &mut Node {
        let index = match self.children.iter().position(|(n, _)| n == name) {
            Some(index) => index,
            None => {
                self.children.push((name.to_string(), make()));
                self.children.len() - 1
            }
        };
        &mut self.children[index].1
    }

    /// The node at a relative path of child names.
    pub fn descend(&self, path: &[String]) -> Option<&Node> {
        path.iter().try_fold(self, |node, name| node.child(name))
    }

    /// Sling's JSON for this node: its properties and, `depth` levels down, its children.
    pub fn render(&self, depth: u32) -> Value {
        let mut out = self.props.clone();
        if depth > 0 {
            for (name, child) in &self.children {
                out.insert(name.clone(), child.render(depth - 1));
            }
        }
        Value::Object(out)
    }

    /// The value at a relative path: a property (`jcr:content/metadata/dam:size`) or a node
    /// (rendered with its properties only).
    pub fn lookup(&self, path: &str) -> Option<Value> {
        let parts: Vec<String> = path.split('/').map(str::to_string).collect();
        let (last, nodes) = parts.split_last()?;
        let node = self.descend(nodes)?;
        node.props.get(last).cloned().or_else(|| node.child(last).map(|child| child.render(0)))
    }
}

/// Depth of `.infinity.json`.
pub(crate) const INFINITY: u32 = u32::MAX;

/// With `stem` (the segment without `.json`) not a node name itself: `base` and the depth of
/// `base.selector`, or an error reason for a selector that is not a depth.
pub(crate) fn split_selector(stem: &str) -> Option<(String, Result<u32, String>)> {
    let (base, selector) = stem.rsplit_once('.')?;
    if base.is_empty() {
        return None;
    }
    let depth = if selector == "infinity" {
        Ok(INFINITY)
    } else if !selector.is_empty() && selector.bytes().all(|b| b.is_ascii_digit()) {
        selector.parse::<u32>().map_err(|_| format!("invalid recursion selector value {selector:?}"))
    } else {
        Err(format!("invalid recursion selector value {selector:?}"))
    };
    Some((base.to_string(), depth))
}

/// Sling's name mangling: `_jcr_content` is `jcr:content` (any `_ns_name`).
pub(crate) fn unmangle(segment: &str) -> String {
    if let Some(rest) = segment.strip_prefix('_') {
        if let Some((ns, local)) = rest.split_once('_') {
            if !ns.is_empty() && !local.is_empty() && ns.bytes().all(|b| b.is_ascii_lowercase()) {
                return format!("{ns}:{local}");
            }
        }
    }
    segment.to_string()
}

/// Whether rendering `path` (child names below the asset) to `depth` shows the renditions'
/// children, which must then be generated.
pub(crate) fn needs_renditions(path: &[String], depth: u32) -> bool {
    const RENDITIONS: [&str; 2] = ["jcr:content", "renditions"];
    if path.len() > 2 {
        return path[..2] == RENDITIONS;
    }
    let on_the_way = path.iter().zip(RENDITIONS).all(|(a, b)| a == b);
    on_the_way && path.len() as u64 + u64::from(depth) >= 3
}

/// The node tree of an asset: `dam:Asset` > `jcr:content` > (`metadata`, `renditions`).
/// `renditions` is None when the caller does not need the rendition nodes.
pub(crate) fn asset_tree(
    asset: &Asset,
    metadata: Map<String, Value>,
    renditions: Option<&[Rendition]>,
    processing: bool,
) -> Node {
    let mut root = Node::typed("dam:Asset");
    root.props.insert("jcr:created".into(), json!(sling_date(asset.mtime)));
    root.props.insert("jcr:createdBy".into(), json!("admin"));
    let mut content = Node::typed("dam:AssetContent");
    content.props.insert("jcr:lastModified".into(), json!(sling_date(asset.mtime)));
    content.props.insert("jcr:lastModifiedBy".into(), json!("admin"));
    let state = if processing { "processing" } else { "processed" };
    content.props.insert("dam:assetState".into(), json!(state));
    let meta = Node { props: metadata, ..Node::default() };
    content.children.push(("metadata".into(), meta));
    let mut folder = Node::typed("nt:folder");
    for rendition in renditions.unwrap_or_default() {
        let mut file = Node::typed("nt:file");
        file.props.insert("jcr:created".into(), json!(sling_date(rendition.mtime)));
        let mut resource = Node::typed("nt:resource");
        resource.props.insert(":jcr:data".into(), json!(rendition.size));
        resource.props.insert("jcr:mimeType".into(), json!(rendition.mime));
        resource.props.insert("jcr:lastModified".into(), json!(sling_date(rendition.mtime)));
        let file_ref = FileRef { path: rendition.file.clone(), mime: rendition.mime.clone() };
        resource.file = Some(file_ref.clone());
        file.file = Some(file_ref);
        file.children.push(("jcr:content".into(), resource));
        folder.children.push((rendition.name.clone(), file));
    }
    content.children.push(("renditions".into(), folder));
    content.children.push(("related".into(), Node::typed("nt:unstructured")));
    root.children.push(("jcr:content".into(), content));
    root.file = Some(FileRef { path: asset.file.clone(), mime: asset.mime().into() });
    root
}

/// The node of a folder and, when `with_children`, its children as shallow nodes (enough for
/// `.1.json`: each child's own properties).
pub(crate) fn folder_node(
    catalog: &Catalog,
    sidecar: &Sidecar,
    folder: &Folder,
    with_children: bool,
) -> std::io::Result<Node> {
    let mut node = folder_shell(catalog, sidecar, folder);
    if with_children {
        for child in catalog.children(folder)?.iter() {
            let shallow = match child.kind {
                Kind::Folder => {
                    let rel = crate::names::join(&folder.rel, &child.name);
                    let mut n = Node::typed("sling:OrderedFolder");
                    if let Some(title) = sidecar.folders.get(&rel).filter(|f| !f.title.is_empty()) {
                        n.props.insert("jcr:title".into(), json!(title.title));
                    }
                    n
                }
                Kind::Asset => Node::typed("dam:Asset"),
            };
            node.children.push((child.name.clone(), shallow));
        }
    }
    Ok(node)
}

/// A folder's own node (with its `jcr:content` child carrying the title).
pub(crate) fn folder_shell(catalog: &Catalog, sidecar: &Sidecar, folder: &Folder) -> Node {
    let mut node = Node::typed("sling:OrderedFolder");
    node.props.insert("jcr:created".into(), json!(sling_date(folder.mtime)));
    let mut content = Node::typed("nt:unstructured");
    if let Some(title) = catalog.folder_title(sidecar, folder) {
        node.props.insert("jcr:title".into(), json!(title));
        content.props.insert("jcr:title".into(), json!(title));
    }
    node.children.push(("jcr:content".into(), content));
    node
}

/// A tag ID as (namespace, local path): `ns:a/b` → (`ns`, `a/b`); `a/b` → (`default`, `a/b`);
/// `/content/cq:tags/ns/a/b` or `/etc/tags/ns/a/b` → (`ns`, `a/b`).
pub(crate) fn split_tag_id(id: &str) -> Option<(String, String)> {
    let id = id.trim();
    for prefix in ["/content/cq:tags/", "/etc/tags/"] {
        if let Some(path) = id.strip_prefix(prefix) {
            let path = path.trim_end_matches('/');
            let (ns, local) = path.split_once('/').unwrap_or((path, ""));
            return (!ns.is_empty()).then(|| (ns.to_string(), local.to_string()));
        }
    }
    if id.is_empty() || id.starts_with('/') {
        return None;
    }
    match id.split_once(':') {
        Some((ns, local)) if !ns.is_empty() => Some((ns.to_string(), local.trim_matches('/').to_string())),
        Some(_) => None,
        None => Some(("default".into(), id.trim_matches('/').to_string())),
    }
}

/// The canonical form `ns:local` (or `ns:` for a namespace) of a tag ID.
pub(crate) fn canonical_tag_id(id: &str) -> Option<String> {
    split_tag_id(id).map(|(ns, local)| format!("{ns}:{local}"))
}

/// The path of a tag under `/content/cq:tags`.
pub(crate) fn tag_path(id: &str) -> Option<String> {
    let (ns, local) = split_tag_id(id)?;
    Some(if local.is_empty() {
        format!("/content/cq:tags/{ns}")
    } else {
        format!("/content/cq:tags/{ns}/{local}")
    })
}

/// The taxonomy node tree rooted at `/content/cq:tags`, from the sidecar.
pub(crate) fn tag_tree(sidecar: &Sidecar) -> Node {
    let mut root = Node::typed("sling:Folder");
    let tag_node = |title: &str| {
        let mut node = Node::typed("cq:Tag");
        node.props.insert("sling:resourceType".into(), json!("cq/tagging/components/tag"));
        node.props.insert("jcr:title".into(), json!(title));
        node
    };
    for (ns, info) in &sidecar.namespaces {
        let node = root.child_mut_or_insert(ns, || tag_node(ns));
        set_tag_props(node, info);
    }
    for (id, info) in &sidecar.tags {
        let Some((ns, local)) = split_tag_id(id) else {
            log::debug!("ignoring tag {id:?} of the sidecar: not a tag ID");
            continue;
        };
        let mut node = root.child_mut_or_insert(&ns, || tag_node(&ns));
        for part in local.split('/').filter(|p| !p.is_empty()) {
            node = node.child_mut_or_insert(part, || tag_node(part));
        }
        set_tag_props(node, info);
    }
    root
}

fn set_tag_props(node: &mut Node, info: &crate::sidecar::TagInfo) {
    if !info.title.is_empty() {
        node.props.insert("jcr:title".into(), json!(info.title));
    }
    for (locale, title) in &info.titles {
        node.props.insert(format!("jcr:title.{locale}"), json!(title));
    }
    if let Some(moved) = &info.moved_to {
        let path = if moved.starts_with('/') { Some(moved.clone()) } else { tag_path(moved) };
        if let Some(path) = path {
            node.props.insert("cq:movedTo".into(), json!(path));
        }
    }
}

/// The titles of a tag (`jcr:title` and every translation), for full-text search.
pub(crate) fn tag_titles(sidecar: &Sidecar, id: &str) -> Vec<String> {
    let titles = |info: &crate::sidecar::TagInfo| {
        std::iter::once(info.title.clone()).chain(info.titles.values().cloned()).collect::<Vec<_>>()
    };
    if let Some(info) = sidecar.tags.get(id) {
        return titles(info);
    }
    // The asset may spell the ID differently from the sidecar's key (a path, no namespace).
    let Some(canonical) = canonical_tag_id(id) else { return Vec::new() };
    sidecar
        .tags
        .iter()
        .filter(|(key, _)| canonical_tag_id(key).as_deref() == Some(canonical.as_str()))
        .flat_map(|(_, info)| titles(info))
        .collect()
}

/// An asset's full tree with complete metadata and, when asked, renditions.
pub(crate) async fn full_asset_tree(
    catalog: &Arc<Catalog>,
    sidecar: &Sidecar,
    asset: &Asset,
    with_renditions: bool,
) -> anyhow::Result<Node> {
    let metadata = catalog.metadata(sidecar, asset, MetaNeeds::ALL).await?;
    let renditions = if with_renditions { Some(catalog.renditions_of(asset).await?) } else { None };
    Ok(asset_tree(asset, metadata, renditions.as_deref(), catalog.processing(&asset.rel)))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_729_879_917);
        assert_eq!(sling_date(t), "Fri Oct 25 2024 18:11:57 GMT+0000");
        assert_eq!(short_date(t), "2024-10-25 18:11:57");
    }

    #[test]
    fn selectors() {
        assert_eq!(split_selector("metadata.1"), Some(("metadata".into(), Ok(1))));
        assert_eq!(split_selector("renditions.infinity"), Some(("renditions".into(), Ok(INFINITY))));
        assert!(matches!(split_selector("a.jpg.tidy"), Some((_, Err(_)))));
        assert_eq!(split_selector("plain"), None);
        assert_eq!(unmangle("_jcr_content"), "jcr:content");
        assert_eq!(unmangle("_x"), "_x");
        assert_eq!(unmangle("renditions"), "renditions");
    }

    #[test]
    fn rendition_depth() {
        let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(needs_renditions(&p(&["jcr:content", "renditions"]), 1));
        assert!(!needs_renditions(&p(&["jcr:content", "renditions"]), 0));
        assert!(needs_renditions(&p(&["jcr:content", "renditions", "original"]), 0));
        assert!(!needs_renditions(&p(&["jcr:content", "metadata"]), INFINITY));
        assert!(needs_renditions(&p(&[]), 3));
        assert!(!needs_renditions(&p(&[]), 2));
        assert!(needs_renditions(&p(&["jcr:content"]), 2));
    }

    #[test]
    fn tag_ids() {
        assert_eq!(
            split_tag_id("we-retail:activity/hiking"),
            Some(("we-retail".into(), "activity/hiking".into()))
        );
        assert_eq!(split_tag_id("plain"), Some(("default".into(), "plain".into())));
        assert_eq!(split_tag_id("/content/cq:tags/ns/a/b"), Some(("ns".into(), "a/b".into())));
        assert_eq!(split_tag_id("/etc/tags/ns"), Some(("ns".into(), "".into())));
        assert_eq!(canonical_tag_id("ns:"), Some("ns:".into()));
        assert_eq!(tag_path("ns:a/b").as_deref(), Some("/content/cq:tags/ns/a/b"));
        assert_eq!(split_tag_id(":x"), None);
    }
}
