//! Whole trees in new ext4 images: a debootstrapped Debian minbase and
//! random trees of every awkward shape (deep paths, empty and 100 MB
//! files, holes, 10,000 names in one directory, long symlinks, devices,
//! hard links), each checked by e2fsck and mounted by the kernel; and the
//! commands that read images (`ls`, `cat`, `diff`, `check`) answering for
//! an ext4 image as they do for an ext3 one.

use crate::common::trees::{gnu_extract, run_ok, show, tree_of, without_root, Job};
use crate::common::{bin, root, tempdir};
use crate::ext_common::{self, Content, MemTree};
use proptest::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use vm_container::ext::Options;
use vm_container::tree::manifest::{manifest, Manifest};
use vm_container::tree::{Entry, Kind, Meta, TreePath};

/// The Debian archive apt uses here: the first `URIs:` (deb822) or `deb`
/// line that is not the security archive.
fn apt_mirror() -> String {
    let mut files: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files.insert(0, PathBuf::from("/etc/apt/sources.list"));
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            let uri = match line.split_whitespace().collect::<Vec<_>>()[..] {
                ["URIs:", uri, ..] => uri,
                ["deb", ref rest @ ..] => match rest.iter().find(|w| w.contains("://")) {
                    Some(uri) => uri,
                    None => continue,
                },
                _ => continue,
            };
            if !uri.contains("-security") {
                return uri.to_string();
            }
        }
    }
    panic!("no Debian archive in the apt sources");
}

/// `debootstrap --variant=minbase bookworm`, packed: the archive
/// bench/boot-minbase.sh caches in `target/boot-minbase/` (made here the
/// same way when it is missing).
fn minbase_archive() -> PathBuf {
    let work = root().join("target/boot-minbase");
    let archive = work.join("minbase.cpio.gz");
    if archive.exists() {
        return archive;
    }
    fs::create_dir_all(&work).unwrap();
    // bench/boot-minbase.sh (the boot test) may be making the same tree
    // right now: one of us at a time, the second finds it made
    let lock = fs::File::create(work.join(".lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if archive.exists() {
        return archive;
    }
    let rootfs = work.join("rootfs");
    if !rootfs.exists() {
        let new = work.join("rootfs.new");
        let _ = fs::remove_dir_all(&new);
        run_ok(
            Command::new("debootstrap")
                .args([
                    "--variant=minbase",
                    "--include=systemd-sysv,udev",
                    "bookworm",
                ])
                .arg(&new)
                .arg(apt_mirror()),
        );
        fs::rename(&new, &rootfs).unwrap();
    }
    let new = work.join("minbase.cpio.gz.new");
    run_ok(bin().arg("pack").arg(&rootfs).arg(&new));
    fs::rename(&new, &archive).unwrap();
    archive
}

/// A Debian minbase through `[image fs ext4]` and `[populate image]`:
/// e2fsck finds it clean and the kernel reads the tree GNU cpio extracts,
/// entry by entry.
#[test]
#[ignore = "root tier: debootstraps (once) and mounts the image on a loop device"]
fn a_minbase_in_ext4_mounts_as_gnu_cpio_extracts_it() {
    let archive = minbase_archive();
    let t = tempdir();
    let w = t.path();
    let img = w.join("root.img");
    Job::new(
        w,
        "c.vmc",
        &format!(
            "[image {img} 2G root fs ext4][end]\n[populate image {img} /mnt {a}][end]\n",
            img = img.display(),
            a = archive.display()
        ),
    )
    .ok();
    ext_common::e2fsck_clean(&img);
    assert!(ext_common::dumpe2fs_h(&img).contains("metadata_csum"));
    let gnu = w.join("gnu");
    gnu_extract(&archive, &gnu);
    let want = without_root(tree_of(&gnu));
    assert!(want.len() > 5_000, "a minbase of {} entries", want.len());
    let m = ext_common::Mount::new(&img);
    let got = without_root(tree_of(m.dir.path()));
    drop(m);
    ext_common::assert_same(
        &gnu_cpio_times(want),
        &gnu_cpio_times(got.clone()),
        "GNU cpio vs mounted ext4",
    );
    // those mtimes as the archive holds them
    let a = vm_container::archive::open(fs::File::open(&archive).unwrap(), "minbase").unwrap();
    let listed = without_root(manifest(&mut { a }).unwrap());
    ext_common::assert_same(&listed, &got, "the archive vs mounted ext4");
}

/// GNU cpio -idm sets a directory's mtime before writing what it holds
/// and leaves symlinks' alone: those mtimes are not its to compare.
fn gnu_cpio_times(mut m: Manifest) -> Manifest {
    for r in m.values_mut() {
        if r.kind == "directory" || r.kind == "symlink" {
            r.meta.mtime = 0;
        }
    }
    m
}

/// One leaf of a random tree.
#[derive(Clone, Debug)]
enum Leaf {
    /// Size, and every how many 64 KiB a hole comes (0: none).
    File(u64, u64),
    Symlink(usize),
    Dev(bool, u32, u32),
    Fifo,
    /// A hard link to the n-th file made so far.
    Link(usize),
}

fn leaf() -> impl Strategy<Value = Leaf> {
    prop_oneof![
        3 => (prop_oneof![Just(0u64), 1u64..70_000, 1u64 << 20..8 << 20], 0u64..4)
            .prop_map(|(s, h)| Leaf::File(s, h)),
        2 => (1usize..4096).prop_map(Leaf::Symlink),
        1 => (any::<bool>(), 0u32..4096, 0u32..0x100000).prop_map(|(b, ma, mi)| Leaf::Dev(b, ma, mi)),
        1 => Just(Leaf::Fifo),
        1 => (0usize..50).prop_map(Leaf::Link),
    ]
}

/// The shape of a random tree: a chain of directories (depth, name
/// length), leaves spread over it, how many names the crowded directory
/// holds, whether a 100 MB file is in it, the block size.
type Shape = (usize, usize, Vec<(usize, Leaf)>, usize, bool, u32);

fn shape() -> impl Strategy<Value = Shape> {
    (
        1usize..80,
        1usize..=253,
        prop::collection::vec((0usize..120, leaf()), 0..60),
        prop_oneof![0usize..100, 9_990usize..10_010],
        any::<bool>(),
        prop_oneof![Just(1024u32), Just(4096u32)],
    )
}

fn random_tree((depth, name_len, leaves, crowd, hundred, bs): &Shape) -> MemTree {
    let meta = |perm, i: usize| Meta {
        perm,
        uid: (i * 7919) as u32 % 70_000,
        gid: (i * 104_729) as u32 % 70_000,
        mtime: 1_500_000_000 + (i as i64) * 86_399 - 600_000_000,
    };
    let mut t = MemTree::new();
    // a deep chain, its paths near PATH_MAX when names are long
    let mut dirs = vec![TreePath::root()];
    for i in 0..*depth {
        let name = format!("{i:02}{}", "d".repeat(*name_len));
        let p = dirs
            .last()
            .unwrap()
            .join(&name.as_bytes()[..name.len().min(255)]);
        // the mounted copy is walked by full path: below PATH_MAX
        if p.as_bytes().len() > 3900 {
            break;
        }
        t.0.push((Entry::new(p.clone(), Kind::Dir, meta(0o755, i)), None));
        dirs.push(p);
    }
    let mut files: Vec<TreePath> = Vec::new();
    for (i, (d, l)) in leaves.iter().enumerate() {
        let path = dirs[d % dirs.len()].join(format!("leaf-{i}").as_bytes());
        let (kind, content) = match l {
            Leaf::File(size, hole_every) => {
                files.push(path.clone());
                (
                    Kind::File { size: *size },
                    Some(Content::Pattern {
                        size: *size,
                        seed: i as u8,
                        hole_every: *hole_every,
                    }),
                )
            }
            // a slow symlink fits in one block
            Leaf::Symlink(n) => (
                Kind::Symlink {
                    target: vec![b'l'; (*n).min(*bs as usize - 1)],
                },
                None,
            ),
            Leaf::Dev(true, major, minor) => (
                Kind::BlockDev {
                    major: *major,
                    minor: *minor,
                },
                None,
            ),
            Leaf::Dev(false, major, minor) => (
                Kind::CharDev {
                    major: *major,
                    minor: *minor,
                },
                None,
            ),
            Leaf::Fifo => (Kind::Fifo, None),
            Leaf::Link(n) => match files.get(n % files.len().max(1)) {
                Some(target) => (
                    Kind::HardLink {
                        target: target.clone(),
                    },
                    None,
                ),
                None => (Kind::Fifo, None),
            },
        };
        t.0.push((Entry::new(path, kind, meta(0o640, i)), content));
    }
    t.dir("crowd", 0o755, 0, 0, 1_600_000_000);
    for i in 0..*crowd {
        t.file(
            &format!("crowd/name-{i:05}"),
            Content::Bytes(Vec::new()),
            0o644,
            0,
            0,
            1_600_000_000,
        );
    }
    if *hundred {
        t.file(
            "crowd/hundred",
            Content::Pattern {
                size: 100 << 20,
                seed: 7,
                hole_every: 3,
            },
            0o600,
            0,
            0,
            1_600_000_000,
        );
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Random trees of every awkward shape: e2fsck finds the ext4 image
    /// clean, and the kernel reads back every entry as it went in.
    #[test]
    #[ignore = "root tier: mounts the image on a loop device"]
    fn random_awkward_trees_in_ext4_mount_identical(s in shape()) {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("img");
        let opts = Options {
            ext4: true,
            inodes: Some(20_000),
            ..ext_common::opts(700 << 20, s.5, true)
        };
        ext_common::build(opts, &mut random_tree(&s), &img).unwrap();
        ext_common::e2fsck_clean(&img);
        let want = ext_common::comparable(manifest(&mut random_tree(&s)).unwrap());
        let m = ext_common::Mount::new(&img);
        let got = manifest(&mut ext_common::HostDir(m.dir.path().to_path_buf())).unwrap();
        drop(m);
        ext_common::assert_same(&want, &ext_common::comparable(got), "mounted");
    }
}

/// A host directory to make images of: files (one of 2 MB), a symlink,
/// nested directories, a name with a space.
fn sample(d: &Path) {
    fs::create_dir_all(d.join("etc/sub")).unwrap();
    fs::write(d.join("etc/hostname"), "box\n").unwrap();
    fs::write(d.join("etc/sub/with space"), "spaced\n").unwrap();
    fs::write(d.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(d.join("big"), big).unwrap();
    std::os::unix::fs::symlink("etc/hostname", d.join("link")).unwrap();
    for i in 0..200 {
        fs::write(d.join(format!("etc/f{i:03}")), format!("{i}\n")).unwrap();
    }
    run_ok(
        Command::new("touch")
            .args(["-h", "-d", "@1600000000"])
            .arg(d.join("link")),
    );
    for p in [
        "etc/sub/with space",
        "etc/sub",
        "etc/hostname",
        "big",
        "etc",
    ] {
        run_ok(
            Command::new("touch")
                .args(["-d", "@1600000000"])
                .arg(d.join(p)),
        );
    }
}

/// `mke2fs -q -F -t FS -b 4096 -d SRC IMG 64M`.
fn mke2fs_d(fs_type: &str, src: &Path, img: &Path) {
    run_ok(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", fs_type, "-b", "4096", "-d"])
            .arg(src)
            .arg(img)
            .arg("64M"),
    );
}

/// An ext3 and an ext4 image of the same directory, both by mke2fs.
fn pair(w: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let src = w.join("src");
    sample(&src);
    let (e3, e4) = (w.join("e3.img"), w.join("e4.img"));
    mke2fs_d("ext3", &src, &e3);
    mke2fs_d("ext4", &src, &e4);
    (src, e3, e4)
}

#[test]
fn ls_lists_an_ext4_image_as_an_ext3_one() {
    let t = tempdir();
    let (_, e3, e4) = pair(t.path());
    for dir in ["/", "/etc", "/etc/sub", "/link", "/big"] {
        let a = run_ok(bin().arg("ls").arg(&e3).arg(dir));
        let b = run_ok(bin().arg("ls").arg(&e4).arg(dir));
        assert_eq!(a, b, "ls {dir}");
    }
    let etc = run_ok(bin().arg("ls").arg(&e4).arg("/etc"));
    assert_eq!(etc.lines().count(), 203, "{etc}");
    assert!(etc.contains(" hostname\n"), "{etc}");
}

#[test]
fn cat_reads_an_ext4_image_as_an_ext3_one() {
    let t = tempdir();
    let (src, e3, e4) = pair(t.path());
    for p in ["etc/hostname", "etc/sub/with space", "big", "etc/f199"] {
        let want = fs::read(src.join(p)).unwrap();
        for img in [&e3, &e4] {
            let out = bin()
                .arg("cat")
                .arg(img)
                .arg(format!("/{p}"))
                .output()
                .unwrap();
            assert!(out.status.success(), "cat {p}: {out:?}");
            assert!(out.stdout == want, "cat {} /{p}", img.display());
        }
    }
    // what is not a file (a directory, nothing, a symlink) fails alike
    for p in ["/etc", "/missing", "/link"] {
        let a = bin().arg("cat").arg(&e3).arg(p).output().unwrap();
        let b = bin().arg("cat").arg(&e4).arg(p).output().unwrap();
        assert_eq!(a.status.code(), b.status.code(), "cat {p}");
        assert!(!b.status.success(), "cat {p}");
        let (ea, eb) = (
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr),
        );
        assert_eq!(
            ea.replace(&e3.display().to_string(), "IMG"),
            eb.replace(&e4.display().to_string(), "IMG"),
            "cat {p}"
        );
    }
}

/// `diff` between the images says nothing; between a changed directory
/// and each image, the same patch, which GNU patch applies to a copy of
/// the old tree to make the new one.
#[test]
fn diff_compares_an_ext4_image_as_an_ext3_one() {
    let t = tempdir();
    let w = t.path();
    let (src, e3, e4) = pair(w);
    let out = bin().arg("diff").arg(&e3).arg(&e4).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let new = w.join("new");
    run_ok(Command::new("cp").arg("-a").arg(&src).arg(&new));
    fs::write(new.join("etc/hostname"), "changed\n").unwrap();
    fs::remove_file(new.join("etc/f100")).unwrap();
    fs::write(new.join("etc/sub/added"), "added\n").unwrap();
    let patch = |img: &Path| {
        let mut c = bin();
        c.arg("diff").arg(img).arg(&new);
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", show(&c, &out));
        out.stdout
    };
    let (p3, p4) = (patch(&e3), patch(&e4));
    assert_eq!(String::from_utf8_lossy(&p3), String::from_utf8_lossy(&p4));
    let copy = w.join("copy");
    run_ok(Command::new("cp").arg("-a").arg(&src).arg(&copy));
    fs::write(w.join("p.patch"), &p4).unwrap();
    run_ok(
        Command::new("patch")
            .args(["-p1", "--quiet", "--batch", "-i"])
            .arg(w.join("p.patch"))
            .current_dir(&copy),
    );
    run_ok(Command::new("diff").arg("-r").arg(&copy).arg(&new));
}

/// `check` of a container that populates and patches an existing ext4
/// volume says what it says of an ext3 one.
#[test]
fn check_accepts_an_ext4_volume_as_an_ext3_one() {
    let t = tempdir();
    let w = t.path();
    let (src, e3, e4) = pair(w);
    let patch = w.join("p.patch");
    fs::write(
        &patch,
        "--- a/etc/hostname\n+++ b/etc/hostname\n@@ -1 +1 @@\n-box\n+checked\n",
    )
    .unwrap();
    let check = |img: &Path| {
        let job = Job::new(
            w,
            "c.vmc",
            &format!(
                "[populate image {img} /mnt {src}][end]\n[patch {img} {p}][end]\n",
                img = img.display(),
                src = src.display(),
                p = patch.display()
            ),
        );
        let mut c = bin();
        c.arg("check").arg(&job.container);
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", show(&c, &out));
        String::from_utf8_lossy(&out.stderr).replace(&img.display().to_string(), "IMG")
    };
    let before = fs::read(&e4).unwrap();
    assert_eq!(check(&e3), check(&e4));
    assert!(
        fs::read(&e4).unwrap() == before,
        "check wrote to the volume"
    );
}
