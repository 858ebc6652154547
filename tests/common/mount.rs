//! A damfs mount for integration tests: a foreground daemon on a temp mount point, up when
//! it shows in /proc/self/mountinfo (polled with a deadline), always unmounted and reaped in
//! Drop, and force-unmounted by a watchdog if a test hangs on it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use damfs::mount::mountinfo;

/// The damfs binary under test.
pub fn damfs_bin() -> &'static str {
    env!("CARGO_BIN_EXE_damfs")
}

/// Longest a test may keep a mount before the watchdog tears it down (a hang becomes a
/// failure, never a stuck run).
const WATCHDOG: Duration = Duration::from_secs(240);

/// A live mount.
pub struct Mounted {
    /// Holds the mount point (and the cache unless one was given).
    pub dir: tempfile::TempDir,
    /// The mount point.
    pub mountpoint: PathBuf,
    /// The cache directory.
    pub cache_dir: PathBuf,
    /// The daemon's log.
    pub log: PathBuf,
    child: Option<Child>,
    done: Arc<AtomicBool>,
}

/// Lazily unmounts `path` (MNT_DETACH), ignoring "not mounted".
pub fn force_unmount(path: &Path) {
    if mountinfo::find(path).is_some() {
        let _ = Command::new("umount").arg("-l").arg(path).status();
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

impl Mounted {
    /// Mounts `url` in the foreground with a fresh cache and `extra` options.
    pub fn start(url: &str, extra: &[&str]) -> Mounted {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = dir.path().join("cache");
        Mounted::start_with_cache(url, &cache, dir, extra)
    }

    /// Mounts `url` in the foreground on the cache at `cache_dir`.
    pub fn start_with_cache(url: &str, cache_dir: &Path, dir: tempfile::TempDir, extra: &[&str]) -> Mounted {
        Mounted::start_with_env(url, cache_dir, dir, extra, &[])
    }

    /// Mounts `url` in the foreground on the cache at `cache_dir`, with `env` set for damfs.
    pub fn start_with_env(
        url: &str,
        cache_dir: &Path,
        dir: tempfile::TempDir,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Mounted {
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir_all(&mountpoint).expect("mount point");
        let log = dir.path().join(format!("damfs-{}.log", std::process::id()));
        let child = Command::new(damfs_bin())
            .arg("mount")
            .arg(url)
            .arg(&mountpoint)
            .arg("--cache-dir")
            .arg(cache_dir)
            .arg("--log-file")
            .arg(&log)
            .args(["-f", "-v"])
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start damfs");
        let mut mounted = Mounted {
            dir,
            mountpoint,
            cache_dir: cache_dir.to_path_buf(),
            log,
            child: Some(child),
            done: Arc::new(AtomicBool::new(false)),
        };
        let up = wait_until(Duration::from_secs(30), || {
            mountinfo::find(&mounted.mountpoint).is_some() || mounted.exited()
        });
        if !up || mountinfo::find(&mounted.mountpoint).is_none() {
            let err = mounted.stderr();
            panic!("damfs did not mount {url}: {err}\nlog:\n{}", mounted.log_text());
        }
        mounted.arm_watchdog();
        mounted
    }

    fn exited(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    fn stderr(&mut self) -> String {
        let Some(mut child) = self.child.take() else { return String::new() };
        let _ = child.kill();
        let out = child.wait_with_output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
        out.unwrap_or_default()
    }

    fn arm_watchdog(&self) {
        let (done, mountpoint) = (Arc::clone(&self.done), self.mountpoint.clone());
        let pid = self.child.as_ref().map(|c| c.id());
        std::thread::spawn(move || {
            let deadline = Instant::now() + WATCHDOG;
            while Instant::now() < deadline {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!(
                "watchdog: test still holds {} after {WATCHDOG:?}; tearing it down",
                mountpoint.display()
            );
            force_unmount(&mountpoint);
            if let Some(pid) = pid {
                // SAFETY: sending a signal to our own child process.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        });
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mountpoint.join(rel)
    }

    /// The daemon's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Unmounts with `damfs umount` and waits for the daemon to exit 0.
    pub fn unmount(&mut self) {
        let out =
            Command::new(damfs_bin()).arg("umount").arg(&self.mountpoint).output().expect("damfs umount");
        assert!(out.status.success(), "damfs umount failed: {}", String::from_utf8_lossy(&out.stderr));
        self.reap(Duration::from_secs(15));
    }

    /// Waits for the daemon to exit and checks it exited 0.
    pub fn reap(&mut self, timeout: Duration) {
        if let Some(mut child) = self.child.take() {
            let exited = wait_until(timeout, || child.try_wait().ok().flatten().is_some());
            assert!(exited, "the damfs daemon did not exit; log:\n{}", self.log_text());
            let status = child.wait().expect("wait");
            assert!(status.success(), "the damfs daemon exited with {status}; log:\n{}", self.log_text());
        }
        self.done.store(true, Ordering::SeqCst);
    }

    /// Kills the daemon with SIGKILL (a crash) and cleans the mount up.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        force_unmount(&self.mountpoint);
        self.done.store(true, Ordering::SeqCst);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        force_unmount(&self.mountpoint);
        if let Some(mut child) = self.child.take() {
            if !wait_until(Duration::from_secs(5), || child.try_wait().ok().flatten().is_some()) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// Runs `f` on another thread and fails the test if it does not finish within `timeout`
/// (the thread is left behind; the mount's Drop unblocks it).
pub fn within<T: Send + 'static>(timeout: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(timeout) {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {timeout:?}"),
    }
}

/// A GET of `path` from the loopback server at `base` (`http://127.0.0.1:PORT`).
pub fn http_get(base: &str, path: &str) -> super::RawResponse {
    let addr = base.trim_start_matches("http://").split('/').next().unwrap_or_default();
    super::raw_request(addr.parse().expect("a loopback address"), "GET", path, &[])
}
