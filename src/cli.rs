//! Command-line syntax: clap structs holding raw values. Validation into typed
//! configurations happens in `config`, never here.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// damfs: mount a remote AEM Assets DAM as a read-only filesystem.
#[derive(Debug, Parser)]
#[command(name = "damfs", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount a remote DAM read-only (in the background unless -f).
    Mount(Box<MountArgs>),
    /// Unmount a damfs mount and wait for its daemon to end.
    Umount(UmountArgs),
    /// Show the counters and cache state of a live mount.
    Status(StatusArgs),
    /// Materialize files or folders of a live mount ahead of time, with a progress bar.
    Prefetch(PrefetchArgs),
    /// Look after a cache directory: stats, verify, evict, clear.
    Cache(CacheArgs),
    /// Try damfs on a generated sample: sample DAM + sample server + mount, in one command.
    Demo(DemoArgs),
    /// Write a deterministic sample DAM (images, a document, titles and tags) into DIR.
    Sample(SampleArgs),
    /// Serve a folder of images as an AEM Assets instance (the sample DAM).
    Serve(ServeArgs),
}

/// `damfs sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Folder to write the sample into (created; must be empty if it exists).
    pub dir: PathBuf,
    /// Number of assets to generate.
    #[arg(long, default_value_t = 1200)]
    pub assets: usize,
    /// Seed of the generator: the same seed writes a byte-identical tree.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Size of the one large asset (e.g. 64M; 0 leaves it out).
    #[arg(long, default_value = "64M", value_name = "SIZE")]
    pub large: String,
}

/// `damfs serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Folder to serve as /content/dam.
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4502", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Require HTTP Basic authentication as this user (with --password-file).
    #[arg(long, value_name = "USER", requires = "password_file")]
    pub user: Option<String>,
    /// File holding the password for --user (first line).
    #[arg(long, value_name = "FILE", requires = "user")]
    pub password_file: Option<PathBuf>,
    /// File holding a bearer token that is accepted as well (first line).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Issue tokens at /ims/exchange/jwt and /ims/token/v3 to this client ID (with
    /// --ims-secret-file); they are accepted until they expire.
    #[arg(long, value_name = "ID", requires = "ims_secret_file")]
    pub ims_client_id: Option<String>,
    /// File holding the client secret of --ims-client-id (first line).
    #[arg(long, value_name = "FILE", requires = "ims_client_id")]
    pub ims_secret_file: Option<PathBuf>,
    /// Lifetime of the tokens issued to --ims-client-id.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub token_lifetime: String,
    /// Folder for generated renditions and digests [default: a folder under the system
    /// cache directory named after DIR].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log more: requests are logged by default; -v adds debug detail.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// `damfs mount`. Every long option can also be given as `-o key=value` (or `-o key` for
/// switches), as mount(8) and /etc/fstab pass them.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// The remote: https://host (with :port if needed), optionally followed by
    /// /content/dam/FOLDER to mount that folder.
    pub remote_url: String,
    /// Where to mount it (an existing, empty directory).
    pub mountpoint: PathBuf,
    /// User for HTTP Basic authentication (with --password-file or DAMFS_PASSWORD). Also
    /// spelled --username (`-o username=` in fstab, where mount(8) owns `user`).
    #[arg(long, visible_alias = "username", value_name = "USER")]
    pub user: Option<String>,
    /// File holding the password of --user (first line). The password is never accepted
    /// on the command line; DAMFS_PASSWORD in the environment works too.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// File holding a bearer token (its first line, or the JSON of a local development
    /// token with "accessToken"), for AEM as a Cloud Service. Read again when it changes and
    /// after a 401, so the token can be rotated under a live mount.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Service credentials JSON (AEM Developer Console technical account, or OAuth
    /// Server-to-Server): tokens are obtained from IMS and renewed before they expire.
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
    /// Where materialized assets are kept (default: /var/cache/damfs/REMOTE for root,
    /// $XDG_CACHE_HOME/damfs/REMOTE or ~/.cache/damfs/REMOTE otherwise).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Most bytes of materialized content kept (e.g. 512M, 10G); least recently used
    /// assets are evicted whole [default: no bound].
    #[arg(long, value_name = "SIZE")]
    pub cache_size: Option<String>,
    /// Bound on every remote fetch, counted from the kernel's request (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub fetch_timeout: String,
    /// Renditions larger than this are transferred in the background after open returns.
    #[arg(long, default_value = "10M", value_name = "SIZE")]
    pub async_threshold: String,
    /// Renditions fetched at the first open of an asset: all, or names and globs separated
    /// by commas or colons (original,cq5dam.web.*; colons inside -o), original among them.
    /// The others are fetched when opened under .renditions/; text and metadata renditions
    /// (cqdam.text.txt, *.xmp, *.json, *.xml) are always left to then.
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub renditions: String,
    /// Folder listings are re-read from the remote after this (e.g. 60s, 5m); an asset the
    /// re-read listing shows changed or gone is dropped from the cache and fetched anew.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub dir_ttl: String,
    /// Keep materialized assets as they were fetched, whatever later listings say (a
    /// snapshot): new and deleted assets still come and go with the listings.
    #[arg(long)]
    pub no_revalidate: bool,
    /// Which assets to show: images, all, or MIME types separated by commas or colons
    /// (image/*,application/pdf; colons inside -o).
    #[arg(long, default_value = "images", value_name = "LIST")]
    pub formats: String,
    /// Let every local user read the mount (not only the one who mounted it).
    #[arg(long)]
    pub allow_other: bool,
    /// HTTP(S) proxy for every remote request (e.g. http://proxy:3128).
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Extra PEM CA certificate(s) to trust for the remote, beside the system trust store; a
    /// certificate in FILE that the server presents exactly (a self-signed one) is trusted as
    /// it is.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for a remote behind a mutual-TLS proxy (with --client-key,
    /// unless FILE holds the key too).
    #[arg(long, value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Write the log here (in the background the log goes nowhere otherwise).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Serve metrics for Prometheus at http://ADDR/metrics (e.g. 127.0.0.1:9750); nothing
    /// listens unless this is given.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Walk the whole folder tree in the background after mounting (two listings at a
    /// time, pausing while requests wait on the remote), so that the first ls anywhere is
    /// answered from memory.
    #[arg(long)]
    pub prefetch_listings: bool,
    /// Log more: -v info, -vv debug.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Stay in the foreground (logs to stderr unless --log-file); Ctrl-C unmounts.
    #[arg(short, long)]
    pub foreground: bool,
    /// mount(8)-style options: comma-separated key=value (any long option) and switches.
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
}

/// `damfs demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to mount the sample DAM (created if missing; must be empty).
    pub mountpoint: PathBuf,
    /// Where the sample, its renditions and the cache are kept between runs [default:
    /// ~/.cache/damfs-demo].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Number of sample assets (generated on the first run).
    #[arg(long, default_value_t = 1200)]
    pub assets: usize,
    /// Log more: -v info, -vv debug.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// `damfs status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The mount point.
    pub mountpoint: PathBuf,
    /// Print the counters as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `damfs prefetch`.
#[derive(Debug, Args)]
pub struct PrefetchArgs {
    /// Assets or folders inside a damfs mount; with --from, the one mount point the listed
    /// paths are relative to.
    #[arg(required_unless_present = "from")]
    pub paths: Vec<PathBuf>,
    /// Also the paths listed in FILE (- for standard input), one per line: relative to the
    /// mount point, absolute, or a DAM path or URL (/content/dam/...); blank lines and
    /// lines starting with # are skipped.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Also every asset in sub-folders.
    #[arg(short, long)]
    pub recursive: bool,
    /// Assets materialized at once.
    #[arg(short, long, default_value_t = 4, value_name = "N")]
    pub jobs: usize,
}

/// `damfs cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// The cache directory (as given to damfs mount --cache-dir).
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// With clear: if a mount uses the cache, have it drop every asset not in use instead.
    #[arg(long, global = true)]
    pub drop_from_mount: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: CacheAction,
}

/// `damfs cache` actions.
#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Print a table: assets, bytes, cap, oldest and newest access, the biggest folders.
    Stats,
    /// Recompute every file's digest; remove corrupt entries (exit status 1 if any).
    Verify,
    /// Drop the cached content of an asset or of every asset under a folder.
    Evict {
        /// A DAM path (we-retail/en/hiking.jpg, or /content/dam/we-retail/en).
        path: String,
    },
    /// Empty the cache (refused while a mount uses it, unless --drop-from-mount).
    Clear,
}

/// `damfs umount`.
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The mount point.
    pub mountpoint: PathBuf,
}

/// Generic mount(8) options that say nothing to damfs: accepted and ignored.
const GENERIC_OPTIONS: &[&str] = &[
    "ro",
    "defaults",
    "auto",
    "noauto",
    "nofail",
    "_netdev",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "nodev",
    "nosuid",
    "noexec",
    "exec",
    "dev",
    "suid",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "nodiratime",
    "lazytime",
    "async",
    "loop",
];

/// Expands `-o a=b,c` into `--a b --c` so that clap sees only long options; refuses `rw`.
pub fn expand_mount_options(options: &[String]) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    for option in options.iter().flat_map(|o| o.split(',')).map(str::trim).filter(|o| !o.is_empty()) {
        let (key, value) = match option.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (option, None),
        };
        if key == "rw" {
            return Err(
                "-o rw: damfs mounts are read-only; mount with -o ro (mount(8) passes rw unless ro is given)"
                    .into(),
            );
        }
        if value.is_none() && GENERIC_OPTIONS.contains(&key) || key.starts_with("x-") || key == "comment" {
            continue;
        }
        let flag = format!("--{}", key.replace('_', "-"));
        args.push(flag);
        if let Some(value) = value {
            args.push(value.to_string());
        }
    }
    Ok(args)
}

/// Rewrites the argv of `mount.damfs SOURCE DIR [-sfnv] [-o OPTS]` (mount(8)'s helper
/// convention) into `damfs mount SOURCE DIR ...`. Returns `None` for `-f` (fake mount).
pub fn mount_helper_argv(argv: &[std::ffi::OsString]) -> Option<Vec<std::ffi::OsString>> {
    let mut out: Vec<std::ffi::OsString> = vec!["damfs".into(), "mount".into()];
    let mut iter = argv.iter().skip(1);
    while let Some(arg) = iter.next() {
        match arg.to_str() {
            Some("-o") => {
                if let Some(value) = iter.next() {
                    out.push("-o".into());
                    out.push(value.clone());
                }
            }
            Some("-f") => return None,
            Some("-n" | "-s") => {}
            Some("-v") => out.push("-v".into()),
            _ => out.push(arg.clone()),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_options_expand() {
        let opts =
            vec!["ro,user=svc,password_file=/etc/pw,allow_other,_netdev,x-systemd.automount".to_string()];
        assert_eq!(
            expand_mount_options(&opts).unwrap(),
            vec!["--user", "svc", "--password-file", "/etc/pw", "--allow-other"]
        );
        assert!(expand_mount_options(&["rw".to_string()]).unwrap_err().contains("read-only"));
    }

    #[test]
    fn helper_argv() {
        let argv: Vec<std::ffi::OsString> =
            ["mount.damfs", "http://h/content/dam", "/mnt", "-n", "-o", "rw,user=u"]
                .iter()
                .map(|s| s.into())
                .collect();
        let out = mount_helper_argv(&argv).unwrap();
        assert_eq!(
            out,
            ["damfs", "mount", "http://h/content/dam", "/mnt", "-o", "rw,user=u"]
                .map(std::ffi::OsString::from)
        );
        let fake: Vec<std::ffi::OsString> =
            ["mount.damfs", "a", "b", "-f"].iter().map(|s| s.into()).collect();
        assert!(mount_helper_argv(&fake).is_none());
    }
}
