//! A hostile or broken remote, through a real kernel mount: `damfs serve` behind a proxy
//! that misbehaves on command ([`common::faults`]). What a bad answer may cost is an error
//! for the operation that met it; never a full disk, a poisoned cache entry or a transfer
//! that outlives everyone who wanted it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::TestServer;
use common::faults::{Fault, FaultProxy};
use common::mount::{Mounted, wait_until, within};

/// A small DAM: `a.jpg` … `d.jpg`, JPEGs of a few KiB.
fn small_dam() -> (tempfile::TempDir, PathBuf) {
    let (tmp, dam) = common::dam_dir();
    for (i, name) in ["a.jpg", "b.jpg", "c.jpg", "d.jpg"].iter().enumerate() {
        common::write_jpeg(&dam.join(name), 160 + 40 * i as u32, 120);
    }
    (tmp, dam)
}

fn errno_of<T>(result: std::io::Result<T>) -> Option<i32> {
    result.err().and_then(|e| e.raw_os_error())
}

/// Bytes of the files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// A Siren document: the shape of an Assets API answer, where Sling JSON is expected.
const SIREN: &str = r#"{"class":["assets/asset"],"properties":{"name":"x","metadata":{}},"entities":[{"class":["assets/asset/renditions/rendition"],"properties":{"name":"original"}}],"links":[]}"#;

#[test]
fn a_wrong_shaped_answer_is_eio_and_is_not_kept() {
    let (_tmp, dam) = small_dam();
    let server = TestServer::start(&dam);
    let proxy = FaultProxy::start(server.addr());
    proxy.add("a.jpg/jcr:content/renditions.2.json", Fault::Json(SIREN.into()));
    proxy.add("b.jpg/jcr:content/metadata.json", Fault::Json(SIREN.into()));
    proxy.add("/api/assets/b.jpg.json", Fault::Json(SIREN.into()));
    let mount = Mounted::start(&proxy.url(), &[]);
    let (a, b) = (mount.path("a.jpg"), mount.path("b.jpg"));

    let (a2, b2) = (a.clone(), b.clone());
    let (open_a, read_b, meta_b) = within(Duration::from_secs(30), "opens with wrong shapes", move || {
        let meta = b2.parent().unwrap().join(".metadata/b.jpg.json");
        (errno_of(std::fs::read(&a2)), errno_of(std::fs::read(&b2)), errno_of(std::fs::read(meta)))
    });
    assert_eq!(open_a, Some(libc::EIO), "a rendition list of the wrong shape");
    assert_eq!(read_b, Some(libc::EIO), "a metadata node of the wrong shape");
    assert_eq!(meta_b, Some(libc::EIO), ".metadata of an asset whose metadata has the wrong shape");
    let log = mount.log_text();
    assert!(log.contains("not a rendition list"), "the log names the cause:\n{log}");

    // Once the remote answers right, the same mount serves both: nothing wrong was kept.
    proxy.clear();
    let (a2, b2) = (a.clone(), b.clone());
    let (bytes_a, bytes_b) = within(Duration::from_secs(30), "opens after the fix", move || {
        (std::fs::read(&a2).unwrap(), std::fs::read(&b2).unwrap())
    });
    assert_eq!(bytes_a, std::fs::read(dam.join("a.jpg")).unwrap());
    assert_eq!(bytes_b, std::fs::read(dam.join("b.jpg")).unwrap());
    let renditions: Vec<String> = std::fs::read_dir(mount.path(".renditions/a.jpg"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(renditions.contains(&"original".to_string()), "{renditions:?}");
    assert!(!renditions.iter().any(|n| n == "properties" || n == "entities"), "{renditions:?}");
}

/// Samples the size of `tmp/` every few milliseconds until dropped; keeps the largest.
struct TmpWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl TmpWatch {
    fn start(tmp: PathBuf) -> TmpWatch {
        let (peak, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                p.fetch_max(bytes_under(&tmp), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        TmpWatch { peak, stop }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::SeqCst)
    }
}

impl Drop for TmpWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn an_endless_body_is_stopped_and_leaves_nothing_behind() {
    let (_tmp, dam) = small_dam();
    let server = TestServer::start(&dam);
    let proxy = FaultProxy::start(server.addr());
    let fast = Fault::Endless { chunk: 64 << 10, every: Duration::from_millis(1) };
    // a.jpg: the rendition list says how long the original is; its body never ends.
    proxy.add("a.jpg/jcr:content/renditions/original", fast.clone());
    // b.jpg and c.jpg: nothing says how long the original is (a rendition list and a
    // metadata node without lengths); b's body never ends fast, c's slowly.
    for name in ["b.jpg", "c.jpg"] {
        proxy.add(
            &format!("{name}/jcr:content/renditions.2.json"),
            Fault::Json(r#"{"jcr:primaryType":"nt:folder","original":{"jcr:primaryType":"nt:file"}}"#.into()),
        );
        proxy.add(
            &format!("{name}/jcr:content/metadata.json"),
            Fault::Json(r#"{"jcr:primaryType":"nt:unstructured","dc:format":"image/jpeg"}"#.into()),
        );
    }
    proxy.add("b.jpg/jcr:content/renditions/original", fast);
    let slow = Fault::Endless { chunk: 16 << 10, every: Duration::from_millis(10) };
    proxy.add("c.jpg/jcr:content/renditions/original", slow);
    let cap = 5u64 << 20;
    let mut mount = Mounted::start(&proxy.url(), &["--cache-size", "5M", "--fetch-timeout", "3s"]);
    let watch = TmpWatch::start(mount.cache_dir.join("tmp"));

    // Past the listed length (with slack): cut off long before the timeout.
    let a = mount.path("a.jpg");
    let started = Instant::now();
    let error = within(Duration::from_secs(30), "open a.jpg", move || errno_of(std::fs::read(a)));
    assert_eq!(error, Some(libc::EIO));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(mount.log_text().contains("runs past the listed length"), "{}", mount.log_text());

    // No length known: the cache's cap bounds it.
    let b = mount.path("b.jpg");
    let error = within(Duration::from_secs(30), "open b.jpg", move || errno_of(std::fs::read(b)));
    assert_eq!(error, Some(libc::EIO));
    assert!(mount.log_text().contains("runs past the whole cache"), "{}", mount.log_text());

    // Slow enough to outlast the opener: it times out, and the transfer stops with it.
    let c = mount.path("c.jpg");
    let error = within(Duration::from_secs(30), "open c.jpg", move || errno_of(std::fs::read(c)));
    assert_eq!(error, Some(libc::ETIMEDOUT));
    assert!(
        wait_until(Duration::from_secs(5), || proxy.open_bodies() == 0),
        "the transfer went on after its opener left"
    );
    let tmp = mount.cache_dir.join("tmp");
    assert!(
        wait_until(Duration::from_secs(5), || bytes_under(&tmp) == 0),
        "tmp/ holds {}",
        bytes_under(&tmp)
    );
    let peak = watch.peak();
    assert!(peak <= cap + (1 << 20), "tmp/ grew to {peak} bytes under a {cap}-byte cap");
    mount.unmount();
    assert_eq!(bytes_under(&tmp), 0);
}

#[test]
fn a_transfer_in_flight_at_unmount_leaves_no_part_file() {
    let (_tmp, dam) = small_dam();
    let server = TestServer::start(&dam);
    let proxy = FaultProxy::start(server.addr());
    // Every rendition above 1 KiB goes in the background; the original drips for ages.
    proxy.add(
        "d.jpg/jcr:content/renditions/original",
        Fault::Drip { chunk: 256, every: Duration::from_millis(100) },
    );
    let mut mount = Mounted::start(&proxy.url(), &["--async-threshold", "1K"]);
    let d = mount.path("d.jpg");
    let file = within(Duration::from_secs(30), "open d.jpg", move || std::fs::File::open(d)).unwrap();
    let tmp = mount.cache_dir.join("tmp");
    assert!(wait_until(Duration::from_secs(10), || bytes_under(&tmp) > 0), "no transfer in tmp/");
    drop(file);
    mount.unmount();
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "left under tmp/ after unmount: {left:?}");
}

#[test]
fn sigterm_answers_readers_waiting_on_the_remote_at_once() {
    let (_tmp, dam) = small_dam();
    let server = TestServer::start(&dam);
    let proxy = FaultProxy::start(server.addr());
    proxy.add("a.jpg/jcr:content/renditions/original", Fault::StallHeaders);
    let mut mount = Mounted::start(&proxy.url(), &["--fetch-timeout", "20s"]);
    let a = mount.path("a.jpg");
    let reader = std::thread::spawn(move || {
        let result = std::fs::read(a);
        (Instant::now(), errno_of(result))
    });
    assert!(
        wait_until(Duration::from_secs(10), || proxy.open_bodies() > 0),
        "the read never reached the stalled remote"
    );
    let signalled = Instant::now();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(mount.pid().unwrap() as i32, libc::SIGTERM) }, 0);
    let (answered, errno) =
        within(Duration::from_secs(15), "the blocked reader", move || reader.join().unwrap());
    let waited = answered.duration_since(signalled);
    assert!(errno.is_some(), "the read of a stalled asset succeeded");
    assert!(waited < Duration::from_secs(3), "the reader waited {waited:?} after SIGTERM");
    mount.reap(Duration::from_secs(15));
}

#[test]
fn a_mount_left_by_a_killed_daemon_is_replaced() {
    let (_tmp, dam) = small_dam();
    let server = TestServer::start(&dam);
    let mut first = Mounted::start(&server.url(), &[]);
    let a = first.path("a.jpg");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(dam.join("a.jpg")).unwrap());
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(first.pid().unwrap() as i32, libc::SIGKILL) }, 0);
    let stale = wait_until(Duration::from_secs(10), || {
        std::fs::read_dir(&first.mountpoint).is_err_and(|e| e.raw_os_error() == Some(libc::ENOTCONN))
    });
    assert!(stale, "the killed daemon's mount: {:?}", std::fs::read_dir(&first.mountpoint).map(|_| ()));
    let out = std::process::Command::new(common::mount::damfs_bin())
        .arg("mount")
        .arg(server.url())
        .arg(&first.mountpoint)
        .arg("--cache-dir")
        .arg(&first.cache_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "damfs mount on a stale mount: {}", String::from_utf8_lossy(&out.stderr));
    let b = first.path("b.jpg");
    let bytes = within(Duration::from_secs(30), "read through the new mount", move || std::fs::read(b));
    assert_eq!(bytes.unwrap(), std::fs::read(dam.join("b.jpg")).unwrap());
    let out = std::process::Command::new(common::mount::damfs_bin())
        .arg("umount")
        .arg(&first.mountpoint)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    first.crash();
}

fn names_under(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_name_the_kernel_sees_is_a_valid_file_name() {
    let (_tmp, dam) = common::dam_dir();
    // 252 bytes: a valid name, but `<name>.json` and `<stem> (2).jpg` would not be.
    let long = format!("{}.jpg", "x".repeat(248));
    for folder in ["f1", "f2"] {
        std::fs::create_dir(dam.join(folder)).unwrap();
        common::write_jpeg(&dam.join(folder).join(&long), 120, 90);
    }
    common::write_jpeg(&dam.join("a.jpg"), 120, 90);
    let server = TestServer::start(&dam);
    let proxy = FaultProxy::start(server.addr());
    let too_long = "r".repeat(300);
    proxy.add(
        "a.jpg/jcr:content/renditions.2.json",
        Fault::Json(format!(
            r#"{{"original":{{"jcr:primaryType":"nt:file"}},"a/b":{{}},"..":{{}},"{too_long}":{{}},"cq5dam.thumbnail.48.48.png":{{}}}}"#
        )),
    );
    proxy.add(
        &format!("{long}/jcr:content/metadata.json"),
        Fault::Json(
            r#"{"jcr:primaryType":"nt:unstructured","dc:format":"image/jpeg","cq:tags":["t:x"]}"#.into(),
        ),
    );
    let mount = Mounted::start(&proxy.url(), &[]);

    let renditions = mount.path(".renditions/a.jpg");
    let listed = within(Duration::from_secs(30), "ls .renditions/a.jpg", move || names_under(&renditions));
    assert_eq!(listed, ["cq5dam.thumbnail.48.48.png", "original"]);
    let a = mount.path("a.jpg");
    let bytes = within(Duration::from_secs(30), "read a.jpg", move || std::fs::read(a).unwrap());
    assert_eq!(bytes, std::fs::read(dam.join("a.jpg")).unwrap());

    for folder in ["f1", "f2"] {
        let path = mount.path(&format!("{folder}/{long}"));
        let bytes =
            within(Duration::from_secs(30), "read the long name", move || std::fs::read(path).unwrap());
        assert_eq!(bytes, std::fs::read(dam.join(folder).join(&long)).unwrap());
        // Its metadata document would be 257 bytes long: it is left out, not broken.
        let metadata = mount.path(&format!("{folder}/.metadata"));
        assert!(names_under(&metadata).is_empty(), "{:?}", names_under(&metadata));
    }
    let links = names_under(&mount.path(".tags/t/x"));
    assert_eq!(links.len(), 2, "{links:?}");
    for name in &links {
        assert!(name.len() <= 255, "{} bytes: {name}", name.len());
    }
    assert!(links.iter().any(|n| n.ends_with(" (2).jpg")), "{links:?}");
    for name in &links {
        let target = std::fs::read(mount.path(&format!(".tags/t/x/{name}"))).unwrap();
        assert!(!target.is_empty());
    }
}

#[test]
fn sizes_past_what_a_file_can_hold_read_as_unknown() {
    let (_tmp, dam) = small_dam();
    let server = TestServer::start(&dam);
    let proxy = FaultProxy::start(server.addr());
    proxy.add(
        "querybuilder.json",
        Fault::Json(
            r#"{"success":true,"results":1,"total":1,"more":false,"offset":0,"hits":[{"jcr:path":"/content/dam/a.jpg","jcr:content":{"jcr:lastModified":"Fri Oct 25 2024 18:11:57 GMT+0000","metadata":{"dam:size":100000000000000000000,"dc:format":"image/jpeg"}}}]}"#
                .into(),
        ),
    );
    proxy.add(
        "a.jpg/jcr:content/renditions.2.json",
        Fault::Json(
            r#"{"original":{"jcr:content":{":jcr:data":100000000000000000000}},"cq5dam.thumbnail.48.48.png":{"jcr:content":{":jcr:data":18446744073709551615}}}"#
                .into(),
        ),
    );
    let mount = Mounted::start(&proxy.url(), &["--cache-size", "5M"]);
    let a = mount.path("a.jpg");
    let (meta, bytes) = within(Duration::from_secs(30), "stat and read a.jpg", move || {
        (std::fs::metadata(&a).map(|m| m.len()), std::fs::read(&a))
    });
    assert!(meta.is_ok(), "stat: {meta:?}");
    let want = std::fs::read(dam.join("a.jpg")).unwrap();
    assert_eq!(bytes.unwrap(), want);
    // The kernel's attributes are invalidated right after the open's reply.
    let a = mount.path("a.jpg");
    let real =
        wait_until(Duration::from_secs(5), || std::fs::metadata(&a).unwrap().len() == want.len() as u64);
    assert!(real, "once read, the size is the real one: {}", std::fs::metadata(&a).unwrap().len());
}

#[test]
fn ioctl_answers_enotty_without_a_log_line() {
    use std::os::fd::AsRawFd;
    let (_tmp, dam) = small_dam();
    let server = TestServer::start(&dam);
    let mount = Mounted::start(&server.url(), &[]);
    let a = mount.path("a.jpg");
    let file = within(Duration::from_secs(30), "open a.jpg", move || std::fs::File::open(a).unwrap());
    let mut termios = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: TCGETS on an open descriptor with a buffer of the size it writes.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TCGETS, termios.as_mut_ptr()) };
    assert_eq!(rc, -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ENOTTY));
    drop(file);
    let log = mount.log_text();
    assert!(!log.contains("ioctl"), "the log mentions the ioctl:\n{log}");
}
