//! Syntax tree → checked [`Plan`]: templates substituted, every argument
//! parsed, the order of images checked, and the stripped config built.
//!
//! Every problem is collected, so `check` reports them all at once.

use super::ast::{Container, Expr, Item, Keyword, LineIndex, Span, Word, XenItem};
use super::diagnostic::Diagnostic;
use super::plan::{Action, Edit, FsType, PatchTarget, Plan, Step, TargetKind, UriRef};
use super::template::{substitute, VarValue, Vars};
use crate::tree::TreePath;
use crate::uri::Uri;
use crate::xen;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// What the analysis needs to know about the host, kept behind a trait so
/// the front end stays pure.
pub trait World {
    fn exists(&self, path: &Path) -> bool;
    /// True when `path` holds an ext2/3/4 file system.
    fn is_ext_image(&self, path: &Path) -> bool;
}

/// A world where nothing exists: for tests and `strip`.
pub struct EmptyWorld;

impl World for EmptyWorld {
    fn exists(&self, _: &Path) -> bool {
        false
    }
    fn is_ext_image(&self, _: &Path) -> bool {
        false
    }
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--set NAME=VALUE`, in order.
    pub set: Vec<(String, String)>,
    /// Relative paths and URIs are resolved against this directory (the
    /// container file's).
    pub base_dir: PathBuf,
}

struct Analyzer<'a> {
    text: &'a str,
    idx: LineIndex<'a>,
    opts: &'a Options,
    world: &'a dyn World,
    vars: Vars,
    errors: Vec<Diagnostic>,
    steps: Vec<Step>,
    images: HashSet<PathBuf>,
    /// Swap areas made by `[image ... fs swap]`, and where.
    swaps: BTreeMap<PathBuf, Span>,
    produced: HashSet<PathBuf>,
    settings: BTreeMap<String, xen::Value>,
}

/// Checks a parsed container and builds its plan.
pub fn analyze(
    container: &Container,
    text: &str,
    opts: &Options,
    world: &dyn World,
) -> Result<Plan, Vec<Diagnostic>> {
    let mut a = Analyzer {
        text,
        idx: LineIndex::new(text),
        opts,
        world,
        vars: Vars {
            set: opts.set.iter().cloned().collect(),
            file: BTreeMap::new(),
            inserted: 0,
        },
        errors: Vec::new(),
        steps: Vec::new(),
        images: HashSet::new(),
        swaps: BTreeMap::new(),
        produced: HashSet::new(),
        settings: BTreeMap::new(),
    };
    for (name, value) in &opts.set {
        if value.contains('\n') || value.contains('\r') {
            a.errors.push(Diagnostic::new(
                Span::default(),
                format!("--set {name}=...: a value cannot hold a line break"),
            ));
        }
    }
    let mut stripped = String::with_capacity(text.len());
    let mut cursor = 0;
    for item in &container.items {
        match item {
            Item::Xen(x) => {
                stripped.push_str(&text[cursor..x.span.offset]);
                match a.xen(x) {
                    Some(s) => stripped.push_str(&s),
                    None => stripped.push_str(&text[x.span.offset..x.span.end()]),
                }
                cursor = x.span.end();
            }
            Item::Expr(e) => {
                let (from, to) = removal_range(text, e.span.offset, e.span.end());
                stripped.push_str(&text[cursor..from.max(cursor)]);
                cursor = to;
                a.expr(e);
            }
        }
    }
    stripped.push_str(&text[cursor.min(text.len())..]);
    if a.errors.is_empty() {
        Ok(Plan {
            steps: a.steps,
            stripped,
            settings: a.settings,
        })
    } else {
        a.errors.sort_by_key(|d| d.span.offset);
        Err(a.errors)
    }
}

/// An expression alone on its lines is removed with those lines; one that
/// shares a line with other text is removed exactly.
fn removal_range(text: &str, start: usize, end: usize) -> (usize, usize) {
    let line_start = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let before_blank = text[line_start..start]
        .chars()
        .all(|c| c == ' ' || c == '\t');
    let line_end = text[end..]
        .find('\n')
        .map(|i| end + i + 1)
        .unwrap_or(text.len());
    let after_blank = text[end..line_end].trim().is_empty();
    if before_blank && after_blank {
        (line_start, line_end)
    } else {
        (start, end)
    }
}

const EDIT_OPTIONS: [&str; 5] = ["archive", "patch", "fork", "mode", "owner"];
const IMAGE_OPTIONS: [&str; 4] = ["fs", "blocksize", "inodes", "uuid"];

impl<'a> Analyzer<'a> {
    fn span(&self, offset: usize, len: usize) -> Span {
        self.idx.span(offset, len)
    }

    fn err(&mut self, span: Span, msg: impl Into<String>) {
        self.errors.push(Diagnostic::new(span, msg));
    }

    /// Substitutes templates in a Xen statement's value (or applies a
    /// `--set` override), re-reads it strictly and records its value.
    /// Returns the statement's text for the stripped config.
    fn xen(&mut self, x: &XenItem) -> Option<String> {
        let text = self.text;
        let name = &x.stmt.name;
        let head = &text[x.span.offset..x.value_span.offset];
        let raw_value = &text[x.value_span.offset..x.value_span.end()];
        let value_text = match (self.vars.set.get(name), x.stmt.op) {
            (Some(v), xen::Op::Assign) => {
                if xen::is_number(v) {
                    v.clone()
                } else {
                    xen::quote(v.as_bytes())
                }
            }
            _ => self.substitute_value(raw_value, x.value_span.offset)?,
        };
        let stmt_text = format!("{head}{value_text}");
        let probe = format!("{stmt_text}\n");
        let stmt = match xen::parse_statement(&probe, 0, false) {
            Ok((xen::Parsed::Statement(s), _)) => s,
            Ok((xen::Parsed::NotAStatement, _)) => return None,
            Err(e) => {
                self.err(
                    x.value_span,
                    format!(
                        "after substituting variables this value is not valid for xl: {}",
                        e.message
                    ),
                );
                return None;
            }
        };
        let mut shifted = stmt.clone();
        shifted.value_range = (x.value_span.offset, x.value_span.end());
        if let Err(e) = xen::apply(&mut self.settings, &shifted) {
            self.err(x.value_span, e.message);
        }
        if let Some(v) = self.settings.get(name) {
            let var = match v.scalar_text() {
                Some(t) => VarValue::Text(String::from_utf8_lossy(&t).into_owned()),
                None => VarValue::List,
            };
            self.vars.file.insert(name.clone(), var);
        }
        Some(stmt_text)
    }

    /// Template substitution inside a Xen value's source text: inside a
    /// quoted string the inserted text is escaped for that quote; a bare
    /// `${NAME}` becomes a number or a double-quoted string.
    fn substitute_value(&mut self, raw: &str, base: usize) -> Option<String> {
        if !raw.contains('$') {
            return Some(raw.to_string());
        }
        let mut out = String::with_capacity(raw.len());
        let mut quote: Option<char> = None;
        let mut chars = raw.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match (quote, c) {
                (Some(_), '\\') => {
                    out.push(c);
                    if let Some((_, n)) = chars.next() {
                        out.push(n);
                    }
                }
                (Some(q), c) if c == q => {
                    quote = None;
                    out.push(c);
                }
                (None, '"' | '\'') => {
                    quote = Some(c);
                    out.push(c);
                }
                (_, '$') => {
                    let rest = &raw[i..];
                    let len = if rest.starts_with("$$") {
                        2
                    } else if rest.starts_with("${") {
                        rest.find('}').map(|k| k + 1).unwrap_or(rest.len())
                    } else {
                        out.push('$');
                        continue;
                    };
                    let piece = match substitute(&rest[..len], &mut self.vars) {
                        Ok(p) => p,
                        Err(e) => {
                            let span = self.span(base + i + e.offset, e.len);
                            self.err(span, e.message);
                            return None;
                        }
                    };
                    match quote {
                        Some(q) => {
                            for ch in piece.chars() {
                                if ch == '\\' || ch == q {
                                    out.push('\\');
                                }
                                out.push(ch);
                            }
                        }
                        None if xen::is_number(&piece) => out.push_str(&piece),
                        None => out.push_str(&xen::quote(piece.as_bytes())),
                    }
                    if let Err(message) = super::template::value_fits(out.len(), raw.len()) {
                        let span = self.span(base + i, len);
                        self.err(span, message);
                        return None;
                    }
                    for _ in 1..rest[..len].chars().count() {
                        chars.next();
                    }
                }
                _ => out.push(c),
            }
        }
        Some(out)
    }

    /// A word with templates substituted; `None` after reporting an error.
    fn word(&mut self, w: &Word) -> Option<String> {
        match substitute(&w.text, &mut self.vars) {
            Ok(s) => Some(s),
            Err(e) => {
                // in a quoted word the offset may be shifted by escapes;
                // the word's start is still the right line
                let off = if w.quoted { 1 } else { 0 };
                let span = self.span(w.span.offset + off + e.offset, e.len);
                self.err(span, e.message);
                None
            }
        }
    }

    fn path(&mut self, w: &Word, s: &str) -> PathBuf {
        let p = Path::new(s);
        let _ = w;
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.opts.base_dir.join(p)
        };
        crate::uri::normalize(&full)
    }

    fn uri(&mut self, w: &Word, s: &str) -> Option<UriRef> {
        match Uri::parse(s, &self.opts.base_dir) {
            Ok(uri) => Some(UriRef {
                uri,
                text: s.to_string(),
                span: w.span,
            }),
            Err(e) => {
                self.err(w.span, e.to_string());
                None
            }
        }
    }

    fn expr(&mut self, e: &Expr) {
        // substitute every word first; stop at the first undefined variable
        let mut words: Vec<(Word, String)> = Vec::new();
        for w in &e.words {
            match self.word(w) {
                Some(s) => words.push((w.clone(), s)),
                None => return,
            }
        }
        if e.body.is_some() && e.keyword != Keyword::Replace {
            self.err(e.keyword_span, format!("`[{}` takes no body", e.keyword));
            return;
        }
        let action = match e.keyword {
            Keyword::Create => self.create(e, &words),
            Keyword::Image => self.image(e, &words),
            Keyword::Populate => self.populate(e, &words),
            Keyword::Replace => self.replace(e, &words),
            Keyword::Copy => self.copy(e, &words),
            Keyword::Patch => self.patch(e, &words),
        };
        if let Some(action) = action {
            self.steps.push(Step {
                action,
                span: e.span,
            });
        }
    }

    /// Reports a missing argument at the end of the header.
    fn missing(&mut self, e: &Expr, words: &[(Word, String)], what: &str, usage: &str) {
        let span = words.last().map(|(w, _)| w.span).unwrap_or(e.keyword_span);
        self.err(
            span,
            format!("`[{}` is missing {what}; usage: {usage}", e.keyword),
        );
    }

    fn extra(&mut self, e: &Expr, w: &Word, usage: &str) {
        self.err(
            w.span,
            format!(
                "unexpected argument `{}` to `[{}`; usage: {usage}",
                w.text, e.keyword
            ),
        );
    }

    fn create(&mut self, e: &Expr, words: &[(Word, String)]) -> Option<Action> {
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
        if let Some((w, _)) = words.get(2) {
            self.extra(e, w, USAGE);
            return None;
        }
        let src = self.path(&words[0].0, &words[0].1);
        let dest = self.uri(&words[1].0, &words[1].1)?;
        if let Some(p) = dest.uri.local_path() {
            self.produced.insert(p.to_path_buf());
        }
        Some(Action::Create { src, dest })
    }

    fn image(&mut self, e: &Expr, words: &[(Word, String)]) -> Option<Action> {
        const USAGE: &str =
            "[image PATH SIZE [LABEL] [fs ext2|ext3|swap] [blocksize N] [inodes N] [uuid U]][end]";
        if words.len() < 2 {
            let what = if words.is_empty() {
                "PATH and SIZE"
            } else {
                "SIZE"
            };
            self.missing(e, words, what, USAGE);
            return None;
        }
        let path = self.path(&words[0].0, &words[0].1);
        let size = match parse_size(&words[1].1) {
            Ok(s) => s,
            Err(m) => {
                self.err(words[1].0.span, m);
                return None;
            }
        };
        let mut rest = &words[2..];
        let mut label = Vec::new();
        if let Some((w, s)) = rest.first() {
            if w.quoted || !IMAGE_OPTIONS.contains(&s.as_str()) {
                if s.len() > 16 {
                    self.err(
                        w.span,
                        format!(
                            "label `{s}` is {} bytes; an ext2/ext3 or swap label holds at most 16",
                            s.len()
                        ),
                    );
                    return None;
                }
                label = s.as_bytes().to_vec();
                rest = &rest[1..];
            }
        }
        let (mut fs, mut block_size, mut inodes, mut uuid) = (FsType::Ext3, None, None, None);
        let mut inodes_at = None;
        let opts = self.options(e, rest, &IMAGE_OPTIONS, USAGE)?;
        // options that only a file system has, for a swap area's error
        let mut fs_only: Vec<(&str, Span)> = Vec::new();
        for (key, w, v) in opts {
            if matches!(key, "blocksize" | "inodes") {
                // point at the option's name, not its value
                let at = rest.iter().find(|(kw, ks)| !kw.quoted && ks == key);
                fs_only.push((key, at.map_or(w.span, |(kw, _)| kw.span)));
            }
            if key == "inodes" {
                inodes_at = Some(w.span);
            }
            match key {
                "fs" => match v.as_str() {
                    "ext2" => fs = FsType::Ext2,
                    "ext3" => fs = FsType::Ext3,
                    "swap" => fs = FsType::Swap,
                    other => {
                        self.err(
                            w.span,
                            format!("fs `{other}`: vm-container writes ext2, ext3 or swap"),
                        );
                        return None;
                    }
                },
                "blocksize" => match v.parse::<u32>() {
                    Ok(n @ (1024 | 2048 | 4096)) => block_size = Some(n),
                    _ => {
                        self.err(w.span, format!("blocksize `{v}`: use 1024, 2048 or 4096"));
                        return None;
                    }
                },
                "inodes" => match v.parse::<u32>() {
                    Ok(n) if n >= 16 => inodes = Some(n),
                    _ => {
                        self.err(
                            w.span,
                            format!("inodes `{v}`: a whole number of at least 16"),
                        );
                        return None;
                    }
                },
                _ => match parse_uuid(&v) {
                    Some(u) => uuid = Some(u),
                    None => {
                        self.err(
                            w.span,
                            format!("uuid `{v}`: expected 8-4-4-4-12 hex digits"),
                        );
                        return None;
                    }
                },
            }
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
                words[1].0.span,
                format!(
                    "{} is too large for ext2/ext3 with {bs}-byte blocks",
                    words[1].1
                ),
            );
            return None;
        }
        let min = if fs == FsType::Ext3 {
            2 << 20
        } else {
            256 << 10
        };
        if size < min {
            self.err(
                words[1].0.span,
                format!(
                    "{} is too small for {}: at least {} KiB",
                    words[1].1,
                    if fs == FsType::Ext3 {
                        "ext3 (its journal needs 1 MiB)"
                    } else {
                        "ext2"
                    },
                    min >> 10
                ),
            );
            return None;
        }
        if let (Some(n), Some(at)) = (inodes, inodes_at) {
            if let Some(max) = too_many_inodes(size, bs, fs == FsType::Ext3, n) {
                self.err(
                    at,
                    format!(
                        "inodes `{n}`: too many for a {} volume with {bs}-byte blocks (about {max} fit)",
                        words[1].1
                    ),
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
        })
    }

    /// `[image ... fs swap]`: a swap area has pages, not blocks or inodes.
    fn swap_image(
        &mut self,
        path: PathBuf,
        size: u64,
        label: Vec<u8>,
        uuid: Option<[u8; 16]>,
        size_word: &(Word, String),
        fs_only: &[(&str, Span)],
    ) -> Option<Action> {
        if let Some((key, span)) = fs_only.first() {
            self.err(
                *span,
                format!("`{key}` is an ext2/ext3 option; a swap area has none (its pages are 4096 bytes)"),
            );
            return None;
        }
        // mkswap's limits for 4 KiB pages: 10 pages at least, and the last
        // page's number must fit in 32 bits
        let pages = size / 4096;
        if pages < 10 {
            self.err(
                size_word.0.span,
                format!(
                    "{} is too small for a swap area: at least 40 KiB",
                    size_word.1
                ),
            );
            return None;
        }
        if pages - 1 > u32::MAX as u64 {
            self.err(
                size_word.0.span,
                format!(
                    "{} is too large for a swap area: at most 16 TiB",
                    size_word.1
                ),
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
        })
    }

    /// Reports `path` when an earlier `[image ... fs swap]` makes it a swap
    /// area: it holds no tree to populate, patch or edit.
    fn not_swap(&mut self, span: Span, path: &Path, what: &str) -> bool {
        let Some(at) = self.swaps.get(path) else {
            return true;
        };
        let msg = format!(
            "{what} {}, which the `[image ... fs swap]` at line {} makes a swap area: it holds no files",
            path.display(),
            at.line
        );
        self.err(span, msg);
        false
    }

    /// Reads `key value` pairs; reports unknown words, missing values and
    /// repeated keys.
    fn options<'w>(
        &mut self,
        e: &Expr,
        words: &'w [(Word, String)],
        allowed: &[&'static str],
        usage: &str,
    ) -> Option<Vec<(&'static str, &'w Word, String)>> {
        let mut out: Vec<(&'static str, &'w Word, String)> = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let (w, s) = &words[i];
            let Some(key) = allowed.iter().find(|k| **k == s.as_str() && !w.quoted) else {
                self.extra(e, w, usage);
                return None;
            };
            let Some((vw, v)) = words.get(i + 1) else {
                self.err(w.span, format!("option `{key}` needs a value"));
                return None;
            };
            if out.iter().any(|(k, _, _)| k == key) {
                self.err(w.span, format!("option `{key}` given twice"));
                return None;
            }
            out.push((key, vw, v.clone()));
            i += 2;
        }
        Some(out)
    }

    fn populate(&mut self, e: &Expr, words: &[(Word, String)]) -> Option<Action> {
        const USAGE: &str = "[populate image|device|dir TARGET MOUNT SOURCE-URI][end]";
        if words.len() < 4 {
            let names = ["KIND", "TARGET", "MOUNT", "SOURCE-URI"];
            self.missing(e, words, &names[words.len()..].join(" and "), USAGE);
            return None;
        }
        if let Some((w, _)) = words.get(4) {
            self.extra(e, w, USAGE);
            return None;
        }
        let kind = match words[0].1.as_str() {
            "image" => TargetKind::Image,
            "device" => TargetKind::Device,
            "dir" => TargetKind::Dir,
            other => {
                self.err(
                    words[0].0.span,
                    format!("populate kind `{other}`: expected image, device or dir"),
                );
                return None;
            }
        };
        let target = self.path(&words[1].0, &words[1].1);
        if !self.not_swap(words[1].0.span, &target, "populate names") {
            return None;
        }
        match kind {
            TargetKind::Image if !self.images.contains(&target) && !self.world.exists(&target) => {
                self.err(
                    words[1].0.span,
                    format!(
                        "populate names the image {}, which neither exists nor is created by an earlier `[image]`",
                        target.display()
                    ),
                );
                return None;
            }
            TargetKind::Device if !self.world.exists(&target) => {
                self.err(
                    words[1].0.span,
                    format!("device {} does not exist", target.display()),
                );
                return None;
            }
            _ => {}
        }
        let source = self.uri(&words[3].0, &words[3].1)?;
        self.check_local_input(&source);
        Some(Action::Populate {
            kind,
            target,
            mount: words[2].1.clone(),
            source,
        })
    }

    /// A local input must exist now or be written by an earlier expression.
    fn check_local_input(&mut self, u: &UriRef) {
        if let Some(p) = u.uri.local_path() {
            if !self.produced.contains(p) && !self.world.exists(p) {
                self.err(
                    u.span,
                    format!(
                        "{} does not exist and no earlier expression creates it",
                        p.display()
                    ),
                );
            }
        }
    }

    /// PATH and the options of `replace`/`copy`; `positional` collects the
    /// words that are not options (copy's SOURCE-URI).
    fn edit(
        &mut self,
        e: &Expr,
        words: &[(Word, String)],
        usage: &str,
        positional: &mut Vec<(Word, String)>,
    ) -> Option<(TreePath, Edit)> {
        let Some((pw, ps)) = words.first() else {
            self.missing(e, words, "PATH", usage);
            return None;
        };
        let path = match TreePath::from_absolute(ps.as_bytes()) {
            Ok(p) if !p.is_root() => p,
            Ok(_) => {
                self.err(pw.span, "the path names the root directory, not a file");
                return None;
            }
            Err(err) => {
                self.err(pw.span, format!("path `{ps}`: {err}"));
                return None;
            }
        };
        // split options from positional words
        let mut opt_words: Vec<(Word, String)> = Vec::new();
        let mut i = 1;
        while i < words.len() {
            let (w, s) = &words[i];
            if !w.quoted && EDIT_OPTIONS.contains(&s.as_str()) {
                opt_words.push(words[i].clone());
                if let Some(v) = words.get(i + 1) {
                    opt_words.push(v.clone());
                }
                i += 2;
            } else {
                positional.push(words[i].clone());
                i += 1;
            }
        }
        let opts = self.options(e, &opt_words, &EDIT_OPTIONS, usage)?;
        let (mut archive, mut patch, mut fork, mut mode, mut owner) =
            (None, None, None, None, None);
        for (key, w, v) in opts {
            match key {
                "archive" => archive = Some(self.uri(w, &v)?),
                "patch" => patch = Some(self.uri(w, &v)?),
                "fork" => fork = Some(self.uri(w, &v)?),
                "mode" => match parse_mode(&v) {
                    Some(m) => mode = Some(m),
                    None => {
                        self.err(
                            w.span,
                            format!("mode `{v}`: expected octal digits up to 7777"),
                        );
                        return None;
                    }
                },
                _ => match parse_owner(&v) {
                    Some(o) => owner = Some(o),
                    None => {
                        self.err(w.span, format!("owner `{v}`: expected UID:GID in numbers"));
                        return None;
                    }
                },
            }
        }
        let Some(archive) = archive else {
            self.err(
                e.keyword_span,
                format!("`[{}` needs `archive URI`: the tree to modify", e.keyword),
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
            Edit {
                archive,
                patch,
                fork,
                mode,
                owner,
            },
        ))
    }

    fn replace(&mut self, e: &Expr, words: &[(Word, String)]) -> Option<Action> {
        const USAGE: &str = "[replace PATH archive URI [patch URI] [fork URI] [mode OCTAL] [owner UID:GID]\\n\\nTEXT\\n] [end]";
        let mut positional = Vec::new();
        let (path, edit) = self.edit(e, words, USAGE, &mut positional)?;
        if let Some((w, _)) = positional.first() {
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
                    self.err(span, err.message);
                    return None;
                }
            },
        };
        Some(Action::Replace {
            path,
            edit,
            content,
        })
    }

    fn copy(&mut self, e: &Expr, words: &[(Word, String)]) -> Option<Action> {
        const USAGE: &str = "[copy PATH archive URI [patch URI] [fork URI] [mode OCTAL] [owner UID:GID] SOURCE-URI][end]";
        let mut positional = Vec::new();
        let (path, edit) = self.edit(e, words, USAGE, &mut positional)?;
        let Some((sw, ss)) = positional.first().cloned() else {
            self.missing(e, words, "SOURCE-URI", USAGE);
            return None;
        };
        if let Some((w, _)) = positional.get(1) {
            self.extra(e, w, USAGE);
            return None;
        }
        let source = self.uri(&sw, &ss)?;
        self.check_local_input(&source);
        Some(Action::Copy { path, edit, source })
    }

    fn patch(&mut self, e: &Expr, words: &[(Word, String)]) -> Option<Action> {
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
        if let Some((w, _)) = words.get(3) {
            self.extra(e, w, USAGE);
            return None;
        }
        let target_ref = self.uri(&words[0].0, &words[0].1)?;
        if let Some(p) = target_ref.uri.local_path().map(Path::to_path_buf) {
            if !self.not_swap(words[0].0.span, &p, "patch names") {
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
                    words[0].0.span,
                    format!(
                        "patch names {}, which neither exists nor is created by an earlier expression",
                        p.display()
                    ),
                );
                return None;
            }
            None => PatchTarget::Archive(target_ref),
        };
        let patch = self.uri(&words[1].0, &words[1].1)?;
        self.check_local_input(&patch);
        let fork = match words.get(2) {
            Some((w, s)) => Some(self.uri(w, s)?),
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

fn looks_like_archive(p: &Path) -> bool {
    let s = p.to_string_lossy();
    [".cpio.gz", ".cpio", ".cgz", ".gz"]
        .iter()
        .any(|ext| s.ends_with(ext))
}

/// `50MB`, `50M`, `50MiB`, `1G`: powers of 1024. A bare number is refused:
/// it is too easy to mean megabytes and write bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let digits = s.chars().take_while(|c| c.is_ascii_digit()).count();
    let (num, unit) = s.split_at(digits);
    if num.is_empty() {
        return Err(format!(
            "size `{s}`: expected a number with a unit, like `50MB` or `2G`"
        ));
    }
    let shift = match unit {
        "" => {
            return Err(format!(
                "size `{s}` has no unit: write `{s}M` (K, M, G or T, powers of 1024)"
            ))
        }
        "K" | "KB" | "KiB" => 10,
        "M" | "MB" | "MiB" => 20,
        "G" | "GB" | "GiB" => 30,
        "T" | "TB" | "TiB" => 40,
        _ => {
            return Err(format!(
            "size `{s}`: unknown unit `{unit}` (use K, M, G or T, optionally followed by B or iB)"
        ))
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("size `{s}` is too large"))?;
    n.checked_mul(1u64 << shift)
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            if n == 0 {
                format!("size `{s}` is zero")
            } else {
                format!("size `{s}` is too large")
            }
        })
}

fn parse_mode(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 5 || !s.chars().all(|c| ('0'..='7').contains(&c)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o7777)
}

fn parse_owner(s: &str) -> Option<(u32, u32)> {
    let (u, g) = s.split_once(':')?;
    let num = |x: &str| {
        (!x.is_empty() && x.chars().all(|c| c.is_ascii_digit()))
            .then(|| x.parse::<u32>().ok())
            .flatten()
    };
    Some((num(u)?, num(g)?))
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50MB"), Ok(50 << 20));
        assert_eq!(parse_size("50MiB"), Ok(50 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert!(parse_size("50").unwrap_err().contains("no unit"));
        assert!(parse_size("50XB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("99999999999999999999M")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("17000000T").unwrap_err().contains("too large"));
        assert!(parse_size("MB").is_err());
        assert!(parse_size("0M").unwrap_err().contains("zero"));
    }

    #[test]
    fn modes_owners_uuids() {
        assert_eq!(parse_mode("0644"), Some(0o644));
        assert_eq!(parse_mode("4755"), Some(0o4755));
        assert_eq!(parse_mode("8"), None);
        assert_eq!(parse_mode("17777"), None);
        assert_eq!(parse_owner("0:0"), Some((0, 0)));
        assert_eq!(parse_owner("1000:100"), Some((1000, 100)));
        assert_eq!(parse_owner("root:0"), None);
        assert_eq!(parse_owner("1"), None);
        assert!(parse_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").is_some());
        assert!(parse_uuid("0f1e2d3c4b5a69788796a5b4c3d2e1f0").is_none());
    }
}
