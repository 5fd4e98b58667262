//! An expression's words: templates substituted, then read as paths,
//! URIs, `key value` options, sizes, modes, owners and UUIDs.

use super::super::ast::{Expr, Span, Word};
use super::super::diagnostic::{DiagnosticKind, SizeError};
use super::super::plan::UriRef;
use super::super::template::substitute;
use super::Analyzer;
use crate::uri::Uri;
use std::path::{Path, PathBuf};

/// One word of an expression's header: as written, and its text with
/// templates substituted.
#[derive(Clone, Debug)]
pub(super) struct Arg {
    /// The word as written: where it is and whether it was quoted.
    pub word: Word,
    /// The text after substitution.
    pub text: String,
}

impl Arg {
    pub fn span(&self) -> Span {
        self.word.span
    }

    /// The option this word names: unquoted and spelled as one of `K`'s
    /// names.
    pub fn key<K: OptionKey>(&self) -> Option<K> {
        if self.word.quoted {
            return None;
        }
        K::ALL.iter().copied().find(|k| k.name() == self.text)
    }
}

/// The keys of an expression's `key value` options.
pub(super) trait OptionKey: Copy + PartialEq + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
}

/// Declares an enum of option keys, each with the name it is written as.
macro_rules! option_keys {
    ($(#[$doc:meta])* enum $name:ident { $($key:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq)]
        enum $name {
            $($key,)+
        }

        impl OptionKey for $name {
            const ALL: &'static [Self] = &[$(Self::$key,)+];
            fn name(self) -> &'static str {
                match self {
                    $(Self::$key => $text,)+
                }
            }
        }
    };
}

/// One `key value` option: its key, the word naming it and its value.
pub(super) struct Opt<'w, K> {
    pub key: K,
    pub name: &'w Arg,
    pub value: &'w Arg,
}

impl Analyzer<'_> {
    /// A word with templates substituted; `None` after reporting an error.
    pub(super) fn word(&mut self, w: &Word) -> Option<String> {
        match substitute(&w.text, &mut self.vars) {
            Ok(s) => Some(s),
            Err(e) => {
                // in a quoted word the offset may be shifted by escapes;
                // the word's start is still the right line
                let off = if w.quoted { 1 } else { 0 };
                let span = self.span(w.span.offset + off + e.offset, e.len);
                self.err(span, e.kind);
                None
            }
        }
    }

    /// A local path: relative ones are resolved against the container
    /// file's directory.
    pub(super) fn path(&self, a: &Arg) -> PathBuf {
        let p = Path::new(&a.text);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.opts.base_dir.join(p)
        };
        crate::uri::normalize(&full)
    }

    pub(super) fn uri(&mut self, a: &Arg) -> Option<UriRef> {
        match Uri::parse(&a.text, &self.opts.base_dir) {
            Ok(uri) => Some(UriRef {
                uri,
                text: a.text.clone(),
                span: a.span(),
            }),
            Err(e) => {
                self.err(a.span(), DiagnosticKind::Uri(e));
                None
            }
        }
    }

    /// An archive written by the container: its name must choose a format
    /// that is written ([`crate::archive::output_format`]).
    pub(super) fn output_uri(&mut self, a: &Arg) -> Option<UriRef> {
        let u = self.uri(a)?;
        if let Err(e) = crate::archive::output_format(&u.uri.file_name_hint()) {
            self.err(a.span(), DiagnosticKind::OutputName(e));
            return None;
        }
        Some(u)
    }

    /// Reports a missing argument at the end of the header.
    pub(super) fn missing(&mut self, e: &Expr, words: &[Arg], what: &str, usage: &'static str) {
        let span = words.last().map(Arg::span).unwrap_or(e.keyword_span);
        self.err(
            span,
            DiagnosticKind::MissingArgument {
                keyword: e.keyword,
                what: what.to_string(),
                usage,
            },
        );
    }

    pub(super) fn extra(&mut self, e: &Expr, a: &Arg, usage: &'static str) {
        self.err(
            a.span(),
            DiagnosticKind::UnexpectedArgument {
                keyword: e.keyword,
                word: a.word.text.clone(),
                usage,
            },
        );
    }

    /// Reads `key value` pairs; reports unknown words, missing values and
    /// repeated keys.
    pub(super) fn options<'w, K: OptionKey>(
        &mut self,
        e: &Expr,
        words: &'w [Arg],
        usage: &'static str,
    ) -> Option<Vec<Opt<'w, K>>> {
        let mut out: Vec<Opt<'w, K>> = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let name = &words[i];
            let Some(key) = name.key::<K>() else {
                self.extra(e, name, usage);
                return None;
            };
            let Some(value) = words.get(i + 1) else {
                self.err(
                    name.span(),
                    DiagnosticKind::OptionNeedsValue { option: key.name() },
                );
                return None;
            };
            if out.iter().any(|o| o.key == key) {
                self.err(
                    name.span(),
                    DiagnosticKind::OptionTwice { option: key.name() },
                );
                return None;
            }
            out.push(Opt { key, name, value });
            i += 2;
        }
        Some(out)
    }
}

/// `50MB`, `50M`, `50MiB`, `1G`: powers of 1024. A bare number is refused:
/// it is too easy to mean megabytes and write bytes.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let digits = s.chars().take_while(|c| c.is_ascii_digit()).count();
    let (num, unit) = s.split_at(digits);
    if num.is_empty() {
        return Err(SizeError::NoNumber(s.to_string()));
    }
    let shift = match unit {
        "" => return Err(SizeError::NoUnit(s.to_string())),
        "K" | "KB" | "KiB" => 10,
        "M" | "MB" | "MiB" => 20,
        "G" | "GB" | "GiB" => 30,
        "T" | "TB" | "TiB" => 40,
        _ => {
            return Err(SizeError::UnknownUnit {
                size: s.to_string(),
                unit: unit.to_string(),
            })
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| SizeError::TooLarge(s.to_string()))?;
    n.checked_mul(1u64 << shift)
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            if n == 0 {
                SizeError::Zero(s.to_string())
            } else {
                SizeError::TooLarge(s.to_string())
            }
        })
}

pub(super) fn parse_mode(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 5 || !s.chars().all(|c| ('0'..='7').contains(&c)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o7777)
}

pub(super) fn parse_owner(s: &str) -> Option<(u32, u32)> {
    let (u, g) = s.split_once(':')?;
    let num = |x: &str| {
        (!x.is_empty() && x.chars().all(|c| c.is_ascii_digit()))
            .then(|| x.parse::<u32>().ok())
            .flatten()
    };
    Some((num(u)?, num(g)?))
}

pub(super) fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50MB"), Ok(50 << 20));
        assert_eq!(parse_size("50MiB"), Ok(50 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("50"), Err(SizeError::NoUnit("50".into())));
        assert_eq!(
            parse_size("50XB"),
            Err(SizeError::UnknownUnit {
                size: "50XB".into(),
                unit: "XB".into()
            })
        );
        assert_eq!(
            parse_size("99999999999999999999M"),
            Err(SizeError::TooLarge("99999999999999999999M".into()))
        );
        assert_eq!(
            parse_size("17000000T"),
            Err(SizeError::TooLarge("17000000T".into()))
        );
        assert_eq!(parse_size("MB"), Err(SizeError::NoNumber("MB".into())));
        assert_eq!(parse_size("0M"), Err(SizeError::Zero("0M".into())));
    }

    #[test]
    fn modes_owners_uuids() {
        assert_eq!(parse_mode("0644"), Some(0o644));
        assert_eq!(parse_mode("4755"), Some(0o4755));
        assert_eq!(parse_mode("8"), None);
        assert_eq!(parse_mode("17777"), None);
        assert_eq!(parse_owner("0:0"), Some((0, 0)));
        assert_eq!(parse_owner("1000:100"), Some((1000, 100)));
        assert_eq!(parse_owner("root:0"), None);
        assert_eq!(parse_owner("1"), None);
        assert!(parse_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").is_some());
        assert!(parse_uuid("0f1e2d3c4b5a69788796a5b4c3d2e1f0").is_none());
    }
}
