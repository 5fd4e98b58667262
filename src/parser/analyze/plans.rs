//! Each expression checked against what came before it and turned into
//! a plan step.

use super::super::ast::{Expr, Span};
use super::super::diagnostic::DiagnosticKind;
use super::super::plan::{
    Action, DirMeta, Edit, FsType, PatchTarget, PutContent, TargetKind, UriRef,
};
use super::super::template::substitute;
use super::args::{parse_mode, parse_owner, parse_size, parse_uuid, Arg, OptionKey};
use super::Analyzer;
use crate::tree::TreePath;
use std::path::{Path, PathBuf};

option_keys! {
    /// The options of `[image]`.
    enum ImageKey {
        Fs = "fs",
        BlockSize = "blocksize",
        Inodes = "inodes",
        Uuid = "uuid",
        Base = "base",
        Format = "format",
    }
}

option_keys! {
    /// The options of `[replace]` and `[copy]`.
    enum EditKey {
        Archive = "archive",
        Patch = "patch",
        Fork = "fork",
        Mode = "mode",
        Owner = "owner",
        Image = "image",
        DirMode = "dirmode",
        DirOwner = "dirowner",
    }
}

impl Analyzer<'_> {
    pub(super) fn create(&mut self, e: &Expr, words: &[Arg]) -> Option<Action> {
        const USAGE: &str = "[create SRC-DIR DEST-URI][end]";
        if words.len() < 2 {
            let what = if words.is_empty() {
                "SRC-DIR and DEST-URI"
            } else {
                "DEST-URI"
            };
            self.missing(e, words, what, USAGE);
            return None;
        }
        if let Some(w) = words.get(2) {
            self.extra(e, w, USAGE);
            return None;
        }
        let src = self.path(&words[0]);
        let dest = self.uri(&words[1])?;
        if let Some(p) = dest.uri.local_path() {
            self.produced.insert(p.to_path_buf());
        }
        Some(Action::Create { src, dest })
    }

    pub(super) fn image(&mut self, e: &Expr, words: &[Arg]) -> Option<Action> {
        const USAGE: &str =
            "[image PATH SIZE [LABEL] [fs ext2|ext3|ext4|swap] [blocksize N] [inodes N] [uuid U] [base BASE [format raw]]][end]";
        if words.len() < 2 {
            let what = if words.is_empty() {
                "PATH and SIZE"
            } else {
                "SIZE"
            };
            self.missing(e, words, what, USAGE);
            return None;
        }
        let path = self.path(&words[0]);
        let size = match parse_size(&words[1].text) {
            Ok(s) => s,
            Err(m) => {
                // `2 GB`: the unit was meant, a space split it off
                let split_unit = words.get(2).filter(|u| {
                    words[1].text.bytes().all(|b| b.is_ascii_digit())
                        && parse_size(&format!("1{}", u.text)).is_ok()
                });
                let kind = match split_unit {
                    Some(u) => DiagnosticKind::SizeSplitUnit {
                        number: words[1].text.clone(),
                        unit: u.text.clone(),
                    },
                    None => DiagnosticKind::Size(m),
                };
                self.err(words[1].span(), kind);
                return None;
            }
        };
        let mut rest = &words[2..];
        let mut label = Vec::new();
        if let Some(w) = rest.first() {
            if w.key::<ImageKey>().is_none() {
                let s = &w.text;
                if s.len() > 16 {
                    self.err(w.span(), DiagnosticKind::LabelTooLong { label: s.clone() });
                    return None;
                }
                label = s.as_bytes().to_vec();
                rest = &rest[1..];
            }
        }
        let (mut fs, mut block_size, mut inodes, mut uuid) = (FsType::Ext3, None, None, None);
        let mut inodes_at = None;
        let (mut base, mut format, mut fs_given) = (None, None, None);
        let opts = self.options::<ImageKey>(e, rest, USAGE)?;
        // options that only a file system has, for a swap area's error
        let mut fs_only: Vec<(&'static str, Span)> = Vec::new();
        for opt in opts {
            let (w, v) = (opt.value, &opt.value.text);
            if matches!(opt.key, ImageKey::BlockSize | ImageKey::Inodes) {
                // point at the option's name, not its value
                fs_only.push((opt.key.name(), opt.name.span()));
            }
            if !matches!(opt.key, ImageKey::Base | ImageKey::Format) {
                fs_given.get_or_insert((opt.key.name(), opt.name.span()));
            }
            match opt.key {
                ImageKey::Base => base = Some((self.path(w), w.span())),
                ImageKey::Format => match v.as_str() {
                    "raw" => format = Some(w.span()),
                    "qcow2" => {
                        self.err(w.span(), DiagnosticKind::Qcow2Clone);
                        return None;
                    }
                    other => {
                        self.err(
                            w.span(),
                            DiagnosticKind::BadFormat {
                                value: other.to_string(),
                            },
                        );
                        return None;
                    }
                },
                ImageKey::Fs => match v.as_str() {
                    "ext2" => fs = FsType::Ext2,
                    "ext3" => fs = FsType::Ext3,
                    "ext4" => fs = FsType::Ext4,
                    "swap" => fs = FsType::Swap,
                    other => {
                        self.err(
                            w.span(),
                            DiagnosticKind::UnknownFs {
                                fs: other.to_string(),
                            },
                        );
                        return None;
                    }
                },
                ImageKey::BlockSize => match v.parse::<u32>() {
                    Ok(n @ (1024 | 2048 | 4096)) => block_size = Some(n),
                    _ => {
                        self.err(w.span(), DiagnosticKind::BadBlockSize { value: v.clone() });
                        return None;
                    }
                },
                ImageKey::Inodes => match v.parse::<u32>() {
                    Ok(n) if n >= 16 => {
                        inodes = Some(n);
                        inodes_at = Some(w.span());
                    }
                    _ => {
                        self.err(w.span(), DiagnosticKind::BadInodes { value: v.clone() });
                        return None;
                    }
                },
                ImageKey::Uuid => match parse_uuid(v) {
                    Some(u) => uuid = Some(u),
                    None => {
                        self.err(w.span(), DiagnosticKind::BadUuid { value: v.clone() });
                        return None;
                    }
                },
            }
        }
        if let Some((base, base_span)) = base {
            return self.clone_image(path, size, base, base_span, &label, fs_given);
        }
        if let Some(span) = format {
            self.err(span, DiagnosticKind::FormatWithoutBase);
            return None;
        }
        if fs == FsType::Swap {
            let action = self.swap_image(path.clone(), size, label, uuid, &words[1], &fs_only)?;
            self.images.remove(&path);
            self.swaps.insert(path, e.keyword_span);
            return Some(action);
        }
        self.swaps.remove(&path);
        let bs = block_size.unwrap_or(if size >= 512 << 20 { 4096 } else { 1024 }) as u64;
        if size / bs > u32::MAX as u64 {
            self.err(
                words[1].span(),
                DiagnosticKind::TooLargeForExt {
                    size: words[1].text.clone(),
                    block_size: bs,
                },
            );
            return None;
        }
        let journal = fs != FsType::Ext2;
        let min = if journal { 2 << 20 } else { 256 << 10 };
        if size < min {
            self.err(
                words[1].span(),
                DiagnosticKind::TooSmallForFs {
                    size: words[1].text.clone(),
                    fs,
                    min_kib: min >> 10,
                },
            );
            return None;
        }
        if let (Some(n), Some(at)) = (inodes, inodes_at) {
            if let Some(max) = too_many_inodes(size, bs, journal, n) {
                self.err(
                    at,
                    DiagnosticKind::TooManyInodes {
                        inodes: n,
                        size: words[1].text.clone(),
                        block_size: bs,
                        max,
                    },
                );
                return None;
            }
        }
        self.images.insert(path.clone());
        Some(Action::Image {
            path,
            size,
            label,
            fs,
            block_size,
            inodes,
            uuid,
            base: None,
        })
    }

    /// `[image PATH SIZE base BASE]`: a clone has its base's file system,
    /// so it takes no option that would make another.
    fn clone_image(
        &mut self,
        path: PathBuf,
        size: u64,
        base: PathBuf,
        base_span: Span,
        label: &[u8],
        fs_given: Option<(&str, Span)>,
    ) -> Option<Action> {
        if let Some((key, span)) = fs_given {
            self.err(
                span,
                DiagnosticKind::CloneNewFs {
                    key: key.to_string(),
                },
            );
            return None;
        }
        if !label.is_empty() {
            self.err(base_span, DiagnosticKind::CloneLabel);
            return None;
        }
        if base == path {
            self.err(base_span, DiagnosticKind::CloneOfItself);
            return None;
        }
        if !self.ext_image(base_span, &base, "base") {
            return None;
        }
        self.swaps.remove(&path);
        self.images.insert(path.clone());
        Some(Action::Image {
            path,
            size,
            label: Vec::new(),
            fs: FsType::Ext3,
            block_size: None,
            inodes: None,
            uuid: None,
            base: Some(base),
        })
    }

    /// Reports `path` (named by the option `what`) unless it is an
    /// ext2/ext3 image that exists or an earlier `[image]` makes.
    fn ext_image(&mut self, span: Span, path: &Path, what: &'static str) -> bool {
        let names = if what == "base" {
            "base names"
        } else {
            "image names"
        };
        if !self.not_swap(span, path, names) {
            return false;
        }
        if self.images.contains(path) || self.world.is_ext_image(path) {
            return true;
        }
        self.err(
            span,
            DiagnosticKind::NotAnExtImage {
                what: what.to_string(),
                path: path.to_path_buf(),
            },
        );
        false
    }

    /// `[image ... fs swap]`: a swap area has pages, not blocks or inodes.
    pub(super) fn swap_image(
        &mut self,
        path: PathBuf,
        size: u64,
        label: Vec<u8>,
        uuid: Option<[u8; 16]>,
        size_word: &Arg,
        fs_only: &[(&'static str, Span)],
    ) -> Option<Action> {
        if let Some((key, span)) = fs_only.first() {
            self.err(*span, DiagnosticKind::SwapFsOption { option: key });
            return None;
        }
        // mkswap's limits for 4 KiB pages: 10 pages at least, and the last
        // page's number must fit in 32 bits
        let pages = size / 4096;
        if pages < 10 {
            self.err(
                size_word.span(),
                DiagnosticKind::SwapTooSmall {
                    size: size_word.text.clone(),
                },
            );
            return None;
        }
        if pages - 1 > u32::MAX as u64 {
            self.err(
                size_word.span(),
                DiagnosticKind::SwapTooLarge {
                    size: size_word.text.clone(),
                },
            );
            return None;
        }
        Some(Action::Image {
            path,
            size,
            label,
            fs: FsType::Swap,
            block_size: None,
            inodes: None,
            uuid,
            base: None,
        })
    }

    /// Reports `path` when an earlier `[image ... fs swap]` makes it a swap
    /// area: it holds no tree to populate, patch or edit.
    pub(super) fn not_swap(&mut self, span: Span, path: &Path, what: &'static str) -> bool {
        let Some(at) = self.swaps.get(path) else {
            return true;
        };
        let kind = DiagnosticKind::SwapHoldsNoFiles {
            what,
            path: path.to_path_buf(),
            swap_line: at.line,
        };
        self.err(span, kind);
        false
    }

    pub(super) fn populate(&mut self, e: &Expr, words: &[Arg]) -> Option<Action> {
        const USAGE: &str = "[populate image|device|dir TARGET MOUNT SOURCE-URI][end]";
        if words.len() < 4 {
            let names = ["KIND", "TARGET", "MOUNT", "SOURCE-URI"];
            self.missing(e, words, &names[words.len()..].join(" and "), USAGE);
            return None;
        }
        if let Some(w) = words.get(4) {
            self.extra(e, w, USAGE);
            return None;
        }
        let kind = match words[0].text.as_str() {
            "image" => TargetKind::Image,
            "device" => TargetKind::Device,
            "dir" => TargetKind::Dir,
            other => {
                self.err(
                    words[0].span(),
                    DiagnosticKind::UnknownPopulateKind {
                        kind: other.to_string(),
                    },
                );
                return None;
            }
        };
        let target = self.path(&words[1]);
        if !self.not_swap(words[1].span(), &target, "populate names") {
            return None;
        }
        match kind {
            TargetKind::Image if !self.images.contains(&target) && !self.world.exists(&target) => {
                self.err(
                    words[1].span(),
                    DiagnosticKind::MissingImage { path: target },
                );
                return None;
            }
            TargetKind::Device if !self.world.exists(&target) => {
                self.err(
                    words[1].span(),
                    DiagnosticKind::MissingDevice { path: target },
                );
                return None;
            }
            _ => {}
        }
        let source = self.uri(&words[3])?;
        self.check_local_input(&source);
        Some(Action::Populate {
            kind,
            target,
            mount: words[2].text.clone(),
            source,
        })
    }

    /// A local input must exist now or be written by an earlier expression.
    pub(super) fn check_local_input(&mut self, u: &UriRef) {
        if let Some(p) = u.uri.local_path() {
            if !self.produced.contains(p) && !self.world.exists(p) {
                self.err(
                    u.span,
                    DiagnosticKind::MissingInput {
                        path: p.to_path_buf(),
                    },
                );
            }
        }
    }

    /// PATH and the options of `replace`/`copy`; `positional` collects the
    /// words that are not options (copy's SOURCE-URI).
    pub(super) fn edit(
        &mut self,
        e: &Expr,
        words: &[Arg],
        usage: &'static str,
        positional: &mut Vec<Arg>,
    ) -> Option<(TreePath, Edited)> {
        let Some(pw) = words.first() else {
            self.missing(e, words, "PATH", usage);
            return None;
        };
        let ps = &pw.text;
        let path = match TreePath::from_absolute(ps.as_bytes()) {
            Ok(p) if !p.is_root() => p,
            Ok(_) => {
                self.err(pw.span(), DiagnosticKind::RootPath);
                return None;
            }
            Err(err) => {
                self.err(
                    pw.span(),
                    DiagnosticKind::BadPath {
                        path: ps.clone(),
                        error: err,
                    },
                );
                return None;
            }
        };
        // split options from positional words
        let mut opt_words: Vec<Arg> = Vec::new();
        let mut i = 1;
        while i < words.len() {
            if words[i].key::<EditKey>().is_some() {
                opt_words.extend(words[i..].iter().take(2).cloned());
                i += 2;
            } else {
                positional.push(words[i].clone());
                i += 1;
            }
        }
        let opts = self.options::<EditKey>(e, &opt_words, usage)?;
        let (mut archive, mut patch, mut fork) = (None, None, None);
        let (mut mode, mut owner, mut dir_mode, mut dir_owner) = (None, None, None, None);
        let mut image: Option<(PathBuf, Span)> = None;
        let mut archive_only: Option<(&str, Span)> = None;
        for opt in opts {
            let (w, v) = (opt.value, &opt.value.text);
            match opt.key {
                EditKey::Archive => archive = Some(self.uri(w)?),
                EditKey::Image => image = Some((self.path(w), w.span())),
                EditKey::Patch | EditKey::Fork => {
                    archive_only.get_or_insert((opt.key.name(), opt.name.span()));
                    let u = Some(self.uri(w)?);
                    if opt.key == EditKey::Patch {
                        patch = u;
                    } else {
                        fork = u;
                    }
                }
                EditKey::Mode | EditKey::DirMode => match parse_mode(v) {
                    Some(m) if opt.key == EditKey::Mode => mode = Some(m),
                    Some(m) => {
                        archive_only.get_or_insert((opt.key.name(), opt.name.span()));
                        dir_mode = Some(m)
                    }
                    None => {
                        self.err(
                            w.span(),
                            DiagnosticKind::BadMode {
                                option: opt.key.name(),
                                value: v.clone(),
                            },
                        );
                        return None;
                    }
                },
                EditKey::Owner | EditKey::DirOwner => match parse_owner(v) {
                    Some(o) if opt.key == EditKey::Owner => owner = Some(o),
                    Some(o) => {
                        archive_only.get_or_insert((opt.key.name(), opt.name.span()));
                        dir_owner = Some(o)
                    }
                    None => {
                        self.err(
                            w.span(),
                            DiagnosticKind::BadOwner {
                                option: opt.key.name(),
                                value: v.clone(),
                            },
                        );
                        return None;
                    }
                },
            }
        }
        if let Some((image, span)) = image {
            if let Some(a) = &archive {
                self.err(a.span, DiagnosticKind::ArchiveAndImage);
                return None;
            }
            if let Some((key, at)) = archive_only {
                self.err(
                    at,
                    DiagnosticKind::ArchiveOnlyOption {
                        key: key.to_string(),
                    },
                );
                return None;
            }
            if !self.ext_image(span, &image, "image") {
                return None;
            }
            return Some((path, Edited::Image { image, mode, owner }));
        }
        let Some(archive) = archive else {
            self.err(
                e.keyword_span,
                DiagnosticKind::NeedsArchive { keyword: e.keyword },
            );
            return None;
        };
        if let Some(p) = archive.uri.local_path().map(Path::to_path_buf) {
            if !self.not_swap(archive.span, &p, "archive names") {
                return None;
            }
        }
        self.check_local_input(&archive);
        for out in [&patch, &fork].into_iter().flatten() {
            if let Some(p) = out.uri.local_path() {
                self.produced.insert(p.to_path_buf());
            }
        }
        Some((
            path,
            Edited::Archive(Box::new(Edit {
                archive,
                patch,
                fork,
                mode,
                owner,
                dirs: DirMeta {
                    mode: dir_mode,
                    owner: dir_owner,
                },
            })),
        ))
    }

    pub(super) fn replace(&mut self, e: &Expr, words: &[Arg]) -> Option<Action> {
        // the text follows a blank line inside the brackets
        const USAGE: &str = "[replace PATH archive URI|image IMAGE [patch URI] [fork URI] [mode OCTAL] [owner UID:GID] [dirmode OCTAL] [dirowner UID:GID], a blank line, TEXT, then `] [end]`";
        let mut positional = Vec::new();
        let (path, edit) = self.edit(e, words, USAGE, &mut positional)?;
        if let Some(w) = positional.first() {
            self.extra(e, w, USAGE);
            return None;
        }
        let content = match &e.body {
            None => Vec::new(),
            Some(b) => match substitute(&b.content(), &mut self.vars) {
                Ok(s) => s.into_bytes(),
                Err(err) => {
                    // locate the variable in the body text
                    let body_span = b.span();
                    let found = self.text[body_span.offset..]
                        .find(&b.content()[err.offset..err.offset + err.len])
                        .map(|k| body_span.offset + k)
                        .unwrap_or(body_span.offset);
                    let span = self.span(found, err.len);
                    self.err(span, err.kind);
                    return None;
                }
            },
        };
        Some(match edit {
            Edited::Archive(edit) => Action::Replace {
                path,
                edit: *edit,
                content,
            },
            Edited::Image { image, mode, owner } => Action::Put {
                image,
                path,
                content: PutContent::Text(content),
                mode,
                owner,
            },
        })
    }

    pub(super) fn copy(&mut self, e: &Expr, words: &[Arg]) -> Option<Action> {
        const USAGE: &str = "[copy PATH archive URI|image IMAGE [patch URI] [fork URI] [mode OCTAL] [owner UID:GID] [dirmode OCTAL] [dirowner UID:GID] SOURCE-URI][end]";
        let mut positional = Vec::new();
        let (path, edit) = self.edit(e, words, USAGE, &mut positional)?;
        let Some(sw) = positional.first() else {
            self.missing(e, words, "SOURCE-URI", USAGE);
            return None;
        };
        if let Some(w) = positional.get(1) {
            self.extra(e, w, USAGE);
            return None;
        }
        let source = self.uri(sw)?;
        self.check_local_input(&source);
        Some(match edit {
            Edited::Archive(edit) => Action::Copy {
                path,
                edit: *edit,
                source,
            },
            Edited::Image { image, mode, owner } => Action::Put {
                image,
                path,
                content: PutContent::File(source),
                mode,
                owner,
            },
        })
    }

    pub(super) fn patch(&mut self, e: &Expr, words: &[Arg]) -> Option<Action> {
        const USAGE: &str = "[patch TARGET PATCH-URI [FORK-URI]][end]";
        if words.len() < 2 {
            let what = if words.is_empty() {
                "TARGET and PATCH-URI"
            } else {
                "PATCH-URI"
            };
            self.missing(e, words, what, USAGE);
            return None;
        }
        if let Some(w) = words.get(3) {
            self.extra(e, w, USAGE);
            return None;
        }
        let target_ref = self.uri(&words[0])?;
        if let Some(p) = target_ref.uri.local_path().map(Path::to_path_buf) {
            if !self.not_swap(words[0].span(), &p, "patch names") {
                return None;
            }
        }
        let target = match target_ref.uri.local_path().map(Path::to_path_buf) {
            Some(p) if self.images.contains(&p) => PatchTarget::Image(p),
            Some(p) if looks_like_archive(&p) => {
                self.check_local_input(&target_ref);
                PatchTarget::Archive(target_ref)
            }
            Some(p) if self.world.is_ext_image(&p) => PatchTarget::Image(p),
            Some(p) if self.world.exists(&p) || self.produced.contains(&p) => {
                PatchTarget::Archive(target_ref)
            }
            Some(p) => {
                self.err(
                    words[0].span(),
                    DiagnosticKind::MissingPatchTarget { path: p },
                );
                return None;
            }
            None => PatchTarget::Archive(target_ref),
        };
        let patch = self.uri(&words[1])?;
        self.check_local_input(&patch);
        let fork = match words.get(2) {
            Some(w) => Some(self.uri(w)?),
            None => None,
        };
        if let Some(p) = fork.as_ref().and_then(|f| f.uri.local_path()) {
            self.produced.insert(p.to_path_buf());
        }
        Some(Action::Patch {
            target,
            patch,
            fork,
        })
    }
}

/// What `replace` and `copy` change: an archive's working tree, or an
/// image in place.
pub(super) enum Edited {
    Archive(Box<Edit>),
    Image {
        image: PathBuf,
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    },
}

fn looks_like_archive(p: &Path) -> bool {
    let s = p.to_string_lossy();
    [".cpio.gz", ".cpio", ".cgz", ".gz"]
        .iter()
        .any(|ext| s.ends_with(ext))
}

/// `Some(about how many fit)` when `n` inodes cannot be laid out on an
/// ext2/ext3 volume of `size` bytes with `bs`-byte blocks: each block
/// group's inode bitmap is one block (8 × `bs` inodes at most), and the
/// inode tables (256 bytes an inode) with the journal must leave room for
/// the rest of the file system. The writer decides the exact layout; this
/// catches what could never fit when the file is checked, not mid-run.
fn too_many_inodes(size: u64, bs: u64, journal: bool, n: u32) -> Option<u64> {
    const INODE: u64 = 256;
    let first = u64::from(bs == 1024);
    let groups = (size / bs).saturating_sub(first).div_ceil(8 * bs).max(1);
    let unit = (bs / INODE).max(8);
    let per_group = u64::from(n).div_ceil(groups).max(16).div_ceil(unit) * unit;
    let journal = if journal { 1 << 20 } else { 0 };
    // at most 3/4 of what is left after the journal goes to inode tables
    let room = (size.saturating_sub(journal) / 4 * 3) / INODE;
    let max =
        (groups * 8 * bs).min(room).min(u64::from(u32::MAX)) / (groups * unit) * (groups * unit);
    (per_group > 8 * bs || per_group * groups > max.max(groups * unit)).then_some(max)
}
