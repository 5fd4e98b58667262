//! Clones: `[image PATH SIZE base BASE]` shares its base's blocks where
//! the host file system can (a reflink), else copies only the blocks that
//! hold data; and `[replace|copy PATH image IMAGE]`, one file of an image
//! written in place (through its journal when the image exists already).

use super::{io_fail, Runner};
use crate::exec::commit::Job;
use crate::exec::worktree::{Change, Content, WorkTree};
use crate::exec::{Error, Result};
use crate::ext;
use crate::parser::plan::PutContent;
use crate::tree::TreePath;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How a clone was made.
#[derive(Debug, PartialEq, Eq)]
pub enum Cloned {
    /// Every extent shared with the base: no new disk until written.
    Reflink,
    /// The base's data blocks copied, its holes and zero blocks left
    /// holes: this many bytes written.
    Sparse(u64),
}

/// Makes `dest` a copy of `base` (open as `src`), which is only read: a reflink (the
/// `FICLONE` ioctl) when both are on a file system that shares extents
/// (XFS, btrfs), else a sparse copy, with a note of its cost on stderr.
/// Nothing is synced: `dest` is a staged image, synced once by the commit
/// before it is renamed into place.
pub fn clone_file(src: &File, base: &Path, dest: &Path) -> io::Result<Cloned> {
    let out = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dest)?;
    // any refusal (another file system, no reflink support, no such
    // ioctl) leaves the copy to do by hand; a real I/O error shows there
    if rustix::fs::ioctl_ficlone(&out, src).is_ok() {
        return Ok(Cloned::Reflink);
    }
    let len = src.metadata()?.len();
    let written = sparse_copy(src, &out, len)?;
    out.set_len(len)?;
    eprintln!(
        "note: {}: the file system shares no extents; a sparse copy of {} wrote {} MiB",
        dest.display(),
        base.display(),
        written.div_ceil(1 << 20)
    );
    Ok(Cloned::Sparse(written))
}

/// Copies the data of `src` (its first `len` bytes) into the empty file
/// `out`, skipping holes (`SEEK_DATA`/`SEEK_HOLE`) and blocks of zeros.
/// Returns the bytes written.
fn sparse_copy(src: &File, out: &File, len: u64) -> io::Result<u64> {
    use rustix::fs::{seek, SeekFrom};
    const BLOCK: usize = 4096;
    let mut buf = vec![0u8; 1 << 20];
    let (mut pos, mut written) = (0u64, 0u64);
    while pos < len {
        let start = match seek(src, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            // no hole support: all of it is data
            Err(_) => pos,
        };
        let end = seek(src, SeekFrom::Hole(start)).unwrap_or(len).min(len);
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            src.read_exact_at(&mut buf[..n], at)?;
            for (i, block) in buf[..n].chunks(BLOCK).enumerate() {
                if block.iter().any(|&b| b != 0) {
                    out.write_all_at(block, at + (i * BLOCK) as u64)?;
                    written += block.len() as u64;
                }
            }
            at += n as u64;
        }
        pos = end.max(start + 1);
    }
    Ok(written)
}

impl Runner<'_> {
    /// A clone is its base's size: growing its file system is not done,
    /// and a smaller one would cut it.
    pub(super) fn clone_size(&self, at: &str, path: &Path, size: u64, base: &Path) -> Result<()> {
        let have = match self.images.get(base) {
            Some(img) => img.size(),
            // a qcow2 base's virtual size
            None => crate::block::volume_len(base).map_err(|e| io_fail(at, base.display(), e))?,
        };
        if size != have {
            return Err(Error::run(format!(
                "{at}: {} would be {size} bytes, its base {} is {have}: a clone has its base's size ({})",
                path.display(),
                base.display(),
                if size > have {
                    "growing its file system is not supported"
                } else {
                    "a smaller one would cut its file system"
                }
            )));
        }
        Ok(())
    }

    /// The file a clone is made from, what identifies its content, and
    /// whether it is vouched for (see `NewImage::vouched`): a new image of
    /// this run is built first (its digest), an existing one is read where
    /// it is (its size and mtime).
    pub(super) fn clone_base(&mut self, base: &Path) -> Result<(PathBuf, String, bool)> {
        if self.images.contains_key(base) {
            self.build_image(base)?;
            let img = &self.images[base];
            // kept from the last run: a file like any other
            let (file, vouched) = if img.staged.exists() {
                (img.staged.clone(), img.vouched)
            } else {
                (img.dest.clone(), false)
            };
            let id = self
                .image_digests
                .get(&img.dest)
                .cloned()
                .unwrap_or_default();
            return Ok((file, format!("image {id}"), vouched));
        }
        Ok((
            base.to_path_buf(),
            format!("file {}", crate::exec::state::input_stamp(base)),
            false,
        ))
    }

    /// `[replace|copy PATH image IMAGE]`: the file written into the
    /// image; a new image of this run now, in staging (no one sees it
    /// before the commit: no journal), an existing one at commit through
    /// its journal. A replaced file keeps its mode and owner unless
    /// `mode`/`owner` are given; a new one is 0644 0:0.
    pub(super) fn put(
        &mut self,
        at: &str,
        image: &Path,
        path: &TreePath,
        content: &PutContent,
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> Result<()> {
        let content = match content {
            PutContent::Text(t) => Content::Bytes(t.clone()),
            PutContent::Source(u) => {
                let input = self.inputs.get(u, at, &mut self.log)?;
                if input.path.is_dir() {
                    return Err(Error::run(format!(
                        "{at}: {u} is a directory; `[copy ... image]` copies one file"
                    )));
                }
                Content::File(input.path)
            }
        };
        if let Some(img) = self.images.get_mut(image) {
            img.patched = true;
            self.build_image(image)?;
        }
        let (file, staged) = match self.images.get(image) {
            Some(img) => (img.staged.clone(), true),
            None => (image.to_path_buf(), false),
        };
        let dev = crate::block::open(&file, false).map_err(|e| io_fail(at, image.display(), e))?;
        let vol = ext::Volume::open_block(dev).map_err(|e| io_fail(at, image.display(), e))?;
        let (mut perm, mut own) = (mode, owner);
        // the file as the updates queued before this one leave it
        let mut pending = if staged {
            Vec::new()
        } else {
            self.commit.pending_volume(image)
        };
        let paths = std::collections::BTreeSet::from([path.clone()]);
        let through = super::patch::read_through(at, image, &vol, &mut pending, &paths, false)?;
        if let Some(&(p, uid, gid)) = through.meta.get(path) {
            perm = perm.or(Some(p));
            own = own.or(Some((uid, gid)));
        }
        drop(pending);
        drop(vol);
        let mut tree = WorkTree::new(image.display().to_string(), None, self.now);
        tree.put_file(path, content, perm, own)
            .map_err(|e| Error::run(format!("{at}: {e}")))?;
        // only the file: its parents are the image's
        tree.overlay.retain(|_, c| {
            matches!(
                c,
                Change::Put {
                    content: Some(_),
                    ..
                }
            )
        });
        let src: Box<dyn crate::tree::Source> = Box::new(tree.source());
        if staged {
            self.update_staged(image, src, &[])
                .map_err(|e| io_fail(at, image.display(), e))?;
        } else {
            self.commit.job(Job::Volume {
                at: at.to_string(),
                target: image.to_path_buf(),
                source: src,
                deletes: Vec::new(),
                timestamp: self.now,
            });
        }
        self.log.line(&format!(
            "{at} wrote {} in {}",
            path.display_abs(),
            image.display()
        ))
    }
}
