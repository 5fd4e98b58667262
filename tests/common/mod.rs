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
