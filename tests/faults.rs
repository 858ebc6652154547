//! The fault matrix, through a real kernel mount: every way a remote fails (stalls before
//! the headers and in the body, resets, 500 and 503, bodies cut short, slow drips, garbage
//! and wrong-shaped JSON) crossed with every operation that reaches it (`ls`, `stat`, a
//! small read, a large read in the background, a rendition read, `.metadata`, getxattr).
//!
//! Each cell has a folder of its own, so each starts cold. It asserts the errno, that the
//! answer came within the fetch timeout (plus slack), that the daemon is alive, and that
//! once the fault is gone the same operation answers exactly what the remote holds.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::TestServer;
use common::faults::{Fault, FaultProxy};
use common::mount::{Mounted, http_get, within};

/// The fetch timeout of the mount under test.
const TIMEOUT: Duration = Duration::from_secs(2);

/// How late past the timeout an answer may come (a loaded 2-core machine).
const SLACK: Duration = Duration::from_millis(2500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ls,
    Stat,
    SmallRead,
    LargeRead,
    RenditionRead,
    Metadata,
    Getxattr,
}

const OPS: [Op; 7] =
    [Op::Ls, Op::Stat, Op::SmallRead, Op::LargeRead, Op::RenditionRead, Op::Metadata, Op::Getxattr];

const THUMBNAIL: &str = "cq5dam.thumbnail.48.48.png";

/// A Siren document: JSON of the wrong shape for every Sling request, and for a listing
/// the document of an asset rather than a folder's.
const WRONG_SHAPE: &str =
    r#"{"class":["assets/asset/renditions"],"properties":{"name":"x"},"entities":[],"links":[]}"#;

fn faults() -> Vec<(&'static str, Fault, i32)> {
    vec![
        ("stall-headers", Fault::StallHeaders, libc::ETIMEDOUT),
        ("stall-body", Fault::StallBody, libc::ETIMEDOUT),
        ("reset", Fault::Reset, libc::EIO),
        ("500", Fault::Status(500), libc::EIO),
        ("503", Fault::Status(503), libc::EIO),
        ("truncated", Fault::Truncate, libc::EIO),
        // Slower than the timeout allows for the smallest answer (a listing page of ~300 bytes).
        ("drip", Fault::Drip { chunk: 16, every: Duration::from_millis(250) }, libc::ETIMEDOUT),
        ("garbage-json", Fault::Json("{\"entities\": [tru".into()), libc::EIO),
        ("wrong-shape", Fault::Json(WRONG_SHAPE.into()), libc::EIO),
    ]
}

fn folder(fault: &str, op: Op) -> String {
    format!("{fault}-{op:?}").to_ascii_lowercase()
}

/// The request a cell's fault is put on: the one its operation needs, and for JSON faults
/// the JSON request on that path.
fn target(cell: &str, op: Op, json_fault: bool) -> String {
    match op {
        Op::Ls | Op::Stat => format!("/api/assets/{cell}.json"),
        Op::SmallRead if json_fault => format!("{cell}/small.jpg/jcr:content/renditions.2.json"),
        Op::SmallRead => format!("{cell}/small.jpg/jcr:content/renditions/original"),
        Op::LargeRead if json_fault => format!("{cell}/large.png/jcr:content/renditions.2.json"),
        Op::LargeRead => format!("{cell}/large.png/jcr:content/renditions/original"),
        Op::RenditionRead if json_fault => format!("{cell}/small.jpg/jcr:content/renditions.2.json"),
        Op::RenditionRead => format!("{cell}/small.jpg/jcr:content/renditions/{THUMBNAIL}"),
        Op::Metadata | Op::Getxattr => format!("{cell}/small.jpg/jcr:content/metadata.json"),
    }
}

fn getxattr(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid strings and buffer.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(len as usize);
    Ok(buf)
}

/// Runs `op` on the cell under `mnt`; the bytes it read (or a text standing for them).
fn run(op: Op, mnt: &Path, cell: &str) -> std::io::Result<Vec<u8>> {
    let dir = mnt.join(cell);
    match op {
        Op::Ls => {
            let mut names: Vec<String> = std::fs::read_dir(&dir)?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<_, _>>()?;
            names.sort();
            Ok(names.join(",").into_bytes())
        }
        Op::Stat => Ok(std::fs::metadata(dir.join("small.jpg"))?.len().to_string().into_bytes()),
        Op::SmallRead => std::fs::read(dir.join("small.jpg")),
        Op::LargeRead => std::fs::read(dir.join("large.png")),
        Op::RenditionRead => std::fs::read(dir.join(".renditions/small.jpg").join(THUMBNAIL)),
        Op::Metadata => {
            let bytes = std::fs::read(dir.join(".metadata/small.jpg.json"))?;
            let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
            Ok(doc["path"].as_str().unwrap_or_default().as_bytes().to_vec())
        }
        Op::Getxattr => getxattr(&dir.join("small.jpg"), "user.dam.format"),
    }
}

/// What `run` must answer once the remote behaves.
fn expected(op: Op, dam: &Path, server: &TestServer, cell: &str) -> Vec<u8> {
    let dir = dam.join(cell);
    match op {
        Op::Ls => {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names.join(",").into_bytes()
        }
        Op::Stat => std::fs::metadata(dir.join("small.jpg")).unwrap().len().to_string().into_bytes(),
        Op::SmallRead => std::fs::read(dir.join("small.jpg")).unwrap(),
        Op::LargeRead => std::fs::read(dir.join("large.png")).unwrap(),
        Op::RenditionRead => {
            let answer = http_get(
                &server.url(),
                &format!("/content/dam/{cell}/small.jpg/jcr:content/renditions/{THUMBNAIL}"),
            );
            assert_eq!(answer.status, 200, "the server's own {THUMBNAIL}");
            answer.body
        }
        Op::Metadata => format!("/content/dam/{cell}/small.jpg").into_bytes(),
        Op::Getxattr => b"image/jpeg".to_vec(),
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

#[test]
fn every_fault_crossed_with_every_operation() {
    let (_tmp, dam) = common::dam_dir();
    let faults = faults();
    for (name, _, _) in &faults {
        for op in OPS {
            let dir: PathBuf = dam.join(folder(name, op));
            std::fs::create_dir(&dir).unwrap();
            common::write_jpeg(&dir.join("small.jpg"), 160, 120);
            if op == Op::LargeRead {
                // Above the async threshold: read while it arrives in the background.
                common::write_png(&dir.join("large.png"), 400, 300, 3);
            }
        }
    }
    let server = TestServer::start(&dam);
    let proxy = FaultProxy::start(server.addr());
    let mount = Mounted::start(&proxy.url(), &["--fetch-timeout", "2s", "--async-threshold", "64K"]);
    let pid = mount.pid().unwrap();
    let mnt = mount.mountpoint.clone();
    // The root listing, fault-free, so that every cell's folder is known.
    let root = mnt.clone();
    within(Duration::from_secs(30), "ls of the root", move || std::fs::read_dir(root).unwrap().count());

    let mut failures = Vec::new();
    for (name, fault, errno) in &faults {
        for op in OPS {
            let cell = folder(name, op);
            let json_fault = matches!(fault, Fault::Json(_));
            proxy.add(&target(&cell, op, json_fault), fault.clone());
            let (m, c) = (mnt.clone(), cell.clone());
            let started = Instant::now();
            let result = within(TIMEOUT * 10, &format!("{cell} under the fault"), move || run(op, &m, &c));
            let took = started.elapsed();
            proxy.clear();
            let got = result.as_ref().err().and_then(|e| e.raw_os_error());
            if got != Some(*errno) {
                failures.push(format!("{cell}: expected errno {errno}, got {result:?}"));
            }
            if took > TIMEOUT + SLACK {
                failures.push(format!("{cell}: answered after {took:?}"));
            }
            assert!(alive(pid), "{cell}: the daemon died\n{}", mount.log_text());

            let (m, c) = (mnt.clone(), cell.clone());
            let again = within(TIMEOUT * 10, &format!("{cell} once the fault is gone"), move || {
                // A stalled request of the fault may still hold work for up to a timeout.
                let deadline = Instant::now() + TIMEOUT * 3;
                loop {
                    match run(op, &m, &c) {
                        Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT) && Instant::now() < deadline => {}
                        other => return other,
                    }
                }
            });
            match again {
                Ok(bytes) if bytes == expected(op, &dam, &server, &cell) => {}
                Ok(bytes) => failures.push(format!("{cell}: read back {} wrong bytes", bytes.len())),
                Err(e) => failures.push(format!("{cell}: once the fault is gone: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{} cells failed:\n{}\nlog:\n{}", failures.len(), failures.join("\n"), {
        let log = mount.log_text();
        log[log.len().saturating_sub(20_000)..].to_string()
    });
    // A transfer that ends removes its temporary file off the runtime's workers, a moment
    // after its readers have their answer.
    let tmp = mount.cache_dir.join("tmp");
    let count = || std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0);
    common::mount::wait_until(Duration::from_secs(10), || count() == 0);
    assert_eq!(count(), 0, "temporary files left under {}", tmp.display());
}
