//! Messages: too many inodes is a `check` error with its location, and a
//! reader that closes the pipe early ends `ls` and `cat` quietly, and an
//! archive handed to them is named for what it is.

use crate::common;
use crate::ext_common;

use common::{bin, ok, tempdir};
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

#[test]
fn too_many_inodes_is_a_check_error() {
    let t = tempdir();
    let w = t.path();
    let c = w.join("c.vmc");
    let img = w.join("x.img");
    fs::write(
        &c,
        format!("[image {} 8M inodes 4000000][end]\n", img.display()),
    )
    .unwrap();
    let out = bin().arg("check").arg(&c).output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    let col = format!("[image {} 8M inodes ", img.display()).len() + 1;
    assert!(
        e.contains(&format!("c.vmc:1:{col}: error: inodes `4000000`: too many")),
        "{e}"
    );
    // as many as fit are accepted, and built
    fs::write(
        &c,
        format!("[image {} 8M inodes 8192][end]\n", img.display()),
    )
    .unwrap();
    ok(&bin()
        .arg("--container")
        .arg(&c)
        .arg("--dir")
        .arg(w.join("d"))
        .output()
        .unwrap());
    ext_common::e2fsck_clean(&img);
}

#[test]
fn a_closed_pipe_ends_ls_and_cat_quietly() {
    let t = tempdir();
    let w = t.path();
    // a directory listing and a file far larger than a pipe's buffer
    let tree = w.join("tree");
    fs::create_dir_all(tree.join("many")).unwrap();
    for i in 0..3000 {
        fs::write(tree.join("many").join(format!("file-{i:05}")), "x").unwrap();
    }
    fs::write(tree.join("big"), vec![b'y'; 4 << 20]).unwrap();
    let img = w.join("x.img");
    let mk = std::process::Command::new("mke2fs")
        .args(["-q", "-t", "ext3", "-d"])
        .arg(&tree)
        .arg(&img)
        .arg("32M")
        .status()
        .unwrap();
    assert!(mk.success());
    for args in [["ls", "/many"], ["cat", "/big"]] {
        let mut child = bin()
            .arg(args[0])
            .arg(&img)
            .arg(args[1])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // what `| head -1` does: one line, then the pipe is closed
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(!line.is_empty());
        let out = child.wait_with_output().unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {e}", out.status);
        assert!(e.is_empty(), "{args:?}: {e}");
    }
}

/// `ls` and `cat` read images; an archive handed to them is named for
/// what it is (GNU tar and GNU cpio make them here), not reported as a
/// bad superblock.
#[test]
fn ls_and_cat_say_what_an_archive_is() {
    let t = tempdir();
    let w = t.path();
    let tree = w.join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/motd"), "hello\n").unwrap();
    let tgz = w.join("root.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&tree)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let cpio = w.join("root.cpio");
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && find . | cpio -o -H newc --quiet > {}",
            tree.display(),
            cpio.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    for (file, what) in [
        (&tgz, "a tar archive (gzip)"),
        (&cpio, "a cpio archive (uncompressed)"),
    ] {
        for args in [vec!["ls"], vec!["cat", "/etc/motd"]] {
            let out = bin()
                .arg(args[0])
                .arg(file)
                .args(&args[1..])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(
                err.contains(&format!(
                    "{}: {what}, not an ext2/3/4 image",
                    file.display()
                )),
                "{err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
}
