//! The container language front end. Pure: text in, syntax tree and
//! diagnostics out; no I/O.
//!
//! `parse` splits the text into Xen statements (read by [`crate::xen`]
//! with libxlutil's rules) and container expressions (see [`expr`]); a
//! `[` where a statement may start opens an expression, because no Xen
//! statement can start with one. `analyze` turns the tree into a checked
//! [`plan::Plan`].

pub mod analyze;
pub mod ast;
pub mod diagnostic;
pub mod expr;
pub mod lint;
pub mod plan;
pub mod print;
pub mod template;

pub use analyze::{analyze, Options, World};
pub use ast::{Body, Container, Expr, Item, Keyword, LineIndex, Span, Word, XenItem};
pub use diagnostic::{Diagnostic, DiagnosticKind, SizeError};

use crate::xen::{self, lexer::Lexer, lexer::TokenKind, Parsed};

/// The syntax tree and every syntax error found.
#[derive(Debug)]
pub struct ParseResult {
    pub container: Container,
    pub errors: Vec<Diagnostic>,
}

/// Decodes the file as UTF-8, naming the line and column of a bad byte.
pub fn decode(bytes: &[u8]) -> Result<&str, Diagnostic> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = e.valid_up_to();
        // the valid prefix is text, so it can be indexed for the location
        let prefix = std::str::from_utf8(&bytes[..good]).unwrap_or("");
        let idx = LineIndex::new(prefix);
        Diagnostic::new(idx.span(good, 1), DiagnosticKind::NotUtf8)
    })
}

/// Parses a whole container file, collecting every error (parsing resumes
/// at the next line after a bad statement, after `[end]` after a bad
/// expression).
pub fn parse(text: &str) -> ParseResult {
    let idx = LineIndex::new(text);
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut pos = 0;
    let bytes = text.as_bytes();
    while pos < text.len() {
        match bytes[pos] {
            b' ' | b'\t' | b'\n' | b';' => {
                pos += 1;
                continue;
            }
            b'[' => {
                match expr::parse_expr(text, pos, &idx) {
                    Ok((e, next)) => {
                        items.push(Item::Expr(e));
                        pos = next;
                    }
                    Err((d, next)) => {
                        errors.push(d);
                        pos = next.max(pos + 1);
                    }
                }
                continue;
            }
            b'#' => {
                // a comment line: the Xen lexer knows its rules (it must
                // end with a newline, no CR)
                let mut lex = Lexer::new(text, pos, true);
                match lex.next_token() {
                    Ok(_) => pos = lex.pos(),
                    Err(e) => {
                        errors.push(Diagnostic::new(
                            idx.span(e.offset, e.len),
                            DiagnosticKind::Xen(e.kind),
                        ));
                        pos = xen::recover(text, pos);
                    }
                }
                continue;
            }
            _ => {}
        }
        match xen::parse_statement(text, pos, true) {
            Ok((Parsed::Statement(stmt), next)) => {
                items.push(Item::Xen(XenItem {
                    name_span: idx.span(stmt.name_range.0, stmt.name_range.1 - stmt.name_range.0),
                    value_span: idx
                        .span(stmt.value_range.0, stmt.value_range.1 - stmt.value_range.0),
                    span: idx.span(stmt.range.0, stmt.range.1 - stmt.range.0),
                    stmt,
                }));
                pos = next.max(pos + 1);
            }
            Ok((Parsed::NotAStatement, _)) => {
                let mut lex = Lexer::new(text, pos, true);
                let kind = match lex.next_token() {
                    // an illegal last byte, which xl drops
                    Ok(t) if t.kind == TokenKind::Eof => break,
                    Ok(t) => match t.kind {
                        TokenKind::Close => DiagnosticKind::StrayClose,
                        k => DiagnosticKind::ExpectedStatement {
                            found: k.describe(),
                        },
                    },
                    Err(e) => DiagnosticKind::Xen(e.kind),
                };
                errors.push(Diagnostic::new(idx.span(pos, 1), kind));
                pos = xen::recover(text, pos);
            }
            Err(e) => {
                let mut d = Diagnostic::new(idx.span(e.offset, e.len), DiagnosticKind::Xen(e.kind));
                if let Some((at, note)) = e.note {
                    d = d.with_note(idx.span(at, 1), note);
                }
                errors.push(d);
                pos = xen::recover(text, e.offset.max(pos));
            }
        }
    }
    ParseResult {
        container: Container { items },
        errors,
    }
}

#[cfg(test)]
mod tests;
