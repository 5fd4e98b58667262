//! The jbd2 journal superblock (`journal_superblock_t`, version 2). Unlike
//! the rest of the file system, the journal is big-endian.

use super::bytes::*;

pub const JBD2_MAGIC_NUMBER: u32 = 0xC03B_3998;
pub const JBD2_SUPERBLOCK_V2: u32 = 4;
/// Incompatible feature: checksum v3 on every journal block.
pub const JBD2_FEATURE_INCOMPAT_CSUM_V3: u32 = 0x10;
/// `s_checksum_type` for crc32c.
pub const JBD2_CRC32C_CHKSUM: u8 = 4;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournalSuperblock {
    pub h_magic: u32,
    pub h_blocktype: u32,
    pub h_sequence: u32,
    pub s_blocksize: u32,
    pub s_maxlen: u32,
    pub s_first: u32,
    pub s_sequence: u32,
    pub s_start: u32,
    pub s_errno: u32,
    pub s_feature_compat: u32,
    pub s_feature_incompat: u32,
    pub s_feature_ro_compat: u32,
    pub s_uuid: [u8; 16],
    pub s_nr_users: u32,
    pub s_checksum_type: u8,
}

impl JournalSuperblock {
    /// An empty journal of `maxlen` blocks as mke2fs makes it for an
    /// internal journal: one user, log starting at block 1, nothing to
    /// replay.
    pub fn new_internal(block_size: u32, maxlen: u32, uuid: [u8; 16]) -> JournalSuperblock {
        JournalSuperblock {
            h_magic: JBD2_MAGIC_NUMBER,
            h_blocktype: JBD2_SUPERBLOCK_V2,
            h_sequence: 0,
            s_blocksize: block_size,
            s_maxlen: maxlen,
            s_first: 1,
            s_sequence: 1,
            s_start: 0,
            s_uuid: uuid,
            s_nr_users: 1,
            ..Default::default()
        }
    }

    pub fn encode(&self, block_size: usize) -> Vec<u8> {
        let mut b = vec![0u8; block_size];
        put_be32(&mut b, 0x0, self.h_magic);
        put_be32(&mut b, 0x4, self.h_blocktype);
        put_be32(&mut b, 0x8, self.h_sequence);
        put_be32(&mut b, 0xC, self.s_blocksize);
        put_be32(&mut b, 0x10, self.s_maxlen);
        put_be32(&mut b, 0x14, self.s_first);
        put_be32(&mut b, 0x18, self.s_sequence);
        put_be32(&mut b, 0x1C, self.s_start);
        put_be32(&mut b, 0x20, self.s_errno);
        put_be32(&mut b, 0x24, self.s_feature_compat);
        put_be32(&mut b, 0x28, self.s_feature_incompat);
        put_be32(&mut b, 0x2C, self.s_feature_ro_compat);
        put_bytes(&mut b, 0x30, &self.s_uuid);
        put_be32(&mut b, 0x40, self.s_nr_users);
        if let Some(t) = b.get_mut(0x50) {
            *t = self.s_checksum_type;
        }
        if self.s_feature_incompat & JBD2_FEATURE_INCOMPAT_CSUM_V3 != 0 {
            super::csum::seal_journal_superblock(&mut b);
        }
        b
    }

    /// The same with checksum v3 (crc32c), for volumes with
    /// metadata_csum.
    pub fn with_csum_v3(mut self) -> JournalSuperblock {
        self.s_feature_incompat |= JBD2_FEATURE_INCOMPAT_CSUM_V3;
        self.s_checksum_type = JBD2_CRC32C_CHKSUM;
        self
    }
}

/// Journal length in blocks for a volume of `blocks` blocks, following
/// e2fsprogs' default sizing (about 4 MiB for small volumes up to 1 GiB
/// for the largest); `None` when the volume is too small for a journal.
pub fn default_journal_blocks(blocks: u64) -> Option<u32> {
    Some(match blocks {
        b if b < 2048 => return None,
        b if b < 32768 => 1024,
        b if b < 256 * 1024 => 4096,
        b if b < 512 * 1024 => 8192,
        b if b < 4096 * 1024 => 16384,
        b if b < 8192 * 1024 => 32768,
        b if b < 16384 * 1024 => 65536,
        b if b < 32768 * 1024 => 131072,
        _ => 262144,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_layout() {
        let j = JournalSuperblock::new_internal(1024, 1024, [7; 16]);
        let b = j.encode(1024);
        assert_eq!(&b[0..4], &[0xC0, 0x3B, 0x39, 0x98]);
        assert_eq!(&b[0x10..0x14], &[0, 0, 4, 0]);
        assert_eq!(&b[0x30..0x40], &[7; 16]);
    }

    #[test]
    fn sizes_like_mke2fs() {
        assert_eq!(default_journal_blocks(2047), None);
        assert_eq!(default_journal_blocks(8192), Some(1024));
        assert_eq!(default_journal_blocks(262144), Some(8192));
        assert_eq!(default_journal_blocks(1 << 30), Some(262144));
    }
}
