//! Linear directory entries (`struct ext2_dir_entry_2`).
//!
//! Entries never straddle a block; each block's last entry stretches its
//! `rec_len` to the end of the block, and `rec_len` is a multiple of 4.

use super::bytes::*;

pub const EXT2_FT_UNKNOWN: u8 = 0;
pub const EXT2_FT_REG_FILE: u8 = 1;
pub const EXT2_FT_DIR: u8 = 2;
pub const EXT2_FT_CHRDEV: u8 = 3;
pub const EXT2_FT_BLKDEV: u8 = 4;
pub const EXT2_FT_FIFO: u8 = 5;
pub const EXT2_FT_SOCK: u8 = 6;
pub const EXT2_FT_SYMLINK: u8 = 7;

pub const EXT2_NAME_LEN: usize = 255;
const HEADER: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub inode: u32,
    pub rec_len: u16,
    pub name_len: u8,
    pub file_type: u8,
    pub name: Vec<u8>,
}

/// The directory entry file type of an inode of mode `mode`.
pub fn file_type(mode: u16) -> u8 {
    use crate::tree::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK};
    match u32::from(mode) & S_IFMT {
        S_IFREG => EXT2_FT_REG_FILE,
        S_IFDIR => EXT2_FT_DIR,
        S_IFCHR => EXT2_FT_CHRDEV,
        S_IFBLK => EXT2_FT_BLKDEV,
        S_IFIFO => EXT2_FT_FIFO,
        S_IFSOCK => EXT2_FT_SOCK,
        S_IFLNK => EXT2_FT_SYMLINK,
        _ => EXT2_FT_UNKNOWN,
    }
}

/// The smallest `rec_len` that holds a name of `name_len` bytes.
pub fn rec_len_for(name_len: usize) -> usize {
    (HEADER + name_len + 3) & !3
}

/// Packs `(inode, file_type, name)` triples into directory blocks.
pub struct BlockPacker {
    block_size: usize,
    block: Vec<u8>,
    used: usize,
    last: Option<usize>,
}

impl BlockPacker {
    pub fn new(block_size: usize) -> BlockPacker {
        BlockPacker {
            block_size,
            block: vec![0; block_size],
            used: 0,
            last: None,
        }
    }

    /// Adds an entry; returns a finished block when the entry did not fit
    /// in the current one. Names must be 1..=255 bytes.
    pub fn push(&mut self, inode: u32, file_type: u8, name: &[u8]) -> Option<Vec<u8>> {
        let need = rec_len_for(name.len());
        let mut done = None;
        if self.used + need > self.block_size {
            done = self.take();
        }
        let off = self.used;
        put32(&mut self.block, off, inode);
        put16(&mut self.block, off + 4, need as u16);
        if let Some(b) = self.block.get_mut(off + 6) {
            *b = name.len() as u8;
        }
        if let Some(b) = self.block.get_mut(off + 7) {
            *b = file_type;
        }
        put_bytes(&mut self.block, off + HEADER, name);
        self.last = Some(off);
        self.used += need;
        done
    }

    /// The current block, finished, if it holds anything.
    pub fn take(&mut self) -> Option<Vec<u8>> {
        let last = self.last.take()?;
        let rec_len = self.block_size - last;
        put16(&mut self.block, last + 4, rec_len as u16);
        self.used = 0;
        Some(std::mem::replace(&mut self.block, vec![0; self.block_size]))
    }
}

/// An empty directory block: one unused entry spanning the block.
pub fn empty_block(block_size: usize) -> Vec<u8> {
    let mut b = vec![0u8; block_size];
    put16(&mut b, 4, block_size as u16);
    b
}

/// Parses the entries of one directory block, skipping unused ones.
/// Stops at the first malformed `rec_len` and reports it.
pub fn parse_block(b: &[u8], filetype: bool) -> Result<Vec<DirEntry>, String> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + HEADER <= b.len() {
        let inode = le32(b, off);
        let mut rec_len = usize::from(le16(b, off + 4));
        // 64 KiB blocks store 65536 as 0 (or 65535 in old kernels)
        if (rec_len == 0 || rec_len == 65535) && b.len() == 65536 && off == 0 {
            rec_len = 65536;
        }
        let name_len = usize::from(b.get(off + 6).copied().unwrap_or(0));
        let (name_len, file_type) = if filetype {
            (name_len, b.get(off + 7).copied().unwrap_or(0))
        } else {
            (usize::from(le16(b, off + 6)), EXT2_FT_UNKNOWN)
        };
        if rec_len < HEADER || rec_len % 4 != 0 || off + rec_len > b.len() {
            return Err(format!("bad rec_len {rec_len} at offset {off}"));
        }
        if HEADER + name_len > rec_len {
            return Err(format!(
                "name_len {name_len} exceeds rec_len at offset {off}"
            ));
        }
        if inode != 0 && name_len > 0 {
            let name = b
                .get(off + HEADER..off + HEADER + name_len)
                .unwrap_or(&[])
                .to_vec();
            // A name is one path component: a `/` or NUL in it (which
            // e2fsck calls illegal characters) would let the entry stand
            // for another path, `a/../../x` included.
            if name_len > EXT2_NAME_LEN || name.iter().any(|&c| c == b'/' || c == 0) {
                return Err(format!(
                    "illegal name {:?} at offset {off}",
                    String::from_utf8_lossy(&name)
                ));
            }
            out.push(DirEntry {
                inode,
                rec_len: rec_len as u16,
                name_len: name_len as u8,
                file_type,
                name,
            });
        }
        off += rec_len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rec_len_rounds_to_four() {
        assert_eq!(rec_len_for(1), 12);
        assert_eq!(rec_len_for(2), 12);
        assert_eq!(rec_len_for(4), 12);
        assert_eq!(rec_len_for(5), 16);
        assert_eq!(rec_len_for(255), 264);
    }

    #[test]
    fn packs_and_parses_across_blocks() {
        let mut p = BlockPacker::new(1024);
        let mut blocks = Vec::new();
        let names: Vec<Vec<u8>> = (0..200)
            .map(|i| format!("name-{i:04}").into_bytes())
            .collect();
        for (i, n) in names.iter().enumerate() {
            if let Some(b) = p.push(100 + i as u32, EXT2_FT_REG_FILE, n) {
                blocks.push(b);
            }
        }
        blocks.extend(p.take());
        assert!(blocks.len() > 1);
        let mut got = Vec::new();
        for b in &blocks {
            let es = parse_block(b, true).unwrap();
            // the last entry reaches the end of the block
            let sum: usize = es.iter().map(|e| usize::from(e.rec_len)).sum();
            assert_eq!(sum, 1024);
            got.extend(es.into_iter().map(|e| e.name));
        }
        assert_eq!(got, names);
    }

    #[test]
    fn rejects_bad_rec_len() {
        let mut b = empty_block(1024);
        put16(&mut b, 4, 6);
        assert!(parse_block(&b, true).is_err());
        assert!(parse_block(&empty_block(1024), true).unwrap().is_empty());
    }
}
