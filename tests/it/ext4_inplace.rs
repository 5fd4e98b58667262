//! Existing ext4 volumes updated in place by a container: volumes made by
//! mke2fs in each variant of its features that is written here, given
//! content by debugfs, then `[populate image]` of a tree and `[patch]`
//! with additions, changes and deletions. Oracles: e2fsck, dumpe2fs,
//! debugfs (`cat`, `stat`, `ls`, `rdump`), GNU diff and patch, and (root
//! tier) the kernel's ext4 driver. Also: runs killed with SIGKILL midway
//! leave the volume as it was or whole after a journal replay, and
//! volumes with features that are not written here are refused untouched.

use crate::common::tempdir;
use crate::common::trees::{run_ok, show, vmc, Job};
use crate::ext_common::{self, comparable, HostDir};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vm_container::tree::manifest::{manifest, Manifest};
use vm_container::tree::TreePath;

/// The mtime of everything debugfs makes.
const T0: i64 = 1_600_000_000;
/// The mtime of everything the populated tree holds.
const T1: i64 = 1_650_000_000;

/// The variants of `mke2fs -t ext4` (Debian 12's defaults, then one
/// change each) whose volumes are updated in place.
const VARIANTS: [(&str, &[&str]); 8] = [
    ("defaults", &[]),
    ("1k blocks", &["-b", "1024"]),
    ("4k blocks", &["-b", "4096"]),
    ("no metadata_csum", &["-O", "^metadata_csum"]),
    ("no 64bit, no flex_bg", &["-O", "^64bit,^flex_bg"]),
    ("no journal", &["-O", "^has_journal"]),
    ("orphan_file", &["-O", "orphan_file"]),
    ("metadata_csum_seed", &["-O", "metadata_csum_seed"]),
];

/// `mke2fs -q -F -t ext4 ARGS IMG SIZE`.
fn mkfs_ext4(img: &Path, args: &[&str], size: &str) {
    run_ok(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4"])
            .args(args)
            .arg(img)
            .arg(size),
    );
}

fn write(p: &Path, body: &[u8], mode: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Sets the mtime (and atime) of `p` itself, not of what a symlink
/// points to.
fn touch(p: &Path, secs: i64) {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let ts = Timestamps {
        last_access: t,
        last_modification: t,
    };
    utimensat(CWD, p, &ts, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

/// Lines of text, `n` of them.
fn text(n: usize, what: &str) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("{what} line {i:05}\n").into_bytes())
        .collect()
}

/// What debugfs writes into the fresh volume, as a host directory: files
/// (one of several hundred KB), directories, a fast and a slow symlink.
fn seed_tree(d: &Path) {
    write(&d.join("old/keep"), &text(40, "kept, then patched"), 0o644);
    write(&d.join("old/gone"), b"deleted by the patch\n", 0o600);
    write(
        &d.join("old/big"),
        &text(12_000, "replaced by populate"),
        0o644,
    );
    write(&d.join("old/sub/gone-too"), b"its directory goes\n", 0o640);
    write(
        &d.join("old/untouched"),
        &text(3_000, "never changed"),
        0o444,
    );
    fs::create_dir_all(d.join("old/empty")).unwrap();
    symlink("untouched", d.join("old/link")).unwrap();
    symlink("x".repeat(300), d.join("old/long-link")).unwrap();
    date_all(d, T0);
}

/// Sets the mtime of everything under `d` (and of `d`) to `secs`, each
/// directory after what it holds.
fn date_all(d: &Path, secs: i64) {
    let mut all = vec![d.to_path_buf()];
    let mut i = 0;
    while i < all.len() {
        if all[i].is_dir() && !all[i].is_symlink() {
            for e in fs::read_dir(&all[i]).unwrap() {
                all.push(e.unwrap().path());
            }
        }
        i += 1;
    }
    for p in all.iter().rev() {
        touch(p, secs);
    }
}

/// A debugfs request script making `seed_tree(src)` in a volume, every
/// entry dated [`T0`], each directory after what it holds.
fn seed_script(src: &Path) -> String {
    let mut made = ext_common::debugfs_requests(src);
    // one `sif PATH mode` per entry, parents first
    let paths: Vec<String> = made
        .lines()
        .filter_map(|l| match l.split(' ').collect::<Vec<_>>()[..] {
            ["sif", at, "mode", _] => Some(at.to_string()),
            _ => None,
        })
        .collect();
    for at in paths.iter().rev() {
        made += &format!("sif {at} mtime @{T0}\n");
    }
    made
}

/// The tree `[populate image]` adds: new files in a new directory and in
/// one debugfs made, one of its files replaced, a directory of 400 names
/// (hashed), a hard link, an empty and a sparse file, symlinks, a deep
/// path.
fn populated_tree(d: &Path) {
    write(&d.join("old/big"), &text(30_000, "populated over"), 0o640);
    write(&d.join("old/added"), b"added to an old directory\n", 0o644);
    write(&d.join("tree/etc/conf"), &text(30, "conf"), 0o644);
    write(&d.join("tree/bin/tool"), &text(500, "tool"), 0o755);
    fs::hard_link(d.join("tree/bin/tool"), d.join("tree/hard-tool")).unwrap();
    write(&d.join("tree/empty"), b"", 0o600);
    let sparse = fs::File::create(d.join("tree/sparse")).unwrap();
    sparse.set_len(6 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"middle", 3 << 20).unwrap();
    drop(sparse);
    for i in 0..400 {
        write(
            &d.join(format!("tree/many/file-with-a-longer-name-{i:03}")),
            format!("{i}\n").as_bytes(),
            0o644,
        );
    }
    symlink("etc/conf", d.join("tree/link")).unwrap();
    symlink("y".repeat(200), d.join("tree/long-link")).unwrap();
    let deep = d.join("tree/deep/a/b/c/d/e/f/g/h/i/j");
    write(&deep.join("file"), b"deep\n", 0o644);
    date_all(d, T1);
}

/// The paths the patches change, add and delete (with the directories
/// they make, remove or change), whose mtimes are the clock's.
const PATCHED: [&str; 15] = [
    "old",
    "old/keep",
    "old/gone",
    "old/sub",
    "old/sub/gone-too",
    "added",
    "added/by",
    "added/by/patch",
    "tree",
    "tree/etc",
    "tree/etc/conf",
    "tree/many",
    "tree/many/file-with-a-longer-name-007",
    "tree/added-later",
    "tree/added-later/file",
];

/// The first patch: a file debugfs wrote changed, one deleted, another
/// deleted with the directory it leaves empty, a new file in new
/// directories.
fn first_edit(d: &Path) {
    let mut keep = fs::read(d.join("old/keep")).unwrap();
    keep.extend_from_slice(b"a line the patch adds\n");
    keep.drain(..30);
    fs::write(d.join("old/keep"), keep).unwrap();
    fs::remove_file(d.join("old/gone")).unwrap();
    fs::remove_dir_all(d.join("old/sub")).unwrap();
    write(&d.join("added/by/patch"), b"new from the patch\n", 0o644);
}

/// The second patch, on what the populate wrote: a file changed, one of
/// the hashed directory's names deleted, a new file.
fn second_edit(d: &Path) {
    let conf = String::from_utf8(fs::read(d.join("tree/etc/conf")).unwrap()).unwrap();
    let changed = conf.replace("conf line 00012", "changed by the patch");
    fs::write(d.join("tree/etc/conf"), changed).unwrap();
    fs::remove_file(d.join("tree/many/file-with-a-longer-name-007")).unwrap();
    write(&d.join("tree/added-later/file"), b"later\n", 0o644);
}

/// `cp -a FROM TO`.
fn copy_tree(from: &Path, to: &Path) {
    run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

/// The tree `w/NAME` that `edit` makes of a copy of `from`, and GNU
/// `diff -ruN` from one to the other as `w/NAME.patch`.
fn edited(w: &Path, from: &Path, name: &str, edit: fn(&Path)) -> (PathBuf, PathBuf) {
    let (a, b) = (w.join(format!("{name}-a")), w.join(name));
    copy_tree(from, &a);
    copy_tree(from, &b);
    edit(&b);
    let o = Command::new("diff")
        .args(["-ruN", "--no-dereference"])
        .arg(a.file_name().unwrap())
        .arg(b.file_name().unwrap())
        .current_dir(w)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "diff: {o:?}");
    let patch = w.join(format!("{name}.patch"));
    fs::write(&patch, &o.stdout).unwrap();
    // GNU patch makes the same tree of a copy
    let check = w.join(format!("{name}-gnu"));
    copy_tree(from, &check);
    run_ok(
        Command::new("patch")
            .args(["-p1", "--quiet", "--batch", "-i"])
            .arg(&patch)
            .current_dir(&check),
    );
    run_ok(
        Command::new("diff")
            .args(["-r", "--no-dereference"])
            .arg(&check)
            .arg(&b),
    );
    (b, patch)
}

/// A manifest without the root, `lost+found` and the clock's mtimes
/// (of what the patches touched).
fn settled(mut m: Manifest) -> Manifest {
    let patched: Vec<TreePath> = PATCHED
        .iter()
        .map(|p| TreePath::from_member(p.as_bytes()).unwrap())
        .collect();
    for (p, r) in m.iter_mut() {
        if patched.contains(p) {
            r.meta.mtime = 0;
        }
    }
    comparable(m)
}

/// What e2fsprogs reads of a volume: `debugfs rdump` of its root into a
/// directory, as a manifest of kinds, modes, sizes, contents and symlink
/// targets (owners too when run as root). rdump writes hard links as
/// separate files and leaves symlinks' mtimes alone, so link groups and
/// those mtimes are left out.
fn rdump_manifest(img: &Path, w: &Path) -> Manifest {
    let out = w.join("rdump");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir(&out).unwrap();
    let o = Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump / {}", out.display()))
        .arg(img)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.lines().all(|l| l.starts_with("debugfs ")),
        "debugfs rdump: {err}"
    );
    let m = manifest(&mut HostDir(out.clone())).unwrap();
    fs::remove_dir_all(&out).unwrap();
    link_times_free(unlinked(m))
}

fn link_times_free(mut m: Manifest) -> Manifest {
    for r in m.values_mut() {
        if r.kind == "symlink" {
            r.meta.mtime = 0;
        }
    }
    m
}

fn unlinked(mut m: Manifest) -> Manifest {
    let root = rustix::process::geteuid().is_root();
    for r in m.values_mut() {
        r.link_group = None;
        if !root {
            (r.meta.uid, r.meta.gid) = (0, 0);
        }
    }
    m
}

/// debugfs's complaint about `request` (it exits 0 whatever happens).
fn debugfs_stderr(img: &Path, request: &str) -> String {
    let o = Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| !l.starts_with("debugfs "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines of `dumpe2fs -h` an update in place must keep.
fn identity(img: &Path) -> Vec<String> {
    let h = ext_common::dumpe2fs_h(img);
    let keys = [
        "Filesystem UUID:",
        "Filesystem features:",
        "Block size:",
        "Block count:",
        "Inode count:",
        "Checksum type:",
        "Checksum seed:",
        "Journal features:",
        "Journal size:",
    ];
    h.lines()
        .filter(|l| keys.iter().any(|k| l.starts_with(k)))
        .map(str::to_owned)
        .collect()
}

/// One variant: make, seed, populate and patch, check; with `mount`, the
/// kernel's view too. The populate and the first patch run in one
/// container, the second patch in another.
fn variant(name: &str, args: &[&str], mount: bool) {
    let t = tempdir();
    let w = t.path();
    let (seed, populated) = (w.join("seed"), w.join("populated"));
    seed_tree(&seed);
    populated_tree(&populated);
    let merged = w.join("merged");
    copy_tree(&seed, &merged);
    copy_tree(&populated.join("."), &merged);
    let (first, patch1) = edited(w, &merged, "first", first_edit);
    let (want, patch2) = edited(w, &first, "second", second_edit);

    let img = w.join("vol.img");
    mkfs_ext4(&img, args, "600M");
    let script = w.join("seed.debugfs");
    fs::write(&script, seed_script(&seed)).unwrap();
    let o = Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(&img)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !err.lines().any(|l| !l.starts_with("debugfs ")),
        "{name}: debugfs -f: {err}"
    );
    ext_common::e2fsck_clean(&img);
    let before = identity(&img);
    assert_eq!(
        settled(rdump_manifest(&img, w)),
        settled(link_times_free(unlinked(
            manifest(&mut HostDir(seed.clone())).unwrap()
        ))),
        "{name}: the seed as debugfs wrote it"
    );

    let run = |file: &str, text: String| {
        let stderr = Job::new(w, file, &text).ok();
        assert!(
            stderr.contains(&format!("updated in place {}", img.display())),
            "{name}: {stderr}"
        );
    };
    run(
        "first.vmc",
        format!(
            "[populate image {img} /mnt {src}][end]\n[patch {img} {patch}][end]\n",
            img = img.display(),
            src = populated.display(),
            patch = patch1.display()
        ),
    );
    ext_common::e2fsck_clean(&img);
    run(
        "second.vmc",
        format!("[patch {} {}][end]\n", img.display(), patch2.display()),
    );

    ext_common::e2fsck_clean(&img);
    assert_eq!(identity(&img), before, "{name}: dumpe2fs -h changed");
    let cat = |p: &str| ext_common::debugfs(&img, &format!("cat {p}")).into_bytes();
    assert_eq!(
        cat("/old/untouched"),
        text(3_000, "never changed"),
        "{name}"
    );
    assert_eq!(cat("/old/big"), text(30_000, "populated over"), "{name}");
    assert_eq!(cat("/tree/bin/tool"), text(500, "tool"), "{name}");
    assert_eq!(cat("/added/by/patch"), b"new from the patch\n", "{name}");
    assert_eq!(cat("/tree/added-later/file"), b"later\n", "{name}");
    for p in ["old/keep", "tree/etc/conf"] {
        let want = fs::read(want.join(p)).unwrap();
        assert_eq!(cat(&format!("/{p}")), want, "{name}: {p}");
    }
    for gone in [
        "/old/gone",
        "/old/sub/gone-too",
        "/old/sub",
        "/tree/many/file-with-a-longer-name-007",
    ] {
        let e = debugfs_stderr(&img, &format!("stat {gone}"));
        assert!(
            e.contains("File not found by ext2_lookup"),
            "{name}: {gone}: {e}"
        );
    }
    let ls = ext_common::debugfs(&img, "ls -p /tree/many");
    let names = ls.lines().filter(|l| l.contains("/file-with-")).count();
    assert_eq!(names, 399, "{name}: {ls}");
    let tool = ext_common::debugfs(&img, "stat /tree/hard-tool");
    assert!(tool.contains("Links: 2"), "{name}: {tool}");
    let link = ext_common::debugfs(&img, "stat /old/link");
    assert!(
        link.contains("Fast link dest: \"untouched\""),
        "{name}: {link}"
    );
    let all = settled(rdump_manifest(&img, w));
    let host = manifest(&mut HostDir(want.clone())).unwrap();
    let host = settled(link_times_free(unlinked(host)));
    ext_common::assert_same(&host, &all, &format!("{name}: debugfs rdump"));

    if mount {
        let m = ext_common::Mount::new(&img);
        let got = manifest(&mut HostDir(m.dir.path().to_path_buf())).unwrap();
        drop(m);
        let host = manifest(&mut HostDir(want.clone())).unwrap();
        ext_common::assert_same(&settled(host), &settled(got), &format!("{name}: mounted"));
        // the kernel's read-only mount left nothing for e2fsck to fix
        ext_common::e2fsck_clean(&img);
    }
}

#[test]
fn every_ext4_variant_is_populated_and_patched_in_place() {
    for (name, args) in VARIANTS {
        variant(name, args, false);
    }
}

#[test]
#[ignore = "root tier: mounts each volume on a loop device"]
fn every_ext4_variant_updated_in_place_mounts_as_expected() {
    for (name, args) in VARIANTS {
        variant(name, args, true);
    }
}

fn sha256sum(p: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(p));
    out.split_whitespace().next().unwrap().to_string()
}

/// `cp --sparse=always`: a volume copy that takes only what it uses.
fn sparse_copy(from: &Path, to: &Path) {
    let _ = fs::remove_file(to);
    run_ok(Command::new("cp").arg("--sparse=always").arg(from).arg(to));
}

/// `e2fsck -fy`, which replays the journal: what it printed, after
/// asserting it fixed nothing but that (exit 0, or 1 with nothing but
/// the replay reported).
fn e2fsck_replay(img: &Path) -> String {
    let o = Command::new("e2fsck").arg("-fy").arg(img).output().unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let code = o.status.code();
    assert!(
        code == Some(0) || code == Some(1),
        "e2fsck -fy exited {code:?}:\n{out}"
    );
    assert!(
        !out.contains("Fix?") && !out.contains("Clear?") && !out.contains("Salvage?"),
        "e2fsck -fy repaired more than the journal:\n{out}"
    );
    out
}

/// SIGKILL at ten points of a run populating 50 MB into an ext4 volume,
/// in every variant that has a journal (without one, as on ext2, the
/// metadata is written in place and no such promise is made): the volume
/// is byte for byte as it was, or e2fsck's journal replay leaves it clean
/// holding the old tree or the new one, never something between.
#[test]
fn a_populate_killed_at_any_point_leaves_the_old_volume_or_the_new() {
    for (name, args) in VARIANTS {
        if args.contains(&"^has_journal") {
            continue;
        }
        killed_populate(name, args);
    }
}

/// [`a_populate_killed_at_any_point_leaves_the_old_volume_or_the_new`]
/// for one variant.
fn killed_populate(variant: &str, args: &[&str]) {
    let t = tempdir();
    let w = t.path();
    let src = w.join("src");
    for i in 0..20u64 {
        write(
            &src.join(format!("data/d{}/blob{i:02}", i % 4)),
            &crate::cpio_common::noise(2_500_000, 2 * i + 1),
            0o644,
        );
    }
    for i in 0..300 {
        write(
            &src.join(format!("etc/f{i:03}")),
            format!("{i}\n").as_bytes(),
            0o644,
        );
    }
    let orig = w.join("orig.img");
    mkfs_ext4(&orig, args, "160M");
    let seed = w.join("seed");
    seed_tree(&seed);
    let script = w.join("seed.debugfs");
    fs::write(&script, seed_script(&seed)).unwrap();
    run_ok(
        Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&script)
            .arg(&orig),
    );
    let orig_sum = sha256sum(&orig);
    let old_tree = rdump_manifest(&orig, w);

    let img = w.join("vol.img");
    let container = w.join("c.vmc");
    fs::write(
        &container,
        format!(
            "[populate image {} /mnt {}][end]\n",
            img.display(),
            src.display()
        ),
    )
    .unwrap();
    let cmd = |n: usize| {
        let mut c = vmc(&container, &w.join(format!("work-{n}")));
        c.arg("-q");
        c
    };
    // whole runs: the new tree, and how long a run takes once the source
    // is in the page cache (the shortest of three)
    let mut full = Duration::MAX;
    for n in 0..3 {
        sparse_copy(&orig, &img);
        let start = Instant::now();
        let out = cmd(90 + n).output().unwrap();
        full = full.min(start.elapsed());
        assert!(out.status.success(), "{}", show(&cmd(90 + n), &out));
    }
    ext_common::e2fsck_clean(&img);
    let new_tree = rdump_manifest(&img, w);
    assert!(new_tree.len() > old_tree.len() + 300);

    let mut outcomes = Vec::new();
    for (n, f) in [0.02, 0.1, 0.25, 0.4, 0.55, 0.7, 0.8, 0.9, 0.95, 0.99]
        .into_iter()
        .enumerate()
    {
        sparse_copy(&orig, &img);
        let delay = Duration::from_secs_f64(full.as_secs_f64() * f);
        let mut child = cmd(n)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let what = if status.success() {
            ext_common::e2fsck_clean(&img);
            "finished"
        } else if sha256sum(&img) == orig_sum {
            "untouched"
        } else {
            let replay = e2fsck_replay(&img);
            ext_common::e2fsck_clean(&img);
            if replay.contains("recovering journal") {
                "replayed"
            } else {
                "changed, no journal to replay"
            }
        };
        let tree = rdump_manifest(&img, w);
        let state = if tree == old_tree {
            "old"
        } else if tree == new_tree {
            "new"
        } else {
            let d = vm_container::tree::manifest::differences(&old_tree, &tree);
            panic!(
                "{variant}: killed after {delay:?} ({what}): neither the old tree nor the new one; against the old:\n{}",
                d.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
            );
        };
        assert!(
            what != "untouched" || state == "old",
            "{variant}: killed after {delay:?}"
        );
        outcomes.push(format!("{delay:.2?}: {what}, {state}"));
    }
    eprintln!(
        "{variant}: a whole run {full:.2?}; killed at {}",
        outcomes.join("; ")
    );
}

/// The features whose volumes are refused, and mke2fs's options for each.
const REFUSED: [(&str, &[&str]); 9] = [
    ("inline_data", &["-O", "inline_data"]),
    ("encrypt", &["-O", "encrypt"]),
    ("casefold", &["-O", "casefold"]),
    ("verity", &["-O", "verity"]),
    ("bigalloc", &["-O", "bigalloc", "-C", "16384"]),
    ("mmp", &["-O", "mmp"]),
    ("quota", &["-O", "quota"]),
    ("project", &["-O", "project"]),
    ("ea_inode", &["-O", "ea_inode"]),
];

/// A populate into a volume with a feature that is not written here:
/// exit 1, one error line naming that feature (and none of those that are
/// written), the volume byte for byte as it was.
#[test]
fn volumes_with_unwritten_features_are_refused_untouched() {
    let t = tempdir();
    let w = t.path();
    let src = w.join("src");
    write(&src.join("etc/hostname"), b"refused\n", 0o644);
    for (feature, args) in REFUSED {
        let img = w.join(format!("{feature}.img"));
        mkfs_ext4(&img, args, "64M");
        assert!(
            ext_common::dumpe2fs_h(&img).contains(feature),
            "mke2fs did not set {feature}"
        );
        let before = fs::read(&img).unwrap();
        let job = Job::new(
            w,
            &format!("{feature}.vmc"),
            &format!(
                "[populate image {} /mnt {}][end]\n",
                img.display(),
                src.display()
            ),
        );
        let err = job.fails(1);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{feature}: {err}");
        let line = lines[0];
        assert!(line.starts_with("error: "), "{feature}: {line}");
        assert!(line.contains(feature), "{feature}: {line}");
        for written in ["extent", "64bit", "flex_bg", "metadata_csum"] {
            assert!(
                !line.contains(written),
                "{feature}: names {written}: {line}"
            );
        }
        assert!(
            fs::read(&img).unwrap() == before,
            "{feature}: the volume changed"
        );
    }
}
