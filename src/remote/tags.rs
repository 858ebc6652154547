//! Tag IDs in the forms assets carry them (`ns:local/path`, `local/path` in the `default`
//! namespace, absolute `/content/cq:tags/ns/local/path` or `/etc/tags/ns/…`), and the JSON
//! of a tag node (`jcr:title`, `cq:movedTo`). Shared by the AEM client and the fake.

use serde_json::Value;

use super::sling::first_string;

/// The namespace of a tag ID written without one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Most `cq:movedTo` hops followed before giving up: real moves chain once or twice.
pub(crate) const MAX_MOVES: usize = 8;

/// A tag ID taken apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagRef {
    /// The namespace (`we-retail`, or `default`).
    pub namespace: String,
    /// The local path segments below the namespace (empty for the namespace itself).
    pub local: Vec<String>,
}

impl TagRef {
    /// Parses a tag ID or absolute tag path; `None` when it names no tag.
    pub fn parse(id: &str) -> Option<TagRef> {
        let id = id.trim();
        let absolute = ["/content/cq:tags/", "/etc/tags/"].iter().find_map(|root| id.strip_prefix(root));
        let (namespace, local) = match absolute {
            Some(rest) => {
                let rest = rest.trim_end_matches('/');
                match rest.split_once('/') {
                    Some((ns, local)) => (ns, local),
                    None => (rest, ""),
                }
            }
            None if id.starts_with('/') => return None,
            None => match id.split_once(':') {
                Some((ns, local)) => (ns, local),
                None => (DEFAULT_NAMESPACE, id),
            },
        };
        let local: Vec<String> = local.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();
        let valid = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(':');
        if !valid(namespace) || !local.iter().all(|s| valid(s)) {
            return None;
        }
        if local.is_empty() && absolute.is_none() && !id.ends_with(':') {
            // `foo` is the tag `default:foo`, handled above; an empty local part only comes
            // from `ns:` or an absolute path to a namespace.
            return None;
        }
        Some(TagRef { namespace: namespace.to_string(), local })
    }

    /// The canonical ID, `namespace:local/path`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.namespace, self.local.join("/"))
    }

    /// The last segment: the title of a tag without `jcr:title`.
    pub fn last_segment(&self) -> &str {
        self.local.last().unwrap_or(&self.namespace)
    }
}

/// What a tag node's JSON says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TagNode {
    /// `jcr:title`.
    pub title: Option<String>,
    /// `cq:movedTo`, when the tag was moved.
    pub moved_to: Option<String>,
}

/// Reads `GET /content/cq:tags/<ns>/<local>.json`.
pub(crate) fn parse_tag_node(value: &Value) -> Result<TagNode, String> {
    let object = value.as_object().ok_or("expected a JSON object")?;
    let text = |key: &str| object.get(key).and_then(first_string).filter(|s| !s.trim().is_empty());
    Ok(TagNode { title: text("jcr:title"), moved_to: text("cq:movedTo") })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tag(ns: &str, local: &[&str]) -> Option<TagRef> {
        Some(TagRef { namespace: ns.into(), local: local.iter().map(|s| s.to_string()).collect() })
    }

    #[test]
    fn id_forms() {
        let cases = [
            ("we-retail:activity/hiking", tag("we-retail", &["activity", "hiking"])),
            ("we-retail:activity", tag("we-retail", &["activity"])),
            ("activity/hiking", tag("default", &["activity", "hiking"])),
            ("hiking", tag("default", &["hiking"])),
            ("/content/cq:tags/we-retail/activity/hiking", tag("we-retail", &["activity", "hiking"])),
            ("/content/cq:tags/we-retail/activity/hiking/", tag("we-retail", &["activity", "hiking"])),
            ("/etc/tags/geometrixx/season/winter sports", tag("geometrixx", &["season", "winter sports"])),
            ("/content/cq:tags/we-retail", tag("we-retail", &[])),
            ("we-retail:", tag("we-retail", &[])),
            (" ns:a b/c+d ", tag("ns", &["a b", "c+d"])),
            ("ns:Café/日本", tag("ns", &["Café", "日本"])),
            ("", None),
            (":x", None),
            ("a:b:c", None),
            ("/content/dam/x", None),
            ("ns:a/../b", None),
            ("/content/cq:tags/", None),
        ];
        for (id, expected) in cases {
            assert_eq!(TagRef::parse(id), expected, "{id:?}");
        }
        let t = TagRef::parse("/etc/tags/ns/a/b").unwrap();
        assert_eq!((t.id().as_str(), t.last_segment()), ("ns:a/b", "b"));
        let ns = TagRef::parse("ns:").unwrap();
        assert_eq!((ns.id().as_str(), ns.last_segment()), ("ns:", "ns"));
    }

    #[test]
    fn tag_nodes() {
        let node = json!({"jcr:primaryType": "cq:Tag", "jcr:title": "Hiking", "jcr:title.fr": "Randonnée",
                          "sling:resourceType": "cq/tagging/components/tag"});
        assert_eq!(parse_tag_node(&node).unwrap(), TagNode { title: Some("Hiking".into()), moved_to: None });
        let moved = json!({"cq:movedTo": "/content/cq:tags/ns/new", "jcr:title": " "});
        assert_eq!(
            parse_tag_node(&moved).unwrap(),
            TagNode { title: None, moved_to: Some("/content/cq:tags/ns/new".into()) }
        );
        assert!(parse_tag_node(&json!([])).is_err());
    }
}
