//! Stripped configs are judged by Xen's own parser (libxlutil, through
//! xlcfg-check): every example strips to a config it accepts with the
//! values we meant, and `check` accepts exactly what it accepts.

use crate::common;

use common::{root, tempdir, xl_read};
use std::path::Path;
use vm_container::parser::{self, analyze::EmptyWorld, Options};
use vm_container::xen::Value;

/// What xlcfg-check prints for a value.
fn xl_form(name: &str, v: &Value) -> String {
    let scalar = |v: &Value| match v {
        Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
        Value::Number(n) => n.clone(),
        _ => "<nonstring>".to_string(),
    };
    match v {
        Value::List(items) => format!(
            "{name}=list:[{}]",
            items.iter().map(scalar).collect::<Vec<_>>().join("|")
        ),
        v => format!("{name}=string:{}", scalar(v)),
    }
}

fn analyze_file(path: &Path, set: &[(&str, &str)]) -> parser::plan::Plan {
    let text = std::fs::read_to_string(path).unwrap();
    let parsed = parser::parse(&text);
    assert!(
        parsed.errors.is_empty(),
        "{}: {:?}",
        path.display(),
        parsed.errors
    );
    let opts = Options {
        set: set
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        base_dir: path.parent().unwrap().to_path_buf(),
    };
    // a world where every input exists: this test is about the Xen part
    struct All;
    impl parser::World for All {
        fn exists(&self, _: &Path) -> bool {
            true
        }
        fn is_ext_image(&self, _: &Path) -> bool {
            false
        }
    }
    parser::analyze(&parsed.container, &text, &opts, &All).unwrap()
}

#[test]
fn every_example_strips_to_a_config_xl_reads_as_written() {
    let dir = root().join("examples/containers");
    let tmp = tempdir();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue;
        }
        for set in [vec![], vec![("name", "rex"), ("memory", "512")]] {
            let plan = analyze_file(&path, &set);
            let out = tmp.path().join("stripped.cfg");
            std::fs::write(&out, &plan.stripped).unwrap();
            let keys: Vec<&str> = plan.settings.keys().map(String::as_str).collect();
            let got = xl_read(&out, &keys)
                .unwrap_or_else(|e| panic!("{}: xl rejects: {e}", path.display()));
            let want: Vec<String> = plan.settings.iter().map(|(k, v)| xl_form(k, v)).collect();
            // every disk a container makes is absolute, so `xl create`
            // finds it from anywhere (plain.cfg names an LVM volume)
            let container = path.extension().is_some_and(|e| e == "vmc");
            for l in got.iter().filter(|l| container && l.starts_with("disk[")) {
                assert!(l.contains("]=ok:/"), "{}: {l}", path.display());
            }
            let got: Vec<String> = got
                .into_iter()
                .filter(|l| !l.starts_with("disk["))
                .collect();
            assert_eq!(got, want, "{}", path.display());
            if !set.is_empty() && plan.settings.contains_key("name") {
                assert!(got.contains(&"name=string:rex".to_string()));
            }
            seen += 1;
        }
    }
    assert!(seen >= 8, "examples/containers holds too few files");
}

#[test]
fn example_disks_parse_as_xl_disks() {
    let path = root().join("examples/containers/fido.vmc");
    let plan = analyze_file(&path, &[]);
    let tmp = tempdir();
    let out = tmp.path().join("fido.cfg");
    std::fs::write(&out, &plan.stripped).unwrap();
    let got = xl_read(&out, &["disk"]).unwrap();
    assert_eq!(got[1], "disk[0]=ok:/var/images/fido-etc,xvda1,raw,w");
    let plan = analyze_file(&path, &[("dir", "/srv/fido")]);
    std::fs::write(&out, &plan.stripped).unwrap();
    let got = xl_read(&out, &["disk"]).unwrap();
    assert_eq!(got[1], "disk[0]=ok:/srv/fido/fido-etc,xvda1,raw,w");
}

/// The disk target `check` warns about is the one libxlutil reads.
#[test]
fn disk_targets_are_found_as_libxlutil_finds_them() {
    let specs = [
        "file:/img/a,xvda1,w",
        "phy:/dev/vg/root,xvda2,r",
        "tap:aio:rel/x,xvda,w",
        "tap2:qcow2:rel/y,xvdb,w",
        " file:rel/z , xvdc, w",
        "raw:rel/q,xvdd,w",
        "format=raw, vdev=xvde, access=rw, target=rel/t,with,commas",
        "rel/u,raw,xvdf,rw",
        "qcow2:rel/v,xvdg,w",
        "vhd:rel/v,xvdg,w",
        "aio:rel/w,xvdh,w",
        "format=qcow2, rel/p, xvdi, w",
    ];
    let tmp = tempdir();
    let f = tmp.path().join("disks.cfg");
    let list: Vec<String> = specs.iter().map(|s| format!("'{s}'")).collect();
    std::fs::write(&f, format!("disk = [ {} ]\n", list.join(", "))).unwrap();
    let got = xl_read(&f, &["disk"]).unwrap();
    for (i, spec) in specs.iter().enumerate() {
        let line = &got[i + 1];
        let want = line
            .strip_prefix(&format!("disk[{i}]=ok:"))
            .unwrap_or_else(|| panic!("{spec}: {line}"));
        // xlcfg-check prints TARGET,VDEV,FORMAT,MODE: the last three
        // fields hold no comma
        let target = want.rsplitn(4, ',').nth(3).unwrap();
        assert_eq!(vm_container::xen::disk_target(spec), target, "{spec}");
    }
}

#[test]
fn a_plain_config_strips_to_itself() {
    let path = root().join("examples/containers/plain.cfg");
    let text = std::fs::read_to_string(&path).unwrap();
    let plan = analyze_file(&path, &[]);
    assert_eq!(plan.stripped, text);
    // and through the binary
    let out = common::bin()
        .args(["strip", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, text.as_bytes());
}

#[test]
fn systemimager_unclosed_list_is_rejected_where_xl_rejects_it() {
    // seeds/000: the disk list is never closed
    let text = "kernel = \"/boot/vmlinuz-2.4.29-xen0\"\nmemory = 64\nname = \"Subian-1A\"\nnics = 2\nvif = ['ip = \"\", bridge=xen-br0',\n        'ip = \"\", bridge=xen-br1']\n\ndisk = ['phy:vm_volumes/root-Subian-1A,sda1,w'\nroot = \"/dev/sda1 rw\"\n";
    let tmp = tempdir();
    let f = tmp.path().join("Subian-1A");
    std::fs::write(&f, text).unwrap();
    let xl = xl_read(&f, &[]).unwrap_err();
    assert!(xl.contains(":9:"), "{xl}");
    let out = common::bin()
        .args(["check", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Subian-1A:9:1: error: expected `,` or `]`"),
        "{err}"
    );
    assert!(err.contains("closing `]` missing"), "{err}");
    assert!(
        err.contains("Subian-1A:8:8: note: the list opened here is not closed"),
        "{err}"
    );
}

/// A small deterministic generator (xorshift64*), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

/// Every escape libxlutil knows, its octal quirks, and escapes it refuses;
/// each is tried inside both quote styles.
const ESCAPES: &[&str] = &[
    "\\\"", "\\'", "\\\\", "\\a", "\\b", "\\f", "\\n", "\\r", "\\t", "\\v", "\\101", "\\400",
    "\\4 0", "\\7-9", "\\191", "\\3\t1", "\\4  0", "\\1 -8", "\\1 9 ", "\\5\r+2", "\\4   0",
    "\\1  -8", "\\40", "\\0", "\\17", "\\x41", "\\q", "\\9ab", "\\48+", "\\",
];

/// Text between escapes; `"` and `'` stand for the quote *not* in use.
const PIECES: &[&str] = &[
    "fido",
    "phy:vg/root,xvda1,w",
    " ",
    "x=1, y=2",
    "é ünï",
    "\"",
    "'",
    "cr\rinside",
    "#",
    "[]",
];

/// Generates configs and remembers which escape appeared in which quote.
struct Gen {
    r: Rng,
    seen: std::collections::BTreeSet<(usize, char)>,
}

impl Gen {
    fn string(&mut self) -> String {
        let q = if self.r.below(2) == 0 { '"' } else { '\'' };
        let other = if q == '"' { "'" } else { "\"" };
        let mut s = String::from(q);
        for _ in 0..self.r.below(4) {
            if self.r.below(2) == 0 {
                let e = self.r.below(ESCAPES.len());
                self.seen.insert((e, q));
                s.push_str(ESCAPES[e]);
            } else {
                match self.r.pick(PIECES) {
                    "\"" | "'" => s.push_str(other),
                    p => s.push_str(p),
                }
            }
        }
        s.push(q);
        s
    }

    fn value(&mut self, depth: usize) -> String {
        let r = &mut self.r;
        match r.below(if depth > 1 { 3 } else { 4 }) {
            0 => r
                .pick(&["0", "42", "0x1f", "09", "1a", "256", "0xdeadbeef", "7x"])
                .to_string(),
            1 => self.string(),
            2 => r.pick(&["\"\"", "''", "'file:/img/a,sda1,w'"]).to_string(),
            _ => {
                let n = self.r.below(4);
                let mut s = String::from("[");
                for i in 0..n {
                    if self.r.below(3) == 0 {
                        s.push_str("\n  ");
                    }
                    let v = self.value(depth + 1);
                    s.push_str(&v);
                    if i + 1 < n || self.r.below(2) == 0 {
                        s.push(',');
                    }
                    if self.r.below(4) == 0 {
                        s.push_str(" # note\n");
                    }
                }
                s.push(']');
                if n == 0 && s == "[,]" {
                    s = "[]".into();
                }
                s
            }
        }
    }

    fn config(&mut self) -> String {
        let mut s = String::new();
        for _ in 0..self.r.below(6) + 1 {
            match self.r.below(8) {
                0 => s.push_str("# comment\n"),
                1 => s.push('\n'),
                _ => {
                    let name = self.r.pick(&[
                        "name", "memory", "disk", "vif", "extra", "a.b_9", "on_crash",
                    ]);
                    let op = if self.r.below(4) == 0 { "+=" } else { "=" };
                    let sep = self
                        .r
                        .pick(&["\n", ";", "; ", " # trailing\n", "\n\n", ";\n"]);
                    let indent = self.r.pick(&["", " ", "\t"]);
                    let v = self.value(0);
                    s.push_str(&format!("{indent}{name} {op} {v}{sep}"));
                }
            }
        }
        if self.r.below(5) == 0 {
            // the last statement may lack its newline
            while s.ends_with('\n')
                && !s
                    .trim_end()
                    .ends_with(|c: char| c == '#' || c.is_alphabetic())
            {
                s.pop();
            }
        }
        s
    }
}

fn mutate(r: &mut Rng, s: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    const ALPHABET: &[u8] = b"\"'\\[],=+#\n\r\t A-._x0 9;fF";
    for _ in 0..r.below(3) + 1 {
        let at = if b.is_empty() {
            0
        } else {
            r.below(b.len() + 1)
        };
        match r.below(3) {
            0 => b.insert(at, ALPHABET[r.below(ALPHABET.len())]),
            1 if at < b.len() => {
                b.remove(at);
            }
            _ if at < b.len() => b[at] = ALPHABET[r.below(ALPHABET.len())],
            _ => {}
        }
    }
    // keep it text: mutations only insert ASCII, but removal may split a
    // multi-byte character
    String::from_utf8_lossy(&b).into_owned()
}

/// The octal quirk byte by byte: `\1` followed by every three bytes drawn
/// from digits, blanks, signs, a letter and the closing quote, in both
/// quote styles.
#[test]
fn octal_escapes_agree_with_libxlutil_byte_by_byte() {
    let tmp = tempdir();
    let f = tmp.path().join("octal.cfg");
    let alphabet = ["0", "9", " ", "\t", "\r", "\x0b", "+", "-", "a", "Q"];
    let mut disagreements = Vec::new();
    let mut accepted = 0;
    for a in alphabet {
        for b in alphabet {
            for c in alphabet {
                for q in ['"', '\''] {
                    let text = format!("v = {q}\\1{a}{b}{c}Z{q}\n");
                    std::fs::write(&f, &text).unwrap();
                    let xl = xl_read(&f, &["v"]).ok();
                    let ours = ours(&text).map(|_| {
                        let (stmts, _) = vm_container::xen::parse_config(&text);
                        xl_form("v", &vm_container::xen::apply_all(&stmts).unwrap()["v"])
                    });
                    accepted += usize::from(xl.is_some());
                    if xl.as_ref().map(|l| l[0].clone()) != ours {
                        disagreements.push(format!("{text:?}: xl {xl:?}, ours {ours:?}"));
                    }
                }
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(accepted > 200, "only {accepted} accepted");
}

/// What `check` says of a config, and what `strip` would write for it.
fn ours(text: &str) -> Option<String> {
    let parsed = parser::parse(text);
    if !parsed.errors.is_empty() {
        return None;
    }
    parser::analyze(
        &parsed.container,
        text,
        &Options {
            set: vec![],
            base_dir: "/".into(),
        },
        &EmptyWorld,
    )
    .ok()
    .map(|plan| plan.stripped)
}

/// A number from the environment, decimal or `0x` hex.
fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// `VMC_XEN_SEED` and `VMC_XEN_CASES` choose the run, so a disagreement
/// found elsewhere can be reproduced here:
///
///     VMC_XEN_SEED=7 VMC_XEN_CASES=5000 cargo test --test xen_conformance check_accepts
#[test]
fn check_accepts_exactly_what_libxlutil_accepts() {
    let tmp = tempdir();
    let f = tmp.path().join("gen.cfg");
    let n = env_number("VMC_XEN_CASES").unwrap_or(600) as usize;
    let seed = env_number("VMC_XEN_SEED").unwrap_or(0x9e37_79b9_7f4a_7c15);
    let again = format!("VMC_XEN_SEED={seed} VMC_XEN_CASES={n}");
    // a bijection, so different seeds give different runs; xorshift
    // needs a state other than zero
    let state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03;
    let mut g = Gen {
        r: Rng(state.max(1)),
        seen: Default::default(),
    };
    let (mut valid, mut invalid) = (0, 0);
    let mut disagreements = Vec::new();
    for i in 0..n {
        let base = g.config();
        let text = if i % 2 == 0 {
            base
        } else {
            mutate(&mut g.r, &base)
        };
        std::fs::write(&f, &text).unwrap();
        let xl_ok = xl_read(&f, &[]).is_ok();
        let stripped = ours(&text);
        if xl_ok {
            valid += 1
        } else {
            invalid += 1
        }
        match (&stripped, xl_ok) {
            (Some(out), true) if *out != text => {
                disagreements.push(format!("case {i}: strip changed it to {out:?}: {text:?}"))
            }
            (Some(_), true) | (None, false) => {}
            (Some(_), false) => disagreements.push(format!("case {i}: only we accept {text:?}")),
            (None, true) => disagreements.push(format!("case {i}: only xl accepts {text:?}")),
        }
    }
    eprintln!(
        "{again}: {valid} accepted by xl, {invalid} refused, {} disagreements",
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements ({again} repeats them):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(
        valid > n / 4 && invalid > n / 6,
        "generator too one-sided: {valid} valid, {invalid} invalid ({again})"
    );
    if n >= 600 {
        let missing: Vec<String> = ESCAPES
            .iter()
            .enumerate()
            .flat_map(|(e, esc)| ['"', '\''].map(move |q| (e, q, esc)))
            .filter(|(e, q, _)| !g.seen.contains(&(*e, *q)))
            .map(|(_, q, esc)| format!("{q}{esc}{q}"))
            .collect();
        assert!(
            missing.is_empty(),
            "escapes never generated: {missing:?} ({again})"
        );
    }
}
