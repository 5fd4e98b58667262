//! Properties of the front end: any syntax tree printed back to text parses
//! to the same tree, and no input makes the parser panic.

use proptest::prelude::*;
use vm_container::parser::{
    self, print::print, Body, Container, Expr, Item, Keyword, Span, Word, XenItem,
};
use vm_container::xen::{Op, Statement, Value};

fn ident() -> impl Strategy<Value = String> {
    "[a-z][._0-9a-z]{0,8}"
}

fn xen_value(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        "[0-9][0-9a-fx]{0,6}".prop_map(Value::Number),
        // printable text including quotes, backslashes, dollars and UTF-8
        "[ -~é\t]{0,12}".prop_map(|s| Value::Str(s.into_bytes())),
        "[a-z_]{1,6}".prop_map(Value::Placeholder),
    ];
    if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![
            3 => leaf,
            1 => prop::collection::vec(xen_value(depth - 1), 0..4).prop_map(Value::List),
        ]
        .boxed()
    }
}

fn xen_item() -> impl Strategy<Value = Item> {
    (ident(), any::<bool>(), xen_value(2)).prop_map(|(name, append, value)| {
        Item::Xen(XenItem {
            stmt: Statement {
                name,
                op: if append { Op::Append } else { Op::Assign },
                value,
                name_range: (0, 0),
                value_range: (0, 0),
                range: (0, 0),
            },
            name_span: Span::default(),
            value_span: Span::default(),
            span: Span::default(),
        })
    })
}

fn word() -> impl Strategy<Value = Word> {
    // bare-looking and quote-needing words alike; `quoted` only where the
    // printer must quote, since a bare-safe word prints bare
    "[ -~é]{1,14}"
        .prop_filter("no newline", |s| !s.contains('\n'))
        .prop_map(|text| {
            let bare = !text.starts_with('"')
                && !text.starts_with('#')
                && !text.starts_with("<<")
                && !text.chars().any(|c| c.is_whitespace() || c == ']');
            Word {
                text,
                quoted: !bare,
                span: Span::default(),
            }
        })
}

fn body_line() -> impl Strategy<Value = String> {
    "[ -~é\t]{0,20}"
}

fn expr_item() -> impl Strategy<Value = Item> {
    let keyword = prop::sample::select(Keyword::ALL.to_vec());
    (
        keyword,
        prop::collection::vec(word(), 0..6),
        prop::collection::vec(body_line(), 1..5),
        0u8..3,
    )
        .prop_map(|(keyword, mut words, mut lines, body_kind)| {
            // `text` followed by a bare `<<X` would read as a here-document
            for w in words.iter_mut() {
                if w.text == "text" {
                    w.quoted = true;
                }
            }
            let body = if keyword != Keyword::Replace || body_kind == 0 {
                None
            } else if body_kind == 1 {
                // a Figure 1 body: no line may close it, and no leading or
                // trailing blank lines (they are dropped by definition)
                lines.retain(|l| !l.trim().is_empty() && !l.trim_start().starts_with(']'));
                if lines.is_empty() {
                    None
                } else {
                    Some(Body::Block {
                        lines,
                        span: Span::default(),
                    })
                }
            } else {
                lines.retain(|l| l != "TAG");
                Some(Body::HereDoc {
                    tag: "TAG".into(),
                    lines,
                    span: Span::default(),
                })
            };
            Item::Expr(Expr {
                keyword,
                keyword_span: Span::default(),
                words,
                body,
                span: Span::default(),
            })
        })
}

fn container() -> impl Strategy<Value = Container> {
    prop::collection::vec(prop_oneof![xen_item(), expr_item()], 0..8)
        .prop_map(|items| Container { items })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn printed_trees_parse_back_the_same(c in container()) {
        let text = print(&c);
        let parsed = parser::parse(&text);
        prop_assert!(parsed.errors.is_empty(), "{text:?}: {:?}", parsed.errors);
        prop_assert_eq!(parsed.container.without_spans(), c, "{:?}", text);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let parsed = parser::parse(&text);
        let _ = parser::analyze(&parsed.container, &text, &parser::Options::default(), &parser::analyze::EmptyWorld);
    }

    #[test]
    fn container_like_noise_never_panics(parts in prop::collection::vec(
        prop::sample::select(vec!["[", "]", "[end]", "replace", "image", " ", "\n", "\n\n", "#", "\"", "'", "=", "+=",
            "a", "${x}", "$$", "<<E", "text", "E", "\\", ",", ";", "50M", "/etc/x", "archive", "\r", "é"]), 0..60)) {
        let text: String = parts.concat();
        let parsed = parser::parse(&text);
        let analyzed = parser::analyze(&parsed.container, &text, &parser::Options::default(), &parser::analyze::EmptyWorld);
        // whatever went wrong, the rendered error is its kind's message at its place
        let all = parsed.errors.iter().chain(analyzed.as_ref().err().into_iter().flatten());
        for d in all {
            let shown = d.render("f.vmc", &text);
            let head = format!("f.vmc:{}: error: {}\n", d.span, d.kind);
            prop_assert!(shown.starts_with(&head), "{:?} does not start with {:?}", shown, head);
        }
    }
}
