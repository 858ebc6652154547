//! Harness shared by the integration tests of damfs: [`TestServer`], a `damfs serve` running
//! in-process on `127.0.0.1:0` on its own thread and tokio runtime (so synchronous tests,
//! such as mount tests, can use it as well as async ones), plus small fixture and raw-HTTP
//! helpers. Each test binary uses a different part of it, hence `dead_code` is allowed.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use damfs::serve::{Auth, Catalog};

pub mod faults;
pub mod mount;
pub mod nginx;

/// How long [`TestServer::stop`] waits for the server thread (the server itself gives
/// requests in flight 5 s after shutdown begins).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A `damfs serve` of a folder, stopped when dropped.
pub struct TestServer {
    addr: SocketAddr,
    catalog: Arc<Catalog>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<mpsc::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
    /// The state dir when the server owns it.
    _state: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Serves `dir` without authentication, with a state dir of its own.
    pub fn start(dir: &Path) -> TestServer {
        TestServer::start_with(dir, None, Auth::default())
    }

    /// Serves `dir` with `auth`, keeping digests and renditions in `state_dir` (a temporary
    /// folder owned by the server when None).
    pub fn start_with(dir: &Path, state_dir: Option<&Path>, auth: Auth) -> TestServer {
        let (state, owned) = match state_dir {
            Some(dir) => (dir.to_path_buf(), None),
            None => {
                let tmp = tempfile::tempdir().expect("cannot create a state dir");
                (tmp.path().to_path_buf(), Some(tmp))
            }
        };
        let catalog = Catalog::open(dir, &state, auth).expect("cannot open the served folder");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("cannot make the listener non-blocking");
        let addr = listener.local_addr().expect("the listener has no address");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let served = Arc::clone(&catalog);
        let thread = std::thread::Builder::new()
            .name(format!("damfs-serve-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("cannot build the server runtime");
                let result = runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let shutdown = async move {
                        // A dropped sender stops the server too.
                        let _ = stop_rx.await;
                    };
                    damfs::serve::run(listener, served, shutdown).await
                });
                if let Err(e) = result {
                    eprintln!("test server on {addr} failed: {e:#}");
                }
                runtime.shutdown_timeout(Duration::from_secs(1));
                let _ = done_tx.send(());
            })
            .expect("cannot start the server thread");
        TestServer {
            addr,
            catalog,
            stop: Some(stop_tx),
            done: Some(done_rx),
            thread: Some(thread),
            _state: owned,
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The catalog, with its test controls (auth, stall, QueryBuilder, request records).
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog)
    }

    /// Stops the server and waits for it (at most [`STOP_TIMEOUT`]); idempotent.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            match done.recv_timeout(STOP_TIMEOUT) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if let Some(thread) = self.thread.take() {
                        let _ = thread.join();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    eprintln!("test server on {} did not stop within {STOP_TIMEOUT:?}", self.addr);
                }
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An answer read off the wire by [`raw_request`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends `method target` exactly as given (no client-side normalization of `..` or `%2e`),
/// with `Connection: close`, and reads the whole answer; synchronous, 10 s timeouts.
pub fn raw_request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> RawResponse {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("cannot connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("set_read_timeout");
    stream.set_write_timeout(Some(Duration::from_secs(10))).expect("set_write_timeout");
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("cannot send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("cannot read the answer");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("no status");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = raw[split + 4..].to_vec();
    RawResponse { status, headers, body }
}

/// Writes a `width`×`height` JPEG with a varied pattern (so its bytes are not trivial).
pub fn write_jpeg(path: &Path, width: u32, height: u32) {
    pattern(width, height, 0).save_with_format(path, image::ImageFormat::Jpeg).expect("cannot write a JPEG");
}

/// Writes a `width`×`height` PNG; `seed` varies the pattern.
pub fn write_png(path: &Path, width: u32, height: u32, seed: u32) {
    pattern(width, height, seed).save_with_format(path, image::ImageFormat::Png).expect("cannot write a PNG");
}

fn pattern(width: u32, height: u32, seed: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        let v = x.wrapping_mul(31).wrapping_add(y.wrapping_mul(17)).wrapping_add(seed.wrapping_mul(101));
        image::Rgb([(v % 251) as u8, ((x ^ y) % 253) as u8, ((v / 7 + seed) % 255) as u8])
    })
}

/// A reqwest client with bounded timeouts for tests.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("cannot build an HTTP client")
}

/// A temporary folder with a `dam` subfolder to serve (and room beside it for files that
/// must never be served).
pub fn dam_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("cannot create a temp dir");
    let dam = tmp.path().join("dam");
    std::fs::create_dir(&dam).expect("cannot create the DAM folder");
    (tmp, dam)
}

/// The layers of a namespace over the fake remote, as the in-process tests wire them: the
/// DAM root mounted, images only, a 10 MiB async threshold.
pub fn fake_layout(fetch_timeout: Duration, dir_ttl: Duration) -> damfs::mount::Layout {
    damfs::mount::Layout {
        root: String::new(),
        remote_url: "http://dam".into(),
        fetch_timeout,
        dir_ttl,
        formats: damfs::listing::Formats::Images,
        async_threshold: 10 << 20,
        renditions: damfs::materialize::RenditionSelection::all(),
        revalidate: true,
    }
}
