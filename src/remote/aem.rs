//! The AEM Assets HTTP client: [`AemClient`] implements [`Remote`] with plain, cacheable GETs
//! on the public endpoints of `aem-protocol.md` (Assets API folder listings with paging,
//! QueryBuilder for folder attributes and search, Sling JSON for metadata, renditions and
//! tags, Sling binaries with ranges). It retries nothing and sets no overall deadline: the
//! caller wraps each call in its own timeout, and dropping a call's future cancels it.
//!
//! It owns the choices that depend on what the remote allows: when QueryBuilder is refused
//! (a dispatcher rule), attributes are read one asset at a time for the client's lifetime;
//! when tags live under `/etc/tags` (older instances), that root is tried first from then on.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::StatusCode;
use reqwest::header::CONTENT_RANGE;
use serde_json::Value;

pub use super::config::{AemConfig, Credentials};
pub use super::url::parse_remote_url;

use super::http::{
    Answer, ContentRange, Http, format_error, parse_content_range, status_error, transport_error,
};
use super::querybuilder::{parse_hits, paths_from_hits, search_params};
use super::siren::{parse_listing, parse_rendition_entities};
use super::sling::{check_metadata, metadata_attrs, parse_content_attrs, parse_metadata, parse_renditions};
use super::tags::{MAX_MOVES, TagRef, parse_tag_node};
use super::url::{Endpoints, TagRoot, label};
use super::{
    AssetAttrs, AssetMetadata, Download, FolderListing, Remote, RemoteError, RemoteErrorKind, RemoteResult,
    RenditionInfo, TagInfo,
};
use crate::metrics::Metrics;
use crate::names::join;

/// Per-asset attribute requests in flight at once when QueryBuilder is refused.
const FALLBACK_CONCURRENCY: usize = 8;

/// Statuses by which a server refuses QueryBuilder (blocked, unknown, or disabled).
pub(super) const QUERY_REFUSED: [u16; 4] = [400, 403, 404, 501];

/// The AEM Assets client. One per mount; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct AemClient {
    pub(super) http: Http,
    pub(super) endpoints: Endpoints,
    /// Set once QueryBuilder has been refused: attributes then come one asset at a time.
    query_refused: AtomicBool,
    /// Set once a tag was found under `/etc/tags` and not `/content/cq:tags`: that root is
    /// tried first from then on.
    tags_under_etc: AtomicBool,
}

impl AemClient {
    /// Builds a client (no request is sent; see [`Remote::check`]). Fails on an unreadable CA
    /// file, an unusable proxy URL or credentials that cannot go in a header.
    pub fn new(config: AemConfig) -> anyhow::Result<AemClient> {
        Ok(AemClient {
            http: Http::new(&config)?,
            endpoints: Endpoints::new(&config.base),
            query_refused: AtomicBool::new(false),
            tags_under_etc: AtomicBool::new(false),
        })
    }

    /// Counts and times every request in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> AemClient {
        self.http.metrics = Some(metrics);
        self
    }

    /// Attributes of one asset from its `jcr:content` node; `None` when the asset is gone.
    async fn attrs_of(&self, asset: String) -> RemoteResult<Option<AssetAttrs>> {
        let url = self.endpoints.asset_node(&asset, "/jcr:content.1.json")?;
        let path = label(&url);
        let value = match self.http.get_json_answer(url).await? {
            Answer::Json(value) => value,
            Answer::Status(StatusCode::NOT_FOUND) => return Ok(None),
            Answer::Status(status) => return Err(status_error(&path, status)),
        };
        let content = parse_content_attrs(&value).map_err(|cause| format_error(&path, cause))?;
        let (mut size, mut format, mut sha1) = (content.size, content.format, content.sha1);
        if !content.metadata_seen {
            // A Cloud Service instance may render the metadata child as `{}`.
            let url = self.endpoints.asset_node(&asset, "/jcr:content/metadata.json")?;
            let path = label(&url);
            match self.http.get_json_answer(url).await? {
                Answer::Json(Value::Object(metadata)) => {
                    (size, format) = metadata_attrs(&metadata);
                    sha1 = metadata.get("dam:sha1").and_then(Value::as_str).map(str::to_ascii_lowercase);
                }
                Answer::Json(_) => return Err(format_error(&path, "expected a JSON object")),
                Answer::Status(StatusCode::NOT_FOUND) => {}
                Answer::Status(status) => return Err(status_error(&path, status)),
            }
        }
        let modified = content.modified;
        Ok(Some(AssetAttrs { path: asset, size, modified, format, sha1, state: content.state }))
    }

    /// Attributes one request per asset, [`FALLBACK_CONCURRENCY`] at a time, in input order.
    async fn attrs_one_by_one(&self, folder: &str, assets: &[String]) -> RemoteResult<Vec<AssetAttrs>> {
        let paths: Vec<String> = assets
            .iter()
            .map(|a| if folder.is_empty() || a.contains('/') { a.clone() } else { join(folder, a) })
            .collect();
        let found: Vec<Option<AssetAttrs>> = stream::iter(paths)
            .map(|asset| self.attrs_of(asset))
            .buffered(FALLBACK_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The JSON of a tag node, from the root where tags were last found, then the other.
    async fn tag_node(&self, tag: &TagRef) -> RemoteResult<super::tags::TagNode> {
        let (preferred, other) = if self.tags_under_etc.load(Ordering::Relaxed) {
            (TagRoot::Etc, TagRoot::Content)
        } else {
            (TagRoot::Content, TagRoot::Etc)
        };
        let mut not_found = None;
        for root in [preferred, other] {
            let url = self.endpoints.tag(root, &tag.namespace, &tag.local)?;
            let path = label(&url);
            match self.http.get_json_answer(url).await? {
                Answer::Json(value) => {
                    if root != preferred {
                        self.tags_under_etc.store(root == TagRoot::Etc, Ordering::Relaxed);
                    }
                    return parse_tag_node(&value).map_err(|cause| format_error(&path, cause));
                }
                Answer::Status(StatusCode::NOT_FOUND) => {
                    not_found.get_or_insert_with(|| status_error(&path, StatusCode::NOT_FOUND));
                }
                Answer::Status(status) => return Err(status_error(&path, status)),
            }
        }
        Err(not_found.unwrap_or_else(|| status_error(&tag.id(), StatusCode::NOT_FOUND)))
    }

    /// Rendition names from the Assets API, when the Sling listing is not available.
    async fn api_renditions(&self, asset: &str) -> RemoteResult<Vec<RenditionInfo>> {
        let url = self.endpoints.api_renditions(asset)?;
        let path = label(&url);
        let value = self.http.get_json(url).await?;
        let names = parse_rendition_entities(&value).map_err(|cause| format_error(&path, cause))?;
        Ok(names.into_iter().map(|name| RenditionInfo { name, size: None, mime: None }).collect())
    }
}

/// An empty download at `offset`.
fn empty_download(offset: u64, total_size: Option<u64>) -> Download {
    Download { offset, total_size, body: Box::pin(stream::empty()) }
}

impl Remote for AemClient {
    async fn check(&self, root: &str) -> RemoteResult<()> {
        let url = self.endpoints.folder_page(root, 0, 1)?;
        let path = label(&url);
        let value = match self.http.get_json_answer(url).await? {
            Answer::Json(value) => value,
            Answer::Status(status) => {
                let code = status.as_u16();
                let (kind, cause) = match code {
                    401 => {
                        (RemoteErrorKind::Denied, format!("the remote refused the credentials (HTTP {code})"))
                    }
                    403 => (
                        RemoteErrorKind::Denied,
                        format!("the remote denied access to the folder (HTTP {code})"),
                    ),
                    404 => (RemoteErrorKind::NotFound, format!("no such folder on the remote (HTTP {code})")),
                    _ => return Err(status_error(&path, status)),
                };
                return Err(RemoteError::new(kind, path, cause));
            }
        };
        let page = parse_listing(&value).map_err(|cause| format_error(&path, cause))?;
        if page.is_asset() {
            return Err(format_error(&path, "an asset, not a folder"));
        }
        if !page.is_folder() {
            return Err(format_error(
                &path,
                "not an AEM Assets folder (no assets/folder class in the answer)",
            ));
        }
        Ok(())
    }

    async fn list_folder(&self, folder: &str) -> RemoteResult<FolderListing> {
        self.list_all(folder).await
    }

    async fn folder_attrs(&self, folder: &str, assets: &[String]) -> RemoteResult<Vec<AssetAttrs>> {
        match self.bulk_folder_attrs(folder).await? {
            Some(attrs) => Ok(attrs),
            None => self.attrs_one_by_one(folder, assets).await,
        }
    }

    async fn bulk_folder_attrs(&self, folder: &str) -> RemoteResult<Option<Vec<AssetAttrs>>> {
        if self.query_refused.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match self.attrs_by_query(folder).await? {
            Ok(attrs) => Ok(Some(attrs)),
            Err(status) => {
                if !self.query_refused.swap(true, Ordering::Relaxed) {
                    log::info!(
                        "QueryBuilder refused (HTTP {status}): reading attributes one asset at a time from now on"
                    );
                }
                Ok(None)
            }
        }
    }

    async fn asset_metadata(&self, asset: &str) -> RemoteResult<AssetMetadata> {
        let url = self.endpoints.asset_node(asset, "/jcr:content/metadata.json")?;
        let path = label(&url);
        let first = match self.http.get_json_answer(url).await? {
            Answer::Json(Value::Object(raw)) => {
                check_metadata(&raw).map_err(|cause| format_error(&path, cause))?;
                return Ok(parse_metadata(raw));
            }
            Answer::Json(_) => return Err(format_error(&path, "expected a JSON object")),
            Answer::Status(status) if [400, 403, 404].contains(&status.as_u16()) => {
                status_error(&path, status)
            }
            Answer::Status(status) => return Err(status_error(&path, status)),
        };
        // A dispatcher may block Sling selectors under /content: the Assets API view carries
        // the same node under properties.metadata.
        let api = self.endpoints.api_asset(asset)?;
        let api_path = label(&api);
        match self.http.get_json_answer(api).await? {
            Answer::Json(value) => match value.get("properties").and_then(|p| p.get("metadata")) {
                Some(Value::Object(raw)) => {
                    check_metadata(raw).map_err(|cause| format_error(&api_path, cause))?;
                    Ok(parse_metadata(raw.clone()))
                }
                _ => Err(format_error(&api_path, "no properties.metadata object")),
            },
            Answer::Status(StatusCode::NOT_FOUND) => Err(status_error(&api_path, StatusCode::NOT_FOUND)),
            Answer::Status(_) => Err(first),
        }
    }

    async fn renditions(&self, asset: &str) -> RemoteResult<Vec<RenditionInfo>> {
        let url = self.endpoints.asset_node(asset, "/jcr:content/renditions.2.json")?;
        let path = label(&url);
        let listed = match self.http.get_json_answer(url).await? {
            Answer::Json(value) => parse_renditions(&value).map_err(|cause| format_error(&path, cause))?,
            Answer::Status(status) if [300, 400, 403, 404].contains(&status.as_u16()) => {
                let listed = self.api_renditions(asset).await?;
                if !listed.iter().any(|r| r.name == "original") {
                    let api = label(&self.endpoints.api_renditions(asset)?);
                    return Err(format_error(&api, "no \"original\" rendition: not a rendition list"));
                }
                listed
            }
            Answer::Status(status) => return Err(status_error(&path, status)),
        };
        let mut seen = HashSet::new();
        let mut out: Vec<RenditionInfo> =
            listed.into_iter().filter(|r| seen.insert(r.name.clone())).collect();
        let at = out
            .iter()
            .position(|r| r.name == "original")
            .ok_or_else(|| format_error(&path, "no \"original\" rendition: not a rendition list"))?;
        out[..=at].rotate_right(1);
        Ok(out)
    }

    async fn tag(&self, id: &str) -> RemoteResult<TagInfo> {
        let first = TagRef::parse(id)
            .ok_or_else(|| RemoteError::new(RemoteErrorKind::NotFound, id, "not a tag ID"))?;
        let node = self.tag_node(&first).await?;
        let mut current = first.clone();
        let mut title = node.title;
        let mut moved_to = node.moved_to;
        let mut visited = HashSet::from([first.id()]);
        for _ in 0..MAX_MOVES {
            let Some(target) = moved_to.take() else { break };
            let Some(next) = TagRef::parse(&target) else {
                log::warn!("tag {id}: cq:movedTo '{target}' is not a tag; using the tag as it is");
                break;
            };
            if !visited.insert(next.id()) {
                log::warn!("tag {id}: cq:movedTo loops back to {target}; stopped there");
                break;
            }
            match self.tag_node(&next).await {
                Ok(node) => {
                    current = next;
                    title = node.title;
                    moved_to = node.moved_to;
                }
                Err(e) if e.kind == RemoteErrorKind::NotFound => {
                    log::warn!("tag {id}: moved to {target}, which does not exist; using the tag as it is");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if moved_to.is_some() {
            log::warn!("tag {id}: more than {MAX_MOVES} cq:movedTo hops; stopped at {}", current.id());
        }
        let title = title.unwrap_or_else(|| current.last_segment().to_string());
        let resolved_id = if current == first { id.to_string() } else { current.id() };
        Ok(TagInfo { id: id.to_string(), resolved_id, title })
    }

    async fn fetch(&self, asset: &str, rendition: &str, range: Option<Range<u64>>) -> RemoteResult<Download> {
        let url = self.endpoints.rendition(asset, rendition)?;
        let path = label(&url);
        let header = match &range {
            Some(r) if r.start >= r.end => return Ok(empty_download(r.start, None)),
            Some(r) => Some(format!("bytes={}-{}", r.start, r.end - 1)),
            None => None,
        };
        let response = self.http.get(url, header.as_deref()).await?;
        let status = response.status();
        let content_range =
            response.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (offset, total_size) = match status {
            StatusCode::OK => (0, response.content_length().filter(|n| *n <= super::siren::MAX_COUNT)),
            StatusCode::PARTIAL_CONTENT => match content_range.as_deref().and_then(parse_content_range) {
                Some(ContentRange { span: Some((first, _)), size }) if first <= super::siren::MAX_COUNT => {
                    (first, size.filter(|n| *n <= super::siren::MAX_COUNT))
                }
                _ => return Err(format_error(&path, "HTTP 206 without a usable Content-Range")),
            },
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let size = content_range.as_deref().and_then(parse_content_range).and_then(|r| r.size);
                let asked = header.unwrap_or_default();
                return match (range, size) {
                    (Some(r), Some(size)) if r.start == size => Ok(empty_download(size, Some(size))),
                    (_, Some(size)) => Err(RemoteError::new(
                        RemoteErrorKind::NotFound,
                        path,
                        format!("{asked} is past the end ({size} bytes)"),
                    )),
                    (_, None) => Err(RemoteError::new(
                        RemoteErrorKind::NotFound,
                        path,
                        format!("{asked} not satisfiable"),
                    )),
                };
            }
            status if status.is_success() => {
                return Err(format_error(&path, format!("unexpected HTTP {status}")));
            }
            status => return Err(status_error(&path, status)),
        };
        let body = response.bytes_stream().map(move |chunk| chunk.map_err(|e| transport_error(&path, &e)));
        Ok(Download { offset, total_size, body: Box::pin(body) })
    }

    fn auth_status(&self) -> super::auth::AuthStatus {
        self.http.auth_status()
    }

    async fn search(&self, root: &str, words: &str, limit: usize) -> RemoteResult<Vec<String>> {
        if limit == 0 || words.trim().is_empty() {
            return Ok(Vec::new());
        }
        let url = self.endpoints.querybuilder(&search_params(root, words, limit));
        let path = label(&url);
        let value = self.http.get_json(url).await?;
        let page = parse_hits(&value).map_err(|cause| format_error(&path, cause))?;
        let prefix = format!("{root}/");
        let mut found: Vec<String> = paths_from_hits(page.hits)
            .into_iter()
            .filter(|p| root.is_empty() || p.starts_with(&prefix))
            .collect();
        found.truncate(limit);
        Ok(found)
    }
}
