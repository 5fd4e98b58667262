//! Who else holds a volume: a mounted file system, a loop device, a
//! device-mapper target, another process with the block device open
//! exclusively, or another run. An image written behind the back of any of
//! them is wrecked (the kernel caches its metadata and writes it back), so
//! every existing image or device is asked here first, and locked for as
//! long as a run works on it.

use rustix::fs::{flock, FlockOperation};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A block device number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DevNum(u32, u32);

impl DevNum {
    fn of(raw: u64) -> DevNum {
        DevNum(rustix::fs::major(raw), rustix::fs::minor(raw))
    }

    fn parse(s: &str) -> Option<DevNum> {
        let (a, b) = s.trim().split_once(':')?;
        Some(DevNum(a.parse().ok()?, b.parse().ok()?))
    }

    fn sys(self) -> PathBuf {
        PathBuf::from(format!("/sys/dev/block/{}:{}", self.0, self.1))
    }
}

/// Mount points of file systems on device `dev`, from `/proc/self/mountinfo`.
fn mounts_of(dev: DevNum) -> Vec<String> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let num = DevNum::parse(f.nth(2)?)?;
            let _root = f.next()?;
            let point = f.next()?;
            (num == dev).then(|| unescape(point))
        })
        .collect()
}

/// mountinfo escapes blanks and backslashes as octal (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |v, c| v.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The kernel name of a block device (`loop3`, `dm-0`).
fn kernel_name(dev: DevNum) -> String {
    fs::read_link(dev.sys())
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| format!("{}:{}", dev.0, dev.1))
}

/// Devices stacked on `dev` (device-mapper, md), named as `dmsetup` does.
fn stacked_on(dev: DevNum) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dev.sys().join("holders")) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| {
            let k = e.file_name().to_string_lossy().into_owned();
            match fs::read_to_string(e.path().join("dm/name")) {
                Ok(n) => format!("device-mapper {} ({k})", n.trim()),
                Err(_) => k,
            }
        })
        .collect()
}

/// Partitions of a whole disk.
fn partitions(dev: DevNum) -> Vec<DevNum> {
    let Ok(rd) = fs::read_dir(dev.sys()) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.path().join("partition").exists())
        .filter_map(|e| DevNum::parse(&fs::read_to_string(e.path().join("dev")).ok()?))
        .collect()
}

/// Why block device `dev` (`name` for messages) is busy, if it is.
fn device_busy(dev: DevNum, name: &str) -> Option<String> {
    for d in std::iter::once(dev).chain(partitions(dev)) {
        let shown = if d == dev {
            name.to_string()
        } else {
            format!("/dev/{}", kernel_name(d))
        };
        if let Some(m) = mounts_of(d).first() {
            return Some(format!("{shown} is mounted on {m}"));
        }
        let held = stacked_on(d);
        if !held.is_empty() {
            return Some(format!("{shown} is held by {}", held.join(", ")));
        }
    }
    None
}

/// Loop devices whose backing file is the file `(dev, ino)`.
fn loops_backed_by(dev: u64, ino: u64) -> Vec<(DevNum, String)> {
    let Ok(rd) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in rd.flatten() {
        let k = e.file_name().to_string_lossy().into_owned();
        if !k.starts_with("loop") {
            continue;
        }
        let Ok(backing) = fs::read_to_string(e.path().join("loop/backing_file")) else {
            continue;
        };
        // the name is what it was at attach time: compare the file itself
        let Ok(md) = fs::metadata(backing.trim_end_matches('\n')) else {
            continue;
        };
        if (md.dev(), md.ino()) != (dev, ino) {
            continue;
        }
        if let Some(num) = fs::read_to_string(e.path().join("dev"))
            .ok()
            .and_then(|s| DevNum::parse(&s))
        {
            found.push((num, format!("/dev/{k}")));
        }
    }
    found
}

/// Why the existing image or device at `path` must not be written, or
/// `None` when nothing else holds it.
pub fn holder(path: &Path) -> io::Result<Option<String>> {
    let md = fs::metadata(path)?;
    let ft = md.file_type();
    if ft.is_block_device() {
        let dev = DevNum::of(md.rdev());
        if let Some(why) = device_busy(dev, &path.display().to_string()) {
            return Ok(Some(why));
        }
        return match exclusive(path) {
            Ok(_) => Ok(None),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => Ok(Some(
                format!("{} is open exclusively by another process", path.display()),
            )),
            Err(e) => Err(e),
        };
    }
    if !ft.is_file() {
        return Ok(None);
    }
    let mut why = Vec::new();
    for (num, name) in loops_backed_by(md.dev(), md.ino()) {
        match device_busy(num, &name) {
            Some(busy) => why.push(format!(
                "attached to {name}, which {}",
                busy.split_once(" is ")
                    .map(|(_, r)| format!("is {r}"))
                    .unwrap_or(busy)
            )),
            None => why.push(format!("attached to {name}")),
        }
    }
    Ok((!why.is_empty()).then(|| format!("{} is {}", path.display(), why.join("; "))))
}

/// Opens a block device read-write and exclusively: the kernel refuses
/// while it is mounted or another process holds it the same way.
fn exclusive(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::EXCL.bits() as i32)
        .open(path)
}

/// An existing image or device held for the whole run: an exclusive
/// `flock` on an image file (another run waits for it), an exclusive open
/// on a block device (the kernel then refuses mounts and other exclusive
/// openers). Released when dropped.
pub struct VolumeLock {
    file: File,
}

impl VolumeLock {
    /// Takes `path`. `waiting` is called once when another process holds
    /// an image file's lock and the call is about to wait for it.
    pub fn take(path: &Path, waiting: impl FnOnce()) -> Result<VolumeLock, String> {
        let fail = |e: io::Error| format!("{}: {e}", path.display());
        if let Some(why) = holder(path).map_err(fail)? {
            return Err(format!(
                "{why}; refusing to write it (--force does not change this)"
            ));
        }
        let md = fs::metadata(path).map_err(fail)?;
        if md.file_type().is_block_device() {
            let file = exclusive(path).map_err(|e| {
                if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) {
                    format!(
                        "{} is open exclusively by another process; refusing to write it (--force does not change this)",
                        path.display()
                    )
                } else {
                    fail(e)
                }
            })?;
            return Ok(VolumeLock { file });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(fail)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                waiting();
                loop {
                    match flock(&file, FlockOperation::LockExclusive) {
                        Ok(()) => break,
                        Err(rustix::io::Errno::INTR) => continue,
                        Err(e) => return Err(fail(e.into())),
                    }
                }
            }
            Err(e) => return Err(fail(e.into())),
        }
        Ok(VolumeLock { file })
    }

    /// The open volume, to read and write it through.
    pub fn file(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

/// What formatting the block device `path` would destroy, in words: the
/// file system on it (type, label, space used) or whether it holds data.
pub fn contents(path: &Path) -> String {
    let mut head = vec![0u8; 1 << 20];
    let n = File::open(path)
        .and_then(|f| read_full(&f, &mut head, 0))
        .unwrap_or(0);
    let head = &head[..n];
    let sb = head.get(1024..2048).unwrap_or_default();
    let le32 = |o: usize| {
        sb.get(o..o + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if sb.get(0x38..0x3A) == Some(&[0x53, 0xEF][..]) {
        let (compat, incompat) = (le32(0x5C), le32(0x60));
        let kind = if incompat & 0x2C0 != 0 {
            "ext4"
        } else if compat & 0x4 != 0 {
            "ext3"
        } else {
            "ext2"
        };
        let bs = 1024u64 << le32(0x18).min(6);
        let used = u64::from(le32(0x4).saturating_sub(le32(0xC))) * bs;
        let label: Vec<u8> = sb[0x78..0x88]
            .iter()
            .copied()
            .take_while(|&c| c != 0)
            .collect();
        let label = if label.is_empty() {
            "no label".to_string()
        } else {
            format!("labelled {}", String::from_utf8_lossy(&label))
        };
        return format!(
            "it holds an {kind} file system ({label}, {} MiB used)",
            used >> 20
        );
    }
    if crate::bytes::all_zero(head) {
        "its first MiB is zeros, but what lies beyond is not known".to_string()
    } else {
        "it holds data vm-container does not recognise (not an ext2/3/4 file system)".to_string()
    }
}

/// Reads into `buf` from `offset` until it is full or the file ends;
/// returns how much was read.
pub fn read_full(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The size in bytes of a block device (or file) open as `f`.
pub fn size_of(f: &File) -> io::Result<u64> {
    use std::io::Seek;
    let mut f = f;
    f.seek(io::SeekFrom::End(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/mnt/a\040b\134c"), r"/mnt/a b\c");
        assert_eq!(unescape(r"/x\04"), r"/x\04");
    }

    #[test]
    fn a_plain_file_is_held_by_nobody_and_locks_exclude_each_other() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("img");
        fs::write(&p, b"x").unwrap();
        assert_eq!(holder(&p).unwrap(), None);
        let a = VolumeLock::take(&p, || {}).unwrap();
        let f = File::open(&p).unwrap();
        assert!(flock(&f, FlockOperation::NonBlockingLockExclusive).is_err());
        drop(a);
        assert!(flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok());
    }
}
