//! Binary answers, as Sling's streaming servlet gives them: the file streamed from disk in
//! chunks (a multi-GiB file never sits in memory), `Content-Length`, `Content-Type`,
//! `Last-Modified`, a single byte range (206, or 416 when unsatisfiable), `If-Modified-Since`
//! (304), and `Accept-Ranges` advertised only above [`ADVERTISE_RANGES_ABOVE`]. No ETag, as
//! Sling sends none; `Cache-Control: public`, so that a shared cache may keep what it fetched
//! with credentials (see `reply::CACHE_CONTROL`). Which file a URL names is decided by `routes`; HEAD bodies are dropped by
//! the envelope in `mod.rs`.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use tokio::task::JoinHandle;

use super::reply::{self, HttpError, HttpResult};

/// `Accept-Ranges: bytes` is sent only for files larger than this (100 KiB), as Sling does;
/// ranges are honoured for every size.
pub(crate) const ADVERTISE_RANGES_ABOVE: u64 = 100 * 1024;

/// Size of the chunks read from disk and handed to the connection.
const CHUNK: u64 = 1 << 20;

/// What a `Range` header asks of a body of a known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAsk {
    /// No usable range: send the whole body with 200 (no header, another unit, a syntax
    /// error, or several ranges, which a server may answer whole).
    Whole,
    /// Bytes `start..=end`, both inside the body.
    Part { start: u64, end: u64 },
    /// A syntactically valid range that lies outside the body: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header value for a body of `size` bytes (RFC 9110 §14.1).
pub(crate) fn parse_range(value: &str, size: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=").or_else(|| {
        let (unit, rest) = value.trim().split_once('=')?;
        unit.trim().eq_ignore_ascii_case("bytes").then_some(rest)
    }) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| if s.bytes().all(|b| b.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (first.is_empty(), last.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match number(last) {
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if size == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part { start: size - n.min(size), end: size - 1 },
            None => RangeAsk::Whole,
        },
        // `a-`: from a to the end.
        (false, true) => match number(first) {
            Some(start) if start >= size => RangeAsk::Unsatisfiable,
            Some(start) => RangeAsk::Part { start, end: size - 1 },
            None => RangeAsk::Whole,
        },
        // `a-b`.
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= size {
                    RangeAsk::Unsatisfiable
                } else {
                    RangeAsk::Part { start, end: end.min(size - 1) }
                }
            }
            _ => RangeAsk::Whole,
        },
        (true, true) => RangeAsk::Whole,
    }
}

/// Whether a resource modified at `mtime` is unchanged for a client holding the version of
/// `if_modified_since` (HTTP dates have whole seconds).
fn not_modified(mtime: SystemTime, if_modified_since: &str) -> bool {
    let Ok(since) = httpdate::parse_http_date(if_modified_since) else {
        return false;
    };
    whole_seconds(mtime) <= since
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    let secs = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// Answers a GET (or HEAD) of the file at `path` with type `mime`, honouring `Range` and
/// `If-Modified-Since` in `request`; the body is held to `throttle` bytes per second if set.
pub(crate) async fn serve_file(
    path: &Path,
    mime: &str,
    request: &HeaderMap,
    throttle: Option<u64>,
) -> HttpResult<Response> {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HttpError::not_found("not found: the file went away"));
        }
        Err(e) => return Err(HttpError::internal(&format!("cannot open {}", path.display()), e)),
    };
    let meta = file.metadata().await.map_err(|e| HttpError::internal("cannot stat a binary", e))?;
    let size = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);

    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, header_value(mime))
        .header(header::LAST_MODIFIED, header_value(&httpdate::fmt_http_date(mtime)))
        .header(header::CACHE_CONTROL, reply::CACHE_CONTROL);
    if size > ADVERTISE_RANGES_ABOVE {
        builder = builder.header(header::ACCEPT_RANGES, "bytes");
    }
    let ims = request.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok());
    if ims.is_some_and(|ims| not_modified(mtime, ims)) {
        return build(builder.status(StatusCode::NOT_MODIFIED), Body::empty());
    }
    let ask = match request.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(range) => parse_range(range, size),
        None => RangeAsk::Whole,
    };
    let (status, start, len) = match ask {
        RangeAsk::Whole => (StatusCode::OK, 0, size),
        RangeAsk::Part { start, end } => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAsk::Unsatisfiable => {
            let builder = Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .header(header::CONTENT_TYPE, "text/plain;charset=utf-8")
                .header(header::LAST_MODIFIED, header_value(&httpdate::fmt_http_date(mtime)));
            let reason = format!("range not satisfiable: the body has {size} bytes\n");
            return build(builder, Body::from(reason));
        }
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, len);
    if len == 0 {
        return build(builder, Body::empty());
    }
    let stream = chunks(file.into_std().await, start, len);
    match throttle {
        None => build(builder, Body::from_stream(stream)),
        Some(rate) => {
            use futures_util::StreamExt;
            let slow = stream.then(move |chunk| async move {
                if let Ok(bytes) = &chunk {
                    tokio::time::sleep(Duration::from_secs_f64(bytes.len() as f64 / rate as f64)).await;
                }
                chunk
            });
            build(builder, Body::from_stream(slow))
        }
    }
}

/// The bytes `start..start + len` of `file` in chunks of [`CHUNK`], each read straight into
/// the buffer the connection sends; the next chunk is read while the current one is sent.
/// A file that ends early (it shrank while being sent) ends the body with an error, so the
/// client sees a short answer rather than a wrong one.
fn chunks(file: std::fs::File, start: u64, len: u64) -> impl Stream<Item = io::Result<Bytes>> + Send {
    let file = Arc::new(file);
    let end = start + len;
    let read = move |at: u64| -> JoinHandle<io::Result<Vec<u8>>> {
        let file = Arc::clone(&file);
        tokio::task::spawn_blocking(move || crate::fileio::read_at(&file, at, (end - at).min(CHUNK) as usize))
    };
    let first = read(start);
    futures_util::stream::try_unfold((start, Some(first), read), move |(at, pending, read)| async move {
        let Some(pending) = pending else { return Ok(None) };
        let buf = pending.await.map_err(io::Error::other)??;
        if buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while it was sent"));
        }
        let at = at + buf.len() as u64;
        let next = (at < end).then(|| read(at));
        Ok(Some((Bytes::from(buf), (at, next, read))))
    })
}

fn build(builder: axum::http::response::Builder, body: Body) -> HttpResult<Response> {
    builder.body(body).map_err(|e| HttpError::internal("cannot build a response", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAsk::*;
        assert_eq!(parse_range("bytes=0-99", 1000), Part { start: 0, end: 99 });
        assert_eq!(parse_range("bytes=990-2000", 1000), Part { start: 990, end: 999 });
        assert_eq!(parse_range("bytes=-10", 1000), Part { start: 990, end: 999 });
        assert_eq!(parse_range("bytes=-5000", 1000), Part { start: 0, end: 999 });
        assert_eq!(parse_range("bytes=500-", 1000), Part { start: 500, end: 999 });
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=1000-1001", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 1000), Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Whole);
        assert_eq!(parse_range("items=0-1", 1000), Whole);
        assert_eq!(parse_range("bytes=a-b", 1000), Whole);
        assert_eq!(parse_range("bytes=+1-2", 1000), Whole);
        assert_eq!(parse_range("bytes=-", 1000), Whole);
        assert_eq!(parse_range("Bytes=1-2", 1000), Part { start: 1, end: 2 });
    }

    #[test]
    fn if_modified_since_compares_whole_seconds() {
        let mtime = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let same = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let earlier = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_699_999_999));
        assert!(not_modified(mtime, &same));
        assert!(!not_modified(mtime, &earlier));
        assert!(!not_modified(mtime, "yesterday"));
    }
}
