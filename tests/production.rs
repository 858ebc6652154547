//! A production DAM through a real kernel mount: large folders on a slow remote. `damfs
//! serve` delays every listing page as an AEM author under load does.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use common::mount::{Mounted, within};

/// A folder of `n` small assets (a listing needs no valid image).
fn folder_of(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, dam) = common::dam_dir();
    let folder = dam.join("big");
    std::fs::create_dir(&folder).unwrap();
    for i in 0..n {
        std::fs::write(folder.join(format!("a{i:05}.jpg")), [i as u8; 16]).unwrap();
    }
    (tmp, dam)
}

fn count(dir: &std::path::Path) -> std::io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        entry?;
        n += 1;
    }
    Ok(n)
}

#[test]
fn a_large_folder_on_a_slow_remote_lists_whole_within_the_timeout() {
    let (_tmp, dam) = folder_of(3000);
    let server = TestServer::start(&dam);
    let mount = Mounted::start(&server.url(), &[]);
    // 30 pages of 100 (the server's clamp), each 0.25 s late: 7.5 s one after the other.
    server.catalog().set_listing_delay(Some(Duration::from_millis(250)));
    let dir = mount.path("big");
    let started = Instant::now();
    let listed = within(Duration::from_secs(60), "ls of 3,000 assets", move || count(&dir));
    let took = started.elapsed();
    assert_eq!(listed.unwrap(), 3000, "the first ls lists every asset");
    assert!(took < Duration::from_secs(5), "listing took {took:?}, more than the fetch timeout");
}

#[test]
fn a_very_large_folder_lists_whole_after_a_timeout_and_never_in_part() {
    let (_tmp, dam) = folder_of(20_000);
    let server = TestServer::start(&dam);
    let mount = Mounted::start(&server.url(), &[]);
    // 200 pages, 0.25 s each: more than the timeout even 8 at a time.
    server.catalog().set_listing_delay(Some(Duration::from_millis(250)));
    let dir = mount.path("big");
    let outcomes = within(Duration::from_secs(120), "ls of 20,000 assets", move || {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut outcomes = Vec::new();
        loop {
            let outcome = count(&dir).map_err(|e| e.raw_os_error());
            outcomes.push(outcome);
            if outcome.is_ok() || Instant::now() > deadline {
                return outcomes;
            }
        }
    });
    for outcome in &outcomes {
        match outcome {
            Ok(n) => assert_eq!(*n, 20_000, "a partial listing was shown: {outcomes:?}"),
            Err(errno) => assert_eq!(*errno, Some(libc::ETIMEDOUT), "{outcomes:?}"),
        }
    }
    assert_eq!(outcomes.last(), Some(&Ok(20_000)), "it never listed: {outcomes:?}");
}

/// A counter of the mount's `user.damfs.stats`.
fn stat_of(mount: &Mounted, key: &str) -> u64 {
    let stats = damfs::stats::read_from(&mount.mountpoint).unwrap();
    stats[key].as_u64().unwrap()
}

#[test]
fn readdir_of_20000_entries_lists_once_for_all_its_chunks() {
    let (_tmp, dam) = folder_of(20_000);
    let server = TestServer::start(&dam);
    let mount = Mounted::start(&server.url(), &[]);
    let dir = mount.path("big");
    // The first ls may time out while 200 pages arrive; the listing goes on.
    let names = within(Duration::from_secs(120), "the first ls", {
        let dir = dir.clone();
        move || {
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                match count(&dir) {
                    Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT) && Instant::now() < deadline => {}
                    other => return other,
                }
            }
        }
    });
    assert_eq!(names.unwrap(), 20_000);
    let before = stat_of(&mount, "dir_snapshots");
    // A warm read of the whole folder: hundreds of READDIR chunks, one listing taken.
    let names = within(Duration::from_secs(120), "a warm ls", move || count(&dir));
    assert_eq!(names.unwrap(), 20_000);
    assert_eq!(stat_of(&mount, "dir_snapshots") - before, 1, "the list was built more than once");
}

#[test]
fn a_cold_open_asks_for_the_original_beside_its_metadata() {
    let (_tmp, dam) = common::dam_dir();
    common::write_jpeg(&dam.join("a.jpg"), 64, 48);
    let server = TestServer::start(&dam);
    let mount = Mounted::start(&server.url(), &["--fetch-timeout", "20s"]);
    // Listed first, so that only the open's own requests are held.
    assert!(std::fs::metadata(mount.path("a.jpg")).is_ok());
    let catalog = server.catalog();
    catalog.clear_requests();
    catalog.set_stall(true);
    let path = mount.path("a.jpg");
    let reader = std::thread::spawn(move || std::fs::read(path));
    // Metadata, rendition list and original all wait on the server at once.
    let overlapped = common::mount::wait_until(Duration::from_secs(10), || catalog.stalled() >= 3);
    let held: Vec<String> = catalog.requests().iter().map(|r| r.path.clone()).collect();
    catalog.set_stall(false);
    let bytes = within(Duration::from_secs(30), "the open", move || reader.join().unwrap());
    assert_eq!(bytes.unwrap(), std::fs::read(dam.join("a.jpg")).unwrap());
    assert!(
        overlapped,
        "the open's requests did not overlap (held at once: {}): {held:?}",
        catalog.stalled()
    );
    let originals = catalog.requests().iter().filter(|r| r.path.ends_with("/renditions/original")).count();
    assert_eq!(originals, 1, "the original was fetched more than once");
}

#[test]
fn a_tail_read_of_a_large_asset_in_transfer_asks_for_its_own_range() {
    use common::faults::{Fault, FaultProxy};
    use std::os::unix::fs::FileExt;

    // Eight parts of 8 MiB, the last one 64 KiB.
    const PART: usize = 8 << 20;
    let len = 7 * PART + (64 << 10);
    let (_tmp, dam) = common::dam_dir();
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ (i >> 20) as u8).collect();
    std::fs::write(dam.join("big.bin"), &data).unwrap();
    let server = TestServer::start(&dam);
    let proxy = FaultProxy::start(server.addr());
    // Every answer for the bytes drips at about 3 MB/s: a part takes longer than the fetch
    // timeout, and the parts ahead of the last fill the window for longer still.
    proxy.add(
        "big.bin/jcr:content/renditions/original",
        Fault::Drip { chunk: 64 << 10, every: Duration::from_millis(20) },
    );
    let mount = Mounted::start(
        &proxy.url(),
        &["--fetch-timeout", "2s", "--async-threshold", "1M", "--formats", "all"],
    );
    assert_eq!(std::fs::metadata(mount.path("big.bin")).unwrap().len(), len as u64);
    let path = mount.path("big.bin");
    let file = within(Duration::from_secs(30), "open big.bin", move || std::fs::File::open(path)).unwrap();
    let file = std::sync::Arc::new(file);
    let tail_at = (len - 4096) as u64;
    let reader = std::sync::Arc::clone(&file);
    let tail = within(Duration::from_secs(30), "the tail read", move || {
        let mut buf = vec![0u8; 4096];
        reader.read_exact_at(&mut buf, tail_at).map(|()| buf)
    });
    // The ranges asked for, in order.
    let ranges: Vec<String> = proxy
        .heads()
        .iter()
        .filter_map(|h| {
            h.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("range: ").map(str::to_string))
        })
        .collect();
    let last = format!("bytes={}-{}", 7 * PART, len - 1);
    let at = |range: &str| ranges.iter().position(|r| r == range);
    // The last part was asked for on the read's demand: before the parts between the
    // window's first parts and it, which follow in order otherwise.
    let fifth = format!("bytes={}-{}", 4 * PART, 5 * PART - 1);
    assert!(
        at(&last).is_some_and(|l| at(&fifth).is_none_or(|f| l < f)),
        "the last part was not asked for ahead of the parts before it: {ranges:?}"
    );
    assert_eq!(tail.expect("the tail read waited past the fetch timeout"), &data[len - 4096..]);
    // The whole file, once nothing drips any more, is the asset's bytes.
    proxy.clear();
    let reader = std::sync::Arc::clone(&file);
    let whole = within(Duration::from_secs(60), "the whole read", move || {
        let mut buf = vec![0u8; len];
        reader.read_exact_at(&mut buf, 0).map(|()| buf)
    });
    assert!(whole.unwrap() == data, "the file read whole differs from the asset");
}
