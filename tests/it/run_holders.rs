//! Volumes in use are never written: an image attached to a loop device or
//! mounted, a block device another process holds exclusively. Each is
//! refused with its holder named, its bytes unchanged, `--force` or not.
//! Two runs writing one image take turns.

use crate::common;
use crate::cpio_common;
use crate::ext_common;

use common::{assert_base_image, bin, mke2fs, ok, pack_base, root, tempdir, Loop};
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A mount, unmounted when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mkfs(img: &Path) {
    mke2fs(img, "held", "16M");
}

fn archive(w: &Path) -> PathBuf {
    pack_base(w)
}

/// Runs `[populate KIND TARGET ...]`, with and without `--force`; both
/// must fail with one error line naming `holder`, and leave `watch`
/// byte-identical.
fn refused(w: &Path, kind: &str, target: &str, watch: &Path, holder: &str) {
    let a = archive(w);
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!("[populate {kind} {target} /mnt {}][end]\n", a.display()),
    )
    .unwrap();
    let before = fs::read(watch).unwrap();
    for force in [false, true] {
        let mut cmd = bin();
        cmd.arg("--container").arg(&c).arg("--dir").arg(w.join("d"));
        if force {
            cmd.arg("--force");
        }
        let out = cmd.output().unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "force={force}: {e}");
        let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{e}");
        assert!(errors[0].contains(holder), "wanted {holder:?} in: {e}");
        assert!(
            !e.contains("e2fsck"),
            "no repair advice for a volume in use: {e}"
        );
        assert!(
            fs::read(watch).unwrap() == before,
            "force={force}: bytes changed"
        );
    }
}

#[test]
#[ignore = "root tier: attaches loop devices and mounts"]
fn an_image_attached_to_a_loop_device_is_refused() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("dom.img");
    mkfs(&img);
    let dev = Loop::attach(&img);
    refused(
        w,
        "image",
        &img.display().to_string(),
        &img,
        &format!("attached to {}", dev.0),
    );
}

#[test]
#[ignore = "root tier: attaches loop devices and mounts"]
fn a_mounted_image_is_refused() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("dom.img");
    mkfs(&img);
    let mnt = w.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let m = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(m.success());
    let _m = Mount(mnt.clone());
    // the kernel keeps the mounted file system's state in memory: compare
    // with what the file held once mounted
    refused(
        w,
        "image",
        &img.display().to_string(),
        &img,
        &format!("mounted on {}", mnt.display()),
    );
}

#[test]
#[ignore = "root tier: attaches loop devices and mounts"]
fn a_device_open_exclusively_elsewhere_is_refused() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("lv.img");
    mkfs(&img);
    let dev = Loop::attach(&img);
    // this test process stands for the other holder (O_EXCL on a block
    // device: the kernel's exclusive claim, as mount takes it)
    let held = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::EXCL.bits() as i32)
        .open(&dev.0)
        .unwrap();
    refused(
        w,
        "device",
        &dev.0,
        &img,
        "open exclusively by another process",
    );
    drop(held);
}

#[test]
#[ignore = "root tier: attaches loop devices and mounts"]
fn a_mounted_device_is_refused() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("lv.img");
    mkfs(&img);
    let dev = Loop::attach(&img);
    let mnt = w.join("mnt");
    fs::create_dir(&mnt).unwrap();
    assert!(Command::new("mount")
        .arg(&dev.0)
        .arg(&mnt)
        .status()
        .unwrap()
        .success());
    let m = Mount(mnt.clone());
    refused(
        w,
        "device",
        &dev.0,
        &img,
        &format!("mounted on {}", mnt.display()),
    );
    drop(m);
}

#[test]
#[ignore = "root tier: attaches loop devices and mounts"]
fn a_patch_of_an_attached_image_is_refused() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("dom.img");
    mkfs(&img);
    let patch = w.join("p.patch");
    fs::write(&patch, // a new file: the old side dated at the epoch (`diff -N`)
        "--- a/motd\t1970-01-01 00:00:00.000000000 +0000\n+++ b/motd\t2026-01-01 00:00:00.000000000 +0000\n@@ -0,0 +1 @@\n+hello\n").unwrap();
    let dev = Loop::attach(&img);
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!("[patch {} {}][end]\n", img.display(), patch.display()),
    )
    .unwrap();
    let before = fs::read(&img).unwrap();
    let out = bin()
        .arg("--force")
        .arg("--container")
        .arg(&c)
        .arg("--dir")
        .arg(w.join("d"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains(&format!("attached to {}", dev.0)), "{e}");
    assert!(fs::read(&img).unwrap() == before);
}

fn run_populate(w: &Path, img: &Path, tree: &Path, dir: &str) -> std::process::Child {
    let a = w.join(format!("{dir}.cpio.gz"));
    ok(&bin().arg("pack").arg(tree).arg(&a).output().unwrap());
    let c = w.join(format!("{dir}.vmc"));
    fs::write(
        &c,
        format!(
            "[populate image {} /mnt {}][end]\n",
            img.display(),
            a.display()
        ),
    )
    .unwrap();
    bin()
        .arg("--container")
        .arg(&c)
        .arg("--dir")
        .arg(w.join(dir))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_runs_on_one_image_take_turns() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("shared.img");
    mke2fs(&img, "shared", "64M");
    // two trees of a few MB each, so that the runs overlap
    for (seed, name) in ["one", "two"].into_iter().enumerate() {
        let d = w.join(name).join(name);
        fs::create_dir_all(&d).unwrap();
        for i in 0..16 {
            let v = cpio_common::noise(256 * 1024, (seed * 16 + i + 1) as u64);
            fs::write(d.join(format!("f{i}")), v).unwrap();
        }
    }
    let a = run_populate(w, &img, &w.join("one"), "one");
    let b = run_populate(w, &img, &w.join("two"), "two");
    let outs: Vec<Output> = [a, b]
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outs {
        ok(o);
    }
    ext_common::e2fsck_clean(&img);
    for name in ["one", "two"] {
        for i in [0, 15] {
            let got = bin()
                .arg("cat")
                .arg(&img)
                .arg(format!("/{name}/f{i}"))
                .output()
                .unwrap();
            let want = fs::read(w.join(name).join(name).join(format!("f{i}"))).unwrap();
            assert!(got.stdout == want, "/{name}/f{i} lost");
        }
    }
}

#[test]
#[ignore = "root tier: attaches loop devices and mounts"]
fn an_image_on_a_block_device_formats_it_only_when_forced() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("lv.img");
    mke2fs(&img, "precious", "24M");
    let dev = Loop::attach(&img);
    let a = archive(w);
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!(
            "[image {d} 16M fresh][end]\n[populate device {d} /mnt {a}][end]\n",
            d = dev.0,
            a = a.display()
        ),
    )
    .unwrap();
    let run = |force: bool| {
        let mut cmd = bin();
        cmd.arg("--container").arg(&c).arg("--dir").arg(w.join("d"));
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let before = fs::read(&img).unwrap();
    let out = run(false);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("it holds an ext3 file system (labelled precious, ")
            && e.contains("MiB used)")
            && e.contains("--force"),
        "{e}"
    );
    assert!(fs::read(&img).unwrap() == before);
    ok(&run(true));
    // the device node is still the device, now holding the new volume
    let md = fs::metadata(&dev.0).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_block_device(
        &md.file_type()
    ));
    drop(dev);
    ext_common::e2fsck_clean(&img);
    assert_base_image(&img, "fresh");
}

#[test]
fn a_run_waits_for_the_image_another_run_holds() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("held.img");
    mke2fs(&img, "held", "16M");
    // this test process holds the image as another run would
    let held = fs::File::open(&img).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let before = fs::read(&img).unwrap();
    let mut child = run_populate(w, &img, &root().join("examples/trees/base"), "one");
    // it says that it waits, and waits
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("waiting") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        assert!(n > 0, "ended without waiting: {said}");
        said.push_str(&line);
    }
    assert!(said.contains(&img.display().to_string()), "{said}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "did not wait");
    assert!(fs::read(&img).unwrap() == before, "written while held");
    drop(held);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_base_image(&img, "held");
}
