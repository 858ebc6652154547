//! Validated, typed configurations built from the raw command line. This is the only place
//! a flag value is rejected, and each rejection names the flag.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use std::time::Duration;

use crate::cli::{MountArgs, SampleArgs, ServeArgs};
use crate::listing::Formats;
use crate::materialize::RenditionSelection;
use crate::remote::aem::{AemConfig, Credentials, parse_remote_url};
use crate::remote::check_tls;
use crate::sample::SampleOptions;
use crate::serve::{Auth, ImsClient, ServeConfig};
use crate::units::parse_duration;
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
        let lifetime = flag("token-lifetime", parse_duration(&args.token_lifetime))?;
        if lifetime.is_zero() {
            bail!("--token-lifetime: must be more than 0");
        }
        let ims = match (&args.ims_client_id, &args.ims_secret_file) {
            (Some(id), Some(file)) => Some(ImsClient {
                client_id: id.clone(),
                client_secret: read_secret_file(file, "--ims-secret-file")?,
                lifetime,
            }),
            _ => None,
        };
        let state_dir = match &args.state_dir {
            Some(dir) => dir.clone(),
            None => default_state_dir(&dir),
        };
        Ok(ServeConfig { dir, listen: args.listen, auth: Auth { basic, bearer, ims }, state_dir })
    }
}

/// `$XDG_CACHE_HOME/damfs-serve/<name>-<hash of the path>` (or under `~/.cache`, or the
/// temp dir): generated renditions never go inside the served folder.
fn default_state_dir(dir: &Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "root".into());
    user_cache_home().join("damfs-serve").join(tagged(&name, dir.as_os_str().as_encoded_bytes()))
}

/// `$XDG_CACHE_HOME`, else `~/.cache`, else the temp dir.
fn user_cache_home() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
}

/// `<readable>-<12 hex digits of SHA-256(key)>`: a directory name that a person can read
/// and that two keys cannot share.
fn tagged(readable: &str, key: &[u8]) -> String {
    format!("{readable}-{}", crate::digest::short_tag(key))
}

/// Everything a mount needs, validated.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// The REMOTE_URL as given (for messages and the mount source; never holds credentials).
    pub remote_url: String,
    /// How to reach the remote.
    pub aem: AemConfig,
    /// DAM path of the mounted folder (`""` for /content/dam).
    pub root: String,
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// The cache directory.
    pub cache_dir: PathBuf,
    /// Bound on bytes of content in the cache.
    pub cache_size: Option<u64>,
    /// Bound on each remote fetch.
    pub fetch_timeout: Duration,
    /// Renditions larger than this transfer in the background.
    pub async_threshold: u64,
    /// The renditions fetched at the first open of an asset.
    pub renditions: RenditionSelection,
    /// Listing TTL.
    pub dir_ttl: Duration,
    /// Whether new versions of materialized assets replace them.
    pub revalidate: bool,
    /// Which assets are shown.
    pub formats: Formats,
    /// Let every local user read.
    pub allow_other: bool,
    /// Log file.
    pub log_file: Option<PathBuf>,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Walk the folder tree in the background after mounting.
    pub prefetch_listings: bool,
    /// Verbosity.
    pub verbose: u8,
    /// Stay in the foreground.
    pub foreground: bool,
}

impl MountConfig {
    /// A string identifying the remote folder, recorded in the cache (never with credentials).
    pub fn remote_id(&self) -> String {
        format!("{}content/dam/{}", self.aem.base, self.root)
    }
}

fn flag<T>(name: &str, result: Result<T, String>) -> anyhow::Result<T> {
    result.map_err(|e| anyhow::anyhow!("--{name}: {e}"))
}

impl TryFrom<&MountArgs> for MountConfig {
    type Error = anyhow::Error;

    fn try_from(args: &MountArgs) -> anyhow::Result<MountConfig> {
        let (base, root) = parse_remote_url(&args.remote_url).context("REMOTE_URL")?;
        let fetch_timeout = flag("fetch-timeout", parse_duration(&args.fetch_timeout))?;
        if fetch_timeout.is_zero() {
            bail!("--fetch-timeout: must be more than 0");
        }
        let async_threshold = flag("async-threshold", parse_size(&args.async_threshold))?;
        let cache_size = args.cache_size.as_deref().map(|s| flag("cache-size", parse_size(s))).transpose()?;
        if cache_size == Some(0) {
            bail!("--cache-size: must be more than 0");
        }
        let dir_ttl = flag("dir-ttl", parse_duration(&args.dir_ttl))?;
        let formats = flag("formats", Formats::parse(&args.formats))?;
        let renditions = flag("renditions", RenditionSelection::parse(&args.renditions))?;
        let credentials = credentials(args)?;
        let mut aem = AemConfig::new(base);
        aem.credentials = credentials;
        aem.ca_file = args.ca_file.clone();
        aem.proxy = args.proxy.clone();
        aem.connect_timeout = fetch_timeout;
        aem.request_timeout = fetch_timeout;
        aem.client_cert = args.client_cert.clone();
        aem.client_key = args.client_key.clone();
        // Every TLS file is read now, so that a bad one fails before a daemon starts.
        check_tls(&aem)?;
        let mut config = MountConfig {
            remote_url: args.remote_url.clone(),
            aem,
            root,
            mountpoint: args.mountpoint.clone(),
            cache_dir: PathBuf::new(),
            cache_size,
            fetch_timeout,
            async_threshold,
            renditions,
            dir_ttl,
            revalidate: !args.no_revalidate,
            formats,
            allow_other: args.allow_other,
            log_file: args.log_file.clone(),
            metrics_listen: args.metrics_listen.as_deref().map(metrics_addr).transpose()?,
            prefetch_listings: args.prefetch_listings,
            verbose: args.verbose,
            foreground: args.foreground,
        };
        config.cache_dir = match &args.cache_dir {
            Some(dir) => absolute(dir)?,
            None => default_cache_dir(&config.remote_id()),
        };
        config.mountpoint = absolute(&args.mountpoint)?;
        if let Some(log) = &config.log_file {
            config.log_file = Some(absolute(log)?);
        }
        Ok(config)
    }
}

/// The address of `--metrics-listen`: `HOST:PORT` with an IP address, or `localhost:PORT`.
fn metrics_addr(text: &str) -> anyhow::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    let shown = || {
        format!("--metrics-listen {text}: not an address to listen on (give IP:PORT, e.g. 127.0.0.1:9750)")
    };
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    match text.strip_prefix("localhost:") {
        Some(_) => text.to_socket_addrs().ok().and_then(|mut a| a.next()).with_context(shown),
        None => bail!(shown()),
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("{}", path.display()))
}

/// Credentials from --user with --password-file or DAMFS_PASSWORD, --token-file, or
/// --credentials-file. Files are read now, so that a bad one stops the mount at once.
fn credentials(args: &MountArgs) -> anyhow::Result<Credentials> {
    let given = [args.user.is_some(), args.token_file.is_some(), args.credentials_file.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        bail!("--user, --token-file and --credentials-file: give one way to authenticate, not several");
    }
    if args.password_file.is_some() && args.user.is_none() {
        bail!("--password-file: also give --user");
    }
    if let Some(user) = &args.user {
        let password = match (&args.password_file, std::env::var("DAMFS_PASSWORD")) {
            (Some(file), _) => read_secret_file(file, "--password-file")?,
            (None, Ok(pw)) if !pw.is_empty() => pw,
            _ => bail!("--user {user}: give the password with --password-file FILE or DAMFS_PASSWORD"),
        };
        return Ok(Credentials::Basic { user: user.clone(), password });
    }
    if let Some(file) = &args.token_file {
        crate::remote::auth::check_token_file(file)?;
        return Ok(Credentials::TokenFile(absolute(file)?));
    }
    if let Some(file) = &args.credentials_file {
        let creds = crate::remote::ims::ServiceCredentials::read(file)?;
        return Ok(Credentials::Service(std::sync::Arc::new(creds)));
    }
    Ok(Credentials::None)
}

/// `/var/cache/damfs/<id>` for root, `$XDG_CACHE_HOME/damfs/<id>` (or `~/.cache/damfs/<id>`)
/// otherwise, where `<id>` names the remote's host and folder.
fn default_cache_dir(remote_id: &str) -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let base = if unsafe { libc::geteuid() } == 0 {
        PathBuf::from("/var/cache/damfs")
    } else {
        user_cache_home().join("damfs")
    };
    let readable: String = remote_id
        .split("://")
        .last()
        .unwrap_or(remote_id)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .take(60)
        .collect();
    base.join(tagged(readable.trim_matches('_'), remote_id.as_bytes()))
}
