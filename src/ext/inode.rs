//! The on-disk inode (`struct ext2_inode_large`). The writer always uses
//! 256-byte inodes with 32 bytes of extra fields.

use super::bytes::*;
use crate::tree::Meta;

pub const INODE_SIZE: usize = 256;
pub const EXTRA_ISIZE: u16 = 32;
pub const EXT2_N_BLOCKS: usize = 15;
pub const EXT2_NDIR_BLOCKS: usize = 12;
pub const EXT2_IND_BLOCK: usize = 12;
pub const EXT2_DIND_BLOCK: usize = 13;
pub const EXT2_TIND_BLOCK: usize = 14;

pub const EXT2_ROOT_INO: u32 = 2;
pub const EXT2_JOURNAL_INO: u32 = 8;
pub const EXT2_GOOD_OLD_FIRST_INO: u32 = 11;

/// The most links an inode may have; a directory past it under dir_nlink
/// counts 1.
pub const EXT4_LINK_MAX: u16 = 65000;

pub const EXT2_INDEX_FL: u32 = 0x1000;
pub const EXT4_EXTENTS_FL: u32 = 0x0008_0000;
pub const EXT4_INLINE_DATA_FL: u32 = 0x1000_0000;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inode {
    pub i_mode: u16,
    pub i_uid: u16,
    pub i_size_lo: u32,
    pub i_atime: u32,
    pub i_ctime: u32,
    pub i_mtime: u32,
    pub i_dtime: u32,
    pub i_gid: u16,
    pub i_links_count: u16,
    pub i_blocks_lo: u32,
    pub i_flags: u32,
    pub i_block: [u32; EXT2_N_BLOCKS],
    pub i_generation: u32,
    pub i_file_acl_lo: u32,
    pub i_size_high: u32,
    pub l_i_blocks_high: u16,
    pub l_i_uid_high: u16,
    pub l_i_gid_high: u16,
    pub i_extra_isize: u16,
    pub i_ctime_extra: u32,
    pub i_mtime_extra: u32,
    pub i_atime_extra: u32,
    pub i_crtime: u32,
    pub i_crtime_extra: u32,
    /// The in-inode extended-attribute area (after `i_extra_isize`), kept
    /// by the reader for inline-data inodes only, whose content continues
    /// in the `system.data` attribute there; empty otherwise.
    pub ibody_xattrs: Vec<u8>,
}

impl Inode {
    /// A new inode of `mode` with `meta`'s owner and times (access,
    /// change, modification and, in large records, creation all at the
    /// modification time), one link, in a record of `inode_size` bytes.
    pub fn new(mode: u32, meta: Meta, inode_size: u32) -> Inode {
        let mut i = Inode {
            i_links_count: 1,
            i_extra_isize: if inode_size > 128 { EXTRA_ISIZE } else { 0 },
            ..Default::default()
        };
        i.apply_meta(mode, meta);
        if inode_size > 128 {
            i.i_crtime = i.i_mtime;
            i.i_crtime_extra = i.i_mtime_extra;
        }
        i
    }

    /// Sets mode, owner and times from `meta`; a time that cannot be
    /// stored becomes the epoch (callers check times first).
    pub fn apply_meta(&mut self, mode: u32, meta: Meta) {
        let (t, extra) = encode_time(meta.mtime).unwrap_or((0, 0));
        self.i_mode = mode as u16;
        self.i_uid = meta.uid as u16;
        self.l_i_uid_high = (meta.uid >> 16) as u16;
        self.i_gid = meta.gid as u16;
        self.l_i_gid_high = (meta.gid >> 16) as u16;
        self.i_atime = t;
        self.i_ctime = t;
        self.i_mtime = t;
        if self.i_extra_isize >= 16 {
            self.i_ctime_extra = extra;
            self.i_mtime_extra = extra;
            self.i_atime_extra = extra;
        }
    }

    /// Sets the size and the 512-byte sector count (its low 32 bits, and
    /// the high 16 that huge_file adds).
    pub fn set_size(&mut self, size: u64, sectors: u64) {
        self.i_size_lo = size as u32;
        self.i_size_high = (size >> 32) as u32;
        self.i_blocks_lo = sectors as u32;
        self.l_i_blocks_high = (sectors >> 32) as u16;
    }

    /// Decodes an inode record of `len` bytes (128 or more).
    pub fn decode(b: &[u8]) -> Inode {
        let mut blk = [0u32; EXT2_N_BLOCKS];
        for (i, v) in blk.iter_mut().enumerate() {
            *v = le32(b, 0x28 + 4 * i);
        }
        let extra = if b.len() > 128 { le16(b, 0x80) } else { 0 };
        let ext = |off: usize| {
            if usize::from(extra) + 128 >= off + 4 {
                le32(b, off)
            } else {
                0
            }
        };
        Inode {
            i_mode: le16(b, 0x0),
            i_uid: le16(b, 0x2),
            i_size_lo: le32(b, 0x4),
            i_atime: le32(b, 0x8),
            i_ctime: le32(b, 0xC),
            i_mtime: le32(b, 0x10),
            i_dtime: le32(b, 0x14),
            i_gid: le16(b, 0x18),
            i_links_count: le16(b, 0x1A),
            i_blocks_lo: le32(b, 0x1C),
            i_flags: le32(b, 0x20),
            i_block: blk,
            i_generation: le32(b, 0x64),
            i_file_acl_lo: le32(b, 0x68),
            i_size_high: le32(b, 0x6C),
            l_i_blocks_high: le16(b, 0x74),
            l_i_uid_high: le16(b, 0x78),
            l_i_gid_high: le16(b, 0x7A),
            i_extra_isize: extra,
            i_ctime_extra: ext(0x84),
            i_mtime_extra: ext(0x88),
            i_atime_extra: ext(0x8C),
            i_crtime: ext(0x90),
            i_crtime_extra: ext(0x94),
            ibody_xattrs: Vec::new(),
        }
    }

    pub fn encode(&self) -> [u8; INODE_SIZE] {
        let mut b = [0u8; INODE_SIZE];
        self.encode_into(&mut b);
        b
    }

    /// Writes the fields this type holds over an existing inode record
    /// of `b.len()` bytes and leaves every other byte as it is: fields
    /// nobody decodes here (`osd1`, `i_faddr`, checksums, `i_projid`) and
    /// whatever lies past `128 + i_extra_isize`, which is where in-inode
    /// extended attributes live. Extra fields are written only where
    /// `i_extra_isize` says the record has them.
    pub fn encode_into(&self, b: &mut [u8]) {
        put16(b, 0x0, self.i_mode);
        put16(b, 0x2, self.i_uid);
        put32(b, 0x4, self.i_size_lo);
        put32(b, 0x8, self.i_atime);
        put32(b, 0xC, self.i_ctime);
        put32(b, 0x10, self.i_mtime);
        put32(b, 0x14, self.i_dtime);
        put16(b, 0x18, self.i_gid);
        put16(b, 0x1A, self.i_links_count);
        put32(b, 0x1C, self.i_blocks_lo);
        put32(b, 0x20, self.i_flags);
        for (i, v) in self.i_block.iter().enumerate() {
            put32(b, 0x28 + 4 * i, *v);
        }
        put32(b, 0x64, self.i_generation);
        put32(b, 0x68, self.i_file_acl_lo);
        put32(b, 0x6C, self.i_size_high);
        put16(b, 0x74, self.l_i_blocks_high);
        put16(b, 0x78, self.l_i_uid_high);
        put16(b, 0x7A, self.l_i_gid_high);
        if b.len() <= 128 {
            return;
        }
        put16(b, 0x80, self.i_extra_isize);
        let end = 128 + usize::from(self.i_extra_isize);
        for (off, v) in [
            (0x84, self.i_ctime_extra),
            (0x88, self.i_mtime_extra),
            (0x8C, self.i_atime_extra),
            (0x90, self.i_crtime),
            (0x94, self.i_crtime_extra),
        ] {
            if off + 4 <= end {
                put32(b, off, v);
            }
        }
    }

    /// Writes this inode over its record `rec` (see [`Inode::encode_into`])
    /// as inode `ino`, sealed with its checksum under metadata_csum
    /// (`csum` is the volume's checksum seed).
    pub fn store(&self, rec: &mut [u8], ino: u32, csum: Option<u32>) {
        self.encode_into(rec);
        if let Some(v) = csum {
            super::csum::seal_inode(v, ino, rec);
        }
    }

    pub fn size(&self) -> u64 {
        (u64::from(self.i_size_high) << 32) | u64::from(self.i_size_lo)
    }

    pub fn uid(&self) -> u32 {
        (u32::from(self.l_i_uid_high) << 16) | u32::from(self.i_uid)
    }

    pub fn gid(&self) -> u32 {
        (u32::from(self.l_i_gid_high) << 16) | u32::from(self.i_gid)
    }

    /// Seconds since the epoch: the signed 32-bit field extended by the
    /// two epoch bits of the `_extra` field.
    pub fn mtime(&self) -> i64 {
        decode_time(self.i_mtime, self.i_mtime_extra)
    }

    /// The i_block array as the raw 60 bytes (fast symlinks, inline data).
    pub fn i_block_bytes(&self) -> [u8; 60] {
        let mut out = [0u8; 60];
        for (i, v) in self.i_block.iter().enumerate() {
            put32(&mut out, 4 * i, *v);
        }
        out
    }

    /// Device numbers as the kernel stores them: the old 8:8 encoding in
    /// `i_block[0]` when it fits, otherwise the new 12:20 encoding in
    /// `i_block[1]`.
    pub fn device(&self) -> (u32, u32) {
        if self.i_block[0] != 0 {
            let d = self.i_block[0];
            ((d >> 8) & 0xff, d & 0xff)
        } else {
            let d = self.i_block[1];
            ((d & 0xfff00) >> 8, (d & 0xff) | ((d >> 12) & 0xfff00))
        }
    }
}

/// The `i_block` of a fast symlink: its target (shorter than 60 bytes)
/// as the raw 60 bytes.
pub fn fast_symlink(target: &[u8]) -> [u32; EXT2_N_BLOCKS] {
    let mut raw = [0u8; 60];
    let n = target.len().min(59);
    raw[..n].copy_from_slice(&target[..n]);
    let mut out = [0u32; EXT2_N_BLOCKS];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = le32(&raw, 4 * i);
    }
    out
}

/// Splits seconds since the epoch into the 32-bit field and the `_extra`
/// field's epoch bits; `None` outside what two epoch bits can express
/// without being mistaken for a pre-1970 time.
pub fn encode_time(t: i64) -> Option<(u32, u32)> {
    let lo = t as i32;
    let epoch = (t - i64::from(lo)) >> 32;
    if !(0..=3).contains(&epoch) || (epoch == 3 && lo < 0) {
        return None;
    }
    Some((lo as u32, epoch as u32))
}

pub fn decode_time(field: u32, extra: u32) -> i64 {
    i64::from(field as i32) + (i64::from(extra & 3) << 32)
}

/// The kernel's device encoding; `None` when the numbers exceed 12:20 bits.
pub fn encode_device(major: u32, minor: u32) -> Option<[u32; 2]> {
    if major < 256 && minor < 256 {
        Some([(major << 8) | minor, 0])
    } else if major < 0x1000 && minor < 0x10_0000 {
        Some([0, (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for t in [
            0i64,
            -1,
            -(1 << 31),
            (1 << 31) - 1,
            1 << 31,
            4_000_000_000,
            1 << 33,
        ] {
            let (f, e) = encode_time(t).unwrap();
            assert_eq!(decode_time(f, e), t, "{t}");
        }
        assert!(encode_time(-(1 << 31) - 1).is_none());
        assert!(encode_time(1 << 40).is_none());
    }

    #[test]
    fn devices_round_trip() {
        for (ma, mi) in [(1, 3), (8, 0), (0, 1), (259, 0), (4095, 0xfffff), (8, 300)] {
            let [a, b] = encode_device(ma, mi).unwrap();
            let ino = Inode {
                i_block: [a, b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                ..Default::default()
            };
            assert_eq!(ino.device(), (ma, mi));
        }
        assert!(encode_device(4096, 0).is_none());
    }

    #[test]
    fn encode_into_keeps_what_it_does_not_hold() {
        // a record with 4 extra bytes: in-inode attributes start at 132
        let mut rec = [0xA5u8; INODE_SIZE];
        let i = Inode {
            i_mode: 0o40755,
            i_extra_isize: 4,
            i_crtime: 7,
            ..Default::default()
        };
        i.encode_into(&mut rec);
        assert_eq!(Inode::decode(&rec).i_mode, 0o40755);
        assert_eq!(le16(&rec, 0x80), 4);
        // undecoded fields and everything past the extra fields stay
        assert!(rec[0x24..0x28].iter().all(|&b| b == 0xA5));
        assert!(rec[0x70..0x74].iter().all(|&b| b == 0xA5));
        assert!(rec[0x82..0x84].iter().all(|&b| b == 0xA5));
        assert!(rec[0x84..].iter().all(|&b| b == 0xA5));
    }

    #[test]
    fn encode_decode() {
        let i = Inode {
            i_mode: 0o100644,
            i_size_high: 1,
            l_i_uid_high: 2,
            i_extra_isize: EXTRA_ISIZE,
            i_mtime_extra: 1,
            i_crtime: 5,
            ..Default::default()
        };
        assert_eq!(Inode::decode(&i.encode()), i);
    }
}
