//! Writing local outputs atomically: a temporary file beside the target,
//! synced, then renamed over it, so a reader sees the old file or the new
//! one and never a half-written one.

use super::{Failure, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A temporary name in the same directory as `target` (rename is atomic
/// only within one file system).
pub fn temp_beside(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_string());
    target.with_file_name(format!(".{name}.vmc-tmp-{}", std::process::id()))
}

/// Writes `bytes` to `out` (`-` = standard output) atomically.
pub fn write_text(out: &str, bytes: &[u8], _force: bool) -> Result<()> {
    if out == "-" {
        let mut so = std::io::stdout().lock();
        return so
            .write_all(bytes)
            .and_then(|_| so.flush())
            .map_err(|e| Failure::run(format!("<stdout>: {e}")));
    }
    let target = Path::new(out);
    let tmp = temp_beside(target);
    let res = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, target)
    })();
    res.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Failure::run(format!("{out}: cannot write: {e}"))
    })
}
