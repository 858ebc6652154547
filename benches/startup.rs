//! Startup cost with a large cache: a synthetic cache of N materialized assets (100,000 by
//! default; DAMFS_BENCH_ASSETS to change), then the time to open it and the time until an
//! offline `damfs mount` on it answers. Prints a table.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::params;

const REMOTE: &str = "http://127.0.0.1:9/content/dam";

fn build(dir: &Path, assets: usize) {
    // The layout and schema come from the cache itself; rows and files are then written in
    // bulk, as years of use would leave them.
    let cache = damfs::cache::Cache::open(dir, &format!("{}/", REMOTE.trim_end_matches('/')), None).unwrap();
    let paths: Vec<(String, std::path::PathBuf)> = (0..assets)
        .map(|i| {
            let asset = format!("folder-{:03}/asset-{i:06}.jpg", i % 500);
            let file = cache.content_path(&asset, "original");
            (asset, file)
        })
        .collect();
    cache.close();
    drop(cache);
    let mut conn = rusqlite::Connection::open(dir.join("index.sqlite")).unwrap();
    let tx = conn.transaction().unwrap();
    let manifest = r#"{"path":"x","title":null,"description":null,"format":"image/jpeg","size":100,"sha1":null,"width":null,"height":null,"tags":[],"renditions":[{"name":"original","size":100,"mime":null}],"metadata":{}}"#;
    for (i, (asset, file)) in paths.iter().enumerate() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, [7u8; 100]).unwrap();
        tx.execute("INSERT INTO renditions VALUES (?1, 'original', 100, 'x')", params![asset]).unwrap();
        tx.execute("INSERT INTO assets VALUES (?1, ?2, ?3, ?3)", params![asset, manifest, i as i64]).unwrap();
        tx.execute("INSERT INTO inodes VALUES (?1, ?2)", params![format!("a:{asset}"), i as i64 + 2])
            .unwrap();
    }
    let children: Vec<String> = (0..500)
        .map(|f| {
            format!(r#"{{"name":"folder-{f:03}","folder":true,"size":null,"mtime":null,"format":null}}"#)
        })
        .collect();
    tx.execute(
        "INSERT INTO listings VALUES ('', ?1, 0)",
        params![format!(r#"{{"children":[{}]}}"#, children.join(","))],
    )
    .unwrap();
    tx.commit().unwrap();
}

fn main() {
    let assets: usize =
        std::env::var("DAMFS_BENCH_ASSETS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("cache");
    let start = Instant::now();
    build(&cache_dir, assets);
    let built = start.elapsed();

    let mut opens = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let cache = damfs::cache::Cache::open(&cache_dir, &format!("{REMOTE}/"), None).unwrap();
        opens.push(start.elapsed());
        assert_eq!(cache.usage().0, assets as u64);
        cache.close();
    }

    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _guard = common::Guard(mnt.clone());
    let mut mounts = Vec::new();
    for _ in 0..3 {
        // Nothing listens on port 9: the mount starts offline, from the cache alone.
        let args = ["--cache-dir", cache_dir.to_str().unwrap(), "--fetch-timeout", "1s"];
        let took = common::mount(REMOTE, &mnt, &args);
        assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 500, "the persisted root listing serves");
        mounts.push(took);
        common::unmount(&mnt);
        std::thread::sleep(Duration::from_millis(100));
    }

    println!(
        "\nstartup with a cache of {assets} materialized assets (synthetic index built in {:.1}s)\n",
        built.as_secs_f64()
    );
    println!("| measure | median of 3 | target |");
    println!("|---|---|---|");
    println!("| open the cache (index, LRU table) | {} | |", common::ms(common::median(opens)));
    println!(
        "| `damfs mount` until the mount answers (offline start) | {} | < 1 s |",
        common::ms(common::median(mounts))
    );
}
