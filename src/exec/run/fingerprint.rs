//! What a run reads and when it was made: the digest of its inputs that
//! tells the next run whether anything changed, the date of what it
//! creates, and whether its uploads are still as it left them.

use super::{io_fail, Runner};
use crate::exec::state::{self, Fingerprint, Record};
use crate::exec::worktree::Change;
use crate::exec::Result;
use crate::hostdir;
use crate::parser::plan::{Action, DirMeta, Edit, ImageFormat, PatchTarget, Plan, Read, UriRef};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// An input as a run finds it (see [`Runner::input_state`]).
enum InputState {
    Local(String),
    Remote(String),
}

impl Runner<'_> {
    /// A digest of everything the plan reads: remote artifacts are
    /// revalidated (and fetched only if they changed), local files are
    /// stamped by size and mtime, packed directories by their listing.
    /// The same without the container's Xen statements is kept in
    /// [`Runner::plan_inputs`].
    pub(super) fn fingerprint(&mut self, plan: &Plan, text: &str) -> Result<String> {
        let mut f = Fingerprint::default();
        for (k, v) in &self.opts.set {
            f.add("set", format!("{k}={v}").as_bytes());
        }
        f.add("epoch", format!("{:?}", self.epoch).as_bytes());
        f.add("stripped", format!("{:?}", self.opts.stripped).as_bytes());
        f.add(
            "sign",
            self.sign_key
                .as_ref()
                .map(|k| k.key_id().to_string())
                .unwrap_or_default()
                .as_bytes(),
        );
        let mut produced: BTreeSet<String> = BTreeSet::new();
        let mut made: BTreeSet<std::path::PathBuf> = BTreeSet::new();
        for step in &plan.steps {
            let at = format!("{}:{}", self.name, step.span);
            if let Action::Populate { target, .. } = &step.action {
                f.add("target", target.as_os_str().as_encoded_bytes());
            }
            for read in step.action.reads() {
                let u = match read {
                    Read::Dir(d) => {
                        self.add_listing(&mut f, &at, d)?;
                        continue;
                    }
                    Read::Copy(u) => match u.uri.local_path().filter(|p| p.is_dir()) {
                        Some(d) => {
                            self.add_listing(&mut f, &at, d)?;
                            continue;
                        }
                        None => u,
                    },
                    Read::Base(b) => {
                        // a base this run makes is judged by what it is made of
                        if !made.contains(b) {
                            f.add("base", state::input_stamp(b).as_bytes());
                        }
                        continue;
                    }
                    Read::Tree(u) | Read::Patch(u) => u,
                };
                let key = u.uri.resource_key();
                if produced.contains(&key) {
                    continue;
                }
                match self.input_state(&at, u)? {
                    InputState::Local(stamp) => {
                        f.add(&key, stamp.as_bytes());
                        if self.inputs.trust.require_all {
                            let sig = u.uri.with_suffix(".sig");
                            let st = sig.local_path().and_then(state::stamp);
                            f.add("sig", format!("{st:?}").as_bytes());
                        }
                    }
                    InputState::Remote(digest) => f.add(&key, digest.as_bytes()),
                }
            }
            produced.extend(step.action.outputs().map(|w| w.uri.resource_key()));
            if let Action::Image { path, .. } = &step.action {
                made.insert(path.clone());
            }
        }
        let rest = f.finish();
        let mut of_plan = Fingerprint::default();
        of_plan.add("expressions", expressions_digest(plan).as_bytes());
        of_plan.add("rest", rest.as_bytes());
        self.plan_inputs = Some(of_plan.finish());
        let mut whole = Fingerprint::default();
        whole.add("container", text.as_bytes());
        whole.add("rest", rest.as_bytes());
        Ok(whole.finish())
    }

    /// A host directory read whole (packed or copied): its listing.
    fn add_listing(&self, f: &mut Fingerprint, at: &str, dir: &Path) -> Result<()> {
        let listing = state::listing(hostdir::Walker::new(dir), dir)
            .map_err(|e| io_fail(at, dir.display(), e))?;
        f.add("dir", listing.as_bytes());
        Ok(())
    }

    /// An input as this run finds it, before anything produces it: a
    /// local file's stamp (a directory's listing, not its own mtime), or
    /// a remote artifact's digest (revalidated, fetched only if it
    /// changed).
    fn input_state(&mut self, at: &str, u: &UriRef) -> Result<InputState> {
        Ok(match u.uri.local_path() {
            Some(p) => InputState::Local(state::input_stamp(p)),
            None => {
                let input = self.inputs.get(u, at, &mut self.log)?;
                InputState::Remote(format!("{:?}", input.sha256))
            }
        })
    }

    /// Dates what this run creates — replaced and copied files, new
    /// directories, the new side of diffs, image timestamps — by
    /// something that changes only when what it is made of does:
    /// `SOURCE_DATE_EPOCH` when set, else the date of the container's
    /// expressions. That date is the one `previous` recorded for the same
    /// expressions, else the container file's mtime (the clock for
    /// standard input): an edit of Xen statements alone keeps the old
    /// date, so every image and archive is kept and only the stripped
    /// config is written again. Inputs do not date the run: a newer
    /// archive would otherwise re-date, and rebuild, every image of the
    /// run, not only those made from it.
    pub(super) fn date(&mut self, plan: &Plan, previous: Option<&Record>) {
        let digest = expressions_digest(plan);
        let recorded = previous
            .and_then(|r| r.dated.as_ref())
            .filter(|(d, _)| *d == digest)
            .map(|(_, secs)| *secs);
        let expressions = recorded.unwrap_or_else(|| {
            let mtime = (self.opts.container != "-")
                .then(|| fs::metadata(&self.opts.container).ok())
                .flatten()
                .map(|m| std::os::unix::fs::MetadataExt::mtime(&m));
            mtime.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            })
        });
        self.now = self.epoch.unwrap_or(expressions);
        self.dated = Some((digest, expressions));
    }

    /// True when every upload of the plan is on its server as the last
    /// run left it (`recorded`: key, digest, validators); one missing,
    /// changed or unreachable means rebuild and publish again. Offline,
    /// uploads are not looked at.
    pub(super) fn remotes_intact(
        &mut self,
        plan: &Plan,
        recorded: &[(String, String, String)],
    ) -> bool {
        if self.opts.offline {
            return true;
        }
        let mut uploads: Vec<crate::transport::Uri> = Vec::new();
        for step in &plan.steps {
            for w in step
                .action
                .outputs()
                .filter(|w| w.uri.local_path().is_none())
            {
                if self.sign_key.is_some() {
                    uploads.push(w.uri.with_suffix(".sig"));
                }
                uploads.push(w.uri.clone());
            }
        }
        let scratch = self.stage_path("revalidate");
        uploads.iter().all(|u| {
            let key = u.resource_key();
            let Some((_, sha, v)) = recorded.iter().find(|(k, _, _)| *k == key) else {
                return false;
            };
            let intact = crate::exec::commit::remote_intact(u, sha, v, &scratch);
            if !intact {
                let _ = self
                    .log
                    .line(&format!("{u} is not as the last run left it"));
            }
            intact
        })
    }

    /// A digest of an archive's working tree as it stands now: the
    /// archive's content (or, for a local file, its size and mtime) and
    /// every change made to it so far.
    pub(super) fn tree_digest(&mut self, at: &str, uri: &UriRef) -> Result<String> {
        let mut f = Fingerprint::default();
        if let Some(p) = self.inputs.produced(uri).cloned() {
            let (d, _) = crate::digest::Digest::of_file(&p).map_err(|e| io_fail(at, uri, e))?;
            f.add("produced", d.to_hex().as_bytes());
        } else {
            match self.input_state(at, uri)? {
                InputState::Local(stamp) => f.add("local", stamp.as_bytes()),
                InputState::Remote(digest) => f.add("remote", digest.as_bytes()),
            }
        }
        if let Some(wt) = self.trees.get(&uri.uri.resource_key()) {
            for (path, change) in &wt.overlay {
                match change {
                    Change::Put { entry, content } => {
                        f.add("put", format!("{entry:?}").as_bytes());
                        if let Some(c) = content {
                            let bytes = c
                                .read_all()
                                .map_err(|e| io_fail(at, path.display_abs(), e))?;
                            f.add("content", &bytes);
                        }
                    }
                    Change::Delete => f.add("delete", path.as_bytes()),
                }
            }
        }
        Ok(f.finish())
    }
}

/// A digest of what the container's expressions ask for, in order, with
/// templates and variables substituted: the plan without its places in
/// the text and without the stripped config. An edit of Xen statements
/// (or of blank lines and comments between expressions) leaves it as it
/// was.
pub fn expressions_digest(plan: &Plan) -> String {
    let mut f = Fingerprint::default();
    let uri = |f: &mut Fingerprint, label: &str, u: &UriRef| {
        f.add(label, u.text.as_bytes());
        f.add(label, u.uri.to_string().as_bytes());
    };
    let opt = |f: &mut Fingerprint, label: &str, u: &Option<UriRef>| match u {
        Some(u) => uri(f, label, u),
        None => f.add(label, b""),
    };
    let edit = |f: &mut Fingerprint, e: &Edit| {
        let Edit {
            archive,
            patch,
            fork,
            mode,
            owner,
            dirs,
        } = e;
        uri(f, "archive", archive);
        opt(f, "patch", patch);
        opt(f, "fork", fork);
        f.add("mode", format!("{mode:?} {owner:?}").as_bytes());
        // only when given: an edit without them keeps its old fingerprint
        if *dirs != DirMeta::default() {
            f.add(
                "dirs",
                format!("{:?} {:?}", dirs.mode, dirs.owner).as_bytes(),
            );
        }
    };
    for step in &plan.steps {
        match &step.action {
            Action::Create { src, dest } => {
                f.add("create", src.as_os_str().as_encoded_bytes());
                uri(&mut f, "dest", dest);
            }
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
            } => {
                f.add("image", path.as_os_str().as_encoded_bytes());
                if let Some(b) = base {
                    f.add("base", b.as_os_str().as_encoded_bytes());
                }
                if *format == ImageFormat::Qcow2 {
                    f.add("format", b"qcow2");
                }
                f.add("label", label);
                f.add(
                    "options",
                    format!("{size} {fs:?} {block_size:?} {inodes:?} {uuid:?}").as_bytes(),
                );
            }
            Action::Populate {
                kind,
                target,
                mount,
                source,
            } => {
                f.add("populate", format!("{kind:?} {mount}").as_bytes());
                f.add("target", target.as_os_str().as_encoded_bytes());
                uri(&mut f, "source", source);
            }
            Action::Replace {
                path,
                edit: e,
                content,
            } => {
                f.add("replace", path.as_bytes());
                edit(&mut f, e);
                f.add("content", content);
            }
            Action::Copy {
                path,
                edit: e,
                source,
            } => {
                f.add("copy", path.as_bytes());
                edit(&mut f, e);
                uri(&mut f, "source", source);
            }
            Action::Patch {
                target,
                patch,
                fork,
            } => {
                match target {
                    PatchTarget::Archive(a) => uri(&mut f, "patch archive", a),
                    PatchTarget::Image(p) => f.add("patch image", p.as_os_str().as_encoded_bytes()),
                }
                uri(&mut f, "patch", patch);
                opt(&mut f, "fork", fork);
            }
            Action::Put {
                image,
                path,
                content,
                mode,
                owner,
            } => {
                f.add("put image", image.as_os_str().as_encoded_bytes());
                f.add("put", path.as_bytes());
                match content {
                    crate::parser::plan::PutContent::Text(t) => f.add("content", t),
                    crate::parser::plan::PutContent::Source(u) => uri(&mut f, "source", u),
                }
                f.add("mode", format!("{mode:?} {owner:?}").as_bytes());
            }
        }
    }
    f.finish()
}
