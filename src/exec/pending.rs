//! `--dry-run`: what a run would rebuild and why, writing nothing.
//!
//! Every input is looked at as a run would look at it: a fetched one is
//! revalidated with its server against the copy in the cache (unless
//! `--offline`), a local file or directory is compared with the time of
//! the last run. What changed is followed through the plan to the outputs
//! made from it: an archive's edits, the images and directories populated
//! from it, its forks. Nothing is written: not the cache, not the run
//! record, not the log (a changed body is fetched into a temporary file
//! to be compared, then dropped).

use super::load::Loaded;
use super::state::Record;
use super::{Result, RunOptions};
use crate::cache::Cache;
use crate::parser::plan::{Action, PatchTarget, UriRef};
use crate::transport::{self, FetchOptions, Fetched, Uri, Validators};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Prints the plan, then each output with what would happen to it and
/// why. True when a run would change something.
pub fn report(opts: &RunOptions, loaded: &Loaded) -> Result<bool> {
    for step in &loaded.plan.steps {
        println!("{}:{}: {}", loaded.name, step.span, step.action);
    }
    let dir = opts.dir.clone().unwrap_or_else(super::workdir::default_dir);
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let record_path = Record::path(&dir.join("state"), &opts.container, &opts.set);
    let record = Record::load(&record_path);
    let last_run = fs::metadata(&record_path).and_then(|m| m.modified()).ok();
    let mut look = Look {
        opts,
        cache: dir.join("cache"),
        last_run,
        seen: HashMap::new(),
        fetch: FetchOptions {
            total_timeout: Some(opts.timeout.unwrap_or(transport::DEFAULT_TOTAL_TIMEOUT)),
            max_download: opts.max_download,
            ..Default::default()
        },
    };
    let everything = match &record {
        None => Some("no earlier run".to_string()),
        Some(r) if r.inputs == "incomplete" => Some("the last run did not finish".to_string()),
        Some(r) => match &r.dated {
            Some((digest, _)) if *digest == super::run::expressions_digest(&loaded.plan) => None,
            _ => Some("the container's expressions changed".to_string()),
        },
    };
    let outputs = look.outputs(&loaded.plan.steps);
    let mut pending = 0;
    let mut total = 0;
    for (out, mut why) in outputs {
        total += 1;
        if let Some(e) = &everything {
            why.insert(0, e.clone());
        } else if let Some(r) = &record {
            let p = Path::new(&out);
            match r.outputs.iter().find(|(q, ..)| q == p) {
                Some((_, size, mtime)) if super::state::stamp(p) != Some((*size, *mtime)) => {
                    why.push(format!("{out} was changed or removed since the last run"))
                }
                None if p.is_absolute() && !p.exists() => why.push(format!("{out} is missing")),
                _ => {}
            }
        }
        why.dedup();
        if why.is_empty() {
            println!("{out}: up to date");
        } else {
            pending += 1;
            println!("{out}: would be rebuilt: {}", why.join("; "));
        }
    }
    if let Some(out) = opts.stripped.as_deref().filter(|o| *o != "-") {
        total += 1;
        match fs::read(out) {
            Ok(b) if b == loaded.plan.stripped.as_bytes() => println!("{out}: up to date"),
            Ok(_) => {
                pending += 1;
                println!("{out}: would be written: the stripped config changed");
            }
            Err(_) => {
                pending += 1;
                println!("{out}: would be written: it does not exist");
            }
        }
    }
    if pending == 0 {
        println!("nothing to do: every output is up to date");
    } else {
        println!("{pending} of {total} outputs would change");
    }
    Ok(pending > 0)
}

struct Look<'a> {
    opts: &'a RunOptions,
    cache: PathBuf,
    last_run: Option<SystemTime>,
    /// Why each input (by resource key) changed; empty when it did not.
    seen: HashMap<String, Vec<String>>,
    fetch: FetchOptions,
}

impl Look<'_> {
    /// Every output of the plan with what changed among what it is made of.
    fn outputs(&mut self, steps: &[crate::parser::plan::Step]) -> Vec<(String, Vec<String>)> {
        let mut outs: Vec<(String, Vec<String>)> = Vec::new();
        let add = |outs: &mut Vec<(String, Vec<String>)>, name: String, why: &[String]| match outs
            .iter_mut()
            .find(|(n, _)| *n == name)
        {
            Some((_, w)) => w.extend(why.iter().cloned()),
            None => outs.push((name, why.to_vec())),
        };
        for step in steps {
            match &step.action {
                Action::Create { src, dest } => {
                    let why = self.local(src);
                    self.seen.insert(dest.uri.resource_key(), why.clone());
                    add(&mut outs, shown(dest), &why);
                }
                Action::Image { path, base, .. } => {
                    // a clone is made again when its base changed
                    let why = base.as_deref().map(|b| self.local(b)).unwrap_or_default();
                    add(&mut outs, path.display().to_string(), &why)
                }
                Action::Put { image, content, .. } => {
                    let why = match content {
                        crate::parser::plan::PutContent::Source(u) => self.input(u),
                        crate::parser::plan::PutContent::Text(_) => Vec::new(),
                    };
                    add(&mut outs, image.display().to_string(), &why)
                }
                Action::Populate { target, source, .. } => {
                    // an image made by the plan, or a volume or directory
                    // changed in place
                    let why = self.input(source);
                    add(&mut outs, target.display().to_string(), &why);
                }
                Action::Replace { edit, .. } | Action::Copy { edit, .. } => {
                    let mut why = self.input(&edit.archive);
                    if let Action::Copy { source, .. } = &step.action {
                        why.extend(self.input(source));
                    }
                    self.seen
                        .insert(edit.archive.uri.resource_key(), why.clone());
                    for o in edit.patch.iter().chain(edit.fork.iter()) {
                        self.seen.insert(o.uri.resource_key(), why.clone());
                        add(&mut outs, shown(o), &why);
                    }
                }
                Action::Patch {
                    target,
                    patch,
                    fork,
                } => {
                    let mut why = self.input(patch);
                    match target {
                        PatchTarget::Archive(a) => {
                            let mut w = self.input(a);
                            w.append(&mut why);
                            self.seen.insert(a.uri.resource_key(), w.clone());
                            if let Some(o) = fork {
                                self.seen.insert(o.uri.resource_key(), w.clone());
                                add(&mut outs, shown(o), &w);
                            }
                        }
                        PatchTarget::Image(p) => add(&mut outs, p.display().to_string(), &why),
                    }
                }
            }
        }
        outs
    }

    /// Why an input changed since the last run; empty when it did not.
    fn input(&mut self, u: &UriRef) -> Vec<String> {
        let key = u.uri.resource_key();
        if let Some(why) = self.seen.get(&key) {
            return why.clone();
        }
        let why = match u.uri.local_path() {
            Some(p) => self.local(p),
            None => self.remote(&u.uri).into_iter().collect(),
        };
        self.seen.insert(key, why.clone());
        why
    }

    /// A local file or directory: changed when anything in it is newer
    /// than the last run.
    fn local(&self, p: &Path) -> Vec<String> {
        let Some(last) = self.last_run else {
            return Vec::new();
        };
        match newest(p) {
            Some(t) if t > last => vec![format!("{} changed since the last run", p.display())],
            Some(_) => Vec::new(),
            None => vec![format!("{} cannot be read", p.display())],
        }
    }

    /// A fetched input, revalidated with its server against the cached
    /// copy: why it changed, or `None`.
    fn remote(&self, uri: &Uri) -> Option<String> {
        let name = uri.file_name_hint();
        let Some(cached) = Cache::entry_in(&self.cache, uri) else {
            return Some(format!("{name} is not in the cache yet"));
        };
        if self.opts.offline || uri.pin.is_some_and(|p| p == cached.sha256) {
            // pinned content cannot change; offline, the cached copy is used
            return None;
        }
        let scratch = match tempfile::NamedTempFile::new() {
            Ok(t) => t,
            Err(e) => return Some(format!("{name} could not be revalidated: {e}")),
        };
        match transport::fetch(uri, cached.validators.as_ref(), scratch.path(), &self.fetch) {
            Ok(Fetched::NotModified) => None,
            Ok(Fetched::Downloaded { sha256, .. }) if sha256 == cached.sha256 => None,
            Ok(Fetched::Downloaded { validators, .. }) => Some(format!(
                "{name} changed upstream: {}",
                what_changed(cached.validators.as_ref(), validators.as_ref())
            )),
            Err(e) => Some(format!("{name} could not be revalidated: {e}")),
        }
    }
}

fn shown(u: &UriRef) -> String {
    match u.uri.local_path() {
        Some(p) => p.display().to_string(),
        None => u.uri.to_string(),
    }
}

/// The newest change time of `p` and, for a directory, of everything in
/// it (a removed file changes its directory's).
fn newest(p: &Path) -> Option<SystemTime> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(p).ok()?;
    let changed = |m: &fs::Metadata| {
        let at = |secs: i64, nsec: i64| {
            std::time::Duration::from_secs(secs.max(0) as u64)
                + std::time::Duration::from_nanos(nsec.clamp(0, 999_999_999) as u64)
        };
        SystemTime::UNIX_EPOCH + at(m.ctime(), m.ctime_nsec()).max(at(m.mtime(), m.mtime_nsec()))
    };
    let mut t = changed(&m);
    if m.is_dir() {
        for e in fs::read_dir(p).ok()?.flatten() {
            if let Some(n) = newest(&e.path()) {
                t = t.max(n);
            }
        }
    }
    Some(t)
}

/// The validators' change in words: `ETag "a" → "b"`.
fn what_changed(old: Option<&Validators>, new: Option<&Validators>) -> String {
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_string());
    match (old, new) {
        (
            Some(Validators::Http {
                etag: e1,
                last_modified: l1,
            }),
            Some(Validators::Http {
                etag: e2,
                last_modified: l2,
            }),
        ) => {
            if e1 != e2 {
                format!("ETag {} → {}", text(e1), text(e2))
            } else if l1 != l2 {
                format!("Last-Modified {} → {}", text(l1), text(l2))
            } else {
                "new content".to_string()
            }
        }
        (
            Some(Validators::Ftp { mdtm: m1, size: s1 }),
            Some(Validators::Ftp { mdtm: m2, size: s2 }),
        ) => {
            if m1 != m2 {
                format!("MDTM {} → {}", text(m1), text(m2))
            } else {
                format!("SIZE {s1:?} → {s2:?}")
            }
        }
        (Some(Validators::File { .. }), _) => "the file was modified".to_string(),
        _ => "new content".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_said_in_the_servers_words() {
        let http = |e: &str, l: &str| Validators::Http {
            etag: Some(e.to_string()),
            last_modified: Some(l.to_string()),
        };
        assert_eq!(
            what_changed(Some(&http("\"v1\"", "x")), Some(&http("\"v2\"", "x"))),
            "ETag \"v1\" → \"v2\""
        );
        assert_eq!(
            what_changed(Some(&http("\"v1\"", "Mon")), Some(&http("\"v1\"", "Tue"))),
            "Last-Modified Mon → Tue"
        );
        assert_eq!(what_changed(None, None), "new content");
    }
}
