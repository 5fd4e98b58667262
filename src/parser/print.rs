//! Syntax tree → text. Parsing the printed text gives the same tree (up to
//! spans), which the property tests hold the parser to.

use super::ast::{Body, Container, Expr, Item};
use crate::xen;

/// Prints a container in canonical layout: one statement or expression per
/// line.
pub fn print(c: &Container) -> String {
    let mut out = String::new();
    for item in &c.items {
        match item {
            Item::Xen(x) => {
                out.push_str(&x.stmt.name);
                out.push_str(match x.stmt.op {
                    xen::Op::Assign => " = ",
                    xen::Op::Append => " += ",
                });
                out.push_str(&xen::render(&x.stmt.value));
                out.push('\n');
            }
            Item::Expr(e) => print_expr(&mut out, e),
        }
    }
    out
}

/// True when a word can be written bare and read back as the same word.
fn bare_ok(w: &str) -> bool {
    !w.is_empty()
        && !w.starts_with('"')
        && !w.starts_with('#')
        && !w.starts_with("<<")
        && !w.chars().any(|c| c.is_whitespace() || c == ']')
}

fn print_expr(out: &mut String, e: &Expr) {
    out.push('[');
    out.push_str(e.keyword.as_str());
    for w in &e.words {
        out.push(' ');
        if !w.quoted && bare_ok(&w.text) {
            out.push_str(&w.text);
        } else {
            out.push('"');
            for c in w.text.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
    match &e.body {
        None => out.push(']'),
        Some(Body::Block { lines, .. }) => {
            out.push_str("\n\n");
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
            out.push(']');
        }
        Some(Body::HereDoc { tag, lines, .. }) => {
            out.push_str(" text <<");
            out.push_str(tag);
            out.push('\n');
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
            out.push_str(tag);
            out.push_str("\n]");
        }
    }
    out.push_str("[end]\n");
}
