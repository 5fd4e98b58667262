//! ext2/ext3/ext4 images written by hand, and ext2/3/4 volumes read
//! without mounting.
//!
//! [`Builder`] is a [`crate::tree::Sink`]: it writes file content to the
//! image as entries arrive (holes stay holes, only non-zero blocks and
//! metadata are written to a sparse file) and lays out directories,
//! bitmaps, inode tables and superblocks at [`Builder::finish`].
//! [`Volume`] reads an existing ext2/3/4 volume and is a
//! [`crate::tree::Source`]. [`Populator`] adds a tree to an existing
//! ext2/ext3/ext4 volume in place, through the journal when it has one.
//!
//! Structure names and field names follow the ext4 disk layout.

mod alloc;
mod bitmap;
mod blockmap;
mod bytes;
mod check;
mod csum;
mod dir_entry;
mod extent;
mod group_desc;
mod htree;
mod inode;
mod io;
mod journal;
mod layout;
mod reader;
mod superblock;
mod update;
mod writer;

pub use check::block_owners;
pub use inode::Inode;
pub use layout::Geometry;
pub use reader::{DirEntryInfo, FileReader, FileType, Volume};
pub use update::Populator;
pub use writer::Builder;

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Volume size in bytes; the image file is set to exactly this length.
    pub size: u64,
    /// 1024, 2048 or 4096; by default 1024 below 512 MiB and 4096 above.
    pub block_size: Option<u32>,
    /// Inode count (rounded up to fill whole inode-table blocks); by
    /// default one per 4 KiB below 512 MiB and one per 16 KiB above.
    pub inodes: Option<u32>,
    /// Volume label, at most 16 bytes.
    pub label: Vec<u8>,
    pub uuid: [u8; 16],
    /// ext3 (with an internal journal) rather than ext2.
    pub journal: bool,
    /// ext4: extents, 64bit, flex_bg, metadata_csum and the other
    /// features of mke2fs's ext4 (with a journal whatever `journal` says).
    pub ext4: bool,
    /// Seconds since the epoch used for every superblock and journal time
    /// field, so that identical inputs give identical images.
    pub timestamp: i64,
}

impl Options {
    /// An ext3 volume of `size` bytes with every other setting defaulted.
    pub fn new(size: u64) -> Options {
        Options {
            size,
            block_size: None,
            inodes: None,
            label: Vec::new(),
            uuid: [0; 16],
            journal: true,
            ext4: false,
            timestamp: 0,
        }
    }
}

/// Everything that can go wrong writing or reading a volume.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error at byte offset {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the content of {path}: {source}")]
    Content {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported block size {0} (use 1024, 2048 or 4096)")]
    BlockSize(u32),
    #[error("volume of {size} bytes is too small for an ext2/3/4 file system")]
    TooSmall { size: u64 },
    #[error("volume of {size} bytes has more than 2^32 blocks of {block_size} bytes")]
    TooLarge { size: u64, block_size: u32 },
    #[error("volume too small for a journal (needs at least 2048 blocks)")]
    NoRoomForJournal,
    #[error("{requested} inodes do not fit this volume's block groups")]
    TooManyInodes { requested: u64 },
    #[error("label is {0} bytes; at most 16 are allowed")]
    LabelTooLong(usize),
    #[error("timestamp {0} cannot be stored (before 1970 or after 2106)")]
    Timestamp(i64),
    #[error("image file is not a regular file; images are written to regular files only")]
    NotRegularFile,
    #[error("out of blocks: the volume's {blocks_count} blocks are used up while writing {path}")]
    OutOfBlocks { path: String, blocks_count: u32 },
    #[error("out of inodes: the volume's {inodes_count} inodes are used up at {path}")]
    OutOfInodes { path: String, inodes_count: u32 },
    #[error("{path}: name longer than 255 bytes")]
    NameTooLong { path: String },
    #[error("{path}: a parent component is not a directory")]
    ParentNotDir { path: String },
    #[error("{path}: cannot replace a non-empty directory with a non-directory")]
    ReplaceDir { path: String },
    #[error("{path}: the root must be a directory")]
    RootNotDir { path: String },
    #[error("{path}: hard link target {target} is missing or a directory")]
    HardLinkTarget { path: String, target: String },
    #[error("{path}: device number {major}:{minor} exceeds 12:20 bits")]
    DeviceNumber {
        path: String,
        major: u32,
        minor: u32,
    },
    #[error("{path}: modification time {mtime} cannot be stored")]
    Mtime { path: String, mtime: i64 },
    #[error("{path}: symlink target of {len} bytes is longer than a block allows ({max})")]
    SymlinkTooLong {
        path: String,
        len: usize,
        max: usize,
    },
    #[error("{path}: empty symlink target (ext2/ext3 cannot store one)")]
    EmptySymlink { path: String },
    #[error("{path}: file of {size} bytes is larger than the volume can map (indirect blocks or extents)")]
    FileTooLarge { path: String, size: u64 },
    #[error("{path}: content ended after {got} of {expected} bytes")]
    ShortData {
        path: String,
        expected: u64,
        got: u64,
    },
    #[error("not an ext2/3/4 file system (superblock magic {magic:#06x}, expected 0xef53)")]
    BadMagic { magic: u16 },
    #[error("unsupported ext4 incompatible features {features:#x}")]
    UnsupportedFeatures { features: u32 },
    #[error("corrupt superblock: {0}")]
    CorruptSuperblock(String),
    #[error("inode number {ino} out of range (volume has {count} inodes)")]
    InodeOutOfRange { ino: u64, count: u32 },
    #[error("corrupt file system: {0}")]
    Corrupt(String),
    #[error("{path}: inline data is not supported")]
    InlineData { path: String },
    #[error("{path}: directory loop or nesting deeper than {depth}")]
    DirectoryLoop { path: String, depth: usize },
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error("{path}: directory not empty")]
    DirNotEmpty { path: String },
    #[error("{path}: not a directory")]
    NotADirectory { path: String },
    #[error("{path}: not a regular file")]
    NotAFile { path: String },
    #[error("the volume needs journal recovery (needs_recovery is set or the journal holds transactions); run e2fsck first")]
    NeedsRecovery,
    #[error("cannot write to this volume: {0}")]
    UnsupportedForWrite(String),
    #[error("the change needs {needed} journal blocks but the journal has {available}")]
    JournalTooSmall { needed: u64, available: u64 },
    #[error(
        "refusing to write to this volume: {0}; check it with e2fsck -f while it is not in use"
    )]
    Unsound(String),
    #[error("{path}: not a symbolic link")]
    NotASymlink { path: String },
    /// The journal's commit block was written, then something failed:
    /// the update is made and a journal replay completes it.
    #[error("{0}; the update is committed in the journal and will be applied when the volume is recovered (e2fsck, or the next mount)")]
    AfterCommit(Box<Error>),
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        std::io::Error::other(e)
    }
}
