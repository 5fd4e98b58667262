//! Patches that delete files, applied to ext2/ext3 images in place: the
//! same tree as GNU `patch -p1` makes of a host directory, a volume
//! `e2fsck -fn` finds clean, free counts back where they were after adding
//! and deleting the same files, and nothing changed when a deletion
//! cannot be applied. Also: in-place updates keep what they do not own in
//! an inode (extended attributes), and directory link counts stay right
//! without file type bytes in directory entries.
//! Oracles: GNU diff and patch, mke2fs, debugfs, dumpe2fs, e2fsck.

use crate::common;
use crate::ext_common;

use common::{bin, ok, tempdir};
use std::fs::{self, File};
use std::os::unix::fs::{symlink, FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use vm_container::ext::{Populator, Volume};
use vm_container::hostdir::Walker;
use vm_container::tree::manifest::{manifest, Manifest};
use vm_container::tree::{Source, TreePath};

const T: i64 = 1_650_000_000;

fn sh(script: &str, dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    ok(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(p: &Path, body: &[u8], mode: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Text long enough to need indirect and doubly indirect blocks at 1 KiB.
fn big_text(lines: usize) -> Vec<u8> {
    (0..lines)
        .flat_map(|i| format!("line {i:06} of a file that goes away whole\n").into_bytes())
        .collect()
}

/// The tree before the patch.
fn old_tree(d: &Path) {
    write(&d.join("etc/hosts"), b"127.0.0.1 localhost\n", 0o640);
    write(&d.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n", 0o644);
    write(&d.join("etc/gone"), b"deleted by the patch\n", 0o600);
    write(&d.join("etc/link-a"), b"two names\n", 0o644);
    fs::hard_link(d.join("etc/link-a"), d.join("etc/link-b")).unwrap();
    write(&d.join("old/sub/f1"), b"f1\n", 0o644);
    write(&d.join("old/f2"), b"f2\n", 0o644);
    write(&d.join("old/big"), &big_text(9000), 0o644);
    fs::set_permissions(d.join("old"), fs::Permissions::from_mode(0o700)).unwrap();
    write(&d.join("keep/x"), b"x\n", 0o644);
    fs::create_dir_all(d.join("keep/empty")).unwrap();
    write(&d.join("swap/a"), b"a\n", 0o644);
    fs::set_permissions(d.join("swap"), fs::Permissions::from_mode(0o710)).unwrap();
    symlink("etc/passwd", d.join("sym")).unwrap();
    sh(
        "chown 5:7 etc/hosts && chown -h 3:4 sym && chown 6:6 swap",
        d,
    );
}

/// The tree after it: files changed, added and deleted, a whole
/// directory gone, one of two hard links gone, a directory kept because
/// an empty directory the patch cannot see is left in it, and one whose
/// only file is replaced by another.
fn new_tree(d: &Path) {
    old_tree(d);
    write(
        &d.join("etc/hosts"),
        b"127.0.0.1 localhost\n10.0.0.2 fido\n",
        0o640,
    );
    fs::remove_file(d.join("etc/gone")).unwrap();
    fs::remove_file(d.join("etc/link-a")).unwrap();
    fs::remove_dir_all(d.join("old")).unwrap();
    fs::remove_file(d.join("keep/x")).unwrap();
    write(&d.join("etc/added"), b"added\n", 0o644);
    // the only file of a directory deleted, another one created there:
    // GNU patch keeps the directory as it was
    fs::remove_file(d.join("swap/a")).unwrap();
    write(&d.join("swap/b"), b"b\n", 0o644);
    write(&d.join("newdir/deep/file"), b"deep\n", 0o644);
}

/// GNU `diff -ruN` from `a` to `b` (both beside each other in `w`).
fn gnu_diff(w: &Path, a: &str, b: &str, out: &Path) {
    let o = Command::new("diff")
        .args(["-ruN", a, b])
        .current_dir(w)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "diff: {o:?}");
    fs::write(out, &o.stdout).unwrap();
}

/// What GNU `patch -p1` makes of a copy of `old`.
fn gnu_patched(w: &Path, old: &Path, patch: &Path, name: &str) -> PathBuf {
    let dst = w.join(name);
    sh(&format!("cp -a '{}' '{}'", old.display(), dst.display()), w);
    let o = Command::new("patch")
        .args(["-p1", "--quiet", "--batch", "-i"])
        .arg(patch)
        .current_dir(&dst)
        .output()
        .unwrap();
    ok(&o);
    dst
}

/// A manifest without mtimes (GNU patch dates what it writes by the
/// clock), the root and `lost+found`.
fn timeless(mut m: Manifest) -> Manifest {
    m.retain(|p, _| !p.is_root() && !p.starts_with(&TreePath::from_member(b"lost+found").unwrap()));
    for r in m.values_mut() {
        r.meta.mtime = 0;
    }
    m
}

fn host_tree(d: &Path) -> Manifest {
    timeless(manifest(&mut Walker::new(d)).unwrap())
}

fn image_tree(img: &Path) -> Manifest {
    timeless(ext_common::volume_manifest(img))
}

/// An image made by this crate from a host directory.
fn ours(src: &Path, img: &Path) {
    let mut o = ext_common::opts(32 << 20, 1024, true);
    o.timestamp = T;
    ext_common::build(o, &mut ext_common::HostDir(src.to_path_buf()), img).unwrap();
}

/// The same, ext2 (no journal: written in place directly).
fn ours_ext2(src: &Path, img: &Path) {
    let mut o = ext_common::opts(32 << 20, 1024, false);
    o.timestamp = T;
    ext_common::build(o, &mut ext_common::HostDir(src.to_path_buf()), img).unwrap();
}

/// `mke2fs -q -F -t ext3 ARGS... IMG SIZE`.
fn mkfs(img: &Path, args: &[&str], size: &str) {
    ok(&Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3"])
        .args(args)
        .arg(img)
        .arg(size)
        .output()
        .unwrap());
}

/// Runs a `debugfs -w` request script on `img`.
fn debugfs_script(img: &Path, script: &str) {
    let f = img.with_extension("debugfs");
    fs::write(&f, script).unwrap();
    ok(&Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&f)
        .arg(img)
        .output()
        .unwrap());
}

/// An image made by mke2fs, its content written by `debugfs -w`.
fn theirs(src: &Path, img: &Path) {
    mkfs(img, &["-b", "1024"], "32M");
    debugfs_script(img, &ext_common::debugfs_requests(src));
}

/// `vm-container` running the container `text`, its state under `w`.
fn run_container(w: &Path, text: &str) -> std::process::Output {
    let c = w.join("run.vmc");
    fs::write(&c, text).unwrap();
    bin()
        .arg("--container")
        .arg(&c)
        .arg("--dir")
        .arg(w.join("work"))
        .output()
        .unwrap()
}

/// `vm-container` applying `patch` to the image `img` in place.
fn run_patch(w: &Path, img: &Path, patch: &Path) -> std::process::Output {
    run_container(
        w,
        &format!("[patch {} {}][end]\n", img.display(), patch.display()),
    )
}

/// Free blocks and inodes, overall and per group, as dumpe2fs reports them.
fn free_counts(img: &Path) -> Vec<String> {
    let o = Command::new("dumpe2fs").arg(img).output().unwrap();
    ok(&o);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| {
            l.starts_with("Free blocks:")
                || l.starts_with("Free inodes:")
                || l.contains("free blocks,")
                || l.contains("directories")
        })
        .map(str::to_owned)
        .collect()
}

/// The old tree in `w/a`, the new one in `w/b`, and GNU `diff -ruN`
/// from one to the other: (old tree, patch).
fn the_change(w: &Path) -> (PathBuf, PathBuf) {
    let (old, new) = (w.join("a"), w.join("b"));
    fs::create_dir(&old).unwrap();
    fs::create_dir(&new).unwrap();
    old_tree(&old);
    new_tree(&new);
    let patch = w.join("change.patch");
    gnu_diff(w, "a", "b", &patch);
    (old, patch)
}

#[test]
#[ignore = "root tier: mounts images on loop devices"]
fn a_gnu_patch_that_deletes_applies_in_place_like_gnu_patch() {
    let t = tempdir();
    let w = t.path();
    let (old, patch) = the_change(w);
    let text = fs::read_to_string(&patch).unwrap();
    assert!(text.contains("+++ b/etc/gone\t1970"), "{text}");
    let want = host_tree(&gnu_patched(w, &old, &patch, "gnu"));
    assert!(!want.contains_key(&TreePath::from_member(b"old").unwrap()));
    assert!(want.contains_key(&TreePath::from_member(b"keep/empty").unwrap()));

    for (name, make) in [("ours", ours as fn(&Path, &Path)), ("mke2fs", theirs)] {
        let img = w.join(format!("{name}.img"));
        make(&old, &img);
        ext_common::e2fsck_clean(&img);
        ext_common::assert_same(
            &host_tree(&old),
            &image_tree(&img),
            &format!("{name} before"),
        );
        let out = run_patch(w, &img, &patch);
        ok(&out);
        ext_common::e2fsck_clean(&img);
        ext_common::assert_same(&want, &image_tree(&img), &format!("{name} after"));
        // the kernel reads the same tree
        let m = ext_common::Mount::new(&img);
        let mounted = host_tree(m.dir.path());
        drop(m);
        ext_common::assert_same(&want, &mounted, &format!("{name} mounted"));
    }
}

#[test]
#[ignore = "root tier: sets owners with chown"]
fn adding_then_deleting_the_same_files_gives_the_free_counts_back() {
    let t = tempdir();
    let w = t.path();
    let (old, new) = (w.join("a"), w.join("b"));
    fs::create_dir(&old).unwrap();
    old_tree(&old);
    sh(&format!("cp -a '{}' '{}'", old.display(), new.display()), w);
    write(&new.join("added/deep/file"), &big_text(9000), 0o644);
    write(&new.join("added/small"), b"small\n", 0o644);
    write(&new.join("etc/more"), b"more\n", 0o644);
    let (add, remove) = (w.join("add.patch"), w.join("remove.patch"));
    gnu_diff(w, "a", "b", &add);
    gnu_diff(w, "b", "a", &remove);
    for (name, make) in [
        ("ours", ours as fn(&Path, &Path)),
        ("ours-ext2", ours_ext2),
        ("mke2fs", theirs),
    ] {
        let img = w.join(format!("{name}.img"));
        make(&old, &img);
        let before = free_counts(&img);
        let tree_before = image_tree(&img);
        ok(&run_patch(w, &img, &add));
        ext_common::e2fsck_clean(&img);
        assert_ne!(free_counts(&img), before, "{name}: adding used nothing");
        ok(&run_patch(w, &img, &remove));
        ext_common::e2fsck_clean(&img);
        assert_eq!(free_counts(&img), before, "{name}: counts after deleting");
        ext_common::assert_same(&tree_before, &image_tree(&img), name);
    }
}

#[test]
#[ignore = "root tier: sets owners with chown"]
fn deleting_a_missing_file_fails_and_changes_nothing() {
    let t = tempdir();
    let w = t.path();
    let old = w.join("a");
    fs::create_dir(&old).unwrap();
    old_tree(&old);
    // a good change first, then a deletion of a file the tree lacks
    let patch = w.join("bad.patch");
    fs::write(
        &patch,
        "--- a/etc/hosts\n+++ b/etc/hosts\n@@ -1 +1,2 @@\n 127.0.0.1 localhost\n+10.0.0.2 fido\n\
         --- a/etc/not-there\n+++ b/etc/not-there\t1970-01-01 00:00:00.000000000 +0000\n@@ -1 +0,0 @@\n-x\n",
    )
    .unwrap();
    // GNU patch refuses it too (unless told to guess that the patch is
    // reversed, which --forward forbids)
    let probe = w.join("probe");
    sh(
        &format!("cp -a '{}' '{}'", old.display(), probe.display()),
        w,
    );
    let o = Command::new("patch")
        .args(["-p1", "--forward", "--batch", "--dry-run", "-i"])
        .arg(&patch)
        .current_dir(&probe)
        .output()
        .unwrap();
    assert!(!o.status.success(), "GNU patch applied it");
    for (name, make) in [("ours", ours as fn(&Path, &Path)), ("mke2fs", theirs)] {
        let img = w.join(format!("{name}.img"));
        make(&old, &img);
        let before = fs::read(&img).unwrap();
        let out = run_patch(w, &img, &patch);
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("etc/not-there"), "{name}: {err}");
        assert!(
            fs::read(&img).unwrap() == before,
            "{name}: the image changed"
        );
    }
}

/// Where `debugfs imap` says the inode of `path` lies: (byte offset, size).
fn raw_inode_at(img: &Path, path: &str) -> (u64, usize) {
    let imap = ext_common::debugfs(img, &format!("imap {path}"));
    let block: u64 = imap
        .split("located at block ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("imap: {imap}"));
    let off = imap
        .split("offset 0x")
        .nth(1)
        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
        .unwrap_or_else(|| panic!("imap: {imap}"));
    let h = ext_common::dumpe2fs_h(img);
    let field = |k: &str| -> u64 {
        h.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{k} in {h}"))
    };
    (
        block * field("Block size:") + off,
        field("Inode size:") as usize,
    )
}

fn raw_inode(img: &Path, at: (u64, usize)) -> Vec<u8> {
    let mut b = vec![0u8; at.1];
    File::open(img)
        .unwrap()
        .read_exact_at(&mut b, at.0)
        .unwrap();
    b
}

fn populate(img: &Path, src: &mut dyn Source) {
    let f = File::options().read(true).write(true).open(img).unwrap();
    let v = Volume::open_rw(f).unwrap();
    let mut p = Populator::new(&v, T).unwrap();
    src.emit(&mut p).unwrap();
    p.finish().unwrap();
}

#[test]
fn extended_attributes_of_touched_inodes_survive() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("x.img");
    mkfs(&img, &["-I", "256"], "16M");
    let value = w.join("value");
    fs::write(&value, vec![b'v'; 40]).unwrap();
    debugfs_script(
        &img,
        &format!(
            "ea_set / security.selinux system_u:object_r:root_t:s0\n\
             mkdir /etc\n\
             ea_set /etc security.selinux system_u:object_r:etc_t:s0\n\
             ea_set -f {} /etc user.data\n\
             write {} /etc/keep\n\
             ea_set /etc/keep user.note kept\n",
            value.display(),
            value.display()
        ),
    );
    let lists = |img: &Path| {
        ["/", "/etc", "/etc/keep"].map(|p| ext_common::debugfs(img, &format!("ea_list {p}")))
    };
    let eas = lists(&img);
    assert!(
        eas[0].contains("root_t") && eas[1].contains("user.data"),
        "{eas:?}"
    );
    let at: Vec<_> = ["/", "/etc", "/etc/keep"]
        .iter()
        .map(|p| raw_inode_at(&img, p))
        .collect();
    let before: Vec<Vec<u8>> = at.iter().map(|a| raw_inode(&img, *a)).collect();

    // the root and /etc are rewritten (new entries), /etc/keep gets a
    // link more and a new mode
    let src = w.join("src");
    write(&src.join("etc/hostname"), b"fido\n", 0o644);
    write(&src.join("etc/new/file"), b"x\n", 0o644);
    write(&src.join("top"), b"top\n", 0o644);
    let mut tree = ext_common::HostDir(src.clone());
    populate(&img, &mut tree);
    let mut keep = ext_common::MemTree::new();
    keep.add(
        "etc/keep-link",
        vm_container::tree::Kind::HardLink {
            target: TreePath::from_member(b"etc/keep").unwrap(),
        },
        0,
        0,
        0,
        T,
    );
    populate(&img, &mut keep);
    ext_common::e2fsck_clean(&img);
    assert_eq!(lists(&img), eas, "extended attributes changed");
    assert!(ext_common::debugfs(&img, "ls -l /etc").contains("hostname"));
    for (i, (a, old)) in at.iter().zip(&before).enumerate() {
        let new = raw_inode(&img, *a);
        assert_ne!(&new, old, "inode {i} was not touched");
        // past the extra fields we write (up to i_crtime_extra at 0x98):
        // i_version_hi, i_projid and the in-inode attributes
        assert_eq!(new[0x98..], old[0x98..], "inode {i}: bytes past 0x98");
        // i_file_acl, osd1, i_faddr, the checksum and high acl words
        for r in [
            0x24..0x28,
            0x68..0x6C,
            0x70..0x74,
            0x76..0x78,
            0x7C..0x80,
            0x82..0x84,
        ] {
            assert_eq!(new[r.clone()], old[r.clone()], "inode {i}: bytes {r:?}");
        }
    }
}

#[test]
fn directories_without_file_type_bytes_keep_their_link_counts() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("x.img");
    mkfs(&img, &["-O", "^filetype"], "16M");
    debugfs_script(&img, "mkdir /etc\nmkdir /etc/a\nmkdir /var\nmkdir /var/b\n");
    ext_common::e2fsck_clean(&img);
    let src = w.join("src");
    write(&src.join("etc/hostname"), b"fido\n", 0o644);
    write(&src.join("etc/new/deeper/file"), b"x\n", 0o644);
    write(&src.join("top"), b"top\n", 0o644);
    fs::create_dir_all(src.join("var/b/c")).unwrap();
    populate(&img, &mut ext_common::HostDir(src.clone()));
    ext_common::e2fsck_clean(&img);
    // root: ., .. and lost+found, etc, var; etc: a, new
    let links = |p: &str| {
        let s = ext_common::debugfs(&img, &format!("stat {p}"));
        s.split("Links: ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("{s}"))
    };
    assert_eq!(links("/"), 5);
    assert_eq!(links("/etc"), 4);
    assert_eq!(links("/var/b"), 3);

    // and a deletion that takes a directory away
    let f = File::options().read(true).write(true).open(&img).unwrap();
    let v = Volume::open_rw(f).unwrap();
    let mut p = Populator::new(&v, T).unwrap();
    p.delete(&TreePath::from_member(b"etc/new/deeper/file").unwrap())
        .unwrap();
    p.finish().unwrap();
    drop(v);
    ext_common::e2fsck_clean(&img);
    assert_eq!(links("/etc"), 3);
    let ls = ext_common::debugfs(&img, "ls /etc");
    assert!(!ls.contains("new") && ls.contains("hostname"), "{ls}");
}

/// Extracts a cpio.gz archive with GNU cpio into a new directory.
fn gnu_extract(archive: &Path, dir: &Path) -> Manifest {
    common::trees::gnu_extract(archive, dir);
    host_tree(dir)
}

#[test]
#[ignore = "root tier: sets owners with chown"]
fn deletions_reach_the_fork_and_an_image_made_in_the_same_run() {
    let t = tempdir();
    let w = t.path();
    let (old, patch) = the_change(w);
    let want = host_tree(&gnu_patched(w, &old, &patch, "gnu"));
    let archive = w.join("old.cpio.gz");
    ok(&bin().arg("pack").arg(&old).arg(&archive).output().unwrap());

    // an image that exists: patched at commit, the fork laid over it
    let img = w.join("existing.img");
    ours(&old, &img);
    let fork = w.join("existing-fork.cpio.gz");
    ok(&run_container(
        w,
        &format!(
            "[patch {} {} {}][end]\n",
            img.display(),
            patch.display(),
            fork.display()
        ),
    ));
    ext_common::e2fsck_clean(&img);
    ext_common::assert_same(&want, &image_tree(&img), "existing image");
    let got = gnu_extract(&fork, &w.join("x1"));
    ext_common::assert_same(&want, &got, "fork of the existing image");

    // an image made, populated and patched by one run
    let img = w.join("made.img");
    let fork = w.join("made-fork.cpio.gz");
    ok(&run_container(
        w,
        &format!(
            "[image {img} 32MB][end]\n\
             [populate image {img} / {a}][end]\n\
             [patch {img} {p} {f}][end]\n",
            img = img.display(),
            a = archive.display(),
            p = patch.display(),
            f = fork.display()
        ),
    ));
    ext_common::e2fsck_clean(&img);
    ext_common::assert_same(&want, &image_tree(&img), "image made in the run");
    let got = gnu_extract(&fork, &w.join("x2"));
    ext_common::assert_same(&want, &got, "fork of the image made in the run");
}
