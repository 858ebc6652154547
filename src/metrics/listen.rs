//! The scrape endpoint: `GET /metrics` on the address of `--metrics-listen`, answered in
//! OpenMetrics text when the scraper asks for it (Prometheus does) and in the Prometheus
//! text format otherwise (curl, older scrapers). Nothing else is served.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::Metrics;

/// Binds the metrics address; the error names the flag.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("--metrics-listen {addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| anyhow::anyhow!("--metrics-listen {addr}: {e}"))?;
    Ok(listener)
}

/// Serves `/metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: std::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let router = Router::new().route("/metrics", get(page)).with_state(metrics);
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

async fn page(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> impl IntoResponse {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (body, kind) = if openmetrics { metrics.openmetrics_text() } else { metrics.prometheus_text() };
    (StatusCode::OK, [(header::CONTENT_TYPE, kind)], body)
}
