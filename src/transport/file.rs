//! Local files: revalidated by modification time and size.

use super::copy::{copy_until, CopyError};
use super::error::FetchError;
use super::fetch::{close_dest, open_dest, Fetched, Validators};
use crate::uri::Uri;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub(crate) fn validators_of(meta: &std::fs::Metadata) -> Validators {
    Validators::File {
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        size: meta.size(),
    }
}

pub(crate) fn fetch(
    uri: &Uri,
    path: &Path,
    validators: Option<&Validators>,
    dest: &Path,
) -> Result<Fetched, FetchError> {
    let source_err = |cause| FetchError::LocalSource {
        uri: uri.to_string(),
        path: path.to_path_buf(),
        cause,
    };
    let mut file = File::open(path).map_err(source_err)?;
    // Validators come from the open handle, so they describe what is read.
    let meta = file.metadata().map_err(source_err)?;
    if !meta.is_file() {
        return Err(source_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let current = validators_of(&meta);
    if validators == Some(&current) {
        return Ok(Fetched::NotModified);
    }
    let shown = uri.to_string();
    let mut out = open_dest(&shown, dest)?;
    copy_until(&mut file, &mut out, None, Some(meta.size())).map_err(|e| match e {
        CopyError::Read(cause, _) => source_err(cause),
        CopyError::Write(cause) => FetchError::Destination {
            uri: shown.clone(),
            path: dest.to_path_buf(),
            cause,
        },
    })?;
    let (sha256, bytes) = close_dest(&shown, dest, out)?;
    Ok(Fetched::Downloaded {
        bytes,
        sha256,
        validators: Some(current),
    })
}
