//! The executor: the only layer that orchestrates I/O. It loads a container
//! file, asks the parser for a plan, and carries the plan out with the
//! format and transport modules.

pub mod atomic;
pub mod boot;
pub mod budget;
pub mod commit;
pub mod error;
pub mod formats;
pub mod holders;
pub mod image;
pub mod inputs;
pub mod load;
pub mod log;
pub mod pending;
pub mod run;
pub mod state;
pub mod tools;
pub mod workdir;
pub mod worktree;

use crate::parser::plan::Plan;
use std::path::PathBuf;

pub use error::Error;

pub type Result<T> = std::result::Result<T, Error>;

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
        keys.push(crate::sign::PublicKey::read_file(p).map_err(Error::refused)?);
    }
    let dir = opts
        .trust_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/etc/vm-container/trusted.d"));
    keys.extend(tools::keys_in_dir(&dir)?);
    Ok(keys)
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
    atomic::write_text(out.unwrap_or("-"), loaded.plan.stripped.as_bytes())
}

/// A run (`run FILE`, `FILE` or `--container FILE`): every expression in
/// order, then every output committed and the stripped config written.
pub fn run(opts: &RunOptions) -> Result<()> {
    run_status(opts).map(|_| ())
}

/// What `--dry-run` exits with when a run would change something.
pub const PENDING: u8 = 3;

/// As [`run`], returning the exit status of a success: 0, or [`PENDING`]
/// when `--dry-run` finds that a run would change an output.
pub fn run_status(opts: &RunOptions) -> Result<u8> {
    let keys = trusted_keys(opts)?;
    let bytes = load::read_bytes(&opts.container)?;
    if opts.require_signatures {
        // the container is verified before it is parsed
        verify_container(opts, &keys, &bytes)?;
    }
    let sign_key = match &opts.sign_key {
        Some(p) => Some(tools::secret_key(p, opts.sign_passphrase_file.as_deref())?),
        None => None,
    };
    let loaded = load::load_bytes(&opts.container, bytes, &opts.set)?;
    if opts.dry_run {
        return pending::report(opts, &loaded).map(|p| if p { PENDING } else { 0 });
    }
    let mut log = log::Log::open(opts.log.as_deref())?;
    log.echo = opts.verbosity == Verbosity::Verbose;
    log.line(&format!(
        "start {} ({} expressions)",
        loaded.name,
        loaded.plan.steps.len()
    ))?;
    let dir = opts.dir.clone().unwrap_or_else(workdir::default_dir);
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    run::source_dirs_untouched(&loaded.plan, &loaded.name, &dir)?;
    let work = workdir::WorkDir::open(&dir)?;
    let result = run::Runner::new(run::Context {
        opts,
        name: &loaded.name,
        work: &work,
        log,
        trust: inputs::Trust {
            keys,
            require_all: opts.require_signatures,
        },
        sign_key,
    })
    .and_then(|mut runner| runner.carry_out(&loaded));
    work.remove_staging();
    result.map(|()| 0)
}

/// `--require-signatures`: the container's own signature, checked
/// against the trusted keys.
fn verify_container(
    opts: &RunOptions,
    keys: &[crate::sign::PublicKey],
    bytes: &[u8],
) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::usage(
            "--require-signatures: no trusted key (give --trust KEY.pub or put keys in the trust directory)",
        ));
    }
    if opts.container == "-" {
        return Err(Error::usage(
            "--require-signatures: a container read from standard input has no signature file",
        ));
    }
    let sig = PathBuf::from(format!("{}.sig", opts.container));
    let sigbytes = std::fs::read(&sig).map_err(|e| {
        Error::run(format!(
            "{}: missing signature {}: {e}",
            opts.container,
            sig.display()
        ))
    })?;
    crate::sign::verify(keys, &sigbytes, bytes)
        .map_err(|e| Error::run(format!("{}: signature check failed: {e}", opts.container)))?;
    Ok(())
}
