//! The HTTP plumbing under the AEM client: one pooled `reqwest::Client` with preemptive
//! authentication, a request log line, and the mapping of every failure (status, transport,
//! JSON) to a [`RemoteError`] that names the URL path and never a credential.
//!
//! Redirects are followed here, not by reqwest: credentials go only to the DAM's own origin
//! (scheme, host and port of the remote URL), and once a chain of redirects has left that
//! origin no later hop carries them, even one that comes back (a blob store could otherwise
//! bounce a request home with the DAM's `Authorization` attached to a URL of its choosing).
//! No `Referer` is sent on any hop.
//!
//! A 401 from the DAM is retried once when [`Auth`] has a newer header (a rewritten token
//! file, a renewed IMS token). A redirect chain that left the DAM (a signed blob URL) and
//! ends in 403, such as an expired signature, is asked of the DAM again once, for a fresh URL.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::LOCATION;
use reqwest::header::{AUTHORIZATION, HeaderValue, RANGE};
use reqwest::{Response, StatusCode, Url, redirect};
use serde_json::Value;

use super::auth::{Auth, AuthStatus};
use super::config::AemConfig;
use super::tls::{ClientCertWatch, Tls, refusal};
use super::url::label;
use super::{RemoteError, RemoteErrorKind, RemoteResult};
use crate::metrics::{Metrics, Outcome, RemoteTimer};

/// The User-Agent: a non-browser client gets 401 rather than a redirect to a login page.
const USER_AGENT: &str = concat!("damfs/", env!("CARGO_PKG_VERSION"));

/// Largest JSON body read: far above any listing page or metadata node, low enough that a
/// broken server cannot exhaust memory.
const MAX_JSON_BYTES: usize = 64 << 20;

/// Most redirects followed for one request (as many as reqwest's default policy allows).
const MAX_REDIRECTS: usize = 10;

/// Statuses followed as redirects. 300 is not among them: Sling answers a too-deep JSON
/// request with 300 and a list of shallower URLs, which the caller reads itself.
const REDIRECTS: [StatusCode; 5] = [
    StatusCode::MOVED_PERMANENTLY,
    StatusCode::FOUND,
    StatusCode::SEE_OTHER,
    StatusCode::TEMPORARY_REDIRECT,
    StatusCode::PERMANENT_REDIRECT,
];

/// Keepalive probes on idle pooled connections, so a dead peer is noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// Idle connections kept per host after a burst: enough for the rendition, listing-page and
/// tag requests that run in parallel for one open, few enough not to hold a DAM's sockets.
const MAX_IDLE_PER_HOST: usize = 16;

/// How long an idle pooled connection is kept (AEM's dispatcher and load balancers close
/// idle connections after about a minute; reusing one they closed costs a failed request).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The last response of a chain of redirects, and whether the chain left the DAM's origin.
struct Followed {
    response: Response,
    left_origin: bool,
}

/// A JSON answer, or the status of a non-success answer for the caller to decide on.
pub(crate) enum Answer {
    /// A 2xx answer whose body parsed as JSON.
    Json(Value),
    /// Any other status, body unread.
    Status(StatusCode),
}

/// The pooled HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    /// The DAM's origin: the only one credentials are sent to.
    origin: url::Origin,
    /// The preemptive `Authorization` value (sensitive: never printed).
    auth: Arc<Auth>,
    /// Bound on one JSON request, headers and body.
    request_timeout: Duration,
    /// Tells a server's refusal for want of a client certificate from a plain 400.
    client_cert_watch: ClientCertWatch,
    /// Where each request is counted and timed, when a scraper may read it.
    pub(super) metrics: Option<Arc<Metrics>>,
}

impl Http {
    /// Builds the client: connect timeout, keepalive, TLS (trust, client certificate), proxy,
    /// preemptive auth header.
    pub(crate) fn new(config: &AemConfig) -> anyhow::Result<Http> {
        let tls = Tls::new(config)?;
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(config.connect_timeout)
            .tcp_keepalive(TCP_KEEPALIVE)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(IDLE_TIMEOUT)
            // Redirects are followed by `get`, which decides where credentials go.
            .redirect(redirect::Policy::none())
            .referer(false)
            .use_preconfigured_tls(tls.config);
        if let Some(proxy) = &config.proxy {
            // The proxy URL may carry proxy credentials: it is not echoed.
            let proxy = reqwest::Proxy::all(proxy.as_str())
                .map_err(|e| anyhow::anyhow!("--proxy: not a usable proxy URL ({})", innermost(&e)))?;
            builder = builder.proxy(proxy);
        }
        let client = builder.build().map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
        let auth = Auth::new(&config.credentials, client.clone())?;
        Ok(Http {
            client,
            origin: config.base.origin(),
            auth,
            request_timeout: config.request_timeout,
            client_cert_watch: tls.watch,
            metrics: None,
        })
    }

    /// The kind of authentication and when its token expires.
    pub(crate) fn auth_status(&self) -> AuthStatus {
        self.auth.status()
    }

    /// Sends a GET (with a `Range` header when given), follows redirects, and answers the
    /// final response whatever its status; only transport failures are errors. Credentials
    /// go to the DAM's origin only, and to no hop after the chain has left it. Logs one
    /// debug line per hop; a hop off the DAM is named by its host, never its query (signed
    /// URLs carry their signature there).
    pub(crate) async fn get(&self, url: Url, range: Option<&str>) -> RemoteResult<Response> {
        let response = self.follow(&url, range).await?;
        if response.left_origin && response.response.status() == StatusCode::FORBIDDEN {
            // A signed URL that expired (or was refused): the DAM signs a fresh one.
            let host = response.response.url().host_str().unwrap_or("?").to_string();
            log::info!("GET {}: HTTP 403 from {host}; asking the DAM for a fresh URL", label(&url));
            return Ok(self.follow(&url, range).await?.response);
        }
        Ok(response.response)
    }

    /// Follows the redirects of one GET (see [`Http::get`]).
    async fn follow(&self, url: &Url, range: Option<&str>) -> RemoteResult<Followed> {
        let path = label(url);
        let mut hop = url.clone();
        let mut on_origin = true;
        for _ in 0..=MAX_REDIRECTS {
            on_origin &= hop.origin() == self.origin;
            let response = self.send_authorized(&hop, range, on_origin).await?;
            self.client_cert_watch.check(&hop, response.status())?;
            if !REDIRECTS.contains(&response.status()) {
                return Ok(Followed { response, left_origin: !on_origin });
            }
            let Some(location) = response.headers().get(LOCATION) else {
                return Ok(Followed { response, left_origin: !on_origin });
            };
            let next = location
                .to_str()
                .ok()
                .and_then(|l| hop.join(l).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    RemoteError::new(RemoteErrorKind::Other, &path, "redirect to an unusable Location")
                })?;
            hop = next;
        }
        Err(RemoteError::new(RemoteErrorKind::Other, path, "too many redirects"))
    }

    /// One hop, with the DAM's credentials when `on_origin`; a 401 is tried once more when
    /// the credentials have changed since (a rotated token).
    async fn send_authorized(
        &self,
        url: &Url,
        range: Option<&str>,
        on_origin: bool,
    ) -> RemoteResult<Response> {
        if !on_origin {
            return self.send(url, range, None).await;
        }
        let sent = self.auth.header().await?;
        let response = self.send(url, range, sent.as_ref()).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        match self.auth.after_denied(sent.as_ref()).await {
            Some(fresh) => {
                log::debug!("GET {}: HTTP 401; once more with the renewed credentials", label(url));
                self.send(url, range, Some(&fresh)).await
            }
            None => Ok(response),
        }
    }

    /// One hop of [`Http::get`].
    async fn send(
        &self,
        url: &Url,
        range: Option<&str>,
        auth: Option<&HeaderValue>,
    ) -> RemoteResult<Response> {
        let path = label(url);
        let shown = if url.origin() == self.origin {
            let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
            format!("{path}{query}")
        } else {
            format!("{}{path}", url.host_str().unwrap_or("?"))
        };
        let started = Instant::now();
        let mut request = self.client.get(url.clone());
        if let Some(range) = range {
            request = request.header(RANGE, range);
        }
        if let Some(auth) = auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let timer = RemoteTimer::start(self.metrics.as_deref(), url.path());
        let result = request.send().await;
        let ms = started.elapsed().as_millis();
        match result {
            Ok(response) => {
                log::debug!("GET {shown} -> {} in {ms} ms", response.status().as_u16());
                timer.finish(Outcome::Status(response.status().as_u16()));
                Ok(response)
            }
            Err(e) => {
                let error = transport_error(&path, &e);
                log::debug!("GET {shown} -> {} in {ms} ms", error.cause);
                timer.finish(if error.kind == RemoteErrorKind::Timeout {
                    Outcome::Timeout
                } else {
                    Outcome::Failed
                });
                Err(error)
            }
        }
    }

    /// GETs a JSON document: a 2xx answer is parsed, any other status is handed back. The
    /// whole request, body included, is bounded by the request timeout: work that pages
    /// through many requests is bounded per request, not as a whole.
    pub(crate) async fn get_json_answer(&self, url: Url) -> RemoteResult<Answer> {
        let path = label(&url);
        let request = async {
            let response = self.get(url, None).await?;
            let status = response.status();
            if !status.is_success() {
                return Ok(Answer::Status(status));
            }
            let body = read_capped(response, &path).await?;
            serde_json::from_slice(&body).map(Answer::Json).map_err(|e| json_error(&path, &e))
        };
        match tokio::time::timeout(self.request_timeout, request).await {
            Ok(answer) => answer,
            Err(_) => Err(RemoteError::new(RemoteErrorKind::Timeout, &path, "timed out")),
        }
    }

    /// GETs a JSON document; any status but 2xx is an error.
    pub(crate) async fn get_json(&self, url: Url) -> RemoteResult<Value> {
        let path = label(&url);
        match self.get_json_answer(url).await? {
            Answer::Json(value) => Ok(value),
            Answer::Status(status) => Err(status_error(&path, status)),
        }
    }
}

/// Reads a whole body, refusing more than [`MAX_JSON_BYTES`].
async fn read_capped(mut response: Response, path: &str) -> RemoteResult<Vec<u8>> {
    if response.content_length().is_some_and(|n| n > MAX_JSON_BYTES as u64) {
        return Err(RemoteError::new(RemoteErrorKind::Other, path, "JSON answer larger than 64 MiB"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(path, &e))? {
        if body.len() + chunk.len() > MAX_JSON_BYTES {
            return Err(RemoteError::new(RemoteErrorKind::Other, path, "JSON answer larger than 64 MiB"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error for a non-success status: 404 → NotFound, 401/403 → Denied, else Other.
pub(crate) fn status_error(path: &str, status: StatusCode) -> RemoteError {
    let kind = match status.as_u16() {
        404 => RemoteErrorKind::NotFound,
        401 | 403 => RemoteErrorKind::Denied,
        _ => RemoteErrorKind::Other,
    };
    RemoteError::new(kind, path, format!("HTTP {status}"))
}

/// The error for a body that is not JSON: `invalid JSON at line 1 column 5: expected value`.
pub(crate) fn json_error(path: &str, error: &serde_json::Error) -> RemoteError {
    let text = error.to_string();
    let message = text.split(" at line ").next().unwrap_or(&text);
    RemoteError::new(
        RemoteErrorKind::Other,
        path,
        format!("invalid JSON at line {} column {}: {message}", error.line(), error.column()),
    )
}

/// The error for a JSON document that lacks what the protocol promises.
pub(crate) fn format_error(path: &str, cause: impl Into<String>) -> RemoteError {
    RemoteError::new(RemoteErrorKind::Other, path, cause)
}

/// The error for a failed exchange (no status, or a body cut short), with a short cause such
/// as `connection refused`. A timeout is Timeout, and so is a remote that cannot be reached
/// at all (refused, no route, name not resolved): no answer came, as when it is too slow,
/// and an offline mount answers ETIMEDOUT for what it does not have. A TLS refusal on grounds
/// of trust (a certificate not trusted, a client certificate wanted) is Tls. Everything else
/// (another TLS failure, a reset, a body cut short) is Other.
pub(crate) fn transport_error(path: &str, error: &reqwest::Error) -> RemoteError {
    if let Some(cause) = refusal(error) {
        return RemoteError::new(RemoteErrorKind::Tls, path, cause);
    }
    let io_kind = io_error_kind(error);
    if error.is_timeout() || io_kind == Some(std::io::ErrorKind::TimedOut) {
        let cause = if error.is_connect() { "timed out connecting" } else { "timed out" };
        return RemoteError::new(RemoteErrorKind::Timeout, path, cause);
    }
    if error.is_connect() && !error.is_body() {
        use std::io::ErrorKind::{AddrNotAvailable, ConnectionRefused, HostUnreachable, NetworkUnreachable};
        let detail = innermost(error);
        let unreachable = matches!(
            io_kind,
            Some(ConnectionRefused | NetworkUnreachable | HostUnreachable | AddrNotAvailable)
        ) || detail.to_ascii_lowercase().contains("dns");
        if unreachable {
            let detail =
                if io_kind == Some(ConnectionRefused) { "connection refused".to_string() } else { detail };
            return RemoteError::new(RemoteErrorKind::Timeout, path, format!("unreachable: {detail}"));
        }
    }
    let detail = match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
        Some(std::io::ErrorKind::ConnectionReset) => "connection reset".to_string(),
        Some(std::io::ErrorKind::ConnectionAborted) => "connection aborted".to_string(),
        Some(std::io::ErrorKind::UnexpectedEof) => "connection closed early".to_string(),
        _ if error.is_redirect() => "too many redirects".to_string(),
        _ if error.is_connect() => format!("cannot connect: {}", innermost(error)),
        _ => innermost(error),
    };
    let cause =
        if error.is_body() || error.is_decode() { format!("body cut short: {detail}") } else { detail };
    RemoteError::new(RemoteErrorKind::Other, path, cause)
}

/// A `Content-Range` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    /// First and last byte of the part sent (inclusive); `None` in a 416's `bytes */size`.
    pub span: Option<(u64, u64)>,
    /// The length of the whole representation, unless `*`.
    pub size: Option<u64>,
}

/// Reads a `Content-Range` value: `bytes a-b/size`, `bytes a-b/*` or (a 416) `bytes */size`.
pub(crate) fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, size) = rest.split_once('/')?;
    let size = match size.trim() {
        "*" => None,
        n => Some(n.parse().ok()?),
    };
    let span = match span.trim() {
        "*" => None,
        s => {
            let (first, last) = s.split_once('-')?;
            let (first, last): (u64, u64) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
            if last < first {
                return None;
            }
            Some((first, last))
        }
    };
    if span.is_none() && size.is_none() {
        return None;
    }
    Some(ContentRange { span, size })
}

/// The kind of the first `std::io::Error` in the cause chain.
fn io_error_kind(error: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

/// The message of the deepest cause: the most specific (`end of file before message length
/// reached`, `dns error: …`). reqwest's outer messages repeat the URL, which may not be wanted
/// in logs.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = error;
    while let Some(cause) = deepest.source() {
        deepest = cause;
    }
    deepest.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let cases = [
            (404, RemoteErrorKind::NotFound),
            (401, RemoteErrorKind::Denied),
            (403, RemoteErrorKind::Denied),
            (500, RemoteErrorKind::Other),
            (503, RemoteErrorKind::Other),
            (300, RemoteErrorKind::Other),
            (400, RemoteErrorKind::Other),
        ];
        for (code, kind) in cases {
            let e = status_error("/api/assets.json", StatusCode::from_u16(code).unwrap());
            assert_eq!(e.kind, kind, "{code}");
        }
        let e = status_error("/x", StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.cause, "HTTP 503 Service Unavailable");
        assert_eq!(e.to_string(), "/x: HTTP 503 Service Unavailable");
    }

    #[test]
    fn json_errors() {
        let error = serde_json::from_slice::<Value>(b"{\"a\": x}").unwrap_err();
        let e = json_error("/p", &error);
        assert_eq!(e.kind, RemoteErrorKind::Other);
        assert_eq!(e.cause, "invalid JSON at line 1 column 7: expected value");
    }

    #[test]
    fn content_ranges() {
        let cases = [
            ("bytes 0-99/1000", Some((Some((0, 99)), Some(1000)))),
            ("bytes 500-999/*", Some((Some((500, 999)), None))),
            ("bytes */1000", Some((None, Some(1000)))),
            (" bytes 7-7/8 ", Some((Some((7, 7)), Some(8)))),
            ("bytes */*", None),
            ("bytes 9-3/10", None),
            ("items 0-1/2", None),
            ("bytes 0-1", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let parsed = parse_content_range(text).map(|r| (r.span, r.size));
            assert_eq!(parsed, expected, "{text:?}");
        }
    }
}
