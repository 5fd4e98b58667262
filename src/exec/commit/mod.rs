//! The commit: what a run publishes, moved into place only after every
//! expression succeeded, and the record of what vm-container created.

mod jobs;

use super::{Error, Result};
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

/// An in-place update of a volume queued for the commit.
pub struct PendingUpdate<'a> {
    pub at: &'a str,
    pub source: &'a mut dyn Source,
    pub deletes: &'a [TreePath],
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
    pub locks: std::collections::BTreeMap<PathBuf, crate::exec::holders::VolumeLock>,
    /// What happened to each output, one line each, for the screen:
    /// `built`, `kept … (unchanged)`, `updated in place`, `published`.
    pub said: Vec<String>,
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
        let path = match crate::exec::atomic::dest(path) {
            Ok(crate::exec::atomic::Dest::Stream(_)) => return Ok(()),
            Ok(crate::exec::atomic::Dest::Atomic(p)) => p,
            Err(e) => return Err(Error::run(format!("{at}: {}: {e}", path.display()))),
        };
        let path = path.as_path();
        if force || !path.exists() || self.created.contains(path) {
            return Ok(());
        }
        Err(Error::run(format!(
            "{at}: {} exists and was not created by vm-container; use --force to replace it",
            path.display()
        )))
    }

    /// True when `path` is as the last successful run left it.
    pub fn intact(&self, path: &Path) -> bool {
        self.previous
            .get(path)
            .is_some_and(|st| crate::exec::state::stamp(path) == Some(*st))
    }

    /// An output kept as it is (nothing it depends on changed).
    /// [`Commit::said`] with one line per output, the last said of it,
    /// in the order outputs were first named.
    pub fn said_once(&self) -> Vec<String> {
        let subject = |l: &str| {
            let l = l
                .strip_suffix(" (unchanged)")
                .or_else(|| l.strip_suffix(" (formatted)"))
                .unwrap_or(l);
            [
                "kept ",
                "built ",
                "updated in place ",
                "published ",
                "wrote ",
            ]
            .iter()
            .find_map(|v| l.strip_prefix(v))
            .unwrap_or(l)
            .to_string()
        };
        let mut order: Vec<String> = Vec::new();
        let mut last: std::collections::HashMap<String, &String> = Default::default();
        for l in &self.said {
            let s = subject(l);
            if !last.contains_key(&s) {
                order.push(s.clone());
            }
            last.insert(s, l);
        }
        order
            .iter()
            .filter_map(|s| last.get(s).map(|l| (*l).clone()))
            .collect()
    }

    pub fn keep(&mut self, path: PathBuf) {
        self.said
            .push(format!("kept {} (unchanged)", path.display()));
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

    /// The in-place updates of the volume `target` queued so far, in
    /// order: each expression's place, its source and its deletions. A
    /// later expression reading the volume sees them laid over it.
    pub fn pending_volume(&mut self, target: &Path) -> Vec<PendingUpdate<'_>> {
        self.jobs
            .iter_mut()
            .filter_map(|j| match j {
                Job::Volume {
                    at,
                    target: t,
                    source,
                    deletes,
                    ..
                } if t == target => Some(PendingUpdate {
                    at: at.as_str(),
                    source: source.as_mut(),
                    deletes: deletes.as_slice(),
                }),
                _ => None,
            })
            .collect()
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
        log: &mut crate::exec::log::Log,
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
                    .map_err(Error::failed)?;
                for ((staged, u), p) in remote.iter().zip(&published) {
                    log.line(&format!("commit {u}"))?;
                    self.said.push(format!("published {u}"));
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
            return Err(Error::run(format!(
                "{}; committed: {}; not committed: {}",
                e,
                done.join(", "),
                if not.is_empty() { "nothing else" } else { &not }
            )));
        }
        let mut renames = beside;
        // staged images are written unsynced: synced at the rename
        let unsynced: Vec<PathBuf> = self.images.iter().map(|(s, _)| s.clone()).collect();
        renames.append(&mut self.images);
        renames.extend(self.dirs.drain(..).map(|(target, staged)| (staged, target)));
        self.rename_all(log, &renames, &unsynced)?;
        for (payload, to) in std::mem::take(&mut self.streams) {
            let bytes = match payload {
                Payload::Bytes(b) => b,
                Payload::File(p) => {
                    fs::read(&p).map_err(|e| Error::run(format!("{}: {e}", p.display())))?
                }
            };
            crate::exec::atomic::stream(&to, &bytes)
                .map_err(|e| Error::run(format!("{}: {e}", to.display())))?;
            log.line(&format!("wrote {}", to.display()))?;
            self.said.push(format!("wrote {}", to.display()));
        }
        Ok(())
    }

    /// Brings every local output beside its destination under a temporary
    /// name (a rename away from done) and lists the uploads.
    fn bring_beside(
        &mut self,
        log: &mut crate::exec::log::Log,
        stripped: Option<(&str, &[u8])>,
        beside: &mut Vec<(PathBuf, PathBuf)>,
        remote: &mut Vec<(PathBuf, Uri)>,
    ) -> Result<()> {
        let io = |p: &Path, e: std::io::Error| Error::run(format!("{}: {e}", p.display()));
        for (uri, staged) in self.staged.drain(..) {
            let Some(named) = uri.local_path().map(Path::to_path_buf) else {
                remote.push((staged, uri));
                continue;
            };
            let dest = match crate::exec::atomic::dest(&named).map_err(|e| io(&named, e))? {
                crate::exec::atomic::Dest::Atomic(p) => p,
                crate::exec::atomic::Dest::Stream(p) => {
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
                log.line(&format!("kept {} (unchanged)", dest.display()))?;
                self.said
                    .push(format!("kept {} (unchanged)", dest.display()));
                self.committed.push(dest);
                continue;
            }
            let tmp = crate::exec::atomic::temp_beside(&dest);
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
                crate::exec::atomic::write_text(out, bytes)?;
            } else {
                let named = std::path::absolute(out).unwrap_or_else(|_| PathBuf::from(out));
                let cannot =
                    |e: std::io::Error| Error::run(format!("--stripped {out}: cannot write: {e}"));
                let dest = match crate::exec::atomic::dest(&named).map_err(cannot)? {
                    crate::exec::atomic::Dest::Atomic(p) => p,
                    crate::exec::atomic::Dest::Stream(p) => {
                        self.streams.push((Payload::Bytes(bytes.to_vec()), p));
                        return Ok(());
                    }
                };
                if fs::read(&dest).is_ok_and(|old| old == bytes) {
                    // the same config: kept with its mtime, as other outputs
                    self.said
                        .push(format!("kept {} (unchanged)", dest.display()));
                    self.committed.push(dest);
                    return Ok(());
                }
                let tmp = crate::exec::atomic::temp_beside(&dest);
                fs::write(&tmp, bytes)
                    .and_then(|_| fs::File::open(&tmp)?.sync_all())
                    .map_err(|e| {
                        let _ = fs::remove_file(&tmp);
                        Error::run(format!("--stripped {out}: cannot write: {e}"))
                    })?;
                beside.push((tmp, dest));
            }
        }
        Ok(())
    }

    /// The renames, made safe against a kill: every file in `unsynced`
    /// (staged images) is synced, all at once and while the record of
    /// created outputs is written (and synced) with the new paths; then,
    /// when there are several renames, their list is written: the next run
    /// completes a list it finds (a single rename is all or nothing by
    /// itself). After the renames the directories that hold them are
    /// synced. Nothing is synced that did not change: the record only
    /// when it gains a path.
    fn rename_all(
        &mut self,
        log: &mut crate::exec::log::Log,
        renames: &[(PathBuf, PathBuf)],
        unsynced: &[PathBuf],
    ) -> Result<()> {
        let io = |p: &Path, e: std::io::Error| Error::run(format!("{}: {e}", p.display()));
        self.created
            .extend(renames.iter().map(|(_, to)| to.clone()));
        let (synced, saved) = std::thread::scope(|s| {
            let syncing = s.spawn(|| sync_files(unsynced));
            let saved = self
                .save_state_if_changed()
                .map_err(|e| io(self.state_file.as_deref().unwrap_or(Path::new("state")), e));
            (syncing.join(), saved)
        });
        saved?;
        match synced {
            Ok(r) => r.map_err(|(p, e)| io(&p, e))?,
            Err(_) => return Err(Error::run("syncing the staged images failed")),
        }
        let intent = self.intent_file().filter(|_| renames.len() > 1);
        if let Some(f) = &intent {
            let text: String = renames
                .iter()
                .map(|(a, b)| format!("{}\t{}\n", a.display(), b.display()))
                .collect();
            crate::exec::atomic::write_synced(f, text.as_bytes()).map_err(|e| io(f, e))?;
        }
        for (k, (from, to)) in renames.iter().enumerate() {
            fault_point("rename", k);
            fs::rename(from, to).map_err(|e| io(to, e))?;
            self.committed.push(to.clone());
            log.line(&format!("commit {}", to.display()))?;
            self.said.push(format!("built {}", to.display()));
        }
        fault_point("rename", renames.len());
        // one name in each directory renamed into
        let dirs: std::collections::BTreeMap<&Path, &Path> = renames
            .iter()
            .filter_map(|(_, to)| Some((to.parent()?, to.as_path())))
            .collect();
        for to in dirs.into_values() {
            let _ = crate::exec::atomic::sync_dir_of(Some(to));
        }
        if let Some(f) = &intent {
            let _ = fs::remove_file(f);
        }
        Ok(())
    }

    /// Where this run writes down its renames while it commits.
    fn intent_file(&self) -> Option<PathBuf> {
        let state = self.state_file.as_ref()?.parent()?;
        Some(state.join(format!("commit-{}", std::process::id())))
    }

    /// [`Commit::save_state`] when the record on disk lacks a path of
    /// ours.
    fn save_state_if_changed(&self) -> std::io::Result<()> {
        let Some(f) = &self.state_file else {
            return Ok(());
        };
        if self.created.is_subset(&Commit::load(f.clone()).created) {
            return Ok(());
        }
        self.save_state()
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
        crate::exec::atomic::write_synced(f, text.as_bytes())
    }
}

/// Syncs every file of `paths`, the syncs issued together (one thread
/// each) so that the file system can write them in one go.
fn sync_files(paths: &[PathBuf]) -> std::result::Result<(), (PathBuf, std::io::Error)> {
    let sync = |p: &PathBuf| {
        fs::File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|e| (p.clone(), e))
    };
    match paths {
        [] => Ok(()),
        [one] => sync(one),
        _ => std::thread::scope(|s| {
            let all: Vec<_> = paths.iter().map(|p| s.spawn(move || sync(p))).collect();
            // the scope waits for every sync, failed or not
            all.into_iter().try_for_each(|h| {
                h.join()
                    .unwrap_or_else(|_| Err((PathBuf::new(), std::io::Error::other("sync failed"))))
            })
        }),
    }
}

/// Fault injection for tests (debug builds only): `VMC_FAULT=rename:N`
/// kills the process just before the commit's rename number N (counted
/// from 0; N = the number of renames is just after the last one), as a
/// power cut would; `VMC_FAULT=staged:N` just after the run's staged
/// image update number N (counted from 0) is written.
pub(crate) fn fault_point(what: &str, k: usize) {
    #[cfg(debug_assertions)]
    if std::env::var("VMC_FAULT").ok().as_deref() == Some(&format!("{what}:{k}")) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
    let _ = (what, k);
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
            Some(crate::exec::state::encode_validators(&v))
        }
        _ => None,
    }
}

/// True when the upload recorded as `(sha256, validators)` is still on the
/// server as it was left: revalidated with the recorded validators (HTTP
/// conditional request, FTP `SIZE` and `MDTM`), or downloaded and
/// compared when the server says it changed.
pub fn remote_intact(uri: &Uri, sha256: &str, validators: &str, scratch: &Path) -> bool {
    let Some(v) = crate::exec::state::decode_validators(validators) else {
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
        if !crate::exec::workdir::process_gone(pid) {
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
