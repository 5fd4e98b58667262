//! Each expression checked against what came before it and turned into
//! a plan step.

use super::super::ast::{Expr, Span};
use super::super::diagnostic::DiagnosticKind;
use super::super::plan::{Action, DirMeta, Edit, PatchTarget, PutContent, TargetKind, UriRef};
use super::super::template::substitute;
use super::args::{parse_mode, parse_owner, Arg, OptionKey};
use super::Analyzer;
use crate::tree::TreePath;
use std::path::{Path, PathBuf};

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
        let dest = self.output_uri(&words[1])?;
        if let Some(p) = dest.uri.local_path() {
            self.produced.insert(p.to_path_buf());
        }
        Some(Action::Create { src, dest })
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
                    if opt.key == EditKey::Patch {
                        patch = Some(self.uri(w)?);
                    } else {
                        fork = Some(self.output_uri(w)?);
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
                content: PutContent::Source(source),
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
            Some(w) => Some(self.output_uri(w)?),
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
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    name.ends_with(".gz") || matches!(crate::archive::output::named_format(&name), Ok(Some(_)))
}
