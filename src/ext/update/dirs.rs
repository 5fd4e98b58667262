//! Directories that changed are written anew into free blocks: linear,
//! or, when the directory was hashed (or is new on a volume with
//! dir_index and extents) and outgrows a block, indexed again from
//! scratch by the shared htree builder, so no index is ever stale. Leaf
//! and index blocks carry their checksum tails under metadata_csum; the
//! blocks are mapped the way the directory was (extents or indirect
//! blocks), new directories by extents when the volume has them.

use super::super::blockmap::{map_blocks, new_map};
use super::super::csum;
use super::super::dir_entry;
use super::super::htree::DirFormat;
use super::super::inode;
use super::super::superblock::*;
use super::super::Error;
use super::alloc::{DirState, State};
use super::Populator;
use crate::tree::TreePath;

impl Populator<'_> {
    /// Writes every loaded directory that changed.
    pub(super) fn write_dirs(&mut self) -> Result<(), Error> {
        let bs = self.st.bs as usize;
        let dir_inos: Vec<u32> = self.st.dirs.keys().copied().collect();
        for ino in dir_inos {
            let Some(d) = self.st.dirs.get(&ino) else {
                continue;
            };
            let touched = self.st.inodes.contains_key(&ino) || dir_changed(&self.st, ino, d)?;
            if !touched {
                continue;
            }
            let f = self.st.features;
            let mut i = self.st.inode(ino)?;
            let fresh = self.st.fresh.contains(&ino);
            let seed = f.csum.map(|v| csum::inode_seed(v, ino, i.i_generation));
            let sb = &self.st.vol.sb;
            let fmt = DirFormat {
                block_size: bs,
                hash_seed: sb.s_hash_seed,
                signed_hash: sb.s_flags & EXT2_FLAGS_UNSIGNED_HASH == 0,
                csum_seed: seed,
            };
            let dt = if f.filetype {
                dir_entry::EXT2_FT_DIR
            } else {
                dir_entry::EXT2_FT_UNKNOWN
            };
            let parent = d.parent;
            let mut entries: Vec<(u32, u8, &[u8])> = Vec::with_capacity(d.entries.len() + 2);
            entries.push((ino, dt, b"."));
            entries.push((parent, dt, b".."));
            for (name, child, ft) in d.entries.iter().filter(|e| e.1 != 0) {
                entries.push((*child, *ft, name));
            }
            let mut blocks = fmt.linear(&entries);
            let was_indexed = i.i_flags & inode::EXT2_INDEX_FL != 0;
            let want_index = f.dir_index
                && f.filetype
                && blocks.len() > 1
                && (was_indexed || (fresh && f.extents));
            i.i_flags &= !inode::EXT2_INDEX_FL;
            if want_index {
                if let Some(b) = fmt.indexed(ino, parent, &entries[2..]) {
                    blocks = b;
                    i.i_flags |= inode::EXT2_INDEX_FL;
                }
            }
            drop(entries);
            if i.i_block.iter().any(|&b| b != 0) {
                let old = self.st.blocks_of(&i)?;
                self.st.freed_blocks.extend(old);
            }
            self.st.what = format!("directory inode {ino}");
            let extents = i.i_flags & inode::EXT4_EXTENTS_FL != 0 || (fresh && f.extents);
            let (mut m, flags) = new_map(self.st.bs, extents, seed);
            let (ib, mut sectors) = map_blocks(&mut *m, &mut self.st, &mut self.disk, &blocks)?;
            // i_blocks also counts an extended-attribute block, which the
            // directory keeps
            if i.i_file_acl_lo != 0 {
                sectors += u64::from(self.st.bs / 512);
            }
            i.i_block = ib;
            i.i_flags = (i.i_flags & !inode::EXT4_EXTENTS_FL) | flags;
            i.set_size((blocks.len() * bs) as u64, sectors);
            self.st.inodes.insert(ino, i);
        }
        Ok(())
    }
}

/// Whether a loaded directory differs from what is on disk (it was
/// loaded only to look something up otherwise).
fn dir_changed(st: &State, ino: u32, d: &DirState) -> Result<bool, Error> {
    let i = st.vol.inode(ino)?;
    let on_disk = st.vol.dir_entries(&i, &TreePath::root())?;
    if on_disk.len() != d.entries.len() {
        return Ok(true);
    }
    // a removed entry (inode 0) differs from every entry on disk
    Ok(on_disk
        .iter()
        .zip(&d.entries)
        .any(|(a, b)| a.name != b.0 || a.inode != b.1 || a.file_type != b.2))
}
