//! The assets a test puts into the fake: original bytes, renditions, metadata fields, and how
//! they are served as a Sling metadata node.

use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{Map, Value};

/// An asset of the fake: its original bytes, other renditions and metadata. The metadata
/// fields are served as set (so a test can announce a wrong `size` or `sha1`).
#[derive(Debug, Clone, Default)]
pub struct FakeAsset {
    /// The original rendition.
    pub bytes: Bytes,
    /// Other renditions, in listing order.
    pub renditions: Vec<(String, Bytes)>,
    /// `dc:title`.
    pub title: Option<String>,
    /// `dc:description`.
    pub description: Option<String>,
    /// `dc:format`.
    pub format: Option<String>,
    /// `dam:size` as announced ([`FakeAsset::new`] sets the real length).
    pub size: Option<u64>,
    /// `dam:sha1` ([`FakeAsset::new`] sets the real digest).
    pub sha1: Option<String>,
    /// `tiff:ImageWidth`.
    pub width: Option<u64>,
    /// `tiff:ImageLength`.
    pub height: Option<u64>,
    /// `jcr:content/jcr:lastModified`.
    pub modified: Option<SystemTime>,
    /// `cq:tags`.
    pub tags: Vec<String>,
    /// Further metadata properties, served as they are.
    pub extra: Map<String, Value>,
}

impl FakeAsset {
    /// An asset with `bytes` as its original, its true `dam:size` and `dam:sha1`, and nothing
    /// else.
    pub fn new(bytes: impl Into<Bytes>) -> FakeAsset {
        use sha1::{Digest, Sha1};
        let bytes = bytes.into();
        let sha1 = Sha1::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        FakeAsset { size: Some(bytes.len() as u64), sha1: Some(sha1), ..FakeAsset::default() }
            .with_bytes(bytes)
    }

    fn with_bytes(mut self, bytes: Bytes) -> FakeAsset {
        self.bytes = bytes;
        self
    }

    /// Adds a rendition.
    pub fn with_rendition(mut self, name: &str, bytes: impl Into<Bytes>) -> FakeAsset {
        self.renditions.push((name.to_string(), bytes.into()));
        self
    }

    /// Sets `dc:title`.
    pub fn with_title(mut self, title: &str) -> FakeAsset {
        self.title = Some(title.to_string());
        self
    }

    /// Sets `dc:format`.
    pub fn with_format(mut self, format: &str) -> FakeAsset {
        self.format = Some(format.to_string());
        self
    }

    /// Sets `cq:tags`.
    pub fn with_tags(mut self, tags: &[&str]) -> FakeAsset {
        self.tags = tags.iter().map(|t| t.to_string()).collect();
        self
    }

    /// Sets `jcr:lastModified`.
    pub fn with_modified(mut self, modified: SystemTime) -> FakeAsset {
        self.modified = Some(modified);
        self
    }

    pub(super) fn metadata_node(&self) -> Map<String, Value> {
        let mut raw = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                raw.insert(key.to_string(), value);
            }
        };
        put("dc:title", self.title.clone().map(Value::from));
        put("dc:description", self.description.clone().map(Value::from));
        put("dc:format", self.format.clone().map(Value::from));
        put("dam:size", self.size.map(Value::from));
        put("dam:sha1", self.sha1.clone().map(Value::from));
        put("tiff:ImageWidth", self.width.map(Value::from));
        put("tiff:ImageLength", self.height.map(Value::from));
        put("cq:tags", (!self.tags.is_empty()).then(|| Value::from(self.tags.clone())));
        raw.extend(self.extra.clone());
        raw
    }

    pub(super) fn rendition_bytes(&self, name: &str) -> Option<Bytes> {
        if name == "original" {
            return Some(self.bytes.clone());
        }
        self.renditions.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone())
    }
}

/// A MIME type guessed from a file name's extension, for rendition listings.
pub(super) fn guess_mime(name: &str) -> Option<String> {
    let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
    let mime = match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "xml" => "application/xml",
        "json" => "application/json",
        _ => return None,
    };
    Some(mime.to_string())
}
