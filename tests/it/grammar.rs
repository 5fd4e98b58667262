//! Every `container` example in grammar/GRAMMAR.md parses and checks, so
//! the grammar's examples stay true.

use crate::common;

use std::path::Path;
use vm_container::parser::{self, Options};

struct Everything;

impl parser::World for Everything {
    fn exists(&self, _: &Path) -> bool {
        true
    }
    fn is_ext_image(&self, _: &Path) -> bool {
        false
    }
}

/// The fenced blocks tagged `container`, with their fence's indentation
/// removed.
fn examples(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize, String)> = None;
    for (n, line) in md.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut current {
            None if trimmed == "```container" => current = Some((n + 1, indent, String::new())),
            Some((start, ind, text)) => {
                if trimmed == "```" {
                    out.push((*start, std::mem::take(text)));
                    current = None;
                } else {
                    text.push_str(line.get(*ind..).unwrap_or(""));
                    text.push('\n');
                }
            }
            None => {}
        }
    }
    out
}

#[test]
fn grammar_examples_parse_and_check() {
    let md = std::fs::read_to_string(common::root().join("grammar/GRAMMAR.md")).unwrap();
    let ex = examples(&md);
    assert!(ex.len() >= 4, "GRAMMAR.md has too few examples");
    for (line, text) in ex {
        let parsed = parser::parse(&text);
        assert!(
            parsed.errors.is_empty(),
            "GRAMMAR.md example at line {line}: {:?}",
            parsed.errors
        );
        let opts = Options {
            set: vec![],
            base_dir: "/srv".into(),
        };
        if let Err(ds) = parser::analyze(&parsed.container, &text, &opts, &Everything) {
            panic!(
                "GRAMMAR.md example at line {line}:\n{}",
                ds.iter()
                    .map(|d| d.render("example", &text))
                    .collect::<String>()
            );
        }
    }
}

#[test]
fn the_here_document_example_keeps_its_lines() {
    let md = std::fs::read_to_string(common::root().join("grammar/GRAMMAR.md")).unwrap();
    let (_, text) = examples(&md)
        .into_iter()
        .find(|(_, t)| t.contains("<<EOF"))
        .expect("a here-document example");
    let parsed = parser::parse(&text);
    let plan = parser::analyze(
        &parsed.container,
        &text,
        &Options {
            set: vec![],
            base_dir: "/".into(),
        },
        &Everything,
    )
    .unwrap();
    match &plan.steps[0].action {
        parser::plan::Action::Replace { content, .. } => {
            assert_eq!(content, b"Welcome to fido.\n]\n")
        }
        a => panic!("{a:?}"),
    }
}
