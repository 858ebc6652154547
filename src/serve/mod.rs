//! The sample DAM behind `damfs serve`: a plain folder served over HTTP as an AEM Assets
//! instance, in the wire format of `aem-protocol.md` (Siren folder listings with paging,
//! QueryBuilder, Sling JSON for metadata, renditions and tags, binaries with ranges), so that
//! the demo and the tests of damfs need no AEM.
//!
//! This module owns the server's lifecycle ([`run`], [`serve_blocking`]), the configuration
//! types, and the envelope every request passes through, in order: the stall control, the
//! credential check (401), the method check (405), dispatch, `If-None-Match` (304), HEAD (same
//! headers, no body), the request record and the access log line. What a URL means is decided in `routes`; the
//! folder, its sidecar and caches live in `catalog`; the formats in `siren`, `sling` and
//! `querybuilder`; bytes on the wire in `binary`; generated renditions in `renditions`. The
//! served folder is never written to.

mod binary;
mod catalog;
mod files;
mod ims;
mod metadata;
mod querybuilder;
mod renditions;
mod reply;
mod routes;
mod siren;
mod sling;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use base64::Engine;
use futures_util::StreamExt;
use percent_encoding::percent_decode_str;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use catalog::Catalog;
use catalog::LiveRecord;
pub use ims::ImsClient;
use reply::HttpError;

/// Accepted credentials. With neither set, every request is accepted.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// User and password accepted with `Authorization: Basic`.
    pub basic: Option<(String, String)>,
    /// Token accepted with `Authorization: Bearer`.
    pub bearer: Option<String>,
    /// The client that may obtain tokens at the IMS endpoints; the tokens it gets are
    /// accepted until they expire.
    pub ims: Option<ImsClient>,
}

/// Configuration of `damfs serve`, validated by `config`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The folder served as `/content/dam`.
    pub dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Accepted credentials.
    pub auth: Auth,
    /// Folder for digests and generated renditions (outside `dir`).
    pub state_dir: PathBuf,
}

/// One request as the server saw it (see [`Catalog::requests`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The raw request target: percent-encoded path and query.
    pub path: String,
    /// The status answered (499 when the client went away before the answer).
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
}

impl RequestRecord {
    /// Whether this is a GET of binary bytes: an original (`/content/dam/<asset>`), a Sling
    /// rendition (`…/jcr:content/renditions/<name>`) or an Assets API rendition
    /// (`/api/assets/<asset>/renditions/<name>`). Judged from the path alone, so it also holds
    /// for such requests that failed; names ending in `.json` count as JSON.
    pub fn is_binary(&self) -> bool {
        if self.method != "GET" {
            return false;
        }
        let path = self.path.split('?').next().unwrap_or("");
        let segments: Vec<String> =
            path.split('/').skip(1).map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned()).collect();
        let Some(last) = segments.last() else { return false };
        if last.ends_with(".json") || last.is_empty() {
            return false;
        }
        match segments.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["api", "assets", .., "renditions", _] => segments.len() >= 5,
            ["content", "dam", rest @ ..] if !rest.is_empty() => {
                match rest.iter().position(|s| *s == "jcr:content" || *s == "_jcr_content") {
                    Some(i) => rest[i + 1..].first() == Some(&"renditions") && rest.len() > i + 2,
                    None => true,
                }
            }
            _ => false,
        }
    }
}

/// How long requests in flight may go on once shutdown begins before their connections are
/// dropped (a client stuck mid-download must not hold the server forever).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State shared by every request of one [`run`].
struct App {
    catalog: Arc<Catalog>,
    /// Turns true when shutdown begins; stalled requests then give up.
    shutdown: watch::Receiver<bool>,
    /// The listening address, for links when a request carries no usable `Host`.
    local: SocketAddr,
}

/// Serves `catalog` on `listener` until `shutdown` completes, then lets requests in flight
/// finish (for at most 5 s) and returns.
pub async fn run(
    listener: TcpListener,
    catalog: Arc<Catalog>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr().context("the listener has no address")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = Arc::new(App { catalog, shutdown: stop_rx.clone(), local });
    let router = Router::new().fallback(handle).with_state(app);
    let signal = async move {
        shutdown.await;
        stop_tx.send_replace(true);
    };
    // Without TCP_NODELAY, a response written as headers then body waits on the client's
    // delayed ACK: about 40 ms per request on a kept-alive connection.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            log::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    let server = axum::serve(listener, router).with_graceful_shutdown(signal).into_future();
    let mut stopping = stop_rx;
    let grace_over = async move {
        if stopping.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => result.context("the server failed")?,
        () = grace_over => log::warn!("requests still in flight {SHUTDOWN_GRACE:?} after shutdown: dropping them"),
    }
    Ok(())
}

/// Runs `damfs serve`: builds a runtime, binds `config.listen`, serves until SIGINT or
/// SIGTERM.
pub fn serve_blocking(config: ServeConfig) -> anyhow::Result<()> {
    let catalog = Catalog::open(&config.dir, &config.state_dir, config.auth.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr().context("the listener has no address")?;
        log::info!("serving {} as http://{addr}", config.dir.display());
        log::debug!("state dir: {}", catalog.state_dir().display());
        run(listener, catalog, interrupted()).await
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(e) => {
                log::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            log::warn!("cannot watch SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = terminate => {}
        () = interrupt => {}
    }
    log::info!("shutting down");
}

/// The one handler: every request of every method and path comes here.
async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let target =
        parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |pq| pq.as_str().into());
    let mut unanswered = Unanswered {
        catalog: Arc::clone(&app.catalog),
        method: method.to_string(),
        target: target.clone(),
        started,
        armed: true,
    };
    let token_endpoint = [ims::JWT_EXCHANGE, ims::TOKEN_V3].contains(&parts.uri.path());
    let response = match wait_while_stalled(&app).await {
        Ok(()) if token_endpoint && parts.method == Method::POST => {
            ims::token(app.catalog.auth().ims, app.catalog.issued(), parts.uri.path(), body).await
        }
        Ok(()) => answer(&app, &parts).await,
        Err(error) => error.into_response(),
    };
    unanswered.armed = false;
    finish(&app.catalog, &method, &target, started, response)
}

/// Holds a request while the catalog is stalled; gives up with 503 when shutdown begins.
async fn wait_while_stalled(app: &App) -> Result<(), HttpError> {
    let mut stall = app.catalog.stall_watch();
    if !*stall.borrow_and_update() {
        return Ok(());
    }
    let mut shutdown = app.shutdown.clone();
    let _counted = app.catalog.stalled_guard();
    tokio::select! {
        _ = stall.wait_for(|stalled| !*stalled) => Ok(()),
        _ = shutdown.wait_for(|stop| *stop) => {
            Err(HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"))
        }
    }
}

/// Credentials, method, then the route.
async fn answer(app: &App, parts: &axum::http::request::Parts) -> Response {
    if !authorized(&app.catalog.auth(), app.catalog.issued(), &parts.headers) {
        let mut response =
            HttpError::new(StatusCode::UNAUTHORIZED, "authentication required").into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Sling (Development)\""),
        );
        return response;
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut response = HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} not allowed: this DAM is read-only", parts.method),
        )
        .into_response();
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let base = base_url(&parts.headers, app.local);
    let ctx = routes::Ctx {
        catalog: &app.catalog,
        base: &base,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
    };
    reply::conditional(&parts.headers, routes::dispatch(&ctx, parts.uri.path()).await)
}

/// Whether the request carries credentials the catalog accepts now.
fn authorized(auth: &Auth, issued: &ims::Issued, headers: &HeaderMap) -> bool {
    if auth.basic.is_none() && auth.bearer.is_none() && auth.ims.is_none() {
        return true;
    }
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let Some((user, password)) = &auth.basic else { return false };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else { return false };
        decoded.split_once(':').is_some_and(|(u, p)| u == user && p == password)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let fixed = auth.bearer.as_deref() == Some(credentials);
        let issued = auth.ims.is_some() && issued.valid(credentials) == Some(true);
        !credentials.is_empty() && (fixed || issued)
    } else {
        false
    }
}

/// `http://<Host>` as the client addressed us, or the listening address when `Host` is
/// missing or not a plain host name.
fn base_url(headers: &HeaderMap, local: SocketAddr) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b)));
    match host {
        Some(host) => format!("http://{host}"),
        None => format!("http://{local}"),
    }
}

/// Records the request, drops the body of a HEAD, and logs the access line: at once for
/// bodies of known length, when the body ends (or the client goes away) for streams.
fn finish(
    catalog: &Arc<Catalog>,
    method: &Method,
    target: &str,
    started: Instant,
    response: Response,
) -> Response {
    let status = response.status().as_u16();
    let record = catalog.record(method.as_str(), target, status);
    let (mut parts, body) = response.into_parts();
    let exact = body.size_hint().exact();
    if *method == Method::HEAD {
        if let Some(len) = exact {
            let allowed = !matches!(status, 204 | 304);
            if allowed && !parts.headers.contains_key(header::CONTENT_LENGTH) {
                parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
        }
        log_access(method.as_str(), target, status, 0, started);
        return Response::from_parts(parts, Body::empty());
    }
    if let Some(len) = exact {
        record.bytes.store(len, Ordering::Relaxed);
        log_access(method.as_str(), target, status, len, started);
        return Response::from_parts(parts, body);
    }
    let tally = Tally { record, method: method.to_string(), target: target.to_string(), status, started };
    let counted = body.into_data_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            tally.record.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        chunk
    });
    Response::from_parts(parts, Body::from_stream(counted))
}

/// The access log line (never with credentials: the `Authorization` header is not logged).
fn log_access(method: &str, target: &str, status: u16, bytes: u64, started: Instant) {
    log::info!("{method} {target} {status} {bytes}B {}ms", started.elapsed().as_millis());
}

/// Counts a streamed body and logs its access line when the stream is dropped.
struct Tally {
    record: Arc<LiveRecord>,
    method: String,
    target: String,
    status: u16,
    started: Instant,
}

impl Drop for Tally {
    fn drop(&mut self) {
        let bytes = self.record.bytes.load(Ordering::Relaxed);
        log_access(&self.method, &self.target, self.status, bytes, self.started);
    }
}

/// Records a request whose client went away before it was answered (status 499).
struct Unanswered {
    catalog: Arc<Catalog>,
    method: String,
    target: String,
    started: Instant,
    armed: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if self.armed {
            self.catalog.record(&self.method, &self.target, 499);
            log_access(&self.method, &self.target, 499, 0, self.started);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(method: &str, path: &str) -> RequestRecord {
        RequestRecord { method: method.into(), path: path.into(), status: 200, bytes: 0 }
    }

    #[test]
    fn binary_requests_by_path() {
        assert!(record("GET", "/content/dam/a/b.jpg").is_binary());
        assert!(record("GET", "/content/dam/a/b.jpg/jcr:content/renditions/original").is_binary());
        assert!(
            record("GET", "/content/dam/a/b.jpg/_jcr_content/renditions/cq5dam.web.1280.1280.jpeg")
                .is_binary()
        );
        assert!(record("GET", "/content/dam/b.jpg/jcr%3Acontent/renditions/original?x=1").is_binary());
        assert!(record("GET", "/api/assets/a/b.jpg/renditions/original").is_binary());
        assert!(!record("HEAD", "/content/dam/a/b.jpg").is_binary());
        assert!(!record("GET", "/content/dam/a/b.jpg/jcr:content/metadata.json").is_binary());
        assert!(!record("GET", "/content/dam/a/b.jpg/jcr:content/renditions.2.json").is_binary());
        assert!(!record("GET", "/api/assets/a/b.jpg.json").is_binary());
        assert!(!record("GET", "/api/assets/a/b.jpg/renditions.json").is_binary());
        assert!(!record("GET", "/bin/querybuilder.json?path=/content/dam").is_binary());
        assert!(!record("GET", "/content/cq:tags/ns/a.json").is_binary());
    }

    #[test]
    fn credentials() {
        let mut headers = HeaderMap::new();
        let issued = ims::Issued::default();
        let authorized = |auth: &Auth, headers: &HeaderMap| authorized(auth, &issued, headers);
        let open = Auth::default();
        assert!(authorized(&open, &headers));
        let auth = Auth {
            basic: Some(("admin".into(), "pw:x".into())),
            bearer: Some("tok".into()),
            ..Auth::default()
        };
        assert!(!authorized(&auth, &headers));
        let basic = base64::engine::general_purpose::STANDARD.encode("admin:pw:x");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {basic}")).unwrap());
        assert!(authorized(&auth, &headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer tok"));
        assert!(authorized(&auth, &headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer other"));
        assert!(!authorized(&auth, &headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(!authorized(&Auth { bearer: Some(String::new()), ..Auth::default() }, &headers));
    }
}
