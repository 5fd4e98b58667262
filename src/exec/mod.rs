//! The executor: the only layer that orchestrates I/O. It loads a container
//! file, asks the parser for a plan, and carries the plan out with the
//! format and transport modules.

pub mod boot;
pub mod error;
pub mod formats;
pub mod holders;
pub mod inputs;
pub mod load;
pub mod log;
pub mod output;
pub mod outputs;
pub mod run;
pub mod state;
pub mod tools;
pub mod worktree;

use crate::parser::plan::Plan;
use std::path::{Path, PathBuf};

pub use error::Error;
/// The name the executor's modules use for [`Error`].
pub type Failure = Error;

pub type Result<T> = std::result::Result<T, Failure>;

/// How chatty a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verbosity {
    Quiet,
    #[default]
    Normal,
    Verbose,
}

/// Everything a run (`run FILE`, or `--container FILE` as the paper has it) asks for.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub container: String,
    pub stripped: Option<String>,
    pub log: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    pub set: Vec<(String, String)>,
    pub dry_run: bool,
    pub offline: bool,
    pub allow_stale: bool,
    pub force: bool,
    pub verbosity: Verbosity,
    /// `--trust KEY.pub` (repeatable).
    pub trust: Vec<PathBuf>,
    /// `--trust-dir`: every `*.pub` in it is trusted too.
    pub trust_dir: Option<PathBuf>,
    pub require_signatures: bool,
    /// `--sign-key`: sign everything the run publishes.
    pub sign_key: Option<PathBuf>,
    pub sign_passphrase_file: Option<PathBuf>,
    /// `--timeout SECONDS`: limit of one whole transfer (default
    /// [`crate::transport::DEFAULT_TOTAL_TIMEOUT`]).
    pub timeout: Option<std::time::Duration>,
    /// `--max-download SIZE`: largest body received.
    pub max_download: Option<u64>,
}

/// The trusted keys of a run: `--trust` files and `*.pub` in the trust
/// directory (default `/etc/vm-container/trusted.d`).
pub fn trusted_keys(opts: &RunOptions) -> Result<Vec<crate::sign::PublicKey>> {
    let mut keys = Vec::new();
    for p in &opts.trust {
        keys.push(crate::sign::PublicKey::read_file(p).map_err(|e| Failure::usage(e.to_string()))?);
    }
    let dir = opts
        .trust_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/etc/vm-container/trusted.d"));
    keys.extend(tools::keys_in_dir(&dir)?);
    Ok(keys)
}

/// The working directory: `--dir`, else `/var/lib/vm-container` for root
/// and `$XDG_CACHE_HOME/vm-container` (or `~/.cache/vm-container`) for
/// others.
pub fn default_dir() -> PathBuf {
    if rustix_is_root() {
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

fn rustix_is_root() -> bool {
    // the effective uid decides what the process may do
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Removes what interrupted runs staged: entries named `PREFIX<pid>` (or
/// ending in `-<pid>`) whose process is gone.
pub fn clean_stale(dir: &std::path::Path, prefix: &str) {
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

/// `check FILE`: parse and validate, print every error, no side effects.
pub fn check(file: &str, set: &[(String, String)]) -> Result<Plan> {
    let loaded = load::load(file, set)?;
    for w in &loaded.warnings {
        eprint!("{w}");
    }
    Ok(loaded.plan)
}

/// `strip FILE [-o OUT]`: the stripped config only; runs no expression.
pub fn strip(file: &str, set: &[(String, String)], out: Option<&str>) -> Result<()> {
    let loaded = load::load(file, set)?;
    output::write_text(out.unwrap_or("-"), loaded.plan.stripped.as_bytes(), true)
}

/// A run (`run FILE`, `FILE` or `--container FILE`): every expression in
/// order, then every output committed and the stripped config written.
pub fn run(opts: &RunOptions) -> Result<()> {
    let keys = trusted_keys(opts)?;
    let bytes = load::read_bytes(&opts.container)?;
    if opts.require_signatures {
        // the container is verified before it is parsed
        if keys.is_empty() {
            return Err(Failure::usage(
                "--require-signatures: no trusted key (give --trust KEY.pub or put keys in the trust directory)",
            ));
        }
        if opts.container == "-" {
            return Err(Failure::usage(
                "--require-signatures: a container read from standard input has no signature file",
            ));
        }
        let sig = PathBuf::from(format!("{}.sig", opts.container));
        let sigbytes = std::fs::read(&sig).map_err(|e| {
            Failure::run(format!(
                "{}: missing signature {}: {e}",
                opts.container,
                sig.display()
            ))
        })?;
        crate::sign::verify(&keys, &sigbytes, &bytes[..]).map_err(|e| {
            Failure::run(format!("{}: signature check failed: {e}", opts.container))
        })?;
    }
    let sign_key = match &opts.sign_key {
        Some(p) => Some(tools::secret_key(p, opts.sign_passphrase_file.as_deref())?),
        None => None,
    };
    let loaded = load::load_bytes(&opts.container, bytes, &opts.set)?;
    if opts.dry_run {
        for step in &loaded.plan.steps {
            println!("{}:{}: {}", loaded.name, step.span, step.action);
        }
        if let Some(out) = &opts.stripped {
            println!("write stripped config -> {out}");
        }
        return Ok(());
    }
    let mut log = log::Log::open(opts.log.as_deref())?;
    log.echo = opts.verbosity == Verbosity::Verbose;
    log.line(&format!(
        "start {} ({} expressions)",
        loaded.name,
        loaded.plan.steps.len()
    ))?;
    let dir = opts.dir.clone().unwrap_or_else(default_dir);
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    run::source_dirs_untouched(&loaded.plan, &loaded.name, &dir)?;
    for sub in ["cache", "work", "state"] {
        std::fs::create_dir_all(dir.join(sub))
            .map_err(|e| Failure::run(format!("--dir {}: {e}", dir.display())))?;
    }
    {
        // a run killed while committing is completed before anything else
        let _lock = crate::cache::lock::FileLock::exclusive(&dir.join("state").join("lock"))
            .map_err(|e| Failure::run(format!("--dir {}: {e}", dir.display())))?;
        outputs::recover(&dir.join("state"));
    }
    clean_stale(&dir.join("work"), "run-");
    let staging = dir.join("work").join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| Failure::run(format!("--dir {}: {e}", staging.display())))?;
    let mut runner = run::Runner::new(opts, &loaded.name, &dir, staging.clone(), log)?;
    runner.set_trust(
        inputs::Trust {
            keys,
            require_all: opts.require_signatures,
        },
        sign_key,
    );
    runner.commit = outputs::Commit::load(dir.join("state").join("created"));
    if let Some(out) = &opts.stripped {
        if out != "-" {
            let p = std::path::absolute(out).unwrap_or_else(|_| PathBuf::from(out));
            runner.commit.check_local(&p, opts.force, &loaded.name)?;
            if let (Some(d), Some(n)) = (p.parent(), p.file_name()) {
                clean_stale(d, &output::temp_prefix(n));
            }
        }
    }
    // a domain-start hook runs this again and again: when no input changed
    // and every output is as the last run left it, there is nothing to do
    let record_path = state::Record::path(&dir.join("state"), &opts.container, &opts.set);
    let fingerprint = runner.fingerprint(&loaded.plan, &loaded.text)?;
    let previous = state::Record::load(&record_path);
    runner.date(&loaded.plan, previous.as_ref());
    if let Some(rec) = &previous {
        runner.previous_images = rec.images.iter().cloned().collect();
        runner.commit.previous = rec
            .outputs
            .iter()
            .map(|(p, s, m)| (p.clone(), (*s, *m)))
            .collect();
        if rec.inputs == fingerprint
            && rec.outputs_intact()
            && runner.remotes_intact(&loaded.plan, &rec.remotes)
        {
            // a stream (standard output, a FIFO) gets the config every run
            if let Some(out) = opts.stripped.as_deref().filter(|o| {
                *o == "-" || matches!(output::dest(Path::new(o)), Ok(output::Dest::Stream(_)))
            }) {
                output::write_text(out, loaded.plan.stripped.as_bytes(), true)?;
            }
            runner
                .log
                .line("up to date: no input changed since the last run")?;
            if opts.verbosity != Verbosity::Quiet {
                eprintln!("{}: up to date", loaded.name);
            }
            let _ = std::fs::remove_dir_all(&staging);
            return Ok(());
        }
    }
    // only Xen statements changed: every image and archive is as the
    // last run left it and would be made again the same, so only the
    // stripped config is written
    let xen_only = previous.as_ref().filter(|rec| {
        rec.plan_inputs.is_some()
            && rec.plan_inputs == runner.plan_inputs
            && rec.outputs_intact()
            && runner.remotes_intact(&loaded.plan, &rec.remotes)
    });
    let planned = match xen_only {
        Some(rec) => {
            for (p, _, _) in &rec.outputs {
                runner.commit.keep(p.clone());
            }
            runner.image_digests = rec.images.iter().cloned().collect();
            runner.commit.remotes = rec.remotes.clone();
            if opts.verbosity != Verbosity::Quiet {
                eprintln!(
                    "{}: only Xen statements changed; writing the stripped config",
                    loaded.name
                );
            }
            runner
                .log
                .line("only Xen statements changed: every other output kept")
        }
        None => runner.run_plan(&loaded.plan),
    };
    let result = planned.and_then(|()| {
        let stripped = opts
            .stripped
            .as_deref()
            .map(|o| (o, loaded.plan.stripped.as_bytes()));
        // one commit at a time per --dir: the record of created outputs is
        // shared by every domain using it
        let _lock = crate::cache::lock::FileLock::exclusive(&dir.join("state").join("lock"))
            .map_err(|e| Failure::run(format!("--dir {}: {e}", dir.display())))?;
        let mut commit = std::mem::take(&mut runner.commit);
        commit
            .created
            .extend(outputs::Commit::load(dir.join("state").join("created")).created);
        let r = commit.run(&mut runner.log, stripped);
        runner.commit = commit;
        r
    });
    if result.is_ok() || runner.commit.partial {
        // a kept output written again (the stripped config) counts once
        let mut seen = std::collections::BTreeSet::new();
        let outputs = runner
            .commit
            .committed
            .iter()
            .filter(|p| seen.insert(p.to_path_buf()))
            .filter_map(|p| state::stamp(p).map(|(s, m)| (p.clone(), s, m)))
            .collect();
        let rec = state::Record {
            // a commit that failed halfway: what it changed is recorded,
            // and the next run is never `up to date`
            inputs: if result.is_ok() {
                fingerprint
            } else {
                "incomplete".to_string()
            },
            outputs,
            images: runner.image_digests.clone().into_iter().collect(),
            remotes: runner.commit.remotes.clone(),
            dated: runner.dated.clone(),
            plan_inputs: runner.plan_inputs.clone(),
        };
        if let Err(e) = rec.save(&record_path) {
            eprintln!("warning: {}: {e}", record_path.display());
        }
    }
    if result.is_err() {
        runner.commit.abandon();
        let _ = runner.log.line(if runner.commit.partial {
            "failed; committed in part"
        } else {
            "failed; nothing committed"
        });
    } else {
        runner.log.line("done")?;
    }
    let _ = std::fs::remove_dir_all(&staging);
    result
}
