//! The `vm-container` command: argument parsing and dispatch only; every
//! error is rendered once, here.

use clap::{ArgAction, Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use vm_container::exec::{self, tools, Failure, RunOptions, Verbosity};

#[derive(Parser, Debug)]
#[command(
    name = "vm-container",
    version,
    about = "Compile a Xen domain container file into a ready domain",
    long_about = "Compile a Xen domain container file into a ready domain: fetch cpio.gz trees, \
build sparse ext3 images, customise files, verify signatures, publish forks and patches, \
and write the stripped Xen config that `xl create` takes.\n\n\
Legacy form:  vm-container --container my-domain --stripped my-config --log /var/log/domain --dir /var/images",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The container file (`-` = standard input)
    #[arg(long, value_name = "FILE", required = true)]
    container: Option<String>,
    /// Write the stripped Xen config there (`-` = standard output)
    #[arg(long, value_name = "OUT")]
    stripped: Option<String>,
    /// Limit of one whole transfer, headers and body (default 1800)
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Option<std::time::Duration>,
    #[command(flatten)]
    flags: RunFlags,
}

/// The options of a run, shared by the legacy form and `boot`.
#[derive(Args, Debug)]
struct RunFlags {
    /// Append a plain-text log of every action
    #[arg(long, value_name = "FILE")]
    log: Option<std::path::PathBuf>,
    /// Working directory: download cache, expanded trees, staging, state
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    vars: SetArgs,
    /// Print the plan (every action with its source line); change nothing
    #[arg(long)]
    dry_run: bool,
    /// Touch no network; use the verified copies in the cache
    #[arg(long)]
    offline: bool,
    /// If revalidating a cached artifact fails, use the cached copy with a warning
    #[arg(long)]
    allow_stale: bool,
    /// Allow replacing output files that vm-container did not create
    #[arg(long)]
    force: bool,
    /// Largest download accepted (e.g. 2G); without it only the free space of --dir bounds one
    #[arg(long, value_name = "SIZE", value_parser = vm_container::parser::analyze::parse_size)]
    max_download: Option<u64>,
    /// Trusted public key (repeatable)
    #[arg(long = "trust", value_name = "PUBKEY")]
    trust: Vec<PathBuf>,
    /// Every *.pub in this directory is trusted too
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/etc/vm-container/trusted.d"
    )]
    trust_dir: PathBuf,
    /// Every fetched artifact and the container file must carry a valid signature
    #[arg(long)]
    require_signatures: bool,
    /// Sign everything this run publishes: URI.sig beside each
    #[arg(long, value_name = "SECKEY")]
    sign_key: Option<PathBuf>,
    /// The passphrase of an encrypted --sign-key, in a file
    #[arg(long, value_name = "FILE")]
    sign_passphrase_file: Option<PathBuf>,
    /// Progress bars on stderr for long transfers and image writes
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    progress: String,
    /// Quieter
    #[arg(short, long, action = ArgAction::SetTrue)]
    quiet: bool,
    /// Chattier
    #[arg(short, long, action = ArgAction::SetTrue)]
    verbose: bool,
}

#[derive(Args, Debug, Clone, Default)]
struct SetArgs {
    /// Template variable (repeatable): `${NAME}` becomes VALUE
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    set: Vec<(String, String)>,
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    let (n, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected NAME=VALUE"))?;
    if n.is_empty() {
        return Err(format!("`{s}`: the name is empty"));
    }
    Ok((n.to_string(), v.to_string()))
}

fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(std::time::Duration::from_secs(n)),
        _ => Err(format!("`{s}`: expected a whole number of seconds above 0")),
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and validate; print every error with file:line:col; no side effects
    Check {
        file: String,
        #[command(flatten)]
        vars: SetArgs,
    },
    /// Print (or write) the stripped config only; runs no expression
    Strip {
        file: String,
        #[command(flatten)]
        vars: SetArgs,
        /// Write to OUT instead of standard output
        #[arg(short = 'o', value_name = "OUT")]
        out: Option<String>,
    },
    /// Pack a directory into a newc cpio.gz archive at URI (what [create] does)
    Pack { dir: PathBuf, uri: String },
    /// Unified diff between two trees (directory, cpio.gz archive or ext2/3/4 image)
    Diff {
        old: PathBuf,
        new: PathBuf,
        /// Where to write the patch (`-` = standard output)
        #[arg(short = 'o', value_name = "PATCH", default_value = "-")]
        out: String,
    },
    /// List a directory of an ext2/3/4 image without mounting it
    Ls {
        image: PathBuf,
        /// A path inside the image (any bytes, not only UTF-8)
        path: Option<OsString>,
    },
    /// Print a file of an ext2/3/4 image without mounting it
    Cat { image: PathBuf, path: OsString },
    /// Make a key pair (signify format, also read by minisign)
    Keygen {
        #[arg(short = 'p', value_name = "KEY.pub")]
        public: PathBuf,
        #[arg(short = 's', value_name = "KEY.sec")]
        secret: PathBuf,
        #[arg(short = 'c', value_name = "COMMENT", default_value = "vm-container")]
        comment: String,
        /// Encrypt the secret key with the passphrase in this file
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Sign files: writes FILE.sig beside each
    Sign {
        #[arg(short = 's', value_name = "KEY.sec")]
        secret: PathBuf,
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Build the domain if CONFIG is a container, then boot it under QEMU
    /// (direct kernel boot) and watch its console
    Boot {
        /// A stripped Xen config or a container file
        config: String,
        #[command(flatten)]
        flags: Box<RunFlags>,
        /// Give up (exit 1) after S seconds
        #[arg(long, value_name = "S", default_value = "120", value_parser = parse_timeout)]
        timeout: f64,
        /// Succeed once TEXT has appeared on the console (repeatable: all of them)
        #[arg(long, value_name = "TEXT")]
        expect: Vec<String>,
        /// Write the console to FILE instead of standard output
        #[arg(long, value_name = "FILE")]
        console: Option<PathBuf>,
        /// KVM when it works here, else TCG (emulation)
        #[arg(long, value_name = "ACCEL", default_value = "auto", value_parser = ["auto", "kvm", "tcg"])]
        accel: String,
    },
    /// Verify FILE.sig for each file with a public key
    Verify {
        #[arg(short = 'p', value_name = "KEY.pub")]
        public: Vec<PathBuf>,
        /// Trusted public key (repeatable)
        #[arg(long = "trust", value_name = "KEY.pub")]
        trust: Vec<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

impl RunFlags {
    fn options(self, container: String, stripped: Option<String>) -> RunOptions {
        let r = self;
        RunOptions {
            container,
            stripped,
            log: r.log,
            dir: r.dir,
            set: r.vars.set,
            dry_run: r.dry_run,
            offline: r.offline,
            allow_stale: r.allow_stale,
            force: r.force,
            trust: r.trust,
            trust_dir: Some(r.trust_dir),
            require_signatures: r.require_signatures,
            sign_key: r.sign_key,
            sign_passphrase_file: r.sign_passphrase_file,
            // `boot` has a --timeout of its own (the guest's); transfers
            // then keep their default deadline
            timeout: None,
            max_download: r.max_download,
            verbosity: if r.quiet {
                Verbosity::Quiet
            } else if r.verbose {
                Verbosity::Verbose
            } else {
                Verbosity::Normal
            },
        }
    }
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 && t <= 1e6 => Ok(t),
        _ => Err(format!(
            "`{s}`: expected a number of seconds (0 < S <= 1000000)"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = match &cli.command {
        Some(Command::Boot { flags, .. }) => flags,
        _ => &cli.run.flags,
    };
    // `-q` silences the automatic bars; `--progress always` still shows them
    vm_container::progress::set(match (flags.quiet, flags.progress.as_str()) {
        (_, "always") => vm_container::progress::When::Always,
        (true, _) | (_, "never") => vm_container::progress::When::Never,
        _ => vm_container::progress::When::Auto,
    });
    let result = match cli.command {
        Some(Command::Check { file, vars }) => exec::check(&file, &vars.set).map(|plan| {
            println!(
                "{file}: ok ({} expression{}, {} Xen setting{})",
                plan.steps.len(),
                if plan.steps.len() == 1 { "" } else { "s" },
                plan.settings.len(),
                if plan.settings.len() == 1 { "" } else { "s" }
            );
        }),
        Some(Command::Strip { file, vars, out }) => exec::strip(&file, &vars.set, out.as_deref()),
        Some(Command::Pack { dir, uri }) => tools::pack(&dir, &uri),
        Some(Command::Diff { old, new, out }) => tools::diff_trees(&old, &new, &out).map(|_| ()),
        Some(Command::Ls { image, path }) => tools::ls(&image, path.as_deref()),
        Some(Command::Cat { image, path }) => tools::cat(&image, &path),
        Some(Command::Keygen {
            public,
            secret,
            comment,
            passphrase_file,
        }) => tools::keygen(&public, &secret, &comment, passphrase_file.as_deref()),
        Some(Command::Sign {
            secret,
            passphrase_file,
            files,
        }) => tools::sign_files(&secret, passphrase_file.as_deref(), &files),
        Some(Command::Verify {
            public,
            trust,
            files,
        }) => {
            let keys: Result<Vec<_>, _> = public
                .iter()
                .chain(trust.iter())
                .map(|p| {
                    vm_container::sign::PublicKey::read_file(p)
                        .map_err(|e| Failure::usage(e.to_string()))
                })
                .collect();
            keys.and_then(|k| tools::verify_files(&k, &files))
        }
        Some(Command::Boot {
            config,
            flags,
            timeout,
            expect,
            console,
            accel,
        }) => exec::boot::boot(&exec::boot::BootOptions {
            run: flags.options(config, None),
            timeout: std::time::Duration::from_secs_f64(timeout),
            expect,
            console,
            accel: match accel.as_str() {
                "kvm" => exec::boot::AccelChoice::Kvm,
                "tcg" => exec::boot::AccelChoice::Tcg,
                _ => exec::boot::AccelChoice::Auto,
            },
        }),
        None => {
            let r = cli.run;
            let mut opts = r.flags.options(r.container.unwrap_or_default(), r.stripped);
            opts.timeout = r.timeout;
            exec::run(&opts)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, message }) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}
