//! The parsers of remote answers, from raw bytes, as the AEM client runs them: one function
//! per kind of answer. They exist so that property tests and fuzz targets drive exactly the
//! code that reads what a remote sends; the client itself calls the same parsers on a
//! decoded JSON value.
//!
//! Every function here takes untrusted input and must return, never panic.

use serde_json::Value;

use super::querybuilder::{attrs_from_hits, parse_hits, paths_from_hits};
use super::siren::{parse_listing, parse_rendition_entities};
use super::sling::{check_metadata, parse_content_attrs, parse_metadata, parse_renditions};
use super::tags::{TagRef, parse_tag_node};
use super::{AssetAttrs, AssetMetadata, ChildEntry, RenditionInfo};

fn json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// One page of a Siren folder listing: the children it names and `srn:paging.total`.
pub fn listing_page(body: &[u8]) -> Result<(Vec<ChildEntry>, Option<u64>), String> {
    let page = parse_listing(&json(body)?)?;
    Ok((page.children, page.total))
}

/// Rendition names from an Assets API `renditions.json` (Siren entities).
pub fn rendition_entities(body: &[u8]) -> Result<Vec<String>, String> {
    parse_rendition_entities(&json(body)?)
}

/// A Sling `renditions.2.json`.
pub fn renditions(body: &[u8]) -> Result<Vec<RenditionInfo>, String> {
    parse_renditions(&json(body)?)
}

/// A Sling metadata node (`metadata.json`), checked for shape as the client checks it.
pub fn metadata(body: &[u8]) -> Result<AssetMetadata, String> {
    match json(body)? {
        Value::Object(raw) => {
            check_metadata(&raw)?;
            Ok(parse_metadata(raw))
        }
        _ => Err("expected a JSON object".into()),
    }
}

/// A `jcr:content.1.json`: size and format of an asset when QueryBuilder is refused.
pub fn content_attrs(body: &[u8]) -> Result<(Option<u64>, Option<String>), String> {
    let attrs = parse_content_attrs(&json(body)?)?;
    Ok((attrs.size, attrs.format))
}

/// A QueryBuilder answer read as the attributes of the assets directly in `folder`.
pub fn query_attrs(body: &[u8], folder: &str) -> Result<Vec<AssetAttrs>, String> {
    let value = json(body)?;
    let page = parse_hits(&value)?;
    Ok(attrs_from_hits(page.hits, folder))
}

/// A QueryBuilder answer read as search hits (DAM paths).
pub fn search_hits(body: &[u8]) -> Result<Vec<String>, String> {
    let value = json(body)?;
    let page = parse_hits(&value)?;
    Ok(paths_from_hits(page.hits))
}

/// A tag ID (or absolute tag path) as namespace and local segments.
pub fn tag_id(id: &str) -> Option<(String, Vec<String>)> {
    TagRef::parse(id).map(|t| (t.namespace, t.local))
}

/// A tag node: its title and where it moved to.
pub fn tag_node(body: &[u8]) -> Result<(Option<String>, Option<String>), String> {
    let node = parse_tag_node(&json(body)?)?;
    Ok((node.title, node.moved_to))
}

/// A DAM path as the client puts it in a URL path (each segment percent-encoded), and
/// back: what a Siren `self` href or a QueryBuilder `jcr:path` decodes to.
pub fn encode_dam_path(path: &str) -> Result<String, String> {
    super::url::encode_dam_path(path)
}

/// The name a Siren `self` href names (the last segment, decoded, `.json` dropped).
pub fn name_from_href(href: &str) -> Option<String> {
    super::url::name_from_href(href)
}
