//! The trees damfs adds to the remote's: `.metadata` JSON, the `.tags` taxonomy, `.search`
//! results, and the `user.dam.*` extended attributes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::materialize::Manifest;

/// The `.metadata/<asset>.json` document of an asset.
pub fn metadata_json(manifest: &Manifest, asset_url: &str) -> Vec<u8> {
    let doc = json!({
        "path": format!("/content/dam/{}", manifest.path),
        "remote": asset_url,
        "title": manifest.meta.title,
        "description": manifest.meta.description,
        "format": manifest.meta.format,
        "size": manifest.meta.size,
        "sha1": manifest.meta.sha1,
        "width": manifest.meta.width,
        "height": manifest.meta.height,
        "tags": manifest.tags,
        "renditions": manifest.renditions,
        "metadata": manifest.meta.raw,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// `user.dam.tags`: `id (title)` pairs joined by `, `.
pub fn tags_xattr(manifest: &Manifest) -> String {
    manifest.tags.iter().map(|t| format!("{} ({})", t.id, t.title)).collect::<Vec<_>>().join(", ")
}

/// The directory path of a tag under `.tags`: `ns:a/b` -> `ns/a/b`; `a/b` -> `default/a/b`;
/// `/content/cq:tags/ns/a` -> `ns/a`. Segments that cannot be file names are dropped.
pub fn tag_dir(id: &str) -> String {
    let id = id.trim();
    let path =
        if let Some(rest) = id.strip_prefix("/content/cq:tags/").or_else(|| id.strip_prefix("/etc/tags/")) {
            rest.to_string()
        } else if let Some((ns, local)) = id.split_once(':') {
            format!("{ns}/{local}")
        } else {
            format!("default/{id}")
        };
    path.split('/').filter(|s| crate::names::invalid_name(s).is_none()).collect::<Vec<_>>().join("/")
}

/// One directory of the local taxonomy.
#[derive(Debug, Default)]
pub struct TagDirEntry {
    /// Names of the sub-tags.
    pub subtags: BTreeSet<String>,
    /// Links: (link name, asset path).
    pub links: Vec<(String, String)>,
}

/// The local taxonomy: every tag directory, its sub-tags and the assets carrying it.
#[derive(Debug, Default)]
pub struct Taxonomy {
    /// Tag directory path (`ns/a/b`; `""` for `.tags`) -> its entry.
    pub dirs: BTreeMap<String, TagDirEntry>,
}

impl Taxonomy {
    /// Builds the taxonomy of `tagged` assets: (asset path, its tag ids).
    pub fn build(tagged: impl Iterator<Item = (String, Vec<String>)>) -> Taxonomy {
        let mut dirs: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
        dirs.entry(String::new()).or_default();
        for (asset, ids) in tagged {
            for id in &ids {
                let path = tag_dir(id);
                if path.is_empty() {
                    continue;
                }
                dirs.entry(path.clone()).or_default().1.insert(asset.clone());
                let mut child = path.as_str();
                while !child.is_empty() {
                    let (parent, name) = child.rsplit_once('/').unwrap_or(("", child));
                    dirs.entry(parent.to_string()).or_default().0.insert(name.to_string());
                    child = parent;
                }
            }
        }
        let dirs = dirs
            .into_iter()
            .map(|(path, (subtags, assets))| {
                (path, TagDirEntry { subtags, links: crate::names::link_names(assets) })
            })
            .collect();
        Taxonomy { dirs }
    }
}

/// The target of a link `depth` directories below the mount root to `rel` (a path relative
/// to the mount root).
pub fn link_target(depth: usize, rel: &str) -> String {
    format!("{}{rel}", "../".repeat(depth))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(path: &str, tags: &[&str]) -> (String, Vec<String>) {
        (path.to_string(), tags.iter().map(|t| t.to_string()).collect())
    }

    #[test]
    fn taxonomy_merges_tags_and_names_links() {
        let ms = [
            tagged("we/en/hiking.jpg", &["we-retail:activity/hiking"]),
            tagged("we/fr/hiking.jpg", &["we-retail:activity/hiking", "plain"]),
        ];
        let tax = Taxonomy::build(ms.into_iter());
        assert!(tax.dirs[""].subtags.contains("we-retail") && tax.dirs[""].subtags.contains("default"));
        assert!(tax.dirs["we-retail/activity"].subtags.contains("hiking"));
        let links = &tax.dirs["we-retail/activity/hiking"].links;
        assert_eq!(links[0], ("hiking.jpg".to_string(), "we/en/hiking.jpg".to_string()));
        assert_eq!(links[1], ("hiking (2).jpg".to_string(), "we/fr/hiking.jpg".to_string()));
        // An asset really called `a (2).jpg` keeps its name; the second `a.jpg` gets (3).
        let links = crate::names::link_names(["x/a.jpg", "x/a (2).jpg", "y/a.jpg"].map(String::from));
        let names: Vec<&str> = links.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a.jpg", "a (2).jpg", "a (3).jpg"]);
        assert_eq!(tag_dir("/content/cq:tags/ns/a/b"), "ns/a/b");
        assert_eq!(link_target(4, "we/en/hiking.jpg"), "../../../../we/en/hiking.jpg");
    }
}
