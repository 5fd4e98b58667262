//! Reading multi-file unified diffs as `diff -ruN`, `diff -u` and git write
//! them.
//!
//! As GNU patch does, text between file sections (mail headers, commit
//! messages, `diff -ruN a/x b/x` command lines) is skipped; inside a hunk
//! every line must be what the hunk header announced.

use super::apply::split_lines;
use super::timestamp::parse_timestamp;
use super::{Content, FileOp, FilePatch, Hunk, HunkLine, OnlyIn, Patch};

/// Line numbers and counts above this are refused: no text file that a
/// patch targets has two billion lines, and the bound keeps every later
/// addition far from overflow.
const MAX_LINE: usize = 1 << 31;

/// A patch that cannot be read: which patch, which line, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}:{line}: {cause}")]
pub struct ParseError {
    pub name: String,
    /// 1-based line of the patch.
    pub line: usize,
    pub cause: ParseCause,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseCause {
    #[error("no unified diff found in the patch")]
    NoDiff,
    #[error("hunk header outside a file section: {0:?}")]
    HunkWithoutFile(String),
    #[error("malformed hunk header {0:?}")]
    BadHunkHeader(String),
    #[error("absurd line number or count in hunk header {0:?}")]
    AbsurdNumber(String),
    #[error("hunk ends early: header announces {old} old and {new} new lines, the patch ends after {old_seen} and {new_seen}")]
    Truncated {
        old: usize,
        new: usize,
        old_seen: usize,
        new_seen: usize,
    },
    #[error("hunk has more {0} lines than its header announces")]
    TooManyLines(&'static str),
    #[error("unexpected line inside a hunk: {0:?}")]
    Garbage(String),
    #[error("`\\ No newline at end of file` does not follow a hunk line")]
    StrayNoNewline,
    #[error("hunk starting at old line {start} overlaps or precedes the previous hunk (misordered hunks)")]
    Misordered { start: usize },
    #[error("`---` header without a following `+++` header")]
    MissingNewHeader,
    #[error("file section has neither an old nor a new name (both /dev/null)")]
    NoName,
    #[error("creation of {0:?} has old lines in its hunks")]
    CreationWithOldLines(String),
    #[error("malformed git extended header {0:?}")]
    BadGitHeader(String),
}

/// Parses a multi-file unified diff. `name` identifies the patch in error
/// messages. The result strips one leading component (`-p1`); change
/// [`Patch::strip`] for another level.
pub fn parse(text: &[u8], name: &str) -> Result<Patch, ParseError> {
    Parser {
        name,
        lines: split_lines(text),
        pos: 0,
    }
    .run()
}

struct Parser<'a> {
    name: &'a str,
    lines: Vec<&'a [u8]>,
    /// Index of the next unread line (line number `pos + 1`).
    pos: usize,
}

/// What a `---`/`+++` header says about one side.
struct Side {
    name: Option<Vec<u8>>,
    epoch: bool,
}

/// git extended headers collected after `diff --git`.
#[derive(Default)]
struct GitHeaders {
    old_mode: Option<u32>,
    new_mode: Option<u32>,
    created: bool,
    deleted: bool,
    rename: Option<bool>,
    binary: bool,
}

impl<'a> Parser<'a> {
    fn err(&self, line: usize, cause: ParseCause) -> ParseError {
        ParseError {
            name: self.name.to_string(),
            line,
            cause,
        }
    }

    fn peek(&self) -> Option<&'a [u8]> {
        self.lines.get(self.pos).copied()
    }

    fn run(mut self) -> Result<Patch, ParseError> {
        let mut files = Vec::new();
        let mut only_in = Vec::new();
        while let Some(line) = self.peek() {
            let lineno = self.pos + 1;
            let body = trim_eol(line);
            if body.starts_with(b"diff --git ") {
                self.pos += 1;
                files.push(self.git_section(lineno, body)?);
            } else if body.starts_with(b"--- ")
                && self
                    .lines
                    .get(self.pos + 1)
                    .is_some_and(|l| l.starts_with(b"+++ "))
            {
                files.push(self.unified_section(lineno, GitHeaders::default(), None)?);
            } else if body.starts_with(b"@@ ") {
                return Err(self.err(lineno, ParseCause::HunkWithoutFile(lossy(body))));
            } else if let Some(rest) = body.strip_prefix(b"Only in ") {
                if let Some(i) = find(rest, b": ") {
                    only_in.push(OnlyIn {
                        line: lineno,
                        dir: rest[..i].to_vec(),
                        name: rest[i + 2..].to_vec(),
                    });
                }
                self.pos += 1;
            } else if let Some((old, new)) = binary_line(body) {
                self.pos += 1;
                files.push(FilePatch {
                    line: lineno,
                    old_name: Some(old),
                    new_name: Some(new),
                    op: FileOp::Modify,
                    content: Content::Binary,
                    old_mode: None,
                    new_mode: None,
                    hunks: Vec::new(),
                });
            } else {
                self.pos += 1;
            }
        }
        // An empty patch (the diff of identical trees) changes nothing, as
        // for GNU patch; text without any diff in it is refused.
        if files.is_empty() && only_in.is_empty() && !self.lines.is_empty() {
            return Err(self.err(self.lines.len().max(1), ParseCause::NoDiff));
        }
        Ok(Patch {
            name: self.name.to_string(),
            strip: 1,
            files,
            only_in,
        })
    }

    fn git_section(&mut self, lineno: usize, header: &[u8]) -> Result<FilePatch, ParseError> {
        let (old, new) = git_names(&header[b"diff --git ".len()..])
            .ok_or_else(|| self.err(lineno, ParseCause::BadGitHeader(lossy(header))))?;
        let mut g = GitHeaders::default();
        while let Some(line) = self.peek() {
            let body = trim_eol(line);
            let here = self.pos + 1;
            let mode = |rest: &[u8]| {
                std::str::from_utf8(rest)
                    .ok()
                    .and_then(|s| u32::from_str_radix(s.trim(), 8).ok())
                    .ok_or_else(|| self.err(here, ParseCause::BadGitHeader(lossy(body))))
            };
            if let Some(r) = body.strip_prefix(b"old mode ") {
                g.old_mode = Some(mode(r)?);
            } else if let Some(r) = body.strip_prefix(b"new mode ") {
                g.new_mode = Some(mode(r)?);
            } else if let Some(r) = body.strip_prefix(b"deleted file mode ") {
                g.old_mode = Some(mode(r)?);
                g.deleted = true;
            } else if let Some(r) = body.strip_prefix(b"new file mode ") {
                g.new_mode = Some(mode(r)?);
                g.created = true;
            } else if body.starts_with(b"rename from ") || body.starts_with(b"rename to ") {
                g.rename = Some(false);
            } else if body.starts_with(b"copy from ") || body.starts_with(b"copy to ") {
                g.rename = Some(true);
            } else if body.starts_with(b"similarity index ")
                || body.starts_with(b"dissimilarity index ")
                || body.starts_with(b"index ")
            {
            } else if body == b"GIT binary patch" || binary_line(body).is_some() {
                g.binary = true;
            } else if body.starts_with(b"--- ")
                && self
                    .lines
                    .get(self.pos + 1)
                    .is_some_and(|l| l.starts_with(b"+++ "))
            {
                return self.unified_section(lineno, g, Some((old, new)));
            } else {
                break;
            }
            self.pos += 1;
        }
        // No `---`/`+++`: a mode-only change, a rename without edits, an
        // empty file created or deleted, or a binary change.
        let op = if g.created {
            FileOp::Create
        } else if g.deleted {
            FileOp::Delete
        } else {
            FileOp::Modify
        };
        let content = match (g.binary, g.rename) {
            (_, Some(copy)) => Content::Rename { copy },
            (true, None) => Content::Binary,
            (false, None) => Content::Text,
        };
        if g.binary {
            // Skip the base85 body of a git binary patch: it ends at the
            // next blank line pair or section; it is never applied.
            while let Some(l) = self.peek() {
                if l.starts_with(b"diff ") {
                    break;
                }
                self.pos += 1;
            }
        }
        Ok(FilePatch {
            line: lineno,
            old_name: if op == FileOp::Create {
                None
            } else {
                Some(old)
            },
            new_name: if op == FileOp::Delete {
                None
            } else {
                Some(new)
            },
            op,
            content,
            old_mode: g.old_mode,
            new_mode: g.new_mode,
            hunks: Vec::new(),
        })
    }

    /// Reads `---`, `+++` and the hunks that follow. `self.pos` is at the
    /// `---` line.
    fn unified_section(
        &mut self,
        lineno: usize,
        g: GitHeaders,
        git_names: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<FilePatch, ParseError> {
        let old_line = self.pos + 1;
        let old = self
            .peek()
            .map(|l| header_side(trim_eol(l).get(4..).unwrap_or_default()))
            .ok_or_else(|| self.err(old_line, ParseCause::MissingNewHeader))?;
        self.pos += 1;
        let new = match self.peek() {
            Some(l) if l.starts_with(b"+++ ") => {
                header_side(trim_eol(l).get(4..).unwrap_or_default())
            }
            _ => return Err(self.err(old_line, ParseCause::MissingNewHeader)),
        };
        self.pos += 1;

        let mut hunks: Vec<Hunk> = Vec::new();
        while let Some(line) = self.peek() {
            if !line.starts_with(b"@@ ") {
                break;
            }
            let h = self.hunk()?;
            if let Some(prev) = hunks.last() {
                let prev_end = prev.old_start.saturating_add(prev.old_count);
                // An empty old range names the line before it, so it may
                // equal the previous hunk's last line.
                let start = if h.old_count == 0 {
                    h.old_start.saturating_add(1)
                } else {
                    h.old_start
                };
                if start < prev_end {
                    return Err(self.err(h.line, ParseCause::Misordered { start: h.old_start }));
                }
            }
            hunks.push(h);
        }

        let old_empty = hunks.iter().all(|h| h.old_count == 0);
        let new_empty = hunks.iter().all(|h| h.new_count == 0);
        let op = if g.created || old.name.is_none() || (old.epoch && old_empty && !new_empty) {
            FileOp::Create
        } else if g.deleted || new.name.is_none() || (new.epoch && new_empty && !old_empty) {
            FileOp::Delete
        } else {
            FileOp::Modify
        };
        let (mut old_name, mut new_name) = match git_names {
            // git's `---`/`+++` say /dev/null for the absent side; its
            // `diff --git` line names both.
            Some((go, gn)) => (old.name.or(Some(go)), new.name.or(Some(gn))),
            None => (old.name, new.name),
        };
        match op {
            FileOp::Create => {
                if old_name.is_none() && new_name.is_none() {
                    return Err(self.err(lineno, ParseCause::NoName));
                }
                if !old_empty {
                    return Err(self.err(
                        lineno,
                        ParseCause::CreationWithOldLines(lossy(
                            new_name.as_deref().unwrap_or(b"?"),
                        )),
                    ));
                }
                old_name = None;
            }
            FileOp::Delete => new_name = None,
            FileOp::Modify => {}
        }
        if old_name.is_none() && new_name.is_none() {
            return Err(self.err(lineno, ParseCause::NoName));
        }
        Ok(FilePatch {
            line: lineno,
            old_name,
            new_name,
            op,
            content: match g.rename {
                Some(copy) => Content::Rename { copy },
                None => Content::Text,
            },
            old_mode: g.old_mode,
            new_mode: g.new_mode,
            hunks,
        })
    }

    /// Reads one hunk; `self.pos` is at its `@@` line.
    fn hunk(&mut self) -> Result<Hunk, ParseError> {
        let hline = self.pos + 1;
        let header = self.peek().map(trim_eol).unwrap_or_default();
        let (old_start, old_count, new_start, new_count) = match hunk_header(header) {
            HeaderParse::Ok(v) => v,
            HeaderParse::Malformed => {
                return Err(self.err(hline, ParseCause::BadHunkHeader(lossy(header))))
            }
            HeaderParse::Absurd => {
                return Err(self.err(hline, ParseCause::AbsurdNumber(lossy(header))))
            }
        };
        self.pos += 1;
        let (mut old_left, mut new_left) = (old_count, new_count);
        let mut lines: Vec<HunkLine> = Vec::new();
        while old_left > 0 || new_left > 0 {
            let here = self.pos + 1;
            let Some(line) = self.peek() else {
                return Err(self.err(
                    here,
                    ParseCause::Truncated {
                        old: old_count,
                        new: new_count,
                        old_seen: old_count - old_left,
                        new_seen: new_count - new_left,
                    },
                ));
            };
            let (tag, text) = match line.split_first() {
                Some((&t, rest)) => (t, rest),
                None => (b'\n', &[][..]),
            };
            let hl = match tag {
                b' ' => HunkLine::Context(text.to_vec()),
                // Mailers strip the lone space of an empty context line;
                // GNU patch accepts the bare newline, so do we.
                b'\n' => HunkLine::Context(b"\n".to_vec()),
                b'\r' if text == b"\n" => HunkLine::Context(line.to_vec()),
                b'-' => HunkLine::Delete(text.to_vec()),
                b'+' => HunkLine::Insert(text.to_vec()),
                b'\\' => {
                    self.no_newline(&mut lines, here)?;
                    self.pos += 1;
                    continue;
                }
                _ => {
                    return Err(self.err(here, ParseCause::Garbage(lossy(trim_eol(line)))));
                }
            };
            match hl {
                HunkLine::Context(_) => {
                    if old_left == 0 || new_left == 0 {
                        return Err(self.err(here, ParseCause::TooManyLines("context")));
                    }
                    old_left -= 1;
                    new_left -= 1;
                }
                HunkLine::Delete(_) => {
                    if old_left == 0 {
                        return Err(self.err(here, ParseCause::TooManyLines("deleted")));
                    }
                    old_left -= 1;
                }
                HunkLine::Insert(_) => {
                    if new_left == 0 {
                        return Err(self.err(here, ParseCause::TooManyLines("inserted")));
                    }
                    new_left -= 1;
                }
            }
            lines.push(hl);
            self.pos += 1;
        }
        if let Some(l) = self.peek() {
            if l.starts_with(b"\\") {
                let here = self.pos + 1;
                self.no_newline(&mut lines, here)?;
                self.pos += 1;
            }
        }
        Ok(Hunk {
            line: hline,
            old_start,
            old_count,
            new_start,
            new_count,
            lines,
        })
    }

    /// `\ No newline at end of file`: the previous line lacks its newline.
    fn no_newline(&self, lines: &mut [HunkLine], here: usize) -> Result<(), ParseError> {
        let text = match lines.last_mut() {
            Some(HunkLine::Context(t) | HunkLine::Delete(t) | HunkLine::Insert(t)) => t,
            None => return Err(self.err(here, ParseCause::StrayNoNewline)),
        };
        if text.last() != Some(&b'\n') {
            return Err(self.err(here, ParseCause::StrayNoNewline));
        }
        text.pop();
        Ok(())
    }
}

enum HeaderParse {
    Ok((usize, usize, usize, usize)),
    Malformed,
    Absurd,
}

/// `@@ -l[,s] +l[,s] @@[ section]`.
fn hunk_header(h: &[u8]) -> HeaderParse {
    let Some(rest) = h.strip_prefix(b"@@ -") else {
        return HeaderParse::Malformed;
    };
    let Some(end) = find(rest, b" @@") else {
        return HeaderParse::Malformed;
    };
    let ranges = &rest[..end];
    let Some(sp) = find(ranges, b" +") else {
        return HeaderParse::Malformed;
    };
    let (old, new) = (&ranges[..sp], &ranges[sp + 2..]);
    let (Some(o), Some(n)) = (range(old), range(new)) else {
        return HeaderParse::Malformed;
    };
    let (Some((os, oc)), Some((ns, nc))) = (o, n) else {
        return HeaderParse::Absurd;
    };
    // A non-empty range starts at line 1 or later.
    if (oc > 0 && os == 0) || (nc > 0 && ns == 0) {
        return HeaderParse::Absurd;
    }
    HeaderParse::Ok((os, oc, ns, nc))
}

/// `l[,s]`: `None` when malformed, `Some(None)` when absurdly large.
fn range(r: &[u8]) -> Option<Option<(usize, usize)>> {
    let (l, s) = match find(r, b",") {
        Some(i) => (&r[..i], Some(&r[i + 1..])),
        None => (r, None),
    };
    let l = number(l)?;
    let s = match s {
        Some(s) => number(s)?,
        None => Some(1),
    };
    Some(match (l, s) {
        (Some(l), Some(s)) if l <= MAX_LINE && s <= MAX_LINE => Some((l, s)),
        _ => None,
    })
}

/// Decimal digits: `None` when not a number, `Some(None)` on overflow.
fn number(d: &[u8]) -> Option<Option<usize>> {
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: usize = 0;
    for &b in d {
        match v
            .checked_mul(10)
            .and_then(|v| v.checked_add(usize::from(b - b'0')))
        {
            Some(n) => v = n,
            None => return Some(None),
        }
    }
    Some(Some(v))
}

/// The name and timestamp after `--- ` or `+++ `.
fn header_side(rest: &[u8]) -> Side {
    let (name, stamp) = if rest.first() == Some(&b'"') {
        match unquote(rest) {
            Some((n, used)) => (n, rest.get(used..).unwrap_or_default()),
            None => (rest.to_vec(), &[][..]),
        }
    } else {
        match rest.iter().position(|&b| b == b'\t') {
            Some(i) => (rest[..i].to_vec(), &rest[i + 1..]),
            None => (trim_end(rest).to_vec(), &[][..]),
        }
    };
    let epoch = parse_timestamp(stamp).is_some_and(|(s, _)| s == 0);
    Side {
        name: if name == b"/dev/null" {
            None
        } else {
            Some(name)
        },
        epoch,
    }
}

/// The two names of `diff --git a/x b/y`: quoted names, or an unquoted
/// line split where both halves agree after their first component (the
/// only reading git leaves unambiguous), else at the last ` b/`.
fn git_names(rest: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if rest.first() == Some(&b'"') {
        let (a, used) = unquote(rest)?;
        let tail = rest.get(used..)?.strip_prefix(b" ")?;
        let b = if tail.first() == Some(&b'"') {
            unquote(tail)?.0
        } else {
            tail.to_vec()
        };
        return Some((a, b));
    }
    let spaces: Vec<usize> = rest
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b' ')
        .map(|(i, _)| i)
        .collect();
    let tail = |s: &[u8]| -> Vec<u8> {
        match s.iter().position(|&b| b == b'/') {
            Some(i) => s[i..].to_vec(),
            None => s.to_vec(),
        }
    };
    for &i in &spaces {
        let (a, b) = (&rest[..i], &rest[i + 1..]);
        if b.first() == Some(&b'"') {
            return Some((a.to_vec(), unquote(b)?.0));
        }
        if tail(a) == tail(b) {
            return Some((a.to_vec(), b.to_vec()));
        }
    }
    let i = *spaces.last()?;
    Some((rest[..i].to_vec(), rest[i + 1..].to_vec()))
}

/// `Binary files X and Y differ` or `Files X and Y differ`.
fn binary_line(body: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let rest = body
        .strip_prefix(b"Binary files ")
        .or_else(|| body.strip_prefix(b"Files "))?;
    let rest = rest.strip_suffix(b" differ")?;
    let mut candidates = Vec::new();
    let mut from = 0;
    while let Some(i) = rest.get(from..).and_then(|r| find(r, b" and ")) {
        candidates.push(from + i);
        from += i + 1;
    }
    let split = |i: usize| (rest[..i].to_vec(), rest[i + 5..].to_vec());
    let last_component = |s: &[u8]| -> Vec<u8> {
        match s.iter().position(|&b| b == b'/') {
            Some(i) => s[i..].to_vec(),
            None => s.to_vec(),
        }
    };
    candidates
        .iter()
        .map(|&i| split(i))
        .find(|(a, b)| last_component(a) == last_component(b))
        .or_else(|| candidates.first().map(|&i| split(i)))
}

/// A C-style quoted name as GNU diff and git write names with special
/// characters. Returns the name and the bytes consumed.
fn unquote(s: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        let c = *s.get(i)?;
        i += 1;
        match c {
            b'"' => return Some((out, i)),
            b'\\' => {
                let e = *s.get(i)?;
                i += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'v' => out.push(11),
                    b'0'..=b'7' => {
                        let mut v = u32::from(e - b'0');
                        for _ in 0..2 {
                            match s.get(i) {
                                Some(&d @ b'0'..=b'7') => {
                                    v = v * 8 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push(u8::try_from(v).ok()?);
                    }
                    other => out.push(other),
                }
            }
            other => out.push(other),
        }
    }
}

fn trim_eol(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

fn trim_end(l: &[u8]) -> &[u8] {
    let mut end = l.len();
    while end > 0 && l[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    &l[..end]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn lossy(b: &[u8]) -> String {
    const MAX: usize = 80;
    let s = String::from_utf8_lossy(b.get(..MAX).unwrap_or(b)).into_owned();
    if b.len() > MAX {
        s + "..."
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Patch, ParseError> {
        parse(s.as_bytes(), "t.patch")
    }

    #[test]
    fn diff_run_creation_modification_deletion() {
        let t = "diff -ruN a/new b/new\n\
--- a/new\t1970-01-01 00:00:00.000000000 +0000\n\
+++ b/new\t2026-11-22 10:50:16.552247006 +0000\n\
@@ -0,0 +1 @@\n\
+hello\n\
diff -ruN a/old b/old\n\
--- a/old\t2026-11-22 10:50:16.552247006 +0000\n\
+++ b/old\t1969-12-31 19:00:00.000000000 -0500\n\
@@ -1,2 +0,0 @@\n\
-old\n\
-x\n\
\\ No newline at end of file\n\
Binary files a/bin and b/bin differ\n\
Only in a: dir\n";
        let patch = p(t).unwrap();
        assert_eq!(patch.files.len(), 3);
        assert_eq!(patch.files[0].op, FileOp::Create);
        assert_eq!(patch.files[0].old_name, None);
        assert_eq!(patch.files[0].new_name.as_deref(), Some(&b"b/new"[..]));
        assert_eq!(patch.files[1].op, FileOp::Delete);
        assert_eq!(
            patch.files[1].hunks[0].lines,
            vec![
                HunkLine::Delete(b"old\n".to_vec()),
                HunkLine::Delete(b"x".to_vec())
            ]
        );
        assert_eq!(patch.files[2].content, Content::Binary);
        assert_eq!(patch.unsupported().count(), 1);
        assert_eq!(patch.only_in[0].dir, b"a");
    }

    #[test]
    fn git_headers() {
        let t = "diff --git a/x b/x\nold mode 100644\nnew mode 100755\n\
diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+target\n\\ No newline at end of file\n\
diff --git a/n b/n\nnew file mode 100600\nindex 0000000..e69de29\n\
diff --git a/d b/d\ndeleted file mode 100644\nindex 1..0\n--- a/d\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n";
        let patch = p(t).unwrap();
        assert_eq!(patch.files.len(), 4);
        // The mode change and the symbolic link.
        assert_eq!(patch.mode_changes().count(), 2);
        assert_eq!(patch.files[0].new_mode, Some(0o100755));
        assert_eq!(patch.files[1].op, FileOp::Create);
        assert_eq!(patch.files[1].new_mode, Some(0o120000));
        assert_eq!(patch.files[2].op, FileOp::Create);
        assert_eq!(patch.files[2].new_mode, Some(0o100600));
        assert_eq!(patch.files[3].op, FileOp::Delete);
        assert_eq!(patch.files[3].old_name.as_deref(), Some(&b"a/d"[..]));
    }

    #[test]
    fn errors_name_patch_line_and_cause() {
        let e = p("--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n").unwrap_err();
        assert_eq!(e.line, 7);
        assert!(matches!(e.cause, ParseCause::Truncated { .. }), "{e}");
        assert!(
            e.to_string().starts_with("t.patch:7: hunk ends early"),
            "{e}"
        );

        let e = p("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\nXb\n+c\n").unwrap_err();
        assert_eq!((e.line, &e.cause), (5, &ParseCause::Garbage("Xb".into())));

        let e = p("--- a/x\n+++ b/x\n@@ -1,99999999999999999999999 +1 @@\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(matches!(e.cause, ParseCause::AbsurdNumber(_)));

        let e = p("--- a/x\n+++ b/x\n@@ -0,2 +1 @@\n-a\n-b\n+c\n").unwrap_err();
        assert!(matches!(e.cause, ParseCause::AbsurdNumber(_)));

        let e = p("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n-b\n+c\n").unwrap_err();
        assert_eq!(
            (e.line, &e.cause),
            (5, &ParseCause::TooManyLines("deleted"))
        );

        let e = p("hello\nworld\n").unwrap_err();
        assert_eq!(e.cause, ParseCause::NoDiff);
        assert!(p("").unwrap().files.is_empty());

        let e = p("--- a/x\n+++ b/x\n@@ -5 +5 @@\n-a\n+b\n@@ -1 +1 @@\n-a\n+b\n").unwrap_err();
        assert_eq!(e.line, 6);
        assert!(matches!(e.cause, ParseCause::Misordered { .. }));
    }

    #[test]
    fn omitted_counts_quoted_names_and_blank_context() {
        let t = "--- \"a/sp ace\\tx\"\t2020-01-01 00:00:00 +0000\n+++ \"b/sp ace\\tx\"\n@@ -1 +1,2 @@\n\n+new\n";
        let patch = p(t).unwrap();
        let f = &patch.files[0];
        assert_eq!(f.old_name.as_deref(), Some(&b"a/sp ace\tx"[..]));
        assert_eq!(f.op, FileOp::Modify);
        assert_eq!((f.hunks[0].old_count, f.hunks[0].new_count), (1, 2));
        assert_eq!(f.hunks[0].lines[0], HunkLine::Context(b"\n".to_vec()));
    }
}
