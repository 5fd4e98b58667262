//! tar archives (ustar, GNU, PAX) as a tree source.
//!
//! The `tar` crate parses the headers — GNU long names and link names,
//! PAX records, old GNU sparse maps — and nothing else of it is used:
//! entries become [`Entry`] values under the same path rules as cpio
//! members ([`TreePath::from_member`]: no absolute names, no `..`), and
//! every sink writes them through the tree model, never through host
//! paths.

use crate::tree::{Entry, Kind, Meta, PathError, Sink, Source, TreePath};
use std::collections::HashSet;
use std::io::{self, Read};

/// What can go wrong reading a tar archive; each names the archive and
/// the byte offset of the member's header in the uncompressed stream.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("{archive}: offset {offset}: {message}")]
    Format {
        archive: String,
        offset: u64,
        message: String,
    },
    #[error("{archive}: offset {offset}: member name {name:?} refused: {source}")]
    BadName {
        archive: String,
        offset: u64,
        name: String,
        source: PathError,
    },
    #[error("{archive}: offset {offset}: hard link {path} -> {target:?} refused: {why}")]
    BadLink {
        archive: String,
        offset: u64,
        path: TreePath,
        target: String,
        why: String,
    },
    #[error("{archive}: offset {offset}: archive truncated inside the data of {path}")]
    Truncated {
        archive: String,
        offset: u64,
        path: TreePath,
    },
}

impl From<TarError> for io::Error {
    fn from(e: TarError) -> io::Error {
        let kind = match e {
            TarError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// True when the 512-byte block `b` carries a valid tar header checksum
/// (the unsigned sum that POSIX specifies, or the signed one that some
/// old tars wrote) and is not all zeros.
pub(super) fn header_checksum_ok(b: &[u8]) -> bool {
    let Some(block) = b.get(..512) else {
        return false;
    };
    let Some(field) = block.get(148..156) else {
        return false;
    };
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&c| c == b' ')
        .take_while(|c| (b'0'..=b'7').contains(c))
        .collect();
    if text.is_empty() {
        return false;
    }
    let Ok(stored) = u32::from_str_radix(std::str::from_utf8(&text).unwrap_or("x"), 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u32, 0i32);
    for (i, &c) in block.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += u32::from(c);
        signed += i32::from(c as i8);
    }
    stored == unsigned || i64::from(stored) == i64::from(signed)
}

/// A [`Source`] over an uncompressed tar stream (the caller decompresses).
pub struct TarReader<R> {
    input: Option<R>,
    archive: String,
}

impl<R: Read> TarReader<R> {
    pub fn new(input: R, archive: String) -> Self {
        TarReader {
            input: Some(input),
            archive,
        }
    }
}

/// A member's data: exactly `remaining` bytes, an early end being an
/// error (the `tar` crate would end the member quietly).
struct Exact<'a, R: Read> {
    inner: &'a mut R,
    remaining: u64,
    err: &'a dyn Fn() -> io::Error,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        if n == 0 {
            return Err((self.err)());
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The PAX `mtime` value: decimal seconds, maybe negative, maybe with a
/// fraction (dropped: the tree keeps whole seconds).
fn pax_seconds(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let whole = s.split('.').next()?;
    if whole == "-" {
        return Some(0);
    }
    whole.parse().ok()
}

impl<R: Read> Source for TarReader<R> {
    fn emit(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let archive = self.archive.clone();
        let Some(input) = self.input.take() else {
            return Err(crate::cpio::Error::AlreadyRead { archive }.into());
        };
        let mut ar = ::tar::Archive::new(input);
        let mut offset = 0u64;
        let format = |offset: u64, message: String| TarError::Format {
            archive: archive.clone(),
            offset,
            message,
        };
        let entries = ar.entries().map_err(|e| format(0, e.to_string()))?;
        // regular files emitted so far: the only valid hard-link targets
        let mut files: HashSet<TreePath> = HashSet::new();
        for e in entries {
            let mut e = e.map_err(|e| format(offset, e.to_string()))?;
            offset = e.raw_header_position();
            let h = e.header().clone();
            let ty = h.entry_type();
            if ty.is_pax_global_extensions() {
                continue;
            }
            let num = |r: io::Result<u64>, what: &str| -> io::Result<u64> {
                r.map_err(|err| format(offset, format!("bad {what} field: {err}")).into())
            };
            let mut mtime = i64::try_from(num(h.mtime(), "mtime")?).unwrap_or(i64::MAX);
            if let Some(pax) = e
                .pax_extensions()
                .map_err(|err| format(offset, err.to_string()))?
            {
                for rec in pax {
                    let rec =
                        rec.map_err(|err| format(offset, format!("bad PAX record: {err}")))?;
                    let key = rec.key_bytes();
                    if key.starts_with(b"GNU.sparse.") {
                        return Err(format(
                            offset,
                            "PAX sparse member (GNU.sparse.*) not supported; repack without --sparse"
                                .into(),
                        )
                        .into());
                    }
                    if key == b"mtime" {
                        mtime = pax_seconds(rec.value_bytes())
                            .ok_or_else(|| format(offset, "bad PAX mtime record".to_string()))?;
                    }
                }
            }
            let name = e.path_bytes().into_owned();
            let path = TreePath::from_member(&name).map_err(|source| TarError::BadName {
                archive: archive.clone(),
                offset,
                name: String::from_utf8_lossy(&name).into_owned(),
                source,
            })?;
            let id = |r: io::Result<u64>, what: &str| -> io::Result<u32> {
                let v = num(r, what)?;
                u32::try_from(v)
                    .map_err(|_| format(offset, format!("{what} {v} exceeds 32 bits")).into())
            };
            let meta = Meta {
                perm: id(h.mode().map(u64::from), "mode")? & 0o7777,
                uid: id(h.uid(), "uid")?,
                gid: id(h.gid(), "gid")?,
                mtime,
            };
            let link = || {
                e.link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default()
            };
            let dev = |r: io::Result<Option<u32>>| -> io::Result<u32> {
                r.map(Option::unwrap_or_default)
                    .map_err(|err| format(offset, format!("bad device number: {err}")).into())
            };
            use ::tar::EntryType as T;
            let kind = match ty {
                T::Regular | T::Continuous | T::GNUSparse => Kind::File { size: e.size() },
                T::Directory => Kind::Dir,
                T::Symlink => Kind::Symlink { target: link() },
                T::Link => {
                    let raw = link();
                    let bad = |why: String| TarError::BadLink {
                        archive: archive.clone(),
                        offset,
                        path: path.clone(),
                        target: String::from_utf8_lossy(&raw).into_owned(),
                        why,
                    };
                    let target = TreePath::from_member(&raw).map_err(|e| bad(e.to_string()))?;
                    if !files.contains(&target) {
                        return Err(bad("no regular file of that name precedes it".into()).into());
                    }
                    Kind::HardLink { target }
                }
                T::Char => Kind::CharDev {
                    major: dev(h.device_major())?,
                    minor: dev(h.device_minor())?,
                },
                T::Block => Kind::BlockDev {
                    major: dev(h.device_major())?,
                    minor: dev(h.device_minor())?,
                },
                T::Fifo => Kind::Fifo,
                other => {
                    return Err(format(
                        offset,
                        format!(
                            "member {path}: unsupported tar entry type {:?}",
                            char::from(other.as_byte())
                        ),
                    )
                    .into())
                }
            };
            if path.is_root() && kind != Kind::Dir {
                return Err(format(offset, "the root member `.` is not a directory".into()).into());
            }
            let entry = Entry { path, kind, meta };
            match entry.kind {
                Kind::File { size } => {
                    let truncated = || -> io::Error {
                        TarError::Truncated {
                            archive: archive.clone(),
                            offset,
                            path: entry.path.clone(),
                        }
                        .into()
                    };
                    let mut data = Exact {
                        inner: &mut e,
                        remaining: size,
                        err: &truncated,
                    };
                    sink.put(&entry, &mut data)?;
                    io::copy(&mut data, &mut io::sink())?;
                    files.insert(entry.path);
                }
                _ => sink.put(&entry, &mut io::empty())?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_header() {
        let mut h = ::tar::Header::new_gnu();
        h.set_path("a").unwrap();
        h.set_size(0);
        h.set_cksum();
        assert!(header_checksum_ok(h.as_bytes()));
        let mut bad = h.as_bytes().to_vec();
        bad[0] ^= 1;
        assert!(!header_checksum_ok(&bad));
        assert!(!header_checksum_ok(&[0u8; 512]));
        assert_eq!(pax_seconds(b"1700000000.5"), Some(1700000000));
        assert_eq!(pax_seconds(b"-12"), Some(-12));
    }
}
