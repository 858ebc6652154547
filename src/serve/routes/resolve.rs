//! How the segments of a DAM URL resolve: Sling's rule for the last segment, the walk
//! through folders into an asset, and the answers for what is not there.

use axum::http::StatusCode;
use axum::response::Response;

use crate::serve::catalog::{Asset, Catalog, Entry};
use crate::serve::reply::{self, HttpError};
use crate::serve::sling;

pub(super) fn is_dam(segment: &str) -> bool {
    segment == "dam" || segment.starts_with("dam.")
}

pub(super) fn index() -> Response {
    let text = "damfs serve: a folder served as an AEM Assets DAM.\n\
                Try /api/assets.json, /content/dam/<asset>/jcr:content/metadata.json,\n\
                /bin/querybuilder.json?path=/content/dam&type=dam:Asset&fulltext=<words>\n";
    reply::text(StatusCode::OK, text.to_string())
}

/// How the last segment of a Sling URL resolves among the names that exist.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Last {
    /// A node of exactly this name (a binary, when it stands for a file).
    Exact(String),
    /// `name[.depth].json`.
    Json {
        name: String,
        depth: u32,
    },
    /// `name.selector.json` with a selector that is not a depth.
    BadSelector(String),
    Missing,
}

/// Sling's resolution of the last segment: the exact name, else the name without `.json`,
/// else without `.json` and a depth selector.
pub(super) fn resolve_last(segment: &str, exists: impl Fn(&str) -> bool) -> Last {
    if exists(segment) {
        return Last::Exact(segment.to_string());
    }
    let Some(stem) = segment.strip_suffix(".json") else {
        return Last::Missing;
    };
    if !stem.is_empty() && exists(stem) {
        return Last::Json { name: stem.to_string(), depth: 0 };
    }
    match sling::split_selector(stem) {
        Some((base, Ok(depth))) if exists(&base) => Last::Json { name: base, depth },
        Some((base, Err(reason))) if exists(&base) => Last::BadSelector(reason),
        _ => Last::Missing,
    }
}

/// Where a run of segments leads from the root: through folders only, into an asset (at
/// `index`), or nowhere.
pub(super) enum Walk {
    Folders,
    Asset { asset: Asset, index: usize },
    Missing,
}

pub(super) fn walk(catalog: &Catalog, segments: &[String]) -> std::io::Result<Walk> {
    for index in 0..segments.len() {
        match catalog.lookup(&segments[..=index])? {
            Some(Entry::Folder(_)) => {}
            Some(Entry::Asset(asset)) => return Ok(Walk::Asset { asset, index }),
            None => return Ok(Walk::Missing),
        }
    }
    Ok(Walk::Folders)
}

pub(super) fn not_found(segments: &[String]) -> HttpError {
    HttpError::not_found(format!("not found: /content/dam/{}", segments.join("/")))
}
