//! The control socket of a live mount's cache (`control.sock` in the cache directory, 0600
//! inside the 0700 directory): how `damfs cache clear --drop-from-mount` tells the daemon
//! that holds the cache to drop its content itself, safely, sparing what is in use.
//!
//! The protocol is one request line and one answer line: `clear` answers
//! `dropped <assets> <bytes>`; anything else answers `error <reason>`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use super::Cache;

/// File name of the socket inside the cache directory.
pub const SOCKET: &str = "control.sock";

/// How long a client waits for the daemon's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the control socket of `cache` on a thread of its own, for the life of the process.
pub fn serve(cache: Arc<Cache>) -> anyhow::Result<()> {
    let path = cache.dir().join(SOCKET);
    // A socket left by a crashed daemon: this daemon holds the cache lock, so it is stale.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new().name("damfs-control".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Err(e) = answer(&cache, stream) {
                log::warn!("cache control: {e:#}");
            }
        }
    })?;
    Ok(())
}

fn answer(cache: &Cache, stream: UnixStream) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let reply = match line.trim() {
        "clear" => {
            let (assets, bytes) = cache.drop_unused();
            log::info!("cache: dropped {assets} assets ({bytes} bytes) on request");
            format!("dropped {assets} {bytes}\n")
        }
        other => format!("error unknown command {other:?}\n"),
    };
    (&stream).write_all(reply.as_bytes())?;
    Ok(())
}

/// Asks the daemon holding the cache at `dir` to drop its unused content; returns
/// (assets, bytes) dropped.
pub fn clear(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let path: PathBuf = dir.join(SOCKET);
    let mut stream = UnixStream::connect(&path).with_context(|| {
        format!("cannot reach the mount that uses {} ({})", dir.display(), path.display())
    })?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.write_all(b"clear\n")?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let mut words = line.split_whitespace();
    match (words.next(), words.next().and_then(|a| a.parse().ok()), words.next().and_then(|b| b.parse().ok()))
    {
        (Some("dropped"), Some(assets), Some(bytes)) => Ok((assets, bytes)),
        _ => bail!("the mount answered {:?}", line.trim()),
    }
}
