//! Warnings: containers that check and run, but whose stripped config is
//! unlikely to do what was meant. A warning never stops a run.

use super::analyze::{Options, World};
use super::ast::{Container, Item, LineIndex, Span};
use super::diagnostic::{Diagnostic, DiagnosticKind};
use super::plan::{Action, Plan};
use crate::xen::{self, lexer::Lexer, lexer::TokenKind, Op, Value};
use std::collections::HashSet;
use std::path::Path;

/// Every warning for a checked container.
pub fn warnings(
    container: &Container,
    text: &str,
    opts: &Options,
    plan: &Plan,
    world: &dyn World,
) -> Vec<Diagnostic> {
    let mut out = relative_disk_images(container, text, opts, plan);
    out.extend(disk_formats(container, text, opts, plan, world));
    out
}

/// A `disk =` entry whose image is qcow2 (its magic) but that does not say
/// `format=qcow2`, or that says so of an image that is not: `xl` would
/// hand the guest the qcow2 container as raw blocks, or fail to open it.
fn disk_formats(
    container: &Container,
    text: &str,
    opts: &Options,
    plan: &Plan,
    world: &dyn World,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (spec, span) in disk_entries(container, text, opts, plan) {
        let target = xen::disk_target(&spec);
        if target.is_empty() {
            continue;
        }
        let path = crate::uri::normalize(&opts.base_dir.join(target));
        if !world.exists(&path) {
            continue;
        }
        let says = spec.split(',').any(|f| {
            let f = f.trim();
            f == "format=qcow2" || f == "qcow2" || f.starts_with("qcow2:")
        }) || spec.contains("qcow2:");
        let is = world.is_qcow2(&path);
        let msg = match (says, is) {
            (false, true) => DiagnosticKind::Qcow2NotSaid { path: path.clone() },
            (true, false) => DiagnosticKind::Qcow2Said { path: path.clone() },
            _ => continue,
        };
        out.push(Diagnostic::new(span, msg));
    }
    out
}

/// Each text entry of the final `disk` list with where it was written:
/// the entry's own span when the statements map onto the final list one
/// to one, else the last `disk` statement.
fn disk_entries(
    container: &Container,
    text: &str,
    opts: &Options,
    plan: &Plan,
) -> Vec<(String, Span)> {
    let Some(Value::List(entries)) = plan.settings.get("disk") else {
        return Vec::new();
    };
    let spans = disk_entry_spans(container, text, opts);
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            let spec = String::from_utf8_lossy(&entry.scalar_text()?).into_owned();
            let span = match spans.as_ref() {
                Some(s) if s.len() == entries.len() => s[i],
                _ => last_disk_span(container).unwrap_or_default(),
            };
            Some((spec, span))
        })
        .collect()
}

/// A `disk =` entry naming an image the container creates by a relative
/// path. The container resolves the path against its own directory, but
/// `xl create` resolves the stripped config's against its working
/// directory, so the domain would start from another file, or none.
fn relative_disk_images(
    container: &Container,
    text: &str,
    opts: &Options,
    plan: &Plan,
) -> Vec<Diagnostic> {
    let images: HashSet<&Path> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Image { path, .. } => Some(path.as_path()),
            _ => None,
        })
        .collect();
    if images.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (spec, span) in disk_entries(container, text, opts, plan) {
        let target = xen::disk_target(&spec);
        if target.is_empty() || target.starts_with('/') {
            continue;
        }
        let made = crate::uri::normalize(&opts.base_dir.join(target));
        if !images.contains(made.as_path()) {
            continue;
        }
        out.push(Diagnostic::new(
            span,
            DiagnosticKind::RelativeDiskTarget {
                target: target.to_string(),
                made,
            },
        ));
    }
    out
}

/// Where each entry of the final `disk` list was written, following `=`
/// and `+=` in order; `None` when `--set disk=...` replaced the value.
fn disk_entry_spans(container: &Container, text: &str, opts: &Options) -> Option<Vec<Span>> {
    if opts.set.iter().any(|(k, _)| k == "disk") {
        return None;
    }
    let idx = LineIndex::new(text);
    let mut spans = Vec::new();
    for item in &container.items {
        let Item::Xen(x) = item else { continue };
        if x.stmt.name != "disk" {
            continue;
        }
        if x.stmt.op == Op::Assign {
            spans.clear();
        }
        if matches!(x.stmt.value, Value::List(_)) {
            spans.extend(
                element_offsets(text, x.stmt.value_range).map(|(at, len)| idx.span(at, len)),
            );
        }
    }
    Some(spans)
}

/// The byte ranges of a list's top-level elements, read again from the
/// text between `value.0` (its `[`) and `value.1`.
fn element_offsets(text: &str, value: (usize, usize)) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut lex = Lexer::new(text, value.0, true);
    let mut depth = 0usize;
    std::iter::from_fn(move || loop {
        let t = lex.next_token().ok()?;
        if t.start >= value.1 || t.kind == TokenKind::Eof {
            return None;
        }
        match t.kind {
            TokenKind::Open => {
                depth += 1;
                if depth == 2 {
                    return Some((t.start, 1));
                }
            }
            TokenKind::Close => depth = depth.saturating_sub(1),
            TokenKind::Str(_) | TokenKind::Number(_) | TokenKind::Placeholder(_) if depth == 1 => {
                return Some((t.start, t.end - t.start));
            }
            _ => {}
        }
    })
}

fn last_disk_span(container: &Container) -> Option<Span> {
    container.items.iter().rev().find_map(|item| match item {
        Item::Xen(x) if x.stmt.name == "disk" => Some(x.value_span),
        _ => None,
    })
}
