//! What an in-place update holds between the first entry and the commit:
//! the metadata blocks it read and changed, block and inode allocation
//! from the volume's own bitmaps (initialising those of groups flagged
//! uninitialised as the kernel would), and the directories it loaded.

use super::super::blockmap::BlockAlloc;
use super::super::check::{self, Layout};
use super::super::dir_entry;
use super::super::group_desc::{EXT4_BG_BLOCK_UNINIT, EXT4_BG_INODE_UNINIT};
use super::super::inode::{self, Inode};
use super::super::superblock::*;
use super::super::{Error, Volume};
use crate::tree::{TreePath, S_IFDIR, S_IFMT};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub(super) struct DirState {
    pub(super) parent: u32,
    /// (name, inode, file type) in directory order; a removed entry keeps
    /// its place with inode 0 so that positions in `index` stay valid.
    pub(super) entries: Vec<(Vec<u8>, u32, u8)>,
    /// Live names only.
    pub(super) index: HashMap<Vec<u8>, usize>,
}

/// How one group changes.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct GroupChange {
    pub(super) free_blocks: i64,
    pub(super) free_inodes: i64,
    pub(super) used_dirs: i64,
    /// Its bitmaps changed: counts, checksums and flags are rewritten.
    pub(super) touched: bool,
    /// `bg_flags` bits to clear (the uninit flags of a bitmap now used).
    pub(super) clear_flags: u16,
    /// The new `bg_itable_unused`, when an inode past the old mark is
    /// taken.
    pub(super) itable_unused: Option<u32>,
}

/// What the volume's features ask of a writer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Features {
    /// The checksum seed under metadata_csum.
    pub(super) csum: Option<u32>,
    /// Group descriptors carry a checksum (metadata_csum or gdt_csum):
    /// the uninit flags and `bg_itable_unused` mean something.
    pub(super) group_csum: bool,
    pub(super) filetype: bool,
    pub(super) extents: bool,
    pub(super) dir_index: bool,
}

/// Everything but the disk writer, so a block map can allocate while
/// the disk is borrowed separately.
pub(super) struct State<'v> {
    pub(super) vol: &'v Volume,
    pub(super) bs: u32,
    pub(super) features: Features,
    /// Metadata blocks read so far, by block number, as they now are.
    pub(super) blocks: BTreeMap<u64, Vec<u8>>,
    /// The subset of `blocks` that changed.
    pub(super) dirty: BTreeSet<u64>,
    pub(super) groups: Vec<GroupChange>,
    cursor: u64,
    ino_cursor: u32,
    /// Released at commit time only.
    pub(super) freed_blocks: Vec<u64>,
    /// (inode, whether it was a directory).
    pub(super) freed_inodes: Vec<(u32, bool)>,
    /// Inodes allocated by this update: their records are written from
    /// zeros, not over what a freed inode left in the slot.
    pub(super) fresh: BTreeSet<u32>,
    pub(super) dirs: BTreeMap<u32, DirState>,
    /// Changed inodes, written to their table blocks at commit.
    pub(super) inodes: BTreeMap<u32, Inode>,
    pub(super) what: String,
    /// Metadata by position, never handed out whatever the bitmap says.
    pub(super) layout: Layout,
}

impl<'v> State<'v> {
    pub(super) fn new(vol: &'v Volume, features: Features, layout: Layout) -> State<'v> {
        let cursor = vol
            .groups
            .first()
            .map(|g| g.bg_inode_table)
            .unwrap_or(0)
            .max(u64::from(vol.sb.s_first_data_block));
        State {
            vol,
            bs: vol.block_size,
            features,
            blocks: BTreeMap::new(),
            dirty: BTreeSet::new(),
            groups: vec![GroupChange::default(); vol.groups.len()],
            cursor,
            ino_cursor: 0,
            freed_blocks: Vec::new(),
            freed_inodes: Vec::new(),
            fresh: BTreeSet::new(),
            dirs: BTreeMap::new(),
            inodes: BTreeMap::new(),
            what: String::new(),
            layout,
        }
    }

    pub(super) fn block(&mut self, b: u64) -> Result<&mut Vec<u8>, Error> {
        if !self.blocks.contains_key(&b) {
            let mut d = vec![0u8; self.bs as usize];
            self.vol.read_block(b, &mut d)?;
            self.blocks.insert(b, d);
        }
        self.blocks
            .get_mut(&b)
            .ok_or_else(|| Error::Corrupt(format!("block {b} vanished from the cache")))
    }

    fn group_first(&self, g: usize) -> u64 {
        let sb = &self.vol.sb;
        u64::from(sb.s_first_data_block) + g as u64 * u64::from(sb.s_blocks_per_group)
    }

    fn group_blocks(&self, g: usize) -> u64 {
        self.vol
            .blocks_count
            .saturating_sub(self.group_first(g))
            .min(u64::from(self.vol.sb.s_blocks_per_group))
    }

    /// The bitmap block of group `g` (its inode bitmap with `inodes`),
    /// loaded; a bitmap its group flags uninitialised is made as the
    /// kernel makes it: for blocks, the group's metadata in use and
    /// nothing else; for inodes, all free. Bits past the group's end are
    /// set.
    pub(super) fn bitmap(&mut self, g: usize, inodes: bool) -> Result<u64, Error> {
        let gd = self.vol.groups[g];
        let (b, flag) = if inodes {
            (gd.bg_inode_bitmap, EXT4_BG_INODE_UNINIT)
        } else {
            (gd.bg_block_bitmap, EXT4_BG_BLOCK_UNINIT)
        };
        if self.blocks.contains_key(&b) {
            return Ok(b);
        }
        if !(self.features.group_csum && gd.bg_flags & flag != 0) {
            self.block(b)?;
            return Ok(b);
        }
        let bits = self.bs as usize * 8;
        let mut d = vec![0u8; self.bs as usize];
        let (n, first) = if inodes {
            (u64::from(self.vol.sb.s_inodes_per_group), None)
        } else {
            (self.group_blocks(g), Some(self.group_first(g)))
        };
        for i in 0..bits as u64 {
            let used = i >= n || first.is_some_and(|f| self.layout.is_metadata(f + i));
            if used {
                d[(i / 8) as usize] |= 1 << (i % 8);
            }
        }
        self.blocks.insert(b, d);
        Ok(b)
    }

    /// Notes that group `g`'s bitmap (inode bitmap with `inodes`) changed.
    fn mark(&mut self, g: usize, inodes: bool, b: u64) {
        self.dirty.insert(b);
        let gd = self.vol.groups[g];
        let flag = if inodes {
            EXT4_BG_INODE_UNINIT
        } else {
            EXT4_BG_BLOCK_UNINIT
        };
        let c = &mut self.groups[g];
        c.touched = true;
        if self.features.group_csum && gd.bg_flags & flag != 0 {
            c.clear_flags |= flag;
        }
    }

    /// Sets or clears bit `i` of a group's bitmap; whether it changed.
    pub(super) fn set_bit(
        &mut self,
        g: usize,
        inodes: bool,
        i: u64,
        used: bool,
    ) -> Result<bool, Error> {
        let b = self.bitmap(g, inodes)?;
        let Some(byte) = self.block(b)?.get_mut((i / 8) as usize) else {
            return Ok(false);
        };
        let was = *byte & (1 << (i % 8)) != 0;
        if was == used {
            return Ok(false);
        }
        *byte ^= 1 << (i % 8);
        self.mark(g, inodes, b);
        Ok(true)
    }

    fn bit(&mut self, g: usize, inodes: bool, i: u64) -> Result<Option<bool>, Error> {
        let b = self.bitmap(g, inodes)?;
        Ok(self
            .block(b)?
            .get((i / 8) as usize)
            .map(|byte| byte & (1 << (i % 8)) != 0))
    }

    pub(super) fn inode(&self, ino: u32) -> Result<Inode, Error> {
        match self.inodes.get(&ino) {
            Some(i) => Ok(i.clone()),
            None => self.vol.inode(ino),
        }
    }

    pub(super) fn alloc_inode(&mut self, dir: bool) -> Result<u32, Error> {
        let ipg = self.vol.sb.s_inodes_per_group;
        let first_ino = self.vol.sb.s_first_ino.max(inode::EXT2_GOOD_OLD_FIRST_INO);
        let mut g = (self.ino_cursor.saturating_sub(1)) / ipg.max(1);
        while (g as usize) < self.vol.groups.len() {
            let gi = g as usize;
            let gd = self.vol.groups[gi];
            let free = i64::from(gd.bg_free_inodes_count) + self.groups[gi].free_inodes;
            if free > 0 {
                for i in 0..ipg {
                    let Some(ino) = g.checked_mul(ipg).and_then(|x| x.checked_add(i + 1)) else {
                        break;
                    };
                    if ino < first_ino || ino < self.ino_cursor {
                        continue;
                    }
                    if self.bit(gi, true, u64::from(i))? == Some(false) {
                        self.set_bit(gi, true, u64::from(i), true)?;
                        let c = &mut self.groups[gi];
                        c.free_inodes -= 1;
                        if dir {
                            c.used_dirs += 1;
                        }
                        if self.features.group_csum {
                            let unused = c.itable_unused.unwrap_or(gd.bg_itable_unused);
                            if i + 1 > ipg.saturating_sub(unused) {
                                c.itable_unused = Some(ipg - (i + 1));
                            }
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
        let bpg = u64::from(self.vol.sb.s_blocks_per_group);
        let first = u64::from(self.vol.sb.s_first_data_block);
        while self.cursor < self.vol.blocks_count {
            let g = (self.cursor.saturating_sub(first) / bpg.max(1)) as usize;
            let Some(&gd) = self.vol.groups.get(g) else {
                break;
            };
            let gstart = self.group_first(g);
            let free = i64::from(gd.bg_free_blocks_count) + self.groups[g].free_blocks;
            if free <= 0 {
                self.cursor = gstart + bpg;
                continue;
            }
            let n = self.group_blocks(g);
            let bm = self.bitmap(g, false)?;
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
                    self.set_bit(g, false, i, true)?;
                    self.groups[g].free_blocks -= 1;
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

    /// Every block (data, indirect blocks, extent-tree nodes) an inode's
    /// map holds.
    pub(super) fn blocks_of(&mut self, ino: &Inode) -> Result<Vec<u64>, Error> {
        let mut out = Vec::new();
        if !check::holds_blocks(self.vol, ino) {
            return Ok(out);
        }
        let count = self.vol.blocks_count;
        check::walk(self.vol, ino, &mut |_, b| {
            if b >= count {
                return Err(Error::Corrupt(format!(
                    "block pointer {b} beyond the volume"
                )));
            }
            // no block of a sound volume is named twice: a map that
            // names more blocks than the volume holds loops through itself
            if out.len() as u64 >= count {
                return Err(Error::Corrupt(
                    "a block map names more blocks than the volume holds".into(),
                ));
            }
            out.push(b);
            Ok(())
        })?;
        Ok(out)
    }

    pub(super) fn dir(&mut self, ino: u32, path: &TreePath) -> Result<&mut DirState, Error> {
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
            if let Some(b) = self.vol.map(&i, 0)? {
                let mut buf = vec![0u8; self.bs as usize];
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

    /// Releases the blocks and inodes freed by this update, now that
    /// nothing new can land on them.
    pub(super) fn release(&mut self) -> Result<(), Error> {
        let first = u64::from(self.vol.sb.s_first_data_block);
        let bpg = u64::from(self.vol.sb.s_blocks_per_group);
        for b in std::mem::take(&mut self.freed_blocks) {
            if self.layout.is_metadata(b) || b < first {
                continue;
            }
            let g = ((b - first) / bpg) as usize;
            if self.set_bit(g, false, (b - first) % bpg, false)? {
                self.groups[g].free_blocks += 1;
            }
        }
        let ipg = self.vol.sb.s_inodes_per_group;
        for (ino, is_dir) in std::mem::take(&mut self.freed_inodes) {
            let g = ((ino - 1) / ipg) as usize;
            if self.set_bit(g, true, u64::from((ino - 1) % ipg), false)? {
                self.groups[g].free_inodes += 1;
                if is_dir {
                    self.groups[g].used_dirs -= 1;
                }
            }
        }
        Ok(())
    }
}

impl BlockAlloc for State<'_> {
    fn alloc_block(&mut self) -> Result<u32, Error> {
        self.alloc()
    }
}
