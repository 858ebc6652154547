//! The shapes of answers shared by every handler: an error with a status and a one-line reason
//! (sent as text, logged when it is the server's fault), JSON bodies with the validators a
//! shared HTTP cache needs (`Cache-Control: public`, an `ETag` of the body, and 304 for an
//! `If-None-Match` that holds it), and running blocking file-system work off the async
//! workers. What a URL means is decided elsewhere.

use std::fmt;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// A request that cannot be answered as asked: the status and a short reason for the client.
#[derive(Debug)]
pub(crate) struct HttpError {
    pub status: StatusCode,
    pub reason: String,
}

/// Result of a handler step.
pub(crate) type HttpResult<T> = Result<T, HttpError>;

impl HttpError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> HttpError {
        HttpError { status, reason: reason.into() }
    }

    /// 400 with `reason`.
    pub fn bad_request(reason: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, reason)
    }

    /// 404 with `reason`.
    pub fn not_found(reason: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::NOT_FOUND, reason)
    }

    /// 500 for a failure of the server itself: logged here with its cause chain, answered with
    /// the first line of it.
    pub fn internal(what: &str, cause: impl fmt::Display) -> HttpError {
        log::error!("{what}: {cause:#}");
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {what}: {cause}"))
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        text(self.status, format!("{}\n", self.reason))
    }
}

/// A plain-text answer.
pub(crate) fn text(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain;charset=utf-8"));
    response
}

/// What lets a shared cache (the tier of damfs(7)) store an answer to an authenticated
/// request and revalidate it: `public` (RFC 9111 §3.5), and no freshness of its own, which the
/// cache's configuration decides.
pub(crate) const CACHE_CONTROL: &str = "public";

/// A JSON answer with `status`; a 200 carries a strong `ETag` of its bytes.
pub(crate) fn json_with(status: StatusCode, value: &Value) -> Response {
    let body = match serde_json::to_vec(value) {
        Ok(body) => body,
        Err(e) => return HttpError::internal("cannot encode JSON", e).into_response(),
    };
    let etag = (status == StatusCode::OK).then(|| format!("\"{}\"", crate::digest::short_tag(&body)));
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=utf-8"));
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        headers.insert(header::ETAG, etag);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
    }
    response
}

/// Answers 304 (headers kept, body dropped) when `request` holds, in `If-None-Match`, the
/// `ETag` of a 200 `response` (weak comparison, RFC 9110 §13.1.2); else `response` as it is.
pub(crate) fn conditional(request: &HeaderMap, response: Response) -> Response {
    let matched = |etag: &str| {
        request.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|list| {
            list.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag)
        })
    };
    let etag = response.headers().get(header::ETAG).and_then(|v| v.to_str().ok());
    if response.status() != StatusCode::OK || !etag.is_some_and(|e| matched(e.trim_start_matches("W/"))) {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    parts.status = StatusCode::NOT_MODIFIED;
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::empty())
}

/// A 200 JSON answer.
pub(crate) fn json(value: &Value) -> Response {
    json_with(StatusCode::OK, value)
}

/// Runs blocking work (file-system walks, stats, reads) on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(what: &'static str, work: F) -> HttpResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(HttpError::internal(what, e)),
        Err(e) => Err(HttpError::internal(what, e)),
    }
}
