//! Carrying out a plan: every expression in order, then the commit.
//!
//! Two phases keep docs/SPEC.md §3.3: while expressions run, everything they write
//! goes to staging (under `--dir`, or beside a local image); updates of
//! volumes and directories that exist already are recorded as jobs. Only
//! when every expression has succeeded does the commit run the jobs and
//! move staged files into place (rename for local files, temporary name
//! and rename on the server for uploads). A failed run commits nothing.

use super::formats::{check_volume, populate_volume, write_archive};
use super::inputs::Inputs;
use super::log::Log;
use super::outputs::{Commit, Job};
use super::worktree::{archive_source, Change, Content, Overlay, WorkTree};
use super::{Failure, Result, RunOptions};
use crate::cache::{Cache, Mode};
use crate::diff;
use crate::parser::plan::{Action, Edit, FsType, PatchTarget, Plan, Step, TargetKind, UriRef};
use crate::tree::{Entry, Kind, Source, TreePath};
use crate::{ext, hostdir, swap};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A new image of this run: built when first needed or at the end, from
/// every tree populated into it until then.
struct NewImage {
    format: Format,
    /// Staged beside the destination, renamed over it at commit.
    staged: PathBuf,
    dest: PathBuf,
    sources: Vec<(String, Box<dyn Source>)>,
    built: bool,
    /// A digest of the image's options and of every tree populated into
    /// it: equal to the last run's and the image untouched since, it is
    /// kept instead of rebuilt.
    digest: super::state::Fingerprint,
    /// A patch of this run targets it: never kept.
    patched: bool,
    /// The destination is a block device: the image is built in staging
    /// and written onto the device at commit.
    device: bool,
}

/// What a new image holds.
enum Format {
    Ext(ext::Options),
    /// A swap area: nothing is populated into it.
    Swap(swap::Options),
}

pub struct Runner<'a> {
    opts: &'a RunOptions,
    name: &'a str,
    pub log: Log,
    inputs: Inputs,
    trees: HashMap<String, WorkTree>,
    images: BTreeMap<PathBuf, NewImage>,
    pub commit: Commit,
    staging: PathBuf,
    serial: u32,
    /// The date of what this run creates (see [`Runner::date`]).
    now: i64,
    epoch: Option<i64>,
    /// The digest of the container's expressions and their date, for
    /// the next run's record.
    pub dated: Option<(String, i64)>,
    /// What [`Runner::fingerprint`] digests, with the container's
    /// expressions in place of its text: equal to the last run's, only
    /// Xen statements changed.
    pub plan_inputs: Option<String>,
    sign_key: Option<crate::sign::SecretKey>,
    /// Image digests of the last successful run (path → digest).
    pub previous_images: BTreeMap<PathBuf, String>,
    /// Image digests of this run, for the next run's record.
    pub image_digests: BTreeMap<PathBuf, String>,
}

fn io_fail(at: &str, what: impl std::fmt::Display, e: impl std::fmt::Display) -> Failure {
    Failure::run(format!("{at}: {what}: {e}"))
}

impl<'a> Runner<'a> {
    pub fn new(
        opts: &'a RunOptions,
        name: &'a str,
        dir: &Path,
        staging: PathBuf,
        log: Log,
    ) -> Result<Runner<'a>> {
        let fetch_opts = crate::transport::FetchOptions {
            total_timeout: Some(
                opts.timeout
                    .unwrap_or(crate::transport::DEFAULT_TOTAL_TIMEOUT),
            ),
            max_download: opts.max_download,
            ..Default::default()
        };
        let cache = Cache::open(dir.join("cache"), fetch_opts)
            .map_err(|e| Failure::run(format!("--dir {}: {e}", dir.display())))?;
        let mode = if opts.offline {
            Mode::Offline
        } else if opts.allow_stale {
            Mode::AllowStale
        } else {
            Mode::Online
        };
        let epoch = super::tools::source_date_epoch();
        Ok(Runner {
            opts,
            name,
            log,
            inputs: Inputs::new(cache, mode),
            trees: HashMap::new(),
            images: BTreeMap::new(),
            commit: Commit::default(),
            staging,
            serial: 0,
            // set by `date` once the last run's record is read
            now: epoch.unwrap_or(0),
            epoch,
            dated: None,
            plan_inputs: None,
            sign_key: None,
            previous_images: BTreeMap::new(),
            image_digests: BTreeMap::new(),
        })
    }

    pub fn set_trust(
        &mut self,
        trust: super::inputs::Trust,
        sign_key: Option<crate::sign::SecretKey>,
    ) {
        self.inputs.trust = trust;
        self.sign_key = sign_key;
    }

    /// A fresh file name under the run's staging directory.
    fn stage_path(&mut self, hint: &str) -> PathBuf {
        self.serial += 1;
        let safe: String = hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.staging.join(format!("{:03}-{safe}", self.serial))
    }

    /// A digest of everything the plan reads: remote artifacts are
    /// revalidated (and fetched only if they changed), local files are
    /// stamped by size and mtime, packed directories by their listing.
    /// The same without the container's Xen statements is kept in
    /// [`Runner::plan_inputs`].
    pub fn fingerprint(&mut self, plan: &Plan, text: &str) -> Result<String> {
        let mut f = super::state::Fingerprint::default();
        for (k, v) in &self.opts.set {
            f.add("set", format!("{k}={v}").as_bytes());
        }
        f.add("epoch", format!("{:?}", self.epoch).as_bytes());
        f.add("stripped", format!("{:?}", self.opts.stripped).as_bytes());
        f.add(
            "sign",
            self.sign_key
                .as_ref()
                .map(|k| k.key_id().to_string())
                .unwrap_or_default()
                .as_bytes(),
        );
        let mut produced: BTreeSet<String> = BTreeSet::new();
        for step in &plan.steps {
            let at = format!("{}:{}", self.name, step.span);
            let mut reads: Vec<&UriRef> = Vec::new();
            let mut dirs: Vec<&Path> = Vec::new();
            let mut writes: Vec<&UriRef> = Vec::new();
            match &step.action {
                Action::Create { src, dest } => {
                    dirs.push(src);
                    writes.push(dest);
                }
                Action::Image { .. } => {}
                Action::Populate { target, source, .. } => {
                    reads.push(source);
                    f.add("target", target.as_os_str().as_encoded_bytes());
                }
                Action::Replace { edit, .. } | Action::Copy { edit, .. } => {
                    reads.push(&edit.archive);
                    writes.extend(edit.patch.iter().chain(edit.fork.iter()));
                    if let Action::Copy { source, .. } = &step.action {
                        match source.uri.local_path().filter(|p| p.is_dir()) {
                            Some(d) => dirs.push(d),
                            None => reads.push(source),
                        }
                    }
                }
                Action::Patch {
                    target,
                    patch,
                    fork,
                } => {
                    if let PatchTarget::Archive(a) = target {
                        reads.push(a);
                    }
                    reads.push(patch);
                    writes.extend(fork.iter());
                }
            }
            for u in reads {
                let key = u.uri.resource_key();
                if produced.contains(&key) {
                    continue;
                }
                if let Some(p) = u.uri.local_path() {
                    // a directory source: its listing, not its own mtime
                    f.add(&key, super::state::input_stamp(p).as_bytes());
                    if self.inputs.trust.require_all {
                        let sig = u.uri.with_suffix(".sig");
                        let st = sig.local_path().and_then(super::state::stamp);
                        f.add("sig", format!("{st:?}").as_bytes());
                    }
                } else {
                    let input = self.inputs.get(u, &at, &mut self.log)?;
                    f.add(&key, format!("{:?}", input.sha256).as_bytes());
                }
            }
            for d in dirs {
                let listing = super::state::listing(hostdir::Walker::new(d), d)
                    .map_err(|e| io_fail(&at, d.display(), e))?;
                f.add("dir", listing.as_bytes());
            }
            for w in writes {
                produced.insert(w.uri.resource_key());
            }
        }
        let rest = f.finish();
        let mut of_plan = super::state::Fingerprint::default();
        of_plan.add("expressions", expressions_digest(plan).as_bytes());
        of_plan.add("rest", rest.as_bytes());
        self.plan_inputs = Some(of_plan.finish());
        let mut whole = super::state::Fingerprint::default();
        whole.add("container", text.as_bytes());
        whole.add("rest", rest.as_bytes());
        Ok(whole.finish())
    }

    /// Dates what this run creates — replaced and copied files, new
    /// directories, the new side of diffs, image timestamps — by
    /// something that changes only when what it is made of does:
    /// `SOURCE_DATE_EPOCH` when set, else the date of the container's
    /// expressions. That date is the one `previous` recorded for the same
    /// expressions, else the container file's mtime (the clock for
    /// standard input): an edit of Xen statements alone keeps the old
    /// date, so every image and archive is kept and only the stripped
    /// config is written again. Inputs do not date the run: a newer
    /// archive would otherwise re-date, and rebuild, every image of the
    /// run, not only those made from it.
    pub fn date(&mut self, plan: &Plan, previous: Option<&super::state::Record>) {
        let digest = expressions_digest(plan);
        let recorded = previous
            .and_then(|r| r.dated.as_ref())
            .filter(|(d, _)| *d == digest)
            .map(|(_, secs)| *secs);
        let expressions = recorded.unwrap_or_else(|| {
            let mtime = (self.opts.container != "-")
                .then(|| fs::metadata(&self.opts.container).ok())
                .flatten()
                .map(|m| std::os::unix::fs::MetadataExt::mtime(&m));
            mtime.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            })
        });
        self.now = self.epoch.unwrap_or(expressions);
        self.dated = Some((digest, expressions));
    }

    /// True when every upload of the plan is on its server as the last
    /// run left it (`recorded`: key, digest, validators); one missing,
    /// changed or unreachable means rebuild and publish again. Offline,
    /// uploads are not looked at.
    pub fn remotes_intact(&mut self, plan: &Plan, recorded: &[(String, String, String)]) -> bool {
        if self.opts.offline {
            return true;
        }
        let mut uploads: Vec<crate::transport::Uri> = Vec::new();
        for step in &plan.steps {
            let writes: Vec<&UriRef> = match &step.action {
                Action::Create { dest, .. } => vec![dest],
                Action::Replace { edit, .. } | Action::Copy { edit, .. } => {
                    edit.patch.iter().chain(edit.fork.iter()).collect()
                }
                Action::Patch { fork, .. } => fork.iter().collect(),
                _ => Vec::new(),
            };
            for w in writes.into_iter().filter(|w| w.uri.local_path().is_none()) {
                if self.sign_key.is_some() {
                    uploads.push(w.uri.with_suffix(".sig"));
                }
                uploads.push(w.uri.clone());
            }
        }
        let scratch = self.stage_path("revalidate");
        uploads.iter().all(|u| {
            let key = u.resource_key();
            let Some((_, sha, v)) = recorded.iter().find(|(k, _, _)| *k == key) else {
                return false;
            };
            let intact = super::outputs::remote_intact(u, sha, v, &scratch);
            if !intact {
                let _ = self
                    .log
                    .line(&format!("{u} is not as the last run left it"));
            }
            intact
        })
    }

    pub fn run_plan(&mut self, plan: &Plan) -> Result<()> {
        self.lock_volumes(plan)?;
        for step in &plan.steps {
            let at = format!("{}:{}", self.name, step.span);
            if self.opts.verbosity != super::Verbosity::Quiet {
                eprintln!("{at}: {}", step.action);
            }
            self.step(step, &at)?;
            self.log.line(&format!("{at} ok {}", step.action))?;
        }
        self.build_images()?;
        Ok(())
    }

    /// Takes every existing image and device the plan writes, in path
    /// order (two runs waiting for each other's volumes would otherwise
    /// deadlock), before anything reads them: a volume mounted, attached
    /// to a loop device or held by device-mapper is refused, and a volume
    /// another run is writing is waited for.
    fn lock_volumes(&mut self, plan: &Plan) -> Result<()> {
        let mut new: BTreeSet<&Path> = BTreeSet::new();
        let mut wanted: BTreeMap<PathBuf, String> = BTreeMap::new();
        for step in &plan.steps {
            let at = format!("{}:{}", self.name, step.span);
            let target = match &step.action {
                Action::Image { path, .. } => {
                    let device = fs::metadata(path).is_ok_and(|m| {
                        std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type())
                    });
                    if device {
                        // formatted in place at commit: held like any volume
                        wanted.entry(path.clone()).or_insert(at);
                    } else if path.exists() {
                        // replaced at commit: refuse now what is in use
                        if let Some(why) = super::holders::holder(path)
                            .map_err(|e| io_fail(&at, path.display(), e))?
                        {
                            return Err(Failure::run(format!(
                                "{at}: {why}; refusing to replace it (--force does not change this)"
                            )));
                        }
                    }
                    new.insert(path);
                    continue;
                }
                Action::Populate {
                    kind: TargetKind::Image | TargetKind::Device,
                    target,
                    ..
                } => target,
                Action::Patch {
                    target: PatchTarget::Image(p),
                    ..
                } => p,
                _ => continue,
            };
            if !new.contains(target.as_path()) && target.exists() {
                wanted.entry(target.clone()).or_insert(at);
            }
        }
        for (path, at) in wanted {
            let lock = super::holders::VolumeLock::take(&path, || {
                eprintln!(
                    "{at}: waiting for another vm-container run that is writing {}",
                    path.display()
                )
            })
            .map_err(|e| Failure::run(format!("{at}: {e}")))?;
            self.commit.locks.insert(path, lock);
        }
        Ok(())
    }

    /// `[image]` naming an existing block device: formatting destroys
    /// what it holds, so a device vm-container did not format is written
    /// only with `--force`, and the refusal says what would be lost. The
    /// image is staged under the run's staging directory.
    fn device_image(&mut self, at: &str, path: &Path, size: u64) -> Result<PathBuf> {
        if !self.opts.force && !self.commit.created.contains(path) {
            return Err(Failure::run(format!(
                "{at}: {} is a block device vm-container did not format and {}; use --force to format it",
                path.display(),
                super::holders::contents(path)
            )));
        }
        let lock = self
            .commit
            .locks
            .get(path)
            .ok_or_else(|| Failure::run(format!("{at}: {}: not locked", path.display())))?;
        let have = lock
            .file()
            .and_then(|f| super::holders::size_of(&f))
            .map_err(|e| io_fail(at, path.display(), e))?;
        if have < size {
            return Err(Failure::run(format!(
                "{at}: {} holds {have} bytes; the image needs {size}",
                path.display()
            )));
        }
        Ok(self.stage_path("device-image"))
    }

    fn step(&mut self, step: &Step, at: &str) -> Result<()> {
        match &step.action {
            Action::Create { src, dest } => self.create(at, src, dest),
            Action::Image {
                path,
                size,
                label,
                fs,
                block_size,
                inodes,
                uuid,
            } => {
                let uuid = uuid.unwrap_or_else(|| derive_uuid(path, *size, label));
                let format = match fs {
                    FsType::Swap => Format::Swap(swap::Options {
                        size: *size,
                        label: label.clone(),
                        uuid,
                    }),
                    FsType::Ext2 | FsType::Ext3 | FsType::Ext4 => Format::Ext(ext::Options {
                        size: *size,
                        block_size: *block_size,
                        inodes: *inodes,
                        label: label.clone(),
                        uuid,
                        journal: *fs != FsType::Ext2,
                        ext4: *fs == FsType::Ext4,
                        timestamp: self.now,
                    }),
                };
                let device = fs::metadata(path)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()));
                let (staged, dest) = if device {
                    (self.device_image(at, path, *size)?, path.clone())
                } else {
                    // a symlink is written through; a character device or
                    // FIFO cannot hold an image
                    let dest = match super::output::dest(path) {
                        Ok(super::output::Dest::Atomic(p)) => p,
                        Ok(super::output::Dest::Stream(_)) => {
                            return Err(Failure::run(format!(
                                "{at}: {} is a character device or FIFO; an image needs a regular file or a block device",
                                path.display()
                            )))
                        }
                        Err(e) => return Err(io_fail(at, path.display(), e)),
                    };
                    self.commit.check_local(&dest, self.opts.force, at)?;
                    // an interrupted run may have left its staged image here
                    if let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) {
                        super::clean_stale(dir, &super::output::temp_prefix(name));
                    }
                    (super::output::temp_beside(&dest), dest)
                };
                // what the image is made of: kept when the next run finds
                // the same (see `build_image`)
                let mut digest = super::state::Fingerprint::default();
                match &format {
                    Format::Ext(options) => digest.add("image", format!("{options:?}").as_bytes()),
                    Format::Swap(options) => digest.add("swap", format!("{options:?}").as_bytes()),
                }
                self.images.insert(
                    path.clone(),
                    NewImage {
                        format,
                        staged,
                        dest,
                        sources: Vec::new(),
                        built: false,
                        digest,
                        patched: false,
                        device,
                    },
                );
                Ok(())
            }
            Action::Populate {
                kind,
                target,
                source,
                ..
            } => self.populate(at, *kind, target, source),
            Action::Replace {
                path,
                edit,
                content,
            } => self.edit(at, edit, |wt| {
                wt.put_file(path, Content::Bytes(content.clone()), edit.mode, edit.owner)
                    .map_err(|e| e.to_string())
            }),
            Action::Copy { path, edit, source } => self.copy(at, path, edit, source),
            Action::Patch {
                target,
                patch,
                fork,
            } => self.patch(at, target, patch, fork.as_ref()),
        }
    }

    fn create(&mut self, at: &str, src: &Path, dest: &UriRef) -> Result<()> {
        if !src.is_dir() {
            return Err(Failure::run(format!(
                "{at}: {}: not a directory",
                src.display()
            )));
        }
        let staged = self.stage_path(&dest.uri.file_name_hint());
        let mut walker = hostdir::Walker::new(src).clamp_mtime(self.epoch);
        write_archive(&mut walker, &staged, &dest.text).map_err(|e| io_fail(at, dest, e))?;
        self.output(at, dest, staged)
    }

    /// Registers a staged artifact as an output of the run (and as an
    /// input for later expressions).
    fn output(&mut self, at: &str, dest: &UriRef, staged: PathBuf) -> Result<()> {
        if let Some(p) = dest.uri.local_path() {
            self.commit.check_local(p, self.opts.force, at)?;
            // an interrupted run may have left its copy beside it
            if let (Some(dir), Some(name)) = (p.parent(), p.file_name()) {
                super::clean_stale(dir, &super::output::temp_prefix(name));
            }
        }
        let bytes = fs::metadata(&staged).map(|m| m.len()).unwrap_or(0);
        let (sha, _) = crate::digest::Digest::of_file(&staged)
            .map_err(|e| io_fail(at, staged.display(), e))?;
        self.log.line(&format!(
            "{at} stage {} bytes={bytes} sha256={sha}",
            dest.uri
        ))?;
        self.inputs.produce(dest, staged.clone());
        self.trees.remove(&dest.uri.resource_key());
        if let Some(key) = &self.sign_key {
            // `URI.sig` beside every published artifact, committed with it
            let name = dest.uri.file_name_hint();
            let sig =
                crate::sign::sign_file(key, &staged, &crate::sign::default_trusted_comment(&name))
                    .map_err(|e| io_fail(at, dest, e))?;
            let mut sig_path = staged.clone().into_os_string();
            sig_path.push(".sig");
            let sig_path = PathBuf::from(sig_path);
            sig.write_file(&sig_path)
                .map_err(|e| io_fail(at, dest, e))?;
            let sig_uri = dest.uri.with_suffix(".sig");
            if let Some(p) = sig_uri.local_path() {
                self.commit.check_local(p, self.opts.force, at)?;
            }
            self.log
                .line(&format!("{at} signed {} key={}", dest.uri, key.key_id()))?;
            self.commit.stage(sig_uri, sig_path);
        }
        self.commit.stage(dest.uri.clone(), staged);
        Ok(())
    }

    /// The working tree of an archive URI, fetched and opened once.
    fn tree(&mut self, at: &str, uri: &UriRef) -> Result<&mut WorkTree> {
        use std::collections::hash_map::Entry as Slot;
        match self.trees.entry(uri.uri.resource_key()) {
            Slot::Occupied(slot) => Ok(slot.into_mut()),
            Slot::Vacant(slot) => {
                let input = self.inputs.get(uri, at, &mut self.log)?;
                let wt = WorkTree::new(uri.uri.to_string(), Some(input.path), self.now);
                Ok(slot.insert(wt))
            }
        }
    }

    /// A source for a populate: the archive's working tree as it stands now.
    fn tree_source(&mut self, at: &str, uri: &UriRef) -> Result<Box<dyn Source>> {
        if let Some(wt) = self.trees.get(&uri.uri.resource_key()) {
            return Ok(Box::new(wt.source()));
        }
        let input = self.inputs.get(uri, at, &mut self.log)?;
        // opened now, so that a missing or unreadable archive fails here
        archive_source(&input.path, &uri.uri.to_string()).map_err(|e| io_fail(at, uri, e))?;
        // a source that can be read twice: the commit tries a volume
        // update before making it
        Ok(Box::new(
            WorkTree::new(uri.uri.to_string(), Some(input.path), self.now).source(),
        ))
    }

    fn populate(
        &mut self,
        at: &str,
        kind: TargetKind,
        target: &Path,
        source: &UriRef,
    ) -> Result<()> {
        let src = self.tree_source(at, source)?;
        let label = source.uri.to_string();
        let state = if self.images.contains_key(target) {
            self.tree_digest(at, source)?
        } else {
            String::new()
        };
        if let Some(img) = self.images.get_mut(target) {
            if !img.built {
                img.digest.add("populate", state.as_bytes());
                img.sources.push((label, src));
                return Ok(());
            }
            // built already (a patch needed it): update the staged image
            let staged = img.staged.clone();
            return populate_volume(&staged, src, &[], self.now)
                .map_err(|e| io_fail(at, target.display(), e));
        }
        match kind {
            TargetKind::Image | TargetKind::Device => {
                // refuse early what the commit would refuse
                check_volume(target).map_err(|e| io_fail(at, target.display(), e))?;
                self.commit.job(Job::Volume {
                    at: at.to_string(),
                    target: target.to_path_buf(),
                    source: src,
                    deletes: Vec::new(),
                    timestamp: self.now,
                });
            }
            TargetKind::Dir => self.commit.job(Job::Dir {
                at: at.to_string(),
                target: target.to_path_buf(),
                source: src,
            }),
        }
        Ok(())
    }

    /// A digest of an archive's working tree as it stands now: the
    /// archive's content (or, for a local file, its size and mtime) and
    /// every change made to it so far.
    fn tree_digest(&mut self, at: &str, uri: &UriRef) -> Result<String> {
        let mut f = super::state::Fingerprint::default();
        if let Some(p) = self.inputs.produced(uri).cloned() {
            let (d, _) = crate::digest::Digest::of_file(&p).map_err(|e| io_fail(at, uri, e))?;
            f.add("produced", d.to_hex().as_bytes());
        } else if let Some(p) = uri.uri.local_path() {
            f.add("local", super::state::input_stamp(p).as_bytes());
        } else {
            let input = self.inputs.get(uri, at, &mut self.log)?;
            f.add("remote", format!("{:?}", input.sha256).as_bytes());
        }
        if let Some(wt) = self.trees.get(&uri.uri.resource_key()) {
            for (path, change) in &wt.overlay {
                match change {
                    Change::Put { entry, content } => {
                        f.add("put", format!("{entry:?}").as_bytes());
                        if let Some(c) = content {
                            let bytes = c
                                .read_all()
                                .map_err(|e| io_fail(at, path.display_abs(), e))?;
                            f.add("content", &bytes);
                        }
                    }
                    Change::Delete => f.add("delete", path.as_bytes()),
                }
            }
        }
        Ok(f.finish())
    }

    /// Builds every new image still pending.
    fn build_images(&mut self) -> Result<()> {
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

    fn build_image(&mut self, path: &Path) -> Result<()> {
        let Some(img) = self.images.get_mut(path) else {
            return Ok(());
        };
        if img.built {
            return Ok(());
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
                Format::Swap(options) => {
                    swap::write(&file, options).map_err(|e| io_fail(&at, "swap area", e))?;
                    return file.sync_all().map_err(|e| io_fail(&at, "swap area", e));
                }
            };
            let mut builder =
                ext::Builder::new(options, &file).map_err(|e| io_fail(&at, "image", e))?;
            for (label, src) in img.sources.iter_mut() {
                let mut metered = crate::progress::MeteredSink {
                    inner: &mut builder,
                    meter: crate::progress::Meter::new(format!("writing {at}")),
                };
                src.emit(&mut metered)
                    .map_err(|e| io_fail(&at, format!("populating from {label}"), e))?;
            }
            builder.finish().map_err(|e| io_fail(&at, "image", e))?;
            file.sync_all().map_err(|e| io_fail(&at, "image", e))
        })();
        if let Err(e) = built {
            // the staged image is beside the destination: never leave it
            let _ = fs::remove_file(&staged);
            return Err(e);
        }
        img.built = true;
        img.sources.clear();
        let (staged, dest) = (img.staged.clone(), img.dest.clone());
        if img.device {
            self.commit.stage_device_image(staged, dest);
        } else {
            self.commit.stage_image(staged, dest);
        }
        Ok(())
    }

    /// `replace` and `copy`: change the working tree, then write the diff
    /// and the fork if asked.
    fn edit(
        &mut self,
        at: &str,
        edit: &Edit,
        change: impl FnOnce(&mut WorkTree) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let wt = self.tree(at, &edit.archive)?;
        let before: BTreeSet<TreePath> = wt.overlay.keys().cloned().collect();
        change(wt).map_err(|e| Failure::run(format!("{at}: {e}")))?;
        let _ = before;
        if let Some(p) = &edit.patch {
            let text = self.diff_of(at, &edit.archive)?;
            let staged = self.stage_path(&p.uri.file_name_hint());
            fs::write(&staged, text).map_err(|e| io_fail(at, staged.display(), e))?;
            self.output(at, p, staged)?;
        }
        if let Some(f) = &edit.fork {
            self.fork(at, &edit.archive, f)?;
        }
        Ok(())
    }

    /// The unified diff between an archive as fetched and its working tree.
    fn diff_of(&mut self, at: &str, archive: &UriRef) -> Result<Vec<u8>> {
        let now = self.now;
        let wt = self.tree(at, archive)?;
        let changed: BTreeSet<TreePath> = wt
            .overlay
            .iter()
            .filter(|(_, c)| {
                matches!(
                    c,
                    Change::Delete
                        | Change::Put {
                            content: Some(_),
                            ..
                        }
                )
            })
            .map(|(p, _)| p.clone())
            .collect();
        wt.expect_lookups(changed.iter().cloned());
        let old = wt
            .read_base(&changed)
            .map_err(|e| io_fail(at, archive, e))?;
        let new = wt
            .read_files(&changed)
            .map_err(|e| io_fail(at, archive, e))?;
        let version = |content: &Vec<u8>, mtime: i64| diff::FileVersion {
            content: content.clone(),
            mtime,
            mtime_nsec: 0,
        };
        // the old side carries the archive's own mtimes: an epoch time
        // there would read as "file absent" to `patch` (the `diff -N` rule)
        let mut old_map = diff::FileMap::new();
        for (p, c) in &old {
            let mtime = wt
                .base_entry(p)
                .map_err(|e| io_fail(at, archive, e))?
                .map(|e| e.meta.mtime)
                .unwrap_or(now);
            old_map.insert(p.clone(), version(c, mtime));
        }
        let new_map: diff::FileMap = new
            .iter()
            .map(|(p, c)| (p.clone(), version(c, now)))
            .collect();
        Ok(diff::unified(
            &old_map,
            &new_map,
            &diff::UnifiedOptions::default(),
        ))
    }

    fn fork(&mut self, at: &str, archive: &UriRef, dest: &UriRef) -> Result<()> {
        let staged = self.stage_path(&dest.uri.file_name_hint());
        let mut src = self.tree_source(at, archive)?;
        write_archive(src.as_mut(), &staged, &dest.text).map_err(|e| io_fail(at, dest, e))?;
        // the fork's own working tree starts from what was just written
        self.output(at, dest, staged)
    }

    fn copy(&mut self, at: &str, path: &TreePath, edit: &Edit, source: &UriRef) -> Result<()> {
        if let Some(dir) = source
            .uri
            .local_path()
            .filter(|p| p.is_dir())
            .map(Path::to_path_buf)
        {
            // a host directory copied recursively under PATH: the
            // per-host override trees of SystemImager
            let mut entries: Vec<(Entry, Option<Content>)> = Vec::new();
            let mut walker = hostdir::Walker::new(&dir).clamp_mtime(self.epoch);
            let base = path.clone();
            let root = dir.clone();
            let mut sink = crate::tree::FnSink(|e: &Entry, _: &mut dyn io::Read| {
                // names are bytes: join them as bytes, never through text
                let mut e = e.clone();
                let rel = e.path.clone();
                e.path = base.concat(&rel);
                if let Kind::HardLink { target } = &e.kind {
                    e.kind = Kind::HardLink {
                        target: base.concat(target),
                    };
                }
                let content = matches!(e.kind, Kind::File { .. })
                    .then(|| Content::File(root.join(std::ffi::OsStr::from_bytes(rel.as_bytes()))));
                entries.push((e, content));
                Ok(())
            });
            walker
                .emit(&mut sink)
                .map_err(|e| io_fail(at, dir.display(), e))?;
            let (mode, owner) = (edit.mode, edit.owner);
            return self.edit(at, edit, move |wt| {
                wt.expect_lookups(entries.iter().map(|(e, _)| e.path.clone()));
                for (mut e, c) in entries {
                    if let (Kind::File { .. }, Some(m)) = (&e.kind, mode) {
                        e.meta.perm = m;
                    }
                    if let (false, Some((u, g))) = (matches!(e.kind, Kind::HardLink { .. }), owner)
                    {
                        e.meta.uid = u;
                        e.meta.gid = g;
                    }
                    wt.put_entry(e, c).map_err(|e| e.to_string())?;
                }
                Ok(())
            });
        }
        let input = self.inputs.get(source, at, &mut self.log)?;
        let content = Content::File(input.path);
        self.edit(at, edit, |wt| {
            wt.put_file(path, content, edit.mode, edit.owner)
                .map_err(|e| e.to_string())
        })
    }

    fn patch(
        &mut self,
        at: &str,
        target: &PatchTarget,
        patch_uri: &UriRef,
        fork: Option<&UriRef>,
    ) -> Result<()> {
        let input = self.inputs.get(patch_uri, at, &mut self.log)?;
        let text = fs::read(&input.path).map_err(|e| io_fail(at, patch_uri, e))?;
        let patch = diff::parse(&text, &patch_uri.uri.to_string())
            .map_err(|e| Failure::run(format!("{at}: {e}")))?;
        if let Some(u) = patch.unsupported().next() {
            return Err(Failure::run(format!(
                "{at}: {patch_uri}:{}: {} cannot be applied (a binary, rename or copy section)",
                u.line,
                u.display_name()
            )));
        }
        match target {
            PatchTarget::Archive(archive) => {
                let wt = self.tree(at, archive)?;
                let wanted = patch_paths(&patch);
                wt.expect_lookups(wanted.iter().cloned());
                let files = wt
                    .read_files(&wanted)
                    .map_err(|e| io_fail(at, archive, e))?;
                let mut set = MapFileSet(files);
                let changes = patch
                    .apply(&mut set)
                    .map_err(|e| Failure::run(format!("{at}: {e}")))?;
                for c in changes {
                    match c {
                        diff::Change::Write {
                            path,
                            content,
                            mode,
                        }
                        | diff::Change::Create {
                            path,
                            content,
                            mode,
                        } => wt
                            .put_file(
                                &path,
                                Content::Bytes(content),
                                mode.map(|m| m & 0o7777),
                                None,
                            )
                            .map_err(|e| Failure::run(format!("{at}: {e}")))?,
                        diff::Change::Delete { path } => wt.delete(&path),
                    }
                }
                self.log
                    .line(&format!("{at} patched {archive} with {patch_uri}"))?;
                if let Some(f) = fork {
                    self.fork(at, archive, f)?;
                }
                Ok(())
            }
            PatchTarget::Image(path) => {
                if let Some(img) = self.images.get_mut(path) {
                    img.patched = true;
                    self.build_image(path)?;
                }
                let (file, staged) = match self.images.get(path) {
                    Some(img) => (img.staged.clone(), true),
                    None => (path.clone(), false),
                };
                let vol = ext::Volume::open(
                    File::open(&file).map_err(|e| io_fail(at, path.display(), e))?,
                )
                .map_err(|e| io_fail(at, path.display(), e))?;
                let wanted = patch_paths(&patch);
                let mut files = BTreeMap::new();
                for p in &wanted {
                    if let Ok(mut r) = vol.read_file(p) {
                        if r.size() > super::worktree::MAX_WHOLE_FILE {
                            return Err(Failure::run(format!(
                                "{at}: {}: {} is {} bytes; patch targets over 64 MiB are refused",
                                path.display(),
                                p.display_abs(),
                                r.size()
                            )));
                        }
                        let mut v = Vec::new();
                        io::Read::read_to_end(&mut r, &mut v)
                            .map_err(|e| io_fail(at, p.display_abs(), e))?;
                        files.insert(p.clone(), v);
                    }
                }
                let mut set = MapFileSet(files);
                let changes = patch
                    .apply(&mut set)
                    .map_err(|e| Failure::run(format!("{at}: {e}")))?;
                // metadata of replaced files is kept; new ones are 0644 0:0
                let mut tree = WorkTree::new(path.display().to_string(), None, self.now);
                let mut deletes = Vec::new();
                for c in changes {
                    match c {
                        diff::Change::Write {
                            path: p,
                            content,
                            mode,
                        }
                        | diff::Change::Create {
                            path: p,
                            content,
                            mode,
                        } => {
                            let old = vol.stat(&p).ok();
                            let mut perm = mode.map(|m| m & 0o7777);
                            let mut owner = None;
                            if let Some(info) = old {
                                perm = perm.or(Some(info.meta.perm));
                                owner = Some((info.meta.uid, info.meta.gid));
                            }
                            tree.put_file(&p, Content::Bytes(content), perm, owner)
                                .map_err(|e| Failure::run(format!("{at}: {e}")))?;
                        }
                        // removed in the same transaction, after the writes
                        diff::Change::Delete { path: p } => {
                            tree.delete(&p);
                            deletes.push(p);
                        }
                    }
                }
                // directories the deletions leave empty go too (GNU patch
                // removes them); the fork must not list them either
                for d in emptied_dirs(&vol, &tree.overlay, &deletes) {
                    tree.delete(&d);
                }
                // only the changed files, with parents that exist already,
                // and the deletions (which the image's source skips)
                tree.overlay.retain(|_, c| {
                    matches!(
                        c,
                        Change::Put {
                            content: Some(_),
                            ..
                        } | Change::Delete
                    )
                });
                let src: Box<dyn Source> = Box::new(tree.source());
                drop(vol);
                if staged {
                    populate_volume(&file, src, &deletes, self.now)
                        .map_err(|e| io_fail(at, path.display(), e))?;
                } else {
                    self.commit.job(Job::Volume {
                        at: at.to_string(),
                        target: path.clone(),
                        source: src,
                        deletes,
                        timestamp: self.now,
                    });
                }
                if let Some(f) = fork {
                    // the image after the patch, stored as an archive
                    let staged_fork = self.stage_path(&f.uri.file_name_hint());
                    // staged images are patched already; an existing one
                    // is patched at commit, so lay the changes over it
                    let mut src = if staged {
                        WorkTree::new(String::new(), None, self.now).over_volume(file.clone())
                    } else {
                        tree.over_volume(path.clone())
                    };
                    write_archive(&mut src, &staged_fork, &f.text)
                        .map_err(|e| io_fail(at, f, e))?;
                    self.output(at, f, staged_fork)?;
                }
                Ok(())
            }
        }
    }
}

/// The directories of `vol` that removing `deletes` leaves empty, deepest
/// first: each holds nothing but deleted names and emptied directories,
/// and `overlay` puts nothing in it. The root is never one.
fn emptied_dirs(vol: &ext::Volume, overlay: &Overlay, deletes: &[TreePath]) -> Vec<TreePath> {
    let mut gone: HashSet<TreePath> = deletes.iter().cloned().collect();
    let mut out: Vec<TreePath> = Vec::new();
    // by depth, deepest first, so that a parent is judged after its
    // children
    let mut candidates: BTreeMap<usize, BTreeSet<TreePath>> = BTreeMap::new();
    for d in deletes.iter().filter_map(TreePath::parent) {
        candidates
            .entry(d.components().count())
            .or_default()
            .insert(d);
    }
    while let Some((depth, dirs)) = candidates.pop_last() {
        for d in dirs {
            if d.is_root() {
                continue;
            }
            let put_inside = overlay
                .iter()
                .any(|(p, c)| matches!(c, Change::Put { .. }) && p.starts_with(&d) && *p != d);
            let Ok(entries) = vol.read_dir(&d) else {
                continue;
            };
            let empty = entries.iter().all(|e| gone.contains(&d.join(&e.name)));
            if !put_inside && empty {
                if let Some(up) = d.parent() {
                    candidates.entry(depth - 1).or_default().insert(up);
                }
                gone.insert(d.clone());
                out.push(d);
            }
        }
    }
    out
}

/// The files a patch reads (after `-p1`).
fn patch_paths(patch: &diff::Patch) -> BTreeSet<TreePath> {
    patch.paths()
}

struct MapFileSet(BTreeMap<TreePath, Vec<u8>>);

impl diff::FileSet for MapFileSet {
    fn read(&self, path: &TreePath) -> Option<Vec<u8>> {
        self.0.get(path).cloned()
    }
}

/// A digest of what the container's expressions ask for, in order, with
/// templates and variables substituted: the plan without its places in
/// the text and without the stripped config. An edit of Xen statements
/// (or of blank lines and comments between expressions) leaves it as it
/// was.
pub fn expressions_digest(plan: &Plan) -> String {
    let mut f = super::state::Fingerprint::default();
    let uri = |f: &mut super::state::Fingerprint, label: &str, u: &UriRef| {
        f.add(label, u.text.as_bytes());
        f.add(label, u.uri.to_string().as_bytes());
    };
    let opt = |f: &mut super::state::Fingerprint, label: &str, u: &Option<UriRef>| match u {
        Some(u) => uri(f, label, u),
        None => f.add(label, b""),
    };
    let edit = |f: &mut super::state::Fingerprint, e: &Edit| {
        let Edit {
            archive,
            patch,
            fork,
            mode,
            owner,
        } = e;
        uri(f, "archive", archive);
        opt(f, "patch", patch);
        opt(f, "fork", fork);
        f.add("mode", format!("{mode:?} {owner:?}").as_bytes());
    };
    for step in &plan.steps {
        match &step.action {
            Action::Create { src, dest } => {
                f.add("create", src.as_os_str().as_encoded_bytes());
                uri(&mut f, "dest", dest);
            }
            Action::Image {
                path,
                size,
                label,
                fs,
                block_size,
                inodes,
                uuid,
            } => {
                f.add("image", path.as_os_str().as_encoded_bytes());
                f.add("label", label);
                f.add(
                    "options",
                    format!("{size} {fs:?} {block_size:?} {inodes:?} {uuid:?}").as_bytes(),
                );
            }
            Action::Populate {
                kind,
                target,
                mount,
                source,
            } => {
                f.add("populate", format!("{kind:?} {mount}").as_bytes());
                f.add("target", target.as_os_str().as_encoded_bytes());
                uri(&mut f, "source", source);
            }
            Action::Replace {
                path,
                edit: e,
                content,
            } => {
                f.add("replace", path.as_bytes());
                edit(&mut f, e);
                f.add("content", content);
            }
            Action::Copy {
                path,
                edit: e,
                source,
            } => {
                f.add("copy", path.as_bytes());
                edit(&mut f, e);
                uri(&mut f, "source", source);
            }
            Action::Patch {
                target,
                patch,
                fork,
            } => {
                match target {
                    PatchTarget::Archive(a) => uri(&mut f, "patch archive", a),
                    PatchTarget::Image(p) => f.add("patch image", p.as_os_str().as_encoded_bytes()),
                }
                uri(&mut f, "patch", patch);
                opt(&mut f, "fork", fork);
            }
        }
    }
    f.finish()
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

/// Refuses a plan that would write inside a directory it reads as a
/// tree (an image, a populated directory, a fork, a patch, a `[create]`
/// archive or the working directory `workdir` landing in a source
/// chroot, on its file system), or populate a
/// directory holding one: a source directory is never written, and
/// what a run writes must not be read back as its own input.
pub fn source_dirs_untouched(plan: &Plan, name: &str, workdir: &Path) -> Result<()> {
    let mut sources: Vec<(PathBuf, &UriRef)> = Vec::new();
    // --dir takes the cache, the run record, and new images and forks
    // while the sources are read
    let mut writes: Vec<(PathBuf, bool, String)> =
        vec![(resolved(workdir), false, format!("{name}: --dir"))];
    for step in &plan.steps {
        let at = format!("{name}:{}", step.span);
        let mut out: Vec<&UriRef> = Vec::new();
        let read = match &step.action {
            Action::Create { dest, .. } => {
                out.push(dest);
                None
            }
            Action::Image { path, .. } => {
                writes.push((resolved(path), false, at.clone()));
                None
            }
            Action::Populate {
                kind,
                target,
                source,
                ..
            } => {
                writes.push((resolved(target), *kind == TargetKind::Dir, at.clone()));
                Some(source)
            }
            Action::Replace { edit, .. } | Action::Copy { edit, .. } => {
                out.extend(edit.patch.iter().chain(edit.fork.iter()));
                Some(&edit.archive)
            }
            Action::Patch { target, fork, .. } => {
                out.extend(fork.iter());
                match target {
                    PatchTarget::Archive(a) => Some(a),
                    PatchTarget::Image(p) => {
                        writes.push((resolved(p), false, at.clone()));
                        None
                    }
                }
            }
        };
        for u in out {
            if let Some(p) = u.uri.local_path() {
                writes.push((resolved(p), false, at.clone()));
            }
        }
        if let Some(u) = read {
            if let Some(p) = u.uri.local_path().filter(|p| p.is_dir()) {
                sources.push((resolved(p), u));
            }
        }
    }
    for (dir, uri) in &sources {
        for (w, is_dir, at) in &writes {
            // the walk stays on the source's file system: what lands on
            // another one mounted below it is not read
            if w.starts_with(dir) && same_file_system(w, dir) {
                return Err(Failure::run(format!(
                    "{at}: {} lies inside {uri}, a directory this container reads as a tree; a source directory is never written",
                    w.display()
                )));
            }
            if *is_dir && dir.starts_with(w) {
                return Err(Failure::run(format!(
                    "{at}: populating {} would write over {uri}, a directory this container reads as a tree",
                    w.display()
                )));
            }
        }
    }
    Ok(())
}

/// True when `path` (or, if it does not exist yet, its nearest existing
/// ancestor) is on the file system of `dir`.
fn same_file_system(path: &Path, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(d) = fs::metadata(dir) else {
        return true;
    };
    path.ancestors()
        .find_map(|p| fs::symlink_metadata(p).ok())
        .is_none_or(|m| m.dev() == d.dev())
}

/// `path` with symlinks resolved as far as it exists, the rest appended:
/// where a write would land, to compare with a source directory.
fn resolved(path: &Path) -> PathBuf {
    let mut tail: Vec<&std::ffi::OsStr> = Vec::new();
    let mut cur = path;
    loop {
        if let Ok(mut p) = fs::canonicalize(cur) {
            p.extend(tail.iter().rev());
            return p;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name);
                cur = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}
