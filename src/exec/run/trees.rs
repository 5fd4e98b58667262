//! The trees a run reads: archives fetched and opened once as working
//! trees, host directories packed by `[create]`, and what `[populate]`
//! streams into an image, a volume or a directory.

use super::{io_fail, Runner};
use crate::exec::commit::Job;
use crate::exec::formats::{check_volume, write_archive};
use crate::exec::worktree::{archive_source, WorkTree};
use crate::exec::{Error, Result};
use crate::hostdir;
use crate::parser::plan::{TargetKind, UriRef};
use crate::tree::Source;
use std::path::Path;

impl Runner<'_> {
    /// `[create]`: a host directory packed into an archive.
    pub(super) fn create(&mut self, at: &str, src: &Path, dest: &UriRef) -> Result<()> {
        if !src.is_dir() {
            return Err(Error::run(format!(
                "{at}: {}: not a directory",
                src.display()
            )));
        }
        let staged = self.stage_path(&dest.uri.file_name_hint());
        let mut walker = hostdir::Walker::new(src).clamp_mtime(self.epoch);
        write_archive(&mut walker, &staged, &dest.uri, &dest.text)
            .map_err(|e| io_fail(at, dest, e))?;
        self.output(at, dest, staged)
    }

    /// The working tree of an archive URI, fetched and opened once.
    pub(super) fn tree(&mut self, at: &str, uri: &UriRef) -> Result<&mut WorkTree> {
        use std::collections::hash_map::Entry as Slot;
        match self.trees.entry(uri.uri.resource_key()) {
            Slot::Occupied(slot) => Ok(slot.into_mut()),
            Slot::Vacant(slot) => {
                let input = self.inputs.get(uri, at, &mut self.log)?;
                let mut wt = WorkTree::new(uri.uri.to_string(), Some(input.path), self.now);
                // every edit of the archive is found in the first pass
                if let Some(a) = self.ahead.get(slot.key()) {
                    a.announce(&mut wt);
                }
                Ok(slot.insert(wt))
            }
        }
    }

    /// A source for a populate: the archive's working tree as it stands now.
    pub(super) fn tree_source(&mut self, at: &str, uri: &UriRef) -> Result<Box<dyn Source>> {
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

    pub(super) fn populate(
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
            return self
                .update_staged(target, src, &[])
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
}
