//! The calls into the format modules that several parts of a run share:
//! writing an archive, checking and populating an existing volume.

use crate::tree::{Source, TreePath};
use crate::uri::Uri;
use crate::{archive, block, ext};
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::Path;

/// Writes a tree to `out` as the archive the name of `dest` calls for
/// ([`archive::output_format`]); `name` names it in messages.
pub fn write_archive(src: &mut dyn Source, out: &Path, dest: &Uri, name: &str) -> io::Result<()> {
    let format = archive::output_format(&dest.file_name_hint())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent)?;
    }
    let f = File::create(out)?;
    let mut w = archive::ArchiveWriter::new(BufWriter::with_capacity(256 * 1024, f), format, name)?;
    crate::progress::emit(src, &mut w, format!("packing {name}"))?;
    let dropped = w.xattrs_dropped();
    if dropped > 0 {
        eprintln!(
            "warning: {name}: {dropped} extended attributes not written (cpio archives cannot hold them)"
        );
    }
    let buf = w.finish()?;
    let f = buf.into_inner().map_err(|e| e.into_error())?;
    match f.sync_all() {
        // a FIFO or character device (`pack DIR /dev/stdout`) cannot sync
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => Ok(()),
        r => r,
    }
}

/// Refuses a volume we will not be able to update, before anything runs.
pub fn check_volume(target: &Path) -> io::Result<()> {
    check_open_volume(File::open(target)?, target)
}

/// [`check_volume`] through a file open on the volume.
pub fn check_open_volume(f: File, target: &Path) -> io::Result<()> {
    let vol =
        ext::Volume::open_block(block::open_file(f, target, false)?).map_err(io::Error::other)?;
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
    src: Box<dyn Source>,
    deletes: &[TreePath],
    timestamp: i64,
) -> io::Result<()> {
    populate(f, target, src, deletes, timestamp, false)
}

/// Populates a new image of this run under its staging name: no one sees
/// it before the commit syncs it and renames it into place, so it is
/// written without the journal and without syncs (an interrupted run
/// leaves only a staging file, removed by the next run).
pub fn populate_staged(
    staged: &Path,
    src: Box<dyn Source>,
    deletes: &[TreePath],
    timestamp: i64,
) -> io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static DONE: AtomicUsize = AtomicUsize::new(0);
    let f = File::options().read(true).write(true).open(staged)?;
    // a qcow2 image keeps its tables in memory until its flush, which
    // only the journaled update makes
    let direct = !block::qcow2::is_qcow2(&f)?;
    populate(f, staged, src, deletes, timestamp, direct)?;
    crate::exec::commit::fault_point("staged", DONE.fetch_add(1, Ordering::Relaxed));
    Ok(())
}

fn populate(
    f: File,
    target: &Path,
    mut src: Box<dyn Source>,
    deletes: &[TreePath],
    timestamp: i64,
    staged: bool,
) -> io::Result<()> {
    let vol =
        ext::Volume::open_block(block::open_file(f, target, true)?).map_err(io::Error::other)?;
    let mut pop = if staged {
        ext::Populator::new_staged(&vol, timestamp)
    } else {
        ext::Populator::new(&vol, timestamp)
    }
    .map_err(io::Error::other)?;
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
