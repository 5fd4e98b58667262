//! The only place that touches the image file: positioned reads and
//! writes, with contiguous writes gathered into large ones.

use super::Error;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Writes are gathered until this many bytes are pending.
const GATHER: usize = 1 << 20;

pub struct Disk<'f> {
    file: &'f File,
    block_size: u64,
    pending_block: u64,
    pending: Vec<u8>,
    /// Writes are dropped: a trial run that finds out whether an update
    /// fits without changing a byte.
    pub discard: bool,
}

impl<'f> Disk<'f> {
    pub fn new(file: &'f File, block_size: u32) -> Disk<'f> {
        Disk {
            file,
            block_size: u64::from(block_size),
            pending_block: 0,
            pending: Vec::new(),
            discard: false,
        }
    }

    /// Makes the file exactly `len` bytes of holes: the image is written
    /// over a fresh sparse file so untouched blocks read as zeros.
    pub fn reset(&mut self, len: u64) -> Result<(), Error> {
        let meta = self.file.metadata().map_err(|e| Error::Io {
            offset: 0,
            source: e,
        })?;
        if !meta.file_type().is_file() {
            return Err(Error::NotRegularFile);
        }
        self.file.set_len(0).map_err(|e| Error::Io {
            offset: 0,
            source: e,
        })?;
        self.file.set_len(len).map_err(|e| Error::Io {
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
        self.file
            .write_all_at(data, offset)
            .map_err(|e| Error::Io { offset, source: e })
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
        self.file
            .write_all_at(&self.pending, offset)
            .map_err(|e| Error::Io { offset, source: e })?;
        self.pending.clear();
        Ok(())
    }
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
    file.read_exact_at(buf, offset)
        .map_err(|e| Error::Io { offset, source: e })
}
