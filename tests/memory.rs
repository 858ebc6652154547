//! Memory of a daemon through a real kernel mount: a walk of 200,000 entries (`find` and
//! `stat` over 20 folders of 10,000) stays under a bound, and the daemon lets go of the
//! nodes the kernel forgets. Needs root (drop_caches), as the other mount tests do.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::TestServer;
use common::mount::{Mounted, wait_until, within};

const FOLDERS: usize = 20;
const PER_FOLDER: usize = 10_000;

/// The bound on the daemon's resident memory after the walk.
const RSS_BOUND: u64 = 128 << 20;

/// `FOLDERS` folders of `PER_FOLDER` tiny assets (a listing needs no valid image).
/// In memory (/dev/shm) where there is one: 200,000 files on a disk take minutes to make.
fn wide_dam() -> (tempfile::TempDir, PathBuf) {
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let dam = tmp.path().join("dam");
    std::fs::create_dir(&dam).unwrap();
    for f in 0..FOLDERS {
        let folder = dam.join(format!("f{f:02}"));
        std::fs::create_dir(&folder).unwrap();
        for i in 0..PER_FOLDER {
            std::fs::write(folder.join(format!("a{i:05}.jpg")), [i as u8; 16]).unwrap();
        }
    }
    (tmp, dam)
}

/// A counter of the mount's `user.damfs.stats`.
fn stat_of(mount: &Mounted, key: &str) -> u64 {
    let stats = damfs::stats::read_from(&mount.mountpoint).unwrap();
    stats[key].as_u64().unwrap()
}

/// Resident memory of a process, in bytes.
fn rss(pid: u64) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// Names of a folder, listed again while its first listing outlasts the fetch timeout.
fn names_of(dir: &Path) -> std::io::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed: std::io::Result<Vec<String>> = std::fs::read_dir(dir).and_then(|entries| {
            entries.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned())).collect()
        });
        match listed {
            Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT) && Instant::now() < deadline => {}
            other => return other,
        }
    }
}

/// `find` and `stat` of every entry: a listing of each folder, a stat of each asset; four
/// folders at a time, as `find | xargs -P4 stat` would.
fn walk(root: &Path) -> std::io::Result<usize> {
    let folders = names_of(root)?;
    let chunks: Vec<Vec<String>> =
        folders.chunks(folders.len().div_ceil(4)).map(<[String]>::to_vec).collect();
    let walkers: Vec<_> = chunks
        .into_iter()
        .map(|part| {
            let root = root.to_path_buf();
            std::thread::spawn(move || walk_folders(&root, &part))
        })
        .collect();
    let mut seen = 0;
    for walker in walkers {
        seen += walker.join().unwrap()?;
    }
    Ok(seen)
}

fn walk_folders(root: &Path, folders: &[String]) -> std::io::Result<usize> {
    let mut seen = 0;
    for folder in folders {
        let dir = root.join(folder);
        for name in names_of(&dir)? {
            std::fs::symlink_metadata(dir.join(&name))?;
            seen += 1;
        }
    }
    Ok(seen)
}

#[test]
fn a_walk_of_200000_entries_stays_bounded_and_what_the_kernel_forgets_leaves() {
    let made = Instant::now();
    let (_tmp, dam) = wide_dam();
    eprintln!("the DAM folder made in {:?}", made.elapsed());
    let server = TestServer::start(&dam);
    let mount = Mounted::start(&server.url(), &[]);
    let pid = stat_of(&mount, "pid");
    eprintln!("mounted: RSS {} MiB", rss(pid) >> 20);
    let root = mount.mountpoint.clone();
    let seen = within(Duration::from_secs(200), "the walk", move || walk(&root));
    assert_eq!(seen.unwrap(), FOLDERS * PER_FOLDER);

    let walked = rss(pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    eprintln!("{}", status.lines().filter(|l| l.starts_with("Rss")).collect::<Vec<_>>().join(" "));
    let held = stat_of(&mount, "inodes");
    eprintln!("after the walk: RSS {} MiB, {held} nodes in the inode table", walked >> 20);
    assert!(walked < RSS_BOUND, "the daemon takes {} MiB after the walk", walked >> 20);
    assert!(held > 1000, "the kernel holds the walked entries ({held})");

    // The kernel forgets what it holds of the mount: so does the daemon.
    std::fs::write("/proc/sys/vm/drop_caches", "2").expect("drop_caches (run as root)");
    let forgotten = wait_until(Duration::from_secs(20), || stat_of(&mount, "inodes") < held / 10);
    let left = stat_of(&mount, "inodes");
    let after = rss(pid);
    eprintln!("after drop_caches: RSS {} MiB, {left} nodes in the inode table", after >> 20);
    assert!(forgotten, "the inode table kept {left} of {held} nodes after the kernel forgot them");
    assert!(after < walked, "RSS did not fall: {} MiB, then {} MiB", walked >> 20, after >> 20);

    // Forgotten nodes come back with the numbers they had.
    let path = mount.path("f03/a00042.jpg");
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::symlink_metadata(&path).unwrap());
    std::fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
    assert!(wait_until(Duration::from_secs(10), || stat_of(&mount, "inodes") <= left + 2));
    let again = std::os::unix::fs::MetadataExt::ino(&std::fs::symlink_metadata(&path).unwrap());
    assert_eq!(ino, again, "a path keeps its inode number after the kernel forgets it");
}
