//! The scheme-independent part of fetching: validators, outcome, pin check.

use super::error::FetchError;
use super::{file, ftp, http, FetchOptions};
use crate::digest::{Digest, HashingWriter};
use crate::uri::{Location, Uri};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

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
    uri: &Uri,
    dest: &Path,
) -> Result<HashingWriter<BufWriter<File>>, FetchError> {
    let file = File::create(dest).map_err(|cause| FetchError::Destination {
        uri: uri.to_string(),
        path: dest.to_path_buf(),
        cause,
    })?;
    Ok(HashingWriter::new(BufWriter::with_capacity(
        64 * 1024,
        file,
    )))
}

/// Flushes and syncs a finished download so a later rename publishes whole
/// content even across a crash.
/// Ends a download: a body of another length than the server announced is
/// an error (a connection cut short must not pass for a short file);
/// otherwise the file is synced and described.
pub(crate) fn finish_download(
    uri: &Uri,
    dest: &Path,
    out: HashingWriter<BufWriter<File>>,
    expected: Option<u64>,
    received: u64,
    validators: Validators,
) -> Result<Fetched, FetchError> {
    if let Some(expected) = expected.filter(|e| *e != received) {
        return Err(FetchError::Truncated {
            uri: uri.to_string(),
            expected,
            received,
        });
    }
    let (sha256, bytes) = close_dest(uri, dest, out)?;
    Ok(Fetched::Downloaded {
        bytes,
        sha256,
        validators: Some(validators).filter(Validators::is_usable),
    })
}

pub(crate) fn close_dest(
    uri: &Uri,
    dest: &Path,
    writer: HashingWriter<BufWriter<File>>,
) -> Result<(Digest, u64), FetchError> {
    let (buf, digest, bytes) = writer.finish();
    let err = |cause| FetchError::Destination {
        uri: uri.to_string(),
        path: dest.to_path_buf(),
        cause,
    };
    let file = buf.into_inner().map_err(|e| err(e.into_error()))?;
    file.sync_all().map_err(err)?;
    Ok((digest, bytes))
}
