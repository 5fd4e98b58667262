//! Host directories as trees: [`Walker`] reads one as a
//! [`crate::tree::Source`], [`Extractor`] writes a tree into one as a
//! [`crate::tree::Sink`].
//!
//! Errors travel through the tree traits as [`std::io::Error`]s whose inner
//! error is an [`Error`]; [`Error::from_io`] recovers it.

mod extractor;
mod room;
mod walker;

pub use extractor::Extractor;
pub use room::Room;
pub use walker::Walker;

use crate::tree::TreePath;
use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {op}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("{path}: not a directory", path = path.display())]
    NotADirectory { path: PathBuf },
    #[error("{path}: changed while being read ({expected} bytes when listed, {got} readable)", path = path.display())]
    FileChanged {
        path: PathBuf,
        expected: u64,
        got: u64,
    },
    #[error("{target}: refusing to extract {path}: {component} is a symlink", target = target.display())]
    SymlinkInPath {
        target: PathBuf,
        path: TreePath,
        component: TreePath,
    },
    #[error("{target}: cannot extract {path}: {component} exists and is not a directory", target = target.display())]
    NotADirectoryInPath {
        target: PathBuf,
        path: TreePath,
        component: TreePath,
    },
    #[error("{target}: refusing to extract {path}: it has a `.` or `..` component", target = target.display())]
    DotComponent { target: PathBuf, path: TreePath },
    #[error("{target}: the root of the tree must be a directory, not a {kind}", target = target.display())]
    RootNotDir { target: PathBuf, kind: &'static str },
    #[error("{target}: hard link {path} -> {link_target}: the target does not exist", target = target.display())]
    LinkTargetMissing {
        target: PathBuf,
        path: TreePath,
        link_target: TreePath,
    },
    #[error("{target}: cannot replace the non-empty directory {path} with a {kind}", target = target.display())]
    DirNotEmpty {
        target: PathBuf,
        path: TreePath,
        kind: &'static str,
    },
}

impl Error {
    /// The [`Error`] carried by an [`io::Error`], if any.
    pub fn from_io(e: &io::Error) -> Option<&Error> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Something an unprivileged [`Extractor`] could not do; the tree was
/// extracted without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// Creating device nodes needs `CAP_MKNOD`.
    DeviceSkipped { path: TreePath, kind: &'static str },
    /// Giving files away needs `CAP_CHOWN`; `count` entries kept the
    /// extracting user as owner, the first being `first`.
    OwnersNotSet { count: u64, first: TreePath },
    /// Extended attributes refused by the target's file system or needing
    /// root (`trusted.`, `security.capability`): `count` of them, the
    /// first on `first`.
    XattrsNotSet { count: u64, first: TreePath },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::DeviceSkipped { path, kind } => {
                write!(f, "{path}: {kind} not created (needs root)")
            }
            Warning::OwnersNotSet { count, first } => write!(
                f,
                "{count} entries (first: {first}) keep the extracting user as owner (changing owners needs root)"
            ),
            Warning::XattrsNotSet { count, first } => write!(
                f,
                "{count} extended attributes (first on {first}) not set: the target's file system refused them or they need root"
            ),
        }
    }
}
