//! A stub AEM Assets instance for the remote tests: an axum server on `127.0.0.1:0` that
//! answers only what `aem-protocol.md` promises (Siren listings with paging and a clamp,
//! QueryBuilder, Sling JSON, ranged binaries, tags, Basic/Bearer with 401), records every
//! request it sees, and can be told to refuse QueryBuilder, ignore ranges, redirect binaries
//! or stall. Independent of damfs's own code: it has its own encoding and parsing.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The raw (encoded) path.
    pub path: String,
    /// Query parameters, form-decoded.
    pub params: HashMap<String, String>,
    /// The request headers.
    pub headers: HeaderMap,
}

impl Seen {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    /// The path, percent-decoded.
    pub fn decoded_path(&self) -> String {
        percent_decode_str(&self.path).decode_utf8_lossy().into_owned()
    }
}

/// A running stub; stops when dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests whose decoded path starts with `prefix`.
    pub fn seen_under(&self, prefix: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.decoded_path().starts_with(prefix)).collect()
    }
}

/// Serves `handler` on `127.0.0.1:0`; a `None` answer stalls the request forever.
pub async fn serve<F>(handler: F) -> Server
where
    F: Fn(&Seen) -> Option<Response> + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let log = Arc::clone(&seen);
    let app = Router::new().fallback(move |request: Request| {
        let handler = Arc::clone(&handler);
        let log = Arc::clone(&log);
        async move {
            let params = Query::<HashMap<String, String>>::try_from_uri(request.uri())
                .map(|q| q.0)
                .unwrap_or_default();
            let seen =
                Seen { path: request.uri().path().to_string(), params, headers: request.headers().clone() };
            log.lock().unwrap().push(seen.clone());
            match handler(&seen) {
                Some(response) => response,
                None => std::future::pending().await,
            }
        }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { addr, seen, task }
}

/// A response with a status and a body.
pub fn status(code: u16) -> Response {
    Response::builder().status(code).body(Body::from(format!("status {code}"))).unwrap()
}

/// A JSON response.
pub fn json_response(value: &Value) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json;charset=utf-8")
        .body(Body::from(value.to_string()))
        .unwrap()
}

/// Percent-encodes one segment (the stub's own encoder).
pub fn enc(segment: &str) -> String {
    utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string()
}

/// An asset of the stub DAM.
#[derive(Debug, Clone)]
pub struct StubAsset {
    pub bytes: Vec<u8>,
    pub renditions: Vec<(String, Vec<u8>)>,
    /// The metadata node, as served by `metadata.json`.
    pub metadata: Value,
    /// `jcr:content/jcr:lastModified`, as Sling renders it.
    pub modified: String,
}

impl StubAsset {
    pub fn new(bytes: &[u8], format: &str) -> StubAsset {
        StubAsset {
            bytes: bytes.to_vec(),
            renditions: vec![("cq5dam.thumbnail.48.48.png".into(), b"thumb".to_vec())],
            metadata: json!({"jcr:primaryType": "nt:unstructured", "dc:format": format, "dam:size": bytes.len()}),
            modified: "Fri Oct 25 2024 18:11:57 GMT+0000".into(),
        }
    }
}

enum Node {
    Folder(Vec<String>),
    Asset(StubAsset),
}

/// The stub DAM and its behaviour switches.
pub struct Dam {
    nodes: HashMap<String, Node>,
    /// Tag nodes by absolute path (`/content/cq:tags/ns/a`).
    pub tags: HashMap<String, Value>,
    /// Largest `limit` honoured on listings.
    pub clamp: u64,
    /// Answer QueryBuilder with this status instead of results.
    pub refuse_querybuilder: Option<u16>,
    /// Required `Authorization` header value.
    pub auth: Option<String>,
    /// Render the `metadata` child of `jcr:content.1.json` as `{}` (Cloud Service).
    pub empty_metadata_child: bool,
    /// Answer `renditions.2.json` with this status.
    pub renditions_json_status: Option<u16>,
    /// Answer Range requests with the whole body (200).
    pub ignore_ranges: bool,
    /// Redirect rendition downloads to this base URL (`<base>blob/<asset>/<name>`).
    pub redirect_binaries: Option<String>,
    /// Leave `properties.name` out of child entities (names only in hrefs).
    pub names_only_in_hrefs: bool,
}

impl Dam {
    pub fn new() -> Dam {
        Dam {
            nodes: HashMap::from([(String::new(), Node::Folder(Vec::new()))]),
            tags: HashMap::new(),
            clamp: 1000,
            refuse_querybuilder: None,
            auth: None,
            empty_metadata_child: false,
            renditions_json_status: None,
            ignore_ranges: false,
            redirect_binaries: None,
            names_only_in_hrefs: false,
        }
    }

    fn parent(path: &str) -> (&str, &str) {
        path.rsplit_once('/').unwrap_or(("", path))
    }

    pub fn folder(&mut self, path: &str) {
        if self.nodes.contains_key(path) {
            return;
        }
        let (parent, name) = Self::parent(path);
        self.folder(parent);
        if let Some(Node::Folder(children)) = self.nodes.get_mut(parent) {
            children.push(name.to_string());
        }
        self.nodes.insert(path.to_string(), Node::Folder(Vec::new()));
    }

    pub fn asset(&mut self, path: &str, asset: StubAsset) {
        let (parent, name) = Self::parent(path);
        self.folder(parent);
        if let Some(Node::Folder(children)) = self.nodes.get_mut(parent) {
            children.push(name.to_string());
        }
        self.nodes.insert(path.to_string(), Node::Asset(asset));
    }

    /// Starts serving this DAM.
    pub async fn serve(self) -> Server {
        let dam = Arc::new(self);
        serve(move |seen| Some(dam.respond(seen))).await
    }

    fn respond(&self, seen: &Seen) -> Response {
        if let Some(expected) = &self.auth {
            if seen.header("authorization").as_deref() != Some(expected.as_str()) {
                return Response::builder()
                    .status(401)
                    .header(header::WWW_AUTHENTICATE, "Basic realm=\"Sling (Development)\"")
                    .body(Body::empty())
                    .unwrap();
            }
        }
        let segments: Vec<String> = seen
            .path
            .split('/')
            .skip(1)
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        let host = seen.header("host").unwrap_or_default();
        match s.as_slice() {
            ["api", "assets.json"] => self.listing("", seen, &host),
            ["api", "assets", asset @ .., "renditions.json"] if !asset.is_empty() => {
                self.api_renditions(&asset.join("/"))
            }
            ["api", "assets", rest @ ..] if rest.last().is_some_and(|l| l.ends_with(".json")) => {
                let joined = rest.join("/");
                self.listing(joined.strip_suffix(".json").unwrap_or(&joined), seen, &host)
            }
            ["bin", "querybuilder.json"] => self.querybuilder(seen),
            ["content", "dam", rest @ ..] => self.content(rest, seen),
            ["content", "cq:tags", rest @ ..] => self.tag(&format!("/content/cq:tags/{}", rest.join("/"))),
            ["etc", "tags", rest @ ..] => self.tag(&format!("/etc/tags/{}", rest.join("/"))),
            ["blob", ..] => status(404),
            _ => status(404),
        }
    }

    fn href(&self, host: &str, path: &str) -> String {
        let encoded: Vec<String> = path.split('/').map(enc).collect();
        format!("http://{host}/api/assets/{}.json", encoded.join("/"))
    }

    fn listing(&self, path: &str, seen: &Seen, host: &str) -> Response {
        let children = match self.nodes.get(path) {
            Some(Node::Folder(children)) => children,
            Some(Node::Asset(_)) => {
                let name = Self::parent(path).1;
                return json_response(&json!({"class": ["assets/asset"], "properties": {"name": name}}));
            }
            None => return status(404),
        };
        let offset: usize = seen.params.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
        let limit: u64 = seen.params.get("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
        let limit = limit.min(self.clamp) as usize;
        let entities: Vec<Value> = children
            .iter()
            .skip(offset)
            .take(limit)
            .map(|name| {
                let child = if path.is_empty() { name.clone() } else { format!("{path}/{name}") };
                let class = match self.nodes.get(&child) {
                    Some(Node::Folder(_)) => "assets/folder",
                    _ => "assets/asset",
                };
                let properties = if self.names_only_in_hrefs { json!({}) } else { json!({"name": name}) };
                json!({"class": [class], "rel": ["child"], "properties": properties,
                       "links": [{"rel": ["self"], "href": self.href(host, &child)}]})
            })
            .collect();
        json_response(&json!({
            "class": ["assets/folder"],
            "properties": {"name": Self::parent(path).1,
                           "srn:paging": {"total": children.len(), "offset": offset, "limit": limit}},
            "entities": entities,
            "links": [{"rel": ["self"], "href": format!("http://{host}{}", seen.path)}],
            "actions": []}))
    }

    fn assets_in(&self, folder: &str) -> Vec<(String, &StubAsset)> {
        match self.nodes.get(folder) {
            Some(Node::Folder(children)) => children
                .iter()
                .filter_map(|name| {
                    let path = if folder.is_empty() { name.clone() } else { format!("{folder}/{name}") };
                    match self.nodes.get(&path) {
                        Some(Node::Asset(a)) => Some((path, a)),
                        _ => None,
                    }
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn querybuilder(&self, seen: &Seen) -> Response {
        if let Some(code) = self.refuse_querybuilder {
            return status(code);
        }
        let p = &seen.params;
        let root = p.get("path").and_then(|r| r.strip_prefix("/content/dam")).unwrap_or("");
        let root = root.trim_start_matches('/');
        if let Some(words) = p.get("fulltext") {
            let limit: usize = p.get("p.limit").and_then(|l| l.parse().ok()).unwrap_or(10);
            let hits: Vec<Value> = self
                .nodes
                .iter()
                .filter(|(path, node)| {
                    matches!(node, Node::Asset(_))
                        && (root.is_empty() || path.starts_with(&format!("{root}/")))
                        && path.to_lowercase().contains(&words.to_lowercase())
                })
                .take(limit)
                .map(|(path, _)| json!({"path": format!("/content/dam/{path}"), "excerpt": "", "name": Self::parent(path).1}))
                .collect();
            return json_response(
                &json!({"success": true, "results": hits.len(), "total": hits.len(), "more": false, "offset": 0, "hits": hits}),
            );
        }
        let hits: Vec<Value> = self
            .assets_in(root)
            .into_iter()
            .map(|(path, a)| {
                json!({"jcr:path": format!("/content/dam/{path}"),
                       "jcr:content": {"jcr:lastModified": a.modified,
                                       "metadata": {"dam:size": a.metadata.get("dam:size"), "dc:format": a.metadata.get("dc:format")}}})
            })
            .collect();
        json_response(
            &json!({"success": true, "results": hits.len(), "total": hits.len(), "more": false, "offset": 0, "hits": hits}),
        )
    }

    fn content(&self, rest: &[&str], seen: &Seen) -> Response {
        let Some(at) = rest.iter().position(|s| *s == "jcr:content" || *s == "jcr:content.1.json") else {
            return status(404);
        };
        let path = rest[..at].join("/");
        let Some(Node::Asset(asset)) = self.nodes.get(&path) else { return status(404) };
        match &rest[at..] {
            ["jcr:content.1.json"] => {
                let metadata = if self.empty_metadata_child { json!({}) } else { asset.metadata.clone() };
                json_response(
                    &json!({"jcr:primaryType": "dam:AssetContent", "jcr:lastModified": asset.modified,
                                      "metadata": metadata, "renditions": {"jcr:primaryType": "nt:folder"}}),
                )
            }
            ["jcr:content", "metadata.json"] => json_response(&asset.metadata),
            ["jcr:content", "renditions.2.json"] => {
                if let Some(code) = self.renditions_json_status {
                    return status(code);
                }
                let mut out = serde_json::Map::new();
                out.insert("jcr:primaryType".into(), json!("nt:folder"));
                out.insert("original".into(), json!({"jcr:primaryType": "nt:file",
                    "jcr:content": {":jcr:data": asset.bytes.len(), "jcr:mimeType": asset.metadata.get("dc:format")}}));
                for (name, bytes) in &asset.renditions {
                    out.insert(
                        name.clone(),
                        json!({"jcr:primaryType": "nt:file",
                        "jcr:content": {":jcr:data": bytes.len(), "jcr:mimeType": "image/png"}}),
                    );
                }
                json_response(&Value::Object(out))
            }
            ["jcr:content", "renditions", name] => {
                let bytes = if *name == "original" {
                    Some(&asset.bytes)
                } else {
                    asset.renditions.iter().find(|(n, _)| n == name).map(|(_, b)| b)
                };
                let Some(bytes) = bytes else { return status(404) };
                if let Some(base) = &self.redirect_binaries {
                    let location = format!("{base}blob/{}/{}", enc(&path), enc(name));
                    return Response::builder()
                        .status(302)
                        .header(header::LOCATION, location)
                        .body(Body::empty())
                        .unwrap();
                }
                binary(bytes, seen.header("range").filter(|_| !self.ignore_ranges).as_deref())
            }
            _ => status(404),
        }
    }

    fn api_renditions(&self, asset: &str) -> Response {
        let Some(Node::Asset(a)) = self.nodes.get(asset) else { return status(404) };
        let mut entities =
            vec![json!({"class": ["assets/asset/renditions/rendition"], "properties": {"name": "original"}})];
        for (name, _) in &a.renditions {
            entities
                .push(json!({"class": ["assets/asset/renditions/rendition"], "properties": {"name": name}}));
        }
        json_response(&json!({"class": ["assets/asset/renditions"], "entities": entities}))
    }

    fn tag(&self, path: &str) -> Response {
        let path = path.strip_suffix(".json").unwrap_or(path);
        match self.tags.get(path) {
            Some(node) => json_response(node),
            None => status(404),
        }
    }
}

/// A binary answer honouring `Range: bytes=a-b` as Sling does (206, or 416 past the end).
pub fn binary(bytes: &[u8], range: Option<&str>) -> Response {
    let len = bytes.len() as u64;
    let Some(spec) = range.and_then(|r| r.strip_prefix("bytes=")) else {
        return Response::builder()
            .header(header::CONTENT_LENGTH, len)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(bytes.to_vec()))
            .unwrap();
    };
    let (first, last) = spec.split_once('-').unwrap();
    let first: u64 = first.parse().unwrap();
    let last: u64 = if last.is_empty() {
        len.saturating_sub(1)
    } else {
        last.parse::<u64>().unwrap().min(len.saturating_sub(1))
    };
    if first >= len {
        return Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .body(Body::empty())
            .unwrap();
    }
    Response::builder()
        .status(StatusCode::PARTIAL_CONTENT)
        .header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"))
        .body(Body::from(bytes[first as usize..=last as usize].to_vec()))
        .unwrap()
}
