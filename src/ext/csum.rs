//! metadata_csum: the crc32c checksums ext4 keeps on its metadata, and
//! jbd2's checksum v3 on the journal superblock.
//!
//! The kernel's `ext4_chksum(seed, data)` is crc32c without the final
//! inversion, continued from `seed`; every checksum here is that raw form.
//! The volume seed is the raw crc32c of the UUID from `!0`, and each
//! inode's seed continues it over the inode number and generation.

use super::bytes::*;

/// The raw crc32c of `data` continued from `seed`, as the kernel computes it.
pub fn raw(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// `s_checksum_type` for crc32c.
pub const CSUM_TYPE_CRC32C: u8 = 1;
/// Offset of `s_checksum`, the superblock's own checksum.
const SB_CHECKSUM: usize = 0x3FC;

/// The per-volume seed from the UUID.
pub fn volume_seed(uuid: &[u8; 16]) -> u32 {
    raw(!0, uuid)
}

/// The seed of inode `ino` with generation `gen`.
pub fn inode_seed(volume: u32, ino: u32, gen: u32) -> u32 {
    raw(raw(volume, &ino.to_le_bytes()), &gen.to_le_bytes())
}

/// Fills in the superblock's checksum (over every byte before it).
pub fn seal_superblock(sb: &mut [u8]) {
    let c = raw(!0, sb.get(..SB_CHECKSUM).unwrap_or(&[]));
    put32(sb, SB_CHECKSUM, c);
}

/// Fills in `bg_checksum` of group `group`'s descriptor `d`: the low 16
/// bits of the crc over the group number and the descriptor with the
/// checksum field taken as zero.
pub fn seal_group_desc(volume: u32, group: u32, d: &mut [u8]) {
    put16(d, 0x1E, 0);
    let c = raw(raw(volume, &group.to_le_bytes()), d);
    put16(d, 0x1E, c as u16);
}

/// The crc16 (polynomial 0x8005, reflected) of e2fsprogs' and the
/// kernel's `crc16`, continued from `crc`.
fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Fills in `bg_checksum` as gdt_csum (uninit_bg) wants it without
/// metadata_csum: crc16 over the UUID, the group number and the
/// descriptor less its checksum field.
pub fn seal_group_desc_crc16(uuid: &[u8; 16], group: u32, d: &mut [u8]) {
    let mut c = crc16(!0, uuid);
    c = crc16(c, &group.to_le_bytes());
    c = crc16(c, d.get(..0x1E).unwrap_or(&[]));
    c = crc16(c, d.get(0x20..).unwrap_or(&[]));
    put16(d, 0x1E, c);
}

/// The checksum of a bitmap: over the bytes of its group's bits only.
pub fn bitmap(volume: u32, bits: &[u8], nbits: u32) -> u32 {
    raw(volume, bits.get(..(nbits / 8) as usize).unwrap_or(bits))
}

/// Fills in an inode record's checksum (`l_i_checksum_lo` and, in a
/// record with room for it, `i_checksum_hi`).
pub fn seal_inode(volume: u32, ino: u32, rec: &mut [u8]) {
    let gen = le32(rec, 0x64);
    let extra = if rec.len() > 128 { le16(rec, 0x80) } else { 0 };
    let has_hi = rec.len() > 128 && extra >= 4;
    put16(rec, 0x7C, 0);
    if has_hi {
        put16(rec, 0x82, 0);
    }
    let c = raw(inode_seed(volume, ino, gen), rec);
    put16(rec, 0x7C, c as u16);
    if has_hi {
        put16(rec, 0x82, (c >> 16) as u16);
    }
}

/// Fills in the tail of an extent-tree block: the crc of the header and
/// every entry slot (`eh_max` of them), stored right after them.
pub fn seal_extent_block(inode_seed: u32, block: &mut [u8]) {
    let max = usize::from(le16(block, 4));
    let end = 12 + 12 * max;
    let c = raw(inode_seed, block.get(..end).unwrap_or(&[]));
    put32(block, end, c);
}

/// Fills in an extended-attribute block's checksum (`h_checksum`):
/// over its block number, then the block with the field taken as zero.
pub fn seal_xattr_block(volume: u32, block_nr: u64, block: &mut [u8]) {
    put32(block, 0x10, 0);
    let c = raw(raw(volume, &block_nr.to_le_bytes()), block);
    put32(block, 0x10, c);
}

/// Size of the fake directory entry holding a leaf block's checksum.
pub const DIRENT_TAIL: usize = 12;

/// Writes the checksum tail (an entry of inode 0, `rec_len` 12, name
/// length 0, file type 0xDE) in the last 12 bytes of a leaf directory
/// block, then its checksum over everything before it.
pub fn seal_dir_block(inode_seed: u32, block: &mut [u8]) {
    let t = block.len() - DIRENT_TAIL;
    put32(block, t, 0);
    put16(block, t + 4, DIRENT_TAIL as u16);
    put16(block, t + 6, 0xDE00);
    let c = raw(inode_seed, block.get(..t).unwrap_or(&[]));
    put32(block, t + 8, c);
}

/// Fills in the tail of an htree index block whose `dx_countlimit` is at
/// `count_offset`: the crc over the header and the `count` used entries,
/// then the tail (reserved word and checksum taken as zero); the tail
/// follows the `limit` slots.
pub fn seal_dx_block(inode_seed: u32, block: &mut [u8], count_offset: usize) {
    let limit = usize::from(le16(block, count_offset));
    let count = usize::from(le16(block, count_offset + 2));
    let tail = count_offset + 8 * limit;
    put32(block, tail, 0);
    let c = raw(
        inode_seed,
        block.get(..count_offset + 8 * count).unwrap_or(&[]),
    );
    let c = raw(c, &[0; 8]);
    put32(block, tail + 4, c);
}

/// jbd2's checksum v3 on the journal superblock (1024 bytes, with
/// `s_checksum` at 0xFC taken as zero), big-endian like the rest of it.
pub fn seal_journal_superblock(jsb: &mut [u8]) {
    put_be32(jsb, 0xFC, 0);
    let c = raw(!0, jsb.get(..1024).unwrap_or(jsb));
    put_be32(jsb, 0xFC, c);
}

/// jbd2's checksum seed: the raw crc32c of the journal's UUID.
pub fn journal_seed(uuid: &[u8; 16]) -> u32 {
    raw(!0, uuid)
}

/// Fills in the tail of a jbd2 descriptor block (its last four bytes):
/// the crc over the whole block with the tail taken as zero.
pub fn seal_journal_descriptor(seed: u32, block: &mut [u8]) {
    let t = block.len() - 4;
    put_be32(block, t, 0);
    let c = raw(seed, block);
    put_be32(block, t, c);
}

/// The checksum v3 of a block logged in transaction `seq`, as its tag
/// carries it: over the sequence (big-endian) and the block as logged.
pub fn journal_block(seed: u32, seq: u32, data: &[u8]) -> u32 {
    raw(raw(seed, &seq.to_be_bytes()), data)
}

/// Fills in a jbd2 commit block's checksum (`h_chksum[0]`, with the
/// checksum type and size bytes zero): the crc over the whole block.
pub fn seal_journal_commit(seed: u32, block: &mut [u8]) {
    put_bytes(block, 12, &[0, 0]);
    put_be32(block, 16, 0);
    let c = raw(seed, block);
    put_be32(block, 16, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_is_the_uninverted_crc32c() {
        // crc32c("123456789") is 0xe3069283; the raw form from !0 lacks
        // the final inversion
        assert_eq!(raw(!0, b"123456789"), !0xe306_9283);
        // continuing equals computing at once
        assert_eq!(raw(raw(!0, b"1234"), b"56789"), raw(!0, b"123456789"));
    }

    #[test]
    fn crc16_is_the_arc_crc() {
        // CRC-16/ARC of "123456789" is 0xbb3d
        assert_eq!(crc16(0, b"123456789"), 0xbb3d);
    }
}
