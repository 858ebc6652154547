//! The manifest of an asset: everything about it but its bytes — metadata, tags with their
//! titles, and the rendition list. Fetched on first need, stored in the cache as JSON.

use std::collections::HashMap;

use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::deadline::Budget;
use crate::error::{FsError, FsResult};
use crate::remote::{AssetMetadata, Remote, TagInfo};

/// A tag of an asset, with its title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRef {
    /// The tag ID (after following `cq:movedTo`).
    pub id: String,
    /// Its title.
    pub title: String,
}

/// One rendition as listed by the remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenditionEntry {
    /// Rendition name; `original` is the asset's own bytes.
    pub name: String,
    /// Length as listed, when listed.
    pub size: Option<u64>,
    /// MIME type as listed.
    pub mime: Option<String>,
}

/// Everything about an asset but its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// DAM path.
    pub path: String,
    /// The metadata node as the remote gave it (`dam:sha1` lower-cased).
    #[serde(flatten)]
    pub meta: AssetMetadata,
    /// Its tags, resolved (moves followed) and with titles.
    pub tags: Vec<TagRef>,
    /// Every rendition, `original` first.
    pub renditions: Vec<RenditionEntry>,
    /// Fetched while the remote was still making renditions: fetched again at a later open.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
}

impl Manifest {
    /// The length the remote listed for rendition `r`: its own, or for the original the
    /// asset's `dam:size`.
    pub fn listed_size(&self, r: &RenditionEntry) -> Option<u64> {
        r.size.or(if r.name == "original" { self.meta.size } else { None })
    }

    /// What makes a manifest unusable, if anything: no `original`, or a rendition name the
    /// kernel cannot be shown. (Fetched manifests never are; a stored one from an older
    /// damfs may be.)
    pub fn defect(&self) -> Option<String> {
        if !self.renditions.iter().any(|r| r.name == "original") {
            return Some("it lists no original".into());
        }
        self.renditions.iter().find_map(|r| {
            crate::names::invalid_name(&r.name).map(|why| format!("rendition {:?}: {why}", r.name))
        })
    }
}

/// Most tag look-ups in flight for one asset.
const TAG_CONCURRENCY: usize = 8;

/// Resolved tag titles, shared by all assets of a mount (tags are few, assets many).
#[derive(Debug, Default)]
pub struct TagTitles {
    known: Mutex<HashMap<String, TagInfo>>,
}

/// Fetches the manifest of `asset` from the remote, each request a step of `step`.
pub async fn fetch<R: Remote>(
    remote: &R,
    titles: &TagTitles,
    asset: &str,
    step: Budget,
) -> FsResult<Manifest> {
    let (metadata, renditions) = tokio::join!(
        step.run(|| format!("metadata of {asset}"), remote.asset_metadata(asset)),
        step.run(|| format!("renditions of {asset}"), remote.renditions(asset)),
    );
    let metadata = metadata?;
    let mut renditions: Vec<RenditionEntry> = renditions?
        .into_iter()
        .filter(|r| match crate::names::invalid_name(&r.name) {
            Some(why) => {
                log::warn!("{asset}: rendition {:?} left out: {why}", r.name);
                false
            }
            None => true,
        })
        .map(|r| RenditionEntry { name: r.name, size: r.size, mime: r.mime })
        .collect();
    if !renditions.iter().any(|r| r.name == "original") {
        // The remote promises one; a list without it is not to be stored.
        return Err(FsError::Remote(crate::remote::RemoteError::new(
            crate::remote::RemoteErrorKind::Other,
            asset,
            "the rendition list has no original",
        )));
    }
    renditions.sort_by(|a, b| (a.name != "original", &a.name).cmp(&(b.name != "original", &b.name)));
    renditions.dedup_by(|a, b| a.name == b.name);

    let tags = futures_util::stream::iter(metadata.tags.iter().cloned())
        .map(|id| async move { resolve_tag(remote, titles, &id, step).await })
        .buffered(TAG_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut tag_refs = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag?;
        if !tag_refs.iter().any(|t: &TagRef| t.id == tag.id) {
            tag_refs.push(tag);
        }
    }
    let mut meta = metadata;
    meta.sha1 = meta.sha1.map(|s| s.to_ascii_lowercase());
    Ok(Manifest { path: asset.to_string(), meta, tags: tag_refs, renditions, provisional: false })
}

/// A tag that the remote does not know (404) keeps its ID and takes its last segment as
/// title: an asset must not become unreadable because a tag was deleted.
async fn resolve_tag<R: Remote>(remote: &R, titles: &TagTitles, id: &str, step: Budget) -> FsResult<TagRef> {
    if let Some(known) = titles.known.lock().get(id) {
        return Ok(TagRef { id: known.resolved_id.clone(), title: known.title.clone() });
    }
    match step.run(|| format!("tag {id}"), remote.tag(id)).await {
        Ok(info) => {
            let tag = TagRef { id: info.resolved_id.clone(), title: info.title.clone() };
            titles.known.lock().insert(id.to_string(), info);
            Ok(tag)
        }
        Err(FsError::NotFound) => {
            log::warn!("tag {id}: not found on the remote; kept without a title");
            let title = id.rsplit(['/', ':']).next().unwrap_or(id).to_string();
            Ok(TagRef { id: id.to_string(), title })
        }
        Err(e) => Err(e),
    }
}
