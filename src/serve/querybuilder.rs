//! `/bin/querybuilder.json`: the QueryBuilder predicates damfs uses, evaluated by walking the
//! served folder. Supported: `path` (with `path.flat`), `type` (`dam:Asset`, or a folder
//! type), `fulltext` (every word, case-insensitive, matched against the words of the name,
//! title, description, tag IDs and tag titles; a trailing `*` matches a prefix), `tagid` (the
//! tag or any sub-tag; several must all match), `p.limit` (10 by default, -1 for all),
//! `p.offset`, `p.hits` (`simple`, `selective` with `p.properties`, `full` with `p.nodedepth`).
//! Other predicates are ignored, as are ordering predicates: hits come in repository order,
//! depth first. The node trees hits are cut from come from `sling`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use super::catalog::{Catalog, Child, Entry, Folder, Kind, entry_at, name_problem};
use super::reply::{HttpError, HttpResult, blocking};
use super::sling;
use crate::sidecar::Sidecar;

mod hits;
use hits::hit;

/// `p.limit` when the query names none, as on AEM.
const DEFAULT_LIMIT: u64 = 10;

/// How hits are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hits {
    Simple,
    Selective,
    Full,
}

/// A parsed query.
#[derive(Debug)]
struct Query {
    path: Option<String>,
    flat: bool,
    node_type: Option<String>,
    fulltext: Vec<Word>,
    tagids: Vec<String>,
    /// None: all.
    limit: Option<u64>,
    offset: u64,
    hits: Hits,
    properties: Vec<String>,
    node_depth: u32,
}

/// One full-text word: a word to equal, or a prefix (`hik*`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    text: String,
    prefix: bool,
}

/// The words of a text, lower-cased (split at everything that is not a letter or digit).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

fn parse_fulltext(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    for term in text.split_whitespace() {
        let prefix = term.ends_with('*');
        let parts: Vec<String> = words(term).collect();
        let count = parts.len();
        for (i, text) in parts.into_iter().enumerate() {
            out.push(Word { text, prefix: prefix && i + 1 == count });
        }
    }
    out
}

fn parse_bool(key: &str, value: &str) -> HttpResult<bool> {
    match value {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(HttpError::bad_request(format!("{key}: expected true or false, got {value:?}"))),
    }
}

impl Query {
    fn parse(params: &[(String, String)]) -> HttpResult<Query> {
        let mut query = Query {
            path: None,
            flat: false,
            node_type: None,
            fulltext: Vec::new(),
            tagids: Vec::new(),
            limit: Some(DEFAULT_LIMIT),
            offset: 0,
            hits: Hits::Simple,
            properties: Vec::new(),
            node_depth: 0,
        };
        for (key, value) in params {
            match key.as_str() {
                "path" => query.path = Some(value.clone()),
                "path.flat" => query.flat = parse_bool(key, value)?,
                "type" => query.node_type = Some(value.clone()),
                "fulltext" => query.fulltext.extend(parse_fulltext(value)),
                "tagid" => {
                    let id = sling::canonical_tag_id(value)
                        .ok_or_else(|| HttpError::bad_request(format!("tagid: {value:?} is not a tag ID")))?;
                    query.tagids.push(id);
                }
                "p.limit" => {
                    let limit: i64 = value
                        .trim()
                        .parse()
                        .map_err(|_| HttpError::bad_request(format!("p.limit: not a number: {value:?}")))?;
                    query.limit = u64::try_from(limit).ok();
                }
                "p.offset" => {
                    query.offset = value.trim().parse().map_err(|_| {
                        HttpError::bad_request(format!("p.offset: not a non-negative number: {value:?}"))
                    })?
                }
                "p.hits" => {
                    query.hits = match value.as_str() {
                        "simple" => Hits::Simple,
                        "selective" => Hits::Selective,
                        "full" => Hits::Full,
                        other => {
                            return Err(HttpError::bad_request(format!(
                                "p.hits: {other:?} is none of simple, selective, full"
                            )));
                        }
                    }
                }
                "p.properties" => query.properties.extend(value.split_whitespace().map(str::to_string)),
                "p.nodedepth" => {
                    query.node_depth = value.trim().parse().map_err(|_| {
                        HttpError::bad_request(format!("p.nodedepth: not a non-negative number: {value:?}"))
                    })?
                }
                other => log::debug!("querybuilder: ignoring predicate {other:?}"),
            }
        }
        Ok(query)
    }

    fn wants_assets(&self) -> bool {
        matches!(self.node_type.as_deref(), None | Some("dam:Asset"))
    }

    fn wants_folders(&self) -> bool {
        matches!(self.node_type.as_deref(), None | Some("sling:Folder" | "sling:OrderedFolder" | "nt:folder"))
    }
}

/// Where to search: the folder (as relative names) and whether only its children count.
enum Scope {
    Nothing,
    Folder { segments: Vec<String>, flat: bool },
}

fn scope(query: &Query) -> HttpResult<Scope> {
    let Some(path) = query.path.as_deref() else {
        return Ok(Scope::Folder { segments: Vec::new(), flat: query.flat });
    };
    let path = path.trim_end_matches('/');
    if path == "/content/dam" {
        return Ok(Scope::Folder { segments: Vec::new(), flat: query.flat });
    }
    if let Some(rest) = path.strip_prefix("/content/dam/") {
        let segments: Vec<String> = rest.split('/').map(str::to_string).collect();
        if let Some(problem) = segments.iter().find_map(|s| name_problem(s)) {
            return Err(HttpError::bad_request(format!("path: {problem}")));
        }
        return Ok(Scope::Folder { segments, flat: query.flat });
    }
    // An ancestor of /content/dam holds every asset below it, but none as a direct child.
    if (path.is_empty() || path == "/content") && !query.flat {
        return Ok(Scope::Folder { segments: Vec::new(), flat: false });
    }
    Ok(Scope::Nothing)
}

/// A folder or an asset a walk found. An asset is named by its folder's children and its
/// place among them, and stat'ed (for its size and time) only if its hit is on the page
/// asked for: a page of a large folder costs its own hits, not the whole folder's.
enum Found {
    Folder(Folder),
    Asset { folder: Arc<Folder>, children: Arc<[Child]>, at: usize },
}

impl Found {
    /// The asset's name.
    fn name(&self) -> &str {
        match self {
            Found::Folder(f) => &f.name,
            Found::Asset { children, at, .. } => &children[*at].name,
        }
    }

    fn rel(&self) -> String {
        match self {
            Found::Folder(f) => f.rel.clone(),
            Found::Asset { folder, .. } => crate::names::join(&folder.rel, self.name()),
        }
    }

    /// The entry, with its attributes read now (None if it vanished since the walk).
    fn entry(self) -> std::io::Result<Option<Entry>> {
        match self {
            Found::Folder(f) => Ok(Some(Entry::Folder(f))),
            Found::Asset { ref folder, .. } => {
                let name = self.name().to_string();
                entry_at(self.rel(), name.clone(), folder.dir.join(name))
            }
        }
    }
}

/// Folders and assets under `start` (its children only when `flat`), depth first in
/// repository order; a folder reached twice through symbolic links is walked once.
fn collect(catalog: &Catalog, start: &Folder, flat: bool) -> std::io::Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    walk(catalog, start, flat, &mut seen, &mut out)?;
    Ok(out)
}

fn walk(
    catalog: &Catalog,
    folder: &Folder,
    flat: bool,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<Found>,
) -> std::io::Result<()> {
    if let Ok(canonical) = folder.dir.canonicalize() {
        if !seen.insert(canonical) {
            return Ok(());
        }
    }
    let children = catalog.children(folder)?;
    let shared = Arc::new(folder.clone());
    for (at, child) in children.iter().enumerate() {
        match child.kind {
            Kind::Folder => {
                let Some(Entry::Folder(sub)) = catalog.child_entry(folder, child)? else { continue };
                out.push(Found::Folder(sub.clone()));
                if !flat {
                    walk(catalog, &sub, flat, seen, out)?;
                }
            }
            Kind::Asset => {
                out.push(Found::Asset { folder: Arc::clone(&shared), children: Arc::clone(&children), at })
            }
        }
    }
    Ok(())
}

/// Whether the tags of an asset satisfy every `tagid` of the query.
fn tags_match(sidecar: &Sidecar, rel: &str, tagids: &[String]) -> bool {
    if tagids.is_empty() {
        return true;
    }
    let carried: Vec<String> = sidecar
        .assets
        .get(rel)
        .map(|info| info.tags.iter().filter_map(|t| sling::canonical_tag_id(t)).collect())
        .unwrap_or_default();
    tagids.iter().all(|wanted| {
        carried.iter().any(|tag| {
            if wanted.ends_with(':') {
                tag.starts_with(wanted.as_str())
            } else {
                tag == wanted || tag.strip_prefix(wanted.as_str()).is_some_and(|rest| rest.starts_with('/'))
            }
        })
    })
}

/// The words an entry is found by.
fn haystack(sidecar: &Sidecar, catalog: &Catalog, found: &Found) -> HashSet<String> {
    let mut texts = Vec::new();
    match found {
        Found::Folder(folder) => {
            texts.push(folder.name.clone());
            texts.extend(catalog.folder_title(sidecar, folder));
        }
        Found::Asset { .. } => {
            texts.push(found.name().to_string());
            if let Some(info) = sidecar.assets.get(&found.rel()) {
                texts.extend(info.title.clone());
                texts.extend(info.description.clone());
                for tag in &info.tags {
                    texts.push(tag.clone());
                    texts.extend(sling::tag_titles(sidecar, tag));
                }
            }
        }
    }
    texts.iter().flat_map(|t| words(t)).collect()
}

fn fulltext_match(haystack: &HashSet<String>, wanted: &[Word]) -> bool {
    wanted.iter().all(|w| {
        if w.prefix { haystack.iter().any(|h| h.starts_with(&w.text)) } else { haystack.contains(&w.text) }
    })
}

fn dam_path(rel: &str) -> String {
    if rel.is_empty() { "/content/dam".into() } else { format!("/content/dam/{rel}") }
}

/// Runs a query.
pub(crate) async fn search(catalog: &Arc<Catalog>, params: &[(String, String)]) -> HttpResult<Value> {
    let query = Query::parse(params)?;
    let sidecar = catalog.sidecar();
    // The page of hits (stat'ed now), the count of all, and the page's bounds in it.
    let (page, total, start, end) = match scope(&query)? {
        Scope::Nothing => (Vec::new(), 0, 0, 0),
        Scope::Folder { segments, flat } => {
            let (catalog2, sidecar2) = (Arc::clone(catalog), Arc::clone(&sidecar));
            let (assets, folders) = (query.wants_assets(), query.wants_folders());
            let (fulltext, tagids) = (query.fulltext.clone(), query.tagids.clone());
            let (offset, limit) = (query.offset, query.limit);
            blocking("cannot search the folder", move || {
                let start = match catalog2.lookup(&segments)? {
                    Some(Entry::Folder(folder)) => folder,
                    _ => return Ok((Vec::new(), 0, 0, 0)),
                };
                let all = collect(&catalog2, &start, flat)?;
                let mut matches: Vec<Found> = all
                    .into_iter()
                    .filter(|found| match found {
                        Found::Asset { .. } => {
                            assets && (tagids.is_empty() || tags_match(&sidecar2, &found.rel(), &tagids))
                        }
                        Found::Folder(_) => folders && tagids.is_empty(),
                    })
                    .filter(|found| {
                        fulltext.is_empty()
                            || fulltext_match(&haystack(&sidecar2, &catalog2, found), &fulltext)
                    })
                    .collect();
                let total = matches.len() as u64;
                let start = offset.min(total);
                let end = limit.map_or(total, |limit| start.saturating_add(limit).min(total));
                let page = matches
                    .drain(usize::try_from(start).unwrap_or(0)..usize::try_from(end).unwrap_or(usize::MAX))
                    .map(Found::entry)
                    .filter_map(Result::transpose)
                    .collect::<std::io::Result<Vec<Entry>>>()?;
                Ok((page, total, start, end))
            })
            .await?
        }
    };
    let mut hits = Vec::with_capacity(page.len());
    for entry in &page {
        hits.push(hit(catalog, &sidecar, &query, entry).await?);
    }
    Ok(json!({
        "success": true,
        "results": hits.len(),
        "total": total,
        "more": end < total,
        "offset": start,
        "hits": hits,
    }))
}

#[cfg(test)]
mod tests;
