//! `cpio` archives in the "new ASCII" formats (`newc`, magic `070701`, and
//! `crc`, magic `070702`), optionally gzip-compressed.
//!
//! [`Reader`] is a [`crate::tree::Source`] over an archive; [`Writer`] is a
//! [`crate::tree::Sink`] that writes one, gzip-compressed on every core
//! by [`gzip`] with the same bytes whatever the core count. Both stream:
//! file content passes through in bounded chunks and is never held whole
//! in memory.
//!
//! Errors travel through the tree traits as [`std::io::Error`]s whose inner
//! error is an [`Error`]; [`Error::from_io`] recovers it.

mod blocks;
pub mod gzip;
mod header;
mod reader;
mod writer;

pub use header::{Header, HEADER_LEN, MAGIC_CRC, MAGIC_NEWC, NAME_MAX, TRAILER};
pub use reader::{read_buffered, Reader};
pub use writer::{gzip_encoder, Writer};

use crate::tree::{PathError, TreePath};
use std::io;

/// What can go wrong reading or writing an archive. Every reading error
/// names the archive and the byte offset in the uncompressed stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{archive}: offset {offset}: bad magic {found:?}: not a newc/crc cpio archive")]
    BadMagic {
        archive: String,
        offset: u64,
        found: String,
    },
    #[error("{archive}: offset {offset}: header field {field} is not 8 hex digits: {text:?}")]
    BadHex {
        archive: String,
        offset: u64,
        field: &'static str,
        text: String,
    },
    #[error("{archive}: offset {offset}: namesize {namesize} is outside 1..={NAME_MAX}")]
    BadNameSize {
        archive: String,
        offset: u64,
        namesize: u32,
    },
    #[error("{archive}: offset {offset}: member name is not NUL-terminated")]
    NameNotTerminated { archive: String, offset: u64 },
    #[error("{archive}: offset {offset}: member name {name:?} refused: {source}")]
    BadName {
        archive: String,
        offset: u64,
        name: String,
        source: PathError,
    },
    #[error("{archive}: offset {offset}: member {path}: unsupported file type in mode {mode:o}")]
    BadMode {
        archive: String,
        offset: u64,
        path: TreePath,
        mode: u32,
    },
    #[error("{archive}: offset {offset}: the root member `.` is not a directory")]
    RootNotDir { archive: String, offset: u64 },
    #[error("{archive}: offset {offset}: symlink {path} has a {size}-byte target, longer than {NAME_MAX}")]
    SymlinkTooLong {
        archive: String,
        offset: u64,
        path: TreePath,
        size: u32,
    },
    #[error("{archive}: offset {offset}: archive truncated ({what})")]
    Truncated {
        archive: String,
        offset: u64,
        what: &'static str,
    },
    #[error("{archive}: offset {offset}: member {path}: crc checksum {stored:08x} but the data sums to {computed:08x}")]
    Checksum {
        archive: String,
        offset: u64,
        path: TreePath,
        stored: u32,
        computed: u32,
    },
    #[error("{archive}: reading failed near uncompressed offset {offset}: {source}")]
    Read {
        archive: String,
        offset: u64,
        source: io::Error,
    },
    #[error("{archive}: the archive was already read once")]
    AlreadyRead { archive: String },
    #[error("{archive}: {path}: a file of {size} bytes exceeds the newc limit of 4 GiB - 1")]
    FileTooLarge {
        archive: String,
        path: TreePath,
        size: u64,
    },
    #[error("{archive}: {path}: mtime {mtime} is outside the newc range 0..=4294967295")]
    MtimeOutOfRange {
        archive: String,
        path: TreePath,
        mtime: i64,
    },
    #[error("{archive}: {path}: name of {len} bytes is longer than {NAME_MAX} - 1")]
    NameTooLong {
        archive: String,
        path: TreePath,
        len: usize,
    },
    #[error("{archive}: {path}: hard link to {target}, which was not written before")]
    LinkTargetMissing {
        archive: String,
        path: TreePath,
        target: TreePath,
    },
    #[error("{archive}: {path}: the source gave {got} bytes of content, {expected} announced")]
    ShortData {
        archive: String,
        path: TreePath,
        expected: u64,
        got: u64,
    },
    #[error("{archive}: more than 4294967295 members: inode numbers exhausted")]
    TooManyMembers { archive: String },
    #[error("{archive}: writing failed at offset {offset}: {source}")]
    Write {
        archive: String,
        offset: u64,
        source: io::Error,
    },
}

impl Error {
    /// The [`Error`] carried by an [`io::Error`], if any.
    pub fn from_io(e: &io::Error) -> Option<&Error> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
    }

    fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            Error::Read { source, .. } | Error::Write { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.io_kind(), e)
    }
}
