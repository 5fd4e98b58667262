//! The file-system tree model shared by every source and sink.
//!
//! Archives, images and host directories are all *trees*: a stream of
//! [`Entry`] values, each with the content of regular files readable once,
//! in stream order. Nothing here knows about containers, URIs or formats.
//!
//! A tree is consumed as a stream so that content never has to sit in
//! memory: a source calls a [`Sink`] once per entry, handing it a reader
//! for the entry's data. Sources may emit entries in any order (`find
//! -depth | cpio` puts children before their directory), so every sink
//! must accept a child before its parent and create missing parents
//! itself (mode 0755, owner 0:0), letting a later explicit entry set the
//! directory's metadata.

pub mod manifest;

use std::fmt;
use std::io::{self, Read};

/// A path inside a tree: `/`-separated components relative to the tree's
/// root, no leading `/`, no `.` or `..` components, no empty components,
/// no NUL. The root directory itself is the empty path.
///
/// Linux file names are bytes, not text, so the path is stored as bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TreePath(Vec<u8>);

/// Why a member name cannot become a [`TreePath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("member name contains a NUL byte")]
    Nul,
    #[error("member name contains a `..` component")]
    DotDot,
    #[error("member name is absolute")]
    Absolute,
}

impl TreePath {
    /// The root directory.
    pub fn root() -> TreePath {
        TreePath(Vec::new())
    }

    /// Normalizes an archive member name. `./a//b/` becomes `a/b`; `.` and
    /// `./` become the root. A leading `/` is refused (archives written by
    /// GNU cpio never carry one, and accepting it is how tar-slip attacks
    /// begin); `..` anywhere is refused.
    pub fn from_member(name: &[u8]) -> Result<TreePath, PathError> {
        if name.contains(&0) {
            return Err(PathError::Nul);
        }
        if name.first() == Some(&b'/') {
            return Err(PathError::Absolute);
        }
        Self::normalize(name)
    }

    /// Normalizes a path that may be absolute (as in `[replace /etc/HOSTNAME]`):
    /// a leading `/` means the tree's root. `..` is still refused.
    pub fn from_absolute(name: &[u8]) -> Result<TreePath, PathError> {
        if name.contains(&0) {
            return Err(PathError::Nul);
        }
        Self::normalize(name)
    }

    fn normalize(name: &[u8]) -> Result<TreePath, PathError> {
        let mut out: Vec<u8> = Vec::with_capacity(name.len());
        for comp in name.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => return Err(PathError::DotDot),
                c => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(c);
                }
            }
        }
        Ok(TreePath(out))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The components, root first.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// The parent directory; `None` for the root.
    pub fn parent(&self) -> Option<TreePath> {
        if self.0.is_empty() {
            return None;
        }
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => Some(TreePath(self.0[..i].to_vec())),
            None => Some(TreePath::root()),
        }
    }

    /// The last component; empty for the root.
    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// `self/name`. `name` must be a single component.
    pub fn join(&self, name: &[u8]) -> TreePath {
        debug_assert!(!name.contains(&b'/') && name != b".." && name != b".");
        let mut v = self.0.clone();
        if !v.is_empty() {
            v.push(b'/');
        }
        v.extend_from_slice(name);
        TreePath(v)
    }

    /// `rel` (a path relative to some root) placed under `self`.
    pub fn concat(&self, rel: &TreePath) -> TreePath {
        if rel.is_root() {
            return self.clone();
        }
        if self.is_root() {
            return rel.clone();
        }
        let mut v = self.0.clone();
        v.push(b'/');
        v.extend_from_slice(&rel.0);
        TreePath(v)
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &TreePath) -> bool {
        other.0.is_empty()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.get(other.0.len()) == Some(&b'/'))
    }

    /// The path as `/a/b`, for messages and absolute display.
    pub fn display_abs(&self) -> String {
        format!("/{}", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(".")
        } else {
            f.write_str(&String::from_utf8_lossy(&self.0))
        }
    }
}

impl fmt::Debug for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// The type of an entry, with what only that type carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file of `size` bytes; its data follows in the stream.
    File {
        size: u64,
    },
    Dir,
    /// A symbolic link; the target is bytes, never interpreted.
    Symlink {
        target: Vec<u8>,
    },
    CharDev {
        major: u32,
        minor: u32,
    },
    BlockDev {
        major: u32,
        minor: u32,
    },
    Fifo,
    Socket,
    /// Another name for a regular file emitted earlier in the same stream.
    /// The entry's own metadata is that of the target (they share an inode).
    HardLink {
        target: TreePath,
    },
}

impl Kind {
    /// The `S_IFMT` bits of `st_mode` for this kind (a hard link reports a
    /// regular file).
    pub fn format_bits(&self) -> u32 {
        match self {
            Kind::File { .. } | Kind::HardLink { .. } => S_IFREG,
            Kind::Dir => S_IFDIR,
            Kind::Symlink { .. } => S_IFLNK,
            Kind::CharDev { .. } => S_IFCHR,
            Kind::BlockDev { .. } => S_IFBLK,
            Kind::Fifo => S_IFIFO,
            Kind::Socket => S_IFSOCK,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Kind::File { .. } => "file",
            Kind::Dir => "directory",
            Kind::Symlink { .. } => "symlink",
            Kind::CharDev { .. } => "character device",
            Kind::BlockDev { .. } => "block device",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::HardLink { .. } => "hard link",
        }
    }
}

pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;

/// Metadata every entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
}

impl Meta {
    /// The metadata of a directory created only because a child needed it.
    pub fn implicit_dir() -> Meta {
        Meta {
            perm: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
        }
    }
}

/// The longest extended attribute name Linux accepts (`XATTR_NAME_MAX`).
pub const XATTR_NAME_MAX: usize = 255;
/// The largest extended attribute value Linux accepts (`XATTR_SIZE_MAX`).
pub const XATTR_SIZE_MAX: usize = 65536;

/// The extended attributes of an inode (`security.capability`,
/// `user.mime_type`, ...): full names with their values, sorted by name,
/// each name once. Most entries have none, which costs no allocation.
#[derive(Clone, PartialEq, Eq, Default, Hash)]
pub struct Xattrs(Vec<(Vec<u8>, Vec<u8>)>);

impl Xattrs {
    pub fn new() -> Xattrs {
        Xattrs(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Sets `name` to `value`, replacing what it held.
    pub fn set(&mut self, name: Vec<u8>, value: Vec<u8>) {
        match self.0.binary_search_by(|(n, _)| n.as_slice().cmp(&name)) {
            Ok(i) => {
                if let Some(slot) = self.0.get_mut(i) {
                    slot.1 = value;
                }
            }
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    /// Removes `name`; true when it was there.
    pub fn remove(&mut self, name: &[u8]) -> bool {
        match self.0.binary_search_by(|(n, _)| n.as_slice().cmp(name)) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        let i = self
            .0
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
            .ok()?;
        self.0.get(i).map(|(_, v)| v.as_slice())
    }

    /// Names and values, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))
    }

    /// An unambiguous encoding for digests: for each attribute in name
    /// order, the name's length (4 bytes, little-endian), the name, the
    /// value's length and the value. Empty for no attributes.
    pub fn digest_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in &self.0 {
            out.extend_from_slice(&(n.len() as u32).to_le_bytes());
            out.extend_from_slice(n);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        out
    }
}

impl FromIterator<(Vec<u8>, Vec<u8>)> for Xattrs {
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>>(iter: I) -> Xattrs {
        let mut x = Xattrs::new();
        for (n, v) in iter {
            x.set(n, v);
        }
        x
    }
}

/// `{"security.capability": 0100000200200000..., "user.a": 78}`: names as
/// text, values in hex.
impl fmt::Debug for Xattrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (n, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{:?}: ", String::from_utf8_lossy(n))?;
            for b in v {
                write!(f, "{b:02x}")?;
            }
        }
        f.write_str("}")
    }
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: TreePath,
    pub kind: Kind,
    pub meta: Meta,
    /// The extended attributes of the entry's inode; a hard link has
    /// none of its own (it shares its target's inode).
    pub xattrs: Xattrs,
}

impl Entry {
    /// An entry without extended attributes.
    pub fn new(path: TreePath, kind: Kind, meta: Meta) -> Entry {
        Entry {
            path,
            kind,
            meta,
            xattrs: Xattrs::new(),
        }
    }

    /// The full `st_mode`: format bits and permission bits.
    pub fn mode(&self) -> u32 {
        self.kind.format_bits() | (self.meta.perm & 0o7777)
    }
}

/// Splits a full `st_mode` into format bits and permission bits.
pub fn split_mode(mode: u32) -> (u32, u32) {
    (mode & S_IFMT, mode & 0o7777)
}

/// Anything that receives a tree as a stream.
///
/// `data` yields exactly the file's size in bytes for [`Kind::File`] and
/// nothing for other kinds. A sink must read it to the end or not at all;
/// sources drain what a sink leaves.
pub trait Sink {
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> io::Result<()>;

    /// [`Sink::put`] for a regular file whose source knows its holes (a
    /// sparse file in an image). A sink that can use them overrides this;
    /// the rest read the zeros.
    fn put_sparse(&mut self, entry: &Entry, data: &mut dyn SparseRead) -> io::Result<()> {
        self.put(entry, data)
    }
}

/// File content that can say where its holes are, so that a reader may
/// step over them rather than read their zeros: a file claiming terabytes
/// of holes costs as much as its data.
pub trait SparseRead: Read {
    /// The length of the hole at the current position, stepped over (the
    /// next read starts after it); 0 when the position holds data.
    fn skip_hole(&mut self) -> io::Result<u64>;
}

/// Content that cannot say where its holes are: every byte is read.
pub struct Dense<'a>(pub &'a mut dyn Read);

impl Read for Dense<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl SparseRead for Dense<'_> {
    fn skip_hole(&mut self) -> io::Result<u64> {
        Ok(0)
    }
}

/// Anything that can emit a tree as a stream.
pub trait Source {
    /// Emits every entry once, in the source's order.
    fn emit(&mut self, sink: &mut dyn Sink) -> io::Result<()>;
}

/// Why [`copy_content`] stopped.
#[derive(Debug)]
pub enum CopyError<E> {
    /// Reading the content failed after `done` bytes.
    Read { done: u64, source: io::Error },
    /// The content ended after `done` bytes, short of the size announced.
    Short { done: u64 },
    /// `out` failed.
    Write(E),
}

/// Hands exactly `size` bytes of `data` to `out`, in pieces of at most
/// `buf`'s length: what every archive writer does with a file's content.
pub fn copy_content<E>(
    data: &mut dyn Read,
    size: u64,
    buf: &mut [u8],
    mut out: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), CopyError<E>> {
    let mut done = 0u64;
    while done < size {
        let want = (size - done).min(buf.len() as u64) as usize;
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = match data.read(chunk) {
            Ok(0) => return Err(CopyError::Short { done }),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(CopyError::Read { done, source }),
        };
        out(chunk.get(..n).unwrap_or_default()).map_err(CopyError::Write)?;
        done += n as u64;
    }
    Ok(())
}

/// A sink that calls a closure: handy in tests and adapters.
pub struct FnSink<F>(pub F);

impl<F> Sink for FnSink<F>
where
    F: FnMut(&Entry, &mut dyn Read) -> io::Result<()>,
{
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> io::Result<()> {
        (self.0)(entry, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_normalize() {
        let p = |s: &str| TreePath::from_member(s.as_bytes());
        assert_eq!(p("./a//b/").unwrap().as_bytes(), b"a/b");
        assert!(p(".").unwrap().is_root());
        assert!(p("./").unwrap().is_root());
        assert_eq!(p("a/../b"), Err(PathError::DotDot));
        assert_eq!(p("/etc/passwd"), Err(PathError::Absolute));
        assert_eq!(p("a\0b"), Err(PathError::Nul));
        assert_eq!(
            TreePath::from_absolute(b"/etc/HOSTNAME")
                .unwrap()
                .as_bytes(),
            b"etc/HOSTNAME"
        );
    }

    #[test]
    fn parent_and_name() {
        let p = TreePath::from_member(b"etc/ssh/sshd_config").unwrap();
        assert_eq!(p.parent().unwrap().as_bytes(), b"etc/ssh");
        assert_eq!(p.file_name(), b"sshd_config");
        assert_eq!(
            TreePath::from_member(b"etc").unwrap().parent(),
            Some(TreePath::root())
        );
        assert_eq!(TreePath::root().parent(), None);
        assert!(p.starts_with(&TreePath::from_member(b"etc").unwrap()));
        assert!(!p.starts_with(&TreePath::from_member(b"et").unwrap()));
        assert!(p.starts_with(&TreePath::root()));
    }

    #[test]
    fn xattrs_stay_sorted_and_digest_every_byte() {
        let mut x = Xattrs::new();
        x.set(b"user.b".to_vec(), b"2".to_vec());
        x.set(b"security.capability".to_vec(), vec![1, 0]);
        x.set(b"user.a".to_vec(), b"1".to_vec());
        x.set(b"user.b".to_vec(), b"3".to_vec());
        let names: Vec<&[u8]> = x.iter().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"security.capability"[..], b"user.a", b"user.b"]);
        assert_eq!(x.get(b"user.b"), Some(&b"3"[..]));
        assert_eq!(x.get(b"user.c"), None);
        assert_eq!(
            format!("{x:?}"),
            r#"{"security.capability": 0100, "user.a": 31, "user.b": 33}"#
        );
        let mut y = x.clone();
        y.set(b"user.a".to_vec(), b"10".to_vec());
        assert_ne!(x.digest_bytes(), y.digest_bytes());
        // a name and value split differently is another encoding
        let a: Xattrs = [(b"ab".to_vec(), b"c".to_vec())].into_iter().collect();
        let b: Xattrs = [(b"a".to_vec(), b"bc".to_vec())].into_iter().collect();
        assert_ne!(a.digest_bytes(), b.digest_bytes());
        assert!(Xattrs::new().digest_bytes().is_empty());
    }
}
