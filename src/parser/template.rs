//! `${NAME}` substitution; `$$` is a literal `$`.

use super::diagnostic::DiagnosticKind;
use std::collections::BTreeMap;

/// A variable's value, or why it cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VarValue {
    Text(String),
    /// The variable names a Xen list, which has no text form.
    List,
}

/// Longest text substitution may make one value (a word, a Xen value, a
/// `replace` body): chained variables double at every line, so forty lines
/// of `b = "${a}${a}"` would otherwise ask for terabytes.
pub const MAX_VALUE: usize = 1 << 20;
/// Most text substitution may insert over a whole file.
pub const MAX_FILE: usize = 16 << 20;

/// Variables in scope at a point of the file.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    /// `--set NAME=VALUE`: always win.
    pub set: BTreeMap<String, String>,
    /// Values of earlier Xen statements.
    pub file: BTreeMap<String, VarValue>,
    /// Bytes substitution has inserted so far in this file.
    pub inserted: usize,
}

/// A failed substitution: the byte offset within the input and the cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub len: usize,
    pub kind: DiagnosticKind,
}

impl Vars {
    /// Accounts for `piece` bytes inserted into a value that then holds
    /// `value_len` bytes and was `source_len` bytes as written; the bound
    /// passed, if one is. A value written long in the file is allowed:
    /// only growth through substitution is bounded.
    pub fn charge(
        &mut self,
        piece: usize,
        value_len: usize,
        source_len: usize,
    ) -> Result<(), DiagnosticKind> {
        self.inserted = self.inserted.saturating_add(piece);
        if self.inserted > MAX_FILE {
            return Err(DiagnosticKind::FileGrowth);
        }
        value_fits(value_len, source_len)
    }

    pub fn get(&self, name: &str) -> Option<VarValue> {
        if let Some(v) = self.set.get(name) {
            return Some(VarValue::Text(v.clone()));
        }
        self.file.get(name).cloned()
    }
}

/// Whether a value of `value_len` bytes, written as `source_len` bytes, is
/// within [`MAX_VALUE`].
pub fn value_fits(value_len: usize, source_len: usize) -> Result<(), DiagnosticKind> {
    if value_len > MAX_VALUE.max(source_len) {
        Err(DiagnosticKind::ValueGrowth)
    } else {
        Ok(())
    }
}

/// True when `s` holds a `$` that substitution would change.
pub fn has_template(s: &str) -> bool {
    s.contains('$')
}

/// Substitutes every `${NAME}` and `$$` in `s`. A `$` followed by anything
/// else is kept as it is, so ordinary text with dollars survives.
/// Inserted text counts against the bounds [`MAX_VALUE`] and [`MAX_FILE`].
pub fn substitute(s: &str, vars: &mut Vars) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        if b[i] == b'$' {
            if b.get(i + 1) == Some(&b'$') {
                out.push('$');
                i += 2;
                continue;
            }
            if b.get(i + 1) == Some(&b'{') {
                let Some(close) = s[i + 2..].find('}') else {
                    return Err(TemplateError {
                        offset: i,
                        len: 2,
                        kind: DiagnosticKind::UnclosedVariable,
                    });
                };
                let name = &s[i + 2..i + 2 + close];
                let len = close + 3;
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
                if !valid {
                    return Err(TemplateError {
                        offset: i,
                        len,
                        kind: DiagnosticKind::NotAVariableName {
                            name: name.to_string(),
                        },
                    });
                }
                match vars.get(name) {
                    Some(VarValue::Text(v)) => {
                        if let Err(kind) = vars.charge(v.len(), out.len() + v.len(), s.len()) {
                            return Err(TemplateError {
                                offset: i,
                                len,
                                kind,
                            });
                        }
                        out.push_str(&v)
                    }
                    Some(VarValue::List) => {
                        return Err(TemplateError {
                            offset: i,
                            len,
                            kind: DiagnosticKind::ListVariable {
                                name: name.to_string(),
                            },
                        })
                    }
                    None => {
                        return Err(TemplateError {
                            offset: i,
                            len,
                            kind: DiagnosticKind::UndefinedVariable {
                                name: name.to_string(),
                            },
                        })
                    }
                }
                i += len;
                continue;
            }
        }
        let ch_len = s[i..].chars().next().map(char::len_utf8).unwrap_or(1);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes() {
        let mut v = Vars::default();
        v.file.insert("name".into(), VarValue::Text("fido".into()));
        v.set.insert("memory".into(), "512".into());
        assert_eq!(
            substitute("/img/${name}-etc", &mut v).unwrap(),
            "/img/fido-etc"
        );
        assert_eq!(substitute("$$HOME ${memory}", &mut v).unwrap(), "$HOME 512");
        assert_eq!(substitute("cost $5", &mut v).unwrap(), "cost $5");
        let e = substitute("a ${nope} b", &mut v).unwrap_err();
        assert_eq!((e.offset, e.len), (2, 7));
        assert_eq!(
            e.kind,
            DiagnosticKind::UndefinedVariable {
                name: "nope".into()
            }
        );
        assert_eq!(
            substitute("${", &mut v).unwrap_err().kind,
            DiagnosticKind::UnclosedVariable
        );
        v.file.insert("disk".into(), VarValue::List);
        assert_eq!(
            substitute("${disk}", &mut v).unwrap_err().kind,
            DiagnosticKind::ListVariable {
                name: "disk".into()
            }
        );
    }

    #[test]
    fn doubling_chains_stop_at_the_value_bound() {
        let mut v = Vars::default();
        v.file
            .insert("a".into(), VarValue::Text("x".repeat(MAX_VALUE / 2)));
        assert_eq!(substitute("${a}${a}", &mut v).unwrap().len(), MAX_VALUE);
        let e = substitute("${a}${a}!${a}", &mut v).unwrap_err();
        assert_eq!(e.offset, 9);
        assert_eq!(e.kind, DiagnosticKind::ValueGrowth);
        assert!(
            e.kind.to_string().contains("longer than 1 MiB"),
            "{}",
            e.kind
        );
    }

    #[test]
    fn a_file_inserts_at_most_its_bound() {
        let mut v = Vars::default();
        v.file
            .insert("a".into(), VarValue::Text("x".repeat(MAX_VALUE)));
        for _ in 0..MAX_FILE / MAX_VALUE {
            substitute("${a}", &mut v).unwrap();
        }
        let e = substitute("${a}", &mut v).unwrap_err();
        assert_eq!(e.kind, DiagnosticKind::FileGrowth);
        assert!(e.kind.to_string().contains("16 MiB"), "{}", e.kind);
        // a long value written as such is not growth
        let long = "y".repeat(MAX_VALUE + 10);
        assert!(value_fits(long.len(), long.len()).is_ok());
    }
}
