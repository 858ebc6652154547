//! The `damfs` binary: parse, validate, dispatch, and turn the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;
use damfs::cli::{Cli, Command};
use damfs::sample::SampleOptions;
use damfs::serve::ServeConfig;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("damfs: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Sample(args) => {
            init_logging(0);
            let options = SampleOptions::try_from(args)?;
            let summary = damfs::sample::generate(&options)?;
            println!("{summary}");
        }
        Command::Serve(args) => {
            init_logging(args.verbose.max(1));
            let config = ServeConfig::try_from(args)?;
            damfs::serve::serve_blocking(config)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr: warnings by default, info with -v, debug with -vv; `RUST_LOG` overrides.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
}
