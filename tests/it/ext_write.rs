//! Images written by `ext::Builder`, checked with e2fsck, debugfs,
//! dumpe2fs and the kernel (read-only loop mount).

use crate::ext_common;

use ext_common::*;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use vm_container::ext::{Error, Options, Volume};
use vm_container::tree::manifest::manifest;
use vm_container::tree::{Kind, TreePath};

const T: i64 = 1_600_000_000;

/// Every kind of entry, with the awkward cases: empty and multi-MB files,
/// holes (including past the triple-indirect boundary of 1 KiB blocks),
/// a directory of thousands, deep implicit parents, both symlink
/// storages, old and new device encodings, 32-bit ids, odd times, hard
/// links and an overwritten path.
fn full_tree() -> MemTree {
    let mut t = MemTree::new();
    // a child before its parents: the parents come later, explicitly
    let deep: Vec<String> = (0..30).map(|i| format!("d{i}")).collect();
    t.file(
        &format!("{}/leaf", deep.join("/")),
        Content::Bytes(b"deep\n".to_vec()),
        0o600,
        1,
        2,
        T,
    );
    for i in (0..30).rev() {
        t.dir(&deep[..=i].join("/"), 0o755, 0, 0, T - i as i64);
    }
    t.dir("d0", 0o750, 5, 6, T + 1);
    t.dir("d0/d1/d2", 0o2755, 0, 50, T + 2);
    etc_entries(&mut t, T);
    t.file(
        "big",
        Content::Pattern {
            size: 5 << 20,
            seed: 7,
            hole_every: 0,
        },
        0o644,
        0,
        0,
        T,
    );
    t.file(
        "holes",
        Content::Pattern {
            size: (1 << 20) + 123,
            seed: 9,
            hole_every: 3,
        },
        0o640,
        3,
        4,
        T,
    );
    t.file("zeros", Content::Bytes(vec![0; 70_000]), 0o644, 0, 0, T);
    // 68 MiB of which only the edges hold data: reaches triple indirection
    // with 1 KiB blocks
    t.0.push((
        vm_container::tree::Entry {
            path: TreePath::from_member(b"sparse").unwrap(),
            kind: Kind::File { size: 68 << 20 },
            meta: vm_container::tree::Meta {
                perm: 0o644,
                uid: 0,
                gid: 0,
                mtime: T,
            },
            xattrs: Default::default(),
        },
        Some(Content::Pattern {
            size: 68 << 20,
            seed: 1,
            hole_every: 0,
        }),
    ));
    t.dir("many", 0o755, 0, 0, T);
    for i in 0..3000 {
        t.file(
            &format!("many/entry-with-a-longish-name-{i:05}"),
            Content::Bytes(format!("{i}").into_bytes()),
            0o644,
            i,
            i,
            T + i64::from(i),
        );
    }
    t.add(
        "short-link",
        Kind::Symlink {
            target: b"etc/hostname".to_vec(),
        },
        0o777,
        0,
        0,
        T,
    );
    t.add(
        "long-link",
        Kind::Symlink {
            target: vec![b'x'; 59],
        },
        0o777,
        0,
        0,
        T,
    );
    t.add(
        "slow-link",
        Kind::Symlink {
            target: [&b"/"[..], &vec![b'y'; 300]].concat(),
        },
        0o777,
        0,
        0,
        T,
    );
    special_entries(&mut t, T, "big");
    t
}

fn check_full(bs: u32, journal: bool) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let mut tree = full_tree();
    build(opts(128 << 20, bs, journal), &mut tree, &img).unwrap();
    e2fsck_clean(&img);
    let want = comparable(manifest(&mut full_tree()).unwrap());
    assert_eq!(
        want[&TreePath::from_member(b"etc/overwritten").unwrap()].size,
        6
    );

    // our own reader
    assert_same(&want, &comparable(volume_manifest(&img)), "reader");

    // the kernel
    let m = Mount::new(&img);
    let got = manifest(&mut HostDir(m.dir.path().to_path_buf())).unwrap();
    assert_same(&want, &comparable(got), "mounted");
    drop(m);

    // debugfs
    let s = debugfs(&img, "stat /ids");
    assert!(
        s.contains("User: 70000") && s.contains("Group: 3000000"),
        "{s}"
    );
    let s = debugfs(&img, "stat /dev/big");
    assert!(s.contains("Device major/minor number: 300:70000"), "{s}");
    let s = debugfs(&img, "stat /dev/null");
    assert!(s.contains("Device major/minor number: 01:03"), "{s}");
    let s = debugfs(&img, "stat /slow-link");
    assert!(s.contains("Type: symlink") && s.contains("TOTAL: 1"), "{s}");
    let s = debugfs(&img, "stat /short-link");
    assert!(s.contains("Fast link dest: \"etc/hostname\""), "{s}");
    let s = debugfs(&img, "stat /holes");
    assert!(s.contains("Links: 1"), "{s}");
    let s = debugfs(&img, "stat /big");
    assert!(s.contains("Links: 2") && s.contains("(DIND)"), "{s}");
    let s = debugfs(&img, "stat /sparse");
    assert!(s.contains("(TIND)") == (bs == 1024), "{s}");
    let s = debugfs(&img, "stat /lost+found");
    assert!(
        s.contains(&format!("Size: {}", if bs == 1024 { 12288 } else { 16384 })),
        "{s}"
    );

    // rdump restores regular files with the same content
    let out = dir.path().join("rdump");
    std::fs::create_dir(&out).unwrap();
    debugfs(&img, &format!("rdump / {}", out.display()));
    let dumped = manifest(&mut HostDir(out.clone())).unwrap();
    for (p, r) in want.iter().filter(|(_, r)| r.kind == "file") {
        let d = dumped
            .get(p)
            .unwrap_or_else(|| panic!("{p} missing from rdump"));
        assert_eq!((d.size, &d.sha256), (r.size, &r.sha256), "{p}");
    }

    // the superblock
    let h = dumpe2fs_h(&img);
    assert!(h.contains("Filesystem volume name:   test-vol"), "{h}");
    assert!(
        h.contains("Filesystem UUID:          12345678-9abc-4def-8123-456789abcdef"),
        "{h}"
    );
    assert!(h.contains("Filesystem state:         clean"), "{h}");
    assert!(
        h.contains(&format!("Block size:               {bs}")),
        "{h}"
    );
    assert_eq!(h.contains("has_journal"), journal, "{h}");
    assert!(h.contains("Inode size:\t          256"), "{h}");
}

#[test]
#[ignore = "root tier: mounts the image on a loop device"]
fn full_tree_1k_ext3() {
    check_full(1024, true);
}

#[test]
#[ignore = "root tier: mounts the image on a loop device"]
fn full_tree_4k_ext2() {
    check_full(4096, false);
}

fn small_tree() -> MemTree {
    let mut t = MemTree::new();
    t.dir("a", 0o755, 1, 1, T);
    t.file(
        "a/f",
        Content::Pattern {
            size: 300_000,
            seed: 3,
            hole_every: 2,
        },
        0o644,
        1,
        1,
        T,
    );
    t.add(
        "a/l",
        Kind::Symlink {
            target: b"f".to_vec(),
        },
        0o777,
        0,
        0,
        T,
    );
    t
}

#[test]
fn block_sizes_and_journal() {
    let dir = tempfile::tempdir().unwrap();
    for (bs, journal, size) in [
        (1024, false, 4u64 << 20),
        (2048, true, 32 << 20),
        (4096, true, 600 << 20),
        (1024, true, 3 << 20),
    ] {
        let img = dir.path().join(format!("img-{bs}-{journal}"));
        build(opts(size, bs, journal), &mut small_tree(), &img).unwrap();
        e2fsck_clean(&img);
        let h = dumpe2fs_h(&img);
        assert_eq!(h.contains("has_journal"), journal, "{h}");
        assert!(h.contains("filetype sparse_super large_file"), "{h}");
        assert_same(
            &comparable(manifest(&mut small_tree()).unwrap()),
            &comparable(volume_manifest(&img)),
            "reader",
        );
        let v = Volume::open(File::open(&img).unwrap()).unwrap();
        assert_eq!(v.block_size(), bs);
        assert_eq!(v.label(), b"test-vol");
    }
}

#[test]
fn default_block_size_and_journal_size() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let mut o = Options::new(1 << 30);
    o.timestamp = T;
    build(o, &mut small_tree(), &img).unwrap();
    e2fsck_clean(&img);
    let h = dumpe2fs_h(&img);
    assert!(h.contains("Block size:               4096"), "{h}");
    // mke2fs 1.47 gives a 1 GiB volume a 32 MiB journal (8192 blocks)
    assert!(h.contains("Total journal blocks:     8192"), "{h}");
}

fn read_all(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    File::open(p).unwrap().read_to_end(&mut v).unwrap();
    v
}

#[test]
fn identical_inputs_give_identical_images() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    build(opts(16 << 20, 1024, true), &mut small_tree(), &a).unwrap();
    build(opts(16 << 20, 1024, true), &mut small_tree(), &b).unwrap();
    assert!(read_all(&a) == read_all(&b), "images differ");
    let mut o = opts(16 << 20, 1024, true);
    o.uuid[0] ^= 1;
    build(o, &mut small_tree(), &b).unwrap();
    assert!(
        read_all(&a) != read_all(&b),
        "uuid did not change the image"
    );
}

#[test]
fn sparse_image_occupies_little() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let mut t = MemTree::new();
    for i in 0..10 {
        t.file(
            &format!("f{i}"),
            Content::Pattern {
                size: 1 << 20,
                seed: i as u8,
                hole_every: 0,
            },
            0o644,
            0,
            0,
            T,
        );
    }
    build(opts(1 << 30, 4096, true), &mut t, &img).unwrap();
    e2fsck_clean(&img);
    let md = std::fs::metadata(&img).unwrap();
    assert_eq!(md.len(), 1 << 30);
    let used = md.blocks() * 512;
    assert!(
        used < 40 << 20,
        "1 GiB image with 10 MiB of files occupies {used} bytes"
    );
}

#[test]
fn errors_name_what_ran_out() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let mut t = MemTree::new();
    t.file(
        "huge",
        Content::Pattern {
            size: 5 << 20,
            seed: 1,
            hole_every: 0,
        },
        0o644,
        0,
        0,
        T,
    );
    match build(opts(2 << 20, 1024, false), &mut t, &img) {
        Err(e @ Error::OutOfBlocks { .. }) => assert!(
            e.to_string().contains("out of blocks") && e.to_string().contains("/huge"),
            "{e}"
        ),
        other => panic!("expected OutOfBlocks, got {other:?}"),
    }
    let mut t = MemTree::new();
    for i in 0..40 {
        t.file(&format!("f{i}"), Content::Bytes(Vec::new()), 0o644, 0, 0, T);
    }
    let mut o = opts(4 << 20, 1024, false);
    o.inodes = Some(16);
    match build(o, &mut t, &img) {
        Err(e @ Error::OutOfInodes { .. }) => assert!(
            e.to_string().contains("out of inodes") && e.to_string().contains("/f"),
            "{e}"
        ),
        other => panic!("expected OutOfInodes, got {other:?}"),
    }
    let mut t = MemTree::new();
    t.file("a/b", Content::Bytes(Vec::new()), 0o644, 0, 0, T);
    t.file("a", Content::Bytes(Vec::new()), 0o644, 0, 0, T);
    assert!(matches!(
        build(opts(4 << 20, 1024, false), &mut t, &img),
        Err(Error::ReplaceDir { .. })
    ));
    let mut t = MemTree::new();
    t.add(
        "x",
        Kind::HardLink {
            target: TreePath::from_member(b"nope").unwrap(),
        },
        0,
        0,
        0,
        0,
    );
    assert!(matches!(
        build(opts(4 << 20, 1024, false), &mut t, &img),
        Err(Error::HardLinkTarget { .. })
    ));
    let mut t = MemTree::new();
    t.file(&"n".repeat(256), Content::Bytes(Vec::new()), 0o644, 0, 0, T);
    assert!(matches!(
        build(opts(4 << 20, 1024, false), &mut t, &img),
        Err(Error::NameTooLong { .. })
    ));
    let mut t = MemTree::new();
    t.add(
        "empty-link",
        Kind::Symlink { target: Vec::new() },
        0o777,
        0,
        0,
        T,
    );
    assert!(matches!(
        build(opts(4 << 20, 1024, false), &mut t, &img),
        Err(Error::EmptySymlink { .. })
    ));
    let mut t = MemTree::new();
    t.add(
        "dev/huge",
        Kind::CharDev {
            major: 5000,
            minor: 1,
        },
        0o600,
        0,
        0,
        T,
    );
    assert!(matches!(
        build(opts(4 << 20, 1024, false), &mut t, &img),
        Err(Error::DeviceNumber { major: 5000, .. })
    ));
    let mut o = opts(4 << 20, 1024, false);
    o.label = vec![b'l'; 17];
    assert!(matches!(
        build(o, &mut MemTree::new(), &img),
        Err(Error::LabelTooLong(17))
    ));
    assert!(matches!(
        build(opts(1 << 20, 1024, true), &mut MemTree::new(), &img),
        Err(Error::NoRoomForJournal)
    ));
}

#[test]
fn overwrites_free_what_they_replace() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let mut t = MemTree::new();
    t.file(
        "f",
        Content::Pattern {
            size: 2 << 20,
            seed: 1,
            hole_every: 0,
        },
        0o644,
        0,
        0,
        T,
    );
    t.add(
        "link",
        Kind::HardLink {
            target: TreePath::from_member(b"f").unwrap(),
        },
        0,
        0,
        0,
        0,
    );
    t.file("f", Content::Bytes(b"small".to_vec()), 0o644, 0, 0, T);
    t.file(
        "g",
        Content::Pattern {
            size: 1 << 20,
            seed: 2,
            hole_every: 0,
        },
        0o644,
        0,
        0,
        T,
    );
    t.file("g", Content::Bytes(b"g".to_vec()), 0o644, 0, 0, T);
    t.dir("e", 0o755, 0, 0, T);
    t.add("e", Kind::Fifo, 0o644, 0, 0, T);
    t.dir("", 0o711, 0, 0, T);
    build(opts(16 << 20, 1024, true), &mut t, &img).unwrap();
    e2fsck_clean(&img);
    let m = volume_manifest(&img);
    assert_eq!(m[&TreePath::from_member(b"f").unwrap()].size, 5);
    assert_eq!(m[&TreePath::from_member(b"link").unwrap()].size, 2 << 20);
    assert_eq!(m[&TreePath::from_member(b"e").unwrap()].kind, "fifo");
    assert_eq!(m[&TreePath::root()].meta.perm, 0o711);
}
