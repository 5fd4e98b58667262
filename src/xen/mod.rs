//! Xen domain configuration files as libxlutil (Xen 4.17) reads them.
//!
//! This module knows nothing about containers. It parses one statement at
//! a time (so another language can interleave its own syntax between
//! statements) or a whole file, and applies `=`/`+=` the way `xl` does.

pub mod error;
pub mod lexer;

pub use error::ErrorKind;

use lexer::{LexError, Lexer, Token, TokenKind};
use std::collections::BTreeMap;

/// A value as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A quoted string, decoded.
    Str(Vec<u8>),
    /// A number, kept as its text as libxlutil does.
    Number(String),
    /// `${NAME}` where a value may stand (templates only).
    Placeholder(String),
    List(Vec<Value>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) | Value::Number(_) | Value::Placeholder(_) => "string",
            Value::List(_) => "list",
        }
    }

    /// The text `xl` would read back for a scalar (numbers are strings).
    pub fn scalar_text(&self) -> Option<Vec<u8>> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Number(n) => Some(n.clone().into_bytes()),
            _ => None,
        }
    }
}

/// `=` or `+=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Assign,
    Append,
}

/// One `name = value` statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub name: String,
    pub op: Op,
    pub value: Value,
    /// Byte range of the name.
    pub name_range: (usize, usize),
    /// Byte range of the value as written.
    pub value_range: (usize, usize),
    /// Byte range from the name to the end of the value (terminator excluded).
    pub range: (usize, usize),
}

/// A syntax or lexical error at a byte range, with an optional second
/// location that explains it (where a list was opened).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub len: usize,
    pub kind: ErrorKind,
    pub note: Option<(usize, String)>,
}

impl From<LexError> for SyntaxError {
    fn from(e: LexError) -> Self {
        SyntaxError {
            offset: e.offset,
            len: e.len,
            kind: e.kind,
            note: None,
        }
    }
}

struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<Token>,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<&Token, SyntaxError> {
        let t = match self.peeked.take() {
            Some(t) => t,
            None => self.lex.next_token()?,
        };
        Ok(self.peeked.insert(t))
    }

    fn bump(&mut self) -> Result<Token, SyntaxError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => Ok(self.lex.next_token()?),
        }
    }

    fn unexpected(tok: &Token, expected: &'static str) -> SyntaxError {
        SyntaxError {
            offset: tok.start,
            len: (tok.end - tok.start).max(1),
            kind: ErrorKind::Unexpected {
                expected,
                found: tok.kind.describe(),
                unclosed: false,
            },
            note: None,
        }
    }

    /// Skips an `nlok` whose state sits at parser-stack depth `depth`.
    fn skip_newlines(&mut self, depth: usize) -> Result<(), SyntaxError> {
        stack_check(depth, self.peek()?)?;
        while self.peek()?.kind == TokenKind::Newline {
            // NEWLINE is shifted above nlok, then reduced into it
            stack_check(depth + 1, self.peek()?)?;
            self.bump()?;
        }
        Ok(())
    }

    /// value: STRING | NUMBER | '[' nlok valuelist ']'
    ///
    /// `depth` is how many states libxlutil's bison parser holds when the
    /// value starts (4 for a statement's value: the initial state, `stmts`,
    /// IDENT and `=`). Its stack holds fewer than `YYMAXDEPTH` states, so
    /// nesting is bounded exactly where `xl` runs out (about 5000 levels).
    /// Open lists are kept on an explicit stack, not on the call stack.
    fn value(&mut self, depth: usize) -> Result<(Value, usize, usize), SyntaxError> {
        let mut lists: Vec<OpenList> = Vec::new();
        // where the next value starts
        let mut at = depth;
        'value: loop {
            // errors here belong to the value: the innermost open list
            // explains them
            let tok = self.bump().map_err(|e| noted(&lists, 0, e))?;
            if let TokenKind::Str(_)
            | TokenKind::Number(_)
            | TokenKind::Placeholder(_)
            | TokenKind::Open = tok.kind
            {
                stack_check(at + 1, &tok).map_err(|e| noted(&lists, 0, e))?;
            }
            let mut done = match tok.kind {
                TokenKind::Str(s) => (Value::Str(s), tok.start, tok.end),
                TokenKind::Number(n) => (Value::Number(n), tok.start, tok.end),
                TokenKind::Placeholder(n) => (Value::Placeholder(n), tok.start, tok.end),
                TokenKind::Open => {
                    // '[' at at + 1, nlok at at + 2; the first element
                    // starts above them, later ones above `values ',' nlok`
                    self.skip_newlines(at + 2)
                        .map_err(|e| noted(&lists, 0, e))?;
                    lists.push(OpenList {
                        open: tok.start,
                        items: Vec::new(),
                        depth: at,
                    });
                    // errors from here on belong to the list itself: its
                    // parent explains them
                    let t = self.peek().map_err(|e| noted(&lists, 1, e))?.clone();
                    if t.kind != TokenKind::Close {
                        at += 2;
                        continue 'value;
                    }
                    // valuelist at depth + 3, ']' at depth + 4
                    stack_check(at + 4, &t).map_err(|e| noted(&lists, 1, e))?;
                    self.bump().map_err(|e| noted(&lists, 1, e))?;
                    close_list(&mut lists, &t)?
                }
                _ => {
                    let e =
                        Self::unexpected(&tok, "a value (a number, a quoted string or a `[` list)");
                    return Err(noted(&lists, 0, e));
                }
            };
            // a value is complete: it is an element of the innermost list
            loop {
                let Some(l) = lists.last_mut() else {
                    return Ok(done);
                };
                let d = l.depth;
                let elem_at = if l.items.is_empty() { d + 2 } else { d + 5 };
                let open = l.open;
                l.items.push(done.0);
                // the value at elem_at + 1, its nlok at elem_at + 2; then
                // reduced to `values` at d + 3
                self.skip_newlines(elem_at + 2)
                    .map_err(|e| noted(&lists, 1, e))?;
                let t = self.bump().map_err(|e| noted(&lists, 1, e))?;
                match t.kind {
                    TokenKind::Comma => {
                        // ',' at d + 4, nlok at d + 5
                        self.skip_newlines(d + 5).map_err(|e| noted(&lists, 1, e))?;
                        let t = self.peek().map_err(|e| noted(&lists, 1, e))?.clone();
                        if t.kind != TokenKind::Close {
                            at = d + 5;
                            continue 'value;
                        }
                        stack_check(d + 4, &t).map_err(|e| noted(&lists, 1, e))?;
                        self.bump().map_err(|e| noted(&lists, 1, e))?;
                        done = close_list(&mut lists, &t)?;
                    }
                    TokenKind::Close => {
                        stack_check(d + 4, &t).map_err(|e| noted(&lists, 1, e))?;
                        done = close_list(&mut lists, &t)?;
                    }
                    _ => {
                        let mut e = Self::unexpected(&t, "`,` or `]`");
                        if let ErrorKind::Unexpected { unclosed, .. } = &mut e.kind {
                            *unclosed = matches!(t.kind, TokenKind::Ident(_) | TokenKind::Eof);
                        }
                        e.note = Some((open, "the list opened here is not closed".to_string()));
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// A list being read by [`Parser::value`].
struct OpenList {
    /// Offset of its `[`.
    open: usize,
    items: Vec<Value>,
    /// Parser-stack depth where the list value started.
    depth: usize,
}

/// Adds "the list opened here" pointing at the list `skip` levels out from
/// the innermost one, unless the error already has a note (as each
/// enclosing call of a recursive parser would, the innermost first).
fn noted(lists: &[OpenList], skip: usize, mut e: SyntaxError) -> SyntaxError {
    if let Some(l) = lists.len().checked_sub(1 + skip).and_then(|i| lists.get(i)) {
        e.note
            .get_or_insert((l.open, "the list opened here".to_string()));
    }
    e
}

/// libxlutil's parser is generated by bison with the default `YYMAXDEPTH`:
/// a parse that needs this many states on its stack fails.
const YYMAXDEPTH: usize = 10000;

/// Fails as `xl` does ("memory exhausted") when the parser stack would
/// hold `depth` states.
/// The innermost open list, closed by `]` token `close`. Callers only close
/// a list they opened, so the stack is never empty here; should it be, the
/// `]` is reported as unexpected rather than trusted.
fn close_list(
    lists: &mut Vec<OpenList>,
    close: &Token,
) -> Result<(Value, usize, usize), SyntaxError> {
    match lists.pop() {
        Some(l) => Ok((Value::List(l.items), l.open, close.end)),
        None => Err(SyntaxError {
            offset: close.start,
            len: (close.end - close.start).max(1),
            kind: ErrorKind::UnexpectedClose,
            note: None,
        }),
    }
}

fn stack_check(depth: usize, at: &Token) -> Result<(), SyntaxError> {
    if depth < YYMAXDEPTH {
        return Ok(());
    }
    Err(SyntaxError {
        offset: at.start,
        len: (at.end - at.start).max(1),
        kind: ErrorKind::TooDeep,
        note: None,
    })
}

/// What follows a statement position.
#[derive(Debug)]
pub enum Parsed {
    Statement(Statement),
    /// The next token is not a name: the caller decides (end of file, an
    /// empty statement, or its own syntax).
    NotAStatement,
}

/// Parses one statement starting at byte `pos` of `text` (blanks first are
/// skipped). On success returns the statement and the offset just after its
/// terminator (newline or `;`, or end of file); a `#` comment ending the
/// line belongs to the terminator.
pub fn parse_statement(
    text: &str,
    pos: usize,
    templates: bool,
) -> Result<(Parsed, usize), SyntaxError> {
    let mut p = Parser {
        lex: Lexer::new(text, pos, templates),
        peeked: None,
    };
    let first = p.peek()?.clone();
    let TokenKind::Ident(name) = first.kind.clone() else {
        return Ok((Parsed::NotAStatement, pos));
    };
    p.bump()?;
    let op_tok = p.bump()?;
    let op = match op_tok.kind {
        TokenKind::Assign => Op::Assign,
        TokenKind::Append => Op::Append,
        _ => return Err(Parser::unexpected(&op_tok, "`=` or `+=`")),
    };
    let (value, vstart, vend) = p.value(4)?;
    let end = p.bump()?;
    let after = match end.kind {
        TokenKind::Newline | TokenKind::Semicolon | TokenKind::Eof => end.end,
        _ => {
            return Err(Parser::unexpected(
                &end,
                "the end of the statement (a newline or `;`)",
            ))
        }
    };
    Ok((
        Parsed::Statement(Statement {
            name,
            op,
            value,
            name_range: (first.start, first.end),
            value_range: (vstart, vend),
            range: (first.start, vend),
        }),
        after,
    ))
}

/// Offset of the start of the next line after `pos` (or the end of text):
/// where parsing resumes after an error, as libxlutil's `error NEWLINE`
/// rule does.
pub fn recover(text: &str, pos: usize) -> usize {
    match text[pos.min(text.len())..].find('\n') {
        Some(i) => pos + i + 1,
        None => text.len(),
    }
}

/// Parses a whole plain Xen config, collecting every error.
pub fn parse_config(text: &str) -> (Vec<Statement>, Vec<SyntaxError>) {
    let mut stmts = Vec::new();
    let mut errors = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        // empty statements: blank lines, `;`, comment lines
        let mut lex = Lexer::new(text, pos, false);
        match lex.next_token() {
            Ok(t) if matches!(t.kind, TokenKind::Newline | TokenKind::Semicolon) => {
                pos = t.end;
                continue;
            }
            Ok(t) if t.kind == TokenKind::Eof => break,
            Ok(_) => {}
            Err(e) => {
                errors.push(e.into());
                pos = recover(text, pos);
                continue;
            }
        }
        match parse_statement(text, pos, false) {
            Ok((Parsed::Statement(s), next)) => {
                stmts.push(s);
                pos = next;
            }
            Ok((Parsed::NotAStatement, _)) => {
                let mut lex = Lexer::new(text, pos, false);
                match lex.next_token() {
                    Ok(t) if t.kind == TokenKind::Eof => break,
                    Ok(t) => errors.push(Parser::unexpected(&t, "a setting name")),
                    Err(e) => errors.push(e.into()),
                }
                pos = recover(text, pos);
            }
            Err(e) => {
                let at = e.offset;
                errors.push(e);
                pos = recover(text, at.max(pos));
            }
        }
    }
    if let Err(e) = apply_all(&stmts) {
        errors.push(e);
    }
    (stmts, errors)
}

/// The settings after applying every statement in order, as `xl` sees them:
/// a repeated name keeps the last value, `+=` appends string to string and
/// list to list, and acts as `=` when there is no earlier value.
pub fn apply_all(stmts: &[Statement]) -> Result<BTreeMap<String, Value>, SyntaxError> {
    let mut settings: BTreeMap<String, Value> = BTreeMap::new();
    for s in stmts {
        apply(&mut settings, s)?;
    }
    Ok(settings)
}

/// Applies one statement to a settings map.
pub fn apply(settings: &mut BTreeMap<String, Value>, s: &Statement) -> Result<(), SyntaxError> {
    match (s.op, settings.get_mut(&s.name)) {
        (Op::Append, Some(old)) => match (old, &s.value) {
            (Value::List(a), Value::List(b)) => a.extend(b.iter().cloned()),
            (
                old @ (Value::Str(_) | Value::Number(_)),
                new @ (Value::Str(_) | Value::Number(_)),
            ) => {
                let mut joined = old.scalar_text().unwrap_or_default();
                joined.extend(new.scalar_text().unwrap_or_default());
                *old = Value::Str(joined);
            }
            (old, new) => {
                return Err(SyntaxError {
                    offset: s.value_range.0,
                    len: (s.value_range.1 - s.value_range.0).max(1),
                    kind: ErrorKind::BadAppend {
                        name: s.name.clone(),
                        new: new.type_name(),
                        old: old.type_name(),
                    },
                    note: None,
                })
            }
        },
        _ => {
            settings.insert(s.name.clone(), s.value.clone());
        }
    }
    Ok(())
}

/// Renders a string as a double-quoted Xen string literal.
pub fn quote(s: &[u8]) -> String {
    let mut out = String::from("\"");
    for ch in String::from_utf8_lossy(s).chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The target (the image or device) a `disk = [...]` entry names, as
/// libxlutil's disk parser finds it: `target=` takes the rest of the entry,
/// else the first positional field, without leading blanks and without the
/// legacy `phy:`, `file:`, `tap:aio:`, `qcow2:`... prefixes.
pub fn disk_target(spec: &str) -> &str {
    let mut at = 0;
    let mut positional = None;
    for field in spec.split(',') {
        let trimmed = field.trim_start();
        if let Some(rest) = trimmed.strip_prefix("target=") {
            // `target=` is last by rule: commas after it are the path's
            let from = at + (field.len() - rest.len());
            return &spec[from..];
        }
        if positional.is_none() && !trimmed.contains('=') {
            positional = Some(trimmed);
        }
        at += field.len() + 1;
    }
    let mut target = positional.unwrap_or("");
    const PREFIXES: &[&str] = &[
        "phy:", "file:", "tap:", "tap2:", "aio:", "raw:", "qcow:", "qcow2:", "vhd:", "qed:",
    ];
    while let Some(rest) = PREFIXES.iter().find_map(|p| target.strip_prefix(p)) {
        target = rest;
    }
    target
}

/// True when `s` is a number as libxlutil's lexer reads one.
pub fn is_number(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_digit()
        && b.iter()
            .all(|&c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c) || c == b'x')
}

/// Renders a value as Xen text.
pub fn render(v: &Value) -> String {
    match v {
        Value::Str(s) => quote(s),
        Value::Number(n) => n.clone(),
        Value::Placeholder(n) => format!("${{{n}}}"),
        Value::List(items) => {
            let inner: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", inner.join(", "))
        }
    }
}

#[cfg(test)]
mod tests;
