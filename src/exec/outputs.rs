//! The commit: what a run publishes, moved into place only after every
//! expression succeeded, and the record of what vm-container created.

use super::{Failure, Result};
use crate::transport::{self, FetchOptions, Uri};
use crate::tree::{Source, TreePath};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// An update of something that exists already, run at commit.
pub enum Job {
    /// Populate an ext2/ext3 image file or block device in place.
    Volume {
        at: String,
        target: PathBuf,
        source: Box<dyn Source>,
        /// Paths removed after `source` is added.
        deletes: Vec<TreePath>,
        timestamp: i64,
    },
    /// Expand a tree into a host directory.
    Dir {
        at: String,
        target: PathBuf,
        source: Box<dyn Source>,
    },
}

/// What is streamed to a device or FIFO output.
enum Payload {
    Bytes(Vec<u8>),
    /// A staged file (an archive or patch: read whole, they are outputs a
    /// user pipes somewhere).
    File(PathBuf),
}

impl Job {
    fn target(&self) -> &Path {
        match self {
            Job::Volume { target, .. } | Job::Dir { target, .. } => target,
        }
    }
}

#[derive(Default)]
pub struct Commit {
    /// Staged artifacts and where they go.
    staged: Vec<(Uri, PathBuf)>,
    /// New images staged beside their destination.
    images: Vec<(PathBuf, PathBuf)>,
    jobs: Vec<Job>,
    /// Local outputs vm-container created in earlier runs (from the state
    /// file) and in this one.
    pub created: BTreeSet<PathBuf>,
    state_file: Option<PathBuf>,
    /// Local paths this commit wrote (for the run record).
    pub committed: Vec<PathBuf>,
    /// The commit failed after changing some output.
    pub partial: bool,
    /// Outputs that are devices or FIFOs, written to after the renames.
    streams: Vec<(Payload, PathBuf)>,
    /// Each upload as the server holds it right after the commit: resource
    /// key, content digest, encoded validators (for the run record).
    pub remotes: Vec<(String, String, String)>,
    /// Size and mtime of each output as the last successful run left it.
    pub previous: std::collections::BTreeMap<PathBuf, (u64, i128)>,
    /// Host directories expanded whole beside their absent targets:
    /// (target, staging directory).
    dirs: Vec<(PathBuf, PathBuf)>,
    /// New images built in staging for existing block devices.
    device_images: Vec<(PathBuf, PathBuf)>,
    /// Existing images and devices this run writes, held until it ends.
    pub locks: std::collections::BTreeMap<PathBuf, super::holders::VolumeLock>,
}

impl Commit {
    /// Loads the record of created outputs from `state_file`.
    pub fn load(state_file: PathBuf) -> Commit {
        let created = fs::read_to_string(&state_file)
            .map(|s| {
                s.lines()
                    .filter(|l| !l.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        Commit {
            created,
            state_file: Some(state_file),
            ..Commit::default()
        }
    }

    /// Refuses to plan over a local file vm-container did not create,
    /// unless `--force`.
    /// A device or FIFO is streamed to, never replaced: nothing to refuse.
    pub fn check_local(&self, path: &Path, force: bool, at: &str) -> Result<()> {
        let path = match super::output::dest(path) {
            Ok(super::output::Dest::Stream(_)) => return Ok(()),
            Ok(super::output::Dest::Atomic(p)) => p,
            Err(e) => return Err(Failure::run(format!("{at}: {}: {e}", path.display()))),
        };
        let path = path.as_path();
        if force || !path.exists() || self.created.contains(path) {
            return Ok(());
        }
        Err(Failure::run(format!(
            "{at}: {} exists and was not created by vm-container; use --force to replace it",
            path.display()
        )))
    }

    /// True when `path` is as the last successful run left it.
    pub fn intact(&self, path: &Path) -> bool {
        self.previous
            .get(path)
            .is_some_and(|st| super::state::stamp(path) == Some(*st))
    }

    /// An output kept as it is (nothing it depends on changed).
    pub fn keep(&mut self, path: PathBuf) {
        self.committed.push(path);
    }

    pub fn stage(&mut self, dest: Uri, staged: PathBuf) {
        // a later stage of the same destination replaces the earlier one
        self.staged
            .retain(|(u, _)| u.resource_key() != dest.resource_key());
        self.staged.push((dest, staged));
    }

    /// A new image to be written onto an existing block device.
    pub fn stage_device_image(&mut self, staged: PathBuf, dest: PathBuf) {
        self.device_images.push((staged, dest));
    }

    pub fn stage_image(&mut self, staged: PathBuf, dest: PathBuf) {
        self.images.push((staged, dest));
    }

    pub fn job(&mut self, job: Job) {
        self.jobs.push(job);
    }

    /// Removes staged images beside their destinations (a failed run).
    pub fn abandon(&mut self) {
        for (staged, _) in self.images.drain(..) {
            let _ = fs::remove_file(staged);
        }
        // std's remove_dir_all does not follow symlinks the archive made
        for (_, staged) in self.dirs.drain(..) {
            let _ = fs::remove_dir_all(staged);
        }
    }

    /// Where a `populate dir` job writes. A target that does not exist yet
    /// is expanded beside it and renamed into place with the other outputs,
    /// so a failed run leaves no part of it; a later job on the same
    /// target, or on a path inside it, joins that staging directory. A
    /// directory that exists (a mount point, say: staging beside it would
    /// land on another file system) is merged into in place, as `cpio -idm`
    /// into a mounted tree would.
    fn dir_destination(&mut self, target: &Path) -> std::io::Result<PathBuf> {
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
        let staged = super::output::temp_beside(target);
        if let (Some(dir), Some(name)) = (target.parent(), target.file_name()) {
            fs::create_dir_all(dir)?;
            // an interrupted run may have left its staging directory here
            super::clean_stale(dir, &super::output::temp_prefix(name));
        }
        let _ = fs::remove_dir_all(&staged);
        fs::create_dir(&staged)?;
        self.dirs.push((target.to_path_buf(), staged.clone()));
        Ok(staged)
    }

    /// Moves everything into place, in the order that leaves the least to
    /// chance: first everything that can be checked without changing an
    /// output (each volume update is tried in full with its writes
    /// dropped; every local output and the stripped config are written
    /// beside their destinations), then uploads (the network can fail at
    /// any time: before any volume changes), then the volume updates, then
    /// the renames. A failure after something was committed says what was
    /// and what was not.
    pub fn run(
        &mut self,
        log: &mut super::log::Log,
        stripped: Option<(&str, &[u8])>,
    ) -> Result<()> {
        self.try_volumes()?;
        let mut beside: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut remote: Vec<(PathBuf, Uri)> = Vec::new();
        let placed = self.bring_beside(log, stripped, &mut beside, &mut remote);
        let forget = |beside: &[(PathBuf, PathBuf)]| {
            for (tmp, _) in beside {
                let _ = fs::remove_file(tmp);
            }
        };
        if let Err(e) = placed {
            forget(&beside);
            return Err(e);
        }
        let mut pending: Vec<String> = remote.iter().map(|(_, u)| u.to_string()).collect();
        pending.extend(
            self.device_images
                .iter()
                .map(|(_, d)| d.display().to_string()),
        );
        pending.extend(self.jobs.iter().map(|j| j.target().display().to_string()));
        pending.extend(beside.iter().map(|(_, d)| d.display().to_string()));
        pending.extend(self.images.iter().map(|(_, d)| d.display().to_string()));
        pending.extend(self.dirs.iter().map(|(d, _)| d.display().to_string()));
        let mut done: Vec<String> = Vec::new();
        let result = (|| -> Result<()> {
            if !remote.is_empty() {
                let pairs: Vec<(&Path, &Uri)> =
                    remote.iter().map(|(p, u)| (p.as_path(), u)).collect();
                let published = transport::publish_many(&pairs, &FetchOptions::default())
                    .map_err(|e| Failure::run(e.to_string()))?;
                for ((staged, u), p) in remote.iter().zip(&published) {
                    log.line(&format!("commit {u}"))?;
                    done.push(u.to_string());
                    if let Some(v) = read_back(staged, u, p) {
                        self.remotes.push((u.resource_key(), p.sha256.to_hex(), v));
                    }
                }
            }
            self.run_jobs(log, &mut done)
        })();
        if let Err(e) = result {
            forget(&beside);
            if done.is_empty() {
                return Err(e);
            }
            self.partial = true;
            let not: Vec<&String> = pending.iter().filter(|p| !done.contains(p)).collect();
            let not = not
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let _ = log.line(&format!(
                "committed: {}; not committed: {not}",
                done.join(", ")
            ));
            return Err(Failure::run(format!(
                "{}; committed: {}; not committed: {}",
                e,
                done.join(", "),
                if not.is_empty() { "nothing else" } else { &not }
            )));
        }
        let mut renames = beside;
        renames.append(&mut self.images);
        renames.extend(self.dirs.drain(..).map(|(target, staged)| (staged, target)));
        self.rename_all(log, &renames)?;
        for (payload, to) in std::mem::take(&mut self.streams) {
            let bytes = match payload {
                Payload::Bytes(b) => b,
                Payload::File(p) => {
                    fs::read(&p).map_err(|e| Failure::run(format!("{}: {e}", p.display())))?
                }
            };
            super::output::stream(&to, &bytes)
                .map_err(|e| Failure::run(format!("{}: {e}", to.display())))?;
            log.line(&format!("wrote {}", to.display()))?;
        }
        Ok(())
    }

    /// Tries every volume update with its writes dropped: a volume that
    /// would run out of blocks, inodes or journal fails the run here,
    /// before any volume is changed. Each update is tried alone against
    /// the volume as it is.
    fn try_volumes(&mut self) -> Result<()> {
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
            let fail = |e: &dyn std::fmt::Display| {
                Failure::run(format!("{at}: {}: {e}", target.display()))
            };
            let f = match self.locks.get(target.as_path()) {
                Some(lock) => lock.file(),
                None => fs::File::open(&*target),
            }
            .map_err(|e| fail(&e))?;
            let vol = crate::ext::Volume::open(f).map_err(|e| fail(&e))?;
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

    /// Brings every local output beside its destination under a temporary
    /// name (a rename away from done) and lists the uploads.
    fn bring_beside(
        &mut self,
        log: &mut super::log::Log,
        stripped: Option<(&str, &[u8])>,
        beside: &mut Vec<(PathBuf, PathBuf)>,
        remote: &mut Vec<(PathBuf, Uri)>,
    ) -> Result<()> {
        let io = |p: &Path, e: std::io::Error| Failure::run(format!("{}: {e}", p.display()));
        for (uri, staged) in self.staged.drain(..) {
            let Some(named) = uri.local_path().map(Path::to_path_buf) else {
                remote.push((staged, uri));
                continue;
            };
            let dest = match super::output::dest(&named).map_err(|e| io(&named, e))? {
                super::output::Dest::Atomic(p) => p,
                super::output::Dest::Stream(p) => {
                    self.streams.push((Payload::File(staged), p));
                    continue;
                }
            };
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            if same_content(&staged, &dest) {
                // rebuilt to the same bytes: keep the file and its mtime, so
                // what depends on it sees no change
                let _ = fs::remove_file(&staged);
                self.committed.push(dest.clone());
                log.line(&format!("kept {} (unchanged)", dest.display()))?;
                continue;
            }
            let tmp = super::output::temp_beside(&dest);
            if fs::rename(&staged, &tmp).is_err() {
                // staging is on another file system: copy, then sync
                fs::copy(&staged, &tmp)
                    .and_then(|_| fs::File::open(&tmp)?.sync_all())
                    .map_err(|e| {
                        let _ = fs::remove_file(&tmp);
                        io(&dest, e)
                    })?;
            }
            beside.push((tmp, dest));
        }
        if let Some((out, bytes)) = stripped {
            if out == "-" {
                super::output::write_text(out, bytes, true)?;
            } else {
                let named = std::path::absolute(out).unwrap_or_else(|_| PathBuf::from(out));
                let cannot = |e: std::io::Error| {
                    Failure::run(format!("--stripped {out}: cannot write: {e}"))
                };
                let dest = match super::output::dest(&named).map_err(cannot)? {
                    super::output::Dest::Atomic(p) => p,
                    super::output::Dest::Stream(p) => {
                        self.streams.push((Payload::Bytes(bytes.to_vec()), p));
                        return Ok(());
                    }
                };
                let tmp = super::output::temp_beside(&dest);
                fs::write(&tmp, bytes)
                    .and_then(|_| fs::File::open(&tmp)?.sync_all())
                    .map_err(|e| {
                        let _ = fs::remove_file(&tmp);
                        Failure::run(format!("--stripped {out}: cannot write: {e}"))
                    })?;
                beside.push((tmp, dest));
            }
        }
        Ok(())
    }

    /// Runs the updates of existing volumes and directories.
    fn run_jobs(&mut self, log: &mut super::log::Log, done: &mut Vec<String>) -> Result<()> {
        for (staged, dest) in std::mem::take(&mut self.device_images) {
            let fail = |e: std::io::Error| Failure::run(format!("{}: {e}", dest.display()));
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
                    let fail = |e: std::io::Error| {
                        Failure::run(format!("{at}: {}: {e}", target.display()))
                    };
                    match self.locks.get(&target) {
                        Some(lock) => {
                            // an image file attached or mounted since the
                            // run began (a device is held exclusively)
                            if fs::metadata(&target).is_ok_and(|m| m.is_file()) {
                                if let Some(why) = super::holders::holder(&target).map_err(fail)? {
                                    return Err(Failure::run(format!(
                                        "{at}: {why}; refusing to write it (--force does not change this)"
                                    )));
                                }
                            }
                            let f = lock.file().map_err(fail)?;
                            super::formats::populate_open_volume(f, &target, source, &deletes, timestamp)
                        }
                        None => super::formats::populate_volume(&target, source, &deletes, timestamp),
                    }
                    .map_err(|e| {
                        if is_after_commit(&e) {
                            // made, though not finished: it counts as committed
                            done.push(target.display().to_string());
                        }
                        fail(e)
                    })?;
                    log.line(&format!("{at} populated {}", target.display()))?;
                    done.push(target.display().to_string());
                    self.committed.push(target);
                }
                Job::Dir {
                    at,
                    target,
                    mut source,
                } => {
                    let fail = |e: &dyn std::fmt::Display| {
                        Failure::run(format!("{at}: {}: {e}", target.display()))
                    };
                    let into = self
                        .dir_destination(&target)
                        .and_then(|into| fs::create_dir_all(&into).map(|_| into))
                        .map_err(|e| fail(&e))?;
                    let mut x = crate::hostdir::Extractor::new(&into).map_err(|e| fail(&e))?;
                    let mut budget = Budget::for_target(&into, &mut x).map_err(|e| fail(&e))?;
                    source
                        .emit(&mut crate::progress::MeteredSink {
                            inner: &mut budget,
                            meter: crate::progress::Meter::new(format!(
                                "expanding into {}",
                                target.display()
                            )),
                        })
                        .map_err(|e| fail(&e))?;
                    let warnings = x.finish().map_err(|e| fail(&e))?;
                    for w in warnings {
                        eprintln!("warning: {at}: {w}");
                    }
                    log.line(&format!("{at} populated {}", target.display()))?;
                    if into == target {
                        done.push(target.display().to_string());
                        self.committed.push(target);
                    }
                }
            }
        }
        Ok(())
    }

    /// The renames, made safe against a kill: the record of created
    /// outputs is written (and synced) with the new paths first, then the
    /// list of renames; the next run completes a list it finds.
    fn rename_all(
        &mut self,
        log: &mut super::log::Log,
        renames: &[(PathBuf, PathBuf)],
    ) -> Result<()> {
        let io = |p: &Path, e: std::io::Error| Failure::run(format!("{}: {e}", p.display()));
        self.created
            .extend(renames.iter().map(|(_, to)| to.clone()));
        self.save_state()
            .map_err(|e| io(self.state_file.as_deref().unwrap_or(Path::new("state")), e))?;
        let intent = self.intent_file();
        if let Some(f) = &intent {
            let text: String = renames
                .iter()
                .map(|(a, b)| format!("{}\t{}\n", a.display(), b.display()))
                .collect();
            write_synced(f, text.as_bytes()).map_err(|e| io(f, e))?;
        }
        for (k, (from, to)) in renames.iter().enumerate() {
            fault_point("rename", k);
            fs::rename(from, to).map_err(|e| io(to, e))?;
            self.committed.push(to.clone());
            log.line(&format!("commit {}", to.display()))?;
        }
        fault_point("rename", renames.len());
        if let Some(f) = &intent {
            let _ = sync_dir_of(renames.first().map(|(_, to)| to.as_path()));
            let _ = fs::remove_file(f);
        }
        Ok(())
    }

    /// Where this run writes down its renames while it commits.
    fn intent_file(&self) -> Option<PathBuf> {
        let state = self.state_file.as_ref()?.parent()?;
        Some(state.join(format!("commit-{}", std::process::id())))
    }

    /// Writes the record of created outputs, synced with its directory.
    fn save_state(&self) -> std::io::Result<()> {
        let Some(f) = &self.state_file else {
            return Ok(());
        };
        let mut text = String::new();
        for p in &self.created {
            text.push_str(&p.to_string_lossy());
            text.push('\n');
        }
        write_synced(f, text.as_bytes())
    }
}

/// Replaces `path` with `bytes` atomically and durably: a synced temporary
/// beside it, renamed over it, and the directory synced.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = super::output::temp_beside(path);
    let r = fs::write(&tmp, bytes)
        .and_then(|_| fs::File::open(&tmp)?.sync_all())
        .and_then(|_| fs::rename(&tmp, path))
        .and_then(|_| sync_dir_of(Some(path)));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Syncs the directory holding `path`, so a rename in it survives a crash.
fn sync_dir_of(path: Option<&Path>) -> std::io::Result<()> {
    match path.and_then(Path::parent) {
        Some(d) => fs::File::open(if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        })?
        .sync_all(),
        None => Ok(()),
    }
}

/// Fault injection for tests (debug builds only): `VMC_FAULT=rename:N`
/// kills the process just before the commit's rename number N (counted
/// from 0; N = the number of renames is just after the last one), as a
/// power cut would.
fn fault_point(what: &str, k: usize) {
    #[cfg(debug_assertions)]
    if std::env::var("VMC_FAULT").ok().as_deref() == Some(&format!("{what}:{k}")) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
    let _ = (what, k);
}

/// True when a volume update failed after its journal commit: the update
/// is made, and a journal replay finishes it.
fn is_after_commit(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<crate::ext::Error>())
        .is_some_and(|x| matches!(x, crate::ext::Error::AfterCommit(_)))
}

/// Reads an upload back once: it proves the server holds what was sent,
/// and gives the validators with which later runs check, cheaply, that it
/// is still there and unchanged. `None` when the server gives none.
fn read_back(staged: &Path, uri: &Uri, published: &transport::Published) -> Option<String> {
    let mut tmp = staged.as_os_str().to_owned();
    tmp.push(".check");
    let tmp = PathBuf::from(tmp);
    let got = transport::fetch(uri, None, &tmp, &FetchOptions::default());
    let _ = fs::remove_file(&tmp);
    match got {
        Ok(transport::Fetched::Downloaded {
            sha256,
            validators: Some(v),
            ..
        }) if sha256 == published.sha256 && v.is_usable() => {
            Some(super::state::encode_validators(&v))
        }
        _ => None,
    }
}

/// True when the upload recorded as `(sha256, validators)` is still on the
/// server as it was left: revalidated with the recorded validators (HTTP
/// conditional request, FTP `SIZE` and `MDTM`), or downloaded and
/// compared when the server says it changed.
pub fn remote_intact(uri: &Uri, sha256: &str, validators: &str, scratch: &Path) -> bool {
    let Some(v) = super::state::decode_validators(validators) else {
        return false;
    };
    let got = transport::fetch(uri, Some(&v), scratch, &FetchOptions::default());
    let _ = fs::remove_file(scratch);
    match got {
        Ok(transport::Fetched::NotModified) => true,
        Ok(transport::Fetched::Downloaded { sha256: d, .. }) => d.to_hex() == sha256,
        Err(_) => false,
    }
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

/// True when two files hold the same bytes (sizes first, then digests).
fn same_content(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) else {
        return false;
    };
    if ma.len() != mb.len() || !mb.is_file() {
        return false;
    }
    match (
        crate::digest::Digest::of_file(a),
        crate::digest::Digest::of_file(b),
    ) {
        (Ok((da, _)), Ok((db, _))) => da == db,
        _ => false,
    }
}

/// Completes the commits of runs that were killed while committing: every
/// rename they wrote down and did not do is done now, so outputs end as a
/// successful run leaves them. Called before anything else of a run.
pub fn recover(state: &Path) {
    let Ok(rd) = fs::read_dir(state) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("commit-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !super::process_gone(pid) {
            continue;
        }
        let Ok(text) = fs::read_to_string(e.path()) else {
            continue;
        };
        let mut done = Vec::new();
        for line in text.lines() {
            if let Some((from, to)) = line.split_once('\t') {
                if Path::new(from).exists() && fs::rename(from, to).is_err() {
                    continue;
                }
                done.push(PathBuf::from(to));
            }
        }
        // what it completed is vm-container's: written down (and synced)
        // before the list goes, so no later run mistakes it for a file
        // someone else made
        let mut record = Commit::load(state.join("created"));
        record.created.extend(done);
        if record.save_state().is_ok() {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Expanding into a host directory stops before the file system fills: a
/// decompression bomb (a few MB of gzip that expand to terabytes) must not
/// take the disk from everything else on it. The budget is the target's
/// [`crate::hostdir::Room`]; every entry counts one block besides its
/// content.
struct Budget<'a> {
    inner: &'a mut dyn crate::tree::Sink,
    counter: Counter,
}

struct Counter {
    left: u64,
    room: crate::hostdir::Room,
}

impl<'a> Budget<'a> {
    fn for_target(
        target: &Path,
        inner: &'a mut dyn crate::tree::Sink,
    ) -> std::io::Result<Budget<'a>> {
        let room = crate::hostdir::Room::of(target)?;
        Ok(Budget {
            inner,
            counter: Counter {
                left: room.usable,
                room,
            },
        })
    }
}

impl Counter {
    fn spend(&mut self, n: u64) -> std::io::Result<()> {
        match self.left.checked_sub(n) {
            Some(l) => {
                self.left = l;
                Ok(())
            }
            None => Err(std::io::Error::other(format!(
                "stopped: the tree would fill {}",
                self.room.describe()
            ))),
        }
    }
}

impl crate::tree::Sink for Budget<'_> {
    fn put(
        &mut self,
        entry: &crate::tree::Entry,
        data: &mut dyn std::io::Read,
    ) -> std::io::Result<()> {
        let Budget { inner, counter } = self;
        counter.spend(4096)?;
        inner.put(entry, &mut Spent { data, counter })
    }
}

struct Spent<'a> {
    data: &'a mut dyn std::io::Read,
    counter: &'a mut Counter,
}

impl std::io::Read for Spent<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.read(buf)?;
        self.counter.spend(n as u64)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_commit_is_completed() {
        let d = tempfile::tempdir().unwrap();
        let (from, to) = (d.path().join(".out.vmc-tmp-1"), d.path().join("out"));
        fs::write(&from, "new").unwrap();
        fs::write(&to, "old").unwrap();
        let done = d.path().join("done");
        fs::write(&done, "kept").unwrap();
        // pid 0 is never a live process
        fs::write(
            d.path().join("commit-0"),
            format!(
                "{}\t{}\n{}\t{}\n",
                d.path().join("gone").display(),
                done.display(),
                from.display(),
                to.display()
            ),
        )
        .unwrap();
        recover(d.path());
        assert_eq!(fs::read_to_string(&to).unwrap(), "new");
        assert_eq!(fs::read_to_string(&done).unwrap(), "kept");
        assert!(!from.exists() && !d.path().join("commit-0").exists());
    }
}
