//! Populating existing ext2/ext3 volumes in place.

use crate::ext_common;

use ext_common::*;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use vm_container::ext::{Error, Populator, Volume};
use vm_container::tree::manifest::{self, Manifest};
use vm_container::tree::{Kind, Source, TreePath};

const T: i64 = 1_650_000_000;

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (install e2fsprogs)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An image made by mke2fs with content from a directory and from
/// debugfs.
fn existing(kind: &str, bs: &str, dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(src.join("etc/replace-me"), vec![7u8; 300_000]).unwrap();
    fs::create_dir_all(src.join("many")).unwrap();
    for i in 0..600 {
        fs::write(src.join(format!("many/old-{i}")), format!("{i}")).unwrap();
    }
    let img = dir.join(format!("{kind}-{bs}.img"));
    run(
        "/usr/sbin/mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            kind,
            "-b",
            bs,
            "-d",
            src.to_str().unwrap(),
            img.to_str().unwrap(),
            "32M",
        ],
    );
    let extra = dir.join("extra");
    fs::write(&extra, b"written by debugfs\n").unwrap();
    run(
        "/usr/sbin/debugfs",
        &[
            "-w",
            "-R",
            &format!("write {} /from-debugfs", extra.display()),
            img.to_str().unwrap(),
        ],
    );
    // an attribute too large for the inode lives in its own block, which
    // must be released with the file it belongs to
    let value = dir.join("value");
    fs::write(&value, vec![b'v'; 600]).unwrap();
    let set = format!("ea_set -f {} /etc/replace-me user.big", value.display());
    run(
        "/usr/sbin/debugfs",
        &["-w", "-R", &set, img.to_str().unwrap()],
    );
    let s = debugfs(&img, "stat /etc/replace-me");
    assert!(
        s.contains("File ACL: ") && !s.contains("File ACL: 0"),
        "no attribute block: {s}"
    );
    img
}

fn additions() -> MemTree {
    let mut t = MemTree::new();
    t.file(
        "etc/hostname",
        Content::Bytes(b"populated\n".to_vec()),
        0o644,
        0,
        0,
        T,
    );
    t.file(
        "etc/replace-me",
        Content::Bytes(b"replaced".to_vec()),
        0o600,
        5,
        5,
        T,
    );
    t.file(
        "new/deep/dir/big",
        Content::Pattern {
            size: 3 << 20,
            seed: 4,
            hole_every: 4,
        },
        0o644,
        1000,
        1000,
        T,
    );
    t.dir("new", 0o700, 1, 2, T + 1);
    t.dir("new/deep/dir", 0o755, 0, 0, T + 3);
    t.dir("new/deep", 0o755, 0, 0, T + 4);
    t.add(
        "new/link",
        Kind::Symlink {
            target: b"../etc/passwd".to_vec(),
        },
        0o777,
        0,
        0,
        T,
    );
    t.add(
        "new/long-link",
        Kind::Symlink {
            target: vec![b'z'; 100],
        },
        0o777,
        0,
        0,
        T,
    );
    t.add(
        "new/null",
        Kind::CharDev { major: 1, minor: 3 },
        0o666,
        0,
        0,
        T,
    );
    t.add(
        "new/passwd-link",
        Kind::HardLink {
            target: TreePath::from_member(b"etc/passwd").unwrap(),
        },
        0,
        0,
        0,
        0,
    );
    for i in 0..300 {
        t.file(
            &format!("many/new-{i}"),
            Content::Bytes(format!("new {i}").into_bytes()),
            0o644,
            0,
            0,
            T,
        );
    }
    t.dir("etc", 0o751, 0, 0, T + 2);
    t
}

fn expected(before_img: &Path) -> Manifest {
    let mut b = manifest::Builder::default();
    let mut v = Volume::open(File::open(before_img).unwrap()).unwrap();
    v.emit(&mut b).unwrap();
    additions().emit(&mut b).unwrap();
    comparable(b.finish())
}

fn populate(img: &Path, tree: &mut dyn Source) -> Result<(), Error> {
    let f = File::options().read(true).write(true).open(img).unwrap();
    let v = Volume::open_rw(f)?;
    let mut p = Populator::new(&v, T)?;
    if let Err(e) = tree.emit(&mut p) {
        return Err(*e.into_inner().unwrap().downcast::<Error>().unwrap());
    }
    p.finish()
}

#[test]
#[ignore = "root tier: mounts the image on a loop device"]
fn populates_ext3_and_ext2() {
    for (kind, bs) in [("ext3", "1024"), ("ext3", "4096"), ("ext2", "1024")] {
        let tmp = tempfile::tempdir().unwrap();
        let img = existing(kind, bs, tmp.path());
        let want = expected(&img);
        let label_before = dumpe2fs_h(&img);
        populate(&img, &mut additions()).unwrap();
        e2fsck_clean(&img);
        assert_same(
            &want,
            &comparable(volume_manifest(&img)),
            &format!("{kind} {bs} reader"),
        );
        let m = Mount::new(&img);
        let got = manifest::manifest(&mut HostDir(m.dir.path().to_path_buf())).unwrap();
        drop(m);
        assert_same(&want, &comparable(got), &format!("{kind} {bs} mounted"));
        let after = dumpe2fs_h(&img);
        for key in [
            "Filesystem UUID:",
            "Block size:",
            "Filesystem features:",
            "Block count:",
        ] {
            let line = |h: &str| h.lines().find(|l| l.starts_with(key)).map(str::to_owned);
            assert_eq!(line(&label_before), line(&after), "{key}");
        }
        assert!(
            after.contains("Journal start:            0") || kind == "ext2",
            "{after}"
        );
    }
}

fn sha(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap()
}

#[test]
fn refuses_inline_data_and_unrecovered_volumes_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let img = tmp.path().join("ext4.img");
    run(
        "/usr/sbin/mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            "inline_data",
            "-d",
            src.to_str().unwrap(),
            img.to_str().unwrap(),
            "16M",
        ],
    );
    let before = sha(&img);
    match populate(&img, &mut additions()) {
        Err(e @ Error::UnsupportedForWrite(_)) => {
            assert!(e.to_string().contains("inline_data"), "{e}")
        }
        other => panic!("expected UnsupportedForWrite, got {other:?}"),
    }
    assert!(sha(&img) == before, "ext4 image was modified");

    let img = existing("ext3", "1024", tmp.path());
    let f = File::options().read(true).write(true).open(&img).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 1024 + 0x60).unwrap();
    f.write_all_at(&[b[0] | 0x04], 1024 + 0x60).unwrap();
    let before = sha(&img);
    assert!(matches!(
        populate(&img, &mut additions()),
        Err(Error::NeedsRecovery)
    ));
    assert!(sha(&img) == before, "volume needing recovery was modified");
}
