//! The mount through a real kernel mount, against `damfs serve` on loopback.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use common::mount::{Mounted, damfs_bin, force_unmount, http_get, wait_until, within};
use common::nginx::Nginx;
use damfs::sample::{SampleOptions, generate};
use damfs::sidecar::Sidecar;

/// A generated sample DAM in a temp dir.
fn sample(assets: usize, large: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dam");
    generate(&SampleOptions { dir: root.clone(), assets, seed: 7, large_size: large }).unwrap();
    (dir, root)
}

/// Every visible entry under `root`: relative path -> (is dir, size of files).
fn tree(root: &Path, keep: &dyn Fn(&Path) -> bool) -> BTreeMap<String, (bool, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name.as_bytes().starts_with(b".") {
                continue;
            }
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if !meta.is_dir() && !keep(&path) {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, (meta.is_dir(), if meta.is_dir() { 0 } else { meta.len() }));
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

fn is_image(path: &Path) -> bool {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    matches!(ext.as_str(), "jpg" | "jpeg" | "png")
}

/// Image assets of the sample, relative paths.
fn images(root: &Path) -> Vec<String> {
    tree(root, &is_image).into_iter().filter(|(_, (dir, _))| !dir).map(|(p, _)| p).collect()
}

fn binary_gets(server: &TestServer) -> usize {
    server.catalog().requests().iter().filter(|r| r.is_binary()).count()
}

fn errno_of(result: std::io::Result<impl Sized>) -> Option<i32> {
    result.err().and_then(|e| e.raw_os_error())
}

fn getxattr(path: &Path, name: &str) -> Option<String> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: valid strings and buffer.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| String::from_utf8_lossy(&buf[..len as usize]).into_owned())
}

#[test]
fn listing_matches_the_served_tree_and_downloads_nothing() {
    let (_keep, root) = sample(1200, 1 << 20);
    let server = TestServer::start(&root);
    let mount = Mounted::start(&server.url(), &["--formats", "all"]);
    let mnt = mount.mountpoint.clone();
    let seen = within(Duration::from_secs(120), "walking the mount", move || tree(&mnt, &|_| true));
    let expected = tree(&root, &|_| true);
    assert_eq!(seen.len(), expected.len());
    assert_eq!(seen, expected);
    let biggest = expected.keys().filter_map(|p| p.rsplit_once('/').map(|(d, _)| d)).fold(
        BTreeMap::new(),
        |mut m, d| {
            *m.entry(d).or_insert(0) += 1;
            m
        },
    );
    assert!(biggest.values().any(|&n| n >= 1000), "the sample has a folder of 1000 assets");
    assert_eq!(binary_gets(&server), 0, "ls -lR downloaded binaries: {:?}", server.catalog().requests());
    drop(mount);

    // The default shows images only.
    let mount = Mounted::start(&server.url(), &[]);
    let mnt = mount.mountpoint.clone();
    let seen = within(Duration::from_secs(120), "walking the mount", move || tree(&mnt, &|_| true));
    let expected_images = tree(&root, &is_image);
    let files: Vec<_> = seen.iter().filter(|(_, (d, _))| !d).map(|(p, _)| p.clone()).collect();
    let want: Vec<_> = expected_images.iter().filter(|(_, (d, _))| !d).map(|(p, _)| p.clone()).collect();
    assert_eq!(files, want);
}

#[test]
fn reads_are_byte_identical_then_served_from_the_cache_even_offline() {
    let (_keep, root) = sample(40, 1 << 20);
    let mut server = TestServer::start(&root);
    let mount = Mounted::start(&server.url(), &[]);
    let assets = images(&root);
    assert!(assets.len() >= 20);
    let mut renditions = Vec::new();
    for rel in &assets {
        let got = std::fs::read(mount.path(rel)).unwrap();
        assert_eq!(got, std::fs::read(root.join(rel)).unwrap(), "{rel}");
        let (folder, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let rdir = mount.path(&format!("{folder}/.renditions/{name}"));
        let names: Vec<String> = std::fs::read_dir(&rdir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"original".to_string()) && names.len() >= 5, "{rel}: {names:?}");
        for r in names {
            let bytes = std::fs::read(rdir.join(&r)).unwrap();
            let served = http_get(
                &server.url(),
                &format!("/content/dam/{}/jcr:content/renditions/{}", enc(rel), enc(&r)),
            );
            assert_eq!(served.status, 200);
            let served = served.body;
            assert_eq!(bytes, served, "{rel} rendition {r}");
            renditions.push((rdir.join(&r), bytes));
        }
    }
    // Second reads: nothing asked of the remote.
    server.catalog().clear_requests();
    for rel in &assets {
        assert_eq!(std::fs::read(mount.path(rel)).unwrap(), std::fs::read(root.join(rel)).unwrap());
    }
    for (path, bytes) in &renditions {
        assert_eq!(&std::fs::read(path).unwrap(), bytes);
    }
    assert_eq!(server.catalog().requests().len(), 0, "{:?}", server.catalog().requests());

    // The remote goes away: materialized assets and seen listings keep serving.
    server.stop();
    let folder = assets[0].rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
    let mnt = mount.mountpoint.clone();
    let listed = within(Duration::from_secs(10), "listing offline", move || {
        std::fs::read_dir(mnt.join(folder)).unwrap().count()
    });
    assert!(listed > 0);
    for rel in &assets {
        let start = Instant::now();
        assert_eq!(std::fs::read(mount.path(rel)).unwrap(), std::fs::read(root.join(rel)).unwrap());
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}

/// Percent-encodes each segment of a path for a URL.
fn enc(path: &str) -> String {
    path.split('/')
        .map(|s| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn metadata_and_xattrs_carry_tags_with_titles() {
    let (_keep, root) = sample(40, 1 << 20);
    let sidecar = Sidecar::load(&root).unwrap();
    let server = TestServer::start(&root);
    let mount = Mounted::start(&server.url(), &[]);
    let (rel, info) = sidecar
        .assets
        .iter()
        .find(|(p, a)| is_image(Path::new(p)) && a.title.is_some() && a.tags.len() >= 2)
        .expect("a titled image with tags");
    let resolve = |id: &str| -> String {
        let mut id = id.to_string();
        while let Some(to) = sidecar.tags.get(&id).and_then(|t| t.moved_to.clone()) {
            id = to.trim_start_matches("/content/cq:tags/").replacen('/', ":", 1);
        }
        id
    };
    let (folder, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(mount.path(&format!("{folder}/.metadata/{name}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(json["title"].as_str(), info.title.as_deref());
    let tags = json["tags"].as_array().unwrap();
    assert_eq!(tags.len(), info.tags.len());
    for id in &info.tags {
        let id = resolve(id);
        let title = &sidecar.tags[&id].title;
        assert!(
            tags.iter().any(|t| t["id"] == id.as_str() && t["title"] == title.as_str()),
            "{id} {title} in {tags:?}"
        );
        let xattr = getxattr(&mount.path(rel), "user.dam.tags").unwrap();
        assert!(xattr.contains(&format!("{id} ({title})")), "{xattr}");
    }
    assert_eq!(getxattr(&mount.path(rel), "user.dam.title").as_deref(), info.title.as_deref());
    assert!(getxattr(&mount.path(rel), "user.dam.format").unwrap().starts_with("image/"));
    assert!(getxattr(&mount.path(rel), "user.dam.remote").unwrap().starts_with(&server.url()));
    let stats: serde_json::Value =
        serde_json::from_str(&getxattr(&mount.mountpoint, "user.damfs.stats").unwrap()).unwrap();
    assert!(stats["manifests_fetched"].as_u64().unwrap() >= 1);

    // The local taxonomy links the asset under each of its tags.
    std::fs::read(mount.path(rel)).unwrap();
    let first = resolve(&info.tags[0]);
    let (ns, local) = first.split_once(':').unwrap();
    let link = mount.path(&format!(".tags/{ns}/{local}/{name}"));
    let target = std::fs::read_link(&link).unwrap();
    assert!(target.to_string_lossy().ends_with(rel.as_str()), "{}", target.display());
    assert_eq!(std::fs::read(&link).unwrap(), std::fs::read(root.join(rel)).unwrap());
}

#[test]
fn sixteen_openers_share_one_fetch_per_rendition() {
    let (_keep, root) = sample(20, 1 << 20);
    let server = TestServer::start(&root);
    let mount = Mounted::start(&server.url(), &[]);
    let rel = images(&root).into_iter().next().unwrap();
    std::fs::read_dir(mount.path(rel.rsplit_once('/').map(|(d, _)| d).unwrap_or(""))).unwrap().count();
    server.catalog().clear_requests();
    let path = Arc::new(mount.path(&rel));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let path = Arc::clone(&path);
            std::thread::spawn(move || std::fs::read(&*path).unwrap())
        })
        .collect();
    let want = std::fs::read(root.join(&rel)).unwrap();
    for t in threads {
        assert_eq!(t.join().unwrap(), want);
    }
    let mut per_path: BTreeMap<String, usize> = BTreeMap::new();
    for r in server.catalog().requests().iter().filter(|r| r.is_binary()) {
        *per_path.entry(r.path.clone()).or_default() += 1;
    }
    assert!(per_path.len() >= 5, "{per_path:?}");
    assert!(per_path.values().all(|&n| n == 1), "{per_path:?}");
}

#[test]
fn every_mutation_fails_with_erofs() {
    let (_keep, root) = sample(10, 1 << 20);
    let server = TestServer::start(&root);
    let mount = Mounted::start(&server.url(), &[]);
    let rel = images(&root).into_iter().next().unwrap();
    let file = mount.path(&rel);
    let dir = file.parent().unwrap().to_path_buf();
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
    let erofs = Some(libc::EROFS);
    let last = || std::io::Error::last_os_error().raw_os_error();
    assert_eq!(errno_of(std::fs::OpenOptions::new().write(true).open(&file)), erofs, "O_WRONLY");
    assert_eq!(errno_of(std::fs::OpenOptions::new().read(true).write(true).open(&file)), erofs, "O_RDWR");
    assert_eq!(
        errno_of(std::fs::OpenOptions::new().write(true).truncate(true).open(&file)),
        erofs,
        "O_TRUNC"
    );
    assert_eq!(errno_of(std::fs::File::create(dir.join("new.jpg"))), erofs, "O_CREAT");
    assert_eq!(errno_of(std::fs::create_dir(dir.join("d"))), erofs, "mkdir");
    assert_eq!(errno_of(std::fs::remove_dir(&dir)), erofs, "rmdir");
    assert_eq!(errno_of(std::fs::remove_file(&file)), erofs, "unlink");
    assert_eq!(errno_of(std::fs::rename(&file, dir.join("x.jpg"))), erofs, "rename");
    assert_eq!(errno_of(std::fs::hard_link(&file, dir.join("h.jpg"))), erofs, "link");
    assert_eq!(errno_of(std::os::unix::fs::symlink(&file, dir.join("s.jpg"))), erofs, "symlink");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        errno_of(std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))),
        erofs,
        "chmod"
    );
    // SAFETY: plain syscalls on valid paths.
    unsafe {
        assert_eq!((libc::chown(c(&file).as_ptr(), 1, 1), last()), (-1, erofs), "chown");
        assert_eq!((libc::truncate(c(&file).as_ptr(), 0), last()), (-1, erofs), "truncate");
        assert_eq!(
            (libc::utimensat(libc::AT_FDCWD, c(&file).as_ptr(), std::ptr::null(), 0), last()),
            (-1, erofs),
            "utimensat"
        );
        let name = CString::new("user.x").unwrap();
        assert_eq!(
            (libc::setxattr(c(&file).as_ptr(), name.as_ptr(), b"1".as_ptr().cast(), 1, 0), last()),
            (-1, erofs),
            "setxattr"
        );
        assert_eq!((libc::removexattr(c(&file).as_ptr(), name.as_ptr()), last()), (-1, erofs), "removexattr");
        assert_eq!(
            (libc::mknod(c(&dir.join("n")).as_ptr(), libc::S_IFIFO | 0o644, 0), last()),
            (-1, erofs),
            "mknod"
        );
    }
    let opts = damfs::mount::mountinfo::find(&mount.mountpoint).unwrap();
    assert!(opts.options.split(',').any(|o| o == "ro"), "{}", opts.options);
    assert_eq!(opts.fstype, "fuse.damfs");
    // Reading still works.
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(root.join(&rel)).unwrap());
}

#[test]
fn a_stalled_remote_times_out_while_the_cache_keeps_serving() {
    let (_keep, root) = sample(20, 1 << 20);
    let server = TestServer::start(&root);
    let timeout = Duration::from_secs(2);
    let mount = Mounted::start(&server.url(), &["--fetch-timeout", "2s"]);
    let assets = images(&root);
    let (cached, cold) = (assets[0].clone(), assets[1].clone());
    assert_eq!(std::fs::read(mount.path(&cached)).unwrap(), std::fs::read(root.join(&cached)).unwrap());
    std::fs::metadata(mount.path(&cold)).unwrap();

    server.catalog().set_stall(true);
    let cold_path = mount.path(&cold);
    let opener = std::thread::spawn(move || {
        let start = Instant::now();
        let result = std::fs::File::open(&cold_path).and_then(|mut f| f.read_to_end(&mut Vec::new()));
        (start.elapsed(), result.err().and_then(|e| e.raw_os_error()))
    });
    assert!(
        wait_until(Duration::from_secs(10), || server.catalog().stalled() > 0),
        "the open never reached the server"
    );
    let start = Instant::now();
    assert_eq!(std::fs::read(mount.path(&cached)).unwrap(), std::fs::read(root.join(&cached)).unwrap());
    assert!(start.elapsed() < Duration::from_millis(500), "a cached read waited {:?}", start.elapsed());
    let (elapsed, errno) = opener.join().unwrap();
    assert_eq!(errno, Some(libc::ETIMEDOUT));
    assert!(elapsed <= timeout + Duration::from_millis(500), "timed out after {elapsed:?}");

    server.catalog().set_stall(false);
    let got = within(Duration::from_secs(10), "open after the stall", {
        let p = mount.path(&cold);
        move || std::fs::read(p)
    });
    assert_eq!(got.unwrap(), std::fs::read(root.join(&cold)).unwrap());
}

#[test]
fn credentials_are_checked_at_mount_and_a_revoked_token_gives_eacces() {
    let (keep, root) = sample(10, 1 << 20);
    let server = TestServer::start_with(
        &root,
        Some(&keep.path().join("state")),
        damfs::serve::Auth {
            basic: Some(("svc".into(), "right".into())),
            bearer: Some("token-1".into()),
            ims: None,
        },
    );
    let pw = keep.path().join("pw");
    std::fs::write(&pw, "wrong\n").unwrap();
    let mnt = keep.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out = Command::new(damfs_bin())
        .args(["mount", &server.url()])
        .arg(&mnt)
        .args(["--user", "svc", "--password-file"])
        .arg(&pw)
        .arg("--cache-dir")
        .arg(keep.path().join("c1"))
        .output()
        .unwrap();
    force_unmount(&mnt);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the credentials") && err.lines().count() == 1, "{err}");
    assert!(!err.contains("wrong"), "the password leaked: {err}");

    let token = keep.path().join("token");
    std::fs::write(&token, "token-1\n").unwrap();
    let mount = Mounted::start(&server.url(), &["--token-file", token.to_str().unwrap()]);
    let assets = images(&root);
    assert_eq!(std::fs::read(mount.path(&assets[0])).unwrap(), std::fs::read(root.join(&assets[0])).unwrap());
    std::fs::metadata(mount.path(&assets[1])).unwrap();
    server.catalog().set_auth(damfs::serve::Auth { basic: None, bearer: Some("token-2".into()), ims: None });
    assert_eq!(errno_of(std::fs::read(mount.path(&assets[1]))), Some(libc::EACCES));
    assert!(!mount.log_text().contains("token-1"), "the token leaked into the log");
}

#[test]
fn background_mount_umount_and_the_mount_helper() {
    let (keep, root) = sample(10, 1 << 20);
    let server = TestServer::start(&root);
    let mnt = keep.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let cache = keep.path().join("cache");
    let rel = images(&root).into_iter().next().unwrap();
    let mount_bg = |extra: &[&str]| {
        Command::new(damfs_bin())
            .args(["mount", &server.url()])
            .arg(&mnt)
            .arg("--cache-dir")
            .arg(&cache)
            .args(extra)
            .output()
            .unwrap()
    };
    let cleanup = Cleanup(mnt.clone());

    // Background mount returns once usable; a plain umount ends the daemon.
    let out = mount_bg(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(mnt.join(&rel)).unwrap(), std::fs::read(root.join(&rel)).unwrap());
    let pid: u32 = serde_json::from_str::<serde_json::Value>(&getxattr(&mnt, "user.damfs.stats").unwrap())
        .unwrap()["pid"]
        .as_u64()
        .unwrap() as u32;
    // A second mount on the same point is refused with a reason.
    let again = mount_bg(&[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already mounted"));
    assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
    // SAFETY: probing a pid.
    assert!(
        wait_until(Duration::from_secs(10), || unsafe { libc::kill(pid as i32, 0) } != 0),
        "daemon still alive"
    );

    // damfs umount.
    let out = mount_bg(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(damfs_bin()).arg("umount").arg(&mnt).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(damfs::mount::mountinfo::find(&mnt).is_none());

    // mount.damfs SOURCE DIR -o ... as mount(8) calls it.
    let helper = keep.path().join("mount.damfs");
    std::os::unix::fs::symlink(damfs_bin(), &helper).unwrap();
    let opts = format!("ro,cache_dir={},fetch_timeout=3s,dir_ttl=30s", cache.display());
    let out = Command::new(&helper).arg(server.url()).arg(&mnt).args(["-o", &opts]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let entry = damfs::mount::mountinfo::find(&mnt).unwrap();
    assert_eq!(entry.fstype, "fuse.damfs");
    assert_eq!(entry.source, server.url());
    assert!(entry.options.split(',').any(|o| o == "ro"));
    let out = Command::new(damfs_bin()).arg("umount").arg(&mnt).output().unwrap();
    assert!(out.status.success());
    let rw = Command::new(&helper).arg(server.url()).arg(&mnt).args(["-o", "rw"]).output().unwrap();
    assert!(!rw.status.success() && String::from_utf8_lossy(&rw.stderr).contains("read-only"));

    // Clear failures.
    let missing = Command::new(damfs_bin())
        .args(["mount", &server.url()])
        .arg(keep.path().join("nope"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope"));
    std::fs::write(keep.path().join("full"), b"").unwrap();
    drop(cleanup);
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        force_unmount(&self.0);
    }
}

#[test]
fn nginx_serves_assets_and_renditions_through_the_mount() {
    let (keep, root) = sample(10, 1 << 20);
    let server = TestServer::start(&root);
    let mount = Mounted::start(&server.url(), &["--allow-other"]);
    let server_block = format!(
        "sendfile on; types {{ image/jpeg jpg jpeg; image/png png; }} root {};",
        mount.mountpoint.display()
    );
    let nginx = Nginx::start(&keep.path().join("nginx"), "", &server_block);
    let base = format!("http://127.0.0.1:{}", nginx.port);
    let rel = images(&root).into_iter().find(|p| !p.contains(' ')).unwrap();
    let answer = http_get(&base, &format!("/{}", enc(&rel)));
    assert_eq!(answer.status, 200, "{}", nginx.error_log());
    let want = std::fs::read(root.join(&rel)).unwrap();
    assert_eq!(answer.body, want);
    assert_eq!(answer.header("content-length"), Some(want.len().to_string().as_str()));
    let (folder, name) = rel.rsplit_once('/').unwrap_or(("", &rel));
    let rendition = "cq5dam.thumbnail.140.100.png";
    let answer = http_get(&base, &format!("/{}/.renditions/{}/{rendition}", enc(folder), enc(name)));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-length"), Some(answer.body.len().to_string().as_str()));
    let served =
        http_get(&server.url(), &format!("/content/dam/{}/jcr:content/renditions/{rendition}", enc(&rel)));
    assert_eq!(answer.body, served.body);
}

#[test]
fn sigterm_in_the_foreground_unmounts_and_exits_cleanly() {
    let (_keep, root) = sample(10, 1 << 20);
    let server = TestServer::start(&root);
    let mut mount = Mounted::start(&server.url(), &[]);
    let rel = images(&root).into_iter().next().unwrap();
    assert_eq!(std::fs::read(mount.path(&rel)).unwrap(), std::fs::read(root.join(&rel)).unwrap());
    let pid = mount.pid().unwrap();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    mount.reap(Duration::from_secs(15));
    assert!(damfs::mount::mountinfo::find(&mount.mountpoint).is_none(), "the mount is gone");
    assert!(mount.log_text().contains("saving the cache index"), "{}", mount.log_text());
}

#[test]
fn browsing_a_cold_folder_asks_nothing_per_asset() {
    let (_tmp, dam) = common::dam_dir();
    let folder = dam.join("big");
    std::fs::create_dir(&folder).unwrap();
    // Listing needs no valid image: names, sizes and formats come from the listing.
    for i in 0..230 {
        std::fs::write(folder.join(format!("asset-{i:03}.jpg")), vec![i as u8; 100 + i]).unwrap();
    }
    let server = TestServer::start(&dam);
    let mount = Mounted::start(&server.url(), &[]);
    server.catalog().clear_requests();
    let dir = mount.path("big");
    let listed = within(Duration::from_secs(60), "ls -l and listxattr of 230 assets", move || {
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(meta.len() >= 100);
            let c = CString::new(path.as_os_str().as_bytes()).unwrap();
            let mut buf = vec![0u8; 4096];
            // SAFETY: valid string and buffer.
            let n = unsafe { libc::listxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            assert!(n > 0, "listxattr of {}", path.display());
            assert!(String::from_utf8_lossy(&buf[..n as usize]).contains("user.dam.format"));
            // What ls -l asks for on SELinux and ACL-aware systems.
            for name in ["security.selinux", "system.posix_acl_access"] {
                assert_eq!(getxattr(&path, name), None, "{name}");
            }
            seen += 1;
        }
        seen
    });
    assert_eq!(listed, 230);
    let requests = server.catalog().requests();
    let per_asset: Vec<_> = requests.iter().filter(|r| r.path.contains("asset-")).collect();
    assert!(per_asset.is_empty(), "requests naming an asset: {per_asset:?}");
    assert!(requests.len() <= 10, "{} requests for ls -l of one folder: {requests:?}", requests.len());
}
