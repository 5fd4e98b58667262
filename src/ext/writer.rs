//! Writing a fresh ext2/ext3 volume from a tree stream.
//!
//! Blocks are handed out by a forward-moving cursor, so a file's blocks
//! (its data and the indirect blocks mapping it) all lie in the range the
//! cursor crossed while the file was written; freeing an overwritten file
//! only has to clear that range. Directory contents and inodes stay in
//! memory as metadata and are laid out at the end.

use super::bitmap::Bitmap;
use super::dir_entry::{self, BlockPacker};
use super::group_desc::GroupDesc;
use super::inode::{self, Inode};
use super::io::Disk;
use super::journal::{default_journal_blocks, JournalSuperblock};
use super::layout::{has_super, Geometry};
use super::superblock::*;
use super::{Error, Options};
use crate::tree::{Dense, Entry, Kind, Meta, Sink, SparseRead, TreePath};
use crate::tree::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK};
use hashbrown::hash_table::{Entry as Slot, HashTable};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;

const LOST_FOUND_INO: u32 = inode::EXT2_GOOD_OLD_FIRST_INO;
const FIRST_FREE_INO: u32 = LOST_FOUND_INO + 1;

/// Free-block bookkeeping: the volume-wide block bitmap and the cursor.
struct Space {
    geo: Geometry,
    used: Bitmap,
    cursor: u32,
    /// What is being written, for the out-of-blocks message.
    what: String,
}

impl Space {
    fn new(geo: Geometry) -> Space {
        let mut used = Bitmap::new(u64::from(geo.blocks_count));
        for b in 0..geo.first_data_block {
            used.set(u64::from(b), true);
        }
        for g in 0..geo.group_count {
            for b in geo.group_first_block(g)..geo.data_start(g) {
                used.set(u64::from(b), true);
            }
        }
        Space {
            cursor: geo.data_start(0),
            geo,
            used,
            what: String::new(),
        }
    }

    fn alloc(&mut self) -> Result<u32, Error> {
        match self.used.next_clear(u64::from(self.cursor)) {
            Some(b) => {
                self.used.set(b, true);
                self.cursor = b as u32 + 1;
                Ok(b as u32)
            }
            None => Err(Error::OutOfBlocks {
                path: self.what.clone(),
                blocks_count: self.geo.blocks_count,
            }),
        }
    }

    /// Frees every data block in `[from, to)`; group metadata in that
    /// range was never allocated by the cursor and stays.
    fn free_range(&mut self, from: u32, to: u32) {
        for b in from..to {
            let g = self.geo.group_of_block(b);
            if b >= self.geo.data_start(g) {
                self.used.set(u64::from(b), false);
            }
        }
    }
}

/// Where a [`BlockMapper`] gets its blocks.
pub(super) trait BlockAlloc {
    fn alloc_block(&mut self) -> Result<u32, Error>;
}

impl BlockAlloc for Space {
    fn alloc_block(&mut self) -> Result<u32, Error> {
        self.alloc()
    }
}

/// An indirect block being filled: its block number, the logical-index
/// prefix it serves and its pointers.
struct OpenIndirect {
    phys: u32,
    prefix: Vec<u64>,
    entries: Vec<u32>,
}

/// Maps logical blocks of one inode, in increasing order, to freshly
/// allocated blocks, writing each indirect block once it is complete.
/// At most one indirect block per level is in memory.
pub(super) struct BlockMapper {
    i_block: [u32; inode::EXT2_N_BLOCKS],
    sectors: u64,
    root: Option<usize>,
    open: Vec<OpenIndirect>,
    per_block: u64,
}

impl BlockMapper {
    pub(super) fn new(block_size: u32) -> BlockMapper {
        BlockMapper {
            i_block: [0; inode::EXT2_N_BLOCKS],
            sectors: 0,
            root: None,
            open: Vec::new(),
            per_block: u64::from(block_size / 4),
        }
    }

    /// The i_block slot and per-level indexes of logical block `l`.
    fn path(&self, l: u64) -> Option<(usize, Vec<u64>)> {
        let p = self.per_block;
        let mut r = l.checked_sub(inode::EXT2_NDIR_BLOCKS as u64)?;
        if r < p {
            return Some((inode::EXT2_IND_BLOCK, vec![r]));
        }
        r -= p;
        if r < p * p {
            return Some((inode::EXT2_DIND_BLOCK, vec![r / p, r % p]));
        }
        r -= p * p;
        if r < p * p * p {
            return Some((
                inode::EXT2_TIND_BLOCK,
                vec![r / (p * p), (r / p) % p, r % p],
            ));
        }
        None
    }

    pub(super) fn max_blocks(&self) -> u64 {
        let p = self.per_block;
        inode::EXT2_NDIR_BLOCKS as u64 + p + p * p + p * p * p
    }

    fn take_block(&mut self, space: &mut dyn BlockAlloc) -> Result<u32, Error> {
        let b = space.alloc_block()?;
        self.sectors += self.per_block * 4 / 512;
        Ok(b)
    }

    /// Allocates logical block `l` and writes `data` there (nothing is
    /// written for `None`: the block stays zero in the sparse image).
    pub(super) fn map(
        &mut self,
        space: &mut dyn BlockAlloc,
        disk: &mut Disk,
        l: u64,
        data: Option<&[u8]>,
    ) -> Result<(), Error> {
        let phys = match self.path(l) {
            None => {
                let b = self.take_block(space)?;
                if let Some(slot) = self.i_block.get_mut(l as usize) {
                    *slot = b;
                }
                b
            }
            Some((slot, idx)) => {
                if self.root != Some(slot) {
                    self.close_from(0, disk)?;
                    self.root = Some(slot);
                }
                for k in 0..idx.len() {
                    let matches = self.open.get(k).is_some_and(|o| o.prefix[..] == idx[..k]);
                    if matches {
                        continue;
                    }
                    self.close_from(k, disk)?;
                    let b = self.take_block(space)?;
                    if k == 0 {
                        self.i_block[slot] = b;
                    } else if let Some(parent) = self.open.get_mut(k - 1) {
                        if let Some(e) = parent.entries.get_mut(idx[k - 1] as usize) {
                            *e = b;
                        }
                    }
                    self.open.push(OpenIndirect {
                        phys: b,
                        prefix: idx[..k].to_vec(),
                        entries: vec![0; self.per_block as usize],
                    });
                }
                let b = self.take_block(space)?;
                if let (Some(leaf), Some(last)) = (self.open.last_mut(), idx.last()) {
                    if let Some(e) = leaf.entries.get_mut(*last as usize) {
                        *e = b;
                    }
                }
                b
            }
        };
        if let Some(d) = data {
            disk.write_blocks(u64::from(phys), d)?;
        }
        Ok(())
    }

    fn close_from(&mut self, level: usize, disk: &mut Disk) -> Result<(), Error> {
        while self.open.len() > level {
            if let Some(o) = self.open.pop() {
                let mut buf = Vec::with_capacity(o.entries.len() * 4);
                for e in &o.entries {
                    buf.extend_from_slice(&e.to_le_bytes());
                }
                disk.write_blocks(u64::from(o.phys), &buf)?;
            }
        }
        Ok(())
    }

    pub(super) fn finish(
        mut self,
        disk: &mut Disk,
    ) -> Result<([u32; inode::EXT2_N_BLOCKS], u64), Error> {
        self.close_from(0, disk)?;
        Ok((self.i_block, self.sectors))
    }
}

struct DirData {
    parent: u32,
    /// Entries in the order they were bound.
    names: Vec<(Box<[u8]>, u32)>,
    /// Positions in `names`, found by name: each name is stored once, as
    /// an image may hold millions.
    index: HashTable<u32>,
    /// Names come from archives: a keyed hash, so that none can be chosen
    /// to collide.
    hasher: RandomState,
}

impl DirData {
    fn new(parent: u32) -> DirData {
        DirData {
            parent,
            names: Vec::new(),
            index: HashTable::new(),
            hasher: RandomState::new(),
        }
    }

    fn get(&self, name: &[u8]) -> Option<u32> {
        let names = &self.names;
        let i = self.index.find(self.hasher.hash_one(name), |&i| {
            names.get(i as usize).is_some_and(|n| &*n.0 == name)
        })?;
        names.get(*i as usize).map(|n| n.1)
    }

    /// Points `name` at `ino`, replacing what it named.
    fn set(&mut self, name: &[u8], ino: u32) {
        let (names, hasher) = (&mut self.names, &self.hasher);
        let slot = self.index.entry(
            hasher.hash_one(name),
            |&i| names.get(i as usize).is_some_and(|n| &*n.0 == name),
            |&i| names.get(i as usize).map_or(0, |n| hasher.hash_one(&n.0)),
        );
        match slot {
            Slot::Occupied(e) => {
                if let Some(n) = names.get_mut(*e.get() as usize) {
                    n.1 = ino;
                }
            }
            Slot::Vacant(e) => {
                e.insert(names.len() as u32);
                names.push((name.into(), ino));
            }
        }
    }
}

/// One in-use inode, as metadata.
struct Node {
    mode: u16,
    meta: Meta,
    size: u64,
    i_block: [u32; inode::EXT2_N_BLOCKS],
    sectors: u64,
    /// Directory entries naming this inode.
    names: u32,
    /// Blocks the cursor crossed while writing this inode's content.
    span: Option<(u32, u32)>,
    /// Boxed: most nodes are files, and an image may hold millions.
    dir: Option<Box<DirData>>,
}

impl Node {
    fn new(mode: u32, meta: Meta) -> Node {
        Node {
            mode: mode as u16,
            meta,
            size: 0,
            i_block: [0; inode::EXT2_N_BLOCKS],
            sectors: 0,
            names: 0,
            span: None,
            dir: None,
        }
    }

    fn new_dir(meta: Meta, parent: u32) -> Node {
        let mut n = Node::new(S_IFDIR | (meta.perm & 0o7777), meta);
        n.dir = Some(Box::new(DirData::new(parent)));
        n
    }

    fn file_type(&self) -> u8 {
        match u32::from(self.mode) & crate::tree::S_IFMT {
            S_IFREG => dir_entry::EXT2_FT_REG_FILE,
            S_IFDIR => dir_entry::EXT2_FT_DIR,
            S_IFCHR => dir_entry::EXT2_FT_CHRDEV,
            S_IFBLK => dir_entry::EXT2_FT_BLKDEV,
            S_IFIFO => dir_entry::EXT2_FT_FIFO,
            S_IFSOCK => dir_entry::EXT2_FT_SOCK,
            S_IFLNK => dir_entry::EXT2_FT_SYMLINK,
            _ => dir_entry::EXT2_FT_UNKNOWN,
        }
    }
}

/// Builds an ext2/ext3 image on a file; feed it entries through
/// [`Sink::put`] and call [`Builder::finish`].
pub struct Builder<'f> {
    opts: Options,
    space: Space,
    disk: Disk<'f>,
    /// Index `ino - 1`; `None` for free inodes.
    inodes: Vec<Option<Node>>,
    journal: Option<Node>,
}

fn path_str(p: &TreePath) -> String {
    p.display_abs()
}

impl<'f> Builder<'f> {
    /// Starts an image on `file`: the file is truncated to a sparse file
    /// of `opts.size` bytes and the journal is laid down at once.
    pub fn new(opts: Options, file: &'f File) -> Result<Builder<'f>, Error> {
        if opts.label.len() > 16 {
            return Err(Error::LabelTooLong(opts.label.len()));
        }
        if opts.timestamp < 0 {
            return Err(Error::Timestamp(opts.timestamp));
        }
        inode::encode_time(opts.timestamp).ok_or(Error::Timestamp(opts.timestamp))?;
        let geo = Geometry::new(opts.size, opts.block_size, opts.inodes)?;
        let mut disk = Disk::new(file, geo.block_size);
        disk.reset(opts.size)?;
        let mut b = Builder {
            space: Space::new(geo),
            disk,
            inodes: Vec::new(),
            journal: None,
            opts,
        };
        let now = Meta {
            perm: 0o755,
            uid: 0,
            gid: 0,
            mtime: b.opts.timestamp,
        };
        b.set_inode(
            inode::EXT2_ROOT_INO,
            Node::new_dir(Meta::implicit_dir(), inode::EXT2_ROOT_INO),
        );
        let mut lf = Node::new_dir(Meta { perm: 0o700, ..now }, inode::EXT2_ROOT_INO);
        lf.names = 1;
        b.set_inode(LOST_FOUND_INO, lf);
        b.bind(inode::EXT2_ROOT_INO, b"lost+found", LOST_FOUND_INO);
        if b.opts.journal {
            b.write_journal()?;
        }
        Ok(b)
    }

    fn set_inode(&mut self, ino: u32, node: Node) {
        let i = (ino - 1) as usize;
        if self.inodes.len() <= i {
            self.inodes.resize_with(i + 1, || None);
        }
        self.inodes[i] = Some(node);
    }

    fn node(&self, ino: u32) -> Option<&Node> {
        self.inodes.get(ino.checked_sub(1)? as usize)?.as_ref()
    }

    fn node_mut(&mut self, ino: u32) -> Option<&mut Node> {
        self.inodes.get_mut(ino.checked_sub(1)? as usize)?.as_mut()
    }

    fn alloc_inode(&mut self, path: &TreePath) -> Result<u32, Error> {
        let ino = (self.inodes.len() as u32 + 1).max(FIRST_FREE_INO);
        if ino > self.space.geo.inodes_count() {
            return Err(Error::OutOfInodes {
                path: path_str(path),
                inodes_count: self.space.geo.inodes_count(),
            });
        }
        Ok(ino)
    }

    fn write_journal(&mut self) -> Result<(), Error> {
        let geo = &self.space.geo;
        let blocks =
            default_journal_blocks(u64::from(geo.blocks_count)).ok_or(Error::NoRoomForJournal)?;
        let bs = geo.block_size;
        self.space.what = "the journal".into();
        let jsb = JournalSuperblock::new_internal(bs, blocks, self.opts.uuid).encode(bs as usize);
        let mut m = BlockMapper::new(bs);
        for l in 0..u64::from(blocks) {
            let data = if l == 0 { Some(&jsb[..]) } else { None };
            m.map(&mut self.space, &mut self.disk, l, data)?;
        }
        let (i_block, sectors) = m.finish(&mut self.disk)?;
        let mut n = Node::new(
            S_IFREG | 0o600,
            Meta {
                perm: 0o600,
                uid: 0,
                gid: 0,
                mtime: self.opts.timestamp,
            },
        );
        n.size = u64::from(blocks) * u64::from(bs);
        n.i_block = i_block;
        n.sectors = sectors;
        n.names = 1;
        self.journal = Some(n);
        Ok(())
    }

    /// The inode named by `path`, if any.
    fn lookup(&self, path: &TreePath) -> Option<u32> {
        let mut ino = inode::EXT2_ROOT_INO;
        for c in path.components() {
            ino = self.node(ino)?.dir.as_ref()?.get(c)?;
        }
        Some(ino)
    }

    /// The directory at `path`, created (0755 0:0) with any missing
    /// ancestors.
    fn ensure_dir(&mut self, path: &TreePath) -> Result<u32, Error> {
        let mut ino = inode::EXT2_ROOT_INO;
        let mut sofar = TreePath::root();
        for c in path.components() {
            sofar = sofar.join(c);
            let existing = self
                .node(ino)
                .and_then(|n| n.dir.as_ref())
                .and_then(|d| d.get(c));
            ino = match existing {
                Some(child) => {
                    if self.node(child).is_none_or(|n| n.dir.is_none()) {
                        return Err(Error::ParentNotDir {
                            path: path_str(&sofar),
                        });
                    }
                    child
                }
                None => {
                    check_name(c, &sofar)?;
                    let child = self.alloc_inode(&sofar)?;
                    let mut n = Node::new_dir(Meta::implicit_dir(), ino);
                    n.names = 1;
                    self.set_inode(child, n);
                    self.bind(ino, c, child);
                    child
                }
            };
        }
        Ok(ino)
    }

    /// Points `name` in directory `dir` at `ino`, replacing what it named.
    fn bind(&mut self, dir: u32, name: &[u8], ino: u32) {
        if let Some(d) = self.node_mut(dir).and_then(|n| n.dir.as_mut()) {
            d.set(name, ino);
        }
    }

    /// Drops one name of `ino`; the inode and its blocks are freed with
    /// the last name.
    fn unlink(&mut self, ino: u32) {
        let Some(n) = self.node_mut(ino) else { return };
        n.names = n.names.saturating_sub(1);
        if n.names > 0 {
            return;
        }
        let span = n.span;
        if let Some(slot) = self.inodes.get_mut((ino - 1) as usize) {
            *slot = None;
        }
        if let Some((from, to)) = span {
            self.space.free_range(from, to);
        }
    }

    fn put_entry(&mut self, entry: &Entry, data: &mut dyn SparseRead) -> Result<(), Error> {
        let path = &entry.path;
        self.space.what = path_str(path);
        let Some(parent_path) = path.parent() else {
            if entry.kind != Kind::Dir {
                return Err(Error::RootNotDir {
                    path: path_str(path),
                });
            }
            let meta = entry.meta;
            if let Some(root) = self.node_mut(inode::EXT2_ROOT_INO) {
                root.meta = meta;
                root.mode = (S_IFDIR | (meta.perm & 0o7777)) as u16;
            }
            return Ok(());
        };
        let name = path.file_name();
        check_name(name, path)?;
        if inode::encode_time(entry.meta.mtime).is_none() {
            return Err(Error::Mtime {
                path: path_str(path),
                mtime: entry.meta.mtime,
            });
        }
        let parent = self.ensure_dir(&parent_path)?;
        let existing = self.lookup(path);
        let existing_dir = existing
            .and_then(|e| self.node(e))
            .and_then(|n| n.dir.as_ref());
        let existing_empty_dir = existing_dir.map(|d| d.names.is_empty());

        if entry.kind == Kind::Dir {
            if let (Some(ino), Some(_)) = (existing, existing_empty_dir) {
                if let Some(n) = self.node_mut(ino) {
                    n.meta = entry.meta;
                    n.mode = (S_IFDIR | (entry.meta.perm & 0o7777)) as u16;
                }
                return Ok(());
            }
        } else if existing_empty_dir == Some(false) {
            return Err(Error::ReplaceDir {
                path: path_str(path),
            });
        }

        if let Kind::HardLink { target } = &entry.kind {
            let t = self
                .lookup(target)
                .filter(|&t| self.node(t).is_some_and(|n| n.dir.is_none()));
            let Some(t) = t else {
                return Err(Error::HardLinkTarget {
                    path: path_str(path),
                    target: path_str(target),
                });
            };
            if existing == Some(t) {
                return Ok(());
            }
            if let Some(n) = self.node_mut(t) {
                n.names += 1;
            }
            if let Some(old) = existing {
                self.unlink(old);
            }
            self.bind(parent, name, t);
            return Ok(());
        }

        let ino = self.alloc_inode(path)?;
        let mut node = self.make_node(entry, data)?;
        if let Some(d) = node.dir.as_mut() {
            d.parent = parent;
        }
        self.set_inode(ino, node);
        if let Some(old) = existing {
            self.unlink(old);
        }
        self.bind(parent, name, ino);
        Ok(())
    }

    /// Builds the inode for a non-hard-link entry, writing its content.
    fn make_node(&mut self, entry: &Entry, data: &mut dyn SparseRead) -> Result<Node, Error> {
        let path = &entry.path;
        let meta = entry.meta;
        let mode = entry.mode();
        let mut n = match &entry.kind {
            Kind::Dir => Node::new_dir(meta, 0),
            Kind::File { size } => {
                let mut n = Node::new(mode, meta);
                self.write_file(&mut n, path, *size, data)?;
                n
            }
            Kind::Symlink { target } => {
                if target.is_empty() {
                    return Err(Error::EmptySymlink {
                        path: path_str(path),
                    });
                }
                let mut n = Node::new(mode, meta);
                n.size = target.len() as u64;
                if target.len() < 60 {
                    let mut raw = [0u8; 60];
                    raw[..target.len()].copy_from_slice(target);
                    for (i, slot) in n.i_block.iter_mut().enumerate() {
                        let off = 4 * i;
                        *slot = u32::from_le_bytes([
                            raw[off],
                            raw[off + 1],
                            raw[off + 2],
                            raw[off + 3],
                        ]);
                    }
                } else {
                    let bs = self.space.geo.block_size as usize;
                    if target.len() >= bs {
                        return Err(Error::SymlinkTooLong {
                            path: path_str(path),
                            len: target.len(),
                            max: bs - 1,
                        });
                    }
                    let mut block = vec![0u8; bs];
                    block[..target.len()].copy_from_slice(target);
                    let start = self.space.cursor;
                    let mut m = BlockMapper::new(bs as u32);
                    m.map(&mut self.space, &mut self.disk, 0, Some(&block))?;
                    let (i_block, sectors) = m.finish(&mut self.disk)?;
                    n.i_block = i_block;
                    n.sectors = sectors;
                    n.span = Some((start, self.space.cursor));
                }
                n
            }
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                let mut n = Node::new(mode, meta);
                let enc = inode::encode_device(*major, *minor).ok_or(Error::DeviceNumber {
                    path: path_str(path),
                    major: *major,
                    minor: *minor,
                })?;
                n.i_block[0] = enc[0];
                n.i_block[1] = enc[1];
                n
            }
            Kind::Fifo | Kind::Socket => Node::new(mode, meta),
            Kind::HardLink { .. } => Node::new(mode, meta),
        };
        n.names = 1;
        Ok(n)
    }

    /// Streams a file's content into freshly allocated blocks; all-zero
    /// blocks become holes, and so do the holes the source tells of, which
    /// are stepped over rather than read.
    fn write_file(
        &mut self,
        n: &mut Node,
        path: &TreePath,
        size: u64,
        data: &mut dyn SparseRead,
    ) -> Result<(), Error> {
        let bs = u64::from(self.space.geo.block_size);
        let mut m = BlockMapper::new(self.space.geo.block_size);
        if size.div_ceil(bs) > m.max_blocks() {
            return Err(Error::FileTooLarge {
                path: path_str(path),
                size,
            });
        }
        let start = self.space.cursor;
        let mut buf = vec![0u8; bs as usize];
        let mut done = 0u64;
        let mut l = 0u64;
        let content_err = |e: std::io::Error| Error::Content {
            path: path_str(path),
            source: e,
        };
        while done < size {
            // at a block boundary: whole blocks of hole are skipped, a
            // hole ending inside the next block zeroes its start
            let hole = data.skip_hole().map_err(content_err)?.min(size - done);
            l += hole / bs;
            done += hole / bs * bs;
            if done >= size {
                break;
            }
            let want = (size - done).min(bs) as usize;
            let chunk = &mut buf[..want];
            let mut got = (hole % bs) as usize;
            chunk[..got].fill(0);
            while got < want {
                match data.read(&mut chunk[got..]) {
                    Ok(0) => {
                        return Err(Error::ShortData {
                            path: path_str(path),
                            expected: size,
                            got: done + got as u64,
                        })
                    }
                    Ok(k) => got += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(content_err(e)),
                }
            }
            buf[want..].fill(0);
            if !crate::bytes::all_zero(&buf) {
                m.map(&mut self.space, &mut self.disk, l, Some(&buf))?;
            }
            done += want as u64;
            l += 1;
        }
        let (i_block, sectors) = m.finish(&mut self.disk)?;
        n.size = size;
        n.i_block = i_block;
        n.sectors = sectors;
        n.span = Some((start, self.space.cursor));
        Ok(())
    }

    /// Lays out directories, inode tables, bitmaps, descriptors and
    /// superblocks, completing the image.
    pub fn finish(mut self) -> Result<(), Error> {
        let geo = self.space.geo.clone();
        let bs = geo.block_size as usize;
        let lost_found_blocks = (16384 / bs).clamp(2, inode::EXT2_NDIR_BLOCKS) as u64;

        // Directory blocks, in inode order so the layout is reproducible.
        let mut links: Vec<u32> = vec![0; self.inodes.len()];
        for ino in 1..=self.inodes.len() as u32 {
            let Some(Some(node)) = self.inodes.get((ino - 1) as usize) else {
                continue;
            };
            let Some(d) = node.dir.as_ref() else { continue };
            self.space.what = format!("directory inode {ino}");
            let mut packer = BlockPacker::new(bs);
            let mut blocks: Vec<Vec<u8>> = Vec::new();
            let entries = [
                (ino, dir_entry::EXT2_FT_DIR, &b"."[..]),
                (d.parent, dir_entry::EXT2_FT_DIR, &b".."[..]),
            ];
            let mut bump = |i: u32| {
                if let Some(l) = links.get_mut((i as usize).wrapping_sub(1)) {
                    *l += 1;
                }
            };
            for (i, ft, name) in entries {
                bump(i);
                blocks.extend(packer.push(i, ft, name));
            }
            for (name, child) in &d.names {
                let ft = self.node(*child).map(|c| c.file_type()).unwrap_or(0);
                bump(*child);
                blocks.extend(packer.push(*child, ft, name));
            }
            blocks.extend(packer.take());
            if ino == LOST_FOUND_INO {
                while (blocks.len() as u64) < lost_found_blocks {
                    blocks.push(dir_entry::empty_block(bs));
                }
            }
            let mut m = BlockMapper::new(geo.block_size);
            for (l, b) in blocks.iter().enumerate() {
                m.map(&mut self.space, &mut self.disk, l as u64, Some(b))?;
            }
            let (i_block, sectors) = m.finish(&mut self.disk)?;
            let size = (blocks.len() * bs) as u64;
            if let Some(n) = self.node_mut(ino) {
                n.i_block = i_block;
                n.sectors = sectors;
                n.size = size;
            }
        }
        // "." counted each directory once and ".." its parent; other
        // inodes were counted once per name.
        if let Some(j) = self.journal.take() {
            self.set_inode(inode::EXT2_JOURNAL_INO, j);
            if let Some(l) = links.get_mut(inode::EXT2_JOURNAL_INO as usize - 1) {
                *l = 1;
            } else {
                links.resize(inode::EXT2_JOURNAL_INO as usize, 0);
                links[inode::EXT2_JOURNAL_INO as usize - 1] = 1;
            }
        }

        // Inode tables: only blocks holding an in-use inode are written.
        let ipg = geo.inodes_per_group;
        let per_block = (bs / inode::INODE_SIZE) as u32;
        let mut inode_used = Bitmap::new(u64::from(geo.inodes_count()) + 1);
        for ino in 1..FIRST_FREE_INO.min(geo.inodes_count() + 1) {
            inode_used.set(u64::from(ino), true);
        }
        let mut dirs_per_group = vec![0u32; geo.group_count as usize];
        let mut table_block: Option<(u32, Vec<u8>)> = None;
        for ino in 1..=self.inodes.len() as u32 {
            let Some(Some(node)) = self.inodes.get((ino - 1) as usize) else {
                continue;
            };
            inode_used.set(u64::from(ino), true);
            let g = (ino - 1) / ipg;
            if node.dir.is_some() {
                if let Some(c) = dirs_per_group.get_mut(g as usize) {
                    *c += 1;
                }
            }
            let idx = (ino - 1) % ipg;
            let blk = geo.inode_table(g) + idx / per_block;
            if table_block.as_ref().is_some_and(|(b, _)| *b != blk) {
                if let Some((b, data)) = table_block.take() {
                    self.disk.write_blocks(u64::from(b), &data)?;
                }
            }
            let tb = table_block.get_or_insert_with(|| (blk, vec![0u8; bs]));
            let raw = encode_inode(
                node,
                links.get((ino - 1) as usize).copied().unwrap_or(0),
                &self.opts,
            )?;
            let off = (idx % per_block) as usize * inode::INODE_SIZE;
            if let Some(dst) = tb.1.get_mut(off..off + inode::INODE_SIZE) {
                dst.copy_from_slice(&raw);
            }
        }
        if let Some((b, data)) = table_block.take() {
            self.disk.write_blocks(u64::from(b), &data)?;
        }

        // Bitmaps and descriptors.
        let mut descs = Vec::with_capacity(geo.group_count as usize);
        let (mut free_blocks, mut free_inodes) = (0u64, 0u64);
        for g in 0..geo.group_count {
            let first = geo.group_first_block(g);
            let n = geo.group_blocks(g);
            let bb = self.space.used.block(u64::from(first), u64::from(n), bs);
            self.disk
                .write_blocks(u64::from(geo.block_bitmap(g)), &bb)?;
            let ib = inode_used.block(u64::from(g * ipg + 1), u64::from(ipg), bs);
            self.disk
                .write_blocks(u64::from(geo.inode_bitmap(g)), &ib)?;
            let fb = u64::from(n)
                - self
                    .space
                    .used
                    .count_set(u64::from(first), u64::from(first + n));
            let fi = u64::from(ipg)
                - inode_used.count_set(u64::from(g * ipg + 1), u64::from((g + 1) * ipg + 1));
            free_blocks += fb;
            free_inodes += fi;
            descs.push(GroupDesc {
                bg_block_bitmap: u64::from(geo.block_bitmap(g)),
                bg_inode_bitmap: u64::from(geo.inode_bitmap(g)),
                bg_inode_table: u64::from(geo.inode_table(g)),
                bg_free_blocks_count: fb as u32,
                bg_free_inodes_count: fi as u32,
                bg_used_dirs_count: dirs_per_group.get(g as usize).copied().unwrap_or(0),
                bg_flags: 0,
            });
        }
        let mut gdt = vec![0u8; geo.gdt_blocks as usize * bs];
        for (i, d) in descs.iter().enumerate() {
            let off = i * super::group_desc::GROUP_DESC_SIZE;
            if let Some(dst) = gdt.get_mut(off..off + super::group_desc::GROUP_DESC_SIZE) {
                dst.copy_from_slice(&d.encode());
            }
        }

        let mut sb = self.superblock(free_blocks as u32, free_inodes as u32);
        for g in (0..geo.group_count).filter(|&g| has_super(g)) {
            sb.s_block_group_nr = g as u16;
            let first = u64::from(geo.group_first_block(g));
            let offset = if g == 0 {
                SUPERBLOCK_OFFSET
            } else {
                first * bs as u64
            };
            self.disk.write_at(offset, &sb.encode())?;
            self.disk.write_blocks(first + 1, &gdt)?;
        }
        self.disk.flush()
    }

    fn superblock(&self, free_blocks: u32, free_inodes: u32) -> Superblock {
        let geo = &self.space.geo;
        let t = self.opts.timestamp;
        let (t_lo, t_hi) = (t as u32, (t >> 32) as u8);
        let mut volume_name = [0u8; 16];
        volume_name[..self.opts.label.len()].copy_from_slice(&self.opts.label);
        let seed = Sha256::digest([&b"ext2 s_hash_seed"[..], &self.opts.uuid].concat());
        let mut s_hash_seed = [0u32; 4];
        for (i, h) in s_hash_seed.iter_mut().enumerate() {
            *h = u32::from_le_bytes([
                seed[4 * i],
                seed[4 * i + 1],
                seed[4 * i + 2],
                seed[4 * i + 3],
            ]);
        }
        let mut sb = Superblock {
            s_inodes_count: geo.inodes_count(),
            s_blocks_count_lo: geo.blocks_count,
            s_r_blocks_count_lo: geo.reserved_blocks(),
            s_free_blocks_count_lo: free_blocks,
            s_free_inodes_count: free_inodes,
            s_first_data_block: geo.first_data_block,
            s_log_block_size: geo.block_size.trailing_zeros() - 10,
            s_log_cluster_size: geo.block_size.trailing_zeros() - 10,
            s_blocks_per_group: geo.blocks_per_group,
            s_clusters_per_group: geo.blocks_per_group,
            s_inodes_per_group: geo.inodes_per_group,
            s_mtime: t_lo,
            s_wtime: t_lo,
            s_mnt_count: 0,
            s_max_mnt_count: 0xFFFF,
            s_magic: EXT2_SUPER_MAGIC,
            s_state: EXT2_VALID_FS,
            s_errors: EXT2_ERRORS_CONTINUE,
            s_lastcheck: t_lo,
            s_creator_os: EXT2_OS_LINUX,
            s_rev_level: EXT2_DYNAMIC_REV,
            s_first_ino: inode::EXT2_GOOD_OLD_FIRST_INO,
            s_inode_size: inode::INODE_SIZE as u16,
            s_feature_incompat: INCOMPAT_FILETYPE,
            s_feature_ro_compat: RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE,
            s_uuid: self.opts.uuid,
            s_volume_name: volume_name,
            s_hash_seed,
            s_def_hash_version: EXT2_HASH_HALF_MD4,
            s_mkfs_time: t_lo,
            s_min_extra_isize: inode::EXTRA_ISIZE,
            s_want_extra_isize: inode::EXTRA_ISIZE,
            s_flags: EXT2_FLAGS_SIGNED_HASH,
            s_wtime_hi: t_hi,
            s_mtime_hi: t_hi,
            s_mkfs_time_hi: t_hi,
            s_lastcheck_hi: t_hi,
            ..Default::default()
        };
        if let Some(Some(j)) = self.inodes.get(inode::EXT2_JOURNAL_INO as usize - 1) {
            sb.s_feature_compat |= COMPAT_HAS_JOURNAL;
            sb.s_journal_inum = inode::EXT2_JOURNAL_INO;
            sb.s_jnl_backup_type = EXT3_JNL_BACKUP_BLOCKS;
            sb.s_jnl_blocks[..15].copy_from_slice(&j.i_block);
            sb.s_jnl_blocks[15] = (j.size >> 32) as u32;
            sb.s_jnl_blocks[16] = j.size as u32;
        }
        sb
    }
}

fn check_name(name: &[u8], path: &TreePath) -> Result<(), Error> {
    if name.len() > dir_entry::EXT2_NAME_LEN {
        return Err(Error::NameTooLong {
            path: path_str(path),
        });
    }
    Ok(())
}

fn encode_inode(n: &Node, links: u32, opts: &Options) -> Result<[u8; inode::INODE_SIZE], Error> {
    let (t, extra) = inode::encode_time(n.meta.mtime).ok_or(Error::Timestamp(n.meta.mtime))?;
    let ino = Inode {
        i_mode: n.mode,
        i_uid: n.meta.uid as u16,
        i_size_lo: n.size as u32,
        i_atime: t,
        i_ctime: t,
        i_mtime: t,
        i_gid: n.meta.gid as u16,
        i_links_count: links.min(u32::from(u16::MAX)) as u16,
        i_blocks_lo: n.sectors as u32,
        i_block: n.i_block,
        i_size_high: (n.size >> 32) as u32,
        l_i_uid_high: (n.meta.uid >> 16) as u16,
        l_i_gid_high: (n.meta.gid >> 16) as u16,
        i_extra_isize: inode::EXTRA_ISIZE,
        i_ctime_extra: extra,
        i_mtime_extra: extra,
        i_atime_extra: extra,
        i_crtime: t,
        i_crtime_extra: extra,
        ..Default::default()
    };
    let _ = opts;
    Ok(ino.encode())
}

impl Sink for Builder<'_> {
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> std::io::Result<()> {
        self.put_entry(entry, &mut Dense(data))
            .map_err(std::io::Error::from)
    }

    fn put_sparse(&mut self, entry: &Entry, data: &mut dyn SparseRead) -> std::io::Result<()> {
        self.put_entry(entry, data).map_err(std::io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indirect_paths() {
        let m = BlockMapper::new(1024);
        assert_eq!(m.path(11), None);
        assert_eq!(m.path(12), Some((12, vec![0])));
        assert_eq!(m.path(12 + 255), Some((12, vec![255])));
        assert_eq!(m.path(12 + 256), Some((13, vec![0, 0])));
        assert_eq!(m.path(12 + 256 + 257), Some((13, vec![1, 1])));
        assert_eq!(m.path(12 + 256 + 65536), Some((14, vec![0, 0, 0])));
        assert_eq!(m.max_blocks(), 12 + 256 + 65536 + 16_777_216);
    }
}
