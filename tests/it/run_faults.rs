//! Fault injection: a run killed at any moment, a full disk, an upload
//! that fails halfway. Every existing output stays byte-identical and the
//! next clean run succeeds.

use crate::common;
use crate::net;

use common::{bin, ok, root, tempdir, Tmpfs};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn read_all(paths: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    paths.iter().map(|p| fs::read(p).ok()).collect()
}

/// A tree of a few MB of incompressible files, so that a run lasts long
/// enough to be killed in each of its stages.
fn big_tree(dir: &Path) {
    let etc = dir.join("etc");
    fs::create_dir_all(&etc).unwrap();
    let cp = Command::new("cp")
        .arg("-a")
        .arg(root().join("examples/trees/base/etc/."))
        .arg(&etc)
        .status()
        .unwrap();
    assert!(cp.success());
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..24 {
        let v: Vec<u8> = (0..512 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fs::write(data.join(format!("blob{i:02}")), v).unwrap();
    }
}

#[test]
fn a_run_killed_at_any_moment_leaves_every_output_as_it_was() {
    let t = tempdir();
    let w = t.path();
    let tree = w.join("tree");
    big_tree(&tree);
    let archive = w.join("base.cpio.gz");
    ok(&bin().arg("pack").arg(&tree).arg(&archive).output().unwrap());
    let img = w.join("dom.img");
    let fork = w.join("fork.cpio.gz");
    let patch = w.join("dom.patch");
    let cfg = w.join("dom.cfg");
    let container = w.join("dom.vmc");
    let write_container = |host: &str| {
        fs::write(
            &container,
            format!(
                "name = '{host}'\n[replace /etc/HOSTNAME archive {a} fork {fork} patch {patch}\n\n${{name}}\n] [end]\n\
                 [image {img} 64M][end]\n[populate image {img} /mnt {a}][end]\n",
                a = archive.display(),
                fork = fork.display(),
                patch = patch.display(),
                img = img.display()
            ),
        )
        .unwrap();
    };
    let cmd = || {
        let mut c = bin();
        c.arg("-q")
            .arg("--container")
            .arg(&container)
            .arg("--stripped")
            .arg(&cfg)
            .arg("--dir")
            .arg(w.join("dir"));
        c
    };
    write_container("first");
    let start = Instant::now();
    ok(&cmd().output().unwrap());
    let full = start.elapsed();
    let outputs = vec![img.clone(), fork.clone(), patch.clone(), cfg.clone()];
    let before = read_all(&outputs);
    // each later run would change every output; kill it at points spread
    // over a whole run: during the archive pass, the fork, the image
    // write and the commit
    write_container("second");
    let steps = 12u32;
    for i in 0..steps {
        let delay = full * i / steps;
        let mut child = cmd()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let after = read_all(&outputs);
        if status.success() {
            // it finished before the kill: every output is the new one
            assert!(
                after.iter().zip(&before).all(|(a, b)| a != b),
                "a finished run left an old output"
            );
            return;
        }
        if after != before {
            // the kill hit the commit itself, between two renames: each
            // output is whole (old or new), and the next run completes the
            // commit before anything else
            let gz = Command::new("gzip").arg("-t").arg(&fork).status().unwrap();
            assert!(gz.success(), "killed after {delay:?}: a torn fork");
            let fsck = Command::new("e2fsck")
                .arg("-fn")
                .arg(&img)
                .output()
                .unwrap();
            assert!(
                fsck.status.success(),
                "killed after {delay:?}: a torn image"
            );
            break;
        }
    }
    ok(&cmd().output().unwrap());
    let out = bin()
        .arg("cat")
        .arg(&img)
        .arg("/etc/HOSTNAME")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"second\n");
    assert!(Command::new("e2fsck")
        .arg("-fn")
        .arg(&img)
        .output()
        .unwrap()
        .status
        .success());
    let strays: Vec<_> = fs::read_dir(w)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("vmc-tmp"))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
    let _ = Duration::ZERO;
}

#[test]
#[ignore = "root tier: mounts a small tmpfs"]
fn a_full_disk_fails_the_run_and_changes_nothing() {
    let t = tempdir();
    let w = t.path();
    let out_dir = w.join("small");
    fs::create_dir_all(&out_dir).unwrap();
    let _guard = Tmpfs::mount(&out_dir, "3m");
    let tree = w.join("tree");
    big_tree(&tree);
    let archive = w.join("base.cpio.gz");
    ok(&bin().arg("pack").arg(&tree).arg(&archive).output().unwrap());
    let cfg = out_dir.join("dom.cfg");
    fs::write(&cfg, "name = 'old'\n").unwrap();
    let img = out_dir.join("dom.img");
    let container = w.join("dom.vmc");
    fs::write(
        &container,
        format!(
            "name = 'dom'\n[image {img} 64M][end]\n[populate image {img} /mnt {a}][end]\n",
            img = img.display(),
            a = archive.display()
        ),
    )
    .unwrap();
    let out = bin()
        .arg("--container")
        .arg(&container)
        .arg("--stripped")
        .arg(&cfg)
        .arg("--force")
        .arg("--dir")
        .arg(w.join("dir"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(fs::read_to_string(&cfg).unwrap(), "name = 'old'\n");
    assert!(!img.exists());
    let left: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
#[ignore = "root tier: starts vsftpd, which runs only as root"]
fn an_upload_failing_halfway_publishes_nothing() {
    let t = tempdir();
    let w = t.path();
    let ftp = net::Vsftpd::start();
    // the second upload's directory cannot be created: a file is in the way
    fs::write(ftp.root.join("pub/blocked"), "not a directory").unwrap();
    let container = w.join("c.vmc");
    fs::write(
        &container,
        format!(
            "[create {tree} {a}][end]\n[create {tree} {b}][end]\n",
            tree = root().join("examples/trees/base").display(),
            a = ftp.url("/pub/ok/first.cpio.gz"),
            b = ftp.url("/pub/blocked/second.cpio.gz"),
        ),
    )
    .unwrap();
    let cfg = w.join("c.cfg");
    let out = bin()
        .arg("--container")
        .arg(&container)
        .arg("--stripped")
        .arg(&cfg)
        .arg("--dir")
        .arg(w.join("dir"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !ftp.root.join("pub/ok/first.cpio.gz").exists(),
        "the first upload was published"
    );
    assert!(
        !cfg.exists(),
        "the stripped config was written by a failed run"
    );
    let strays: Vec<_> = walk(&ftp.root.join("pub"));
    assert!(strays.iter().all(|p| !p.contains(".part")), "{strays:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.display().to_string());
            if p.is_dir() {
                out.extend(walk(&p));
            }
        }
    }
    out
}

#[test]
#[ignore = "root tier: mounts a small tmpfs"]
fn a_decompression_bomb_stops_before_the_disk_fills() {
    let t = tempdir();
    let w = t.path();
    // 64 MB of zeros gzip to a few dozen KB
    let tree = w.join("bomb");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("zeros"), vec![0u8; 64 << 20]).unwrap();
    let archive = w.join("bomb.cpio.gz");
    ok(&bin().arg("pack").arg(&tree).arg(&archive).output().unwrap());
    assert!(fs::metadata(&archive).unwrap().len() < 1 << 20);
    let target = w.join("small");
    fs::create_dir_all(&target).unwrap();
    let guard = Tmpfs::mount(&target, "8m");
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!(
            "[populate dir {} /mnt {}][end]\n",
            target.display(),
            archive.display()
        ),
    )
    .unwrap();
    let out = bin()
        .arg("--container")
        .arg(&c)
        .arg("--dir")
        .arg(w.join("dir"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("would fill the file system"), "{err}");
    // the reserve is left: the file system did not fill
    let avail = guard.available();
    assert!(avail > 0, "the file system filled up");
}
