//! Paging through a folder listing of the Assets API, and through the QueryBuilder hits of
//! a folder's attributes: the first page gives the total and the page length the server
//! honours, the others are asked a few at a time, each request bounded on its own; a server
//! that ignores `offset` or never ends is stopped and named.

use std::collections::HashSet;

use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::StatusCode;
use serde_json::Value;

use super::aem::{AemClient, QUERY_REFUSED};
use super::http::{Answer, format_error, status_error};
use super::querybuilder::{attrs_from_hits, attrs_params, parse_hits};
use super::siren::parse_listing;
use super::url::{jcr_path, label};
use super::{AssetAttrs, ChildEntry, FolderListing, RemoteResult};

/// Pages allowed beyond one per announced child before a listing is declared broken
/// (a server that ignores `offset` or never ends).
const EXTRA_PAGES: u64 = 10_000;

/// Children asked per listing page. Servers may clamp it lower; paging copes either way.
const PAGE_LIMIT: u64 = 1000;

/// Most children a folder listing may announce: far above real folders (AEM recommends at
/// most a few thousand per folder), low enough that a hostile `total` cannot make damfs
/// plan millions of requests.
const MAX_CHILDREN: u64 = 10_000_000;

/// Listing pages asked at once after the first (the first tells how many there are).
const PAGE_CONCURRENCY: usize = 8;

/// QueryBuilder pages allowed for one folder (`p.limit=-1` normally answers in one).
const MAX_QUERY_PAGES: u64 = 10_000;

/// QueryBuilder pages asked at once after the first, when its `total` says there are more.
/// Fewer than listing pages: each costs the server a query and a thousand hits.
const QUERY_CONCURRENCY: usize = 4;

/// One page of QueryBuilder hits of a folder's attributes, as read.
struct HitsRead {
    offset: u64,
    attrs: Vec<AssetAttrs>,
    hit_count: u64,
    more: bool,
    total: Option<u64>,
}

/// One page of a folder listing, as read.
struct Page {
    /// The URL path, for errors.
    path: String,
    offset: u64,
    total: Option<u64>,
    entity_count: usize,
    children: Vec<ChildEntry>,
    /// The raw entities, to tell a server that ignores `offset`.
    entities: Option<Value>,
}

/// The children of a folder gathered page by page, each name once.
#[derive(Default)]
struct Listed {
    children: Vec<ChildEntry>,
    names: HashSet<String>,
    /// The raw entities of the page added last.
    last: Option<Value>,
}

impl Listed {
    fn add(&mut self, mut page: Page) {
        self.last = page.entities.take();
        for child in page.children {
            if self.names.insert(child.name.clone()) {
                self.children.push(child);
            } else {
                log::debug!("{}: '{}' listed twice; kept once", page.path, child.name);
            }
        }
    }
}

impl AemClient {
    /// Every page of a folder listing: the first, then the others a few at a time.
    pub(super) async fn list_all(&self, folder: &str) -> RemoteResult<FolderListing> {
        let mut listed = Listed::default();
        let first = self.listing_page(folder, 0).await?;
        let page_len = first.entity_count as u64;
        let total = first.total;
        let first_entities = first.entities.clone();
        listed.add(first);
        if page_len == 0 || total.is_none_or(|t| t <= page_len) {
            return self.list_rest(folder, listed, page_len, total).await;
        }
        // The first page gave the total and the page length the server honours: ask for
        // the other pages at once, a few at a time. Each request is bounded on its own.
        let total = total.unwrap_or(0);
        if total > MAX_CHILDREN {
            return Err(format_error(
                &jcr_path(folder),
                format!("the folder claims {total} children, more than the {MAX_CHILDREN} damfs lists"),
            ));
        }
        let offsets = (1..).map(move |k: u64| k * page_len).take_while(move |o| *o < total);
        let mut pages =
            stream::iter(offsets).map(|offset| self.listing_page(folder, offset)).buffered(PAGE_CONCURRENCY);
        let mut next = page_len;
        // Pages are checked as they arrive: a broken server stops the paging (and the
        // requests in flight) at its first bad page.
        while let Some(page) = pages.try_next().await? {
            if page.entity_count > 0 && page.entities == first_entities {
                let at = page.offset;
                return Err(format_error(
                    &page.path,
                    format!("the same page came back for offset {at}: paging is broken"),
                ));
            }
            next = page.offset + page.entity_count as u64;
            let short = (page.entity_count as u64) < page_len;
            listed.add(page);
            if short {
                // A page shorter than the first: the rest comes one page after the other.
                break;
            }
        }
        drop(pages);
        self.list_rest(folder, listed, next, Some(total)).await
    }

    /// The attributes of every asset directly in `folder` from QueryBuilder, or the status
    /// by which it was refused. The first page tells how many hits there are (`total`, which
    /// `p.guessTotal` may make a guess that falls short): the pages up to it are asked a few
    /// at a time, and the rest, while `more` says so, one after the other.
    pub(super) async fn attrs_by_query(
        &self,
        folder: &str,
    ) -> RemoteResult<Result<Vec<AssetAttrs>, StatusCode>> {
        let mut out: Vec<AssetAttrs> = Vec::new();
        let mut seen = HashSet::new();
        let mut add = |attrs: Vec<AssetAttrs>| {
            out.extend(attrs.into_iter().filter(|a| seen.insert(a.path.clone())));
        };
        let first = match self.hits_page(folder, 0).await? {
            Ok(page) => page,
            Err(status) => return Ok(Err(status)),
        };
        let page_len = first.hit_count;
        let (mut more, total) = (first.more, first.total.unwrap_or(0).min(MAX_CHILDREN));
        let mut offset = page_len;
        add(first.attrs);
        if more && page_len > 0 && total > page_len {
            let offsets = (1..).map(move |k: u64| k * page_len).take_while(move |o| *o < total);
            let mut pages = stream::iter(offsets)
                .map(|offset| self.hits_page(folder, offset))
                .buffered(QUERY_CONCURRENCY);
            while let Some(page) = pages.try_next().await? {
                let page = page.map_err(|status| status_error(&jcr_path(folder), status))?;
                (offset, more) = (page.offset + page.hit_count, page.more);
                let short = page.hit_count < page_len;
                add(page.attrs);
                if !more || short {
                    break;
                }
            }
        }
        let mut pages = offset / page_len.max(1);
        while more && offset > 0 {
            pages += 1;
            if pages > MAX_QUERY_PAGES {
                return Err(format_error(
                    &jcr_path(folder),
                    format!("QueryBuilder announced more hits after {MAX_QUERY_PAGES} pages"),
                ));
            }
            let page = self.hits_page(folder, offset).await?;
            let page = page.map_err(|status| status_error(&jcr_path(folder), status))?;
            if page.hit_count == 0 {
                break;
            }
            (offset, more) = (offset + page.hit_count, page.more);
            add(page.attrs);
        }
        Ok(Ok(out))
    }

    /// One page of QueryBuilder hits of a folder's attributes, from hit `offset` on, or the
    /// status by which QueryBuilder was refused.
    async fn hits_page(&self, folder: &str, offset: u64) -> RemoteResult<Result<HitsRead, StatusCode>> {
        let url = self.endpoints.querybuilder(&attrs_params(folder, offset));
        let path = format!("{} (path={})", label(&url), jcr_path(folder));
        let value = match self.http.get_json_answer(url).await? {
            Answer::Json(value) => value,
            Answer::Status(status) if QUERY_REFUSED.contains(&status.as_u16()) => return Ok(Err(status)),
            Answer::Status(status) => return Err(status_error(&path, status)),
        };
        let page = parse_hits(&value).map_err(|cause| format_error(&path, cause))?;
        Ok(Ok(HitsRead {
            offset,
            attrs: attrs_from_hits(page.hits, folder),
            hit_count: page.hits.len() as u64,
            more: page.more && !page.hits.is_empty(),
            total: page.total,
        }))
    }

    /// One page of a folder listing at `offset`.
    async fn listing_page(&self, folder: &str, offset: u64) -> RemoteResult<Page> {
        let url = self.endpoints.folder_page(folder, offset, PAGE_LIMIT)?;
        let path = label(&url);
        let mut value = self.http.get_json(url).await?;
        let page = parse_listing(&value).map_err(|cause| format_error(&path, cause))?;
        if page.is_asset() {
            return Err(format_error(&path, "an asset, not a folder"));
        }
        if !page.is_folder() {
            // Not a listing at all: an empty one would hide the folder's children.
            return Err(format_error(&path, "not an AEM Assets folder (no assets/folder class)"));
        }
        let entities = value.get_mut("entities").map(Value::take);
        Ok(Page {
            path,
            offset,
            total: page.total,
            entity_count: page.entity_count,
            children: page.children,
            entities,
        })
    }
    /// Pages one after the other from `offset` until an empty page or `total`.
    async fn list_rest(
        &self,
        folder: &str,
        mut listed: Listed,
        mut offset: u64,
        total: Option<u64>,
    ) -> RemoteResult<FolderListing> {
        let mut pages = 0u64;
        while offset > 0 && total.is_none_or(|t| offset < t) {
            let page = self.listing_page(folder, offset).await?;
            if page.entity_count == 0 {
                break;
            }
            if page.entities.is_some() && listed.last == page.entities {
                return Err(format_error(
                    &page.path,
                    format!("the same page came back for offset {offset}: paging is broken"),
                ));
            }
            pages += 1;
            let bound = page.total.unwrap_or(0).saturating_add(EXTRA_PAGES);
            if pages >= bound {
                return Err(format_error(
                    &page.path,
                    format!("still paging after {pages} pages: paging is broken"),
                ));
            }
            offset += page.entity_count as u64;
            listed.add(page);
        }
        Ok(FolderListing { children: listed.children })
    }
}
