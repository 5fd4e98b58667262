//! qcow2 images and overlays: `[image PATH SIZE ... format qcow2]` writes
//! a qcow2 image with the new-image writer, `[image PATH SIZE base BASE
//! format qcow2]` an overlay whose backing file is BASE, and every
//! expression naming an image (`[populate image]`, `[replace|copy ...
//! image]`, `[patch IMAGE]`) and `ls`, `cat`, `diff` go through qcow2 and
//! its backing chain. Oracles: qemu-img (check, info, convert, compare),
//! e2fsck, debugfs, the kernel's ext4 on a loop device.

use crate::common::trees::{image_tree, run_ok, tree_of, without_root, Job};
use crate::common::{bin, e2fsck_clean, ok, root, tempdir};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `qemu-img check`: no corruption and no leaked cluster (exit status 0
/// means neither; 2 is corruption, 3 leaks).
fn qemu_check(img: &Path) {
    let out = Command::new("qemu-img")
        .args(["check", "--output=json"])
        .arg(img)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "qemu-img check {}: {text}{}",
        img.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["check-errors"], 0, "{text}");
    assert!(v.get("leaks").is_none_or(|l| l == 0), "{text}");
    assert!(v.get("corruptions").is_none_or(|l| l == 0), "{text}");
}

/// `qemu-img info --backing-chain --output=json`: the image first, then
/// each backing file.
fn chain(img: &Path) -> Vec<serde_json::Value> {
    let out = run_ok(
        Command::new("qemu-img")
            .args(["info", "--backing-chain", "--output=json"])
            .arg(img),
    );
    serde_json::from_str(&out).unwrap()
}

/// The overlay as a raw image, written by `qemu-img convert`.
fn convert(img: &Path, out: &Path) {
    run_ok(
        Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(img)
            .arg(out),
    );
}

/// A file of a raw image as debugfs reads it.
fn debugfs_cat(img: &Path, path: &str) -> String {
    run_ok(
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("cat {path}"))
            .arg(img),
    )
}

/// `vm-container cat IMAGE PATH`.
fn cat(img: &Path, path: &str) -> String {
    let out = bin().arg("cat").arg(img).arg(path).output().unwrap();
    ok(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256(p: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(p));
    out.split_whitespace().next().unwrap().to_string()
}

/// The example base tree, copied so a test can change it.
fn base_tree(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(root().join("examples/trees/base"))
            .arg(&tree),
    );
    tree
}

/// A base image (`format` raw or qcow2) populated from `tree`.
fn base_job(dir: &Path, img: &Path, tree: &Path, format: &str) -> Job {
    Job::new(
        dir,
        "base.vmc",
        &format!(
            "[image {i} 64MB root format {format}][end]\n[populate image {i} / {t}][end]\n",
            i = img.display(),
            t = tree.display()
        ),
    )
}

/// One domain: a qcow2 overlay over `base`, personalised through it.
fn overlay_job(dir: &Path, name: &str, img: &Path, base: &Path) -> Job {
    let patch = root().join("examples/patches/users.patch");
    Job::new(
        dir,
        &format!("{name}.vmc"),
        &format!(
            "name = \"{name}\"\n\
             disk = [ 'format=qcow2,vdev=xvda,target={img}' ]\n\
             [image {img} 64MB base {base} format qcow2][end]\n\
             [replace /etc/HOSTNAME image {img}\n\n${{name}}\n] [end]\n\
             [patch {img} {patch}][end]\n",
            img = img.display(),
            base = base.display(),
            patch = patch.display()
        ),
    )
}

fn assert_domain(img: &Path, name: &str) {
    assert_eq!(cat(img, "/etc/HOSTNAME"), format!("{name}\n"));
    assert!(cat(img, "/etc/passwd").contains("fido:x:1000:1000:Fido"));
    assert!(cat(img, "/etc/group").contains("adm:x:4:fido"));
}

#[test]
fn an_overlay_over_a_raw_base() {
    let t = tempdir();
    let tree = base_tree(t.path());
    let base = t.path().join("base.img");
    base_job(t.path(), &base, &tree, "raw").ok();
    let before = t.path().join("base.before");
    fs::copy(&base, &before).unwrap();
    let img = t.path().join("dom.qcow2");
    let job = overlay_job(t.path(), "dom", &img, &base);
    let err = job.ok();
    assert!(!err.contains("warning"), "{err}");

    qemu_check(&img);
    let c = chain(&img);
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(c[0]["format"], "qcow2");
    assert_eq!(c[0]["format-specific"]["data"]["compat"], "1.1");
    assert_eq!(c[0]["backing-filename"], "base.img");
    assert_eq!(c[0]["backing-filename-format"], "raw");
    assert_eq!(c[0]["full-backing-filename"], base.to_str().unwrap());
    assert_eq!(c[0]["virtual-size"], 64 << 20);
    assert_eq!(c[1]["format"], "raw");
    // the overlay holds only what the personalisation wrote
    let stored = fs::metadata(&img).unwrap().len();
    assert!(stored < 8 << 20, "overlay of {stored} bytes");

    // the base is only read
    run_ok(
        Command::new("qemu-img")
            .arg("compare")
            .arg(&before)
            .arg(&base),
    );
    e2fsck_clean(&base);

    let raw = t.path().join("dom.raw");
    convert(&img, &raw);
    e2fsck_clean(&raw);
    assert_eq!(debugfs_cat(&raw, "/etc/HOSTNAME"), "dom\n");
    assert!(debugfs_cat(&raw, "/etc/passwd").contains("fido:x:1000:1000:Fido"));

    // ls, cat and diff read through the backing chain
    assert_domain(&img, "dom");
    let out = bin().arg("ls").arg(&img).arg("/etc").output().unwrap();
    ok(&out);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("HOSTNAME") && listing.contains("passwd"),
        "{listing}"
    );
    let out = bin().arg("diff").arg(&base).arg(&img).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(diff.contains("+dom"), "{diff}");
    assert!(diff.contains("+fido:x:1000:1000:Fido"), "{diff}");

    // the same container again changes nothing
    let sum = sha256(&img);
    assert!(job.ok().contains("up to date"));
    assert_eq!(sha256(&img), sum);
    run_ok(
        Command::new("qemu-img")
            .arg("compare")
            .arg(&before)
            .arg(&base),
    );
}

#[test]
fn a_fresh_qcow2_image_holds_its_tree() {
    let t = tempdir();
    let tree = base_tree(t.path());
    let img = t.path().join("root.qcow2");
    let job = Job::new(
        t.path(),
        "fresh.vmc",
        &format!(
            "[image {i} 64MB root fs ext4 format qcow2][end]\n\
             [populate image {i} / {t}][end]\n",
            i = img.display(),
            t = tree.display()
        ),
    );
    job.ok();
    qemu_check(&img);
    let c = chain(&img);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0]["format"], "qcow2");
    assert!(c[0].get("backing-filename").is_none(), "{c:?}");
    let raw = t.path().join("root.raw");
    convert(&img, &raw);
    e2fsck_clean(&raw);
    crate::common::trees::assert_same(
        &without_root(image_tree(&raw)),
        &without_root(tree_of(&tree)),
        "the converted qcow2 image",
    );
    let sum = sha256(&img);
    assert!(job.ok().contains("up to date"));
    assert_eq!(sha256(&img), sum);
}

#[test]
fn an_overlay_over_a_qcow2_base_of_the_same_container() {
    let t = tempdir();
    let tree = base_tree(t.path());
    let base = t.path().join("base.qcow2");
    let img = t.path().join("dom.qcow2");
    let motd = root().join("examples/trees/base/etc/hosts");
    let job = Job::new(
        t.path(),
        "both.vmc",
        &format!(
            "[image {b} 64MB root format qcow2][end]\n[populate image {b} / {tree}][end]\n\
             [image {i} 64MB base {b} format qcow2][end]\n\
             [copy /etc/motd image {i} {motd}][end]\n",
            b = base.display(),
            i = img.display(),
            tree = tree.display(),
            motd = motd.display()
        ),
    );
    job.ok();
    qemu_check(&base);
    qemu_check(&img);
    let c = chain(&img);
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(c[0]["backing-filename"], "base.qcow2");
    assert_eq!(c[0]["backing-filename-format"], "qcow2");
    assert_eq!(c[1]["format"], "qcow2");
    let raw = t.path().join("dom.raw");
    convert(&img, &raw);
    e2fsck_clean(&raw);
    assert_eq!(
        debugfs_cat(&raw, "/etc/motd"),
        fs::read_to_string(&motd).unwrap()
    );
    assert_eq!(cat(&img, "/etc/motd"), fs::read_to_string(&motd).unwrap());
    // the base has no motd: the overlay never wrote through to it
    assert!(!bin()
        .arg("cat")
        .arg(&base)
        .arg("/etc/motd")
        .output()
        .unwrap()
        .status
        .success());
    assert!(job.ok().contains("up to date"));

    // the base rebuilt: its overlay is made again over it
    fs::write(tree.join("etc/issue"), "new base\n").unwrap();
    let err = job.ok();
    assert!(!err.contains("up to date"), "{err}");
    assert_eq!(cat(&img, "/etc/issue"), "new base\n");
    assert_eq!(cat(&img, "/etc/motd"), fs::read_to_string(&motd).unwrap());
    qemu_check(&img);
    assert!(job.ok().contains("up to date"));
}

#[test]
fn an_existing_qcow2_overlay_is_updated_in_place() {
    // an overlay qemu-img made over our raw base, populated at commit
    let t = tempdir();
    let tree = base_tree(t.path());
    let base = t.path().join("base.img");
    base_job(t.path(), &base, &tree, "raw").ok();
    let img = t.path().join("vm.qcow2");
    run_ok(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&base)
            .arg(&img),
    );
    let before = t.path().join("base.before");
    fs::copy(&base, &before).unwrap();
    let extra = t.path().join("extra");
    fs::create_dir_all(extra.join("srv")).unwrap();
    fs::write(extra.join("srv/hello"), "hello\n").unwrap();
    Job::new(
        t.path(),
        "vm.vmc",
        &format!(
            "[populate image {i} / {e}][end]\n\
             [replace /etc/HOSTNAME image {i}\n\nvm\n] [end]\n",
            i = img.display(),
            e = extra.display()
        ),
    )
    .ok();
    qemu_check(&img);
    run_ok(
        Command::new("qemu-img")
            .arg("compare")
            .arg(&before)
            .arg(&base),
    );
    let raw = t.path().join("vm.raw");
    convert(&img, &raw);
    e2fsck_clean(&raw);
    assert_eq!(debugfs_cat(&raw, "/srv/hello"), "hello\n");
    assert_eq!(debugfs_cat(&raw, "/etc/HOSTNAME"), "vm\n");
}

#[test]
#[ignore = "root tier: mounts the converted overlay through a loop device"]
fn a_converted_overlay_mounts_to_the_expected_tree() {
    let t = tempdir();
    let tree = base_tree(t.path());
    let base = t.path().join("base.img");
    base_job(t.path(), &base, &tree, "raw").ok();
    let img = t.path().join("dom.qcow2");
    overlay_job(t.path(), "dom", &img, &base).ok();
    let raw = t.path().join("dom.raw");
    convert(&img, &raw);
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    run_ok(
        Command::new("mount")
            .args(["-o", "ro,loop"])
            .arg(&raw)
            .arg(&mnt),
    );
    let got = tree_of(&mnt);
    let _ = Command::new("umount").arg(&mnt).status();
    // the expected tree: the base tree, personalised as the overlay was
    let want_dir = t.path().join("want");
    run_ok(Command::new("cp").arg("-a").arg(&tree).arg(&want_dir));
    fs::write(want_dir.join("etc/HOSTNAME"), "dom\n").unwrap();
    run_ok(
        Command::new("patch")
            .args(["-s", "-p1", "-d"])
            .arg(&want_dir)
            .arg("-i")
            .arg(root().join("examples/patches/users.patch")),
    );
    // mtimes of the edited files are the run's: compare what files hold
    let content = |m: vm_container::tree::manifest::Manifest| {
        without_root(m)
            .into_iter()
            .map(|(p, r)| (p, r.kind, r.size, r.sha256, r.symlink))
            .collect::<Vec<_>>()
    };
    assert_eq!(content(got), content(tree_of(&want_dir)));
}

#[test]
fn a_raw_clone_of_a_qcow2_base_is_refused() {
    let t = tempdir();
    let tree = base_tree(t.path());
    let base = t.path().join("base.qcow2");
    base_job(t.path(), &base, &tree, "qcow2").ok();
    let img = t.path().join("dom.img");
    let err = Job::new(
        t.path(),
        "raw.vmc",
        &format!(
            "[image {} 64MB base {}][end]\n",
            img.display(),
            base.display()
        ),
    )
    .fails(2);
    assert!(err.contains("raw.vmc:1:"), "{err}");
    assert!(err.contains("is a qcow2 image"), "{err}");
    assert!(err.contains("format qcow2"), "{err}");
    assert!(!img.exists());
}
