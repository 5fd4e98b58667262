//! In-place updates never make a volume worse: damaged metadata is
//! refused before anything is written, and what populating a sound (or
//! mildly damaged) volume writes never lands on metadata or on another
//! file's blocks. Volumes come from mke2fs and from this crate's writer,
//! damaged with debugfs or by patching bytes; e2fsck judges the result.

use crate::ext_common;

use ext_common::*;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use vm_container::ext::{block_owners, Error, Populator, Volume};
use vm_container::tree::manifest::Manifest;
use vm_container::tree::{Kind, Source, TreePath};

const T: i64 = 1_700_000_000;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (install e2fsprogs)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small mke2fs volume with files, a directory, a hard link, a symlink
/// and an extended attribute in its own block.
fn mkfs(dir: &Path, kind: &str, bs: u32, size: &str) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(src.join("etc/big"), vec![7u8; 70_000]).unwrap();
    fs::write(src.join("small"), b"tiny").unwrap();
    let img = dir.join(format!("{kind}-{bs}.img"));
    run(
        "/usr/sbin/mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            kind,
            "-b",
            &bs.to_string(),
            "-d",
            src.to_str().unwrap(),
            img.to_str().unwrap(),
            size,
        ],
    );
    // debugfs's ln adds a name only; the count is set by hand
    debugfs_w(&img, "ln /etc/passwd /passwd-link");
    debugfs_w(&img, "sif /etc/passwd links_count 2");
    debugfs_w(&img, "symlink /sym etc/passwd");
    let value = dir.join("value");
    fs::write(&value, vec![b'v'; 600]).unwrap();
    debugfs_w(
        &img,
        &format!("ea_set -f {} /etc/big user.big", value.display()),
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
        "new/data",
        Content::Pattern {
            size: 300_000,
            seed: 9,
            hole_every: 0,
        },
        0o644,
        0,
        0,
        T,
    );
    t.add(
        "new/link",
        Kind::Symlink {
            target: vec![b'x'; 80],
        },
        0o777,
        0,
        0,
        T,
    );
    t
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

/// Group 0's metadata locations as debugfs reports them.
fn group0(img: &Path) -> (u64, u64, u64) {
    let s = debugfs(img, "stats");
    let line = s
        .lines()
        .find(|l| l.trim_start().starts_with("Group  0:"))
        .expect("group 0 in debugfs stats");
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    // "Group  0: block bitmap at B, inode bitmap at I, inode table at T"
    (nums[1], nums[2], nums[3])
}

/// The physical block of logical block `l` of `file` (a path or `<ino>`).
fn bmap(img: &Path, file: &str, l: u64) -> u64 {
    debugfs(img, &format!("bmap {file} {l}"))
        .trim()
        .parse()
        .unwrap()
}

fn block_size(img: &Path) -> u64 {
    let h = dumpe2fs_h(img);
    h.lines()
        .find_map(|l| l.strip_prefix("Block size:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Overwrites big-endian field `off` of the journal superblock.
fn patch_journal(img: &Path, off: u64, value: u32) {
    let b = bmap(img, "<8>", 0);
    let f = File::options().write(true).open(img).unwrap();
    f.write_all_at(&value.to_be_bytes(), b * block_size(img) + off)
        .unwrap();
}

/// The ways a volume is damaged here: a name, and how.
type Damage = (&'static str, fn(&Path));

/// Damage to what an in-place write trusts: each must be refused with
/// the volume left byte for byte as it was.
fn refused_damages() -> Vec<(Damage, &'static str)> {
    vec![
        (
            ("block bitmap at block 0", |img| {
                debugfs_w(img, "set_bg 0 block_bitmap 0")
            }),
            "group 0's block bitmap (block 0) overlaps",
        ),
        (
            ("block bitmap inside the inode table", |img| {
                let (_, _, t) = group0(img);
                debugfs_w(img, &format!("set_bg 0 block_bitmap {}", t + 1))
            }),
            "group 0's block bitmap",
        ),
        (
            ("inode bitmap on the block bitmap", |img| {
                let (b, _, _) = group0(img);
                debugfs_w(img, &format!("set_bg 0 inode_bitmap {b}"))
            }),
            "overlaps group 0's block bitmap",
        ),
        (
            ("inode table over the bitmaps", |img| {
                let (_, i, _) = group0(img);
                debugfs_w(img, &format!("set_bg 0 inode_table {i}"))
            }),
            "group 0's inode table",
        ),
        (
            ("inode table on the descriptors", |img| {
                debugfs_w(img, "set_bg 0 inode_table 1")
            }),
            "group 0's inode table (block 1) overlaps",
        ),
        (
            ("inode table outside its group", |img| {
                debugfs_w(img, "set_bg 1 inode_table 100")
            }),
            "group 1's inode table at block 100 lies outside its group",
        ),
        (
            ("uninit flag without uninit_bg", |img| {
                debugfs_w(img, "set_bg 0 flags 2")
            }),
            "group 0 is marked uninitialized",
        ),
        (
            ("journal superblock magic", |img| {
                patch_journal(img, 0, 0x1234_5678)
            }),
            "bad magic number",
        ),
        (
            ("journal block size", |img| patch_journal(img, 0xC, 2048)),
            "the journal's block size 2048 differs",
        ),
        (
            ("unknown journal incompat bit", |img| {
                patch_journal(img, 0x28, 0x80)
            }),
            "incompatible features 0x80",
        ),
        (
            ("journal async commit", |img| patch_journal(img, 0x28, 0x4)),
            "incompatible features 0x4",
        ),
        (
            ("journal csum v3 of no checksum type", |img| {
                patch_journal(img, 0x28, 0x10)
            }),
            "checksum type other than crc32c",
        ),
        (
            ("journal s_first 0", |img| patch_journal(img, 0x14, 0)),
            "first log block 0",
        ),
        (
            ("journal s_maxlen beyond its inode", |img| {
                patch_journal(img, 0x10, 1 << 20)
            }),
            "claims 1048576 blocks",
        ),
        (
            ("journal s_start beyond s_maxlen", |img| {
                patch_journal(img, 0x1C, 1 << 20)
            }),
            "log start 1048576",
        ),
        (
            ("journal shared by two", |img| patch_journal(img, 0x40, 2)),
            "shared by 2 file systems",
        ),
        (
            ("v1 journal with users", |img| {
                patch_journal(img, 4, 3);
                patch_journal(img, 0x40, 3);
            }),
            "version 1",
        ),
        (
            ("external journal", |img| {
                debugfs_w(img, "ssv journal_inum 0")
            }),
            "external",
        ),
        (
            ("file block free in the bitmap", |img| {
                let b = bmap(img, "/etc/big", 3);
                debugfs_w(img, &format!("freeb {b}"))
            }),
            "is free in group",
        ),
        (
            ("inode free in the bitmap", |img| {
                debugfs_w(img, "freei /etc/passwd")
            }),
            "free in group 0's inode bitmap",
        ),
        (
            ("two files share a block", |img| {
                let b = bmap(img, "/etc/big", 0);
                debugfs_w(img, &format!("sif /small block[0] {b}"))
            }),
            "also held by another inode",
        ),
        (
            ("file block in the inode table", |img| {
                let (_, _, t) = group0(img);
                debugfs_w(img, &format!("sif /small block[0] {}", t + 2))
            }),
            "which is group 0's inode table",
        ),
        (
            ("volume marked with errors", |img| {
                debugfs_w(img, "ssv state 3")
            }),
            "marked as having errors",
        ),
        (
            ("inode count not the groups' inodes", |img| {
                debugfs_w(img, "ssv inodes_count 100")
            }),
            "s_inodes_count 100",
        ),
    ]
}

fn image_bytes(img: &Path) -> Vec<u8> {
    fs::read(img).unwrap()
}

#[test]
fn bitmap_at_the_superblock_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let img = mkfs(tmp.path(), "ext3", 4096, "32M");
    debugfs_w(&img, "set_bg 0 block_bitmap 0");
    let before = image_bytes(&img);
    let err = populate(&img, &mut additions()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Unsound(_)), "{msg}");
    assert!(
        msg.contains("group 0's block bitmap (block 0) overlaps the superblock")
            && msg.ends_with("check it with e2fsck -f while it is not in use")
            && !msg.contains('\n'),
        "{msg}"
    );
    assert!(image_bytes(&img) == before, "the refused volume changed");
}

#[test]
fn damaged_metadata_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    for bs in [1024u32, 4096] {
        let clean = mkfs(tmp.path(), "ext3", bs, "16M");
        for ((name, damage), want) in refused_damages() {
            // block 0 is the superblock with 4 KiB blocks only; a 16 MiB
            // volume of 4 KiB blocks has a single group
            if bs == 1024 && name == "block bitmap at block 0"
                || bs == 4096 && name == "inode table outside its group"
            {
                continue;
            }
            let img = tmp.path().join("damaged.img");
            fs::copy(&clean, &img).unwrap();
            damage(&img);
            let before = image_bytes(&img);
            let err = match populate(&img, &mut additions()) {
                Ok(()) => panic!("{bs}: {name}: populated a damaged volume"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.contains(want) && err.starts_with("refusing to write"),
                "{bs}: {name}: {err}"
            );
            assert!(
                image_bytes(&img) == before,
                "{bs}: {name}: the refused volume changed"
            );
        }
    }
}

/// The bitmap calls the inode table free: the allocator must still
/// never hand those blocks out.
#[test]
fn metadata_is_never_allocated_whatever_the_bitmap_says() {
    let tmp = tempfile::tempdir().unwrap();
    let img = mkfs(tmp.path(), "ext2", 1024, "8M");
    let (b, i, t) = group0(&img);
    // free the bitmaps, the inode table's tail and what follows it
    let h = dumpe2fs_h(&img);
    let ipg: u64 = field(&h, "Inodes per group:");
    let isz: u64 = field(&h, "Inode size:");
    let end = t + ipg * isz / 1024;
    debugfs_w(&img, &format!("freeb {b}"));
    debugfs_w(&img, &format!("freeb {i}"));
    debugfs_w(&img, &format!("freeb {} {}", t + 3, end - t - 3));
    let problems_before = e2fsck_problems(&img);
    let old = owners(&img);
    let dirs = dir_inodes(&img, &old);
    let want = manifest_of(&img);
    populate(&img, &mut additions()).unwrap();
    let after = owners(&img);
    assert_held(&dirs, &old, &after, &BTreeSet::new(), "freed metadata");
    assert_kept(&want, &manifest_of(&img), "freed metadata");
    // nothing new landed in the freed range
    let meta: BTreeSet<u64> = [b, i].into_iter().chain(t..end).collect();
    for (ino, blk) in &after {
        assert!(!meta.contains(blk), "inode {ino} got metadata block {blk}");
    }
    assert!(e2fsck_problems(&img) <= problems_before);
}

fn field(h: &str, name: &str) -> u64 {
    h.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("{name} missing"))
        .trim()
        .parse()
        .unwrap()
}

fn owners(img: &Path) -> BTreeSet<(u32, u64)> {
    let v = Volume::open(File::open(img).unwrap()).unwrap();
    block_owners(&v).unwrap().into_iter().collect()
}

fn manifest_of(img: &Path) -> Manifest {
    comparable(volume_manifest(img))
}

/// Inodes of the volume that are directories.
fn dir_inodes(img: &Path, pairs: &BTreeSet<(u32, u64)>) -> BTreeSet<u32> {
    let v = Volume::open(File::open(img).unwrap()).unwrap();
    pairs
        .iter()
        .map(|p| p.0)
        .filter(|&i| {
            v.inode(i)
                .is_ok_and(|n| u32::from(n.i_mode) & 0o170000 == 0o040000)
        })
        .collect()
}

/// What an update may change of the old (inode, block) pairs: no inode
/// holds a block now that it did not hold before and that was in use
/// before, and every old pair stays, but for directories (rewritten into
/// fresh blocks) and inodes in `gone` (replaced files).
fn assert_held(
    img_before: &BTreeSet<u32>,
    old: &BTreeSet<(u32, u64)>,
    new: &BTreeSet<(u32, u64)>,
    gone: &BTreeSet<u32>,
    what: &str,
) {
    let old_blocks: BTreeSet<u64> = old.iter().map(|p| p.1).collect();
    for p in new.difference(old) {
        assert!(
            !old_blocks.contains(&p.1),
            "{what}: inode {} now holds block {}, which was in use",
            p.0,
            p.1
        );
    }
    for p in old.difference(new) {
        assert!(
            img_before.contains(&p.0) || gone.contains(&p.0),
            "{what}: inode {} no longer holds block {}",
            p.0,
            p.1
        );
    }
}

/// Every non-directory path of `old` is still there with the same
/// content.
fn assert_kept(old: &Manifest, new: &Manifest, what: &str) {
    for (p, e) in old {
        if e.kind == "directory" {
            continue;
        }
        match new.get(p) {
            Some(n) if n.sha256 == e.sha256 && n.size == e.size && n.symlink == e.symlink => {}
            Some(_) => panic!("{what}: {} changed", p.display_abs()),
            None => panic!("{what}: {} vanished", p.display_abs()),
        }
    }
}

/// e2fsck -fn's findings: each question it answers no to, and each range
/// in a bitmap-differences list.
fn e2fsck_problems(img: &Path) -> usize {
    let out = Command::new("/usr/sbin/e2fsck")
        .arg("-fn")
        .arg(img)
        .output()
        .expect("e2fsck (install e2fsprogs)");
    let text = String::from_utf8_lossy(&out.stdout);
    let questions = text.matches("? no").count();
    let ranges: usize = text
        .lines()
        .filter(|l| l.contains("bitmap differences:"))
        .map(|l| {
            l.split_whitespace()
                .filter(|w| w.starts_with(['+', '-']))
                .count()
        })
        .sum();
    questions + ranges
}

/// Damage e2fsck finds but that an update need not trust: populating
/// either refuses or leaves e2fsck no more to find than before.
fn tolerable_damages() -> Vec<Damage> {
    vec![
        ("free blocks count of group 0", |img| {
            debugfs_w(img, "set_bg 0 free_blocks_count 3")
        }),
        ("free inodes count of the superblock", |img| {
            debugfs_w(img, "ssv free_inodes_count 7")
        }),
        ("directory link count", |img| {
            debugfs_w(img, "sif /etc links_count 9")
        }),
        ("file link count too high", |img| {
            debugfs_w(img, "sif /small links_count 4")
        }),
        ("leaked block", |img| {
            let (_, _, t) = group0(img);
            debugfs_w(img, &format!("setb {}", t + 2000))
        }),
        ("leaked inode", |img| debugfs_w(img, "seti <100>")),
        ("unattached inode", |img| debugfs_w(img, "unlink /small")),
        ("file size too small", |img| {
            debugfs_w(img, "sif /etc/big size 10")
        }),
        ("deleted-time on a live file", |img| {
            debugfs_w(img, "sif /etc/passwd dtime 12345")
        }),
        ("inode table block freed", |img| {
            let (_, _, t) = group0(img);
            debugfs_w(img, &format!("freeb {}", t + 1))
        }),
    ]
}

#[test]
fn damaged_volumes_never_get_worse() {
    let tmp = tempfile::tempdir().unwrap();
    let mut refused = Vec::new();
    let mut populated = Vec::new();
    let damages: Vec<Damage> = tolerable_damages()
        .into_iter()
        .chain(refused_damages().into_iter().map(|(d, _)| d))
        .collect();
    for kind in ["ext2", "ext3"] {
        let clean = mkfs(tmp.path(), kind, 1024, "16M");
        for (name, damage) in &damages {
            if *name == "block bitmap at block 0" {
                continue;
            }
            if kind == "ext2" && name.contains("journal") {
                continue;
            }
            let img = tmp.path().join("damaged.img");
            fs::copy(&clean, &img).unwrap();
            damage(&img);
            let before = image_bytes(&img);
            let problems = e2fsck_problems(&img);
            let old = owners(&img);
            let dirs = dir_inodes(&img, &old);
            match populate(&img, &mut additions()) {
                Err(e) => {
                    assert!(
                        image_bytes(&img) == before,
                        "{kind}: {name}: refused ({e}) but changed"
                    );
                    refused.push(format!("{kind} {name}: {e}"));
                }
                Ok(()) => {
                    let after = e2fsck_problems(&img);
                    assert!(
                        after <= problems,
                        "{kind}: {name}: e2fsck found {problems} problems before, {after} after"
                    );
                    assert_held(&dirs, &old, &owners(&img), &BTreeSet::new(), name);
                    populated.push(format!("{kind} {name}: {problems} -> {after}"));
                }
            }
        }
    }
    eprintln!(
        "{} damaged volumes refused:\n  {}\n{} populated without getting worse:\n  {}",
        refused.len(),
        refused.join("\n  "),
        populated.len(),
        populated.join("\n  ")
    );
    assert!(refused.len() >= 10 && populated.len() >= 10);
}

/// Random trees, as proptest makes them: paths under a few directories,
/// file sizes from empty to several blocks, some symlinks.
fn tree_strategy() -> impl Strategy<Value = Vec<(String, u32, bool)>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["a", "b", "a/c", "etc", "deep/er/still"]),
            "[a-z]{2,12}",
            0u32..40_000,
            any::<bool>(),
        )
            .prop_map(|(d, n, size, link)| (format!("{d}/{n}"), size, link)),
        1..12,
    )
}

fn tree_of(spec: &[(String, u32, bool)], seed: u8) -> MemTree {
    let mut t = MemTree::new();
    let mut seen = BTreeSet::new();
    for (path, size, link) in spec {
        if !seen.insert(path.clone()) {
            continue;
        }
        if *link {
            t.add(
                path,
                Kind::Symlink {
                    target: format!("../{}", "t".repeat(*size as usize % 90 + 1)).into_bytes(),
                },
                0o777,
                0,
                0,
                T,
            );
        } else {
            t.file(
                path,
                Content::Pattern {
                    size: u64::from(*size),
                    seed,
                    hole_every: 3,
                },
                0o640,
                1,
                2,
                T,
            );
        }
    }
    t
}

/// A clean volume to populate: this crate's own (ext2 or ext3), or
/// mke2fs's with attributes and hard links.
fn base(dir: &Path, which: u8, spec: &[(String, u32, bool)]) -> PathBuf {
    match which {
        0 | 1 => {
            let img = dir.join("ours.img");
            let mut t = tree_of(spec, 1);
            build(opts(12 << 20, 1024, which == 1), &mut t, &img).unwrap();
            img
        }
        _ => {
            // the random tree goes in through mke2fs -d as host files
            let src = dir.join("src");
            for (path, size, link) in spec {
                let host = src.join(path);
                fs::create_dir_all(host.parent().unwrap()).unwrap();
                if host.symlink_metadata().is_ok() {
                    continue;
                }
                if *link {
                    std::os::unix::fs::symlink("t".repeat(*size as usize % 90 + 1), &host).unwrap();
                } else {
                    let data: Vec<u8> = (0..*size).map(|i| (i % 253) as u8 | 1).collect();
                    fs::write(&host, data).unwrap();
                }
            }
            let img = mkfs(dir, if which == 2 { "ext2" } else { "ext3" }, 1024, "12M");
            debugfs_w(&img, "ln /etc/big /big-link");
            debugfs_w(&img, "sif /etc/big links_count 2");
            debugfs_w(&img, "ea_set /small user.note short");
            img
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn populating_clean_volumes_stays_clean(
        which in 0u8..4,
        old in tree_strategy(),
        new in tree_strategy(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let img = base(tmp.path(), which, &old);
        e2fsck_clean(&img);
        let before = owners(&img);
        let dirs = dir_inodes(&img, &before);
        let mut kept = manifest_of(&img);
        let added = tree_of(&new, 2);
        let new_paths: BTreeSet<TreePath> = added.0.iter().map(|(e, _)| e.path.clone()).collect();
        let gone: BTreeSet<u32> = {
            let v = Volume::open(File::open(&img).unwrap()).unwrap();
            new_paths.iter().filter_map(|p| v.lookup(p).ok()).collect()
        };
        populate(&img, &mut tree_of(&new, 2)).unwrap();
        e2fsck_clean(&img);
        assert_held(&dirs, &before, &owners(&img), &gone, "clean volume");
        kept.retain(|p, _| !new_paths.contains(p));
        assert_kept(&kept, &manifest_of(&img), "clean volume");
    }
}
