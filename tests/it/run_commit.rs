//! The commit: a run that fails changes no output it could have checked
//! first, a run killed between two renames is completed by the next one
//! (without `--force`), and a damaged run record means "rebuild".

use crate::common;
use crate::cpio_common;

use common::{bin, mke2fs, ok, pack_base, tempdir};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

fn mkfs(img: &Path, size: &str) {
    mke2fs(img, "vol", size);
}

/// An archive of `files` incompressible files of 256 KiB each.
fn noise_archive(w: &Path, files: usize) -> PathBuf {
    let tree = w.join("noise");
    fs::create_dir_all(tree.join("data")).unwrap();
    for i in 0..files {
        let v = cpio_common::noise(256 * 1024, i as u64 + 7);
        fs::write(tree.join("data").join(format!("n{i}")), v).unwrap();
    }
    let a = w.join("noise.cpio.gz");
    ok(&bin().arg("pack").arg(&tree).arg(&a).output().unwrap());
    a
}

fn run(container: &Path, dir: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .arg("--container")
        .arg(container)
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_second_volume_out_of_blocks_leaves_the_first_unchanged() {
    let t = tempdir();
    let w = t.path();
    let (big, small) = (w.join("big.img"), w.join("small.img"));
    mkfs(&big, "64M");
    mkfs(&small, "8M");
    // 12 MB do not fit in 8 MB
    let a = noise_archive(w, 48);
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!(
            "[populate image {b} /mnt {a}][end]\n[populate image {s} /mnt {a}][end]\n",
            b = big.display(),
            s = small.display(),
            a = a.display()
        ),
    )
    .unwrap();
    let before = (fs::read(&big).unwrap(), fs::read(&small).unwrap());
    let out = run(&c, &w.join("d"), &[]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("small.img") && e.contains("out of blocks"),
        "{e}"
    );
    assert!(
        fs::read(&big).unwrap() == before.0,
        "the first volume changed"
    );
    assert!(
        fs::read(&small).unwrap() == before.1,
        "the second volume changed"
    );
}

#[test]
fn an_unwritable_stripped_path_leaves_images_unchanged() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("dom.img");
    mkfs(&img, "32M");
    let a = pack_base(w);
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!(
            "name = 'dom'\n[populate image {} /mnt {}][end]\n",
            img.display(),
            a.display()
        ),
    )
    .unwrap();
    // a regular file where the directory should be
    fs::write(w.join("notadir"), "x").unwrap();
    let cfg = w.join("notadir/dom.cfg");
    let before = fs::read(&img).unwrap();
    let out = run(&c, &w.join("d"), &["--stripped", cfg.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains(&cfg.display().to_string()), "{e}");
    assert!(!e.contains("vmc-tmp"), "names a temporary file: {e}");
    assert!(fs::read(&img).unwrap() == before, "the image changed");
}

/// A first run killed just before each of its commit's renames (and just
/// after the last) is completed by the next run, without `--force`.
#[test]
fn a_first_run_killed_at_each_rename_is_completed_by_the_next() {
    let t = tempdir();
    let w = t.path();
    let a = pack_base(w);
    // three renames: the fork, the image, the stripped config
    for k in 0..=3 {
        let w = w.join(format!("k{k}"));
        fs::create_dir_all(&w).unwrap();
        let (img, fork, cfg) = (w.join("dom.img"), w.join("fork.cpio.gz"), w.join("dom.cfg"));
        let c = w.join("c.vmc");
        fs::write(
            &c,
            format!(
                "name = 'dom'\n[replace /etc/HOSTNAME archive {a} fork {f}\n\ndom\n] [end]\n\
                 [image {i} 16M][end]\n[populate image {i} /mnt {a}][end]\n",
                a = a.display(),
                f = fork.display(),
                i = img.display()
            ),
        )
        .unwrap();
        let dir = w.join("d");
        let first = bin()
            .env("VMC_FAULT", format!("rename:{k}"))
            .arg("-q")
            .arg("--container")
            .arg(&c)
            .arg("--dir")
            .arg(&dir)
            .arg("--stripped")
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(first.status.signal(), Some(9), "k={k}: not killed");
        let next = run(&c, &dir, &["--stripped", cfg.to_str().unwrap()]);
        ok(&next);
        for p in [&img, &fork, &cfg] {
            assert!(p.exists(), "k={k}: {} missing", p.display());
        }
        let cat = bin()
            .arg("cat")
            .arg(&img)
            .arg("/etc/passwd")
            .output()
            .unwrap();
        assert!(cat.status.success(), "k={k}");
        let again = run(&c, &dir, &["--stripped", cfg.to_str().unwrap()]);
        assert!(ok(&again).contains("up to date"), "k={k}");
        let strays: Vec<_> = fs::read_dir(&w)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("vmc-tmp"))
            .collect();
        assert!(strays.is_empty(), "k={k}: {strays:?}");
    }
}

#[test]
fn a_truncated_run_record_means_rebuild() {
    let t = tempdir();
    let w = t.path();
    let a = pack_base(w);
    let fork = w.join("fork.cpio.gz");
    let cfg = w.join("dom.cfg");
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!(
            "name = 'dom'\n[replace /etc/HOSTNAME archive {} fork {}\n\ndom\n] [end]\n",
            a.display(),
            fork.display()
        ),
    )
    .unwrap();
    let dir = w.join("d");
    let args = ["--stripped", cfg.to_str().unwrap()];
    ok(&run(&c, &dir, &args));
    assert!(ok(&run(&c, &dir, &args)).contains("up to date"));
    // cut the record after its first line, and lose an output
    let runs: Vec<PathBuf> = fs::read_dir(dir.join("state/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let text = fs::read_to_string(&runs[0]).unwrap();
    let first = text.lines().next().unwrap();
    fs::write(&runs[0], format!("{first}\n")).unwrap();
    fs::remove_file(&fork).unwrap();
    let e = ok(&run(&c, &dir, &args));
    assert!(!e.contains("up to date"), "{e}");
    assert!(fork.exists(), "the lost output was not rebuilt");
    assert!(ok(&run(&c, &dir, &args)).contains("up to date"));
}

/// What cannot be checked before a volume changes (here a directory in
/// the way of a file, found while expanding) is reported as committed /
/// not committed, and the run record says the same: the next run is not
/// up to date.
#[test]
fn a_failure_after_a_volume_commit_says_what_was_committed() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("dom.img");
    mkfs(&img, "16M");
    let a = pack_base(w);
    let out = w.join("out");
    fs::create_dir_all(out.join("etc/passwd/x")).unwrap();
    fs::write(out.join("etc/passwd/x/y"), "").unwrap();
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!(
            "[populate image {i} /mnt {a}][end]\n[populate dir {o} /mnt {a}][end]\n",
            i = img.display(),
            o = out.display(),
            a = a.display()
        ),
    )
    .unwrap();
    let dir = w.join("d");
    let r = run(&c, &dir, &[]);
    let e = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{e}");
    assert!(
        e.contains(&format!(
            "committed: {}; not committed: {}",
            img.display(),
            out.display()
        )),
        "{e}"
    );
    let runs: Vec<PathBuf> = fs::read_dir(dir.join("state/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let record = fs::read_to_string(&runs[0]).unwrap();
    assert!(record.starts_with("inputs incomplete\n"), "{record}");
    assert!(record.contains(&img.display().to_string()), "{record}");
    fs::remove_dir_all(out.join("etc/passwd")).unwrap();
    let e = ok(&run(&c, &dir, &[]));
    assert!(!e.contains("up to date"), "{e}");
}
