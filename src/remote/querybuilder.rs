//! QueryBuilder (`/bin/querybuilder.json`): the parameters of the two queries damfs sends
//! (the attributes of every asset directly in a folder; a full-text search) and the reading
//! of their hits. Hit paths are raw absolute repository paths, not percent-encoded.

use serde_json::{Map, Value};

use super::AssetAttrs;
use super::siren::as_count;
use super::sling::{first_string, metadata_attrs, parse_date};
use super::url::{dam_path_from_jcr, jcr_path};

/// The properties asked of each hit of a folder query. `dam:sha1` is not among them (a
/// server without it stored would have to read every file); `jcr:lastModified` moves with
/// every new version anyway.
const ATTR_PROPERTIES: &str = "jcr:path jcr:content/jcr:lastModified jcr:content/dam:assetState \
     jcr:content/metadata/dam:size jcr:content/metadata/dc:format";

/// Parameters of the query for the attributes of every asset directly in `folder`, from
/// hit number `offset` on.
pub(crate) fn attrs_params(folder: &str, offset: u64) -> Vec<(&'static str, String)> {
    let mut params = vec![
        ("path", jcr_path(folder)),
        ("path.flat", "true".to_string()),
        ("type", "dam:Asset".to_string()),
        // Paged rather than all at once (-1): AEM caps what one query may read and damfs
        // caps a JSON answer; `guessTotal` spares the server an exact count.
        ("p.limit", QUERY_PAGE.to_string()),
        ("p.guessTotal", "true".to_string()),
        ("p.hits", "selective".to_string()),
        ("p.properties", ATTR_PROPERTIES.to_string()),
    ];
    if offset > 0 {
        params.push(("p.offset", offset.to_string()));
    }
    params
}

/// Hits asked per QueryBuilder page of folder attributes.
pub(crate) const QUERY_PAGE: u64 = 1000;

/// Parameters of a full-text search under `root`.
pub(crate) fn search_params(root: &str, words: &str, limit: usize) -> Vec<(&'static str, String)> {
    vec![
        ("path", jcr_path(root)),
        ("type", "dam:Asset".to_string()),
        ("fulltext", words.to_string()),
        ("p.limit", limit.to_string()),
    ]
}

/// One page of QueryBuilder hits.
#[derive(Debug, Clone)]
pub(crate) struct HitsPage<'a> {
    /// The hits as sent.
    pub hits: &'a [Value],
    /// `more`: further hits past this page.
    pub more: bool,
    /// `total`: how many hits the query has, exact or (with `p.guessTotal`) a guess that
    /// may fall short. Only a hint of how many pages to ask for at once.
    pub total: Option<u64>,
}

/// Reads the envelope of a QueryBuilder answer.
pub(crate) fn parse_hits(value: &Value) -> Result<HitsPage<'_>, String> {
    let object = value.as_object().ok_or("expected a JSON object")?;
    if object.get("success").and_then(Value::as_bool) == Some(false) {
        return Err("the query failed (\"success\": false)".into());
    }
    let hits = match object.get("hits") {
        Some(Value::Array(hits)) => &hits[..],
        None | Some(Value::Null) => &[][..],
        Some(_) => return Err("\"hits\" is not a list".into()),
    };
    let more = match object.get("more") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    let total = object.get("total").and_then(as_count);
    Ok(HitsPage { hits, more, total })
}

/// A property of a selective hit, as a nested object (`jcr:content` → `metadata` → …) or,
/// tolerated, under its flat relative path (`"jcr:content/metadata/dam:size"`).
fn nested<'a>(hit: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let mut node = hit;
    for (i, key) in path.iter().enumerate() {
        let value = node.get(*key)?;
        if i + 1 == path.len() {
            return Some(value);
        }
        node = value.as_object()?;
    }
    None
}

fn property<'a>(hit: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    nested(hit, path).or_else(|| hit.get(&path.join("/")))
}

/// The attributes of the assets directly in `folder` among the hits (hits elsewhere, e.g.
/// from a server that ignored `path.flat`, are left out).
pub(crate) fn attrs_from_hits(hits: &[Value], folder: &str) -> Vec<AssetAttrs> {
    let mut out = Vec::with_capacity(hits.len());
    for hit in hits {
        let Some(hit) = hit.as_object() else { continue };
        let Some(path) = property(hit, &["jcr:path"]).or_else(|| hit.get("path")).and_then(Value::as_str)
        else {
            continue;
        };
        let Some(path) = dam_path_from_jcr(path) else { continue };
        let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
        if path.is_empty() || parent != folder {
            continue;
        }
        let metadata = property(hit, &["jcr:content", "metadata"]).and_then(Value::as_object);
        let (mut size, mut format) = metadata.map(metadata_attrs).unwrap_or((None, None));
        size = size.or_else(|| property(hit, &["jcr:content", "metadata", "dam:size"]).and_then(as_count));
        format = format
            .or_else(|| property(hit, &["jcr:content", "metadata", "dc:format"]).and_then(first_string));
        let modified = property(hit, &["jcr:content", "jcr:lastModified"]).and_then(parse_date);
        let sha1 = property(hit, &["jcr:content", "metadata", "dam:sha1"]).and_then(first_string);
        let state = property(hit, &["jcr:content", "dam:assetState"]).and_then(first_string);
        out.push(AssetAttrs {
            path,
            size,
            modified,
            format,
            sha1: sha1.map(|s| s.to_ascii_lowercase()),
            state,
        });
    }
    out
}

/// The DAM paths of search hits (`path`, or `jcr:path` for selective hits).
pub(crate) fn paths_from_hits(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .filter_map(|hit| hit.get("path").or_else(|| hit.get("jcr:path")).and_then(Value::as_str))
        .filter_map(dam_path_from_jcr)
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;

    #[test]
    fn params() {
        let p = attrs_params("we retail", 0);
        assert!(p.contains(&("path", "/content/dam/we retail".into())));
        assert!(p.contains(&("path.flat", "true".into())));
        assert!(p.contains(&("p.limit", "1000".into())));
        assert!(p.contains(&("p.guessTotal", "true".into())));
        assert!(!p.iter().any(|(k, _)| *k == "p.offset"));
        assert!(attrs_params("", 40).contains(&("p.offset", "40".into())));
        assert!(attrs_params("", 0).contains(&("path", "/content/dam".into())));
        let s = search_params("a", "red car", 50);
        assert_eq!(s[2], ("fulltext", "red car".into()));
        assert_eq!(s[3], ("p.limit", "50".into()));
    }

    #[test]
    fn attribute_hits() {
        let answer = json!({"success": true, "results": 4, "total": 4, "more": false, "offset": 0, "hits": [
            {"jcr:path": "/content/dam/we retail/act/hiking.jpg",
             "jcr:content": {"jcr:lastModified": "Fri Oct 25 2024 18:11:57 GMT+0000",
                             "metadata": {"dam:size": 418237, "dc:format": "image/jpeg"}}},
            // Missing fields.
            {"jcr:path": "/content/dam/we retail/act/bare.png"},
            {"jcr:path": "/content/dam/we retail/act/partial.png", "jcr:content": {"metadata": {"dam:size": "5"}}},
            // Flat keys.
            {"jcr:path": "/content/dam/we retail/act/flat.gif", "jcr:content/metadata/dc:format": "image/gif",
             "jcr:content/jcr:lastModified": 1000},
            // Not directly in the folder, outside the DAM, no path at all, not an object.
            {"jcr:path": "/content/dam/we retail/act/sub/deep.jpg"},
            {"jcr:path": "/content/other/x.jpg"},
            {"jcr:content": {}},
            "junk"]});
        let page = parse_hits(&answer).unwrap();
        assert!(!page.more);
        assert_eq!(page.total, Some(4));
        let attrs = attrs_from_hits(page.hits, "we retail/act");
        let modified = Some(UNIX_EPOCH + Duration::from_secs(1_729_879_917));
        assert_eq!(
            attrs,
            vec![
                AssetAttrs {
                    path: "we retail/act/hiking.jpg".into(),
                    size: Some(418237),
                    modified,
                    format: Some("image/jpeg".into()),
                    ..AssetAttrs::default()
                },
                AssetAttrs {
                    path: "we retail/act/bare.png".into(),
                    size: None,
                    modified: None,
                    format: None,
                    ..AssetAttrs::default()
                },
                AssetAttrs {
                    path: "we retail/act/partial.png".into(),
                    size: Some(5),
                    modified: None,
                    format: None,
                    ..AssetAttrs::default()
                },
                AssetAttrs {
                    path: "we retail/act/flat.gif".into(),
                    size: None,
                    modified: Some(UNIX_EPOCH + Duration::from_secs(1)),
                    format: Some("image/gif".into()),
                    ..AssetAttrs::default()
                },
            ]
        );
        let root = json!({"hits": [{"jcr:path": "/content/dam/top.jpg"}, {"jcr:path": "/content/dam"}]});
        let attrs = attrs_from_hits(parse_hits(&root).unwrap().hits, "");
        assert_eq!(attrs.iter().map(|a| a.path.as_str()).collect::<Vec<_>>(), vec!["top.jpg"]);
    }

    #[test]
    fn envelopes() {
        assert!(parse_hits(&json!({"success": false})).is_err());
        assert!(parse_hits(&json!({"hits": {}})).is_err());
        assert!(parse_hits(&json!([])).is_err());
        assert!(parse_hits(&json!({"more": "true"})).unwrap().more);
        assert!(parse_hits(&json!({})).unwrap().hits.is_empty());
    }

    #[test]
    fn search_hits() {
        let answer = json!({"hits": [{"path": "/content/dam/a/b c.jpg", "excerpt": "…", "name": "b c.jpg"},
                                     {"jcr:path": "/content/dam/x+y.png"}, {"path": "/etc/z"}, {"title": "no path"}]});
        assert_eq!(paths_from_hits(parse_hits(&answer).unwrap().hits), vec!["a/b c.jpg", "x+y.png"]);
    }
}
