//! Xen statements: templates substituted in their values, `--set`
//! overrides applied, and the stripped config's text.

use super::super::ast::XenItem;
use super::super::diagnostic::DiagnosticKind;
use super::super::template::{substitute, VarValue};
use super::Analyzer;
use crate::xen;

/// An expression alone on its lines is removed with those lines; one that
/// shares a line with other text is removed exactly.
pub(super) fn removal_range(text: &str, start: usize, end: usize) -> (usize, usize) {
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

/// What stays of the text before an expression when the expression goes:
/// the comment lines directly above it (no blank line between) describe
/// it and go with it. `first_line_whole` says whether `gap` starts at a
/// line start; otherwise its first line ends a Xen statement's line (a
/// trailing comment there belongs to the statement) and always stays.
pub(super) fn without_own_comments(gap: &str, first_line_whole: bool) -> &str {
    // an expression that does not start its line takes no comment lines
    if !gap.ends_with('\n') {
        return gap;
    }
    let mut end = gap.len();
    while end > 0 {
        let start = gap[..end - 1].rfind('\n').map_or(0, |i| i + 1);
        if start == 0 && !first_line_whole {
            break;
        }
        if !gap[start..end].trim_start().starts_with('#') {
            break;
        }
        end = start;
    }
    &gap[..end]
}

/// `s` without its leading lines of nothing but white space: where an
/// expression left a blank line already, the next blank lines go.
pub(super) fn without_leading_blank_lines(s: &str) -> &str {
    let mut rest = s;
    while let Some(i) = rest.find('\n') {
        if !rest[..i].trim().is_empty() {
            break;
        }
        rest = &rest[i + 1..];
    }
    rest
}

impl Analyzer<'_> {
    /// Substitutes templates in a Xen statement's value (or applies a
    /// `--set` override), re-reads it strictly and records its value.
    /// Returns the statement's text for the stripped config.
    pub(super) fn xen(&mut self, x: &XenItem) -> Option<String> {
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
                self.err(x.value_span, DiagnosticKind::XenAfterSubstitution(e.kind));
                return None;
            }
        };
        let mut shifted = stmt.clone();
        shifted.value_range = (x.value_span.offset, x.value_span.end());
        if let Err(e) = xen::apply(&mut self.settings, &shifted) {
            self.err(x.value_span, DiagnosticKind::Xen(e.kind));
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
    pub(super) fn substitute_value(&mut self, raw: &str, base: usize) -> Option<String> {
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
                            self.err(span, e.kind);
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
                    if let Err(kind) = super::super::template::value_fits(out.len(), raw.len()) {
                        let span = self.span(base + i, len);
                        self.err(span, kind);
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
}
