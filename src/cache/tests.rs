use std::io::Write;

use super::*;

fn put(cache: &Cache, asset: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let (mut file, temp) = cache.temp_file().unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
    cache.commit(asset, name, &temp, bytes.len() as u64, &hex(&Sha256::digest(bytes))).unwrap()
}

#[test]
fn content_survives_reopen_and_names_are_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    {
        let cache = Cache::open(&dir, "http://dam/content/dam", None).unwrap();
        let dest = put(&cache, "a/b c.jpg", "original", b"hello");
        assert!(!dest.to_string_lossy().contains("b c"));
        cache.put_manifest("a/b c.jpg", "{}".into());
        cache.put_listing("a", "[]".into());
        cache.put_inode("d:a/b c.jpg", 42);
        cache.close();
    }
    let mode = fs::metadata(&dir).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o700);
    let cache = Cache::open(&dir, "http://dam/content/dam", None).unwrap();
    assert_eq!(cache.rendition("a/b c.jpg", "original").unwrap().size, 5);
    assert_eq!(cache.manifest("a/b c.jpg").as_deref(), Some("{}"));
    assert_eq!(cache.listing("a").unwrap().0, "[]");
    assert_eq!(cache.inode("d:a/b c.jpg"), Some(42));
    assert!(cache.new_inode() > 42);
    assert_eq!(cache.usage(), (1, BLOCK), "charged in whole blocks");
    assert_eq!(fs::read(cache.content_path("a/b c.jpg", "original")).unwrap(), b"hello");
}

#[test]
fn refuses_a_second_user_and_another_remote() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let cache = Cache::open(&dir, "http://one", None).unwrap();
    let err = Cache::open(&dir, "http://one", None).unwrap_err().to_string();
    assert!(err.contains("in use"), "{err}");
    cache.close();
    drop(cache);
    let err = Cache::open(&dir, "http://two", None).unwrap_err().to_string();
    assert!(err.contains("belongs to http://one"), "{err}");
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    fs::write(plain.join("x"), b"precious").unwrap();
    let err = Cache::open(&plain, "http://one", None).unwrap_err().to_string();
    assert!(err.contains("not a damfs cache"), "{err}");
    assert_eq!(fs::read(plain.join("x")).unwrap(), b"precious");
}

#[test]
fn partial_missing_and_orphan_files_are_reconciled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    {
        let cache = Cache::open(&dir, "r", None).unwrap();
        put(&cache, "x", "original", b"12345");
        put(&cache, "y", "original", b"678");
        let (mut partial, _) = cache.temp_file().unwrap();
        partial.write_all(b"half").unwrap();
        fs::remove_file(cache.content_path("x", "original")).unwrap();
        fs::write(cache.content_path("z", "orphan"), b"nobody's").unwrap_or_else(|_| {
            fs::create_dir_all(cache.content_path("z", "orphan").parent().unwrap()).unwrap();
            fs::write(cache.content_path("z", "orphan"), b"nobody's").unwrap();
        });
        cache.close();
    }
    let cache = Cache::open(&dir, "r", None).unwrap();
    assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0, "partial transfers are dropped at open");
    assert_eq!(cache.reconcile(), (1, 1));
    assert!(cache.rendition("x", "original").is_none());
    assert!(!cache.content_path("z", "orphan").exists());
    assert_eq!(cache.rendition("y", "original").unwrap().size, 3);
    assert_eq!(cache.usage(), (1, BLOCK));
}

#[test]
fn eviction_is_least_recently_used_by_whole_asset_and_spares_pinned_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::open(&tmp.path().join("cache"), "r", Some(8 * BLOCK)).unwrap();
    for (i, asset) in ["a", "b", "c"].iter().enumerate() {
        put(&cache, asset, "original", &[i as u8; 200]);
        put(&cache, asset, "thumb", &[i as u8; 100]);
        cache.state.lock().touch(asset, 100 + i as i64);
    }
    assert_eq!(cache.usage(), (3, 6 * BLOCK));
    cache.pin("a");
    assert!(cache.make_room(3 * BLOCK));
    // "a" is the oldest but open: "b" goes, whole.
    assert!(cache.rendition("b", "original").is_none() && cache.rendition("b", "thumb").is_none());
    assert!(!cache.content_path("b", "original").exists());
    assert!(cache.rendition("a", "original").is_some());
    assert_eq!(cache.usage(), (2, 4 * BLOCK));
    // Nothing more can go while everything left is pinned.
    cache.pin("c");
    assert!(!cache.make_room(5 * BLOCK));
    assert_eq!(cache.usage(), (2, 4 * BLOCK));
    cache.unpin("a");
    assert!(cache.make_room(5 * BLOCK));
    assert_eq!(cache.usage(), (1, 2 * BLOCK));
    // The index agrees after a reopen.
    cache.close();
    drop(cache);
    let cache = Cache::open(&tmp.path().join("cache"), "r", Some(8 * BLOCK)).unwrap();
    assert_eq!(cache.usage(), (1, 2 * BLOCK));
    assert!(cache.rendition("a", "original").is_none() && cache.rendition("c", "thumb").is_some());
}

#[test]
fn evict_drops_manifests_too_even_of_assets_without_content() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    {
        let cache = Cache::open(&dir, "http://dam/content/dam", None).unwrap();
        put(&cache, "f/with.jpg", "original", b"bytes");
        cache.put_manifest("f/with.jpg", "{}".into());
        // A manifest alone: what a first open that failed on its bytes leaves.
        cache.put_manifest("f/only.jpg", "{}".into());
        cache.put_manifest("g/other.jpg", "{}".into());
        cache.close();
    }
    let mut admin = admin::CacheDir::open(&dir).unwrap();
    assert_eq!(admin.evict("f/only.jpg").unwrap(), (1, 0));
    assert_eq!(admin.evict("/content/dam/f").unwrap(), (1, 5));
    assert!(admin.evict("f").is_err(), "nothing is left under f");
    drop(admin);
    let cache = Cache::open(&dir, "http://dam/content/dam", None).unwrap();
    assert_eq!(cache.manifest("f/with.jpg"), None);
    assert_eq!(cache.manifest("f/only.jpg"), None);
    assert_eq!(cache.manifest("g/other.jpg").as_deref(), Some("{}"));
    assert!(cache.rendition("f/with.jpg", "original").is_none());
}

#[test]
fn transfers_in_progress_count_against_the_cap_and_close_empties_tmp() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let cache = Cache::open(&dir, "http://dam/content/dam", Some(4 * BLOCK)).unwrap();
    put(&cache, "old.jpg", "original", &[1u8; 2 * BLOCK as usize]);
    assert!(!cache.over_cap());
    cache.charge_temp(3 * BLOCK);
    assert!(cache.over_cap(), "2 blocks of content and 3 in transfer pass a 4-block cap");
    // Room for the transfer is made by evicting content.
    assert!(cache.make_room(0));
    assert!(cache.rendition("old.jpg", "original").is_none());
    cache.release_temp(3 * BLOCK);
    cache.release_temp(BLOCK);
    assert_eq!(cache.temp_bytes(), 0, "releases saturate");
    let (_file, part) = cache.temp_file().unwrap();
    cache.close();
    assert!(!part.exists(), "close leaves no .part file");
}

#[test]
fn reconcile_spares_a_file_committed_while_it_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let cache = Cache::open(&dir, "http://dam/content/dam", None).unwrap();
    put(&cache, "old.jpg", "original", b"old");
    // An orphan: a content file no row names.
    let orphan = cache.content_path("gone.jpg", "original");
    fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    fs::write(&orphan, b"orphan").unwrap();
    let mut fresh = None;
    // The commit lands after reconcile read the index and listed the files.
    let (dropped, orphans) =
        cache.reconcile_with(|| fresh = Some(put(&cache, "new.jpg", "original", b"new")));
    let fresh = fresh.unwrap();
    assert_eq!((dropped, orphans), (0, 1));
    assert!(!orphan.exists(), "the orphan is removed");
    assert_eq!(fs::read(&fresh).unwrap(), b"new", "the file committed meanwhile stays");
    assert_eq!(cache.rendition("new.jpg", "original").unwrap().size, 3);
    // Once reconcile is over, commits are no longer recorded.
    put(&cache, "later.jpg", "original", b"x");
    assert!(cache.committing.lock().is_none());
}

#[test]
fn eviction_removes_a_rendition_the_index_has_not_recorded_yet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let cache = Cache::open(&dir, "http://dam/content/dam", Some(2 * BLOCK)).unwrap();
    put(&cache, "a.jpg", "original", b"a");
    cache.flush();
    // Hold the index's write lock: the writer cannot record what comes next.
    let blocker = Connection::open(dir.join("index.sqlite")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let late = put(&cache, "a.jpg", "cq5dam.web.1280.1280.jpeg", b"web");
    assert!(late.exists());
    // Room for two blocks more: a.jpg (two blocks) must go, both of its files.
    assert!(cache.make_room(2 * BLOCK));
    assert!(!late.exists(), "a rendition committed but not yet indexed stayed on disk");
    assert!(!cache.content_path("a.jpg", "original").exists());
    assert_eq!(cache.usage(), (0, 0));
    blocker.execute_batch("ROLLBACK").unwrap();
    cache.flush();
}

/// Copies a live cache directory as a crash would leave it: the index as last written, the
/// content files as they are.
fn snapshot(from: &Path, to: &Path) {
    for entry in walkdir(from) {
        let rel = entry.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(&entry, &dest).unwrap();
    }
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() { files.extend(walkdir(&path)) } else { files.push(path) }
    }
    files
}

#[test]
fn a_crash_before_the_sync_drops_the_new_rows_and_a_clean_stop_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let cache = Cache::open(&dir, "r", None).unwrap();
    put(&cache, "kept.jpg", "original", b"before");
    cache.close();
    drop(cache);

    let cache = Cache::open(&dir, "r", None).unwrap();
    assert_eq!(cache.rendition("kept.jpg", "original").unwrap().size, 6, "a clean stop syncs first");
    put(&cache, "new.jpg", "original", b"after");
    cache.flush();
    assert_eq!(cache.rendition("new.jpg", "original").unwrap().size, 5, "recorded at once");
    // The machine stops now, well within index::SYNC_WITHIN of the commit.
    let crashed = tmp.path().join("crashed");
    snapshot(&dir, &crashed);
    fs::remove_file(crashed.join("lock")).unwrap();
    cache.close();

    let after = Cache::open(&crashed, "r", None).unwrap();
    assert!(after.rendition("new.jpg", "original").is_none(), "a row the sync did not cover is dropped");
    assert_eq!(after.rendition("kept.jpg", "original").unwrap().size, 6);
    assert_eq!(after.reconcile(), (0, 1), "its file is an orphan");
    assert!(!after.content_path("new.jpg", "original").exists());
    assert_eq!(fs::read(after.content_path("kept.jpg", "original")).unwrap(), b"before");
}

#[test]
fn a_large_rendition_is_synced_as_soon_as_it_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let cache = Cache::open(&dir, "r", None).unwrap();
    put(&cache, "small.jpg", "original", b"small");
    let big = vec![7u8; index::SYNC_LARGE as usize];
    put(&cache, "big.bin", "original", &big);
    // The writer syncs right after the batch that recorded the large file (and everything
    // before it); a second flush is answered only after that.
    cache.flush();
    cache.flush();
    let crashed = tmp.path().join("crashed");
    snapshot(&dir, &crashed);
    fs::remove_file(crashed.join("lock")).unwrap();
    cache.close();

    let after = Cache::open(&crashed, "r", None).unwrap();
    assert_eq!(after.rendition("big.bin", "original").unwrap().size, big.len() as u64);
    assert_eq!(
        after.rendition("small.jpg", "original").unwrap().size,
        5,
        "recorded before it, synced with it"
    );
}
