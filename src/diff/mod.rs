//! Multi-file unified diffs, compatible with GNU `diff -ruN` and `patch -p1`.
//!
//! Three operations over an abstract set of files (nothing here knows about
//! archives or images):
//!
//! * [`parse`] reads the diffs that `diff -ruN`, `diff -u` and `git diff`
//!   write into a [`Patch`];
//! * [`Patch::apply`] applies it to a [`FileSet`] the way `patch -p1 -F0`
//!   does, all or nothing, returning the [`Change`]s for the caller to
//!   commit;
//! * [`unified`] writes the diff between two [`FileMap`]s in the format
//!   of `diff -ruN a b`, choosing among equally short diffs as GNU diff
//!   does. What the tests measure: on an edited copy of `/etc` the output
//!   is byte-equal to GNU diff's (`tests/it/diff_oracle.rs`); on random
//!   inputs made of few distinct lines, where ties abound, at least 90%
//!   of diffs are, and GNU patch applies the others to the same result
//!   (`tests/it/diff_gnu_agreement.rs`).
//!
//! Patch targets are small text files (configuration), so whole-file
//! content is held in memory here; the caller decides which files qualify.

mod apply;
mod generate;
mod lcs;
mod parse;
mod timestamp;

pub use apply::{ApplyError, Change, FileSet};
pub use generate::{unified, FileMap, FileVersion, UnifiedOptions};
pub use parse::{parse, ParseCause, ParseError};
pub use timestamp::{format_timestamp, parse_timestamp};

/// A parsed multi-file patch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    /// The name the patch was parsed under (a URI or file name), for
    /// messages.
    pub name: String,
    /// How many leading path components to drop from the names in the
    /// headers, as `patch -pN`. [`parse`] sets 1.
    pub strip: usize,
    /// The file sections, in patch order.
    pub files: Vec<FilePatch>,
    /// `Only in DIR: NAME` lines: `diff -r` without `-N` could not express
    /// a creation or deletion, so the patch cannot reproduce it.
    pub only_in: Vec<OnlyIn>,
}

/// One file's section of a patch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePatch {
    /// The 1-based line of the patch where this section starts.
    pub line: usize,
    /// The old name as written (before stripping); `None` for `/dev/null`.
    pub old_name: Option<Vec<u8>>,
    /// The new name as written; `None` for `/dev/null`.
    pub new_name: Option<Vec<u8>>,
    pub op: FileOp,
    /// What the section changes besides text hunks.
    pub content: Content,
    /// git's `old mode` / `deleted file mode`.
    pub old_mode: Option<u32>,
    /// git's `new mode` / `new file mode`.
    pub new_mode: Option<u32>,
    pub hunks: Vec<Hunk>,
}

/// Whether a section creates, deletes or modifies its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileOp {
    Modify,
    /// Old side is `/dev/null`, the epoch timestamp of `diff -N`, or git's
    /// `new file mode`.
    Create,
    /// New side is `/dev/null`, the epoch timestamp, or git's
    /// `deleted file mode`.
    Delete,
}

/// The kind of change a section carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Text hunks (possibly none, for a git mode-only change).
    Text,
    /// `Binary files X and Y differ`, `Files X and Y differ` or a git binary
    /// patch: the content change is not in the patch and cannot be applied.
    Binary,
    /// git `rename from`/`copy from`: not supported by [`Patch::apply`].
    Rename { copy: bool },
}

/// One hunk of a file section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hunk {
    /// The 1-based line of the `@@` header in the patch.
    pub line: usize,
    /// Old range start as written (1-based; 0 or the line before when the
    /// range is empty).
    pub old_start: usize,
    pub old_count: usize,
    pub new_start: usize,
    pub new_count: usize,
    /// Body lines in order. Each line's text includes its `\n` unless a
    /// `\ No newline at end of file` marker followed it.
    pub lines: Vec<HunkLine>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HunkLine {
    Context(Vec<u8>),
    Delete(Vec<u8>),
    Insert(Vec<u8>),
}

/// An `Only in DIR: NAME` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnlyIn {
    pub line: usize,
    pub dir: Vec<u8>,
    pub name: Vec<u8>,
}

impl Patch {
    /// Sections whose content change the patch cannot carry (binary files,
    /// renames and copies); [`Patch::apply`] skips them, so a caller that
    /// must reproduce a tree exactly refuses the patch when this is not
    /// empty.
    pub fn unsupported(&self) -> impl Iterator<Item = &FilePatch> {
        self.files
            .iter()
            .filter(|f| !matches!(f.content, Content::Text))
    }

    /// Sections that change a file's permission bits or type (git
    /// `old mode`/`new mode`), or whose git mode names something other than
    /// a regular file (a symbolic link's "content" is its target): a text
    /// patch alone does not express these, so the caller decides.
    pub fn mode_changes(&self) -> impl Iterator<Item = &FilePatch> {
        let not_regular =
            |m: Option<u32>| m.is_some_and(|m| m & crate::tree::S_IFMT != crate::tree::S_IFREG);
        self.files.iter().filter(move |f| {
            (f.old_mode.is_some() && f.new_mode.is_some() && f.old_mode != f.new_mode)
                || not_regular(f.old_mode)
                || not_regular(f.new_mode)
        })
    }
}

impl FilePatch {
    /// The name for messages: the new name unless the file is deleted.
    pub fn display_name(&self) -> String {
        let n = match (&self.new_name, &self.old_name) {
            (Some(n), _) if self.op != FileOp::Delete => n,
            (_, Some(o)) => o,
            (Some(n), None) => n,
            (None, None) => return String::from("?"),
        };
        String::from_utf8_lossy(n).into_owned()
    }
}
