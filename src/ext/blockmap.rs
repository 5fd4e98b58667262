//! Mapping a file's logical blocks to disk blocks, as ext2/ext3 do it
//! (direct and indirect blocks, [`BlockMapper`]) or ext4 does
//! ([`super::extent::ExtentMapper`]), and the one loop that streams a
//! file's content into either.

use super::inode;
use super::io::Disk;
use super::Error;
use crate::tree::{SparseRead, TreePath};

/// Where a [`BlockMapper`] gets its blocks.
pub(super) trait BlockAlloc {
    fn alloc_block(&mut self) -> Result<u32, Error>;
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
}

/// A file's block map being built: logical blocks arrive in increasing
/// order, each gets a freshly allocated block.
pub(super) trait FileMap {
    /// Allocates logical block `l` and writes `data` there (nothing is
    /// written for `None`).
    fn map_block(
        &mut self,
        space: &mut dyn BlockAlloc,
        disk: &mut Disk,
        l: u64,
        data: Option<&[u8]>,
    ) -> Result<(), Error>;

    /// The most logical blocks a file can have.
    fn limit(&self) -> u64;

    /// Writes what is still in memory and returns the inode's `i_block`
    /// and its 512-byte sector count.
    fn complete(
        &mut self,
        space: &mut dyn BlockAlloc,
        disk: &mut Disk,
    ) -> Result<([u32; inode::EXT2_N_BLOCKS], u64), Error>;
}

impl FileMap for BlockMapper {
    fn map_block(
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

    fn limit(&self) -> u64 {
        self.max_blocks()
    }

    fn complete(
        &mut self,
        _space: &mut dyn BlockAlloc,
        disk: &mut Disk,
    ) -> Result<([u32; inode::EXT2_N_BLOCKS], u64), Error> {
        self.close_from(0, disk)?;
        Ok((self.i_block, self.sectors))
    }
}

/// A block map for a new inode: an extent tree (with the inode's
/// checksum seed under metadata_csum) when `extents`, indirect blocks
/// otherwise; and the `i_flags` it needs.
pub(super) fn new_map(
    block_size: u32,
    extents: bool,
    csum_seed: Option<u32>,
) -> (Box<dyn FileMap>, u32) {
    if extents {
        (
            Box::new(super::extent::ExtentMapper::new(block_size, csum_seed)),
            inode::EXT4_EXTENTS_FL,
        )
    } else {
        (Box::new(BlockMapper::new(block_size)), 0)
    }
}

/// Writes `blocks` as logical blocks 0, 1, ... through `map`; returns
/// the inode's `i_block` and sector count.
pub(super) fn map_blocks(
    map: &mut dyn FileMap,
    space: &mut dyn BlockAlloc,
    disk: &mut Disk,
    blocks: &[Vec<u8>],
) -> Result<([u32; inode::EXT2_N_BLOCKS], u64), Error> {
    for (l, b) in blocks.iter().enumerate() {
        map.map_block(space, disk, l as u64, Some(b))?;
    }
    map.complete(space, disk)
}

/// Streams `size` bytes of a file's content into freshly allocated
/// blocks through `map`; all-zero blocks become holes, and so do the
/// holes the source tells of, which are stepped over rather than read.
pub(super) fn copy_content(
    map: &mut dyn FileMap,
    space: &mut dyn BlockAlloc,
    disk: &mut Disk,
    block_size: u32,
    path: &TreePath,
    size: u64,
    data: &mut dyn SparseRead,
) -> Result<(), Error> {
    let bs = u64::from(block_size);
    if size.div_ceil(bs) > map.limit() {
        return Err(Error::FileTooLarge {
            path: path.display_abs(),
            size,
        });
    }
    let mut buf = vec![0u8; bs as usize];
    let mut done = 0u64;
    let mut l = 0u64;
    let content_err = |e: std::io::Error| Error::Content {
        path: path.display_abs(),
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
                        path: path.display_abs(),
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
            map.map_block(space, disk, l, Some(&buf))?;
        }
        done += want as u64;
        l += 1;
    }
    Ok(())
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
