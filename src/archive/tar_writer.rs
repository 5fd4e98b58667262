//! Writing tar archives (POSIX pax, ustar headers) as a tree sink.
//!
//! Every member has a ustar header; what a ustar field cannot hold goes
//! into a pax extended header (`x`) just before it, as GNU tar's
//! `--format=posix` writes it: names and link names longer than 100 bytes
//! (`path`, `linkpath`), owners above 2,097,151 (`uid`, `gid`), sizes of
//! 8 GiB and more (`size`), mtimes before 1970 or after 6429 (`mtime`).
//! Device numbers too large for seven octal digits are written in GNU
//! tar's base-256 form (Linux's own never are).
//!
//! The bytes depend only on the entries: owner and group names are empty
//! (GNU tar then takes the numbers), the extended headers are named
//! `PaxHeaders/NAME` with mode 0644, owner 0:0 and the member's mtime, no
//! access or change times are written, and the archive ends
//! with two zero blocks padded to a 10 KiB record as GNU tar pads it.
//!
//! Hard links are link members (`1`) naming the first path of the file.
//! Sparse files are written dense: the holes' zeros are data in the
//! archive (they compress to almost nothing), and GNU tar extracts them as
//! written, without holes. Sockets cannot be archived in tar and are left
//! out, as GNU tar leaves them out.
//!
//! Nothing here knows about containers; the output is any [`Write`].

use crate::tree::{copy_content, CopyError, Entry, Kind, Sink, SparseRead, TreePath};
use std::io::{self, Read, Write};

const BLOCK: usize = 512;
/// GNU tar's default record: 20 blocks.
const RECORD: u64 = 20 * BLOCK as u64;
/// The largest value of an octal field of `n` bytes (`n - 1` digits).
const fn octal_max(n: usize) -> u64 {
    (1u64 << (3 * (n - 1))) - 1
}

/// What can go wrong writing a tar archive.
#[derive(Debug, thiserror::Error)]
pub enum TarWriteError {
    #[error("{archive}: {path}: the source gave {got} bytes of content, {expected} announced")]
    ShortData {
        archive: String,
        path: TreePath,
        expected: u64,
        got: u64,
    },
    #[error("{archive}: reading the content of {path} failed: {source}")]
    Read {
        archive: String,
        path: TreePath,
        source: io::Error,
    },
    #[error("{archive}: writing failed at offset {offset}: {source}")]
    Write {
        archive: String,
        offset: u64,
        source: io::Error,
    },
}

impl From<TarWriteError> for io::Error {
    fn from(e: TarWriteError) -> io::Error {
        let kind = match &e {
            TarWriteError::Read { source, .. } | TarWriteError::Write { source, .. } => {
                source.kind()
            }
            TarWriteError::ShortData { .. } => io::ErrorKind::UnexpectedEof,
        };
        io::Error::new(kind, e)
    }
}

/// A [`Sink`] that writes a tar archive in the order entries arrive. Call
/// [`TarWriter::finish`] to write the end of the archive.
pub struct TarWriter<W: Write> {
    out: W,
    archive: String,
    offset: u64,
    buf: Vec<u8>,
}

/// Appends the pax record `key=value` to `out`: its length in decimal
/// counts the whole record, the length's own digits included.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Writes `v` into `field` as zero-padded octal digits and a NUL; false
/// when it does not fit.
fn put_octal(field: &mut [u8], v: u64) -> bool {
    let n = field.len();
    if v > octal_max(n) {
        return false;
    }
    let text = format!("{v:0width$o}", width = n - 1);
    field[..n - 1].copy_from_slice(text.as_bytes());
    field[n - 1] = 0;
    true
}

/// Writes `v` in GNU tar's base-256 form: the high bit of the first byte
/// set, then the number big-endian.
fn put_base256(field: &mut [u8], v: u64) {
    field.fill(0);
    let bytes = v.to_be_bytes();
    let n = field.len();
    field[n - 8..].copy_from_slice(&bytes);
    field[0] |= 0x80;
}

/// A ustar header block with the fields every member shares.
struct Header([u8; BLOCK]);

impl Header {
    fn new(name: &[u8], typeflag: u8, mode: u32) -> Header {
        let mut b = [0u8; BLOCK];
        let n = name.len().min(100);
        b[..n].copy_from_slice(&name[..n]);
        put_octal(&mut b[100..108], u64::from(mode & 0o7777));
        b[156] = typeflag;
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        Header(b)
    }

    fn finish(mut self) -> [u8; BLOCK] {
        self.0[148..156].fill(b' ');
        let sum: u32 = self.0.iter().map(|&c| u32::from(c)).sum();
        let text = format!("{sum:06o}\0 ");
        self.0[148..156].copy_from_slice(text.as_bytes());
        self.0
    }
}

impl<W: Write> TarWriter<W> {
    /// `archive` names the output in error messages.
    pub fn new(out: W, archive: impl Into<String>) -> TarWriter<W> {
        TarWriter {
            out,
            archive: archive.into(),
            offset: 0,
            buf: vec![0u8; 256 * 1024],
        }
    }

    /// Bytes written so far (uncompressed).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), TarWriteError> {
        self.out
            .write_all(bytes)
            .map_err(|source| TarWriteError::Write {
                archive: self.archive.clone(),
                offset: self.offset,
                source,
            })?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Zeros up to the next block boundary.
    fn pad(&mut self) -> Result<(), TarWriteError> {
        let pad = (BLOCK as u64 - self.offset % BLOCK as u64) % BLOCK as u64;
        self.write(&[0u8; BLOCK][..pad as usize])
    }

    fn entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<(), TarWriteError> {
        let (typeflag, size, link): (u8, u64, Option<&[u8]>) = match &entry.kind {
            Kind::File { size } => (b'0', *size, None),
            Kind::HardLink { target } => (b'1', 0, Some(target.as_bytes())),
            Kind::Symlink { target } => (b'2', 0, Some(target.as_slice())),
            Kind::CharDev { .. } => (b'3', 0, None),
            Kind::BlockDev { .. } => (b'4', 0, None),
            Kind::Dir => (b'5', 0, None),
            Kind::Fifo => (b'6', 0, None),
            Kind::Socket => return Ok(()),
        };
        let mut name = if entry.path.is_root() {
            b".".to_vec()
        } else {
            entry.path.as_bytes().to_vec()
        };
        if typeflag == b'5' {
            name.push(b'/');
        }
        let mut pax = Vec::new();
        let mut h = Header::new(&name, typeflag, entry.meta.perm);
        if name.len() > 100 {
            pax_record(&mut pax, "path", &name);
        }
        if let Some(link) = link {
            if link.len() > 100 {
                pax_record(&mut pax, "linkpath", link);
            } else {
                h.0[157..157 + link.len()].copy_from_slice(link);
            }
        }
        for (field, key, v) in [
            (108..116, "uid", entry.meta.uid),
            (116..124, "gid", entry.meta.gid),
        ] {
            if !put_octal(&mut h.0[field.clone()], u64::from(v)) {
                put_octal(&mut h.0[field], 0);
                pax_record(&mut pax, key, v.to_string().as_bytes());
            }
        }
        if !put_octal(&mut h.0[124..136], size) {
            put_octal(&mut h.0[124..136], 0);
            pax_record(&mut pax, "size", size.to_string().as_bytes());
        }
        let mtime = entry.meta.mtime;
        match u64::try_from(mtime) {
            Ok(m) if put_octal(&mut h.0[136..148], m) => {}
            _ => {
                put_octal(&mut h.0[136..148], 0);
                pax_record(&mut pax, "mtime", mtime.to_string().as_bytes());
            }
        }
        if let Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } = entry.kind {
            for (field, v) in [(329..337, major), (337..345, minor)] {
                if !put_octal(&mut h.0[field.clone()], u64::from(v)) {
                    put_base256(&mut h.0[field], u64::from(v));
                }
            }
        } else {
            put_octal(&mut h.0[329..337], 0);
            put_octal(&mut h.0[337..345], 0);
        }
        if typeflag != b'1' {
            // GNU tar's `--xattrs` records; a hard link shares its target's
            for (key, value) in entry.xattrs.iter() {
                let key = format!("SCHILY.xattr.{}", String::from_utf8_lossy(key));
                pax_record(&mut pax, &key, value);
            }
        }
        if !pax.is_empty() {
            self.extended(&entry.path, entry.meta.mtime, &pax)?;
        }
        self.write(&h.finish())?;
        if typeflag == b'0' {
            self.copy_data(&entry.path, size, data)?;
        }
        Ok(())
    }

    /// The pax extended header `records` for the member at `path`.
    fn extended(
        &mut self,
        path: &TreePath,
        mtime: i64,
        records: &[u8],
    ) -> Result<(), TarWriteError> {
        let mut name = b"PaxHeaders/".to_vec();
        name.extend_from_slice(path.file_name());
        name.truncate(100);
        let mut h = Header::new(&name, b'x', 0o644);
        put_octal(&mut h.0[108..116], 0);
        put_octal(&mut h.0[116..124], 0);
        put_octal(&mut h.0[124..136], records.len() as u64);
        put_octal(
            &mut h.0[136..148],
            u64::try_from(mtime).unwrap_or(0).min(octal_max(12)),
        );
        put_octal(&mut h.0[329..337], 0);
        put_octal(&mut h.0[337..345], 0);
        self.write(&h.finish())?;
        self.write(records)?;
        self.pad()
    }

    fn copy_data(
        &mut self,
        path: &TreePath,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), TarWriteError> {
        let mut buf = std::mem::take(&mut self.buf);
        let copied = copy_content(data, size, &mut buf, |chunk| self.write(chunk));
        self.buf = buf;
        match copied {
            Ok(()) => self.pad(),
            Err(CopyError::Write(e)) => Err(e),
            Err(CopyError::Read { source, .. }) => Err(TarWriteError::Read {
                archive: self.archive.clone(),
                path: path.clone(),
                source,
            }),
            Err(CopyError::Short { done }) => Err(TarWriteError::ShortData {
                archive: self.archive.clone(),
                path: path.clone(),
                expected: size,
                got: done,
            }),
        }
    }

    /// Writes the two zero blocks that end the archive, pads it to a
    /// whole record, flushes, and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.write(&[0u8; 2 * BLOCK])?;
        let pad = (RECORD - self.offset % RECORD) % RECORD;
        self.write(&vec![0u8; pad as usize])?;
        let offset = self.offset;
        self.out.flush().map_err(|source| TarWriteError::Write {
            archive: self.archive.clone(),
            offset,
            source,
        })?;
        Ok(self.out)
    }
}

impl<W: Write> Sink for TarWriter<W> {
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> io::Result<()> {
        Ok(self.entry(entry, data)?)
    }

    fn put_sparse(&mut self, entry: &Entry, data: &mut dyn SparseRead) -> io::Result<()> {
        // written dense: the holes are read as zeros
        Ok(self.entry(entry, data)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Meta, Source};

    #[test]
    fn pax_record_lengths_count_themselves() {
        for value_len in [0, 1, 5, 90, 91, 92, 93, 994, 995, 996, 997, 10_000] {
            let mut out = Vec::new();
            pax_record(&mut out, "path", &vec![b'a'; value_len]);
            let sp = out.iter().position(|&c| c == b' ').unwrap();
            let n: usize = std::str::from_utf8(&out[..sp]).unwrap().parse().unwrap();
            assert_eq!(n, out.len(), "value of {value_len} bytes");
        }
    }

    #[test]
    fn headers_are_ustar_with_valid_checksums_and_read_back() {
        let e = |path: &str, kind: Kind, uid: u32, mtime: i64| {
            Entry::new(
                TreePath::from_member(path.as_bytes()).unwrap(),
                kind,
                Meta {
                    perm: 0o644,
                    uid,
                    gid: 7,
                    mtime,
                },
            )
        };
        let long = "d/".repeat(80) + "f";
        let mut w = TarWriter::new(Vec::new(), "t.tar");
        w.put(&e("", Kind::Dir, 0, 5), &mut io::empty()).unwrap();
        let mut file = e(&long, Kind::File { size: 3 }, 3_000_000, -1);
        file.xattrs.set(b"user.k".to_vec(), b"v\0w".to_vec());
        w.put(&file, &mut &b"abc"[..]).unwrap();
        w.put(
            &e(
                "l",
                Kind::HardLink {
                    target: TreePath::from_member(long.as_bytes()).unwrap(),
                },
                0,
                5,
            ),
            &mut io::empty(),
        )
        .unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len() as u64 % RECORD, 0);
        let record = b"27 SCHILY.xattr.user.k=v\0w\n";
        assert!(out.windows(record.len()).any(|w| w == record));
        assert!(super::super::tar::header_checksum_ok(&out));
        let mut seen = Vec::new();
        let mut r = super::super::TarReader::new(&out[..], "t.tar".to_string());
        r.emit(&mut crate::tree::FnSink(|e: &Entry, d: &mut dyn Read| {
            let mut v = Vec::new();
            d.read_to_end(&mut v)?;
            seen.push((e.clone(), v));
            Ok(())
        }))
        .unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[1].0.path.as_bytes(), long.as_bytes());
        assert_eq!(seen[1].0.meta.uid, 3_000_000);
        assert_eq!(seen[1].0.meta.mtime, -1);
        assert_eq!(seen[1].1, b"abc");
        assert!(matches!(seen[2].0.kind, Kind::HardLink { .. }));
    }
}
