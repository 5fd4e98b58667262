//! The only place that touches the volume ([`Block`]): positioned reads
//! and writes, with contiguous writes gathered into large ones.
//!
//! Every [`WRITEBACK`] bytes written, the kernel is asked to start writing
//! the range written since the last time back to the disk
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which waits for nothing):
//! the disk works while the image is still being built, and the caller's
//! final fsync, which stays the one durability point, finds little left.

use super::Error;
use crate::block::Block;

/// Writes are gathered until this many bytes are pending.
const GATHER: usize = 1 << 20;
/// Bytes written between two requests to start write-back.
pub const WRITEBACK: u64 = 8 << 20;

/// The runs `(first, end)` of blocks of `block_size` bytes within
/// `[first, first + count)` that may hold data. A hole of a sparse image
/// reads as zeros, so a scan for nonzero blocks skips it unread (a clone's
/// inode tables are mostly holes, and every block read of a fresh clone is
/// a read from the disk). A volume that cannot tell is data throughout.
pub(super) fn data_runs(
    dev: &dyn Block,
    block_size: u64,
    first: u64,
    count: u64,
) -> Vec<(u64, u64)> {
    let end = first + count;
    let mut runs = Vec::new();
    let mut b = first;
    while b < end {
        let (start, stop) = match dev.data_run(b * block_size) {
            Ok(Some((s, e))) => (s / block_size, e.div_ceil(block_size)),
            Ok(None) => break,
            Err(_) => (b, end),
        };
        if start >= end {
            break;
        }
        let stop = stop.clamp(start + 1, end);
        runs.push((start, stop));
        b = stop;
    }
    runs
}

pub struct Disk<'f> {
    dev: &'f dyn Block,
    block_size: u64,
    pending_block: u64,
    pending: Vec<u8>,
    /// The range written since write-back was last started, and its bytes.
    dirty_from: u64,
    dirty_to: u64,
    dirty: u64,
    /// Writes are dropped: a trial run that finds out whether an update
    /// fits without changing a byte.
    pub discard: bool,
}

impl<'f> Disk<'f> {
    pub fn new(dev: &'f dyn Block, block_size: u32) -> Disk<'f> {
        Disk {
            dev,
            block_size: u64::from(block_size),
            pending_block: 0,
            pending: Vec::new(),
            dirty_from: u64::MAX,
            dirty_to: 0,
            dirty: 0,
            discard: false,
        }
    }

    /// Makes the volume exactly `len` bytes of holes: the image is written
    /// over a fresh sparse volume so untouched blocks read as zeros.
    pub fn reset(&mut self, len: u64) -> Result<(), Error> {
        if self.dev.is_device() {
            return Err(Error::NotRegularFile);
        }
        self.dev.reset(len).map_err(|e| Error::Io {
            offset: len,
            source: e,
        })
    }

    /// Writes whole blocks starting at block `block`.
    pub fn write_blocks(&mut self, block: u64, data: &[u8]) -> Result<(), Error> {
        let pending_blocks = self.pending.len() as u64 / self.block_size;
        if !self.pending.is_empty() && self.pending_block + pending_blocks != block {
            self.flush()?;
        }
        if self.pending.is_empty() {
            self.pending_block = block;
        }
        self.pending.extend_from_slice(data);
        if self.pending.len() >= GATHER {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes bytes at an arbitrary offset (superblocks).
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.flush()?;
        if self.discard {
            return Ok(());
        }
        self.dev
            .write_at(offset, data)
            .map_err(|e| Error::Io { offset, source: e })?;
        self.wrote(offset, data.len());
        Ok(())
    }

    /// Counts a write, starting write-back once enough has gathered.
    fn wrote(&mut self, offset: u64, len: usize) {
        let end = offset + len as u64;
        self.dirty_from = self.dirty_from.min(offset);
        self.dirty_to = self.dirty_to.max(end);
        self.dirty += len as u64;
        if self.dirty >= WRITEBACK {
            self.dev
                .start_writeback(self.dirty_from, self.dirty_to - self.dirty_from);
            self.dirty_from = u64::MAX;
            self.dirty_to = 0;
            self.dirty = 0;
        }
    }

    pub fn flush(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.discard {
            self.pending.clear();
            return Ok(());
        }
        let offset = self.pending_block * self.block_size;
        self.dev
            .write_at(offset, &self.pending)
            .map_err(|e| Error::Io { offset, source: e })?;
        let len = self.pending.len();
        self.pending.clear();
        self.wrote(offset, len);
        Ok(())
    }
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub fn read_at(dev: &dyn Block, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
    dev.read_at(offset, buf)
        .map_err(|e| Error::Io { offset, source: e })
}
