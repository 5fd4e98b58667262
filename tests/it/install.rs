//! `make install` into a DESTDIR: the binary, its man pages, the shell
//! completions and the hooks land where their consumers look, man-db
//! renders the pages, the completions work in a real bash, and
//! `scripts/setup.sh` refuses a Rust older than `rust-version`.

use crate::common;

use common::{root, tempdir};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Every subcommand a user sees.
const SUBCOMMANDS: [&str; 11] = [
    "run", "check", "strip", "pack", "diff", "ls", "cat", "keygen", "sign", "boot", "verify",
];

fn install(dest: &Path, prefix: &str) {
    make(dest, prefix, "install-files");
}

fn make(dest: &Path, prefix: &str, target: &str) {
    let out = Command::new("make")
        .current_dir(root())
        .args(["-s", target])
        // a built binary is installed as it is: cargo is never run
        .arg("CARGO=false")
        .arg(format!("BIN={}", env!("CARGO_BIN_EXE_vm-container")))
        .arg(format!("DESTDIR={}", dest.display()))
        .arg(format!("PREFIX={prefix}"))
        .output()
        .expect("make (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "make {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What man-db's `man -l` shows of a page, 80 columns wide; groff's
/// warnings fail the test.
fn render(page: &Path) -> String {
    let out = Command::new("man")
        .args(["--warnings", "-l", "-P", "cat"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("man (scripts/setup.sh installs man-db)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "man -l {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn make_install_puts_every_file_where_its_consumer_looks() {
    let t = tempdir();
    let d = t.path();
    install(d, "/usr/local");
    let bin = d.join("usr/local/bin/vm-container");
    assert_eq!(mode(&bin), 0o755);
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("vm-container "));

    // one page per subcommand, as the main page's SUBCOMMANDS names them,
    // each rendered by man-db without a warning
    let man1 = d.join("usr/local/share/man/man1");
    let mut pages: Vec<String> = fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    let mut want: Vec<String> = SUBCOMMANDS
        .iter()
        .map(|s| format!("vm-container-{s}.1"))
        .collect();
    want.push("vm-container.1".into());
    want.sort();
    assert_eq!(pages, want);
    for page in &pages {
        assert_eq!(mode(&man1.join(page)), 0o644, "{page}");
        let text = render(&man1.join(page));
        assert!(text.contains("SYNOPSIS"), "{page}: {text}");
        assert!(!text.contains("generate"), "{page}: {text}");
    }
    let main = render(&man1.join("vm-container.1"));
    assert!(main.contains("vm-container run my-domain.vmc"), "{main}");
    for sub in SUBCOMMANDS {
        assert!(
            main.contains(&format!("vm-container-{sub}(1)")),
            "{sub}: {main}"
        );
    }
    let diff = render(&man1.join("vm-container-diff.1"));
    assert!(
        diff.contains("0 the trees are the same, 1 they differ"),
        "{diff}"
    );

    for f in [
        "usr/local/share/bash-completion/completions/vm-container",
        "usr/local/share/zsh/site-functions/_vm-container",
        "usr/local/share/fish/vendor_completions.d/vm-container.fish",
    ] {
        assert_eq!(mode(&d.join(f)), 0o644, "{f}");
    }
    let zsh =
        fs::read_to_string(d.join("usr/local/share/zsh/site-functions/_vm-container")).unwrap();
    assert!(zsh.starts_with("#compdef vm-container"), "{zsh}");

    let unit = d.join("etc/systemd/system/vm-container@.service");
    assert_eq!(mode(&unit), 0o644);
    assert!(fs::read_to_string(&unit)
        .unwrap()
        .contains("ExecStartPre=/usr/local/bin/vm-container "));
    let hook = d.join("etc/xen/scripts/block-vmcontainer");
    assert_eq!(mode(&hook), 0o755);
    assert_eq!(
        fs::read(&hook).unwrap(),
        fs::read(root().join("examples/hooks/block-vmcontainer")).unwrap()
    );
    // nothing else, and nothing outside DESTDIR (it is the only root given)
    assert_eq!(files(d).len(), 6 + pages.len(), "{:?}", files(d));

    // and `make uninstall` takes every one of them away again
    make(d, "/usr/local", "uninstall");
    assert_eq!(files(d), Vec::<std::path::PathBuf>::new());
}

/// Every file under `d` that is not a directory.
fn files(d: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![d.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                found.push(e.path());
            }
        }
    }
    found
}

#[test]
fn another_prefix_is_written_into_the_hooks() {
    let t = tempdir();
    // `install` itself, which builds only a missing binary
    make(t.path(), "/opt/vmc", "install");
    assert!(t.path().join("opt/vmc/bin/vm-container").exists());
    let unit =
        fs::read_to_string(t.path().join("etc/systemd/system/vm-container@.service")).unwrap();
    assert!(
        unit.contains("ExecStartPre=/opt/vmc/bin/vm-container "),
        "{unit}"
    );
    assert!(!unit.contains("/usr/local"), "{unit}");
    let hook = fs::read_to_string(t.path().join("etc/xen/scripts/block-vmcontainer")).unwrap();
    assert!(hook.contains("${VMC_BIN:-/opt/vmc/bin/vm-container}"));
}

/// Asks bash's completion function what it offers for the words typed.
fn complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{}'\n\
         spec=$(complete -p vm-container) || exit 3\n\
         fn=${{spec##*-F }}; fn=${{fn%% *}}\n\
         COMP_WORDS=({})\n\
         COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}\n\
         \"$fn\" vm-container \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" ")
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &prog])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_options() {
    let t = tempdir();
    install(t.path(), "/usr");
    let script = t
        .path()
        .join("usr/share/bash-completion/completions/vm-container");
    let first = complete(&script, &["vm-container", ""]);
    for sub in ["check", "boot", "diff", "run", "--container"] {
        assert!(first.iter().any(|w| w == sub), "{sub} not in {first:?}");
    }
    let after_check = complete(&script, &["vm-container", "check", "--"]);
    assert!(after_check.iter().any(|w| w == "--set"), "{after_check:?}");
    assert!(!after_check.iter().any(|w| w == "boot"), "{after_check:?}");
    assert!(!first.iter().any(|w| w == "generate"), "{first:?}");
    assert_eq!(
        complete(&script, &["vm-container", "run", "--st"]),
        ["--stripped"]
    );
    let progress = complete(&script, &["vm-container", "boot", "--progress", ""]);
    assert_eq!(progress, ["auto", "always", "never"]);
}

/// Runs a shell with a scratch home, so that neither zsh nor fish reads
/// or writes the user's own configuration.
fn shell(home: &Path, argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .output()
        .unwrap_or_else(|e| panic!("{} (scripts/setup.sh installs it): {e}", argv[0]));
    assert!(
        out.status.success(),
        "{argv:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn zsh_loads_its_completion() {
    let t = tempdir();
    install(t.path(), "/usr");
    let f = t.path().join("usr/share/zsh/site-functions/_vm-container");
    let file = f.to_str().unwrap();
    shell(t.path(), &["zsh", "-n", file]);
    // compinit, then the script as a completion file: it registers itself
    // for vm-container and defines the function that completes it
    let prog = format!(
        "autoload -U compinit && compinit -u -d \"$HOME/zcompdump\" && source '{file}' && \
         print -r -- \"comp=${{_comps[vm-container]}}\" && \
         (( $+functions[_vm-container] )) && print defined && \
         functions _vm-container_commands"
    );
    let out = shell(t.path(), &["zsh", "-f", "-c", &prog]);
    assert!(out.contains("comp=_vm-container"), "{out}");
    assert!(out.contains("defined"), "{out}");
    // the subcommands it offers, each with its description
    for sub in SUBCOMMANDS {
        assert!(out.contains(&format!("'{sub}:")), "{sub}: {out}");
    }
    assert!(!out.contains("'generate:"), "{out}");
}

#[test]
fn fish_completes_subcommands() {
    let t = tempdir();
    install(t.path(), "/usr");
    let f = t
        .path()
        .join("usr/share/fish/vendor_completions.d/vm-container.fish");
    let file = f.to_str().unwrap();
    shell(t.path(), &["fish", "--no-config", "--no-execute", file]);
    let offered = |line: &str| -> Vec<String> {
        let prog = format!("source '{file}'; complete -C '{line}'");
        shell(t.path(), &["fish", "--no-config", "-c", &prog])
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .collect()
    };
    let first = offered("vm-container ");
    for sub in SUBCOMMANDS {
        assert!(first.iter().any(|w| w == sub), "{sub} not in {first:?}");
    }
    assert!(!first.iter().any(|w| w == "generate"), "{first:?}");
    // fish sorts what it offers
    let progress = offered("vm-container boot --progress ");
    assert_eq!(progress, ["always", "auto", "never"]);
    let run = offered("vm-container run --st");
    assert!(run.iter().any(|w| w == "--stripped"), "{run:?}");
}

/// Debian 12's own rustc (1.63.0) is refused before anything is
/// installed, with the way to a newer one, even beside a new cargo.
#[test]
fn setup_refuses_debian_12_rust() {
    let t = tempdir();
    for (tool, version) in [("rustc", "rustc 1.63.0"), ("cargo", "cargo 1.95.0")] {
        let p = t.path().join(tool);
        fs::write(&p, format!("#!/bin/sh\necho '{version}'\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:/usr/bin:/bin", t.path().display());
    let out = Command::new("bash")
        .arg(root().join("scripts/setup.sh"))
        .arg("--demo")
        .env("PATH", path)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("is 1.63.0, older than the Rust 1.88"), "{e}");
    assert!(e.contains("rustup"), "{e}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("installing"));
}
