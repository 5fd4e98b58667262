//! `ext::Volume` reading volumes made by mke2fs, and refusing what it
//! cannot read.

use crate::ext_common;

use ext_common::*;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{symlink, FileExt};
use std::path::Path;
use std::process::Command;
use vm_container::ext::{Error, FileType, Volume};
use vm_container::tree::manifest::manifest;
use vm_container::tree::TreePath;

/// A host directory with every kind mke2fs -d copies.
fn host_tree(root: &Path) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::write(root.join("a/b/c/small"), b"hello\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect();
    fs::write(root.join("big"), &big).unwrap();
    let f = File::create(root.join("holes")).unwrap();
    f.write_all_at(b"start", 0).unwrap();
    f.write_all_at(b"end", 40 << 20).unwrap();
    // holes across the single, double and triple indirect ranges (1 KiB
    // blocks) and a trailing one, read a run at a time
    let f = File::create(root.join("far")).unwrap();
    f.write_all_at(b"a", 300 << 10).unwrap();
    f.write_all_at(b"b", 70 << 20).unwrap();
    f.set_len(90 << 20).unwrap();
    // many separate runs: more extents than fit in the inode, so ext4
    // needs an extent index block
    let f = File::create(root.join("fragmented")).unwrap();
    for i in 0..40u64 {
        f.write_all_at(&[i as u8 + 1; 5000], i * 50_000).unwrap();
    }
    fs::write(root.join("empty"), b"").unwrap();
    symlink("a/b/c/small", root.join("short")).unwrap();
    symlink("x".repeat(200), root.join("long")).unwrap();
    fs::hard_link(root.join("big"), root.join("big-link")).unwrap();
    fs::create_dir(root.join("many")).unwrap();
    for i in 0..2000 {
        fs::write(
            root.join(format!("many/file-number-{i:05}")),
            format!("{i}"),
        )
        .unwrap();
    }
    let st = Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo failed");
    let st = Command::new("mknod")
        .arg(root.join("null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(st.success(), "mknod failed (tests run as root)");
    let st = Command::new("chown")
        .args(["70000:80000"])
        .arg(root.join("empty"))
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("chmod")
        .args(["4755"])
        .arg(root.join("a/b/c/small"))
        .status()
        .unwrap();
    assert!(st.success());
}

fn mke2fs(kind: &str, dir: &Path, img: &Path, size: &str) {
    mke2fs_with(&["-t", kind], dir, img, size);
}

#[test]
#[ignore = "root tier: creates device nodes (mknod)"]
fn reads_mke2fs_images() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    host_tree(&src);
    let want = comparable(manifest(&mut HostDir(src.clone())).unwrap());
    for kind in ["ext2", "ext3", "ext4"] {
        for bs in ["1024", "4096"] {
            let img = tmp.path().join(format!("{kind}-{bs}.img"));
            let out = Command::new("/usr/sbin/mke2fs")
                .args(["-q", "-F", "-t", kind, "-b", bs, "-d"])
                .arg(&src)
                .arg(&img)
                .arg("128M")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "mke2fs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if kind == "ext4" {
                let s = Command::new("/usr/sbin/debugfs")
                    .args(["-R", "stat /fragmented"])
                    .arg(&img)
                    .output()
                    .unwrap();
                let s = String::from_utf8_lossy(&s.stdout);
                assert!(
                    s.contains("Flags: 0x80000") && s.contains("(ETB0)"),
                    "no extent index block: {s}"
                );
            }
            let got = comparable(volume_manifest(&img));
            assert_same(&want, &got, &format!("{kind} {bs}"));
            let v = Volume::open(File::open(&img).unwrap()).unwrap();
            let p = |s: &str| TreePath::from_absolute(s.as_bytes()).unwrap();
            assert_eq!(v.readlink(&p("/short")).unwrap(), b"a/b/c/small");
            assert_eq!(v.readlink(&p("/long")).unwrap(), "x".repeat(200).as_bytes());
            let mut s = String::new();
            v.read_file(&p("/a/b/c/small"))
                .unwrap()
                .read_to_string(&mut s)
                .unwrap();
            assert_eq!(s, "hello\n");
            let names: Vec<_> = v
                .read_dir(&p("/"))
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
            assert!(names.contains(&b"lost+found".to_vec()));
            assert_eq!(v.stat(&p("/many")).unwrap().file_type, FileType::Dir);
            assert_eq!(v.read_dir(&p("/many")).unwrap().len(), 2000);
            assert!(matches!(v.lookup(&p("/nope")), Err(Error::NotFound { .. })));
            assert!(matches!(
                v.lookup(&p("/big/x")),
                Err(Error::NotADirectory { .. })
            ));
            assert!(matches!(v.read_file(&p("/a")), Err(Error::NotAFile { .. })));
        }
    }
}

#[test]
fn refuses_what_it_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();

    let junk = tmp.path().join("junk");
    fs::write(&junk, vec![0u8; 1 << 20]).unwrap();
    assert!(matches!(
        Volume::open(File::open(&junk).unwrap()),
        Err(Error::BadMagic { magic: 0 })
    ));

    let img = tmp.path().join("img");
    mke2fs("ext2", &src, &img, "8M");
    let f = File::options().read(true).write(true).open(&img).unwrap();
    let mut sb = [0u8; 1024];
    f.read_exact_at(&mut sb, 1024).unwrap();

    // an unknown incompatible feature (0x80000000)
    let mut bad = sb;
    bad[0x63] |= 0x80;
    f.write_all_at(&bad, 1024).unwrap();
    match Volume::open(File::open(&img).unwrap()) {
        Err(Error::UnsupportedFeatures { features }) => assert_eq!(features, 0x8000_0000),
        other => panic!("expected UnsupportedFeatures, got {:?}", other.err()),
    }
    // a nonsense block size
    let mut bad = sb;
    bad[0x18] = 30;
    f.write_all_at(&bad, 1024).unwrap();
    assert!(matches!(
        Volume::open(File::open(&img).unwrap()),
        Err(Error::CorruptSuperblock(_))
    ));
    // zero inodes per group
    let mut bad = sb;
    bad[0x28..0x2C].copy_from_slice(&[0; 4]);
    f.write_all_at(&bad, 1024).unwrap();
    assert!(matches!(
        Volume::open(File::open(&img).unwrap()),
        Err(Error::CorruptSuperblock(_))
    ));

    f.write_all_at(&sb, 1024).unwrap();
    let v = Volume::open(File::open(&img).unwrap()).unwrap();
    assert!(matches!(
        v.inode(0),
        Err(Error::InodeOutOfRange { ino: 0, .. })
    ));
    assert!(matches!(
        v.inode(u32::MAX),
        Err(Error::InodeOutOfRange { .. })
    ));
}

#[test]
fn refuses_directory_loops() {
    // a directory hard-linked into its own subdirectory
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("a/b")).unwrap();
    mke2fs("ext2", &src, &img, "8M");
    let out = Command::new("/usr/sbin/debugfs")
        .args(["-w", "-R", "link /a /a/b/loop"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut v = Volume::open(File::open(&img).unwrap()).unwrap();
    let err = manifest(&mut v).unwrap_err();
    let inner = err.into_inner().unwrap();
    assert!(
        matches!(
            inner.downcast_ref::<Error>(),
            Some(Error::DirectoryLoop { .. })
        ),
        "{inner}"
    );
}

fn mke2fs_with(args: &[&str], dir: &Path, img: &Path, size: &str) {
    let out = Command::new("/usr/sbin/mke2fs")
        .args(["-q", "-F"])
        .args(args)
        .arg("-d")
        .arg(dir)
        .arg(img)
        .arg(size)
        .output()
        .expect("mke2fs missing: install e2fsprogs");
    assert!(
        out.status.success(),
        "mke2fs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A smaller tree: tiny and medium files, a hole, symlinks short and
/// long, a hard link, directories small and large.
fn small_tree(root: &Path) {
    fs::create_dir_all(root.join("d/e")).unwrap();
    fs::write(root.join("tiny"), b"hi\n").unwrap();
    fs::write(root.join("d/e/sixty"), vec![b's'; 60]).unwrap();
    fs::write(root.join("d/medium"), vec![b'm'; 100]).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 13 + i / 777) as u8).collect();
    fs::write(root.join("big"), &big).unwrap();
    fs::hard_link(root.join("big"), root.join("d/big-again")).unwrap();
    let f = File::create(root.join("holes")).unwrap();
    f.write_all_at(b"x", 5 << 20).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    symlink("tiny", root.join("short")).unwrap();
    symlink("y".repeat(70), root.join("seventy")).unwrap();
    symlink("z".repeat(300), root.join("long")).unwrap();
    fs::create_dir(root.join("few")).unwrap();
    for n in ["a", "bb", "ccc", "dd"] {
        fs::write(root.join("few").join(n), n).unwrap();
    }
    fs::create_dir(root.join("many")).unwrap();
    for i in 0..300 {
        fs::write(root.join(format!("many/n{i}")), format!("{i}")).unwrap();
    }
}

#[test]
fn reads_bigalloc_volumes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let want = comparable(manifest(&mut HostDir(src.clone())).unwrap());
    for (bs, cluster) in [("1024", "16384"), ("4096", "65536")] {
        let img = tmp.path().join(format!("bigalloc-{bs}.img"));
        mke2fs_with(
            &["-t", "ext4", "-O", "bigalloc", "-b", bs, "-C", cluster],
            &src,
            &img,
            "96M",
        );
        assert!(dumpe2fs_h(&img).contains("bigalloc"));
        let got = comparable(volume_manifest(&img));
        assert_same(&want, &got, &format!("bigalloc {bs}/{cluster}"));
    }
}

fn inline_flag(img: &Path, path: &str) -> bool {
    debugfs(img, &format!("stat {path}")).contains("Flags: 0x10000000")
}

#[test]
#[ignore = "root tier: mounts an image on a loop device"]
fn reads_inline_data() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let img = tmp.path().join("inline.img");
    mke2fs_with(&["-t", "ext4", "-O", "inline_data"], &src, &img, "32M");
    // and what debugfs adds: a directory, files in it, a symlink
    debugfs_w(&img, "mkdir /made");
    let f = tmp.path().join("f");
    fs::write(&f, b"by debugfs\n").unwrap();
    debugfs_w(&img, &format!("write {} /made/file", f.display()));
    debugfs_w(&img, &format!("symlink /made/link {}", "q".repeat(80)));
    fs::create_dir(src.join("made")).unwrap();
    fs::copy(&f, src.join("made/file")).unwrap();
    symlink("q".repeat(80), src.join("made/link")).unwrap();
    // the kernel continues a directory in the system.data attribute when
    // i_block is full (e2fsprogs moves it to a block instead)
    let mnt = tempfile::tempdir().unwrap();
    let st = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(mnt.path())
        .status()
        .unwrap();
    assert!(st.success(), "mount -o loop (tests run as root)");
    let spill = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"];
    fs::create_dir(mnt.path().join("kernel")).unwrap();
    fs::create_dir(src.join("kernel")).unwrap();
    for n in spill {
        fs::write(mnt.path().join("kernel").join(n), n).unwrap();
        fs::write(src.join("kernel").join(n), n).unwrap();
    }
    let st = Command::new("umount").arg(mnt.path()).status().unwrap();
    assert!(st.success());
    assert!(debugfs(&img, "stat /kernel").contains("Size: 128"));
    // what is kept inline, to know the test reads it
    for p in [
        "/tiny",
        "/d/medium",
        "/d/e/sixty",
        "/few",
        "/kernel",
        "/d",
        "/seventy",
        "/made/link",
    ] {
        assert!(inline_flag(&img, p), "{p} is not inline");
    }
    let want = comparable(manifest(&mut HostDir(src.clone())).unwrap());
    let mut got = comparable(volume_manifest(&img));
    // debugfs and the kernel set their own times and owners
    let added = ["made", "made/file", "made/link", "kernel"];
    let kernel = spill.iter().map(|n| format!("kernel/{n}"));
    for p in added.iter().map(|s| s.to_string()).chain(kernel) {
        let p = TreePath::from_member(p.as_bytes()).unwrap();
        let (w, g) = (&want[&p], got.get_mut(&p).unwrap());
        g.meta = w.meta;
    }
    assert_same(&want, &got, "inline_data");
    // and through the command line
    let ls = vm(&[img.as_os_str(), "/kernel".as_ref()]);
    let names: Vec<&str> = ls
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(names, spill, "{ls}");
    let root = vm(&[img.as_os_str()]);
    assert!(
        root.contains(&format!("seventy -> {}", "y".repeat(70))),
        "{root}"
    );
    assert_eq!(cat(&img, b"/d/medium"), vec![b'm'; 100]);
    assert_eq!(cat(&img, b"/tiny"), b"hi\n");
}

/// `vm-container ls ARGS...`'s standard output.
fn vm(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vm-container"))
        .arg("ls")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ls {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cat(img: &Path, path: &[u8]) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let out = Command::new(env!("CARGO_BIN_EXE_vm-container"))
        .arg("cat")
        .arg(img)
        .arg(std::ffi::OsStr::from_bytes(path))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cat {}: {}",
        String::from_utf8_lossy(path),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn reads_shared_blocks_when_the_feature_says_so() {
    // a 2 MiB volume whose second file shares all of the first's 1.2 MB:
    // more blocks than the volume holds are read in one walk
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let data: Vec<u8> = (0..1_200_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(src.join("first"), &data).unwrap();
    fs::write(src.join("second"), b"replaced below").unwrap();
    let img = tmp.path().join("shared.img");
    mke2fs_with(&["-t", "ext2", "-b", "1024"], &src, &img, "2M");
    debugfs_w(&img, "copy_inode /first /second");
    let mut v = Volume::open(File::open(&img).unwrap()).unwrap();
    let err = manifest(&mut v).unwrap_err().to_string();
    assert!(err.contains("blocks shared between files"), "{err}");
    debugfs_w(&img, "feature shared_blocks");
    assert!(dumpe2fs_h(&img).contains("shared_blocks"));
    let m = volume_manifest(&img);
    let p = |s: &str| TreePath::from_member(s.as_bytes()).unwrap();
    assert_eq!(m[&p("first")].size, 1_200_000);
    assert_eq!(m[&p("first")].sha256, m[&p("second")].sha256);
    assert_eq!(cat(&img, b"/second"), data);
}

#[test]
fn names_that_are_not_utf8_reach_the_command_line() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9");
    fs::create_dir_all(src.join(name)).unwrap();
    fs::write(src.join(name).join(name), b"latin-1\n").unwrap();
    let img = tmp.path().join("names.img");
    mke2fs("ext2", &src, &img, "8M");
    assert_eq!(cat(&img, b"/caf\xe9/caf\xe9"), b"latin-1\n");
    let out = Command::new(env!("CARGO_BIN_EXE_vm-container"))
        .arg("ls")
        .arg(&img)
        .arg(std::ffi::OsStr::from_bytes(b"/caf\xe9"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout.ends_with(b" caf\xe9\n"),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}
