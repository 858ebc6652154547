//! An in-memory [`Remote`] for tests of the layers above, without HTTP: a tree of folders and
//! assets built by the test, served faithfully (listing order as inserted, attributes,
//! metadata, renditions with `original`, ranges, tags with moves, 404 for unknowns), plus the
//! controls a test needs: call counters, injected failures, a stall switch that holds every
//! call (and every body chunk) until released, and slow or cut-short bodies.
//!
//! All state sits behind one `parking_lot` mutex, never held across an `.await`; the stall
//! switch is a tokio `watch` channel.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use parking_lot::Mutex;
use tokio::sync::watch;

mod asset;
mod body;
mod controls;

pub use asset::FakeAsset;
pub use controls::{CallCounts, Method};

use asset::guess_mime;
use body::Body;

use super::sling::parse_metadata;
use super::tags::{MAX_MOVES, TagRef};
use super::{
    AssetAttrs, AssetMetadata, ChildEntry, Download, EntryKind, FolderListing, Remote, RemoteError,
    RemoteErrorKind, RemoteResult, RenditionInfo, TagInfo,
};
use crate::names::join;

enum Node {
    /// Child names in insertion order.
    Folder(Vec<String>),
    Asset(Box<FakeAsset>),
}

struct FakeTag {
    title: Option<String>,
    moved_to: Option<String>,
}

/// Everything behind the fake's lock.
struct State {
    /// DAM path → node; the root `""` is always a folder.
    nodes: HashMap<String, Node>,
    /// Canonical tag ID → tag.
    tags: HashMap<String, FakeTag>,
    counts: CallCounts,
    fetches: HashMap<(String, String), u64>,
    /// One-shot failures, in the order queued; `None` matches any method.
    fail_next: Vec<(Option<Method>, RemoteErrorKind)>,
    /// Permanent failures; `None` matches any method.
    fail_always: HashMap<Option<Method>, RemoteErrorKind>,
    chunk_size: usize,
    chunk_delay: Duration,
    body_fails_after: Option<u64>,
    /// Whether a range asked for is answered with the whole body, as a server without
    /// range support does.
    ignore_ranges: bool,
}

impl State {
    fn take_failure(&mut self, method: Method) -> Option<RemoteErrorKind> {
        if let Some(at) = self.fail_next.iter().position(|(m, _)| m.is_none_or(|m| m == method)) {
            return Some(self.fail_next.remove(at).1);
        }
        self.fail_always.get(&Some(method)).or_else(|| self.fail_always.get(&None)).copied()
    }

    fn asset(&self, path: &str) -> RemoteResult<&FakeAsset> {
        match self.nodes.get(path) {
            Some(Node::Asset(asset)) => Ok(asset),
            Some(Node::Folder(_)) => {
                Err(RemoteError::new(RemoteErrorKind::Other, path, "a folder, not an asset"))
            }
            None => Err(not_found(path)),
        }
    }

    fn folder(&self, path: &str) -> RemoteResult<&[String]> {
        match self.nodes.get(path) {
            Some(Node::Folder(children)) => Ok(children),
            Some(Node::Asset(_)) => {
                Err(RemoteError::new(RemoteErrorKind::Other, path, "an asset, not a folder"))
            }
            None => Err(not_found(path)),
        }
    }

    /// Assets under `root`, depth first in listing order.
    fn assets_under(&self, root: &str, out: &mut Vec<String>) {
        if let Some(Node::Folder(children)) = self.nodes.get(root) {
            for name in children {
                let path = join(root, name);
                match self.nodes.get(&path) {
                    Some(Node::Asset(_)) => out.push(path),
                    Some(Node::Folder(_)) => self.assets_under(&path, out),
                    None => {}
                }
            }
        }
    }
}

fn not_found(path: &str) -> RemoteError {
    RemoteError::new(RemoteErrorKind::NotFound, path, "HTTP 404 Not Found")
}

fn parent_and_name(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Counts calls waiting on the stall switch; decrements on drop, so a cancelled call leaves.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The in-memory remote. Build the tree with [`FakeRemote::add_folder`] and
/// [`FakeRemote::add_asset`]; share it behind an `Arc`.
pub struct FakeRemote {
    state: Mutex<State>,
    stall: watch::Sender<bool>,
    stalled: AtomicUsize,
}

impl Default for FakeRemote {
    fn default() -> Self {
        FakeRemote::new()
    }
}

impl FakeRemote {
    /// An empty DAM: just the root folder.
    pub fn new() -> FakeRemote {
        let nodes = HashMap::from([(String::new(), Node::Folder(Vec::new()))]);
        FakeRemote {
            state: Mutex::new(State {
                nodes,
                tags: HashMap::new(),
                counts: CallCounts::default(),
                fetches: HashMap::new(),
                fail_next: Vec::new(),
                fail_always: HashMap::new(),
                chunk_size: 64 << 10,
                chunk_delay: Duration::ZERO,
                body_fails_after: None,
                ignore_ranges: false,
            }),
            stall: watch::channel(false).0,
            stalled: AtomicUsize::new(0),
        }
    }

    /// Adds a folder and any missing parents (`mkdir -p`).
    ///
    /// # Panics
    /// When a component of `path` is an asset, or `path` is not a valid DAM path.
    pub fn add_folder(&self, path: &str) {
        let mut state = self.state.lock();
        Self::insert(&mut state, path, Node::Folder(Vec::new()));
    }

    /// Adds an asset (its parent folders too), or replaces one in place.
    ///
    /// # Panics
    /// When `path` or one of its parents is a folder where an asset is needed or the reverse.
    pub fn add_asset(&self, path: &str, asset: FakeAsset) {
        let mut state = self.state.lock();
        Self::insert(&mut state, path, Node::Asset(Box::new(asset)));
    }

    fn insert(state: &mut State, path: &str, node: Node) {
        assert!(
            !path.is_empty() && path.split('/').all(|s| !s.is_empty() && s != "." && s != ".."),
            "fake remote: '{path}' is not a DAM path"
        );
        let (parent, name) = parent_and_name(path);
        if !parent.is_empty() && !state.nodes.contains_key(parent) {
            Self::insert(state, parent, Node::Folder(Vec::new()));
        }
        match (state.nodes.get(path), &node) {
            (Some(Node::Folder(_)), Node::Folder(_)) => return,
            (Some(Node::Asset(_)), Node::Asset(_)) => {
                state.nodes.insert(path.to_string(), node);
                return;
            }
            (Some(_), _) => panic!("fake remote: '{path}' exists with another kind"),
            (None, _) => {}
        }
        match state.nodes.get_mut(parent) {
            Some(Node::Folder(children)) => children.push(name.to_string()),
            _ => panic!("fake remote: the parent of '{path}' is an asset"),
        }
        state.nodes.insert(path.to_string(), node);
    }

    /// Removes a folder (with everything under it) or an asset, as a remote deletion would.
    pub fn remove(&self, path: &str) {
        let mut state = self.state.lock();
        if path.is_empty() || state.nodes.remove(path).is_none() {
            return;
        }
        let prefix = format!("{path}/");
        state.nodes.retain(|p, _| !p.starts_with(&prefix));
        let (parent, name) = parent_and_name(path);
        if let Some(Node::Folder(children)) = state.nodes.get_mut(parent) {
            children.retain(|c| c != name);
        }
    }

    /// Adds a tag: its ID in any accepted form, its `jcr:title` (empty for none), and the tag
    /// it was moved to, if any.
    ///
    /// # Panics
    /// When `id` is not a tag ID.
    pub fn add_tag(&self, id: &str, title: &str, moved_to: Option<&str>) {
        let tag = TagRef::parse(id).unwrap_or_else(|| panic!("fake remote: '{id}' is not a tag ID"));
        let entry = FakeTag {
            title: (!title.is_empty()).then(|| title.to_string()),
            moved_to: moved_to.map(str::to_string),
        };
        self.state.lock().tags.insert(tag.id(), entry);
    }

    /// Calls received by one method.
    pub fn calls(&self, method: Method) -> u64 {
        self.state.lock().counts.get(method)
    }

    /// Calls received by every method.
    pub fn counts(&self) -> CallCounts {
        self.state.lock().counts
    }

    /// [`Remote::fetch`] calls for one rendition of one asset.
    pub fn fetch_count(&self, asset: &str, rendition: &str) -> u64 {
        self.state.lock().fetches.get(&(asset.to_string(), rendition.to_string())).copied().unwrap_or(0)
    }

    /// Sets every counter back to zero.
    pub fn reset_counts(&self) {
        let mut state = self.state.lock();
        state.counts = CallCounts::default();
        state.fetches.clear();
    }

    /// The next call of `method` fails with `kind` (queued: one failure per call).
    pub fn fail_next(&self, method: Method, kind: RemoteErrorKind) {
        self.state.lock().fail_next.push((Some(method), kind));
    }

    /// The next call of any method fails with `kind`.
    pub fn fail_next_any(&self, kind: RemoteErrorKind) {
        self.state.lock().fail_next.push((None, kind));
    }

    /// Every call of `method` fails with `kind` until [`FakeRemote::clear_failures`].
    pub fn fail_always(&self, method: Method, kind: RemoteErrorKind) {
        self.state.lock().fail_always.insert(Some(method), kind);
    }

    /// Every call fails with `kind` until [`FakeRemote::clear_failures`].
    pub fn fail_always_any(&self, kind: RemoteErrorKind) {
        self.state.lock().fail_always.insert(None, kind);
    }

    /// Drops every queued and permanent failure.
    pub fn clear_failures(&self) {
        let mut state = self.state.lock();
        state.fail_next.clear();
        state.fail_always.clear();
    }

    /// While set, every call (after being counted) and every body chunk waits until cleared.
    pub fn set_stall(&self, stall: bool) {
        self.stall.send_replace(stall);
    }

    /// How many calls and body streams are waiting on the stall switch right now.
    pub fn stalled(&self) -> usize {
        self.stalled.load(Ordering::SeqCst)
    }

    /// Size of the chunks fetch bodies are cut into (64 KiB by default).
    pub fn set_chunk_size(&self, size: usize) {
        self.state.lock().chunk_size = size.max(1);
    }

    /// A delay before each chunk of a fetch body (none by default).
    pub fn set_chunk_delay(&self, delay: Duration) {
        self.state.lock().chunk_delay = delay;
    }

    /// Fetch bodies end with an error (Other, as a connection reset) once `after` bytes of
    /// the answer have been sent; `None` restores whole bodies.
    pub fn set_body_failure(&self, after: Option<u64>) {
        self.state.lock().body_fails_after = after;
    }

    /// Answers every range asked for with the whole body (`true`), as a server that does
    /// not support ranges; `false` (the default) honours ranges.
    pub fn set_ignore_ranges(&self, ignore: bool) {
        self.state.lock().ignore_ranges = ignore;
    }

    /// Counts the call, waits out a stall, then applies an injected failure.
    async fn enter(&self, method: Method, path: &str) -> RemoteResult<()> {
        *self.state.lock().counts.slot(method) += 1;
        self.wait_unstalled().await;
        match self.state.lock().take_failure(method) {
            Some(kind) => Err(RemoteError::new(kind, path, "injected failure")),
            None => Ok(()),
        }
    }

    async fn wait_unstalled(&self) {
        let mut receiver = self.stall.subscribe();
        if !*receiver.borrow_and_update() {
            return;
        }
        self.stalled.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.stalled);
        // The sender lives as long as `self`, so this cannot fail while we borrow it.
        let _ = receiver.wait_for(|stalled| !*stalled).await;
    }

    fn body(&self, data: Bytes, path: &str) -> super::ByteStream {
        let state = self.state.lock();
        let body = Body {
            data,
            pos: 0,
            chunk_size: state.chunk_size,
            delay: state.chunk_delay,
            fails_after: state.body_fails_after,
            stall: self.stall.subscribe(),
            path: path.to_string(),
        };
        Box::pin(stream::unfold(body, Body::next))
    }
}

impl Remote for FakeRemote {
    async fn check(&self, root: &str) -> RemoteResult<()> {
        self.enter(Method::Check, root).await?;
        self.state.lock().folder(root).map(|_| ())
    }

    async fn list_folder(&self, folder: &str) -> RemoteResult<FolderListing> {
        self.enter(Method::ListFolder, folder).await?;
        let state = self.state.lock();
        let children = state
            .folder(folder)?
            .iter()
            .map(|name| {
                let kind = match state.nodes.get(&join(folder, name)) {
                    Some(Node::Folder(_)) => EntryKind::Folder,
                    _ => EntryKind::Asset,
                };
                ChildEntry { name: name.clone(), kind }
            })
            .collect();
        Ok(FolderListing { children })
    }

    async fn folder_attrs(&self, folder: &str, _assets: &[String]) -> RemoteResult<Vec<AssetAttrs>> {
        self.enter(Method::FolderAttrs, folder).await?;
        let state = self.state.lock();
        // Like QueryBuilder: an unknown folder simply has no hits.
        let Ok(children) = state.folder(folder) else { return Ok(Vec::new()) };
        Ok(children
            .iter()
            .map(|name| join(folder, name))
            .filter_map(|path| match state.nodes.get(&path) {
                Some(Node::Asset(a)) => Some(AssetAttrs {
                    path,
                    size: a.meta.size,
                    modified: a.modified,
                    format: a.meta.format.clone(),
                    sha1: a.meta.sha1.clone(),
                    state: None,
                }),
                _ => None,
            })
            .collect())
    }

    /// Like QueryBuilder, which the fake always allows: the same answer as `folder_attrs`,
    /// counted as one of its calls.
    async fn bulk_folder_attrs(&self, folder: &str) -> RemoteResult<Option<Vec<AssetAttrs>>> {
        self.folder_attrs(folder, &[]).await.map(Some)
    }

    async fn asset_metadata(&self, asset: &str) -> RemoteResult<AssetMetadata> {
        self.enter(Method::AssetMetadata, asset).await?;
        let raw = self.state.lock().asset(asset)?.metadata_node();
        Ok(parse_metadata(raw))
    }

    async fn renditions(&self, asset: &str) -> RemoteResult<Vec<RenditionInfo>> {
        self.enter(Method::Renditions, asset).await?;
        let state = self.state.lock();
        let a = state.asset(asset)?;
        let original = RenditionInfo {
            name: "original".into(),
            size: Some(a.bytes.len() as u64),
            mime: a.meta.format.clone().or_else(|| guess_mime(asset)),
        };
        let others = a.renditions.iter().filter(|(name, _)| name != "original").map(|(name, bytes)| {
            RenditionInfo { name: name.clone(), size: Some(bytes.len() as u64), mime: guess_mime(name) }
        });
        Ok(std::iter::once(original).chain(others).collect())
    }

    async fn tag(&self, id: &str) -> RemoteResult<TagInfo> {
        self.enter(Method::Tag, id).await?;
        let first = TagRef::parse(id)
            .ok_or_else(|| RemoteError::new(RemoteErrorKind::NotFound, id, "not a tag ID"))?;
        let state = self.state.lock();
        let mut current = first.clone();
        let mut tag = state.tags.get(&current.id()).ok_or_else(|| not_found(id))?;
        let mut visited = HashSet::from([current.id()]);
        for _ in 0..MAX_MOVES {
            let Some(next) = tag.moved_to.as_deref().and_then(TagRef::parse) else { break };
            let Some(next_tag) = state.tags.get(&next.id()) else { break };
            if !visited.insert(next.id()) {
                break;
            }
            (current, tag) = (next, next_tag);
        }
        let title = tag.title.clone().unwrap_or_else(|| current.last_segment().to_string());
        let resolved_id = if current == first { id.to_string() } else { current.id() };
        Ok(TagInfo { id: id.to_string(), resolved_id, title })
    }

    async fn fetch(&self, asset: &str, rendition: &str, range: Option<Range<u64>>) -> RemoteResult<Download> {
        let path = format!("{asset}/{rendition}");
        *self.state.lock().fetches.entry((asset.to_string(), rendition.to_string())).or_insert(0) += 1;
        self.enter(Method::Fetch, &path).await?;
        let data =
            self.state.lock().asset(asset)?.rendition_bytes(rendition).ok_or_else(|| not_found(&path))?;
        let total = data.len() as u64;
        let range = range.filter(|_| !self.state.lock().ignore_ranges);
        let (offset, data) = match range {
            None => (0, data),
            Some(r) if r.start > total => {
                let cause =
                    format!("bytes={}-{} is past the end ({total} bytes)", r.start, r.end.saturating_sub(1));
                return Err(RemoteError::new(RemoteErrorKind::NotFound, path, cause));
            }
            Some(r) => {
                let end = r.end.clamp(r.start, total);
                // Both bounds are at most `total`, the length of an in-memory buffer.
                (r.start, data.slice(r.start as usize..end as usize))
            }
        };
        Ok(Download { offset, total_size: Some(total), body: self.body(data, &path) })
    }

    async fn search(&self, root: &str, words: &str, limit: usize) -> RemoteResult<Vec<String>> {
        self.enter(Method::Search, root).await?;
        let words: Vec<String> = words.split_whitespace().map(str::to_lowercase).collect();
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let state = self.state.lock();
        let mut assets = Vec::new();
        state.assets_under(root, &mut assets);
        Ok(assets
            .into_iter()
            .filter(|path| {
                let title = match state.nodes.get(path) {
                    Some(Node::Asset(a)) => a.meta.title.clone().unwrap_or_default(),
                    _ => String::new(),
                };
                let text = format!("{} {}", parent_and_name(path).1, title).to_lowercase();
                words.iter().all(|w| text.contains(w.as_str()))
            })
            .take(limit)
            .collect())
    }
}

#[cfg(test)]
mod tests;
