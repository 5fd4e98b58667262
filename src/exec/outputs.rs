//! The commit: what a run publishes, moved into place only after every
//! expression succeeded, and the record of what vm-container created.

use super::{Failure, Result};
use crate::transport::{self, FetchOptions, Uri};
use crate::tree::Source;
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
        timestamp: i64,
    },
    /// Expand a tree into a host directory.
    Dir {
        at: String,
        target: PathBuf,
        source: Box<dyn Source>,
    },
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
    /// Size and mtime of each output as the last successful run left it.
    pub previous: std::collections::BTreeMap<PathBuf, (u64, i128)>,
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
    pub fn check_local(&self, path: &Path, force: bool, at: &str) -> Result<()> {
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
    }

    /// Moves everything into place. `stripped` is written last.
    pub fn run(
        &mut self,
        log: &mut super::log::Log,
        stripped: Option<(&str, &[u8])>,
    ) -> Result<()> {
        for job in self.jobs.drain(..) {
            match job {
                Job::Volume {
                    at,
                    target,
                    source,
                    timestamp,
                } => {
                    super::formats::populate_volume(&target, source, timestamp)
                        .map_err(|e| Failure::run(format!("{at}: {}: {e}", target.display())))?;
                    log.line(&format!("{at} populated {}", target.display()))?;
                    self.committed.push(target);
                }
                Job::Dir {
                    at,
                    target,
                    mut source,
                } => {
                    fs::create_dir_all(&target)
                        .map_err(|e| Failure::run(format!("{at}: {}: {e}", target.display())))?;
                    let mut x = crate::hostdir::Extractor::new(&target)
                        .map_err(|e| Failure::run(format!("{at}: {}: {e}", target.display())))?;
                    source
                        .emit(&mut crate::progress::MeteredSink {
                            inner: &mut x,
                            meter: crate::progress::Meter::new(format!(
                                "expanding into {}",
                                target.display()
                            )),
                        })
                        .map_err(|e| Failure::run(format!("{at}: {}: {e}", target.display())))?;
                    let warnings = x
                        .finish()
                        .map_err(|e| Failure::run(format!("{at}: {}: {e}", target.display())))?;
                    for w in warnings {
                        eprintln!("warning: {at}: {w}");
                    }
                    log.line(&format!("{at} populated {}", target.display()))?;
                    self.committed.push(target);
                }
            }
        }
        let opts = FetchOptions::default();
        let mut remote: Vec<(PathBuf, Uri)> = Vec::new();
        for (uri, staged) in self.staged.drain(..) {
            match uri.local_path() {
                Some(dest) => {
                    if let Some(parent) = dest.parent() {
                        fs::create_dir_all(parent)
                            .map_err(|e| Failure::run(format!("{}: {e}", parent.display())))?;
                    }
                    if same_content(&staged, dest) {
                        // rebuilt to the same bytes: keep the file and its
                        // mtime, so what depends on it sees no change
                        let _ = fs::remove_file(&staged);
                        self.committed.push(dest.to_path_buf());
                        log.line(&format!("kept {} (unchanged)", dest.display()))?;
                        continue;
                    }
                    // rename when staging shares the file system, else a
                    // copy to a temporary name beside it and a rename
                    if fs::rename(&staged, dest).is_err() {
                        transport::publish(&staged, &uri, &opts)
                            .map_err(|e| Failure::run(e.to_string()))?;
                    }
                    self.created.insert(dest.to_path_buf());
                    self.committed.push(dest.to_path_buf());
                    log.line(&format!("commit {}", dest.display()))?;
                }
                None => remote.push((staged, uri)),
            }
        }
        if !remote.is_empty() {
            let pairs: Vec<(&Path, &Uri)> = remote.iter().map(|(p, u)| (p.as_path(), u)).collect();
            transport::publish_many(&pairs, &opts).map_err(|e| Failure::run(e.to_string()))?;
            for (_, u) in &remote {
                log.line(&format!("commit {u}"))?;
            }
        }
        for (staged, dest) in self.images.drain(..) {
            fs::rename(&staged, &dest)
                .map_err(|e| Failure::run(format!("{}: {e}", dest.display())))?;
            self.created.insert(dest.clone());
            self.committed.push(dest.clone());
            log.line(&format!("commit {}", dest.display()))?;
        }
        if let Some((out, bytes)) = stripped {
            super::output::write_text(out, bytes, true)?;
            if out != "-" {
                let p = std::path::absolute(out).unwrap_or_else(|_| PathBuf::from(out));
                self.created.insert(p.clone());
                self.committed.push(p);
            }
            log.line(&format!("commit stripped config {out}"))?;
        }
        self.save_state();
        Ok(())
    }

    fn save_state(&self) {
        let Some(f) = &self.state_file else {
            return;
        };
        let mut text = String::new();
        for p in &self.created {
            text.push_str(&p.to_string_lossy());
            text.push('\n');
        }
        let _ = super::output::write_text(&f.to_string_lossy(), text.as_bytes(), true);
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
