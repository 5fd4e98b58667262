//! Source directories a run reads as trees, and the refusal of a plan
//! that would write inside one.

use crate::exec::{Error, Result};
use crate::parser::plan::{Plan, Read, TargetKind, UriRef, Write};
use std::fs;
use std::path::{Path, PathBuf};

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
        for w in step.action.writes() {
            let (p, is_dir) = match w {
                Write::Output(u) => match u.uri.local_path() {
                    Some(p) => (p, false),
                    None => continue,
                },
                Write::Image(p) => (p, false),
                Write::Target(kind, p) => (p, kind == TargetKind::Dir),
            };
            writes.push((resolved(p), is_dir, at.clone()));
        }
        for r in step.action.reads() {
            if let Read::Tree(u) = r {
                if let Some(p) = u.uri.local_path().filter(|p| p.is_dir()) {
                    sources.push((resolved(p), u));
                }
            }
        }
    }
    for (dir, uri) in &sources {
        for (w, is_dir, at) in &writes {
            // the walk stays on the source's file system: what lands on
            // another one mounted below it is not read
            if w.starts_with(dir) && same_file_system(w, dir) {
                return Err(Error::run(format!(
                    "{at}: {} lies inside {uri}, a directory this container reads as a tree; a source directory is never written",
                    w.display()
                )));
            }
            if *is_dir && dir.starts_with(w) {
                return Err(Error::run(format!(
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
