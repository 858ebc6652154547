//! One scenario, two drivers: the same table of operations and expected answers runs
//! against the namespace in-process (over the fake remote, fast and exact) and through a
//! real kernel mount (over `damfs serve`), so that the two suites cannot drift apart.
//!
//! Both see the same DAM: the same files, with the same bytes, in the same folders. What the
//! two remotes may answer differently (the bytes of generated renditions) is not compared.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use common::mount::{Mounted, within};
use damfs::cache::Cache;
use damfs::deadline::Deadline;
use damfs::mount::namespace;
use damfs::remote::fake::{FakeAsset, FakeRemote};
use damfs::vfs::Vfs;
use damfs::vfs::inode::ROOT_INO;

/// The standard renditions of an image, as AEM 6.5 makes them.
const RENDITIONS: [&str; 5] = [
    "cq5dam.thumbnail.140.100.png",
    "cq5dam.thumbnail.319.319.png",
    "cq5dam.thumbnail.48.48.png",
    "cq5dam.web.1280.1280.jpeg",
    "original",
];

/// What an operation answers: bytes (or a text standing for them), or an errno.
type Answer = Result<Vec<u8>, i32>;

/// The operations a scenario runs, on paths relative to the mount root.
trait Driver {
    /// Names in a directory, sorted, `,`-joined.
    fn ls(&self, dir: &str) -> Answer;
    /// The whole file.
    fn read(&self, path: &str) -> Answer;
    /// The size `stat` shows, as text.
    fn size(&self, path: &str) -> Answer;
    /// An extended attribute's value.
    fn xattr(&self, path: &str, name: &str) -> Answer;
    /// Opening for writing.
    fn open_for_write(&self, path: &str) -> Answer;
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Ls,
    Read,
    Size,
    Xattr(&'static str),
    Write,
}

/// The DAM both remotes serve: (path, bytes) of images, made once.
fn dam_files() -> Vec<(String, Vec<u8>)> {
    let (tmp, dam) = common::dam_dir();
    let mut files = Vec::new();
    for (i, rel) in
        ["we/en/hiking.jpg", "we/en/climbing.jpg", "we/fr/Café au lait.jpg", "top.jpg"].iter().enumerate()
    {
        let path = dam.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        common::write_jpeg(&path, 120 + 10 * i as u32, 90);
        files.push((rel.to_string(), std::fs::read(&path).unwrap()));
    }
    drop(tmp);
    files
}

/// The table: each operation, its path, and what it must answer.
fn scenario(files: &[(String, Vec<u8>)]) -> Vec<(Op, String, Answer)> {
    let bytes = |rel: &str| files.iter().find(|(p, _)| p == rel).unwrap().1.clone();
    let text = |s: &str| Ok(s.as_bytes().to_vec());
    vec![
        (Op::Ls, "".into(), text("top.jpg,we")),
        (Op::Ls, "we".into(), text("en,fr")),
        (Op::Ls, "we/en".into(), text("climbing.jpg,hiking.jpg")),
        (Op::Size, "we/en/hiking.jpg".into(), text(&bytes("we/en/hiking.jpg").len().to_string())),
        (Op::Read, "we/en/hiking.jpg".into(), Ok(bytes("we/en/hiking.jpg"))),
        (Op::Read, "we/fr/Café au lait.jpg".into(), Ok(bytes("we/fr/Café au lait.jpg"))),
        (Op::Read, "top.jpg".into(), Ok(bytes("top.jpg"))),
        (Op::Ls, "we/en/.renditions/hiking.jpg".into(), text(&RENDITIONS.join(","))),
        (Op::Read, "we/en/.renditions/hiking.jpg/original".into(), Ok(bytes("we/en/hiking.jpg"))),
        (Op::Ls, "we/en/.metadata".into(), text("climbing.jpg.json,hiking.jpg.json")),
        (Op::Xattr("user.dam.format"), "we/en/hiking.jpg".into(), text("image/jpeg")),
        (Op::Read, "we/en/missing.jpg".into(), Err(libc::ENOENT)),
        (Op::Ls, "we/en/hiking.jpg".into(), Err(libc::ENOTDIR)),
        (Op::Write, "we/en/hiking.jpg".into(), Err(libc::EROFS)),
        (Op::Xattr("user.dam.nothing"), "we/en/hiking.jpg".into(), Err(libc::ENODATA)),
    ]
}

fn run(driver: &dyn Driver, files: &[(String, Vec<u8>)], name: &str) {
    let mut failures = Vec::new();
    for (op, path, want) in scenario(files) {
        let got = match op {
            Op::Ls => driver.ls(&path),
            Op::Read => driver.read(&path),
            Op::Size => driver.size(&path),
            Op::Xattr(x) => driver.xattr(&path, x),
            Op::Write => driver.open_for_write(&path),
        };
        if got != want {
            let show = |a: &Answer| match a {
                Ok(b) if b.len() > 80 => format!("Ok({} bytes)", b.len()),
                Ok(b) => format!("Ok({:?})", String::from_utf8_lossy(b)),
                Err(e) => format!("Err(errno {e})"),
            };
            failures.push(format!("{op:?} {path:?}: got {}, want {}", show(&got), show(&want)));
        }
    }
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

fn sorted(names: impl Iterator<Item = String>) -> Vec<u8> {
    let mut names: Vec<String> = names.collect();
    names.sort();
    names.join(",").into_bytes()
}

/// The namespace in-process, over the fake remote.
struct InProcess {
    vfs: Arc<Vfs<FakeRemote>>,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl InProcess {
    fn new(files: &[(String, Vec<u8>)]) -> InProcess {
        let remote = FakeRemote::new();
        for (rel, bytes) in files {
            let mut folder = String::new();
            for segment in rel.split('/').rev().skip(1).collect::<Vec<_>>().into_iter().rev() {
                folder = damfs::names::join(&folder, segment);
                remote.add_folder(&folder);
            }
            let mut asset = FakeAsset::new(bytes.clone()).with_format("image/jpeg");
            for r in RENDITIONS.iter().filter(|r| **r != "original") {
                asset = asset.with_rendition(r, vec![7u8; 64]);
            }
            remote.add_asset(rel, asset);
        }
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(Cache::open(&dir.path().join("cache"), "fake", None).unwrap());
        let layout = common::fake_layout(Duration::from_secs(5), Duration::from_secs(60));
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let vfs = namespace(layout, Arc::new(remote), cache);
        InProcess { vfs, runtime, _dir: dir }
    }

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(10))
    }

    /// The inode of `path`, looked up name by name.
    fn resolve(&self, path: &str) -> Result<u64, i32> {
        let mut ino = ROOT_INO;
        for name in path.split('/').filter(|s| !s.is_empty()) {
            let found = self.runtime.block_on(self.vfs.lookup(ino, name, Self::deadline()));
            ino = found.map_err(|e| e.errno())?.attr.ino;
        }
        Ok(ino)
    }
}

impl Driver for InProcess {
    fn ls(&self, dir: &str) -> Answer {
        let ino = self.resolve(dir)?;
        let items = self.runtime.block_on(self.vfs.readdir(ino, Self::deadline())).map_err(|e| e.errno())?;
        Ok(sorted(items.into_iter().map(|i| i.name)))
    }

    fn read(&self, path: &str) -> Answer {
        let ino = self.resolve(path)?;
        self.runtime.block_on(async {
            let opened = self.vfs.open(ino, libc::O_RDONLY, Self::deadline()).await.map_err(|e| e.errno())?;
            let mut out = Vec::new();
            loop {
                let chunk = self.vfs.read(opened.fh, out.len() as u64, 1 << 16, Self::deadline()).await;
                let chunk = chunk.map_err(|e| e.errno())?;
                if chunk.is_empty() {
                    break;
                }
                out.extend_from_slice(&chunk);
            }
            self.vfs.release(opened.fh);
            Ok(out)
        })
    }

    fn size(&self, path: &str) -> Answer {
        let ino = self.resolve(path)?;
        let entry = self.runtime.block_on(self.vfs.getattr(ino, Self::deadline())).map_err(|e| e.errno())?;
        Ok(entry.attr.size.to_string().into_bytes())
    }

    fn xattr(&self, path: &str, name: &str) -> Answer {
        let ino = self.resolve(path)?;
        self.runtime.block_on(self.vfs.getxattr(ino, name, Self::deadline())).map_err(|e| e.errno())
    }

    fn open_for_write(&self, path: &str) -> Answer {
        let ino = self.resolve(path)?;
        let opened = self.runtime.block_on(self.vfs.open(ino, libc::O_WRONLY, Self::deadline()));
        opened.map(|_| Vec::new()).map_err(|e| e.errno())
    }
}

/// A real kernel mount over `damfs serve`.
struct KernelMount {
    mount: Mounted,
    _server: TestServer,
    _dam: tempfile::TempDir,
}

impl KernelMount {
    fn new(files: &[(String, Vec<u8>)]) -> KernelMount {
        let (tmp, dam) = common::dam_dir();
        for (rel, bytes) in files {
            let path = dam.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let server = TestServer::start(&dam);
        let mount = Mounted::start(&server.url(), &[]);
        KernelMount { mount, _server: server, _dam: tmp }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.mount.path(rel)
    }
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Driver for KernelMount {
    fn ls(&self, dir: &str) -> Answer {
        let entries = std::fs::read_dir(self.path(dir)).map_err(errno)?;
        let names: Result<Vec<String>, i32> =
            entries.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()).map_err(errno)).collect();
        Ok(sorted(names?.into_iter()))
    }

    fn read(&self, path: &str) -> Answer {
        std::fs::read(self.path(path)).map_err(errno)
    }

    fn size(&self, path: &str) -> Answer {
        Ok(std::fs::metadata(self.path(path)).map_err(errno)?.len().to_string().into_bytes())
    }

    fn xattr(&self, path: &str, name: &str) -> Answer {
        getxattr(&self.path(path), name)
    }

    fn open_for_write(&self, path: &str) -> Answer {
        std::fs::OpenOptions::new().write(true).open(self.path(path)).map(|_| Vec::new()).map_err(errno)
    }
}

fn getxattr(path: &Path, name: &str) -> Answer {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid strings and buffer.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(errno(std::io::Error::last_os_error()));
    }
    buf.truncate(len as usize);
    Ok(buf)
}

#[test]
fn the_scenario_in_process() {
    let files = dam_files();
    run(&InProcess::new(&files), &files, "in-process namespace over the fake remote");
}

#[test]
fn the_scenario_through_a_kernel_mount() {
    let files = dam_files();
    within(Duration::from_secs(120), "the scenario through a kernel mount", move || {
        run(&KernelMount::new(&files), &files, "kernel mount over damfs serve");
    });
}
