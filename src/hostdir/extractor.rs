//! Writing a tree into a host directory, never outside it, even while
//! another process writes inside the target.
//!
//! Confinement: every path is resolved from a descriptor of the target,
//! one component at a time, with `openat(O_NOFOLLOW | O_DIRECTORY)`. A
//! symlink anywhere in the way is refused instead of followed. Resolving
//! through descriptors rather than checking with `lstat` and then using the
//! path string closes the window in which a checked component could be
//! swapped for a symlink before use.
//!
//! Metadata (owner, mode, mtime) is changed through a descriptor of the
//! entry itself, opened with `O_NOFOLLOW`: `fchown`, `fchmod`, `futimens`
//! on the file as created (`O_CREAT | O_EXCL | O_NOFOLLOW`) and on each
//! directory (`O_DIRECTORY | O_NOFOLLOW`); device nodes, fifos and sockets,
//! which must not be opened for I/O, through an `O_PATH | O_NOFOLLOW`
//! descriptor (`fchownat` with `AT_EMPTY_PATH`, and `chmod`/`utimensat` on
//! its `/proc/self/fd` link, which names exactly the inode held). Whatever
//! replaces a name meanwhile, the change lands on the inode we opened.
//!
//! What remains name-based, always on the final component and relative to
//! its parent's descriptor: creating it (`mkdirat`, `mknodat`,
//! `symlinkat`, `linkat` without `AT_SYMLINK_FOLLOW`, `openat` with
//! `O_CREAT | O_EXCL`), removing what is in its way (`unlinkat`), looking
//! at it (`fstatat` with `AT_SYMLINK_NOFOLLOW`), and a symlink's owner and
//! mtime (`fchownat` and `utimensat` with `AT_SYMLINK_NOFOLLOW`, which Linux
//! honours; a symlink has no mode of its own). None of these follows the
//! final component, and the parent is a descriptor reached without
//! symlinks, so a racing writer can at most make them act on another entry
//! of the same directory, inside the target, which it could change itself
//! anyway. `fchmodat` is never used: Linux ignores its
//! `AT_SYMLINK_NOFOLLOW`, and it would follow a directory swapped for a
//! symlink to a file outside the target.
//!
//! Extended attributes are set last, through the same descriptors
//! (`fsetxattr`; `setxattr` on the `/proc/self/fd` link of an `O_PATH`
//! one), after the owner: `chown` clears `security.capability`.
//!
//! Files are written sparse: all-zero blocks become holes.

use super::{Error, Warning};
use crate::bytes;
use crate::tree::{Entry, Kind, Meta, Sink, TreePath, Xattrs};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
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
    dirs: BTreeMap<TreePath, (Meta, Xattrs)>,
    implicit: BTreeSet<TreePath>,
    warnings: Vec<Warning>,
    owners_skipped: u64,
    first_owner_skipped: Option<TreePath>,
    xattrs_skipped: u64,
    first_xattr_skipped: Option<TreePath>,
    buf: Vec<u8>,
}

/// A descriptor of one entry, through which its metadata is changed.
enum Node {
    /// Opened for I/O (a file as created, a directory for reading): takes
    /// fchown, fchmod, futimens.
    Open(OwnedFd),
    /// Opened with O_PATH (a node that must not be opened for I/O, or a
    /// directory we may not read).
    Path(OwnedFd),
}

/// Zero blocks of this size become holes: the block size of most file
/// systems, so a hole always frees whole blocks.
const HOLE_BLOCK: usize = 4096;

/// Why a copy stopped: reading the source or writing the file.
enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `data` into the new, empty `file`, seeking over every all-zero
/// block instead of writing it (as `cp --sparse=auto`, `tar -S` and
/// `cpio --sparse` do), so that a file of zeros costs no disk. The size is
/// set last with ftruncate, so trailing zeros stay a hole as well. Reads
/// fill the whole buffer, so blocks line up with the file's offsets
/// whatever sizes the decompressor hands out.
fn write_sparse(file: &File, data: &mut dyn Read, buf: &mut [u8]) -> Result<(), Copy> {
    let mut offset = 0u64;
    let mut written_to = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match data.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Copy::Read(e)),
            }
        }
        let chunk = &buf[..filled];
        let block_end = |at: usize| (at + HOLE_BLOCK).min(filled);
        let mut at = 0;
        while at < filled {
            // a run of blocks that are all zero, or all not
            let zero = bytes::all_zero(&chunk[at..block_end(at)]);
            let mut end = block_end(at);
            while end < filled && bytes::all_zero(&chunk[end..block_end(end)]) == zero {
                end = block_end(end);
            }
            if !zero {
                let pos = offset + at as u64;
                file.write_all_at(&chunk[at..end], pos)
                    .map_err(Copy::Write)?;
                written_to = pos + (end - at) as u64;
            }
            at = end;
        }
        offset += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    if offset > written_to {
        file.set_len(offset).map_err(Copy::Write)?;
    }
    Ok(())
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
            xattrs_skipped: 0,
            first_xattr_skipped: None,
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

    /// Owner and mtime of a symlink, by name: `fchownat` and `utimensat`
    /// honour `AT_SYMLINK_NOFOLLOW`, so they change the link itself (or
    /// whatever a racing writer put in its place in the same directory,
    /// inside the target), never what it points to. A symlink has no mode.
    fn set_link_meta(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        path: &TreePath,
        meta: &Meta,
    ) -> Result<(), Error> {
        if self.chown_wanted(path, meta) {
            let (u, g) = owner(meta.uid, meta.gid);
            rfs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(self.io(path, "chown"))?;
        }
        rfs::utimensat(dir, name, &ts(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(self.io(path, "set mtime"))
    }

    /// Owner, mode and mtime through a descriptor of the entry itself,
    /// opened without following it: whatever happens to its name meanwhile,
    /// the change lands on the inode we opened.
    fn set_meta_fd(&mut self, node: &Node, path: &TreePath, meta: &Meta) -> Result<(), Error> {
        let mode = Mode::from_raw_mode(meta.perm & 0o7777);
        let chown = self.chown_wanted(path, meta);
        let (u, g) = owner(meta.uid, meta.gid);
        match node {
            Node::Open(fd) => {
                if chown {
                    rfs::fchown(fd, u, g).map_err(self.io(path, "chown"))?;
                }
                // after chown, which clears setuid and setgid
                rfs::fchmod(fd, mode).map_err(self.io(path, "chmod"))?;
                rfs::futimens(fd, &ts(meta.mtime)).map_err(self.io(path, "set mtime"))
            }
            Node::Path(fd) => {
                // An O_PATH descriptor takes neither fchmod nor futimens;
                // its /proc/self/fd link names exactly the inode it holds
                // (the way C libraries emulate a chmod that does not
                // follow), and `fchownat` takes it with AT_EMPTY_PATH.
                if chown {
                    rfs::chownat(fd, "", u, g, AtFlags::EMPTY_PATH)
                        .map_err(self.io(path, "chown"))?;
                }
                let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
                rfs::chmod(&link, mode).map_err(self.io(path, "chmod"))?;
                rfs::utimensat(rfs::CWD, &link, &ts(meta.mtime), AtFlags::empty())
                    .map_err(self.io(path, "set mtime"))
            }
        }
    }

    /// Sets `xattrs` on the inode `node` holds; called after its owner is
    /// set, since `chown` clears `security.capability`. What our
    /// privileges or the file system refuse (`trusted.` and `security.`
    /// names without root, a file system that keeps no attributes, `user.`
    /// names on a symlink) is counted for one warning.
    fn set_xattrs(&mut self, node: &Node, path: &TreePath, xattrs: &Xattrs) -> Result<(), Error> {
        for (name, value) in xattrs.iter() {
            let set = match node {
                Node::Open(fd) => rfs::fsetxattr(fd, name, value, rfs::XattrFlags::empty()),
                Node::Path(fd) => {
                    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
                    rfs::setxattr(&link, name, value, rfs::XattrFlags::empty())
                }
            };
            match set {
                Ok(()) => {}
                Err(Errno::PERM | Errno::ACCESS | Errno::NOTSUP) => {
                    self.xattrs_skipped += 1;
                    if self.first_xattr_skipped.is_none() {
                        self.first_xattr_skipped = Some(path.clone());
                    }
                }
                Err(e) => return Err(self.io(path, "set extended attribute")(e)),
            }
        }
        Ok(())
    }

    /// An `O_PATH` descriptor of `name` itself, not followed.
    fn open_path(&self, dir: &OwnedFd, name: &[u8], path: &TreePath) -> Result<OwnedFd, Error> {
        rfs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(self.io(path, "open"))
    }

    /// Opens the entry `name` just created as a node of type `ft` (a device,
    /// fifo or socket) without following it, and sets its metadata. Such
    /// nodes cannot be opened for I/O without side effects, hence O_PATH.
    fn set_node_meta(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        ft: FileType,
        path: &TreePath,
        meta: &Meta,
        xattrs: &Xattrs,
    ) -> Result<(), Error> {
        let fd = self.open_path(dir, name, path)?;
        let st = rfs::fstat(&fd).map_err(self.io(path, "stat"))?;
        if FileType::from_raw_mode(st.st_mode) != ft {
            // replaced by a concurrent writer since we made it: not ours
            return Ok(());
        }
        let node = Node::Path(fd);
        self.set_meta_fd(&node, path, meta)?;
        self.set_xattrs(&node, path, xattrs)
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
        let file = File::from(fd);
        let mut buf = std::mem::take(&mut self.buf);
        let copied = write_sparse(&file, data, &mut buf);
        self.buf = buf;
        match copied {
            Ok(()) => {}
            // Read errors come from the source and keep their own type.
            Err(Copy::Read(e)) => return Err(e),
            Err(Copy::Write(source)) => {
                return Err(Error::Io {
                    path: self.target.join(OsStr::from_bytes(path.as_bytes())),
                    op: "write",
                    source,
                }
                .into())
            }
        }
        let node = Node::Open(file.into());
        self.set_meta_fd(&node, path, &entry.meta)?;
        self.set_xattrs(&node, path, &entry.xattrs)?;
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
            self.dirs
                .insert(TreePath::root(), (entry.meta, entry.xattrs.clone()));
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
                self.dirs
                    .insert(path.clone(), (*meta, entry.xattrs.clone()));
                return Ok(());
            }
            Kind::Symlink { target } => {
                self.clear(dir, name, path, "symlink", false)?;
                rfs::symlinkat(target.as_slice(), dir, name)
                    .map_err(self.io(path, "create symlink"))?;
                self.set_link_meta(dir, name, path, meta)?;
                if !entry.xattrs.is_empty() {
                    // the link itself, through a descriptor that does not
                    // follow it (a symlink has no mode to set)
                    let fd = self.open_path(dir, name, path)?;
                    self.set_xattrs(&Node::Path(fd), path, &entry.xattrs)?;
                }
                return Ok(());
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
        let ft = match entry.kind {
            Kind::CharDev { .. } => FileType::CharacterDevice,
            Kind::BlockDev { .. } => FileType::BlockDevice,
            Kind::Fifo => FileType::Fifo,
            _ => FileType::Socket,
        };
        Ok(self.set_node_meta(dir, name, ft, path, meta, &entry.xattrs)?)
    }

    /// Applies directory metadata (deepest first) and returns what could
    /// not be done without privileges.
    pub fn finish(mut self) -> Result<Vec<Warning>, Error> {
        self.cache = None;
        let mut all: Vec<(TreePath, (Meta, Xattrs))> =
            std::mem::take(&mut self.dirs).into_iter().collect();
        for p in std::mem::take(&mut self.implicit) {
            all.push((p, (Meta::implicit_dir(), Xattrs::new())));
        }
        all.sort_by(|a, b| b.0.cmp(&a.0));
        for (path, (meta, xattrs)) in all {
            let parent = match path.parent() {
                Some(parent) => Some(self.resolve_dir(&parent, &path)?),
                None => None,
            };
            let (dir, name): (&OwnedFd, &[u8]) = match &parent {
                Some(fd) => (fd, path.file_name()),
                None => (&self.root, b"."),
            };
            // The directory itself, opened without following it: if it was
            // replaced by a symlink (or anything else) it is not ours any
            // more and keeps what it has.
            let open = |flags: OFlags| rfs::openat(dir, name, flags, Mode::empty());
            let node =
                match open(OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC)
                {
                    Ok(fd) => Node::Open(fd),
                    // unprivileged, in a directory we may not read
                    Err(Errno::ACCESS) => {
                        Node::Path(open(DIR_FLAGS).map_err(self.io(&path, "open directory"))?)
                    }
                    Err(Errno::LOOP | Errno::NOTDIR) => continue,
                    Err(e) => return Err(self.io(&path, "open directory")(e)),
                };
            drop(parent);
            self.set_meta_fd(&node, &path, &meta)?;
            self.set_xattrs(&node, &path, &xattrs)?;
        }
        if let Some(first) = self.first_owner_skipped.take() {
            self.warnings.push(Warning::OwnersNotSet {
                count: self.owners_skipped,
                first,
            });
        }
        if let Some(first) = self.first_xattr_skipped.take() {
            self.warnings.push(Warning::XattrsNotSet {
                count: self.xattrs_skipped,
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
