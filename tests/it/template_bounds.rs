//! Template substitution is bounded: chained variables that double at
//! every line stop with a located error instead of exhausting memory.

use crate::common;

use common::{bin, measured, tempdir};
use std::fmt::Write as _;
use std::fs;
use std::time::Duration;

/// Forty lines, each twice the one before: 800 bytes, then 1.6 kB, ...
/// up to 800 × 2^39 bytes if nothing stopped it.
fn template_bomb() -> String {
    let mut text = format!("v0 = \"{}\"\n", "x".repeat(800));
    for i in 1..40 {
        writeln!(text, "v{i} = \"${{v{p}}}${{v{p}}}\"", p = i - 1).unwrap();
    }
    text
}

#[test]
fn a_template_bomb_stops_at_the_value_bound() {
    let t = tempdir();
    let f = t.path().join("bomb.vmc");
    fs::write(&f, template_bomb()).unwrap();
    let mut cmd = bin();
    cmd.arg("check").arg(&f);
    let (out, mib, took) = measured(&cmd, 1024);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("check of the template bomb: {took:?}, peak {mib} MiB");
    assert_eq!(out.status.code(), Some(2), "{err}");
    // 800 × 2^11 is the first value over 1 MiB: line 12 (v11), its
    // second reference, column 14
    assert!(
        err.contains(
            "bomb.vmc:12:14: error: substituting variables makes this value longer than 1 MiB"
        ),
        "{err}"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(mib < 100, "peak resident set {mib} MiB");
}

#[test]
fn a_file_inserts_at_most_sixteen_mib() {
    // 20 references to a 1 MiB-grown value: each line within its bound,
    // the file over its own
    let mut text = format!("a = \"{}\"\n", "x".repeat(1000));
    text.push_str("b = \"");
    text.push_str(&"${a}".repeat(1000));
    text.push_str("\"\n");
    for i in 0..20 {
        writeln!(text, "c{i} = \"${{b}}\"").unwrap();
    }
    let t = tempdir();
    let f = t.path().join("wide.vmc");
    fs::write(&f, text).unwrap();
    let out = bin().arg("check").arg(&f).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "wide.vmc:18:8: error: substituted variables add more than 16 MiB to this file"
        ),
        "{err}"
    );
}
