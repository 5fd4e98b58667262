//! Errors about a container file, located and rendered with a caret line.
//!
//! What went wrong is a [`DiagnosticKind`], one variant per problem the
//! front end reports, holding what its message needs; where it went wrong
//! is the [`Diagnostic`]'s span. Tests match kinds; the message text is
//! written once, here.

use super::ast::{Keyword, LineIndex, Span};
use super::plan::FsType;
use super::template::{MAX_FILE, MAX_VALUE};
use crate::tree::PathError;
use crate::uri::UriError;
use crate::xen::ErrorKind as XenError;
use std::fmt::Write;
use std::path::PathBuf;

/// Why a size word was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("size `{0}`: expected a number with a unit, like `50MB` or `2G`")]
    NoNumber(String),
    #[error("size `{0}` has no unit: write `{0}M` (K, M, G or T, powers of 1024)")]
    NoUnit(String),
    #[error(
        "size `{size}`: unknown unit `{unit}` (use K, M, G or T, optionally followed by B or iB)"
    )]
    UnknownUnit { size: String, unit: String },
    #[error("size `{0}` is too large")]
    TooLarge(String),
    #[error("size `{0}` is zero")]
    Zero(String),
}

/// Every problem the parser, the analyzer and the linter report.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiagnosticKind {
    // reading the file
    #[error("the file is not UTF-8 text")]
    NotUtf8,
    /// A Xen statement or comment `xl` would refuse (the Xen reader knows
    /// libxlutil's rules).
    #[error(transparent)]
    Xen(XenError),
    #[error("`]` outside any list or expression")]
    StrayClose,
    #[error(
        "expected a setting (`name = value`) or an expression (`[image ...][end]`), found {found}"
    )]
    ExpectedStatement { found: String },

    // expressions
    #[error("`[end]` without an expression before it")]
    EndWithoutExpression,
    #[error("`[` at the start of a statement must open an expression: `[create`, `[image`, `[populate`, `[replace`, `[copy` or `[patch`")]
    MissingKeyword,
    #[error("unknown expression keyword `{word}` (expected create, image, populate, replace, copy or patch)")]
    UnknownKeyword { word: String },
    #[error("unterminated expression `[{keyword}`: no `]` closes it")]
    UnterminatedExpression { keyword: Keyword },
    #[error("unterminated `[replace` body: no line holding only `]` ends it")]
    UnterminatedBody,
    #[error("unterminated quoted word: a quoted word ends on the line it starts")]
    UnterminatedQuote,
    #[error("a second `text` body")]
    SecondTextBody,
    #[error("a here-document tag is letters, digits and `_`: `text <<EOF`")]
    BadHereDocTag,
    #[error("nothing may follow `text <<{tag}` on its line; the document starts on the next line")]
    TextAfterHereDocTag { tag: String },
    #[error("unterminated here-document: no line equal to `{tag}` ends it")]
    UnterminatedHereDoc { tag: String },
    /// `found` is the text after the `]` (up to 12 characters), `None` at
    /// the end of the file.
    #[error("missing `[end]` after the `]` that closes `[{keyword}`; found {}", found_text(.found))]
    MissingEnd {
        keyword: Keyword,
        found: Option<String>,
    },

    // templates
    #[error("`${{` without a closing `}}`")]
    UnclosedVariable,
    #[error("`${{{name}}}` is not a variable name")]
    NotAVariableName { name: String },
    #[error("`${{{name}}}` names a list, which has no text to substitute")]
    ListVariable { name: String },
    #[error("undefined variable `{name}`: define it with `--set {name}=VALUE` or a Xen statement `{name} = ...` above this line")]
    UndefinedVariable { name: String },
    #[error("substituted variables add more than {} MiB to this file", MAX_FILE >> 20)]
    FileGrowth,
    #[error("substituting variables makes this value longer than {} MiB", MAX_VALUE >> 20)]
    ValueGrowth,
    #[error("--set {name}=...: a value cannot hold a line break")]
    SetLineBreak { name: String },
    #[error("after substituting variables this value is not valid for xl: {0}")]
    XenAfterSubstitution(XenError),

    // an expression's words
    #[error("`[{keyword}` takes no body")]
    BodyNotAllowed { keyword: Keyword },
    #[error(transparent)]
    Uri(UriError),
    #[error("output {0}")]
    OutputName(crate::archive::NameError),
    #[error("`[{keyword}` is missing {what}; usage: {usage}")]
    MissingArgument {
        keyword: Keyword,
        what: String,
        usage: &'static str,
    },
    #[error("unexpected argument `{word}` to `[{keyword}`; usage: {usage}")]
    UnexpectedArgument {
        keyword: Keyword,
        word: String,
        usage: &'static str,
    },
    #[error("option `{option}` needs a value")]
    OptionNeedsValue { option: &'static str },
    #[error("option `{option}` given twice")]
    OptionTwice { option: &'static str },
    #[error(transparent)]
    Size(SizeError),
    #[error("size `{number} {unit}`: write `{number}{unit}`, without a space")]
    SizeSplitUnit { number: String, unit: String },
    #[error("label `{label}` is {} bytes; an ext2/ext3 or swap label holds at most 16", .label.len())]
    LabelTooLong { label: String },
    #[error("fs `{fs}`: vm-container writes ext2, ext3, ext4 or swap")]
    UnknownFs { fs: String },
    #[error("blocksize `{value}`: use 1024, 2048 or 4096")]
    BadBlockSize { value: String },
    #[error("inodes `{value}`: a whole number of at least 16")]
    BadInodes { value: String },
    #[error("uuid `{value}`: expected 8-4-4-4-12 hex digits")]
    BadUuid { value: String },
    /// `option` is `mode` or `dirmode`.
    #[error("{option} `{value}`: expected octal digits up to 7777")]
    BadMode { option: &'static str, value: String },
    /// `option` is `owner` or `dirowner`.
    #[error("{option} `{value}`: expected UID:GID in numbers")]
    BadOwner { option: &'static str, value: String },
    #[error("populate kind `{kind}`: expected image, device or dir")]
    UnknownPopulateKind { kind: String },
    #[error("the path names the root directory, not a file")]
    RootPath,
    #[error("path `{path}`: {error}")]
    BadPath { path: String, error: PathError },

    // what an image can hold
    #[error("{size} is too large for ext2/3/4 with {block_size}-byte blocks")]
    TooLargeForExt { size: String, block_size: u64 },
    #[error("{size} is too small for {}: at least {min_kib} KiB", fs_need(*.fs))]
    TooSmallForFs {
        size: String,
        fs: FsType,
        min_kib: u64,
    },
    #[error("inodes `{inodes}`: too many for a {size} volume with {block_size}-byte blocks (about {max} fit)")]
    TooManyInodes {
        inodes: u32,
        size: String,
        block_size: u64,
        max: u64,
    },
    #[error("`{option}` is an ext2/ext3 option; a swap area has none (its pages are 4096 bytes)")]
    SwapFsOption { option: &'static str },
    #[error("{size} is too small for a swap area: at least 40 KiB")]
    SwapTooSmall { size: String },
    #[error("{size} is too large for a swap area: at most 16 TiB")]
    SwapTooLarge { size: String },

    // order: what earlier expressions make
    /// `what` is how the expression refers to the path (`populate names`).
    #[error("{what} {}, which the `[image ... fs swap]` at line {swap_line} makes a swap area: it holds no files", .path.display())]
    SwapHoldsNoFiles {
        what: &'static str,
        path: PathBuf,
        swap_line: u32,
    },
    #[error("populate names the image {}, which neither exists nor is created by an earlier `[image]`", .path.display())]
    MissingImage { path: PathBuf },
    #[error("device {} does not exist", .path.display())]
    MissingDevice { path: PathBuf },
    #[error("{} does not exist and no earlier expression creates it", .path.display())]
    MissingInput { path: PathBuf },
    #[error("`[{keyword}` needs `archive URI` or `image IMAGE`: the tree to modify")]
    NeedsArchive { keyword: Keyword },
    #[error("patch names {}, which neither exists nor is created by an earlier expression", .path.display())]
    MissingPatchTarget { path: PathBuf },

    // clones and images edited in place
    #[error("format `{value}`: expected raw or qcow2")]
    BadFormat { value: String },
    #[error("a swap area is written raw; `format qcow2` is for ext2/3/4 images")]
    Qcow2Swap,
    #[error("{} is a qcow2 image: a raw clone would copy its qcow2 file; use `format qcow2` for an overlay over it", .base.display())]
    RawCloneOfQcow2 { base: PathBuf },
    #[error("`{key}` makes a new file system; a clone (`base`) keeps its base's")]
    CloneNewFs { key: String },
    #[error("a clone (`base`) keeps its base's label; give none")]
    CloneLabel,
    #[error("an image cannot be a clone of itself")]
    CloneOfItself,
    #[error("{what} {} is neither an ext2/ext3 image nor made by an earlier `[image]`", .path.display())]
    NotAnExtImage { what: String, path: PathBuf },
    #[error("give `archive` or `image`, not both: the tree to modify is one of them")]
    ArchiveAndImage,
    #[error("`{key}` writes what changed in an archive; an image is changed in place")]
    ArchiveOnlyOption { key: String },

    // warnings
    #[error("disk target `{target}` is relative: this file makes the image at {}, but `xl create` reads the path from its own working directory; write it absolute (for instance `${{dir}}/...`)", .made.display())]
    RelativeDiskTarget { target: String, made: PathBuf },
    #[error("disk target {} is a qcow2 image but the entry does not say `format=qcow2`: the domain would see the qcow2 file as raw blocks", .path.display())]
    Qcow2NotSaid { path: PathBuf },
    #[error("disk target {} is not a qcow2 image but the entry says `format=qcow2`", .path.display())]
    Qcow2Said { path: PathBuf },
}

/// What stood after an expression's `]` where `[end]` belongs.
fn found_text(found: &Option<String>) -> String {
    match found {
        Some(f) => format!("`{f}`"),
        None => "end of file".to_string(),
    }
}

/// The file system a too small image was meant for, and what it needs.
fn fs_need(fs: FsType) -> &'static str {
    match fs {
        FsType::Ext2 => "ext2",
        FsType::Ext4 => "ext4 (its journal needs 1 MiB)",
        _ => "ext3 (its journal needs 1 MiB)",
    }
}

/// One problem in a container file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub span: Span,
    pub kind: DiagnosticKind,
    /// A second location that explains the first (where a list or an
    /// expression was opened); boxed, as it is rare, to keep results
    /// carrying a diagnostic small.
    pub note: Option<Box<(Span, String)>>,
}

impl Diagnostic {
    pub fn new(span: Span, kind: DiagnosticKind) -> Diagnostic {
        Diagnostic {
            span,
            kind,
            note: None,
        }
    }

    pub fn with_note(mut self, span: Span, note: impl Into<String>) -> Diagnostic {
        self.note = Some(Box::new((span, note.into())));
        self
    }

    /// `FILE:LINE:COL: error: MESSAGE`, then the source line and a caret
    /// under the span, then the note the same way.
    pub fn render(&self, file: &str, text: &str) -> String {
        self.render_as("error", file, text)
    }

    /// The same, with another severity in place of `error` (`warning`).
    pub fn render_as(&self, severity: &str, file: &str, text: &str) -> String {
        let idx = LineIndex::new(text);
        let mut out = String::new();
        let _ = writeln!(out, "{file}:{}: {severity}: {}", self.span, self.kind);
        excerpt(&mut out, &idx, self.span);
        if let Some((span, note)) = self.note.as_deref() {
            let _ = writeln!(out, "{file}:{span}: note: {note}");
            excerpt(&mut out, &idx, *span);
        }
        out
    }
}

fn excerpt(out: &mut String, idx: &LineIndex<'_>, span: Span) {
    let line = idx.line_text(span.line);
    let shown: String = line
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let num = span.line.to_string();
    let pad = " ".repeat(num.len());
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{num} | {shown}");
    let col = span.col.saturating_sub(1) as usize;
    // the caret covers the span's characters on this line only
    let width = line
        .chars()
        .skip(col)
        .take(span.len.max(1))
        .scan(0usize, |bytes, c| {
            *bytes += c.len_utf8();
            (*bytes <= span.len.max(1)).then_some(())
        })
        .count()
        .max(1);
    let _ = writeln!(out, "{pad} | {}{}", " ".repeat(col), "^".repeat(width));
}
