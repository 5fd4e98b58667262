//! The commit: inodes into their table blocks, releases, group
//! descriptors and superblock, every one sealed with the checksum the
//! volume keeps, then all of it as one jbd2 transaction in the volume's
//! journal (or in place on ext2), then the checkpoint.

use super::super::bytes::*;
use super::super::csum;
use super::super::inode::Inode;
use super::super::journal::TxFormat;
use super::super::superblock::*;
use super::super::{Error, Volume};
use super::{Populator, Stop};

impl Populator<'_> {
    /// Writes the inodes, releases what was freed, updates descriptors
    /// and superblock and commits it all.
    pub(super) fn commit(&mut self) -> Result<(), Error> {
        self.store_inodes()?;
        self.st.release()?;
        let (sb_block, sb_off) = self.store_groups()?;
        self.disk.flush()?;
        sync(self.st.vol)?;
        let dirty: Vec<(u64, Vec<u8>)> = self
            .st
            .dirty
            .iter()
            .filter_map(|b| self.st.blocks.get(b).map(|d| (*b, d.clone())))
            .collect();
        if self.st.vol.has_journal() {
            self.journal_commit(&dirty, sb_block, sb_off)?;
        } else {
            for (b, d) in &dirty {
                self.disk.write_blocks(*b, d)?;
            }
            self.disk.flush()?;
            sync(self.st.vol)?;
        }
        Ok(())
    }

    /// Every changed inode into its table block.
    fn store_inodes(&mut self) -> Result<(), Error> {
        let bs = self.st.bs as usize;
        let isz = self.st.vol.sb.inode_size() as usize;
        let ipg = self.st.vol.sb.s_inodes_per_group;
        let csum = self.st.features.csum;
        let inodes: Vec<(u32, Inode)> = std::mem::take(&mut self.st.inodes).into_iter().collect();
        for (ino, i) in inodes {
            let g = ((ino - 1) / ipg) as usize;
            let idx = ((ino - 1) % ipg) as usize * isz;
            let table = self.st.vol.groups[g].bg_inode_table;
            let b = table + (idx / bs) as u64;
            let off = idx % bs;
            let fresh = self.st.fresh.contains(&ino);
            let blk = self.st.block(b)?;
            if let Some(dst) = blk.get_mut(off..off + isz) {
                // an inode that exists keeps every byte not decoded here
                // (extended attributes in the inode above all)
                if fresh {
                    dst.fill(0);
                }
                i.store(dst, ino, csum);
            }
            self.st.dirty.insert(b);
        }
        Ok(())
    }

    /// The descriptors of the groups that changed and the superblock's
    /// totals; returns where the superblock lies (block, offset).
    fn store_groups(&mut self) -> Result<(u64, usize), Error> {
        let vol = self.st.vol;
        let bs = self.st.bs as usize;
        let f = self.st.features;
        let desc = vol.sb.desc_size() as usize;
        let first = u64::from(vol.sb.s_first_data_block);
        let gdt_start = first + 1;
        // the superblock's totals move by what the groups' counts move
        let (mut moved_b, mut moved_i) = (0i64, 0i64);
        for (g, gd) in vol.groups.iter().enumerate() {
            let c = self.st.groups[g];
            let upd = |v: u32, d: i64| (i64::from(v) + d).max(0) as u32;
            let mut n = *gd;
            n.bg_free_blocks_count = upd(gd.bg_free_blocks_count, c.free_blocks);
            n.bg_free_inodes_count = upd(gd.bg_free_inodes_count, c.free_inodes);
            n.bg_used_dirs_count = upd(gd.bg_used_dirs_count, c.used_dirs);
            moved_b += i64::from(n.bg_free_blocks_count) - i64::from(gd.bg_free_blocks_count);
            moved_i += i64::from(n.bg_free_inodes_count) - i64::from(gd.bg_free_inodes_count);
            if !c.touched && n == *gd {
                continue;
            }
            n.bg_flags &= !c.clear_flags;
            if let Some(u) = c.itable_unused {
                n.bg_itable_unused = u;
            }
            if let Some(v) = f.csum {
                let sb = &vol.sb;
                let bb = self.st.bitmap(g, false)?;
                n.bg_block_bitmap_csum =
                    csum::bitmap(v, self.st.block(bb)?, sb.s_clusters_per_group);
                let ib = self.st.bitmap(g, true)?;
                n.bg_inode_bitmap_csum = csum::bitmap(v, self.st.block(ib)?, sb.s_inodes_per_group);
            }
            if desc < 64 {
                // the narrow descriptor's checksum fields are 16 bits
                n.bg_block_bitmap_csum &= 0xFFFF;
                n.bg_inode_bitmap_csum &= 0xFFFF;
            }
            let byte = g * desc;
            let b = gdt_start + (byte / bs) as u64;
            let off = byte % bs;
            let blk = self.st.block(b)?;
            let Some(raw) = blk.get_mut(off..off + desc) else {
                continue;
            };
            n.encode_over(raw);
            if let Some(v) = f.csum {
                csum::seal_group_desc(v, g as u32, raw);
            } else if f.group_csum {
                csum::seal_group_desc_crc16(&vol.sb.s_uuid, g as u32, raw);
            }
            self.st.dirty.insert(b);
        }
        let (sb_block, sb_off) = if bs == 1024 {
            (1u64, 0usize)
        } else {
            (0, 1024)
        };
        let t = self.timestamp;
        let wide = vol.sb.s_feature_incompat & INCOMPAT_64BIT != 0;
        let blk = self.st.block(sb_block)?;
        let sb = &mut blk[sb_off..sb_off + SUPERBLOCK_SIZE];
        let hi = if wide { le32(sb, SB_FREE_BLOCKS_HI) } else { 0 };
        let old_b = (u64::from(hi) << 32) | u64::from(le32(sb, 0xC));
        let free_b = (old_b as i64 + moved_b).max(0) as u64;
        let free_i = (i64::from(le32(sb, 0x10)) + moved_i).max(0) as u64;
        put32(sb, 0xC, free_b as u32);
        if wide {
            put32(sb, SB_FREE_BLOCKS_HI, (free_b >> 32) as u32);
        }
        put32(sb, 0x10, free_i as u32);
        put32(sb, 0x30, t as u32);
        if let Some(hi) = sb.get_mut(0x274) {
            *hi = (t >> 32) as u8;
        }
        if f.csum.is_some() {
            csum::seal_superblock(sb);
        }
        self.st.dirty.insert(sb_block);
        Ok((sb_block, sb_off))
    }

    /// The superblock `raw` (1024 bytes) with needs_recovery set or
    /// cleared, sealed again.
    fn set_recover(&self, raw: &mut [u8], on: bool) {
        let inc = le32(raw, 0x60);
        let inc = if on {
            inc | INCOMPAT_RECOVER
        } else {
            inc & !INCOMPAT_RECOVER
        };
        put32(raw, 0x60, inc);
        if self.st.features.csum.is_some() {
            csum::seal_superblock(raw);
        }
    }

    fn journal_commit(
        &mut self,
        dirty: &[(u64, Vec<u8>)],
        sb_block: u64,
        sb_off: usize,
    ) -> Result<(), Error> {
        let vol = self.st.vol;
        let (mut jsb, jino) = journal_superblock(vol)?;
        let fmt = TxFormat::new(&jsb).map_err(Error::UnsupportedForWrite)?;
        let first = u64::from(be32(&jsb, 0x14));
        let maxlen = u64::from(be32(&jsb, 0x10));
        let seq = be32(&jsb, super::super::journal::JSB_SEQUENCE);
        let needed = fmt.blocks_needed(dirty.len());
        let available = maxlen.saturating_sub(first);
        if needed > available {
            return Err(Error::JournalTooSmall { needed, available });
        }
        let phys = |l: u64| -> Result<u64, Error> {
            vol.map(&jino, l)?
                .ok_or_else(|| Error::Corrupt(format!("journal block {l} is not mapped")))
        };
        let tx = fmt.transaction(seq, dirty, self.timestamp);
        let mut l = first;
        for b in &tx.blocks {
            self.disk.write_blocks(phys(l)?, b)?;
            l += 1;
        }
        self.disk.flush()?;
        sync(vol)?;
        if self.stop == Stop::BeforeCommitBlock {
            return Ok(());
        }
        // the commit block makes the transaction real
        self.disk.write_blocks(phys(l)?, &tx.commit)?;
        self.disk.flush()?;
        sync(vol)?;
        let jsb_phys = phys(0)?;
        fmt.set_start(&mut jsb, first as u32, seq);
        self.disk.write_blocks(jsb_phys, &jsb)?;
        self.disk.flush()?;
        let mut raw = [0u8; SUPERBLOCK_SIZE];
        super::super::io::read_at(&vol.file, SUPERBLOCK_OFFSET, &mut raw)?;
        self.set_recover(&mut raw, true);
        self.disk.write_at(SUPERBLOCK_OFFSET, &raw)?;
        sync(vol)?;
        if self.stop == Stop::BeforeCheckpoint {
            return Ok(());
        }
        // the journal now holds the transaction and the volume says it
        // needs recovery: the update is made, whatever fails next
        self.checkpoint(dirty, sb_block, sb_off, (jsb, jsb_phys), fmt, seq)
            .map_err(|e| Error::AfterCommit(Box::new(e)))
    }

    /// Copies the transaction's blocks to their places and empties the
    /// journal again.
    fn checkpoint(
        &mut self,
        dirty: &[(u64, Vec<u8>)],
        sb_block: u64,
        sb_off: usize,
        (mut jsb, jsb_phys): (Vec<u8>, u64),
        fmt: TxFormat,
        seq: u32,
    ) -> Result<(), Error> {
        let vol = self.st.vol;
        if self.stop == Stop::FailAfterCommitBlock {
            return Err(Error::Corrupt("a write failed (injected)".into()));
        }
        // the superblock keeps needs_recovery until the journal is empty
        // again
        for (b, d) in dirty {
            let mut d = d.clone();
            if *b == sb_block {
                self.set_recover(&mut d[sb_off..sb_off + SUPERBLOCK_SIZE], true);
            }
            self.disk.write_blocks(*b, &d)?;
        }
        self.disk.flush()?;
        sync(vol)?;
        fmt.set_start(&mut jsb, 0, seq.wrapping_add(1));
        self.disk.write_blocks(jsb_phys, &jsb)?;
        self.disk.flush()?;
        sync(vol)?;
        if let Some((_, d)) = dirty.iter().find(|(b, _)| *b == sb_block) {
            self.disk.write_blocks(sb_block, d)?;
        }
        self.disk.flush()?;
        sync(vol)
    }
}

pub(super) fn journal_superblock(vol: &Volume) -> Result<(Vec<u8>, Inode), Error> {
    let jino = vol.inode(vol.sb.s_journal_inum)?;
    let b = vol
        .map(&jino, 0)?
        .ok_or_else(|| Error::Corrupt("journal inode has no first block".into()))?;
    let mut d = vec![0u8; vol.block_size as usize];
    vol.read_block(b, &mut d)?;
    Ok((d, jino))
}

fn sync(vol: &Volume) -> Result<(), Error> {
    vol.file.flush().map_err(|e| Error::Io {
        offset: 0,
        source: e,
    })
}
