//! Changes on the remote reach a live mount, through real kernel mounts against `damfs
//! serve` with `--dir-ttl 2s`: new versions, deletions, additions, assets still being
//! processed; and `--no-revalidate` keeps the snapshot.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::TestServer;
use common::mount::{Mounted, http_get, wait_until, within};

const TTL: &[&str] = &["--dir-ttl", "2s"];

/// Longest a change may take to show: the TTL, the kernel's attribute TTL, one re-read.
const PROPAGATION: Duration = Duration::from_secs(15);

fn dam() -> (tempfile::TempDir, PathBuf) {
    let (tmp, dam) = common::dam_dir();
    for (name, width) in [("a.jpg", 40), ("b.jpg", 48), ("c.jpg", 56)] {
        common::write_jpeg(&dam.join(name), width, 30);
    }
    (tmp, dam)
}

fn read(path: PathBuf) -> std::io::Result<Vec<u8>> {
    within(Duration::from_secs(20), "a read", move || std::fs::read(path))
}

/// A new version of an asset: other pixels, another size.
fn replace(path: &Path) {
    common::write_png(&path.with_extension("tmp"), 90, 70, 7);
    let bytes = std::fs::read(path.with_extension("tmp")).unwrap();
    std::fs::remove_file(path.with_extension("tmp")).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn binary_gets(server: &TestServer, name: &str) -> usize {
    server.catalog().requests().iter().filter(|r| r.is_binary() && r.path.contains(name)).count()
}

#[test]
fn a_new_version_replaces_bytes_size_and_renditions_while_open_handles_keep_theirs() {
    let (_tmp, dam) = dam();
    let server = TestServer::start(&dam);
    let mount = Mounted::start(&server.url(), TTL);
    let old = std::fs::read(dam.join("a.jpg")).unwrap();
    let thumb = ".renditions/a.jpg/cq5dam.thumbnail.48.48.png";
    assert_eq!(read(mount.path("a.jpg")).unwrap(), old);
    let old_thumb = read(mount.path(thumb)).unwrap();
    let mut before = std::fs::File::open(mount.path("a.jpg")).unwrap();

    replace(&dam.join("a.jpg"));
    let new = std::fs::read(dam.join("a.jpg")).unwrap();
    assert_ne!(new.len(), old.len());
    let started = Instant::now();
    let path = mount.path("a.jpg");
    let sized =
        wait_until(PROPAGATION, || std::fs::metadata(&path).is_ok_and(|m| m.len() == new.len() as u64));
    assert!(sized, "stat never showed the new size\nlog:\n{}", mount.log_text());
    let fresh = read(mount.path("a.jpg")).unwrap_or_else(|e| panic!("{e}\nlog:\n{}", mount.log_text()));
    assert_eq!(fresh, new, "the new size came with old bytes");
    assert!(started.elapsed() < PROPAGATION);
    let served_thumb =
        http_get(&server.url(), "/content/dam/a.jpg/jcr:content/renditions/cq5dam.thumbnail.48.48.png");
    assert_eq!(served_thumb.status, 200);
    let new_thumb = read(mount.path(thumb)).unwrap();
    assert_eq!(new_thumb, served_thumb.body, "the rendition is not the new version's");
    assert_ne!(new_thumb, old_thumb);

    let mut kept = Vec::new();
    before.read_to_end(&mut kept).unwrap();
    assert_eq!(kept, old, "a handle opened before the change did not read the old version whole");
}

#[test]
fn deletions_and_additions_propagate_and_unchanged_assets_are_not_fetched_again() {
    let (_tmp, dam) = dam();
    let server = TestServer::start(&dam);
    let mount = Mounted::start(&server.url(), TTL);
    for name in ["a.jpg", "b.jpg", "c.jpg"] {
        assert!(read(mount.path(name)).is_ok());
    }
    server.catalog().clear_requests();

    std::fs::remove_file(dam.join("b.jpg")).unwrap();
    common::write_jpeg(&dam.join("d.jpg"), 64, 30);
    let root = mount.path("");
    let listed = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&root)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    let updated = wait_until(PROPAGATION, || listed() == ["a.jpg", "c.jpg", "d.jpg"]);
    assert!(updated, "the listing never changed: {:?}\nlog:\n{}", listed(), mount.log_text());
    let gone = wait_until(PROPAGATION, || {
        std::fs::metadata(mount.path("b.jpg")).err().and_then(|e| e.raw_os_error()) == Some(libc::ENOENT)
    });
    assert!(gone, "stat of a deleted asset did not answer ENOENT");
    assert_eq!(read(mount.path("d.jpg")).unwrap(), std::fs::read(dam.join("d.jpg")).unwrap());
    for name in ["a.jpg", "c.jpg"] {
        assert_eq!(read(mount.path(name)).unwrap(), std::fs::read(dam.join(name)).unwrap());
        assert_eq!(binary_gets(&server, name), 0, "{name} was fetched again though unchanged");
    }
    let stats = damfs::stats::read_from(&mount.mountpoint).unwrap();
    assert!(stats["listings_fetched"].as_u64().unwrap() >= 2);
}

#[test]
fn without_revalidation_a_changed_asset_keeps_its_cached_bytes() {
    let (_tmp, dam) = dam();
    let server = TestServer::start(&dam);
    let mount = Mounted::start(&server.url(), &["--dir-ttl", "2s", "--no-revalidate"]);
    let old = read(mount.path("a.jpg")).unwrap();
    let listings =
        || damfs::stats::read_from(&mount.mountpoint).unwrap()["listings_fetched"].as_u64().unwrap();
    let before = listings();
    replace(&dam.join("a.jpg"));
    // Wait until the listing has been re-read (it now knows the new version).
    let reread = wait_until(PROPAGATION, || {
        let _ = std::fs::metadata(mount.path("a.jpg"));
        let _ = std::fs::read_dir(mount.path(""));
        listings() > before
    });
    assert!(reread, "the listing was never re-read");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read(mount.path("a.jpg")).unwrap(), old);
    assert_eq!(binary_gets(&server, "a.jpg"), 5, "only the first materialization fetched");
}

#[test]
fn an_asset_still_processing_gets_its_renditions_at_a_later_open() {
    let (_tmp, dam) = dam();
    let server = TestServer::start(&dam);
    server.catalog().set_processing("a.jpg", true);
    let mount = Mounted::start(&server.url(), TTL);
    assert!(read(mount.path("a.jpg")).is_ok());
    let renditions = mount.path(".renditions/a.jpg");
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    assert_eq!(names(&renditions), ["original"]);

    server.catalog().set_processing("a.jpg", false);
    let complete = wait_until(PROPAGATION, || {
        let _ = read(mount.path("a.jpg"));
        names(&renditions).len() == 5
    });
    assert!(complete, "the renditions never appeared: {:?}\nlog:\n{}", names(&renditions), mount.log_text());
    let thumb = read(mount.path(".renditions/a.jpg/cq5dam.thumbnail.48.48.png")).unwrap();
    assert!(!thumb.is_empty());
}
