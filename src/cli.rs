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
    /// Folder for generated renditions and digests [default: a folder under the system
    /// cache directory named after DIR].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log each request (-v) and more (-vv).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}
