//! `--renditions` through real kernel mounts against `damfs serve`: the first open of an asset
//! fetches exactly the selected renditions; a rendition left out is fetched at its own first
//! open, once however many read it, kept in the cache across a remount, and shown with its
//! listed size before that.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::TestServer;
use common::mount::{Mounted, http_get, within};

const THUMB: &str = "cq5dam.thumbnail.48.48.png";
const WEB: &str = "cq5dam.web.1280.1280.jpeg";

fn dam() -> (tempfile::TempDir, PathBuf) {
    let (tmp, dam) = common::dam_dir();
    common::write_jpeg(&dam.join("a.jpg"), 120, 80);
    common::write_jpeg(&dam.join("b.jpg"), 64, 48);
    (tmp, dam)
}

fn read(path: PathBuf) -> std::io::Result<Vec<u8>> {
    within(Duration::from_secs(20), "a read", move || std::fs::read(path))
}

/// Binary GETs the server saw, by rendition name (`original` for the asset's own path), for
/// the asset `name`.
fn binary_gets(server: &TestServer, name: &str) -> BTreeMap<String, usize> {
    let mut gets = BTreeMap::new();
    for r in server.catalog().requests().iter().filter(|r| r.is_binary()) {
        let path = r.path.split('?').next().unwrap_or_default();
        let (asset, rendition) = match path.split_once("/jcr:content/renditions/") {
            Some((asset, rendition)) => (asset, rendition),
            None => (path, "original"),
        };
        if asset.ends_with(&format!("/{name}")) {
            *gets.entry(rendition.to_string()).or_default() += 1;
        }
    }
    gets
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

fn served(server: &TestServer, asset: &str, rendition: &str) -> Vec<u8> {
    let answer = http_get(&server.url(), &format!("/content/dam/{asset}/jcr:content/renditions/{rendition}"));
    assert_eq!(answer.status, 200);
    answer.body
}

#[test]
fn the_first_open_fetches_the_selection_and_a_left_out_rendition_comes_at_its_own_open() {
    let (_tmp, dam) = dam();
    let server = TestServer::start(&dam);
    let web = served(&server, "a.jpg", WEB);
    let thumb = served(&server, "a.jpg", THUMB);
    server.catalog().clear_requests();
    let mount = Mounted::start(&server.url(), &["--renditions", "original,cq5dam.web.*"]);

    let original = read(mount.path("a.jpg")).unwrap_or_else(|e| panic!("{e}\nlog:\n{}", mount.log_text()));
    assert_eq!(original, std::fs::read(dam.join("a.jpg")).unwrap());
    assert_eq!(binary_gets(&server, "a.jpg"), counts(&[("original", 1), (WEB, 1)]));
    assert_eq!(read(mount.path(&format!(".renditions/a.jpg/{WEB}"))).unwrap(), web);

    // Listed with the size the remote gave, and the metadata, without a byte of them fetched.
    let listed = std::fs::metadata(mount.path(&format!(".renditions/a.jpg/{THUMB}"))).unwrap();
    assert_eq!(listed.len(), thumb.len() as u64);
    let metadata = read(mount.path(".metadata/a.jpg.json")).unwrap();
    assert!(String::from_utf8_lossy(&metadata).contains(THUMB));
    assert_eq!(binary_gets(&server, "a.jpg"), counts(&[("original", 1), (WEB, 1)]));

    // Four readers at once of a rendition left out: one GET of it, and of nothing else.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let path = mount.path(&format!(".renditions/a.jpg/{THUMB}"));
            std::thread::spawn(move || read(path))
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.join().unwrap().unwrap(), thumb);
    }
    assert_eq!(read(mount.path(&format!(".renditions/a.jpg/{THUMB}"))).unwrap(), thumb);
    assert_eq!(binary_gets(&server, "a.jpg"), counts(&[("original", 1), (WEB, 1), (THUMB, 1)]));
    assert!(binary_gets(&server, "b.jpg").is_empty());
    let missing = std::fs::read(mount.path(".renditions/a.jpg/cq5dam.nothing.png")).unwrap_err();
    assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
}

#[test]
fn a_rendition_fetched_on_its_own_stays_cached_across_a_remount() {
    let (_tmp, dam) = dam();
    let server = TestServer::start(&dam);
    let thumb = served(&server, "b.jpg", THUMB);
    server.catalog().clear_requests();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("shared-cache");
    // The -o spelling, with colons between the patterns.
    let options = ["-o", "renditions=original:cq5dam.web.*"];
    let mut first = Mounted::start_with_cache(&server.url(), &cache, tempfile::tempdir().unwrap(), &options);
    assert_eq!(read(first.path(&format!(".renditions/b.jpg/{THUMB}"))).unwrap(), thumb);
    assert_eq!(binary_gets(&server, "b.jpg"), counts(&[("original", 1), (WEB, 1), (THUMB, 1)]));
    first.unmount();

    server.catalog().clear_requests();
    let second = Mounted::start_with_cache(&server.url(), &cache, tempfile::tempdir().unwrap(), &options);
    assert_eq!(read(second.path("b.jpg")).unwrap(), std::fs::read(dam.join("b.jpg")).unwrap());
    assert_eq!(read(second.path(&format!(".renditions/b.jpg/{THUMB}"))).unwrap(), thumb);
    assert!(binary_gets(&server, "b.jpg").is_empty(), "fetched again: {:?}", binary_gets(&server, "b.jpg"));
}

#[test]
fn a_list_without_the_original_is_refused_naming_the_flag() {
    let out = std::process::Command::new(common::mount::damfs_bin())
        .args(["mount", "http://127.0.0.1:9", "/nonexistent", "--renditions", "cq5dam.web.*"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--renditions") && err.contains("original"), "{err}");
}

#[test]
fn prefetch_fetches_what_a_first_open_would() {
    let (_tmp, dam) = dam();
    let server = TestServer::start(&dam);
    let mount = Mounted::start(&server.url(), &["--renditions", "original,cq5dam.web.*"]);
    let said = damfs::stats::read_xattr(&mount.mountpoint, "user.damfs.renditions").unwrap();
    assert_eq!(String::from_utf8(said).unwrap(), "original,cq5dam.web.*");
    let mountpoint = mount.mountpoint.clone();
    let out = within(Duration::from_secs(60), "damfs prefetch", move || {
        std::process::Command::new(common::mount::damfs_bin())
            .args(["prefetch", "--recursive"])
            .arg(&mountpoint)
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in ["a.jpg", "b.jpg"] {
        assert_eq!(binary_gets(&server, name), counts(&[("original", 1), (WEB, 1)]), "{name}");
    }
}
