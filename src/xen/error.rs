//! What the Xen reader refuses, one variant per problem, worded once.

/// Why a Xen config (or a container file's Xen statement) is refused:
/// `xl create` would refuse it too.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("a `#` comment at the end of the file must end with a newline (xl rejects it)")]
    UnterminatedComment,
    #[error("carriage return: xl accepts only LF line ends (convert CRLF with `dos2unix`)")]
    CarriageReturn,
    /// A quote or a backslash as the last byte of the file.
    #[error("unterminated string")]
    UnterminatedString,
    #[error("unterminated string: strings end on the line they start")]
    StringEndsLine,
    #[error("invalid escape `\\{shown}`: xl accepts \\\" \\' \\\\ \\a \\b \\f \\n \\r \\t \\v and three octal digits")]
    InvalidEscape { shown: String },
    #[error("`${{` must be followed by a variable name and `}}`")]
    BadPlaceholder,
    #[error("bad identifier")]
    BadIdentifier,
    #[error("bad number")]
    BadNumber,
    #[error("`{c}` cannot start a name: xl accepts only lower-case names `[a-z][._0-9a-z]*`")]
    NameStart { c: char },
    #[error("`{c}` cannot continue a name: xl accepts only `[a-z][._0-9a-z]*`")]
    NameContinues { c: char },
    #[error("`{c}` cannot continue a number: xl reads numbers as `[0-9][0-9a-fx]*` (decimal, octal or lower-case hex; no sign, no fraction)")]
    NumberContinues { c: char },
    #[error("unexpected `{c}`: xl accepts numbers, quoted strings and lists here (this looks like Python code, which xl no longer reads)")]
    PythonSyntax { c: char },
    #[error("unexpected character `{}`", .c.escape_debug())]
    UnexpectedChar { c: char },
    /// `found` is the token's description (`identifier `x``); `unclosed`
    /// says the token suggests a list whose `]` is missing.
    #[error("expected {expected}, found {found}{}", if *.unclosed { " (is the list's closing `]` missing?)" } else { "" })]
    Unexpected {
        expected: &'static str,
        found: String,
        unclosed: bool,
    },
    #[error("unexpected `]`")]
    UnexpectedClose,
    #[error(
        "lists nested too deeply: libxlutil's parser runs out of stack here (\"memory exhausted\")"
    )]
    TooDeep,
    #[error("`{name} +=` adds a {new} to a {old}: xl can only append a string to a string or a list to a list")]
    BadAppend {
        name: String,
        new: &'static str,
        old: &'static str,
    },
}
