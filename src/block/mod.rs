//! The block layer: a volume of bytes read and written at offsets,
//! whatever holds it. Every reader and writer of a file system image goes
//! through [`Block`] and never through the file beneath it.
//!
//! A [`File`] is a raw volume: byte `n` of the volume is byte `n` of the
//! file (an image file or a device). A file that starts with the qcow2
//! magic is a [`qcow2::Qcow2`] volume, read through its backing chain:
//! [`open`] tells them apart by content, never by name.

pub mod qcow2;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A volume: a fixed run of bytes at offsets.
// an empty volume holds no file system: nothing asks whether one is empty
#[allow(clippy::len_without_is_empty)]
pub trait Block {
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Writes all of `data` at `offset`.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Makes everything written so far durable.
    fn flush(&self) -> io::Result<()>;

    /// The volume's length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Whether writing past the end lengthens the volume: a regular raw
    /// file does (a file system tool may leave it short), a device does not.
    fn grows(&self) -> bool {
        false
    }

    /// Whether the volume is a device (or anything but a regular file or
    /// an image format): it cannot be made a fresh run of holes.
    fn is_device(&self) -> bool {
        false
    }

    /// Makes the volume exactly `len` bytes that hold nothing and read as
    /// zeros. Not for devices.
    fn reset(&self, len: u64) -> io::Result<()>;

    /// Asks for `len` bytes written at `offset` to start going to the
    /// disk, without waiting. Only a hint: what cannot is left to the
    /// final [`Block::flush`].
    fn start_writeback(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }

    /// The first run `(start, end)` of bytes at or after `offset` that
    /// may hold data; `None` when only holes follow. A hole reads as
    /// zeros, so a scan for nonzero bytes skips it unread. By default
    /// everything is data.
    fn data_run(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        Ok(Some((offset, u64::MAX)))
    }
}

/// Files staged under another name, each to be renamed to the name a
/// backing chain may record: (name, staged file).
static STAGED: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());

/// Until `staged` is renamed to `name`, a backing chain that names `name`
/// reads `staged` (an overlay over a base built in the same run).
pub fn stage(name: &Path, staged: &Path) {
    let mut s = STAGED.lock().unwrap_or_else(|e| e.into_inner());
    s.retain(|(n, _)| n != name);
    s.push((name.to_path_buf(), staged.to_path_buf()));
}

/// Where the backing file named `path` is read from now: its staged file
/// while there is one, else `path` itself.
fn resolve(path: &Path) -> PathBuf {
    let s = STAGED.lock().unwrap_or_else(|e| e.into_inner());
    s.iter()
        .rev()
        .find(|(n, st)| n == path && st.exists())
        .map_or_else(|| path.to_path_buf(), |(_, st)| st.clone())
}

/// Opens the volume at `path`, raw or qcow2 by its content; for writing
/// when `write` (a qcow2 image's backing files are always read-only).
pub fn open(path: &Path, write: bool) -> io::Result<Box<dyn Block>> {
    let file = File::options().read(true).write(write).open(path)?;
    open_file(file, path, write)
}

/// [`open`] on a file already open (the one a lock holds) that is named
/// `path` or will be renamed beside it: a qcow2 image's relative backing
/// names are found from `path`'s directory.
pub fn open_file(file: File, path: &Path, write: bool) -> io::Result<Box<dyn Block>> {
    if qcow2::is_qcow2(&file)? {
        Ok(Box::new(qcow2::Qcow2::open(file, path, write)?))
    } else {
        Ok(Box::new(file))
    }
}

/// The length of the volume at `path` (a qcow2 image's virtual size).
pub fn volume_len(path: &Path) -> io::Result<u64> {
    open(path, false)?.len()
}

impl<B: Block + ?Sized> Block for Box<B> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        (**self).write_at(offset, data)
    }
    fn flush(&self) -> io::Result<()> {
        (**self).flush()
    }
    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
    fn grows(&self) -> bool {
        (**self).grows()
    }
    fn is_device(&self) -> bool {
        (**self).is_device()
    }
    fn reset(&self, len: u64) -> io::Result<()> {
        (**self).reset(len)
    }
    fn start_writeback(&self, offset: u64, len: u64) {
        (**self).start_writeback(offset, len)
    }
    fn data_run(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        (**self).data_run(offset)
    }
}

impl Block for File {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_all_at(data, offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.sync_data()
    }

    /// The end of the file: a block device's length too, which its
    /// metadata reports as zero.
    fn len(&self) -> io::Result<u64> {
        use std::io::{Seek, SeekFrom};
        (&*self).seek(SeekFrom::End(0))
    }

    fn grows(&self) -> bool {
        self.metadata().is_ok_and(|m| m.file_type().is_file())
    }

    fn is_device(&self) -> bool {
        !self.grows()
    }

    /// The file becomes `len` bytes of holes.
    fn reset(&self, len: u64) -> io::Result<()> {
        self.set_len(0)?;
        self.set_len(len)
    }

    /// `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which waits for nothing.
    fn start_writeback(&self, offset: u64, len: u64) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
                return;
            };
            // SAFETY: a plain system call on a descriptor `self` keeps
            // open; it reads and writes no memory of ours
            unsafe {
                libc::sync_file_range(self.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (offset, len);
    }

    /// `SEEK_DATA` and `SEEK_HOLE`; a file that cannot tell (a device, a
    /// file system without them) is data throughout.
    fn data_run(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        use rustix::fs::{seek, SeekFrom};
        let start = match seek(self, SeekFrom::Data(offset)) {
            Ok(at) => at,
            // nothing but holes from here on
            Err(rustix::io::Errno::NXIO) => return Ok(None),
            Err(_) => return Ok(Some((offset, u64::MAX))),
        };
        let end = seek(self, SeekFrom::Hole(start)).unwrap_or(u64::MAX);
        Ok(Some((start, end.max(start + 1))))
    }
}
