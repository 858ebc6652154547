//! Helpers shared by the benchmarks: a mount of the release binary, timed, always cleaned up.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The damfs binary built with the benchmark.
pub fn damfs() -> &'static str {
    env!("CARGO_BIN_EXE_damfs")
}

/// Mounts `url` on `mnt` in the background with `args`; returns how long `damfs mount` took.
pub fn mount(url: &str, mnt: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(damfs()).arg("mount").arg(url).arg(mnt).args(args).output().expect("damfs mount");
    let took = start.elapsed();
    assert!(out.status.success(), "damfs mount failed: {}", String::from_utf8_lossy(&out.stderr));
    took
}

/// Unmounts with `damfs umount` (or lazily, if that fails).
pub fn unmount(mnt: &Path) {
    let ok = Command::new(damfs()).arg("umount").arg(mnt).status().map(|s| s.success()).unwrap_or(false);
    if !ok {
        let _ = Command::new("umount").arg("-l").arg(mnt).status();
    }
}

/// Unmounts on drop, so a failing benchmark leaves no mount behind.
pub struct Guard(pub PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        if damfs::mount::mountinfo::find(&self.0).is_some() {
            unmount(&self.0);
        }
    }
}

/// The median of some durations.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
