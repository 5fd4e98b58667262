//! Block allocation for a new volume: a cursor that only moves forward
//! over the volume-wide bitmap, so a file's blocks (its data and the
//! blocks mapping it) all lie in the range the cursor crossed while the
//! file was written, and freeing an overwritten file only has to clear
//! that range.

use super::bitmap::Bitmap;
use super::blockmap::BlockAlloc;
use super::layout::Geometry;
use super::Error;

/// Free-block bookkeeping: the volume-wide block bitmap and the cursor.
pub(super) struct Space {
    pub(super) geo: Geometry,
    pub(super) used: Bitmap,
    /// Superblocks, descriptors, bitmaps and inode tables, as sorted
    /// `[start, end)` ranges: never freed.
    meta: Vec<(u32, u32)>,
    pub(super) cursor: u32,
    /// What is being written, for the out-of-blocks message.
    pub(super) what: String,
}

impl Space {
    pub(super) fn new(geo: Geometry) -> Space {
        let mut used = Bitmap::new(u64::from(geo.blocks_count));
        let mut meta = geo.metadata();
        meta.sort_unstable();
        for &(from, to) in &meta {
            for b in from..to {
                used.set(u64::from(b), true);
            }
        }
        Space {
            cursor: used.next_clear(0).unwrap_or(0) as u32,
            meta,
            geo,
            used,
            what: String::new(),
        }
    }

    pub(super) fn alloc(&mut self) -> Result<u32, Error> {
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
    pub(super) fn free_range(&mut self, from: u32, to: u32) {
        for b in from..to {
            let i = self.meta.partition_point(|r| r.1 <= b);
            let is_meta = self.meta.get(i).is_some_and(|r| r.0 <= b);
            if !is_meta {
                self.used.set(u64::from(b), false);
            }
        }
    }
}

impl BlockAlloc for Space {
    fn alloc_block(&mut self) -> Result<u32, Error> {
        self.alloc()
    }
}
