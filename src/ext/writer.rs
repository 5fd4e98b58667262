//! Writing a fresh ext2/ext3/ext4 volume from a tree stream.
//!
//! Blocks are handed out by a forward-moving cursor ([`Space`]), file
//! content is written as it arrives, mapped by indirect blocks (ext2/3)
//! or extents (ext4). Directory contents and inodes stay in memory as
//! metadata and are laid out at the end; on ext4 every metadata block is
//! sealed with its checksum as it is written.

use super::alloc::Space;
use super::bitmap::Bitmap;
use super::blockmap::{copy_content, map_blocks, new_map, FileMap};
use super::csum;
use super::dir_entry;
use super::group_desc::{GroupDesc, EXT4_BG_INODE_ZEROED};
use super::htree::{DirFormat, DX_HASH_HALF_MD4};
use super::inode::{self, Inode};
use super::io::Disk;
use super::journal::{default_journal_blocks, JournalSuperblock};
use super::layout::{has_super, Geometry, LOG_GROUPS_PER_FLEX};
use super::superblock::*;
use super::{Error, Options};
use crate::block::Block;
use crate::tree::{Dense, Entry, Kind, Meta, Sink, SparseRead, TreePath};
use crate::tree::{S_IFDIR, S_IFREG};
use hashbrown::hash_table::{Entry as Slot, HashTable};
use sha2::{Digest, Sha256};
use std::hash::{BuildHasher, RandomState};
use std::io::Read;

const LOST_FOUND_INO: u32 = inode::EXT2_GOOD_OLD_FIRST_INO;
const FIRST_FREE_INO: u32 = LOST_FOUND_INO + 1;

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
    /// `i_flags`: extents, hashed directory.
    flags: u32,
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
            flags: 0,
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
        dir_entry::file_type(self.mode)
    }

    /// Takes a finished block map.
    fn set_map(&mut self, (i_block, sectors): ([u32; inode::EXT2_N_BLOCKS], u64), flags: u32) {
        self.i_block = i_block;
        self.sectors = sectors;
        self.flags |= flags;
    }
}

/// Builds an ext2/ext3/ext4 image on a file; feed it entries through
/// [`Sink::put`] and call [`Builder::finish`].
pub struct Builder<'f> {
    opts: Options,
    space: Space,
    disk: Disk<'f>,
    /// Index `ino - 1`; `None` for free inodes.
    inodes: Vec<Option<Node>>,
    journal: Option<Node>,
    hash_seed: [u32; 4],
    /// The volume's checksum seed (ext4's metadata_csum).
    csum: Option<u32>,
}

fn path_str(p: &TreePath) -> String {
    p.display_abs()
}

impl<'f> Builder<'f> {
    /// Starts an image on `file`: the volume is reset to `opts.size`
    /// bytes of holes and the journal is laid down at once.
    pub fn new(opts: Options, file: &'f dyn Block) -> Result<Builder<'f>, Error> {
        if opts.label.len() > 16 {
            return Err(Error::LabelTooLong(opts.label.len()));
        }
        if opts.timestamp < 0 {
            return Err(Error::Timestamp(opts.timestamp));
        }
        inode::encode_time(opts.timestamp).ok_or(Error::Timestamp(opts.timestamp))?;
        let geo = if opts.ext4 {
            Geometry::ext4(opts.size, opts.block_size, opts.inodes)?
        } else {
            Geometry::new(opts.size, opts.block_size, opts.inodes)?
        };
        let mut disk = Disk::new(file, geo.block_size);
        disk.reset(opts.size)?;
        let seed = Sha256::digest([&b"ext2 s_hash_seed"[..], &opts.uuid].concat());
        let mut hash_seed = [0u32; 4];
        for (i, h) in hash_seed.iter_mut().enumerate() {
            *h = u32::from_le_bytes([
                seed[4 * i],
                seed[4 * i + 1],
                seed[4 * i + 2],
                seed[4 * i + 3],
            ]);
        }
        let mut b = Builder {
            space: Space::new(geo),
            disk,
            inodes: Vec::new(),
            journal: None,
            hash_seed,
            csum: opts.ext4.then(|| csum::volume_seed(&opts.uuid)),
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
        if b.opts.journal || b.opts.ext4 {
            b.write_journal()?;
        }
        Ok(b)
    }

    /// A block map for inode `ino`, and the `i_flags` it needs: extents
    /// on ext4, indirect blocks otherwise.
    fn mapper(&self, ino: u32) -> (Box<dyn FileMap>, u32) {
        let seed = self.csum.map(|v| csum::inode_seed(v, ino, 0));
        new_map(self.space.geo.block_size, self.opts.ext4, seed)
    }

    /// How directory blocks of inode `ino` are laid out.
    fn dir_format(&self, ino: u32) -> DirFormat {
        DirFormat {
            block_size: self.space.geo.block_size as usize,
            hash_seed: self.hash_seed,
            signed_hash: true,
            csum_seed: self.csum.map(|v| csum::inode_seed(v, ino, 0)),
        }
    }

    /// Writes `blocks` as the content of inode `ino`: its block map and
    /// the `i_flags` that go with it.
    fn write_blocks(
        &mut self,
        ino: u32,
        blocks: &[Vec<u8>],
    ) -> Result<(([u32; inode::EXT2_N_BLOCKS], u64), u32), Error> {
        let (mut m, flags) = self.mapper(ino);
        let map = map_blocks(&mut *m, &mut self.space, &mut self.disk, blocks)?;
        Ok((map, flags))
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
        let mut jsb = JournalSuperblock::new_internal(bs, blocks, self.opts.uuid);
        if self.opts.ext4 {
            jsb = jsb.with_csum_v3();
        }
        let jsb = jsb.encode(bs as usize);
        let (mut m, flags) = self.mapper(inode::EXT2_JOURNAL_INO);
        for l in 0..u64::from(blocks) {
            let data = if l == 0 { Some(&jsb[..]) } else { None };
            m.map_block(&mut self.space, &mut self.disk, l, data)?;
        }
        let map = m.complete(&mut self.space, &mut self.disk)?;
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
        n.set_map(map, flags);
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
        let mut node = self.make_node(ino, entry, data)?;
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
    fn make_node(
        &mut self,
        ino: u32,
        entry: &Entry,
        data: &mut dyn SparseRead,
    ) -> Result<Node, Error> {
        let path = &entry.path;
        let meta = entry.meta;
        let mode = entry.mode();
        let mut n = match &entry.kind {
            Kind::Dir => Node::new_dir(meta, 0),
            Kind::File { size } => {
                let mut n = Node::new(mode, meta);
                self.write_file(ino, &mut n, path, *size, data)?;
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
                    n.i_block = inode::fast_symlink(target);
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
                    let (map, flags) = self.write_blocks(ino, &[block])?;
                    n.set_map(map, flags);
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

    /// Streams a file's content into freshly allocated blocks (see
    /// [`copy_content`]).
    fn write_file(
        &mut self,
        ino: u32,
        n: &mut Node,
        path: &TreePath,
        size: u64,
        data: &mut dyn SparseRead,
    ) -> Result<(), Error> {
        let start = self.space.cursor;
        let bs = self.space.geo.block_size;
        let (mut m, flags) = self.mapper(ino);
        copy_content(
            &mut *m,
            &mut self.space,
            &mut self.disk,
            bs,
            path,
            size,
            data,
        )?;
        n.set_map(m.complete(&mut self.space, &mut self.disk)?, flags);
        n.size = size;
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
            let mut entries: Vec<(u32, u8, &[u8])> = Vec::with_capacity(d.names.len() + 2);
            entries.push((ino, dir_entry::EXT2_FT_DIR, &b"."[..]));
            entries.push((d.parent, dir_entry::EXT2_FT_DIR, &b".."[..]));
            for (name, child) in &d.names {
                let ft = self.node(*child).map(|c| c.file_type()).unwrap_or(0);
                entries.push((*child, ft, name));
            }
            for e in &entries {
                if let Some(l) = links.get_mut((e.0 as usize).wrapping_sub(1)) {
                    *l += 1;
                }
            }
            let fmt = self.dir_format(ino);
            let mut blocks = fmt.linear(&entries);
            let mut index_flag = 0;
            // a directory outgrowing one block is hashed on ext4, as
            // mke2fs -d makes it; lost+found stays linear, as e2fsck
            // wants it
            if self.opts.ext4 && blocks.len() > 1 && ino != LOST_FOUND_INO {
                if let Some(b) = fmt.indexed(ino, d.parent, &entries[2..]) {
                    blocks = b;
                    index_flag = inode::EXT2_INDEX_FL;
                }
            }
            if ino == LOST_FOUND_INO {
                while (blocks.len() as u64) < lost_found_blocks {
                    blocks.push(fmt.empty());
                }
            }
            let (map, flags) = self.write_blocks(ino, &blocks)?;
            let size = (blocks.len() * bs) as u64;
            if let Some(n) = self.node_mut(ino) {
                n.set_map(map, flags | index_flag);
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
        // per group, one past the highest inode index in use
        let mut table_end = vec![0u32; geo.group_count as usize];
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
            if let Some(e) = table_end.get_mut(g as usize) {
                *e = idx + 1;
            }
            let blk = geo.inode_table(g) + idx / per_block;
            if table_block.as_ref().is_some_and(|(b, _)| *b != blk) {
                if let Some((b, data)) = table_block.take() {
                    self.disk.write_blocks(u64::from(b), &data)?;
                }
            }
            let tb = table_block.get_or_insert_with(|| (blk, vec![0u8; bs]));
            let raw = self.encode_inode(
                ino,
                node,
                links.get((ino - 1) as usize).copied().unwrap_or(0),
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
                ..Default::default()
            });
            if let (Some(v), Some(d)) = (self.csum, descs.last_mut()) {
                d.bg_block_bitmap_csum = csum::bitmap(v, &bb, geo.blocks_per_group);
                d.bg_inode_bitmap_csum = csum::bitmap(v, &ib, ipg);
                d.bg_itable_unused = ipg - table_end.get(g as usize).copied().unwrap_or(0);
                // holes in the sparse image read as zeros
                d.bg_flags = EXT4_BG_INODE_ZEROED;
            }
        }
        let mut gdt = vec![0u8; geo.gdt_blocks as usize * bs];
        let ds = geo.desc_size as usize;
        for (i, d) in descs.iter().enumerate() {
            let raw = match self.csum {
                Some(v) => {
                    let mut raw = d.encode_wide(ds);
                    csum::seal_group_desc(v, i as u32, &mut raw);
                    raw
                }
                None => d.encode().to_vec(),
            };
            if let Some(dst) = gdt.get_mut(i * ds..(i + 1) * ds) {
                dst.copy_from_slice(&raw);
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
            let mut raw = sb.encode();
            if self.csum.is_some() {
                csum::seal_superblock(&mut raw);
            }
            self.disk.write_at(offset, &raw)?;
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
            s_hash_seed: self.hash_seed,
            s_def_hash_version: DX_HASH_HALF_MD4,
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
        if self.opts.ext4 {
            // resize_inode is left out: it only reserves descriptor
            // blocks for growing the volume while it is mounted
            sb.s_feature_compat |= COMPAT_EXT_ATTR | COMPAT_DIR_INDEX;
            sb.s_feature_incompat |= INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG;
            sb.s_feature_ro_compat |= RO_COMPAT_HUGE_FILE
                | RO_COMPAT_DIR_NLINK
                | RO_COMPAT_EXTRA_ISIZE
                | RO_COMPAT_METADATA_CSUM;
            sb.s_desc_size = geo.desc_size as u16;
            sb.s_log_groups_per_flex = LOG_GROUPS_PER_FLEX;
            sb.s_checksum_type = csum::CSUM_TYPE_CRC32C;
            sb.s_default_mount_opts = DEFM_XATTR_USER | DEFM_ACL;
        }
        sb
    }

    /// The inode record of `n`, with `links` names; on ext4 with its
    /// flags, the high half of its sector count, dir_nlink's 1 for a
    /// directory past the link limit, and its checksum.
    fn encode_inode(
        &self,
        ino: u32,
        n: &Node,
        links: u32,
    ) -> Result<[u8; inode::INODE_SIZE], Error> {
        inode::encode_time(n.meta.mtime).ok_or(Error::Timestamp(n.meta.mtime))?;
        let mut i = Inode::new(u32::from(n.mode), n.meta, inode::INODE_SIZE as u32);
        i.i_links_count = links.min(u32::from(u16::MAX)) as u16;
        i.i_block = n.i_block;
        i.set_size(n.size, n.sectors);
        let mut raw = [0u8; inode::INODE_SIZE];
        if self.csum.is_some() {
            i.i_flags = n.flags;
            if n.dir.is_some() && links >= u32::from(inode::EXT4_LINK_MAX) {
                i.i_links_count = 1;
            }
        }
        i.store(&mut raw, ino, self.csum);
        Ok(raw)
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

impl Sink for Builder<'_> {
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> std::io::Result<()> {
        self.put_entry(entry, &mut Dense(data))
            .map_err(std::io::Error::from)
    }

    fn put_sparse(&mut self, entry: &Entry, data: &mut dyn SparseRead) -> std::io::Result<()> {
        self.put_entry(entry, data).map_err(std::io::Error::from)
    }
}
