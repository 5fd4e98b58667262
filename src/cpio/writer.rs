//! Writing newc archives as a tree sink.

use super::gzip::Encoder;
use super::header::{pad4, Header, MAGIC_NEWC, NAME_MAX, TRAILER};
use super::Error;
use crate::tree::{copy_content, CopyError, Entry, Kind, Sink, TreePath};
use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read, Write};

/// A gzip encoder whose header is fixed (mtime 0, no file name) and
/// whose bytes never depend on the cores it runs on, so that the same
/// archive always compresses to the same bytes (see [`super::gzip`]).
pub fn gzip_encoder<W: Write>(out: W, level: u32) -> Encoder<W> {
    Encoder::new(out, level)
}

/// A [`Sink`] that writes a newc archive in the order entries arrive.
///
/// Inode numbers are assigned sequentially from 1, so the same tree gives
/// the same bytes. Call [`Writer::finish`] to write the trailer.
///
/// Hard links: entries stream, so when a [`Kind::File`] arrives the writer
/// cannot know whether [`Kind::HardLink`] entries will follow, and its data
/// cannot be held back to be put on the group's last member as GNU cpio
/// does. Instead every regular file is written with `c_nlink` 2 and its
/// data, and each hard link as an empty member with the target's inode.
/// GNU `cpio -i` extracts this into real links: a member with data and
/// `c_nlink` > 1 is created and remembered by inode; an empty member with
/// `c_nlink` > 1 is deferred and, at the end of the archive, linked to the
/// remembered file of its inode (only when no file of that inode exists is
/// it created empty). Because every inode is unique to one file, the
/// overstated link count never joins unrelated files; its only visible cost
/// is that GNU cpio defers creating empty regular files to the end.
/// The Linux initramfs unpacker and libarchive also link empty members to
/// an earlier member of the same inode without truncating it.
/// The inode given to every regular file written, by path. Any file may
/// turn out to be a hard link's target, so all are kept: the names in one
/// arena and a table of (offset, length, inode), about 16 bytes plus the
/// name per file, where a map of owned paths took over 100.
#[derive(Default)]
struct FileInodes {
    names: Vec<u8>,
    table: HashTable<(usize, u32, u32)>,
    hasher: RandomState,
}

impl FileInodes {
    fn insert(&mut self, name: &[u8], ino: u32) {
        let hash = self.hasher.hash_one(name);
        let names = &self.names;
        let at = |&(off, len, _): &(usize, u32, u32)| &names[off..off + len as usize];
        match self
            .table
            .entry(hash, |e| at(e) == name, |e| self.hasher.hash_one(at(e)))
        {
            // a path written twice: the later file is the one a link means
            hashbrown::hash_table::Entry::Occupied(mut e) => e.get_mut().2 = ino,
            hashbrown::hash_table::Entry::Vacant(e) => {
                let off = self.names.len();
                self.names.extend_from_slice(name);
                // names are shorter than NAME_MAX, checked before this
                e.insert((off, name.len() as u32, ino));
            }
        }
    }

    fn get(&self, name: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.table
            .find(hash, |&(off, len, _)| {
                &self.names[off..off + len as usize] == name
            })
            .map(|e| e.2)
    }
}

pub struct Writer<W: Write> {
    out: W,
    archive: String,
    offset: u64,
    next_ino: u32,
    // regular files written so far -> their inode, for hard links
    files: FileInodes,
    buf: Vec<u8>,
    /// Extended attributes of the entries written: newc has no place for
    /// them.
    xattrs_dropped: u64,
}

impl<W: Write> Writer<W> {
    /// `archive` names the output in error messages.
    pub fn new(out: W, archive: impl Into<String>) -> Writer<W> {
        Writer {
            out,
            archive: archive.into(),
            offset: 0,
            next_ino: 1,
            files: FileInodes::default(),
            buf: vec![0u8; 64 * 1024],
            xattrs_dropped: 0,
        }
    }

    /// Extended attributes the entries written so far carried, which a
    /// newc archive cannot hold: they are not in it.
    pub fn xattrs_dropped(&self) -> u64 {
        self.xattrs_dropped
    }

    /// Bytes written so far (uncompressed).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.out.write_all(bytes).map_err(|source| Error::Write {
            archive: self.archive.clone(),
            offset: self.offset,
            source,
        })?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn member(&mut self, name: &[u8], mut h: Header) -> Result<(), Error> {
        // The name is counted with its NUL.
        h.c_namesize = (name.len() + 1) as u32;
        let mut head = Vec::with_capacity(128 + name.len());
        h.encode(MAGIC_NEWC, &mut head);
        head.extend_from_slice(name);
        head.push(0);
        let pad = pad4(head.len() as u64) as usize;
        head.resize(head.len() + pad, 0);
        self.write(&head)
    }

    fn alloc_ino(&mut self) -> Result<u32, Error> {
        let ino = self.next_ino;
        self.next_ino = ino.checked_add(1).ok_or_else(|| Error::TooManyMembers {
            archive: self.archive.clone(),
        })?;
        Ok(ino)
    }

    fn entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<(), Error> {
        self.xattrs_dropped += entry.xattrs.len() as u64;
        let name: &[u8] = if entry.path.is_root() {
            b"."
        } else {
            entry.path.as_bytes()
        };
        if name.len() >= NAME_MAX as usize {
            return Err(Error::NameTooLong {
                archive: self.archive.clone(),
                path: entry.path.clone(),
                len: name.len(),
            });
        }
        let c_mtime = u32::try_from(entry.meta.mtime).map_err(|_| Error::MtimeOutOfRange {
            archive: self.archive.clone(),
            path: entry.path.clone(),
            mtime: entry.meta.mtime,
        })?;
        let mut h = Header {
            c_mode: entry.mode(),
            c_uid: entry.meta.uid,
            c_gid: entry.meta.gid,
            c_nlink: 1,
            c_mtime,
            ..Header::default()
        };
        match &entry.kind {
            Kind::File { size } => {
                let c_filesize = u32::try_from(*size).map_err(|_| Error::FileTooLarge {
                    archive: self.archive.clone(),
                    path: entry.path.clone(),
                    size: *size,
                })?;
                h.c_ino = self.alloc_ino()?;
                h.c_nlink = 2;
                h.c_filesize = c_filesize;
                self.member(name, h)?;
                self.copy_data(&entry.path, *size, data)?;
                self.files.insert(entry.path.as_bytes(), h.c_ino);
                return Ok(());
            }
            Kind::HardLink { target } => {
                h.c_ino =
                    self.files
                        .get(target.as_bytes())
                        .ok_or_else(|| Error::LinkTargetMissing {
                            archive: self.archive.clone(),
                            path: entry.path.clone(),
                            target: target.clone(),
                        })?;
                h.c_nlink = 2;
                // a link to a link shares the first file's inode
                self.files.insert(entry.path.as_bytes(), h.c_ino);
                return self.member(name, h);
            }
            Kind::Symlink { target } => {
                h.c_ino = self.alloc_ino()?;
                h.c_filesize = u32::try_from(target.len()).map_err(|_| Error::FileTooLarge {
                    archive: self.archive.clone(),
                    path: entry.path.clone(),
                    size: target.len() as u64,
                })?;
                self.member(name, h)?;
                self.write(target)?;
                let pad = pad4(target.len() as u64) as usize;
                return self.write(&[0u8; 3][..pad]);
            }
            Kind::Dir => h.c_nlink = 2,
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                h.c_rdevmajor = *major;
                h.c_rdevminor = *minor;
            }
            Kind::Fifo | Kind::Socket => {}
        }
        h.c_ino = self.alloc_ino()?;
        self.member(name, h)
    }

    fn copy_data(&mut self, path: &TreePath, size: u64, data: &mut dyn Read) -> Result<(), Error> {
        let mut buf = std::mem::take(&mut self.buf);
        let copied = copy_content(data, size, &mut buf, |chunk| self.write(chunk));
        self.buf = buf;
        match copied {
            Ok(()) => {}
            Err(CopyError::Write(e)) => return Err(e),
            Err(CopyError::Read { done, source }) => {
                return Err(Error::Read {
                    archive: format!("{} (content of {path})", self.archive),
                    offset: done,
                    source,
                })
            }
            Err(CopyError::Short { done }) => {
                return Err(Error::ShortData {
                    archive: self.archive.clone(),
                    path: path.clone(),
                    expected: size,
                    got: done,
                })
            }
        }
        let pad = pad4(size) as usize;
        self.write(&[0u8; 3][..pad])
    }

    /// Writes the trailer and the padding GNU cpio uses (to a multiple of
    /// 512 bytes), flushes, and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        let h = Header {
            c_nlink: 1,
            ..Header::default()
        };
        self.member(TRAILER, h)?;
        let pad = (512 - self.offset % 512) % 512;
        self.write(&vec![0u8; pad as usize])?;
        let offset = self.offset;
        self.out.flush().map_err(|source| Error::Write {
            archive: self.archive.clone(),
            offset,
            source,
        })?;
        Ok(self.out)
    }
}

impl<W: Write> Writer<Encoder<W>> {
    /// [`Writer::finish`], then ends the gzip stream and returns its output.
    pub fn finish_gzip(self) -> io::Result<W> {
        let archive = self.archive.clone();
        let offset = self.offset;
        self.finish()?.finish().map_err(|source| {
            Error::Write {
                archive,
                offset,
                source,
            }
            .into()
        })
    }
}

impl<W: Write> Sink for Writer<W> {
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> io::Result<()> {
        Ok(self.entry(entry, data)?)
    }
}
