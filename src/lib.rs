//! damfs mounts a remote Adobe Experience Manager Assets DAM as a read-only Linux filesystem.
//!
//! The data path of a `cat` on the mount, top to bottom:
//!
//! ```text
//! cli / config      flags and -o options -> one validated config
//! mount             mount/unmount, background mode, signals
//! fuse              kernel request -> vfs call -> reply (the only module naming fuser types)
//! vfs               inode table, names, directory state, reserved trees (.renditions, .metadata)
//! materialize       asset -> bytes once: single-flight, deadlines, sync vs async transfers
//! cache             on-disk store: content files, index, LRU by bytes
//! remote            the AEM Assets HTTP client (and a fake for tests)
//! ```
//!
//! Beside it: `serve`, the sample DAM (`damfs serve`), and `sample`, which generates the
//! sample data it serves.

#![warn(missing_docs)]

pub mod cache;
pub mod cli;
pub mod config;
pub mod demo;
pub mod digest;
pub mod error;
pub mod flight;
pub mod fuse;
pub mod listing;
pub mod materialize;
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
