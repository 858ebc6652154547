//! Reading the plain Sling JSON of repository nodes: an asset's metadata node, its
//! `renditions.2.json`, its `jcr:content.1.json` (attributes when QueryBuilder is refused),
//! and Sling's date formats. Everything here is tolerant of what real instances send:
//! numbers as strings, single values where lists are usual (and the reverse), `{}` for
//! nodes a Cloud Service instance did not render. A value that cannot be read is absent,
//! never an error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDateTime};
use serde_json::{Map, Value};

use super::siren::as_count;
use super::{AssetMetadata, RenditionInfo};

/// The first string of a value that is a string or a list of strings (multi-valued
/// properties such as a `dc:title` array).
pub(crate) fn first_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items.iter().find_map(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// Every string of a value that is a list of strings or a single string.
pub(crate) fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(items)) => {
            items.iter().filter_map(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string).collect()
        }
        _ => Vec::new(),
    }
}

/// A date as Sling and JCR write it: `Fri Oct 25 2024 18:11:57 GMT+0000` (any offset, an
/// optional trailing `(zone name)`), ISO 8601 / RFC 3339 (`2024-10-25T18:11:57.123+02:00`,
/// `…Z`, or without offset, read as UTC), or epoch milliseconds (a number or a numeric
/// string). Anything else is `None`, logged at debug level.
pub(crate) fn parse_date(value: &Value) -> Option<SystemTime> {
    let parsed = match value {
        Value::Number(n) => n.as_i64().and_then(from_epoch_millis),
        Value::String(s) => parse_date_str(s),
        Value::Array(items) => items.first().and_then(parse_date),
        _ => None,
    };
    if parsed.is_none() && !value.is_null() {
        log::debug!("unreadable date {value}; ignored");
    }
    parsed
}

fn parse_date_str(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Ok(millis) = text.parse::<i64>() {
        return from_epoch_millis(millis);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.into());
    }
    // ECMAScript style, as Sling's JSON writer renders JCR dates.
    let ecma = match text.find(" (") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => text,
    };
    for format in ["%a %b %d %Y %H:%M:%S GMT%z", "%a %b %d %Y %H:%M:%S GMT%:z"] {
        if let Ok(dt) = DateTime::parse_from_str(ecma, format) {
            return Some(dt.into());
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(dt) = DateTime::parse_from_str(text, format) {
            return Some(dt.into());
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc().into());
        }
    }
    None
}

fn from_epoch_millis(millis: i64) -> Option<SystemTime> {
    let magnitude = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 { UNIX_EPOCH.checked_add(magnitude) } else { UNIX_EPOCH.checked_sub(magnitude) }
}

/// Reads a metadata node (`GET /content/dam/<a>/jcr:content/metadata.json`, or the
/// `properties.metadata` of the Assets API view). The whole object is kept in `raw`.
pub(crate) fn parse_metadata(raw: Map<String, Value>) -> AssetMetadata {
    let text = |key: &str| raw.get(key).and_then(first_string).filter(|s| !s.is_empty());
    let count = |key: &str| raw.get(key).and_then(as_count);
    AssetMetadata {
        title: text("dc:title"),
        description: text("dc:description"),
        format: text("dc:format").or_else(|| text("dam:MIMEtype")),
        size: count("dam:size"),
        sha1: text("dam:sha1").map(|s| s.trim().to_ascii_lowercase()),
        width: count("tiff:ImageWidth").or_else(|| count("exif:PixelXDimension")),
        height: count("tiff:ImageLength").or_else(|| count("exif:PixelYDimension")),
        tags: strings(raw.get("cq:tags")),
        raw,
    }
}

/// Checks that a JSON object is a metadata node and not some other document a broken or
/// misrouted server answered with: a metadata node carries JCR properties (`jcr:primaryType`,
/// `dam:size`, `dc:format`: names with a namespace prefix) and is not a Siren document.
pub(crate) fn check_metadata(raw: &Map<String, Value>) -> Result<(), String> {
    if raw.contains_key("entities") || (raw.contains_key("class") && raw.contains_key("properties")) {
        return Err("a Siren document, not a metadata node".into());
    }
    if !raw.keys().any(|k| k.contains(':') && !k.starts_with(':')) {
        return Err("no namespaced property (jcr:, dam:, dc:…): not a metadata node".into());
    }
    Ok(())
}

/// Reads `GET /content/dam/<a>/jcr:content/renditions.2.json`: every key whose value is an
/// object is a rendition (`jcr:*` keys are the node's own properties); its `jcr:content`
/// gives `":jcr:data"` (the byte length) and `jcr:mimeType`. `{}` is a name only. The answer
/// lists `original` first, then the others by name (JSON object order is not kept). A list
/// without `original` is not a rendition list (every asset has one): an error.
pub(crate) fn parse_renditions(value: &Value) -> Result<Vec<RenditionInfo>, String> {
    let object = value.as_object().ok_or("expected a JSON object")?;
    if !object.get("original").is_some_and(Value::is_object) {
        return Err("no \"original\" rendition: not a rendition list".into());
    }
    let mut out = Vec::with_capacity(object.len());
    for (name, node) in object {
        if name.starts_with("jcr:") || name.starts_with(':') || !node.is_object() {
            continue;
        }
        let content = node.get("jcr:content");
        let size = content.and_then(|c| c.get(":jcr:data")).and_then(as_count);
        let mime = content.and_then(|c| c.get("jcr:mimeType")).and_then(first_string);
        out.push(RenditionInfo { name: name.clone(), size, mime });
    }
    out.sort_by(|a, b| (a.name != "original", &a.name).cmp(&(b.name != "original", &b.name)));
    Ok(out)
}

/// What `GET /content/dam/<a>/jcr:content.1.json` says about an asset's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentAttrs {
    /// `jcr:lastModified` of `jcr:content`.
    pub modified: Option<SystemTime>,
    /// `metadata/dam:size`.
    pub size: Option<u64>,
    /// `metadata/dc:format`.
    pub format: Option<String>,
    /// `metadata/dam:sha1`.
    pub sha1: Option<String>,
    /// `dam:assetState`.
    pub state: Option<String>,
    /// False when the `metadata` child was missing or rendered as `{}`: then ask
    /// `metadata.json` on its own.
    pub metadata_seen: bool,
}

/// Reads the `jcr:content` node of an asset, rendered one level deep.
pub(crate) fn parse_content_attrs(value: &Value) -> Result<ContentAttrs, String> {
    let object = value.as_object().ok_or("expected a JSON object")?;
    let modified = object.get("jcr:lastModified").and_then(parse_date);
    let metadata = object.get("metadata").and_then(Value::as_object).filter(|m| !m.is_empty());
    let (size, format) = match metadata {
        Some(m) => metadata_attrs(m),
        None => (None, None),
    };
    let sha1 =
        metadata.and_then(|m| m.get("dam:sha1")).and_then(first_string).map(|s| s.to_ascii_lowercase());
    let state = object.get("dam:assetState").and_then(first_string);
    Ok(ContentAttrs { modified, size, format, sha1, state, metadata_seen: metadata.is_some() })
}

/// `dam:size` and `dc:format` of a metadata node.
pub(crate) fn metadata_attrs(metadata: &Map<String, Value>) -> (Option<u64>, Option<String>) {
    let size = metadata.get("dam:size").and_then(as_count);
    let format = metadata.get("dc:format").and_then(first_string).filter(|s| !s.is_empty());
    (size, format)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(secs: u64, millis: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
    }

    #[test]
    fn dates() {
        // 2024-10-25T18:11:57Z
        let t = 1_729_879_917;
        let cases = [
            (json!("Fri Oct 25 2024 18:11:57 GMT+0000"), at(t, 0)),
            (json!("Fri Oct 25 2024 20:11:57 GMT+0200"), at(t, 0)),
            (json!("Fri Oct 25 2024 13:11:57 GMT-0500"), at(t, 0)),
            (json!("Fri Oct 25 2024 18:11:57 GMT+0000 (Coordinated Universal Time)"), at(t, 0)),
            (json!("2024-10-25T20:11:57.123+02:00"), at(t, 123)),
            (json!("2024-10-25T18:11:57Z"), at(t, 0)),
            (json!("2024-10-25T18:11:57.5Z"), at(t, 500)),
            (json!("2024-10-25T18:11:57.000+0000"), at(t, 0)),
            (json!("2024-10-25T18:11:57"), at(t, 0)),
            (json!(1_729_879_917_123u64), at(t, 123)),
            (json!("1729879917000"), at(t, 0)),
            (json!(["2024-10-25T18:11:57Z"]), at(t, 0)),
            (json!(0), Some(UNIX_EPOCH)),
            (json!(-1000), UNIX_EPOCH.checked_sub(Duration::from_secs(1))),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_date(&value), expected, "{value}");
        }
        for garbage in [
            json!("yesterday"),
            json!(""),
            json!("Fri Oct 45 2024 18:11:57 GMT+0000"),
            json!(null),
            json!({}),
            json!(true),
            json!(1.5),
        ] {
            assert_eq!(parse_date(&garbage), None, "{garbage}");
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn metadata_as_documented() {
        let raw = object(json!({"jcr:primaryType": "nt:unstructured", "dc:format": "image/jpeg",
            "dc:title": "Hiking", "dc:description": "On the trail", "dam:size": 418237,
            "dam:sha1": "ABCDEF0123", "tiff:ImageWidth": 1920, "tiff:ImageLength": 1280,
            "cq:tags": ["we-retail:activity/hiking", "we-retail:season/summer"], "exif:Make": "X"}));
        let m = parse_metadata(raw.clone());
        assert_eq!(m.title.as_deref(), Some("Hiking"));
        assert_eq!(m.description.as_deref(), Some("On the trail"));
        assert_eq!(m.format.as_deref(), Some("image/jpeg"));
        assert_eq!((m.size, m.width, m.height), (Some(418237), Some(1920), Some(1280)));
        assert_eq!(m.sha1.as_deref(), Some("abcdef0123"));
        assert_eq!(m.tags, vec!["we-retail:activity/hiking", "we-retail:season/summer"]);
        assert_eq!(m.raw, raw);
    }

    #[test]
    fn metadata_tolerance() {
        let m = parse_metadata(object(json!({"dam:size": "418237", "tiff:ImageWidth": "640",
            "cq:tags": "ns:one", "dc:title": ["First", "Second"], "dc:description": {"odd": 1}})));
        assert_eq!((m.size, m.width), (Some(418237), Some(640)));
        assert_eq!(m.tags, vec!["ns:one"]);
        assert_eq!(m.title.as_deref(), Some("First"));
        assert_eq!((m.description, m.format), (None, None));

        let m = parse_metadata(object(json!({"cq:tags": [], "dc:title": "", "dam:MIMEtype": "image/png"})));
        assert!(m.tags.is_empty());
        assert_eq!(m.title, None);
        assert_eq!(m.format.as_deref(), Some("image/png"));

        let m = parse_metadata(Map::new());
        assert_eq!(m, AssetMetadata::default());
    }

    #[test]
    fn metadata_shape() {
        let good = [
            json!({"jcr:primaryType": "nt:unstructured"}),
            json!({"dc:format": "image/jpeg", "custom": 1}),
            json!({"dam:size": 3}),
        ];
        for value in good {
            assert_eq!(check_metadata(&object(value.clone())), Ok(()), "{value}");
        }
        let bad = [
            json!({}),
            json!({"name": "x", "size": 3}),
            json!({":jcr:data": 5}),
            json!({"class": ["assets/asset"], "properties": {"dc:title": "x"}, "links": []}),
            json!({"entities": [], "jcr:primaryType": "nt:unstructured"}),
        ];
        for value in bad {
            assert!(check_metadata(&object(value.clone())).is_err(), "{value}");
        }
    }

    #[test]
    fn renditions_2_json() {
        let value = json!({"jcr:primaryType": "nt:folder", "jcr:created": "Fri Oct 25 2024 18:11:57 GMT+0000",
            "original": {"jcr:primaryType": "nt:file",
                         "jcr:content": {"jcr:primaryType": "nt:resource", ":jcr:data": 418237, "jcr:mimeType": "image/jpeg"}},
            "cq5dam.thumbnail.48.48.png": {"jcr:primaryType": "nt:file", "jcr:content": {}},
            "cqdam.metadata.xml": {},
            "stray": "a string, not a node"});
        let list = parse_renditions(&value).unwrap();
        assert_eq!(
            list,
            vec![
                RenditionInfo {
                    name: "original".into(),
                    size: Some(418237),
                    mime: Some("image/jpeg".into())
                },
                RenditionInfo { name: "cq5dam.thumbnail.48.48.png".into(), size: None, mime: None },
                RenditionInfo { name: "cqdam.metadata.xml".into(), size: None, mime: None },
            ]
        );
        assert!(parse_renditions(&json!([])).is_err());
        assert!(parse_renditions(&json!({})).is_err());
        // A Siren document where the rendition list should be.
        let siren = json!({"class": ["assets/asset"], "properties": {"name": "x"}, "entities": []});
        assert!(parse_renditions(&siren).is_err());
    }

    #[test]
    fn content_attrs() {
        let full = json!({"jcr:lastModified": "Fri Oct 25 2024 18:11:57 GMT+0000",
            "dam:assetState": "processing",
            "metadata": {"dam:size": "12", "dc:format": "image/png", "dam:sha1": "AB"}, "renditions": {}});
        assert_eq!(
            parse_content_attrs(&full).unwrap(),
            ContentAttrs {
                modified: at(1_729_879_917, 0),
                size: Some(12),
                format: Some("image/png".into()),
                sha1: Some("ab".into()),
                state: Some("processing".into()),
                metadata_seen: true
            }
        );
        let cloud = json!({"jcr:lastModified": 5, "metadata": {}});
        assert_eq!(
            parse_content_attrs(&cloud).unwrap(),
            ContentAttrs {
                modified: at(0, 5),
                size: None,
                format: None,
                sha1: None,
                state: None,
                metadata_seen: false
            }
        );
        assert!(!parse_content_attrs(&json!({})).unwrap().metadata_seen);
        assert!(parse_content_attrs(&json!("x")).is_err());
    }

    #[test]
    fn string_lists() {
        assert_eq!(strings(None), Vec::<String>::new());
        assert_eq!(strings(Some(&json!("a"))), vec!["a"]);
        assert_eq!(strings(Some(&json!(["a", 1, "", "b"]))), vec!["a", "b"]);
        assert_eq!(strings(Some(&json!(7))), Vec::<String>::new());
        assert_eq!(first_string(&json!([1, "x"])).as_deref(), Some("x"));
    }
}
