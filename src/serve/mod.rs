//! Sample DAM server (being written).
use std::net::SocketAddr;
use std::path::PathBuf;

/// Accepted credentials.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// User and password for Basic.
    pub basic: Option<(String, String)>,
    /// Bearer token.
    pub bearer: Option<String>,
}

/// Configuration of `damfs serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Served folder.
    pub dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Credentials.
    pub auth: Auth,
    /// State folder.
    pub state_dir: PathBuf,
}

/// Serves until interrupted.
pub fn serve_blocking(_config: ServeConfig) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
