//! The assets a test puts into the fake: original bytes, renditions, metadata fields, and how
//! they are served as a Sling metadata node.

use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::remote::AssetMetadata;

/// An asset of the fake: its original bytes, other renditions and metadata. The metadata is
/// served as set (so a test can announce a wrong `size` or `sha1`), rendered as a Sling
/// metadata node and read back by the real parser.
#[derive(Debug, Clone, Default)]
pub struct FakeAsset {
    /// The original rendition.
    pub bytes: Bytes,
    /// Other renditions, in listing order.
    pub renditions: Vec<(String, Bytes)>,
    /// The metadata node: its fields, and in `raw` further properties served as they are.
    /// [`FakeAsset::new`] sets the true `size` and `sha1`.
    pub meta: AssetMetadata,
    /// `jcr:content/jcr:lastModified`.
    pub modified: Option<SystemTime>,
}

impl FakeAsset {
    /// An asset with `bytes` as its original, its true `dam:size` and `dam:sha1`, and nothing
    /// else.
    pub fn new(bytes: impl Into<Bytes>) -> FakeAsset {
        use sha1::{Digest, Sha1};
        let bytes = bytes.into();
        let sha1 = crate::digest::hex(&Sha1::digest(&bytes));
        let meta =
            AssetMetadata { size: Some(bytes.len() as u64), sha1: Some(sha1), ..AssetMetadata::default() };
        FakeAsset { meta, ..FakeAsset::default() }.with_bytes(bytes)
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
        self.meta.title = Some(title.to_string());
        self
    }

    /// Sets `dc:format`.
    pub fn with_format(mut self, format: &str) -> FakeAsset {
        self.meta.format = Some(format.to_string());
        self
    }

    /// Sets `cq:tags`.
    pub fn with_tags(mut self, tags: &[&str]) -> FakeAsset {
        self.meta.tags = tags.iter().map(|t| t.to_string()).collect();
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
        let m = &self.meta;
        put("dc:title", m.title.clone().map(Value::from));
        put("dc:description", m.description.clone().map(Value::from));
        put("dc:format", m.format.clone().map(Value::from));
        put("dam:size", m.size.map(Value::from));
        put("dam:sha1", m.sha1.clone().map(Value::from));
        put("tiff:ImageWidth", m.width.map(Value::from));
        put("tiff:ImageLength", m.height.map(Value::from));
        put("cq:tags", (!m.tags.is_empty()).then(|| Value::from(m.tags.clone())));
        raw.extend(m.raw.clone());
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
