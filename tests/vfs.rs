//! The namespace and materializer against the fake remote: the mount's behaviour without a
//! kernel mount, fast and with exact request counts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use damfs::cache::Cache;
use damfs::deadline::Deadline;
use damfs::error::FsError;
use damfs::mount::{Layout, namespace};
use damfs::remote::RemoteErrorKind;
use damfs::remote::fake::{FakeAsset, FakeRemote, Method};
use damfs::vfs::inode::ROOT_INO;
use damfs::vfs::{Kind, Vfs};

const RENDITIONS: [&str; 4] = [
    "cq5dam.thumbnail.48.48.png",
    "cq5dam.thumbnail.140.100.png",
    "cq5dam.thumbnail.319.319.png",
    "cq5dam.web.1280.1280.jpeg",
];

fn asset(seed: u8, len: usize) -> FakeAsset {
    let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
    let mut a = FakeAsset::new(bytes).with_format("image/jpeg").with_title(&format!("Asset {seed}"));
    for (i, r) in RENDITIONS.iter().enumerate() {
        a = a.with_rendition(r, vec![seed.wrapping_add(i as u8); 100 + i]);
    }
    a
}

fn remote() -> Arc<FakeRemote> {
    let remote = FakeRemote::new();
    remote.add_folder("we");
    remote.add_asset("we/a.jpg", asset(3, 5000).with_tags(&["ns:x/y"]));
    remote.add_asset("we/b.jpg", asset(5, 7000));
    remote.add_asset("we/doc.pdf", FakeAsset::new(b"%PDF".to_vec()).with_format("application/pdf"));
    remote.add_asset("we/.renditions", asset(9, 10));
    remote.add_tag("ns:x/y", "Why", None);
    Arc::new(remote)
}

/// The namespace over `remote` and `cache`, as a mount wires it, with `threshold` as the
/// async threshold.
fn build(
    layout: Layout,
    remote: &Arc<FakeRemote>,
    cache: Arc<Cache>,
    threshold: u64,
) -> Arc<Vfs<FakeRemote>> {
    namespace(Layout { async_threshold: threshold, ..layout }, Arc::clone(remote), cache)
}

struct Setup {
    vfs: Arc<Vfs<FakeRemote>>,
    remote: Arc<FakeRemote>,
    cache: Arc<Cache>,
    _dir: tempfile::TempDir,
}

fn setup(remote: Arc<FakeRemote>, timeout: Duration, threshold: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open(&dir.path().join("cache"), "fake", None).unwrap());
    let config = common::fake_layout(timeout, Duration::from_secs(60));
    let vfs = build(config, &remote, Arc::clone(&cache), threshold);
    Setup { vfs, remote, cache, _dir: dir }
}

fn soon() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

async fn read_all(vfs: &Arc<Vfs<FakeRemote>>, ino: u64) -> Result<Vec<u8>, FsError> {
    read_in(vfs, ino, 4096).await
}

/// Reads `ino` whole with reads of `size` bytes.
async fn read_in(vfs: &Arc<Vfs<FakeRemote>>, ino: u64, size: u32) -> Result<Vec<u8>, FsError> {
    let opened = vfs.open(ino, libc::O_RDONLY, soon()).await?;
    let mut out = Vec::new();
    loop {
        let chunk = vfs.read(opened.fh, out.len() as u64, size, soon()).await?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    vfs.release(opened.fh);
    Ok(out)
}

#[tokio::test]
async fn listing_shows_images_with_sizes_and_fetches_no_bytes() {
    let s = setup(remote(), Duration::from_secs(5), 10 << 20);
    let we = s.vfs.lookup(ROOT_INO, "we", soon()).await.unwrap();
    assert_eq!(we.attr.kind, Kind::Dir);
    let items = s.vfs.readdir(we.attr.ino, soon()).await.unwrap();
    let names: Vec<_> = items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a.jpg", "b.jpg"], "pdf hidden, .. and reserved names left out");
    assert_eq!(items[0].entry.attr.size, 5000);
    assert_eq!(items[0].entry.attr.perm, 0o444);
    assert_eq!(s.remote.calls(Method::Fetch), 0);
    assert_eq!(s.remote.calls(Method::AssetMetadata), 0);
    // Inode numbers are stable for a path.
    let again = s.vfs.lookup(we.attr.ino, "a.jpg", soon()).await.unwrap();
    assert_eq!(again.attr.ino, items[0].entry.attr.ino);
    assert!(matches!(s.vfs.lookup(we.attr.ino, "doc.pdf", soon()).await, Err(FsError::NotFound)));
}

#[tokio::test]
async fn first_open_materializes_everything_once() {
    let s = setup(remote(), Duration::from_secs(5), 10 << 20);
    let we = s.vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
    let a = s.vfs.lookup(we, "a.jpg", soon()).await.unwrap().attr.ino;
    let bytes = read_all(&s.vfs, a).await.unwrap();
    assert_eq!(bytes.len(), 5000);
    for r in ["original"].iter().chain(RENDITIONS.iter()) {
        assert_eq!(s.remote.fetch_count("we/a.jpg", r), 1, "{r}");
    }
    let before = s.remote.counts().total();
    assert_eq!(read_all(&s.vfs, a).await.unwrap(), bytes);
    let rdir = s.vfs.lookup(we, ".renditions", soon()).await.unwrap().attr.ino;
    let of_a = s.vfs.lookup(rdir, "a.jpg", soon()).await.unwrap().attr.ino;
    let thumb = s.vfs.lookup(of_a, RENDITIONS[0], soon()).await.unwrap();
    assert_eq!(thumb.attr.size, 100);
    assert_eq!(read_all(&s.vfs, thumb.attr.ino).await.unwrap(), vec![3u8; 100]);
    assert_eq!(s.remote.counts().total(), before, "cached reads ask nothing of the remote");
    let tags = s.vfs.getxattr(a, "user.dam.tags", soon()).await.unwrap();
    assert_eq!(String::from_utf8(tags).unwrap(), "ns:x/y (Why)");
}

#[tokio::test]
async fn concurrent_opens_share_one_fetch() {
    let s = setup(remote(), Duration::from_secs(5), 10 << 20);
    s.remote.set_chunk_delay(Duration::from_millis(5));
    let we = s.vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
    let b = s.vfs.lookup(we, "b.jpg", soon()).await.unwrap().attr.ino;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let vfs = Arc::clone(&s.vfs);
            tokio::spawn(async move { read_all(&vfs, b).await.unwrap().len() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 7000);
    }
    for r in ["original"].iter().chain(RENDITIONS.iter()) {
        assert_eq!(s.remote.fetch_count("we/b.jpg", r), 1, "{r}");
    }
}

// The clock is paused: time moves only when every task waits, so the timeout is exact.
#[tokio::test(start_paused = true)]
async fn a_stall_times_out_leaves_nothing_and_is_not_remembered() {
    let s = setup(remote(), Duration::from_millis(300), 10 << 20);
    let we = s.vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
    let a = s.vfs.lookup(we, "a.jpg", soon()).await.unwrap().attr.ino;
    s.remote.set_stall(true);
    let start = tokio::time::Instant::now();
    let deadline = s.vfs.deadline();
    let err = s.vfs.open(a, libc::O_RDONLY, deadline).await.unwrap_err();
    assert!(matches!(err, FsError::Timeout(_)), "{err}");
    assert_eq!(err.errno(), libc::ETIMEDOUT);
    assert_eq!(start.elapsed(), Duration::from_millis(300), "the open waited exactly its deadline");
    assert!(s.cache.renditions("we/a.jpg").is_empty());
    s.remote.set_stall(false);
    assert_eq!(read_all(&s.vfs, a).await.unwrap().len(), 5000);
}

#[tokio::test(start_paused = true)]
async fn a_folder_is_listed_and_its_attributes_asked_at_once() {
    let s = setup(remote(), Duration::from_secs(5), 10 << 20);
    s.remote.set_stall(true);
    let vfs = Arc::clone(&s.vfs);
    let lookup = tokio::spawn(async move { vfs.lookup(ROOT_INO, "we", soon()).await.map(|e| e.attr.ino) });
    // The root's listing and its attributes query are both waiting on the remote.
    for _ in 0..100 {
        if s.remote.stalled() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((s.remote.calls(Method::ListFolder), s.remote.calls(Method::FolderAttrs)), (1, 1));
    s.remote.set_stall(false);
    let we = lookup.await.unwrap().unwrap();
    let items = s.vfs.readdir(we, soon()).await.unwrap();
    assert_eq!(items[0].entry.attr.size, 5000, "the attributes asked beside the listing");
    assert_eq!((s.remote.calls(Method::ListFolder), s.remote.calls(Method::FolderAttrs)), (2, 2));
}

#[tokio::test]
async fn a_broken_body_never_enters_the_cache() {
    let s = setup(remote(), Duration::from_secs(5), 10 << 20);
    let we = s.vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
    let a = s.vfs.lookup(we, "a.jpg", soon()).await.unwrap().attr.ino;
    s.remote.set_body_failure(Some(1000));
    let err = read_all(&s.vfs, a).await.unwrap_err();
    assert_eq!(err.errno(), libc::EIO, "{err}");
    assert!(s.cache.rendition("we/a.jpg", "original").is_none());
    s.remote.set_body_failure(None);
    assert_eq!(read_all(&s.vfs, a).await.unwrap().len(), 5000);
}

#[tokio::test(start_paused = true)]
async fn large_renditions_stream_in_the_background() {
    let s = setup(remote(), Duration::from_secs(5), 1000);
    s.remote.set_chunk_size(512);
    s.remote.set_chunk_delay(Duration::from_millis(50));
    let we = s.vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
    let b = s.vfs.lookup(we, "b.jpg", soon()).await.unwrap().attr.ino;
    let start = tokio::time::Instant::now();
    let opened = s.vfs.open(b, libc::O_RDONLY, soon()).await.unwrap();
    let open_took = start.elapsed();
    // 7000 bytes at 512 bytes per 50 ms take 700 ms of the paused clock; the small
    // renditions (one chunk each) take 50 ms, and open waits for nothing else.
    assert!(open_took < Duration::from_millis(700), "open waited for the large original: {open_took:?}");
    let first = s.vfs.read(opened.fh, 0, 100, soon()).await.unwrap();
    assert_eq!(first.len(), 100);
    let tail = s.vfs.read(opened.fh, 6900, 4096, soon()).await.unwrap();
    assert_eq!(tail.len(), 100);
    let want: Vec<u8> = (0..7000).map(|i| (i as u8).wrapping_mul(5)).collect();
    assert_eq!(&tail[..], &want[6900..]);
    s.vfs.release(opened.fh);
}

#[tokio::test]
async fn remote_errors_map_to_errno() {
    let s = setup(remote(), Duration::from_secs(5), 10 << 20);
    let we = s.vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
    let a = s.vfs.lookup(we, "a.jpg", soon()).await.unwrap().attr.ino;
    for (kind, errno) in [
        (RemoteErrorKind::Denied, libc::EACCES),
        (RemoteErrorKind::NotFound, libc::ENOENT),
        (RemoteErrorKind::Other, libc::EIO),
        (RemoteErrorKind::Timeout, libc::ETIMEDOUT),
    ] {
        s.remote.fail_always(Method::AssetMetadata, kind);
        let err = s.vfs.open(a, libc::O_RDONLY, soon()).await.unwrap_err();
        assert_eq!(err.errno(), errno, "{kind:?}: {err}");
        s.remote.clear_failures();
    }
    assert_eq!(s.vfs.open(a, libc::O_WRONLY, soon()).await.unwrap_err().errno(), libc::EROFS);
}

#[tokio::test]
async fn a_wrong_dam_size_is_corrected_by_the_real_length() {
    let remote = remote();
    let mut liar = asset(7, 3000);
    liar.meta.size = Some(1234);
    liar.meta.sha1 = None;
    remote.add_asset("we/liar.jpg", liar);
    let s = setup(remote, Duration::from_secs(5), 10 << 20);
    let we = s.vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
    let entry = s.vfs.lookup(we, "liar.jpg", soon()).await.unwrap();
    assert_eq!(entry.attr.size, 1234);
    let opened = s.vfs.open(entry.attr.ino, libc::O_RDONLY, soon()).await.unwrap();
    assert!(opened.stale_attr);
    s.vfs.release(opened.fh);
    assert_eq!(s.vfs.getattr(entry.attr.ino, soon()).await.unwrap().attr.size, 3000);
}

#[tokio::test]
async fn stale_listings_keep_serving_when_the_remote_fails() {
    let remote = remote();
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let config = common::fake_layout(Duration::from_secs(1), Duration::ZERO);
    let we_ino;
    {
        let cache = Arc::new(Cache::open(&cache_dir, "fake", None).unwrap());
        let vfs = build(config.clone(), &remote, Arc::clone(&cache), 10 << 20);
        we_ino = vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
        vfs.readdir(we_ino, soon()).await.unwrap();
        cache.close();
    }
    remote.fail_always_any(RemoteErrorKind::Other);
    let cache = Arc::new(Cache::open(&cache_dir, "fake", None).unwrap());
    let vfs = build(config, &remote, cache, 10 << 20);
    let again = vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
    assert_eq!(again, we_ino, "inode numbers survive a remount");
    let names: Vec<_> = vfs.readdir(again, soon()).await.unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["a.jpg", "b.jpg"]);
}

#[tokio::test]
async fn search_results_and_the_local_taxonomy_are_links_to_assets() {
    let s = setup(remote(), Duration::from_secs(5), 10 << 20);
    let search = s.vfs.lookup(ROOT_INO, ".search", soon()).await.unwrap();
    assert_eq!(search.attr.kind, Kind::Dir);
    let words = s.vfs.lookup(search.attr.ino, "asset 5", soon()).await.unwrap().attr.ino;
    let hits = s.vfs.readdir(words, soon()).await.unwrap();
    assert_eq!(hits.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["b.jpg"]);
    assert_eq!(hits[0].entry.attr.kind, Kind::Symlink);
    assert_eq!(s.vfs.readlink(hits[0].entry.attr.ino).unwrap(), "../../we/b.jpg");
    assert_eq!(s.remote.calls(Method::Fetch), 0, "searching downloads nothing");

    // Tags appear once an asset is materialized.
    let tags = s.vfs.lookup(ROOT_INO, ".tags", soon()).await.unwrap().attr.ino;
    assert!(s.vfs.readdir(tags, soon()).await.unwrap().is_empty());
    let we = s.vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
    let a = s.vfs.lookup(we, "a.jpg", soon()).await.unwrap().attr.ino;
    read_all(&s.vfs, a).await.unwrap();
    let ns = s.vfs.lookup(tags, "ns", soon()).await.unwrap().attr.ino;
    let x = s.vfs.lookup(ns, "x", soon()).await.unwrap().attr.ino;
    let y = s.vfs.lookup(x, "y", soon()).await.unwrap().attr.ino;
    let links = s.vfs.readdir(y, soon()).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(s.vfs.readlink(links[0].entry.attr.ino).unwrap(), "../../../../we/a.jpg");
    // The metadata document names the tag and its title.
    let meta = s.vfs.lookup(we, ".metadata", soon()).await.unwrap().attr.ino;
    let doc = s.vfs.lookup(meta, "a.jpg.json", soon()).await.unwrap().attr.ino;
    let json: serde_json::Value = serde_json::from_slice(&read_all(&s.vfs, doc).await.unwrap()).unwrap();
    assert_eq!(json["tags"][0]["title"], "Why");
    assert_eq!(json["renditions"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn an_asset_larger_than_the_whole_cache_is_served_without_caching() {
    let remote = remote();
    remote.add_asset("we/huge.jpg", asset(11, 40_000));
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open(&dir.path().join("cache"), "fake", Some(16 << 10)).unwrap());
    let config = common::fake_layout(Duration::from_secs(5), Duration::from_secs(60));
    let vfs = build(config, &remote, Arc::clone(&cache), 10 << 20);
    let we = vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
    let huge = vfs.lookup(we, "huge.jpg", soon()).await.unwrap().attr.ino;
    let want: Vec<u8> = (0..40_000).map(|i| (i as u8).wrapping_mul(11)).collect();
    assert_eq!(read_all(&vfs, huge).await.unwrap(), want);
    assert!(cache.renditions("we/huge.jpg").is_empty(), "nothing of it entered the cache");
    assert_eq!(cache.usage().1, 0);
    assert_eq!(
        std::fs::read_dir(dir.path().join("cache/tmp")).unwrap().count(),
        0,
        "its temporary files are gone"
    );
    // It is fetched again on the next open, and still reads whole.
    assert_eq!(read_all(&vfs, huge).await.unwrap(), want);
    assert_eq!(remote.fetch_count("we/huge.jpg", "original"), 2);
}

#[tokio::test]
async fn a_readdir_numbers_its_entries_in_a_few_index_queries() {
    let remote = FakeRemote::new();
    remote.add_folder("big");
    for i in 0..1200 {
        remote.add_asset(
            &format!("big/{i:04}.jpg"),
            FakeAsset::new(vec![i as u8; 10]).with_format("image/jpeg"),
        );
    }
    let remote = Arc::new(remote);
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let config = common::fake_layout(Duration::from_secs(5), Duration::from_secs(60));
    let deadline = || Deadline::after(Duration::from_secs(10));
    let mut first_inos = Vec::new();
    for mount in 0..2 {
        let cache = Arc::new(Cache::open(&cache_dir, "fake", None).unwrap());
        let vfs = build(config.clone(), &remote, Arc::clone(&cache), 1 << 20);
        let big = vfs.lookup(ROOT_INO, "big", deadline()).await.unwrap().attr.ino;
        let before = cache.queries();
        let items = vfs.readdir(big, deadline()).await.unwrap();
        assert_eq!(items.len(), 1200);
        let queries = cache.queries() - before;
        assert!(queries <= 10, "mount {mount}: a readdir of 1200 entries ran {queries} index queries");
        let inos: Vec<u64> = items.iter().map(|i| i.entry.attr.ino).collect();
        if mount == 0 {
            first_inos = inos;
        } else {
            assert_eq!(inos, first_inos, "inode numbers are stable across mounts");
        }
        cache.close();
    }
}

#[tokio::test]
async fn reopening_a_materialized_asset_asks_neither_the_index_nor_the_remote() {
    let s = setup(remote(), Duration::from_secs(5), 10 << 20);
    let we = s.vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
    let a = s.vfs.lookup(we, "a.jpg", soon()).await.unwrap().attr.ino;
    let first = s.vfs.open(a, libc::O_RDONLY, soon()).await.unwrap();
    let file = first.backing.clone().expect("a complete file backs the handle");
    assert_eq!(first.keep.as_deref(), Some("we/a.jpg"), "complete content may be kept");
    s.vfs.release(first.fh);
    let (queries, requests) = (s.cache.queries(), s.remote.counts().total());
    for _ in 0..100 {
        let again = s.vfs.reopen(a, libc::O_RDONLY, Arc::clone(&file)).unwrap().unwrap();
        assert_eq!(s.vfs.read(again.fh, 0, 10, soon()).await.unwrap().len(), 10);
        s.vfs.release(again.fh);
    }
    assert_eq!(s.cache.queries(), queries, "a reopen queried the index");
    assert_eq!(s.remote.counts().total(), requests, "a reopen asked the remote");
    assert!(matches!(s.vfs.reopen(a, libc::O_RDWR, Arc::clone(&file)), Some(Err(FsError::ReadOnly))));
    assert!(s.vfs.reopen(we, libc::O_RDONLY, Arc::clone(&file)).is_none(), "a folder is not reopened");
    // Once its content leaves the cache, the file is not reopened: the usual open fetches it.
    s.cache.drop_unused();
    assert!(s.vfs.reopen(a, libc::O_RDONLY, file).is_none(), "an evicted file was reopened");
    assert_eq!(read_all(&s.vfs, a).await.unwrap().len(), 5000);
}

#[tokio::test]
async fn the_taxonomy_comes_from_the_index_without_holding_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let remote = remote();
    let config = common::fake_layout(Duration::from_secs(5), Duration::from_secs(60));
    {
        let cache = Arc::new(Cache::open(&cache_dir, "fake", None).unwrap());
        let s = build(config.clone(), &remote, Arc::clone(&cache), 10 << 20);
        let we = s.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
        let a = s.lookup(we, "a.jpg", soon()).await.unwrap().attr.ino;
        read_all(&s, a).await.unwrap();
        cache.close();
    }
    // A new mount: nothing decoded yet; `.tags` lists what the index holds.
    let cache = Arc::new(Cache::open(&cache_dir, "fake", None).unwrap());
    let s = build(config, &remote, Arc::clone(&cache), 10 << 20);
    let tags = s.lookup(ROOT_INO, ".tags", soon()).await.unwrap().attr.ino;
    let ns = s.lookup(tags, "ns", soon()).await.unwrap().attr.ino;
    let x = s.lookup(ns, "x", soon()).await.unwrap().attr.ino;
    let y = s.lookup(x, "y", soon()).await.unwrap().attr.ino;
    let links = s.readdir(y, soon()).await.unwrap();
    assert_eq!(links.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["a.jpg"]);
}

#[tokio::test(start_paused = true)]
async fn text_and_metadata_renditions_wait_for_their_own_open() {
    let remote = FakeRemote::new();
    let text = vec![b't'; 3000];
    remote.add_asset(
        "a.jpg",
        asset(7, 500)
            .with_rendition("cqdam.text.txt", text.clone())
            .with_rendition("cqdam.metadata.xml", &b"<x/>"[..]),
    );
    let remote = Arc::new(remote);
    // The text rendition is larger than the threshold: fetched in the background when opened.
    let s = setup(Arc::clone(&remote), Duration::from_secs(5), 1000);
    let a = s.vfs.lookup(ROOT_INO, "a.jpg", soon()).await.unwrap().attr.ino;
    assert_eq!(read_all(&s.vfs, a).await.unwrap().len(), 500);
    for r in ["original"].iter().chain(RENDITIONS.iter()) {
        assert_eq!(remote.fetch_count("a.jpg", r), 1, "{r}");
    }
    for r in ["cqdam.text.txt", "cqdam.metadata.xml"] {
        assert_eq!(remote.fetch_count("a.jpg", r), 0, "{r} fetched at the first open");
    }
    let rdir = s.vfs.lookup(ROOT_INO, ".renditions", soon()).await.unwrap().attr.ino;
    let of_a = s.vfs.lookup(rdir, "a.jpg", soon()).await.unwrap().attr.ino;
    let xml = s.vfs.lookup(of_a, "cqdam.metadata.xml", soon()).await.unwrap();
    let txt = s.vfs.lookup(of_a, "cqdam.text.txt", soon()).await.unwrap();
    assert_eq!(txt.attr.size, 3000, "the listed size, before any byte of it");

    remote.fail_next(Method::Fetch, RemoteErrorKind::Other);
    assert_eq!(read_all(&s.vfs, xml.attr.ino).await.unwrap_err().errno(), libc::EIO);
    assert_eq!(read_all(&s.vfs, xml.attr.ino).await.unwrap(), b"<x/>", "a failure is not remembered");
    assert_eq!(read_all(&s.vfs, txt.attr.ino).await.unwrap(), text);
    assert_eq!(read_all(&s.vfs, txt.attr.ino).await.unwrap(), text);
    assert_eq!(remote.fetch_count("a.jpg", "cqdam.text.txt"), 1);
    // The background transfer commits after its last byte was read: wait for it, in real time.
    let committed = |cache: &Cache| {
        let cached = cache.renditions("a.jpg");
        cached.contains_key("cqdam.text.txt") && cached.contains_key("cqdam.metadata.xml")
    };
    for _ in 0..500 {
        if committed(&s.cache) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        tokio::task::yield_now().await;
    }
    assert!(committed(&s.cache), "the renditions fetched on their own open are not in the cache");
    assert_eq!(remote.fetch_count("a.jpg", "original"), 1, "the rest was not fetched again");
}

#[tokio::test]
async fn a_large_rendition_comes_in_parts_and_whole_from_a_remote_without_ranges() {
    for ignore_ranges in [false, true] {
        let remote = FakeRemote::new();
        remote.add_folder("we");
        // Two parts of 8 MiB and a bit.
        let len = (16 << 20) + 12_345;
        remote.add_asset("we/big.jpg", asset(7, len));
        remote.set_ignore_ranges(ignore_ranges);
        let s = setup(Arc::new(remote), Duration::from_secs(20), 1 << 20);
        let we = s.vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
        let big = s.vfs.lookup(we, "big.jpg", soon()).await.unwrap().attr.ino;
        let bytes = read_in(&s.vfs, big, 1 << 20).await.unwrap();
        let want: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7)).collect();
        assert!(bytes == want, "the bytes read differ (ranges ignored: {ignore_ranges})");
        let asked = s.remote.fetch_count("we/big.jpg", "original");
        assert!(asked >= 2, "one answer for {len} bytes (ranges ignored: {ignore_ranges})");
        // Complete and verified in the cache: a second read asks nothing more.
        let committed = tokio::time::timeout(Duration::from_secs(20), async {
            while s.cache.rendition("we/big.jpg", "original").is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        committed.await.expect("the rendition never entered the cache");
        assert_eq!(s.cache.rendition("we/big.jpg", "original").unwrap().size, len as u64);
        assert!(read_in(&s.vfs, big, 1 << 20).await.unwrap() == want);
        assert_eq!(s.remote.fetch_count("we/big.jpg", "original"), asked, "a cached read fetched again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_rendition_in_parts_that_misses_its_dam_sha1_never_enters_the_cache() {
    let remote = FakeRemote::new();
    remote.add_folder("we");
    let len = (16 << 20) + 12_345;
    let mut wrong = asset(5, len);
    wrong.meta.sha1 = Some("0".repeat(40));
    remote.add_asset("we/big.jpg", wrong);
    let s = setup(Arc::new(remote), Duration::from_secs(20), 1 << 20);
    let we = s.vfs.lookup(ROOT_INO, "we", soon()).await.unwrap().attr.ino;
    let big = s.vfs.lookup(we, "big.jpg", soon()).await.unwrap().attr.ino;
    // The bytes stream to the reader as they come; the check is made once they are all in.
    let _ = read_in(&s.vfs, big, 1 << 20).await;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while s.vfs.stats().transfers_in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    ended.await.expect("the transfer never ended");
    assert!(s.remote.fetch_count("we/big.jpg", "original") >= 2, "not fetched in parts");
    assert!(s.cache.rendition("we/big.jpg", "original").is_none(), "bytes that miss dam:sha1 were cached");
}
