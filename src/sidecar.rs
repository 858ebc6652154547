//! The sidecar file of a sample DAM folder: titles, descriptions and tags that a plain folder
//! of images cannot carry itself.
//!
//! `damfs sample` writes it and `damfs serve` reads it. It lives at [`SIDECAR_NAME`] in the
//! served folder; names beginning with `.` are never served as assets, so it never shows up in
//! a listing. Every key is a path relative to the served folder, with `/` separators, UTF-8,
//! not percent-encoded. Unknown fields are ignored so the file can grow.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// File name of the sidecar inside the served folder.
pub const SIDECAR_NAME: &str = ".damfs-sidecar.json";

/// Everything the sidecar says about a sample DAM.
///
/// Maps are `BTreeMap`s so that the same content always serializes to the same bytes.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sidecar {
    /// Tag namespaces by name (`we-retail`), for `/content/cq:tags/<ns>.json`.
    pub namespaces: BTreeMap<String, TagInfo>,
    /// Tags by full ID (`we-retail:activity/hiking`). Every ancestor of a listed tag
    /// (`we-retail:activity`) is listed too.
    pub tags: BTreeMap<String, TagInfo>,
    /// Folders by relative path (`we-retail/en`).
    pub folders: BTreeMap<String, FolderInfo>,
    /// Assets by relative path (`we-retail/en/activities/hiking.jpg`).
    pub assets: BTreeMap<String, AssetInfo>,
}

/// A tag or tag namespace.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TagInfo {
    /// `jcr:title`.
    pub title: String,
    /// Translated titles by locale (`de`, `fr`), served as `jcr:title.<locale>`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub titles: BTreeMap<String, String>,
    /// The tag was moved: its node carries `cq:movedTo` with this tag's path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
}

/// A folder's properties.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FolderInfo {
    /// `dc:title` / `jcr:title` of the folder.
    pub title: String,
}

/// An asset's descriptive metadata.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AssetInfo {
    /// `dc:title`; absent when nobody set one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `dc:description`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `dc:creator`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// `cq:tags`: tag IDs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Sidecar {
    /// Reads the sidecar of `dir`; a folder without one has an empty sidecar.
    pub fn load(dir: &Path) -> anyhow::Result<Sidecar> {
        let path = dir.join(SIDECAR_NAME);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Sidecar::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        serde_json::from_slice(&text).with_context(|| format!("{} is not a valid sidecar", path.display()))
    }

    /// Writes the sidecar into `dir` (pretty-printed, deterministic bytes).
    pub fn store(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(SIDECAR_NAME);
        let mut text = serde_json::to_vec_pretty(self).context("cannot encode the sidecar")?;
        text.push(b'\n');
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}
