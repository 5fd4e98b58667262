//! `[replace]` and `[copy]`: a change of an archive's working tree, then
//! the diff and the fork asked for.

use super::{io_fail, Runner};
use crate::diff;
use crate::exec::error::{Cause, Place};
use crate::exec::formats::write_archive;
use crate::exec::worktree::{Change, Content, TreeError, WorkTree, MAX_WHOLE_FILE};
use crate::exec::Result;
use crate::hostdir;
use crate::parser::plan::{Action, DirMeta, Edit, PatchTarget, Plan, UriRef};
use crate::tree::{Entry, Kind, Source, TreePath};
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What the edits of one archive will look up and read, gathered from
/// the plan before it runs and announced to the archive's working tree
/// when it is opened: the first edit's pass over the archive then
/// answers every later edit, patch and diff of it, however many there
/// are. An announcement only decides what a pass keeps; what the tree
/// holds, and in what order edits apply, is as without it.
#[derive(Default)]
pub(super) struct Ahead {
    /// Paths the edits put (each looked up with its ancestors).
    lookups: BTreeSet<TreePath>,
    /// Paths whose base content is read: what patches change, and what
    /// the edits of a tree with a generated diff change.
    contents: BTreeSet<TreePath>,
}

impl Ahead {
    pub(super) fn announce(&self, wt: &mut WorkTree) {
        wt.expect_lookups(self.lookups.iter().cloned());
        wt.expect_contents(self.contents.iter().cloned());
    }
}

impl Runner<'_> {
    /// Gathers the [`Ahead`] of every archive the plan edits.
    pub(super) fn look_ahead(&mut self, plan: &Plan) {
        let mut diffed: BTreeSet<String> = BTreeSet::new();
        let mut produced: BTreeSet<String> = BTreeSet::new();
        for step in &plan.steps {
            match &step.action {
                Action::Replace { path, edit, .. } | Action::Copy { path, edit, .. } => {
                    let key = edit.archive.uri.resource_key();
                    if edit.patch.is_some() {
                        diffed.insert(key.clone());
                    }
                    let a = self.ahead.entry(key).or_default();
                    a.lookups.insert(path.clone());
                }
                Action::Patch {
                    target: PatchTarget::Archive(archive),
                    patch,
                    ..
                } if !produced.contains(&patch.uri.resource_key()) => {
                    if let Some(paths) = self.patch_paths(patch) {
                        let a = self.ahead.entry(archive.uri.resource_key()).or_default();
                        a.contents.extend(paths);
                    }
                }
                _ => {}
            }
            produced.extend(step.action.outputs().map(|w| w.uri.resource_key()));
        }
        for key in diffed {
            if let Some(a) = self.ahead.get_mut(&key) {
                a.contents.extend(a.lookups.iter().cloned());
            }
        }
    }

    /// The paths a patch file names, if it can be read now: a local
    /// file, or one this run fetched already. Anything else is left to
    /// the `[patch]` itself, which reads, verifies and reports it.
    fn patch_paths(&self, patch: &UriRef) -> Option<BTreeSet<TreePath>> {
        let path = match patch.uri.local_path() {
            Some(p) => p,
            None => self.inputs.fetched(patch)?,
        };
        let meta = fs::metadata(path).ok()?;
        if !meta.is_file() || meta.len() > MAX_WHOLE_FILE {
            return None;
        }
        let text = fs::read(path).ok()?;
        Some(diff::parse(&text, "").ok()?.paths())
    }

    /// `replace` and `copy`: change the working tree, then write the diff
    /// and the fork if asked.
    pub(super) fn edit(
        &mut self,
        at: &str,
        edit: &Edit,
        change: impl FnOnce(&mut WorkTree) -> std::result::Result<(), TreeError>,
    ) -> Result<()> {
        let wt = self.tree(at, &edit.archive)?;
        wt.new_dirs = edit.dirs;
        let changed = change(wt);
        wt.new_dirs = DirMeta::default();
        changed.map_err(|e| e.at(Place::at(at)))?;
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
    pub(super) fn diff_of(&mut self, at: &str, archive: &UriRef) -> Result<Vec<u8>> {
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

    pub(super) fn fork(&mut self, at: &str, archive: &UriRef, dest: &UriRef) -> Result<()> {
        let staged = self.stage_path(&dest.uri.file_name_hint());
        let mut src = self.tree_source(at, archive)?;
        write_archive(src.as_mut(), &staged, &dest.uri, &dest.text)
            .map_err(|e| io_fail(at, dest, e))?;
        // the fork's own working tree starts from what was just written
        self.output(at, dest, staged)
    }

    pub(super) fn copy(
        &mut self,
        at: &str,
        path: &TreePath,
        edit: &Edit,
        source: &UriRef,
    ) -> Result<()> {
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
            let (mode, owner, dirs) = (edit.mode, edit.owner, edit.dirs);
            return self.edit(at, edit, move |wt| {
                wt.expect_lookups(entries.iter().map(|(e, _)| e.path.clone()));
                for (mut e, c) in entries {
                    let is_dir = e.kind == Kind::Dir;
                    let perm = if is_dir { dirs.mode } else { mode };
                    if let (Kind::File { .. } | Kind::Dir, Some(m)) = (&e.kind, perm) {
                        e.meta.perm = m;
                    }
                    let owner = if is_dir { dirs.owner.or(owner) } else { owner };
                    if let (false, Some((u, g))) = (matches!(e.kind, Kind::HardLink { .. }), owner)
                    {
                        e.meta.uid = u;
                        e.meta.gid = g;
                    }
                    wt.put_entry(e, c)?;
                }
                Ok(())
            });
        }
        let input = self.inputs.get(source, at, &mut self.log)?;
        let content = Content::File(input.path);
        self.edit(at, edit, |wt| {
            wt.put_file(path, content, edit.mode, edit.owner)
        })
    }
}
