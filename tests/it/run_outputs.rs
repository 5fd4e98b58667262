//! Outputs never replace what is not a regular file: a character device
//! or FIFO is streamed to, a symlink is written through (the link stays,
//! its target is replaced), a directory is refused. Every command that
//! writes a user-named output is held to it: `diff -o`, `strip -o`,
//! `pack`, `--stripped`.

use crate::common;

use common::{bin, ok, pack_base, root, tempdir};
use std::fs;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A character device with `/dev/null`'s numbers (1:3).
fn null_node(dir: &Path) -> PathBuf {
    let p = dir.join("null");
    assert!(Command::new("mknod")
        .arg(&p)
        .args(["c", "1", "3"])
        .status()
        .unwrap()
        .success());
    p
}

/// Reads a FIFO to its end on a thread.
fn drain(fifo: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let p = fifo.to_path_buf();
    std::thread::spawn(move || {
        let mut v = Vec::new();
        fs::File::open(p).unwrap().read_to_end(&mut v).unwrap();
        v
    })
}

fn fifo(dir: &Path) -> PathBuf {
    let p = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&p).status().unwrap().success());
    p
}

fn no_strays(dir: &Path) {
    let strays: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("vmc-tmp"))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
}

/// `diff` of two small trees (they differ) to `out`.
fn diff_to(w: &Path, out: &Path) -> Output {
    let (a, b) = (w.join("a"), w.join("b"));
    for (d, text) in [(&a, "one\n"), (&b, "two\n")] {
        fs::create_dir_all(d).unwrap();
        fs::write(d.join("f"), text).unwrap();
    }
    bin()
        .arg("diff")
        .arg(&a)
        .arg(&b)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}

/// `diff` wrote its patch and said, like diff(1), that the trees differ.
fn differ(out: &Output) {
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
}

/// `pack` of the base tree to `out`.
fn pack_to(out: &Path) {
    ok(&bin()
        .arg("pack")
        .arg(root().join("examples/trees/base"))
        .arg(out)
        .output()
        .unwrap());
}

/// A run of `container` with `--stripped out`.
fn stripped_to(w: &Path, container: &Path, out: &Path) -> Output {
    bin()
        .arg("--container")
        .arg(container)
        .arg("--dir")
        .arg(w.join("d"))
        .arg("--stripped")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
#[ignore = "root tier: creates a device node"]
fn a_character_device_stays_a_device() {
    let t = tempdir();
    let w = t.path();
    let node = null_node(w);
    differ(&diff_to(w, &node));
    let c = w.join("c.vmc");
    fs::write(&c, "name = 'x'\n").unwrap();
    ok(&bin()
        .arg("strip")
        .arg(&c)
        .arg("-o")
        .arg(&node)
        .output()
        .unwrap());
    pack_to(&node);
    ok(&stripped_to(w, &c, &node));
    let md = fs::symlink_metadata(&node).unwrap();
    assert!(md.file_type().is_char_device(), "replaced by a {md:?}");
    no_strays(w);
}

#[test]
fn a_fifo_is_streamed_to() {
    let t = tempdir();
    let w = t.path();
    let f = fifo(w);
    let reader = drain(&f);
    differ(&diff_to(w, &f));
    let got = String::from_utf8(reader.join().unwrap()).unwrap();
    assert!(got.contains("-one\n+two\n"), "{got}");
    let reader = drain(&f);
    let a = pack_base(w);
    pack_to(&f);
    assert!(reader.join().unwrap() == fs::read(&a).unwrap());
    // a run with --stripped on a FIFO writes the config every time, also
    // when it is up to date
    let c = w.join("c.vmc");
    fs::write(&c, "name = 'x'\n").unwrap();
    for _ in 0..2 {
        let reader = drain(&f);
        ok(&stripped_to(w, &c, &f));
        assert_eq!(reader.join().unwrap(), b"name = 'x'\n");
    }
    assert!(fs::symlink_metadata(&f).unwrap().file_type().is_fifo());
    no_strays(w);
}

#[test]
fn a_symlink_is_written_through() {
    let t = tempdir();
    let w = t.path();
    let target = w.join("real.patch");
    fs::write(&target, "old").unwrap();
    let link = w.join("link.patch");
    std::os::unix::fs::symlink("real.patch", &link).unwrap();
    differ(&diff_to(w, &link));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::read_to_string(&target).unwrap().contains("+two"));
    // a dangling link: its target is created
    let dangling = w.join("dangling.cfg");
    std::os::unix::fs::symlink("made.cfg", &dangling).unwrap();
    let c = w.join("c.vmc");
    fs::write(&c, "name = 'x'\n").unwrap();
    let run = |extra: &[&str]| {
        bin()
            .arg("--container")
            .arg(&c)
            .arg("--dir")
            .arg(w.join("d"))
            .arg("--stripped")
            .arg(&dangling)
            .args(extra)
            .output()
            .unwrap()
    };
    ok(&run(&[]));
    assert!(fs::symlink_metadata(&dangling)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_to_string(w.join("made.cfg")).unwrap(),
        "name = 'x'\n"
    );
    // the next run knows the target as its own: no --force needed
    fs::write(&c, "name = 'y'\n").unwrap();
    ok(&run(&[]));
    assert_eq!(
        fs::read_to_string(w.join("made.cfg")).unwrap(),
        "name = 'y'\n"
    );
    no_strays(w);
}

#[test]
fn a_directory_is_refused() {
    let t = tempdir();
    let w = t.path();
    let d = w.join("out");
    fs::create_dir(&d).unwrap();
    let out = diff_to(w, &d);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("is a directory"), "{e}");
    assert!(d.is_dir());
}
