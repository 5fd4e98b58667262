use super::*;
use crate::ext::{Builder, Options};
use crate::tree::manifest::{manifest, Manifest};
use crate::tree::Source;
use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;
use std::process::Command;

fn entry(path: &str, kind: Kind) -> Entry {
    Entry {
        path: TreePath::from_member(path.as_bytes()).unwrap(),
        kind,
        meta: Meta {
            perm: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_000_000,
        },
    }
}

struct Files(Vec<(&'static str, Vec<u8>)>);

impl Source for Files {
    fn emit(&mut self, sink: &mut dyn Sink) -> std::io::Result<()> {
        for (p, d) in &self.0 {
            sink.put(
                &entry(
                    p,
                    Kind::File {
                        size: d.len() as u64,
                    },
                ),
                &mut &d[..],
            )?;
        }
        Ok(())
    }
}

fn e2fsck(img: &Path, opt: &str) -> i32 {
    Command::new("/usr/sbin/e2fsck")
        .arg(opt)
        .arg(img)
        .output()
        .expect("e2fsck missing: install e2fsprogs")
        .status
        .code()
        .unwrap_or(-1)
}

fn read(img: &Path) -> Manifest {
    let mut v = Volume::open(File::open(img).unwrap()).unwrap();
    manifest(&mut v).unwrap()
}

/// The paths the interrupted update deletes: a file big enough for
/// indirect and doubly indirect blocks, a sparse one whose only block
/// lies behind a triply indirect one, the only file of a directory
/// tree, and one of two hard links.
const DELETED: [&str; 4] = ["gone", "sparse", "dir/sub/f", "link-a"];

/// A new file `img` in `dir`, open for reading and writing.
fn image_file(dir: &Path) -> (std::path::PathBuf, File) {
    let img = dir.join("img");
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&img)
        .unwrap();
    (img, f)
}

fn interrupted(stop: Stop) -> (Manifest, Manifest, std::path::PathBuf, tempfile::TempDir) {
    interrupted_on(stop, false)
}

/// The update of [`interrupted`] on ext3, or with `ext4` on ext4 with
/// metadata_csum and a checksum v3 journal.
fn interrupted_on(
    stop: Stop,
    ext4: bool,
) -> (Manifest, Manifest, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (img, f) = image_file(dir.path());
    let mut o = Options::new(8 << 20);
    o.block_size = Some(1024);
    o.ext4 = ext4;
    let mut b = Builder::new(o, &f).unwrap();
    Files(vec![
        ("old", b"old content".to_vec()),
        ("keep", b"kept".to_vec()),
        ("gone", vec![9; 400_000]),
        ("dir/sub/f", b"f".to_vec()),
        ("link-a", b"two names".to_vec()),
    ])
    .emit(&mut b)
    .unwrap();
    let link = Entry {
        kind: Kind::HardLink {
            target: TreePath::from_member(b"link-a").unwrap(),
        },
        ..entry("link-b", Kind::Dir)
    };
    b.put(&link, &mut std::io::empty()).unwrap();
    // past 12 + 256 + 256^2 blocks of 1 KiB
    let size = 70u64 << 20;
    let sparse = entry("sparse", Kind::File { size });
    let mut data = std::io::Read::chain(std::io::repeat(0).take(size - 1), &b"x"[..]);
    b.put(&sparse, &mut data).unwrap();
    b.finish().unwrap();
    drop(f);
    let v = Volume::open(File::open(&img).unwrap()).unwrap();
    let sp = v.inode(v.lookup(&sparse.path).unwrap()).unwrap();
    assert!(
        ext4 || sp.i_block[inode::EXT2_TIND_BLOCK] != 0,
        "no triply indirect block"
    );
    drop(v);
    let before = read(&img);
    std::fs::copy(&img, dir.path().join("before")).unwrap();
    let v = Volume::open_rw(File::options().read(true).write(true).open(&img).unwrap()).unwrap();
    let mut p = Populator::new(&v, 2_000_000).unwrap();
    p.stop = stop;
    Files(vec![
        ("old", b"new content".to_vec()),
        ("added", vec![1; 5000]),
    ])
    .emit(&mut p)
    .unwrap();
    for d in DELETED {
        p.delete(&TreePath::from_member(d.as_bytes()).unwrap())
            .unwrap();
    }
    p.finish().unwrap();
    (before, read(&img), img, dir)
}

/// Every block `old` uses outside its journal, compared with the
/// same block of `new`: the blocks that differ.
fn used_blocks_that_differ(old: &Path, new: &Path) -> Vec<u64> {
    let v = Volume::open(File::open(old).unwrap()).unwrap();
    let newf = File::open(new).unwrap();
    let bs = u64::from(v.block_size);
    let jino = v.inode(v.sb.s_journal_inum).unwrap();
    let journal: BTreeSet<u64> = (0..jino.size() / bs)
        .filter_map(|l| v.map(&jino, l).unwrap())
        .collect();
    let first = u64::from(v.sb.s_first_data_block);
    let bpg = u64::from(v.sb.s_blocks_per_group);
    let mut differ = Vec::new();
    let (mut a, mut b) = (vec![0u8; bs as usize], vec![0u8; bs as usize]);
    for (g, gd) in v.groups.iter().enumerate() {
        let mut bm = vec![0u8; bs as usize];
        v.read_block(gd.bg_block_bitmap, &mut bm).unwrap();
        for i in 0..bpg {
            let blk = first + g as u64 * bpg + i;
            let used = bm[(i / 8) as usize] & (1 << (i % 8)) != 0;
            if blk >= v.blocks_count || !used || journal.contains(&blk) {
                continue;
            }
            v.read_block(blk, &mut a).unwrap();
            super::super::io::read_at(&newf, blk * bs, &mut b).unwrap();
            if a != b {
                differ.push(blk);
            }
        }
    }
    differ
}

#[test]
fn interrupted_before_commit_block_leaves_the_old_volume() {
    left_untouched(false);
}

/// An update stopped before its commit block, on ext3 or ext4: the old
/// volume, byte for byte wherever it holds something.
fn left_untouched(ext4: bool) {
    let (before, after, img, d) = interrupted_on(Stop::BeforeCommitBlock, ext4);
    assert_eq!(before, after);
    assert_eq!(e2fsck(&img, "-fn"), 0);
    // only free blocks and the journal were written: every block the
    // old volume uses holds the same bytes
    let old = d.path().join("before");
    assert_eq!(used_blocks_that_differ(&old, &img), Vec::<u64>::new());
    let (o, n) = (std::fs::read(&old).unwrap(), std::fs::read(&img).unwrap());
    assert_eq!(o[..2048], n[..2048], "boot block or superblock");
}

fn check_replayed(before: &Manifest, after: &Manifest) {
    let p = |s: &str| TreePath::from_member(s.as_bytes()).unwrap();
    assert_eq!(after[&p("old")].size, 11);
    assert_ne!(after[&p("old")].sha256, before[&p("old")].sha256);
    assert_eq!(after[&p("added")].size, 5000);
    assert_eq!(after[&p("keep")], before[&p("keep")]);
    for d in DELETED.iter().chain(&["dir/sub", "dir"]) {
        assert!(!after.contains_key(&p(d)), "{d} is still there");
    }
    let mut kept = before[&p("link-b")].clone();
    kept.link_group = None;
    assert_eq!(after[&p("link-b")], kept);
}

#[test]
fn interrupted_after_commit_block_is_replayed() {
    let (before, _, img, d) = interrupted(Stop::BeforeCheckpoint);
    // the journal replay is a fix, so the first run reports 1
    assert!(matches!(e2fsck(&img, "-fy"), 0 | 1));
    assert_eq!(e2fsck(&img, "-fn"), 0);
    check_replayed(&before, &read(&img));
    // the same volume as an uninterrupted update makes, free counts
    // included
    let (_, done, whole, _d2) = interrupted(Stop::Never);
    assert_eq!(done, read(&img));
    let counts = |i: &Path| {
        let o = Command::new("/usr/sbin/dumpe2fs").arg(i).output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("ree blocks") || l.contains("ree inodes"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(&img), counts(&whole));
    drop(d);
}

#[test]
fn a_failure_after_the_commit_block_says_the_update_is_committed() {
    let d = tempfile::tempdir().unwrap();
    let (img, f) = image_file(d.path());
    let b = Builder::new(Options::new(8 << 20), &f).unwrap();
    b.finish().unwrap();
    let v = Volume::open_rw(f).unwrap();
    let mut p = Populator::new(&v, 2_000_000).unwrap();
    p.stop = Stop::FailAfterCommitBlock;
    Files(vec![("added", b"new".to_vec())])
        .emit(&mut p)
        .unwrap();
    let e = p.finish().unwrap_err();
    assert!(matches!(e, Error::AfterCommit(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("injected") && msg.contains("update is committed"),
        "{msg}"
    );
    // and it is: a replay completes it
    assert!(matches!(e2fsck(&img, "-fy"), 0 | 1));
    let p = |s: &str| TreePath::from_member(s.as_bytes()).unwrap();
    assert_eq!(read(&img)[&p("added")].size, 3);
}

/// What `f` finds in `img` mounted (the kernel replays its journal) on
/// a directory under `dir`.
fn mounted<T>(img: &Path, dir: &Path, f: impl FnOnce(&Path) -> T) -> T {
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-o", "loop"])
        .arg(img)
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "mount -o loop failed (run as root with loop devices)"
    );
    let found = f(&mnt);
    let st = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(st.success());
    found
}

#[test]
#[ignore = "root tier: the kernel replays the journal on a loop mount"]
fn interrupted_after_commit_block_is_replayed_by_the_kernel() {
    let (before, _, img, d) = interrupted(Stop::BeforeCheckpoint);
    let (old, gone, dir) = mounted(&img, d.path(), |mnt| {
        (
            std::fs::read(mnt.join("old")),
            DELETED.map(|p| mnt.join(p).exists()),
            mnt.join("dir").exists(),
        )
    });
    assert_eq!(old.unwrap(), b"new content");
    assert_eq!(gone, [false; 4]);
    assert!(!dir);
    assert_eq!(e2fsck(&img, "-fn"), 0);
    check_replayed(&before, &read(&img));
}

#[test]
fn ext4_interrupted_before_commit_block_leaves_the_old_volume() {
    left_untouched(true);
}

#[test]
fn ext4_interrupted_after_commit_block_is_replayed() {
    let (before, _, img, _d) = interrupted_on(Stop::BeforeCheckpoint, true);
    // e2fsck checks the v3 checksums of the descriptor, the logged
    // blocks and the commit block before it replays them
    assert!(matches!(e2fsck(&img, "-fy"), 0 | 1));
    assert_eq!(e2fsck(&img, "-fn"), 0);
    check_replayed(&before, &read(&img));
    let (_, done, _, _d2) = interrupted_on(Stop::Never, true);
    assert_eq!(done, read(&img));
}

/// A 1 KiB-block volume of `mke2fs -t ext4` whose journal is as the
/// kernel leaves it after a mount (64-bit block tags, checksum v3, set
/// by debugfs), updated with `stop`.
fn mke2fs_ext4_stopped(stop: Stop) -> (std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let run = |cmd: &mut Command| {
        let o = cmd.output().expect("e2fsprogs missing");
        assert!(o.status.success(), "{o:?}");
    };
    run(Command::new("/usr/sbin/mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-b", "1024"])
        .arg(&img)
        .arg("16M"));
    let script = dir.path().join("jo");
    std::fs::write(&script, "jo -c\njc\n").unwrap();
    run(Command::new("/usr/sbin/debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(&img));
    let v = Volume::open_rw(File::options().read(true).write(true).open(&img).unwrap()).unwrap();
    let mut p = Populator::new(&v, 2_000_000).unwrap();
    p.stop = stop;
    Files(vec![
        ("added", vec![1; 5000]),
        ("dir/sub/f", b"deep".to_vec()),
    ])
    .emit(&mut p)
    .unwrap();
    p.finish().unwrap();
    (img, dir)
}

fn check_added(img: &Path) {
    let m = read(img);
    let p = |s: &str| TreePath::from_member(s.as_bytes()).unwrap();
    assert_eq!(m[&p("added")].size, 5000);
    assert_eq!(m[&p("dir/sub/f")].size, 4);
}

#[test]
fn a_64bit_checksummed_journal_is_replayed_by_e2fsck() {
    let (img, _d) = mke2fs_ext4_stopped(Stop::BeforeCheckpoint);
    let o = Command::new("/usr/sbin/dumpe2fs")
        .arg("-h")
        .arg(&img)
        .output();
    let h = String::from_utf8_lossy(&o.unwrap().stdout).into_owned();
    assert!(h.contains("journal_64bit journal_checksum_v3"), "{h}");
    assert!(h.contains("needs_recovery"), "{h}");
    assert!(matches!(e2fsck(&img, "-fy"), 0 | 1));
    assert_eq!(e2fsck(&img, "-fn"), 0);
    check_added(&img);
}

#[test]
#[ignore = "root tier: the kernel replays the journal on a loop mount"]
fn a_64bit_checksummed_journal_is_replayed_by_the_kernel() {
    let (img, d) = mke2fs_ext4_stopped(Stop::BeforeCheckpoint);
    let (added, deep) = mounted(&img, d.path(), |mnt| {
        (
            std::fs::read(mnt.join("added")),
            std::fs::read(mnt.join("dir/sub/f")),
        )
    });
    assert_eq!(added.unwrap(), vec![1; 5000]);
    assert_eq!(deep.unwrap(), b"deep");
    assert_eq!(e2fsck(&img, "-fn"), 0);
    check_added(&img);
}
