//! The checked plan: what a container file asks for, in order, with every
//! word resolved (templates substituted, sizes and URIs parsed).

use super::ast::Span;
use crate::tree::TreePath;
use crate::uri::Uri;
use crate::xen;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A URI with the text it was written as (after templates) and its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriRef {
    pub uri: Uri,
    pub text: String,
    pub span: Span,
}

impl fmt::Display for UriRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.uri.fmt(f)
    }
}

/// How an image's bytes are stored: `format raw|qcow2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageFormat {
    /// Byte `n` of the volume is byte `n` of the file.
    #[default]
    Raw,
    /// QEMU's qcow2 (version 3): a fresh image, or with `base BASE` an
    /// overlay whose backing file is BASE.
    Qcow2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsType {
    Ext2,
    Ext3,
    /// ext4 with the features of mke2fs's ext4 (see `ext::Options::ext4`).
    Ext4,
    /// A Linux swap area: no file system, nothing can be populated into it.
    Swap,
}

/// What `[populate KIND ...]` writes into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    Image,
    Device,
    Dir,
}

/// The options shared by `replace` and `copy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    /// The tree modified.
    pub archive: UriRef,
    /// Where to write the diff between the archive as fetched and after.
    pub patch: Option<UriRef>,
    /// Where to store the tree after this expression as `cpio.gz`.
    pub fork: Option<UriRef>,
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
    /// The directories the expression makes.
    pub dirs: DirMeta,
}

/// The mode and owner of the directories an edit makes: the missing
/// ancestors of its path and the directories of a copied host tree.
/// Unset, a missing ancestor is 0755 0:0 and a copied directory keeps
/// the host's mode and takes the edit's `owner`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirMeta {
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
}

/// What `[patch]` modifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchTarget {
    /// The working tree of an archive.
    Archive(UriRef),
    /// A local ext2/ext3 image, updated in place.
    Image(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Create {
        src: PathBuf,
        dest: UriRef,
    },
    Image {
        path: PathBuf,
        size: u64,
        label: Vec<u8>,
        fs: FsType,
        block_size: Option<u32>,
        inodes: Option<u32>,
        uuid: Option<[u8; 16]>,
        /// `base BASE`: a clone of the ext2/ext3 image BASE (an image
        /// path, or one an earlier `[image]` makes), which is only read.
        base: Option<PathBuf>,
        /// `format qcow2`: a qcow2 image, or an overlay over `base`.
        format: ImageFormat,
    },
    Populate {
        kind: TargetKind,
        target: PathBuf,
        mount: String,
        source: UriRef,
    },
    Replace {
        path: TreePath,
        edit: Edit,
        content: Vec<u8>,
    },
    Copy {
        path: TreePath,
        edit: Edit,
        source: UriRef,
    },
    Patch {
        target: PatchTarget,
        patch: UriRef,
        fork: Option<UriRef>,
    },
    /// `[replace PATH image IMAGE ...]` and `[copy PATH image IMAGE ...]`:
    /// one file of an ext2/ext3 image written in place through its journal.
    Put {
        image: PathBuf,
        path: TreePath,
        content: PutContent,
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    },
}

/// What `Action::Put` writes: the text of a `replace`, or the file a
/// `copy` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutContent {
    Text(Vec<u8>),
    Source(UriRef),
}

/// Something an action reads, in the order it reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read<'a> {
    /// An archive read as a tree: populated, edited or patched (a local
    /// one may be a host directory).
    Tree(&'a UriRef),
    /// The unified diff `[patch]` applies.
    Patch(&'a UriRef),
    /// What `[copy]` puts into a tree: a file, or a host directory copied
    /// whole.
    Copy(&'a UriRef),
    /// The host directory `[create]` packs.
    Dir(&'a Path),
    /// The image a clone is made from (read only).
    Base(&'a Path),
}

/// Something an action writes, in the order it writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write<'a> {
    /// An archive, a diff or a fork the run publishes.
    Output(&'a UriRef),
    /// A new image, built whole.
    Image(&'a Path),
    /// An existing image, device or directory changed in place.
    Target(TargetKind, &'a Path),
}

impl Action {
    /// What the action reads.
    pub fn reads(&self) -> Vec<Read<'_>> {
        match self {
            Action::Create { src, .. } => vec![Read::Dir(src)],
            Action::Image { base, .. } => base.iter().map(|b| Read::Base(b)).collect(),
            Action::Put { content, .. } => match content {
                PutContent::Source(u) => vec![Read::Copy(u)],
                PutContent::Text(_) => Vec::new(),
            },
            Action::Populate { source, .. } => vec![Read::Tree(source)],
            Action::Replace { edit, .. } => vec![Read::Tree(&edit.archive)],
            Action::Copy { edit, source, .. } => {
                vec![Read::Tree(&edit.archive), Read::Copy(source)]
            }
            Action::Patch { target, patch, .. } => match target {
                PatchTarget::Archive(a) => vec![Read::Tree(a), Read::Patch(patch)],
                PatchTarget::Image(_) => vec![Read::Patch(patch)],
            },
        }
    }

    /// What the action writes.
    pub fn writes(&self) -> Vec<Write<'_>> {
        match self {
            Action::Create { dest, .. } => vec![Write::Output(dest)],
            Action::Image { path, .. } => vec![Write::Image(path)],
            Action::Put { image, .. } => vec![Write::Target(TargetKind::Image, image)],
            Action::Populate { kind, target, .. } => vec![Write::Target(*kind, target)],
            Action::Replace { edit, .. } | Action::Copy { edit, .. } => edit
                .patch
                .iter()
                .chain(edit.fork.iter())
                .map(Write::Output)
                .collect(),
            Action::Patch { target, fork, .. } => {
                let mut w = Vec::new();
                if let PatchTarget::Image(p) = target {
                    w.push(Write::Target(TargetKind::Image, p));
                }
                w.extend(fork.iter().map(Write::Output));
                w
            }
        }
    }

    /// The archives, diffs and forks the action publishes.
    pub fn outputs(&self) -> impl Iterator<Item = &UriRef> {
        self.writes().into_iter().filter_map(|w| match w {
            Write::Output(u) => Some(u),
            _ => None,
        })
    }
}

/// One step of the plan and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// The stripped Xen config.
    pub stripped: String,
    /// The Xen settings the stripped config defines, as `xl` reads them.
    pub settings: BTreeMap<String, xen::Value>,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Create { src, dest } => write!(f, "create {} -> {dest}", src.display()),
            Action::Image {
                path,
                size,
                base: Some(base),
                format,
                ..
            } => write!(
                f,
                "image {} {} bytes, {} {}",
                path.display(),
                size,
                match format {
                    ImageFormat::Raw => "a clone of",
                    ImageFormat::Qcow2 => "a qcow2 overlay over",
                },
                base.display()
            ),
            Action::Image {
                path,
                size,
                label,
                fs,
                format,
                ..
            } => write!(
                f,
                "image {} {} bytes {}{} label {:?}",
                path.display(),
                size,
                match fs {
                    FsType::Ext2 => "ext2",
                    FsType::Ext3 => "ext3",
                    FsType::Ext4 => "ext4",
                    FsType::Swap => "swap",
                },
                match format {
                    ImageFormat::Raw => "",
                    ImageFormat::Qcow2 => " qcow2",
                },
                String::from_utf8_lossy(label)
            ),
            Action::Put {
                image,
                path,
                content,
                ..
            } => match content {
                PutContent::Text(t) => write!(
                    f,
                    "replace {} in image {} ({} bytes)",
                    path.display_abs(),
                    image.display(),
                    t.len()
                ),
                PutContent::Source(u) => write!(
                    f,
                    "copy {u} to {} in image {}",
                    path.display_abs(),
                    image.display()
                ),
            },
            Action::Populate {
                kind,
                target,
                source,
                ..
            } => write!(
                f,
                "populate {} {} from {source}",
                match kind {
                    TargetKind::Image => "image",
                    TargetKind::Device => "device",
                    TargetKind::Dir => "dir",
                },
                target.display()
            ),
            Action::Replace {
                path,
                edit,
                content,
            } => {
                write!(
                    f,
                    "replace {} in {} ({} bytes)",
                    path.display_abs(),
                    edit.archive,
                    content.len()
                )?;
                edit_tail(f, edit)
            }
            Action::Copy { path, edit, source } => {
                write!(
                    f,
                    "copy {source} to {} in {}",
                    path.display_abs(),
                    edit.archive
                )?;
                edit_tail(f, edit)
            }
            Action::Patch {
                target,
                patch,
                fork,
            } => {
                match target {
                    PatchTarget::Archive(u) => write!(f, "patch archive {u} with {patch}")?,
                    PatchTarget::Image(p) => write!(f, "patch image {} with {patch}", p.display())?,
                }
                if let Some(fk) = fork {
                    write!(f, ", fork -> {fk}")?;
                }
                Ok(())
            }
        }
    }
}

fn edit_tail(f: &mut fmt::Formatter<'_>, e: &Edit) -> fmt::Result {
    if let Some(p) = &e.patch {
        write!(f, ", diff -> {p}")?;
    }
    if let Some(k) = &e.fork {
        write!(f, ", fork -> {k}")?;
    }
    Ok(())
}
