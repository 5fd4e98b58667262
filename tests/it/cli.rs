//! The binary as users run it: exit statuses, messages, both command forms.

use crate::common;

use common::{bin, root, tempdir};
use std::fs;
use std::path::{Path, PathBuf};

fn example(name: &str) -> String {
    root()
        .join("examples/containers")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn check_reports_ok_and_counts() {
    let out = bin()
        .args(["check", &example("fido.vmc")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("ok (4 expressions, 8 Xen settings)"), "{s}");
}

#[test]
fn check_errors_exit_2_with_location_and_caret() {
    let t = tempdir();
    let f = t.path().join("bad.vmc");
    fs::write(&f, "name = 'x'\n[image /img/a 50XB][end]\n[frob][end]\n").unwrap();
    let out = bin().args(["check", f.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("bad.vmc:2:15: error: size `50XB`"), "{e}");
    assert!(e.contains("  |               ^^^^"), "{e}");
    assert!(
        e.contains("bad.vmc:3:2: error: unknown expression keyword `frob`"),
        "{e}"
    );
    assert!(e.contains("2 errors found; nothing was run"), "{e}");
    assert!(out.stdout.is_empty());
}

#[test]
fn strip_writes_to_a_file_or_stdout() {
    let t = tempdir();
    let out_file = t.path().join("fido.cfg");
    let st = bin()
        .args(["strip", &example("template.vmc"), "--set", "name=rex", "-o"])
        .arg(&out_file)
        .status()
        .unwrap();
    assert!(st.success());
    let text = fs::read_to_string(&out_file).unwrap();
    assert!(text.contains("name = \"rex\""));
    assert!(text.contains("'file:/var/images/rex-root,xvda1,w'"));
    assert!(!text.contains('['.to_string().as_str()) || !text.contains("[end]"));
}

fn c_path(t: &tempfile::TempDir) -> std::path::PathBuf {
    t.path().join("my-domain")
}

#[test]
fn container_option_writes_the_stripped_config_atomically_and_logs() {
    let t = tempdir();
    fs::write(c_path(&t), "name = \"fido\"\nmemory = 256\n").unwrap();
    let cfg = t.path().join("my-config");
    fs::write(&cfg, "old").unwrap();
    let log = t.path().join("domain.log");
    let run = |force: bool| {
        let mut c = bin();
        c.arg("--container")
            .arg(c_path(&t))
            .arg("--stripped")
            .arg(&cfg)
            .arg("--log")
            .arg(&log)
            .arg("--dir")
            .arg(t.path().join("images"));
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    // my-config was not made by vm-container: it is kept without --force
    let out = run(false);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use --force"));
    assert_eq!(fs::read_to_string(&cfg).unwrap(), "old");
    assert!(run(true).status.success());
    // now it is ours: a rerun replaces it without --force
    let st = run(false).status;
    assert!(st.success());
    assert_eq!(
        fs::read_to_string(&cfg).unwrap(),
        "name = \"fido\"\nmemory = 256\n"
    );
    let l = fs::read_to_string(&log).unwrap();
    assert!(l.contains("start ") && l.contains("done"), "{l}");
    // no temporary left behind
    let names: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().contains("tmp")),
        "{names:?}"
    );
}

#[test]
fn a_bad_container_changes_nothing() {
    let t = tempdir();
    let c = t.path().join("c");
    fs::write(
        &c,
        "name = 'x'\n[image /nonexistent/dir/img 5M][end]\nMemory = 1\n",
    )
    .unwrap();
    let cfg = t.path().join("out.cfg");
    fs::write(&cfg, "before").unwrap();
    let out = bin()
        .arg("--container")
        .arg(&c)
        .arg("--stripped")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fs::read_to_string(&cfg).unwrap(), "before");
}

#[test]
fn dry_run_prints_the_plan_with_lines() {
    let out = bin()
        .args(["--container", &example("fido.vmc"), "--dry-run"])
        .output()
        .unwrap();
    // never run: every output pending
    assert_eq!(out.status.code(), Some(3));
    let s = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines[0].contains("fido.vmc:16:1: create "), "{s}");
    assert!(
        lines[1].contains("fido.vmc:19:1: replace /etc/HOSTNAME"),
        "{s}"
    );
    assert!(
        lines[2].contains(":29:1: image ") && lines[3].contains(":30:1: populate image"),
        "{s}"
    );
}

#[test]
fn container_from_stdin() {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = bin()
        .args(["--container", "-", "--stripped", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"memory = 128\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"memory = 128\n");
}

#[test]
fn usage_errors_exit_2() {
    let out = bin().args(["--stripped", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin().args(["check", "/nonexistent/file"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file: cannot read"));
}

#[test]
fn check_warns_when_a_disk_names_a_created_image_by_a_relative_path() {
    let t = tempdir();
    let f = t.path().join("rel.vmc");
    fs::write(
        &f,
        "name = 'rel'\ndisk = [ 'phy:/dev/vg/swap,xvda2,w',\n  'file:img/${name}-root,xvda1,w' ]\n\
         [image img/${name}-root 8M][end]\n",
    )
    .unwrap();
    let out = bin().args(["check", f.to_str().unwrap()]).output().unwrap();
    // a warning, not an error
    assert_eq!(out.status.code(), Some(0));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("rel.vmc:3:3: warning: disk target `img/rel-root` is relative"),
        "{e}"
    );
    assert!(
        e.contains(&format!("{}", t.path().join("img/rel-root").display())),
        "{e}"
    );
    assert!(e.contains("  |   ^^^^^"), "{e}");
    assert_eq!(e.matches("warning:").count(), 1, "{e}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("rel.vmc: ok (1 expression"));

    // absolute, or `--set` to an absolute directory: no warning
    fs::write(
        &f,
        "dir = 'img'\ndisk = [ 'file:${dir}/a,xvda1,w' ]\n[image ${dir}/a 8M][end]\n",
    )
    .unwrap();
    let out = bin().args(["check", f.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("rel.vmc:2:10: warning:"));
    let abs = format!("dir={}", t.path().join("img").display());
    let out = bin()
        .args(["check", f.to_str().unwrap(), "--set", &abs])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // a relative disk that is no image of this container is left alone
    fs::write(&f, "disk = [ 'file:other,xvda1,w' ]\n[image a 8M][end]\n").unwrap();
    let out = bin().args(["check", f.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_examples_check_without_warnings() {
    for name in ["fido.vmc", "template.vmc", "paper-figures.vmc"] {
        let out = bin().args(["check", &example(name)]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}");
        assert!(
            out.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn run_subcommand_is_the_container_form() {
    let t = tempdir();
    let plan = |args: &[&str]| {
        let out = bin()
            .args(args)
            .args(["--dry-run", "--dir"])
            .arg(t.path())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "never run: every output pending"
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let fido = example("fido.vmc");
    let a = plan(&["run", &fido, "--stripped", "-"]);
    let b = plan(&["--container", &fido, "--stripped", "-"]);
    let c = plan(&[&fido, "--stripped", "-"]);
    assert!(a.contains("fido.vmc:16:1: create "), "{a}");
    assert_eq!(a, b);
    assert_eq!(a, c);
    // a subcommand's name is never taken for a container file
    let out = bin().args(["check", &fido]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok ("));
    // `run` wants its file, and the two forms do not mix
    let out = bin().arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    for mixed in [
        ["run", &fido, "--container", &fido],
        [&fido, "--container", &fido, "--dry-run"],
    ] {
        let out = bin().args(mixed).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{mixed:?}");
    }
    // with neither, nothing runs
    let out = bin().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("<FILE|--container <FILE>>"));
}

/// Trees `a` and `same` alike, `b` different, in `w`.
fn three_trees(w: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let tree = |name: &str, text: &str| {
        let d = w.join(name);
        fs::create_dir_all(d.join("etc")).unwrap();
        fs::write(d.join("etc/hostname"), text).unwrap();
        d
    };
    (
        tree("a", "fido\n"),
        tree("same", "fido\n"),
        tree("b", "rex\n"),
    )
}

/// `diff`'s exit status is diff(1)'s: GNU `diff -r` on the same two
/// directories says the same (0 the same, 1 different, 2 trouble), and a
/// tree given as an archive answers as its directory does.
#[test]
fn diff_exits_like_gnu_diff() {
    let t = tempdir();
    let w = t.path();
    let (a, same, other) = three_trees(w);
    let missing = w.join("missing");
    let archive = w.join("a.cpio.gz");
    let out = bin().arg("pack").arg(&a).arg(&archive).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    for (old, new, want) in [
        (&a, &same, 0),
        (&a, &other, 1),
        (&a, &missing, 2),
        (&missing, &a, 2),
    ] {
        let gnu = std::process::Command::new("diff")
            .arg("-r")
            .args([old, new])
            .output()
            .expect("diff (diffutils)");
        assert_eq!(gnu.status.code(), Some(want), "GNU diff {old:?} {new:?}");
        let ours = bin().arg("diff").args([old, new]).output().unwrap();
        assert_eq!(ours.status.code(), Some(want), "{old:?} {new:?}: {ours:?}");
        // standard output carries the patch only when there is one
        assert_eq!(ours.stdout.is_empty(), want != 1, "{ours:?}");
        assert_eq!(ours.stderr.is_empty(), want != 2, "{ours:?}");
    }
    for (new, want) in [(&same, 0), (&other, 1)] {
        let ours = bin().arg("diff").arg(&archive).arg(new).output().unwrap();
        assert_eq!(ours.status.code(), Some(want), "{ours:?}");
    }
    // a patch that cannot be written is trouble too, whatever the trees
    let out = bin()
        .arg("diff")
        .args([&a, &other])
        .arg("-o")
        .arg(w.join("no/such/dir/p.patch"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // a usage error is clap's 2
    let out = bin().args(["diff", "only-one"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn help_shows_the_run_form_and_every_default() {
    let out = bin().arg("--help").output().unwrap();
    let h = String::from_utf8_lossy(&out.stdout);
    assert!(!h.to_lowercase().contains("legacy"), "{h}");
    assert!(h.contains("vm-container run my-domain.vmc"), "{h}");
    assert!(h.contains("  run "), "{h}");
    for default in [
        "[default: /var/lib/vm-container as root, else $XDG_CACHE_HOME/vm-container",
        "[default: 1800]",
        "[default: /etc/vm-container/trusted.d]",
        "[default: auto]",
    ] {
        assert!(h.contains(default), "{default} not in {h}");
    }
    // what signatures each option demands
    assert!(
        h.contains("every fetched file must carry a valid signature"),
        "{h}"
    );
    assert!(
        h.contains("Local input files and the container file itself must carry a valid signature"),
        "{h}"
    );
    let out = bin().args(["run", "--help"]).output().unwrap();
    let h = String::from_utf8_lossy(&out.stdout);
    assert!(
        h.contains("Usage: vm-container run [OPTIONS] <FILE>"),
        "{h}"
    );
    assert!(
        h.contains("--stripped <OUT>") && h.contains("--timeout"),
        "{h}"
    );
}

/// `diff` takes URIs like every other tree argument: fetched through the
/// cache of `--dir` from an HTTP server on 127.0.0.1, and a URI that cannot
/// be fetched is trouble (2), named in the message.
#[test]
fn diff_takes_uris() {
    let t = tempdir();
    let w = t.path();
    let (a, same, other) = three_trees(w);
    let archive = w.join("a.cpio.gz");
    let out = bin().arg("pack").arg(&a).arg(&archive).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let server = crate::net::HttpServer::start();
    server.serve(
        "/a.cpio.gz",
        &fs::read(&archive).unwrap(),
        Some("\"a\""),
        None,
    );
    let url = server.url("/a.cpio.gz");
    let diff = |old: &str, new: &Path| {
        bin()
            .arg("diff")
            .arg(old)
            .arg(new)
            .arg("--dir")
            .arg(w.join("d"))
            .output()
            .unwrap()
    };
    let out = diff(&url, &same);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = diff(&url, &other);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let patch = String::from_utf8_lossy(&out.stdout);
    assert!(patch.contains("-fido") && patch.contains("+rex"), "{patch}");
    let missing = server.url("/missing.cpio.gz");
    let out = diff(&missing, &same);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&missing),
        "{out:?}"
    );
}
