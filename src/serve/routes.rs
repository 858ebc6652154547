//! What a URL means: the raw path is split on `/` first and each segment percent-decoded
//! after (so an encoded slash can never act as a separator), checked (no empty, `.`, `..`,
//! hidden, NUL or backslash segments), and dispatched by hand, since `<any depth>.json` and
//! Sling's "longest existing node, then selectors" rule do not fit a router:
//!
//! ```text
//! /api/assets.json, /api/assets/<folder or asset>.json     Siren (siren)
//! /api/assets/<asset>/renditions.json                       rendition list (siren)
//! /api/assets/<asset>/renditions/<name>                     rendition bytes (binary)
//! /bin/querybuilder.json                                    search (querybuilder)
//! /content/dam/<asset>                                      original bytes (binary)
//! /content/dam/<path>[.N|.infinity].json                    Sling JSON of a folder or asset (sling)
//! /content/dam/<asset>/jcr:content/...                      nodes below an asset; renditions' bytes
//! /content/cq:tags/<ns>/<tag>.json, /etc/tags/...           tags (sling)
//! ```
//!
//! Authentication, stalls, HEAD and the access log are handled around this, in `mod.rs`.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::binary::serve_file;
use super::catalog::{Asset, Catalog, Entry, Folder, name_problem};
use super::renditions::ORIGINAL;
use super::reply::{self, HttpError, HttpResult, blocking};
use super::sling::{self, Node};
use super::{querybuilder, siren};
use resolve::{Last, Walk, index, is_dam, not_found, resolve_last, walk};

mod resolve;

/// What a handler needs to know of its request.
pub(crate) struct Ctx<'a> {
    pub catalog: &'a Arc<Catalog>,
    /// `http://host[:port]` as the client addressed the server, for absolute links.
    pub base: &'a str,
    /// The raw query string (without `?`).
    pub query: &'a str,
    pub headers: &'a HeaderMap,
}

/// Answers a GET of `raw_path` (raw, percent-encoded, without the query).
pub(crate) async fn dispatch(ctx: &Ctx<'_>, raw_path: &str) -> Response {
    match route(ctx, raw_path).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Splits a raw path into percent-decoded segments, refusing anything that could name
/// something other than what its segments say.
pub(crate) fn split_path(raw: &str) -> HttpResult<Vec<String>> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(HttpError::bad_request("the path must begin with /"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/')
        .map(|segment| {
            let decoded = percent_decode_str(segment)
                .decode_utf8()
                .map_err(|_| HttpError::bad_request("a path segment is not UTF-8 once decoded"))?;
            if decoded.is_empty() {
                Err(HttpError::bad_request("empty path segment"))
            } else if decoded == "." || decoded == ".." {
                Err(HttpError::bad_request("relative path segments (. and ..) are not allowed"))
            } else if decoded.contains('/') {
                Err(HttpError::bad_request("an encoded slash (%2F) inside a path segment is not allowed"))
            } else if decoded.contains(['\\', '\0']) {
                Err(HttpError::bad_request("backslash or NUL in a path segment"))
            } else if decoded.starts_with('.') {
                Err(HttpError::not_found("not found: names beginning with '.' are not served"))
            } else {
                Ok(decoded.into_owned())
            }
        })
        .collect()
}

/// Parses `a=1&b=x+y` into decoded pairs (`+` is a space), in order.
pub(crate) fn parse_query(raw: &str) -> HttpResult<Vec<(String, String)>> {
    let decode = |s: &str| {
        let spaced = s.replace('+', " ");
        percent_decode_str(&spaced)
            .decode_utf8()
            .map(|d| d.into_owned())
            .map_err(|_| HttpError::bad_request("a query parameter is not UTF-8 once decoded"))
    };
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(key)?, decode(value)?))
        })
        .collect()
}

async fn route(ctx: &Ctx<'_>, raw_path: &str) -> HttpResult<Response> {
    let segments = split_path(raw_path)?;
    let names: Vec<&str> = segments.iter().map(String::as_str).collect();
    match names.as_slice() {
        [] => Ok(index()),
        ["api", "assets.json"] => api_assets(ctx, &[]).await,
        ["api", "assets", ..] if segments.len() > 2 => api_assets(ctx, &segments[2..]).await,
        ["bin", "querybuilder.json"] => {
            if !ctx.catalog.querybuilder_enabled() {
                return Err(HttpError::not_found("not found: QueryBuilder is blocked on this server"));
            }
            let params = parse_query(ctx.query)?;
            Ok(reply::json(&querybuilder::search(ctx.catalog, &params).await?))
        }
        ["content", ..] if segments.len() >= 2 && is_dam(&segments[1]) => {
            content_dam(ctx, &segments[1..]).await
        }
        ["content", ..] if segments.len() >= 2 && segments[1].starts_with("cq:tags") => {
            tags(ctx, "cq:tags", &segments[1..])
        }
        ["etc", ..] if segments.len() >= 2 && segments[1].starts_with("tags") => {
            tags(ctx, "tags", &segments[1..])
        }
        _ => Err(HttpError::not_found(format!("not found: {raw_path}"))),
    }
}

// ---- Assets HTTP API ----

/// What an Assets API path names.
enum ApiTarget {
    Folder(Folder),
    Asset(Asset),
    Renditions(Asset),
    Rendition(Asset, String),
}

async fn api_assets(ctx: &Ctx<'_>, rest: &[String]) -> HttpResult<Response> {
    let catalog = Arc::clone(ctx.catalog);
    let rest_owned = rest.to_vec();
    let target = blocking("cannot read the folder", move || api_target(&catalog, &rest_owned)).await?;
    let Some(target) = target else {
        return Err(HttpError::not_found(format!("not found: /api/assets/{}", rest.join("/"))));
    };
    match target {
        ApiTarget::Folder(folder) => folder_page(ctx, folder).await,
        ApiTarget::Asset(asset) => {
            let sidecar = ctx.catalog.sidecar();
            let metadata = ctx
                .catalog
                .metadata(&sidecar, &asset, super::metadata::MetaNeeds::ALL)
                .await
                .map_err(|e| HttpError::internal(&format!("metadata of {}", asset.rel), e))?;
            Ok(reply::json(&siren::asset(ctx.base, &asset, metadata)))
        }
        ApiTarget::Renditions(asset) => {
            let renditions = ctx
                .catalog
                .renditions_of(&asset)
                .await
                .map_err(|e| HttpError::internal(&format!("renditions of {}", asset.rel), e))?;
            Ok(reply::json(&siren::renditions(ctx.base, &asset, &renditions)))
        }
        ApiTarget::Rendition(asset, name) => rendition_bytes(ctx, &asset, &name).await,
    }
}

fn api_target(catalog: &Catalog, rest: &[String]) -> std::io::Result<Option<ApiTarget>> {
    let Some((last, dirs)) = rest.split_last() else {
        return Ok(Some(ApiTarget::Folder(catalog.root_folder()?)));
    };
    match walk(catalog, dirs)? {
        Walk::Missing => Ok(None),
        Walk::Asset { asset, index } => {
            let below: Vec<&str> = rest[index + 1..].iter().map(String::as_str).collect();
            Ok(match below.as_slice() {
                ["renditions.json"] => Some(ApiTarget::Renditions(asset)),
                ["renditions", name] => Some(ApiTarget::Rendition(asset, name.to_string())),
                _ => None,
            })
        }
        Walk::Folders => {
            let Some(name) = last.strip_suffix(".json").filter(|n| name_problem(n).is_none()) else {
                return Ok(None);
            };
            let mut path = dirs.to_vec();
            path.push(name.to_string());
            Ok(match catalog.lookup(&path)? {
                Some(Entry::Folder(folder)) => Some(ApiTarget::Folder(folder)),
                Some(Entry::Asset(asset)) => Some(ApiTarget::Asset(asset)),
                None => None,
            })
        }
    }
}

/// A page of a folder listing, with `offset` and `limit` from the query.
async fn folder_page(ctx: &Ctx<'_>, folder: Folder) -> HttpResult<Response> {
    let mut offset = 0u64;
    let mut limit = siren::DEFAULT_LIMIT;
    for (key, value) in parse_query(ctx.query)? {
        match key.as_str() {
            "offset" => {
                offset = value.trim().parse().map_err(|_| {
                    HttpError::bad_request(format!("offset: not a non-negative number: {value:?}"))
                })?
            }
            "limit" => {
                limit = value.trim().parse::<u64>().ok().filter(|l| *l >= 1).ok_or_else(|| {
                    HttpError::bad_request(format!("limit: not a positive number: {value:?}"))
                })?
            }
            _ => {}
        }
    }
    let limit = limit.min(siren::MAX_LIMIT);
    if let Some(delay) = ctx.catalog.listing_delay() {
        tokio::time::sleep(delay).await;
    }
    let catalog = Arc::clone(ctx.catalog);
    let base = ctx.base.to_string();
    let page = blocking("cannot list the folder", move || {
        let sidecar = catalog.sidecar();
        let children = catalog.children(&folder)?;
        let title = catalog.folder_title(&sidecar, &folder);
        Ok(siren::folder(&base, &folder, title.as_deref(), &children, offset, limit))
    })
    .await?;
    Ok(reply::json(&page))
}

async fn rendition_bytes(ctx: &Ctx<'_>, asset: &Asset, name: &str) -> HttpResult<Response> {
    let rendition = ctx
        .catalog
        .renditions
        .find(asset, name)
        .await
        .map_err(|e| HttpError::internal(&format!("renditions of {}", asset.rel), e))?
        .ok_or_else(|| HttpError::not_found(format!("not found: {} has no rendition {name:?}", asset.rel)))?;
    serve_file(&rendition.file, &rendition.mime, ctx.headers, ctx.catalog.throttle()).await
}

// ---- Sling: /content/dam ----

/// What a `/content/dam` path names.
enum DamTarget {
    Original(Asset),
    FolderJson(Folder, u32),
    AssetJson(Asset, u32),
    /// A node below an asset: the (unmangled) names below it, never empty.
    InAsset(Asset, Vec<String>),
}

/// `segments` starts with `dam…`.
async fn content_dam(ctx: &Ctx<'_>, segments: &[String]) -> HttpResult<Response> {
    let catalog = Arc::clone(ctx.catalog);
    let owned = segments.to_vec();
    let target = blocking("cannot read the folder", move || dam_target(&catalog, &owned)).await??;
    match target {
        DamTarget::Original(asset) => {
            serve_file(&asset.file, asset.mime(), ctx.headers, ctx.catalog.throttle()).await
        }
        DamTarget::FolderJson(folder, depth) => folder_json(ctx, folder, depth).await,
        DamTarget::AssetJson(asset, depth) => {
            let sidecar = ctx.catalog.sidecar();
            let tree =
                sling::full_asset_tree(ctx.catalog, &sidecar, &asset, sling::needs_renditions(&[], depth))
                    .await
                    .map_err(|e| HttpError::internal(&format!("cannot describe {}", asset.rel), e))?;
            Ok(reply::json(&tree.render(depth)))
        }
        DamTarget::InAsset(asset, below) => in_asset(ctx, &asset, &below).await,
    }
}

fn dam_target(catalog: &Catalog, segments: &[String]) -> std::io::Result<HttpResult<DamTarget>> {
    // `segments[0]` is `dam` or `dam.<selectors>.json`.
    let Some((last, dirs)) = segments[1..].split_last() else {
        return Ok(match resolve_last(&segments[0], |name| name == "dam") {
            Last::Json { depth, .. } => Ok(DamTarget::FolderJson(catalog.root_folder()?, depth)),
            Last::BadSelector(reason) => Err(HttpError::bad_request(reason)),
            Last::Exact(_) => Err(folder_without_json("")),
            Last::Missing => Err(HttpError::not_found("not found")),
        });
    };
    if segments[0] != "dam" {
        return Ok(Err(HttpError::not_found("not found")));
    }
    match walk(catalog, dirs)? {
        Walk::Missing => Ok(Err(not_found(&segments[1..]))),
        Walk::Asset { asset, index } => {
            let below = segments[1..][index + 1..].iter().map(|s| sling::unmangle(s)).collect();
            Ok(Ok(DamTarget::InAsset(asset, below)))
        }
        Walk::Folders => {
            let lookup = |name: &str| {
                if name_problem(name).is_some() {
                    return Ok(None);
                }
                let mut path = dirs.to_vec();
                path.push(name.to_string());
                catalog.lookup(&path)
            };
            let exists = |name: &str| matches!(lookup(name), Ok(Some(_)));
            Ok(match resolve_last(last, exists) {
                Last::Exact(name) => match lookup(&name)? {
                    Some(Entry::Asset(asset)) => Ok(DamTarget::Original(asset)),
                    Some(Entry::Folder(folder)) => Err(folder_without_json(&folder.rel)),
                    None => Err(not_found(&segments[1..])),
                },
                Last::Json { name, depth } => match lookup(&name)? {
                    Some(Entry::Asset(asset)) => Ok(DamTarget::AssetJson(asset, depth)),
                    Some(Entry::Folder(folder)) => Ok(DamTarget::FolderJson(folder, depth)),
                    None => Err(not_found(&segments[1..])),
                },
                Last::BadSelector(reason) => Err(HttpError::bad_request(reason)),
                Last::Missing => Err(not_found(&segments[1..])),
            })
        }
    }
}

fn folder_without_json(rel: &str) -> HttpError {
    HttpError::not_found(format!("not found: /content/dam/{rel} is a folder; ask for it with .json"))
}

/// Sling JSON of a folder: its own node (`.json`), or with its children (`.1.json`). Deeper
/// renderings of a folder answer 300 with shallower URLs, as Sling does when a rendering would
/// exceed its node limit (which any folder with a dozen assets does).
async fn folder_json(ctx: &Ctx<'_>, folder: Folder, depth: u32) -> HttpResult<Response> {
    if depth >= 2 {
        let base = if folder.rel.is_empty() {
            "/content/dam".to_string()
        } else {
            format!("/content/dam/{}", siren::encode_rel(&folder.rel))
        };
        let options = json!([format!("{base}.1.json"), format!("{base}.0.json")]);
        return Ok(reply::json_with(StatusCode::MULTIPLE_CHOICES, &options));
    }
    let catalog = Arc::clone(ctx.catalog);
    let node = blocking("cannot list the folder", move || {
        let sidecar = catalog.sidecar();
        sling::folder_node(&catalog, &sidecar, &folder, depth >= 1)
    })
    .await?;
    Ok(reply::json(&node.render(depth)))
}

/// A node below an asset: JSON of `jcr:content`, `metadata`, `renditions`…, or the bytes of a
/// rendition.
async fn in_asset(ctx: &Ctx<'_>, asset: &Asset, below: &[String]) -> HttpResult<Response> {
    let Some((last, parents)) = below.split_last() else {
        return Err(HttpError::not_found("not found"));
    };
    // The original's bytes are the asset's file: no need to describe the asset first.
    if parents == ["jcr:content", "renditions"] && last == ORIGINAL {
        return rendition_bytes(ctx, asset, ORIGINAL).await;
    }
    // Generate renditions only when the answer shows them.
    let mut exact = parents.to_vec();
    exact.push(last.clone());
    let (base, depth) = match last.strip_suffix(".json") {
        Some(stem) => match sling::split_selector(stem) {
            Some((base, Ok(depth))) => (base, depth),
            _ => (stem.to_string(), 0),
        },
        None => (last.clone(), 0),
    };
    let mut with_base = parents.to_vec();
    with_base.push(base);
    let with_renditions = sling::needs_renditions(&exact, 0)
        || sling::needs_renditions(&with_base, depth)
        || sling::needs_renditions(&with_base[..with_base.len() - 1], 0);
    let sidecar = ctx.catalog.sidecar();
    let tree = sling::full_asset_tree(ctx.catalog, &sidecar, asset, with_renditions)
        .await
        .map_err(|e| HttpError::internal(&format!("cannot describe {}", asset.rel), e))?;
    let missing =
        || HttpError::not_found(format!("not found: {} has no node {}", asset.rel, below.join("/")));
    answer_node(ctx, &tree, below, missing).await
}

/// Answers the node at `path` below `root` (the last segment resolved the Sling way).
async fn answer_node(
    ctx: &Ctx<'_>,
    root: &Node,
    path: &[String],
    missing: impl Fn() -> HttpError,
) -> HttpResult<Response> {
    let Some((last, parents)) = path.split_last() else {
        return Err(missing());
    };
    let parent = root.descend(parents).ok_or_else(&missing)?;
    match resolve_last(last, |name| parent.child(name).is_some()) {
        Last::Exact(name) => {
            let node = parent.child(&name).ok_or_else(&missing)?;
            match &node.file {
                Some(file) => serve_file(&file.path, &file.mime, ctx.headers, ctx.catalog.throttle()).await,
                None => {
                    Err(HttpError::not_found(format!("not found: {name} is a node; ask for it with .json")))
                }
            }
        }
        Last::Json { name, depth } => {
            let node = parent.child(&name).ok_or_else(&missing)?;
            Ok(reply::json(&node.render(depth)))
        }
        Last::BadSelector(reason) => Err(HttpError::bad_request(reason)),
        Last::Missing => Err(missing()),
    }
}

// ---- Tags ----

/// `/content/cq:tags…` or `/etc/tags…`: `segments[0]` is `cq:tags…` (or `tags…`).
fn tags(ctx: &Ctx<'_>, root_name: &str, segments: &[String]) -> HttpResult<Response> {
    let sidecar = ctx.catalog.sidecar();
    let mut parent = Node::default();
    parent.children.push((root_name.to_string(), sling::tag_tree(&sidecar)));
    let missing = || HttpError::not_found(format!("not found: no tag {}", segments.join("/")));
    let (last, parents) = segments.split_last().ok_or_else(missing)?;
    let node = parent.descend(parents).ok_or_else(missing)?;
    match resolve_last(last, |name| node.child(name).is_some()) {
        Last::Json { name, depth } => {
            let tag = node.child(&name).ok_or_else(missing)?;
            Ok(reply::json(&tag.render(depth)))
        }
        Last::BadSelector(reason) => Err(HttpError::bad_request(reason)),
        Last::Exact(_) | Last::Missing => Err(missing()),
    }
}

#[cfg(test)]
mod tests;
