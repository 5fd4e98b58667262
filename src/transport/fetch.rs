//! The scheme-independent part of fetching: validators, outcome, pin check.

use super::copy::{copy_until, is_timeout, CopyError};
use super::error::FetchError;
use super::{file, ftp, http, FetchOptions};
use crate::digest::{Digest, HashingWriter};
use crate::hostdir::Room;
use crate::uri::{Location, Uri};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

/// What revalidating a earlier download needs, per scheme.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Validators {
    /// Sent back as `If-None-Match` / `If-Modified-Since`.
    Http {
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// `MDTM` (as `YYYY-MM-DD HH:MM:SS`, UTC) and `SIZE` of the remote file.
    Ftp {
        mdtm: Option<String>,
        size: Option<u64>,
    },
    /// Modification time (seconds, nanoseconds since the epoch) and size.
    File {
        mtime: i64,
        mtime_nsec: i64,
        size: u64,
    },
}

impl Validators {
    /// Whether these validators can ever prove a resource unchanged.
    pub fn is_usable(&self) -> bool {
        match self {
            Validators::Http {
                etag,
                last_modified,
            } => etag.is_some() || last_modified.is_some(),
            Validators::Ftp { mdtm, size } => mdtm.is_some() && size.is_some(),
            Validators::File { .. } => true,
        }
    }
}

/// The outcome of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The validators given still hold; `dest` was not written.
    NotModified,
    /// The body was written to `dest`.
    Downloaded {
        bytes: u64,
        sha256: Digest,
        validators: Option<Validators>,
    },
}

/// Fetches `uri` into `dest` (created or truncated; a temporary file the
/// caller renames), hashing and counting on the way. With `validators` from
/// an earlier download, an unchanged resource yields [`Fetched::NotModified`].
/// A `#sha256=` pin is checked after the download.
pub fn fetch(
    uri: &Uri,
    validators: Option<&Validators>,
    dest: &Path,
    opts: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let fetched = match &uri.location {
        Location::File { path, .. } => file::fetch(uri, path, validators, dest)?,
        Location::Http { .. } => http::fetch(uri, validators, dest, opts)?,
        Location::Ftp(loc) => ftp::fetch(uri, loc, validators, dest, opts)?,
        Location::OciLayout { .. } | Location::Registry(_) => {
            return Err(FetchError::Unsupported {
                uri: uri.to_string(),
                reason: "an OCI image is many blobs, read by the oci module, not one file"
                    .to_string(),
            })
        }
    };
    if let (Some(expected), Fetched::Downloaded { sha256, .. }) = (uri.pin, &fetched) {
        if expected != *sha256 {
            return Err(FetchError::PinMismatch {
                uri: uri.to_string(),
                expected,
                actual: *sha256,
            });
        }
    }
    Ok(fetched)
}

/// Opens `dest` for a download: buffered, hashing.
pub(crate) fn open_dest(
    shown: &str,
    dest: &Path,
) -> Result<HashingWriter<BufWriter<File>>, FetchError> {
    let file = File::create(dest).map_err(|cause| FetchError::Destination {
        uri: shown.to_string(),
        path: dest.to_path_buf(),
        cause,
    })?;
    Ok(HashingWriter::new(BufWriter::with_capacity(
        64 * 1024,
        file,
    )))
}

/// Receives a network body into `dest` (HTTP and FTP alike) and ends the
/// download (see [`finish_download`]). The transfer stops at the whole
/// transfer's deadline (`opts.total_timeout` from `started`), at
/// `opts.max_download` bytes, and before it would eat into the reserve of
/// `dest`'s file system ([`Room`]): a body without a length must not fill
/// the disk. On failure the partial file is removed.
pub(crate) fn receive(
    shown: &str,
    reader: &mut dyn Read,
    dest: &Path,
    expected: Option<u64>,
    validators: Validators,
    opts: &FetchOptions,
    started: Instant,
) -> Result<Fetched, FetchError> {
    let received = receive_body(shown, reader, dest, expected, opts, started)
        .and_then(|(out, n)| finish_download(shown, dest, out, expected, n, validators));
    if received.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    received
}

fn receive_body(
    shown: &str,
    reader: &mut dyn Read,
    dest: &Path,
    expected: Option<u64>,
    opts: &FetchOptions,
    started: Instant,
) -> Result<(HashingWriter<BufWriter<File>>, u64), FetchError> {
    let dest_err = |cause| FetchError::Destination {
        uri: shown.to_string(),
        path: dest.to_path_buf(),
        cause,
    };
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let room = Room::of(dir).map_err(dest_err)?;
    let (limit, why) = match opts.max_download.filter(|m| *m < room.usable) {
        Some(m) => (
            m,
            format!("the body is larger than the download limit of {m} bytes (--max-download)"),
        ),
        None => (
            room.usable,
            format!("the download would fill {}", room.describe()),
        ),
    };
    let too_large = |received| FetchError::TooLarge {
        uri: shown.to_string(),
        received,
        why: why.clone(),
    };
    if let Some(announced) = expected.filter(|e| *e > limit) {
        return Err(FetchError::TooLarge {
            uri: shown.to_string(),
            received: 0,
            why: format!("the server announces {announced} bytes; {why}"),
        });
    }
    let mut out = open_dest(shown, dest)?;
    let deadline = opts.total_timeout.map(|t| started + t);
    let mut capped = Capped {
        inner: &mut out,
        left: limit,
    };
    let copied = copy_until(reader, &mut capped, deadline, expected);
    match copied {
        Ok(n) => Ok((out, n)),
        Err(CopyError::Write(cause)) if cause.get_ref().is_some_and(|e| e.is::<LimitReached>()) => {
            Err(too_large(limit - capped.left))
        }
        Err(CopyError::Write(cause)) => Err(dest_err(cause)),
        Err(CopyError::Read(cause, received)) => Err(match (deadline, opts.total_timeout) {
            // A read that timed out at the deadline (or a deadline check
            // between reads) is the whole transfer's limit.
            (Some(d), Some(total)) if is_timeout(&cause) && past(d) => FetchError::Deadline {
                uri: shown.to_string(),
                seconds: total.as_secs(),
                received,
            },
            _ if is_timeout(&cause) => FetchError::Timeout {
                uri: shown.to_string(),
                during: format!("reading the body after {received} bytes ({cause})"),
            },
            _ => match expected.filter(|e| received < *e) {
                Some(expected) => FetchError::Truncated {
                    uri: shown.to_string(),
                    expected,
                    received,
                },
                None => FetchError::Network {
                    uri: shown.to_string(),
                    during: format!("reading the body after {received} bytes"),
                    cause,
                },
            },
        }),
    }
}

/// Whether `deadline` has come, give or take the few milliseconds by which
/// a socket's own timer may beat the clock read here.
pub(crate) fn past(deadline: Instant) -> bool {
    Instant::now() + std::time::Duration::from_millis(50) >= deadline
}

/// The marker error of a [`Capped`] writer that reached its limit.
#[derive(Debug)]
struct LimitReached;

impl std::fmt::Display for LimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("download limit reached")
    }
}

impl std::error::Error for LimitReached {}

/// A writer that refuses a write which would take it past `left` bytes.
struct Capped<'a> {
    inner: &'a mut dyn Write,
    left: u64,
}

impl Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len() as u64;
        if n > self.left {
            return Err(io::Error::other(LimitReached));
        }
        let written = self.inner.write(buf)?;
        self.left -= written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Ends a download: a body of another length than the server announced is
/// an error (a connection cut short must not pass for a short file);
/// otherwise the file is synced and described.
pub(crate) fn finish_download(
    shown: &str,
    dest: &Path,
    out: HashingWriter<BufWriter<File>>,
    expected: Option<u64>,
    received: u64,
    validators: Validators,
) -> Result<Fetched, FetchError> {
    if let Some(expected) = expected.filter(|e| *e != received) {
        return Err(FetchError::Truncated {
            uri: shown.to_string(),
            expected,
            received,
        });
    }
    let (sha256, bytes) = close_dest(shown, dest, out)?;
    Ok(Fetched::Downloaded {
        bytes,
        sha256,
        validators: Some(validators).filter(Validators::is_usable),
    })
}

/// Flushes and syncs a finished download so a later rename publishes whole
/// content even across a crash.
pub(crate) fn close_dest(
    shown: &str,
    dest: &Path,
    writer: HashingWriter<BufWriter<File>>,
) -> Result<(Digest, u64), FetchError> {
    let (buf, digest, bytes) = writer.finish();
    let err = |cause| FetchError::Destination {
        uri: shown.to_string(),
        path: dest.to_path_buf(),
        cause,
    };
    let file = buf.into_inner().map_err(|e| err(e.into_error()))?;
    file.sync_all().map_err(err)?;
    Ok((digest, bytes))
}
