//! Adding a tree to an existing ext2/ext3 volume in place, and deleting
//! paths from it.
//!
//! New content only ever goes into blocks that were free when the update
//! began, and blocks and inodes freed by overwritten or deleted files are
//! released only at the end, so nothing the old tree uses is touched
//! before the commit. An inode that exists is rewritten field by field
//! over its old record, so what is not decoded here (in-inode extended
//! attributes, checksums, project ids) stays as it was. The
//! metadata that changes in place (bitmaps, inode-table blocks, group
//! descriptors, superblock) is written on ext3 as one jbd2 transaction
//! first and only then checkpointed: an interruption before the commit
//! block leaves the old volume, after it a journal replay (e2fsck or the
//! kernel) completes the new one. ext2 has no journal; its metadata is
//! written in place directly.

use super::blockmap::{copy_content, BlockAlloc, BlockMapper, FileMap};
use super::bytes::*;
use super::dir_entry::{self, BlockPacker};
use super::inode::{self, Inode};
use super::io::Disk;
use super::superblock::*;
use super::{Error, Volume};
use crate::tree::{Dense, Entry, Kind, Meta, Sink, TreePath, S_IFDIR, S_IFMT};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;

const WRITABLE_RO_COMPAT: u32 = RO_COMPAT_SPARSE_SUPER
    | RO_COMPAT_LARGE_FILE
    | RO_COMPAT_HUGE_FILE
    | RO_COMPAT_DIR_NLINK
    | RO_COMPAT_EXTRA_ISIZE;

const JBD2_DESCRIPTOR_BLOCK: u32 = 1;
const JBD2_COMMIT_BLOCK: u32 = 2;
const JBD2_FLAG_ESCAPE: u16 = 1;
const JBD2_FLAG_SAME_UUID: u16 = 2;
const JBD2_FLAG_LAST_TAG: u16 = 8;
const JBD2_MAGIC: u32 = 0xC03B_3998;
/// Journal features we can write transactions for: none, or revoke.
const JBD2_KNOWN_INCOMPAT: u32 = 0x1;

struct DirState {
    parent: u32,
    /// (name, inode, file type) in directory order; a removed entry keeps
    /// its place with inode 0 so that positions in `index` stay valid.
    entries: Vec<(Vec<u8>, u32, u8)>,
    /// Live names only.
    index: HashMap<Vec<u8>, usize>,
}

/// Everything but the disk writer, so a [`BlockMapper`] can allocate
/// while the disk is borrowed separately.
struct State<'v> {
    vol: &'v Volume,
    bs: u32,
    /// Metadata blocks read so far, by block number, as they now are.
    blocks: BTreeMap<u64, Vec<u8>>,
    /// The subset of `blocks` that changed.
    dirty: BTreeSet<u64>,
    /// (free blocks, free inodes, used dirs) change per group.
    delta: Vec<(i64, i64, i64)>,
    cursor: u64,
    ino_cursor: u32,
    /// Released at commit time only.
    freed_blocks: Vec<u64>,
    /// (inode, whether it was a directory).
    freed_inodes: Vec<(u32, bool)>,
    /// Inodes allocated by this update: their records are written from
    /// zeros, not over what a freed inode left in the slot.
    fresh: BTreeSet<u32>,
    /// Whether directory entries carry a file type byte.
    filetype: bool,
    dirs: BTreeMap<u32, DirState>,
    /// Changed inodes, written to their table blocks at commit.
    inodes: BTreeMap<u32, Inode>,
    what: String,
    /// Metadata by position, never handed out whatever the bitmap says.
    layout: super::check::Layout,
}

impl State<'_> {
    fn block(&mut self, b: u64) -> Result<&mut Vec<u8>, Error> {
        if !self.blocks.contains_key(&b) {
            let mut d = vec![0u8; self.bs as usize];
            self.vol.read_block(b, &mut d)?;
            self.blocks.insert(b, d);
        }
        self.blocks
            .get_mut(&b)
            .ok_or_else(|| Error::Corrupt(format!("block {b} vanished from the cache")))
    }

    fn group_count(&self) -> u32 {
        self.vol.groups.len() as u32
    }

    fn group_blocks(&self, g: u32) -> u64 {
        let sb = &self.vol.sb;
        let first =
            u64::from(sb.s_first_data_block) + u64::from(g) * u64::from(sb.s_blocks_per_group);
        self.vol
            .blocks_count
            .saturating_sub(first)
            .min(u64::from(sb.s_blocks_per_group))
    }

    fn inode(&self, ino: u32) -> Result<Inode, Error> {
        match self.inodes.get(&ino) {
            Some(i) => Ok(i.clone()),
            None => self.vol.inode(ino),
        }
    }

    fn alloc_inode(&mut self, dir: bool) -> Result<u32, Error> {
        let ipg = self.vol.sb.s_inodes_per_group;
        let first_ino = self.vol.sb.s_first_ino.max(inode::EXT2_GOOD_OLD_FIRST_INO);
        let groups = self.group_count();
        let mut g = (self.ino_cursor.saturating_sub(1)) / ipg.max(1);
        while g < groups {
            let (Some(&gd), Some(&delta)) =
                (self.vol.groups.get(g as usize), self.delta.get(g as usize))
            else {
                break;
            };
            let free = i64::from(gd.bg_free_inodes_count) + delta.1;
            if free > 0 {
                let bm = gd.bg_inode_bitmap;
                for i in 0..ipg {
                    let Some(ino) = g.checked_mul(ipg).and_then(|x| x.checked_add(i + 1)) else {
                        break;
                    };
                    if ino < first_ino || ino < self.ino_cursor {
                        continue;
                    }
                    let used = self
                        .block(bm)?
                        .get((i / 8) as usize)
                        .map(|b| b & (1 << (i % 8)) != 0);
                    if used == Some(false) {
                        if let Some(byte) = self.block(bm)?.get_mut((i / 8) as usize) {
                            *byte |= 1 << (i % 8);
                        }
                        self.dirty.insert(bm);
                        self.delta[g as usize].1 -= 1;
                        if dir {
                            self.delta[g as usize].2 += 1;
                        }
                        self.ino_cursor = ino + 1;
                        self.fresh.insert(ino);
                        return Ok(ino);
                    }
                }
            }
            g += 1;
        }
        Err(Error::OutOfInodes {
            path: self.what.clone(),
            inodes_count: self.vol.sb.s_inodes_count,
        })
    }

    fn alloc(&mut self) -> Result<u32, Error> {
        let sb = &self.vol.sb;
        let bpg = u64::from(sb.s_blocks_per_group);
        let first = u64::from(sb.s_first_data_block);
        while self.cursor < self.vol.blocks_count {
            let g = (self.cursor.saturating_sub(first) / bpg.max(1)) as usize;
            let (Some(&gd), Some(&delta)) = (self.vol.groups.get(g), self.delta.get(g)) else {
                break;
            };
            let gstart = first + g as u64 * bpg;
            let free = i64::from(gd.bg_free_blocks_count) + delta.0;
            if free <= 0 {
                self.cursor = gstart + bpg;
                continue;
            }
            let n = self.group_blocks(g as u32);
            let bm = gd.bg_block_bitmap;
            let mut i = self.cursor - gstart;
            while i < n {
                let byte = self
                    .block(bm)?
                    .get((i / 8) as usize)
                    .copied()
                    .unwrap_or(0xff);
                if byte == 0xff && i.is_multiple_of(8) {
                    i += 8;
                    continue;
                }
                if byte & (1 << (i % 8)) == 0 && !self.layout.is_metadata(gstart + i) {
                    if let Some(b) = self.block(bm)?.get_mut((i / 8) as usize) {
                        *b |= 1 << (i % 8);
                    }
                    self.dirty.insert(bm);
                    self.delta[g].0 -= 1;
                    self.cursor = gstart + i + 1;
                    return u32::try_from(gstart + i).map_err(|_| {
                        Error::UnsupportedForWrite("block numbers beyond 32 bits".into())
                    });
                }
                i += 1;
            }
            self.cursor = gstart + bpg;
        }
        Err(Error::OutOfBlocks {
            path: self.what.clone(),
            blocks_count: self.vol.blocks_count as u32,
        })
    }

    /// Every block (data and indirect) of an indirect-mapped inode.
    fn blocks_of(&mut self, ino: &Inode) -> Result<Vec<u64>, Error> {
        let mut out = Vec::new();
        let fast_symlink =
            u32::from(ino.i_mode) & S_IFMT == crate::tree::S_IFLNK && ino.i_blocks_lo == 0;
        let dev = matches!(
            u32::from(ino.i_mode) & S_IFMT,
            crate::tree::S_IFCHR
                | crate::tree::S_IFBLK
                | crate::tree::S_IFIFO
                | crate::tree::S_IFSOCK
        );
        if fast_symlink || dev {
            return Ok(out);
        }
        for (slot, &b) in ino.i_block.iter().enumerate() {
            let depth = slot.saturating_sub(inode::EXT2_NDIR_BLOCKS - 1) as u32;
            self.walk(u64::from(b), depth, &mut out)?;
        }
        Ok(out)
    }

    fn walk(&mut self, b: u64, depth: u32, out: &mut Vec<u64>) -> Result<(), Error> {
        if b == 0 {
            return Ok(());
        }
        if b >= self.vol.blocks_count {
            return Err(Error::Corrupt(format!(
                "block pointer {b} beyond the volume"
            )));
        }
        // no block of a sound volume is named twice: a map that names
        // more blocks than the volume holds loops through itself
        if out.len() as u64 >= self.vol.blocks_count {
            return Err(Error::Corrupt(
                "a block map names more blocks than the volume holds".into(),
            ));
        }
        out.push(b);
        if depth > 0 {
            let blk = self.vol.meta_block(b)?;
            for i in 0..(self.bs / 4) as usize {
                self.walk(u64::from(le32(&blk, i * 4)), depth - 1, out)?;
            }
        }
        Ok(())
    }

    fn dir(&mut self, ino: u32, path: &TreePath) -> Result<&mut DirState, Error> {
        if !self.dirs.contains_key(&ino) {
            let i = self.inode(ino)?;
            if u32::from(i.i_mode) & S_IFMT != S_IFDIR {
                return Err(Error::ParentNotDir {
                    path: path.display_abs(),
                });
            }
            let mut st = DirState {
                parent: ino,
                entries: Vec::new(),
                index: HashMap::new(),
            };
            // the parent is whatever ".." names; read it raw
            let bs = u64::from(self.bs);
            if let Some(b) = self.vol.map(&i, 0)? {
                let mut buf = vec![0u8; bs as usize];
                self.vol.read_block(b, &mut buf)?;
                let filetype = self.vol.sb.s_feature_incompat & INCOMPAT_FILETYPE != 0;
                if let Ok(es) = dir_entry::parse_block(&buf, filetype) {
                    if let Some(dd) = es.iter().find(|e| e.name == b"..") {
                        st.parent = dd.inode;
                    }
                }
            }
            for e in self.vol.dir_entries(&i, path)? {
                st.index.insert(e.name.clone(), st.entries.len());
                st.entries.push((e.name, e.inode, e.file_type));
            }
            self.dirs.insert(ino, st);
        }
        self.dirs
            .get_mut(&ino)
            .ok_or_else(|| Error::Corrupt(format!("directory {ino} vanished")))
    }
}

impl BlockAlloc for State<'_> {
    fn alloc_block(&mut self) -> Result<u32, Error> {
        self.alloc()
    }
}

/// Populates an opened volume from a tree stream; call
/// [`Populator::finish`] to commit.
pub struct Populator<'v> {
    st: State<'v>,
    disk: Disk<'v>,
    timestamp: i64,
    /// Where to stop committing, to stand for an interruption in tests.
    stop: Stop,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Never,
    BeforeCommitBlock,
    BeforeCheckpoint,
    FailAfterCommitBlock,
}

impl<'v> Populator<'v> {
    /// Checks that the volume is ext2/ext3 as this crate writes it and
    /// needs no recovery; nothing is written until [`Populator::finish`]
    /// or a file's content arrives, and then only into free blocks.
    /// `timestamp` is the superblock write time and commit time.
    pub fn new(vol: &'v Volume, timestamp: i64) -> Result<Populator<'v>, Error> {
        let sb = &vol.sb;
        if sb.s_feature_incompat & INCOMPAT_RECOVER != 0 {
            return Err(Error::NeedsRecovery);
        }
        let bad_incompat = sb.s_feature_incompat & !INCOMPAT_FILETYPE;
        let bad_ro = sb.s_feature_ro_compat & !WRITABLE_RO_COMPAT;
        if bad_incompat != 0 || bad_ro != 0 {
            let names: Vec<String> = [incompat_names(bad_incompat), ro_compat_names(bad_ro)]
                .into_iter()
                .filter(|n| !n.is_empty())
                .collect();
            return Err(Error::UnsupportedForWrite(format!(
                "it has ext4 features that are only read here, not updated in place: {}",
                names.join(" ")
            )));
        }
        let layout = super::check::check_for_write(vol)?;
        if vol.has_journal() {
            let (jsb, _) = journal_superblock(vol)?;
            if be32(&jsb, 0) != JBD2_MAGIC {
                return Err(Error::Corrupt(
                    "journal superblock has a bad magic number".into(),
                ));
            }
            if be32(&jsb, 0x1C) != 0 {
                return Err(Error::NeedsRecovery);
            }
            if be32(&jsb, 0x28) & !JBD2_KNOWN_INCOMPAT != 0 || be32(&jsb, 0xC) != vol.block_size {
                return Err(Error::UnsupportedForWrite(
                    "journal features or block size".into(),
                ));
            }
        }
        let groups = vol.groups.len();
        let first_data = vol
            .groups
            .first()
            .map(|g| g.bg_inode_table)
            .unwrap_or(0)
            .max(u64::from(sb.s_first_data_block));
        Ok(Populator {
            st: State {
                vol,
                bs: vol.block_size,
                blocks: BTreeMap::new(),
                dirty: BTreeSet::new(),
                delta: vec![(0, 0, 0); groups],
                cursor: first_data,
                ino_cursor: 0,
                freed_blocks: Vec::new(),
                freed_inodes: Vec::new(),
                fresh: BTreeSet::new(),
                filetype: sb.s_feature_incompat & INCOMPAT_FILETYPE != 0,
                dirs: BTreeMap::new(),
                inodes: BTreeMap::new(),
                what: String::new(),
                layout,
            },
            disk: Disk::new(&vol.file, vol.block_size),
            timestamp,
            stop: Stop::Never,
        })
    }

    /// A trial: the update runs in full (allocation, directories, the
    /// journal's size) but nothing is written, so [`Populator::finish`]
    /// says whether the real update would fit. Data written is never read
    /// back, so the trial takes the same path as the real update.
    pub fn trial(mut self) -> Self {
        self.disk.discard = true;
        self
    }

    fn lookup_in(&mut self, dir: u32, name: &[u8], path: &TreePath) -> Result<Option<u32>, Error> {
        let d = self.st.dir(dir, path)?;
        Ok(d.index
            .get(name)
            .and_then(|&i| d.entries.get(i))
            .map(|e| e.1))
    }

    fn lookup(&mut self, path: &TreePath) -> Result<Option<u32>, Error> {
        let mut ino = inode::EXT2_ROOT_INO;
        let mut sofar = TreePath::root();
        for c in path.components() {
            let parent = sofar.clone();
            sofar = sofar.join(c);
            match self.lookup_in(ino, c, &parent)? {
                Some(i) => ino = i,
                None => return Ok(None),
            }
        }
        Ok(Some(ino))
    }

    fn bind(
        &mut self,
        dir: u32,
        name: &[u8],
        ino: u32,
        ft: u8,
        path: &TreePath,
    ) -> Result<(), Error> {
        let ft = if self.st.filetype { ft } else { 0 };
        let d = self.st.dir(dir, path)?;
        match d.index.get(name) {
            Some(&i) => {
                if let Some(e) = d.entries.get_mut(i) {
                    e.1 = ino;
                    e.2 = ft;
                }
            }
            None => {
                d.index.insert(name.to_vec(), d.entries.len());
                d.entries.push((name.to_vec(), ino, ft));
            }
        }
        Ok(())
    }

    fn new_dir(&mut self, parent: u32, meta: Meta) -> Result<u32, Error> {
        let ino = self.st.alloc_inode(true)?;
        let mut i = Inode::new(
            S_IFDIR | (meta.perm & 0o7777),
            meta,
            self.st.vol.sb.inode_size(),
        );
        // its entry in the parent and its own "."
        i.i_links_count = 2;
        self.st.inodes.insert(ino, i);
        // and the parent gains the new directory's ".."
        self.adjust_dir_links(parent, 1)?;
        self.st.dirs.insert(
            ino,
            DirState {
                parent,
                entries: Vec::new(),
                index: HashMap::new(),
            },
        );
        Ok(ino)
    }

    fn ensure_dir(&mut self, path: &TreePath) -> Result<u32, Error> {
        let mut ino = inode::EXT2_ROOT_INO;
        let mut sofar = TreePath::root();
        for c in path.components() {
            let parent = sofar.clone();
            sofar = sofar.join(c);
            ino = match self.lookup_in(ino, c, &parent)? {
                Some(child) => {
                    self.st.dir(child, &sofar)?;
                    child
                }
                None => {
                    if c.len() > dir_entry::EXT2_NAME_LEN {
                        return Err(Error::NameTooLong {
                            path: sofar.display_abs(),
                        });
                    }
                    let child = self.new_dir(ino, Meta::implicit_dir())?;
                    self.bind(ino, c, child, dir_entry::EXT2_FT_DIR, &parent)?;
                    child
                }
            };
        }
        Ok(ino)
    }

    /// Counts a subdirectory more or less in a directory's link count.
    /// The count is kept as it is on disk and adjusted by what changes,
    /// rather than recounted from entry type bytes, which may be 0
    /// (unknown) without the filetype feature. With dir_nlink a count of
    /// 1 means "too many to count" and stays so.
    fn adjust_dir_links(&mut self, dir: u32, by: i32) -> Result<(), Error> {
        let mut i = self.st.inode(dir)?;
        let nlink = self.st.vol.sb.s_feature_ro_compat & RO_COMPAT_DIR_NLINK != 0;
        if !(nlink && i.i_links_count == 1) {
            let n = i32::from(i.i_links_count) + by;
            i.i_links_count = if n >= i32::from(inode::EXT4_LINK_MAX) && nlink {
                1
            } else {
                n.clamp(0, i32::from(u16::MAX)) as u16
            };
        }
        self.st.inodes.insert(dir, i);
        Ok(())
    }

    /// Removes the entry `path` names: a file, symlink, device and so on
    /// loses one link (and is released at commit with its last), an
    /// empty directory is released. Then every parent directory the
    /// removal leaves empty goes too, up to but not including the root,
    /// as GNU patch does when it deletes a file. Nothing is written
    /// before [`Populator::finish`].
    pub fn delete(&mut self, path: &TreePath) -> Result<(), Error> {
        self.st.what = path.display_abs();
        let Some(parent_path) = path.parent() else {
            return Err(Error::UnsupportedForWrite(
                "deleting the root directory".into(),
            ));
        };
        let missing = || Error::NotFound {
            path: path.display_abs(),
        };
        let parent = match self.lookup(&parent_path)? {
            Some(p) if u32::from(self.st.inode(p)?.i_mode) & S_IFMT == S_IFDIR => p,
            _ => return Err(missing()),
        };
        let ino = self
            .lookup_in(parent, path.file_name(), &parent_path)?
            .ok_or_else(missing)?;
        if u32::from(self.st.inode(ino)?.i_mode) & S_IFMT == S_IFDIR {
            if !self.st.dir(ino, path)?.index.is_empty() {
                return Err(Error::DirNotEmpty {
                    path: path.display_abs(),
                });
            }
            self.remove_dir(parent, ino, path.file_name(), &parent_path)?;
        } else {
            self.unbind(parent, path.file_name(), &parent_path)?;
            self.unlink(ino)?;
        }
        // parents left empty
        let (mut dir, mut dir_path) = (parent, parent_path);
        while let Some(up_path) = dir_path.parent() {
            if !self.st.dir(dir, &dir_path)?.index.is_empty() {
                break;
            }
            let up = self.st.dir(dir, &dir_path)?.parent;
            // ".." must name the directory that holds it; anything else
            // is a volume we would rather not prune
            if self.lookup_in(up, dir_path.file_name(), &up_path)? != Some(dir) {
                break;
            }
            self.remove_dir(up, dir, dir_path.file_name(), &up_path)?;
            dir = up;
            dir_path = up_path;
        }
        Ok(())
    }

    /// Removes a name from a loaded directory.
    fn unbind(&mut self, dir: u32, name: &[u8], path: &TreePath) -> Result<(), Error> {
        let d = self.st.dir(dir, path)?;
        if let Some(i) = d.index.remove(name) {
            if let Some(e) = d.entries.get_mut(i) {
                e.1 = 0;
            }
        }
        Ok(())
    }

    /// Releases the empty directory `ino`, named `name` in `parent`.
    fn remove_dir(
        &mut self,
        parent: u32,
        ino: u32,
        name: &[u8],
        parent_path: &TreePath,
    ) -> Result<(), Error> {
        if ino == inode::EXT2_ROOT_INO {
            return Err(Error::UnsupportedForWrite(
                "deleting the root directory".into(),
            ));
        }
        self.unbind(parent, name, parent_path)?;
        self.st.dirs.remove(&ino);
        // its ".." no longer counts in the parent
        self.adjust_dir_links(parent, -1)?;
        let mut i = self.st.inode(ino)?;
        i.i_links_count = 1;
        self.st.inodes.insert(ino, i);
        self.unlink(ino)
    }

    /// Drops one link of `ino`, releasing it (at commit) with the last.
    fn unlink(&mut self, ino: u32) -> Result<(), Error> {
        let mut i = self.st.inode(ino)?;
        i.i_links_count = i.i_links_count.saturating_sub(1);
        if i.i_links_count == 0 {
            let blocks = self.st.blocks_of(&i)?;
            self.st.freed_blocks.extend(blocks);
            // an extended-attribute block may be shared; it goes with
            // its last user
            let acl = u64::from(i.i_file_acl_lo);
            if acl != 0 && acl < self.st.vol.blocks_count {
                let blk = self.st.block(acl)?;
                let refs = le32(blk, 4);
                if refs <= 1 {
                    self.st.freed_blocks.push(acl);
                } else {
                    put32(blk, 4, refs - 1);
                    self.st.dirty.insert(acl);
                }
            }
            let is_dir = u32::from(i.i_mode) & S_IFMT == S_IFDIR;
            self.st.freed_inodes.push((ino, is_dir));
            i.i_dtime = self.timestamp as u32;
        }
        self.st.inodes.insert(ino, i);
        Ok(())
    }

    fn set_meta(&mut self, ino: u32, meta: Meta) -> Result<(), Error> {
        let mut i = self.st.inode(ino)?;
        let fmt = u32::from(i.i_mode) & S_IFMT;
        i.apply_meta(fmt | (meta.perm & 0o7777), meta);
        self.st.inodes.insert(ino, i);
        Ok(())
    }

    fn put_entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<(), Error> {
        let path = &entry.path;
        self.st.what = path.display_abs();
        let Some(parent_path) = path.parent() else {
            if entry.kind != Kind::Dir {
                return Err(Error::RootNotDir {
                    path: path.display_abs(),
                });
            }
            return self.set_meta(inode::EXT2_ROOT_INO, entry.meta);
        };
        let name = path.file_name();
        if name.len() > dir_entry::EXT2_NAME_LEN {
            return Err(Error::NameTooLong {
                path: path.display_abs(),
            });
        }
        if inode::encode_time(entry.meta.mtime).is_none() {
            return Err(Error::Mtime {
                path: path.display_abs(),
                mtime: entry.meta.mtime,
            });
        }
        let parent = self.ensure_dir(&parent_path)?;
        let existing = self.lookup_in(parent, name, &parent_path)?;
        let existing_is_dir = match existing {
            Some(e) => u32::from(self.st.inode(e)?.i_mode) & S_IFMT == S_IFDIR,
            None => false,
        };
        if existing_is_dir {
            let e = existing.unwrap_or(0);
            if entry.kind == Kind::Dir {
                return self.set_meta(e, entry.meta);
            }
            return Err(Error::ReplaceDir {
                path: path.display_abs(),
            });
        }
        if let Kind::HardLink { target } = &entry.kind {
            let t = self.lookup(target)?;
            let t = match t {
                Some(t) if u32::from(self.st.inode(t)?.i_mode) & S_IFMT != S_IFDIR => t,
                _ => {
                    return Err(Error::HardLinkTarget {
                        path: path.display_abs(),
                        target: target.display_abs(),
                    })
                }
            };
            if existing == Some(t) {
                return Ok(());
            }
            let mut ti = self.st.inode(t)?;
            ti.i_links_count = ti.i_links_count.saturating_add(1);
            let ft = dir_entry::file_type(ti.i_mode);
            self.st.inodes.insert(t, ti);
            if let Some(old) = existing {
                self.unlink(old)?;
            }
            return self.bind(parent, name, t, ft, &parent_path);
        }
        let ino = if entry.kind == Kind::Dir {
            self.new_dir(parent, entry.meta)?
        } else {
            let ino = self.st.alloc_inode(false)?;
            let i = self.make_inode(entry, data)?;
            self.st.inodes.insert(ino, i);
            ino
        };
        if let Some(old) = existing {
            self.unlink(old)?;
        }
        self.bind(
            parent,
            name,
            ino,
            dir_entry::file_type(entry.mode() as u16),
            &parent_path,
        )
    }

    fn make_inode(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<Inode, Error> {
        let path = &entry.path;
        let mut i = Inode::new(entry.mode(), entry.meta, self.st.vol.sb.inode_size());
        i.i_links_count = 1;
        let bs = u64::from(self.st.bs);
        match &entry.kind {
            Kind::File { size } => {
                let block_size = self.st.bs;
                let mut m = BlockMapper::new(block_size);
                copy_content(
                    &mut m,
                    &mut self.st,
                    &mut self.disk,
                    block_size,
                    path,
                    *size,
                    &mut Dense(data),
                )?;
                let (blocks, sectors) = m.complete(&mut self.st, &mut self.disk)?;
                i.i_block = blocks;
                i.set_size(*size, sectors);
            }
            Kind::Symlink { target } => {
                if target.is_empty() {
                    return Err(Error::EmptySymlink {
                        path: path.display_abs(),
                    });
                }
                if target.len() < 60 {
                    let mut raw = [0u8; 60];
                    raw[..target.len()].copy_from_slice(target);
                    for (k, slot) in i.i_block.iter_mut().enumerate() {
                        *slot = le32(&raw, 4 * k);
                    }
                    i.set_size(target.len() as u64, 0);
                } else {
                    if target.len() >= bs as usize {
                        return Err(Error::SymlinkTooLong {
                            path: path.display_abs(),
                            len: target.len(),
                            max: bs as usize - 1,
                        });
                    }
                    let mut block = vec![0u8; bs as usize];
                    block[..target.len()].copy_from_slice(target);
                    let mut m = BlockMapper::new(self.st.bs);
                    m.map_block(&mut self.st, &mut self.disk, 0, Some(&block))?;
                    let (blocks, sectors) = m.complete(&mut self.st, &mut self.disk)?;
                    i.i_block = blocks;
                    i.set_size(target.len() as u64, sectors);
                }
            }
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                let enc = inode::encode_device(*major, *minor).ok_or(Error::DeviceNumber {
                    path: path.display_abs(),
                    major: *major,
                    minor: *minor,
                })?;
                i.i_block[0] = enc[0];
                i.i_block[1] = enc[1];
            }
            _ => {}
        }
        Ok(i)
    }

    /// Writes directories, then commits every metadata change (through
    /// the journal on ext3).
    pub fn finish(mut self) -> Result<(), Error> {
        let bs = self.st.bs as usize;
        // directories: rewritten linearly into fresh blocks
        let dir_inos: Vec<u32> = self.st.dirs.keys().copied().collect();
        for ino in dir_inos {
            let Some(d) = self.st.dirs.get(&ino) else {
                continue;
            };
            let touched = self.st.inodes.contains_key(&ino) || dir_changed(&self.st, ino, d)?;
            if !touched {
                continue;
            }
            let mut packer = BlockPacker::new(bs);
            let mut blocks = Vec::new();
            let parent = d.parent;
            let dt = if self.st.filetype {
                dir_entry::EXT2_FT_DIR
            } else {
                dir_entry::EXT2_FT_UNKNOWN
            };
            blocks.extend(packer.push(ino, dt, b"."));
            blocks.extend(packer.push(parent, dt, b".."));
            for (name, child, ft) in d.entries.iter().filter(|e| e.1 != 0) {
                blocks.extend(packer.push(*child, *ft, name));
            }
            blocks.extend(packer.take());
            let mut i = self.st.inode(ino)?;
            if i.i_block.iter().any(|&b| b != 0) {
                let old = self.st.blocks_of(&i)?;
                self.st.freed_blocks.extend(old);
            }
            self.st.what = format!("directory inode {ino}");
            let mut m = BlockMapper::new(self.st.bs);
            for (l, b) in blocks.iter().enumerate() {
                m.map_block(&mut self.st, &mut self.disk, l as u64, Some(b))?;
            }
            let (ib, mut sectors) = m.complete(&mut self.st, &mut self.disk)?;
            // i_blocks also counts an extended-attribute block, which the
            // directory keeps
            if i.i_file_acl_lo != 0 {
                sectors += u64::from(self.st.bs / 512);
            }
            i.i_block = ib;
            i.i_flags &= !inode::EXT2_INDEX_FL;
            i.set_size((blocks.len() * bs) as u64, sectors);
            self.st.inodes.insert(ino, i);
        }

        // inodes into their table blocks
        let isz = self.st.vol.sb.inode_size() as usize;
        let ipg = self.st.vol.sb.s_inodes_per_group;
        let inodes: Vec<(u32, Inode)> = std::mem::take(&mut self.st.inodes).into_iter().collect();
        for (ino, i) in inodes {
            let g = ((ino - 1) / ipg) as usize;
            let idx = ((ino - 1) % ipg) as usize * isz;
            let table = self.st.vol.groups[g].bg_inode_table;
            let b = table + (idx / bs) as u64;
            let off = idx % bs;
            let fresh = self.st.fresh.contains(&ino);
            let blk = self.st.block(b)?;
            if let Some(dst) = blk.get_mut(off..off + isz) {
                // an inode that exists keeps every byte not decoded here
                // (extended attributes in the inode above all)
                if fresh {
                    dst.fill(0);
                }
                i.encode_into(dst);
            }
            self.st.dirty.insert(b);
        }

        // releases, now that nothing new can land on them
        let first = u64::from(self.st.vol.sb.s_first_data_block);
        let bpg = u64::from(self.st.vol.sb.s_blocks_per_group);
        for b in std::mem::take(&mut self.st.freed_blocks) {
            if self.st.layout.is_metadata(b) {
                continue;
            }
            let g = ((b - first) / bpg) as usize;
            let i = (b - first) % bpg;
            let bm = self.st.vol.groups[g].bg_block_bitmap;
            if let Some(byte) = self.st.block(bm)?.get_mut((i / 8) as usize) {
                if *byte & (1 << (i % 8)) != 0 {
                    *byte &= !(1 << (i % 8));
                    self.st.delta[g].0 += 1;
                }
            }
            self.st.dirty.insert(bm);
        }
        for (ino, is_dir) in std::mem::take(&mut self.st.freed_inodes) {
            let g = ((ino - 1) / ipg) as usize;
            let i = (ino - 1) % ipg;
            let bm = self.st.vol.groups[g].bg_inode_bitmap;
            if let Some(byte) = self.st.block(bm)?.get_mut((i / 8) as usize) {
                if *byte & (1 << (i % 8)) != 0 {
                    *byte &= !(1 << (i % 8));
                    self.st.delta[g].1 += 1;
                    if is_dir {
                        self.st.delta[g].2 -= 1;
                    }
                }
            }
            self.st.dirty.insert(bm);
        }

        // descriptors and superblock
        let desc = self.st.vol.sb.desc_size() as u64;
        let gdt_start = first + 1;
        let (mut dfree_b, mut dfree_i) = (0i64, 0i64);
        for (g, &(db, di, dd)) in self.st.delta.clone().iter().enumerate() {
            if (db, di, dd) == (0, 0, 0) {
                continue;
            }
            dfree_b += db;
            dfree_i += di;
            let byte = g as u64 * desc;
            let b = gdt_start + byte / bs as u64;
            let off = (byte % bs as u64) as usize;
            let blk = self.st.block(b)?;
            let upd = |v: u16, d: i64| (i64::from(v) + d).clamp(0, i64::from(u16::MAX)) as u16;
            let fb = upd(le16(blk, off + 0xC), db);
            let fi = upd(le16(blk, off + 0xE), di);
            let ud = upd(le16(blk, off + 0x10), dd);
            put16(blk, off + 0xC, fb);
            put16(blk, off + 0xE, fi);
            put16(blk, off + 0x10, ud);
            self.st.dirty.insert(b);
        }
        let (sb_block, sb_off) = if bs == 1024 {
            (1u64, 0usize)
        } else {
            (0, 1024)
        };
        let t = self.timestamp as u32;
        let blk = self.st.block(sb_block)?;
        let fb = (i64::from(le32(blk, sb_off + 0xC)) + dfree_b).max(0) as u32;
        let fi = (i64::from(le32(blk, sb_off + 0x10)) + dfree_i).max(0) as u32;
        put32(blk, sb_off + 0xC, fb);
        put32(blk, sb_off + 0x10, fi);
        put32(blk, sb_off + 0x30, t);
        self.st.dirty.insert(sb_block);

        self.disk.flush()?;
        sync(self.st.vol)?;
        let dirty: Vec<(u64, Vec<u8>)> = self
            .st
            .dirty
            .iter()
            .filter_map(|b| self.st.blocks.get(b).map(|d| (*b, d.clone())))
            .collect();
        if self.st.vol.has_journal() {
            self.journal_commit(&dirty, sb_block, sb_off)?;
        } else {
            for (b, d) in &dirty {
                self.disk.write_blocks(*b, d)?;
            }
            self.disk.flush()?;
            sync(self.st.vol)?;
        }
        Ok(())
    }

    fn journal_commit(
        &mut self,
        dirty: &[(u64, Vec<u8>)],
        sb_block: u64,
        sb_off: usize,
    ) -> Result<(), Error> {
        let vol = self.st.vol;
        let bs = vol.block_size as usize;
        let (mut jsb, jino) = journal_superblock(vol)?;
        let first = u64::from(be32(&jsb, 0x14));
        let maxlen = u64::from(be32(&jsb, 0x10));
        let seq = be32(&jsb, 0x18);
        let uuid: [u8; 16] = bytes(&jsb, 0x30);
        let per_desc = ((bs - 12 - 16) / 8).max(1);
        let needed = dirty.len().div_ceil(per_desc) as u64 + dirty.len() as u64 + 1;
        let available = maxlen.saturating_sub(first);
        if needed > available {
            return Err(Error::JournalTooSmall { needed, available });
        }
        let phys = |l: u64| -> Result<u64, Error> {
            vol.map(&jino, l)?
                .ok_or_else(|| Error::Corrupt(format!("journal block {l} is not mapped")))
        };
        let mut l = first;
        for chunk in dirty.chunks(per_desc) {
            let mut desc = vec![0u8; bs];
            put_be32(&mut desc, 0, JBD2_MAGIC);
            put_be32(&mut desc, 4, JBD2_DESCRIPTOR_BLOCK);
            put_be32(&mut desc, 8, seq);
            let mut off = 12;
            for (k, (b, data)) in chunk.iter().enumerate() {
                let mut flags = 0u16;
                if k > 0 {
                    flags |= JBD2_FLAG_SAME_UUID;
                }
                if k + 1 == chunk.len() {
                    flags |= JBD2_FLAG_LAST_TAG;
                }
                let mut data = data.clone();
                if be32(&data, 0) == JBD2_MAGIC {
                    flags |= JBD2_FLAG_ESCAPE;
                    put_be32(&mut data, 0, 0);
                }
                put_be32(&mut desc, off, *b as u32);
                desc[off + 6..off + 8].copy_from_slice(&flags.to_be_bytes());
                off += 8;
                if k == 0 {
                    put_bytes(&mut desc, off, &uuid);
                    off += 16;
                }
                self.disk.write_blocks(phys(l + 1 + k as u64)?, &data)?;
            }
            self.disk.write_blocks(phys(l)?, &desc)?;
            l += 1 + chunk.len() as u64;
        }
        self.disk.flush()?;
        sync(vol)?;
        if self.stop == Stop::BeforeCommitBlock {
            return Ok(());
        }
        // the commit block makes the transaction real
        let mut commit = vec![0u8; bs];
        put_be32(&mut commit, 0, JBD2_MAGIC);
        put_be32(&mut commit, 4, JBD2_COMMIT_BLOCK);
        put_be32(&mut commit, 8, seq);
        commit[48..56].copy_from_slice(&(self.timestamp as u64).to_be_bytes());
        self.disk.write_blocks(phys(l)?, &commit)?;
        self.disk.flush()?;
        sync(vol)?;
        let jsb_phys = phys(0)?;
        put_be32(&mut jsb, 0x1C, first as u32);
        self.disk.write_blocks(jsb_phys, &jsb)?;
        self.disk.flush()?;
        let mut raw = [0u8; SUPERBLOCK_SIZE];
        super::io::read_at(&vol.file, SUPERBLOCK_OFFSET, &mut raw)?;
        let incompat = le32(&raw, 0x60);
        put32(&mut raw, 0x60, incompat | INCOMPAT_RECOVER);
        self.disk.write_at(SUPERBLOCK_OFFSET, &raw)?;
        sync(vol)?;
        if self.stop == Stop::BeforeCheckpoint {
            return Ok(());
        }
        // the journal now holds the transaction and the volume says it
        // needs recovery: the update is made, whatever fails next
        self.checkpoint(dirty, sb_block, sb_off, jsb, jsb_phys, seq)
            .map_err(|e| Error::AfterCommit(Box::new(e)))
    }

    /// Copies the transaction's blocks to their places and empties the
    /// journal again.
    fn checkpoint(
        &mut self,
        dirty: &[(u64, Vec<u8>)],
        sb_block: u64,
        sb_off: usize,
        mut jsb: Vec<u8>,
        jsb_phys: u64,
        seq: u32,
    ) -> Result<(), Error> {
        let vol = self.st.vol;
        if self.stop == Stop::FailAfterCommitBlock {
            return Err(Error::Corrupt("a write failed (injected)".into()));
        }
        // checkpoint; the superblock keeps needs_recovery until the
        // journal is empty again
        for (b, d) in dirty {
            let mut d = d.clone();
            if *b == sb_block {
                let inc = le32(&d, sb_off + 0x60);
                put32(&mut d, sb_off + 0x60, inc | INCOMPAT_RECOVER);
            }
            self.disk.write_blocks(*b, &d)?;
        }
        self.disk.flush()?;
        sync(vol)?;
        put_be32(&mut jsb, 0x1C, 0);
        put_be32(&mut jsb, 0x18, seq.wrapping_add(1));
        self.disk.write_blocks(jsb_phys, &jsb)?;
        self.disk.flush()?;
        sync(vol)?;
        if let Some((_, d)) = dirty.iter().find(|(b, _)| *b == sb_block) {
            self.disk.write_blocks(sb_block, d)?;
        }
        self.disk.flush()?;
        sync(vol)
    }
}

/// Whether a loaded directory differs from what is on disk (it was
/// loaded only to look something up otherwise).
fn dir_changed(st: &State, ino: u32, d: &DirState) -> Result<bool, Error> {
    let i = st.vol.inode(ino)?;
    let on_disk = st.vol.dir_entries(&i, &TreePath::root())?;
    if on_disk.len() != d.entries.len() {
        return Ok(true);
    }
    // a removed entry (inode 0) differs from every entry on disk
    Ok(on_disk
        .iter()
        .zip(&d.entries)
        .any(|(a, b)| a.name != b.0 || a.inode != b.1 || a.file_type != b.2))
}

fn journal_superblock(vol: &Volume) -> Result<(Vec<u8>, Inode), Error> {
    let jino = vol.inode(vol.sb.s_journal_inum)?;
    let b = vol
        .map(&jino, 0)?
        .ok_or_else(|| Error::Corrupt("journal inode has no first block".into()))?;
    let mut d = vec![0u8; vol.block_size as usize];
    vol.read_block(b, &mut d)?;
    Ok((d, jino))
}

fn sync(vol: &Volume) -> Result<(), Error> {
    vol.file.sync_data().map_err(|e| Error::Io {
        offset: 0,
        source: e,
    })
}

impl Sink for Populator<'_> {
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> std::io::Result<()> {
        self.put_entry(entry, data).map_err(std::io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext::{Builder, Options};
    use crate::tree::manifest::{manifest, Manifest};
    use crate::tree::Source;
    use std::fs::File;
    use std::path::Path;
    use std::process::Command;

    fn entry(path: &str, kind: Kind) -> Entry {
        Entry {
            path: TreePath::from_member(path.as_bytes()).unwrap(),
            kind,
            meta: Meta {
                perm: 0o644,
                uid: 0,
                gid: 0,
                mtime: 1_000_000,
            },
            xattrs: Default::default(),
        }
    }

    struct Files(Vec<(&'static str, Vec<u8>)>);

    impl Source for Files {
        fn emit(&mut self, sink: &mut dyn Sink) -> std::io::Result<()> {
            for (p, d) in &self.0 {
                sink.put(
                    &entry(
                        p,
                        Kind::File {
                            size: d.len() as u64,
                        },
                    ),
                    &mut &d[..],
                )?;
            }
            Ok(())
        }
    }

    fn e2fsck(img: &Path, opt: &str) -> i32 {
        Command::new("/usr/sbin/e2fsck")
            .arg(opt)
            .arg(img)
            .output()
            .expect("e2fsck missing: install e2fsprogs")
            .status
            .code()
            .unwrap_or(-1)
    }

    fn read(img: &Path) -> Manifest {
        let mut v = Volume::open(File::open(img).unwrap()).unwrap();
        manifest(&mut v).unwrap()
    }

    /// The paths the interrupted update deletes: a file big enough for
    /// indirect and doubly indirect blocks, a sparse one whose only block
    /// lies behind a triply indirect one, the only file of a directory
    /// tree, and one of two hard links.
    const DELETED: [&str; 4] = ["gone", "sparse", "dir/sub/f", "link-a"];

    /// A new file `img` in `dir`, open for reading and writing.
    fn image_file(dir: &Path) -> (std::path::PathBuf, File) {
        let img = dir.join("img");
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&img)
            .unwrap();
        (img, f)
    }

    fn interrupted(stop: Stop) -> (Manifest, Manifest, std::path::PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (img, f) = image_file(dir.path());
        let mut o = Options::new(8 << 20);
        o.block_size = Some(1024);
        let mut b = Builder::new(o, &f).unwrap();
        Files(vec![
            ("old", b"old content".to_vec()),
            ("keep", b"kept".to_vec()),
            ("gone", vec![9; 400_000]),
            ("dir/sub/f", b"f".to_vec()),
            ("link-a", b"two names".to_vec()),
        ])
        .emit(&mut b)
        .unwrap();
        let link = Entry {
            kind: Kind::HardLink {
                target: TreePath::from_member(b"link-a").unwrap(),
            },
            ..entry("link-b", Kind::Dir)
        };
        b.put(&link, &mut std::io::empty()).unwrap();
        // past 12 + 256 + 256^2 blocks of 1 KiB
        let size = 70u64 << 20;
        let sparse = entry("sparse", Kind::File { size });
        let mut data = std::io::Read::chain(std::io::repeat(0).take(size - 1), &b"x"[..]);
        b.put(&sparse, &mut data).unwrap();
        b.finish().unwrap();
        drop(f);
        let v = Volume::open(File::open(&img).unwrap()).unwrap();
        let sp = v.inode(v.lookup(&sparse.path).unwrap()).unwrap();
        assert_ne!(
            sp.i_block[inode::EXT2_TIND_BLOCK],
            0,
            "no triply indirect block"
        );
        drop(v);
        let before = read(&img);
        std::fs::copy(&img, dir.path().join("before")).unwrap();
        let v =
            Volume::open_rw(File::options().read(true).write(true).open(&img).unwrap()).unwrap();
        let mut p = Populator::new(&v, 2_000_000).unwrap();
        p.stop = stop;
        Files(vec![
            ("old", b"new content".to_vec()),
            ("added", vec![1; 5000]),
        ])
        .emit(&mut p)
        .unwrap();
        for d in DELETED {
            p.delete(&TreePath::from_member(d.as_bytes()).unwrap())
                .unwrap();
        }
        p.finish().unwrap();
        (before, read(&img), img, dir)
    }

    /// Every block `old` uses outside its journal, compared with the
    /// same block of `new`: the blocks that differ.
    fn used_blocks_that_differ(old: &Path, new: &Path) -> Vec<u64> {
        let v = Volume::open(File::open(old).unwrap()).unwrap();
        let newf = File::open(new).unwrap();
        let bs = u64::from(v.block_size);
        let jino = v.inode(v.sb.s_journal_inum).unwrap();
        let journal: BTreeSet<u64> = (0..jino.size() / bs)
            .filter_map(|l| v.map(&jino, l).unwrap())
            .collect();
        let first = u64::from(v.sb.s_first_data_block);
        let bpg = u64::from(v.sb.s_blocks_per_group);
        let mut differ = Vec::new();
        let (mut a, mut b) = (vec![0u8; bs as usize], vec![0u8; bs as usize]);
        for (g, gd) in v.groups.iter().enumerate() {
            let mut bm = vec![0u8; bs as usize];
            v.read_block(gd.bg_block_bitmap, &mut bm).unwrap();
            for i in 0..bpg {
                let blk = first + g as u64 * bpg + i;
                let used = bm[(i / 8) as usize] & (1 << (i % 8)) != 0;
                if blk >= v.blocks_count || !used || journal.contains(&blk) {
                    continue;
                }
                v.read_block(blk, &mut a).unwrap();
                super::super::io::read_at(&newf, blk * bs, &mut b).unwrap();
                if a != b {
                    differ.push(blk);
                }
            }
        }
        differ
    }

    #[test]
    fn interrupted_before_commit_block_leaves_the_old_volume() {
        let (before, after, img, d) = interrupted(Stop::BeforeCommitBlock);
        assert_eq!(before, after);
        assert_eq!(e2fsck(&img, "-fn"), 0);
        // only free blocks and the journal were written: every block the
        // old volume uses holds the same bytes
        let old = d.path().join("before");
        assert_eq!(used_blocks_that_differ(&old, &img), Vec::<u64>::new());
        let (o, n) = (std::fs::read(&old).unwrap(), std::fs::read(&img).unwrap());
        assert_eq!(o[..2048], n[..2048], "boot block or superblock");
    }

    fn check_replayed(before: &Manifest, after: &Manifest) {
        let p = |s: &str| TreePath::from_member(s.as_bytes()).unwrap();
        assert_eq!(after[&p("old")].size, 11);
        assert_ne!(after[&p("old")].sha256, before[&p("old")].sha256);
        assert_eq!(after[&p("added")].size, 5000);
        assert_eq!(after[&p("keep")], before[&p("keep")]);
        for d in DELETED.iter().chain(&["dir/sub", "dir"]) {
            assert!(!after.contains_key(&p(d)), "{d} is still there");
        }
        let mut kept = before[&p("link-b")].clone();
        kept.link_group = None;
        assert_eq!(after[&p("link-b")], kept);
    }

    #[test]
    fn interrupted_after_commit_block_is_replayed() {
        let (before, _, img, d) = interrupted(Stop::BeforeCheckpoint);
        // the journal replay is a fix, so the first run reports 1
        assert!(matches!(e2fsck(&img, "-fy"), 0 | 1));
        assert_eq!(e2fsck(&img, "-fn"), 0);
        check_replayed(&before, &read(&img));
        // the same volume as an uninterrupted update makes, free counts
        // included
        let (_, done, whole, _d2) = interrupted(Stop::Never);
        assert_eq!(done, read(&img));
        let counts = |i: &Path| {
            let o = Command::new("/usr/sbin/dumpe2fs").arg(i).output().unwrap();
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.contains("ree blocks") || l.contains("ree inodes"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(counts(&img), counts(&whole));
        drop(d);
    }

    #[test]
    fn a_failure_after_the_commit_block_says_the_update_is_committed() {
        let d = tempfile::tempdir().unwrap();
        let (img, f) = image_file(d.path());
        let b = Builder::new(Options::new(8 << 20), &f).unwrap();
        b.finish().unwrap();
        let v = Volume::open_rw(f).unwrap();
        let mut p = Populator::new(&v, 2_000_000).unwrap();
        p.stop = Stop::FailAfterCommitBlock;
        Files(vec![("added", b"new".to_vec())])
            .emit(&mut p)
            .unwrap();
        let e = p.finish().unwrap_err();
        assert!(matches!(e, Error::AfterCommit(_)), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("injected") && msg.contains("update is committed"),
            "{msg}"
        );
        // and it is: a replay completes it
        assert!(matches!(e2fsck(&img, "-fy"), 0 | 1));
        let p = |s: &str| TreePath::from_member(s.as_bytes()).unwrap();
        assert_eq!(read(&img)[&p("added")].size, 3);
    }

    #[test]
    #[ignore = "root tier: the kernel replays the journal on a loop mount"]
    fn interrupted_after_commit_block_is_replayed_by_the_kernel() {
        let (before, _, img, d) = interrupted(Stop::BeforeCheckpoint);
        let mnt = d.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let st = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mount -o loop failed (run as root with loop devices)"
        );
        let old = std::fs::read(mnt.join("old"));
        let gone = DELETED.map(|p| mnt.join(p).exists());
        let dir = mnt.join("dir").exists();
        let st = Command::new("umount").arg(&mnt).status().unwrap();
        assert!(st.success());
        assert_eq!(old.unwrap(), b"new content");
        assert_eq!(gone, [false; 4]);
        assert!(!dir);
        assert_eq!(e2fsck(&img, "-fn"), 0);
        check_replayed(&before, &read(&img));
    }
}
