//! `[image]`: new ext2/3/4 and swap images and clones of an image, checked
//! against what came before them and turned into a plan step.

use super::super::ast::{Expr, Span};
use super::super::diagnostic::DiagnosticKind;
use super::super::plan::{Action, FsType, ImageFormat};
use super::args::{parse_size, parse_uuid, Arg, OptionKey};
use super::Analyzer;
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

impl Analyzer<'_> {
    pub(super) fn image(&mut self, e: &Expr, words: &[Arg]) -> Option<Action> {
        const USAGE: &str =
            "[image PATH SIZE [LABEL] [fs ext2|ext3|ext4|swap] [blocksize N] [inodes N] [uuid U] [base BASE] [format raw|qcow2]][end]";
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
        let (mut base, mut fs_given) = (None, None);
        let (mut format, mut format_at) = (ImageFormat::Raw, None);
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
                    "raw" => format = ImageFormat::Raw,
                    "qcow2" => {
                        format = ImageFormat::Qcow2;
                        format_at = Some(w.span());
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
            return self.clone_image(path, size, base, base_span, &label, fs_given, format);
        }
        if fs == FsType::Swap {
            if let Some(span) = format_at {
                self.err(span, DiagnosticKind::Qcow2Swap);
                return None;
            }
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
        self.set_qcow2(&path, format);
        Some(Action::Image {
            path,
            size,
            label,
            fs,
            block_size,
            inodes,
            uuid,
            base: None,
            format,
        })
    }

    /// Records whether an image this container makes is qcow2.
    fn set_qcow2(&mut self, path: &Path, format: ImageFormat) {
        if format == ImageFormat::Qcow2 {
            self.qcow2.insert(path.to_path_buf());
        } else {
            self.qcow2.remove(path);
        }
    }

    /// `[image PATH SIZE base BASE]`: a clone has its base's file system,
    /// so it takes no option that would make another. A raw clone is a
    /// copy of a raw base; a qcow2 one an overlay over a base of either.
    #[allow(clippy::too_many_arguments)]
    fn clone_image(
        &mut self,
        path: PathBuf,
        size: u64,
        base: PathBuf,
        base_span: Span,
        label: &[u8],
        fs_given: Option<(&str, Span)>,
        format: ImageFormat,
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
        let base_qcow2 = if self.images.contains(&base) {
            self.qcow2.contains(&base)
        } else {
            self.world.is_qcow2(&base)
        };
        if format == ImageFormat::Raw && base_qcow2 {
            self.err(base_span, DiagnosticKind::RawCloneOfQcow2 { base });
            return None;
        }
        self.swaps.remove(&path);
        self.images.insert(path.clone());
        self.set_qcow2(&path, format);
        Some(Action::Image {
            path,
            size,
            label: Vec::new(),
            fs: FsType::Ext3,
            block_size: None,
            inodes: None,
            uuid: None,
            base: Some(base),
            format,
        })
    }

    /// Reports `path` (named by the option `what`) unless it is an
    /// ext2/ext3 image that exists or an earlier `[image]` makes.
    pub(super) fn ext_image(&mut self, span: Span, path: &Path, what: &'static str) -> bool {
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
            format: ImageFormat::Raw,
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
