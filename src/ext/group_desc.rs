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
}

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
        };
        assert_eq!(GroupDesc::decode(&g.encode(), 32), g);
    }
}
