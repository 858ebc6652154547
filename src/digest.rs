//! Digests: the one hex encoder for SHA-1 and SHA-256 values (content names, `dam:sha1`
//! checks, cache and state directory tags), and the digests a content file is checked and
//! recorded with.
//!
//! A content file's recorded digest is `sha1:` and its SHA-1 when its bytes were checked
//! against the remote's `dam:sha1` (one hash of the bytes does both jobs), else its SHA-256.

use std::fs::File;
use std::os::unix::fs::FileExt;

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Prefix of a recorded digest that is a SHA-1.
const SHA1_PREFIX: &str = "sha1:";

/// Which digests to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// SHA-1 (checked against `dam:sha1`).
    pub sha1: bool,
    /// SHA-256.
    pub sha256: bool,
}

/// Digests of bytes, as lower-case hex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    /// SHA-1, when wanted.
    pub sha1: Option<String>,
    /// SHA-256, when wanted.
    pub sha256: Option<String>,
}

/// Digests computed as bytes go by.
pub struct Hasher {
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
}

impl Hasher {
    /// A hasher for the `wanted` digests.
    pub fn new(wanted: Wanted) -> Hasher {
        Hasher { sha1: wanted.sha1.then(Sha1::new), sha256: wanted.sha256.then(Sha256::new) }
    }

    /// Takes in the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = self.sha1.as_mut() {
            h.update(bytes);
        }
        if let Some(h) = self.sha256.as_mut() {
            h.update(bytes);
        }
    }

    /// The digests of every byte taken in.
    pub fn finish(self) -> Digests {
        Digests {
            sha1: self.sha1.map(|h| hex(&h.finalize())),
            sha256: self.sha256.map(|h| hex(&h.finalize())),
        }
    }
}

/// The `wanted` digests of the first `len` bytes of `file` (a short file is an error).
pub fn of_file(file: &File, len: u64, wanted: Wanted) -> std::io::Result<Digests> {
    let mut hasher = Hasher::new(wanted);
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let want = buf.len().min(usize::try_from(len - at).unwrap_or(usize::MAX));
        let got = file.read_at(&mut buf[..want], at)?;
        if got == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the file has {at} of {len} bytes"),
            ));
        }
        hasher.update(&buf[..got]);
        at += got as u64;
    }
    Ok(hasher.finish())
}

/// The digest recorded for a content file checked against `dam:sha1` (its SHA-1).
pub fn recorded_sha1(sha1: &str) -> String {
    format!("{SHA1_PREFIX}{}", sha1.to_ascii_lowercase())
}

/// What a recorded digest holds: the SHA-1 (`Ok`) or the SHA-256 (`Err`), as hex.
pub fn parse_recorded(recorded: &str) -> Result<&str, &str> {
    recorded.strip_prefix(SHA1_PREFIX).ok_or(recorded)
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The first 12 hex digits of SHA-256(`bytes`): a short, stable tag for a directory name.
pub fn short_tag(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes)[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
        assert_eq!(short_tag(b"x").len(), 12);
    }

    #[test]
    fn recorded_digests_say_which_they_are() {
        let sha1 = recorded_sha1("ABC123");
        assert_eq!(parse_recorded(&sha1), Ok("abc123"));
        assert_eq!(parse_recorded("00ff"), Err("00ff"));
    }

    #[test]
    fn a_file_hashes_as_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let file = File::open(&path).unwrap();
        let both = of_file(&file, 3, Wanted { sha1: true, sha256: true }).unwrap();
        assert_eq!(both.sha1.as_deref(), Some("a9993e364706816aba3e25717850c26c9cd0d89d"));
        assert_eq!(
            both.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        let mut h = Hasher::new(Wanted { sha1: true, sha256: false });
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish(), Digests { sha1: both.sha1.clone(), sha256: None });
        assert!(of_file(&file, 4, Wanted { sha1: true, sha256: false }).is_err());
    }
}
