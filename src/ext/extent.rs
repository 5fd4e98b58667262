//! ext4 extent trees, written: a file's blocks as runs of contiguous
//! blocks (`struct ext4_extent`), up to four in the inode itself (depth
//! 0), otherwise in leaf blocks indexed from the inode (`struct
//! ext4_extent_idx`), with as many index levels as the runs need.

use super::blockmap::{BlockAlloc, FileMap};
use super::bytes::*;
use super::csum;
use super::inode;
use super::io::Disk;
use super::Error;

pub const EXT4_EXT_MAGIC: u16 = 0xF30A;
/// The longest initialized extent.
const MAX_LEN: u32 = 32768;
const HEADER: usize = 12;
const ENTRY: usize = 12;
/// Entries that fit in `i_block` after the header.
const ROOT_ENTRIES: usize = 4;
/// ext4's logical block numbers are 32 bits.
const MAX_LOGICAL: u64 = 1 << 32;

/// A run: `len` blocks from logical block `logical` at `phys`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    logical: u32,
    phys: u64,
    len: u32,
}

/// Collects the runs of one inode as its blocks are allocated, then
/// writes the tree at [`FileMap::complete`]. Tree blocks come from the
/// same allocator, after the data.
pub(super) struct ExtentMapper {
    block_size: u32,
    runs: Vec<Run>,
    sectors: u64,
    /// The inode's checksum seed, for the tails of tree blocks
    /// (metadata_csum); `None` without checksums.
    csum_seed: Option<u32>,
}

impl ExtentMapper {
    pub(super) fn new(block_size: u32, csum_seed: Option<u32>) -> ExtentMapper {
        ExtentMapper {
            block_size,
            runs: Vec::new(),
            sectors: 0,
            csum_seed,
        }
    }

    fn sectors_per_block(&self) -> u64 {
        u64::from(self.block_size / 512)
    }

    /// Adds a run of blocks already allocated (the journal's).
    fn push(&mut self, logical: u64, phys: u64) {
        if let Some(r) = self.runs.last_mut() {
            if u64::from(r.logical) + u64::from(r.len) == logical
                && r.phys + u64::from(r.len) == phys
                && r.len < MAX_LEN
            {
                r.len += 1;
                return;
            }
        }
        self.runs.push(Run {
            logical: logical as u32,
            phys,
            len: 1,
        });
    }

    /// Entries per tree block.
    fn per_block(&self) -> usize {
        (self.block_size as usize - HEADER) / ENTRY
    }

    /// One node: header then entries, `max` slots.
    fn node(entries: &[[u8; ENTRY]], max: usize, depth: u16, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        put16(&mut b, 0, EXT4_EXT_MAGIC);
        put16(&mut b, 2, entries.len() as u16);
        put16(&mut b, 4, max as u16);
        put16(&mut b, 6, depth);
        for (i, e) in entries.iter().enumerate() {
            put_bytes(&mut b, HEADER + i * ENTRY, e);
        }
        b
    }
}

fn leaf_entry(r: &Run) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    put32(&mut e, 0, r.logical);
    put16(&mut e, 4, r.len as u16);
    put16(&mut e, 6, (r.phys >> 32) as u16);
    put32(&mut e, 8, r.phys as u32);
    e
}

fn index_entry(logical: u32, child: u64) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    put32(&mut e, 0, logical);
    put32(&mut e, 4, child as u32);
    put16(&mut e, 8, (child >> 32) as u16);
    e
}

impl FileMap for ExtentMapper {
    fn map_block(
        &mut self,
        space: &mut dyn BlockAlloc,
        disk: &mut Disk,
        l: u64,
        data: Option<&[u8]>,
    ) -> Result<(), Error> {
        let b = space.alloc_block()?;
        self.sectors += self.sectors_per_block();
        self.push(l, u64::from(b));
        if let Some(d) = data {
            disk.write_blocks(u64::from(b), d)?;
        }
        Ok(())
    }

    fn limit(&self) -> u64 {
        MAX_LOGICAL
    }

    fn complete(
        &mut self,
        space: &mut dyn BlockAlloc,
        disk: &mut Disk,
    ) -> Result<([u32; inode::EXT2_N_BLOCKS], u64), Error> {
        let bs = self.block_size as usize;
        let per = self.per_block();
        // (first logical block, entry) of the level being built
        let mut level: Vec<(u32, [u8; ENTRY])> = self
            .runs
            .iter()
            .map(|r| (r.logical, leaf_entry(r)))
            .collect();
        let mut depth = 0u16;
        while level.len() > ROOT_ENTRIES {
            let mut up = Vec::with_capacity(level.len().div_ceil(per));
            for chunk in level.chunks(per) {
                let entries: Vec<[u8; ENTRY]> = chunk.iter().map(|e| e.1).collect();
                let mut block = ExtentMapper::node(&entries, per, depth, bs);
                if let Some(seed) = self.csum_seed {
                    csum::seal_extent_block(seed, &mut block);
                }
                let b = space.alloc_block()?;
                self.sectors += self.sectors_per_block();
                disk.write_blocks(u64::from(b), &block)?;
                let first = chunk.first().map_or(0, |e| e.0);
                up.push((first, index_entry(first, u64::from(b))));
            }
            level = up;
            depth += 1;
        }
        let entries: Vec<[u8; ENTRY]> = level.iter().map(|e| e.1).collect();
        let root = ExtentMapper::node(&entries, ROOT_ENTRIES, depth, 60);
        let mut i_block = [0u32; inode::EXT2_N_BLOCKS];
        for (i, v) in i_block.iter_mut().enumerate() {
            *v = le32(&root, 4 * i);
        }
        Ok((i_block, self.sectors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_and_split() {
        let mut m = ExtentMapper::new(1024, None);
        for (l, p) in [(0, 100), (1, 101), (2, 103), (5, 104), (6, 105)] {
            m.push(l, p);
        }
        let lens: Vec<(u32, u64, u32)> =
            m.runs.iter().map(|r| (r.logical, r.phys, r.len)).collect();
        assert_eq!(lens, vec![(0, 100, 2), (2, 103, 1), (5, 104, 2)]);
        let mut long = ExtentMapper::new(1024, None);
        for l in 0..(MAX_LEN as u64 + 1) {
            long.push(l, 1000 + l);
        }
        assert_eq!(long.runs.len(), 2);
    }
}
