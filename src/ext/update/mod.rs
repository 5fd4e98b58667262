//! Adding a tree to an existing ext2/ext3/ext4 volume in place, and
//! deleting paths from it.
//!
//! New content only ever goes into blocks that were free when the update
//! began, and blocks and inodes freed by overwritten or deleted files are
//! released only at the end, so nothing the old tree uses is touched
//! before the commit. An inode that exists is rewritten field by field
//! over its old record, so what is not decoded here (in-inode extended
//! attributes, project ids) stays as it was. The metadata that changes in
//! place (bitmaps, inode-table blocks, group descriptors, superblock) is
//! written, with every checksum the volume keeps, as one jbd2 transaction
//! in the volume's journal first and only then checkpointed: an
//! interruption before the commit block leaves the old volume, after it
//! a journal replay (e2fsck or the kernel) completes the new one. ext2
//! has no journal; its metadata is written in place directly.
//!
//! `alloc` holds the state and allocates, `dirs` writes the directories
//! that changed, `commit` writes the metadata through the journal.

mod alloc;
mod commit;
mod dirs;

use super::blockmap::{copy_content, map_blocks, new_map};
use super::bytes::*;
use super::csum;
use super::dir_entry;
use super::inode::{self, Inode};
use super::io::Disk;
use super::superblock::*;
use super::{Error, Volume};
use crate::tree::{Dense, Entry, Kind, Meta, Sink, TreePath, S_IFDIR, S_IFMT};
use alloc::{DirState, Features, State};
use std::collections::HashMap;
use std::io::Read;

/// The features an update writes correctly, by kind.
const WRITABLE_COMPAT: u32 = COMPAT_HAS_JOURNAL
    | COMPAT_EXT_ATTR
    | COMPAT_RESIZE_INODE
    | COMPAT_DIR_INDEX
    | COMPAT_SPARSE_SUPER2
    | COMPAT_STABLE_INODES
    | COMPAT_ORPHAN_FILE;
const WRITABLE_INCOMPAT: u32 =
    INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG | INCOMPAT_CSUM_SEED;
const WRITABLE_RO_COMPAT: u32 = RO_COMPAT_SPARSE_SUPER
    | RO_COMPAT_LARGE_FILE
    | RO_COMPAT_HUGE_FILE
    | RO_COMPAT_GDT_CSUM
    | RO_COMPAT_DIR_NLINK
    | RO_COMPAT_EXTRA_ISIZE
    | RO_COMPAT_METADATA_CSUM;

/// Populates an opened volume from a tree stream; call
/// [`Populator::finish`] to commit.
pub struct Populator<'v> {
    st: State<'v>,
    disk: Disk<'v>,
    timestamp: i64,
    /// Where to stop committing, to stand for an interruption in tests.
    stop: Stop,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Never,
    BeforeCommitBlock,
    BeforeCheckpoint,
    FailAfterCommitBlock,
}

impl<'v> Populator<'v> {
    /// Checks that the volume has only features written correctly here
    /// and needs no recovery; nothing is written until
    /// [`Populator::finish`] or a file's content arrives, and then only
    /// into free blocks. `timestamp` is the superblock write time and
    /// commit time.
    pub fn new(vol: &'v Volume, timestamp: i64) -> Result<Populator<'v>, Error> {
        let sb = &vol.sb;
        if sb.s_feature_incompat & INCOMPAT_RECOVER != 0 {
            return Err(Error::NeedsRecovery);
        }
        let bad_compat = sb.s_feature_compat & !WRITABLE_COMPAT;
        let bad_incompat = sb.s_feature_incompat & !WRITABLE_INCOMPAT;
        let bad_ro = sb.s_feature_ro_compat & !WRITABLE_RO_COMPAT;
        if bad_compat | bad_incompat | bad_ro != 0 {
            let names: Vec<String> = [
                compat_names(bad_compat),
                incompat_names(bad_incompat),
                ro_compat_names(bad_ro),
            ]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect();
            return Err(Error::UnsupportedForWrite(format!(
                "it has ext4 features that are only read here, not updated in place: {}",
                names.join(" ")
            )));
        }
        let mut raw = [0u8; SUPERBLOCK_SIZE];
        super::io::read_at(&vol.file, SUPERBLOCK_OFFSET, &mut raw)?;
        // orphans are inodes the kernel still has to release
        if le32(&raw, SB_LAST_ORPHAN) != 0 {
            return Err(Error::NeedsRecovery);
        }
        let metadata_csum = sb.s_feature_ro_compat & RO_COMPAT_METADATA_CSUM != 0;
        if metadata_csum && sb.s_checksum_type != csum::CSUM_TYPE_CRC32C {
            return Err(Error::UnsupportedForWrite(format!(
                "checksum type {} (only crc32c is written)",
                sb.s_checksum_type
            )));
        }
        let csum = metadata_csum.then(|| {
            if sb.s_feature_incompat & INCOMPAT_CSUM_SEED != 0 {
                le32(&raw, SB_CHECKSUM_SEED)
            } else {
                csum::volume_seed(&sb.s_uuid)
            }
        });
        let layout = super::check::check_for_write(vol)?;
        if vol.has_journal() {
            let (jsb, _) = commit::journal_superblock(vol)?;
            if be32(&jsb, 0) != super::journal::JBD2_MAGIC_NUMBER {
                return Err(Error::Corrupt(
                    "journal superblock has a bad magic number".into(),
                ));
            }
            if be32(&jsb, super::journal::JSB_START) != 0 {
                return Err(Error::NeedsRecovery);
            }
            if let Err(m) = super::journal::TxFormat::new(&jsb) {
                return Err(Error::UnsupportedForWrite(m));
            }
            if be32(&jsb, 0xC) != vol.block_size {
                return Err(Error::UnsupportedForWrite("journal block size".into()));
            }
        }
        let features = Features {
            csum,
            group_csum: metadata_csum || sb.s_feature_ro_compat & RO_COMPAT_GDT_CSUM != 0,
            filetype: sb.s_feature_incompat & INCOMPAT_FILETYPE != 0,
            extents: sb.s_feature_incompat & INCOMPAT_EXTENTS != 0,
            dir_index: sb.s_feature_compat & COMPAT_DIR_INDEX != 0,
        };
        Ok(Populator {
            st: State::new(vol, features, layout),
            disk: Disk::new(&vol.file, vol.block_size),
            timestamp,
            stop: Stop::Never,
        })
    }

    /// A trial: the update runs in full (allocation, directories, the
    /// journal's size) but nothing is written, so [`Populator::finish`]
    /// says whether the real update would fit. Data written is never read
    /// back, so the trial takes the same path as the real update.
    pub fn trial(mut self) -> Self {
        self.disk.discard = true;
        self
    }

    fn lookup_in(&mut self, dir: u32, name: &[u8], path: &TreePath) -> Result<Option<u32>, Error> {
        let d = self.st.dir(dir, path)?;
        Ok(d.index
            .get(name)
            .and_then(|&i| d.entries.get(i))
            .map(|e| e.1))
    }

    fn lookup(&mut self, path: &TreePath) -> Result<Option<u32>, Error> {
        let mut ino = inode::EXT2_ROOT_INO;
        let mut sofar = TreePath::root();
        for c in path.components() {
            let parent = sofar.clone();
            sofar = sofar.join(c);
            match self.lookup_in(ino, c, &parent)? {
                Some(i) => ino = i,
                None => return Ok(None),
            }
        }
        Ok(Some(ino))
    }

    fn bind(
        &mut self,
        dir: u32,
        name: &[u8],
        ino: u32,
        ft: u8,
        path: &TreePath,
    ) -> Result<(), Error> {
        let ft = if self.st.features.filetype { ft } else { 0 };
        let d = self.st.dir(dir, path)?;
        match d.index.get(name) {
            Some(&i) => {
                if let Some(e) = d.entries.get_mut(i) {
                    e.1 = ino;
                    e.2 = ft;
                }
            }
            None => {
                d.index.insert(name.to_vec(), d.entries.len());
                d.entries.push((name.to_vec(), ino, ft));
            }
        }
        Ok(())
    }

    fn new_dir(&mut self, parent: u32, meta: Meta) -> Result<u32, Error> {
        let ino = self.st.alloc_inode(true)?;
        let mut i = Inode::new(
            S_IFDIR | (meta.perm & 0o7777),
            meta,
            self.st.vol.sb.inode_size(),
        );
        // its entry in the parent and its own "."
        i.i_links_count = 2;
        self.st.inodes.insert(ino, i);
        // and the parent gains the new directory's ".."
        self.adjust_dir_links(parent, 1)?;
        self.st.dirs.insert(
            ino,
            DirState {
                parent,
                entries: Vec::new(),
                index: HashMap::new(),
            },
        );
        Ok(ino)
    }

    fn ensure_dir(&mut self, path: &TreePath) -> Result<u32, Error> {
        let mut ino = inode::EXT2_ROOT_INO;
        let mut sofar = TreePath::root();
        for c in path.components() {
            let parent = sofar.clone();
            sofar = sofar.join(c);
            ino = match self.lookup_in(ino, c, &parent)? {
                Some(child) => {
                    self.st.dir(child, &sofar)?;
                    child
                }
                None => {
                    if c.len() > dir_entry::EXT2_NAME_LEN {
                        return Err(Error::NameTooLong {
                            path: sofar.display_abs(),
                        });
                    }
                    let child = self.new_dir(ino, Meta::implicit_dir())?;
                    self.bind(ino, c, child, dir_entry::EXT2_FT_DIR, &parent)?;
                    child
                }
            };
        }
        Ok(ino)
    }

    /// Counts a subdirectory more or less in a directory's link count.
    /// The count is kept as it is on disk and adjusted by what changes,
    /// rather than recounted from entry type bytes, which may be 0
    /// (unknown) without the filetype feature. With dir_nlink a count of
    /// 1 means "too many to count" and stays so.
    fn adjust_dir_links(&mut self, dir: u32, by: i32) -> Result<(), Error> {
        let mut i = self.st.inode(dir)?;
        let nlink = self.st.vol.sb.s_feature_ro_compat & RO_COMPAT_DIR_NLINK != 0;
        if !(nlink && i.i_links_count == 1) {
            let n = i32::from(i.i_links_count) + by;
            i.i_links_count = if n >= i32::from(inode::EXT4_LINK_MAX) && nlink {
                1
            } else {
                n.clamp(0, i32::from(u16::MAX)) as u16
            };
        }
        self.st.inodes.insert(dir, i);
        Ok(())
    }

    /// Removes the entry `path` names: a file, symlink, device and so on
    /// loses one link (and is released at commit with its last), an
    /// empty directory is released. Then every parent directory the
    /// removal leaves empty goes too, up to but not including the root,
    /// as GNU patch does when it deletes a file. Nothing is written
    /// before [`Populator::finish`].
    pub fn delete(&mut self, path: &TreePath) -> Result<(), Error> {
        self.st.what = path.display_abs();
        let Some(parent_path) = path.parent() else {
            return Err(Error::UnsupportedForWrite(
                "deleting the root directory".into(),
            ));
        };
        let missing = || Error::NotFound {
            path: path.display_abs(),
        };
        let parent = match self.lookup(&parent_path)? {
            Some(p) if u32::from(self.st.inode(p)?.i_mode) & S_IFMT == S_IFDIR => p,
            _ => return Err(missing()),
        };
        let ino = self
            .lookup_in(parent, path.file_name(), &parent_path)?
            .ok_or_else(missing)?;
        if u32::from(self.st.inode(ino)?.i_mode) & S_IFMT == S_IFDIR {
            if !self.st.dir(ino, path)?.index.is_empty() {
                return Err(Error::DirNotEmpty {
                    path: path.display_abs(),
                });
            }
            self.remove_dir(parent, ino, path.file_name(), &parent_path)?;
        } else {
            self.unbind(parent, path.file_name(), &parent_path)?;
            self.unlink(ino)?;
        }
        // parents left empty
        let (mut dir, mut dir_path) = (parent, parent_path);
        while let Some(up_path) = dir_path.parent() {
            if !self.st.dir(dir, &dir_path)?.index.is_empty() {
                break;
            }
            let up = self.st.dir(dir, &dir_path)?.parent;
            // ".." must name the directory that holds it; anything else
            // is a volume we would rather not prune
            if self.lookup_in(up, dir_path.file_name(), &up_path)? != Some(dir) {
                break;
            }
            self.remove_dir(up, dir, dir_path.file_name(), &up_path)?;
            dir = up;
            dir_path = up_path;
        }
        Ok(())
    }

    /// Removes a name from a loaded directory.
    fn unbind(&mut self, dir: u32, name: &[u8], path: &TreePath) -> Result<(), Error> {
        let d = self.st.dir(dir, path)?;
        if let Some(i) = d.index.remove(name) {
            if let Some(e) = d.entries.get_mut(i) {
                e.1 = 0;
            }
        }
        Ok(())
    }

    /// Releases the empty directory `ino`, named `name` in `parent`.
    fn remove_dir(
        &mut self,
        parent: u32,
        ino: u32,
        name: &[u8],
        parent_path: &TreePath,
    ) -> Result<(), Error> {
        if ino == inode::EXT2_ROOT_INO {
            return Err(Error::UnsupportedForWrite(
                "deleting the root directory".into(),
            ));
        }
        self.unbind(parent, name, parent_path)?;
        self.st.dirs.remove(&ino);
        // its ".." no longer counts in the parent
        self.adjust_dir_links(parent, -1)?;
        let mut i = self.st.inode(ino)?;
        i.i_links_count = 1;
        self.st.inodes.insert(ino, i);
        self.unlink(ino)
    }

    /// Drops one link of `ino`, releasing it (at commit) with the last.
    fn unlink(&mut self, ino: u32) -> Result<(), Error> {
        let mut i = self.st.inode(ino)?;
        i.i_links_count = i.i_links_count.saturating_sub(1);
        if i.i_links_count == 0 {
            let blocks = self.st.blocks_of(&i)?;
            self.st.freed_blocks.extend(blocks);
            // an extended-attribute block may be shared; it goes with
            // its last user
            let acl = u64::from(i.i_file_acl_lo);
            if acl != 0 && acl < self.st.vol.blocks_count {
                let seed = self.st.features.csum;
                let blk = self.st.block(acl)?;
                let refs = le32(blk, 4);
                if refs <= 1 {
                    self.st.freed_blocks.push(acl);
                } else {
                    put32(blk, 4, refs - 1);
                    if let Some(v) = seed {
                        csum::seal_xattr_block(v, acl, blk);
                    }
                    self.st.dirty.insert(acl);
                }
            }
            let is_dir = u32::from(i.i_mode) & S_IFMT == S_IFDIR;
            self.st.freed_inodes.push((ino, is_dir));
            i.i_dtime = self.timestamp as u32;
        }
        self.st.inodes.insert(ino, i);
        Ok(())
    }

    fn set_meta(&mut self, ino: u32, meta: Meta) -> Result<(), Error> {
        let mut i = self.st.inode(ino)?;
        let fmt = u32::from(i.i_mode) & S_IFMT;
        i.apply_meta(fmt | (meta.perm & 0o7777), meta);
        self.st.inodes.insert(ino, i);
        Ok(())
    }

    fn put_entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<(), Error> {
        let path = &entry.path;
        self.st.what = path.display_abs();
        let Some(parent_path) = path.parent() else {
            if entry.kind != Kind::Dir {
                return Err(Error::RootNotDir {
                    path: path.display_abs(),
                });
            }
            return self.set_meta(inode::EXT2_ROOT_INO, entry.meta);
        };
        let name = path.file_name();
        if name.len() > dir_entry::EXT2_NAME_LEN {
            return Err(Error::NameTooLong {
                path: path.display_abs(),
            });
        }
        if inode::encode_time(entry.meta.mtime).is_none() {
            return Err(Error::Mtime {
                path: path.display_abs(),
                mtime: entry.meta.mtime,
            });
        }
        let parent = self.ensure_dir(&parent_path)?;
        let existing = self.lookup_in(parent, name, &parent_path)?;
        let existing_is_dir = match existing {
            Some(e) => u32::from(self.st.inode(e)?.i_mode) & S_IFMT == S_IFDIR,
            None => false,
        };
        if existing_is_dir {
            let e = existing.unwrap_or(0);
            if entry.kind == Kind::Dir {
                return self.set_meta(e, entry.meta);
            }
            return Err(Error::ReplaceDir {
                path: path.display_abs(),
            });
        }
        if let Kind::HardLink { target } = &entry.kind {
            let t = self.lookup(target)?;
            let t = match t {
                Some(t) if u32::from(self.st.inode(t)?.i_mode) & S_IFMT != S_IFDIR => t,
                _ => {
                    return Err(Error::HardLinkTarget {
                        path: path.display_abs(),
                        target: target.display_abs(),
                    })
                }
            };
            if existing == Some(t) {
                return Ok(());
            }
            let mut ti = self.st.inode(t)?;
            ti.i_links_count = ti.i_links_count.saturating_add(1);
            let ft = dir_entry::file_type(ti.i_mode);
            self.st.inodes.insert(t, ti);
            if let Some(old) = existing {
                self.unlink(old)?;
            }
            return self.bind(parent, name, t, ft, &parent_path);
        }
        let ino = if entry.kind == Kind::Dir {
            self.new_dir(parent, entry.meta)?
        } else {
            let ino = self.st.alloc_inode(false)?;
            let i = self.make_inode(ino, entry, data)?;
            self.st.inodes.insert(ino, i);
            ino
        };
        if let Some(old) = existing {
            self.unlink(old)?;
        }
        self.bind(
            parent,
            name,
            ino,
            dir_entry::file_type(entry.mode() as u16),
            &parent_path,
        )
    }

    fn make_inode(&mut self, ino: u32, entry: &Entry, data: &mut dyn Read) -> Result<Inode, Error> {
        let path = &entry.path;
        let mut i = Inode::new(entry.mode(), entry.meta, self.st.vol.sb.inode_size());
        i.i_links_count = 1;
        let bs = self.st.bs;
        let seed = self.st.features.csum.map(|v| csum::inode_seed(v, ino, 0));
        let (mut m, flags) = new_map(bs, self.st.features.extents, seed);
        match &entry.kind {
            Kind::File { size } => {
                copy_content(
                    &mut *m,
                    &mut self.st,
                    &mut self.disk,
                    bs,
                    path,
                    *size,
                    &mut Dense(data),
                )?;
                let (blocks, sectors) = m.complete(&mut self.st, &mut self.disk)?;
                i.i_block = blocks;
                i.i_flags |= flags;
                i.set_size(*size, sectors);
            }
            Kind::Symlink { target } => {
                if target.is_empty() {
                    return Err(Error::EmptySymlink {
                        path: path.display_abs(),
                    });
                }
                if target.len() < 60 {
                    i.i_block = inode::fast_symlink(target);
                    i.set_size(target.len() as u64, 0);
                } else {
                    if target.len() >= bs as usize {
                        return Err(Error::SymlinkTooLong {
                            path: path.display_abs(),
                            len: target.len(),
                            max: bs as usize - 1,
                        });
                    }
                    let mut block = vec![0u8; bs as usize];
                    block[..target.len()].copy_from_slice(target);
                    let (blocks, sectors) =
                        map_blocks(&mut *m, &mut self.st, &mut self.disk, &[block])?;
                    i.i_block = blocks;
                    i.i_flags |= flags;
                    i.set_size(target.len() as u64, sectors);
                }
            }
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                let enc = inode::encode_device(*major, *minor).ok_or(Error::DeviceNumber {
                    path: path.display_abs(),
                    major: *major,
                    minor: *minor,
                })?;
                i.i_block[0] = enc[0];
                i.i_block[1] = enc[1];
            }
            _ => {}
        }
        Ok(i)
    }

    /// Writes directories, then commits every metadata change (through
    /// the journal when the volume has one).
    pub fn finish(mut self) -> Result<(), Error> {
        self.write_dirs()?;
        self.commit()
    }
}

impl Sink for Populator<'_> {
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> std::io::Result<()> {
        self.put_entry(entry, data).map_err(std::io::Error::from)
    }
}

#[cfg(test)]
mod tests;
