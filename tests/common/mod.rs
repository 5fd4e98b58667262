//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `vm-container` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vm-container"))
}

/// The checker built around Xen's own libxlutil. Taken from `XLCFG_CHECK`,
/// else built once from `../shared/tools/xlcfg-check` into `target/`.
/// A test that needs it fails (never skips) when it cannot be had.
pub fn xlcfg_check() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("XLCFG_CHECK") {
            return PathBuf::from(p);
        }
        let out = root().join("target/xlcfg-check");
        if out.exists() {
            return out;
        }
        let build = root().join("../shared/tools/xlcfg-check/build.sh");
        assert!(
            build.exists(),
            "xlcfg-check is needed: set XLCFG_CHECK or put the shared tools at {}",
            build.display()
        );
        let st = Command::new("bash")
            .arg(&build)
            .arg(&out)
            .status()
            .expect("run xlcfg-check/build.sh");
        assert!(
            st.success(),
            "building xlcfg-check failed (it needs libxen-dev)"
        );
        out
    })
    .clone()
}

/// Runs xlcfg-check on a config file: Ok(lines for keys) or Err(stderr).
pub fn xl_read(config: &Path, keys: &[&str]) -> Result<Vec<String>, String> {
    let out = Command::new(xlcfg_check())
        .arg(config)
        .args(keys)
        .output()
        .expect("run xlcfg-check");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A fresh temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vmc-test-")
        .tempdir()
        .expect("tempdir")
}

/// Asserts that a finished command succeeded, showing its output when it
/// did not; returns what it printed on standard error.
pub fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A loop device attached to a file, detached when dropped.
pub struct Loop(pub String);

impl Loop {
    pub fn attach(file: &Path) -> Loop {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// Asserts that the ext image `img` is labelled `label` and holds
/// `examples/trees/base` (its `/etc/passwd`).
pub fn assert_base_image(img: &Path, label: &str) {
    let cat = bin()
        .arg("cat")
        .arg(img)
        .arg("/etc/passwd")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&cat.stdout).starts_with("root:x:0:0:"));
    let out = Command::new("e2label").arg(img).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), label);
}

/// `examples/trees/base` packed into `DIR/base.cpio.gz`.
pub fn pack_base(dir: &Path) -> PathBuf {
    let a = dir.join("base.cpio.gz");
    ok(&bin()
        .arg("pack")
        .arg(root().join("examples/trees/base"))
        .arg(&a)
        .output()
        .unwrap());
    a
}

/// An ext3 file system of `size` (`16M`) labelled `label` on `img`,
/// made by mke2fs.
pub fn mke2fs(img: &Path, label: &str, size: &str) {
    let mk = Command::new("mke2fs")
        .args(["-q", "-t", "ext3", "-L", label])
        .arg(img)
        .arg(size)
        .status()
        .unwrap();
    assert!(mk.success());
}
