//! One hit of a QueryBuilder answer: the node tree of an asset or folder, cut to what
//! `p.hits` asks (`simple`, `selective` with `p.properties`, `full` with `p.nodedepth`).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Hits, Query, dam_path};
use crate::serve::catalog::{Catalog, Entry};
use crate::serve::metadata::MetaNeeds;
use crate::serve::reply::{HttpError, HttpResult};
use crate::serve::sling::{self, Node};
use crate::sidecar::Sidecar;

/// Which costly parts of the node trees a query's hits show.
fn needs(query: &Query) -> (MetaNeeds, bool) {
    match query.hits {
        Hits::Simple => (MetaNeeds::CHEAP, false),
        Hits::Full => {
            let depth = query.node_depth;
            let meta = if depth >= 2 { MetaNeeds::ALL } else { MetaNeeds::CHEAP };
            (meta, sling::needs_renditions(&[], depth))
        }
        Hits::Selective => {
            let mut meta = MetaNeeds::CHEAP;
            let mut renditions = false;
            for p in &query.properties {
                if p == "jcr:content/metadata" {
                    meta = MetaNeeds::ALL;
                } else if p == "jcr:content/metadata/dam:sha1" {
                    meta.sha1 = true;
                } else if p.starts_with("jcr:content/metadata/tiff:") {
                    meta.dims = true;
                }
                renditions |= p.starts_with("jcr:content/renditions/");
            }
            (meta, renditions)
        }
    }
}

pub(super) async fn hit(
    catalog: &Arc<Catalog>,
    sidecar: &Sidecar,
    query: &Query,
    entry: &Entry,
) -> HttpResult<Value> {
    let (rel, name, mtime) = match entry {
        Entry::Folder(f) => (&f.rel, &f.name, f.mtime),
        Entry::Asset(a) => (&a.rel, &a.name, a.mtime),
    };
    let path = dam_path(rel);
    if query.hits == Hits::Simple {
        let (title, excerpt) = match entry {
            Entry::Folder(f) => (catalog.folder_title(sidecar, f), None),
            Entry::Asset(a) => {
                let info = sidecar.assets.get(&a.rel);
                (info.and_then(|i| i.title.clone()), info.and_then(|i| i.description.clone()))
            }
        };
        return Ok(json!({
            "path": path,
            "excerpt": excerpt.unwrap_or_default(),
            "name": name,
            "title": title.unwrap_or_else(|| name.clone()),
            "lastModified": sling::short_date(mtime),
            "created": sling::short_date(mtime),
        }));
    }
    let node = node_of(catalog, sidecar, query, entry).await?;
    let mut out = Map::new();
    match query.hits {
        Hits::Full => {
            if let Value::Object(map) = node.render(query.node_depth) {
                out = map;
            }
            out.insert("jcr:path".into(), json!(path));
        }
        _ => {
            for property in &query.properties {
                let value = if property == "jcr:path" { Some(json!(path)) } else { node.lookup(property) };
                if let Some(value) = value {
                    insert_nested(&mut out, property, value);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

async fn node_of(
    catalog: &Arc<Catalog>,
    sidecar: &Sidecar,
    query: &Query,
    entry: &Entry,
) -> HttpResult<Node> {
    match entry {
        Entry::Folder(folder) => Ok(sling::folder_shell(catalog, sidecar, folder)),
        Entry::Asset(asset) => {
            let (meta, with_renditions) = needs(query);
            let metadata = catalog
                .metadata(sidecar, asset, meta)
                .await
                .map_err(|e| HttpError::internal(&format!("metadata of {}", asset.rel), e))?;
            let renditions = if with_renditions {
                Some(
                    catalog
                        .renditions_of(asset)
                        .await
                        .map_err(|e| HttpError::internal(&format!("renditions of {}", asset.rel), e))?,
                )
            } else {
                None
            };
            Ok(sling::asset_tree(asset, metadata, renditions.as_deref(), catalog.processing(&asset.rel)))
        }
    }
}

/// Puts `value` at the relative path `a/b/c` as nested objects: `{"a":{"b":{"c":value}}}`.
fn insert_nested(out: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('/').peekable();
    let mut map = out;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return;
        }
        let slot = map.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(inner) => map = inner,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_properties() {
        let mut out = Map::new();
        insert_nested(&mut out, "jcr:path", json!("/content/dam/a.jpg"));
        insert_nested(&mut out, "jcr:content/jcr:lastModified", json!("d"));
        insert_nested(&mut out, "jcr:content/metadata/dam:size", json!(5));
        insert_nested(&mut out, "jcr:content/metadata/dc:format", json!("image/jpeg"));
        assert_eq!(
            Value::Object(out),
            json!({"jcr:path": "/content/dam/a.jpg",
                   "jcr:content": {"jcr:lastModified": "d",
                                   "metadata": {"dam:size": 5, "dc:format": "image/jpeg"}}})
        );
    }
}
