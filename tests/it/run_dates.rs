//! What a run creates is dated by something that changes only when the
//! content does: an edit of a Xen statement alone rewrites the stripped
//! config and nothing else; an edit of an expression dates anew and
//! rebuilds what it makes; `SOURCE_DATE_EPOCH` wins; a fresh
//! `--dir` on the same files and mtimes gives the same bytes. Images are
//! checked with `e2fsck -fn` and their dates read back with `debugfs`.

use crate::common;

use common::trees::set_mtime;
use common::{bin, ok, outputs_snapshot, pack_base, tempdir};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ARCHIVE_DATE: i64 = 1_700_000_000;
const FIRST: i64 = 1_700_000_100;

fn e2fsck(img: &Path) {
    let out = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    assert!(
        out.status.success(),
        "e2fsck -fn {}: {}{}",
        img.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The mtime of `path` inside the ext image `img`, as debugfs reads it.
fn mtime_in(img: &Path, path: &str) -> i64 {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat {path}"))
        .arg(img)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .split("mtime: 0x")
        .nth(1)
        .and_then(|r| r.get(..8))
        .unwrap_or_else(|| panic!("debugfs stat {path}: {text}"));
    i64::from_str_radix(hex, 16).unwrap()
}

fn cat(img: &Path, path: &str) -> String {
    let out = bin().arg("cat").arg(img).arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Domain {
    _t: tempfile::TempDir,
    w: PathBuf,
    archive: PathBuf,
    container: PathBuf,
    images: [PathBuf; 2],
    fork: PathBuf,
    cfg: PathBuf,
}

impl Domain {
    fn new() -> Domain {
        let t = tempdir();
        let w = t.path().to_path_buf();
        let archive = pack_base(&w);
        set_mtime(&archive, ARCHIVE_DATE);
        let images = [w.join("fido-root.img"), w.join("fido-var.img")];
        let d = Domain {
            archive,
            container: w.join("fido.vmc"),
            fork: w.join("fido-etc.cpio.gz"),
            cfg: w.join("fido.cfg"),
            images,
            w,
            _t: t,
        };
        d.write(256, "${name}", FIRST);
        d
    }

    /// The container with `memory` and the `[replace]` text given, dated
    /// `mtime`.
    fn write(&self, memory: u32, hostname: &str, mtime: i64) {
        fs::write(
            &self.container,
            format!(
                "name = 'fido'\nmemory = {memory}\n\
                 disk = ['file:{a},xvda1,w', 'file:{b},xvda2,w']\n\
                 [replace /etc/HOSTNAME archive {src} fork {fork}\n\n{hostname}\n] [end]\n\
                 [image {a} 64M root][end]\n[populate image {a} /mnt {src}][end]\n\
                 [image {b} 64M var][end]\n[populate image {b} /mnt {src}][end]\n",
                a = self.images[0].display(),
                b = self.images[1].display(),
                src = self.archive.display(),
                fork = self.fork.display(),
            ),
        )
        .unwrap();
        set_mtime(&self.container, mtime);
    }

    fn outputs(&self) -> Vec<PathBuf> {
        vec![
            self.images[0].clone(),
            self.images[1].clone(),
            self.fork.clone(),
        ]
    }

    /// A run on `--dir DIR`; its standard error and wall time.
    fn run(&self, dir: &str, epoch: Option<i64>) -> (String, Duration) {
        let mut c = bin();
        c.arg("--container")
            .arg(&self.container)
            .arg("--stripped")
            .arg(&self.cfg)
            .arg("--dir")
            .arg(self.w.join(dir))
            .arg("--log")
            .arg(self.w.join("log"))
            .env_remove("SOURCE_DATE_EPOCH");
        if let Some(e) = epoch {
            c.env("SOURCE_DATE_EPOCH", e.to_string());
        }
        let start = Instant::now();
        let out = c.output().unwrap();
        (ok(&out), start.elapsed())
    }
}

#[test]
fn a_xen_statement_edit_rewrites_only_the_stripped_config() {
    let d = Domain::new();
    let (_, first) = d.run("dir", None);
    for img in &d.images {
        e2fsck(img);
        assert_eq!(cat(img, "/etc/HOSTNAME"), "fido\n");
        // the replaced file is dated by the container file, as first seen
        assert_eq!(mtime_in(img, "/etc/HOSTNAME"), FIRST);
    }
    let built = outputs_snapshot(&d.outputs());
    let (err, noop) = d.run("dir", None);
    assert!(err.contains("up to date"), "{err}");

    // memory changed, and the file's mtime with it
    d.write(512, "${name}", FIRST + 400);
    let (err, xen_edit) = d.run("dir", None);
    assert!(!err.contains("up to date"), "{err}");
    eprintln!("first run {first:?}, no-op rerun {noop:?}, rerun after a Xen edit {xen_edit:?}");
    assert!(
        outputs_snapshot(&d.outputs()) == built,
        "an image or the fork was rewritten"
    );
    assert!(err.contains("only Xen statements changed"), "{err}");
    let cfg = fs::read_to_string(&d.cfg).unwrap();
    assert!(cfg.contains("memory = 512"), "{cfg}");
    // generous: a rebuild of both images would take far longer
    assert!(
        xen_edit < noop * 10 + Duration::from_secs(2),
        "rerun after a Xen edit took {xen_edit:?} (no-op {noop:?})"
    );
    assert!(d.run("dir", None).0.contains("up to date"));

    // a Xen edit with an output gone: the expressions run again, with the
    // date of the first run, so the images are kept and the fork comes
    // back with the same bytes
    fs::remove_file(&d.fork).unwrap();
    d.write(384, "${name}", FIRST + 600);
    let (err, _) = d.run("dir", None);
    assert!(!err.contains("only Xen statements changed"), "{err}");
    let now = outputs_snapshot(&d.outputs());
    assert!(now[..2] == built[..2], "an image was rewritten");
    assert!(now[2].0 == built[2].0, "the fork came back different");
    let log = fs::read_to_string(d.w.join("log")).unwrap();
    for img in &d.images {
        let kept = format!("kept {} (unchanged)", img.display());
        assert!(log.contains(&kept), "{log}");
    }

    // the [replace] text changed: what it makes is rebuilt, dated anew
    let edited = FIRST + 900;
    d.write(512, "rex", edited);
    d.run("dir", None);
    let rebuilt = outputs_snapshot(&d.outputs());
    for (i, img) in d.images.iter().enumerate() {
        e2fsck(img);
        assert_eq!(cat(img, "/etc/HOSTNAME"), "rex\n");
        assert_eq!(mtime_in(img, "/etc/HOSTNAME"), edited);
        assert_ne!(rebuilt[i].0, built[i].0, "{} not rebuilt", img.display());
    }
    assert_ne!(rebuilt[2].0, built[2].0, "fork not rewritten");

    // a touched input rebuilds what is made of it; what the run creates
    // keeps the date of the expressions
    set_mtime(&d.archive, edited + 1000);
    let (err, _) = d.run("dir", None);
    assert!(!err.contains("up to date"), "{err}");
    for img in &d.images {
        e2fsck(img);
        assert_eq!(mtime_in(img, "/etc/HOSTNAME"), edited);
    }

    // SOURCE_DATE_EPOCH wins over both
    let epoch = 1_600_000_000;
    d.run("dir", Some(epoch));
    for img in &d.images {
        e2fsck(img);
        assert_eq!(mtime_in(img, "/etc/HOSTNAME"), epoch);
    }
}

#[test]
fn a_fresh_dir_on_the_same_files_gives_the_same_bytes() {
    let d = Domain::new();
    d.run("one", None);
    let first: Vec<Vec<u8>> = outputs_snapshot(&d.outputs())
        .into_iter()
        .map(|s| s.0)
        .collect();
    // a Xen edit and its revert on the first --dir keep the first date
    d.write(512, "${name}", FIRST + 50);
    d.run("one", None);
    d.write(256, "${name}", FIRST);
    d.run("one", None);
    let again: Vec<Vec<u8>> = outputs_snapshot(&d.outputs())
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert!(again == first, "the first --dir changed its outputs");
    // the same files and mtimes, a new --dir: the same bytes
    for p in d.outputs().iter().chain([&d.cfg]) {
        fs::remove_file(p).unwrap();
    }
    d.run("two", None);
    let fresh: Vec<Vec<u8>> = outputs_snapshot(&d.outputs())
        .into_iter()
        .map(|s| s.0)
        .collect();
    for (i, p) in d.outputs().iter().enumerate() {
        assert!(fresh[i] == first[i], "{} differs", p.display());
    }
    for img in &d.images {
        e2fsck(img);
    }
}
