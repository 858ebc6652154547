//! Reading the Siren JSON of the Assets HTTP API (`/api/assets/…json`): one page of a folder
//! listing, and the rendition entities of an asset. Parsing is tolerant: unknown fields and
//! classes are ignored, a `class` may be a string or a list, a child without `properties.name`
//! is named after its self link. Paging decisions belong to the caller.

use serde_json::Value;

use super::url::name_from_href;
use super::{ChildEntry, EntryKind};

/// One page of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListingPage {
    /// Classes of the listed item itself (`assets/folder`, `assets/asset`, …).
    pub class: Vec<String>,
    /// `properties["srn:paging"].total`, when sent.
    pub total: Option<u64>,
    /// How many entities the page held, kept or not: the amount to advance `offset` by.
    pub entity_count: usize,
    /// The folder and asset children of the page, in the remote's order.
    pub children: Vec<ChildEntry>,
}

impl ListingPage {
    /// True when the listed item says it is an asset and not a folder.
    pub(crate) fn is_asset(&self) -> bool {
        has_class(&self.class, "assets/asset") && !has_class(&self.class, "assets/folder")
    }

    /// True when the listed item says it is a folder.
    pub(crate) fn is_folder(&self) -> bool {
        has_class(&self.class, "assets/folder")
    }
}

fn has_class(classes: &[String], wanted: &str) -> bool {
    classes.iter().any(|c| c == wanted)
}

/// The `class` of a Siren object: a list of strings, or (tolerated) a single string.
fn classes(value: &Value) -> Vec<String> {
    match value.get("class") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// The largest count (a size, a total) believed: a file length must fit the kernel's signed
/// 64-bit `off_t`, so anything larger is a lie and reads as unknown.
pub const MAX_COUNT: u64 = i64::MAX as u64;

/// A non-negative integer sent as a number or a numeric string, at most [`MAX_COUNT`].
pub(crate) fn as_count(value: &Value) -> Option<u64> {
    let count = match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            // Past 2^63 a float cannot be exact anyway: such values are refused below.
            n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 9.2e18).map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    count.filter(|c| *c <= MAX_COUNT)
}

/// The href of the first link whose `rel` includes `self`.
fn self_href(entity: &Value) -> Option<&str> {
    entity.get("links")?.as_array()?.iter().find_map(|link| {
        let rel = link.get("rel")?;
        let is_self = match rel {
            Value::Array(rels) => rels.iter().any(|r| r.as_str() == Some("self")),
            Value::String(r) => r == "self",
            _ => false,
        };
        if is_self { link.get("href")?.as_str() } else { None }
    })
}

/// The name of an entity: `properties.name`, else the last segment of its self href, decoded.
fn entity_name(entity: &Value) -> Option<String> {
    let from_properties = entity.get("properties").and_then(|p| p.get("name")).and_then(Value::as_str);
    match from_properties {
        Some(name) if !name.is_empty() => Some(name.to_string()),
        _ => self_href(entity).and_then(name_from_href),
    }
}

/// Parses one page of `GET /api/assets/<folder>.json`.
pub(crate) fn parse_listing(value: &Value) -> Result<ListingPage, String> {
    if !value.is_object() {
        return Err("expected a JSON object".into());
    }
    let total = value
        .get("properties")
        .and_then(|p| p.get("srn:paging"))
        .and_then(|p| p.get("total"))
        .and_then(as_count);
    let entities = match value.get("entities") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(items)) => &items[..],
        Some(_) => return Err("\"entities\" is not a list".into()),
    };
    let mut children = Vec::with_capacity(entities.len());
    for entity in entities {
        let entity_classes = classes(entity);
        let kind = if has_class(&entity_classes, "assets/folder") {
            EntryKind::Folder
        } else if has_class(&entity_classes, "assets/asset") {
            EntryKind::Asset
        } else {
            continue;
        };
        match entity_name(entity) {
            Some(name) => children.push(ChildEntry { name, kind }),
            None => log::debug!("a listed child has neither properties.name nor a self link; skipped"),
        }
    }
    Ok(ListingPage { class: classes(value), total, entity_count: entities.len(), children })
}

/// Parses `GET /api/assets/<asset>/renditions.json`: the names of its rendition entities.
pub(crate) fn parse_rendition_entities(value: &Value) -> Result<Vec<String>, String> {
    if !value.is_object() {
        return Err("expected a JSON object".into());
    }
    let entities = match value.get("entities") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("\"entities\" is not a list".into()),
    };
    Ok(entities
        .iter()
        .filter(|e| {
            let c = classes(e);
            !has_class(&c, "assets/folder") && !has_class(&c, "assets/asset")
        })
        .filter_map(entity_name)
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn child(name: &str, kind: EntryKind) -> ChildEntry {
        ChildEntry { name: name.into(), kind }
    }

    #[test]
    fn listing_page_as_documented() {
        let page = json!({"class": ["assets/folder"],
            "properties": {"name": "activities", "dc:title": "Activities",
                           "srn:paging": {"total": 57, "offset": 0, "limit": 20}},
            "entities": [
              {"class": ["assets/folder"], "rel": ["child"], "properties": {"name": "summer"},
               "links": [{"rel": ["self"], "href": "https://dam.example.com/api/assets/we-retail/activities/summer.json"}]},
              {"class": ["assets/asset"], "rel": ["child"], "properties": {"name": "hiking.jpg"},
               "links": [{"rel": ["self"], "href": "https://dam.example.com/api/assets/we-retail/activities/hiking.jpg.json"}]}],
            "links": [{"rel": ["self"], "href": "x"}], "actions": [{"name": "add-asset"}]});
        let page = parse_listing(&page).unwrap();
        assert!(page.is_folder() && !page.is_asset());
        assert_eq!(page.total, Some(57));
        assert_eq!(page.entity_count, 2);
        assert_eq!(
            page.children,
            vec![child("summer", EntryKind::Folder), child("hiking.jpg", EntryKind::Asset)]
        );
    }

    #[test]
    fn listing_tolerates_variations() {
        let page = json!({"class": "assets/folder", "unknown": {"deep": [1, 2]},
            "properties": {"srn:paging": {"total": "4"}},
            "entities": [
              // No properties: the name comes from the self link, decoded.
              {"class": ["assets/asset"], "links": [{"rel": "self", "href": "/api/assets/f/caf%C3%A9%20%2B%201.jpg.json"}]},
              // Another class: ignored, but counted for paging.
              {"class": ["dam/collection"], "properties": {"name": "c"}},
              // A content fragment is an asset.
              {"class": ["assets/asset"], "properties": {"name": "article", "contentFragment": true, "x": null}},
              // Nothing to name it by: skipped.
              {"class": ["assets/folder"], "properties": {}}]});
        let page = parse_listing(&page).unwrap();
        assert_eq!(page.total, Some(4));
        assert_eq!(page.entity_count, 4);
        assert_eq!(
            page.children,
            vec![child("café + 1.jpg", EntryKind::Asset), child("article", EntryKind::Asset)]
        );
    }

    #[test]
    fn listing_without_entities_or_paging() {
        let page =
            parse_listing(&json!({"class": ["assets/folder"], "properties": {"name": "empty"}})).unwrap();
        assert_eq!((page.total, page.entity_count, page.children.len()), (None, 0, 0));
        let asset =
            parse_listing(&json!({"class": ["assets/asset"], "properties": {"name": "a.jpg"}})).unwrap();
        assert!(asset.is_asset());
        assert!(parse_listing(&json!([1])).is_err());
        assert!(parse_listing(&json!({"entities": {"a": 1}})).is_err());
    }

    #[test]
    fn rendition_entities() {
        let value = json!({"class": ["assets/asset/renditions"], "entities": [
            {"class": ["assets/asset/renditions/rendition"], "properties": {"name": "original"}},
            {"class": ["assets/asset/renditions/rendition"], "properties": {"name": "cq5dam.web.1280.1280.jpeg", "size": 3}},
            {"class": ["assets/asset/renditions/rendition"], "links": [{"rel": ["self"], "href": "/api/assets/a.jpg/renditions/cqdam.metadata.xml"}]},
            {"class": ["assets/asset"], "properties": {"name": "not-a-rendition"}}]});
        assert_eq!(
            parse_rendition_entities(&value).unwrap(),
            vec!["original", "cq5dam.web.1280.1280.jpeg", "cqdam.metadata.xml"]
        );
        assert_eq!(parse_rendition_entities(&json!({})).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn counts() {
        assert_eq!(as_count(&json!(5)), Some(5));
        assert_eq!(as_count(&json!("418237")), Some(418237));
        assert_eq!(as_count(&json!(12.0)), Some(12));
        assert_eq!(as_count(&json!(-1)), None);
        assert_eq!(as_count(&json!(1.5)), None);
        assert_eq!(as_count(&json!(1e20)), None);
        assert_eq!(as_count(&json!(u64::MAX)), None);
        assert_eq!(as_count(&json!("100000000000000000000")), None);
        assert_eq!(as_count(&json!(i64::MAX)), Some(i64::MAX as u64));
        assert_eq!(as_count(&json!("x")), None);
        assert_eq!(as_count(&json!(null)), None);
    }
}
