//! ext4 volumes made by `mke2fs -t ext4` (Debian 12's defaults and
//! variants) updated in place: `[populate image]` adds and replaces,
//! `[patch]` changes and deletes, and a library-level deletion takes a
//! fragmented file (an extent tree of depth 1) away. Oracles: mke2fs,
//! debugfs (content written before and read after), dumpe2fs (features
//! unchanged), e2fsck -fn (every checksum, bitmap, count and htree).

use crate::common::tempdir;
use crate::common::trees::{run_ok, vmc};
use crate::ext_common::{debugfs, dumpe2fs_h, e2fsck_clean};
use std::fs;
use std::path::Path;
use std::process::Command;
use vm_container::ext::{Error, Populator, Volume};
use vm_container::tree::TreePath;

/// `mke2fs -q -F -t ext4 ARGS... IMG SIZE`.
fn mkfs(img: &Path, args: &[&str], size: &str) {
    run_ok(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4"])
            .args(args)
            .arg(img)
            .arg(size),
    );
}

fn features(img: &Path) -> String {
    dumpe2fs_h(img)
        .lines()
        .find(|l| l.starts_with("Filesystem features:"))
        .unwrap_or_default()
        .to_owned()
}

/// Text of `lines` numbered lines.
fn text(lines: usize, what: &str) -> String {
    (0..lines)
        .map(|i| format!("line {i:06} of {what}\n"))
        .collect()
}

/// Content written by debugfs before the update: a few files, a big one,
/// a fragmented one (data every other 16 KiB: more extents than the
/// inode holds), a directory of 300 names.
fn old_content(img: &Path, w: &Path) {
    let host = w.join("host");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(host.join("gone"), "deleted by the patch\n").unwrap();
    fs::write(host.join("big"), text(9000, "a big file")).unwrap();
    let mut frag = vec![0u8; 1 << 20];
    for (i, b) in frag.iter_mut().enumerate() {
        if (i >> 14) % 2 == 0 {
            *b = (i % 251) as u8 + 1;
        }
    }
    fs::write(host.join("frag"), &frag).unwrap();
    let mut script = String::from("mkdir /etc\nmkdir /many\n");
    for (name, at) in [
        ("hosts", "/etc/hosts"),
        ("gone", "/etc/gone"),
        ("big", "/big"),
        ("frag", "/frag"),
    ] {
        script += &format!("write {} {at}\n", host.join(name).display());
    }
    for i in 0..300 {
        script += &format!("write {} /many/old-{i}\n", host.join("hosts").display());
    }
    script += "symlink /etc/link /etc/hosts\n";
    let f = w.join("old.debugfs");
    fs::write(&f, script).unwrap();
    run_ok(Command::new("debugfs").arg("-w").arg("-f").arg(&f).arg(img));
}

/// The tree `[populate image]` adds: new files in new and existing
/// directories, one replacing an old file, a fragmented new one.
fn new_tree(w: &Path) -> std::path::PathBuf {
    let src = w.join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::create_dir_all(src.join("new/deep")).unwrap();
    fs::create_dir_all(src.join("many")).unwrap();
    fs::write(src.join("etc/hostname"), "populated\n").unwrap();
    fs::write(src.join("new/deep/file"), text(3000, "a new file")).unwrap();
    let mut frag = vec![0u8; 1 << 20];
    for (i, b) in frag.iter_mut().enumerate() {
        if (i >> 13) % 2 == 1 {
            *b = (i % 13) as u8 + 7;
        }
    }
    fs::write(src.join("new/frag"), &frag).unwrap();
    fs::write(src.join("big"), "replaced\n").unwrap();
    for i in 0..100 {
        fs::write(src.join(format!("many/new-{i}")), format!("new {i}\n")).unwrap();
    }
    std::os::unix::fs::symlink("../etc/hostname", src.join("new/link")).unwrap();
    src
}

/// A patch that changes /etc/hosts and deletes /etc/gone.
fn patch(w: &Path) -> std::path::PathBuf {
    let p = w.join("change.patch");
    fs::write(
        &p,
        "--- a/etc/hosts\n+++ b/etc/hosts\n@@ -1 +1,2 @@\n 127.0.0.1 localhost\n+10.0.0.2 fido\n\
         --- a/etc/gone\n+++ b/etc/gone\t1970-01-01 00:00:00.000000000 +0000\n@@ -1 +0,0 @@\n-deleted by the patch\n",
    )
    .unwrap();
    p
}

/// `debugfs -R REQUEST IMG`, whatever it says.
fn ask(img: &Path, request: &str) -> std::process::Output {
    Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(img)
        .output()
        .unwrap()
}

fn cat(img: &Path, path: &str) -> Vec<u8> {
    ask(img, &format!("cat {path}")).stdout
}

fn exists(img: &Path, path: &str) -> bool {
    let out = ask(img, &format!("stat {path}"));
    !String::from_utf8_lossy(&out.stderr).contains("File not found")
}

/// Deletes `path` through the library, as `[patch]` does.
fn delete(img: &Path, path: &str) {
    let f = fs::File::options()
        .read(true)
        .write(true)
        .open(img)
        .unwrap();
    let v = Volume::open_rw(f).unwrap();
    let mut p = Populator::new(&v, 1_700_000_000).unwrap();
    p.delete(&TreePath::from_member(path.as_bytes()).unwrap())
        .unwrap();
    p.finish().unwrap();
}

/// mke2fs with `args`, old content by debugfs, then populate, patch and a
/// deletion, each leaving a clean volume with the same features. Returns
/// the scratch directory and the volume.
fn round_trip(args: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempdir();
    let w = t.path();
    let img = w.join("vol.img");
    mkfs(&img, args, "64M");
    old_content(&img, w);
    e2fsck_clean(&img);
    let feats = features(&img);
    let frag_before = cat(&img, "/frag");
    assert!(
        debugfs(&img, "stat /frag").contains("(ETB"),
        "no extent tree block under /frag"
    );

    let src = new_tree(w);
    let c = w.join("run.vmc");
    fs::write(
        &c,
        format!(
            "[populate image {img} / {src}][end]\n[patch {img} {p}][end]\n",
            img = img.display(),
            src = src.display(),
            p = patch(w).display()
        ),
    )
    .unwrap();
    run_ok(&mut vmc(&c, &w.join("work")));
    e2fsck_clean(&img);
    assert_eq!(features(&img), feats, "{args:?}");
    assert!(
        dumpe2fs_h(&img).contains("Journal start:            0") || args.contains(&"^has_journal")
    );
    assert_eq!(cat(&img, "/etc/hostname"), b"populated\n");
    assert_eq!(
        cat(&img, "/etc/hosts"),
        b"127.0.0.1 localhost\n10.0.0.2 fido\n"
    );
    assert!(!exists(&img, "/etc/gone"), "/etc/gone is still there");
    assert_eq!(cat(&img, "/big"), b"replaced\n");
    assert_eq!(cat(&img, "/frag"), frag_before);
    assert_eq!(
        cat(&img, "/new/frag"),
        fs::read(src.join("new/frag")).unwrap()
    );
    assert_eq!(
        cat(&img, "/new/deep/file"),
        text(3000, "a new file").as_bytes()
    );
    assert_eq!(cat(&img, "/new/link"), b"");
    assert!(debugfs(&img, "stat /new/link").contains("Fast link dest: \"../etc/hostname\""));
    assert_eq!(cat(&img, "/many/old-299"), b"127.0.0.1 localhost\n");
    assert_eq!(cat(&img, "/many/new-99"), b"new 99\n");
    assert!(
        debugfs(&img, "stat /new/frag").contains("(ETB"),
        "the new fragmented file has no extent tree block"
    );

    // a file whose extents fill a tree block goes, blocks and all
    let free = |img: &Path| {
        dumpe2fs_h(img)
            .lines()
            .find(|l| l.starts_with("Free blocks:"))
            .unwrap_or_default()
            .to_owned()
    };
    let before = free(&img);
    delete(&img, "frag");
    e2fsck_clean(&img);
    assert!(!exists(&img, "/frag"));
    assert_ne!(free(&img), before);
    assert_eq!(features(&img), feats, "{args:?}");
    (t, img)
}

#[test]
fn debian_defaults_4k() {
    round_trip(&["-b", "4096"]);
}

/// The kernel mounts an updated volume, reads what was added, writes
/// more, and leaves it clean.
#[test]
#[ignore = "root tier: mounts the volume on a loop device"]
fn the_kernel_reads_and_writes_an_updated_volume() {
    for bs in ["1024", "4096"] {
        let (t, img) = round_trip(&["-b", bs]);
        let mnt = t.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(&img)
                .arg(&mnt),
        );
        let read = (
            fs::read(mnt.join("etc/hosts")),
            fs::read(mnt.join("new/frag")),
            fs::read_dir(mnt.join("many")).map(|d| d.count()),
            fs::write(mnt.join("many/by-the-kernel"), "k\n"),
        );
        run_ok(Command::new("umount").arg(&mnt));
        assert_eq!(read.0.unwrap(), b"127.0.0.1 localhost\n10.0.0.2 fido\n");
        assert_eq!(
            read.1.unwrap(),
            fs::read(t.path().join("src/new/frag")).unwrap()
        );
        assert_eq!(read.2.unwrap(), 400);
        read.3.unwrap();
        e2fsck_clean(&img);
        assert_eq!(cat(&img, "/many/by-the-kernel"), b"k\n");
    }
}

#[test]
fn debian_defaults_1k() {
    round_trip(&["-b", "1024"]);
}

#[test]
fn without_metadata_csum() {
    round_trip(&["-O", "^metadata_csum"]);
}

#[test]
fn without_metadata_csum_with_uninit_bg() {
    round_trip(&["-O", "^metadata_csum,uninit_bg"]);
}

#[test]
fn without_journal() {
    round_trip(&["-O", "^has_journal"]);
}

#[test]
fn without_64bit_and_flex_bg() {
    round_trip(&["-O", "^64bit,^flex_bg"]);
}

#[test]
fn upstream_defaults() {
    round_trip(&["-b", "4096", "-O", "orphan_file,metadata_csum_seed"]);
}

/// A journal with checksum v3 and 64-bit tags, as the kernel leaves it
/// after a mount (debugfs's `jo -c` sets them).
#[test]
fn journal_checksum_v3() {
    let t = tempdir();
    let img = t.path().join("vol.img");
    mkfs(&img, &[], "64M");
    let script = t.path().join("jo.debugfs");
    fs::write(&script, "jo -c\njc\n").unwrap();
    run_ok(
        Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&script)
            .arg(&img),
    );
    let h = dumpe2fs_h(&img);
    assert!(h.contains("journal_64bit journal_checksum_v3"), "{h}");
    e2fsck_clean(&img);
    old_content(&img, t.path());
    delete(&img, "etc/gone");
    e2fsck_clean(&img);
    assert!(!exists(&img, "/etc/gone"));
    assert_eq!(cat(&img, "/etc/hosts"), b"127.0.0.1 localhost\n");
}

/// 5,000 names added to a hashed directory: the index is built again and
/// e2fsck checks every hash against it.
#[test]
fn five_thousand_names_into_a_hashed_directory() {
    for bs in ["1024", "4096"] {
        let t = tempdir();
        let w = t.path();
        let old = w.join("old");
        fs::create_dir_all(old.join("dir")).unwrap();
        for i in 0..400 {
            fs::write(old.join(format!("dir/old-name-{i:04}")), "x").unwrap();
        }
        let img = w.join("vol.img");
        mkfs(&img, &["-b", bs, "-d", old.to_str().unwrap()], "64M");
        // e2fsck -D indexes every directory of more than one block
        let o = Command::new("e2fsck")
            .arg("-fyD")
            .arg(&img)
            .output()
            .unwrap();
        assert!(matches!(o.status.code(), Some(0 | 1)), "e2fsck -fyD: {o:?}");
        assert!(
            debugfs(&img, "htree /dir").contains("Number of entries"),
            "mke2fs -d made no hashed directory"
        );
        let src = w.join("src");
        fs::create_dir_all(src.join("dir")).unwrap();
        for i in 0..5000 {
            fs::write(src.join(format!("dir/a-new-name-{i:05}")), format!("{i}")).unwrap();
        }
        let c = w.join("run.vmc");
        fs::write(
            &c,
            format!(
                "[populate image {} / {}][end]\n",
                img.display(),
                src.display()
            ),
        )
        .unwrap();
        run_ok(&mut vmc(&c, &w.join("work")));
        e2fsck_clean(&img);
        let h = debugfs(&img, "htree /dir");
        assert!(h.contains("Number of entries"), "{h}");
        // 1 KiB blocks need a second index level for 5,400 names
        let levels = if bs == "1024" { 1 } else { 0 };
        assert!(h.contains(&format!("Indirect levels: {levels}")), "{h}");
        assert_eq!(cat(&img, "/dir/a-new-name-04999"), b"4999");
        assert_eq!(cat(&img, "/dir/old-name-0399"), b"x");
        let names = debugfs(&img, "ls /dir");
        assert_eq!(names.matches("a-new-name-").count(), 5000);
        assert_eq!(names.matches("old-name-").count(), 400);
    }
}

/// Features not written here are refused by name before anything is
/// written.
#[test]
fn refuses_what_it_cannot_write_untouched() {
    for (feature, name) in [("inline_data", "inline_data"), ("quota", "quota")] {
        let t = tempdir();
        let img = t.path().join("vol.img");
        mkfs(&img, &["-O", feature], "64M");
        let before = fs::read(&img).unwrap();
        let f = fs::File::options()
            .read(true)
            .write(true)
            .open(&img)
            .unwrap();
        let v = Volume::open_rw(f).unwrap();
        match Populator::new(&v, 0) {
            Err(e @ Error::UnsupportedForWrite(_)) => {
                assert!(e.to_string().contains(name), "{e}")
            }
            Err(e) => panic!("{feature}: {e}"),
            Ok(_) => panic!("{feature}: accepted"),
        }
        assert!(fs::read(&img).unwrap() == before, "{feature}: modified");
    }
}

/// Groups mke2fs leaves uninitialised (BLOCK_UNINIT, INODE_UNINIT) take
/// blocks and inodes: their bitmaps are made as the kernel makes them,
/// the flags go, and e2fsck agrees with every count.
#[test]
fn allocates_in_uninitialised_groups() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("vol.img");
    mkfs(&img, &["-b", "1024", "-N", "4096"], "64M");
    let groups = |img: &Path| {
        let out = run_ok(Command::new("dumpe2fs").arg(img));
        out.lines()
            .filter(|l| l.starts_with("Group ") && l.contains("(Blocks"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let before = groups(&img);
    assert!(
        before[1].contains("[INODE_UNINIT, BLOCK_UNINIT]"),
        "{before:?}"
    );
    assert!(before[3].contains("BLOCK_UNINIT"), "{before:?}");
    let src = w.join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 253) as u8 + 1).collect();
    fs::write(src.join("big"), &big).unwrap();
    // more files than group 0 has inodes
    for i in 0..700 {
        fs::write(src.join(format!("d/f{i}")), format!("{i}")).unwrap();
    }
    let c = w.join("run.vmc");
    fs::write(
        &c,
        format!(
            "[populate image {} / {}][end]\n",
            img.display(),
            src.display()
        ),
    )
    .unwrap();
    run_ok(&mut vmc(&c, &w.join("work")));
    e2fsck_clean(&img);
    let after = groups(&img);
    assert!(!after[1].contains("UNINIT"), "{after:?}");
    assert!(!after[3].contains("BLOCK_UNINIT"), "{after:?}");
    assert!(cat(&img, "/big") == big, "/big differs");
    assert_eq!(cat(&img, "/d/f699"), b"699");
}
