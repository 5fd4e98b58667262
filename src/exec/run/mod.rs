//! Carrying out a plan: every expression in order, then the commit.
//!
//! Two phases keep docs/SPEC.md §3.3: while expressions run, everything they write
//! goes to staging (under `--dir`, or beside a local image); updates of
//! volumes and directories that exist already are recorded as jobs. Only
//! when every expression has succeeded does the commit run the jobs and
//! move staged files into place (rename for local files, temporary name
//! and rename on the server for uploads). A failed run commits nothing.

mod edit;
mod fingerprint;
mod images;
mod patch;
mod sources;
mod trees;

pub use fingerprint::expressions_digest;
pub use sources::source_dirs_untouched;

use super::commit::Commit;
use super::inputs::Inputs;
use super::log::Log;
use super::worktree::{Content, WorkTree};
use super::{Failure, Result, RunOptions};
use crate::cache::{Cache, Mode};
use crate::parser::plan::{Action, Plan, Step, UriRef};
use images::NewImage;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

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
}

impl Runner<'_> {
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
            } => self.image(at, path, *size, label, *fs, *block_size, *inodes, *uuid),
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

    /// Registers a staged artifact as an output of the run (and as an
    /// input for later expressions).
    fn output(&mut self, at: &str, dest: &UriRef, staged: PathBuf) -> Result<()> {
        if let Some(p) = dest.uri.local_path() {
            self.commit.check_local(p, self.opts.force, at)?;
            // an interrupted run may have left its copy beside it
            if let (Some(dir), Some(name)) = (p.parent(), p.file_name()) {
                super::clean_stale(dir, &super::atomic::temp_prefix(name));
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
}
