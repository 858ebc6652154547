//! damfs mounts a remote Adobe Experience Manager Assets DAM as a read-only Linux filesystem.
//!
//! The data path of a `cat` on the mount, top to bottom; each layer calls only the one below:
//!
//! ```text
//! cli / config        flags and -o options -> one validated config
//! mount               preflight, background daemon, wiring (mount::namespace), umount
//! fuse                kernel request -> vfs call -> reply (the only module naming fuser types)
//! vfs                 inode table, names, reserved trees (.renditions, .metadata, .tags, .search)
//! listing | materialize   listings and searches | asset -> bytes once (manifests, transfers)
//! cache | remote      on-disk store (content, index, LRU) | the AEM Assets HTTP client
//! ```
//!
//! vfs keeps one thing in the cache itself, inode numbers, through `cache::InodeStore`.
//! Shared by several layers and depending on none: `flight` (single-flight), `bounded` (a
//! least-recently-used map bounded by weight), `deadline`
//! (a caller's deadline, a step's budget), `names` (the one rule for file names), `digest`,
//! `error`, `fileio` (positional reads into unzeroed buffers), `stats` and `metrics` (what a Prometheus scraper reads). Beside the mount:
//! `serve`, the sample DAM (`damfs serve`), and `sample`, which generates the sample data it
//! serves.

#![warn(missing_docs)]

pub mod bounded;
pub mod cache;
pub mod cli;
pub mod config;
pub mod deadline;
pub mod demo;
pub mod digest;
pub mod error;
pub mod fileio;
pub mod flight;
pub mod fuse;
pub mod listing;
pub mod materialize;
pub mod metrics;
pub mod mount;
pub mod names;
pub mod prefetch;
pub mod remote;
pub mod sample;
pub mod serve;
pub mod sidecar;
pub mod stats;
pub mod status;
pub mod units;
pub mod vfs;
