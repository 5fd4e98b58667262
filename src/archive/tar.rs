//! tar archives (ustar, GNU, PAX) as a tree source.
//!
//! The `tar` crate decodes header fields (octal and base-256 numbers, the
//! ustar name prefix, GNU sparse maps, PAX records) and nothing else of it
//! is used: the walk from header to header is done here, so that every
//! extension header is read with a bound (a GNU long name or a PAX header
//! claiming gigabytes is refused before it is read), PAX values that do
//! not parse are errors rather than silently ignored, and sparse members
//! keep their holes. Entries become [`Entry`] values under the same path
//! rules as cpio members ([`TreePath::from_member`]: no absolute names,
//! no `..`), and every sink writes them through the tree model, never
//! through host paths.
//!
//! Sparse members are read in all the encodings GNU tar writes: the old
//! GNU `S` type (`--format=gnu --sparse`) and the PAX formats 0.0, 0.1 and
//! 1.0 (`--format=posix --sparse`). Their holes reach the sink as holes
//! ([`SparseRead`]); extended attributes and ACLs in PAX records are
//! dropped (the tree model has none).

use crate::tree::{Entry, Kind, Meta, PathError, Sink, Source, SparseRead, TreePath};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};

const BLOCK: u64 = 512;
/// The longest GNU long name or long link name read.
const NAME_LIMIT: u64 = 64 * 1024;
/// The largest PAX extended header read.
const PAX_LIMIT: u64 = 1024 * 1024;
/// The most data segments of one sparse member.
const SPARSE_LIMIT: usize = 1 << 20;

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
    #[error("{archive}: offset {offset}: archive truncated ({what})")]
    Truncated {
        archive: String,
        offset: u64,
        what: &'static str,
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

/// The uncompressed stream and the offset read so far.
struct Stream<R> {
    inner: R,
    offset: u64,
    archive: String,
    /// The offset of the header being handled, for messages.
    at: u64,
}

impl<R: Read> Stream<R> {
    fn error(&self, message: impl Into<String>) -> io::Error {
        TarError::Format {
            archive: self.archive.clone(),
            offset: self.at,
            message: message.into(),
        }
        .into()
    }

    fn truncated(&self, what: &'static str) -> io::Error {
        TarError::Truncated {
            archive: self.archive.clone(),
            offset: self.offset,
            what,
        }
        .into()
    }

    /// Fills `buf` as far as the stream allows; returns the count.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.inner.read(buf.get_mut(done..).unwrap_or_default()) {
                Ok(0) => break,
                Ok(n) => {
                    done += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn exact(&mut self, buf: &mut [u8], what: &'static str) -> io::Result<()> {
        if self.fill(buf)? < buf.len() {
            return Err(self.truncated(what));
        }
        Ok(())
    }

    /// The next 512-byte block; `None` at the end of the stream.
    fn block(&mut self) -> io::Result<Option<[u8; 512]>> {
        let mut b = [0u8; 512];
        match self.fill(&mut b)? {
            0 => Ok(None),
            512 => Ok(Some(b)),
            _ => Err(self.truncated("inside a header")),
        }
    }

    fn skip(&mut self, mut n: u64, what: &'static str) -> io::Result<()> {
        let mut scratch = [0u8; 8192];
        while n > 0 {
            let k = usize::try_from(n.min(scratch.len() as u64)).unwrap_or(scratch.len());
            self.exact(scratch.get_mut(..k).unwrap_or_default(), what)?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Skips the padding after `size` bytes of member data.
    fn skip_padding(&mut self, size: u64) -> io::Result<()> {
        self.skip(
            (BLOCK - size % BLOCK) % BLOCK,
            "inside the padding of a member",
        )
    }

    /// The data of an extension header (long name, PAX records), refused
    /// when larger than `limit`.
    fn extension(&mut self, size: u64, limit: u64, what: &str) -> io::Result<Vec<u8>> {
        if size > limit {
            return Err(self.error(format!(
                "{what} of {size} bytes refused (at most {limit} are read)"
            )));
        }
        let mut v = vec![0u8; usize::try_from(size).unwrap_or(0)];
        self.exact(&mut v, "inside an extended header")?;
        self.skip_padding(size)?;
        Ok(v)
    }
}

/// The PAX records of one member that this reader uses.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<i64>,
    sparse: PaxSparse,
}

/// GNU tar's sparse records (`GNU.sparse.*`).
#[derive(Default)]
struct PaxSparse {
    any: bool,
    major: Option<u64>,
    name: Option<Vec<u8>>,
    realsize: Option<u64>,
    /// 0.0 and 0.1: the segments, from `map` or `offset`/`numbytes` pairs
    map: Vec<u64>,
}

/// The PAX `mtime` value: decimal seconds, maybe negative, maybe with a
/// fraction (dropped: the tree keeps whole seconds).
fn pax_seconds(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let whole = s.split('.').next()?;
    if whole == "-" || whole.is_empty() {
        return (s.len() > whole.len()).then_some(0);
    }
    whole.parse().ok()
}

fn decimal(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

impl Pax {
    fn parse(data: &[u8], err: &dyn Fn(String) -> io::Error) -> io::Result<Pax> {
        let mut pax = Pax::default();
        for rec in ::tar::PaxExtensions::new(data) {
            let rec = rec.map_err(|e| err(format!("bad PAX record: {e}")))?;
            let (key, value) = (rec.key_bytes(), rec.value_bytes());
            let key_text = String::from_utf8_lossy(key);
            let number = || {
                decimal(value).ok_or_else(|| {
                    err(format!(
                        "PAX record {key_text}={:?} is not a decimal number",
                        String::from_utf8_lossy(value)
                    ))
                })
            };
            match key {
                b"path" => pax.path = Some(value.to_vec()),
                b"linkpath" => pax.linkpath = Some(value.to_vec()),
                b"size" => pax.size = Some(number()?),
                b"uid" => pax.uid = Some(number()?),
                b"gid" => pax.gid = Some(number()?),
                b"mtime" => {
                    pax.mtime = Some(pax_seconds(value).ok_or_else(|| {
                        err(format!(
                            "PAX record mtime={:?} is not a time",
                            String::from_utf8_lossy(value)
                        ))
                    })?)
                }
                _ if key.starts_with(b"GNU.sparse.") => {
                    let s = &mut pax.sparse;
                    s.any = true;
                    match key.get(11..).unwrap_or_default() {
                        b"major" => s.major = Some(number()?),
                        b"name" => s.name = Some(value.to_vec()),
                        b"realsize" | b"size" => s.realsize = Some(number()?),
                        b"offset" | b"numbytes" => {
                            if s.map.len() >= 2 * SPARSE_LIMIT {
                                return Err(err("too many sparse segments".into()));
                            }
                            s.map.push(number()?);
                        }
                        b"map" => {
                            for n in value.split(|&c| c == b',') {
                                if s.map.len() >= 2 * SPARSE_LIMIT {
                                    return Err(err("too many sparse segments".into()));
                                }
                                s.map.push(decimal(n).ok_or_else(|| {
                                    err("PAX record GNU.sparse.map is not a list of numbers".into())
                                })?);
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        Ok(pax)
    }
}

/// Where a sparse member's data lies: `(offset, length)` segments in
/// order, the rest of its `size` bytes being holes.
struct SparseMap {
    segments: Vec<(u64, u64)>,
    size: u64,
}

impl SparseMap {
    /// Checks the segments against the file size and the stored bytes.
    fn check(&self, stored: u64) -> Result<(), String> {
        let mut end = 0u64;
        let mut total = 0u64;
        for &(off, len) in &self.segments {
            let stop = off
                .checked_add(len)
                .ok_or("a sparse segment ends past 2^64")?;
            if off < end || stop > self.size {
                return Err(format!(
                    "sparse segment {off}+{len} overlaps another or lies past the file size {}",
                    self.size
                ));
            }
            end = stop;
            total += len;
        }
        if total != stored {
            return Err(format!(
                "sparse map lists {total} bytes of data, the member stores {stored}"
            ));
        }
        Ok(())
    }
}

/// A member's content: exactly `remaining` bytes of the stream, an early
/// end being an error; holes of a sparse member read as zeros or are
/// stepped over with [`SparseRead::skip_hole`].
struct Content<'a, R> {
    stream: &'a mut Stream<R>,
    /// segments still to come (reversed: the next one last)
    segments: Vec<(u64, u64)>,
    pos: u64,
    size: u64,
}

impl<R: Read> Content<'_, R> {
    /// The data segment the position is in, or where the next one starts.
    fn here(&mut self) -> Result<u64, u64> {
        while let Some(&(off, len)) = self.segments.last() {
            if self.pos >= off + len {
                self.segments.pop();
                continue;
            }
            return if self.pos >= off {
                Ok(off + len - self.pos)
            } else {
                Err(off)
            };
        }
        Err(self.size)
    }
}

impl<R: Read> Read for Content<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let (n, data) = match self.here() {
            Ok(left) => (left, true),
            Err(next) => (next - self.pos, false),
        };
        let want = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let got = if data {
            let got = self.stream.fill(chunk)?;
            if got == 0 {
                return Err(self.stream.truncated("inside the data of a member"));
            }
            got
        } else {
            chunk.fill(0);
            want
        };
        self.pos += got as u64;
        Ok(got)
    }
}

impl<R: Read> SparseRead for Content<'_, R> {
    fn skip_hole(&mut self) -> io::Result<u64> {
        if self.pos >= self.size {
            return Ok(0);
        }
        match self.here() {
            Ok(_) => Ok(0),
            Err(next) => {
                let n = next - self.pos;
                self.pos = next;
                Ok(n)
            }
        }
    }
}

/// Reads the sparse map at the start of a PAX 1.0 sparse member's data:
/// decimal numbers one a line (the count, then offset and length pairs),
/// padded to a block. Returns the segments and the bytes it took.
fn read_map_1_0<R: Read>(s: &mut Stream<R>, stored: u64) -> io::Result<(Vec<u64>, u64)> {
    let mut used = 0u64;
    let mut line = Vec::new();
    let mut next = |s: &mut Stream<R>, used: &mut u64| -> io::Result<u64> {
        line.clear();
        loop {
            if *used >= stored {
                return Err(s.error("sparse map runs past the member's data"));
            }
            let mut c = [0u8; 1];
            s.exact(&mut c, "inside a sparse map")?;
            *used += 1;
            match c[0] {
                b'\n' => break,
                d if d.is_ascii_digit() && line.len() < 20 => line.push(d),
                _ => return Err(s.error("sparse map is not decimal numbers one a line")),
            }
        }
        decimal(&line).ok_or_else(|| s.error("sparse map is not decimal numbers one a line"))
    };
    let count = next(s, &mut used)?;
    if count > SPARSE_LIMIT as u64 {
        return Err(s.error(format!("sparse map of {count} segments refused")));
    }
    let mut map = Vec::new();
    for _ in 0..count * 2 {
        map.push(next(s, &mut used)?);
    }
    let pad = (BLOCK - used % BLOCK) % BLOCK;
    if used + pad > stored {
        return Err(s.error("sparse map runs past the member's data"));
    }
    s.skip(pad, "inside a sparse map")?;
    Ok((map, used + pad))
}

/// The segments of an old GNU sparse member (`S`): four in the header,
/// more in extension blocks that follow it.
fn gnu_sparse_map<R: Read>(s: &mut Stream<R>, h: &::tar::Header) -> io::Result<SparseMap> {
    let bad = |s: &Stream<R>, e: io::Error| s.error(format!("bad GNU sparse header: {e}"));
    let gnu = h
        .as_gnu()
        .ok_or_else(|| s.error("sparse member without a GNU header"))?;
    let size = gnu.real_size().map_err(|e| bad(s, e))?;
    let mut segments = Vec::new();
    let mut add = |s: &Stream<R>, e: &::tar::GnuSparseHeader| -> io::Result<()> {
        if !e.is_empty() {
            if segments.len() >= SPARSE_LIMIT {
                return Err(s.error("too many sparse segments"));
            }
            let off = e.offset().map_err(|e| bad(s, e))?;
            let len = e.length().map_err(|e| bad(s, e))?;
            segments.push((off, len));
        }
        Ok(())
    };
    for e in &gnu.sparse {
        add(s, e)?;
    }
    let mut extended = gnu.is_extended();
    while extended {
        let mut ext = ::tar::GnuExtSparseHeader::new();
        s.exact(ext.as_mut_bytes(), "inside a sparse header")?;
        for e in ext.sparse() {
            add(s, e)?;
        }
        extended = ext.is_extended();
    }
    Ok(SparseMap { segments, size })
}

fn pairs(map: &[u64], size: u64) -> Result<SparseMap, String> {
    if !map.len().is_multiple_of(2) {
        return Err("sparse map has an odd count of numbers".into());
    }
    Ok(SparseMap {
        segments: map.chunks(2).map(|c| (c[0], c[1])).collect(),
        size,
    })
}

/// Extension headers seen before the member they describe.
#[derive(Default)]
struct Pending {
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

fn strip_nuls(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

impl<R: Read> Source for TarReader<R> {
    fn emit(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let archive = self.archive.clone();
        let Some(inner) = self.input.take() else {
            return Err(crate::cpio::Error::AlreadyRead { archive }.into());
        };
        let mut s = Stream {
            inner,
            offset: 0,
            archive: archive.clone(),
            at: 0,
        };
        // regular files emitted so far, the targets of hard links
        let mut files: HashSet<TreePath> = HashSet::new();
        // symlinks, devices and fifos: a hard link to one (GNU tar writes
        // them) becomes a copy, as host directories are read
        let mut others: HashMap<TreePath, Kind> = HashMap::new();
        let mut pending = Pending::default();
        loop {
            s.at = s.offset;
            let block = match s.block()? {
                Some(b) if !crate::bytes::all_zero(&b) => b,
                // the end-of-archive blocks, or the end of the stream
                _ => {
                    if pending.name.is_some() || pending.link.is_some() || pending.pax.is_some() {
                        return Err(s.error("extended header with no member after it"));
                    }
                    return Ok(());
                }
            };
            if !header_checksum_ok(&block) {
                return Err(s.error("header checksum mismatch (corrupt or misaligned archive)"));
            }
            let mut h = ::tar::Header::new_old();
            h.as_mut_bytes().copy_from_slice(&block);
            let field = |what: &str, e: io::Error| s.error(format!("bad {what} field: {e}"));
            let header_size = h.entry_size().map_err(|e| field("size", e))?;
            let ty = h.entry_type().as_byte();
            let slot = match ty {
                b'L' => Some((&mut pending.name, NAME_LIMIT, "GNU long name")),
                b'K' => Some((&mut pending.link, NAME_LIMIT, "GNU long link name")),
                b'x' => Some((&mut pending.pax, PAX_LIMIT, "PAX header")),
                _ => None,
            };
            if let Some((slot, limit, what)) = slot {
                if slot.is_some() {
                    return Err(s.error(format!("two {what}s for one member")));
                }
                let v = s.extension(header_size, limit, what)?;
                // names end at their first NUL; PAX records are counted
                *slot = Some(if ty == b'x' { v } else { strip_nuls(v) });
                continue;
            }
            match ty {
                // global records (a comment, a default mtime) and volume
                // labels describe no member
                b'g' | b'V' => {
                    s.skip(header_size, "inside a global header")?;
                    s.skip_padding(header_size)?;
                    continue;
                }
                _ => {}
            }
            let Pending { name, link, pax } = std::mem::take(&mut pending);
            let pax = Pax::parse(pax.as_deref().unwrap_or_default(), &|m| s.error(m))?;
            let field = |what: &str, e: io::Error| s.error(format!("bad {what} field: {e}"));
            let sparse_pax = pax.sparse.any && matches!(ty, b'0' | 0 | b'7');
            let raw_name = match (&pax.sparse.name, &pax.path, name) {
                (Some(n), _, _) if sparse_pax => n.clone(),
                (_, Some(p), _) => p.clone(),
                (_, _, Some(n)) => n,
                _ => h.path_bytes().into_owned(),
            };
            let raw_link = pax
                .linkpath
                .clone()
                .or(link)
                .or_else(|| h.link_name_bytes().map(|l| l.into_owned()))
                .unwrap_or_default();
            let path = TreePath::from_member(&raw_name).map_err(|source| TarError::BadName {
                archive: archive.clone(),
                offset: s.at,
                name: String::from_utf8_lossy(&raw_name).into_owned(),
                source,
            })?;
            let size = pax.size.unwrap_or(header_size);
            let id = |v: u64, what: &str| {
                u32::try_from(v).map_err(|_| s.error(format!("{what} {v} exceeds 32 bits")))
            };
            let meta = Meta {
                perm: h.mode().map_err(|e| field("mode", e))? & 0o7777,
                uid: id(
                    pax.uid
                        .map_or_else(|| h.uid().map_err(|e| field("uid", e)), Ok)?,
                    "uid",
                )?,
                gid: id(
                    pax.gid
                        .map_or_else(|| h.gid().map_err(|e| field("gid", e)), Ok)?,
                    "gid",
                )?,
                mtime: match pax.mtime {
                    Some(t) => t,
                    None => {
                        i64::try_from(h.mtime().map_err(|e| field("mtime", e))?).unwrap_or(i64::MAX)
                    }
                },
            };
            let dev = |r: io::Result<Option<u32>>| -> io::Result<u32> {
                r.map(Option::unwrap_or_default)
                    .map_err(|e| field("device number", e))
            };
            // the data a member stores, and how much of it is read as the
            // file's content (the rest, for other kinds, is skipped)
            let mut sparse: Option<SparseMap> = None;
            let mut stored = size;
            let kind = match ty {
                // old tars mark a directory by a trailing slash only
                b'0' | 0 | b'7' if raw_name.ends_with(b"/") && size == 0 => Kind::Dir,
                b'0' | 0 | b'7' if sparse_pax => {
                    let realsize = pax
                        .sparse
                        .realsize
                        .ok_or_else(|| s.error("PAX sparse member without its real size"))?;
                    let map = if pax.sparse.major == Some(1) {
                        let (map, used) = read_map_1_0(&mut s, size)?;
                        stored = size - used;
                        map
                    } else {
                        pax.sparse.map.clone()
                    };
                    sparse = Some(pairs(&map, realsize).map_err(|m| s.error(m))?);
                    Kind::File { size: realsize }
                }
                b'0' | 0 | b'7' => Kind::File { size },
                b'S' => {
                    let map = gnu_sparse_map(&mut s, &h)?;
                    let k = Kind::File { size: map.size };
                    sparse = Some(map);
                    k
                }
                b'5' => Kind::Dir,
                b'2' => Kind::Symlink {
                    target: raw_link.clone(),
                },
                b'1' => {
                    let bad = |why: String| TarError::BadLink {
                        archive: archive.clone(),
                        offset: s.at,
                        path: path.clone(),
                        target: String::from_utf8_lossy(&raw_link).into_owned(),
                        why,
                    };
                    let target =
                        TreePath::from_member(&raw_link).map_err(|e| bad(e.to_string()))?;
                    if let Some(kind) = others.get(&target) {
                        kind.clone()
                    } else if files.contains(&target) {
                        Kind::HardLink { target }
                    } else {
                        return Err(bad("no member of that name precedes it".into()).into());
                    }
                }
                b'3' => Kind::CharDev {
                    major: dev(h.device_major())?,
                    minor: dev(h.device_minor())?,
                },
                b'4' => Kind::BlockDev {
                    major: dev(h.device_major())?,
                    minor: dev(h.device_minor())?,
                },
                b'6' => Kind::Fifo,
                other => {
                    return Err(s.error(format!(
                        "member {path}: unsupported tar entry type {:?}",
                        char::from(other)
                    )))
                }
            };
            if path.is_root() && kind != Kind::Dir {
                return Err(s.error("the root member `.` is not a directory"));
            }
            let entry = Entry {
                path,
                kind,
                meta,
                xattrs: Default::default(),
            };
            if let Kind::File { size: file_size } = entry.kind {
                let map = sparse.unwrap_or(SparseMap {
                    segments: vec![(0, stored)],
                    size: file_size,
                });
                map.check(stored).map_err(|m| s.error(m))?;
                let mut segments = map.segments;
                segments.reverse();
                let mut data = Content {
                    stream: &mut s,
                    segments,
                    pos: 0,
                    size: file_size,
                };
                sink.put_sparse(&entry, &mut data)?;
                // what the sink left: holes stepped over, data read
                let mut scratch = vec![0u8; 64 * 1024];
                while data.skip_hole()? > 0 || data.read(&mut scratch)? > 0 {}
                files.insert(entry.path.clone());
            } else {
                sink.put(&entry, &mut io::empty())?;
                s.skip(stored, "inside the data of a member")?;
                match entry.kind {
                    Kind::Dir => {}
                    // a later link may name this one
                    Kind::HardLink { .. } => {
                        files.insert(entry.path);
                    }
                    kind => {
                        others.insert(entry.path, kind);
                    }
                }
            }
            s.skip_padding(size)?;
        }
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
        assert_eq!(pax_seconds(b"-0.5"), Some(0));
        assert_eq!(pax_seconds(b"x"), None);
    }

    fn stream(data: &[u8]) -> Stream<io::Cursor<Vec<u8>>> {
        Stream {
            inner: io::Cursor::new(data.to_vec()),
            offset: 0,
            archive: "t".into(),
            at: 0,
        }
    }

    /// `abc` at 2 and `def` at 10 in a file of 16 bytes.
    fn content<R: Read>(s: &mut Stream<R>) -> Content<'_, R> {
        Content {
            stream: s,
            segments: vec![(10, 3), (2, 3)],
            pos: 0,
            size: 16,
        }
    }

    #[test]
    fn sparse_content_reads_holes_as_zeros_or_skips_them() {
        let mut s = stream(b"abcdef");
        let mut all = Vec::new();
        content(&mut s).read_to_end(&mut all).unwrap();
        assert_eq!(all, b"\0\0abc\0\0\0\0\0def\0\0\0");
        let mut s = stream(b"abcdef");
        let mut c = content(&mut s);
        assert_eq!(c.skip_hole().unwrap(), 2);
        assert_eq!(c.skip_hole().unwrap(), 0);
        let mut b = [0u8; 8];
        assert_eq!(c.read(&mut b).unwrap(), 3);
        assert_eq!(c.skip_hole().unwrap(), 5);
        assert_eq!(c.read(&mut b).unwrap(), 3);
        assert_eq!(c.skip_hole().unwrap(), 3);
        assert_eq!(c.read(&mut b).unwrap(), 0);
    }

    #[test]
    fn hard_links_to_links_and_to_symlinks() {
        let mut b = ::tar::Builder::new(Vec::new());
        let mut add = |name: &str, ty: ::tar::EntryType, link: &str, data: &[u8]| {
            let mut h = ::tar::Header::new_gnu();
            h.set_entry_type(ty);
            h.set_path(name).unwrap();
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data).unwrap();
        };
        use ::tar::EntryType as T;
        add("a", T::Regular, "", b"data");
        add("b", T::Link, "a", b"");
        add("c", T::Link, "b", b"");
        add("s", T::Symlink, "a", b"");
        add("t", T::Link, "s", b"");
        let raw = b.into_inner().unwrap();
        let mut r = TarReader::new(io::Cursor::new(raw), "t".into());
        let m = crate::tree::manifest::manifest(&mut r).unwrap();
        let p = |s: &str| TreePath::from_member(s.as_bytes()).unwrap();
        for name in ["b", "c"] {
            assert_eq!(m[&p(name)].link_group, Some(p("a")), "{name}");
            assert_eq!(m[&p(name)].sha256, m[&p("a")].sha256);
        }
        assert_eq!(m[&p("t")].symlink.as_deref(), Some(&b"a"[..]));
        assert_eq!(m[&p("t")].link_group, None);
    }

    #[test]
    fn sparse_maps_are_checked() {
        let m = |segments: Vec<(u64, u64)>, size| SparseMap { segments, size };
        assert!(m(vec![(0, 2), (4, 2)], 8).check(4).is_ok());
        assert!(m(vec![(4, 2), (0, 2)], 8).check(4).is_err());
        assert!(m(vec![(0, 2), (7, 2)], 8).check(4).is_err());
        assert!(m(vec![(0, 2)], 8).check(3).is_err());
        assert!(m(vec![(u64::MAX, 2)], 8).check(2).is_err());
    }
}
