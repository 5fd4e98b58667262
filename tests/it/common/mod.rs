//! Helpers shared by the integration tests.
//!
//! # Test tiers
//!
//! Plain `cargo test` must pass as an ordinary user on a machine with no
//! loop devices and no network services (the HTTP servers the tests start
//! themselves on 127.0.0.1 are fine). A test that needs more — root, a loop
//! device, a mount of any kind (an image, a tmpfs), `swapon`, or vsftpd
//! (which only starts as root) — belongs to the *root tier* and says so
//! with a reason that starts with `root tier:`:
//!
//! ```text
//! #[test]
//! #[ignore = "root tier: mounts the image on a loop device"]
//! fn the_kernel_reads_what_we_wrote() { ... }
//! ```
//!
//! `cargo test` then lists it as ignored and counts it in its summary
//! (`N ignored`); `bash .ci/run`, as root, runs every tier with
//! `cargo test -- --include-ignored`. A root-tier test still fails, never
//! skips, when what it needs is missing, with a message that says so
//! (`mount -o loop failed (run as root with loop devices)`).
#![allow(dead_code)]

pub mod trees;

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
/// else built once from `tools/xlcfg-check` into `target/`.
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
        let build = root().join("tools/xlcfg-check/build.sh");
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

/// Runs `cmd` under GNU time (`/usr/bin/time`, package `time`) inside an
/// address-space limit of `limit_mib`, so a runaway allocation fails fast
/// instead of taking the machine: its output, peak resident set in MiB,
/// and wall-clock time.
pub fn measured(cmd: &Command, limit_mib: u64) -> (std::process::Output, u64, std::time::Duration) {
    let dir = tempdir();
    let rss = dir.path().join("rss");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss)
        .arg("prlimit")
        .arg(format!("--as={}", limit_mib << 20))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let started = std::time::Instant::now();
    let out = timed
        .output()
        .expect("GNU time (/usr/bin/time, package `time`) and prlimit (util-linux)");
    let took = started.elapsed();
    let kb: u64 = std::fs::read_to_string(&rss)
        .expect("GNU time wrote its report")
        .trim()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("peak resident set in kB");
    (out, kb / 1024, took)
}

/// A tmpfs mounted (as root) on an existing directory; unmounted when
/// dropped. Small ones make a full disk without filling the real one.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        let m = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(m.success(), "mounting a tmpfs needs root");
        Tmpfs(dir.to_path_buf())
    }

    /// Bytes free on it now, as df reports them.
    pub fn available(&self) -> u64 {
        let st = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .expect("run df");
        String::from_utf8_lossy(&st.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df --output=avail prints a number")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
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

/// Bytes and mtime (seconds, nanoseconds) of every file.
pub fn outputs_snapshot(paths: &[PathBuf]) -> Vec<(Vec<u8>, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    paths
        .iter()
        .map(|p| {
            let md = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (std::fs::read(p).unwrap(), md.mtime(), md.mtime_nsec())
        })
        .collect()
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
