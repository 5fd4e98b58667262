//! Advisory whole-file locks (flock): held while one URI's cache state is
//! read, refreshed and written, so concurrent processes sharing a cache
//! serialise per URI instead of racing.
//!
//! `std::fs::File::lock` does the same from Rust 1.89 on; the crate's
//! minimum is older, so rustix's `flock` it is.

use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// An exclusive lock, released when dropped (closing the file releases it).
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the lock on `path` (created if missing) is ours.
    pub fn exclusive(path: &Path) -> io::Result<FileLock> {
        Self::take(path, FlockOperation::LockExclusive)
            .and_then(|l| l.ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock)))
    }

    /// The lock on `path` if no one else holds it; `None` if someone does.
    pub fn try_exclusive(path: &Path) -> io::Result<Option<FileLock>> {
        Self::take(path, FlockOperation::NonBlockingLockExclusive)
    }

    fn take(path: &Path, op: FlockOperation) -> io::Result<Option<FileLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        loop {
            match flock(&file, op) {
                Ok(()) => return Ok(Some(FileLock { _file: file })),
                // A signal may interrupt the wait; it is not a failure.
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }
}
