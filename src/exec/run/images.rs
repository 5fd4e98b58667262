//! New images: the volumes a run holds while it writes them, and each new
//! image built in one pass from every tree populated into it (or kept
//! when nothing it is made of changed).

use super::{io_fail, Runner};
use crate::exec::{Error, Result};
use crate::parser::plan::{FsType, ImageFormat, Plan, TargetKind, Write};
use crate::tree::Source;
use crate::{block, ext, swap};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A new image of this run: built when first needed or at the end, from
/// every tree populated into it until then.
pub(super) struct NewImage {
    format: Format,
    /// Staged beside the destination, renamed over it at commit.
    pub(super) staged: PathBuf,
    pub(super) dest: PathBuf,
    pub(super) sources: Vec<(String, Box<dyn Source>)>,
    pub(super) built: bool,
    /// A digest of the image's options and of every tree populated into
    /// it: equal to the last run's and the image untouched since, it is
    /// kept instead of rebuilt.
    pub(super) digest: crate::exec::state::Fingerprint,
    /// A patch of this run targets it: never kept.
    pub(super) patched: bool,
    /// The destination is a block device: the image is built in staging
    /// and written onto the device at commit.
    device: bool,
    /// `format qcow2`: a qcow2 image, or a qcow2 overlay over a clone's
    /// base.
    qcow2: bool,
    /// The staged file's inodes need no scan before it is updated in
    /// place: it was built here, or it is a clone of a volume that was
    /// built here or that passed the full check (see
    /// `ext::Populator::new_staged`).
    pub(super) vouched: bool,
}

/// What a new image holds.
enum Format {
    Ext(ext::Options),
    /// A swap area: nothing is populated into it.
    Swap(swap::Options),
    /// A clone of another image (of this size), populated in place.
    Clone(PathBuf, u64),
}

impl NewImage {
    /// The size of the volume.
    pub(super) fn size(&self) -> u64 {
        match &self.format {
            Format::Ext(o) => o.size,
            Format::Swap(o) => o.size,
            Format::Clone(_, size) => *size,
        }
    }
}

impl Runner<'_> {
    /// `[image]`: a new image, staged beside its destination (or, for an
    /// existing block device, in staging), built when first needed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn image(
        &mut self,
        at: &str,
        path: &Path,
        size: u64,
        label: &[u8],
        fs: FsType,
        block_size: Option<u32>,
        inodes: Option<u32>,
        uuid: Option<[u8; 16]>,
        base: Option<&Path>,
        format: ImageFormat,
    ) -> Result<()> {
        let qcow2 = format == ImageFormat::Qcow2;
        let uuid = uuid.unwrap_or_else(|| derive_uuid(path, size, label));
        let format = match fs {
            _ if base.is_some() => {
                let base = base.unwrap_or(path);
                self.clone_size(at, path, size, base)?;
                Format::Clone(base.to_path_buf(), size)
            }
            FsType::Swap => Format::Swap(swap::Options {
                size,
                label: label.to_vec(),
                uuid,
            }),
            FsType::Ext2 | FsType::Ext3 | FsType::Ext4 => Format::Ext(ext::Options {
                size,
                block_size,
                inodes,
                label: label.to_vec(),
                uuid,
                journal: fs != FsType::Ext2,
                ext4: fs == FsType::Ext4,
                timestamp: self.now,
            }),
        };
        let device = fs::metadata(path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()));
        if device && qcow2 {
            return Err(Error::run(format!(
                "{at}: {} is a block device; a qcow2 image is a file (use `format raw` on a device)",
                path.display()
            )));
        }
        let (staged, dest) = if device {
            (self.device_image(at, path, size)?, path.to_path_buf())
        } else {
            // a symlink is written through; a character device or
            // FIFO cannot hold an image
            let dest = match crate::exec::atomic::dest(path) {
                Ok(crate::exec::atomic::Dest::Atomic(p)) => p,
                Ok(crate::exec::atomic::Dest::Stream(_)) => {
                    return Err(Error::run(format!(
                        "{at}: {} is a character device or FIFO; an image needs a regular file or a block device",
                        path.display()
                    )))
                }
                Err(e) => return Err(io_fail(at, path.display(), e)),
            };
            self.commit.check_local(&dest, self.opts.force, at)?;
            // an interrupted run may have left its staged image here
            if let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) {
                crate::exec::workdir::clean_stale(dir, &crate::exec::atomic::temp_prefix(name));
            }
            (crate::exec::atomic::temp_beside(&dest), dest)
        };
        // what the image is made of: kept when the next run finds
        // the same (see `build_image`)
        let mut digest = crate::exec::state::Fingerprint::default();
        match &format {
            Format::Ext(options) => digest.add("image", format!("{options:?}").as_bytes()),
            Format::Swap(options) => digest.add("swap", format!("{options:?}").as_bytes()),
            Format::Clone(base, _) => digest.add("clone", base.as_os_str().as_encoded_bytes()),
        }
        if qcow2 {
            digest.add("format", b"qcow2");
        }
        // a qcow2 overlay of this run over this image reads it where it
        // is staged
        block::stage(&dest, &staged);
        block::stage(path, &staged);
        let vouched = !matches!(format, Format::Clone(..));
        self.images.insert(
            path.to_path_buf(),
            NewImage {
                format,
                staged,
                dest,
                sources: Vec::new(),
                built: false,
                digest,
                patched: false,
                device,
                qcow2,
                vouched,
            },
        );
        Ok(())
    }

    /// Takes every existing image and device the plan writes, in path
    /// order (two runs waiting for each other's volumes would otherwise
    /// deadlock), before anything reads them: a volume mounted, attached
    /// to a loop device or held by device-mapper is refused, and a volume
    /// another run is writing is waited for.
    pub(super) fn lock_volumes(&mut self, plan: &Plan) -> Result<()> {
        let mut new: BTreeSet<&Path> = BTreeSet::new();
        let mut wanted: BTreeMap<PathBuf, String> = BTreeMap::new();
        for step in &plan.steps {
            let at = format!("{}:{}", self.name, step.span);
            for w in step.action.writes() {
                let target = match w {
                    Write::Image(path) => {
                        let device = fs::metadata(path).is_ok_and(|m| {
                            std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type())
                        });
                        if device {
                            // formatted in place at commit: held like any volume
                            wanted.entry(path.to_path_buf()).or_insert(at.clone());
                        } else if path.exists() {
                            // replaced at commit: refuse now what is in use
                            if let Some(why) = crate::exec::holders::holder(path)
                                .map_err(|e| io_fail(&at, path.display(), e))?
                            {
                                return Err(Error::run(format!(
                                    "{at}: {why}; refusing to replace it (--force does not change this)"
                                )));
                            }
                        }
                        new.insert(path);
                        continue;
                    }
                    Write::Target(TargetKind::Image | TargetKind::Device, target) => target,
                    Write::Target(TargetKind::Dir, _) | Write::Output(_) => continue,
                };
                if !new.contains(target) && target.exists() {
                    wanted.entry(target.to_path_buf()).or_insert(at.clone());
                }
            }
        }
        for (path, at) in wanted {
            let lock = crate::exec::holders::VolumeLock::take(&path, || {
                eprintln!(
                    "{at}: waiting for another vm-container run that is writing {}",
                    path.display()
                )
            })
            .map_err(|e| Error::run(format!("{at}: {e}")))?;
            self.commit.locks.insert(path, lock);
        }
        Ok(())
    }

    /// `[image]` naming an existing block device: formatting destroys
    /// what it holds, so a device vm-container did not format is written
    /// only with `--force`, and the refusal says what would be lost. The
    /// image is staged under the run's staging directory.
    pub(super) fn device_image(&mut self, at: &str, path: &Path, size: u64) -> Result<PathBuf> {
        if !self.opts.force && !self.commit.created.contains(path) {
            return Err(Error::run(format!(
                "{at}: {} is a block device vm-container did not format and {}; use --force to format it",
                path.display(),
                crate::exec::holders::contents(path)
            )));
        }
        let lock = self
            .commit
            .locks
            .get(path)
            .ok_or_else(|| Error::run(format!("{at}: {}: not locked", path.display())))?;
        let have = lock
            .file()
            .and_then(|f| crate::exec::holders::size_of(&f))
            .map_err(|e| io_fail(at, path.display(), e))?;
        if have < size {
            return Err(Error::run(format!(
                "{at}: {} holds {have} bytes; the image needs {size}",
                path.display()
            )));
        }
        Ok(self.stage_path("device-image"))
    }

    /// Writes `src`, then removes `deletes`, in the staged file of `path`,
    /// a new image of this run already built: no one sees it before the
    /// commit, so without its journal. One not vouched for (a clone not
    /// known to be personalised when it was made) is checked in full
    /// first.
    pub(super) fn update_staged(
        &mut self,
        path: &Path,
        src: Box<dyn Source>,
        deletes: &[crate::tree::TreePath],
    ) -> std::io::Result<()> {
        let img = self
            .images
            .get_mut(path)
            .ok_or_else(|| std::io::Error::other("not a new image of this run"))?;
        if !img.vouched {
            crate::exec::formats::check_volume(&img.staged)?;
            img.vouched = true;
        }
        crate::exec::formats::populate_staged(&img.staged, src, deletes, self.now)
    }

    /// Builds every new image still pending.
    pub(super) fn build_images(&mut self) -> Result<()> {
        let pending: Vec<PathBuf> = self
            .images
            .iter()
            .filter(|(_, i)| !i.built)
            .map(|(p, _)| p.clone())
            .collect();
        for p in pending {
            self.build_image(&p)?;
        }
        Ok(())
    }

    pub(super) fn build_image(&mut self, path: &Path) -> Result<()> {
        // a clone's base first: the clone is made of what it is now
        let base = match self.images.get(path) {
            Some(NewImage {
                format: Format::Clone(base, _),
                built: false,
                ..
            }) => Some(base.clone()),
            _ => None,
        };
        let base = match base {
            Some(b) => Some(self.clone_base(&b)?),
            None => None,
        };
        let Some(img) = self.images.get_mut(path) else {
            return Ok(());
        };
        if img.built {
            return Ok(());
        }
        if let Some((_, id, _)) = &base {
            img.digest.add("base", id.as_bytes());
        }
        let digest = std::mem::take(&mut img.digest).finish();
        self.image_digests.insert(img.dest.clone(), digest.clone());
        if !img.patched
            && self.previous_images.get(&img.dest) == Some(&digest)
            && self.commit.intact(&img.dest)
        {
            // nothing it is made of changed: keep it as it is
            img.built = true;
            img.sources.clear();
            self.log
                .line(&format!("kept {} (unchanged)", img.dest.display()))?;
            self.commit.keep(img.dest.clone());
            return Ok(());
        }
        if let Some(parent) = img.dest.parent() {
            fs::create_dir_all(parent).map_err(|e| io_fail("", parent.display(), e))?;
        }
        let at = img.dest.display().to_string();
        let staged = img.staged.clone();
        let mut log_line = None;
        let built = (|| -> Result<()> {
            // swap holds memory pages: readable by root only, as mkswap wants
            let mode = if matches!(img.format, Format::Swap(_)) {
                0o600
            } else {
                0o666
            };
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&staged)
                .map_err(|e| io_fail(&at, staged.display(), e))?;
            let options = match &img.format {
                Format::Ext(options) => options.clone(),
                Format::Clone(base_path, size) if img.qcow2 => {
                    let name = backing_name(&img.dest, base_path).ok_or_else(|| {
                        Error::run(format!(
                            "{at}: the name of {} is not UTF-8; a qcow2 header cannot record it",
                            base_path.display()
                        ))
                    })?;
                    let dev =
                        block::qcow2::Qcow2::create_overlay(file, &staged, *size, &name, base_path)
                            .map_err(|e| {
                                io_fail(&at, format!("overlay over {}", base_path.display()), e)
                            })?;
                    block::Block::flush(&dev).map_err(|e| io_fail(&at, "image", e))?;
                    drop(dev);
                    log_line = Some(format!(
                        "made {at} a qcow2 overlay over {}",
                        base_path.display()
                    ));
                    for (label, src) in std::mem::take(&mut img.sources) {
                        crate::exec::formats::populate_volume(&staged, src, &[], self.now)
                            .map_err(|e| io_fail(&at, format!("populating from {label}"), e))?;
                    }
                    return Ok(());
                }
                Format::Clone(..) => {
                    drop(file);
                    let (from, _, base_vouched) = base.as_ref().ok_or_else(|| {
                        Error::run(format!("{at}: the base of a clone is unknown"))
                    })?;
                    if block::qcow2::is_qcow2(
                        &File::open(from).map_err(|e| io_fail(&at, from.display(), e))?,
                    )
                    .map_err(|e| io_fail(&at, from.display(), e))?
                    {
                        return Err(Error::run(format!(
                            "{at}: {} is a qcow2 image: a raw clone would copy its qcow2 file; use `format qcow2` for an overlay over it",
                            from.display()
                        )));
                    }
                    let src = File::open(from).map_err(|e| io_fail(&at, from.display(), e))?;
                    // a clone written in place is its base checked in full
                    // first, through the base's cache, shared by all its
                    // clones (the clone's own is empty): the same bytes
                    let personalised = img.patched || !img.sources.is_empty();
                    if personalised && !base_vouched {
                        src.try_clone()
                            .and_then(|f| crate::exec::formats::check_open_volume(f, from))
                            .map_err(|e| io_fail(&at, from.display(), e))?;
                    }
                    img.vouched = personalised || *base_vouched;
                    let how = super::clone::clone_file(&src, from, &staged)
                        .map_err(|e| io_fail(&at, format!("cloning {}", from.display()), e))?;
                    log_line = Some(format!("cloned {} from {} ({how:?})", at, from.display()));
                    for (label, src) in std::mem::take(&mut img.sources) {
                        crate::exec::formats::populate_staged(&staged, src, &[], self.now)
                            .map_err(|e| io_fail(&at, format!("populating from {label}"), e))?;
                    }
                    return Ok(());
                }
                Format::Swap(options) => {
                    return swap::write(&file, options).map_err(|e| io_fail(&at, "swap area", e));
                }
            };
            let dev: Box<dyn block::Block> = if img.qcow2 {
                Box::new(
                    block::qcow2::Qcow2::create(file, &staged, options.size)
                        .map_err(|e| io_fail(&at, "image", e))?,
                )
            } else {
                Box::new(file)
            };
            let mut builder =
                ext::Builder::new(options, &*dev).map_err(|e| io_fail(&at, "image", e))?;
            for (label, src) in img.sources.iter_mut() {
                crate::progress::emit(&mut **src, &mut builder, format!("writing {at}"))
                    .map_err(|e| io_fail(&at, format!("populating from {label}"), e))?;
            }
            builder.finish().map_err(|e| io_fail(&at, "image", e))?;
            // a qcow2 image's tables are written by its flush; a raw image
            // is synced by the commit, with every other staged image
            if img.qcow2 {
                dev.flush().map_err(|e| io_fail(&at, "image", e))?;
            }
            Ok(())
        })();
        if let Err(e) = built {
            // the staged image is beside the destination: never leave it
            let _ = fs::remove_file(&staged);
            return Err(e);
        }
        img.built = true;
        img.sources.clear();
        let (staged, dest) = (img.staged.clone(), img.dest.clone());
        let device = img.device;
        if let Some(line) = log_line {
            self.log.line(&line)?;
        }
        if device {
            self.commit.stage_device_image(staged, dest);
        } else {
            self.commit.stage_image(staged, dest);
        }
        Ok(())
    }
}

/// How a qcow2 overlay at `dest` names its base: by file name alone when
/// both are in one directory (the pair can move together, as QEMU finds a
/// relative name from the overlay's directory), else by absolute path.
/// The header holds text: a name that is not UTF-8 is refused.
fn backing_name(dest: &Path, base: &Path) -> Option<String> {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (dest, base) = (abs(dest), abs(base));
    let same_dir = dest.parent().is_some_and(|d| Some(d) == base.parent());
    let name = match base.file_name() {
        Some(name) if same_dir => Path::new(name),
        _ => &base,
    };
    name.to_str().map(str::to_string)
}

/// A UUID derived from what defines the image, so that the same container
/// builds the same image (docs/SPEC.md §4: reproducible unless `uuid` is given).
fn derive_uuid(path: &Path, size: u64, label: &[u8]) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"vm-container image uuid\0");
    h.update(path.as_os_str().as_encoded_bytes());
    h.update(size.to_le_bytes());
    h.update(label);
    let d = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    // an RFC 4122 version 5-style (name-based) UUID
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}
