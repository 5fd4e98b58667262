//! Syntax tree → checked [`Plan`]: templates substituted, every argument
//! parsed, the order of images checked, and the stripped config built.
//!
//! Every problem is collected, so `check` reports them all at once.
//!
//! Three jobs, one file each: [`config`] substitutes templates in Xen
//! statements and builds the stripped config, [`args`] reads and checks an
//! expression's words, [`plans`] turns each expression into a plan step.

#[macro_use]
mod args;
mod config;
mod images;
mod plans;

pub use args::parse_size;

use args::Arg;

use super::ast::{Container, Expr, Item, Keyword, LineIndex, Span};
use super::diagnostic::{Diagnostic, DiagnosticKind};
use super::plan::{Plan, Step};
use super::template::Vars;
use crate::xen;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// What the analysis needs to know about the host, kept behind a trait so
/// the front end stays pure.
pub trait World {
    fn exists(&self, path: &Path) -> bool;
    /// True when `path` holds an ext2/3/4 file system.
    fn is_ext_image(&self, path: &Path) -> bool;
    /// True when `path` holds a qcow2 image (its magic, `QFI\xfb`).
    fn is_qcow2(&self, _path: &Path) -> bool {
        false
    }
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
    /// The images of `images` made as qcow2 (`format qcow2`).
    qcow2: HashSet<PathBuf>,
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
        qcow2: HashSet::new(),
        swaps: BTreeMap::new(),
        produced: HashSet::new(),
        settings: BTreeMap::new(),
    };
    for (name, value) in &opts.set {
        if value.contains('\n') || value.contains('\r') {
            a.errors.push(Diagnostic::new(
                Span::default(),
                DiagnosticKind::SetLineBreak { name: name.clone() },
            ));
        }
    }
    // The stripped config is the text with every expression cut out, and
    // with it the comment lines directly above it; the blank lines an
    // expression leaves behind collapse into one. Text around Xen
    // statements is kept byte for byte: a config without expressions
    // strips to itself.
    let mut stripped = String::with_capacity(text.len());
    let mut cursor = 0;
    // an expression was cut out since the last Xen statement
    let mut after_cut = false;
    let push_gap = |stripped: &mut String, gap: &str, after_cut: bool| {
        let at_blank = stripped.is_empty() || stripped.ends_with("\n\n");
        if after_cut && at_blank {
            stripped.push_str(config::without_leading_blank_lines(gap));
        } else {
            stripped.push_str(gap);
        }
    };
    for item in &container.items {
        match item {
            Item::Xen(x) => {
                push_gap(&mut stripped, &text[cursor..x.span.offset], after_cut);
                match a.xen(x) {
                    Some(s) => stripped.push_str(&s),
                    None => stripped.push_str(&text[x.span.offset..x.span.end()]),
                }
                cursor = x.span.end();
                after_cut = false;
            }
            Item::Expr(e) => {
                let (from, to) = config::removal_range(text, e.span.offset, e.span.end());
                let gap = &text[cursor..from.max(cursor)];
                let whole = cursor == 0 || text[..cursor].ends_with('\n');
                push_gap(
                    &mut stripped,
                    config::without_own_comments(gap, whole),
                    after_cut,
                );
                cursor = to;
                after_cut = true;
                a.expr(e);
            }
        }
    }
    push_gap(&mut stripped, &text[cursor.min(text.len())..], after_cut);
    if after_cut {
        while stripped.ends_with("\n\n") {
            stripped.pop();
        }
    }
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

impl Analyzer<'_> {
    fn span(&self, offset: usize, len: usize) -> Span {
        self.idx.span(offset, len)
    }

    fn err(&mut self, span: Span, kind: DiagnosticKind) {
        self.errors.push(Diagnostic::new(span, kind));
    }

    fn expr(&mut self, e: &Expr) {
        // substitute every word first; stop at the first undefined variable
        let mut words: Vec<Arg> = Vec::new();
        for w in &e.words {
            match self.word(w) {
                Some(text) => words.push(Arg {
                    word: w.clone(),
                    text,
                }),
                None => return,
            }
        }
        if e.body.is_some() && e.keyword != Keyword::Replace {
            self.err(
                e.keyword_span,
                DiagnosticKind::BodyNotAllowed { keyword: e.keyword },
            );
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
}
