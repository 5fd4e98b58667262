//! The syntax tree of a container file. Every node carries its [`Span`].

use crate::xen;
use std::fmt;

/// A byte range of the source with the line and column (1-based; columns
/// count characters) of its start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
    pub line: u32,
    pub col: u32,
}

impl Span {
    pub fn end(&self) -> usize {
        self.offset + self.len
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// Maps byte offsets to lines and columns.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    pub fn span(&self, offset: usize, len: usize) -> Span {
        let offset = offset.min(self.text.len());
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.starts[line];
        let col = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start)
            + 1;
        Span {
            offset,
            len,
            line: line as u32 + 1,
            col: col as u32,
        }
    }

    /// The text of the 1-based line `n`, without its newline.
    pub fn line_text(&self, n: u32) -> &'a str {
        let i = (n as usize).saturating_sub(1);
        let Some(&start) = self.starts.get(i) else {
            return "";
        };
        let end = self
            .starts
            .get(i + 1)
            .map(|e| e - 1)
            .unwrap_or(self.text.len());
        self.text.get(start..end).unwrap_or("")
    }
}

/// A whole container file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Container {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Xen(XenItem),
    Expr(Expr),
}

/// A Xen statement, kept with the exact source text so the stripped config
/// can reproduce it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XenItem {
    pub stmt: xen::Statement,
    pub name_span: Span,
    pub value_span: Span,
    pub span: Span,
}

/// The six expression keywords.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Keyword {
    Create,
    Image,
    Populate,
    Replace,
    Copy,
    Patch,
}

impl Keyword {
    pub const ALL: [Keyword; 6] = [
        Keyword::Create,
        Keyword::Image,
        Keyword::Populate,
        Keyword::Replace,
        Keyword::Copy,
        Keyword::Patch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Create => "create",
            Keyword::Image => "image",
            Keyword::Populate => "populate",
            Keyword::Replace => "replace",
            Keyword::Copy => "copy",
            Keyword::Patch => "patch",
        }
    }

    pub fn from_word(w: &str) -> Option<Keyword> {
        Keyword::ALL.into_iter().find(|k| k.as_str() == w)
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One word of an expression header: a bare word or a quoted string
/// (unquoted, escapes decoded). Templates are not yet substituted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub quoted: bool,
    pub span: Span,
}

/// The text of a `replace`: the Figure 1 body after an empty line, or a
/// `text <<TAG` here-document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Lines as written (leading/trailing empty ones already dropped);
    /// the file gets them joined by newlines plus one final newline.
    Block { lines: Vec<String>, span: Span },
    /// Lines up to the one equal to `tag`; each ends with a newline.
    HereDoc {
        tag: String,
        lines: Vec<String>,
        span: Span,
    },
}

impl Body {
    /// The file content the body stands for (before templates).
    pub fn content(&self) -> String {
        match self {
            Body::Block { lines, .. } if lines.is_empty() => String::new(),
            Body::Block { lines, .. } | Body::HereDoc { lines, .. } => {
                let mut s = lines.join("\n");
                s.push('\n');
                s
            }
        }
    }

    pub fn span(&self) -> Span {
        match self {
            Body::Block { span, .. } | Body::HereDoc { span, .. } => *span,
        }
    }
}

/// `[KEYWORD words... BODY] [end]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub keyword: Keyword,
    pub keyword_span: Span,
    pub words: Vec<Word>,
    pub body: Option<Body>,
    /// From `[` through `[end]`.
    pub span: Span,
}

impl Container {
    /// The same tree with every span zeroed: what "the same AST" means when
    /// text is printed and parsed again.
    pub fn without_spans(&self) -> Container {
        let z = Span::default();
        Container {
            items: self
                .items
                .iter()
                .map(|item| match item {
                    Item::Xen(x) => {
                        let mut stmt = x.stmt.clone();
                        stmt.name_range = (0, 0);
                        stmt.value_range = (0, 0);
                        stmt.range = (0, 0);
                        Item::Xen(XenItem {
                            stmt,
                            name_span: z,
                            value_span: z,
                            span: z,
                        })
                    }
                    Item::Expr(e) => Item::Expr(Expr {
                        keyword: e.keyword,
                        keyword_span: z,
                        words: e
                            .words
                            .iter()
                            .map(|w| Word {
                                text: w.text.clone(),
                                quoted: w.quoted,
                                span: z,
                            })
                            .collect(),
                        body: e.body.as_ref().map(|b| match b {
                            Body::Block { lines, .. } => Body::Block {
                                lines: lines.clone(),
                                span: z,
                            },
                            Body::HereDoc { tag, lines, .. } => Body::HereDoc {
                                tag: tag.clone(),
                                lines: lines.clone(),
                                span: z,
                            },
                        }),
                        span: z,
                    }),
                })
                .collect(),
        }
    }
}
