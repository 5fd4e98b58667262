//! Writing a tree into a host directory, never outside it.
//!
//! Confinement: every path is resolved from a descriptor of the target,
//! one component at a time, with `openat(O_NOFOLLOW | O_DIRECTORY)`; the
//! final component is created or changed with `*at` calls relative to the
//! parent's descriptor using flags that do not follow it (`O_EXCL`,
//! `AT_SYMLINK_NOFOLLOW`, `linkat` without `AT_SYMLINK_FOLLOW`). A symlink
//! anywhere in the way is refused instead of followed. Resolving through
//! descriptors rather than checking with `lstat` and then using the path
//! string closes the window in which a checked component could be swapped
//! for a symlink before use. Two calls remain name-based on an entry we
//! just created (`fchmodat`, which Linux cannot tell not to follow, on
//! device nodes, fifos and sockets): a concurrent writer inside the target
//! could race them, an archive cannot.

use super::{Error, Warning};
use crate::tree::{Entry, Kind, Meta, Sink, TreePath};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A [`Sink`] that creates each entry under a target directory.
///
/// Existing files are replaced (unlinked first, so that a hard link or
/// symlink already there is not written through); existing directories are
/// kept and merged. Missing parents are created 0755 and, unless the tree
/// names them later, get [`Meta::implicit_dir`]. Directory metadata is
/// applied by [`Extractor::finish`], deepest first, because creating
/// children changes a directory's mtime and a read-only mode would prevent
/// it. Without root privileges, owners and device nodes are skipped and
/// reported as [`Warning`]s.
pub struct Extractor {
    target: PathBuf,
    root: OwnedFd,
    privileged: bool,
    euid: u32,
    egid: u32,
    // the parent directory resolved last: consecutive entries share it
    cache: Option<(TreePath, OwnedFd)>,
    dirs: BTreeMap<TreePath, Meta>,
    implicit: BTreeSet<TreePath>,
    warnings: Vec<Warning>,
    owners_skipped: u64,
    first_owner_skipped: Option<TreePath>,
    buf: Vec<u8>,
}

const DIR_FLAGS: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

fn ts(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn owner(uid: u32, gid: u32) -> (Option<rfs::Uid>, Option<rfs::Gid>) {
    // -1 means "leave unchanged" to chown, never a real owner
    let u = (uid != u32::MAX).then(|| rfs::Uid::from_raw(uid));
    let g = (gid != u32::MAX).then(|| rfs::Gid::from_raw(gid));
    (u, g)
}

impl Extractor {
    /// Opens (creating it if missing) the target directory.
    pub fn new(target: impl Into<PathBuf>) -> Result<Extractor, Error> {
        let target = target.into();
        std::fs::create_dir_all(&target).map_err(|source| Error::Io {
            path: target.clone(),
            op: "create directory",
            source,
        })?;
        let root = rfs::open(
            &target,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Io {
            path: target.clone(),
            op: "open directory",
            source: e.into(),
        })?;
        let euid = rustix::process::geteuid().as_raw();
        let egid = rustix::process::getegid().as_raw();
        Ok(Extractor {
            target,
            root,
            privileged: euid == 0,
            euid,
            egid,
            cache: None,
            dirs: BTreeMap::new(),
            implicit: BTreeSet::new(),
            warnings: Vec::new(),
            owners_skipped: 0,
            first_owner_skipped: None,
            buf: vec![0u8; 128 * 1024],
        })
    }

    fn io(&self, path: &TreePath, op: &'static str) -> impl FnOnce(Errno) -> Error {
        let path = if path.is_root() {
            self.target.clone()
        } else {
            self.target
                .join(std::ffi::OsStr::new(&*String::from_utf8_lossy(
                    path.as_bytes(),
                )))
        };
        move |e| Error::Io {
            path,
            op,
            source: e.into(),
        }
    }

    /// Opens directory `path`, creating missing components.
    fn resolve_dir(&mut self, path: &TreePath, entry: &TreePath) -> Result<OwnedFd, Error> {
        let mut fd = rfs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())
            .map_err(self.io(&TreePath::root(), "open directory"))?;
        let mut cur = TreePath::root();
        for comp in path.components() {
            cur = cur.join(comp);
            fd = match rfs::openat(&fd, comp, DIR_FLAGS, Mode::empty()) {
                Ok(next) => next,
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(&fd, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {
                            if !self.dirs.contains_key(&cur) {
                                self.implicit.insert(cur.clone());
                            }
                        }
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.io(&cur, "create directory")(e)),
                    }
                    rfs::openat(&fd, comp, DIR_FLAGS, Mode::empty())
                        .map_err(|e| self.component_error(&fd, comp, &cur, entry, e))?
                }
                Err(e) => return Err(self.component_error(&fd, comp, &cur, entry, e)),
            };
        }
        Ok(fd)
    }

    fn component_error(
        &self,
        parent: &OwnedFd,
        comp: &[u8],
        cur: &TreePath,
        entry: &TreePath,
        e: Errno,
    ) -> Error {
        match rfs::statat(parent, comp, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                Error::SymlinkInPath {
                    target: self.target.clone(),
                    path: entry.clone(),
                    component: cur.clone(),
                }
            }
            Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
                Error::NotADirectoryInPath {
                    target: self.target.clone(),
                    path: entry.clone(),
                    component: cur.clone(),
                }
            }
            _ => self.io(cur, "open directory")(e),
        }
    }

    fn parent_fd(&mut self, parent: &TreePath, entry: &TreePath) -> Result<OwnedFd, Error> {
        match self.cache.take() {
            Some((p, fd)) if p == *parent => Ok(fd),
            _ => self.resolve_dir(parent, entry),
        }
    }

    /// Removes what exists at `name` unless it is a directory and `keep_dir`;
    /// returns whether a directory remains.
    fn clear(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        path: &TreePath,
        kind: &'static str,
        keep_dir: bool,
    ) -> Result<bool, Error> {
        let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(self.io(path, "lstat")(e)),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            if keep_dir {
                return Ok(true);
            }
            // a cached descriptor could name the directory about to go
            self.cache = None;
            return match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
                Ok(()) => Ok(false),
                Err(Errno::NOTEMPTY | Errno::EXIST) => Err(Error::DirNotEmpty {
                    target: self.target.clone(),
                    path: path.clone(),
                    kind,
                }),
                Err(e) => Err(self.io(path, "remove directory")(e)),
            };
        }
        rfs::unlinkat(dir, name, AtFlags::empty()).map_err(self.io(path, "remove"))?;
        Ok(false)
    }

    fn chown_wanted(&mut self, path: &TreePath, meta: &Meta) -> bool {
        if self.privileged {
            return true;
        }
        if meta.uid != self.euid || meta.gid != self.egid {
            self.owners_skipped += 1;
            if self.first_owner_skipped.is_none() {
                self.first_owner_skipped = Some(path.clone());
            }
        }
        false
    }

    /// Owner, mode and mtime of a non-directory, non-file entry by name.
    fn set_meta_at(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        path: &TreePath,
        meta: &Meta,
        chmod: bool,
    ) -> Result<(), Error> {
        if self.chown_wanted(path, meta) {
            let (u, g) = owner(meta.uid, meta.gid);
            rfs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(self.io(path, "chown"))?;
        }
        if chmod {
            rfs::chmodat(
                dir,
                name,
                Mode::from_raw_mode(meta.perm & 0o7777),
                AtFlags::empty(),
            )
            .map_err(self.io(path, "chmod"))?;
        }
        rfs::utimensat(dir, name, &ts(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(self.io(path, "set mtime"))
    }

    fn file(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        entry: &Entry,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let path = &entry.path;
        let create = || {
            rfs::openat(
                dir,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        };
        // Usually nothing is in the way: try first, clear only on conflict.
        let fd = match create() {
            Err(Errno::EXIST) => {
                self.clear(dir, name, path, "file", false)?;
                create()
            }
            other => other,
        }
        .map_err(self.io(path, "create"))?;
        let mut file = File::from(fd);
        let mut buf = std::mem::take(&mut self.buf);
        let copied = (|| loop {
            // Read errors come from the source and keep their own type.
            let n = match data.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            file.write_all(buf.get(..n).unwrap_or_default())
                .map_err(|source| -> io::Error {
                    Error::Io {
                        path: self.target.join(OsStr::from_bytes(path.as_bytes())),
                        op: "write",
                        source,
                    }
                    .into()
                })?;
        })();
        self.buf = buf;
        copied?;
        if self.chown_wanted(path, &entry.meta) {
            let (u, g) = owner(entry.meta.uid, entry.meta.gid);
            rfs::fchown(&file, u, g).map_err(self.io(path, "chown"))?;
        }
        // after chown, which clears setuid and setgid
        rfs::fchmod(&file, Mode::from_raw_mode(entry.meta.perm & 0o7777))
            .map_err(self.io(path, "chmod"))?;
        rfs::futimens(&file, &ts(entry.meta.mtime)).map_err(self.io(path, "set mtime"))?;
        Ok(())
    }

    fn put_entry(&mut self, entry: &Entry, data: &mut dyn Read) -> io::Result<()> {
        let path = &entry.path;
        let Some(parent) = path.parent() else {
            if entry.kind != Kind::Dir {
                return Err(Error::RootNotDir {
                    target: self.target.clone(),
                    kind: entry.kind.name(),
                }
                .into());
            }
            self.dirs.insert(TreePath::root(), entry.meta);
            return Ok(());
        };
        if let Kind::CharDev { .. } | Kind::BlockDev { .. } = entry.kind {
            if !self.privileged {
                self.warnings.push(Warning::DeviceSkipped {
                    path: path.clone(),
                    kind: entry.kind.name(),
                });
                return Ok(());
            }
        }
        let dir = self.parent_fd(&parent, path)?;
        let name = path.file_name();
        let result = self.create(&dir, name, entry, data);
        self.cache = Some((parent, dir));
        result
    }

    fn create(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        entry: &Entry,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let path = &entry.path;
        let meta = &entry.meta;
        let node = |ft: FileType, dev: rfs::Dev| -> Result<(), Errno> {
            rfs::mknodat(dir, name, ft, Mode::from_raw_mode(0o600), dev)
        };
        match &entry.kind {
            Kind::File { .. } => return self.file(dir, name, entry, data),
            Kind::Dir => {
                if !self.clear(dir, name, path, "directory", true)? {
                    rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700))
                        .map_err(self.io(path, "create directory"))?;
                }
                self.implicit.remove(path);
                self.dirs.insert(path.clone(), *meta);
                return Ok(());
            }
            Kind::Symlink { target } => {
                self.clear(dir, name, path, "symlink", false)?;
                rfs::symlinkat(target.as_slice(), dir, name)
                    .map_err(self.io(path, "create symlink"))?;
                return Ok(self.set_meta_at(dir, name, path, meta, false)?);
            }
            Kind::HardLink { target } => {
                self.clear(dir, name, path, "hard link", false)?;
                let tparent = target.parent().unwrap_or_default();
                let tdir = self.resolve_dir(&tparent, path)?;
                return match rfs::linkat(&tdir, target.file_name(), dir, name, AtFlags::empty()) {
                    Ok(()) => Ok(()),
                    Err(Errno::NOENT) => Err(Error::LinkTargetMissing {
                        target: self.target.clone(),
                        path: path.clone(),
                        link_target: target.clone(),
                    }
                    .into()),
                    Err(e) => Err(self.io(path, "link")(e).into()),
                };
            }
            Kind::CharDev { major, minor } => {
                self.clear(dir, name, path, "device", false)?;
                node(FileType::CharacterDevice, rfs::makedev(*major, *minor))
                    .map_err(self.io(path, "mknod"))?;
            }
            Kind::BlockDev { major, minor } => {
                self.clear(dir, name, path, "device", false)?;
                node(FileType::BlockDevice, rfs::makedev(*major, *minor))
                    .map_err(self.io(path, "mknod"))?;
            }
            Kind::Fifo => {
                self.clear(dir, name, path, "fifo", false)?;
                node(FileType::Fifo, 0).map_err(self.io(path, "mkfifo"))?;
            }
            Kind::Socket => {
                self.clear(dir, name, path, "socket", false)?;
                node(FileType::Socket, 0).map_err(self.io(path, "mknod"))?;
            }
        }
        Ok(self.set_meta_at(dir, name, path, meta, true)?)
    }

    /// Applies directory metadata (deepest first) and returns what could
    /// not be done without privileges.
    pub fn finish(mut self) -> Result<Vec<Warning>, Error> {
        self.cache = None;
        let mut all: Vec<(TreePath, Meta)> = std::mem::take(&mut self.dirs).into_iter().collect();
        for p in std::mem::take(&mut self.implicit) {
            all.push((p, Meta::implicit_dir()));
        }
        all.sort_by(|a, b| b.0.cmp(&a.0));
        for (path, meta) in all {
            let (dir, name): (OwnedFd, &[u8]) = match path.parent() {
                Some(parent) => (self.resolve_dir(&parent, &path)?, path.file_name()),
                None => (
                    rfs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())
                        .map_err(self.io(&path, "open directory"))?,
                    b".",
                ),
            };
            // the entry must still be a directory reached without symlinks
            let st = rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(self.io(&path, "lstat"))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                continue;
            }
            self.set_meta_at(&dir, name, &path, &meta, true)?;
        }
        if let Some(first) = self.first_owner_skipped.take() {
            self.warnings.push(Warning::OwnersNotSet {
                count: self.owners_skipped,
                first,
            });
        }
        Ok(self.warnings)
    }
}

impl Sink for Extractor {
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> io::Result<()> {
        // Tree paths are normalized when made, but this is the one place
        // where a path meets the host file system: check again here, for
        // hard-link targets too, rather than trust every producer.
        let dotted = |p: &TreePath| p.components().any(|c| c == b"." || c == b"..");
        let bad = match &entry.kind {
            Kind::HardLink { target } => dotted(&entry.path) || dotted(target),
            _ => dotted(&entry.path),
        };
        if bad {
            return Err(Error::DotComponent {
                target: self.target.clone(),
                path: entry.path.clone(),
            }
            .into());
        }
        self.put_entry(entry, data)
    }
}
