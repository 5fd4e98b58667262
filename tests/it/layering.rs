//! The architecture the README promises, checked on the source text.
//!
//! * Format modules — every top-level module except `parser`, `exec` and
//!   the crate roots — know nothing about containers: they never name
//!   `crate::parser` or `crate::exec`, whether directly, in a `use` group
//!   or through `super::` chains that climb to the crate root.
//! * `src/parser` is pure: no file system, network, process or standard
//!   input access; the one question it asks the host goes through `World`.
//! * The README's code map names every module under `src/`, and names
//!   nothing that does not exist.
//!
//! Comments and string literals are removed before scanning, so prose about
//! a layer is not mistaken for a dependency on it.

use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The source with comments removed and string and character literals
/// emptied; newlines are kept so that positions still give line numbers.
fn code_only(text: &str) -> Vec<char> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::with_capacity(c.len());
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(i + k).copied().unwrap_or('\0');
        if at(0) == '/' && at(1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(0) == '/' && at(1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if at(0) == 'r'
            && (at(1) == '"' || at(1) == '#')
            && (i == 0 || !ident(c[i - 1]) || c[i - 1] == 'b')
            && {
                let mut k = 1;
                while at(k) == '#' {
                    k += 1;
                }
                at(k) == '"'
            }
        {
            // raw string r#"…"#: ends at a quote followed by as many hashes
            let mut hashes = 0;
            i += 1;
            while c[i] == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            while i < c.len() {
                if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                if c[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            out.extend(['"', '"']);
        } else if at(0) == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\n' {
                    out.push('\n');
                }
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.extend(['"', '"']);
        } else if at(0) == '\'' && at(1) == '\\' {
            // an escaped character literal: '\n', '\'', '\u{…}'
            i += 3;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.extend(['\'', '\'']);
        } else if at(0) == '\'' && at(2) == '\'' {
            i += 3;
            out.extend(['\'', '\'']);
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// A path named in code, with the line it starts on.
struct Named {
    line: usize,
    path: Vec<String>,
}

/// Every path (`a::b::c`) in code-only text, `use` groups expanded:
/// `use crate::{tree, exec::run}` names `crate::tree` and `crate::exec::run`.
fn paths(code: &[char]) -> Vec<Named> {
    fn ident_at(c: &[char], i: usize) -> bool {
        c.get(i)
            .is_some_and(|&ch| ch.is_alphanumeric() || ch == '_')
    }
    fn skip_ws(c: &[char], mut i: usize) -> usize {
        while c.get(i).is_some_and(|ch| ch.is_whitespace()) {
            i += 1;
        }
        i
    }
    fn word(c: &[char], mut i: usize) -> (String, usize) {
        let start = i;
        while ident_at(c, i) {
            i += 1;
        }
        (c[start..i].iter().collect(), i)
    }
    /// Reads a path starting at an identifier (or `{`/`*` inside a
    /// group); returns every full path it names and where it ends.
    fn tree(c: &[char], i: usize) -> (Vec<Vec<String>>, usize) {
        let mut prefix = Vec::new();
        let mut i = i;
        loop {
            if c.get(i) == Some(&'{') {
                let mut all = Vec::new();
                i += 1;
                loop {
                    i = skip_ws(c, i);
                    match c.get(i) {
                        None => return (all, i),
                        Some('}') => return (all, i + 1),
                        Some(',') => i += 1,
                        Some(_) if ident_at(c, i) || c[i] == '{' || c[i] == '*' => {
                            let (inner, next) = tree(c, i);
                            all.extend(inner.into_iter().map(|p| {
                                let mut full = prefix.clone();
                                full.extend(p);
                                full
                            }));
                            i = next;
                            // `as name` and anything else up to the next item
                            let mut depth = 0;
                            while let Some(&ch) = c.get(i) {
                                match ch {
                                    '{' => depth += 1,
                                    '}' if depth == 0 => break,
                                    '}' => depth -= 1,
                                    ',' if depth == 0 => break,
                                    _ => {}
                                }
                                i += 1;
                            }
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            if c.get(i) == Some(&'*') {
                prefix.push("*".to_string());
                return (vec![prefix], i + 1);
            }
            let (w, next) = word(c, i);
            if w.is_empty() {
                return (vec![prefix], i);
            }
            prefix.push(w);
            i = next;
            let j = skip_ws(c, i);
            if c.get(j) == Some(&':') && c.get(j + 1) == Some(&':') {
                let k = skip_ws(c, j + 2);
                if ident_at(c, k) || c.get(k) == Some(&'{') || c.get(k) == Some(&'*') {
                    i = k;
                    continue;
                }
            }
            return (vec![prefix], i);
        }
    }
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < code.len() {
        if code[i] == '\n' {
            line += 1;
            i += 1;
        } else if ident_at(code, i) && (i == 0 || !ident_at(code, i - 1)) {
            let (found, next) = tree(code, i);
            let lines = code[i..next].iter().filter(|&&ch| ch == '\n').count();
            out.extend(found.into_iter().map(|path| Named { line, path }));
            line += lines;
            i = next.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// The module path of a file below `src/`: `ext/reader.rs` → `[ext, reader]`,
/// `ext/mod.rs` → `[ext]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("file below src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The top-level module a path reaches when it starts at the crate root
/// (`crate::x`, or enough `super`s to climb out of the file's module).
fn top_level(module: &[String], path: &[String]) -> Option<String> {
    match path.first().map(String::as_str) {
        Some("crate") => path.get(1).cloned(),
        Some("super") => {
            let ups = path.iter().take_while(|p| *p == "super").count();
            // an inline `mod tests` adds a level the file path does not
            // show, so climbing to or past the root counts as reaching it
            (ups >= module.len())
                .then(|| path.get(ups).cloned())
                .flatten()
        }
        _ => None,
    }
}

fn rel(file: &Path) -> String {
    file.strip_prefix(repo())
        .unwrap_or(file)
        .display()
        .to_string()
}

/// What a format module names from `parser` or `exec`, one line each.
fn container_imports(src: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for file in rust_files(src) {
        let module = module_path(src, &file);
        let top = module.first().map(String::as_str).unwrap_or("");
        if matches!(top, "parser" | "exec" | "main" | "lib") {
            continue;
        }
        let text = fs::read_to_string(&file).expect("read source");
        for named in paths(&code_only(&text)) {
            if let Some(t) = top_level(&module, &named.path) {
                if t == "parser" || t == "exec" {
                    bad.push(format!(
                        "{}:{}: `{}` — format modules know nothing about containers",
                        rel(&file),
                        named.line,
                        named.path.join("::")
                    ));
                }
            }
        }
    }
    bad
}

/// Where `src/parser` does I/O, one line each.
fn parser_io(parser: &Path) -> Vec<String> {
    const CRATES: [&str; 4] = ["rustix", "tempfile", "ureq", "suppaftp"];
    const NAMES: [&str; 7] = [
        "File",
        "OpenOptions",
        "TcpStream",
        "TcpListener",
        "UdpSocket",
        "stdin",
        "read_dir",
    ];
    // Path methods that ask the file system (a `World` method takes an
    // argument, so `world.exists(p)` is not one of these)
    const METHODS: [&str; 8] = [
        ".exists()",
        ".try_exists()",
        ".metadata()",
        ".symlink_metadata()",
        ".is_file()",
        ".is_dir()",
        ".canonicalize()",
        ".read_link()",
    ];
    let mut bad = Vec::new();
    for file in rust_files(parser) {
        let text = fs::read_to_string(&file).expect("read source");
        let code = code_only(&text);
        for named in paths(&code) {
            let p: Vec<&str> = named.path.iter().map(String::as_str).collect();
            let io = match p.as_slice() {
                ["std" | "core", "fs" | "net" | "process", ..] => true,
                ["std", "io", "stdin" | "Stdin", ..] => true,
                [first, ..] if CRATES.contains(first) => true,
                _ => p.iter().any(|s| NAMES.contains(s)),
            };
            if io {
                bad.push(format!(
                    "{}:{}: `{}` — the parser does no I/O",
                    rel(&file),
                    named.line,
                    p.join("::")
                ));
            }
        }
        let squeezed: String = code.iter().collect();
        for (n, l) in squeezed.lines().enumerate() {
            let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            for m in METHODS {
                if l.contains(m) {
                    bad.push(format!(
                        "{}:{}: `{m}` asks the file system — the parser does no I/O (use `World`)",
                        rel(&file),
                        n + 1
                    ));
                }
            }
        }
    }
    bad
}

#[test]
fn format_modules_never_name_parser_or_exec() {
    let bad = container_imports(&repo().join("src"));
    assert!(bad.is_empty(), "\n{}\n", bad.join("\n"));
}

#[test]
fn the_parser_does_no_io() {
    let bad = parser_io(&repo().join("src/parser"));
    assert!(bad.is_empty(), "\n{}\n", bad.join("\n"));
}

/// The scanner itself: each rule fires on what it must and not on prose.
#[test]
fn the_scanner_sees_every_form_of_import() {
    let t = tempfile::Builder::new()
        .prefix("vmc-layering-")
        .tempdir()
        .expect("tempdir");
    let src = t.path().join("src");
    fs::create_dir_all(src.join("fmt/deep")).unwrap();
    fs::create_dir_all(src.join("parser")).unwrap();
    fs::write(
        src.join("fmt/mod.rs"),
        "//! unlike crate::exec, this reads bytes\n\
         use crate::tree::Entry;\n\
         const S: &str = \"crate::parser\";\n\
         const R: &str = r#\"crate::exec \"# ;\n\
         const Q: char = '\"';\n\
         use crate::{\n    tree,\n    exec::run as r,\n};\n\
         fn f() { super::parser::check(); }\n",
    )
    .unwrap();
    fs::write(
        src.join("fmt/deep/x.rs"),
        "use super::super::super::exec;\nuse super::super::tree;\n\
         fn g<'a>(x: &'a str) -> &'a str { crate :: parser :: f(x) }\n",
    )
    .unwrap();
    fs::write(
        src.join("parser/mod.rs"),
        "use std::{fmt, io::{self, stdin}};\nuse std::path::Path;\n\
         // std::fs is not used\n\
         fn f(w: &dyn World, p: &Path) -> bool { w.exists(p) || p . exists ( ) }\n\
         fn g() { let _ = std::fs::read(\"x\"); }\n",
    )
    .unwrap();
    let imports = container_imports(&src);
    let lines: Vec<&str> = imports
        .iter()
        .map(|l| l.split(" — ").next().unwrap())
        .collect();
    let tail = |l: &&str| l.rsplit("src/").next().unwrap().to_string();
    assert_eq!(
        lines.iter().map(tail).collect::<Vec<_>>(),
        [
            "fmt/deep/x.rs:1: `super::super::super::exec`",
            "fmt/deep/x.rs:3: `crate::parser::f`",
            "fmt/mod.rs:6: `crate::exec::run`",
            "fmt/mod.rs:10: `super::parser::check`",
        ],
        "{imports:#?}"
    );
    let io = parser_io(&src.join("parser"));
    let io: Vec<String> = io
        .iter()
        .map(|l| {
            l.rsplit("src/")
                .next()
                .unwrap()
                .split(" — ")
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        io,
        [
            "parser/mod.rs:1: `std::io::stdin`",
            "parser/mod.rs:5: `std::fs::read`",
            "parser/mod.rs:4: `.exists()` asks the file system",
        ],
        "{io:#?}"
    );
}

/// The first column of the README's code map: every backquoted path in it.
fn code_map(readme: &str) -> Vec<(usize, String, String)> {
    let start = readme
        .find("### Code map")
        .expect("README has a `### Code map` section");
    let mut rows = Vec::new();
    let first_line = readme[..start].lines().count() + 1;
    for (n, line) in readme[start..].lines().enumerate().skip(1) {
        if line.starts_with("### ") || line.starts_with("## ") {
            break;
        }
        let cells: Vec<&str> = line.split('|').collect();
        if cells.len() < 3 || cells[1].trim() == "path" || cells[1].trim().starts_with("---") {
            continue;
        }
        for (k, piece) in cells[1].split('`').enumerate() {
            if k % 2 == 1 {
                rows.push((first_line + n, piece.to_string(), cells[2].to_string()));
            }
        }
    }
    rows
}

#[test]
fn the_readme_code_map_names_every_module_and_nothing_else() {
    let readme = fs::read_to_string(repo().join("README.md")).expect("read README.md");
    let map = code_map(&readme);
    assert!(!map.is_empty(), "README.md: the code map table is empty");
    let mut problems = Vec::new();
    for (line, path, _) in &map {
        if !repo().join(path).exists() {
            problems.push(format!(
                "README.md:{line}: the code map names `{path}`, which does not exist"
            ));
        }
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(repo().join("src"))
        .expect("read src")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for e in entries {
        let name = e.file_name().unwrap().to_string_lossy().into_owned();
        let key = if e.is_dir() {
            format!("src/{name}/")
        } else if name.ends_with(".rs") {
            format!("src/{name}")
        } else {
            continue;
        };
        let Some((_, _, what)) = map.iter().find(|(_, p, _)| *p == key) else {
            problems.push(format!(
                "README.md: add `{key}` to the code map (### Code map, first column)"
            ));
            continue;
        };
        if !e.is_dir() {
            continue;
        }
        // a row that lists some of its directory's modules lists them all
        let named: Vec<&str> = what.split('`').skip(1).step_by(2).collect();
        let mut modules: Vec<String> = fs::read_dir(&e)
            .expect("read module directory")
            .map(|m| m.expect("entry").path())
            .filter(|m| m.is_dir() || m.extension().is_some_and(|x| x == "rs"))
            .map(|m| m.file_stem().unwrap().to_string_lossy().into_owned())
            .filter(|m| m != "mod" && m != "tests")
            .collect();
        modules.sort();
        if !modules.iter().any(|m| named.contains(&m.as_str())) {
            continue;
        }
        for m in modules.iter().filter(|m| !named.contains(&m.as_str())) {
            problems.push(format!(
                "README.md: the code map row for `{key}` lists its modules but not `{m}` (`{key}{m}`)"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}
