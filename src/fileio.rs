//! Positional reads into buffers that are not zeroed first: the FUSE read path and
//! `damfs serve`'s binary bodies both hand the bytes on at once, so zeroing would be a
//! wasted pass over every one of them.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Reads up to `len` bytes at `offset` of `file`; fewer only at the end of the file.
pub fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let at = libc::off_t::try_from(offset + buf.len() as u64)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset past the largest file"))?;
        let spare = buf.spare_capacity_mut();
        // SAFETY: pread writes at most `spare.len()` bytes into the vector's spare capacity,
        // which stays allocated for the call; the length grows only by what it wrote.
        let n = unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), at) };
        match n {
            0 => break,
            // SAFETY: the first `n` bytes of the spare capacity were just written.
            n if n > 0 => unsafe { buf.set_len(buf.len() + n as usize) },
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn reads_what_is_there_and_stops_at_the_end() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"0123456789").unwrap();
        assert_eq!(super::read_at(&file, 2, 3).unwrap(), b"234");
        assert_eq!(super::read_at(&file, 8, 100).unwrap(), b"89");
        assert!(super::read_at(&file, 20, 4).unwrap().is_empty());
    }
}
