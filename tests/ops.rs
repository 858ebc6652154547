//! What an admin runs damfs in production with, through real mounts over `damfs serve`:
//! the metrics page, the service manager's readiness messages, mount(8) options written for
//! systemd, the installed unit, the background listing walk, and `damfs prefetch --from`.

mod common;

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TestServer;
use common::mount::{Mounted, damfs_bin, force_unmount, wait_until, within};
use damfs::mount::mountinfo;
use damfs::sample::{SampleOptions, generate};

/// A generated sample DAM (12 assets in 17 folders, nothing large) in a temp dir.
fn sample() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dam");
    generate(&SampleOptions { dir: root.clone(), assets: 12, seed: 7, large_size: 0 }).unwrap();
    (dir, root)
}

/// A served sample DAM and an empty mount point, with room for a cache beside it; anything
/// left mounted there is detached when dropped.
struct Stage {
    server: TestServer,
    dir: tempfile::TempDir,
    mnt: PathBuf,
    _keep: tempfile::TempDir,
}

impl Stage {
    fn new() -> Stage {
        let (keep, root) = sample();
        let server = TestServer::start(&root);
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        Stage { server, dir, mnt, _keep: keep }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        force_unmount(&self.mnt);
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The metrics page, parsed (the test fails if it does not parse).
fn scrape(addr: &str) -> prometheus_parse::Scrape {
    let page = common::raw_request(addr.parse().unwrap(), "GET", "/metrics", &[]);
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let text = String::from_utf8(page.body).unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the page parses")
}

/// The sum of the samples of `name` whose labels include `labels` (a histogram counts its
/// observations).
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

#[test]
fn metrics_move_as_the_mount_is_read() {
    let (_keep, root) = sample();
    let server = TestServer::start(&root);
    let addr = format!("127.0.0.1:{}", free_port());
    let mount = Mounted::start(&server.url(), &["--metrics-listen", &addr]);

    let before = scrape(&addr);
    let names =
        ["damfs_cache_bytes", "damfs_cache_assets", "damfs_open_handles", "damfs_transfers_in_flight"];
    for name in names {
        assert!(before.samples.iter().any(|s| s.metric == name), "{name} is on the page");
    }
    assert!(
        !before.samples.iter().any(|s| s.metric == "damfs_token_expiry_timestamp_seconds"),
        "no token expiry without a token that has one"
    );

    let asset = mount.path("we-retail/en/activities/hiking/hiking-0001.jpg");
    let bytes = within(Duration::from_secs(30), "reading an asset", move || std::fs::read(asset).unwrap());
    let listed = std::fs::read_dir(mount.path("we-retail/en/activities/hiking")).unwrap().count();
    assert_eq!(listed, 10);
    let _ = std::fs::read(mount.path("we-retail/en/activities/hiking/missing.jpg"));

    let after = scrape(&addr);
    let grew =
        |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    assert!(grew("damfs_operations_total", &[("op", "open")]) >= 1.0);
    assert!(grew("damfs_operations_total", &[("op", "lookup")]) >= 1.0);
    assert!(grew("damfs_errors_total", &[("errno", "ENOENT")]) >= 1.0);
    assert_eq!(grew("damfs_cache_misses_total", &[]), 1.0);
    assert!(grew("damfs_fetched_bytes_total", &[]) >= bytes.len() as f64);
    assert!(grew("damfs_remote_requests_total", &[("endpoint", "binary"), ("status", "200")]) >= 1.0);
    assert!(grew("damfs_remote_requests_total", &[("endpoint", "listing"), ("status", "200")]) >= 1.0);
    assert!(grew("damfs_remote_request_duration_seconds", &[("endpoint", "binary")]) >= 1.0);
    assert!(grew("damfs_open_duration_seconds", &[]) >= 1.0);
    assert_eq!(value(&after, "damfs_cache_assets", &[]), 1.0);
    // Reads go through the daemon or, with passthrough, straight to the cache file.
    let served = grew("damfs_served_bytes_total", &[]) + grew("damfs_passthrough_opens_total", &[]);
    assert!(served > 0.0);
    // No label carries a path.
    for sample in &after.samples {
        for name in ["hiking", "we-retail", "/"] {
            assert!(!format!("{:?}", sample.labels).contains(name), "{sample:?}");
        }
    }

    // OpenMetrics for a scraper that asks for it.
    let accept = [("Accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")];
    let page = common::raw_request(addr.parse().unwrap(), "GET", "/metrics", &accept);
    assert!(page.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    assert!(String::from_utf8(page.body).unwrap().ends_with("# EOF\n"));
    assert_eq!(common::raw_request(addr.parse().unwrap(), "GET", "/", &[]).status, 404);

    // damfs status keeps its table and gains --json.
    let status = Command::new(damfs_bin()).arg("status").arg(&mount.mountpoint).output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("cache misses"));
    let json = Command::new(damfs_bin()).args(["status", "--json"]).arg(&mount.mountpoint).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status --json is JSON");
    assert_eq!(json["cache_misses"], 1);
    assert!(json["open_handles"].is_u64());
}

#[test]
fn a_bad_metrics_address_fails_the_mount_naming_the_flag() {
    let stage = Stage::new();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    for (addr, cause) in
        [("nonsense", "not an address"), ("127.0.0.1:99999", "not an address"), (&busy, "in use")]
    {
        let out = Command::new(damfs_bin())
            .args(["mount", &stage.server.url()])
            .arg(&stage.mnt)
            .arg("--cache-dir")
            .arg(stage.cache())
            .args(["--metrics-listen", addr])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("--metrics-listen") && err.contains(cause), "{addr}: {err}");
        assert!(mountinfo::find(&stage.mnt).is_none());
    }
}

/// A damfs in the foreground started as systemd starts a `Type=notify` service.
struct NotifyService {
    child: Option<Child>,
    mountpoint: PathBuf,
}

impl Drop for NotifyService {
    fn drop(&mut self) {
        force_unmount(&self.mountpoint);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn the_service_manager_hears_ready_and_stopping() {
    let stage = Stage::new();
    let (server, mnt) = (&stage.server, stage.mnt.clone());
    let socket_path = stage.dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let child = Command::new(damfs_bin())
        .args(["mount", "-f", &server.url()])
        .arg(&mnt)
        .arg("--cache-dir")
        .arg(stage.cache())
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut service = NotifyService { child: Some(child), mountpoint: mnt.clone() };

    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("READY=1 within 30 s");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(message.lines().any(|l| l == "READY=1"), "{message:?}");
    assert!(message.lines().any(|l| l.starts_with("STATUS=") && l.contains(&server.url())), "{message:?}");
    // Once READY=1 is sent, the mount answers.
    assert!(mountinfo::find(&mnt).is_some_and(|m| m.fstype == "fuse.damfs"));
    let listed = within(Duration::from_secs(20), "listing the root", {
        let mnt = mnt.clone();
        move || std::fs::read_dir(mnt).unwrap().count()
    });
    assert!(listed >= 4);

    let pid = service.child.as_ref().unwrap().id();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let n = socket.recv(&mut buf).expect("STOPPING=1 within 30 s");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(message.lines().any(|l| l == "STOPPING=1"), "{message:?}");
    let mut child = service.child.take().unwrap();
    assert!(wait_until(Duration::from_secs(15), || child.try_wait().ok().flatten().is_some()));
    assert!(child.wait().unwrap().success());
    assert!(mountinfo::find(&mnt).is_none());
    // STOPPING=1 is sent once.
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert!(socket.recv(&mut buf).is_err(), "no second message");
}

/// Options systemd writes into fstab lines and mount units (and mount(8)'s own) that
/// mount.damfs must accept and ignore.
const SYSTEMD_OPTIONS: &str = "ro,x-systemd.automount,x-systemd.mount-timeout=30,x-systemd.idle-timeout=5min,\
     _netdev,nofail,noauto,auto,users,comment=systemd.automount";

#[test]
fn mount_helper_ignores_systemd_and_fstab_options() {
    let stage = Stage::new();
    let (server, mnt) = (&stage.server, stage.mnt.clone());
    let opts = format!("{SYSTEMD_OPTIONS},cache_dir={}", stage.cache().display());

    // As mount(8) calls the helper.
    let helper = stage.dir.path().join("mount.damfs");
    std::os::unix::fs::symlink(damfs_bin(), &helper).unwrap();
    let out = Command::new(&helper).arg(server.url()).arg(&mnt).args(["-o", &opts]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(mountinfo::find(&mnt).is_some_and(|m| m.options.split(',').any(|o| o == "ro")));
    assert!(Command::new(damfs_bin()).arg("umount").arg(&mnt).status().unwrap().success());

    // Through mount(8) itself, which finds helpers in /sbin only.
    let sbin = Path::new("/sbin/mount.damfs");
    let placed = match std::fs::symlink_metadata(sbin) {
        Err(_) => match std::os::unix::fs::symlink(damfs_bin(), sbin) {
            Ok(()) => Some(SbinLink),
            Err(e) => {
                eprintln!("note: cannot place {} ({e}): mount -t damfs not tried", sbin.display());
                return;
            }
        },
        Ok(_) if std::fs::canonicalize(sbin).ok() == std::fs::canonicalize(damfs_bin()).ok() => None,
        Ok(_) => {
            eprintln!("note: {} is another damfs: mount -t damfs not tried", sbin.display());
            return;
        }
    };
    let out =
        Command::new("mount").args(["-t", "damfs", "-o", &opts, &server.url()]).arg(&mnt).output().unwrap();
    drop(placed);
    assert!(out.status.success(), "mount -t damfs: {}", String::from_utf8_lossy(&out.stderr));
    let entry = mountinfo::find(&mnt).expect("mounted by mount(8)");
    assert_eq!(entry.fstype, "fuse.damfs");
    let listed = within(Duration::from_secs(20), "listing the root", {
        let mnt = mnt.clone();
        move || std::fs::read_dir(mnt).unwrap().count()
    });
    assert!(listed >= 4);
    assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
}

/// `/sbin/mount.damfs` placed by the test, removed when dropped.
struct SbinLink;

impl Drop for SbinLink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file("/sbin/mount.damfs");
    }
}

#[test]
fn install_puts_a_template_unit_that_verifies() {
    let dest = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install");
    let out =
        Command::new(&script).args(["--bin", damfs_bin()]).env("DESTDIR", dest.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let unit = dest.path().join("usr/local/lib/systemd/system/damfs@.service");
    let text = std::fs::read_to_string(&unit).expect("the unit is installed");
    for line in [
        "Type=notify",
        "EnvironmentFile=/etc/damfs/%i.conf",
        "ExecStart=/usr/local/bin/damfs mount --foreground ${DAMFS_REMOTE} %f -o ${DAMFS_OPTIONS}",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("note: systemd-analyze is not installed: the unit is not verified");
        return;
    };
    // Verified as an instance for /srv/connectedassets, against the tree it was installed in
    // (where the system's own units are linked, for the targets every service depends on).
    let system_units =
        ["/usr/lib/systemd/system", "/lib/systemd/system"].into_iter().find(|d| Path::new(d).is_dir());
    let Some(system_units) = system_units else {
        eprintln!("note: no system unit directory: the unit is not verified");
        return;
    };
    std::fs::create_dir_all(dest.path().join("usr/lib/systemd")).unwrap();
    std::os::unix::fs::symlink(system_units, dest.path().join("usr/lib/systemd/system")).unwrap();
    let instance = dest.path().join("usr/local/lib/systemd/system/damfs@srv-connectedassets.service");
    std::fs::copy(&unit, &instance).unwrap();
    std::fs::create_dir_all(dest.path().join("etc/damfs")).unwrap();
    let mut conf = std::fs::File::create(dest.path().join("etc/damfs/srv-connectedassets.conf")).unwrap();
    writeln!(conf, "DAMFS_REMOTE=https://dam.example.com/content/dam\nDAMFS_OPTIONS=ro").unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", dest.path().display()))
        .arg(&instance)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("damfs@"), "systemd-analyze verify:\n{err}");

    std::fs::remove_file(&instance).unwrap();
    let out = Command::new(&script)
        .args(["--bin", damfs_bin(), "--uninstall"])
        .env("DESTDIR", dest.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!unit.exists());
}

/// The path of a program on PATH.
fn which(program: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file()).ok_or(())
}

/// Every folder under `root` that the mount shows (not hidden ones), root included.
fn folders(root: &Path) -> usize {
    let mut count = 1;
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() && !entry.file_name().to_string_lossy().starts_with('.') {
            count += folders(&entry.path());
        }
    }
    count
}

fn status_counter(mountpoint: &Path, key: &str) -> u64 {
    damfs::status::read(mountpoint).ok().and_then(|s| s.get(key).and_then(|v| v.as_u64())).unwrap_or(0)
}

#[test]
fn prefetch_listings_warms_every_folder_in_the_background() {
    let (_keep, root) = sample();
    let expected = folders(&root) as u64;
    let server = TestServer::start(&root);
    let catalog = server.catalog();
    let mount = Mounted::start(&server.url(), &["--prefetch-listings", "--dir-ttl", "10m"]);
    let mountpoint = mount.mountpoint.clone();
    assert!(
        wait_until(Duration::from_secs(60), || status_counter(&mountpoint, "listings_fetched") >= expected),
        "the walk did not list {expected} folders within 60 s: {} listed; log:\n{}",
        status_counter(&mountpoint, "listings_fetched"),
        mount.log_text()
    );
    assert!(wait_until(Duration::from_secs(10), || mount.log_text().contains("listing walk done")));
    assert!(mount.log_text().contains(&format!("listing walk done: {expected} folders listed, 0 failed")));
    assert_eq!(status_counter(&mountpoint, "listings_fetched"), expected, "each folder is listed once");

    // The first ls -lR anywhere is answered without the remote.
    catalog.clear_requests();
    let seen = within(Duration::from_secs(30), "walking the mount", move || folders(&mountpoint));
    assert_eq!(seen as u64, expected);
    let requests = catalog.requests();
    assert!(requests.is_empty(), "no request after the walk: {requests:?}");
}

#[test]
fn prefetch_from_a_list_materializes_what_it_names_and_reports_bad_lines() {
    let (_keep, root) = sample();
    let server = TestServer::start(&root);
    let mount = Mounted::start(&format!("{}/content/dam/we-retail", server.url()), &[]);
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("assets.txt");
    std::fs::write(
        &list,
        "# assets the pages reference\n\
         \n\
         en/activities/hiking/hiking-0001.jpg\n\
         /content/dam/we-retail/en/activities/hiking/hiking-0002.jpg\n\
         /content/dam/we-retail/en/activities/hiking/hiking-0003.jpg/jcr:content/renditions/cq5dam.thumbnail.48.48.png\n\
         /content/dam/documents/Release%20notes.txt\n\
         en/activities/hiking/no-such.jpg\n\
         /content/dam/we-retail/en/activities/hiking/hiking-0001.jpg\n",
    )
    .unwrap();
    let out = within(Duration::from_secs(60), "damfs prefetch --from", {
        let (list, mnt) = (list.clone(), mount.mountpoint.clone());
        move || Command::new(damfs_bin()).args(["prefetch", "--from"]).arg(list).arg(mnt).output().unwrap()
    });
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "bad lines make the exit status 1\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("line 6: /content/dam/documents/Release%20notes.txt: not under the mounted folder")
    );
    assert!(stderr.contains("line 7: ") && stderr.contains("no-such.jpg"), "{stderr}");
    assert!(stdout.contains("prefetched 3 of 3 assets"), "{stdout}");
    assert_eq!(status_counter(&mount.mountpoint, "cache_misses"), 3);
    assert_eq!(status_counter(&mount.mountpoint, "cached_assets"), 3);

    // From standard input.
    let mut child = Command::new(damfs_bin())
        .args(["prefetch", "--from", "-"])
        .arg(&mount.mountpoint)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"en/activities/hiking/hiking-0004.png\n").unwrap();
    let out =
        within(Duration::from_secs(60), "damfs prefetch --from -", move || child.wait_with_output().unwrap());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(status_counter(&mount.mountpoint, "cached_assets"), 4);

    // --from names the one mount point the lines are relative to.
    let out = Command::new(damfs_bin())
        .args(["prefetch", "--from"])
        .arg(&list)
        .arg(&mount.mountpoint)
        .arg(mount.path("en"))
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--from: give one PATH"));
}

/// The first file under `dir`, depth first, leaving out damfs's own dot directories.
fn first_file(dir: &Path) -> Option<PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            if let Some(found) = first_file(&path) {
                return Some(found);
            }
        } else {
            return Some(path);
        }
    }
    None
}

#[test]
fn a_second_stat_of_a_listed_asset_within_the_ttl_never_reaches_the_daemon() {
    let (_keep, root) = sample();
    let server = TestServer::start(&root);
    let addr = format!("127.0.0.1:{}", free_port());
    let mount = Mounted::start(&server.url(), &["--metrics-listen", &addr]);
    let top = mount.path("");
    let file =
        within(Duration::from_secs(30), "finding an asset", move || first_file(&top)).expect("an asset");
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 0, "the listing gave no size");
    let asked = |page: &prometheus_parse::Scrape| {
        ["lookup", "getattr"]
            .iter()
            .map(|op| value(page, "damfs_operations_total", &[("op", op)]))
            .sum::<f64>()
    };
    // Past the 1 s an attribute lived when a listed size was not trusted.
    std::thread::sleep(Duration::from_millis(1500));
    let before = asked(&scrape(&addr));
    for _ in 0..5 {
        assert_eq!(std::fs::metadata(&file).unwrap().len(), size);
    }
    let after = asked(&scrape(&addr));
    assert_eq!(after, before, "a stat within --dir-ttl reached the daemon");
}

#[test]
fn a_warm_ls_l_asks_the_daemon_nothing_per_file() {
    let (_keep, root) = sample();
    let server = TestServer::start(&root);
    let addr = format!("127.0.0.1:{}", free_port());
    let mount = Mounted::start(&server.url(), &["--metrics-listen", &addr]);
    let dir = mount.path("we-retail/en/activities/hiking");
    let ls = move || {
        let out = Command::new("ls").arg("-l").arg(&dir).output().expect("ls runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with('-')).count()
    };
    let cold = ls.clone();
    assert_eq!(within(Duration::from_secs(30), "a cold ls -l", cold), 10);
    // What ls -l asks of every file outside the user. namespace is not supported at all.
    let file = mount.path("we-retail/en/activities/hiking/hiking-0001.jpg");
    for name in ["security.selinux", "system.posix_acl_access"] {
        let (path, name) =
            (std::ffi::CString::new(file.to_str().unwrap()).unwrap(), std::ffi::CString::new(name).unwrap());
        // SAFETY: valid strings; a null buffer of size 0 asks for the length.
        let n = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
        assert_eq!((n, std::io::Error::last_os_error().raw_os_error()), (-1, Some(libc::EOPNOTSUPP)));
    }
    let ops =
        |page: &prometheus_parse::Scrape, op: &str| value(page, "damfs_operations_total", &[("op", op)]);
    let before = scrape(&addr);
    assert_eq!(within(Duration::from_secs(30), "a warm ls -l", ls), 10);
    let after = scrape(&addr);
    let asked = |op: &str| ops(&after, op) - ops(&before, op);
    // coreutils stops asking a filesystem that answers EOPNOTSUPP: at most once per name.
    assert!(asked("getxattr") <= 2.0, "{} getxattr for 10 files", asked("getxattr"));
    assert_eq!(
        asked("lookup") + asked("getattr"),
        0.0,
        "names and attributes are the kernel's within --dir-ttl"
    );
}
