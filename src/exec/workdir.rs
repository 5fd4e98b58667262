//! The working directory of runs (`--dir`): its layout (`cache`, `work`,
//! `state`), the lock a commit holds, the completion of commits that
//! killed runs left, and the staging directory of this run.

use super::{Error, Result};
use crate::cache::lock::FileLock;
use std::path::{Path, PathBuf};

/// A working directory, opened for one run.
pub struct WorkDir {
    root: PathBuf,
    /// `work/run-PID`: where this run stages what it makes.
    staging: PathBuf,
}

impl WorkDir {
    /// Opens `root` (made absolute): its layout is created, a run killed
    /// while committing is completed before anything else, what
    /// interrupted runs staged is removed, and this run's staging
    /// directory is made empty.
    pub fn open(root: &Path) -> Result<WorkDir> {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        for sub in ["cache", "work", "state"] {
            std::fs::create_dir_all(root.join(sub))
                .map_err(|e| Error::run(format!("--dir {}: {e}", root.display())))?;
        }
        let staging = root
            .join("work")
            .join(format!("run-{}", std::process::id()));
        let dir = WorkDir { root, staging };
        {
            let _lock = dir.lock()?;
            super::commit::recover(&dir.state());
        }
        clean_stale(&dir.root.join("work"), "run-");
        let _ = std::fs::remove_dir_all(&dir.staging);
        std::fs::create_dir_all(&dir.staging)
            .map_err(|e| Error::run(format!("--dir {}: {e}", dir.staging.display())))?;
        Ok(dir)
    }

    /// The directory as given to `--dir`, made absolute.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The download cache.
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Run records, the record of created outputs and commits under way.
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// The record of every local output vm-container created.
    pub fn created(&self) -> PathBuf {
        self.state().join("created")
    }

    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// One commit at a time per working directory: the record of created
    /// outputs is shared by every domain using it.
    pub fn lock(&self) -> Result<FileLock> {
        FileLock::exclusive(&self.state().join("lock"))
            .map_err(|e| Error::run(format!("--dir {}: {e}", self.root.display())))
    }

    /// Removes this run's staging directory.
    pub fn remove_staging(&self) {
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}

/// The working directory: `--dir`, else `/var/lib/vm-container` for root
/// and `$XDG_CACHE_HOME/vm-container` (or `~/.cache/vm-container`) for
/// others.
pub fn default_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/vm-container");
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("vm-container");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache/vm-container"),
        None => PathBuf::from("/tmp/vm-container"),
    }
}

fn is_root() -> bool {
    // the effective uid decides what the process may do
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Removes what interrupted runs staged: entries named `PREFIX<pid>` (or
/// ending in `-<pid>`) whose process is gone.
pub fn clean_stale(dir: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(prefix) {
            continue;
        }
        let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if process_gone(pid) {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// True when no process `pid` runs (and it is not this one): what it
/// staged or left half-done is stale.
pub fn process_gone(pid: u32) -> bool {
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}
