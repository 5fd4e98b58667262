//! What a successful run leaves in `--dir/state`, so that the next run of
//! the same container (a domain-start hook) can tell that nothing changed.
//!
//! A record holds a digest of every input — the container text and its
//! variables, each fetched artifact's validated digest, each local file's
//! size and mtime, each packed directory's listing — and the size and
//! mtime of every local output as the run left it. When the inputs digest
//! is the same and every output is still as it was left, the run has
//! nothing to do.

use sha2::{Digest as _, Sha256};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Size and mtime (nanoseconds) of a file, or `None` when it is missing.
pub fn stamp(path: &Path) -> Option<(u64, i128)> {
    let md = fs::metadata(path).ok()?;
    Some((
        md.len(),
        md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128,
    ))
}

/// A running digest of inputs.
#[derive(Default)]
pub struct Fingerprint(Sha256);

impl Fingerprint {
    pub fn add(&mut self, label: &str, value: &[u8]) {
        self.0.update((label.len() as u64).to_le_bytes());
        self.0.update(label.as_bytes());
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
    }

    pub fn finish(self) -> String {
        crate::tree::manifest::hex(&self.0.finalize())
    }
}

/// The record of the last successful run of one container.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub inputs: String,
    pub outputs: Vec<(PathBuf, u64, i128)>,
    /// Each new image's digest (what it was built from).
    pub images: Vec<(PathBuf, String)>,
}

impl Record {
    /// Where the record of `container` (with its variables) lives.
    pub fn path(state: &Path, container: &str, vars: &[(String, String)]) -> PathBuf {
        let mut f = Fingerprint::default();
        let abs = std::path::absolute(container).unwrap_or_else(|_| PathBuf::from(container));
        f.add("container", abs.as_os_str().as_encoded_bytes());
        for (k, v) in vars {
            f.add(k, v.as_bytes());
        }
        state.join("runs").join(f.finish())
    }

    /// Reads a record; one that is cut short, altered or unreadable is
    /// `None` (the run is then not up to date).
    pub fn load(path: &Path) -> Option<Record> {
        let text = fs::read_to_string(path).ok()?;
        // the last line seals everything before it
        let body = text.strip_suffix('\n')?;
        let (body, seal) = body.rsplit_once('\n')?;
        let body = format!("{body}\n");
        if seal.strip_prefix("end ")? != seal_of(&body) {
            return None;
        }
        let mut lines = body.lines();
        let inputs = lines.next()?.strip_prefix("inputs ")?.to_string();
        let mut outputs = Vec::new();
        let mut images = Vec::new();
        for l in lines {
            if let Some(rest) = l.strip_prefix("image ") {
                let (digest, path) = rest.split_once(' ')?;
                images.push((PathBuf::from(path), digest.to_string()));
                continue;
            }
            let mut parts = l.splitn(3, ' ');
            let size = parts.next()?.parse().ok()?;
            let mtime = parts.next()?.parse().ok()?;
            outputs.push((PathBuf::from(parts.next()?), size, mtime));
        }
        Some(Record {
            inputs,
            outputs,
            images,
        })
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut text = format!("inputs {}\n", self.inputs);
        for (p, size, mtime) in &self.outputs {
            text.push_str(&format!("{size} {mtime} {}\n", p.display()));
        }
        for (p, digest) in &self.images {
            text.push_str(&format!("image {digest} {}\n", p.display()));
        }
        let seal = seal_of(&text);
        text.push_str(&format!("end {seal}\n"));
        super::outputs::write_synced(path, text.as_bytes())
    }

    /// True when every output is still as this record left it.
    pub fn outputs_intact(&self) -> bool {
        self.outputs
            .iter()
            .all(|(p, size, mtime)| stamp(p) == Some((*size, *mtime)))
    }
}

/// The digest that ends a record: a record cut short or altered does not
/// end with the digest of what precedes it.
fn seal_of(body: &str) -> String {
    crate::tree::manifest::hex(&Sha256::digest(body.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_notice_changed_outputs() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        fs::write(&out, "a").unwrap();
        let (size, mtime) = stamp(&out).unwrap();
        let r = Record {
            inputs: "abc".into(),
            outputs: vec![(out.clone(), size, mtime)],
            images: vec![(out.clone(), "d1".into())],
        };
        let p = d.path().join("state/runs/x");
        r.save(&p).unwrap();
        assert_eq!(Record::load(&p), Some(Record { ..r }));
        let r = Record::load(&p).unwrap();
        assert!(r.outputs_intact());
        fs::write(&out, "bb").unwrap();
        assert!(!r.outputs_intact());
        // cut anywhere, the record is no record
        let whole = fs::read(&p).unwrap();
        for n in 0..whole.len() {
            fs::write(&p, &whole[..n]).unwrap();
            assert_eq!(Record::load(&p), None, "cut at {n}");
        }
    }
}
