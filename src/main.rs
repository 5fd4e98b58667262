//! The `vm-container` command: argument parsing and dispatch only; every
//! error is rendered once, here.

use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use vm_container::exec::{self, tools, Error, RunOptions, Verbosity};

#[derive(Parser, Debug)]
#[command(
    name = "vm-container",
    version,
    about = "Compile a Xen domain container file into a ready domain",
    long_about = "Compile a Xen domain container file into a ready domain: fetch file-system trees (cpio or tar archives, raw, gzip, xz, zstd or bzip2, or directories), \
build sparse ext3 images, customise files, verify signatures, publish forks and patches, \
and write the stripped Xen config that `xl create` takes.\n\n\
Build a domain (the three forms are the same run):\n  \
vm-container run my-domain.vmc --stripped my-config\n  \
vm-container my-domain.vmc --stripped my-config\n  \
vm-container --container my-domain.vmc --stripped my-config",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

/// The run without a subcommand: `FILE` or `--container FILE`, and the
/// options of `run`.
#[derive(Args, Debug)]
#[group(id = "input", required = true, multiple = false, args = ["file", "container"])]
struct RunArgs {
    /// The container file (`-` = standard input); the same as `run FILE`.
    /// A file named like a subcommand is given as `./NAME`
    #[arg(value_name = "FILE")]
    file: Option<String>,
    /// The container file, as the paper spells it; the same as `FILE`
    #[arg(long, value_name = "FILE")]
    container: Option<String>,
    #[command(flatten)]
    opts: RunOnly,
}

/// What a run takes beside the container and `boot` does not.
#[derive(Args, Debug)]
struct RunOnly {
    /// Write the stripped Xen config there (`-` = standard output)
    /// [default: none: no config is written]
    #[arg(long, value_name = "OUT")]
    stripped: Option<String>,
    /// Limit of one whole transfer, headers and body [default: 1800]
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Option<std::time::Duration>,
    #[command(flatten)]
    flags: RunFlags,
}

impl RunOnly {
    fn options(self, container: String) -> RunOptions {
        let mut opts = self.flags.options(container, self.stripped);
        opts.timeout = self.timeout;
        opts
    }
}

/// The options of a run, shared by `run` (and `--container`) and `boot`.
#[derive(Args, Debug)]
struct RunFlags {
    /// Append a plain-text log of every action [default: none]
    #[arg(long, value_name = "FILE")]
    log: Option<std::path::PathBuf>,
    /// Working directory: download cache, expanded trees, staging, state
    /// [default: /var/lib/vm-container as root, else
    /// $XDG_CACHE_HOME/vm-container or ~/.cache/vm-container]
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    vars: SetArgs,
    /// Print the plan (every action with its source line), revalidate the
    /// inputs (unless --offline) and say per output what a run would
    /// rebuild and why; write nothing. Exits 0 when nothing would change,
    /// 3 when something would
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
    /// Largest download accepted (e.g. 2G) [default: none: only the free
    /// space of --dir bounds one]
    #[arg(long, value_name = "SIZE", value_parser = vm_container::parser::analyze::parse_size)]
    max_download: Option<u64>,
    /// Trusted public key (repeatable). With any trusted key (here or in
    /// --trust-dir) every fetched file must carry a valid signature
    #[arg(long = "trust", value_name = "PUBKEY")]
    trust: Vec<PathBuf>,
    /// Every *.pub in this directory is trusted too
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/etc/vm-container/trusted.d"
    )]
    trust_dir: PathBuf,
    /// Local input files and the container file itself must carry a valid
    /// signature too (fetched files need one whenever a key is trusted);
    /// with no trusted key, fail
    #[arg(long)]
    require_signatures: bool,
    /// Sign everything this run publishes: URI.sig beside each [default:
    /// none: nothing is signed]
    #[arg(long, value_name = "SECKEY")]
    sign_key: Option<PathBuf>,
    /// The passphrase of an encrypted --sign-key, in a file
    #[arg(long, value_name = "FILE")]
    sign_passphrase_file: Option<PathBuf>,
    /// The platform picked from an image index or manifest list
    #[arg(long, value_name = "OS/ARCH", default_value = "linux/amd64")]
    platform: String,
    /// Registry credentials in Docker's config.json format [default:
    /// none: anonymous, or the USER:PASSWORD of a docker:// URI]
    #[arg(long, value_name = "FILE")]
    registry_auth: Option<PathBuf>,
    /// A registry (HOST or HOST:PORT) reached over plain http; 127.0.0.1
    /// and localhost always are (repeatable)
    #[arg(long, value_name = "HOST")]
    insecure_registry: Vec<String>,
    /// Progress bars on stderr for transfers, archive passes and image
    /// writes, with the total and time left where the size is known; never
    /// when stderr is not a terminal (auto: unless -q; always: even with -q)
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    progress: String,
    /// Quieter: errors and warnings only
    #[arg(short, long, action = ArgAction::SetTrue)]
    quiet: bool,
    /// Chattier: every action as it runs
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
    /// Build the domain FILE describes: run its expressions, write the
    /// stripped config (the same as `--container FILE`)
    Run {
        /// The container file (`-` = standard input)
        file: String,
        #[command(flatten)]
        opts: Box<RunOnly>,
    },
    /// Parse and validate; print every error with file:line:col; no side effects
    Check {
        /// The container file (`-` = standard input)
        file: String,
        #[command(flatten)]
        vars: SetArgs,
    },
    /// Print (or write) the stripped config only; runs no expression
    Strip {
        /// The container file (`-` = standard input)
        file: String,
        #[command(flatten)]
        vars: SetArgs,
        /// Write to OUT instead of standard output
        #[arg(short = 'o', value_name = "OUT")]
        out: Option<String>,
    },
    /// Pack a directory into a newc cpio.gz archive at URI (what [create] does)
    Pack {
        /// The directory to pack
        dir: PathBuf,
        /// Where the archive goes: a path or a file://, ftp:// URI
        uri: String,
    },
    /// Unified diff between two trees (directory, cpio or tar archive, or ext2/3/4 image)
    ///
    /// Exit status as diff(1) has it: 0 the trees are the same, 1 they
    /// differ, 2 trouble (a tree unreadable, the patch not written).
    Diff {
        /// The old tree: a directory, archive, image or URI of one
        old: PathBuf,
        /// The new tree: a directory, archive, image or URI of one
        new: PathBuf,
        /// Where to write the patch (`-` = standard output)
        #[arg(short = 'o', value_name = "PATCH", default_value = "-")]
        out: String,
        /// Whose cache holds the trees given as URIs [default:
        /// /var/lib/vm-container as root, else $XDG_CACHE_HOME/vm-container]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// List a directory of an ext2/3/4 image (raw or qcow2) without mounting it
    Ls {
        /// The image
        image: PathBuf,
        /// The directory inside the image, any bytes, not only UTF-8
        /// [default: /]
        path: Option<OsString>,
    },
    /// Print a file of an ext2/3/4 image (raw or qcow2) without mounting it
    Cat {
        /// The image
        image: PathBuf,
        /// The file inside the image, any bytes, not only UTF-8
        path: OsString,
    },
    /// Make a key pair (signify format, also read by minisign)
    Keygen {
        /// Write the public key there
        #[arg(short = 'p', value_name = "KEY.pub")]
        public: PathBuf,
        /// Write the secret key there
        #[arg(short = 's', value_name = "KEY.sec")]
        secret: PathBuf,
        /// The comment line of both keys
        #[arg(short = 'c', value_name = "COMMENT", default_value = "vm-container")]
        comment: String,
        /// Encrypt the secret key with the passphrase in this file
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Sign files: writes FILE.sig beside each
    Sign {
        /// The secret key
        #[arg(short = 's', value_name = "KEY.sec")]
        secret: PathBuf,
        /// The passphrase of an encrypted secret key, in a file
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// The files to sign
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
        /// A public key (repeatable)
        #[arg(short = 'p', value_name = "KEY.pub")]
        public: Vec<PathBuf>,
        /// Trusted public key (repeatable)
        #[arg(long = "trust", value_name = "KEY.pub")]
        trust: Vec<PathBuf>,
        /// The files to verify
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

// `vm-container generate man|completions ...`, what `make install`
// installs: parsed apart from `Cli` so that neither the man pages nor the
// completions offer it.
#[derive(Parser, Debug)]
#[command(
    name = "vm-container-generate",
    bin_name = "vm-container generate",
    about = "Write the man pages or a shell's completions, generated from this command line"
)]
struct GenerateCli {
    #[command(subcommand)]
    what: Generate,
}

#[derive(Subcommand, Debug)]
enum Generate {
    /// DIR/vm-container.1 and DIR/vm-container-SUBCOMMAND.1 for each subcommand
    Man {
        /// Where to write it
        dir: PathBuf,
    },
    /// The completion script of SHELL, under the name SHELL loads it by
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
        /// Where to write it
        dir: PathBuf,
    },
}

/// Writes what `generate` asks for; the file names are the ones each
/// consumer looks up (man's section 1 with one page per subcommand as the
/// main page's SUBCOMMANDS section names them, bash-completion's command
/// name, zsh's `_command`, fish's `command.fish`).
fn generate(what: Generate) -> Result<(), Error> {
    let mut cmd = Cli::command();
    let dir = match &what {
        Generate::Man { dir } | Generate::Completions { dir, .. } => dir,
    };
    let io = |e: std::io::Error| Error::run(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let shell = match what {
        Generate::Man { .. } => return clap_mangen::generate_to(cmd, dir).map_err(io),
        Generate::Completions { shell, .. } => shell,
    };
    let name = match shell {
        clap_complete::Shell::Zsh => "_vm-container",
        clap_complete::Shell::Fish => "vm-container.fish",
        _ => "vm-container",
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "vm-container", &mut buf);
    if shell == clap_complete::Shell::Bash {
        // clap_complete's bash script spells a hyphenated command name two
        // ways: its dispatch loop says `vm__container__…`, its case labels
        // `vm__subcmd__container__…`, so nothing after a subcommand would
        // complete. One spelling for both.
        buf = String::from_utf8_lossy(&buf)
            .replace("vm__subcmd__container", "vm__container")
            .into_bytes();
    }
    std::fs::write(dir.join(name), buf).map_err(io)
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
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "generate") {
        let g = GenerateCli::parse_from(&args[1..]);
        return match generate(g.what) {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => {
                eprintln!("{}", render(&f));
                ExitCode::from(f.code())
            }
        };
    }
    let cli = Cli::parse_from(args);
    let flags = match &cli.command {
        Some(Command::Boot { flags, .. }) => flags,
        Some(Command::Run { opts, .. }) => &opts.flags,
        _ => &cli.run.opts.flags,
    };
    // `-q` silences the automatic bars; `--progress always` still shows them
    // (on a terminal only: a pipe or a log never gets control sequences)
    vm_container::progress::set(match (flags.quiet, flags.progress.as_str()) {
        (_, "always") => vm_container::progress::When::Always,
        (true, _) | (_, "never") => vm_container::progress::When::Never,
        _ => vm_container::progress::When::Auto,
    });
    let mut images = vm_container::oci::Settings {
        auth_file: flags.registry_auth.clone(),
        insecure: flags.insecure_registry.clone(),
        ..Default::default()
    };
    if let Err(e) = images.set_platform(&flags.platform) {
        eprintln!("--platform {e}");
        return ExitCode::from(2);
    }
    vm_container::oci::configure(images);
    // what a success exits with: only `diff` says more than 0
    let mut status = 0u8;
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
        Some(Command::Diff { old, new, out, dir }) => tools::diff_trees(&old, &new, &out, dir)
            .map(|changed| status = u8::from(changed))
            .map_err(|f| Error::Refused(Box::new(f))),
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
                .map(|p| vm_container::sign::PublicKey::read_file(p).map_err(Error::refused))
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
        Some(Command::Run { file, opts }) => exec::run_status(&opts.options(file)).map(|s| {
            status = s;
        }),
        None => {
            let r = cli.run;
            exec::run_status(&r.opts.options(r.file.or(r.container).unwrap_or_default()))
                .map(|s| status = s)
        }
    };
    match result {
        Ok(()) => ExitCode::from(status),
        Err(e) => {
            eprintln!("{}", render(&e));
            ExitCode::from(e.code())
        }
    }
}

/// What a failed command prints: rendered diagnostics as they are,
/// anything else after `error: `.
fn render(e: &Error) -> String {
    match e {
        Error::Diagnostics(text) => text.clone(),
        Error::Refused(inner) => render(inner),
        e => format!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of every subcommand explains itself in `--help`
    /// and in the man page.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id != "help" && id != "version" && a.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "vm-container", &mut missing);
        walk(
            &GenerateCli::command(),
            "vm-container generate",
            &mut missing,
        );
        assert!(missing.is_empty(), "no help text: {missing:?}");
        Cli::command().debug_assert();
        GenerateCli::command().debug_assert();
    }
}
