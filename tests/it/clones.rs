//! Clones: many domains from one base image, each storing only what it
//! changes. `[image PATH SIZE base BASE]` shares the base's extents on XFS
//! (reflink) and falls back to a sparse copy elsewhere; each clone is
//! personalised in place (`[replace ... image ...]`, `[patch IMAGE]`).
//! Oracles: e2fsck, debugfs, sha256 of the base, df and du, the kernel's
//! XFS.

use crate::common::trees::{run_ok, Job};
use crate::common::{bin, e2fsck_clean as fsck_clean, ok, root, tempdir, Tmpfs};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How many domains the XFS test makes (`CLONES=N` to change it).
fn count() -> usize {
    std::env::var("CLONES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100)
}

/// A file formatted by mkfs.xfs with reflinks, loop-mounted on a
/// directory; unmounted when dropped.
struct Xfs(PathBuf);

impl Xfs {
    fn mount(dir: &Path, size: &str) -> Xfs {
        let file = dir.join("xfs.img");
        let mnt = dir.join("xfs");
        fs::create_dir_all(&mnt).unwrap();
        run_ok(Command::new("truncate").args(["-s", size]).arg(&file));
        run_ok(
            Command::new("mkfs.xfs")
                .args(["-q", "-m", "reflink=1"])
                .arg(&file),
        );
        run_ok(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(&file)
                .arg(&mnt),
        );
        Xfs(mnt)
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Bytes used on the file system holding `dir`, as df reports them.
fn used(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=used", "-B1"])
        .arg(dir)
        .output()
        .expect("run df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df --output=used prints a number")
}

fn sha256(p: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(p));
    out.split_whitespace().next().unwrap().to_string()
}

/// `vm-container cat IMAGE PATH`.
fn cat(img: &Path, path: &str) -> String {
    let out = bin().arg("cat").arg(img).arg(path).output().unwrap();
    ok(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tree to build the base from: the example tree and a few thousand
/// files of /usr.
fn base_tree(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(root().join("examples/trees/base"))
            .arg(&tree),
    );
    fs::create_dir_all(tree.join("usr/share")).unwrap();
    run_ok(
        Command::new("cp")
            .args(["-a", "/usr/share/perl"])
            .arg(tree.join("usr/share/perl")),
    );
    tree
}

/// The base container: one image populated from `tree`.
fn base_job(dir: &Path, img: &Path, tree: &Path) -> Job {
    Job::new(
        dir,
        "base.vmc",
        &format!(
            "[image {} 128MB root][end]\n[populate image {} / {}][end]\n",
            img.display(),
            img.display(),
            tree.display()
        ),
    )
}

/// One domain: a clone of `base` with its own hostname and the users
/// patch.
fn clone_job(dir: &Path, name: &str, img: &Path, base: &Path) -> Job {
    let patch = root().join("examples/patches/users.patch");
    Job::new(
        dir,
        &format!("{name}.vmc"),
        &format!(
            "name = \"{name}\"\n\
             disk = [ 'file:{img},xvda1,w' ]\n\
             [image {img} 128MB base {base}][end]\n\
             [replace /etc/HOSTNAME image {img}\n\n${{name}}\n] [end]\n\
             [patch {img} {patch}][end]\n",
            img = img.display(),
            base = base.display(),
            patch = patch.display()
        ),
    )
}

/// An XFS file system of `size` holding `base.img`, built from the base
/// tree; the tree and the base's sha256.
fn xfs_with_base(size: &str) -> (tempfile::TempDir, Xfs, PathBuf, String) {
    let t = tempdir();
    let xfs = Xfs::mount(t.path(), size);
    let base = xfs.0.join("base.img");
    let tree = base_tree(t.path());
    base_job(t.path(), &base, &tree).ok();
    let sum = sha256(&base);
    (t, xfs, tree, sum)
}

fn assert_domain(img: &Path, name: &str) {
    fsck_clean(img);
    assert_eq!(cat(img, "/etc/HOSTNAME"), format!("{name}\n"));
    assert!(cat(img, "/etc/passwd").contains("fido:x:1000:1000:Fido"));
    assert!(cat(img, "/etc/group").contains("adm:x:4:fido"));
}

#[test]
#[ignore = "root tier: loop-mounts an XFS file system"]
fn many_domains_share_one_base_on_xfs() {
    let (t, xfs, tree, base_sum) = xfs_with_base("2G");
    let d = xfs.0.clone();
    let base = d.join("base.img");
    fsck_clean(&base);
    let n = count();
    let before = used(&d);
    let started = std::time::Instant::now();
    let mut imgs = Vec::new();
    for i in 0..n {
        let name = format!("dom{i:03}");
        let img = d.join(format!("{name}.img"));
        let err = clone_job(t.path(), &name, &img, &base).ok();
        assert!(!err.contains("sparse copy"), "{err}");
        imgs.push((name, img));
    }
    let took = started.elapsed();
    let new_disk = used(&d) - before;
    let apparent = fs::metadata(&base).unwrap().len() * n as u64;
    eprintln!(
        "{n} clones: {:.1} ms a domain, {:.2} MiB of new disk a domain ({:.3}% of full copies)",
        took.as_secs_f64() * 1000.0 / n as f64,
        new_disk as f64 / n as f64 / (1 << 20) as f64,
        new_disk as f64 * 100.0 / apparent as f64
    );
    assert!(
        new_disk * 20 < apparent,
        "{n} clones use {new_disk} bytes, full copies {apparent}"
    );
    for (name, img) in &imgs {
        assert_domain(img, name);
    }
    assert_eq!(sha256(&base), base_sum, "the base changed");
    // du counts shared extents once a file: still far below full copies
    let du = run_ok(
        Command::new("du")
            .args(["-c", "-B1"])
            .args(imgs.iter().map(|(_, i)| i)),
    );
    let du: u64 = du
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    eprintln!("du of the clones: {} MiB", du >> 20);

    // an unchanged clone is a no-op rerun
    let (name, img) = &imgs[0];
    let job = clone_job(t.path(), name, img, &base);
    let sum = sha256(img);
    assert!(job.ok().contains("up to date"));
    assert_eq!(sha256(img), sum);

    // the base rebuilt: its clones are made again from it
    fs::write(tree.join("etc/motd"), "new base\n").unwrap();
    base_job(t.path(), &base, &tree).ok();
    let rebuilt = sha256(&base);
    assert_ne!(rebuilt, base_sum);
    let err = job.ok();
    assert!(!err.contains("up to date"), "{err}");
    assert_eq!(cat(img, "/etc/motd"), "new base\n");
    assert_domain(img, name);
    assert!(job.ok().contains("up to date"));
    assert_eq!(sha256(&base), rebuilt);
}

#[test]
#[ignore = "root tier: mounts a tmpfs"]
fn a_sparse_copy_where_no_extents_are_shared() {
    let t = tempdir();
    let d = t.path().join("tmpfs");
    fs::create_dir(&d).unwrap();
    let _tmpfs = Tmpfs::mount(&d, "512M");
    let base = d.join("base.img");
    let tree = base_tree(t.path());
    base_job(t.path(), &base, &tree).ok();
    let base_sum = sha256(&base);
    let img = d.join("dom.img");
    let err = clone_job(t.path(), "dom", &img, &base).ok();
    assert!(err.contains("sparse copy"), "{err}");
    assert_domain(&img, "dom");
    assert_eq!(sha256(&base), base_sum);
    // only the base's data was copied: the clone is as sparse as it
    let blocks = |p: &Path| std::os::unix::fs::MetadataExt::blocks(&fs::metadata(p).unwrap());
    assert!(
        blocks(&img) < blocks(&base) + 2 * 2048,
        "clone {} blocks, base {}",
        blocks(&img),
        blocks(&base)
    );
}

/// A temporary directory holding `base.img`, built from the base tree.
fn base_in_tempdir() -> (tempfile::TempDir, PathBuf) {
    let t = tempdir();
    let base = t.path().join("base.img");
    let tree = base_tree(t.path());
    base_job(t.path(), &base, &tree).ok();
    (t, base)
}

#[test]
fn a_sparse_copy_on_the_build_file_system() {
    // ext4 (or whatever holds the temporary directory) with no reflink
    let (t, base) = base_in_tempdir();
    let img = t.path().join("dom.img");
    clone_job(t.path(), "dom", &img, &base).ok();
    assert_domain(&img, "dom");
}

#[test]
fn a_clone_has_its_base_size() {
    let t = tempdir();
    let base = t.path().join("base.img");
    let tree = base_tree(t.path());
    base_job(t.path(), &base, &tree).ok();
    let img = t.path().join("dom.img");
    let job = Job::new(
        t.path(),
        "grow.vmc",
        &format!(
            "\n[image {} 256MB base {}][end]\n",
            img.display(),
            base.display()
        ),
    );
    let err = job.fails(1);
    assert!(err.contains("grow.vmc:2:1:"), "{err}");
    assert!(
        err.contains("growing its file system is not supported"),
        "{err}"
    );
    assert!(!img.exists());
}

#[test]
fn a_base_made_in_the_same_container() {
    let t = tempdir();
    let base = t.path().join("base.img");
    let img = t.path().join("dom.img");
    let tree = base_tree(t.path());
    let job = Job::new(
        t.path(),
        "both.vmc",
        &format!(
            "[image {b} 128MB root][end]\n[populate image {b} / {tree}][end]\n\
             [image {i} 128MB base {b}][end]\n\
             [copy /etc/motd image {i} {motd}][end]\n",
            b = base.display(),
            i = img.display(),
            tree = tree.display(),
            motd = root().join("examples/trees/base/etc/hosts").display()
        ),
    );
    job.ok();
    fsck_clean(&base);
    fsck_clean(&img);
    assert_eq!(
        cat(&img, "/etc/motd"),
        fs::read_to_string(root().join("examples/trees/base/etc/hosts")).unwrap()
    );
    assert!(bin()
        .arg("cat")
        .arg(&base)
        .arg("/etc/motd")
        .output()
        .map(|o| !o.status.success())
        .unwrap());
    assert!(job.ok().contains("up to date"));
}

#[test]
#[ignore = "root tier: loop-mounts an XFS file system"]
fn kill_during_personalisation_leaves_the_clone_or_none() {
    let (t, xfs, _, base_sum) = xfs_with_base("1G");
    let d = xfs.0.clone();
    let base = d.join("base.img");
    let img = d.join("dom.img");
    // a big file copied into the clone keeps the run busy a while
    let big = t.path().join("big");
    run_ok(
        Command::new("dd")
            .args(["if=/dev/urandom", "bs=1M", "count=48"])
            .arg(format!("of={}", big.display())),
    );
    let text = |host: &str| {
        format!(
            "[image {i} 128MB base {b}][end]\n\
             [replace /etc/HOSTNAME image {i}\n\n{host}\n] [end]\n\
             [copy /big image {i} {big}][end]\n",
            i = img.display(),
            b = base.display(),
            big = big.display()
        )
    };
    let mut previous: Option<String> = None;
    for (round, delay) in [5u64, 20, 40, 80, 150, 300, 600].into_iter().enumerate() {
        let job = Job::new(t.path(), "dom.vmc", &text(&format!("host{round}")));
        let mut child = job.command().spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill();
        let st = child.wait().unwrap();
        assert_eq!(sha256(&base), base_sum, "the base changed");
        if img.exists() {
            let now = sha256(&img);
            if st.success() || previous.as_ref() != Some(&now) {
                // a finished run: the whole new clone
                fsck_clean(&img);
                assert_eq!(cat(&img, "/etc/HOSTNAME"), format!("host{round}\n"));
            }
            previous = Some(now);
        }
        fsck_clean(&base);
    }
    // a last full run leaves nothing staged beside the image
    Job::new(t.path(), "dom.vmc", &text("last")).ok();
    assert_eq!(cat(&img, "/etc/HOSTNAME"), "last\n");
    let strays: Vec<_> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "base.img" && n != "dom.img")
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
    assert_eq!(sha256(&base), base_sum);
}

/// The journal sequence number dumpe2fs reads from an image's journal
/// superblock: one more for every transaction committed through it.
fn journal_sequence(img: &Path) -> u64 {
    let out = run_ok(Command::new("dumpe2fs").arg("-h").arg(img));
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("Journal sequence:"))
        .unwrap_or_else(|| panic!("no journal sequence in {out}"));
    let hex = line.trim().trim_start_matches("0x");
    u64::from_str_radix(hex, 16).unwrap()
}

/// A clone is personalised under its staging name, without its journal:
/// killed after either of its two updates (`VMC_FAULT=staged:N`, a
/// debug-build fault point) or just before its rename, the run leaves no
/// clone at all and the base untouched; the next run makes the whole
/// clone and leaves nothing staged.
#[test]
fn a_clone_killed_while_personalised_is_not_there() {
    let (t, base) = base_in_tempdir();
    let base_sum = sha256(&base);
    let img = t.path().join("dom.img");
    let job = clone_job(t.path(), "dom", &img, &base);
    for fault in ["staged:0", "staged:1", "rename:0"] {
        let out = job.command().env("VMC_FAULT", fault).output().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(9), "{fault}: not killed");
        assert!(!img.exists(), "{fault}: a clone is there");
        assert_eq!(sha256(&base), base_sum, "{fault}: the base changed");
    }
    job.ok();
    assert_domain(&img, "dom");
    let strays: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("vmc-tmp"))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
}

/// Only a clone being made skips the journal: its journal is the base's,
/// untouched; the same clone edited in place by a later container (it
/// exists: others may use it) takes one journal transaction an edit.
#[test]
fn a_committed_clone_is_edited_through_its_journal() {
    let (t, base) = base_in_tempdir();
    let img = t.path().join("dom.img");
    clone_job(t.path(), "dom", &img, &base).ok();
    assert_domain(&img, "dom");
    let seq = journal_sequence(&base);
    assert_eq!(
        journal_sequence(&img),
        seq,
        "a staged clone used its journal"
    );
    let edit = Job::new(
        t.path(),
        "edit.vmc",
        &format!(
            "[replace /etc/HOSTNAME image {i}\n\nrenamed\n] [end]\n\
             [replace /etc/motd image {i}\n\nhello\n] [end]\n",
            i = img.display(),
        ),
    );
    edit.ok();
    fsck_clean(&img);
    assert_eq!(cat(&img, "/etc/HOSTNAME"), "renamed\n");
    assert_eq!(cat(&img, "/etc/motd"), "hello\n");
    assert!(cat(&img, "/etc/passwd").contains("fido:"));
    assert_eq!(
        journal_sequence(&img),
        seq + 2,
        "not one transaction an edit"
    );
}

#[test]
fn check_warns_when_a_disk_format_is_not_the_image_s() {
    let t = tempdir();
    let q = t.path().join("dom.qcow2");
    let raw = t.path().join("dom.raw");
    run_ok(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&q)
            .arg("64M"),
    );
    run_ok(Command::new("truncate").args(["-s", "64M"]).arg(&raw));
    let check = |disk: &str| {
        let c = t.path().join("c.vmc");
        fs::write(&c, format!("disk = [ '{disk}' ]\n")).unwrap();
        ok(&bin().arg("check").arg(&c).output().unwrap())
    };
    let err = check(&format!("file:{},xvda,w", q.display()));
    assert!(err.contains("c.vmc:1:10: warning:"), "{err}");
    assert!(err.contains("is a qcow2 image"), "{err}");
    let err = check(&format!("format=qcow2,vdev=xvda,target={}", q.display()));
    assert!(!err.contains("warning"), "{err}");
    let err = check(&format!("format=qcow2,vdev=xvda,target={}", raw.display()));
    assert!(err.contains("is not a qcow2 image"), "{err}");
    let err = check(&format!("format=raw,vdev=xvda,target={}", raw.display()));
    assert!(!err.contains("warning"), "{err}");
}
