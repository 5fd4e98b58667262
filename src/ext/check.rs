//! Whether a volume is sound enough to be written in place.
//!
//! An in-place update trusts the group descriptors (where bitmaps and
//! inode tables are), the bitmaps (which blocks and inodes are free) and
//! the journal superblock (where a transaction may be written). A volume
//! whose descriptors point a bitmap at the superblock, or whose bitmap
//! calls a file's block free, would have live data overwritten. So before
//! anything is written, [`check_for_write`] checks what e2fsck checks
//! first (`ext2fs_check_desc`, the superblock values, the journal
//! superblock) and then walks every inode in use once, so that no block a
//! file holds can be handed out again. The [`Layout`] it returns tells the
//! allocator which blocks are metadata by position, whatever a bitmap
//! says.

use super::bitmap::Bitmap;
use super::bytes::*;
use super::group_desc::{EXT4_BG_BLOCK_UNINIT, EXT4_BG_INODE_UNINIT};
use super::inode::{self, Inode};
use super::io::read_at;
use super::journal::{TxFormat, JBD2_MAGIC_NUMBER as JBD2_MAGIC, JBD2_SUPERBLOCK_V2};
use super::layout::has_super;
use super::superblock::*;
use super::{Error, Volume};
use crate::tree::{S_IFBLK, S_IFCHR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK};
use std::collections::HashSet;

const RO_COMPAT_BIGALLOC: u32 = 0x0200;
const EXT2_ERROR_FS: u16 = 2;

const JBD2_SUPERBLOCK_V1: u32 = 3;
/// e2fsck's and the kernel's smallest journal.
const JBD2_MIN_JOURNAL_BLOCKS: u64 = 1024;
const EXT4_EXT_MAGIC: u16 = 0xF30A;
const MAX_EXTENT_DEPTH: u16 = 5;
const RESIZE_INO: u32 = 7;

/// What a metadata block is, for messages and for who may own it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum What {
    BootBlock,
    Superblock(u32),
    Descriptors(u32),
    ReservedGdt(u32),
    BlockBitmap(u32),
    InodeBitmap(u32),
    InodeTable(u32),
    Journal,
}

impl std::fmt::Display for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            What::BootBlock => write!(f, "the boot block"),
            What::Superblock(0) => write!(f, "the superblock"),
            What::Superblock(g) => write!(f, "group {g}'s superblock backup"),
            What::Descriptors(0) => write!(f, "the group descriptors"),
            What::Descriptors(g) => write!(f, "group {g}'s descriptor backup"),
            What::ReservedGdt(g) => write!(f, "group {g}'s reserved descriptor blocks"),
            What::BlockBitmap(g) => write!(f, "group {g}'s block bitmap"),
            What::InodeBitmap(g) => write!(f, "group {g}'s inode bitmap"),
            What::InodeTable(g) => write!(f, "group {g}'s inode table"),
            What::Journal => write!(f, "the journal"),
        }
    }
}

/// Where the metadata of a checked volume lies: non-overlapping block
/// ranges `[start, end)`, sorted.
#[derive(Clone, Debug, Default)]
pub(super) struct Layout {
    ranges: Vec<(u64, u64, What)>,
}

impl Layout {
    /// What block `b` is, when it is metadata by position.
    pub(super) fn metadata(&self, b: u64) -> Option<What> {
        let i = self.ranges.partition_point(|r| r.1 <= b);
        self.ranges
            .get(i)
            .filter(|r| r.0 <= b && b < r.1)
            .map(|r| r.2)
    }

    /// Whether block `b` is metadata by position: such a block is never
    /// handed out for data nor released, whatever the bitmap says.
    pub(super) fn is_metadata(&self, b: u64) -> bool {
        self.metadata(b).is_some()
    }
}

fn unsound(m: impl Into<String>) -> Error {
    Error::Unsound(m.into())
}

/// Checks everything an in-place update relies on; nothing is written.
/// Returns the volume's metadata layout for the allocator. Not `whole`
/// (a volume built here, or a copy of one that passed the whole check,
/// written since only by in-place updates): the journal and every
/// inode's blocks are not checked again (the checks that walk the
/// journal's block map and read the whole inode tables), and the layout
/// leaves the journal to the bitmaps, found to hold it.
pub(super) fn check_for_write(vol: &Volume, whole: bool) -> Result<Layout, Error> {
    let mut raw = [0u8; SUPERBLOCK_SIZE];
    read_at(&vol.file, SUPERBLOCK_OFFSET, &mut raw)?;
    let geo = Geo::new(vol, &raw)?;
    check_superblock(vol, &geo)?;
    let mut ranges = static_ranges(vol, &geo)?;
    check_descriptors(vol, &geo, &mut ranges)?;
    if !whole {
        return disjoint(ranges);
    }
    // the descriptors first: the journal's inode is found through them
    disjoint(ranges.clone())?;
    let journal = check_journal(vol, &raw)?;
    ranges.extend(journal.iter().map(|&(s, e)| (s, e, What::Journal)));
    let layout = disjoint(ranges)?;
    check_inodes(vol, &geo, &layout)?;
    Ok(layout)
}

/// Group arithmetic shared by the checks.
struct Geo {
    bs: u64,
    first: u64,
    bpg: u64,
    blocks: u64,
    groups: u32,
    itable_blocks: u64,
    gdt_blocks: u64,
    flex: u32,
    /// Groups holding a superblock backup under sparse_super2.
    backup_bgs: Option<[u32; 2]>,
    csum: bool,
}

impl Geo {
    fn new(vol: &Volume, raw: &[u8]) -> Result<Geo, Error> {
        let sb = &vol.sb;
        let bs = u64::from(vol.block_size);
        let groups =
            u32::try_from(vol.groups.len()).map_err(|_| unsound("more block groups than 2^32"))?;
        let itable_blocks =
            (u64::from(sb.s_inodes_per_group) * u64::from(sb.inode_size())).div_ceil(bs);
        let gdt_blocks = (u64::from(groups) * u64::from(sb.desc_size())).div_ceil(bs);
        let log_flex = raw.get(0x174).copied().unwrap_or(0);
        let flex = if sb.s_feature_incompat & INCOMPAT_FLEX_BG != 0 && log_flex < 31 {
            1u32 << log_flex
        } else {
            1
        };
        let backup_bgs = (sb.s_feature_compat & COMPAT_SPARSE_SUPER2 != 0)
            .then(|| [le32(raw, 0x24C), le32(raw, 0x250)]);
        Ok(Geo {
            bs,
            first: u64::from(sb.s_first_data_block),
            bpg: u64::from(sb.s_blocks_per_group),
            blocks: vol.blocks_count,
            groups,
            itable_blocks,
            gdt_blocks,
            flex,
            backup_bgs,
            csum: sb.s_feature_ro_compat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM) != 0,
        })
    }

    fn group_first(&self, g: u32) -> u64 {
        self.first + u64::from(g) * self.bpg
    }

    fn group_last(&self, g: u32) -> u64 {
        (self.group_first(g) + self.bpg).min(self.blocks) - 1
    }

    /// The blocks a group's bitmaps and inode table may lie in: the
    /// group itself, or its flex group with flex_bg.
    fn bounds(&self, g: u32) -> (u64, u64) {
        let lo = g & !(self.flex - 1);
        let hi = lo.saturating_add(self.flex).min(self.groups) - 1;
        (self.group_first(lo), self.group_last(hi))
    }

    fn has_backup(&self, vol: &Volume, g: u32) -> bool {
        if g == 0 {
            return true;
        }
        if let Some(b) = self.backup_bgs {
            return b.contains(&g);
        }
        vol.sb.s_feature_ro_compat & RO_COMPAT_SPARSE_SUPER == 0 || has_super(g)
    }
}

/// The superblock values e2fsck refuses to go on with or corrects.
fn check_superblock(vol: &Volume, geo: &Geo) -> Result<(), Error> {
    let sb = &vol.sb;
    if sb.s_state & EXT2_ERROR_FS != 0 {
        return Err(unsound("the volume is marked as having errors"));
    }
    if sb.s_state & EXT2_VALID_FS == 0 {
        return Err(unsound(
            "the volume is not marked clean (is it mounted, or was it not unmounted?)",
        ));
    }
    let want_first = u32::from(geo.bs == 1024 && sb.s_log_cluster_size == sb.s_log_block_size);
    if sb.s_first_data_block != want_first {
        return Err(unsound(format!(
            "s_first_data_block is {}, not {want_first}",
            sb.s_first_data_block
        )));
    }
    if sb.s_feature_ro_compat & RO_COMPAT_BIGALLOC == 0
        && sb.s_clusters_per_group != sb.s_blocks_per_group
    {
        return Err(unsound(format!(
            "s_clusters_per_group {} differs from s_blocks_per_group {}",
            sb.s_clusters_per_group, sb.s_blocks_per_group
        )));
    }
    let inodes = u64::from(sb.s_inodes_per_group) * u64::from(geo.groups);
    if u64::from(sb.s_inodes_count) != inodes {
        return Err(unsound(format!(
            "s_inodes_count {} is not {} groups of {} inodes",
            sb.s_inodes_count, geo.groups, sb.s_inodes_per_group
        )));
    }
    if sb.s_rev_level > 0
        && (sb.s_first_ino < inode::EXT2_GOOD_OLD_FIRST_INO || sb.s_first_ino > sb.s_inodes_count)
    {
        return Err(unsound(format!(
            "s_first_ino {} out of range",
            sb.s_first_ino
        )));
    }
    if u64::from(sb.s_reserved_gdt_blocks) > geo.bs / 4 {
        return Err(unsound(format!(
            "s_reserved_gdt_blocks {} exceeds {}",
            sb.s_reserved_gdt_blocks,
            geo.bs / 4
        )));
    }
    let ds = sb.desc_size();
    if !ds.is_power_of_two() {
        return Err(unsound(format!(
            "descriptor size {ds} is not a power of two"
        )));
    }
    // a regular file grows as it is written (mke2fs may leave it short);
    // a device does not
    let regular = vol.file.grows();
    let len = vol.file_len;
    if !regular && geo.blocks.saturating_mul(geo.bs) > len {
        return Err(unsound(format!(
            "the volume claims {} blocks but its device holds {}",
            geo.blocks,
            len / geo.bs
        )));
    }
    if u64::from(sb.s_r_blocks_count_lo) > geo.blocks {
        return Err(unsound("more reserved blocks than blocks"));
    }
    Ok(())
}

/// Superblocks, descriptors and reserved descriptor blocks of every
/// group, by position.
fn static_ranges(vol: &Volume, geo: &Geo) -> Result<Vec<(u64, u64, What)>, Error> {
    let mut out = Vec::new();
    if geo.first > 0 {
        out.push((0, geo.first, What::BootBlock));
    } else if geo.bs == 1024 {
        // a 1 KiB volume whose data starts at 0 is refused above
        return Err(unsound("no room for the boot block"));
    }
    let reserved = u64::from(vol.sb.s_reserved_gdt_blocks);
    for g in 0..geo.groups {
        if !geo.has_backup(vol, g) {
            continue;
        }
        let s = geo.group_first(g);
        out.push((s, s + 1, What::Superblock(g)));
        out.push((s + 1, s + 1 + geo.gdt_blocks, What::Descriptors(g)));
        if reserved > 0 {
            let r = s + 1 + geo.gdt_blocks;
            out.push((r, r + reserved, What::ReservedGdt(g)));
        }
    }
    if let Some(&(_, end, w)) = out.iter().find(|r| r.1 > geo.blocks) {
        return Err(unsound(format!(
            "{w} ends at block {end}, beyond the volume's {} blocks",
            geo.blocks
        )));
    }
    Ok(out)
}

/// What `ext2fs_check_desc` and e2fsck's superblock pass check of each
/// group: bitmaps and inode table inside their group (flex group with
/// flex_bg), uninit flags only with the features that define them.
fn check_descriptors(
    vol: &Volume,
    geo: &Geo,
    out: &mut Vec<(u64, u64, What)>,
) -> Result<(), Error> {
    let desc_size = vol.sb.desc_size() as usize;
    let mut gdt = vec![0u8; vol.groups.len() * desc_size];
    let at = super::reader::gdt_block(&vol.sb, vol.block_size) * geo.bs;
    read_at(&vol.file, at, &mut gdt)?;
    for (g, gd) in vol.groups.iter().enumerate() {
        let g = g as u32;
        let (lo, hi) = geo.bounds(g);
        let place = |what: What, b: u64, n: u64| -> Result<(u64, u64, What), Error> {
            if b < lo || b.saturating_add(n - 1) > hi {
                let span = if geo.flex > 1 { "flex group" } else { "group" };
                return Err(unsound(format!(
                    "{what} at block {b} lies outside its {span} (blocks {lo}-{hi})"
                )));
            }
            Ok((b, b + n, what))
        };
        out.push(place(What::BlockBitmap(g), gd.bg_block_bitmap, 1)?);
        out.push(place(What::InodeBitmap(g), gd.bg_inode_bitmap, 1)?);
        out.push(place(
            What::InodeTable(g),
            gd.bg_inode_table,
            geo.itable_blocks.max(1),
        )?);
        let uninit = gd.bg_flags & (EXT4_BG_INODE_UNINIT | EXT4_BG_BLOCK_UNINIT);
        let itable_unused = le16(&gdt, g as usize * desc_size + 0x1C);
        if !geo.csum && (uninit != 0 || itable_unused != 0) {
            return Err(unsound(format!(
                "group {g} is marked uninitialized but the volume has neither uninit_bg nor metadata_csum"
            )));
        }
        if geo.csum && g + 1 == geo.groups && gd.bg_flags & EXT4_BG_BLOCK_UNINIT != 0 {
            return Err(unsound(format!(
                "the last group ({g}) is marked BLOCK_UNINIT"
            )));
        }
    }
    Ok(())
}

/// The journal superblock and inode as strictly as e2fsck's journal
/// checks; returns the journal's blocks as ranges.
fn check_journal(vol: &Volume, raw_sb: &[u8]) -> Result<Vec<(u64, u64)>, Error> {
    let sb = &vol.sb;
    if sb.s_feature_compat & COMPAT_HAS_JOURNAL == 0 {
        return Ok(Vec::new());
    }
    let jdev = le32(raw_sb, 0xE4);
    if sb.s_journal_inum == 0 || jdev != 0 {
        return Err(unsound(
            "the journal is external (only internal journals are written here)",
        ));
    }
    let jnum = sb.s_journal_inum;
    let j = vol
        .inode(jnum)
        .map_err(|_| unsound(format!("journal inode {jnum} out of range")))?;
    if u32::from(j.i_mode) & S_IFMT != S_IFREG || j.i_links_count == 0 {
        return Err(unsound(format!(
            "journal inode {jnum} is not a regular file in use"
        )));
    }
    let inode_blocks = j.size() / u64::from(vol.block_size);
    if inode_blocks < JBD2_MIN_JOURNAL_BLOCKS {
        return Err(unsound(format!(
            "the journal has {inode_blocks} blocks, fewer than {JBD2_MIN_JOURNAL_BLOCKS}"
        )));
    }
    // every block of the journal, with its logical position for data
    let mut blocks: Vec<u64> = Vec::new();
    let mut logical: Vec<(u64, u64)> = Vec::new();
    walk(vol, &j, &mut |l, b| {
        if b < u64::from(sb.s_first_data_block) || b >= vol.blocks_count {
            return Err(unsound(format!(
                "journal block {b} lies outside the volume"
            )));
        }
        if blocks.len() as u64 > vol.blocks_count {
            return Err(unsound(
                "the journal names more blocks than the volume holds",
            ));
        }
        blocks.push(b);
        if let Some(l) = l {
            logical.push((l, b));
        }
        Ok(())
    })
    .map_err(|e| match e {
        Error::Unsound(m) => unsound(m),
        other => unsound(format!("journal inode {jnum}: {other}")),
    })?;
    logical.sort_unstable();
    let first_block = logical.first().filter(|p| p.0 == 0).map(|p| p.1);
    let Some(jsb_block) = first_block else {
        return Err(unsound("the journal's first block is not mapped"));
    };
    let mut jsb = vec![0u8; vol.block_size as usize];
    vol.read_block(jsb_block, &mut jsb)?;
    check_journal_superblock(&jsb, vol.block_size, inode_blocks)?;
    // the log is written block by block from s_first on: every block up
    // to s_maxlen must be there
    let maxlen = u64::from(be32(&jsb, 0x10));
    if logical.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(unsound("the journal maps a block twice"));
    }
    let mapped = logical.iter().take_while(|p| p.0 < maxlen).count() as u64;
    if mapped < maxlen {
        return Err(unsound(format!(
            "the journal inode maps {mapped} of its {maxlen} blocks"
        )));
    }
    blocks.sort_unstable();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for b in blocks {
        match runs.last_mut() {
            Some(r) if r.1 == b => r.1 = b + 1,
            Some(r) if r.1 > b => return Err(unsound(format!("journal block {b} is named twice"))),
            _ => runs.push((b, b + 1)),
        }
    }
    Ok(runs)
}

/// e2fsck's journal superblock checks (`e2fsck_journal_load`), and the
/// features a transaction written here could not honour.
fn check_journal_superblock(jsb: &[u8], block_size: u32, inode_blocks: u64) -> Result<(), Error> {
    let magic = be32(jsb, 0);
    if magic != JBD2_MAGIC {
        return Err(unsound(format!(
            "the journal superblock has a bad magic number ({magic:#010x})"
        )));
    }
    let version = be32(jsb, 4);
    let compat = be32(jsb, 0x24);
    let incompat = be32(jsb, 0x28);
    let ro_compat = be32(jsb, 0x2C);
    let users = be32(jsb, 0x40);
    match version {
        JBD2_SUPERBLOCK_V1 => {
            if compat | incompat | ro_compat != 0 || users > 1 {
                return Err(unsound(format!(
                    "the journal superblock is version 1 but has version 2 fields ({users} users, features {compat:#x}/{incompat:#x}/{ro_compat:#x})"
                )));
            }
        }
        JBD2_SUPERBLOCK_V2 => {
            if users > 1 {
                return Err(unsound(format!(
                    "the journal is shared by {users} file systems"
                )));
            }
        }
        v => {
            return Err(unsound(format!(
                "the journal superblock has unknown type {v}"
            )))
        }
    }
    if let Err(m) = TxFormat::new(jsb) {
        return Err(unsound(format!("the journal has {m}, not written here")));
    }
    let jbs = be32(jsb, 0xC);
    if jbs != block_size {
        return Err(unsound(format!(
            "the journal's block size {jbs} differs from the volume's {block_size}"
        )));
    }
    let maxlen = u64::from(be32(jsb, 0x10));
    if maxlen > inode_blocks || maxlen < JBD2_MIN_JOURNAL_BLOCKS {
        return Err(unsound(format!(
            "the journal superblock claims {maxlen} blocks; its inode holds {inode_blocks}"
        )));
    }
    let first = u64::from(be32(jsb, 0x14));
    if first == 0 || first >= maxlen {
        return Err(unsound(format!(
            "the journal's first log block {first} lies outside its {maxlen} blocks"
        )));
    }
    let start = u64::from(be32(jsb, 0x1C));
    if start != 0 && (start < first || start >= maxlen) {
        return Err(unsound(format!(
            "the journal's log start {start} lies outside blocks {first}-{}",
            maxlen - 1
        )));
    }
    let errno = be32(jsb, 0x20);
    if errno != 0 {
        return Err(unsound(format!(
            "the journal records an error ({})",
            errno as i32
        )));
    }
    Ok(())
}

/// Sorts the ranges and refuses any two that overlap, naming both.
fn disjoint(mut ranges: Vec<(u64, u64, What)>) -> Result<Layout, Error> {
    // the descriptor-placed parts first among equal starts, so that a
    // message names what a descriptor points at as the culprit
    let static_kind = |w: &What| {
        matches!(
            w,
            What::BootBlock | What::Superblock(_) | What::Descriptors(_) | What::ReservedGdt(_)
        )
    };
    ranges.sort_by_key(|r| (r.0, static_kind(&r.2), r.1));
    let mut widest: Option<(u64, u64, What)> = None;
    for &r in &ranges {
        if let Some(w) = widest {
            if r.0 < w.1 {
                let (culprit, other) = if static_kind(&r.2) { (w, r) } else { (r, w) };
                return Err(unsound(format!(
                    "{} (block {}) overlaps {}",
                    culprit.2, culprit.0, other.2
                )));
            }
        }
        if widest.is_none_or(|w| r.1 > w.1) {
            widest = Some(r);
        }
    }
    Ok(Layout { ranges })
}

/// Visits every block of an inode's map: data blocks with their logical
/// number, index blocks (indirect, extent nodes) with `None`. Visits are
/// not deduplicated; the caller bounds the walk by refusing a block seen
/// twice.
pub(super) fn walk(
    vol: &Volume,
    ino: &Inode,
    f: &mut dyn FnMut(Option<u64>, u64) -> Result<(), Error>,
) -> Result<(), Error> {
    if ino.i_flags & inode::EXT4_EXTENTS_FL != 0 {
        return walk_extents(vol, &ino.i_block_bytes(), MAX_EXTENT_DEPTH, f);
    }
    let p = u64::from(vol.block_size / 4);
    let nd = inode::EXT2_NDIR_BLOCKS as u64;
    for (slot, &b) in ino.i_block.iter().enumerate() {
        let b = u64::from(b);
        if b == 0 {
            continue;
        }
        match slot {
            s if s < inode::EXT2_NDIR_BLOCKS => f(Some(s as u64), b)?,
            inode::EXT2_IND_BLOCK => walk_indirect(vol, b, 1, nd, p, f)?,
            inode::EXT2_DIND_BLOCK => walk_indirect(vol, b, 2, nd + p, p, f)?,
            _ => walk_indirect(vol, b, 3, nd + p + p * p, p, f)?,
        }
    }
    Ok(())
}

fn walk_indirect(
    vol: &Volume,
    b: u64,
    depth: u32,
    base: u64,
    p: u64,
    f: &mut dyn FnMut(Option<u64>, u64) -> Result<(), Error>,
) -> Result<(), Error> {
    f(None, b)?;
    if b >= vol.blocks_count {
        return Err(unsound(format!("indirect block {b} beyond the volume")));
    }
    let mut blk = vec![0u8; vol.block_size as usize];
    vol.read_block(b, &mut blk)?;
    let span = p.pow(depth - 1);
    for i in 0..p {
        let c = u64::from(le32(&blk, (i * 4) as usize));
        if c == 0 {
            continue;
        }
        let l = base + i * span;
        if depth == 1 {
            f(Some(l), c)?;
        } else {
            walk_indirect(vol, c, depth - 1, l, p, f)?;
        }
    }
    Ok(())
}

fn walk_extents(
    vol: &Volume,
    node: &[u8],
    max_depth: u16,
    f: &mut dyn FnMut(Option<u64>, u64) -> Result<(), Error>,
) -> Result<(), Error> {
    let entries = usize::from(le16(node, 2));
    let depth = le16(node, 6);
    if le16(node, 0) != EXT4_EXT_MAGIC || depth > max_depth || 12 + entries * 12 > node.len() {
        return Err(unsound("corrupt extent tree"));
    }
    for i in 0..entries {
        let e = &node[12 + i * 12..24 + i * 12];
        if depth == 0 {
            let start = u64::from(le32(e, 0));
            let raw_len = u64::from(le16(e, 4));
            let len = if raw_len > 32768 {
                raw_len - 32768
            } else {
                raw_len
            };
            let phys = (u64::from(le16(e, 6)) << 32) | u64::from(le32(e, 8));
            for k in 0..len {
                f(Some(start + k), phys + k)?;
            }
        } else {
            let child = (u64::from(le16(e, 8)) << 32) | u64::from(le32(e, 4));
            f(None, child)?;
            if child >= vol.blocks_count {
                return Err(unsound(format!("extent node {child} beyond the volume")));
            }
            let mut blk = vec![0u8; vol.block_size as usize];
            vol.read_block(child, &mut blk)?;
            walk_extents(vol, &blk, depth - 1, f)?;
        }
    }
    Ok(())
}

/// Whether a block's bit is set in the group bitmaps read whole.
fn bit(bitmaps: &[Vec<u8>], per_group: u64, i: u64) -> Option<bool> {
    let g = usize::try_from(i / per_group).ok()?;
    let o = i % per_group;
    let byte = bitmaps.get(g)?.get((o / 8) as usize)?;
    Some(byte & (1 << (o % 8)) != 0)
}

/// Walks every inode in use: each must be marked in its inode bitmap, and
/// each block it holds (data, indirect, extended attributes) must lie in
/// the volume, outside the metadata, be held by no other inode and be
/// marked in its block bitmap. A bitmap that calls a held block free
/// would let the allocator overwrite it.
fn check_inodes(vol: &Volume, geo: &Geo, layout: &Layout) -> Result<(), Error> {
    let sb = &vol.sb;
    let bs = vol.block_size as usize;
    let ipg = u64::from(sb.s_inodes_per_group);
    let isz = sb.inode_size() as usize;
    let first_ino = if sb.s_rev_level == 0 {
        inode::EXT2_GOOD_OLD_FIRST_INO
    } else {
        sb.s_first_ino
    };
    let mut block_bitmaps = Vec::with_capacity(vol.groups.len());
    let mut inode_bitmaps = Vec::with_capacity(vol.groups.len());
    for gd in &vol.groups {
        let mut b = vec![0u8; bs];
        let mut i = vec![0u8; bs];
        if !geo.csum || gd.bg_flags & EXT4_BG_BLOCK_UNINIT == 0 {
            vol.read_block(gd.bg_block_bitmap, &mut b)?;
        } else {
            b.fill(0xff);
        }
        if !geo.csum || gd.bg_flags & EXT4_BG_INODE_UNINIT == 0 {
            vol.read_block(gd.bg_inode_bitmap, &mut i)?;
        }
        block_bitmaps.push(b);
        inode_bitmaps.push(i);
    }
    let mut held = Bitmap::new(vol.blocks_count);
    let mut xattr_blocks: HashSet<u64> = HashSet::new();
    let mut table = vec![0u8; bs];
    for (g, gd) in vol.groups.iter().enumerate() {
        if geo.csum && gd.bg_flags & EXT4_BG_INODE_UNINIT != 0 {
            continue;
        }
        let runs = super::io::data_runs(&*vol.file, geo.bs, gd.bg_inode_table, geo.itable_blocks);
        // holes read as zeros: skipped like any block of free inodes
        let blocks = runs
            .into_iter()
            .flat_map(|(s, e)| s - gd.bg_inode_table..e - gd.bg_inode_table);
        for tb in blocks {
            vol.read_block(gd.bg_inode_table + tb, &mut table)?;
            if crate::bytes::all_zero(&table) {
                continue;
            }
            for (k, rec) in table.chunks(isz).enumerate() {
                let idx = tb * (bs / isz) as u64 + k as u64;
                if idx >= ipg {
                    break;
                }
                let ino = (g as u64 * ipg + idx + 1) as u32;
                let i = Inode::decode(&rec[..isz.min(256)]);
                let reserved = ino < first_ino && ino != inode::EXT2_ROOT_INO;
                if !reserved && !in_use(&i) {
                    continue;
                }
                if !reserved && bit(&inode_bitmaps, ipg, u64::from(ino) - 1) != Some(true) {
                    return Err(unsound(format!(
                        "inode {ino} is in use but free in group {g}'s inode bitmap"
                    )));
                }
                check_inode_blocks(
                    vol,
                    geo,
                    layout,
                    ino,
                    &i,
                    &block_bitmaps,
                    &mut held,
                    &mut xattr_blocks,
                )?;
            }
        }
    }
    Ok(())
}

/// Whether an inode's map names blocks: not a device, FIFO or socket,
/// not inline data, not a fast symlink (whose target is in `i_block`).
pub(super) fn holds_blocks(vol: &Volume, i: &Inode) -> bool {
    let fmt = u32::from(i.i_mode) & S_IFMT;
    let acl_sectors = if i.i_file_acl_lo != 0 {
        u64::from(vol.block_size / 512)
    } else {
        0
    };
    !(matches!(fmt, S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK)
        || i.i_flags & inode::EXT4_INLINE_DATA_FL != 0
        || (fmt == S_IFLNK && u64::from(i.i_blocks_lo) <= acl_sectors && i.size() < 60))
}

/// Whether an inode's blocks must be kept: it has links, or it lost its
/// links without being deleted (no deletion time), which e2fsck reports
/// rather than silently frees.
fn in_use(i: &Inode) -> bool {
    i.i_links_count > 0 || (i.i_mode != 0 && i.i_dtime == 0)
}

#[allow(clippy::too_many_arguments)]
fn check_inode_blocks(
    vol: &Volume,
    geo: &Geo,
    layout: &Layout,
    ino: u32,
    i: &Inode,
    block_bitmaps: &[Vec<u8>],
    held: &mut Bitmap,
    xattr_blocks: &mut HashSet<u64>,
) -> Result<(), Error> {
    let acl = u64::from(i.i_file_acl_lo);
    let in_range = |b: u64| b >= geo.first && b < geo.blocks;
    let marked = |b: u64| bit(block_bitmaps, geo.bpg, b - geo.first) == Some(true);
    if acl != 0 {
        if !in_range(acl) || layout.is_metadata(acl) || held.get(acl) {
            return Err(unsound(format!(
                "inode {ino}'s extended-attribute block {acl} is not a free-standing block"
            )));
        }
        if !marked(acl) {
            return Err(unsound(format!(
                "block {acl} (attributes of inode {ino}) is free in its group's block bitmap"
            )));
        }
        xattr_blocks.insert(acl);
    }
    if !holds_blocks(vol, i) {
        return Ok(());
    }
    let journal = vol.sb.s_feature_compat & COMPAT_HAS_JOURNAL != 0 && ino == vol.sb.s_journal_inum;
    walk(vol, i, &mut |_, b| {
        if !in_range(b) {
            return Err(unsound(format!(
                "inode {ino} names block {b}, outside the volume"
            )));
        }
        if let Some(w) = layout.metadata(b) {
            let own = match w {
                What::Journal => journal,
                What::ReservedGdt(_) => ino == RESIZE_INO,
                _ => false,
            };
            if !own {
                return Err(unsound(format!(
                    "inode {ino} names block {b}, which is {w}"
                )));
            }
        }
        if held.get(b) || xattr_blocks.contains(&b) {
            return Err(unsound(format!(
                "block {b} of inode {ino} is also held by another inode"
            )));
        }
        held.set(b, true);
        if !marked(b) {
            let g = (b - geo.first) / geo.bpg;
            return Err(unsound(format!(
                "block {b} of inode {ino} is free in group {g}'s block bitmap"
            )));
        }
        Ok(())
    })
    .map_err(|e| match e {
        Error::Unsound(m) => Error::Unsound(m),
        other => unsound(format!("inode {ino}: {other}")),
    })
}

/// Every (inode, block) pair of the volume: data, index and
/// extended-attribute blocks of each inode in use (reserved inodes
/// included), read leniently — blocks outside the volume are skipped and
/// the walk stops after four times the volume's blocks — so that tests can
/// compare what a volume holds before and after an update, even on a
/// damaged volume.
pub fn block_owners(vol: &Volume) -> Result<Vec<(u32, u64)>, Error> {
    let sb = &vol.sb;
    let bs = vol.block_size as usize;
    let ipg = u64::from(sb.s_inodes_per_group);
    let isz = sb.inode_size() as usize;
    let first_ino = sb.s_first_ino.max(inode::EXT2_GOOD_OLD_FIRST_INO);
    let itable_blocks = (ipg * isz as u64).div_ceil(bs as u64);
    let budget = vol.blocks_count.saturating_mul(4);
    let mut out = Vec::new();
    let mut table = vec![0u8; bs];
    for (g, gd) in vol.groups.iter().enumerate() {
        for tb in 0..itable_blocks {
            if vol.read_block(gd.bg_inode_table + tb, &mut table).is_err() {
                break;
            }
            for (k, rec) in table.chunks(isz).enumerate() {
                let idx = tb * (bs / isz) as u64 + k as u64;
                let ino = g as u64 * ipg + idx + 1;
                if idx >= ipg || ino > u64::from(sb.s_inodes_count) {
                    break;
                }
                let ino = ino as u32;
                let i = Inode::decode(&rec[..isz.min(256)]);
                if ino >= first_ino && !in_use(&i) {
                    continue;
                }
                let acl = u64::from(i.i_file_acl_lo);
                if acl != 0 && acl < vol.blocks_count {
                    out.push((ino, acl));
                }
                if !holds_blocks(vol, &i) {
                    continue;
                }
                // a damaged map ends the inode's walk, not the scan
                let _ = walk(vol, &i, &mut |_, b| {
                    if out.len() as u64 >= budget {
                        return Err(unsound("walk budget spent"));
                    }
                    if b < vol.blocks_count {
                        out.push((ino, b));
                    }
                    Ok(())
                });
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}
