//! Writing user-named outputs. A regular file (or a path that does not
//! exist yet) is replaced atomically: a temporary file beside the target,
//! synced, then renamed over it, so a reader sees the old file or the new
//! one and never a half-written one. What is not a regular file is never
//! replaced: a character device or a FIFO (and `-`, standard output) is
//! streamed to, a symlink is written through (the link stays; its target
//! gets the same treatment), and a directory, block device or socket is
//! refused.

use super::{Error, Result};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// A temporary name in the same directory as `target` (rename is atomic
/// only within one file system).
pub fn temp_beside(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap_or(OsStr::new("out"));
    target.with_file_name(format!("{}{}", temp_prefix(name), std::process::id()))
}

/// What every temporary name [`temp_beside`] gives a file called `name`
/// starts with; the process id that made it follows.
pub fn temp_prefix(name: &OsStr) -> String {
    format!(".{}.vmc-tmp-", name.to_string_lossy())
}

/// How an output path is written.
#[derive(Debug, PartialEq, Eq)]
pub enum Dest {
    /// A regular file or a missing path: replaced by rename (the path is
    /// the symlink's target when the user named a symlink).
    Atomic(PathBuf),
    /// A character device or FIFO: opened and written to.
    Stream(PathBuf),
}

/// Decides how `path` is written (see the module comment).
pub fn dest(path: &Path) -> io::Result<Dest> {
    // a chain of symlinks ends in the file that is written
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        let md = match fs::symlink_metadata(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Dest::Atomic(p)),
            r => r?,
        };
        let ft = md.file_type();
        if ft.is_symlink() {
            let t = fs::read_link(&p)?;
            p = match p.parent() {
                Some(dir) => dir.join(t),
                None => t,
            };
            continue;
        }
        if ft.is_file() {
            return Ok(Dest::Atomic(p));
        }
        if ft.is_char_device() || ft.is_fifo() {
            return Ok(Dest::Stream(p));
        }
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_block_device() {
            "a block device"
        } else {
            "a socket"
        };
        return Err(io::Error::other(format!(
            "is {what}; outputs are written to regular files, character devices, FIFOs or standard output only"
        )));
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Writes `bytes` to the device or FIFO at `path`.
pub fn stream(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.write_all(bytes)?;
    f.flush()
}

/// Writes `bytes` to `out` (`-` = standard output): atomically when it is
/// a regular file or missing, streamed when it is a device or FIFO. Text
/// outputs (a stripped config, a diff) are derived: `--force` has nothing
/// to protect there, and they are always replaced.
pub fn write_text(out: &str, bytes: &[u8]) -> Result<()> {
    if out == "-" {
        return to_stdout(|so| so.write_all(bytes));
    }
    let fail = |e: io::Error| Error::run(format!("{out}: cannot write: {e}"));
    let target = match dest(Path::new(out)).map_err(fail)? {
        Dest::Stream(p) => return stream(&p, bytes).map_err(fail),
        Dest::Atomic(p) => p,
    };
    let tmp = temp_beside(&target);
    let res = (|| -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    res.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        fail(e)
    })
}

/// Writes to standard output through `write`. A reader that closed the
/// pipe early (`vm-container ls IMAGE | head`) has what it wanted: that
/// ends the command quietly and successfully, as SIGPIPE would end a C
/// tool, instead of with a "Broken pipe" error.
pub fn to_stdout(write: impl FnOnce(&mut io::StdoutLock) -> io::Result<()>) -> Result<()> {
    let mut so = io::stdout().lock();
    match write(&mut so).and_then(|_| so.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Error::run(format!("<stdout>: {e}"))),
    }
}

/// Replaces `path` with `bytes` atomically and durably: a synced temporary
/// beside it, renamed over it, and the directory synced.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    let r = fs::write(&tmp, bytes)
        .and_then(|_| fs::File::open(&tmp)?.sync_all())
        .and_then(|_| fs::rename(&tmp, path))
        .and_then(|_| sync_dir_of(Some(path)));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Replaces `path` with `bytes` atomically (a reader sees the old file or
/// the new one) but not durably: for what a crash may lose.
pub fn write_unsynced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    let r = fs::write(&tmp, bytes).and_then(|_| fs::rename(&tmp, path));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Syncs the directory holding `path`, so a rename in it survives a crash.
pub fn sync_dir_of(path: Option<&Path>) -> std::io::Result<()> {
    match path.and_then(Path::parent) {
        Some(d) => fs::File::open(if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        })?
        .sync_all(),
        None => Ok(()),
    }
}
