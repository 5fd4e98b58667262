//! Local directories as tree sources (docs/SPEC.md §4), end to end
//! through the binary: a tree with long names, hard links, symlinks (one
//! pointing at /etc, carried and never followed), a fifo, device nodes,
//! owners, old mtimes, an empty and a sparse file, and a file system
//! mounted inside (left out, as `tar --one-file-system` does) goes through
//! `[image]`+`[populate image]` and `[populate dir]` and comes out equal
//! to the directory; `[replace]` and `[patch]` on a directory leave it as
//! it was and write their change into the fork only; a run record notices
//! a changed directory. Oracles: e2fsck, debugfs, GNU cpio, GNU diff.

use crate::common;

use common::trees::{
    assert_same, blockcount, image_tree, run_ok, sh_ok, show, tree_of, vmc, without_root,
};
use common::{bin, tempdir};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use vm_container::tree::manifest::Manifest;
use vm_container::tree::TreePath;

/// A chroot-like tree under `$1` with what an archive has trouble with.
/// Needs root for the device nodes and the owners.
const CHROOT: &str = r#"
set -e
d=$1
mkdir -p "$d/etc/default" "$d/dev" "$d/var/lib"
long=$(printf 'a-directory-of-a-debootstrap-chroot-%03d/' 1 2 3 4 5)
mkdir -p "$d/$long"
printf 'deep\n' > "$d/${long}a-file-name-longer-than-a-hundred-bytes-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
printf 'root:x:0:0::/root:/bin/sh\n' > "$d/etc/passwd"
ln "$d/etc/passwd" "$d/etc/passwd-"
ln "$d/etc/passwd" "$d/${long}passwd-again"
ln -s /etc "$d/host-etc"
ln -s ../passwd "$d/etc/default/up"
mkfifo "$d/var/lib/fifo"
mknod "$d/dev/null" c 1 3
mknod "$d/dev/xvda1" b 202 1
: > "$d/etc/empty"
truncate -s 6M "$d/var/lib/sparse"
printf 'data' | dd of="$d/var/lib/sparse" bs=1 seek=3145728 conv=notrunc status=none
chmod 2750 "$d/var/lib"; chmod 640 "$d/etc/passwd"
chown 1000:1001 "$d/etc/empty"
chown -h 2000:2001 "$d/host-etc"
chown 4000000:4000001 "$d/var/lib/sparse"
touch -d @1300000000 "$d/etc/empty"
touch -h -d @1200000000 "$d/host-etc"
touch -d @1400000000 "$d/etc" "$d/var" "$d/dev"
"#;

/// Writes `text` as the container `c.vmc` in `w`; the command that runs it.
fn container(w: &Path, text: &str) -> Command {
    let c = w.join("c.vmc");
    fs::write(&c, text).unwrap();
    vmc(&c, &w.join("work"))
}

#[test]
#[ignore = "root tier: mknod and chown build the source tree"]
fn a_directory_populates_an_image_and_a_directory_equal_to_itself() {
    let t = tempdir();
    let w = t.path();
    let src = w.join("chroot");
    fs::create_dir(&src).unwrap();
    let script = w.join("tree.sh");
    fs::write(&script, CHROOT).unwrap();
    run_ok(Command::new("sh").arg(&script).arg(&src));
    // a file system mounted inside, as a chroot's /proc: its mount point
    // is carried, empty, and what is in it is not read
    let proc = src.join("proc");
    fs::create_dir(&proc).unwrap();
    let _mounted = Mounted::tmpfs(&proc);
    fs::write(proc.join("inside"), "not part of the tree\n").unwrap();
    let inside = TreePath::from_member(b"proc/inside").unwrap();
    let mut want = tree_of(&src);
    assert!(want.remove(&inside).is_some());
    assert!(want.values().any(|r| r.kind == "fifo"));
    assert!(want.values().any(|r| r.device == Some((202, 1))));
    assert!(want.values().any(|r| r.link_group.is_some()));

    // the source named through a symlink to it, followed once
    let named = w.join("current");
    symlink(&src, &named).unwrap();
    let img = w.join("root.img");
    run_ok(&mut container(
        w,
        &format!(
            "[image {img} 64M][end]\n[populate image {img} /mnt file://{src}][end]\n",
            img = img.display(),
            src = named.display()
        ),
    ));
    run_ok(Command::new("e2fsck").arg("-fn").arg(&img));
    assert_same(
        &without_root(want.clone()),
        &without_root(image_tree(&img)),
        "directory vs image",
    );
    // the symlink to /etc is a symlink in the image, /etc not copied in
    let ls = run_ok(
        Command::new("debugfs")
            .arg("-R")
            .arg("stat /host-etc")
            .arg(&img),
    );
    assert!(ls.contains("Type: symlink"), "{ls}");
    assert!(ls.contains("Fast link dest: \"/etc\""), "{ls}");
    // holes stayed holes
    assert!(blockcount(&img, "/var/lib/sparse") * 512 < 1 << 20);
    // the tool's own diff sees no difference, in either order
    assert_eq!(run_ok(bin().arg("diff").arg(&src).arg(&img)), "");
    assert_eq!(run_ok(bin().arg("diff").arg(&img).arg(&named)), "");

    // `[populate dir]` into another directory, with SOURCE_DATE_EPOCH set:
    // a source directory's mtimes are its content, kept as they are
    let target = w.join("export/root");
    run_ok(
        container(
            w,
            &format!(
                "[populate dir {} /mnt {}][end]\n",
                target.display(),
                src.display()
            ),
        )
        .env("SOURCE_DATE_EPOCH", "1000"),
    );
    assert_same(
        &without_root(want.clone()),
        &without_root(tree_of(&target)),
        "directory vs populated directory",
    );
    // GNU diff tells fifos and devices apart from nothing: the manifests
    // above compared them (and left out what is on the tmpfs)
    run_ok(
        Command::new("diff")
            .args([
                "-r",
                "--no-dereference",
                "-x",
                "fifo",
                "-x",
                "dev",
                "-x",
                "inside",
            ])
            .arg(&src)
            .arg(&target),
    );
    // nothing of the source changed
    let mut now = tree_of(&src);
    now.remove(&inside);
    assert_same(&want, &now, "source before vs after");

    // what changes on the mounted file system is not the tree's: the
    // image stays up to date
    let image_container = format!(
        "[image {img} 64M][end]\n[populate image {img} /mnt {src}][end]\n",
        img = img.display(),
        src = src.display()
    );
    run_ok(&mut container(w, &image_container));
    fs::write(proc.join("inside"), "changed\n").unwrap();
    let out = container(w, &image_container).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("up to date"), "{err}");
    // the same file system's files are: a changed owner rebuilds it
    run_ok(Command::new("chown").arg("7:7").arg(src.join("etc/empty")));
    let out = container(w, &image_container).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("up to date"), "{err}");
    assert_eq!(
        image_tree(&img)[&TreePath::from_member(b"etc/empty").unwrap()]
            .meta
            .uid,
        7
    );

    // a write landing on the file system mounted inside is not one into
    // the tree: the walk does not go there
    let before = tree_of(&src);
    let export = proc.join("export");
    run_ok(&mut container(
        w,
        &format!(
            "[populate dir {} /mnt {}][end]\n",
            export.display(),
            src.display()
        ),
    ));
    // the mount point's own times move with what is written on it
    let proc_path = TreePath::from_member(b"proc").unwrap();
    let off_tmpfs = |mut m: Manifest| {
        m.retain(|p, _| !p.starts_with(&proc_path));
        m
    };
    assert_same(
        &off_tmpfs(without_root(before.clone())),
        &off_tmpfs(without_root(tree_of(&export))),
        "directory vs directory populated on the tmpfs",
    );
    assert_same(
        &off_tmpfs(before),
        &off_tmpfs(tree_of(&src)),
        "source before vs after, off the tmpfs",
    );
}

/// A tmpfs mounted for the length of a test, unmounted when dropped.
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn tmpfs(at: &Path) -> Mounted {
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=64m,mode=0555", "none"])
                .arg(at),
        );
        Mounted(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A tree any user can make.
fn plain_tree(d: &Path) {
    let long = "a-directory-whose-name-is-long/".repeat(5);
    fs::create_dir_all(d.join("etc")).unwrap();
    fs::create_dir_all(d.join(&long)).unwrap();
    fs::write(d.join("etc/x"), "old\n").unwrap();
    fs::write(d.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(d.join("etc/empty"), "").unwrap();
    fs::write(d.join(&long).join("deep"), "deep\n").unwrap();
    fs::hard_link(d.join("etc/hosts"), d.join("etc/hosts.bak")).unwrap();
    symlink("/etc", d.join("host-etc")).unwrap();
    symlink("x", d.join("etc/x.link")).unwrap();
}

/// Runs `cmd`, asserts success; returns standard error.
fn stderr_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", show(cmd, &out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Extracts a `cpio.gz` with GNU cpio into a new directory `out`.
fn extract(fork: &Path, out: &Path) {
    fs::create_dir_all(out).unwrap();
    sh_ok(
        &format!(
            "gzip -dc '{}' | cpio -idm --quiet --no-absolute-filenames",
            fork.display()
        ),
        out,
    );
}

#[test]
fn edits_of_a_directory_go_to_the_fork_and_a_changed_directory_is_rebuilt() {
    let t = tempdir();
    let w = t.path();
    let src = w.join("chroot");
    plain_tree(&src);
    let before = tree_of(&src);
    let fork = w.join("out.cpio.gz");
    let patched = w.join("patched.cpio.gz");
    let patch = w.join("p.diff");
    fs::write(
        &patch,
        "--- a/etc/hosts\n+++ b/etc/hosts\n@@ -1 +1,2 @@\n 127.0.0.1 localhost\n+10.0.0.1 fido\n",
    )
    .unwrap();
    let text = format!(
        "[replace /etc/x archive {src} fork {fork}\n\nnew\n] [end]\n\
         [patch {src} {patch} {patched}][end]\n",
        src = src.display(),
        fork = fork.display(),
        patch = patch.display(),
        patched = patched.display()
    );
    run_ok(&mut container(w, &text));
    // the directory itself is untouched
    assert_same(
        &before,
        &tree_of(&src),
        "directory before vs after the edits",
    );
    assert_eq!(fs::read_to_string(src.join("etc/x")).unwrap(), "old\n");

    // the fork is the directory plus the change, as GNU cpio reads it
    let expect = w.join("expect");
    run_ok(Command::new("cp").arg("-a").arg(&src).arg(&expect));
    fs::write(expect.join("etc/x"), "new\n").unwrap();
    let out = w.join("out");
    extract(&fork, &out);
    run_ok(
        Command::new("diff")
            .arg("-r")
            .arg("--no-dereference")
            .arg(&expect)
            .arg(&out),
    );
    assert_eq!(
        fs::read_link(out.join("host-etc")).unwrap(),
        Path::new("/etc")
    );
    // the patch's fork holds the replace too: one working tree per source
    let out2 = w.join("out2");
    extract(&patched, &out2);
    assert_eq!(
        fs::read_to_string(out2.join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n10.0.0.1 fido\n"
    );
    assert_eq!(fs::read_to_string(out2.join("etc/x")).unwrap(), "new\n");

    // nothing changed: up to date
    let again = stderr_of(&mut container(w, &text));
    assert!(again.contains("up to date"), "{again}");

    // a file deep in the tree rewritten, same size, same second: rebuilt
    let long = "a-directory-whose-name-is-long/".repeat(5);
    fs::write(src.join(&long).join("deep"), "DEEP\n").unwrap();
    let rebuilt = stderr_of(&mut container(w, &text));
    assert!(!rebuilt.contains("up to date"), "{rebuilt}");
    let out3 = w.join("out3");
    extract(&fork, &out3);
    assert_eq!(
        fs::read_to_string(out3.join(&long).join("deep")).unwrap(),
        "DEEP\n"
    );
    let again = stderr_of(&mut container(w, &text));
    assert!(again.contains("up to date"), "{again}");

    // a file added below the top directory (whose mtime stays): rebuilt
    fs::write(src.join(&long).join("added"), "added\n").unwrap();
    let rebuilt = stderr_of(&mut container(w, &text));
    assert!(!rebuilt.contains("up to date"), "{rebuilt}");
}

#[test]
fn a_pinned_directory_is_refused() {
    let t = tempdir();
    let w = t.path();
    let src = w.join("chroot");
    plain_tree(&src);
    let pin = "0".repeat(64);
    let mut cmd = container(
        w,
        &format!(
            "[populate dir {} /mnt file://{}#sha256={pin}][end]\n",
            w.join("target").display(),
            src.display()
        ),
    );
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{}", show(&cmd, &out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a directory cannot be pinned"), "{err}");
    assert!(!w.join("target").exists());
}

#[test]
fn nothing_is_written_inside_a_source_directory() {
    let t = tempdir();
    let w = t.path();
    let src = w.join("chroot");
    plain_tree(&src);
    let before = tree_of(&src);
    // named through a symlink: where the write lands is what counts
    let named = w.join("current");
    symlink(&src, &named).unwrap();
    let cases = [
        format!(
            "[populate dir {}/export /mnt {}][end]\n",
            named.display(),
            src.display()
        ),
        format!(
            "[populate dir {} /mnt {}][end]\n",
            w.display(),
            named.display()
        ),
        format!(
            "[image {img} 8M][end]\n[populate image {img} /mnt {}][end]\n",
            src.display(),
            img = src.join("etc/root.img").display()
        ),
        format!(
            "[replace /etc/x archive file://{} fork {}/new/fork.cpio.gz\n\nnew\n] [end]\n",
            named.display(),
            src.display()
        ),
    ];
    for text in cases {
        let mut cmd = container(w, &text);
        refused_inside(&mut cmd, &text, &src, &before);
    }
    // nor is the working directory
    let text = format!(
        "[populate dir {}/t /mnt {}][end]\n",
        w.display(),
        src.display()
    );
    let c = w.join("c.vmc");
    fs::write(&c, &text).unwrap();
    let mut cmd = bin();
    cmd.arg("--container")
        .arg(&c)
        .arg("--dir")
        .arg(src.join("var/vmc"));
    refused_inside(&mut cmd, &text, &src, &before);
}

/// Runs `cmd`, which must be refused for writing inside `src`, and checks
/// that `src` is still as `before`.
fn refused_inside(cmd: &mut Command, text: &str, src: &Path, before: &Manifest) {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(cmd, &out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a directory this container reads as a tree"),
        "{text}: {err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_same(before, &tree_of(src), text);
}
