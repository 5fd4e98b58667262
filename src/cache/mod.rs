//! A persistent download cache shared by concurrent processes.
//!
//! Layout under the cache directory:
//! - `blobs/sha256/<hex>`: content, named by its digest (immutable);
//! - `index/<hex of sha256(uri)>`: what is known about one URI
//!   ([`IndexEntry`]), replaced atomically;
//! - `locks/<hex of sha256(uri)>.lock`: flock'ed while one URI is handled,
//!   so two processes fetching the same URI take turns (the second one then
//!   revalidates instead of downloading again). Reading a verified copy
//!   needs no lock (the index is replaced by rename, blobs never change),
//!   so `--offline` never waits behind a download in progress;
//! - `tmp/`: downloads in progress, each under a unique name, renamed into
//!   `blobs/` only once complete and hashed.
//!
//! Every blob served is hashed again first: a damaged blob is dropped and
//! fetched anew rather than handed out.
//!
//! A URI pinned with `#sha256=` whose blob is present and verifies is served
//! without contacting the server: the pin already fixes the content.

mod index;
pub mod lock;

pub use index::IndexEntry;

use crate::transport::{fetch, Digest, FetchOptions, Fetched, Location, TransferError, Uri};
use lock::FileLock;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Age after which a file in `tmp/` is taken for an abandoned download.
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How long `--allow-stale` waits for another run handling the same URI
/// before it serves the cached copy instead: a quick revalidation finishes
/// within it, a download stuck on a slow server does not hold this run.
const STALE_WAIT: Duration = Duration::from_secs(2);

/// How much the network may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Revalidate with the server; download what changed.
    Online,
    /// Touch no network: serve the verified cached copy or fail. Local
    /// files are still read, since that needs no network.
    Offline,
    /// As `Online`, but when the server cannot be reached, serve the
    /// verified cached copy marked stale.
    AllowStale,
}

/// A verified blob in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedBlob {
    /// The blob file; read it, never write it.
    pub path: PathBuf,
    pub sha256: Digest,
    pub bytes: u64,
    /// True when nothing was downloaded in this call.
    pub from_cache: bool,
    /// True when revalidation failed and the cached copy stood in.
    pub stale: bool,
}

/// A cache failure.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    #[error("{uri}: not in cache (offline)")]
    NotInCache { uri: String },
    #[error("cached copy of {uri} is damaged (sha256 mismatch); run without --offline to fetch it again")]
    Damaged { uri: String },
    #[error("{uri}: the cached copy has sha256 {cached}, not the pinned {pinned} (offline)")]
    PinnedNotCached {
        uri: String,
        pinned: Digest,
        cached: Digest,
    },
    #[error(transparent)]
    Transfer(#[from] TransferError),
}

impl CacheError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
        move |cause| CacheError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

/// What [`Cache::peek`] found.
enum Peeked {
    /// A blob that verifies: its digest and size.
    Intact(Digest, u64),
    Absent,
    /// The index names a blob whose bytes no longer match its digest.
    Damaged,
    /// The cached copy is intact but not the pinned content.
    OtherContent(Digest),
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    opts: FetchOptions,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Cache {
    /// Opens (creating as needed) the cache in `dir`.
    pub fn open(dir: impl Into<PathBuf>, opts: FetchOptions) -> Result<Cache, CacheError> {
        let cache = Cache {
            dir: dir.into(),
            opts,
        };
        for sub in [
            cache.dir.join("blobs").join("sha256"),
            cache.dir.join("index"),
            cache.dir.join("locks"),
            cache.dir.join("tmp"),
        ] {
            fs::create_dir_all(&sub).map_err(CacheError::io(&sub))?;
        }
        cache.sweep_tmp();
        Ok(cache)
    }

    /// Removes downloads abandoned by crashed processes. Only old files go:
    /// a younger one may belong to a download running right now.
    fn sweep_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.dir.join("tmp")) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > ABANDONED_AFTER);
            if old {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The network behaviour of this cache's fetches.
    pub fn options(&self) -> &FetchOptions {
        &self.opts
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn blob_path(&self, sha256: &Digest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(sha256.to_hex())
    }

    fn key(uri: &Uri) -> String {
        let mut h = Sha256::new();
        h.update(uri.resource_key().as_bytes());
        Digest(h.finalize().into()).to_hex()
    }

    fn index_path(&self, uri: &Uri) -> PathBuf {
        self.dir.join("index").join(Self::key(uri))
    }

    /// The index record of `uri` in the cache at `dir`, read without
    /// opening the cache (which creates its directories): for looking
    /// only, as `--dry-run` does.
    pub fn entry_in(dir: &Path, uri: &Uri) -> Option<IndexEntry> {
        let text = fs::read_to_string(dir.join("index").join(Self::key(uri))).ok()?;
        IndexEntry::from_text(&text)
    }

    /// The index record of `uri`, if one is readable.
    pub fn entry(&self, uri: &Uri) -> Result<Option<IndexEntry>, CacheError> {
        let path = self.index_path(uri);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(IndexEntry::from_text(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            // A record damaged into invalid UTF-8 is as good as absent.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(None),
            Err(e) => Err(CacheError::io(&path)(e)),
        }
    }

    fn write_entry(&self, uri: &Uri, entry: &IndexEntry) -> Result<(), CacheError> {
        let path = self.index_path(uri);
        let dir = self.dir.join("index");
        let mut temp = tempfile::Builder::new()
            .prefix(".index.")
            .tempfile_in(&dir)
            .map_err(CacheError::io(&dir))?;
        temp.write_all(entry.to_text().as_bytes())
            .and_then(|_| temp.as_file().sync_all())
            .map_err(CacheError::io(temp.path()))?;
        temp.persist(&path)
            .map_err(|e| CacheError::io(&path)(e.error))?;
        Ok(())
    }

    /// Hashes the blob `sha256` names; true if present and intact. A
    /// damaged blob is removed so that it is fetched again.
    fn verify_blob(&self, sha256: &Digest, size: Option<u64>) -> Result<bool, CacheError> {
        let path = self.blob_path(sha256);
        match Digest::of_file(&path) {
            Ok((actual, bytes)) if actual == *sha256 && size.is_none_or(|s| s == bytes) => Ok(true),
            Ok(_) => {
                fs::remove_file(&path).map_err(CacheError::io(&path))?;
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(CacheError::io(&path)(e)),
        }
    }

    fn blob(&self, sha256: Digest, bytes: u64, from_cache: bool, stale: bool) -> CachedBlob {
        CachedBlob {
            path: self.blob_path(&sha256),
            sha256,
            bytes,
            from_cache,
            stale,
        }
    }

    /// What the cache holds for `uri` without taking its lock: the index
    /// record is replaced by rename and blobs are immutable and named by
    /// their content, so both read whole or not at all. Nothing is
    /// repaired here (that needs the lock): a damaged blob is reported.
    fn peek(&self, uri: &Uri) -> Result<Peeked, CacheError> {
        if let Some(pin) = uri.pin {
            let path = self.blob_path(&pin);
            match Digest::of_file(&path) {
                Ok((actual, bytes)) if actual == pin => return Ok(Peeked::Intact(pin, bytes)),
                Ok(_) | Err(_) => {}
            }
        }
        let Some(e) = self.entry(uri)? else {
            return Ok(Peeked::Absent);
        };
        let path = self.blob_path(&e.sha256);
        match Digest::of_file(&path) {
            Ok((actual, bytes)) if actual == e.sha256 && bytes == e.size => match uri.pin {
                Some(pin) if pin != e.sha256 => Ok(Peeked::OtherContent(e.sha256)),
                _ => Ok(Peeked::Intact(e.sha256, e.size)),
            },
            Ok(_) => Ok(Peeked::Damaged),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Peeked::Absent),
            Err(err) => Err(CacheError::io(&path)(err)),
        }
    }

    /// The lock on `path` if it can be had within `wait`.
    fn lock_within(&self, path: &Path, wait: Duration) -> Result<Option<FileLock>, CacheError> {
        let started = std::time::Instant::now();
        loop {
            if let Some(lock) = FileLock::try_exclusive(path).map_err(CacheError::io(path))? {
                return Ok(Some(lock));
            }
            if started.elapsed() >= wait {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `--offline`: the verified cached copy, read without the URI's lock,
    /// so a run stuck downloading the same URI does not hold this one up.
    fn offline(&self, uri: &Uri) -> Result<CachedBlob, CacheError> {
        let shown = uri.to_string();
        match self.peek(uri)? {
            Peeked::Intact(sha256, bytes) => Ok(self.blob(sha256, bytes, true, false)),
            Peeked::Absent => Err(CacheError::NotInCache { uri: shown }),
            Peeked::Damaged => Err(CacheError::Damaged { uri: shown }),
            Peeked::OtherContent(cached) => Err(CacheError::PinnedNotCached {
                uri: shown,
                pinned: uri.pin.unwrap_or(cached),
                cached,
            }),
        }
    }

    /// Serves `uri` from the cache, revalidating or downloading as `mode`
    /// allows. Online, the URI's lock is taken first, so concurrent runs
    /// download it once. `--offline` never waits for the lock, and
    /// `--allow-stale` waits at most [`STALE_WAIT`] when a verified copy is
    /// cached (the run holding the lock may be stuck on a slow server):
    /// that copy is then served as stale.
    pub fn get_or_fetch(&self, uri: &Uri, mode: Mode) -> Result<CachedBlob, CacheError> {
        let local = matches!(uri.location, Location::File { .. });
        if mode == Mode::Offline && !local {
            return self.offline(uri);
        }
        let lock_path = self
            .dir
            .join("locks")
            .join(format!("{}.lock", Self::key(uri)));
        let held = if mode == Mode::AllowStale {
            self.lock_within(&lock_path, STALE_WAIT)?
        } else {
            None
        };
        let _lock = match held {
            Some(lock) => lock,
            None => {
                if mode == Mode::AllowStale {
                    if let Peeked::Intact(sha256, bytes) = self.peek(uri)? {
                        // pinned content is current whatever the server says
                        let stale = uri.pin != Some(sha256);
                        return Ok(self.blob(sha256, bytes, true, stale));
                    }
                }
                FileLock::exclusive(&lock_path).map_err(CacheError::io(&lock_path))?
            }
        };

        let cached = match self.entry(uri)? {
            Some(e) if self.verify_blob(&e.sha256, Some(e.size))? => Some(e),
            _ => None,
        };

        if let Some(pin) = uri.pin {
            if let Some(e) = cached.as_ref().filter(|e| e.sha256 == pin) {
                return Ok(self.blob(pin, e.size, true, false));
            }
            let path = self.blob_path(&pin);
            if self.verify_blob(&pin, None)? {
                let bytes = fs::metadata(&path).map_err(CacheError::io(&path))?.len();
                return Ok(self.blob(pin, bytes, true, false));
            }
        }

        // Validators only count when the copy they describe is usable:
        // present, intact and (if pinned) the pinned content.
        let validators = cached
            .as_ref()
            .filter(|e| uri.pin.is_none_or(|p| p == e.sha256))
            .and_then(|e| e.validators.as_ref());
        let tmp_dir = self.dir.join("tmp");
        let temp = tempfile::Builder::new()
            .prefix(".download.")
            .tempfile_in(&tmp_dir)
            .map_err(CacheError::io(&tmp_dir))?
            .into_temp_path();

        match fetch(uri, validators, &temp, &self.opts) {
            Ok(Fetched::NotModified) => {
                let Some(mut e) = cached else {
                    return Err(CacheError::NotInCache {
                        uri: uri.to_string(),
                    });
                };
                e.validated = now_secs();
                self.write_entry(uri, &e)?;
                Ok(self.blob(e.sha256, e.size, true, false))
            }
            Ok(Fetched::Downloaded {
                bytes,
                sha256,
                validators,
            }) => {
                let dest = self.blob_path(&sha256);
                temp.persist(&dest)
                    .map_err(|e| CacheError::io(&dest)(e.error))?;
                self.write_entry(
                    uri,
                    &IndexEntry {
                        uri: uri.resource_key(),
                        sha256,
                        size: bytes,
                        validated: now_secs(),
                        validators,
                    },
                )?;
                Ok(self.blob(sha256, bytes, false, false))
            }
            Err(err) => match cached {
                Some(e)
                    if mode == Mode::AllowStale
                        && err.is_outage()
                        && uri.pin.is_none_or(|p| p == e.sha256) =>
                {
                    Ok(self.blob(e.sha256, e.size, true, true))
                }
                _ => Err(err.into()),
            },
        }
    }
}
