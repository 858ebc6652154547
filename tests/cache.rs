//! The persistent cache through real mounts: remounts offline, the byte cap, crashes in the
//! middle of transfers, `damfs cache verify` and `damfs prefetch`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::TestServer;
use common::mount::{Mounted, damfs_bin, wait_until, within};
use damfs::sample::{SampleOptions, generate};

fn sample(assets: usize, large: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dam");
    generate(&SampleOptions { dir: root.clone(), assets, seed: 11, large_size: large }).unwrap();
    (dir, root)
}

/// Image assets of the sample, relative paths, sorted.
fn images(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".jpg") || name.ends_with(".png") {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Disk usage of the cache's content files, in bytes of allocated blocks.
fn content_disk_usage(cache: &Path) -> u64 {
    let mut total = 0;
    for shard in std::fs::read_dir(cache.join("content")).unwrap() {
        for file in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            total += file.unwrap().metadata().unwrap().blocks() * 512;
        }
    }
    total
}

fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

#[test]
fn a_remount_with_the_remote_gone_serves_what_was_materialized_with_the_same_inodes() {
    let (keep, root) = sample(30, 1 << 20);
    let mut server = TestServer::start(&root);
    let cache = keep.path().join("cache");
    let assets = images(&root);
    let (hot, cold) = assets.split_at(assets.len() / 2);
    let mut inodes = BTreeMap::new();
    {
        let mut mount = Mounted::start_with_cache(&server.url(), &cache, tempfile::tempdir().unwrap(), &[]);
        for rel in hot {
            assert_eq!(std::fs::read(mount.path(rel)).unwrap(), std::fs::read(root.join(rel)).unwrap());
            inodes.insert(rel.clone(), std::fs::metadata(mount.path(rel)).unwrap().ino());
            let folder = split(rel).0;
            inodes.insert(format!("{folder}/"), std::fs::metadata(mount.path(folder)).unwrap().ino());
        }
        for rel in cold {
            std::fs::metadata(mount.path(rel)).unwrap();
        }
        mount.unmount();
    }
    server.stop();

    let mount = Mounted::start_with_cache(
        &server.url(),
        &cache,
        tempfile::tempdir().unwrap(),
        &["--fetch-timeout", "2s"],
    );
    assert!(mount.log_text().contains("starting offline"), "{}", mount.log_text());
    for rel in hot {
        let start = Instant::now();
        assert_eq!(std::fs::read(mount.path(rel)).unwrap(), std::fs::read(root.join(rel)).unwrap(), "{rel}");
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(std::fs::metadata(mount.path(rel)).unwrap().ino(), inodes[rel], "{rel}");
        let folder = split(rel).0;
        assert_eq!(std::fs::metadata(mount.path(folder)).unwrap().ino(), inodes[&format!("{folder}/")]);
        let listed: Vec<String> = std::fs::read_dir(mount.path(folder))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(listed.contains(&split(rel).1.to_string()));
    }
    // What was never materialized answers ETIMEDOUT within the timeout.
    let path = mount.path(&cold[0]);
    let (elapsed, errno) = within(Duration::from_secs(10), "an offline open", move || {
        let start = Instant::now();
        let err = std::fs::read(&path).unwrap_err();
        (start.elapsed(), err.raw_os_error())
    });
    assert_eq!(errno, Some(libc::ETIMEDOUT));
    assert!(elapsed <= Duration::from_millis(2500), "{elapsed:?}");
}

#[test]
fn the_cap_bounds_disk_usage_and_evicted_assets_come_back() {
    let (keep, root) = sample(40, 1 << 20);
    let server = TestServer::start(&root);
    let cap: u64 = 256 << 10;
    let cache = keep.path().join("cache");
    let mount = Mounted::start_with_cache(
        &server.url(),
        &cache,
        tempfile::tempdir().unwrap(),
        &["--cache-size", "256K"],
    );
    let assets = images(&root);
    let mut largest = 0;
    for rel in &assets {
        assert_eq!(std::fs::read(mount.path(rel)).unwrap(), std::fs::read(root.join(rel)).unwrap(), "{rel}");
        // One asset (with its renditions) is open at a time here.
        let (folder, name) = split(rel);
        let asset_bytes: u64 = std::fs::read_dir(mount.path(&format!("{folder}/.renditions/{name}")))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len().div_ceil(4096) * 4096)
            .sum();
        largest = largest.max(asset_bytes);
        let used = content_disk_usage(&cache);
        assert!(used <= cap + largest, "{used} bytes on disk after {rel}, cap {cap} + open {largest}");
    }
    assert!(mount.log_text().contains("evicting"), "nothing was evicted: the test needs a smaller cap");
    server.catalog().clear_requests();
    for rel in &assets {
        assert_eq!(
            std::fs::read(mount.path(rel)).unwrap(),
            std::fs::read(root.join(rel)).unwrap(),
            "{rel} again"
        );
    }
    assert!(server.catalog().requests().iter().any(|r| r.is_binary()), "evicted assets were fetched again");
}

#[test]
fn a_crash_in_the_middle_of_a_transfer_never_serves_a_partial_file() {
    let (keep, root) = sample(12, 6 << 20);
    let server = TestServer::start(&root);
    let cache = keep.path().join("cache");
    let large = damfs::sample::LARGE_ASSET;
    let want = std::fs::read(root.join(large)).unwrap();
    for fraction in [0.2, 0.5, 0.8] {
        server.catalog().set_throttle(Some(4 << 20));
        let mut mount = Mounted::start_with_cache(
            &server.url(),
            &cache,
            tempfile::tempdir().unwrap(),
            &["--async-threshold", "1M"],
        );
        let path = mount.path(large);
        let reader = std::thread::spawn(move || std::fs::read(path).map(|b| b.len()));
        let tmp = cache.join("tmp");
        let target = (want.len() as f64 * fraction) as u64;
        let reached = wait_until(Duration::from_secs(20), || {
            std::fs::read_dir(&tmp)
                .unwrap()
                .flatten()
                .any(|f| f.metadata().map(|m| m.len() >= target).unwrap_or(false))
        });
        assert!(reached, "the transfer never reached {target} bytes");
        mount.crash();
        let _ = reader.join();

        server.catalog().set_throttle(None);
        let mount = Mounted::start_with_cache(&server.url(), &cache, tempfile::tempdir().unwrap(), &[]);
        assert_eq!(std::fs::read_dir(cache.join("tmp")).unwrap().count(), 0, "partial files are gone");
        server.catalog().clear_requests();
        assert_eq!(std::fs::read(mount.path(large)).unwrap(), want, "after a crash at {fraction}");
        assert!(server.catalog().requests().iter().any(|r| r.is_binary() && r.path.contains("panorama")));
        drop(mount);
        let out = Command::new(damfs_bin())
            .args(["cache", "evict", large, "--cache-dir"])
            .arg(&cache)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn verify_finds_a_corrupted_file_and_the_next_open_fetches_it_again() {
    let (keep, root) = sample(10, 1 << 20);
    let server = TestServer::start(&root);
    let cache = keep.path().join("cache");
    let mount = Mounted::start_with_cache(&server.url(), &cache, tempfile::tempdir().unwrap(), &[]);
    // A JPEG: its renditions are re-encoded, so only the original's content file has its bytes.
    let rel = images(&root)
        .into_iter()
        .find(|p| p.starts_with(damfs::sample::BULK_FOLDER) && p.ends_with(".jpg"))
        .unwrap();
    let want = std::fs::read(root.join(&rel)).unwrap();
    assert_eq!(std::fs::read(mount.path(&rel)).unwrap(), want);
    let victim = std::fs::read_dir(cache.join("content"))
        .unwrap()
        .flat_map(|s| std::fs::read_dir(s.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .find(|p| std::fs::read(p).unwrap() == want)
        .expect("the original's content file");
    let mut bad = want.clone();
    bad[want.len() / 2] ^= 0xff;
    std::fs::write(&victim, &bad).unwrap();

    let out =
        Command::new(damfs_bin()).args(["cache", "verify", "--cache-dir"]).arg(&cache).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("corrupt: {rel} rendition original")), "{text}");
    assert!(!victim.exists());

    server.catalog().clear_requests();
    assert_eq!(std::fs::read(mount.path(&rel)).unwrap(), want);
    assert!(server.catalog().requests().iter().any(|r| r.is_binary()), "the corrupt file was fetched again");
    let out =
        Command::new(damfs_bin()).args(["cache", "verify", "--cache-dir"]).arg(&cache).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let out = Command::new(damfs_bin()).args(["cache", "stats", "--cache-dir"]).arg(&cache).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("materialized"));
    let out = Command::new(damfs_bin()).args(["cache", "clear", "--cache-dir"]).arg(&cache).output().unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("in use"),
        "clear refused while mounted"
    );

    // Told to, the mount drops what is not in use itself; the next read fetches again.
    let out = Command::new(damfs_bin())
        .args(["cache", "clear", "--drop-from-mount", "--cache-dir"])
        .arg(&cache)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("the mount dropped 1 assets"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(cache.join("content"))
            .unwrap()
            .flat_map(|s| std::fs::read_dir(s.unwrap().path()).unwrap())
            .count(),
        0
    );
    server.catalog().clear_requests();
    assert_eq!(std::fs::read(mount.path(&rel)).unwrap(), want);
    assert!(server.catalog().requests().iter().any(|r| r.is_binary()));
}

#[test]
fn prefetch_makes_a_whole_folder_local() {
    let (_keep, root) = sample(40, 1 << 20);
    let server = TestServer::start(&root);
    let mount = Mounted::start(&server.url(), &[]);
    let folder = "we-retail";
    let out = Command::new(damfs_bin())
        .arg("prefetch")
        .arg("--recursive")
        .arg(mount.path(folder))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    let assets: Vec<String> = images(&root).into_iter().filter(|p| p.starts_with(folder)).collect();
    assert!(text.contains(&format!("prefetched {n} of {n} assets", n = assets.len())), "{text}");

    server.catalog().clear_requests();
    for rel in &assets {
        assert_eq!(std::fs::read(mount.path(rel)).unwrap(), std::fs::read(root.join(rel)).unwrap());
        let (dir, name) = split(rel);
        for r in std::fs::read_dir(mount.path(&format!("{dir}/.renditions/{name}"))).unwrap() {
            std::fs::read(r.unwrap().path()).unwrap();
        }
    }
    assert_eq!(server.catalog().requests().len(), 0, "{:?}", server.catalog().requests());

    let outside = Command::new(damfs_bin()).args(["prefetch", "/tmp"]).output().unwrap();
    assert!(
        !outside.status.success()
            && String::from_utf8_lossy(&outside.stderr).contains("not inside a damfs mount")
    );
}
