//! Reading a host directory as a tree.

use super::Error;
use crate::tree::{Entry, Kind, Meta, Sink, Source, TreePath};
use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A [`Source`] over a host directory.
///
/// Entries come in a deterministic order: the root first (as the empty
/// path), then each directory's children sorted by name bytes, a directory
/// before its contents. Metadata is taken with `lstat`; symlinks are
/// emitted, never followed (only the root itself may be a symlink to a
/// directory). Regular files sharing `(st_dev, st_ino)` are emitted once as
/// [`Kind::File`] and then as [`Kind::HardLink`] to that first name.
pub struct Walker {
    root: PathBuf,
    clamp_mtime: Option<i64>,
    one_file_system: bool,
}

impl Walker {
    pub fn new(root: impl Into<PathBuf>) -> Walker {
        Walker {
            root: root.into(),
            clamp_mtime: None,
            one_file_system: false,
        }
    }

    /// Stays on the root's file system, as `tar --one-file-system` and
    /// `rsync -x` do: a directory on which another file system is mounted
    /// (a chroot's `/proc`, `/sys` or `/dev/pts`) is emitted, empty.
    pub fn one_file_system(mut self) -> Walker {
        self.one_file_system = true;
        self
    }

    /// Mtimes later than `epoch` (as `SOURCE_DATE_EPOCH`) are reported as
    /// `epoch`, so that a tree built now packs reproducibly.
    pub fn clamp_mtime(mut self, epoch: Option<i64>) -> Walker {
        self.clamp_mtime = epoch;
        self
    }

    fn meta(&self, md: &Metadata) -> Meta {
        let mtime = md.mtime();
        Meta {
            perm: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: match self.clamp_mtime {
                Some(c) if mtime > c => c,
                _ => mtime,
            },
        }
    }
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> io::Error {
    let path = path.to_path_buf();
    move |source| Error::Io { path, op, source }.into()
}

/// Names in a directory, sorted by bytes.
fn listing(dir: &Path) -> io::Result<std::vec::IntoIter<Vec<u8>>> {
    let mut names = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err(dir, "read directory"))? {
        let e = e.map_err(io_err(dir, "read directory"))?;
        names.push(e.file_name().into_vec());
    }
    names.sort();
    Ok(names.into_iter())
}

/// A file's content, exactly as long as `lstat` said: a file that shrank
/// meanwhile is an error, growth is cut off.
struct Content {
    file: io::Take<File>,
    path: PathBuf,
    expected: u64,
    done: u64,
}

impl Read for Content {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.done == self.expected {
            return Ok(0);
        }
        let n = self.file.read(buf).map_err(io_err(&self.path, "read"))?;
        if n == 0 {
            return Err(Error::FileChanged {
                path: self.path.clone(),
                expected: self.expected,
                got: self.done,
            }
            .into());
        }
        self.done += n as u64;
        Ok(n)
    }
}

impl crate::tree::SparseRead for Content {
    /// Asks the file system where the next data is (`SEEK_DATA`); one that
    /// cannot tell reports data everywhere, and nothing is skipped.
    fn skip_hole(&mut self) -> io::Result<u64> {
        if self.done >= self.expected {
            return Ok(0);
        }
        let f = self.file.get_ref();
        let next = match rustix::fs::seek(f, rustix::fs::SeekFrom::Data(self.done)) {
            Ok(at) => at.min(self.expected),
            // no data after this point: the rest is hole
            Err(rustix::io::Errno::NXIO) => self.expected,
            Err(_) => self.done,
        };
        let n = next.saturating_sub(self.done);
        rustix::fs::seek(f, rustix::fs::SeekFrom::Start(self.done + n))
            .map_err(|e| io_err(&self.path, "seek")(e.into()))?;
        self.done += n;
        self.file.set_limit(self.expected - self.done);
        Ok(n)
    }
}

impl Source for Walker {
    fn emit(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let md = fs::metadata(&self.root).map_err(io_err(&self.root, "stat"))?;
        let md_root = md.clone();
        if !md.is_dir() {
            return Err(Error::NotADirectory {
                path: self.root.clone(),
            }
            .into());
        }
        sink.put(
            &Entry {
                path: TreePath::root(),
                kind: Kind::Dir,
                meta: self.meta(&md),
                xattrs: Default::default(),
            },
            &mut io::empty(),
        )?;
        // (dev, ino) of multiply-linked files -> first name emitted
        let mut inodes: HashMap<(u64, u64), TreePath> = HashMap::new();
        let mut stack = vec![(self.root.clone(), TreePath::root(), listing(&self.root)?)];
        while let Some((dir, tdir, names)) = stack.last_mut() {
            let Some(name) = names.next() else {
                stack.pop();
                continue;
            };
            let host = dir.join(std::ffi::OsStr::from_bytes(&name));
            let path = tdir.join(&name);
            let md = fs::symlink_metadata(&host).map_err(io_err(&host, "lstat"))?;
            let meta = self.meta(&md);
            let ft = md.file_type();
            let dev = || {
                let rdev = md.rdev();
                (rustix::fs::major(rdev), rustix::fs::minor(rdev))
            };
            let kind = if ft.is_dir() {
                Kind::Dir
            } else if ft.is_symlink() {
                let target = fs::read_link(&host).map_err(io_err(&host, "readlink"))?;
                Kind::Symlink {
                    target: target.into_os_string().into_vec(),
                }
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    let key = (md.dev(), md.ino());
                    if let Some(target) = inodes.get(&key) {
                        let entry = Entry {
                            path,
                            kind: Kind::HardLink {
                                target: target.clone(),
                            },
                            meta,
                            xattrs: Default::default(),
                        };
                        sink.put(&entry, &mut io::empty())?;
                        continue;
                    }
                    inodes.insert(key, path.clone());
                }
                let file = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&host)
                    .map_err(io_err(&host, "open"))?;
                let size = md.len();
                let mut content = Content {
                    file: file.take(size),
                    path: host.clone(),
                    expected: size,
                    done: 0,
                };
                let entry = Entry {
                    path,
                    kind: Kind::File { size },
                    meta,
                    xattrs: Default::default(),
                };
                // a host file is not a stream: what a sink leaves unread
                // is simply not read
                sink.put_sparse(&entry, &mut content)?;
                continue;
            } else if ft.is_char_device() {
                let (major, minor) = dev();
                Kind::CharDev { major, minor }
            } else if ft.is_block_device() {
                let (major, minor) = dev();
                Kind::BlockDev { major, minor }
            } else if ft.is_fifo() {
                Kind::Fifo
            } else {
                Kind::Socket
            };
            let is_dir = kind == Kind::Dir && !(self.one_file_system && md.dev() != md_root.dev());
            sink.put(
                &Entry {
                    path,
                    kind,
                    meta,
                    xattrs: Default::default(),
                },
                &mut io::empty(),
            )?;
            if is_dir {
                let names = listing(&host)?;
                let tpath = tdir.join(&name);
                stack.push((host, tpath, names));
            }
        }
        Ok(())
    }
}
