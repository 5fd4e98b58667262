//! `up to date` only when every output really is as the last run left
//! it: a device is judged by its content (not by the size and mtime of
//! its node), an upload by asking its server.

use crate::common;
use crate::net;

use common::{bin, mke2fs, ok, pack_base, tempdir, Loop};
use std::fs;
use std::path::Path;
use std::process::Command;

fn run(container: &Path, dir: &Path) -> String {
    ok(&bin()
        .arg("--container")
        .arg(container)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap())
}

#[test]
#[ignore = "root tier: attaches loop devices"]
fn a_device_reverted_through_another_node_is_populated_again() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("lv.img");
    mke2fs(&img, "lv", "16M");
    let old = fs::read(&img).unwrap();
    let a = pack_base(w);
    let dev = Loop::attach(&img);
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!("[populate device {} /mnt {}][end]\n", dev.0, a.display()),
    )
    .unwrap();
    let dir = w.join("d");
    run(&c, &dir);
    assert!(run(&c, &dir).contains("up to date"));
    // the old bytes written back through a second node of the same file
    let other = Loop::attach(&img);
    fs::write(&other.0, &old).unwrap();
    drop(other);
    // what the first node cached of the device is dropped, as after a
    // reboot
    assert!(Command::new("blockdev")
        .arg("--flushbufs")
        .arg(&dev.0)
        .status()
        .unwrap()
        .success());
    let e = run(&c, &dir);
    assert!(!e.contains("up to date"), "{e}");
    let cat = bin()
        .arg("cat")
        .arg(&dev.0)
        .arg("/etc/passwd")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&cat.stdout).starts_with("root:x:0:0:"),
        "not populated again"
    );
    assert!(run(&c, &dir).contains("up to date"));
}

#[test]
#[ignore = "root tier: starts vsftpd"]
fn a_deleted_upload_is_published_again() {
    let t = tempdir();
    let w = t.path();
    let ftp = net::Vsftpd::start();
    let a = pack_base(w);
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!(
            "[replace /etc/HOSTNAME archive {} fork {}\n\ndom\n] [end]\n",
            a.display(),
            ftp.url("/pub/forks/dom.cpio.gz")
        ),
    )
    .unwrap();
    let dir = w.join("d");
    let fork = ftp.root.join("pub/forks/dom.cpio.gz");
    run(&c, &dir);
    assert!(fork.exists());
    assert!(run(&c, &dir).contains("up to date"));
    fs::remove_file(&fork).unwrap();
    let e = run(&c, &dir);
    assert!(!e.contains("up to date"), "{e}");
    assert!(fork.exists(), "not published again");
    // changed behind the run's back: published again as well
    fs::write(&fork, b"not the fork").unwrap();
    let e = run(&c, &dir);
    assert!(!e.contains("up to date"), "{e}");
    assert!(fs::read(&fork).unwrap() != b"not the fork");
    assert!(run(&c, &dir).contains("up to date"));
}
