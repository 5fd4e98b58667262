//! The jbd2 journal: its superblock (`journal_superblock_t`, version 2)
//! and the blocks of one transaction (descriptor blocks with their block
//! tags, then the commit block), with or without checksum v3 and 64-bit
//! block numbers. Unlike the rest of the file system, the journal is
//! big-endian.

use super::bytes::*;
use super::csum;

pub const JBD2_MAGIC_NUMBER: u32 = 0xC03B_3998;
pub const JBD2_SUPERBLOCK_V2: u32 = 4;
const JBD2_DESCRIPTOR_BLOCK: u32 = 1;
const JBD2_COMMIT_BLOCK: u32 = 2;
const JBD2_FLAG_ESCAPE: u32 = 1;
const JBD2_FLAG_SAME_UUID: u32 = 2;
const JBD2_FLAG_LAST_TAG: u32 = 8;
/// Incompatible feature: revoke records (which a replay honours; none
/// are written here).
pub const JBD2_FEATURE_INCOMPAT_REVOKE: u32 = 0x1;
/// Incompatible feature: block tags carry 64-bit block numbers.
pub const JBD2_FEATURE_INCOMPAT_64BIT: u32 = 0x2;
/// Incompatible feature: checksum v3 on every journal block.
pub const JBD2_FEATURE_INCOMPAT_CSUM_V3: u32 = 0x10;
/// The incompatible features a transaction written here honours.
pub const JBD2_WRITABLE_INCOMPAT: u32 =
    JBD2_FEATURE_INCOMPAT_REVOKE | JBD2_FEATURE_INCOMPAT_64BIT | JBD2_FEATURE_INCOMPAT_CSUM_V3;
/// Offsets in the journal superblock.
pub const JSB_SEQUENCE: usize = 0x18;
pub const JSB_START: usize = 0x1C;
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

/// How one journal lays out a transaction: tag size, checksums.
#[derive(Clone, Copy, Debug)]
pub struct TxFormat {
    block_size: usize,
    csum_v3: bool,
    wide: bool,
    uuid: [u8; 16],
    seed: u32,
}

/// One transaction's blocks in log order: descriptor and logged blocks,
/// and, apart, the commit block that makes it count.
pub struct Transaction {
    pub blocks: Vec<Vec<u8>>,
    pub commit: Vec<u8>,
}

impl TxFormat {
    /// The format of the journal whose superblock is `jsb`; `Err` names
    /// what a transaction written here could not honour.
    pub fn new(jsb: &[u8]) -> Result<TxFormat, String> {
        let incompat = be32(jsb, 0x28);
        let unknown = incompat & !JBD2_WRITABLE_INCOMPAT;
        if unknown != 0 {
            return Err(format!("journal incompatible features {unknown:#x}"));
        }
        if be32(jsb, 0x24) != 0 || be32(jsb, 0x2C) != 0 {
            return Err("journal checksum v1 or read-only features".into());
        }
        let csum_v3 = incompat & JBD2_FEATURE_INCOMPAT_CSUM_V3 != 0;
        if csum_v3 && jsb.get(0x50) != Some(&JBD2_CRC32C_CHKSUM) {
            return Err("journal checksum type other than crc32c".into());
        }
        let uuid: [u8; 16] = bytes(jsb, 0x30);
        Ok(TxFormat {
            block_size: be32(jsb, 0xC) as usize,
            csum_v3,
            wide: incompat & JBD2_FEATURE_INCOMPAT_64BIT != 0,
            uuid,
            seed: csum::journal_seed(&uuid),
        })
    }

    fn tag_bytes(&self) -> usize {
        match (self.csum_v3, self.wide) {
            (true, _) => 16,
            (false, true) => 12,
            (false, false) => 8,
        }
    }

    /// Tags that fit one descriptor block (the first carries the UUID;
    /// with checksums the block ends in its own).
    fn per_descriptor(&self) -> usize {
        let tail = if self.csum_v3 { 4 } else { 0 };
        ((self.block_size - 12 - tail - 16) / self.tag_bytes()).max(1)
    }

    /// Journal blocks a transaction of `n` blocks takes, commit included.
    pub fn blocks_needed(&self, n: usize) -> u64 {
        (n.div_ceil(self.per_descriptor()) + n + 1) as u64
    }

    /// The transaction `seq` logging `blocks` (final block number and
    /// content), committed at `time`.
    pub fn transaction(&self, seq: u32, blocks: &[(u64, Vec<u8>)], time: i64) -> Transaction {
        let bs = self.block_size;
        let header = |kind: u32| {
            let mut b = vec![0u8; bs];
            put_be32(&mut b, 0, JBD2_MAGIC_NUMBER);
            put_be32(&mut b, 4, kind);
            put_be32(&mut b, 8, seq);
            b
        };
        let mut out = Vec::with_capacity(self.blocks_needed(blocks.len()) as usize);
        for chunk in blocks.chunks(self.per_descriptor()) {
            let mut desc = header(JBD2_DESCRIPTOR_BLOCK);
            let at = out.len();
            out.push(Vec::new());
            let mut off = 12;
            for (k, (b, data)) in chunk.iter().enumerate() {
                let mut flags = 0;
                if k > 0 {
                    flags |= JBD2_FLAG_SAME_UUID;
                }
                if k + 1 == chunk.len() {
                    flags |= JBD2_FLAG_LAST_TAG;
                }
                // a logged block that looks like a journal block is
                // stored with its magic number zeroed
                let mut data = data.clone();
                if be32(&data, 0) == JBD2_MAGIC_NUMBER {
                    flags |= JBD2_FLAG_ESCAPE;
                    put_be32(&mut data, 0, 0);
                }
                put_be32(&mut desc, off, *b as u32);
                if self.csum_v3 {
                    put_be32(&mut desc, off + 4, flags);
                    if self.wide {
                        put_be32(&mut desc, off + 8, (*b >> 32) as u32);
                    }
                    let c = csum::journal_block(self.seed, seq, &data);
                    put_be32(&mut desc, off + 12, c);
                } else {
                    put_bytes(&mut desc, off + 6, &(flags as u16).to_be_bytes());
                    if self.wide {
                        put_be32(&mut desc, off + 8, (*b >> 32) as u32);
                    }
                }
                off += self.tag_bytes();
                if k == 0 {
                    put_bytes(&mut desc, off, &self.uuid);
                    off += 16;
                }
                out.push(data);
            }
            if self.csum_v3 {
                csum::seal_journal_descriptor(self.seed, &mut desc);
            }
            out[at] = desc;
        }
        let mut commit = header(JBD2_COMMIT_BLOCK);
        put_bytes(&mut commit, 48, &(time as u64).to_be_bytes());
        if self.csum_v3 {
            csum::seal_journal_commit(self.seed, &mut commit);
        }
        Transaction {
            blocks: out,
            commit,
        }
    }

    /// Sets the log start and next sequence of superblock `jsb`, sealing
    /// it again under checksum v3.
    pub fn set_start(&self, jsb: &mut [u8], start: u32, seq: u32) {
        put_be32(jsb, JSB_START, start);
        put_be32(jsb, JSB_SEQUENCE, seq);
        if self.csum_v3 {
            csum::seal_journal_superblock(jsb);
        }
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
