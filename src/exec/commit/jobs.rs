//! The updates a commit makes to what exists already: new images written
//! onto block devices, existing volumes populated in place, trees expanded
//! into host directories.

use super::{Commit, Job};
use crate::exec::budget::Budget;
use crate::exec::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

impl Commit {
    /// Tries every volume update with its writes dropped: a volume that
    /// would run out of blocks, inodes or journal fails the run here,
    /// before any volume is changed. Each update is tried alone against
    /// the volume as it is.
    pub(super) fn try_volumes(&mut self) -> Result<()> {
        for job in &mut self.jobs {
            let Job::Volume {
                at,
                target,
                source,
                deletes,
                timestamp,
            } = job
            else {
                continue;
            };
            let fail =
                |e: &dyn std::fmt::Display| Error::run(format!("{at}: {}: {e}", target.display()));
            let f = match self.locks.get(target.as_path()) {
                Some(lock) => lock.file(),
                None => fs::File::open(&*target),
            }
            .map_err(|e| fail(&e))?;
            let dev = crate::block::open_file(f, target, false).map_err(|e| fail(&e))?;
            let vol = crate::ext::Volume::open_block(dev).map_err(|e| fail(&e))?;
            let mut trial = crate::ext::Populator::new(&vol, *timestamp)
                .map_err(|e| fail(&e))?
                .trial();
            source.emit(&mut trial).map_err(|e| fail(&e))?;
            for p in deletes.iter() {
                trial.delete(p).map_err(|e| fail(&e))?;
            }
            trial.finish().map_err(|e| fail(&e))?;
        }
        Ok(())
    }

    /// Runs the updates of existing volumes and directories.
    pub(super) fn run_jobs(
        &mut self,
        log: &mut crate::exec::log::Log,
        done: &mut Vec<String>,
    ) -> Result<()> {
        for (staged, dest) in std::mem::take(&mut self.device_images) {
            let fail = |e: std::io::Error| Error::run(format!("{}: {e}", dest.display()));
            let dev = self
                .locks
                .get(&dest)
                .ok_or_else(|| fail(std::io::Error::other("not locked")))?
                .file()
                .map_err(fail)?;
            copy_onto(&staged, &dev).map_err(fail)?;
            let _ = fs::remove_file(&staged);
            self.created.insert(dest.clone());
            log.line(&format!("commit {} (formatted)", dest.display()))?;
            self.said
                .push(format!("built {} (formatted)", dest.display()));
            done.push(dest.display().to_string());
            self.committed.push(dest);
        }
        for job in std::mem::take(&mut self.jobs) {
            match job {
                Job::Volume {
                    at,
                    target,
                    source,
                    deletes,
                    timestamp,
                } => {
                    let fail =
                        |e: std::io::Error| Error::run(format!("{at}: {}: {e}", target.display()));
                    match self.locks.get(&target) {
                        Some(lock) => {
                            // an image file attached or mounted since the
                            // run began (a device is held exclusively)
                            if fs::metadata(&target).is_ok_and(|m| m.is_file()) {
                                if let Some(why) = crate::exec::holders::holder(&target).map_err(fail)? {
                                    return Err(Error::run(format!(
                                        "{at}: {why}; refusing to write it (--force does not change this)"
                                    )));
                                }
                            }
                            let f = lock.file().map_err(fail)?;
                            crate::exec::formats::populate_open_volume(f, &target, source, &deletes, timestamp)
                        }
                        None => crate::exec::formats::populate_volume(&target, source, &deletes, timestamp),
                    }
                    .map_err(|e| {
                        if is_after_commit(&e) {
                            // made, though not finished: it counts as committed
                            done.push(target.display().to_string());
                        }
                        fail(e)
                    })?;
                    log.line(&format!("{at} populated {}", target.display()))?;
                    self.said
                        .push(format!("updated in place {}", target.display()));
                    done.push(target.display().to_string());
                    self.committed.push(target);
                }
                Job::Dir {
                    at,
                    target,
                    mut source,
                } => {
                    let fail = |e: &dyn std::fmt::Display| {
                        Error::run(format!("{at}: {}: {e}", target.display()))
                    };
                    let into = self
                        .dir_destination(&target)
                        .and_then(|into| fs::create_dir_all(&into).map(|_| into))
                        .map_err(|e| fail(&e))?;
                    let mut x = crate::hostdir::Extractor::new(&into).map_err(|e| fail(&e))?;
                    let mut budget = Budget::for_target(&into, &mut x).map_err(|e| fail(&e))?;
                    crate::progress::emit(
                        &mut *source,
                        &mut budget,
                        format!("expanding into {}", target.display()),
                    )
                    .map_err(|e| fail(&e))?;
                    let warnings = x.finish().map_err(|e| fail(&e))?;
                    for w in warnings {
                        eprintln!("warning: {at}: {w}");
                    }
                    log.line(&format!("{at} populated {}", target.display()))?;
                    self.said
                        .push(format!("updated in place {}", target.display()));
                    if into == target {
                        done.push(target.display().to_string());
                        self.committed.push(target);
                    }
                }
            }
        }
        Ok(())
    }

    /// Where a `populate dir` job writes. A target that does not exist yet
    /// is expanded beside it and renamed into place with the other outputs,
    /// so a failed run leaves no part of it; a later job on the same
    /// target, or on a path inside it, joins that staging directory. A
    /// directory that exists (a mount point, say: staging beside it would
    /// land on another file system) is merged into in place, as `cpio -idm`
    /// into a mounted tree would.
    pub(super) fn dir_destination(&mut self, target: &Path) -> std::io::Result<PathBuf> {
        for (t, staged) in &self.dirs {
            if let Ok(rel) = target.strip_prefix(t) {
                return Ok(staged.join(rel));
            }
        }
        match fs::symlink_metadata(target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(_) => return Ok(target.to_path_buf()),
        }
        let staged = crate::exec::atomic::temp_beside(target);
        if let (Some(dir), Some(name)) = (target.parent(), target.file_name()) {
            fs::create_dir_all(dir)?;
            // an interrupted run may have left its staging directory here
            crate::exec::workdir::clean_stale(dir, &crate::exec::atomic::temp_prefix(name));
        }
        let _ = fs::remove_dir_all(&staged);
        fs::create_dir(&staged)?;
        self.dirs.push((target.to_path_buf(), staged.clone()));
        Ok(staged)
    }
}

/// True when a volume update failed after its journal commit: the update
/// is made, and a journal replay finishes it.
fn is_after_commit(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<crate::ext::Error>())
        .is_some_and(|x| matches!(x, crate::ext::Error::AfterCommit(_)))
}

/// Writes a staged image over the start of a device, zeros included
/// (the device's old blocks are not holes), then syncs it.
fn copy_onto(staged: &Path, dev: &fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let src = fs::File::open(staged)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    loop {
        let n = src.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        dev.write_all_at(&buf[..n], at)?;
        at += n as u64;
    }
    dev.sync_all()
}
