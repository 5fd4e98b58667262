//! Container expressions: `[KEYWORD words... ] [end]`, with the `replace`
//! body of the paper's Figure 1 and `text <<TAG` here-documents.

use super::ast::{Body, Expr, Keyword, LineIndex, Span, Word};
use super::diagnostic::{Diagnostic, DiagnosticKind};
use nom::bytes::complete::{take_till, take_while, take_while1};
use nom::{IResult, Parser};

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    idx: &'a LineIndex<'a>,
}

/// White space between expression words.
fn is_white(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

fn blank_run(i: &str) -> IResult<&str, &str> {
    take_while(is_white).parse(i)
}

/// A bare word ends exactly where white space that [`blank_run`] skips
/// begins: with any other notion (Unicode white space, a vertical tab) the
/// word would be empty, nothing would be consumed, and the expression
/// parser would loop forever.
fn bare_word(i: &str) -> IResult<&str, &str> {
    take_till(|c: char| is_white(c) || c == ']').parse(i)
}

fn keyword_word(i: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-').parse(i)
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn span(&self, start: usize, end: usize) -> Span {
        self.idx.span(start, end.saturating_sub(start))
    }

    /// Skips white space and `#` comments. Returns true when the skipped
    /// run held an empty line (two newlines with only blanks between),
    /// which is where a `replace` header ends and its body begins; the
    /// position is then left just after the first of those newlines.
    fn skip_space(&mut self) -> bool {
        let mut newlines_since_text = 0;
        let mut first_nl_end = None;
        loop {
            let rest = self.rest();
            let (after, run) = blank_run(rest).unwrap_or((rest, ""));
            for (i, c) in run.char_indices() {
                if c == '\n' {
                    newlines_since_text += 1;
                    if newlines_since_text == 1 {
                        first_nl_end = Some(self.pos + i + 1);
                    }
                    if newlines_since_text >= 2 {
                        if let Some(p) = first_nl_end {
                            self.pos = p;
                            return true;
                        }
                    }
                }
            }
            self.pos += run.len();
            if after.starts_with('#') {
                let end = after.find('\n').unwrap_or(after.len());
                self.pos += end;
                // a comment line is not an empty line
                newlines_since_text = 0;
                first_nl_end = None;
                continue;
            }
            return false;
        }
    }
}

/// Parses the expression whose `[` is at `start`. Returns it and the offset
/// just after its `[end]`; on error, the diagnostic and the offset where
/// parsing can resume.
pub fn parse_expr(
    text: &str,
    start: usize,
    idx: &LineIndex<'_>,
) -> Result<(Expr, usize), (Diagnostic, usize)> {
    let mut c = Cursor {
        text,
        pos: start + 1,
        idx,
    };
    let open_span = c.span(start, start + 1);
    let resume = |from: usize| skip_to_end_marker(text, from);

    // the keyword, directly after `[` (blanks tolerated)
    let rest = c.rest();
    let (_, blanks) = take_while::<_, _, nom::error::Error<&str>>(|ch| ch == ' ' || ch == '\t')
        .parse(rest)
        .unwrap_or((rest, ""));
    c.pos += blanks.len();
    let kw_start = c.pos;
    let word = keyword_word(c.rest()).map(|(_, w)| w).unwrap_or("");
    c.pos += word.len();
    let kw_span = c.span(kw_start, c.pos);
    let keyword = match Keyword::from_word(word) {
        Some(k) => k,
        None => {
            let kind = if word == "end" {
                DiagnosticKind::EndWithoutExpression
            } else if word.is_empty() {
                DiagnosticKind::MissingKeyword
            } else {
                DiagnosticKind::UnknownKeyword {
                    word: word.to_string(),
                }
            };
            let span = if word.is_empty() { open_span } else { kw_span };
            // after `[end]`; past `[end` alone when no `]` follows (one
            // byte further could split a multi-byte character)
            let next = if word == "end" {
                c.pos + usize::from(c.rest().starts_with(']'))
            } else {
                resume(c.pos)
            };
            return Err((Diagnostic::new(span, kind), next));
        }
    };

    let mut words: Vec<Word> = Vec::new();
    let mut body: Option<Body> = None;
    let unterminated = |c: &Cursor<'_>| {
        Diagnostic::new(
            c.span(start, kw_span.end()),
            DiagnosticKind::UnterminatedExpression { keyword },
        )
    };

    loop {
        let empty_line = c.skip_space();
        if empty_line && keyword == Keyword::Replace && body.is_none() {
            let (b, after_close) = block_body(&mut c).ok_or_else(|| {
                (
                    Diagnostic::new(
                        c.span(start, kw_span.end()),
                        DiagnosticKind::UnterminatedBody,
                    ),
                    text.len(),
                )
            })?;
            body = Some(b);
            c.pos = after_close;
            break;
        }
        let rest = c.rest();
        let Some(ch) = rest.chars().next() else {
            return Err((unterminated(&c), text.len()));
        };
        let tok_start = c.pos;
        match ch {
            ']' => {
                c.pos += 1;
                break;
            }
            '"' => {
                let (value, len) = quoted(rest).ok_or_else(|| {
                    (
                        Diagnostic::new(
                            c.span(tok_start, tok_start + 1),
                            DiagnosticKind::UnterminatedQuote,
                        ),
                        resume(tok_start),
                    )
                })?;
                c.pos += len;
                words.push(Word {
                    text: value,
                    quoted: true,
                    span: c.span(tok_start, c.pos),
                });
            }
            _ => {
                let (_, w) = bare_word(rest).unwrap_or((rest, ""));
                c.pos += w.len();
                if let Some(tag) = w.strip_prefix("<<") {
                    if words.last().is_some_and(|p| p.text == "text" && !p.quoted)
                        && keyword == Keyword::Replace
                    {
                        words.pop();
                        let b = here_doc(&mut c, tag, tok_start).map_err(|d| (d, resume(c.pos)))?;
                        if body.is_some() {
                            return Err((
                                Diagnostic::new(
                                    c.span(tok_start, tok_start + w.len()),
                                    DiagnosticKind::SecondTextBody,
                                ),
                                resume(c.pos),
                            ));
                        }
                        body = Some(b);
                        continue;
                    }
                }
                words.push(Word {
                    text: w.to_string(),
                    quoted: false,
                    span: c.span(tok_start, c.pos),
                });
            }
        }
    }

    // `]` then `[end]`, white space (even newlines) between
    let close_end = c.pos;
    c.skip_space();
    if !c.rest().starts_with("[end]") {
        let here = c.pos;
        let found: String = c
            .rest()
            .chars()
            .take_while(|ch| !ch.is_whitespace())
            .take(12)
            .collect();
        return Err((
            Diagnostic::new(
                c.span(here, here + 1),
                DiagnosticKind::MissingEnd {
                    keyword,
                    found: (!found.is_empty()).then_some(found),
                },
            )
            .with_note(c.span(start, kw_span.end()), "the expression opened here"),
            close_end,
        ));
    }
    c.pos += "[end]".len();
    Ok((
        Expr {
            keyword,
            keyword_span: kw_span,
            words,
            body,
            span: c.span(start, c.pos),
        },
        c.pos,
    ))
}

/// A double-quoted word: `\"` and `\\` are escapes, other backslashes are
/// kept; one line only. Returns the value and the literal's length, or
/// `None` when the line ends first.
fn quoted(rest: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = rest.char_indices().skip(1);
    while let Some((i, ch)) = chars.next() {
        match ch {
            '"' => return Some((out, i + 1)),
            '\n' => break,
            '\\' => match chars.next() {
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '\n')) | None => break,
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
            },
            ch => out.push(ch),
        }
    }
    None
}

/// True when `line` closes a Figure 1 body: only `]`, optionally followed
/// by `[end]`, blanks around. Returns the offset within the line just after
/// the `]`.
fn closing_line(line: &str) -> Option<usize> {
    let lead = line.len() - line.trim_start().len();
    let t = line.trim();
    let after = t.strip_prefix(']')?;
    let after = after.trim_start();
    (after.is_empty() || after == "[end]").then_some(lead + 1)
}

/// Reads a Figure 1 body starting at the cursor (the line after the
/// header's last line). Returns the body and the offset after its `]`.
fn block_body(c: &mut Cursor<'_>) -> Option<(Body, usize)> {
    let body_start = c.pos;
    let mut lines: Vec<&str> = Vec::new();
    let mut pos = c.pos;
    loop {
        if pos >= c.text.len() {
            return None;
        }
        let rest = &c.text[pos..];
        let (line, next) = match rest.find('\n') {
            Some(i) => (&rest[..i], pos + i + 1),
            None => (rest, c.text.len()),
        };
        if let Some(k) = closing_line(line) {
            let body_end = pos;
            while lines.first().is_some_and(|l| l.trim().is_empty()) {
                lines.remove(0);
            }
            while lines.last().is_some_and(|l| l.trim().is_empty()) {
                lines.pop();
            }
            let span = c.span(body_start, body_end.saturating_sub(1).max(body_start));
            let lines = lines.into_iter().map(str::to_string).collect();
            return Some((Body::Block { lines, span }, pos + k));
        }
        lines.push(line);
        pos = next;
    }
}

/// Reads a here-document body after `text <<TAG`: the rest of the current
/// line must be empty (or a comment); the body is the lines up to one equal
/// to TAG.
fn here_doc(c: &mut Cursor<'_>, tag: &str, tok_start: usize) -> Result<Body, Diagnostic> {
    let tag_span = c.span(tok_start, c.pos);
    if tag.is_empty()
        || !tag
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    {
        return Err(Diagnostic::new(tag_span, DiagnosticKind::BadHereDocTag));
    }
    let rest = c.rest();
    let eol = rest.find('\n').unwrap_or(rest.len());
    let tail = rest[..eol].trim();
    if !(tail.is_empty() || tail.starts_with('#')) {
        return Err(Diagnostic::new(
            c.span(c.pos, c.pos + eol),
            DiagnosticKind::TextAfterHereDocTag {
                tag: tag.to_string(),
            },
        ));
    }
    let mut pos = c.pos + eol + 1;
    let body_start = pos;
    let mut lines = Vec::new();
    loop {
        if pos > c.text.len() {
            return Err(Diagnostic::new(
                tag_span,
                DiagnosticKind::UnterminatedHereDoc {
                    tag: tag.to_string(),
                },
            ));
        }
        let rest = &c.text[pos.min(c.text.len())..];
        let (line, next) = match rest.find('\n') {
            Some(i) => (&rest[..i], pos + i + 1),
            None => (rest, c.text.len() + 1),
        };
        if line == tag {
            c.pos = next.min(c.text.len());
            let span = c.span(body_start, pos);
            return Ok(Body::HereDoc {
                tag: tag.to_string(),
                lines,
                span,
            });
        }
        lines.push(line.to_string());
        pos = next;
    }
}

/// Where to resume after a broken expression: just after the next `[end]`,
/// or the end of the text.
fn skip_to_end_marker(text: &str, from: usize) -> usize {
    match text[from.min(text.len())..].find("[end]") {
        Some(i) => from + i + "[end]".len(),
        None => text.len(),
    }
}
