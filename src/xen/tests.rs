use super::*;

fn ok(text: &str) -> BTreeMap<String, Value> {
    let (stmts, errors) = parse_config(text);
    assert!(errors.is_empty(), "{text:?}: {errors:?}");
    apply_all(&stmts).unwrap()
}

/// (offset, kind) of the first error.
fn err(text: &str) -> (usize, ErrorKind) {
    let (_, errors) = parse_config(text);
    let e = errors
        .first()
        .unwrap_or_else(|| panic!("{text:?} should fail"));
    (e.offset, e.kind.clone())
}

fn s(v: &str) -> Value {
    Value::Str(v.as_bytes().to_vec())
}

#[test]
fn identifiers() {
    assert_eq!(ok("a.b_9 = 1\n")["a.b_9"], Value::Number("1".into()));
    assert_eq!(err("Memory = 1\n").0, 0);
    assert_eq!(err("_a = 1\n").0, 0);
    assert_eq!(err("mem-ory = 1\n").0, 3);
}

#[test]
fn numbers_are_text() {
    let m = ok("a = 0x1f\nb = 09\nc = 1a\n");
    assert_eq!(m["a"], Value::Number("0x1f".into()));
    assert_eq!(m["b"], Value::Number("09".into()));
    assert_eq!(m["c"], Value::Number("1a".into()));
    for bad in ["a = 0x1F\n", "a = 0X1f\n", "a = -1\n", "a = 1.5\n"] {
        let (off, _) = err(bad);
        assert!(off >= 4, "{bad:?} at {off}");
    }
    assert!(matches!(
        err("a = yes\n").1,
        ErrorKind::Unexpected { expected, .. } if expected.starts_with("a value")
    ));
}

#[test]
fn strings_and_escapes() {
    let m =
        ok("a = \"x\\101Z\"\nb = '\\400Z'\nc = \"q\\\"\\'\\\\\\t\"\nd = 'it\\\"s'\ne = \"é\"\n");
    assert_eq!(m["a"], s("xZ"));
    assert_eq!(m["b"], s("Z"));
    let q = ok("a = \"\\191Z\"\nb = \"\\4 0\"\nc = '\\7-9x'\n");
    assert_eq!((&q["a"], &q["b"], &q["c"]), (&s("Z"), &s(""), &s("x")));
    err("a = \"\\9ab\"\n");
    err("a = \"\\0abc\"\n");
    err("a = \"\\48+\"\n");
    assert_eq!(m["c"], s("q\"'\\\t"));
    assert_eq!(m["d"], s("it\"s"));
    assert_eq!(m["e"], s("é"));
    for bad in [
        "a = \"\\0\"\n",
        "a = \"\\1\"\n",
        "a = \"\\17\"\n",
        "a = \"\\x41\"\n",
        "a = \"\\q\"\n",
        "a = \"open\n",
    ] {
        err(bad);
    }
    // `\'` is an escape inside single quotes too
    let sq = ok("a = 'it\\'s'\nb = '\\''\nc = 'x\\\\'\n");
    assert_eq!(
        (&sq["a"], &sq["b"], &sq["c"]),
        (&s("it's"), &s("'"), &s("x\\"))
    );
    err("a = '\\'\n");
    // the octal quirk reads like strtoul over the three bytes after the digit
    let oq = ok("a = \"\\4  0Z\"\nb = \"\\1 -8Z\"\nc = \"\\1 9 Z\"\nd = '\\7\t+1'\n");
    assert_eq!(
        (&oq["a"], &oq["b"], &oq["c"], &oq["d"]),
        (&s("Z"), &s("Z"), &s(" Z"), &s(""))
    );
    for bad in [
        "a = \"\\40Z\"\n",
        "a = \"\\4   0Z\"\n",
        "a = \"\\1  -8Z\"\n",
        "a = \"\\1 \n5\"\n",
    ] {
        err(bad);
    }
    // xl takes a raw CR inside a string or a comment
    assert_eq!(ok("a = \"cr\r\" # c\r\n")["a"], s("cr\r"));
}

#[test]
fn statements_and_endings() {
    let m = ok("a = 1; b = 2;;\n\n  \tc = 3");
    assert_eq!(m.len(), 3);
    assert_eq!(ok("").len(), 0);
    assert_eq!(ok("# only a comment\n").len(), 0);
    ok("a = 1 # c\n");
    assert_eq!(err("a = 1 # c").1, ErrorKind::UnterminatedComment);
    assert_eq!(err("a = 1\r\n").1, ErrorKind::CarriageReturn);
    // an illegal last byte is dropped, as libxlutil drops it
    assert_eq!(ok("a = 1;+")["a"], Value::Number("1".into()));
    assert_eq!(ok("a = 0x1F")["a"], Value::Number("0x1".into()));
    ok("a = 1 #");
    ok("a = 1\r");
    err("a = 1;+-");
    err("a = 1\n@\n");
    // a value must start on the line of its `=`
    err("a =\n 1\n");
    err("a = 1 b = 2\n");
}

#[test]
fn lists() {
    let m = ok("d = [ 'x', 'y', ]\ne = []\nf = [\n  1, # one\n  [2, 3],\n\n]\n");
    assert_eq!(m["d"], Value::List(vec![s("x"), s("y")]));
    assert_eq!(m["e"], Value::List(vec![]));
    assert_eq!(
        m["f"],
        Value::List(vec![
            Value::Number("1".into()),
            Value::List(vec![Value::Number("2".into()), Value::Number("3".into())])
        ])
    );
    assert!(matches!(
        err("a = [1 2]\n").1,
        ErrorKind::Unexpected {
            expected: "`,` or `]`",
            unclosed: false,
            ..
        }
    ));
    err("a = [,]\n");
}

#[test]
fn append_and_repeat() {
    let m = ok("a = 1\na += 2\nb = ['x']\nb += ['y']\nc += 'z'\nd = 1\nd = 2\n");
    assert_eq!(m["a"], s("12"));
    assert_eq!(m["b"], Value::List(vec![s("x"), s("y")]));
    assert_eq!(m["c"], s("z"));
    assert_eq!(m["d"], Value::Number("2".into()));
    assert!(matches!(
        err("a = 1\na += [2]\n").1,
        ErrorKind::BadAppend {
            new: "list",
            old: "string",
            ..
        }
    ));
}

#[test]
fn systemimager_unclosed_disk_list() {
    // From the SystemImager article: the disk list is never closed.
    let text = "kernel = \"/boot/vmlinuz-2.4.29-xen0\"\nmemory = 64\nname = \"Subian-1A\"\nnics = 2\nvif = ['ip = \"\", bridge=xen-br0',\n        'ip = \"\", bridge=xen-br1']\n\ndisk = ['phy:vm_volumes/root-Subian-1A,sda1,w'\nroot = \"/dev/sda1 rw\"\n";
    let (_, errors) = parse_config(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    let root_line_start = text.find("root =").unwrap();
    assert_eq!(e.offset, root_line_start);
    assert!(
        matches!(e.kind, ErrorKind::Unexpected { unclosed: true, .. }),
        "{}",
        e.kind
    );
    assert!(
        e.kind.to_string().contains("closing `]` missing"),
        "{}",
        e.kind
    );
    assert_eq!(e.note.as_ref().unwrap().0, text.find("['phy").unwrap());
}
