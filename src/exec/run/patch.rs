//! `[patch]`: a unified diff applied to an archive's working tree or to
//! an ext2/ext3 image.

use super::{io_fail, Runner};
use crate::diff;
use crate::exec::commit::{Job, PendingUpdate};
use crate::exec::error::{Cause, Place};
use crate::exec::formats::write_archive;
use crate::exec::worktree::{Change, Content, Overlay, WorkTree};
use crate::exec::{Error, Result};
use crate::ext;
use crate::parser::plan::{PatchTarget, UriRef};
use crate::tree::{Entry, FnSink, Kind, Source, TreePath};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::Path;

/// What a patch is applied to: it reads the files the patch names and
/// takes the changes the patch makes, in one walk over them.
trait Patchable {
    /// The content of each of `paths` that exists.
    fn read(&mut self, paths: &BTreeSet<TreePath>) -> Result<BTreeMap<TreePath, Vec<u8>>>;
    /// A file written or created, with the mode the patch gives it.
    fn write(&mut self, path: &TreePath, content: Vec<u8>, mode: Option<u32>) -> Result<()>;
    fn delete(&mut self, path: TreePath);
}

/// Applies `patch` to `target`: all of it, or nothing.
fn apply(at: &str, patch: &diff::Patch, target: &mut impl Patchable) -> Result<()> {
    let files = target.read(&patch.paths())?;
    let changes = patch
        .apply(&mut MapFileSet(files))
        .map_err(|e| e.at(Place::at(at)))?;
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
            } => target.write(&path, content, mode.map(|m| m & 0o7777))?,
            diff::Change::Delete { path } => target.delete(path),
        }
    }
    Ok(())
}

/// An archive's working tree: changed files take the patch's mode (or
/// keep theirs), new ones are 0644 0:0.
struct ArchiveTree<'a> {
    at: &'a str,
    archive: &'a UriRef,
    tree: &'a mut WorkTree,
}

impl Patchable for ArchiveTree<'_> {
    fn read(&mut self, paths: &BTreeSet<TreePath>) -> Result<BTreeMap<TreePath, Vec<u8>>> {
        self.tree.expect_lookups(paths.iter().cloned());
        self.tree
            .read_files(paths)
            .map_err(|e| io_fail(self.at, self.archive, e))
    }

    fn write(&mut self, path: &TreePath, content: Vec<u8>, mode: Option<u32>) -> Result<()> {
        self.tree
            .put_file(path, Content::Bytes(content), mode, None)
            .map_err(|e| Error::run(format!("{}: {e}", self.at)))
    }

    fn delete(&mut self, path: TreePath) {
        self.tree.delete(&path);
    }
}

/// An update of an ext2/ext3 image: the changed files laid over it as a
/// tree, and the deletions, removed in the same transaction after the
/// writes. Metadata of replaced files is kept; new ones are 0644 0:0.
struct ImageUpdate<'a, 'p> {
    at: &'a str,
    path: &'a Path,
    vol: &'a ext::Volume,
    /// The in-place updates of the image queued before this patch.
    pending: Vec<PendingUpdate<'p>>,
    /// Permissions and owner of the files read, as `pending` leaves them.
    meta: BTreeMap<TreePath, (u32, u32, u32)>,
    tree: WorkTree,
    deletes: Vec<TreePath>,
}

impl Patchable for ImageUpdate<'_, '_> {
    fn read(&mut self, paths: &BTreeSet<TreePath>) -> Result<BTreeMap<TreePath, Vec<u8>>> {
        let through = read_through(self.at, self.path, self.vol, &mut self.pending, paths, true)?;
        self.meta = through.meta;
        Ok(through.files)
    }

    fn write(&mut self, path: &TreePath, content: Vec<u8>, mode: Option<u32>) -> Result<()> {
        let mut perm = mode;
        let mut owner = None;
        if let Some(&(p, uid, gid)) = self.meta.get(path) {
            perm = perm.or(Some(p));
            owner = Some((uid, gid));
        }
        self.tree
            .put_file(path, Content::Bytes(content), perm, owner)
            .map_err(|e| Error::run(format!("{}: {e}", self.at)))
    }

    fn delete(&mut self, path: TreePath) {
        self.tree.delete(&path);
        self.deletes.push(path);
    }
}

/// Files of an existing image as the in-place updates queued before an
/// expression leave them (expressions take effect in order).
pub(super) struct Through {
    /// The content of each regular file read (with `content`).
    pub(super) files: BTreeMap<TreePath, Vec<u8>>,
    /// Permissions, owner and group of each path that exists.
    pub(super) meta: BTreeMap<TreePath, (u32, u32, u32)>,
}

/// Reads `paths` of `vol` (the image `image`), then lays each pending
/// update over them in order: what its source puts at a path replaces
/// it, and its deletions remove it.
pub(super) fn read_through(
    at: &str,
    image: &Path,
    vol: &ext::Volume,
    pending: &mut [PendingUpdate<'_>],
    paths: &BTreeSet<TreePath>,
    content: bool,
) -> Result<Through> {
    let max = crate::exec::worktree::MAX_WHOLE_FILE;
    let too_big = |p: &TreePath, size: u64| {
        Error::run(format!(
            "{at}: {}: {} is {size} bytes; patch targets over 64 MiB are refused",
            image.display(),
            p.display_abs(),
        ))
    };
    let mut files = BTreeMap::new();
    let mut meta = BTreeMap::new();
    for p in paths {
        if let Ok(info) = vol.stat(p) {
            meta.insert(p.clone(), (info.meta.perm, info.meta.uid, info.meta.gid));
        }
        if !content {
            continue;
        }
        if let Ok(mut r) = vol.read_file(p) {
            if r.size() > max {
                return Err(too_big(p, r.size()));
            }
            let mut v = Vec::new();
            io::Read::read_to_end(&mut r, &mut v).map_err(|e| io_fail(at, p.display_abs(), e))?;
            files.insert(p.clone(), v);
        }
    }
    for up in pending.iter_mut() {
        let by = up.at;
        let mut failed: Option<Error> = None;
        let mut sink = FnSink(|e: &Entry, data: &mut dyn io::Read| {
            if !paths.contains(&e.path) || failed.is_some() {
                return Ok(());
            }
            files.remove(&e.path);
            meta.insert(e.path.clone(), (e.meta.perm, e.meta.uid, e.meta.gid));
            match &e.kind {
                Kind::File { .. } if content => {
                    let mut v = Vec::new();
                    io::Read::read_to_end(&mut io::Read::take(data, max + 1), &mut v)?;
                    if v.len() as u64 > max {
                        failed = Some(too_big(&e.path, v.len() as u64));
                    } else {
                        files.insert(e.path.clone(), v);
                    }
                }
                Kind::HardLink { .. } if content => {
                    failed = Some(Error::run(format!(
                        "{at}: {}: {} is a hard link {by} makes in this run; it cannot be read before the commit",
                        image.display(),
                        e.path.display_abs(),
                    )));
                }
                _ => {}
            }
            Ok(())
        });
        up.source
            .emit(&mut sink)
            .map_err(|e| io_fail(at, format!("{} as {by} leaves it", image.display()), e))?;
        if let Some(e) = failed {
            return Err(e);
        }
        for d in up.deletes {
            files.retain(|p, _| !p.starts_with(d));
            meta.retain(|p, _| !p.starts_with(d));
        }
    }
    Ok(Through { files, meta })
}

impl Runner<'_> {
    pub(super) fn patch(
        &mut self,
        at: &str,
        target: &PatchTarget,
        patch_uri: &UriRef,
        fork: Option<&UriRef>,
    ) -> Result<()> {
        let input = self.inputs.get(patch_uri, at, &mut self.log)?;
        let text = fs::read(&input.path).map_err(|e| io_fail(at, patch_uri, e))?;
        let patch =
            diff::parse(&text, &patch_uri.uri.to_string()).map_err(|e| e.at(Place::at(at)))?;
        if let Some(u) = patch.unsupported().next() {
            return Err(Error::run(format!(
                "{at}: {patch_uri}:{}: {} cannot be applied (a binary, rename or copy section)",
                u.line,
                u.display_name()
            )));
        }
        match target {
            PatchTarget::Archive(archive) => {
                let tree = self.tree(at, archive)?;
                apply(at, &patch, &mut ArchiveTree { at, archive, tree })?;
                self.log
                    .line(&format!("{at} patched {archive} with {patch_uri}"))?;
                if let Some(f) = fork {
                    self.fork(at, archive, f)?;
                }
                Ok(())
            }
            PatchTarget::Image(path) => self.patch_image(at, path, &patch, fork),
        }
    }

    /// A patch of an image: a new image of this run is built now and
    /// patched in staging; an existing one is updated at commit.
    fn patch_image(
        &mut self,
        at: &str,
        path: &Path,
        patch: &diff::Patch,
        fork: Option<&UriRef>,
    ) -> Result<()> {
        if let Some(img) = self.images.get_mut(path) {
            img.patched = true;
            self.build_image(path)?;
        }
        let (file, staged) = match self.images.get(path) {
            Some(img) => (img.staged.clone(), true),
            None => (path.to_path_buf(), false),
        };
        let dev = crate::block::open(&file, false).map_err(|e| io_fail(at, path.display(), e))?;
        let vol = ext::Volume::open_block(dev).map_err(|e| io_fail(at, path.display(), e))?;
        let pending = if staged {
            Vec::new()
        } else {
            self.commit.pending_volume(path)
        };
        if let (Some(up), Some(f)) = (pending.first(), fork) {
            // the fork is written now, from the image as it is
            return Err(Error::run(format!(
                "{at}: {f} cannot be forked from {} before the commit applies {}",
                path.display(),
                up.at
            )));
        }
        let mut update = ImageUpdate {
            at,
            path,
            vol: &vol,
            pending,
            meta: BTreeMap::new(),
            tree: WorkTree::new(path.display().to_string(), None, self.now),
            deletes: Vec::new(),
        };
        apply(at, patch, &mut update)?;
        let ImageUpdate {
            mut tree, deletes, ..
        } = update;
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
            self.update_staged(path, src, &deletes)
                .map_err(|e| io_fail(at, path.display(), e))?;
        } else {
            self.commit.job(Job::Volume {
                at: at.to_string(),
                target: path.to_path_buf(),
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
                tree.over_volume(path.to_path_buf())
            };
            write_archive(&mut src, &staged_fork, &f.uri, &f.text)
                .map_err(|e| io_fail(at, f, e))?;
            self.output(at, f, staged_fork)?;
        }
        Ok(())
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

struct MapFileSet(BTreeMap<TreePath, Vec<u8>>);

impl diff::FileSet for MapFileSet {
    fn read(&self, path: &TreePath) -> Option<Vec<u8>> {
        self.0.get(path).cloned()
    }
}
