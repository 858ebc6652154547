//! The Assets HTTP API's Siren JSON: folder listings with paging, the view of one asset, and
//! its rendition list, with absolute, percent-encoded links. It builds JSON from what
//! `catalog` and `renditions` found; it reads no files itself.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use super::catalog::{Asset, Child, Folder, Kind};
use super::renditions::Rendition;

/// Limit of a folder page when the request names none, as on AEM.
pub(crate) const DEFAULT_LIMIT: u64 = 20;

/// Largest page served; larger `limit`s are clamped to it (and the clamp reported in
/// `srn:paging.limit`), as AEM honours less than it is asked for.
pub(crate) const MAX_LIMIT: u64 = 100;

/// Everything but unreserved characters is percent-encoded in a path segment (spaces as
/// `%20`, `+` as `%2B`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A relative DAM path with each segment percent-encoded as UTF-8.
pub(crate) fn encode_rel(rel: &str) -> String {
    rel.split('/').map(|s| utf8_percent_encode(s, SEGMENT).to_string()).collect::<Vec<_>>().join("/")
}

/// `<base>/api/assets/<rel><suffix>` (`<base>/api/assets<suffix>` for the root).
pub(crate) fn api_href(base: &str, rel: &str, suffix: &str) -> String {
    if rel.is_empty() {
        format!("{base}/api/assets{suffix}")
    } else {
        format!("{base}/api/assets/{}{suffix}", encode_rel(rel))
    }
}

/// `<base>/content/dam/<rel>`.
pub(crate) fn content_href(base: &str, rel: &str) -> String {
    if rel.is_empty() {
        format!("{base}/content/dam")
    } else {
        format!("{base}/content/dam/{}", encode_rel(rel))
    }
}

fn parent_rel(rel: &str) -> Option<&str> {
    if rel.is_empty() { None } else { Some(rel.rsplit_once('/').map_or("", |(parent, _)| parent)) }
}

fn link(rel: &str, href: String) -> Value {
    json!({"rel": [rel], "href": href})
}

fn class_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Folder => "assets/folder",
        Kind::Asset => "assets/asset",
    }
}

/// One page of a folder listing: `children[offset..offset + limit]` (limit already clamped).
pub(crate) fn folder(
    base: &str,
    folder: &Folder,
    title: Option<&str>,
    children: &[Child],
    offset: u64,
    limit: u64,
) -> Value {
    let total = children.len() as u64;
    let start = usize::try_from(offset.min(total)).unwrap_or(children.len());
    let end = usize::try_from(offset.saturating_add(limit).min(total)).unwrap_or(children.len());
    let entities: Vec<Value> = children[start..end]
        .iter()
        .map(|child| {
            let rel = crate::names::join(&folder.rel, &child.name);
            json!({
                "class": [class_of(child.kind)],
                "rel": ["child"],
                "properties": {"name": child.name},
                "links": [link("self", api_href(base, &rel, ".json"))],
            })
        })
        .collect();
    let mut properties = Map::new();
    properties.insert("name".into(), json!(folder.name));
    if let Some(title) = title {
        properties.insert("dc:title".into(), json!(title));
    }
    properties.insert("srn:paging".into(), json!({"total": total, "offset": offset, "limit": limit}));
    let mut links = vec![link("self", api_href(base, &folder.rel, ".json"))];
    if let Some(parent) = parent_rel(&folder.rel) {
        links.push(link("parent", api_href(base, parent, ".json")));
    }
    if (end as u64) < total {
        let next = format!("{}?offset={end}&limit={limit}", api_href(base, &folder.rel, ".json"));
        links.push(link("next", next));
    }
    if offset > 0 {
        let prev = offset.saturating_sub(limit);
        links.push(link(
            "prev",
            format!("{}?offset={prev}&limit={limit}", api_href(base, &folder.rel, ".json")),
        ));
    }
    json!({
        "class": ["assets/folder"],
        "properties": properties,
        "entities": entities,
        "links": links,
    })
}

/// The Assets API view of one asset, with its metadata node under `properties.metadata`.
pub(crate) fn asset(base: &str, asset: &Asset, metadata: Map<String, Value>) -> Value {
    let parent = parent_rel(&asset.rel).unwrap_or("");
    json!({
        "class": ["assets/asset"],
        "properties": {"name": asset.name, "metadata": metadata, "related": {}},
        "links": [
            link("self", api_href(base, &asset.rel, ".json")),
            link("parent", api_href(base, parent, ".json")),
            link("content", content_href(base, &asset.rel)),
        ],
    })
}

/// The rendition list of an asset (`/api/assets/<a>/renditions.json`).
pub(crate) fn renditions(base: &str, asset: &Asset, renditions: &[Rendition]) -> Value {
    let entities: Vec<Value> = renditions
        .iter()
        .map(|r| {
            let href = format!(
                "{}/renditions/{}",
                api_href(base, &asset.rel, ""),
                utf8_percent_encode(&r.name, SEGMENT)
            );
            json!({
                "class": ["assets/asset/renditions/rendition"],
                "rel": ["child"],
                "properties": {"name": r.name},
                "links": [link("self", href)],
            })
        })
        .collect();
    json!({
        "class": ["assets/asset/renditions"],
        "properties": {"name": "renditions"},
        "entities": entities,
        "links": [
            link("self", format!("{}/renditions.json", api_href(base, &asset.rel, ""))),
            link("parent", api_href(base, &asset.rel, ".json")),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_encode_each_segment() {
        assert_eq!(encode_rel("a b/Café au lait.jpg"), "a%20b/Caf%C3%A9%20au%20lait.jpg");
        assert_eq!(encode_rel("a+b (1).jpg"), "a%2Bb%20%281%29.jpg");
        assert_eq!(api_href("http://h", "", ".json"), "http://h/api/assets.json");
        assert_eq!(api_href("http://h", "x/y.jpg", ".json"), "http://h/api/assets/x/y.jpg.json");
        assert_eq!(parent_rel("x/y.jpg"), Some("x"));
        assert_eq!(parent_rel("x"), Some(""));
        assert_eq!(parent_rel(""), None);
    }
}
