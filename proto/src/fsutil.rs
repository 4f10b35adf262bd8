//! Files in and out: crash-safe writing (a temporary file in the same directory,
//! created with the final permissions from the start, fsynced, renamed over the
//! target, and the directory fsynced), and reading a file from outside with a bound
//! on what is allocated.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically with Unix permissions `mode` (the file
/// never exists with wider permissions, not even briefly).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path names no file"))?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        hex::encode(nonce)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // Make the rename durable.
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Why [`read_at_most`] read nothing.
#[derive(Debug)]
pub enum BoundedReadError {
    /// The file could not be opened or read.
    Io(io::Error),
    /// It holds more than the bound (`bytes`: its size, or the bound plus one if it
    /// grew while being read).
    TooLarge {
        /// Its size, or the bound plus one.
        bytes: u64,
    },
}

/// The whole of `path` if it is at most `max` bytes: refused from its size before
/// anything is allocated, and read through a limit, so a file that grows meanwhile
/// is refused too.
pub fn read_at_most(path: &Path, max: u64) -> Result<Vec<u8>, BoundedReadError> {
    let file = File::open(path).map_err(BoundedReadError::Io)?;
    let bytes = file.metadata().map_err(BoundedReadError::Io)?.len();
    if bytes > max {
        return Err(BoundedReadError::TooLarge { bytes });
    }
    let mut out = Vec::with_capacity(usize::try_from(bytes).unwrap_or(0));
    file.take(max + 1)
        .read_to_end(&mut out)
        .map_err(BoundedReadError::Io)?;
    if out.len() as u64 > max {
        return Err(BoundedReadError::TooLarge { bytes: max + 1 });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_up_to_the_bound_is_read_and_one_byte_more_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").expect("write");
        assert_eq!(read_at_most(&path, 5).expect("at the bound"), b"12345");
        assert!(matches!(
            read_at_most(&path, 4),
            Err(BoundedReadError::TooLarge { bytes: 5 })
        ));
        assert!(matches!(
            read_at_most(&dir.path().join("missing"), 5),
            Err(BoundedReadError::Io(_))
        ));
    }
}
