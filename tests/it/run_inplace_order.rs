//! In-place updates of an existing image take effect in order: a
//! `[patch]` or `[replace ... image]` after a `[populate image]` of the
//! same image in one run sees the image as the populate leaves it, and a
//! second patch sees the first. Oracles: mke2fs, debugfs (content and
//! mode read after the run), e2fsck -fn.

use crate::common::tempdir;
use crate::common::trees::Job;
use crate::ext_common::{debugfs, e2fsck_clean};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An ext3 image made by mke2fs holding `/etc/hosts` and `/opt/a`
/// ("old").
fn old_image(w: &Path) -> PathBuf {
    let img = w.join("vol.img");
    crate::common::mke2fs(&img, "vol", "16M");
    let old = w.join("old-hosts");
    fs::write(&old, "old\n").unwrap();
    let script = w.join("script");
    fs::write(
        &script,
        format!(
            "mkdir /etc\nwrite {o} /etc/hosts\nmkdir /opt\nwrite {o} /opt/a\n",
            o = old.display()
        ),
    )
    .unwrap();
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(debugfs(&img, "cat /etc/hosts"), "old\n");
    img
}

/// The tree a populate lays over the image: `/etc/hosts` replaced,
/// `/etc/added` new (mode 0600), `/opt/b` new beside `/opt/a`.
fn populate_tree(w: &Path) -> PathBuf {
    let src = w.join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/hosts"), "populated\n").unwrap();
    fs::write(src.join("etc/added"), "added\n").unwrap();
    fs::create_dir_all(src.join("opt")).unwrap();
    fs::write(src.join("opt/b"), "b\n").unwrap();
    fs::set_permissions(src.join("etc/added"), fs::Permissions::from_mode(0o600)).unwrap();
    src
}

/// Asserts `/etc/added` holds `text` with the populate's mode, 0600.
fn assert_added(img: &Path, text: &str) {
    assert_eq!(debugfs(img, "cat /etc/added"), text);
    let stat = debugfs(img, "stat /etc/added");
    assert!(stat.contains("Mode:  0600"), "{stat}");
}

/// A container that populates the image `vol.img` (made by
/// [`old_image`]) with [`populate_tree`], then runs `rest` (`IMG` stands
/// for the image).
fn after_populate(w: &Path, rest: &str) -> Job {
    let img = old_image(w).display().to_string();
    let src = populate_tree(w);
    let text = format!(
        "[populate image {img} / {}][end]\n{}",
        src.display(),
        rest.replace("IMG", &img)
    );
    Job::new(w, "run.vmc", &text)
}

/// A unified diff of one file from `old` to `new`.
fn file_patch(path: &str, old: &[&str], new: &[&str]) -> String {
    let mut s = format!(
        "--- a/{path}\n+++ b/{path}\n@@ -1,{} +1,{} @@\n",
        old.len(),
        new.len()
    );
    for l in old {
        s += &format!("-{l}\n");
    }
    for l in new {
        s += &format!("+{l}\n");
    }
    s
}

#[test]
fn patch_after_populate_sees_the_populated_files() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("vol.img");
    let first = w.join("first.patch");
    fs::write(
        &first,
        file_patch("etc/hosts", &["populated"], &["populated", "patched"])
            + &file_patch("etc/added", &["added"], &["added", "patched"])
            // /opt keeps the file the populate put beside the one deleted
            + "--- a/opt/a\n+++ /dev/null\n@@ -1 +0,0 @@\n-old\n",
    )
    .unwrap();
    let second = w.join("second.patch");
    fs::write(
        &second,
        file_patch(
            "etc/hosts",
            &["populated", "patched"],
            &["populated", "patched", "twice"],
        ),
    )
    .unwrap();
    after_populate(
        w,
        &format!(
            "[patch IMG {}][end]\n[patch IMG {}][end]\n",
            first.display(),
            second.display()
        ),
    )
    .ok();
    e2fsck_clean(&img);
    assert_eq!(
        debugfs(&img, "cat /etc/hosts"),
        "populated\npatched\ntwice\n"
    );
    // the patched file keeps the mode the populate gave it
    assert_added(&img, "added\npatched\n");
    assert_eq!(debugfs(&img, "cat /opt/b"), "b\n");
    assert!(debugfs(&img, "ls /opt").contains('b') && !debugfs(&img, "ls -l /opt").contains(" a "));
}

#[test]
fn replace_after_populate_keeps_the_populated_mode() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("vol.img");
    after_populate(
        w,
        "[replace /etc/added image IMG\n\nreplaced\n] [end]\n\
         [replace /etc/hosts image IMG\n\nreplaced hosts\n] [end]\n",
    )
    .ok();
    e2fsck_clean(&img);
    assert_eq!(debugfs(&img, "cat /etc/hosts"), "replaced hosts\n");
    assert_added(&img, "replaced\n");
}

#[test]
fn fork_of_a_patch_after_populate_is_refused() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("vol.img");
    let p = w.join("p.patch");
    fs::write(&p, file_patch("etc/hosts", &["populated"], &["patched"])).unwrap();
    let job = after_populate(
        w,
        &format!(
            "[patch IMG {} {}][end]\n",
            p.display(),
            w.join("fork.tar").display()
        ),
    );
    let out = job.command().output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("run.vmc:2:") && err.contains("run.vmc:1:"),
        "{err}"
    );
    // nothing changed
    assert_eq!(debugfs(&img, "cat /etc/hosts"), "old\n");
    assert!(!w.join("fork.tar").exists());
}
