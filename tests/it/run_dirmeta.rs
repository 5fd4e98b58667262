//! The directories an edit makes get the mode and owner `dirmode` and
//! `dirowner` give them: `/root/.ssh` 0700, `/home/alice` owned by alice,
//! the directories of a copied host tree. Directories that exist keep
//! theirs. Seen in the archive (GNU cpio -itv), in an image populated from
//! it (debugfs stat) and in a directory populated from it (stat).

use crate::common;

use common::tempdir;
use common::trees::{run_ok, sh_ok, stat_field, vmc};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// (path, mode, uid, gid) of every directory the test looks at.
const EXPECTED: [(&str, u32, u32, u32); 7] = [
    // there already: kept
    ("root", 0o700, 0, 0),
    ("home", 0o755, 0, 0),
    // made for /root/.ssh/authorized_keys (dirmode 0700)
    ("root/.ssh", 0o700, 0, 0),
    // made for /home/alice/.profile (dirmode 0750 dirowner 1000:1000)
    ("home/alice", 0o750, 1000, 1000),
    // made as the parent of the copied tree (dirmode 0750, no dirowner)
    ("srv", 0o750, 0, 0),
    // the copied tree's directories: dirmode, and `owner` for want of a
    // dirowner
    ("srv/www", 0o750, 33, 33),
    ("srv/www/static", 0o750, 33, 33),
];

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A base tree packed by GNU cpio with /root 0700 and /home 0755, owned
/// by 0:0 in the archive whoever runs the test.
fn base(w: &Path) -> PathBuf {
    let src = w.join("base");
    for d in ["root", "home", "etc"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::write(src.join("etc/hostname"), b"fido\n").unwrap();
    set_mode(&src.join("root"), 0o700);
    set_mode(&src.join("home"), 0o755);
    set_mode(&src.join("etc"), 0o755);
    let archive = w.join("base.cpio.gz");
    sh_ok(
        &format!(
            "find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -n > '{}'",
            archive.display()
        ),
        &src,
    );
    archive
}

/// Runs the edits, forking the result to `fork.cpio.gz`, and populates
/// `img` (and `dir`, when given) from it.
fn run(w: &Path, dir: Option<&Path>) -> (PathBuf, PathBuf) {
    let archive = base(w);
    let key = w.join("alice.pub");
    fs::write(&key, b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 alice@laptop\n").unwrap();
    let site = w.join("site");
    fs::create_dir_all(site.join("static")).unwrap();
    fs::write(site.join("index.html"), b"<h1>fido</h1>\n").unwrap();
    fs::write(site.join("static/style.css"), b"h1 { color: red }\n").unwrap();
    set_mode(&site, 0o777);
    set_mode(&site.join("static"), 0o700);
    let fork = w.join("fork.cpio.gz");
    let img = w.join("fido.img");
    let populate_dir = dir
        .map(|d| {
            format!(
                "[populate dir {} /mnt {}][end]\n",
                d.display(),
                archive.display()
            )
        })
        .unwrap_or_default();
    let container = w.join("fido.vmc");
    fs::write(
        &container,
        format!(
            "[copy /root/.ssh/authorized_keys archive {a} mode 0600 dirmode 0700 {key}][end]\n\
             [replace /home/alice/.profile archive {a} owner 1000:1000\n  \
             dirmode 0750 dirowner 1000:1000\n\nexport EDITOR=vi\n] [end]\n\
             [copy /srv/www archive {a} owner 33:33 dirmode 0750 fork {fork} {site}][end]\n\
             [image {img} 8M][end]\n\
             [populate image {img} /mnt {a}][end]\n\
             {populate_dir}",
            a = archive.display(),
            key = key.display(),
            fork = fork.display(),
            site = site.display(),
            img = img.display(),
        ),
    )
    .unwrap();
    run_ok(&mut vmc(&container, &w.join("work")));
    (fork, img)
}

/// `ls -l` style mode bits of a directory.
fn drwx(mode: u32) -> String {
    let mut s = String::from("d");
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

#[test]
fn made_directories_get_dirmode_and_dirowner_in_archives_and_images() {
    let t = tempdir();
    let w = t.path();
    let (fork, img) = run(w, None);

    // GNU cpio's listing of the fork, with numeric owners
    let listing = sh_ok(
        &format!("gzip -dc '{}' | cpio -itvn --quiet", fork.display()),
        w,
    );
    for (path, mode, uid, gid) in EXPECTED {
        let line = listing
            .lines()
            .find(|l| l.split_whitespace().last() == Some(path))
            .unwrap_or_else(|| panic!("{path} not in the archive:\n{listing}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[0], drwx(mode), "{path}: {line}");
        assert_eq!(
            (f[2], f[3]),
            (uid.to_string().as_str(), gid.to_string().as_str()),
            "{path}: {line}"
        );
    }
    // files keep to `mode` and `owner`
    for (path, perm, owner) in [
        ("root/.ssh/authorized_keys", "-rw-------", ("0", "0")),
        ("home/alice/.profile", "-rw-r--r--", ("1000", "1000")),
        ("srv/www/static/style.css", "-rw-r--r--", ("33", "33")),
    ] {
        let line = listing
            .lines()
            .find(|l| l.split_whitespace().last() == Some(path))
            .unwrap_or_else(|| panic!("{path} not in the archive:\n{listing}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((f[0], f[2], f[3]), (perm, owner.0, owner.1), "{line}");
    }

    // debugfs, e2fsprogs' own reader, on the populated image
    for (path, mode, uid, gid) in EXPECTED {
        let stat = run_ok(
            Command::new("debugfs")
                .arg("-R")
                .arg(format!("stat /{path}"))
                .arg(&img),
        );
        let after = |key: &str| stat_field(&stat, key);
        assert_eq!(after("Type:"), "directory", "{path}: {stat}");
        assert_eq!(after("Mode:"), format!("{mode:04o}"), "{path}: {stat}");
        assert_eq!(after("User:"), uid.to_string(), "{path}: {stat}");
        assert_eq!(after("Group:"), gid.to_string(), "{path}: {stat}");
    }
    run_ok(Command::new("e2fsck").arg("-fn").arg(&img));
}

#[test]
#[ignore = "root tier: sets owners (chown)"]
fn made_directories_get_dirmode_and_dirowner_in_a_populated_directory() {
    let t = tempdir();
    let w = t.path();
    let target = w.join("export/fido");
    run(w, Some(&target));
    for (path, mode, uid, gid) in EXPECTED {
        let m = fs::symlink_metadata(target.join(path)).unwrap();
        assert!(m.is_dir(), "{path}");
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (mode, uid, gid),
            "{path}: {:o} {}:{}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid()
        );
    }
    assert_eq!(
        fs::read(target.join("home/alice/.profile")).unwrap(),
        b"export EDITOR=vi\n"
    );
}
