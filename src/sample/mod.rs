//! Sample DAM generator (being written).
use std::path::PathBuf;

/// Options of `damfs sample`.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    /// Output folder.
    pub dir: PathBuf,
    /// Number of assets.
    pub assets: usize,
    /// Generator seed.
    pub seed: u64,
    /// Size of the large asset in bytes (0: none).
    pub large_size: u64,
}

/// Generates the sample.
pub fn generate(_options: &SampleOptions) -> anyhow::Result<String> {
    anyhow::bail!("not built yet")
}
