//! `[populate device ...]`: an ext3 volume on a block device (a loop
//! device standing in for an LVM volume) populated in place.

use crate::common;

use common::{assert_base_image, bin, root, tempdir, Loop};
use std::fs;
use std::process::Command;

#[test]
#[ignore = "root tier: attaches a loop device (losetup)"]
fn a_block_device_is_populated_in_place() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("lv.img");
    let mk = Command::new("mke2fs")
        .args(["-q", "-t", "ext3", "-L", "lvroot"])
        .arg(&img)
        .arg("32M")
        .status()
        .unwrap();
    assert!(mk.success());
    let dev = Loop::attach(&img);
    let archive = w.join("base.cpio.gz");
    assert!(bin()
        .arg("pack")
        .arg(root().join("examples/trees/base"))
        .arg(&archive)
        .status()
        .unwrap()
        .success());
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!(
            "[populate device {} /mnt {}][end]\n",
            dev.0,
            archive.display()
        ),
    )
    .unwrap();
    let run = bin()
        .arg("--container")
        .arg(&c)
        .arg("--dir")
        .arg(w.join("d"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    drop(dev);
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    assert_base_image(&img, "lvroot");
}

#[test]
fn a_missing_device_is_a_check_time_error() {
    let t = tempdir();
    let c = t.path().join("c.vmc");
    fs::write(
        &c,
        "[populate device /dev/vg-none/lv-none /mnt /x.cpio.gz][end]\n",
    )
    .unwrap();
    let out = bin().arg("check").arg(&c).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("c.vmc:1:18: error: device /dev/vg-none/lv-none does not exist"),
        "{e}"
    );
}
