//! A fault-injecting HTTP/1.1 proxy in front of a test server: every request is forwarded
//! unchanged unless a rule matches its path, and then the proxy misbehaves the way a broken
//! or hostile remote does (stalls, resets, errors, short, slow, endless or wrong bodies).
//! It speaks raw HTTP on its own socket so that it can do what no well-behaved server
//! library would: cut a body short, reset a connection, never end a chunked body.
//!
//! Runs on its own thread and runtime (mount tests are synchronous); stops when dropped.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use percent_encoding::percent_decode_str;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the proxy misbehaves for a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Never answers.
    StallHeaders,
    /// Sends the headers and half the body, then never sends more.
    StallBody,
    /// Closes the connection with a TCP reset before answering.
    Reset,
    /// Answers this status with a short text body.
    Status(u16),
    /// Announces the whole length, sends half, closes.
    Truncate,
    /// Sends the upstream body `chunk` bytes at a time, one chunk every `every`.
    Drip { chunk: usize, every: Duration },
    /// Answers 200 with this body as JSON.
    Json(String),
    /// Answers 200 with a chunked body that never ends: `chunk` bytes each `every`.
    Endless { chunk: usize, every: Duration },
    /// Answers 302 to the same target on another server (`http://127.0.0.1:PORT`), as AEM
    /// redirects a binary to a signed blob URL.
    Redirect(String),
}

#[derive(Debug)]
struct Rule {
    /// Matches when the percent-decoded path contains this.
    pattern: String,
    fault: Fault,
    /// Requests left to misbehave for (None: all).
    remaining: Option<usize>,
}

#[derive(Debug, Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    /// Decoded paths of every request seen.
    seen: Mutex<Vec<String>>,
    /// Every request head seen, as sent.
    heads: Mutex<Vec<String>>,
    /// Faulty bodies being written right now (a client that went away ends one).
    open_bodies: AtomicUsize,
}

/// A running proxy.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared::default());
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("proxy listener");
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            tokio::spawn(connection(stream, upstream, Arc::clone(&state)));
                        }
                    }
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        FaultProxy { addr, shared, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Misbehaves with `fault` for every request whose decoded path contains `pattern`
    /// (rules are tried in the order they were added).
    pub fn add(&self, pattern: &str, fault: Fault) {
        self.add_times(pattern, fault, None);
    }

    /// Like [`FaultProxy::add`], for the next `times` matching requests only.
    pub fn add_times(&self, pattern: &str, fault: Fault, times: Option<usize>) {
        self.shared.rules.lock().unwrap().push(Rule { pattern: pattern.into(), fault, remaining: times });
    }

    /// Removes every rule: the proxy forwards faithfully again.
    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// Decoded paths (with queries) of every request seen so far.
    pub fn seen(&self) -> Vec<String> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Every request head seen, as sent (request line and headers).
    pub fn heads(&self) -> Vec<String> {
        self.shared.heads.lock().unwrap().clone()
    }

    /// Faulty bodies still being written (0 once every reader of one went away).
    pub fn open_bodies(&self) -> usize {
        self.shared.open_bodies.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Counts a faulty body as open while it lives.
struct OpenBody(Arc<Shared>);

impl OpenBody {
    fn new(shared: &Arc<Shared>) -> OpenBody {
        shared.open_bodies.fetch_add(1, Ordering::SeqCst);
        OpenBody(Arc::clone(shared))
    }
}

impl Drop for OpenBody {
    fn drop(&mut self) {
        self.0.open_bodies.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves requests on one client connection, one after the other (keep-alive).
async fn connection(mut client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let mut buffer = Vec::new();
    loop {
        let Some(head) = read_head(&mut client, &mut buffer).await else { return };
        let target = head.lines().next().and_then(|l| l.split(' ').nth(1)).unwrap_or("/").to_string();
        let decoded = percent_decode_str(&target).decode_utf8_lossy().into_owned();
        shared.seen.lock().unwrap().push(decoded.clone());
        shared.heads.lock().unwrap().push(head.clone());
        let fault = {
            let mut rules = shared.rules.lock().unwrap();
            let found = rules.iter_mut().find(|r| decoded.contains(&r.pattern) && r.remaining != Some(0));
            found.map(|rule| {
                if let Some(n) = rule.remaining.as_mut() {
                    *n -= 1;
                }
                rule.fault.clone()
            })
        };
        let keep_going = match fault {
            None => forward(&mut client, upstream, &head).await,
            Some(fault) => misbehave(&mut client, upstream, &head, fault, &shared).await,
        };
        if !keep_going {
            return;
        }
    }
}

/// Reads one request head (GET/HEAD only: no body), leaving what follows in `buffer`.
async fn read_head(client: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end + 4]).into_owned();
            buffer.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 || buffer.len() > 1 << 20 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `head` upstream on a fresh connection (`Connection: close`) and returns its whole
/// answer: status line and headers (as one string) and the body.
async fn fetch_upstream(upstream: SocketAddr, head: &str) -> Option<(String, Vec<u8>)> {
    let mut server = TcpStream::connect(upstream).await.ok()?;
    let mut request = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    server.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    server.read_to_end(&mut raw).await.ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body)?;
    }
    Some((head, body))
}

/// Decodes a chunked body.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// The upstream answer's status line and headers, without framing headers, with a
/// Content-Length of `length` when given.
fn answer_head(upstream_head: &str, length: Option<usize>) -> String {
    let mut out = String::new();
    for (i, line) in upstream_head.split("\r\n").enumerate() {
        let lower = line.to_ascii_lowercase();
        if i > 0
            && (lower.starts_with("content-length:")
                || lower.starts_with("transfer-encoding:")
                || lower.starts_with("connection:"))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if let Some(length) = length {
        out.push_str(&format!("Content-Length: {length}\r\n"));
    }
    out
}

/// Forwards faithfully; returns whether the client connection can serve another request.
async fn forward(client: &mut TcpStream, upstream: SocketAddr, head: &str) -> bool {
    let Some((upstream_head, body)) = fetch_upstream(upstream, head).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n").await;
        return true;
    };
    let mut answer = answer_head(&upstream_head, Some(body.len())).into_bytes();
    answer.extend_from_slice(b"\r\n");
    if !head.starts_with("HEAD ") {
        answer.extend_from_slice(&body);
    }
    client.write_all(&answer).await.is_ok()
}

async fn misbehave(
    client: &mut TcpStream,
    upstream: SocketAddr,
    head: &str,
    fault: Fault,
    shared: &Arc<Shared>,
) -> bool {
    match fault {
        Fault::StallHeaders => {
            let _open = OpenBody::new(shared);
            // Until the client goes away.
            let mut byte = [0u8; 1];
            let _ = client.read(&mut byte).await;
            false
        }
        Fault::Reset => {
            let _ = client.set_zero_linger();
            false
        }
        Fault::Status(code) => {
            let text = format!("status {code}");
            let answer = format!("HTTP/1.1 {code} Fault\r\nContent-Length: {}\r\n\r\n{text}", text.len());
            client.write_all(answer.as_bytes()).await.is_ok()
        }
        Fault::Redirect(base) => {
            let target = head.lines().next().and_then(|l| l.split(' ').nth(1)).unwrap_or("/");
            let answer =
                format!("HTTP/1.1 302 Found\r\nLocation: {base}{target}\r\nContent-Length: 0\r\n\r\n");
            client.write_all(answer.as_bytes()).await.is_ok()
        }
        Fault::Json(body) => {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            client.write_all(answer.as_bytes()).await.is_ok()
        }
        Fault::StallBody | Fault::Truncate | Fault::Drip { .. } => {
            let Some((upstream_head, body)) = fetch_upstream(upstream, head).await else { return false };
            let _open = OpenBody::new(shared);
            let mut answer = answer_head(&upstream_head, Some(body.len())).into_bytes();
            answer.extend_from_slice(b"\r\n");
            if client.write_all(&answer).await.is_err() {
                return false;
            }
            let half = body.len() / 2;
            match fault {
                Fault::Truncate => {
                    let _ = client.write_all(&body[..half]).await;
                    false
                }
                Fault::StallBody => {
                    let _ = client.write_all(&body[..half]).await;
                    let mut byte = [0u8; 1];
                    let _ = client.read(&mut byte).await;
                    false
                }
                Fault::Drip { chunk, every } => {
                    for piece in body.chunks(chunk.max(1)) {
                        if client.write_all(piece).await.is_err() {
                            return false;
                        }
                        tokio::time::sleep(every).await;
                    }
                    true
                }
                _ => unreachable!("handled above"),
            }
        }
        Fault::Endless { chunk, every } => {
            let _open = OpenBody::new(shared);
            let head = "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n";
            if client.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            let piece = vec![0x5au8; chunk.max(1)];
            let framed = [format!("{:x}\r\n", piece.len()).into_bytes(), piece, b"\r\n".to_vec()].concat();
            loop {
                if client.write_all(&framed).await.is_err() {
                    return false;
                }
                tokio::time::sleep(every).await;
            }
        }
    }
}
