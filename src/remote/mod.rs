//! The remote DAM as the rest of damfs sees it: one trait, [`Remote`], and the plain data it
//! answers with.
//!
//! Paths here are *DAM paths*: relative to `/content/dam`, without a leading or trailing
//! slash, segments joined by `/`, percent-decoded (`we-retail/en/Café au lait.jpg`). The empty
//! string is the DAM root. Implementations turn them into URLs; nothing above this module
//! builds a URL or sees HTTP.
//!
//! Two implementations: the AEM Assets HTTP client (`aem::AemClient`) and a fake for tests
//! (`fake::FakeRemote`) that counts calls and fails or stalls on command.

pub mod aem;
pub mod auth;
mod config;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
mod http;
pub mod ims;
mod paging;
mod querybuilder;
mod siren;
mod sling;
pub mod tags;
mod tls;
mod url;
pub mod wire;

pub use tls::check_tls;
pub use url::{asset_url, encode_segment};

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;

/// What kind of failure a remote call met. The mapping to errno lives above this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteErrorKind {
    /// 404 (or a 416 with nothing to serve).
    NotFound,
    /// 401 or 403.
    Denied,
    /// The request did not complete in time.
    Timeout,
    /// TLS refused on grounds of trust: the server's certificate is not trusted, or the server
    /// wants a client certificate. A configuration error, never an outage.
    Tls,
    /// Anything else: 5xx, reset, refused, malformed JSON, a short body.
    Other,
}

/// A failed remote call: what kind, on which remote path (never with credentials), and why.
#[derive(Debug, Clone)]
pub struct RemoteError {
    /// The class of failure.
    pub kind: RemoteErrorKind,
    /// The remote path or URL path that failed (no credentials, no query secrets).
    pub path: String,
    /// Human-readable cause, e.g. `HTTP 503 Service Unavailable` or `missing "entities"`.
    pub cause: String,
}

impl RemoteError {
    /// Builds an error of `kind` for `path`.
    pub fn new(kind: RemoteErrorKind, path: impl Into<String>, cause: impl Into<String>) -> Self {
        RemoteError { kind, path: path.into(), cause: cause.into() }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.cause)
    }
}

impl std::error::Error for RemoteError {}

/// Result of a remote call.
pub type RemoteResult<T> = Result<T, RemoteError>;

/// Kind of a child in a folder listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// `assets/folder`.
    Folder,
    /// `assets/asset` (content fragments included).
    Asset,
}

/// One child of a folder, as listed (nothing but a name and a kind is guaranteed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildEntry {
    /// The child's name, percent-decoded, exactly as the remote spells it (not yet checked
    /// for POSIX validity: that is the namespace's job).
    pub name: String,
    /// Folder or asset.
    pub kind: EntryKind,
}

/// A complete folder listing (all pages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderListing {
    /// The children in the remote's order.
    pub children: Vec<ChildEntry>,
}

/// Attributes of an asset that `ls -l` needs, without downloading it, and what tells one
/// version of it from the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetAttrs {
    /// DAM path of the asset.
    pub path: String,
    /// `dam:size`: a hint until the original is materialized.
    pub size: Option<u64>,
    /// `jcr:content/jcr:lastModified`.
    pub modified: Option<SystemTime>,
    /// `dc:format` (a MIME type).
    pub format: Option<String>,
    /// `dam:sha1` of the original, lower-case hex.
    pub sha1: Option<String>,
    /// `jcr:content/dam:assetState` (`processed` once every rendition exists).
    pub state: Option<String>,
}

/// The metadata node of one asset. Serializable because the cache keeps it inside the
/// asset's manifest.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AssetMetadata {
    /// `dc:title`.
    pub title: Option<String>,
    /// `dc:description`.
    pub description: Option<String>,
    /// `dc:format`.
    pub format: Option<String>,
    /// `dam:size`.
    pub size: Option<u64>,
    /// `dam:sha1`, lower-case hex.
    pub sha1: Option<String>,
    /// `tiff:ImageWidth`.
    pub width: Option<u64>,
    /// `tiff:ImageLength`.
    pub height: Option<u64>,
    /// `cq:tags`, as given (IDs or absolute tag paths).
    #[serde(rename = "tag_ids")]
    pub tags: Vec<String>,
    /// The whole metadata node as the remote returned it.
    #[serde(rename = "metadata")]
    pub raw: serde_json::Map<String, serde_json::Value>,
}

/// One rendition of an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionInfo {
    /// Its name (`original`, `cq5dam.web.1280.1280.jpeg`, …).
    pub name: String,
    /// Byte length when the listing gives it (`":jcr:data"`).
    pub size: Option<u64>,
    /// `jcr:mimeType` when given.
    pub mime: Option<String>,
}

/// A resolved tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    /// The tag ID as the asset carried it.
    pub id: String,
    /// The ID it resolves to after following `cq:movedTo` (equal to `id` when not moved).
    pub resolved_id: String,
    /// `jcr:title` (the last path segment of the ID when the tag has no title).
    pub title: String,
}

/// A stream of body chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = RemoteResult<Bytes>> + Send>>;

/// An answer to a binary fetch.
pub struct Download {
    /// Byte offset of the first chunk within the whole rendition (0 unless a range was
    /// asked for *and* honoured: a remote may answer a range request with the whole body).
    pub offset: u64,
    /// Length of the whole rendition when the remote said it (Content-Length of a 200,
    /// the `/size` of a Content-Range).
    pub total_size: Option<u64>,
    /// The body.
    pub body: ByteStream,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("offset", &self.offset)
            .field("total_size", &self.total_size)
            .finish()
    }
}

/// The remote DAM. Every method is one logical remote operation; implementations page,
/// retry nothing, and bound nothing in time: deadlines belong to the caller.
pub trait Remote: Send + Sync + 'static {
    /// Checks that the remote answers and accepts the credentials, and that `root` is a
    /// folder. Used once at mount time.
    fn check(&self, root: &str) -> impl Future<Output = RemoteResult<()>> + Send;

    /// Lists a folder completely (every page).
    fn list_folder(&self, folder: &str) -> impl Future<Output = RemoteResult<FolderListing>> + Send;

    /// Attributes of every asset directly in `folder`, in as few requests as possible
    /// (QueryBuilder), falling back to one request per asset in `assets` when bulk queries
    /// are refused. `assets` are the DAM paths of the folder's assets as listed (bare child
    /// names are accepted too). Assets the remote does not know are left out; the order of
    /// the answer is unspecified.
    fn folder_attrs(
        &self,
        folder: &str,
        assets: &[String],
    ) -> impl Future<Output = RemoteResult<Vec<AssetAttrs>>> + Send;

    /// Attributes of every asset directly in `folder` by a bulk query (QueryBuilder) that
    /// needs no names, so that they can be asked for while the folder is being listed.
    /// `None` when the remote refuses bulk queries: then [`Remote::folder_attrs`] with the
    /// listed assets. The default is a remote without bulk queries.
    fn bulk_folder_attrs(
        &self,
        folder: &str,
    ) -> impl Future<Output = RemoteResult<Option<Vec<AssetAttrs>>>> + Send {
        let _ = folder;
        std::future::ready(Ok(None))
    }

    /// The metadata node of an asset.
    fn asset_metadata(&self, asset: &str) -> impl Future<Output = RemoteResult<AssetMetadata>> + Send;

    /// Every rendition of an asset, `original` included.
    fn renditions(&self, asset: &str) -> impl Future<Output = RemoteResult<Vec<RenditionInfo>>> + Send;

    /// Resolves a tag ID (or absolute tag path) to its title.
    fn tag(&self, id: &str) -> impl Future<Output = RemoteResult<TagInfo>> + Send;

    /// Downloads a rendition (`original` for the asset's own bytes), optionally a byte range.
    fn fetch(
        &self,
        asset: &str,
        rendition: &str,
        range: Option<Range<u64>>,
    ) -> impl Future<Output = RemoteResult<Download>> + Send;

    /// Full-text search under `root`: DAM paths of matching assets, at most `limit`.
    fn search(
        &self,
        root: &str,
        words: &str,
        limit: usize,
    ) -> impl Future<Output = RemoteResult<Vec<String>>> + Send;

    /// How requests are authenticated, and when the token in use expires.
    fn auth_status(&self) -> auth::AuthStatus {
        auth::AuthStatus { kind: "none", expires: None }
    }
}
