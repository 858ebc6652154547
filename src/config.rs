//! Validated, typed configurations built from the raw command line. This is the only place
//! a flag value is rejected, and each rejection names the flag.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cli::{SampleArgs, ServeArgs};
use crate::sample::SampleOptions;
use crate::serve::{Auth, ServeConfig};
use crate::units::parse_size;

/// Reads a secret from the first line of a file (trailing newline and spaces dropped).
pub fn read_secret_file(path: &Path, flag: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))?;
    let secret = text.lines().next().unwrap_or("").trim_end().to_string();
    if secret.is_empty() {
        bail!("{flag} {}: the file is empty", path.display());
    }
    Ok(secret)
}

impl TryFrom<&SampleArgs> for SampleOptions {
    type Error = anyhow::Error;

    fn try_from(args: &SampleArgs) -> anyhow::Result<SampleOptions> {
        let large_size = parse_size(&args.large).map_err(|e| anyhow::anyhow!("--large: {e}"))?;
        if args.assets == 0 {
            bail!("--assets: must be at least 1");
        }
        if large_size > crate::sample::MAX_LARGE_SIZE {
            bail!("--large: at most 1G (the large asset is drawn in memory), not {}", args.large);
        }
        Ok(SampleOptions { dir: args.dir.clone(), assets: args.assets, seed: args.seed, large_size })
    }
}

impl TryFrom<&ServeArgs> for ServeConfig {
    type Error = anyhow::Error;

    fn try_from(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
        if !args.dir.is_dir() {
            bail!("{}: not a folder", args.dir.display());
        }
        let dir = args.dir.canonicalize().with_context(|| format!("{}", args.dir.display()))?;
        let basic = match (&args.user, &args.password_file) {
            (Some(user), Some(file)) => Some((user.clone(), read_secret_file(file, "--password-file")?)),
            _ => None,
        };
        let bearer = args.token_file.as_deref().map(|f| read_secret_file(f, "--token-file")).transpose()?;
        let state_dir = match &args.state_dir {
            Some(dir) => dir.clone(),
            None => default_state_dir(&dir),
        };
        Ok(ServeConfig { dir, listen: args.listen, auth: Auth { basic, bearer }, state_dir })
    }
}

/// `$XDG_CACHE_HOME/damfs-serve/<name>-<hash of the path>` (or under `~/.cache`, or the
/// temp dir): generated renditions never go inside the served folder.
fn default_state_dir(dir: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
    let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "root".into());
    base.join("damfs-serve").join(format!("{name}-{tag}"))
}
