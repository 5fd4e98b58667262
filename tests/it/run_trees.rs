//! Trees end to end through the binary: per-host override directories
//! copied into archives, files fetched over HTTP with mode and owner, the
//! `diff` subcommand between every kind of tree, a real distribution tree
//! packed by GNU cpio and checked on a loop mount, `populate dir` and its
//! refusal of hostile archives, ext4 images read but never written,
//! `--dry-run`, and failed runs that leave earlier outputs alone.
//! Oracles: GNU cpio, GNU patch, e2fsck, debugfs, mke2fs, the kernel's
//! ext4 driver (mount), an HTTP server on 127.0.0.1.

use crate::common;
use crate::net;

use common::trees::{
    assert_same, gnu_extract, image_tree, run_ok, set_mtime, sh_ok, show, stat_field, tree_of, vmc,
    without_root, Job,
};
use common::{bin, tempdir};
use net::HttpServer;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use vm_container::tree::manifest::Manifest;
use vm_container::tree::TreePath;

// ---------------------------------------------------------------- helpers

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn write_file(p: &Path, body: &[u8], mode: u32) {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(p, body).unwrap();
    set_mode(p, mode);
}

/// Packs `dir` with GNU cpio (newc) and gzip, the way image maintainers do.
fn gnu_pack(dir: &Path, archive: &Path) {
    let sh = format!(
        "find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -n > '{}'",
        archive.display()
    );
    sh_ok(&sh, dir);
}

/// The manifest with the mtimes GNU `cpio -idm` cannot restore set to 0:
/// a directory's (set before its contents are written) and a symlink's.
fn gnu_cpio_times(mut m: Manifest) -> Manifest {
    for r in m.values_mut() {
        if r.kind == "directory" || r.kind == "symlink" {
            r.meta.mtime = 0;
        }
    }
    m
}

/// The entries under `prefix`, re-rooted there (the prefix itself dropped).
fn subtree(m: &Manifest, prefix: &str) -> Manifest {
    let pre = format!("{prefix}/");
    m.iter()
        .filter_map(|(p, r)| {
            let s = String::from_utf8_lossy(p.as_bytes()).into_owned();
            let rest = s.strip_prefix(&pre)?;
            let np = TreePath::from_member(rest.as_bytes()).unwrap();
            let mut r = r.clone();
            r.link_group = r.link_group.map(|g| {
                let gs = String::from_utf8_lossy(g.as_bytes()).into_owned();
                TreePath::from_member(gs.strip_prefix(&pre).unwrap_or(&gs).as_bytes()).unwrap()
            });
            Some((np, r))
        })
        .collect()
}

fn path(s: &str) -> TreePath {
    TreePath::from_member(s.as_bytes()).unwrap()
}

/// Path → content digest of regular files only.
fn file_contents(m: &Manifest) -> BTreeMap<String, String> {
    m.iter()
        .filter(|(_, r)| r.kind == "file")
        .map(|(p, r)| {
            (
                String::from_utf8_lossy(p.as_bytes()).into_owned(),
                r.sha256.clone(),
            )
        })
        .collect()
}

fn sha256_file(p: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(p));
    out.split_whitespace().next().unwrap().to_string()
}

/// A snapshot of everything below `dir`: path → (mode, size, content hash).
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    tree_of(dir)
        .into_iter()
        .map(|(p, r)| {
            (
                String::from_utf8_lossy(p.as_bytes()).into_owned(),
                format!("{} {:o} {} {}", r.kind, r.meta.perm, r.size, r.sha256),
            )
        })
        .collect()
}

/// Unmounts on drop, whether the test passed or not.
struct Mount {
    dir: PathBuf,
}

impl Mount {
    fn loop_ro(img: &Path, dir: &Path) -> Mount {
        fs::create_dir_all(dir).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-o", "loop,ro"])
                .arg(img)
                .arg(dir),
        );
        Mount {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// A small base tree, packed with `vm-container pack`.
fn base_tree(dir: &Path) {
    write_file(&dir.join("etc/hosts"), b"127.0.0.1 localhost\n", 0o644);
    write_file(&dir.join("etc/motd"), b"old motd\n", 0o644);
    write_file(
        &dir.join("etc/ssh/sshd_config"),
        b"PermitRootLogin yes\nPort 22\n",
        0o644,
    );
    write_file(&dir.join("etc/cron.d/old"), b"# old job\n", 0o644);
    for d in ["", "etc", "etc/ssh", "etc/cron.d"] {
        set_mode(&dir.join(d), 0o755);
    }
}

// ------------------------------------------------- 1. copy a directory

/// A SystemImager-style per-host override tree: subdirectories, a
/// symlink, modes 0600 and 0755, and a file that replaces one the
/// archive already has.
fn override_tree(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    write_file(
        &dir.join("ssh/sshd_config"),
        b"PermitRootLogin no\nPort 2222\n",
        0o600,
    );
    write_file(
        &dir.join("ssh/ssh_host_ed25519_key"),
        b"SECRET KEY\n",
        0o600,
    );
    write_file(
        &dir.join("init.d/site-start"),
        b"#!/bin/sh\necho started\n",
        0o755,
    );
    write_file(
        &dir.join("cron.d/backup"),
        b"0 3 * * * root /bin/true\n",
        0o644,
    );
    write_file(&dir.join("deep/a/b/c/leaf.conf"), b"leaf=1\n", 0o640);
    symlink("/usr/share/zoneinfo/Etc/UTC", dir.join("localtime")).unwrap();
    symlink("../init.d/site-start", dir.join("cron.d/start-link")).unwrap();
    // one file under two names
    fs::hard_link(
        dir.join("init.d/site-start"),
        dir.join("cron.d/site-start.hard"),
    )
    .unwrap();
    for d in [
        "",
        "ssh",
        "init.d",
        "cron.d",
        "deep",
        "deep/a",
        "deep/a/b",
        "deep/a/b/c",
    ] {
        set_mode(&dir.join(d), 0o755);
    }
    set_mode(&dir.join("deep/a"), 0o750);
    // fixed, distinct mtimes so that they can be compared exactly
    let mut t = 1_600_000_000;
    for p in [
        "ssh/sshd_config",
        "ssh/ssh_host_ed25519_key",
        "init.d/site-start",
        "cron.d/backup",
        "deep/a/b/c/leaf.conf",
        "localtime",
        "cron.d/start-link",
        "deep/a/b/c",
        "deep/a/b",
        "deep/a",
        "deep",
        "ssh",
        "init.d",
        "cron.d",
    ] {
        set_mtime(&dir.join(p), t);
        t += 1000;
    }
}

#[test]
fn copy_of_a_local_directory_lands_under_path_in_fork_and_image() {
    let t = tempdir();
    let w = t.path();
    let base = w.join("base");
    base_tree(&base);
    let archive = w.join("etc.cpio.gz");
    run_ok(bin().arg("pack").arg(&base).arg(&archive));
    let over = w.join("overrides/fido/etc");
    override_tree(&over);

    let fork = w.join("fork.cpio.gz");
    let img = w.join("fido.img");
    Job::new(
        w,
        "fido.vmc",
        &format!(
            "name = \"fido\"\n\
             [copy /etc archive {a} fork {f} {src}][end]\n\
             [image {img} 16M][end]\n\
             [populate image {img} /mnt {a}][end]\n",
            a = archive.display(),
            f = fork.display(),
            src = over.display(),
            img = img.display(),
        ),
    )
    .ok();

    let src = without_root(tree_of(&over));
    assert!(src.len() >= 14, "override tree too small: {}", src.len());

    // the fork, as GNU cpio extracts it
    let x = w.join("x");
    gnu_extract(&fork, &x);
    // GNU cpio -idm sets a directory's mtime before writing its contents
    // and leaves symlinks' alone: those mtimes are compared in the image
    let forked = gnu_cpio_times(tree_of(&x));
    let under_etc = subtree(&forked, "etc");
    for (p, want) in &gnu_cpio_times(src.clone()) {
        let got = under_etc
            .get(p)
            .unwrap_or_else(|| panic!("fork lacks etc/{p:?}"));
        assert_eq!(got, want, "fork: etc/{p:?}");
    }
    // the rest of the archive is still there, untouched
    assert_eq!(
        fs::read(x.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
    assert_eq!(fs::read(x.join("etc/cron.d/old")).unwrap(), b"# old job\n");
    // the replaced file: new content, the override's mode
    assert_eq!(
        fs::read(x.join("etc/ssh/sshd_config")).unwrap(),
        b"PermitRootLogin no\nPort 2222\n"
    );
    let md = fs::symlink_metadata(x.join("etc/ssh/sshd_config")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o600);
    assert_eq!(
        fs::read_link(x.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/Etc/UTC")
    );
    assert_eq!(
        fs::metadata(x.join("etc/init.d/site-start"))
            .unwrap()
            .mode()
            & 0o7777,
        0o755
    );
    // nothing landed outside /etc
    let top: Vec<String> = fs::read_dir(&x)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, vec!["etc".to_string()]);

    // the image populated from the same working tree
    run_ok(Command::new("e2fsck").arg("-fn").arg(&img));
    let from_image = subtree(&image_tree(&img), "etc");
    for (p, want) in &src {
        let got = from_image
            .get(p)
            .unwrap_or_else(|| panic!("image lacks /etc/{p:?}"));
        assert_eq!(got, want, "image: /etc/{p:?}");
    }
    // the image and the fork hold the same tree
    let mut img_all = gnu_cpio_times(without_root(image_tree(&img)));
    img_all.remove(&path("etc"));
    let mut fork_all = without_root(forked);
    fork_all.remove(&path("etc"));
    assert_same(&fork_all, &img_all, "fork vs image");
    // and the binary's own reader agrees
    let ls = run_ok(bin().arg("ls").arg(&img).arg("/etc/ssh"));
    assert!(
        ls.lines()
            .any(|l| l.starts_with("-rw-------") && l.ends_with(" sshd_config")),
        "{ls}"
    );
    let ls = run_ok(bin().arg("ls").arg(&img).arg("/etc/localtime"));
    assert!(
        ls.trim_end().ends_with("-> /usr/share/zoneinfo/Etc/UTC"),
        "{ls}"
    );
    let cat = run_ok(bin().arg("cat").arg(&img).arg("/etc/deep/a/b/c/leaf.conf"));
    assert_eq!(cat, "leaf=1\n");
}

#[test]
fn copy_of_a_directory_keeps_file_names_that_are_not_utf8() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let t = tempdir();
    let w = t.path();
    let base = w.join("base");
    base_tree(&base);
    let archive = w.join("etc.cpio.gz");
    run_ok(bin().arg("pack").arg(&base).arg(&archive));
    // Linux names are bytes: a Latin-1 name from an old host
    let over = w.join("over");
    let latin = OsStr::from_bytes(b"caf\xe9.conf");
    let subdir = OsStr::from_bytes(b"r\xe9p");
    write_file(&over.join(latin), b"latin-1 name\n", 0o644);
    write_file(&over.join(subdir).join("inner"), b"inner\n", 0o600);
    set_mode(&over, 0o755);
    set_mode(&over.join(subdir), 0o755);
    // vm-container pack keeps such names (the oracle for this test's setup)
    let packed = w.join("over.cpio.gz");
    run_ok(bin().arg("pack").arg(&over).arg(&packed));
    let p = w.join("p");
    gnu_extract(&packed, &p);
    assert!(p.join(latin).exists());

    let fork = w.join("fork.cpio.gz");
    Job::new(
        w,
        "c.vmc",
        &format!(
            "[copy /etc archive {} fork {} {}][end]\n",
            archive.display(),
            fork.display(),
            over.display()
        ),
    )
    .ok();
    let x = w.join("x");
    gnu_extract(&fork, &x);
    let etc = x.join("etc");
    assert_eq!(fs::read(etc.join(latin)).unwrap(), b"latin-1 name\n");
    assert_eq!(
        fs::read(etc.join(subdir).join("inner")).unwrap(),
        b"inner\n"
    );
    assert_eq!(
        fs::metadata(etc.join(subdir).join("inner")).unwrap().mode() & 0o7777,
        0o600
    );
    assert_eq!(
        fs::read(etc.join("hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
}

#[test]
fn copy_over_http_with_mode_and_owner() {
    let t = tempdir();
    let w = t.path();
    let base = w.join("base");
    base_tree(&base);
    let archive = w.join("etc.cpio.gz");
    run_ok(bin().arg("pack").arg(&base).arg(&archive));
    let http = HttpServer::start();
    let motd = b"Welcome to fido.\nAuthorized use only.\n";
    http.serve("/motd", motd, Some("\"m1\""), None);

    let img = w.join("fido.img");
    Job::new(
        w,
        "fido.vmc",
        &format!(
            "[copy /etc/motd archive {a} mode 0600 owner 0:42 {u}][end]\n\
             [copy /etc/new/issue archive {a} owner 7:8 {u}][end]\n\
             [image {img} 8M][end]\n\
             [populate image {img} /mnt {a}][end]\n",
            a = archive.display(),
            u = http.url("/motd"),
            img = img.display(),
        ),
    )
    .ok();
    let gets = http.requests().iter().filter(|r| r.path == "/motd").count();
    assert_eq!(gets, 1, "one URI, fetched once");

    run_ok(Command::new("e2fsck").arg("-fn").arg(&img));
    let ls = run_ok(bin().arg("ls").arg(&img).arg("/etc/motd"));
    let f: Vec<&str> = ls.split_whitespace().collect();
    assert_eq!(f[0], "-rw-------", "{ls}");
    assert_eq!((f[2], f[3]), ("0", "42"), "{ls}");
    assert_eq!(f[4], motd.len().to_string(), "{ls}");
    let cat = run_ok(bin().arg("cat").arg(&img).arg("/etc/motd"));
    assert_eq!(cat.as_bytes(), motd);

    // debugfs, e2fsprogs' own reader
    let stat = run_ok(
        Command::new("debugfs")
            .arg("-R")
            .arg("stat /etc/motd")
            .arg(&img),
    );
    let after = |key: &str| stat_field(&stat, key);
    assert_eq!(after("Type:"), "regular", "{stat}");
    assert_eq!(after("Mode:"), "0600", "{stat}");
    assert_eq!(after("User:"), "0", "{stat}");
    assert_eq!(after("Group:"), "42", "{stat}");
    assert_eq!(after("Size:"), motd.len().to_string(), "{stat}");
    let dcat = run_ok(
        Command::new("debugfs")
            .arg("-R")
            .arg("cat /etc/motd")
            .arg(&img),
    );
    assert_eq!(dcat.as_bytes(), motd);

    // a new file without `mode` gets 0644, in a new 0755 root-owned directory
    let stat = run_ok(
        Command::new("debugfs")
            .arg("-R")
            .arg("stat /etc/new/issue")
            .arg(&img),
    );
    let words: Vec<&str> = stat.split_whitespace().collect();
    let i = words.iter().position(|w| *w == "Mode:").unwrap();
    assert_eq!(words[i + 1], "0644", "{stat}");
    let i = words.iter().position(|w| *w == "User:").unwrap();
    assert_eq!((words[i + 1], words[i + 3]), ("7", "8"), "{stat}");
    let ls = run_ok(bin().arg("ls").arg(&img).arg("/etc"));
    assert!(
        ls.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f[0] == "drwxr-xr-x" && f[2] == "0" && f[3] == "0" && l.ends_with(" new")
        }),
        "{ls}"
    );
}

// -------------------------------------------- 2. diff between tree kinds

fn old_and_new(old: &Path, new: &Path) {
    let lines = |n: usize, tag: &str| -> Vec<u8> {
        (0..n)
            .map(|i| format!("{tag} line {i}\n"))
            .collect::<String>()
            .into_bytes()
    };
    for d in [old, new] {
        write_file(&d.join("etc/hosts"), b"127.0.0.1 localhost\n", 0o644);
        write_file(&d.join("usr/share/big.txt"), &lines(400, "same"), 0o644);
        write_file(&d.join("etc/same/unchanged"), b"unchanged\n", 0o600);
    }
    write_file(
        &old.join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\n",
        0o644,
    );
    write_file(
        &new.join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\nfido:x:1000:1000::/home/fido:/bin/sh\n",
        0o644,
    );
    // changes in the middle of a long file: several hunks
    let mut changed = String::from_utf8(lines(400, "same")).unwrap();
    changed = changed.replace("same line 10\n", "CHANGED 10\n");
    changed = changed.replace("same line 200\n", "");
    changed = changed.replace("same line 399\n", "same line 399\nappended\n");
    write_file(&new.join("usr/share/big.txt"), changed.as_bytes(), 0o644);
    // no newline at the end, on both sides
    write_file(&old.join("etc/hostname"), b"old-host", 0o644);
    write_file(&new.join("etc/hostname"), b"new-host", 0o644);
    // removed, and added in new directories
    write_file(&old.join("etc/obsolete.conf"), b"obsolete=1\n", 0o644);
    write_file(&new.join("etc/added/deep/new.conf"), b"new=1\nx=2\n", 0o644);
    write_file(&new.join("opt/app/README"), b"read me\n", 0o644);
    // a symlink on one side only does not break the patch
    symlink("hosts", new.join("etc/hosts.link")).unwrap();
}

#[test]
fn diff_between_dir_cpio_and_image_applies_with_gnu_patch() {
    let t = tempdir();
    let w = t.path();
    let (old, new) = (w.join("old"), w.join("new"));
    old_and_new(&old, &new);
    // the same trees as cpio.gz (GNU cpio) and ext3/ext4 images (mke2fs -d)
    let mut kinds: BTreeMap<&str, (PathBuf, PathBuf)> = BTreeMap::new();
    kinds.insert("dir", (old.clone(), new.clone()));
    let (oc, nc) = (w.join("old.cpio.gz"), w.join("new.cpio.gz"));
    gnu_pack(&old, &oc);
    gnu_pack(&new, &nc);
    kinds.insert("cpio", (oc, nc));
    let (oi, ni) = (w.join("old.img"), w.join("new.img"));
    for (d, i) in [(&old, &oi), (&new, &ni)] {
        run_ok(
            Command::new("mke2fs")
                .args(["-q", "-F", "-t", "ext3", "-d"])
                .arg(d)
                .arg(i)
                .arg("4M"),
        );
    }
    kinds.insert("ext3", (oi, ni));
    let (o4, n4) = (w.join("old.ext4"), w.join("new.ext4"));
    for (d, i) in [(&old, &o4), (&new, &n4)] {
        run_ok(
            Command::new("mke2fs")
                .args(["-q", "-F", "-t", "ext4", "-d"])
                .arg(d)
                .arg(i)
                .arg("8M"),
        );
    }
    kinds.insert("ext4", (o4, n4));

    let want = file_contents(&tree_of(&new));
    assert!(want.len() >= 7);
    for (ko, (o, _)) in &kinds {
        for (kn, (_, n)) in &kinds {
            let what = format!("diff {ko} {kn}");
            let patch = w.join(format!("{ko}-{kn}.patch"));
            // diff(1)'s exit status: 1, the trees differ
            let out = bin()
                .arg("diff")
                .arg(o)
                .arg(n)
                .arg("-o")
                .arg(&patch)
                .output();
            assert_eq!(out.unwrap().status.code(), Some(1), "{what}");
            let text = fs::read_to_string(&patch).unwrap();
            assert!(text.contains("+fido:x:1000"), "{what}:\n{text}");
            assert!(
                !text.contains("unchanged"),
                "{what}: unchanged file in:\n{text}"
            );
            let copy = w.join(format!("apply-{ko}-{kn}"));
            sh_ok(
                &format!("cp -a '{}' '{}'", old.display(), copy.display()),
                w,
            );
            run_ok(
                Command::new("patch")
                    .args(["-p1", "--quiet", "--batch", "-i"])
                    .arg(&patch)
                    .current_dir(&copy),
            );
            let got = file_contents(&tree_of(&copy));
            assert_eq!(got, want, "{what}: patched tree differs from new:\n{text}");
        }
    }
    // identical trees of different kinds: an empty patch
    let d = run_ok(
        bin()
            .arg("diff")
            .arg(&new)
            .arg(&kinds["ext3"].1)
            .arg("-o")
            .arg("-"),
    );
    assert_eq!(d, "", "dir vs its own ext3 image");
    let d = run_ok(
        bin()
            .arg("diff")
            .arg(&kinds["cpio"].0)
            .arg(&old)
            .arg("-o")
            .arg("-"),
    );
    assert_eq!(d, "", "cpio vs its own dir");
}

// ---------------------------------------- 3. a real distribution tree

/// Copies a few thousand entries of this machine's /usr, with symlinks and
/// hard links, into `dst`.
fn distribution_subset(dst: &Path) {
    let candidates = [
        "share/perl",
        "share/zoneinfo",
        "lib/x86_64-linux-gnu/dri",
        "share/i18n/charmaps",
        "share/doc/coreutils",
        "share/doc/bash",
        "lib/x86_64-linux-gnu/perl-base",
        "share/perl5",
    ];
    fs::create_dir_all(dst).unwrap();
    for c in candidates {
        let src = Path::new("/usr").join(c);
        if src.exists() {
            sh_ok(
                &format!("cp -a --parents '{c}' '{}'", dst.display()),
                Path::new("/usr"),
            );
        }
    }
    // the parents cp created keep /usr's metadata; the root's own is dropped
    let m = tree_of(dst);
    let symlinks = m.values().filter(|r| r.kind == "symlink").count();
    let linked = m.values().filter(|r| r.link_group.is_some()).count();
    if linked == 0 {
        // no hard links in this /usr: make a group of three
        let f = m
            .iter()
            .find(|(_, r)| r.kind == "file" && r.size > 1000)
            .map(|(p, _)| dst.join(String::from_utf8_lossy(p.as_bytes()).as_ref()))
            .unwrap();
        fs::hard_link(&f, dst.join("share/hardlink-1")).unwrap();
        fs::hard_link(&f, dst.join("share/hardlink-2")).unwrap();
    }
    if symlinks == 0 {
        symlink("perl", dst.join("share/perl-link")).unwrap();
    }
}

#[test]
#[ignore = "root tier: mounts the image on a loop device"]
fn a_real_usr_subset_through_gnu_cpio_into_an_image_matches_on_a_loop_mount() {
    let t = tempdir();
    let w = t.path();
    let src = w.join("usr");
    distribution_subset(&src);
    let want = without_root(tree_of(&src));
    let bytes: u64 = want.values().map(|r| r.size).sum();
    assert!(want.len() >= 1000, "only {} entries", want.len());
    assert!(bytes >= 10 << 20, "only {bytes} bytes");
    assert!(want.values().any(|r| r.kind == "symlink"));
    assert!(want.values().any(|r| r.link_group.is_some()));

    let archive = w.join("usr.cpio.gz");
    gnu_pack(&src, &archive);
    let img = w.join("usr.img");
    Job::new(
        w,
        "usr.vmc",
        &format!(
            "[image {img} 256M][end]\n[populate image {img} /mnt {a}][end]\n",
            img = img.display(),
            a = archive.display()
        ),
    )
    .ok();
    run_ok(Command::new("e2fsck").arg("-fn").arg(&img));
    // sparse: far less host disk than its size
    let md = fs::metadata(&img).unwrap();
    assert_eq!(md.len(), 256 << 20);
    assert!(
        md.blocks() * 512 < md.len() / 2,
        "not sparse: {} blocks",
        md.blocks()
    );

    let mnt = w.join("mnt");
    let got = {
        let _m = Mount::loop_ro(&img, &mnt);
        without_root(tree_of(&mnt))
    };
    assert_same(&want, &got, "source /usr subset vs loop-mounted image");
}

// ------------------------------------------------------ 4. populate dir

#[test]
#[ignore = "root tier: sets owners (chown)"]
fn populate_dir_writes_the_tree_into_the_target() {
    let t = tempdir();
    let w = t.path();
    let src = w.join("src");
    write_file(
        &src.join("etc/passwd"),
        b"root:x:0:0::/root:/bin/sh\n",
        0o644,
    );
    write_file(&src.join("etc/shadow"), b"root:*:19000::::::\n", 0o640);
    write_file(&src.join("usr/bin/tool"), b"#!/bin/sh\n", 0o4755);
    write_file(
        &src.join("srv/data.bin"),
        &net::binary_payload(300_000),
        0o600,
    );
    fs::create_dir_all(src.join("tmp")).unwrap();
    set_mode(&src.join("tmp"), 0o1777);
    symlink("../usr/bin/tool", src.join("etc/tool-link")).unwrap();
    fs::hard_link(src.join("etc/passwd"), src.join("etc/passwd-hard")).unwrap();
    std::os::unix::fs::chown(src.join("etc/shadow"), Some(0), Some(42)).unwrap();
    std::os::unix::fs::chown(src.join("srv/data.bin"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::lchown(src.join("etc/tool-link"), Some(5), Some(6)).unwrap();
    run_ok(Command::new("mkfifo").arg(src.join("tmp/fifo")));
    for p in ["etc", "usr", "usr/bin", "srv"] {
        set_mode(&src.join(p), 0o755);
    }
    let archive = w.join("root.cpio.gz");
    gnu_pack(&src, &archive);

    let target = w.join("export/fido");
    Job::new(
        w,
        "c.vmc",
        &format!(
            "[populate dir {} /mnt {}][end]\n",
            target.display(),
            archive.display()
        ),
    )
    .ok();
    assert_same(
        &without_root(tree_of(&src)),
        &without_root(tree_of(&target)),
        "source vs populated directory",
    );
    assert_eq!(
        fs::metadata(target.join("usr/bin/tool")).unwrap().mode() & 0o7777,
        0o4755
    );

    // a second populate merges: same-named files overwritten, others kept
    fs::write(target.join("local-only"), b"kept\n").unwrap();
    let src2 = w.join("src2");
    write_file(
        &src2.join("etc/passwd"),
        b"root:x:0:0::/root:/bin/bash\n",
        0o644,
    );
    set_mode(&src2.join("etc"), 0o755);
    let archive2 = w.join("more.cpio.gz");
    gnu_pack(&src2, &archive2);
    Job::new(
        w,
        "c.vmc",
        &format!(
            "[populate dir {} /mnt {}][end]\n",
            target.display(),
            archive2.display()
        ),
    )
    .ok();
    assert_eq!(
        fs::read(target.join("etc/passwd")).unwrap(),
        b"root:x:0:0::/root:/bin/bash\n"
    );
    assert_eq!(
        fs::read(target.join("etc/shadow")).unwrap(),
        b"root:*:19000::::::\n"
    );
    assert_eq!(fs::read(target.join("local-only")).unwrap(), b"kept\n");
}

/// One newc member, byte by byte.
fn newc_member(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    let namez = name.len() + 1;
    let head = format!(
        "070701{ino:08X}{mode:08X}{uid:08X}{gid:08X}{nlink:08X}{mtime:08X}{size:08X}\
         {dmaj:08X}{dmin:08X}{rmaj:08X}{rmin:08X}{namesize:08X}{check:08X}",
        uid = 0,
        gid = 0,
        nlink = 1,
        mtime = 1_700_000_000u32,
        size = data.len(),
        dmaj = 8,
        dmin = 1,
        rmaj = 0,
        rmin = 0,
        namesize = namez,
        check = 0
    );
    assert_eq!(head.len(), 110);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn newc_gz(members: &[(&str, u32, &[u8])], dest: &Path) {
    let mut raw = Vec::new();
    for (i, (name, mode, data)) in members.iter().enumerate() {
        newc_member(&mut raw, 100 + i as u32, name, *mode, data);
    }
    newc_member(&mut raw, 0, "TRAILER!!!", 0, b"");
    while raw.len() % 512 != 0 {
        raw.push(0);
    }
    let mut gz = Command::new("gzip")
        .arg("-nc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    gz.stdin.take().unwrap().write_all(&raw).unwrap();
    let out = gz.wait_with_output().unwrap();
    assert!(out.status.success());
    fs::write(dest, out.stdout).unwrap();
}

#[test]
fn populate_dir_refuses_a_symlink_escape_and_writes_nothing_outside() {
    let t = tempdir();
    let w = t.path();
    let outside = w.join("somewhere-outside");
    fs::create_dir_all(&outside).unwrap();
    let target = w.join("target");
    let archive = w.join("evil.cpio.gz");
    let outside_s = outside.to_str().unwrap().to_string();
    newc_gz(
        &[
            (".", 0o040755, b""),
            ("etc", 0o040755, b""),
            ("etc/ok", 0o100644, b"fine\n"),
            ("evil", 0o120777, outside_s.as_bytes()),
            ("evil/pwned", 0o100644, b"pwned\n"),
        ],
        &archive,
    );
    // GNU cpio reads the crafted archive: it is well formed
    let list = sh_ok(
        &format!("gzip -dc '{}' | cpio -it --quiet", archive.display()),
        w,
    );
    assert_eq!(
        list.lines().collect::<Vec<_>>(),
        [".", "etc", "etc/ok", "evil", "evil/pwned"]
    );

    let before_outside = snapshot(&outside);
    let err = Job::new(
        w,
        "c.vmc",
        &format!(
            "[populate dir {} /mnt {}][end]\n",
            target.display(),
            archive.display()
        ),
    )
    .fails(1);
    assert!(err.contains("evil"), "the error names the member: {err}");
    assert!(
        !outside.join("pwned").exists(),
        "written through the symlink"
    );
    assert_eq!(snapshot(&outside), before_outside);
    // nothing else appeared beside the target either
    let mut names: Vec<String> = fs::read_dir(w)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in &names {
        assert!(
            [
                "c.vmc",
                "evil.cpio.gz",
                "somewhere-outside",
                "target",
                "work"
            ]
            .contains(&n.as_str()),
            "unexpected {n} beside the target"
        );
    }

    // a member that climbs out with `..` is refused too
    let archive2 = w.join("climb.cpio.gz");
    newc_gz(
        &[
            ("etc", 0o040755, b""),
            ("etc/../../climbed", 0o100644, b"x\n"),
        ],
        &archive2,
    );
    Job::new(
        w,
        "c.vmc",
        &format!(
            "[populate dir {} /mnt {}][end]\n",
            target.display(),
            archive2.display()
        ),
    )
    .fails(1);
    assert!(!w.join("climbed").exists());
    assert!(!target.join("../climbed").exists());

    // a symlink already in the target is not followed either: a member
    // whose parent directory is not in the archive must not land outside
    let target3 = w.join("target3");
    fs::create_dir(&target3).unwrap();
    symlink(&outside, target3.join("etc")).unwrap();
    let archive3 = w.join("implicit.cpio.gz");
    newc_gz(&[("etc/passwd", 0o100644, b"pwned\n")], &archive3);
    Job::new(
        w,
        "c.vmc",
        &format!(
            "[populate dir {} /mnt {}][end]\n",
            target3.display(),
            archive3.display()
        ),
    )
    .fails(1);
    assert!(
        !outside.join("passwd").exists(),
        "written through target3/etc"
    );
    assert_eq!(snapshot(&outside), before_outside);
}

// ------------------------------------- 5. ext4 with inline data: read only

#[test]
fn an_ext4_image_with_inline_data_is_read_but_never_populated() {
    let t = tempdir();
    let w = t.path();
    let d = w.join("tree");
    write_file(&d.join("etc/hostname"), b"ext4-host\n", 0o644);
    let big = net::binary_payload(3 << 20);
    write_file(&d.join("var/big.bin"), &big, 0o600);
    for i in 0..300 {
        write_file(
            &d.join(format!("many/file-{i:04}")),
            format!("{i}\n").as_bytes(),
            0o644,
        );
    }
    let long_target = "x".repeat(40) + "/" + &"y".repeat(60);
    symlink(&long_target, d.join("etc/long-link")).unwrap();
    symlink("hostname", d.join("etc/short-link")).unwrap();
    let img = w.join("ext4.img");
    run_ok(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-O", "inline_data", "-d"])
            .arg(&d)
            .arg(&img)
            .arg("32M"),
    );
    let features = run_ok(Command::new("dumpe2fs").arg("-h").arg(&img));
    assert!(features.contains("inline_data"), "{features}");

    let ls = run_ok(bin().arg("ls").arg(&img));
    for n in ["etc", "var", "many", "lost+found"] {
        assert!(
            ls.lines()
                .any(|l| l.starts_with('d') && l.ends_with(&format!(" {n}"))),
            "{n} missing from ls /:\n{ls}"
        );
    }
    let ls = run_ok(bin().arg("ls").arg(&img).arg("/many"));
    assert_eq!(ls.lines().count(), 300, "{ls}");
    let ls = run_ok(bin().arg("ls").arg(&img).arg("/etc/long-link"));
    assert!(
        ls.trim_end().ends_with(&format!("-> {long_target}")),
        "{ls}"
    );
    let ls = run_ok(bin().arg("ls").arg(&img).arg("/var/big.bin"));
    assert!(ls.starts_with("-rw-------"), "{ls}");
    assert_eq!(
        run_ok(bin().arg("cat").arg(&img).arg("/etc/hostname")),
        "ext4-host\n"
    );
    let out = bin()
        .arg("cat")
        .arg(&img)
        .arg("/var/big.bin")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout == big,
        "cat of a 3 MiB extent-mapped file differs"
    );
    assert_eq!(
        run_ok(bin().arg("cat").arg(&img).arg("/many/file-0299")),
        "299\n"
    );
    // the whole image against the directory it was made from
    assert_eq!(
        run_ok(bin().arg("diff").arg(&d).arg(&img).arg("-o").arg("-")),
        ""
    );

    // writing into it is refused, and the image is left alone
    let base = w.join("base");
    base_tree(&base);
    let archive = w.join("etc.cpio.gz");
    run_ok(bin().arg("pack").arg(&base).arg(&archive));
    let before = sha256_file(&img);
    let err = Job::new(
        w,
        "c.vmc",
        &format!(
            "[populate image {} /mnt {}][end]\n",
            img.display(),
            archive.display()
        ),
    )
    .fails(1);
    assert!(err.contains("inline_data"), "the message says why: {err}");
    assert!(
        err.contains(img.to_str().unwrap()),
        "the message names the image: {err}"
    );
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(
        errors[0].contains("ext4") && errors[0].contains(img.to_str().unwrap()),
        "{err}"
    );
    assert_eq!(sha256_file(&img), before, "the ext4 image changed");

    // patching it in place is refused the same way
    let patch = w.join("hostname.patch");
    fs::write(
        &patch,
        "--- a/etc/hostname\n+++ b/etc/hostname\n@@ -1 +1 @@\n-ext4-host\n+patched\n",
    )
    .unwrap();
    let err = Job::new(
        w,
        "c.vmc",
        &format!("[patch {} {}][end]\n", img.display(), patch.display()),
    )
    .fails(1);
    assert!(err.contains("ext4"), "the message says why: {err}");
    assert_eq!(sha256_file(&img), before, "the ext4 image changed");
    run_ok(Command::new("e2fsck").arg("-fn").arg(&img));
    assert_eq!(
        run_ok(bin().arg("cat").arg(&img).arg("/etc/hostname")),
        "ext4-host\n"
    );
}

// --------------------------------------------------------- 6. --dry-run

/// A container touching every kind of output, its inputs over HTTP.
fn dry_run_setup(w: &Path, http: &HttpServer) -> PathBuf {
    let base = w.join("base");
    base_tree(&base);
    let archive = w.join("etc.cpio.gz");
    run_ok(bin().arg("pack").arg(&base).arg(&archive));
    http.serve(
        "/etc.cpio.gz",
        &fs::read(&archive).unwrap(),
        Some("\"a\""),
        None,
    );
    http.serve("/motd", b"hello\n", Some("\"b\""), None);
    let over = w.join("over");
    override_tree(&over);
    let container = w.join("fido.vmc");
    fs::write(
        &container,
        format!(
            "name = \"fido\"\nmemory = 256\n\
             [image {img} 16M fido][end]\n\
             [replace /etc/HOSTNAME archive {a} fork {f} patch {p}\n\nfido\n] [end]\n\
             [copy /etc/motd archive {a} mode 0600 {m}][end]\n\
             [copy /etc archive {a} {over}][end]\n\
             [create {base} {created}][end]\n\
             [populate image {img} /mnt {a}][end]\n\
             [populate dir {target} /mnt {a}][end]\n",
            img = w.join("out/fido.img").display(),
            a = http.url("/etc.cpio.gz"),
            f = w.join("out/fork.cpio.gz").display(),
            p = w.join("out/fido.patch").display(),
            m = http.url("/motd"),
            over = over.display(),
            base = base.display(),
            created = w.join("out/created.cpio.gz").display(),
            target = w.join("out/export").display(),
        ),
    )
    .unwrap();
    container
}

#[test]
fn dry_run_changes_nothing_and_fetches_nothing() {
    let t = tempdir();
    let w = t.path();
    let http = HttpServer::start();
    let container = dry_run_setup(w, &http);
    let before = snapshot(w);
    let mut cmd = vmc(&container, &w.join("work"));
    cmd.arg("--dry-run")
        .arg("--stripped")
        .arg(w.join("out/fido.cfg"));
    let out = cmd.output().unwrap();
    // no earlier run: everything is pending (3); nothing is cached, so
    // there is nothing to revalidate
    assert_eq!(out.status.code(), Some(3), "{}", show(&cmd, &out));
    assert_eq!(http.requests().len(), 0, "{:?}", http.requests());
    assert_eq!(http.body_bytes(), 0);
    assert_eq!(snapshot(w), before, "--dry-run changed files");
    assert!(!w.join("out").exists());
    assert!(
        !w.join("work").exists(),
        "--dry-run created the work directory"
    );
    // the plan names every action with its line
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    for (line, word) in [
        (3, "image"),
        (4, "replace"),
        (8, "copy"),
        (9, "copy"),
        (10, "create"),
        (11, "populate"),
        (12, "populate"),
    ] {
        assert!(
            plan.lines()
                .any(|l| l.contains(&format!(":{line}:")) && l.contains(word)),
            "line {line} ({word}) missing from the plan:\n{plan}"
        );
    }
    // and the real run afterwards does fetch and write
    run_ok(
        vmc(&container, &w.join("work"))
            .arg("--stripped")
            .arg(w.join("out/fido.cfg")),
    );
    assert!(!http.requests().is_empty());
    assert!(w.join("out/fido.img").exists() && w.join("out/fido.cfg").exists());
    // with outputs in place and the cache filled: the inputs are
    // revalidated (conditional requests, answered 304, no body), nothing
    // changes, nothing is pending (0)
    let served = http.requests().len();
    let bodies = http.body_bytes();
    let before = snapshot(w);
    let mut cmd = vmc(&container, &w.join("work"));
    cmd.arg("--dry-run")
        .arg("--stripped")
        .arg(w.join("out/fido.cfg"));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&cmd, &out));
    let asked = http.requests()[served..].to_vec();
    assert!(
        asked
            .iter()
            .all(|r| r.headers.contains_key("if-none-match")),
        "{asked:?}"
    );
    assert_eq!(http.body_bytes(), bodies);
    assert_eq!(snapshot(w), before, "--dry-run changed files");
}

#[test]
fn dry_run_does_not_write_the_log() {
    let t = tempdir();
    let w = t.path();
    let http = HttpServer::start();
    let container = dry_run_setup(w, &http);
    fs::create_dir(w.join("logs")).unwrap();
    let log = w.join("logs/fido.log");
    let mut cmd = vmc(&container, &w.join("work"));
    cmd.arg("--dry-run").arg("--log").arg(&log);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&cmd, &out));
    assert_eq!(http.requests().len(), 0, "{:?}", http.requests());
    assert!(
        !log.exists(),
        "--dry-run wrote the log: {:?}",
        fs::read_to_string(&log)
    );
}

// ------------------------------------- 7. a failed run changes no output

#[test]
fn a_failed_second_expression_leaves_earlier_outputs_byte_identical() {
    let t = tempdir();
    let w = t.path();
    let base = w.join("base");
    base_tree(&base);
    let archive = w.join("etc.cpio.gz");
    run_ok(bin().arg("pack").arg(&base).arg(&archive));
    let good = w.join("good.patch");
    fs::write(
        &good,
        "--- a/etc/hosts\n+++ b/etc/hosts\n@@ -1 +1,2 @@\n 127.0.0.1 localhost\n+10.0.0.2 fido\n",
    )
    .unwrap();
    let bad = w.join("bad.patch");
    fs::write(
        &bad,
        "--- a/etc/hosts\n+++ b/etc/hosts\n@@ -1 +1 @@\n-10.9.9.9 not-there\n+10.0.0.2 fido\n",
    )
    .unwrap();
    // GNU patch agrees: the good one applies, the bad one does not
    let probe = w.join("probe");
    sh_ok(
        &format!("cp -a '{}' '{}'", base.display(), probe.display()),
        w,
    );
    run_ok(
        Command::new("patch")
            .args(["-p1", "--quiet", "--dry-run", "-i"])
            .arg(&good)
            .current_dir(&probe),
    );
    let st = Command::new("patch")
        .args(["-p1", "--quiet", "--dry-run", "--batch", "-i"])
        .arg(&bad)
        .current_dir(&probe)
        .output()
        .unwrap();
    assert!(!st.status.success(), "GNU patch applied the bad patch");

    let fork = w.join("out/fido-etc.cpio.gz");
    let cfg = w.join("out/fido.cfg");
    let container = w.join("fido.vmc");
    let write_container = |patch: &Path| {
        fs::write(
            &container,
            format!(
                "name = \"fido\"\nmemory = 256\n\
                 [replace /etc/HOSTNAME archive {a} fork {f}\n\n${{name}}\n] [end]\n\
                 [patch {a} {p}][end]\n",
                a = archive.display(),
                f = fork.display(),
                p = patch.display(),
            ),
        )
        .unwrap();
    };
    write_container(&good);
    let work = w.join("work");
    run_ok(vmc(&container, &work).arg("--stripped").arg(&cfg));
    let cfg_before = fs::read(&cfg).unwrap();
    let fork_before = fs::read(&fork).unwrap();
    assert!(String::from_utf8_lossy(&cfg_before).contains("name = \"fido\""));
    let x = w.join("x");
    gnu_extract(&fork, &x);
    assert_eq!(fs::read(x.join("etc/HOSTNAME")).unwrap(), b"fido\n");

    // the second run would write different bytes to both outputs, but its
    // second expression fails
    write_container(&bad);
    let mut cmd = vmc(&container, &work);
    cmd.args(["--set", "name=rex", "--set", "memory=512"])
        .arg("--stripped")
        .arg(&cfg);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&cmd, &out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("etc/hosts"), "the error names the file: {err}");
    assert!(
        fs::read(&cfg).unwrap() == cfg_before,
        "the stripped config changed"
    );
    assert!(fs::read(&fork).unwrap() == fork_before, "the fork changed");
    // no staging file was left beside the outputs
    let left: Vec<String> = fs::read_dir(w.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");

    // the same run with the good patch does replace both
    write_container(&good);
    run_ok(
        vmc(&container, &work)
            .args(["--set", "name=rex", "--set", "memory=512"])
            .arg("--stripped")
            .arg(&cfg),
    );
    assert!(fs::read(&cfg).unwrap() != cfg_before);
    assert!(fs::read(&fork).unwrap() != fork_before);
    let y = w.join("y");
    gnu_extract(&fork, &y);
    assert_eq!(fs::read(y.join("etc/HOSTNAME")).unwrap(), b"rex\n");
}
