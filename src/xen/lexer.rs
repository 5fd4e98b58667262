//! Tokens of a Xen domain config, exactly as libxlutil's lexer reads them.
//!
//! The rules (docs/SPEC.md, appendix A) are narrower than they look: identifiers are
//! lower-case only, numbers are `[0-9][0-9a-fx]*` kept as text, strings are
//! one line, CR is never accepted, and a `#` comment must end with a
//! newline. Anything else is a lexical error, because `xl create` would
//! reject it later and we must reject it first.

use super::error::ErrorKind;
use nom::bytes::complete::{take_while, take_while1};
use nom::character::complete::satisfy;
use nom::combinator::recognize;
use nom::sequence::pair;
use nom::{IResult, Parser};

/// One token; `start..end` are byte offsets into the whole text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Ident(String),
    Number(String),
    /// The decoded value of a quoted string.
    Str(Vec<u8>),
    /// `${NAME}` standing where a value may stand (templates only).
    Placeholder(String),
    Assign,
    Append,
    Comma,
    Open,
    Close,
    Semicolon,
    /// A newline, or a `#` comment with its newline.
    Newline,
    Eof,
}

impl TokenKind {
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Ident(s) => format!("identifier `{s}`"),
            TokenKind::Number(s) => format!("number `{s}`"),
            TokenKind::Str(_) => "string".to_string(),
            TokenKind::Placeholder(s) => format!("`${{{s}}}`"),
            TokenKind::Assign => "`=`".to_string(),
            TokenKind::Append => "`+=`".to_string(),
            TokenKind::Comma => "`,`".to_string(),
            TokenKind::Open => "`[`".to_string(),
            TokenKind::Close => "`]`".to_string(),
            TokenKind::Semicolon => "`;`".to_string(),
            TokenKind::Newline => "end of line".to_string(),
            TokenKind::Eof => "end of file".to_string(),
        }
    }
}

/// A lexical error at a byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    pub offset: usize,
    pub len: usize,
    pub kind: ErrorKind,
}

/// Reads tokens on demand from `text[pos..]`.
pub struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    /// Accept `${NAME}` as a value token (container templates).
    templates: bool,
}

fn ident(i: &str) -> IResult<&str, &str> {
    recognize(pair(
        satisfy(|c| c.is_ascii_lowercase()),
        take_while(|c: char| c == '.' || c == '_' || c.is_ascii_digit() || c.is_ascii_lowercase()),
    ))
    .parse(i)
}

fn number(i: &str) -> IResult<&str, &str> {
    recognize(pair(
        satisfy(|c| c.is_ascii_digit()),
        take_while(|c: char| c.is_ascii_digit() || ('a'..='f').contains(&c) || c == 'x'),
    ))
    .parse(i)
}

fn blanks(i: &str) -> IResult<&str, &str> {
    take_while(|c| c == ' ' || c == '\t').parse(i)
}

/// A template variable name: what may stand inside `${...}`.
pub fn var_name(i: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-').parse(i)
}

impl<'a> Lexer<'a> {
    pub fn new(text: &'a str, pos: usize, templates: bool) -> Lexer<'a> {
        Lexer {
            text,
            pos,
            templates,
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    fn err(&self, offset: usize, len: usize, kind: ErrorKind) -> LexError {
        LexError {
            offset,
            len: len.max(1),
            kind,
        }
    }

    /// The next token, skipping blanks.
    pub fn next_token(&mut self) -> Result<Token, LexError> {
        let rest = &self.text[self.pos..];
        let (rest, _) = blanks(rest).unwrap_or((rest, ""));
        let start = self.text.len() - rest.len();
        self.pos = start;
        let tok = |kind, end| Token { kind, start, end };
        let Some(c) = rest.chars().next() else {
            return Ok(tok(TokenKind::Eof, start));
        };
        let single = |me: &mut Self, kind| {
            me.pos = start + 1;
            Ok(Token {
                kind,
                start,
                end: start + 1,
            })
        };
        match c {
            '\n' => single(self, TokenKind::Newline),
            '=' => single(self, TokenKind::Assign),
            ',' => single(self, TokenKind::Comma),
            '[' => single(self, TokenKind::Open),
            ']' => single(self, TokenKind::Close),
            ';' => single(self, TokenKind::Semicolon),
            '+' if rest.starts_with("+=") => {
                self.pos = start + 2;
                Ok(tok(TokenKind::Append, start + 2))
            }
            '#' => match rest.find('\n') {
                Some(nl) => {
                    self.pos = start + nl + 1;
                    Ok(tok(TokenKind::Newline, self.pos))
                }
                None => self.illegal(start, rest.len(), ErrorKind::UnterminatedComment),
            },
            '\r' => self.illegal(start, 1, ErrorKind::CarriageReturn),
            '"' | '\'' if start + 1 == self.text.len() => {
                self.illegal(start, 1, ErrorKind::UnterminatedString)
            }
            '"' | '\'' => {
                let (value, len) = self.string(rest, start, c)?;
                self.pos = start + len;
                Ok(tok(TokenKind::Str(value), self.pos))
            }
            '$' if self.templates && rest.starts_with("${") => {
                let inner = &rest[2..];
                match var_name(inner) {
                    Ok((after, name)) if after.starts_with('}') => {
                        let len = 2 + name.len() + 1;
                        self.pos = start + len;
                        Ok(tok(TokenKind::Placeholder(name.to_string()), self.pos))
                    }
                    _ => Err(self.err(start, 2, ErrorKind::BadPlaceholder)),
                }
            }
            c if c.is_ascii_lowercase() => {
                let (after, id) =
                    ident(rest).map_err(|_| self.err(start, 1, ErrorKind::BadIdentifier))?;
                self.pos = start + id.len();
                self.check_glued(after, "identifier")?;
                Ok(tok(TokenKind::Ident(id.to_string()), self.pos))
            }
            c if c.is_ascii_digit() => {
                let (after, n) =
                    number(rest).map_err(|_| self.err(start, 1, ErrorKind::BadNumber))?;
                self.pos = start + n.len();
                self.check_glued(after, "number")?;
                Ok(tok(TokenKind::Number(n.to_string()), self.pos))
            }
            c if c.is_ascii_uppercase() || c == '_' => {
                self.illegal(start, 1, ErrorKind::NameStart { c })
            }
            '-' | '+' | '.' | '(' | ')' | ':' | '{' | '}' | '*' | '/' => {
                self.illegal(start, 1, ErrorKind::PythonSyntax { c })
            }
            c => self.illegal(start, c.len_utf8(), ErrorKind::UnexpectedChar { c }),
        }
    }

    /// A byte that cannot start a token. libxlutil's lexer reports it only
    /// when at least one more byte follows: an illegal *last* byte of the
    /// file is silently dropped (`a = 1;+` is accepted). `check` must agree
    /// with `xl`, so such a byte ends the input here too.
    fn illegal(&mut self, offset: usize, len: usize, kind: ErrorKind) -> Result<Token, LexError> {
        if offset + 1 == self.text.len() {
            self.pos = self.text.len();
            return Ok(Token {
                kind: TokenKind::Eof,
                start: offset,
                end: self.text.len(),
            });
        }
        Err(self.err(offset, len, kind))
    }

    /// libxlutil's lexer has no rule for a name or number followed by a
    /// character that cannot start a token (`0x1F`, `1.5`, `Memory`): the
    /// longest match ends and the next character is a lexical error. Saying
    /// so here names the whole word, which is what a person needs.
    fn check_glued(&self, after: &str, what: &str) -> Result<(), LexError> {
        let Some(c) = after.chars().next() else {
            return Ok(());
        };
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '(' | ')') {
            let offset = self.text.len() - after.len();
            if offset + 1 == self.text.len() && !c.is_ascii_lowercase() && !c.is_ascii_digit() {
                // an illegal last byte is dropped (see `illegal`)
                return Ok(());
            }
            let word_len = after
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')))
                .unwrap_or(after.len());
            let kind = if what == "number" {
                ErrorKind::NumberContinues { c }
            } else {
                ErrorKind::NameContinues { c }
            };
            return Err(self.err(offset, word_len.max(1), kind));
        }
        Ok(())
    }

    /// Decodes a quoted string starting at `rest` (which begins with the
    /// quote). Returns the value and the length of the literal in bytes.
    fn string(&self, rest: &str, start: usize, quote: char) -> Result<(Vec<u8>, usize), LexError> {
        let bytes = rest.as_bytes();
        let mut out = Vec::new();
        let mut i = 1;
        loop {
            let Some(&b) = bytes.get(i) else {
                return Err(self.err(start, 1, ErrorKind::StringEndsLine));
            };
            match b {
                b'\n' => return Err(self.err(start, i, ErrorKind::StringEndsLine)),
                b if b == quote as u8 => return Ok((out, i + 1)),
                b'\\' => {
                    let Some(&e) = bytes.get(i + 1) else {
                        return Err(self.err(start, 1, ErrorKind::UnterminatedString));
                    };
                    let simple = match e {
                        b'"' => Some(b'"'),
                        // `\'` is an escape in both quote styles (measured
                        // on Xen 4.17: `'x\'y'` reads `x'y`, `'\''` reads `'`)
                        b'\'' => Some(b'\''),
                        b'\\' => Some(b'\\'),
                        b'a' => Some(0x07),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0c),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'v' => Some(0x0b),
                        _ => None,
                    };
                    if let Some(v) = simple {
                        out.push(v);
                        i += 2;
                        continue;
                    }
                    // libxlutil consumes an octal escape and stores
                    // nothing. What it consumes is not octal, as measured
                    // on Xen 4.17: after `\` and an octal digit, the next
                    // three bytes are read as C's `strtoul(.., 10)` would
                    // (blanks, a sign, decimal digits) and the escape is
                    // accepted when that reading used at least two of them.
                    // We keep the quirk so `check` agrees with `xl`.
                    if matches!(e, b'0'..=b'7') {
                        // (a string never spans lines, so neither does this)
                        let window = &bytes[i + 2..(i + 5).min(bytes.len())];
                        let window = window.split(|&c| c == b'\n').next().unwrap_or(window);
                        let used = strtoul_len(window);
                        if used >= 2 {
                            i += 2 + used;
                            continue;
                        }
                    }
                    let shown = rest[i..]
                        .chars()
                        .nth(1)
                        .map(|c| c.to_string())
                        .unwrap_or_default();
                    return Err(self.err(
                        start + i,
                        1 + shown.len(),
                        ErrorKind::InvalidEscape { shown },
                    ));
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
    }
}

/// How many bytes of `b` C's `strtoul(b, &end, 10)` reads: leading
/// white space, an optional sign, then decimal digits; none at all when no
/// digit follows.
fn strtoul_len(b: &[u8]) -> usize {
    let blanks = b
        .iter()
        .take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .count();
    let sign = usize::from(matches!(b.get(blanks), Some(b'+' | b'-')));
    let digits = b[blanks + sign..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits == 0 {
        0
    } else {
        blanks + sign + digits
    }
}
