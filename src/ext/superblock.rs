//! The ext2/3/4 superblock (`struct ext2_super_block`), 1024 bytes at byte
//! offset 1024 of the volume and, as backups, at the start of some groups.

use super::bytes::*;

pub const SUPERBLOCK_OFFSET: u64 = 1024;
pub const SUPERBLOCK_SIZE: usize = 1024;
pub const EXT2_SUPER_MAGIC: u16 = 0xEF53;

pub const EXT2_VALID_FS: u16 = 1;
pub const EXT2_ERRORS_CONTINUE: u16 = 1;
pub const EXT2_DYNAMIC_REV: u32 = 1;
pub const EXT2_OS_LINUX: u32 = 0;
pub const EXT2_FLAGS_SIGNED_HASH: u32 = 0x0001;
pub const EXT3_JNL_BACKUP_BLOCKS: u8 = 1;

pub const COMPAT_HAS_JOURNAL: u32 = 0x0004;
pub const COMPAT_EXT_ATTR: u32 = 0x0008;
pub const COMPAT_RESIZE_INODE: u32 = 0x0010;
pub const COMPAT_DIR_INDEX: u32 = 0x0020;
pub const COMPAT_SPARSE_SUPER2: u32 = 0x0200;
pub const COMPAT_STABLE_INODES: u32 = 0x0800;
pub const COMPAT_ORPHAN_FILE: u32 = 0x1000;

/// `s_default_mount_opts`: user_xattr and acl, as mke2fs sets them.
pub const DEFM_XATTR_USER: u32 = 0x0004;
pub const DEFM_ACL: u32 = 0x0008;

pub const INCOMPAT_FILETYPE: u32 = 0x0002;
pub const INCOMPAT_RECOVER: u32 = 0x0004;
pub const INCOMPAT_EXTENTS: u32 = 0x0040;
pub const INCOMPAT_64BIT: u32 = 0x0080;
pub const INCOMPAT_MMP: u32 = 0x0100;
pub const INCOMPAT_FLEX_BG: u32 = 0x0200;
pub const INCOMPAT_EA_INODE: u32 = 0x0400;
pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;
pub const INCOMPAT_LARGEDIR: u32 = 0x4000;
pub const INCOMPAT_INLINE_DATA: u32 = 0x8000;

pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
pub const RO_COMPAT_LARGE_FILE: u32 = 0x0002;
pub const RO_COMPAT_HUGE_FILE: u32 = 0x0008;
pub const RO_COMPAT_GDT_CSUM: u32 = 0x0010;
pub const RO_COMPAT_DIR_NLINK: u32 = 0x0020;
pub const RO_COMPAT_EXTRA_ISIZE: u32 = 0x0040;
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x0400;
pub const RO_COMPAT_ORPHAN_PRESENT: u32 = 0x10000;

/// `s_flags`: directory hashes take bytes as unsigned.
pub const EXT2_FLAGS_UNSIGNED_HASH: u32 = 0x0002;
/// Offsets of fields [`Superblock`] does not hold.
pub const SB_FREE_BLOCKS_HI: usize = 0x158;
pub const SB_LAST_ORPHAN: usize = 0xE8;
pub const SB_CHECKSUM_SEED: usize = 0x270;

/// The names of the compatible features in `bits`.
pub fn compat_names(bits: u32) -> String {
    feature_names(
        bits,
        &[
            (0x0001, "dir_prealloc"),
            (0x0002, "imagic_inodes"),
            (COMPAT_HAS_JOURNAL, "has_journal"),
            (COMPAT_EXT_ATTR, "ext_attr"),
            (COMPAT_RESIZE_INODE, "resize_inode"),
            (COMPAT_DIR_INDEX, "dir_index"),
            (0x0040, "lazy_bg"),
            (0x0080, "snapshot_bitmap"),
            (0x0100, "exclude_bitmap"),
            (COMPAT_SPARSE_SUPER2, "sparse_super2"),
            (0x0400, "fast_commit"),
            (COMPAT_STABLE_INODES, "stable_inodes"),
            (COMPAT_ORPHAN_FILE, "orphan_file"),
        ],
    )
}

/// The names e2fsprogs gives the incompatible features in `bits`, and
/// the hex of any it has no name for.
pub fn incompat_names(bits: u32) -> String {
    feature_names(
        bits,
        &[
            (0x0001, "compression"),
            (INCOMPAT_FILETYPE, "filetype"),
            (INCOMPAT_RECOVER, "needs_recovery"),
            (0x0008, "journal_dev"),
            (0x0010, "meta_bg"),
            (INCOMPAT_EXTENTS, "extent"),
            (INCOMPAT_64BIT, "64bit"),
            (INCOMPAT_MMP, "mmp"),
            (INCOMPAT_FLEX_BG, "flex_bg"),
            (INCOMPAT_EA_INODE, "ea_inode"),
            (0x1000, "dirdata"),
            (INCOMPAT_CSUM_SEED, "metadata_csum_seed"),
            (INCOMPAT_LARGEDIR, "large_dir"),
            (INCOMPAT_INLINE_DATA, "inline_data"),
            (0x10000, "encrypt"),
            (0x20000, "casefold"),
        ],
    )
}

/// The names of the read-only-compatible features in `bits`.
pub fn ro_compat_names(bits: u32) -> String {
    feature_names(
        bits,
        &[
            (RO_COMPAT_SPARSE_SUPER, "sparse_super"),
            (RO_COMPAT_LARGE_FILE, "large_file"),
            (0x0004, "btree_dir"),
            (RO_COMPAT_HUGE_FILE, "huge_file"),
            (0x0010, "uninit_bg"),
            (RO_COMPAT_DIR_NLINK, "dir_nlink"),
            (RO_COMPAT_EXTRA_ISIZE, "extra_isize"),
            (0x0080, "snapshot"),
            (0x0100, "quota"),
            (0x0200, "bigalloc"),
            (RO_COMPAT_METADATA_CSUM, "metadata_csum"),
            (0x0800, "replica"),
            (0x1000, "read-only"),
            (0x2000, "project"),
            (0x4000, "shared_blocks"),
            (0x8000, "verity"),
            (RO_COMPAT_ORPHAN_PRESENT, "orphan_present"),
        ],
    )
}

fn feature_names(bits: u32, names: &[(u32, &str)]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut rest = bits;
    for &(bit, name) in names {
        if bits & bit != 0 {
            out.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    out.join(" ")
}

/// The fields this crate reads or writes, named as in the on-disk layout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Superblock {
    pub s_inodes_count: u32,
    pub s_blocks_count_lo: u32,
    pub s_r_blocks_count_lo: u32,
    pub s_free_blocks_count_lo: u32,
    pub s_free_inodes_count: u32,
    pub s_first_data_block: u32,
    pub s_log_block_size: u32,
    pub s_log_cluster_size: u32,
    pub s_blocks_per_group: u32,
    pub s_clusters_per_group: u32,
    pub s_inodes_per_group: u32,
    pub s_mtime: u32,
    pub s_wtime: u32,
    pub s_mnt_count: u16,
    pub s_max_mnt_count: u16,
    pub s_magic: u16,
    pub s_state: u16,
    pub s_errors: u16,
    pub s_minor_rev_level: u16,
    pub s_lastcheck: u32,
    pub s_checkinterval: u32,
    pub s_creator_os: u32,
    pub s_rev_level: u32,
    pub s_def_resuid: u16,
    pub s_def_resgid: u16,
    pub s_first_ino: u32,
    pub s_inode_size: u16,
    pub s_block_group_nr: u16,
    pub s_feature_compat: u32,
    pub s_feature_incompat: u32,
    pub s_feature_ro_compat: u32,
    pub s_uuid: [u8; 16],
    pub s_volume_name: [u8; 16],
    pub s_reserved_gdt_blocks: u16,
    pub s_journal_inum: u32,
    pub s_hash_seed: [u32; 4],
    pub s_def_hash_version: u8,
    pub s_jnl_backup_type: u8,
    pub s_desc_size: u16,
    pub s_default_mount_opts: u32,
    pub s_first_meta_bg: u32,
    pub s_mkfs_time: u32,
    pub s_jnl_blocks: [u32; 17],
    pub s_blocks_count_hi: u32,
    pub s_min_extra_isize: u16,
    pub s_want_extra_isize: u16,
    pub s_flags: u32,
    pub s_log_groups_per_flex: u8,
    pub s_checksum_type: u8,
    pub s_wtime_hi: u8,
    pub s_mtime_hi: u8,
    pub s_mkfs_time_hi: u8,
    pub s_lastcheck_hi: u8,
}

impl Superblock {
    pub fn decode(b: &[u8]) -> Superblock {
        let mut hash = [0u32; 4];
        for (i, h) in hash.iter_mut().enumerate() {
            *h = le32(b, 0xEC + 4 * i);
        }
        let mut jnl = [0u32; 17];
        for (i, j) in jnl.iter_mut().enumerate() {
            *j = le32(b, 0x10C + 4 * i);
        }
        Superblock {
            s_inodes_count: le32(b, 0x0),
            s_blocks_count_lo: le32(b, 0x4),
            s_r_blocks_count_lo: le32(b, 0x8),
            s_free_blocks_count_lo: le32(b, 0xC),
            s_free_inodes_count: le32(b, 0x10),
            s_first_data_block: le32(b, 0x14),
            s_log_block_size: le32(b, 0x18),
            s_log_cluster_size: le32(b, 0x1C),
            s_blocks_per_group: le32(b, 0x20),
            s_clusters_per_group: le32(b, 0x24),
            s_inodes_per_group: le32(b, 0x28),
            s_mtime: le32(b, 0x2C),
            s_wtime: le32(b, 0x30),
            s_mnt_count: le16(b, 0x34),
            s_max_mnt_count: le16(b, 0x36),
            s_magic: le16(b, 0x38),
            s_state: le16(b, 0x3A),
            s_errors: le16(b, 0x3C),
            s_minor_rev_level: le16(b, 0x3E),
            s_lastcheck: le32(b, 0x40),
            s_checkinterval: le32(b, 0x44),
            s_creator_os: le32(b, 0x48),
            s_rev_level: le32(b, 0x4C),
            s_def_resuid: le16(b, 0x50),
            s_def_resgid: le16(b, 0x52),
            s_first_ino: le32(b, 0x54),
            s_inode_size: le16(b, 0x58),
            s_block_group_nr: le16(b, 0x5A),
            s_feature_compat: le32(b, 0x5C),
            s_feature_incompat: le32(b, 0x60),
            s_feature_ro_compat: le32(b, 0x64),
            s_uuid: bytes(b, 0x68),
            s_volume_name: bytes(b, 0x78),
            s_reserved_gdt_blocks: le16(b, 0xCE),
            s_journal_inum: le32(b, 0xE0),
            s_hash_seed: hash,
            s_def_hash_version: b.get(0xFC).copied().unwrap_or(0),
            s_jnl_backup_type: b.get(0xFD).copied().unwrap_or(0),
            s_desc_size: le16(b, 0xFE),
            s_default_mount_opts: le32(b, 0x100),
            s_first_meta_bg: le32(b, 0x104),
            s_mkfs_time: le32(b, 0x108),
            s_jnl_blocks: jnl,
            s_blocks_count_hi: le32(b, 0x150),
            s_min_extra_isize: le16(b, 0x15C),
            s_want_extra_isize: le16(b, 0x15E),
            s_flags: le32(b, 0x160),
            s_log_groups_per_flex: b.get(0x174).copied().unwrap_or(0),
            s_checksum_type: b.get(0x175).copied().unwrap_or(0),
            s_wtime_hi: b.get(0x274).copied().unwrap_or(0),
            s_mtime_hi: b.get(0x275).copied().unwrap_or(0),
            s_mkfs_time_hi: b.get(0x276).copied().unwrap_or(0),
            s_lastcheck_hi: b.get(0x277).copied().unwrap_or(0),
        }
    }

    pub fn encode(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        put32(&mut b, 0x0, self.s_inodes_count);
        put32(&mut b, 0x4, self.s_blocks_count_lo);
        put32(&mut b, 0x8, self.s_r_blocks_count_lo);
        put32(&mut b, 0xC, self.s_free_blocks_count_lo);
        put32(&mut b, 0x10, self.s_free_inodes_count);
        put32(&mut b, 0x14, self.s_first_data_block);
        put32(&mut b, 0x18, self.s_log_block_size);
        put32(&mut b, 0x1C, self.s_log_cluster_size);
        put32(&mut b, 0x20, self.s_blocks_per_group);
        put32(&mut b, 0x24, self.s_clusters_per_group);
        put32(&mut b, 0x28, self.s_inodes_per_group);
        put32(&mut b, 0x2C, self.s_mtime);
        put32(&mut b, 0x30, self.s_wtime);
        put16(&mut b, 0x34, self.s_mnt_count);
        put16(&mut b, 0x36, self.s_max_mnt_count);
        put16(&mut b, 0x38, self.s_magic);
        put16(&mut b, 0x3A, self.s_state);
        put16(&mut b, 0x3C, self.s_errors);
        put16(&mut b, 0x3E, self.s_minor_rev_level);
        put32(&mut b, 0x40, self.s_lastcheck);
        put32(&mut b, 0x44, self.s_checkinterval);
        put32(&mut b, 0x48, self.s_creator_os);
        put32(&mut b, 0x4C, self.s_rev_level);
        put16(&mut b, 0x50, self.s_def_resuid);
        put16(&mut b, 0x52, self.s_def_resgid);
        put32(&mut b, 0x54, self.s_first_ino);
        put16(&mut b, 0x58, self.s_inode_size);
        put16(&mut b, 0x5A, self.s_block_group_nr);
        put32(&mut b, 0x5C, self.s_feature_compat);
        put32(&mut b, 0x60, self.s_feature_incompat);
        put32(&mut b, 0x64, self.s_feature_ro_compat);
        put_bytes(&mut b, 0x68, &self.s_uuid);
        put_bytes(&mut b, 0x78, &self.s_volume_name);
        put16(&mut b, 0xCE, self.s_reserved_gdt_blocks);
        put32(&mut b, 0xE0, self.s_journal_inum);
        for (i, h) in self.s_hash_seed.iter().enumerate() {
            put32(&mut b, 0xEC + 4 * i, *h);
        }
        b[0xFC] = self.s_def_hash_version;
        b[0xFD] = self.s_jnl_backup_type;
        put16(&mut b, 0xFE, self.s_desc_size);
        put32(&mut b, 0x100, self.s_default_mount_opts);
        put32(&mut b, 0x104, self.s_first_meta_bg);
        put32(&mut b, 0x108, self.s_mkfs_time);
        for (i, j) in self.s_jnl_blocks.iter().enumerate() {
            put32(&mut b, 0x10C + 4 * i, *j);
        }
        put32(&mut b, 0x150, self.s_blocks_count_hi);
        put16(&mut b, 0x15C, self.s_min_extra_isize);
        put16(&mut b, 0x15E, self.s_want_extra_isize);
        put32(&mut b, 0x160, self.s_flags);
        b[0x174] = self.s_log_groups_per_flex;
        b[0x175] = self.s_checksum_type;
        b[0x274] = self.s_wtime_hi;
        b[0x275] = self.s_mtime_hi;
        b[0x276] = self.s_mkfs_time_hi;
        b[0x277] = self.s_lastcheck_hi;
        b
    }

    /// Block size in bytes, or `None` when `s_log_block_size` is absurd.
    pub fn block_size(&self) -> Option<u32> {
        if self.s_log_block_size > 6 {
            return None;
        }
        Some(1024u32 << self.s_log_block_size)
    }

    pub fn blocks_count(&self) -> u64 {
        let hi = if self.s_feature_incompat & INCOMPAT_64BIT != 0 {
            u64::from(self.s_blocks_count_hi)
        } else {
            0
        };
        (hi << 32) | u64::from(self.s_blocks_count_lo)
    }

    pub fn inode_size(&self) -> u32 {
        if self.s_rev_level == 0 {
            128
        } else {
            u32::from(self.s_inode_size)
        }
    }

    /// Size of one group descriptor.
    pub fn desc_size(&self) -> u32 {
        if self.s_feature_incompat & INCOMPAT_64BIT != 0 && self.s_desc_size >= 64 {
            u32::from(self.s_desc_size)
        } else {
            32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let sb = Superblock {
            s_inodes_count: 7,
            s_magic: EXT2_SUPER_MAGIC,
            s_uuid: [9; 16],
            s_hash_seed: [1, 2, 3, 4],
            s_jnl_blocks: [5; 17],
            s_lastcheck_hi: 1,
            ..Default::default()
        };
        assert_eq!(Superblock::decode(&sb.encode()), sb);
    }
}
