//! Bounded-buffer copying that honours a transfer deadline.

use std::io::{self, Read, Write};
use std::time::Instant;

const CHUNK: usize = 64 * 1024;

/// Copies until end of input. Fails with `TimedOut` once `deadline` has
/// passed, so a server trickling bytes cannot hold a transfer forever.
/// `expected` (a Content-Length, an FTP SIZE, a file's size) gives the
/// progress bar its end.
pub(crate) fn copy_until(
    reader: &mut dyn Read,
    writer: &mut dyn Write,
    deadline: Option<Instant>,
    expected: Option<u64>,
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    let mut meter = crate::progress::Meter::current().total(expected);
    loop {
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(CopyError::Read(
                io::Error::new(io::ErrorKind::TimedOut, "transfer took too long"),
                total,
            ));
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e, total)),
        };
        let chunk = buf.get(..n).ok_or_else(|| {
            CopyError::Read(
                io::Error::new(io::ErrorKind::InvalidData, "reader overran its buffer"),
                total,
            )
        })?;
        writer.write_all(chunk).map_err(CopyError::Write)?;
        total = total.saturating_add(n as u64);
        meter.add(n as u64);
    }
}

/// Which side of a copy failed.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// Reading failed after this many bytes had been copied.
    Read(io::Error, u64),
    Write(io::Error),
}

/// A socket timeout, or one of ureq's own timeouts, which its body reader
/// reports as an I/O error wrapping `ureq::Error::Timeout`.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) || e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}
