//! The calls into the format modules that several parts of a run share:
//! writing an archive, checking and populating an existing volume.

use crate::tree::{Source, TreePath};
use crate::{block, cpio, ext};
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::Path;

/// Writes a tree as a gzip-compressed newc archive.
pub fn write_archive(src: &mut dyn Source, out: &Path, name: &str) -> io::Result<()> {
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent)?;
    }
    let f = File::create(out)?;
    // libdeflate's level 6: smaller than gzip -6 and pigz -6 (about 1 %
    // on a Debian tree) at about 0.4 of their CPU time
    let gz = cpio::gzip_encoder(BufWriter::with_capacity(256 * 1024, f), 6);
    let mut w = cpio::Writer::new(gz, name.to_string());
    crate::progress::emit(src, &mut w, format!("packing {name}"))?;
    let dropped = w.xattrs_dropped();
    if dropped > 0 {
        eprintln!(
            "warning: {name}: {dropped} extended attributes not written (cpio archives cannot hold them)"
        );
    }
    let buf = w.finish_gzip()?;
    let f = buf.into_inner().map_err(|e| e.into_error())?;
    match f.sync_all() {
        // a FIFO or character device (`pack DIR /dev/stdout`) cannot sync
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => Ok(()),
        r => r,
    }
}

/// Refuses a volume we will not be able to update, before anything runs.
pub fn check_volume(target: &Path) -> io::Result<()> {
    let vol = ext::Volume::open_block(block::open(target, false)?).map_err(io::Error::other)?;
    ext::Populator::new(&vol, 0).map_err(io::Error::other)?;
    Ok(())
}

/// Populates an existing ext2/ext3 volume (raw or qcow2) in place, then
/// removes `deletes` (and the directories that leaves empty), all in one
/// journal transaction.
pub fn populate_volume(
    target: &Path,
    src: Box<dyn Source>,
    deletes: &[TreePath],
    timestamp: i64,
) -> io::Result<()> {
    let f = File::options().read(true).write(true).open(target)?;
    populate_open_volume(f, target, src, deletes, timestamp)
}

/// Populates an existing volume through a file already open on it (the
/// one its lock holds).
pub fn populate_open_volume(
    f: File,
    target: &Path,
    mut src: Box<dyn Source>,
    deletes: &[TreePath],
    timestamp: i64,
) -> io::Result<()> {
    let vol =
        ext::Volume::open_block(block::open_file(f, target, true)?).map_err(io::Error::other)?;
    let mut pop = ext::Populator::new(&vol, timestamp).map_err(io::Error::other)?;
    crate::progress::emit(
        &mut *src,
        &mut pop,
        format!("populating {}", target.display()),
    )?;
    for p in deletes {
        pop.delete(p).map_err(io::Error::other)?;
    }
    pop.finish().map_err(io::Error::other)
}
