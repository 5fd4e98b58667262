//! Warnings: containers that check and run, but whose stripped config is
//! unlikely to do what was meant. A warning never stops a run.

use super::analyze::Options;
use super::ast::{Container, Item, LineIndex, Span};
use super::diagnostic::{Diagnostic, DiagnosticKind};
use super::plan::{Action, Plan};
use crate::xen::{self, lexer::Lexer, lexer::TokenKind, Op, Value};
use std::collections::HashSet;
use std::path::Path;

/// Every warning for a checked container.
pub fn warnings(container: &Container, text: &str, opts: &Options, plan: &Plan) -> Vec<Diagnostic> {
    relative_disk_images(container, text, opts, plan)
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
    let Some(Value::List(entries)) = plan.settings.get("disk") else {
        return Vec::new();
    };
    if images.is_empty() {
        return Vec::new();
    }
    let spans = disk_entry_spans(container, text, opts);
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(spec) = entry.scalar_text() else {
            continue;
        };
        let spec = String::from_utf8_lossy(&spec);
        let target = xen::disk_target(&spec);
        if target.is_empty() || target.starts_with('/') {
            continue;
        }
        let made = crate::uri::normalize(&opts.base_dir.join(target));
        if !images.contains(made.as_path()) {
            continue;
        }
        // the entry's own span when the statements map onto the final
        // list one to one, else the last `disk` statement
        let span = match spans.as_ref() {
            Some(s) if s.len() == entries.len() => s[i],
            _ => last_disk_span(container).unwrap_or_default(),
        };
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
