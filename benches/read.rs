//! Read paths of a real mount of the sample DAM: listing a large folder cold and warm,
//! the first open of an asset (materialization), the first byte of a large asset, and the
//! throughput of cached reads through the mount against the same bytes read from local
//! disk. Prints a table.

mod common;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use damfs::sample::{BULK_FOLDER, LARGE_ASSET, SampleOptions, generate};

fn read_all(path: &Path) -> (u64, Duration) {
    let start = Instant::now();
    let mut file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    (total, start.elapsed())
}

fn list(dir: &Path) -> (usize, Duration) {
    let start = Instant::now();
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::symlink_metadata(entry.unwrap().path()).unwrap();
        n += 1;
    }
    (n, start.elapsed())
}

fn mib_s(bytes: u64, d: Duration) -> String {
    format!("{:.0} MiB/s", bytes as f64 / (1 << 20) as f64 / d.as_secs_f64())
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("dam");
    let assets: usize = std::env::var("DAMFS_BENCH_ASSETS").ok().and_then(|v| v.parse().ok()).unwrap_or(1200);
    generate(&SampleOptions { dir: sample.clone(), assets, seed: 1, large_size: 256 << 20 }).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let catalog =
        damfs::serve::Catalog::open(&sample, &tmp.path().join("state"), damfs::serve::Auth::default())
            .unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    runtime.spawn(damfs::serve::run(listener, Arc::clone(&catalog), async move {
        let _ = stopped.await;
    }));

    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let cache = tmp.path().join("cache");
    let _guard = common::Guard(mnt.clone());
    common::mount(&url, &mnt, &["--cache-dir", cache.to_str().unwrap()]);

    let bulk = mnt.join(BULK_FOLDER);
    let (entries, cold_ls) = list(&bulk);
    let (_, warm_ls) = list(&bulk);
    let small = std::fs::read_dir(&bulk).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_file()).unwrap();
    let (small_len, first_open) = read_all(&small);
    let (_, cached_small) = read_all(&small);

    let large = mnt.join(LARGE_ASSET);
    let start = Instant::now();
    let mut file = std::fs::File::open(&large).unwrap();
    let opened = start.elapsed();
    let mut byte = [0u8; 1];
    file.read_exact(&mut byte).unwrap();
    let first_byte = start.elapsed();
    drop(file);
    let (large_len, first_read) = read_all(&large);
    let (_, mount_read) = read_all(&large);
    let (_, mount_read_again) = read_all(&large);
    let local = sample.join(LARGE_ASSET);
    read_all(&local);
    let (_, local_read) = read_all(&local);

    let stats = damfs::status::read(&mnt).unwrap();
    common::unmount(&mnt);
    let _ = stop.send(());

    println!(
        "\nread paths through a mount of the sample DAM ({assets} assets, loopback server, debug-free release build)\n"
    );
    println!("| measure | result |");
    println!("|---|---|");
    println!(
        "| `ls -l` of {BULK_FOLDER} ({entries} entries), cold: listing + QueryBuilder | {} |",
        common::ms(cold_ls)
    );
    println!("| `ls -l` of the same folder, warm | {} |", common::ms(warm_ls));
    println!(
        "| first open + read of a {small_len}-byte asset (materializes 5 renditions) | {} |",
        common::ms(first_open)
    );
    println!("| the same read, cached | {} |", common::ms(cached_small));
    println!(
        "| open of the {} MiB asset (above --async-threshold) | {} |",
        large_len >> 20,
        common::ms(opened)
    );
    println!("| its first byte | {} |", common::ms(first_byte));
    println!("| reading it whole while it streams in | {} |", mib_s(large_len, first_read));
    println!(
        "| reading it cached, through the mount | {} / {} |",
        mib_s(large_len, mount_read),
        mib_s(large_len, mount_read_again)
    );
    println!("| the same bytes from local disk (page cache) | {} |", mib_s(large_len, local_read));
    println!(
        "| opens served by FUSE passthrough | {} |",
        stats.get("passthrough_opens").cloned().unwrap_or_default()
    );
}
