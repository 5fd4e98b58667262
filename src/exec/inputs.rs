//! Turning input URIs into local files: produced earlier in this run
//! (staged), local paths as they are, remote ones through the cache.

use super::log::Log;
use super::{Error, Result};
use crate::cache::{Cache, Mode};
use crate::digest::Digest;
use crate::exec::error::{Cause, Place};
use crate::parser::plan::UriRef;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A local copy of an input and what is known of it.
#[derive(Clone, Debug)]
pub struct Input {
    pub path: PathBuf,
    pub sha256: Option<Digest>,
    pub bytes: u64,
}

/// Which inputs must carry a valid signature by a trusted key.
#[derive(Default)]
pub struct Trust {
    pub keys: Vec<crate::sign::PublicKey>,
    /// `--require-signatures`: local inputs too, not only fetched ones.
    pub require_all: bool,
}

pub struct Inputs {
    pub cache: Cache,
    pub mode: Mode,
    pub trust: Trust,
    /// Resource key → staged file, for what this run writes and later
    /// expressions read.
    produced: HashMap<String, PathBuf>,
    /// Inputs already resolved in this run: each URI is fetched once.
    seen: HashMap<String, Input>,
}

impl Inputs {
    pub fn new(cache: Cache, mode: Mode) -> Inputs {
        Inputs {
            cache,
            mode,
            trust: Trust::default(),
            produced: HashMap::new(),
            seen: HashMap::new(),
        }
    }

    /// Records that this run writes `uri`, staged at `staged`.
    pub fn produce(&mut self, uri: &UriRef, staged: PathBuf) {
        let key = uri.uri.resource_key();
        self.seen.remove(&key);
        self.produced.insert(key, staged);
    }

    /// The staged file of an output of this run, if `uri` is one.
    pub fn produced(&self, uri: &UriRef) -> Option<&PathBuf> {
        self.produced.get(&uri.uri.resource_key())
    }

    /// The local copy of `uri` if this run fetched it already (not one
    /// it produces), without fetching, logging or verifying anything.
    pub fn fetched(&self, uri: &UriRef) -> Option<&Path> {
        let key = uri.uri.resource_key();
        if self.produced.contains_key(&key) {
            return None;
        }
        self.seen.get(&key).map(|i| i.path.as_path())
    }

    /// A local file holding the content of `uri`.
    pub fn get(&mut self, uri: &UriRef, at: &str, log: &mut Log) -> Result<Input> {
        let key = uri.uri.resource_key();
        if let Some(p) = self.produced.get(&key) {
            return Ok(Input {
                path: p.clone(),
                sha256: None,
                bytes: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            });
        }
        if let Some(i) = self.seen.get(&key) {
            return Ok(i.clone());
        }
        if crate::oci::is_image(&uri.uri) {
            let input = super::image::pull(self, uri, at, log)?;
            self.seen.insert(key, input.clone());
            return Ok(input);
        }
        let input = if let Some(p) = uri.uri.local_path() {
            if !p.exists() {
                return Err(Error::run(format!("{at}: {}: no such file", p.display())));
            }
            if p.is_dir() {
                return self.directory(uri, p, at, log);
            }
            let mut input = Input {
                path: p.to_path_buf(),
                sha256: None,
                bytes: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            };
            if let Some(pin) = &uri.uri.pin {
                let (d, n) = Digest::of_file(p)
                    .map_err(|e| Error::run(format!("{at}: {}: {e}", p.display())))?;
                if &d != pin {
                    return Err(Error::run(format!(
                        "{at}: {}: content has sha256 {d}, but the URI pins {pin}",
                        p.display()
                    )));
                }
                input.sha256 = Some(d);
                input.bytes = n;
            }
            log.line(&format!("{at} read {} bytes={}", p.display(), input.bytes))?;
            if self.trust.require_all {
                let sig = uri.uri.with_suffix(".sig");
                let sig_path = sig.local_path().map(Path::to_path_buf).unwrap_or_default();
                self.verify(at, &uri.uri, &sig_path, p, log)?;
            }
            input
        } else {
            let _label = crate::progress::label(format!("fetching {}", uri.uri));
            let blob = self
                .cache
                .get_or_fetch(&uri.uri, self.mode)
                .map_err(|e| e.at(Place::at(at)))?;
            let how = if blob.stale {
                "stale cached copy (revalidation failed)"
            } else if blob.from_cache {
                "cache"
            } else {
                "downloaded"
            };
            if blob.stale {
                eprintln!(
                    "warning: {at}: {}: using the cached copy; the server could not be reached",
                    uri.uri
                );
            }
            log.line(&format!(
                "{at} fetch {} bytes={} sha256={} {how}",
                uri.uri, blob.bytes, blob.sha256
            ))?;
            if !self.trust.keys.is_empty() || self.trust.require_all {
                // the detached signature beside it, fetched (and cached)
                // the same way, checked before the artifact is used
                let sig_uri = uri.uri.with_suffix(".sig");
                let sig = self.cache.get_or_fetch(&sig_uri, self.mode).map_err(|e| {
                    Error::run(format!(
                        "{at}: {}: missing or unreadable signature {sig_uri}: {e}",
                        uri.uri
                    ))
                })?;
                self.verify(at, &uri.uri, &sig.path, &blob.path, log)?;
            }
            Input {
                path: blob.path,
                sha256: Some(blob.sha256),
                bytes: blob.bytes,
            }
        };
        self.seen.insert(key, input.clone());
        Ok(input)
    }

    /// A local directory read as a tree (a debootstrap chroot, a
    /// SystemImager image): taken as it is, never copied nor written. A
    /// pin or a signature covers the bytes of one file, which a directory
    /// has not: both are refused rather than silently not checked.
    fn directory(&mut self, uri: &UriRef, p: &Path, at: &str, log: &mut Log) -> Result<Input> {
        if uri.uri.pin.is_some() {
            return Err(Error::run(format!(
                "{at}: {}: a directory cannot be pinned by sha256 (a pin names the bytes of an archive)",
                p.display()
            )));
        }
        if self.trust.require_all {
            return Err(Error::run(format!(
                "{at}: {}: a directory cannot carry a signature, and signatures are required: pack it into an archive and sign that",
                p.display()
            )));
        }
        log.line(&format!("{at} read directory {}", p.display()))?;
        let input = Input {
            path: p.to_path_buf(),
            sha256: None,
            bytes: 0,
        };
        self.seen.insert(uri.uri.resource_key(), input.clone());
        Ok(input)
    }

    /// Checks `data` against the signature file `sig` with the trusted
    /// keys; the error names the artifact, the key id and the reason.
    fn verify(
        &self,
        at: &str,
        what: &crate::uri::Uri,
        sig: &Path,
        data: &Path,
        log: &mut Log,
    ) -> Result<()> {
        if self.trust.keys.is_empty() {
            return Err(Error::usage(format!(
                "{at}: {what}: signatures are required but no trusted key is configured (--trust KEY.pub or --trust-dir)"
            )));
        }
        if !sig.exists() {
            return Err(Error::run(format!(
                "{at}: {what}: missing signature {}",
                sig.display()
            )));
        }
        let v = crate::sign::verify_file(&self.trust.keys, sig, data)
            .map_err(|e| Error::run(format!("{at}: {what}: signature check failed: {e}")))?;
        log.line(&format!("{at} verified {what} key={}", v.key_id))?;
        Ok(())
    }
}
