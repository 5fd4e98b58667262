//! Block group descriptors (`struct ext4_group_desc`): 32 bytes each, or
//! `s_desc_size` bytes with the 64bit feature.

use super::bytes::*;

pub const GROUP_DESC_SIZE: usize = 32;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupDesc {
    pub bg_block_bitmap: u64,
    pub bg_inode_bitmap: u64,
    pub bg_inode_table: u64,
    pub bg_free_blocks_count: u32,
    pub bg_free_inodes_count: u32,
    pub bg_used_dirs_count: u32,
    pub bg_flags: u16,
    /// Checksums of the bitmaps (metadata_csum).
    pub bg_block_bitmap_csum: u32,
    pub bg_inode_bitmap_csum: u32,
    /// Inodes at the end of the group's table never used.
    pub bg_itable_unused: u32,
}

/// `bg_flags`: the inode bitmap and table are not initialized yet.
pub const EXT4_BG_INODE_UNINIT: u16 = 0x0001;
/// `bg_flags`: the block bitmap is not initialized yet.
pub const EXT4_BG_BLOCK_UNINIT: u16 = 0x0002;
/// `bg_flags`: the inode table is known to be zeroed.
pub const EXT4_BG_INODE_ZEROED: u16 = 0x0004;

impl GroupDesc {
    /// Decodes one descriptor; the high halves are read only when the
    /// descriptor is 64 bytes or more.
    pub fn decode(b: &[u8], desc_size: usize) -> GroupDesc {
        let wide = desc_size >= 64;
        let hi32 = |off: usize| {
            if wide {
                u64::from(le32(b, off)) << 32
            } else {
                0
            }
        };
        let hi16 = |off: usize| {
            if wide {
                u32::from(le16(b, off)) << 16
            } else {
                0
            }
        };
        GroupDesc {
            bg_block_bitmap: u64::from(le32(b, 0x0)) | hi32(0x20),
            bg_inode_bitmap: u64::from(le32(b, 0x4)) | hi32(0x24),
            bg_inode_table: u64::from(le32(b, 0x8)) | hi32(0x28),
            bg_free_blocks_count: u32::from(le16(b, 0xC)) | hi16(0x2C),
            bg_free_inodes_count: u32::from(le16(b, 0xE)) | hi16(0x2E),
            bg_used_dirs_count: u32::from(le16(b, 0x10)) | hi16(0x30),
            bg_flags: le16(b, 0x12),
            bg_block_bitmap_csum: u32::from(le16(b, 0x18)) | hi16(0x38),
            bg_inode_bitmap_csum: u32::from(le16(b, 0x1A)) | hi16(0x3A),
            bg_itable_unused: u32::from(le16(b, 0x1C)) | hi16(0x32),
        }
    }

    /// Encodes a 32-byte descriptor; values must fit the narrow layout,
    /// which the writer's geometry guarantees.
    pub fn encode(&self) -> [u8; GROUP_DESC_SIZE] {
        let mut b = [0u8; GROUP_DESC_SIZE];
        put32(&mut b, 0x0, self.bg_block_bitmap as u32);
        put32(&mut b, 0x4, self.bg_inode_bitmap as u32);
        put32(&mut b, 0x8, self.bg_inode_table as u32);
        put16(&mut b, 0xC, self.bg_free_blocks_count as u16);
        put16(&mut b, 0xE, self.bg_free_inodes_count as u16);
        put16(&mut b, 0x10, self.bg_used_dirs_count as u16);
        put16(&mut b, 0x12, self.bg_flags);
        b
    }

    /// Encodes a descriptor of `desc_size` bytes (32 or 64) with the
    /// fields ext4 keeps: the high halves, the bitmap checksums and the
    /// unused-inode count. `bg_checksum` is left zero for the caller to
    /// seal.
    pub fn encode_wide(&self, desc_size: usize) -> Vec<u8> {
        let mut b = vec![0u8; desc_size];
        self.encode_over(&mut b);
        b
    }

    /// Writes the fields this type holds over an existing descriptor of
    /// `b.len()` bytes, the high halves only when it has room for them,
    /// and leaves the rest (`bg_checksum`, the exclude bitmap) as it is.
    pub fn encode_over(&self, b: &mut [u8]) {
        put32(b, 0x0, self.bg_block_bitmap as u32);
        put32(b, 0x4, self.bg_inode_bitmap as u32);
        put32(b, 0x8, self.bg_inode_table as u32);
        put16(b, 0xC, self.bg_free_blocks_count as u16);
        put16(b, 0xE, self.bg_free_inodes_count as u16);
        put16(b, 0x10, self.bg_used_dirs_count as u16);
        put16(b, 0x12, self.bg_flags);
        put16(b, 0x18, self.bg_block_bitmap_csum as u16);
        put16(b, 0x1A, self.bg_inode_bitmap_csum as u16);
        put16(b, 0x1C, self.bg_itable_unused as u16);
        if b.len() >= 64 {
            put32(b, 0x20, (self.bg_block_bitmap >> 32) as u32);
            put32(b, 0x24, (self.bg_inode_bitmap >> 32) as u32);
            put32(b, 0x28, (self.bg_inode_table >> 32) as u32);
            put16(b, 0x2C, (self.bg_free_blocks_count >> 16) as u16);
            put16(b, 0x2E, (self.bg_free_inodes_count >> 16) as u16);
            put16(b, 0x30, (self.bg_used_dirs_count >> 16) as u16);
            put16(b, 0x32, (self.bg_itable_unused >> 16) as u16);
            put16(b, 0x38, (self.bg_block_bitmap_csum >> 16) as u16);
            put16(b, 0x3A, (self.bg_inode_bitmap_csum >> 16) as u16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_narrow() {
        let g = GroupDesc {
            bg_block_bitmap: 3,
            bg_inode_bitmap: 4,
            bg_inode_table: 5,
            bg_free_blocks_count: 100,
            bg_free_inodes_count: 20,
            bg_used_dirs_count: 2,
            bg_flags: 0,
            ..Default::default()
        };
        assert_eq!(GroupDesc::decode(&g.encode(), 32), g);
        let w = GroupDesc {
            bg_inode_table: 1 << 33,
            bg_free_blocks_count: 70000,
            bg_block_bitmap_csum: 0xdead_beef,
            bg_itable_unused: 9,
            ..g
        };
        assert_eq!(GroupDesc::decode(&w.encode_wide(64), 64), w);
    }
}
