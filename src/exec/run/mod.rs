//! Carrying out a plan: every expression in order, then the commit.
//!
//! Two phases keep docs/SPEC.md §3.3: while expressions run, everything they write
//! goes to staging (under `--dir`, or beside a local image); updates of
//! volumes and directories that exist already are recorded as jobs. Only
//! when every expression has succeeded does the commit run the jobs and
//! move staged files into place (rename for local files, temporary name
//! and rename on the server for uploads). A failed run commits nothing.

mod clone;
mod edit;
mod fingerprint;
mod images;
mod patch;
mod sources;
mod trees;

pub use fingerprint::expressions_digest;
pub use sources::source_dirs_untouched;

use super::commit::Commit;
use super::error::{Cause, Place};
use super::inputs::{Inputs, Trust};
use super::load::Loaded;
use super::log::Log;
use super::state::{Record, Verdict};
use super::workdir::WorkDir;
use super::worktree::{Content, WorkTree};
use super::{atomic, Error, Result, RunOptions, Verbosity};
use crate::cache::{Cache, Mode};
use crate::parser::plan::{Action, Plan, Step, UriRef};
use images::NewImage;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// What a run is given: its options, the container's name, the working
/// directory, the log, the keys it trusts and the one it signs with.
pub struct Context<'a> {
    pub opts: &'a RunOptions,
    pub name: &'a str,
    pub work: &'a WorkDir,
    pub log: Log,
    pub trust: Trust,
    pub sign_key: Option<crate::sign::SecretKey>,
}

pub struct Runner<'a> {
    opts: &'a RunOptions,
    name: &'a str,
    work: &'a WorkDir,
    log: Log,
    inputs: Inputs,
    trees: HashMap<String, WorkTree>,
    /// What the edits of each archive will look up and read (see
    /// [`edit::Ahead`]).
    ahead: HashMap<String, edit::Ahead>,
    images: BTreeMap<PathBuf, NewImage>,
    commit: Commit,
    serial: u32,
    /// The date of what this run creates (see [`Runner::date`]).
    now: i64,
    epoch: Option<i64>,
    /// The digest of the container's expressions and their date, for
    /// the next run's record.
    dated: Option<(String, i64)>,
    /// What [`Runner::fingerprint`] digests, with the container's
    /// expressions in place of its text: equal to the last run's, only
    /// Xen statements changed.
    plan_inputs: Option<String>,
    sign_key: Option<crate::sign::SecretKey>,
    /// Image digests of the last successful run (path → digest).
    previous_images: BTreeMap<PathBuf, String>,
    /// Image digests of this run, for the next run's record.
    image_digests: BTreeMap<PathBuf, String>,
}

/// A module's typed error `e` met by the expression at `at` while working
/// on `what` (a path, a URI, a part of the image).
fn io_fail(at: &str, what: impl std::fmt::Display, e: impl Cause) -> Error {
    e.at(Place::new(at, what))
}

impl<'a> Runner<'a> {
    /// A runner with the download cache of the working directory opened
    /// and the record of the outputs vm-container created read.
    pub fn new(cx: Context<'a>) -> Result<Runner<'a>> {
        let Context {
            opts,
            name,
            work,
            log,
            trust,
            sign_key,
        } = cx;
        let fetch_opts = crate::transport::FetchOptions {
            total_timeout: Some(
                opts.timeout
                    .unwrap_or(crate::transport::DEFAULT_TOTAL_TIMEOUT),
            ),
            max_download: opts.max_download,
            ..Default::default()
        };
        let cache = Cache::open(work.cache(), fetch_opts)
            .map_err(|e| Error::run(format!("--dir {}: {e}", work.root().display())))?;
        let mode = if opts.offline {
            Mode::Offline
        } else if opts.allow_stale {
            Mode::AllowStale
        } else {
            Mode::Online
        };
        let mut inputs = Inputs::new(cache, mode);
        inputs.trust = trust;
        let epoch = super::tools::source_date_epoch();
        Ok(Runner {
            opts,
            name,
            work,
            log,
            inputs,
            trees: HashMap::new(),
            ahead: HashMap::new(),
            images: BTreeMap::new(),
            commit: Commit::load(work.created()),
            serial: 0,
            // set by `date` once the last run's record is read
            now: epoch.unwrap_or(0),
            epoch,
            dated: None,
            plan_inputs: None,
            sign_key,
            previous_images: BTreeMap::new(),
            image_digests: BTreeMap::new(),
        })
    }
}

impl Runner<'_> {
    /// The whole run: nothing when no input changed and every output is
    /// as the last run left it, only the stripped config when only Xen
    /// statements changed, else every expression in order; then the
    /// commit and the record the next run reads.
    pub fn carry_out(&mut self, loaded: &Loaded) -> Result<()> {
        let opts = self.opts;
        let plan = &loaded.plan;
        if let Some(out) = opts.stripped.as_deref().filter(|o| *o != "-") {
            let p = std::path::absolute(out).unwrap_or_else(|_| PathBuf::from(out));
            self.commit.check_local(&p, opts.force, &loaded.name)?;
            if let (Some(d), Some(n)) = (p.parent(), p.file_name()) {
                super::workdir::clean_stale(d, &atomic::temp_prefix(n));
            }
        }
        // a domain-start hook runs this again and again: when no input
        // changed and every output is as the last run left it, there is
        // nothing to do
        let record_path = Record::path(&self.work.state(), &opts.container, &opts.set);
        let fingerprint = self.fingerprint(plan, &loaded.text)?;
        let previous = Record::load(&record_path);
        self.date(plan, previous.as_ref());
        let verdict = match &previous {
            Some(rec) => {
                self.previous_images = rec.images.iter().cloned().collect();
                self.commit.previous = rec
                    .outputs
                    .iter()
                    .map(|(p, s, m)| (p.clone(), (*s, *m)))
                    .collect();
                let plan_inputs = self.plan_inputs.clone();
                rec.verdict(&fingerprint, plan_inputs.as_deref(), |recorded| {
                    self.remotes_intact(plan, recorded)
                })
            }
            None => Verdict::Run,
        };
        let planned = match (verdict, &previous) {
            (Verdict::UpToDate, _) => return self.up_to_date(loaded),
            (Verdict::XenOnly, Some(rec)) => self.keep_all(loaded, rec),
            _ => self.run_plan(plan),
        };
        let result = planned.and_then(|()| {
            let stripped = opts
                .stripped
                .as_deref()
                .map(|o| (o, plan.stripped.as_bytes()));
            let _lock = self.work.lock()?;
            // another run may have created outputs since this one began
            self.commit
                .created
                .extend(Commit::load(self.work.created()).created);
            self.commit.run(&mut self.log, stripped)
        });
        if result.is_ok() || self.commit.partial {
            self.save_record(&record_path, result.is_ok(), fingerprint);
        }
        if result.is_err() {
            self.commit.abandon();
            let _ = self.log.line(if self.commit.partial {
                "failed; committed in part"
            } else {
                "failed; nothing committed"
            });
        } else {
            self.log.line("done")?;
            // one line per output: what happened to it
            if self.opts.verbosity != Verbosity::Quiet {
                for line in self.commit.said_once() {
                    eprintln!("{line}");
                }
            }
        }
        result
    }

    /// Nothing to do: only a stream (standard output, a FIFO) gets the
    /// stripped config, as it does every run.
    fn up_to_date(&mut self, loaded: &Loaded) -> Result<()> {
        if let Some(out) = self.opts.stripped.as_deref().filter(|o| {
            *o == "-" || matches!(atomic::dest(Path::new(o)), Ok(atomic::Dest::Stream(_)))
        }) {
            atomic::write_text(out, loaded.plan.stripped.as_bytes())?;
        }
        self.log
            .line("up to date: no input changed since the last run")?;
        if self.opts.verbosity != Verbosity::Quiet {
            eprintln!("{}: up to date", loaded.name);
        }
        Ok(())
    }

    /// Only Xen statements changed: every image and archive is as the
    /// last run left it and would be made again the same, so only the
    /// stripped config is written.
    fn keep_all(&mut self, loaded: &Loaded, rec: &Record) -> Result<()> {
        for (p, _, _) in &rec.outputs {
            self.commit.keep(p.clone());
        }
        self.image_digests = rec.images.iter().cloned().collect();
        self.commit.remotes = rec.remotes.clone();
        if self.opts.verbosity != Verbosity::Quiet {
            eprintln!(
                "{}: only Xen statements changed; writing the stripped config",
                loaded.name
            );
        }
        self.log
            .line("only Xen statements changed: every other output kept")
    }

    /// Writes what the next run reads. A commit that failed halfway is
    /// recorded with what it changed, and the next run is never `up to
    /// date`.
    fn save_record(&self, path: &Path, complete: bool, fingerprint: String) {
        // a kept output written again (the stripped config) counts once
        let mut seen = BTreeSet::new();
        let outputs = self
            .commit
            .committed
            .iter()
            .filter(|p| seen.insert(p.to_path_buf()))
            .filter_map(|p| super::state::stamp(p).map(|(s, m)| (p.clone(), s, m)))
            .collect();
        let rec = Record {
            inputs: if complete {
                fingerprint
            } else {
                "incomplete".to_string()
            },
            outputs,
            images: self.image_digests.clone().into_iter().collect(),
            remotes: self.commit.remotes.clone(),
            dated: self.dated.clone(),
            plan_inputs: self.plan_inputs.clone(),
        };
        if let Err(e) = rec.save(path) {
            eprintln!("warning: {}: {e}", path.display());
        }
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
        self.work
            .staging()
            .join(format!("{:03}-{safe}", self.serial))
    }

    fn run_plan(&mut self, plan: &Plan) -> Result<()> {
        self.lock_volumes(plan)?;
        self.look_ahead(plan);
        for step in &plan.steps {
            let at = format!("{}:{}", self.name, step.span);
            // the screen says what happened to each output at the end;
            // every action as it runs is for -v
            if self.opts.verbosity == Verbosity::Verbose {
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
                base,
                format,
            } => self.image(
                at,
                path,
                *size,
                label,
                *fs,
                *block_size,
                *inodes,
                *uuid,
                base.as_deref(),
                *format,
            ),
            Action::Put {
                image,
                path,
                content,
                mode,
                owner,
            } => self.put(at, image, path, content, *mode, *owner),
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
                super::workdir::clean_stale(dir, &atomic::temp_prefix(name));
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
