//! The service manager's readiness protocol (sd_notify): when systemd starts damfs as a
//! `Type=notify` service it names a datagram socket in `NOTIFY_SOCKET`, and damfs sends
//! `READY=1` there once the mount answers and `STOPPING=1` when it begins to unmount.
//! Without `NOTIFY_SOCKET` nothing is sent. A socket name starting with `@` is in the
//! abstract namespace. Failures are logged and otherwise ignored: a mount that works is not
//! failed because the service manager cannot be told.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};

/// The variable naming the service manager's socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `READY=1` with a status line.
pub(super) fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={}", one_line(status)));
}

/// Sends `STOPPING=1` with a status line, unless `sent` says it was sent already (a signal
/// and the end of the session both send it).
pub(super) fn stopping(status: &str, sent: &AtomicBool) {
    if !sent.swap(true, Ordering::SeqCst) {
        send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }
}

/// Sends `message` to the socket `NOTIFY_SOCKET` names, if it names one.
fn send(message: &str) {
    let Some(name) = std::env::var_os(NOTIFY_SOCKET).filter(|n| !n.is_empty()) else { return };
    if let Err(e) = send_to(&name, message.as_bytes()) {
        log::warn!("cannot notify the service manager at {}: {e}", name.to_string_lossy());
    }
}

/// Sends one datagram to the socket called `name` (a path, or `@name` in the abstract
/// namespace).
pub fn send_to(name: &OsStr, message: &[u8]) -> std::io::Result<()> {
    let bytes = name.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name)?,
        None if bytes.starts_with(b"/") => SocketAddr::from_pathname(name)?,
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "neither an absolute path nor an abstract name (@…)",
            ));
        }
    };
    let socket = UnixDatagram::unbound()?;
    let sent = socket.send_to_addr(message, &addr)?;
    if sent != message.len() {
        return Err(std::io::Error::other("the message was cut short"));
    }
    Ok(())
}

/// A status text on one line (the protocol is one assignment per line).
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_an_abstract_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), b"READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("damfs-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(OsStr::new(&format!("@{name}")), b"STOPPING=1").unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");

        assert!(send_to(OsStr::new("relative"), b"x").is_err());
    }
}
