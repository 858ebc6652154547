//! The one error type of filesystem operations, and its single, exhaustive errno mapping.

use std::fmt;
use std::io;

use crate::remote::{RemoteError, RemoteErrorKind};

/// Why a filesystem operation failed.
#[derive(Debug)]
pub enum FsError {
    /// No such file or directory (remote 404, or a name that is not there).
    NotFound,
    /// The remote refused the credentials (401/403).
    Denied(RemoteError),
    /// The operation did not complete within the fetch timeout.
    Timeout(String),
    /// The remote failed in another way (5xx, reset, malformed answer, short body).
    Remote(RemoteError),
    /// A local I/O error (cache disk).
    Io(io::Error),
    /// Shared work ended without an answer (its task was cancelled or panicked) as often
    /// as a caller may start it again; names the work.
    Abandoned(String),
    /// A fault inside damfs that is neither the remote's nor the disk's (a value that does
    /// not serialize, a blocking task that did not finish); names it.
    Internal(String),
    /// A mutating request on the read-only filesystem.
    ReadOnly,
    /// A directory operation on a file.
    NotDir,
    /// A file operation on a directory.
    IsDir,
    /// No such extended attribute.
    NoAttr,
    /// An extended attribute outside the namespaces the filesystem serves (`security.*`,
    /// `system.*`, `trusted.*`): the namespace is not supported, as on a filesystem mounted
    /// without it.
    NoXattrNamespace,
    /// A reply buffer too small for the answer (xattr size probes).
    Range,
    /// An argument the filesystem cannot accept (bad handle, bad offset).
    Invalid,
}

impl FsError {
    /// The errno the kernel is answered with. Exhaustive on purpose: a new variant cannot
    /// ship without a decision.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Denied(_) => libc::EACCES,
            FsError::Timeout(_) => libc::ETIMEDOUT,
            FsError::Remote(_) => libc::EIO,
            FsError::Io(_) => libc::EIO,
            FsError::Abandoned(_) => libc::EIO,
            FsError::Internal(_) => libc::EIO,
            FsError::ReadOnly => libc::EROFS,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NoAttr => libc::ENODATA,
            FsError::NoXattrNamespace => libc::EOPNOTSUPP,
            FsError::Range => libc::ERANGE,
            FsError::Invalid => libc::EINVAL,
        }
    }

    /// Whether the failure deserves a log line (a remote or disk problem, not a plain miss).
    pub fn is_noteworthy(&self) -> bool {
        matches!(
            self,
            FsError::Denied(_)
                | FsError::Timeout(_)
                | FsError::Remote(_)
                | FsError::Io(_)
                | FsError::Abandoned(_)
                | FsError::Internal(_)
        )
    }
}

impl From<RemoteError> for FsError {
    fn from(err: RemoteError) -> FsError {
        match err.kind {
            RemoteErrorKind::NotFound => FsError::NotFound,
            RemoteErrorKind::Denied => FsError::Denied(err),
            RemoteErrorKind::Timeout => FsError::Timeout(err.to_string()),
            RemoteErrorKind::Tls | RemoteErrorKind::Other => FsError::Remote(err),
        }
    }
}

impl From<io::Error> for FsError {
    fn from(err: io::Error) -> FsError {
        FsError::Io(err)
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::NotFound => write!(f, "not found"),
            FsError::Denied(e) => write!(f, "access denied: {e}"),
            FsError::Timeout(what) => write!(f, "timed out: {what}"),
            FsError::Remote(e) => write!(f, "remote error: {e}"),
            FsError::Io(e) => write!(f, "cache I/O error: {e}"),
            FsError::Abandoned(what) => write!(f, "{what}: the work was abandoned"),
            FsError::Internal(what) => write!(f, "internal error: {what}"),
            FsError::ReadOnly => write!(f, "read-only file system"),
            FsError::NotDir => write!(f, "not a directory"),
            FsError::IsDir => write!(f, "is a directory"),
            FsError::NoAttr => write!(f, "no such attribute"),
            FsError::NoXattrNamespace => write!(f, "attribute namespace not supported"),
            FsError::Range => write!(f, "buffer too small"),
            FsError::Invalid => write!(f, "invalid argument"),
        }
    }
}

impl std::error::Error for FsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FsError::Denied(e) | FsError::Remote(e) => Some(e),
            FsError::Io(e) => Some(e),
            FsError::NotFound
            | FsError::Timeout(_)
            | FsError::Abandoned(_)
            | FsError::Internal(_)
            | FsError::ReadOnly
            | FsError::NotDir
            | FsError::IsDir
            | FsError::NoAttr
            | FsError::NoXattrNamespace
            | FsError::Range
            | FsError::Invalid => None,
        }
    }
}

/// Result of a filesystem operation.
pub type FsResult<T> = Result<T, FsError>;

impl Clone for FsError {
    fn clone(&self) -> FsError {
        match self {
            FsError::NotFound => FsError::NotFound,
            FsError::Denied(e) => FsError::Denied(e.clone()),
            FsError::Timeout(w) => FsError::Timeout(w.clone()),
            FsError::Remote(e) => FsError::Remote(e.clone()),
            FsError::Io(e) => FsError::Io(io::Error::new(e.kind(), e.to_string())),
            FsError::Abandoned(w) => FsError::Abandoned(w.clone()),
            FsError::Internal(w) => FsError::Internal(w.clone()),
            FsError::ReadOnly => FsError::ReadOnly,
            FsError::NotDir => FsError::NotDir,
            FsError::IsDir => FsError::IsDir,
            FsError::NoAttr => FsError::NoAttr,
            FsError::NoXattrNamespace => FsError::NoXattrNamespace,
            FsError::Range => FsError::Range,
            FsError::Invalid => FsError::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn causes_keep_their_source_and_their_own_names() {
        let remote = RemoteError::new(RemoteErrorKind::Other, "/api/assets.json", "HTTP 503");
        let error = FsError::from(remote);
        assert_eq!(error.source().map(|s| s.to_string()).as_deref(), Some("/api/assets.json: HTTP 503"));
        let io = FsError::Io(io::Error::new(io::ErrorKind::NotFound, "gone"));
        assert!(io.source().is_some());
        let abandoned = FsError::Abandoned("materializing a.jpg".into());
        assert_eq!(abandoned.to_string(), "materializing a.jpg: the work was abandoned");
        assert!(!abandoned.to_string().contains("I/O"));
        assert_eq!(abandoned.errno(), libc::EIO);
        assert_eq!(FsError::Internal("x".into()).to_string(), "internal error: x");
    }
}
