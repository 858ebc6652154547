//! The `damfs` binary (also installed as `mount.damfs`): parse, validate, dispatch, and
//! turn the outcome into an exit code.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use damfs::cache::admin::CacheDir;
use damfs::cli::{CacheAction, CacheArgs, Cli, Command, expand_mount_options, mount_helper_argv};
use damfs::config::MountConfig;
use damfs::sample::SampleOptions;
use damfs::serve::ServeConfig;

/// mount(8)'s exit status for a failed mount, which its helpers are expected to use.
const MOUNT_FAILURE: u8 = 32;

fn main() -> ExitCode {
    let as_helper = std::env::args_os()
        .next()
        .is_some_and(|a| Path::new(&a).file_name().is_some_and(|n| n == "mount.damfs"));
    let failure = if as_helper { ExitCode::from(MOUNT_FAILURE) } else { ExitCode::FAILURE };
    let argv = match argv() {
        Ok(Some(argv)) => argv,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("damfs: {e}");
            return if as_helper { failure } else { ExitCode::from(2) };
        }
    };
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) if as_helper && e.use_stderr() => {
            let _ = e.print();
            return failure;
        }
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("damfs: {err:#}");
            failure
        }
    }
}

/// The argument vector, in `damfs` form: `mount.damfs SOURCE DIR -o OPTS` becomes
/// `damfs mount SOURCE DIR ...`, and `-o` options of a mount become long options.
/// `None` means there is nothing to do (mount(8)'s fake mount).
fn argv() -> Result<Option<Vec<OsString>>, String> {
    let raw: Vec<OsString> = std::env::args_os().collect();
    let invoked =
        raw.first().map(|a| Path::new(a).file_name().unwrap_or_default().to_os_string()).unwrap_or_default();
    let argv = if invoked == "mount.damfs" {
        match mount_helper_argv(&raw) {
            Some(argv) => argv,
            None => return Ok(None),
        }
    } else {
        raw
    };
    if argv.get(1).is_none_or(|a| a != "mount") {
        return Ok(Some(argv));
    }
    let mut out = Vec::with_capacity(argv.len());
    let mut iter = argv.into_iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        let options = if text == "-o" {
            iter.next().map(|v| v.to_string_lossy().into_owned())
        } else {
            text.strip_prefix("-o").map(str::to_string)
        };
        match options {
            Some(options) => out.extend(expand_mount_options(&[options])?.into_iter().map(OsString::from)),
            None => out.push(arg),
        }
    }
    Ok(Some(out))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Mount(args) => {
            let config = MountConfig::try_from(&**args)?;
            init_logging(config.verbose, config.log_file.as_deref())?;
            damfs::mount::mount(config)?;
        }
        Command::Status(args) => {
            init_logging(0, None)?;
            let stats = damfs::status::read(&args.mountpoint)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{}", damfs::status::render(&stats));
            }
        }
        Command::Prefetch(args) => {
            init_logging(0, None)?;
            let summary = damfs::prefetch::run(args)?;
            if !summary.failed.is_empty() || summary.bad_lines > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Cache(args) => {
            init_logging(0, None)?;
            return cache_command(args);
        }
        Command::Demo(args) => {
            init_logging(args.verbose, None)?;
            damfs::demo::run(args)?;
        }
        Command::Umount(args) => {
            init_logging(0, None)?;
            damfs::mount::umount(&args.mountpoint)?;
        }
        Command::Sample(args) => {
            init_logging(0, None)?;
            let options = SampleOptions::try_from(args)?;
            let summary = damfs::sample::generate(&options)?;
            println!("{summary}");
        }
        Command::Serve(args) => {
            // Requests are logged at info level, which serve shows by default.
            init_logging(args.verbose.saturating_add(1), None)?;
            let config = ServeConfig::try_from(args)?;
            damfs::serve::serve_blocking(config)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `damfs cache ...`.
fn cache_command(args: &CacheArgs) -> anyhow::Result<ExitCode> {
    let Some(dir) = &args.cache_dir else {
        anyhow::bail!("--cache-dir: give the cache directory (as given to damfs mount)");
    };
    let mut cache = CacheDir::open(dir)?;
    match &args.action {
        CacheAction::Stats => print!("{}", cache.stats()?),
        CacheAction::Verify => {
            let report = cache.verify(|_, _| {})?;
            println!("verified {} files ({})", report.checked, damfs::units::human_size(report.bytes));
            for (asset, rendition, why) in &report.corrupt {
                println!(
                    "corrupt: {asset} rendition {rendition}: {why} (removed; the next open fetches it again)"
                );
            }
            if !report.corrupt.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        CacheAction::Evict { path } => {
            let (assets, bytes) = cache.evict(path)?;
            println!("evicted {assets} assets ({})", damfs::units::human_size(bytes));
        }
        CacheAction::Clear => match cache.clear() {
            Ok(()) => println!("cleared {}", dir.display()),
            Err(_) if args.drop_from_mount && dir.join(damfs::cache::control::SOCKET).exists() => {
                let (assets, bytes) = damfs::cache::control::clear(dir)?;
                println!("the mount dropped {assets} assets ({})", damfs::units::human_size(bytes));
            }
            Err(e) => return Err(e),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr (or `log_file`): warnings by default, info with -v, debug with -vv;
/// `RUST_LOG` overrides.
fn init_logging(verbose: u8, log_file: Option<&Path>) -> anyhow::Result<()> {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    if let Some(path) = log_file {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("--log-file {}: {e}", path.display()))?;
        builder.target(env_logger::Target::Pipe(Box::new(file)));
    }
    builder.init();
    Ok(())
}
