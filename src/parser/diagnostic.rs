//! Errors about a container file, located and rendered with a caret line.

use super::ast::{LineIndex, Span};
use std::fmt::Write;

/// One problem in a container file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub span: Span,
    pub message: String,
    /// A second location that explains the first (where a list or an
    /// expression was opened).
    pub note: Option<(Span, String)>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            span,
            message: message.into(),
            note: None,
        }
    }

    pub fn with_note(mut self, span: Span, note: impl Into<String>) -> Diagnostic {
        self.note = Some((span, note.into()));
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
        let _ = writeln!(out, "{file}:{}: {severity}: {}", self.span, self.message);
        excerpt(&mut out, &idx, self.span);
        if let Some((span, note)) = &self.note {
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
