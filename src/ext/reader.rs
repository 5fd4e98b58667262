//! Reading ext2/ext3/ext4 volumes without mounting them.
//!
//! Checksums are not verified; htree directories are read as the linear
//! directories they also are; inline data (files, directories and
//! symlinks kept in the inode and its `system.data` attribute), bigalloc
//! clusters and shared blocks are read.

use super::bytes::le32;
use super::dir_entry;
use super::group_desc::GroupDesc;
use super::inode::{self, Inode};
use super::io::read_at;
use super::superblock::*;
use super::Error;
use crate::tree::{Entry, Kind, Meta, Sink, Source, TreePath};
use crate::tree::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;

const SUPPORTED_INCOMPAT: u32 = INCOMPAT_FILETYPE
    | INCOMPAT_RECOVER
    | INCOMPAT_EXTENTS
    | INCOMPAT_64BIT
    | INCOMPAT_MMP
    | INCOMPAT_FLEX_BG
    | INCOMPAT_EA_INODE
    | INCOMPAT_CSUM_SEED
    | INCOMPAT_LARGEDIR
    | INCOMPAT_INLINE_DATA;

/// Directory nesting deeper than this is treated as a loop.
pub const MAX_DEPTH: usize = 1024;
const EXT4_EXT_MAGIC: u16 = 0xF30A;
const MAX_EXTENT_DEPTH: u16 = 5;
const CACHE_BLOCKS: usize = 16;
const RO_COMPAT_BIGALLOC: u32 = 0x0200;
const RO_COMPAT_SHARED_BLOCKS: u32 = 0x4000;
/// In-inode extended attributes start with this magic number.
const EXT4_XATTR_MAGIC: u32 = 0xEA02_0000;
/// `system.` attributes; inline data is `system.data`.
const EXT4_XATTR_INDEX_SYSTEM: u8 = 7;
/// Bytes of inline data held in `i_block` itself.
const INLINE_IBLOCK: usize = 60;
/// An inline directory's `i_block` starts with its parent's inode number.
const INLINE_DOTDOT: usize = 4;

/// The type of a directory entry or inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    File,
    Dir,
    Symlink,
    CharDev,
    BlockDev,
    Fifo,
    Socket,
}

impl FileType {
    fn from_mode(mode: u16) -> Option<FileType> {
        Some(match u32::from(mode) & S_IFMT {
            S_IFREG => FileType::File,
            S_IFDIR => FileType::Dir,
            S_IFLNK => FileType::Symlink,
            S_IFCHR => FileType::CharDev,
            S_IFBLK => FileType::BlockDev,
            S_IFIFO => FileType::Fifo,
            S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }
}

/// One name in a directory, with what its inode says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntryInfo {
    pub name: Vec<u8>,
    pub ino: u32,
    pub file_type: FileType,
    pub meta: Meta,
    pub size: u64,
    pub links: u16,
}

/// An opened ext2/3/4 volume.
pub struct Volume {
    pub(super) file: File,
    pub(super) sb: Superblock,
    pub(super) block_size: u32,
    pub(super) blocks_count: u64,
    pub(super) groups: Vec<GroupDesc>,
    /// Length of the image file (`u64::MAX` when unknown).
    pub(super) file_len: u64,
    /// Recently read metadata blocks (indirect blocks, extent nodes).
    cache: RefCell<Vec<(u64, Vec<u8>)>>,
}

impl Volume {
    /// Opens a volume, checking that the superblock is ext2/3/4 and that
    /// every incompatible feature is one this reader understands.
    pub fn open(file: File) -> Result<Volume, Error> {
        let mut raw = [0u8; SUPERBLOCK_SIZE];
        read_at(&file, SUPERBLOCK_OFFSET, &mut raw)?;
        let sb = Superblock::decode(&raw);
        if sb.s_magic != EXT2_SUPER_MAGIC {
            return Err(Error::BadMagic { magic: sb.s_magic });
        }
        let unknown = sb.s_feature_incompat & !SUPPORTED_INCOMPAT;
        if unknown != 0 {
            return Err(Error::UnsupportedFeatures { features: unknown });
        }
        let corrupt = |m: &str| Error::CorruptSuperblock(m.to_string());
        let block_size = sb
            .block_size()
            .filter(|&b| b <= 65536)
            .ok_or_else(|| corrupt("block size out of range"))?;
        let bits = u64::from(block_size) * 8;
        if sb.s_feature_ro_compat & RO_COMPAT_BIGALLOC != 0 {
            // a bitmap bit stands for a cluster: a group spans
            // s_clusters_per_group clusters of 2^(cluster - block) blocks
            let shift = sb.s_log_cluster_size.wrapping_sub(sb.s_log_block_size);
            if sb.s_clusters_per_group == 0
                || u64::from(sb.s_clusters_per_group) > bits
                || shift > 16
            {
                return Err(corrupt("s_clusters_per_group or cluster size out of range"));
            }
            if u64::from(sb.s_blocks_per_group) != u64::from(sb.s_clusters_per_group) << shift {
                return Err(corrupt(
                    "s_blocks_per_group is not s_clusters_per_group clusters",
                ));
            }
        } else if sb.s_blocks_per_group == 0 || u64::from(sb.s_blocks_per_group) > bits {
            return Err(corrupt("s_blocks_per_group out of range"));
        }
        if sb.s_inodes_per_group == 0 || u64::from(sb.s_inodes_per_group) > bits {
            return Err(corrupt("s_inodes_per_group out of range"));
        }
        let isz = sb.inode_size();
        if isz < 128 || !isz.is_power_of_two() || isz > block_size {
            return Err(corrupt("s_inode_size out of range"));
        }
        let blocks_count = sb.blocks_count();
        let first = u64::from(sb.s_first_data_block);
        if blocks_count <= first {
            return Err(corrupt("s_blocks_count not beyond s_first_data_block"));
        }
        let group_count = (blocks_count - first).div_ceil(u64::from(sb.s_blocks_per_group));
        if u64::from(sb.s_inodes_count)
            > group_count.saturating_mul(u64::from(sb.s_inodes_per_group))
        {
            return Err(corrupt("s_inodes_count exceeds the groups' inodes"));
        }
        if sb.s_feature_incompat & INCOMPAT_64BIT != 0 && sb.s_desc_size != 0 && sb.s_desc_size < 32
        {
            return Err(corrupt("s_desc_size too small"));
        }
        let desc_size = sb.desc_size() as usize;
        // block devices report a zero length in their metadata
        let file_len = {
            use std::io::{Seek, SeekFrom};
            (&file).seek(SeekFrom::End(0)).unwrap_or(u64::MAX)
        };
        let gdt_len = (group_count as usize).saturating_mul(desc_size);
        if gdt_len as u64 > file_len {
            return Err(corrupt("group descriptors larger than the volume"));
        }
        let mut gdt = vec![0u8; gdt_len];
        read_at(
            &file,
            gdt_block(&sb, block_size) * u64::from(block_size),
            &mut gdt,
        )?;
        let groups = gdt
            .chunks(desc_size)
            .map(|c| GroupDesc::decode(c, desc_size))
            .collect();
        Ok(Volume {
            file,
            block_size,
            blocks_count,
            groups,
            sb,
            file_len,
            cache: RefCell::new(Vec::new()),
        })
    }

    /// Opens a volume for [`super::Populator`]; `file` must be open for
    /// reading and writing. Nothing is written here.
    pub fn open_rw(file: File) -> Result<Volume, Error> {
        Volume::open(file)
    }

    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// The volume label, without trailing NULs.
    pub fn label(&self) -> Vec<u8> {
        let l = &self.sb.s_volume_name;
        l[..l.iter().position(|&b| b == 0).unwrap_or(l.len())].to_vec()
    }

    pub fn uuid(&self) -> [u8; 16] {
        self.sb.s_uuid
    }

    pub fn has_journal(&self) -> bool {
        self.sb.s_feature_compat & COMPAT_HAS_JOURNAL != 0
    }

    pub(super) fn read_block(&self, b: u64, buf: &mut [u8]) -> Result<(), Error> {
        if b >= self.blocks_count {
            return Err(Error::Corrupt(format!(
                "block {b} beyond the volume's {} blocks",
                self.blocks_count
            )));
        }
        read_at(&self.file, b * u64::from(self.block_size), buf)
    }

    /// A metadata block through the small cache.
    pub(super) fn meta_block(&self, b: u64) -> Result<Vec<u8>, Error> {
        if let Some((_, d)) = self.cache.borrow().iter().find(|(n, _)| *n == b) {
            return Ok(d.clone());
        }
        let mut d = vec![0u8; self.block_size as usize];
        self.read_block(b, &mut d)?;
        let mut c = self.cache.borrow_mut();
        if c.len() >= CACHE_BLOCKS {
            c.remove(0);
        }
        c.push((b, d.clone()));
        Ok(d)
    }

    /// Reads inode `ino`.
    pub fn inode(&self, ino: u32) -> Result<Inode, Error> {
        let count = self.sb.s_inodes_count;
        if ino == 0 || ino > count {
            return Err(Error::InodeOutOfRange {
                ino: u64::from(ino),
                count,
            });
        }
        let ipg = self.sb.s_inodes_per_group;
        let g = ((ino - 1) / ipg) as usize;
        let idx = u64::from((ino - 1) % ipg);
        let gd = self
            .groups
            .get(g)
            .ok_or_else(|| Error::Corrupt(format!("inode {ino} in missing group {g}")))?;
        let isz = u64::from(self.sb.inode_size());
        let offset = gd
            .bg_inode_table
            .checked_mul(u64::from(self.block_size))
            .and_then(|o| o.checked_add(idx * isz))
            .ok_or_else(|| Error::Corrupt(format!("inode table of group {g} out of range")))?;
        if gd.bg_inode_table >= self.blocks_count {
            return Err(Error::Corrupt(format!(
                "inode table of group {g} beyond the volume"
            )));
        }
        let mut raw = vec![0u8; isz.min(256) as usize];
        read_at(&self.file, offset, &mut raw)?;
        let mut i = Inode::decode(&raw);
        if i.i_flags & inode::EXT4_INLINE_DATA_FL != 0 && isz > 128 {
            // the content continues in the in-inode attributes
            let mut whole = vec![0u8; isz as usize];
            read_at(&self.file, offset, &mut whole)?;
            let from = (128 + usize::from(i.i_extra_isize)).min(whole.len());
            i.ibody_xattrs = whole.split_off(from);
        }
        Ok(i)
    }

    /// Whether files may share blocks (the shared_blocks feature, set by
    /// deduplicating tools): then a walk's read budget is per file.
    fn shared_blocks(&self) -> bool {
        self.sb.s_feature_ro_compat & RO_COMPAT_SHARED_BLOCKS != 0
    }

    /// The physical block of logical block `l`, `None` for a hole or an
    /// unwritten extent.
    pub(super) fn map(&self, ino: &Inode, l: u64) -> Result<Option<u64>, Error> {
        Ok(self.map_run(ino, l)?.0)
    }

    /// Like [`Self::map`], and for a hole also how many blocks from `l` on
    /// are hole (at least 1; `u64::MAX` when nothing is mapped after it),
    /// so that readers cross a sparse file's holes in one step instead of
    /// one lookup per block.
    pub(super) fn map_run(&self, ino: &Inode, l: u64) -> Result<(Option<u64>, u64), Error> {
        if ino.i_flags & inode::EXT4_EXTENTS_FL != 0 {
            return self.map_extent(ino, l);
        }
        let p = u64::from(self.block_size / 4);
        let nd = inode::EXT2_NDIR_BLOCKS as u64;
        let hole = |run: u64| Ok((None, run.max(1)));
        // (root pointer, indices below it, blocks the root covers, offset)
        let (root, idx, span, r): (usize, Vec<u64>, u64, u64) = if l < nd {
            let b = ino.i_block.get(l as usize).copied().unwrap_or(0);
            return match nonzero(b) {
                Some(b) => Ok((Some(b), 1)),
                None => hole(1),
            };
        } else if l - nd < p {
            (inode::EXT2_IND_BLOCK, vec![l - nd], p, l - nd)
        } else if l - nd - p < p * p {
            let r = l - nd - p;
            (inode::EXT2_DIND_BLOCK, vec![r / p, r % p], p * p, r)
        } else if l - nd - p - p * p < p * p * p {
            let r = l - nd - p - p * p;
            (
                inode::EXT2_TIND_BLOCK,
                vec![r / (p * p), (r / p) % p, r % p],
                p * p * p,
                r,
            )
        } else {
            return hole(u64::MAX);
        };
        let mut b = u64::from(ino.i_block[root]);
        // blocks below the pointer about to be read, and how far into them
        // `l` lies: a zero pointer makes all the rest of them hole
        let (mut below, mut within) = (span, r);
        for i in idx {
            if b == 0 {
                return hole(below - within);
            }
            let blk = self.meta_block(b)?;
            below /= p;
            within %= below;
            b = u64::from(le32(&blk, (i * 4) as usize));
            if b == 0 && below == 1 {
                // a run of zero pointers in this last-level block
                let zeros = (i..p)
                    .take_while(|&j| le32(&blk, (j * 4) as usize) == 0)
                    .count() as u64;
                return hole(zeros);
            }
        }
        match nonzero(b as u32) {
            Some(b) => Ok((Some(b), 1)),
            None => hole(below - within),
        }
    }

    fn map_extent(&self, ino: &Inode, l: u64) -> Result<(Option<u64>, u64), Error> {
        let mut node: Vec<u8> = ino.i_block_bytes().to_vec();
        let bad = |m: &str| Error::Corrupt(format!("extent tree: {m}"));
        // the first block a later sibling of the current node maps
        let mut limit = u64::MAX;
        let hole = |to: u64| Ok((None, to.saturating_sub(l).max(1)));
        for level in 0..=MAX_EXTENT_DEPTH {
            let magic = super::bytes::le16(&node, 0);
            let entries = usize::from(super::bytes::le16(&node, 2));
            let depth = super::bytes::le16(&node, 6);
            if magic != EXT4_EXT_MAGIC {
                return Err(bad("bad magic"));
            }
            if depth > MAX_EXTENT_DEPTH - level || 12 + entries * 12 > node.len() {
                return Err(bad("bad header"));
            }
            let rec = |i: usize| &node[12 + i * 12..24 + i * 12];
            if depth == 0 {
                let mut next = limit;
                for i in 0..entries {
                    let e = rec(i);
                    let start = u64::from(le32(e, 0));
                    let raw_len = u64::from(super::bytes::le16(e, 4));
                    let (len, unwritten) = if raw_len > 32768 {
                        (raw_len - 32768, true)
                    } else {
                        (raw_len, false)
                    };
                    if l >= start && l < start + len {
                        if unwritten {
                            return hole(start + len);
                        }
                        let phys =
                            (u64::from(super::bytes::le16(e, 6)) << 32) | u64::from(le32(e, 8));
                        return Ok((Some(phys + (l - start)), 1));
                    }
                    if start > l {
                        next = next.min(start);
                    }
                }
                return hole(next);
            }
            let mut child = None;
            for i in 0..entries {
                let e = rec(i);
                let start = u64::from(le32(e, 0));
                if start <= l {
                    child =
                        Some((u64::from(super::bytes::le16(e, 8)) << 32) | u64::from(le32(e, 4)));
                } else {
                    limit = limit.min(start);
                    break;
                }
            }
            let Some(c) = child else { return hole(limit) };
            node = self.meta_block(c)?;
        }
        Err(bad("too deep"))
    }

    /// Inode number of `path`, following no symlinks.
    pub fn lookup(&self, path: &TreePath) -> Result<u32, Error> {
        let mut ino = inode::EXT2_ROOT_INO;
        let mut sofar = TreePath::root();
        for c in path.components() {
            sofar = sofar.join(c);
            let dir = self.inode(ino)?;
            if FileType::from_mode(dir.i_mode) != Some(FileType::Dir) {
                return Err(Error::NotADirectory {
                    path: sofar.parent().unwrap_or_default().display_abs(),
                });
            }
            let found = self
                .dir_entries(&dir, &sofar)?
                .into_iter()
                .find(|e| e.name == c)
                .map(|e| e.inode);
            ino = found.ok_or_else(|| Error::NotFound {
                path: sofar.display_abs(),
            })?;
        }
        Ok(ino)
    }

    /// The most bytes of directories the volume can hold: its blocks, at
    /// most as many as the image file holds.
    fn dir_limit(&self) -> u64 {
        let bs = u64::from(self.block_size);
        self.blocks_count
            .saturating_mul(bs)
            .min(self.file_len.div_ceil(bs).saturating_mul(bs))
    }

    pub(super) fn dir_entries(
        &self,
        dir: &Inode,
        path: &TreePath,
    ) -> Result<Vec<dir_entry::DirEntry>, Error> {
        let filetype = self.sb.s_feature_incompat & INCOMPAT_FILETYPE != 0;
        if dir.i_flags & inode::EXT4_INLINE_DATA_FL != 0 {
            // the parent's number, then entries filling the rest of
            // i_block, then entries filling the system.data value
            let data = inline_data(dir, path)?;
            let bad =
                |m: String| Error::Corrupt(format!("inline directory {}: {m}", path.display_abs()));
            let (head, tail) = data.split_at(INLINE_IBLOCK.min(data.len()));
            let mut out =
                dir_entry::parse_block(head.get(INLINE_DOTDOT..).unwrap_or(&[]), filetype)
                    .map_err(bad)?;
            if !tail.is_empty() {
                out.extend(dir_entry::parse_block(tail, filetype).map_err(bad)?);
            }
            return Ok(out);
        }
        let bs = u64::from(self.block_size);
        let mut out = Vec::new();
        let mut buf = vec![0u8; bs as usize];
        // Every block of a directory holds entries, so it was written and
        // lies within the image file (mke2fs -d leaves the file short of
        // the volume's end, never short of its data); holes are read one
        // by one, so a size beyond that is refused rather than walked.
        if dir.size() > self.dir_limit() {
            return Err(Error::Corrupt(format!(
                "directory {} claims {} bytes, more than the volume",
                path.display_abs(),
                dir.size()
            )));
        }
        let blocks = dir.size().div_ceil(bs);
        let mut l = 0;
        while l < blocks {
            let (b, run) = self.map_run(dir, l)?;
            let Some(b) = b else {
                l = l.saturating_add(run);
                continue;
            };
            self.read_block(b, &mut buf)?;
            let es = dir_entry::parse_block(&buf, filetype)
                .map_err(|m| Error::Corrupt(format!("directory {}: {m}", path.display_abs())))?;
            out.extend(es.into_iter().filter(|e| e.name != b"." && e.name != b".."));
            l += 1;
        }
        Ok(out)
    }

    fn info(&self, ino: u32, name: Vec<u8>, path: &TreePath) -> Result<DirEntryInfo, Error> {
        let i = self.inode(ino)?;
        let file_type = FileType::from_mode(i.i_mode).ok_or_else(|| {
            Error::Corrupt(format!(
                "{}: unknown mode {:o}",
                path.display_abs(),
                i.i_mode
            ))
        })?;
        Ok(DirEntryInfo {
            name,
            ino,
            file_type,
            meta: meta_of(&i),
            size: i.size(),
            links: i.i_links_count,
        })
    }

    /// The entries of the directory at `path`, without `.` and `..`.
    pub fn read_dir(&self, path: &TreePath) -> Result<Vec<DirEntryInfo>, Error> {
        let ino = self.lookup(path)?;
        let dir = self.inode(ino)?;
        if FileType::from_mode(dir.i_mode) != Some(FileType::Dir) {
            return Err(Error::NotADirectory {
                path: path.display_abs(),
            });
        }
        self.dir_entries(&dir, path)?
            .into_iter()
            .map(|e| {
                let p = path.join(&e.name);
                self.info(e.inode, e.name, &p)
            })
            .collect()
    }

    /// What `path` itself is.
    pub fn stat(&self, path: &TreePath) -> Result<DirEntryInfo, Error> {
        let ino = self.lookup(path)?;
        self.info(ino, path.file_name().to_vec(), path)
    }

    /// A reader over the content of the regular file at `path`.
    pub fn read_file(&self, path: &TreePath) -> Result<FileReader<'_>, Error> {
        let ino = self.lookup(path)?;
        let i = self.inode(ino)?;
        if FileType::from_mode(i.i_mode) != Some(FileType::File) {
            return Err(Error::NotAFile {
                path: path.display_abs(),
            });
        }
        self.file_reader(i, path)
    }

    /// The largest size a file's block map can address.
    fn max_file_size(&self, i: &Inode) -> u64 {
        let bs = u64::from(self.block_size);
        let blocks = if i.i_flags & inode::EXT4_EXTENTS_FL != 0 {
            1 << 32
        } else {
            let p = bs / 4;
            inode::EXT2_NDIR_BLOCKS as u64 + p + p * p + p * p * p
        };
        blocks.saturating_mul(bs)
    }

    fn file_reader(&self, i: Inode, path: &TreePath) -> Result<FileReader<'_>, Error> {
        if i.size() > self.max_file_size(&i) {
            return Err(Error::Corrupt(format!(
                "{}: size {} exceeds what its block map can address",
                path.display_abs(),
                i.size()
            )));
        }
        let inline = if i.i_flags & inode::EXT4_INLINE_DATA_FL != 0 {
            let data = inline_data(&i, path)?;
            if i.size() > data.len() as u64 {
                return Err(Error::Corrupt(format!(
                    "{}: size {} exceeds its {} bytes of inline data",
                    path.display_abs(),
                    i.size(),
                    data.len()
                )));
            }
            Some(data)
        } else {
            None
        };
        Ok(FileReader {
            vol: self,
            path: path.display_abs(),
            blocks_left: self.blocks_count,
            size: i.size(),
            inode: i,
            pos: 0,
            buf: inline.unwrap_or_else(|| vec![0; self.block_size as usize]),
            buf_block: None,
        })
    }

    /// The target of the symlink at `path`.
    pub fn readlink(&self, path: &TreePath) -> Result<Vec<u8>, Error> {
        let ino = self.lookup(path)?;
        let i = self.inode(ino)?;
        if FileType::from_mode(i.i_mode) != Some(FileType::Symlink) {
            return Err(Error::NotASymlink {
                path: path.display_abs(),
            });
        }
        self.link_target(&i, path)
    }

    fn link_target(&self, i: &Inode, path: &TreePath) -> Result<Vec<u8>, Error> {
        let size = i.size();
        if size > u64::from(self.block_size) {
            return Err(Error::Corrupt(format!(
                "{}: symlink of {size} bytes",
                path.display_abs()
            )));
        }
        let acl_sectors = if i.i_file_acl_lo != 0 {
            self.block_size / 512
        } else {
            0
        };
        let fast = size < 60
            && i.i_blocks_lo.saturating_sub(acl_sectors) == 0
            && i.i_flags & inode::EXT4_EXTENTS_FL == 0;
        if fast {
            return Ok(i.i_block_bytes()[..size as usize].to_vec());
        }
        let mut out = Vec::with_capacity(size as usize);
        self.file_reader(i.clone(), path)?
            .read_to_end(&mut out)
            .map_err(|e| Error::Content {
                path: path.display_abs(),
                source: e,
            })?;
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_dir(
        &self,
        ino: u32,
        path: &TreePath,
        depth: usize,
        seen_dirs: &mut HashSet<u32>,
        links: &mut HashMap<u32, TreePath>,
        budget: &mut WalkBudget,
        sink: &mut dyn Sink,
    ) -> Result<(), std::io::Error> {
        if depth > MAX_DEPTH || !seen_dirs.insert(ino) {
            return Err(Error::DirectoryLoop {
                path: path.display_abs(),
                depth: MAX_DEPTH,
            }
            .into());
        }
        let dir = self.inode(ino)?;
        // All directories together fit in the volume too: without this,
        // many directories each claiming the whole volume in holes would
        // multiply the work. (With shared blocks each one fits alone.)
        let dir_budget = if self.shared_blocks() {
            self.dir_limit()
        } else {
            budget.dir_bytes
        };
        budget.dir_bytes = dir_budget.checked_sub(dir.size()).ok_or_else(|| {
            Error::Corrupt(format!(
                "directory {}: the directories claim more bytes than the volume holds",
                path.display_abs()
            ))
        })?;
        for e in self.dir_entries(&dir, path)? {
            let child = path.join(&e.name);
            let i = self.inode(e.inode)?;
            let ft = FileType::from_mode(i.i_mode).ok_or_else(|| {
                Error::Corrupt(format!(
                    "{}: unknown mode {:o}",
                    child.display_abs(),
                    i.i_mode
                ))
            })?;
            let meta = meta_of(&i);
            if ft != FileType::Dir && i.i_links_count > 1 {
                if let Some(first) = links.get(&e.inode) {
                    let entry = Entry {
                        path: child,
                        kind: Kind::HardLink {
                            target: first.clone(),
                        },
                        meta,
                        xattrs: Default::default(),
                    };
                    sink.put(&entry, &mut std::io::empty())?;
                    continue;
                }
                links.insert(e.inode, child.clone());
            }
            let kind = match ft {
                FileType::File => Kind::File { size: i.size() },
                FileType::Dir => Kind::Dir,
                FileType::Symlink => Kind::Symlink {
                    target: self.link_target(&i, &child)?,
                },
                FileType::CharDev => {
                    let (major, minor) = i.device();
                    Kind::CharDev { major, minor }
                }
                FileType::BlockDev => {
                    let (major, minor) = i.device();
                    Kind::BlockDev { major, minor }
                }
                FileType::Fifo => Kind::Fifo,
                FileType::Socket => Kind::Socket,
            };
            let entry = Entry {
                path: child.clone(),
                kind,
                meta,
                xattrs: Default::default(),
            };
            if ft == FileType::File {
                let mut r = self.file_reader(i, &child)?;
                // blocks shared between files are read once per file
                let shared = self.shared_blocks();
                if !shared {
                    r.blocks_left = budget.data_blocks;
                }
                sink.put_sparse(&entry, &mut r)?;
                if !shared {
                    budget.data_blocks = r.blocks_left;
                }
            } else {
                sink.put(&entry, &mut std::io::empty())?;
            }
            if ft == FileType::Dir {
                self.emit_dir(e.inode, &child, depth + 1, seen_dirs, links, budget, sink)?;
            }
        }
        Ok(())
    }
}

fn nonzero(b: u32) -> Option<u64> {
    (b != 0).then_some(u64::from(b))
}

fn meta_of(i: &Inode) -> Meta {
    Meta {
        perm: u32::from(i.i_mode) & 0o7777,
        uid: i.uid(),
        gid: i.gid(),
        mtime: i.mtime(),
    }
}

impl Source for Volume {
    /// Emits the root directory, then every entry depth-first, each
    /// directory before its content. A regular file's second and later
    /// names come out as [`Kind::HardLink`] to the first.
    fn emit(&mut self, sink: &mut dyn Sink) -> std::io::Result<()> {
        let root = self.inode(inode::EXT2_ROOT_INO)?;
        let entry = Entry {
            path: TreePath::root(),
            kind: Kind::Dir,
            meta: meta_of(&root),
            xattrs: Default::default(),
        };
        sink.put(&entry, &mut std::io::empty())?;
        let mut seen = HashSet::new();
        let mut links = HashMap::new();
        let mut budget = WalkBudget {
            dir_bytes: self.dir_limit(),
            data_blocks: self.blocks_count,
        };
        self.emit_dir(
            inode::EXT2_ROOT_INO,
            &TreePath::root(),
            0,
            &mut seen,
            &mut links,
            &mut budget,
            sink,
        )
    }
}

/// What one walk of the tree may read: no two directories or files of a
/// sound volume share a block, so together they fit in it. A hostile image
/// whose block maps point many times at the same blocks would otherwise
/// make a few megabytes read as terabytes.
struct WalkBudget {
    dir_bytes: u64,
    data_blocks: u64,
}

/// The content of one regular file, block by block.
pub struct FileReader<'v> {
    vol: &'v Volume,
    /// The file's path, for errors.
    path: String,
    /// Data blocks this reader may still read (see [`WalkBudget`]).
    blocks_left: u64,
    inode: Inode,
    size: u64,
    pos: u64,
    /// One block of content, or the whole content of an inline file.
    buf: Vec<u8>,
    buf_block: Option<u64>,
}

impl FileReader<'_> {
    pub fn size(&self) -> u64 {
        self.size
    }

    fn is_inline(&self) -> bool {
        self.inode.i_flags & inode::EXT4_INLINE_DATA_FL != 0
    }

    /// Where a hole of `run` blocks starting at the current position's
    /// block ends, within the file.
    fn hole_end(&self, run: u64) -> u64 {
        let bs = u64::from(self.vol.block_size);
        (self.pos / bs)
            .saturating_add(run)
            .saturating_mul(bs)
            .min(self.size)
    }

    /// Bytes of hole from the current position on (0 at data), up to the
    /// end of the file.
    fn hole_len(&self) -> std::io::Result<u64> {
        if self.pos >= self.size || self.is_inline() {
            return Ok(0);
        }
        let bs = u64::from(self.vol.block_size);
        match self.vol.map_run(&self.inode, self.pos / bs)? {
            (Some(_), _) => Ok(0),
            (None, run) => Ok(self.hole_end(run) - self.pos),
        }
    }
}

impl crate::tree::SparseRead for FileReader<'_> {
    fn skip_hole(&mut self) -> std::io::Result<u64> {
        let n = self.hole_len()?;
        self.pos += n;
        Ok(n)
    }
}

impl Read for FileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        if self.is_inline() {
            // the size was checked against the inline data
            let from = self.pos as usize;
            let n = (self.size - self.pos).min(out.len() as u64) as usize;
            out[..n].copy_from_slice(&self.buf[from..from + n]);
            self.pos += n as u64;
            return Ok(n);
        }
        let bs = u64::from(self.vol.block_size);
        let l = self.pos / bs;
        if self.buf_block != Some(l) {
            match self.vol.map_run(&self.inode, l)? {
                (Some(b), _) => {
                    self.blocks_left = self.blocks_left.checked_sub(1).ok_or_else(|| {
                        std::io::Error::other(Error::Corrupt(format!(
                            "{}: its block map reads more blocks than the volume holds \
                             (blocks shared between files?)",
                            self.path
                        )))
                    })?;
                    self.vol.read_block(b, &mut self.buf)?
                }
                (None, run) => {
                    // a hole: its zeros come without reading anything
                    let n = (self.hole_end(run) - self.pos).min(out.len() as u64) as usize;
                    out[..n].fill(0);
                    self.pos += n as u64;
                    return Ok(n);
                }
            }
            self.buf_block = Some(l);
        }
        let off = (self.pos % bs) as usize;
        let n = ((bs as usize - off) as u64)
            .min(self.size - self.pos)
            .min(out.len() as u64) as usize;
        out[..n].copy_from_slice(&self.buf[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Where the group descriptors start: the block after the superblock's.
/// That is `s_first_data_block + 1`, except with 1 KiB blocks and bigalloc,
/// where the data starts at block 0 but the superblock still lies in
/// block 1.
pub(super) fn gdt_block(sb: &Superblock, block_size: u32) -> u64 {
    let sb_block = u64::from(sb.s_first_data_block).max(u64::from(block_size == 1024));
    sb_block + 1
}

/// An inline-data inode's content: `i_block`'s 60 bytes, then the value
/// of its in-inode `system.data` attribute (absent when everything fits in
/// `i_block`).
fn inline_data(i: &Inode, path: &TreePath) -> Result<Vec<u8>, Error> {
    let mut out = i.i_block_bytes().to_vec();
    out.extend_from_slice(system_data(&i.ibody_xattrs).map_err(|m| {
        Error::Corrupt(format!(
            "{}: inline data attribute: {m}",
            path.display_abs()
        ))
    })?);
    Ok(out)
}

/// The value of `system.data` among in-inode attributes: a magic number,
/// then entries (name length, name index, value offset from the first
/// entry, value inode, value size, hash, name) up to four zero bytes.
fn system_data(area: &[u8]) -> Result<&[u8], String> {
    if area.len() < 4 || le32(area, 0) != EXT4_XATTR_MAGIC {
        return Ok(&[]);
    }
    let entries = &area[4..];
    let mut off = 0usize;
    while off + 16 <= entries.len() && le32(entries, off) != 0 {
        let name_len = usize::from(entries[off]);
        let index = entries[off + 1];
        let value_offs = usize::from(super::bytes::le16(entries, off + 2));
        let value_inum = le32(entries, off + 4);
        let value_size = le32(entries, off + 8) as usize;
        let name = entries
            .get(off + 16..off + 16 + name_len)
            .ok_or("entry name beyond the inode")?;
        if index == EXT4_XATTR_INDEX_SYSTEM && name == b"data" {
            if value_inum != 0 {
                return Err("value kept in another inode".into());
            }
            return entries
                .get(value_offs..value_offs + value_size)
                .ok_or_else(|| "value beyond the inode".into());
        }
        off += (16 + name_len + 3) & !3;
    }
    Ok(&[])
}
