//! Publishing local files to URIs so that readers never see a partial file:
//! everything is first written under a temporary name beside its final
//! name, then renamed.
//!
//! HTTP has no rename: `http(s)://` destinations get a plain `PUT` after
//! all other destinations are staged, which is best effort — a failure
//! there can leave earlier destinations of the same call published.

use super::copy::{copy_until, CopyError};
use super::error::PublishError;
use super::{ftp, http, FetchOptions};
use crate::digest::{Digest, HashingWriter};
use crate::uri::{FtpLocation, Location, Uri};
use std::fs::{self, File};
use std::io::{BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use suppaftp::FtpStream;

/// What was published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub bytes: u64,
    pub sha256: Digest,
}

/// Publishes `local` at `uri` atomically (file, ftp) or by `PUT` (http).
/// A `#sha256=` pin on `uri` must match the local content.
pub fn publish(local: &Path, uri: &Uri, opts: &FetchOptions) -> Result<Published, PublishError> {
    let mut all = publish_many(&[(local, uri)], opts)?;
    all.pop().ok_or_else(|| PublishError::Unsupported {
        uri: uri.to_string(),
        reason: "nothing was published".to_string(),
    })
}

/// Publishes several files together: all are uploaded under temporary
/// names first and only then renamed, so that e.g. an artifact and its
/// `.sig` appear together. On failure the temporaries are removed.
pub fn publish_many(
    items: &[(&Path, &Uri)],
    opts: &FetchOptions,
) -> Result<Vec<Published>, PublishError> {
    let mut sessions: Vec<Session> = Vec::new();
    let mut staged: Vec<Staged> = Vec::new();
    let mut results = Vec::with_capacity(items.len());
    for (local, uri) in items {
        match stage(local, uri, opts, &mut sessions) {
            Ok((s, p)) => {
                staged.push(s);
                results.push(p);
            }
            Err(e) => {
                discard(staged, &mut sessions);
                return Err(e);
            }
        }
    }
    let mut pending = staged.into_iter();
    while let Some(s) = pending.next() {
        if let Err(e) = commit(s, opts, &mut sessions) {
            discard(pending.collect(), &mut sessions);
            return Err(e);
        }
    }
    for session in &mut sessions {
        let _ = session.ftp.quit();
    }
    Ok(results)
}

/// One FTP control connection reused for every destination on the same
/// server and account.
struct Session {
    key: (String, u16, Option<String>, Option<String>),
    ftp: FtpStream,
}

enum Staged {
    File {
        uri: Uri,
        temp: tempfile::TempPath,
        target: PathBuf,
    },
    Ftp {
        uri: Uri,
        session: usize,
        temp: String,
        target: String,
    },
    Http {
        uri: Uri,
        local: PathBuf,
    },
}

fn session_for(
    uri: &Uri,
    loc: &FtpLocation,
    opts: &FetchOptions,
    sessions: &mut Vec<Session>,
) -> Result<usize, PublishError> {
    let key = (
        loc.host.clone(),
        loc.port,
        loc.user.clone(),
        loc.password.clone(),
    );
    if let Some(i) = sessions.iter().position(|s| s.key == key) {
        return Ok(i);
    }
    let ftp = ftp::connect(uri, loc, opts)?;
    sessions.push(Session { key, ftp });
    Ok(sessions.len().saturating_sub(1))
}

static NONCE: AtomicU64 = AtomicU64::new(0);

/// A name no concurrent publisher picks: process id, counter and clock.
fn temp_name(name: &str) -> String {
    let n = NONCE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(".{name}.part-{}-{n}-{nanos:08x}", std::process::id())
}

fn check_pin(uri: &Uri, actual: Digest) -> Result<(), PublishError> {
    match uri.pin {
        Some(expected) if expected != actual => Err(PublishError::PinMismatch {
            uri: uri.to_string(),
            expected,
            actual,
        }),
        _ => Ok(()),
    }
}

fn open_local(uri: &Uri, local: &Path) -> Result<BufReader<File>, PublishError> {
    File::open(local)
        .map(|f| BufReader::with_capacity(64 * 1024, f))
        .map_err(|cause| PublishError::LocalSource {
            uri: uri.to_string(),
            path: local.to_path_buf(),
            cause,
        })
}

fn stage(
    local: &Path,
    uri: &Uri,
    opts: &FetchOptions,
    sessions: &mut Vec<Session>,
) -> Result<(Staged, Published), PublishError> {
    let _label = crate::progress::label(format!("publishing {uri}"));
    match &uri.location {
        Location::File { path, .. } => stage_file(local, uri, path),
        Location::OciLayout { .. } | Location::Registry(_) => Err(PublishError::Unsupported {
            uri: uri.to_string(),
            reason: "an OCI image is read, never written".to_string(),
        }),
        Location::Ftp(loc) => {
            let (dir, name) = ftp::split_dir(&loc.path);
            let temp = if dir == "/" {
                format!("/{}", temp_name(name))
            } else {
                format!("{dir}/{}", temp_name(name))
            };
            let session = session_for(uri, loc, opts, sessions)?;
            let ftp = &mut sessions
                .get_mut(session)
                .ok_or_else(|| PublishError::Unsupported {
                    uri: uri.to_string(),
                    reason: "lost FTP session".to_string(),
                })?
                .ftp;
            ftp::make_dirs(uri, ftp, dir)?;
            let mut reader = HashingReader::new(open_local(uri, local)?);
            let stored = ftp::store(uri, ftp, &temp, local, &mut reader);
            let staged = Staged::Ftp {
                uri: uri.clone(),
                session,
                temp,
                target: loc.path.clone(),
            };
            let (sha256, bytes) = reader.finish();
            if let Err(e) = stored.and_then(|_| check_pin(uri, sha256)) {
                discard(vec![staged], sessions);
                return Err(e);
            }
            Ok((staged, Published { bytes, sha256 }))
        }
        Location::Http { .. } => {
            let (sha256, bytes) =
                Digest::of_file(local).map_err(|cause| PublishError::LocalSource {
                    uri: uri.to_string(),
                    path: local.to_path_buf(),
                    cause,
                })?;
            check_pin(uri, sha256)?;
            Ok((
                Staged::Http {
                    uri: uri.clone(),
                    local: local.to_path_buf(),
                },
                Published { bytes, sha256 },
            ))
        }
    }
}

fn stage_file(local: &Path, uri: &Uri, target: &Path) -> Result<(Staged, Published), PublishError> {
    let dest_err = |path: &Path, cause| PublishError::Destination {
        uri: uri.to_string(),
        path: path.to_path_buf(),
        cause,
    };
    let dir = target.parent().unwrap_or(Path::new("/"));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| PublishError::Unsupported {
            uri: uri.to_string(),
            reason: "destination names no file".to_string(),
        })?;
    fs::create_dir_all(dir).map_err(|e| dest_err(dir, e))?;
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(|e| dest_err(dir, e))?;
    let (file, temp) = temp.into_parts();
    let temp_path: PathBuf = temp.to_path_buf();
    let mut out = HashingWriter::new(std::io::BufWriter::with_capacity(64 * 1024, file));
    let mut reader = open_local(uri, local)?;
    copy_until(
        &mut reader,
        &mut out,
        None,
        fs::metadata(local).ok().map(|m| m.len()),
    )
    .map_err(|e| match e {
        CopyError::Read(cause, _) => PublishError::LocalSource {
            uri: uri.to_string(),
            path: local.to_path_buf(),
            cause,
        },
        CopyError::Write(cause) => dest_err(&temp_path, cause),
    })?;
    out.flush().map_err(|e| dest_err(&temp_path, e))?;
    let (buf, sha256, bytes) = out.finish();
    let file = buf
        .into_inner()
        .map_err(|e| dest_err(&temp_path, e.into_error()))?;
    // Temporary files are private; a published one is meant to be read.
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(|e| dest_err(&temp_path, e))?;
    file.sync_all().map_err(|e| dest_err(&temp_path, e))?;
    check_pin(uri, sha256)?;
    Ok((
        Staged::File {
            uri: uri.clone(),
            temp,
            target: target.to_path_buf(),
        },
        Published { bytes, sha256 },
    ))
}

fn commit(
    staged: Staged,
    opts: &FetchOptions,
    sessions: &mut [Session],
) -> Result<(), PublishError> {
    match staged {
        Staged::File { uri, temp, target } => {
            let err = |cause| PublishError::Destination {
                uri: uri.to_string(),
                path: target.clone(),
                cause,
            };
            temp.persist(&target).map_err(|e| err(e.error))?;
            // The rename itself must survive a crash too.
            if let Some(dir) = target.parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
            }
            Ok(())
        }
        Staged::Ftp {
            uri,
            session,
            temp,
            target,
        } => {
            let Some(s) = sessions.get_mut(session) else {
                return Err(PublishError::Unsupported {
                    uri: uri.to_string(),
                    reason: "lost FTP session".to_string(),
                });
            };
            let renamed = ftp::rename(&uri, &mut s.ftp, &temp, &target);
            if renamed.is_err() {
                let _ = s.ftp.rm(temp.as_str());
            }
            renamed
        }
        Staged::Http { uri, local } => http::put(&uri, &local, opts),
    }
}

/// Removes temporaries; errors are ignored since the original failure is
/// what the caller needs to hear about.
fn discard(staged: Vec<Staged>, sessions: &mut [Session]) {
    for s in staged {
        match s {
            Staged::File { temp, .. } => {
                let _ = temp.close();
            }
            Staged::Ftp { session, temp, .. } => {
                if let Some(s) = sessions.get_mut(session) {
                    let _ = s.ftp.rm(temp.as_str());
                }
            }
            Staged::Http { .. } => {}
        }
    }
}

/// Hashes what is read through it, so an upload is digested in one pass.
struct HashingReader<R> {
    inner: R,
    hasher: HashingWriter<std::io::Sink>,
}

impl<R: std::io::Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: HashingWriter::new(std::io::sink()),
        }
    }

    fn finish(self) -> (Digest, u64) {
        let (_, d, n) = self.hasher.finish();
        (d, n)
    }
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.write_all(buf.get(..n).unwrap_or(&[]))?;
        Ok(n)
    }
}
