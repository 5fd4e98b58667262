//! What a successful run leaves in `--dir/state`, so that the next run of
//! the same container (a domain-start hook) can tell that nothing changed.
//!
//! A record holds a digest of every input — the container text and its
//! variables, each fetched artifact's validated digest, each local file's
//! size and mtime, each source or packed directory's listing — and the size and
//! mtime of every local output as the run left it. When the inputs digest
//! is the same and every output is still as it was left, the run has
//! nothing to do.

use crate::transport::Validators;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Size and mtime (nanoseconds) of a file, or `None` when it is missing.
/// A block device reports size 0, and its mtime changes only for writes
/// through that one node: a device is stamped by its size and a digest of
/// its content instead (see [`device_digest`]), in the same two fields.
pub fn stamp(path: &Path) -> Option<(u64, i128)> {
    let md = fs::metadata(path).ok()?;
    if std::os::unix::fs::FileTypeExt::is_block_device(&md.file_type()) {
        let f = fs::File::open(path).ok()?;
        let size = super::holders::size_of(&f).ok()?;
        let d = device_digest(&f).ok()?;
        let mut v = [0u8; 16];
        v.copy_from_slice(&d[..16]);
        return Some((size, i128::from_le_bytes(v)));
    }
    Some((
        md.len(),
        md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128,
    ))
}

/// The stamp of a local input, as text for a [`Fingerprint`]: a file's
/// (or device's) [`stamp`], or a directory's [`listing`]. A directory
/// whose walk fails is stamped with the error, so that the run that
/// follows reports it.
pub fn input_stamp(path: &Path) -> String {
    if path.is_dir() {
        return match listing(crate::hostdir::Walker::new(path).one_file_system(), path) {
            Ok(d) => format!("dir {d}"),
            Err(e) => format!("dir unreadable: {e}"),
        };
    }
    format!("{:?}", stamp(path))
}

/// A digest of the host directory `dir` as `walker` reads it: every name, its kind
/// (with a file's size, a link's target, a device's numbers), mode,
/// owners and mtime as [`crate::hostdir::Walker`] reports them, plus the
/// mtime and ctime in nanoseconds from `lstat`, so that a file rewritten
/// within the same second, or rewritten and its mtime put back, changes
/// it. Nothing is read but the metadata: the walk costs one `lstat` per
/// entry, not the content of the tree.
pub fn listing(mut walker: crate::hostdir::Walker, dir: &Path) -> std::io::Result<String> {
    use crate::tree::{Entry, Source};
    use std::os::unix::ffi::OsStrExt;
    let mut f = Fingerprint::default();
    let mut sink = crate::tree::FnSink(|e: &Entry, _: &mut dyn std::io::Read| {
        let host = dir.join(std::ffi::OsStr::from_bytes(e.path.as_bytes()));
        let times = fs::symlink_metadata(&host)
            .map(|m| (m.mtime_nsec(), m.ctime(), m.ctime_nsec()))
            .ok();
        let mut line = format!("{:?} {:?} {times:?}", e.kind, e.meta);
        // extended attributes, where there are any (a listing without
        // them reads as it always did)
        if !e.xattrs.is_empty() {
            line.push_str(&format!(" {:?}", e.xattrs));
        }
        f.add(&e.path.to_string(), line.as_bytes());
        Ok(())
    });
    walker.emit(&mut sink)?;
    Ok(f.finish())
}

/// A digest of what every change to an ext2/3/4 volume rewrites: the
/// superblock (free counts, write and mount times, journal state) and the
/// group descriptors (free counts per group). Whatever writes the volume
/// — a populate, a mount, old bytes written back through another node —
/// changes it; reading a few KiB keeps a domain-start check cheap. A
/// device that holds no ext file system is digested by its first MiB.
pub fn device_digest(f: &fs::File) -> std::io::Result<[u8; 32]> {
    use std::os::unix::fs::FileExt;
    let mut h = Sha256::new();
    let mut sb = [0u8; 1024];
    f.read_exact_at(&mut sb, 1024)?;
    h.update(sb);
    let le32 = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    let rest = if sb[0x38..0x3A] == [0x53, 0xEF] {
        let bs = 1024u64 << le32(0x18).min(6);
        let groups =
            u64::from(le32(0x4).saturating_sub(le32(0x14))).div_ceil(u64::from(le32(0x20).max(1)));
        let desc = if le32(0x60) & 0x80 != 0 {
            u64::from(u16::from_le_bytes([sb[0xFE], sb[0xFF]]).max(32))
        } else {
            32
        };
        // the table starts in the block after the superblock's
        (u64::from(le32(0x14)) + 1) * bs..(u64::from(le32(0x14)) + 1) * bs + groups * desc
    } else {
        0..1 << 20
    };
    let mut buf = vec![0u8; (rest.end - rest.start).min(64 << 20) as usize];
    let got = super::holders::read_full(f, &mut buf, rest.start)?;
    h.update(&buf[..got]);
    Ok(h.finalize().into())
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

/// What a run has to do, by the last run's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No input changed and every output and upload is as the last run
    /// left it: nothing.
    UpToDate,
    /// Only Xen statements changed: only the stripped config is written.
    XenOnly,
    /// Every expression.
    Run,
}

/// The record of the last successful run of one container.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub inputs: String,
    pub outputs: Vec<(PathBuf, u64, i128)>,
    /// Each new image's digest (what it was built from).
    pub images: Vec<(PathBuf, String)>,
    /// Each upload: its resource key, content digest and the validators
    /// the server gave right after it (encoded by [`encode_validators`]).
    pub remotes: Vec<(String, String, String)>,
    /// A digest of the container's expressions and the date they were
    /// first seen with that digest (see [`super::run::expressions_digest`]):
    /// an edit of Xen statements alone keeps the date.
    pub dated: Option<(String, i64)>,
    /// The inputs digest with the container's expressions in place of
    /// its text: equal to a later run's, only Xen statements changed
    /// (see [`Record::verdict`]).
    pub plan_inputs: Option<String>,
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
        let mut remotes = Vec::new();
        let mut dated = None;
        let mut plan_inputs = None;
        for l in lines {
            if let Some(rest) = l.strip_prefix("plan ") {
                plan_inputs = Some(rest.to_string());
                continue;
            }
            if let Some(rest) = l.strip_prefix("dated ") {
                let (digest, secs) = rest.split_once(' ')?;
                dated = Some((digest.to_string(), secs.parse().ok()?));
                continue;
            }
            if let Some(rest) = l.strip_prefix("remote ") {
                let mut f = rest.splitn(3, ' ');
                let (sha, v, key) = (f.next()?, f.next()?, f.next()?);
                remotes.push((key.to_string(), sha.to_string(), v.to_string()));
                continue;
            }
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
            remotes,
            dated,
            plan_inputs,
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
        for (key, sha, v) in &self.remotes {
            text.push_str(&format!("remote {sha} {v} {key}\n"));
        }
        if let Some(digest) = &self.plan_inputs {
            text.push_str(&format!("plan {digest}\n"));
        }
        if let Some((digest, secs)) = &self.dated {
            text.push_str(&format!("dated {digest} {secs}\n"));
        }
        let seal = seal_of(&text);
        text.push_str(&format!("end {seal}\n"));
        super::atomic::write_synced(path, text.as_bytes())
    }

    /// What this record, the last run's, says of a run whose inputs
    /// digest to `inputs` (and, with the expressions in place of the
    /// container's text, to `plan_inputs`). `remotes_intact` tells
    /// whether every upload is still as the record lists it.
    pub fn verdict(
        &self,
        inputs: &str,
        plan_inputs: Option<&str>,
        mut remotes_intact: impl FnMut(&[(String, String, String)]) -> bool,
    ) -> Verdict {
        if self.inputs == inputs && self.outputs_intact() && remotes_intact(&self.remotes) {
            return Verdict::UpToDate;
        }
        if self.plan_inputs.is_some()
            && self.plan_inputs.as_deref() == plan_inputs
            && self.outputs_intact()
            && remotes_intact(&self.remotes)
        {
            return Verdict::XenOnly;
        }
        Verdict::Run
    }

    /// True when every output is still as this record left it.
    pub fn outputs_intact(&self) -> bool {
        self.outputs
            .iter()
            .all(|(p, size, mtime)| stamp(p) == Some((*size, *mtime)))
    }
}

/// Validators as one word: `KIND,FIELD,...`, each field hex or `-`.
pub fn encode_validators(v: &Validators) -> String {
    let f = |s: &Option<String>| match s {
        Some(s) => crate::tree::manifest::hex(s.as_bytes()),
        None => "-".to_string(),
    };
    match v {
        Validators::Http {
            etag,
            last_modified,
        } => format!("http,{},{}", f(etag), f(last_modified)),
        Validators::Ftp { mdtm, size } => {
            format!("ftp,{},{}", f(mdtm), f(&size.map(|n| n.to_string())))
        }
        Validators::File {
            mtime,
            mtime_nsec,
            size,
        } => format!("file,{mtime},{mtime_nsec},{size}"),
    }
}

pub fn decode_validators(s: &str) -> Option<Validators> {
    let parts: Vec<&str> = s.split(',').collect();
    let f = |s: &str| -> Option<Option<String>> {
        if s == "-" {
            return Some(None);
        }
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Some(String::from_utf8(bytes).ok()?))
    };
    match parts.as_slice() {
        ["http", e, l] => Some(Validators::Http {
            etag: f(e)?,
            last_modified: f(l)?,
        }),
        ["ftp", m, n] => Some(Validators::Ftp {
            mdtm: f(m)?,
            size: match f(n)? {
                Some(n) => Some(n.parse().ok()?),
                None => None,
            },
        }),
        ["file", m, ns, n] => Some(Validators::File {
            mtime: m.parse().ok()?,
            mtime_nsec: ns.parse().ok()?,
            size: n.parse().ok()?,
        }),
        _ => None,
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
            remotes: vec![("ftp://h/x y".into(), "ab".into(), "ftp,-,-".into())],
            dated: Some(("e1".into(), -5)),
            plan_inputs: Some("p1".into()),
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

    #[test]
    fn validators_survive_their_encoding() {
        for v in [
            Validators::Http {
                etag: Some("\"a b,c\"".into()),
                last_modified: None,
            },
            Validators::Ftp {
                mdtm: Some("2026-01-02 03:04:05".into()),
                size: Some(42),
            },
            Validators::File {
                mtime: -1,
                mtime_nsec: 5,
                size: 0,
            },
        ] {
            assert_eq!(decode_validators(&encode_validators(&v)), Some(v));
        }
    }
}
