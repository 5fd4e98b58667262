//! ext4 images written by `ext::Builder`, checked with e2fsck, dumpe2fs,
//! debugfs and the kernel (loop mounts, read-only then read-write).

use crate::ext_common;

use crate::common::bin;
use crate::common::trees::{run_ok, sh_ok, Job};
use ext_common::*;
use std::path::Path;
use vm_container::ext::Options;
use vm_container::tree::manifest::manifest;
use vm_container::tree::{Entry, Kind, Meta, TreePath};

const T: i64 = 1_600_000_000;

/// The features `mke2fs -t ext4` of Debian 12 sets, less resize_inode,
/// in dumpe2fs's order.
const FEATURES: &str = "Filesystem features:      has_journal ext_attr dir_index filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum";

fn ext4_opts(size: u64, bs: u32) -> Options {
    Options {
        ext4: true,
        ..opts(size, bs, true)
    }
}

fn big_file(t: &mut MemTree, path: &str, size: u64, hole_every: u64, seed: u8) {
    t.0.push((
        Entry {
            path: TreePath::from_member(path.as_bytes()).unwrap(),
            kind: Kind::File { size },
            meta: Meta {
                perm: 0o644,
                uid: 0,
                gid: 0,
                mtime: T,
            },
            xattrs: Default::default(),
        },
        Some(Content::Pattern {
            size,
            seed,
            hole_every,
        }),
    ));
}

/// Every kind of entry: empty and 100 MB files, files with many holes
/// (deep extent trees), a directory of 10,000 names (a two-level htree
/// with 1 KiB blocks), fast and long symlinks, and the
/// [`special_entries`].
fn ext4_tree() -> MemTree {
    let mut t = MemTree::new();
    etc_entries(&mut t, T);
    big_file(&mut t, "hundred", 100 << 20, 0, 3);
    // half of every 128 KiB is a hole: hundreds of extents
    big_file(&mut t, "fragmented", 100 << 20, 2, 5);
    // only the edges hold data
    big_file(&mut t, "sparse", 68 << 20, 0, 1);
    t.file("zeros", Content::Bytes(vec![0; 70_000]), 0o644, 0, 0, T);
    t.dir("many", 0o755, 0, 0, T);
    for i in 0..10_000u32 {
        t.file(
            &format!("many/entry-{i:05}"),
            Content::Bytes(format!("{i}").into_bytes()),
            0o644,
            i,
            i,
            T + i64::from(i),
        );
    }
    t.dir("few", 0o700, 1, 1, T);
    for i in 0..200u32 {
        let target = format!("../many/entry-{i:05}");
        t.symlink(&format!("few/link-{i}"), target.as_bytes(), T);
    }
    t.symlink("short-link", b"etc/hostname", T);
    t.symlink("long-link", &[&b"/"[..], &vec![b'y'; 900]].concat(), T);
    special_entries(&mut t, T, "hundred");
    t
}

/// Checks what the tools say of an image built from [`ext4_tree`].
fn check_offline(img: &Path, bs: u32) {
    e2fsck_clean(img);
    let h = dumpe2fs_h(img);
    let block_size = format!("Block size:               {bs}");
    for line in [
        FEATURES,
        "Checksum type:            crc32c",
        "Group descriptor size:    64",
        "Flex block group size:    16",
        "Required extra isize:     32",
        "Journal features:         journal_checksum_v3",
        "Journal checksum type:    crc32c",
        &block_size,
    ] {
        assert!(h.contains(line), "{line} missing:\n{h}");
    }

    let s = debugfs(img, "stat /hundred");
    assert!(
        s.contains("Flags: 0x80000") && s.contains("Links: 2"),
        "{s}"
    );
    // hundreds of extents need index blocks: depth 1, or 2 with 1 KiB
    let s = debugfs(img, "stat /fragmented");
    let head = &s[..s.len().min(2000)];
    assert!(s.contains("(ETB0)"), "{head}");
    assert_eq!(s.contains("(ETB1)"), bs == 1024, "{head}");
    let s = debugfs(img, "stat /many");
    assert!(s.contains("Flags: 0x81000"), "{s}");
    let s = debugfs(img, "htree /many");
    let levels = if bs == 1024 { 1 } else { 0 };
    assert!(s.contains(&format!("Indirect levels: {levels}")), "{s}");
    let s = debugfs(img, "stat /ids");
    assert!(
        s.contains("User: 70000") && s.contains("Group: 3000000"),
        "{s}"
    );
    assert!(s.contains("Inode checksum: 0x"), "{s}");
    let s = debugfs(img, "stat /future");
    assert!(
        s.contains("mtime: 0xee6b2800:00000001 -- Tue Oct  2 07:06:40 2096"),
        "{s}"
    );
    let s = debugfs(img, "stat /dev/big");
    assert!(s.contains("Device major/minor number: 300:70000"), "{s}");
    let s = debugfs(img, "stat /long-link");
    assert!(
        s.contains("Type: symlink") && s.contains("Size: 901"),
        "{s}"
    );
}

fn check_full(bs: u32) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    build(ext4_opts(400 << 20, bs), &mut ext4_tree(), &img).unwrap();
    check_offline(&img, bs);
    let want = comparable(manifest(&mut ext4_tree()).unwrap());
    assert_same(&want, &comparable(volume_manifest(&img)), "reader");

    // the kernel reads it
    let m = Mount::new(&img);
    let got = manifest(&mut HostDir(m.dir.path().to_path_buf())).unwrap();
    assert_same(&want, &comparable(got), "mounted");
    drop(m);

    // the kernel writes to it: new files in the hashed directory (leaf
    // splits), a big file, removals, then a clean check
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    sh_ok(
        &format!(
            "set -e
         mount -o loop {img} {mnt}
         trap 'umount {mnt}' EXIT
         for i in $(seq 1 3000); do echo $i > {mnt}/many/added-name-$i; done
         rm -f {mnt}/many/entry-00*
         head -c 30000000 /dev/urandom > {mnt}/new-big
         rm {mnt}/fragmented {mnt}/long-link
         mkdir -p {mnt}/a/b/c && cp -a {mnt}/etc {mnt}/a/b/c/
         rm -rf {mnt}/few",
            img = img.display(),
            mnt = mnt.display()
        ),
        dir.path(),
    );
    e2fsck_clean(&img);
    let after = volume_manifest(&img);
    assert!(after.contains_key(&TreePath::from_member(b"many/added-name-3000").unwrap()));
    assert!(!after.contains_key(&TreePath::from_member(b"many/entry-00001").unwrap()));
    assert!(after.contains_key(&TreePath::from_member(b"many/entry-01000").unwrap()));
}

#[test]
#[ignore = "root tier: mounts the image on a loop device"]
fn ext4_1k_blocks_mounted_read_and_written() {
    check_full(1024);
}

#[test]
#[ignore = "root tier: mounts the image on a loop device"]
fn ext4_4k_blocks_mounted_read_and_written() {
    check_full(4096);
}

/// A small tree for the checks that need no mount.
fn small_tree() -> MemTree {
    let mut t = MemTree::new();
    t.dir("d", 0o755, 0, 0, T);
    for i in 0..300u32 {
        t.file(
            &format!("d/file-{i}"),
            Content::Bytes(vec![i as u8; i as usize * 50]),
            0o644,
            0,
            0,
            T,
        );
    }
    big_file(&mut t, "holes", 8 << 20, 2, 9);
    t.symlink("link", &[b'z'; 200], T);
    t
}

#[test]
fn ext4_passes_e2fsck_at_every_block_size() {
    for bs in [1024, 2048, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        build(ext4_opts(64 << 20, bs), &mut small_tree(), &img).unwrap();
        e2fsck_clean(&img);
        let h = dumpe2fs_h(&img);
        assert!(h.contains(FEATURES), "{bs}: {h}");
        let want = comparable(manifest(&mut small_tree()).unwrap());
        assert_same(&want, &comparable(volume_manifest(&img)), "reader");
        let s = debugfs(&img, "htree /d");
        assert!(s.contains("Root node dump"), "{bs}: {s}");
    }
}

#[test]
fn ext4_images_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    build(ext4_opts(32 << 20, 1024), &mut small_tree(), &a).unwrap();
    build(ext4_opts(32 << 20, 1024), &mut small_tree(), &b).unwrap();
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
}

#[test]
fn updating_an_ext4_image_in_place_is_refused_naming_the_features() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    build(ext4_opts(32 << 20, 1024), &mut small_tree(), &img).unwrap();
    let before = std::fs::read(&img).unwrap();
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let v = vm_container::ext::Volume::open_rw(f).unwrap();
    let e = match vm_container::ext::Populator::new(&v, T) {
        Ok(_) => panic!("an ext4 volume was accepted for an update in place"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("not updated in place: extent 64bit flex_bg metadata_csum"),
        "{e}"
    );
    drop(v);
    assert!(std::fs::read(&img).unwrap() == before, "the image changed");
}

/// `[image ... fs ext4]` from a container file: populated from a host
/// directory, checked clean, read back by `ls` and `cat`.
#[test]
fn a_container_writes_an_ext4_image() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hostname"), "web\n").unwrap();
    for i in 0..400 {
        std::fs::write(src.join(format!("etc/f{i}")), format!("{i}\n")).unwrap();
    }
    let img = dir.path().join("root.img");
    let text = format!(
        "[image {img} 64MB root fs ext4][end]\n[populate image {img} / {src}][end]\n",
        img = img.display(),
        src = src.display()
    );
    Job::new(dir.path(), "c.vmc", &text).ok();
    e2fsck_clean(&img);
    assert!(dumpe2fs_h(&img).contains(FEATURES));
    assert!(debugfs(&img, "stat /etc").contains("Flags: 0x81000"));
    let ls = run_ok(bin().arg("ls").arg(&img).arg("/etc"));
    assert_eq!(ls.lines().count(), 401, "{ls}");
    let cat = run_ok(bin().arg("cat").arg(&img).arg("/etc/hostname"));
    assert_eq!(cat, "web\n");
}

/// dir_nlink: a directory with more than 65,000 subdirectories counts
/// one link, as the kernel and e2fsck expect.
#[test]
fn a_directory_past_the_link_limit_counts_one_link() {
    let mut t = MemTree::new();
    t.dir("d", 0o755, 0, 0, T);
    for i in 0..65_010 {
        t.dir(&format!("d/{i}"), 0o755, 0, 0, T);
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let opts = Options {
        inodes: Some(70_000),
        ..ext4_opts(160 << 20, 1024)
    };
    build(opts, &mut t, &img).unwrap();
    e2fsck_clean(&img);
    let s = debugfs(&img, "stat /d");
    assert!(s.contains("Links: 1 "), "{s}");
    let s = debugfs(&img, "stat /d/65009");
    assert!(s.contains("Links: 2 "), "{s}");
}
