//! `${NAME}` substitution; `$$` is a literal `$`.

use std::collections::BTreeMap;

/// A variable's value, or why it cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VarValue {
    Text(String),
    /// The variable names a Xen list, which has no text form.
    List,
}

/// Variables in scope at a point of the file.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    /// `--set NAME=VALUE`: always win.
    pub set: BTreeMap<String, String>,
    /// Values of earlier Xen statements.
    pub file: BTreeMap<String, VarValue>,
}

/// A failed substitution: the byte offset within the input and the cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub len: usize,
    pub message: String,
}

impl Vars {
    pub fn get(&self, name: &str) -> Option<VarValue> {
        if let Some(v) = self.set.get(name) {
            return Some(VarValue::Text(v.clone()));
        }
        self.file.get(name).cloned()
    }
}

/// True when `s` holds a `$` that substitution would change.
pub fn has_template(s: &str) -> bool {
    s.contains('$')
}

/// Substitutes every `${NAME}` and `$$` in `s`. A `$` followed by anything
/// else is kept as it is, so ordinary text with dollars survives.
pub fn substitute(s: &str, vars: &Vars) -> Result<String, TemplateError> {
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
                        message: "`${` without a closing `}`".to_string(),
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
                        message: format!("`${{{name}}}` is not a variable name"),
                    });
                }
                match vars.get(name) {
                    Some(VarValue::Text(v)) => out.push_str(&v),
                    Some(VarValue::List) => {
                        return Err(TemplateError {
                            offset: i,
                            len,
                            message: format!("`${{{name}}}` names a list, which has no text to substitute"),
                        })
                    }
                    None => {
                        return Err(TemplateError {
                            offset: i,
                            len,
                            message: format!(
                                "undefined variable `{name}`: define it with `--set {name}=VALUE` or a Xen statement `{name} = ...` above this line"
                            ),
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
        assert_eq!(substitute("/img/${name}-etc", &v).unwrap(), "/img/fido-etc");
        assert_eq!(substitute("$$HOME ${memory}", &v).unwrap(), "$HOME 512");
        assert_eq!(substitute("cost $5", &v).unwrap(), "cost $5");
        let e = substitute("a ${nope} b", &v).unwrap_err();
        assert_eq!((e.offset, e.len), (2, 7));
        assert!(e.message.contains("undefined variable `nope`"));
        assert!(substitute("${", &v).is_err());
        v.file.insert("disk".into(), VarValue::List);
        assert!(substitute("${disk}", &v)
            .unwrap_err()
            .message
            .contains("list"));
    }
}
