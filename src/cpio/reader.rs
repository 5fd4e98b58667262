//! Reading newc/crc archives, plain or gzip-compressed, as a tree source.

use super::header::{pad4, Header, HEADER_LEN, MAGIC_CRC, MAGIC_NEWC, NAME_MAX, TRAILER};
use super::Error;
use crate::tree::{
    Entry, Kind, Meta, Sink, Source, TreePath, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT,
    S_IFREG, S_IFSOCK,
};
use flate2::bufread::MultiGzDecoder;
use std::collections::HashMap;
use std::io::{self, BufReader, Read};

const BUF: usize = 64 * 1024;

/// A [`Source`] over a newc (`070701`) or crc (`070702`) archive.
///
/// Gzip input (magic `1f 8b`) is detected and decompressed on the fly,
/// including multi-member streams (pigz output, concatenated `.gz` files).
/// The archive is read once: a second [`Source::emit`] is an error.
pub struct Reader<R> {
    archive: String,
    input: Option<R>,
}

impl<R: Read> Reader<R> {
    /// `archive` names the input in error messages (a path or URI).
    pub fn new(input: R, archive: impl Into<String>) -> Reader<R> {
        Reader {
            archive: archive.into(),
            input: Some(input),
        }
    }
}

impl<R: Read> Source for Reader<R> {
    fn emit(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let archive = self.archive.clone();
        let input = self.input.take().ok_or_else(|| Error::AlreadyRead {
            archive: archive.clone(),
        })?;
        // A pipe may deliver the two magic bytes in separate reads.
        let mut head = [0u8; 2];
        let mut got = 0;
        let mut input = input;
        while got < head.len() {
            let rest = head.get_mut(got..).unwrap_or_default();
            match input.read(rest) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Read {
                        archive,
                        offset: got as u64,
                        source,
                    }
                    .into())
                }
            }
        }
        let prefix = head.get(..got).unwrap_or_default();
        let gzip = prefix == [0x1f, 0x8b];
        let input = BufReader::with_capacity(BUF, io::Cursor::new(prefix.to_vec()).chain(input));
        if gzip {
            let gz = BufReader::with_capacity(BUF, MultiGzDecoder::new(input));
            Parser::new(gz, archive, true).run(sink)
        } else {
            Parser::new(input, archive, false).run(sink)
        }
    }
}

/// The uncompressed stream with its offset, turning read failures into
/// typed errors that say where they happened.
struct Counting<S> {
    inner: S,
    offset: u64,
    archive: String,
}

impl<S: Read> Counting<S> {
    /// Reads until `buf` is full or the stream ends; returns the count.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut done = 0;
        while done < buf.len() {
            let rest = buf.get_mut(done..).unwrap_or_default();
            match self.inner.read(rest) {
                Ok(0) => break,
                Ok(n) => {
                    done += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Read {
                        archive: self.archive.clone(),
                        offset: self.offset,
                        source,
                    })
                }
            }
        }
        Ok(done)
    }

    fn truncated(&self, what: &'static str) -> Error {
        Error::Truncated {
            archive: self.archive.clone(),
            offset: self.offset,
            what,
        }
    }

    /// Reads exactly `buf.len()` bytes or fails as truncated.
    fn read_exact_or(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), Error> {
        if self.read_full(buf)? < buf.len() {
            return Err(self.truncated(what));
        }
        Ok(())
    }

    /// Discards `n` bytes or fails as truncated.
    fn skip(&mut self, mut n: u64, what: &'static str) -> Result<(), Error> {
        let mut scratch = [0u8; 4096];
        while n > 0 {
            let k = n.min(scratch.len() as u64) as usize;
            self.read_exact_or(&mut scratch[..k], what)?;
            n -= k as u64;
        }
        Ok(())
    }
}

/// The content of one file: exactly `remaining` bytes of the stream,
/// summed on the way for the crc format.
struct Data<'a, S> {
    stream: &'a mut Counting<S>,
    remaining: u64,
    // only the crc format needs the sum
    crc: bool,
    sum: u32,
}

impl<S: Read> Read for Data<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = self.stream.read_full(chunk)?;
        if n == 0 {
            return Err(self.stream.truncated("inside the data of a file").into());
        }
        if self.crc {
            for &b in chunk.get(..n).unwrap_or_default() {
                self.sum = self.sum.wrapping_add(u32::from(b));
            }
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Names of one hard-link group (same `c_devmajor`, `c_devminor`,
/// `c_ino`): the member that carried the data, and the empty members seen
/// before it.
#[derive(Default)]
struct Group {
    data: Option<TreePath>,
    pending: Vec<Entry>,
}

struct Parser<S> {
    stream: Counting<S>,
    gzip: bool,
    // Groups in order of first appearance, so that output is deterministic.
    groups: Vec<Group>,
    group_index: HashMap<(u32, u32, u32), usize>,
}

impl<S: Read> Parser<S> {
    fn new(inner: S, archive: String, gzip: bool) -> Parser<S> {
        Parser {
            stream: Counting {
                inner,
                offset: 0,
                archive,
            },
            gzip,
            groups: Vec::new(),
            group_index: HashMap::new(),
        }
    }

    fn archive(&self) -> String {
        self.stream.archive.clone()
    }

    fn run(mut self, sink: &mut dyn Sink) -> io::Result<()> {
        loop {
            let offset = self.stream.offset;
            let mut raw = [0u8; HEADER_LEN];
            let n = self.stream.read_full(&mut raw)?;
            if n == 0 {
                return Err(self.stream.truncated("no TRAILER!!! member").into());
            }
            if n < HEADER_LEN {
                return Err(self.stream.truncated("inside a member header").into());
            }
            let (magic, fields) = raw.split_at(6);
            let crc = if magic == MAGIC_NEWC {
                false
            } else if magic == MAGIC_CRC {
                true
            } else {
                return Err(Error::BadMagic {
                    archive: self.archive(),
                    offset,
                    found: String::from_utf8_lossy(magic).into_owned(),
                }
                .into());
            };
            let fields: &[u8; HEADER_LEN - 6] = fields
                .try_into()
                .map_err(|_| self.stream.truncated("inside a member header"))?;
            let h = Header::parse(fields).map_err(|e| Error::BadHex {
                archive: self.archive(),
                offset,
                field: e.field,
                text: e.text,
            })?;
            if h.c_namesize == 0 || h.c_namesize > NAME_MAX {
                return Err(Error::BadNameSize {
                    archive: self.archive(),
                    offset,
                    namesize: h.c_namesize,
                }
                .into());
            }
            let namesize = h.c_namesize as usize;
            let padded = namesize + pad4((HEADER_LEN + namesize) as u64) as usize;
            let mut name = vec![0u8; padded];
            self.stream
                .read_exact_or(&mut name, "inside a member name")?;
            name.truncate(namesize);
            if name.pop() != Some(0) {
                return Err(Error::NameNotTerminated {
                    archive: self.archive(),
                    offset,
                }
                .into());
            }
            if name == TRAILER {
                return self.finish(sink);
            }
            let path = TreePath::from_member(&name).map_err(|source| Error::BadName {
                archive: self.archive(),
                offset,
                name: String::from_utf8_lossy(&name).into_owned(),
                source,
            })?;
            self.member(sink, offset, h, path, crc)?;
        }
    }

    fn member(
        &mut self,
        sink: &mut dyn Sink,
        offset: u64,
        h: Header,
        path: TreePath,
        crc: bool,
    ) -> io::Result<()> {
        let size = u64::from(h.c_filesize);
        let meta = Meta {
            perm: h.c_mode & 0o7777,
            uid: h.c_uid,
            gid: h.c_gid,
            mtime: i64::from(h.c_mtime),
        };
        let kind = match h.c_mode & S_IFMT {
            S_IFREG => return self.regular(sink, offset, h, path, meta, crc),
            S_IFDIR => Kind::Dir,
            S_IFLNK => {
                if h.c_filesize > NAME_MAX {
                    return Err(Error::SymlinkTooLong {
                        archive: self.archive(),
                        offset,
                        path,
                        size: h.c_filesize,
                    }
                    .into());
                }
                let mut target = vec![0u8; h.c_filesize as usize];
                self.stream
                    .read_exact_or(&mut target, "inside a symlink target")?;
                Kind::Symlink { target }
            }
            S_IFCHR => Kind::CharDev {
                major: h.c_rdevmajor,
                minor: h.c_rdevminor,
            },
            S_IFBLK => Kind::BlockDev {
                major: h.c_rdevmajor,
                minor: h.c_rdevminor,
            },
            S_IFIFO => Kind::Fifo,
            S_IFSOCK => Kind::Socket,
            _ => {
                return Err(Error::BadMode {
                    archive: self.archive(),
                    offset,
                    path,
                    mode: h.c_mode,
                }
                .into())
            }
        };
        if path.is_root() && kind != Kind::Dir {
            return Err(Error::RootNotDir {
                archive: self.archive(),
                offset,
            }
            .into());
        }
        // Only symlinks carry meaningful data besides files; anything else
        // a writer attached is skipped.
        let consumed = matches!(kind, Kind::Symlink { .. });
        sink.put(&Entry::new(path, kind, meta), &mut io::empty())?;
        let rest = if consumed { 0 } else { size };
        self.stream.skip(rest + pad4(size), "inside member data")?;
        Ok(())
    }

    fn regular(
        &mut self,
        sink: &mut dyn Sink,
        offset: u64,
        h: Header,
        path: TreePath,
        meta: Meta,
        crc: bool,
    ) -> io::Result<()> {
        if path.is_root() {
            return Err(Error::RootNotDir {
                archive: self.archive(),
                offset,
            }
            .into());
        }
        let size = u64::from(h.c_filesize);
        // GNU cpio stores a hard-link group's data once, on its last
        // member; the others are empty members with the same inode.
        let group = if h.c_nlink > 1 {
            let key = (h.c_devmajor, h.c_devminor, h.c_ino);
            let next = self.groups.len();
            let i = *self.group_index.entry(key).or_insert(next);
            if i == next {
                self.groups.push(Group::default());
            }
            Some(i)
        } else {
            None
        };
        if size == 0 {
            if let Some(g) = group.and_then(|i| self.groups.get_mut(i)) {
                let entry = Entry {
                    path,
                    kind: Kind::File { size: 0 },
                    meta,
                    xattrs: Default::default(),
                };
                match &g.data {
                    Some(target) => {
                        let link = Entry {
                            kind: Kind::HardLink {
                                target: target.clone(),
                            },
                            ..entry
                        };
                        sink.put(&link, &mut io::empty())?;
                    }
                    None => g.pending.push(entry),
                }
                return Ok(());
            }
        }
        let entry = Entry {
            path,
            kind: Kind::File { size },
            meta,
            xattrs: Default::default(),
        };
        let mut data = Data {
            stream: &mut self.stream,
            remaining: size,
            crc,
            sum: 0,
        };
        sink.put(&entry, &mut data)?;
        io::copy(&mut data, &mut io::sink())?;
        let computed = data.sum;
        if crc && computed != h.c_check {
            return Err(Error::Checksum {
                archive: self.archive(),
                offset,
                path: entry.path,
                stored: h.c_check,
                computed,
            }
            .into());
        }
        self.stream.skip(pad4(size), "inside file padding")?;
        if let Some(g) = group.and_then(|i| self.groups.get_mut(i)) {
            let pending = std::mem::take(&mut g.pending);
            g.data = Some(entry.path.clone());
            for p in pending {
                if p.path == entry.path {
                    continue;
                }
                let link = Entry {
                    kind: Kind::HardLink {
                        target: entry.path.clone(),
                    },
                    ..p
                };
                sink.put(&link, &mut io::empty())?;
            }
        }
        Ok(())
    }

    fn finish(mut self, sink: &mut dyn Sink) -> io::Result<()> {
        // Groups whose members were all empty: the first becomes the file.
        for g in std::mem::take(&mut self.groups) {
            let mut pending = g.pending.into_iter();
            let target = match g.data {
                Some(t) => t,
                None => match pending.next() {
                    Some(first) => {
                        sink.put(&first, &mut io::empty())?;
                        first.path
                    }
                    None => continue,
                },
            };
            for p in pending {
                let link = Entry {
                    kind: Kind::HardLink {
                        target: target.clone(),
                    },
                    ..p
                };
                sink.put(&link, &mut io::empty())?;
            }
        }
        // Reading the compressed stream to its end makes the decoder check
        // the CRC and length of every gzip member, including the last one
        // whose only content after the trailer is block padding.
        if self.gzip {
            let mut scratch = vec![0u8; BUF];
            while self.stream.read_full(&mut scratch)? > 0 {}
        }
        Ok(())
    }
}
