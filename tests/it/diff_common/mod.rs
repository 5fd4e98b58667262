//! Shared helpers of the diff oracle tests: real trees on disk, GNU diff
//! and GNU patch.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use vm_container::diff::{Change, FileMap, FileSet, FileVersion};
use vm_container::tree::TreePath;

/// Fails loudly when a required tool is absent: these tests never skip.
pub fn require(tool: &str, package: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool}` is needed by this test: install it with `apt-get install -y {package}`"
    );
}

pub fn tp(s: &str) -> TreePath {
    TreePath::from_member(s.as_bytes()).unwrap()
}

/// Every regular file under `dir`, with its modification time.
pub fn read_tree(dir: &Path) -> FileMap {
    let mut out = FileMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut FileMap) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let md = fs::symlink_metadata(e.path()).unwrap();
        if md.is_dir() {
            walk(root, &e.path(), out);
        } else if md.is_file() {
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            out.insert(
                TreePath::from_member(rel.as_os_str().as_encoded_bytes()).unwrap(),
                FileVersion {
                    content: fs::read(e.path()).unwrap(),
                    mtime: md.mtime(),
                    mtime_nsec: md.mtime_nsec() as u32,
                },
            );
        }
    }
}

pub fn write_tree(dir: &Path, files: &FileMap) {
    fs::create_dir_all(dir).unwrap();
    for (p, f) in files {
        let full = dir.join(p.to_string());
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, &f.content).unwrap();
    }
}

/// Contents only: what "the same tree" means for text patches.
pub fn contents(files: &FileMap) -> BTreeMap<TreePath, Vec<u8>> {
    files
        .iter()
        .map(|(p, f)| (p.clone(), f.content.clone()))
        .collect()
}

/// A [`FileSet`] in memory that commits [`Change`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mem(pub BTreeMap<TreePath, Vec<u8>>);

impl FileSet for Mem {
    fn read(&self, path: &TreePath) -> Option<Vec<u8>> {
        self.0.get(path).cloned()
    }
}

impl Mem {
    pub fn commit(&mut self, changes: Vec<Change>) {
        for c in changes {
            match c {
                Change::Write { path, content, .. } | Change::Create { path, content, .. } => {
                    self.0.insert(path, content);
                }
                Change::Delete { path } => {
                    assert!(self.0.remove(&path).is_some(), "deleted absent {path}");
                }
            }
        }
    }
}

/// `diff -ruN a b` run in `dir`, in the C locale and UTC.
pub fn gnu_diff(dir: &Path, a: &str, b: &str) -> Vec<u8> {
    let out = Command::new("diff")
        .args(["-ruN", a, b])
        .current_dir(dir)
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .output()
        .expect("run diff (install diffutils)");
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "diff failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `patch -p1 -F0` in `dir` with `patch` on standard input. `-f` answers
/// no question (never assumes a reversed patch); no backup files.
pub fn gnu_patch(dir: &Path, patch: &[u8], dry_run: bool) -> Output {
    use std::io::Write;
    let mut cmd = Command::new("patch");
    cmd.args(["-p1", "-F0", "-f", "--no-backup-if-mismatch"]);
    if dry_run {
        cmd.arg("--dry-run");
    }
    let mut child = cmd
        .current_dir(dir)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run patch (install patch)");
    child.stdin.take().unwrap().write_all(patch).unwrap();
    child.wait_with_output().unwrap()
}

/// A small deterministic generator, so failures reproduce.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
