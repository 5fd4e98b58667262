//! Volume geometry for the writer: how many groups, where each group's
//! metadata lives, how many inodes. Pure arithmetic, no I/O.

use super::inode::INODE_SIZE;
use super::Error;

/// Groups too small to hold their own metadata plus this many data
/// blocks are dropped from the end of the volume, as mke2fs does.
const MIN_LAST_GROUP_DATA: u64 = 50;
/// ext4 groups gather their bitmaps and inode tables at the start of
/// every 16th group (flex_bg), as mke2fs does.
pub const LOG_GROUPS_PER_FLEX: u8 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub block_size: u32,
    pub blocks_count: u32,
    pub first_data_block: u32,
    pub blocks_per_group: u32,
    pub group_count: u32,
    pub inodes_per_group: u32,
    pub inode_table_blocks: u32,
    pub gdt_blocks: u32,
    /// 32, or 64 with the 64bit feature.
    pub desc_size: u32,
    /// Groups whose bitmaps and inode tables are laid out together: 1
    /// (each group holds its own, after its superblock backup and
    /// descriptors) or `1 << LOG_GROUPS_PER_FLEX` (flex_bg).
    pub groups_per_flex: u32,
    /// Per group: block bitmap, inode bitmap and first inode table block.
    placed: Vec<[u32; 3]>,
}

/// Whether group `g` holds a superblock backup under sparse_super:
/// groups 0 and 1 and the powers of 3, 5 and 7.
pub fn has_super(g: u32) -> bool {
    if g <= 1 {
        return true;
    }
    [3u32, 5, 7].iter().any(|&p| {
        let mut n = p;
        while n < g {
            match n.checked_mul(p) {
                Some(m) => n = m,
                None => return false,
            }
        }
        n == g
    })
}

/// The default block size for a volume of `size` bytes.
pub fn default_block_size(size: u64) -> u32 {
    if size < 512 << 20 {
        1024
    } else {
        4096
    }
}

/// Bytes of volume per inode when the inode count is not given
/// (mke2fs.conf's floppy / small / default types).
fn inode_ratio(size: u64) -> u64 {
    if size < 3 << 20 {
        8192
    } else if size < 512 << 20 {
        4096
    } else {
        16384
    }
}

impl Geometry {
    pub fn new(size: u64, block_size: Option<u32>, inodes: Option<u32>) -> Result<Geometry, Error> {
        Geometry::with_layout(size, block_size, inodes, false)
    }

    /// The geometry of an ext4 volume: 64-byte group descriptors and
    /// flex_bg placement, the rest as [`Geometry::new`].
    pub fn ext4(
        size: u64,
        block_size: Option<u32>,
        inodes: Option<u32>,
    ) -> Result<Geometry, Error> {
        Geometry::with_layout(size, block_size, inodes, true)
    }

    fn with_layout(
        size: u64,
        block_size: Option<u32>,
        inodes: Option<u32>,
        ext4: bool,
    ) -> Result<Geometry, Error> {
        let desc_size: u64 = if ext4 { 64 } else { 32 };
        let bs = block_size.unwrap_or_else(|| default_block_size(size));
        if ![1024, 2048, 4096].contains(&bs) {
            return Err(Error::BlockSize(bs));
        }
        let bs64 = u64::from(bs);
        let blocks = size / bs64;
        if blocks > u64::from(u32::MAX) {
            return Err(Error::TooLarge {
                size,
                block_size: bs,
            });
        }
        let first_data_block: u64 = if bs == 1024 { 1 } else { 0 };
        let bpg = 8 * bs64;
        if blocks < first_data_block + 64 {
            return Err(Error::TooSmall { size });
        }
        let mut groups = (blocks - first_data_block).div_ceil(bpg);
        let mut blocks_count = blocks;
        let inodes_per_block = bs64 / INODE_SIZE as u64;
        let ipg_unit = inodes_per_block.max(8);

        // The inode count depends on the group count and the last group's
        // survival depends on the inode table size, so settle both
        // together: at most one group is ever dropped.
        for _ in 0..2 {
            let wanted = match inodes {
                Some(n) => u64::from(n),
                None => blocks_count * bs64 / inode_ratio(size),
            };
            let ipg = wanted
                .div_ceil(groups)
                .max(16)
                .div_ceil(ipg_unit)
                .saturating_mul(ipg_unit);
            if ipg > 8 * bs64 || ipg * groups > u64::from(u32::MAX) {
                return Err(Error::TooManyInodes { requested: wanted });
            }
            let itb = ipg * INODE_SIZE as u64 / bs64;
            let gdt = (groups * desc_size).div_ceil(bs64);
            let last = (groups - 1) as u32;
            let last_blocks = blocks_count - first_data_block - u64::from(last) * bpg;
            let overhead = if has_super(last) { 1 + gdt } else { 0 } + 2 + itb;
            let g = Geometry {
                block_size: bs,
                blocks_count: blocks_count as u32,
                first_data_block: first_data_block as u32,
                blocks_per_group: bpg as u32,
                group_count: groups as u32,
                inodes_per_group: ipg as u32,
                inode_table_blocks: itb as u32,
                gdt_blocks: gdt as u32,
                desc_size: desc_size as u32,
                groups_per_flex: if ext4 { 1 << LOG_GROUPS_PER_FLEX } else { 1 },
                placed: Vec::new(),
            };
            if last_blocks >= overhead + MIN_LAST_GROUP_DATA {
                return g.place(size);
            }
            if groups == 1 {
                if last_blocks < overhead + 16 {
                    return Err(Error::TooSmall { size });
                }
                return g.place(size);
            }
            groups -= 1;
            blocks_count = first_data_block + groups * bpg;
        }
        Err(Error::TooSmall { size })
    }

    /// Whether block `b` holds a superblock or descriptors (or precedes
    /// the first group).
    fn is_super_or_gdt(&self, b: u32) -> bool {
        if b < self.first_data_block {
            return true;
        }
        let g = self.group_of_block(b);
        has_super(g) && b < self.group_first_block(g) + 1 + self.gdt_blocks
    }

    /// Settles where each group's bitmaps and inode table lie.
    fn place(mut self, size: u64) -> Result<Geometry, Error> {
        let flex = self.groups_per_flex;
        let mut placed = Vec::with_capacity(self.group_count as usize);
        if flex == 1 {
            for g in 0..self.group_count {
                let sb = if has_super(g) { 1 + self.gdt_blocks } else { 0 };
                let bb = self.group_first_block(g) + sb;
                placed.push([bb, bb + 1, bb + 2]);
            }
            self.placed = placed;
            return Ok(self);
        }
        let end = self.blocks_count;
        let itb = self.inode_table_blocks;
        let mut leader = 0;
        while leader < self.group_count {
            let members = flex.min(self.group_count - leader);
            let mut c = self.group_first_block(leader);
            let next = |c: &mut u32, len: u32| -> Option<u32> {
                // the first run of `len` blocks at or after `c` that
                // holds no superblock or descriptor
                loop {
                    let bad = (*c..c.checked_add(len)?).find(|&b| self.is_super_or_gdt(b));
                    match bad {
                        Some(b) => *c = b + 1,
                        None => break,
                    }
                }
                let at = *c;
                *c += len;
                (*c <= end).then_some(at)
            };
            let mut bbs = Vec::new();
            let mut ibs = Vec::new();
            for _ in 0..members {
                bbs.push(next(&mut c, 1).ok_or(Error::TooSmall { size })?);
            }
            for _ in 0..members {
                ibs.push(next(&mut c, 1).ok_or(Error::TooSmall { size })?);
            }
            for k in 0..members as usize {
                let it = next(&mut c, itb).ok_or(Error::TooSmall { size })?;
                placed.push([bbs[k], ibs[k], it]);
            }
            leader += members;
        }
        self.placed = placed;
        Ok(self)
    }

    /// Every block holding metadata: superblocks, descriptors, bitmaps
    /// and inode tables, as `[start, end)` ranges.
    pub fn metadata(&self) -> Vec<(u32, u32)> {
        let mut out = vec![(0, self.first_data_block)];
        for g in 0..self.group_count {
            if has_super(g) {
                let s = self.group_first_block(g);
                out.push((s, s + 1 + self.gdt_blocks));
            }
            let bb = self.block_bitmap(g);
            let ib = self.inode_bitmap(g);
            let it = self.inode_table(g);
            out.push((bb, bb + 1));
            out.push((ib, ib + 1));
            out.push((it, it + self.inode_table_blocks));
        }
        out
    }

    pub fn inodes_count(&self) -> u32 {
        self.inodes_per_group * self.group_count
    }

    pub fn group_first_block(&self, g: u32) -> u32 {
        self.first_data_block + g * self.blocks_per_group
    }

    /// Blocks in group `g` (the last group may be short).
    pub fn group_blocks(&self, g: u32) -> u32 {
        let start = self.group_first_block(g);
        (self.blocks_count - start).min(self.blocks_per_group)
    }

    fn placed(&self, g: u32, k: usize) -> u32 {
        self.placed
            .get(g as usize)
            .map_or(0, |p| p.get(k).copied().unwrap_or(0))
    }

    pub fn block_bitmap(&self, g: u32) -> u32 {
        self.placed(g, 0)
    }

    pub fn inode_bitmap(&self, g: u32) -> u32 {
        self.placed(g, 1)
    }

    pub fn inode_table(&self, g: u32) -> u32 {
        self.placed(g, 2)
    }

    /// First block after group `g`'s inode table.
    #[cfg(test)]
    pub fn data_start(&self, g: u32) -> u32 {
        self.inode_table(g) + self.inode_table_blocks
    }

    /// The group holding block `b`.
    pub fn group_of_block(&self, b: u32) -> u32 {
        (b.saturating_sub(self.first_data_block)) / self.blocks_per_group
    }

    /// 5 % of the blocks are reserved for root, as mke2fs does by default.
    pub fn reserved_blocks(&self) -> u32 {
        (u64::from(self.blocks_count) * 5 / 100) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_groups() {
        let with: Vec<u32> = (0..100).filter(|&g| has_super(g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81]);
    }

    #[test]
    fn small_volume_1k() {
        let g = Geometry::new(8 << 20, None, None).unwrap();
        assert_eq!(g.block_size, 1024);
        assert_eq!(g.first_data_block, 1);
        assert_eq!(g.blocks_per_group, 8192);
        assert_eq!(g.blocks_count, 8192);
        // 8191 blocks after block 0 need a second group of 8191-8192+... no:
        // (8192 - 1) / 8192 rounds up to one group
        assert_eq!(g.group_count, 1);
        assert_eq!(g.inodes_count(), 2048);
        assert_eq!(g.block_bitmap(0), 3);
        assert_eq!(g.inode_table(0), 5);
        assert_eq!(g.data_start(0), 5 + 2048 * 256 / 1024);
    }

    #[test]
    fn large_volume_4k() {
        let g = Geometry::new(1 << 30, None, None).unwrap();
        assert_eq!(g.block_size, 4096);
        assert_eq!(g.first_data_block, 0);
        assert_eq!(g.group_count, 8);
        assert_eq!(g.inodes_count(), 65536);
        assert_eq!(g.block_bitmap(2), 2 * 32768);
        assert_eq!(g.block_bitmap(3), 3 * 32768 + 2);
    }

    #[test]
    fn tiny_last_group_is_dropped() {
        // 1 group of 8192 plus 20 blocks: the 20 cannot hold metadata
        let g = Geometry::new((8193 + 20) * 1024, Some(1024), None).unwrap();
        assert_eq!(g.group_count, 1);
        assert_eq!(g.blocks_count, 8193);
    }

    #[test]
    fn explicit_inodes_and_errors() {
        let g = Geometry::new(64 << 20, Some(4096), Some(1000)).unwrap();
        assert!(g.inodes_count() >= 1000);
        assert_eq!(g.inodes_per_group % 16, 0);
        assert!(matches!(
            Geometry::new(10_000, None, None),
            Err(Error::TooSmall { .. })
        ));
        assert!(matches!(
            Geometry::new(1 << 30, Some(512), None),
            Err(Error::BlockSize(512))
        ));
        assert!(matches!(
            Geometry::new(8 << 20, Some(1024), Some(u32::MAX)),
            Err(Error::TooManyInodes { .. })
        ));
    }

    #[test]
    fn flex_groups_gather_metadata() {
        let g = Geometry::ext4(64 << 20, Some(1024), None).unwrap();
        assert_eq!(g.group_count, 8);
        assert_eq!(g.gdt_blocks, 1);
        // bitmaps of all groups follow group 0's descriptors
        assert_eq!(g.block_bitmap(0), 3);
        assert_eq!(g.block_bitmap(7), 10);
        assert_eq!(g.inode_bitmap(0), 11);
        assert_eq!(g.inode_table(0), 19);
        // tables run on past group 0, around group 1's superblock backup
        let itb = g.inode_table_blocks;
        let ranges = g.metadata();
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                assert!(a.1 <= b.0 || b.1 <= a.0, "{a:?} overlaps {b:?}");
            }
        }
        assert!(g.inode_table(7) + itb <= g.blocks_count);
    }
}
