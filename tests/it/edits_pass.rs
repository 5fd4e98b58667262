//! Several edits of one archive in one run: what every `[replace]`,
//! `[copy]` and `[patch]` of it looks up and reads is found in one pass,
//! and the tree that comes out is the one the edits make one at a time, in
//! their order. The last of two replaces of a path wins, a patch sees what
//! a replace before it put, and an edit that fails names its expression
//! and leaves nothing published.
//! Oracles: GNU cpio (packing the base, extracting forks, and a round trip
//! of the tree edited by hand), GNU patch (the hand-made edit).

use crate::common;

use common::tempdir;
use common::trees::{gnu_extract, run_ok, set_mtime, sh_ok, show, tree_of, Job};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use vm_container::tree::manifest::Manifest;

const EPOCH: i64 = 1_700_000_000;

fn write(p: &Path, body: &str, mode: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Packs `dir` with GNU cpio (newc) and gzip.
fn gnu_pack(dir: &Path, archive: &Path) {
    sh_ok(
        &format!(
            "find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -n > '{}'",
            archive.display()
        ),
        dir,
    );
}

/// The base tree: a few files of `/etc`, a hard-linked pair and a
/// symlink, dated long before the run.
fn base_tree(dir: &Path) {
    write(&dir.join("etc/hostname"), "base\n", 0o644);
    write(
        &dir.join("etc/hosts"),
        "127.0.0.1 localhost\n::1 localhost\n",
        0o644,
    );
    write(&dir.join("etc/motd"), "welcome\n", 0o644);
    write(&dir.join("usr/bin/tool"), "#!/bin/sh\necho tool\n", 0o755);
    fs::hard_link(dir.join("usr/bin/tool"), dir.join("usr/bin/tool2")).unwrap();
    std::os::unix::fs::symlink("tool", dir.join("usr/bin/t")).unwrap();
    for p in [
        "etc/hostname",
        "etc/hosts",
        "etc/motd",
        "usr/bin/tool",
        "usr/bin/t",
    ] {
        set_mtime(&dir.join(p), 1_000_000_000);
    }
}

/// The base archive, packed by GNU cpio, and the files the edits use.
struct Setup {
    w: PathBuf,
    archive: PathBuf,
    motd: PathBuf,
    patch: PathBuf,
}

fn setup(w: &Path) -> Setup {
    let base = w.join("base");
    base_tree(&base);
    let archive = w.join("base.cpio.gz");
    gnu_pack(&base, &archive);
    let motd = w.join("motd.src");
    write(&motd, "be nice\n", 0o644);
    let patch = w.join("hosts.patch");
    fs::write(
        &patch,
        "--- a/etc/hosts\n+++ b/etc/hosts\n@@ -1,2 +1,3 @@\n 127.0.0.1 localhost\n+10.0.0.2 fido\n ::1 localhost\n",
    )
    .unwrap();
    Setup {
        w: w.to_path_buf(),
        archive,
        motd,
        patch,
    }
}

impl Setup {
    /// The four edits, each taking the tree `a` (and, with `fork`,
    /// storing it there).
    fn edit(&self, i: usize, a: &Path, fork: Option<&Path>) -> String {
        let a = a.display();
        let fork_opt = fork
            .map(|f| format!(" fork {}", f.display()))
            .unwrap_or_default();
        match i {
            0 => format!("[replace /etc/hostname archive {a}{fork_opt}\n\nfido\n][end]\n"),
            1 => format!(
                "[copy /etc/motd archive {a} mode 0600{fork_opt} {}][end]\n",
                self.motd.display()
            ),
            2 => format!(
                "[replace /opt/new/conf archive {a} dirmode 0700{fork_opt}\n\nkey = 1\n][end]\n"
            ),
            _ => format!(
                "[patch {a} {}{}][end]\n",
                self.patch.display(),
                fork.map(|f| format!(" {}", f.display()))
                    .unwrap_or_default()
            ),
        }
    }

    /// Runs `text` as `name` with `SOURCE_DATE_EPOCH`; returns the job.
    fn run(&self, name: &str, text: &str) -> Job {
        let job = Job::new(&self.w, name, text);
        let mut cmd = job.command();
        cmd.env("SOURCE_DATE_EPOCH", EPOCH.to_string());
        run_ok(&mut cmd);
        job
    }

    /// The tree a fork holds, extracted by GNU cpio.
    fn extracted(&self, fork: &Path) -> Manifest {
        let x = self
            .w
            .join(format!("x-{}", fork.file_name().unwrap().to_string_lossy()));
        gnu_extract(fork, &x);
        without_unrestorable(tree_of(&x))
    }
}

/// The manifest without what `cpio -idm` cannot restore: the mtimes of
/// directories (set before their content is written) and of symlinks.
fn without_unrestorable(mut m: Manifest) -> Manifest {
    for r in m.values_mut() {
        if r.kind == "directory" || r.kind == "symlink" {
            r.meta.mtime = 0;
        }
    }
    m
}

#[test]
fn several_edits_of_one_archive_are_the_edits_one_at_a_time() {
    let t = tempdir();
    let s = setup(t.path());

    // all four in one run, the last one storing the tree
    let all = s.w.join("all.cpio.gz");
    let text: String = (0..4)
        .map(|i| s.edit(i, &s.archive, (i == 3).then_some(all.as_path())))
        .collect();
    s.run("all.vmc", &text);

    // one at a time: each run edits the fork the one before stored
    let mut tree = s.archive.clone();
    for i in 0..4 {
        let next = s.w.join(format!("step{i}.cpio.gz"));
        s.run(&format!("step{i}.vmc"), &s.edit(i, &tree, Some(&next)));
        tree = next;
    }
    let together = s.extracted(&all);
    assert_eq!(together, s.extracted(&tree), "together and one at a time");

    // by hand: the base extracted, edited with the shell and GNU patch,
    // packed and extracted again by GNU cpio
    let hand = s.w.join("hand");
    gnu_extract(&s.archive, &hand);
    write(&hand.join("etc/hostname"), "fido\n", 0o644);
    write(&hand.join("etc/motd"), "be nice\n", 0o600);
    write(&hand.join("opt/new/conf"), "key = 1\n", 0o644);
    for d in ["opt", "opt/new"] {
        fs::set_permissions(hand.join(d), fs::Permissions::from_mode(0o700)).unwrap();
    }
    run_ok(
        Command::new("patch")
            .args(["-p1", "--quiet", "-i"])
            .arg(&s.patch)
            .current_dir(&hand),
    );
    for p in ["etc/hostname", "etc/motd", "opt/new/conf", "etc/hosts"] {
        set_mtime(&hand.join(p), EPOCH);
    }
    let round = s.w.join("hand.cpio.gz");
    gnu_pack(&hand, &round);
    let expected = s.extracted(&round);
    assert_eq!(together, expected, "our edits and GNU's");
    // the hard-linked pair is still one file
    let x = s.w.join("x-all.cpio.gz");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(x.join("usr/bin/tool")).unwrap().ino(),
        fs::metadata(x.join("usr/bin/tool2")).unwrap().ino()
    );
}

#[test]
fn edits_of_one_path_apply_in_their_order() {
    let t = tempdir();
    let s = setup(t.path());
    let a = s.archive.display();
    let fork = s.w.join("order.cpio.gz");
    // the patch's context is the second replace's text: it applies only
    // if it sees that, not the base
    let patch = s.w.join("hostname.patch");
    fs::write(
        &patch,
        "--- a/etc/hostname\n+++ b/etc/hostname\n@@ -1 +1 @@\n-two\n+three\n",
    )
    .unwrap();
    s.run(
        "order.vmc",
        &format!(
            "[replace /etc/hostname archive {a}\n\none\n][end]\n\
             [replace /etc/hostname archive {a}\n\ntwo\n][end]\n\
             [patch {a} {p}][end]\n\
             [patch {a} {h}][end]\n\
             [replace /etc/hosts archive {a} fork {f}\n\nlast\n][end]\n",
            p = patch.display(),
            h = s.patch.display(),
            f = fork.display(),
        ),
    );
    let x = s.w.join("x-order");
    gnu_extract(&fork, &x);
    assert_eq!(
        fs::read_to_string(x.join("etc/hostname")).unwrap(),
        "three\n"
    );
    // a replace after a patch of the same file wins
    assert_eq!(fs::read_to_string(x.join("etc/hosts")).unwrap(), "last\n");
    // the others are as in the base
    assert_eq!(fs::read_to_string(x.join("etc/motd")).unwrap(), "welcome\n");
}

#[test]
fn a_failing_third_edit_names_itself_and_publishes_nothing() {
    let t = tempdir();
    let s = setup(t.path());
    let a = s.archive.display();
    let out = s.w.join("out");
    fs::create_dir_all(&out).unwrap();
    let bad_patch = s.w.join("bad.patch");
    fs::write(
        &bad_patch,
        "--- a/etc/motd\n+++ b/etc/motd\n@@ -1 +1 @@\n-not what it holds\n+x\n",
    )
    .unwrap();
    let third = [
        // a file under a file
        format!("[replace /etc/hostname/x archive {a}\n\nx\n][end]\n"),
        // a patch whose context is not there
        format!("[patch {a} {}][end]\n", bad_patch.display()),
    ];
    for (n, bad) in third.iter().enumerate() {
        let before = format!(
            "[replace /etc/hostname archive {a} fork {f1}\n\nfido\n][end]\n\
             [copy /etc/motd archive {a} patch {p2} {m}][end]\n",
            f1 = out.join("first.cpio.gz").display(),
            p2 = out.join("second.patch").display(),
            m = s.motd.display(),
        );
        let text = format!(
            "{before}{bad}\
             [image {img} 8M fido][end]\n\
             [populate image {img} /mnt {a}][end]\n",
            img = out.join("fido.img").display(),
        );
        // the third expression starts on the line after the first two
        let line = before.matches('\n').count() + 1;
        let job = Job::new(&s.w, &format!("bad{n}.vmc"), &text);
        let mut cmd = job.command();
        cmd.env("SOURCE_DATE_EPOCH", EPOCH.to_string());
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", show(&cmd, &o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("bad{n}.vmc:{line}:1: ")), "{err}");
        assert!(!err.contains(&format!("bad{n}.vmc:1:1")), "{err}");
        let left: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "published after a failure: {left:?}");
    }
}
