//! Writing the diff between two sets of files exactly as `diff -ruN a b`
//! does, so that GNU `patch -p1` recreates the new set.

use super::apply::split_lines;
use super::lcs::diff_lines;
use super::timestamp::format_timestamp;
use crate::tree::TreePath;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// One version of a file: its content and modification time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileVersion {
    pub content: Vec<u8>,
    /// Seconds since the epoch.
    pub mtime: i64,
    pub mtime_nsec: u32,
}

/// A set of regular files by path.
pub type FileMap = BTreeMap<TreePath, FileVersion>;

/// How [`unified`] labels and shapes its output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnifiedOptions {
    /// Directory names prefixed to old and new paths (`a`, `b`).
    pub old_label: String,
    pub new_label: String,
    /// Lines of context around each change (GNU's default is 3).
    pub context: usize,
    /// Time zone of the header timestamps, minutes east of UTC.
    pub tz_offset_minutes: i32,
    /// The options shown on each `diff OPTIONS a/x b/x` line.
    pub switches: String,
}

impl Default for UnifiedOptions {
    fn default() -> Self {
        UnifiedOptions {
            old_label: "a".into(),
            new_label: "b".into(),
            context: 3,
            tz_offset_minutes: 0,
            switches: "-ruN".into(),
        }
    }
}

/// The multi-file unified diff from `old` to `new`: files only in `old`
/// are deleted and files only in `new` created with the epoch timestamp of
/// `diff -N`; files holding a NUL byte are reported as
/// `Binary files a/x and b/x differ`. Paths come in the order `diff -r`
/// visits them (each directory's entries sorted by name).
pub fn unified(old: &FileMap, new: &FileMap, opts: &UnifiedOptions) -> Vec<u8> {
    let mut paths: Vec<&TreePath> = old
        .keys()
        .chain(new.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    paths.sort_by(|x, y| walk_order(x, y));
    let mut out = Vec::new();
    for path in paths {
        let (o, n) = (old.get(path), new.get(path));
        let old_content = o.map(|f| f.content.as_slice()).unwrap_or_default();
        let new_content = n.map(|f| f.content.as_slice()).unwrap_or_default();
        if o.is_some() && n.is_some() && old_content == new_content {
            continue;
        }
        let old_name = label(&opts.old_label, path);
        let new_name = label(&opts.new_label, path);
        if old_content.contains(&0) || new_content.contains(&0) {
            if old_content != new_content {
                out.extend_from_slice(b"Binary files ");
                out.extend_from_slice(&old_name);
                out.extend_from_slice(b" and ");
                out.extend_from_slice(&new_name);
                out.extend_from_slice(b" differ\n");
            }
            continue;
        }
        let a = split_lines(old_content);
        let b = split_lines(new_content);
        if a == b {
            // An empty file created or deleted: `diff -N` prints nothing
            // for it either, so `patch` cannot express it.
            continue;
        }
        out.extend_from_slice(b"diff ");
        out.extend_from_slice(opts.switches.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&old_name);
        out.push(b' ');
        out.extend_from_slice(&new_name);
        out.push(b'\n');
        let stamp = |f: Option<&FileVersion>| match f {
            Some(f) => format_timestamp(f.mtime, f.mtime_nsec, opts.tz_offset_minutes),
            None => format_timestamp(0, 0, opts.tz_offset_minutes),
        };
        out.extend_from_slice(b"--- ");
        out.extend_from_slice(&old_name);
        out.push(b'\t');
        out.extend_from_slice(stamp(o).as_bytes());
        out.extend_from_slice(b"\n+++ ");
        out.extend_from_slice(&new_name);
        out.push(b'\t');
        out.extend_from_slice(stamp(n).as_bytes());
        out.push(b'\n');
        hunks(&a, &b, opts.context, &mut out);
    }
    out
}

/// `diff -r` walks each directory's entries in name order, so `a/b` sorts
/// before `a-c` although `-` is below `/`.
fn walk_order(x: &TreePath, y: &TreePath) -> Ordering {
    x.components().cmp(y.components())
}

/// `LABEL/path`, C-quoted when the name holds characters that would break
/// the header line (GNU patch and git read the quoted form).
fn label(dir: &str, path: &TreePath) -> Vec<u8> {
    let mut raw = dir.as_bytes().to_vec();
    raw.push(b'/');
    raw.extend_from_slice(path.as_bytes());
    if !raw
        .iter()
        .any(|&c| c < b' ' || c == b'"' || c == b'\\' || c == 0x7f)
    {
        return raw;
    }
    let mut q = vec![b'"'];
    for c in raw {
        match c {
            b'\n' => q.extend_from_slice(b"\\n"),
            b'\t' => q.extend_from_slice(b"\\t"),
            b'"' => q.extend_from_slice(b"\\\""),
            b'\\' => q.extend_from_slice(b"\\\\"),
            c if c < b' ' || c == 0x7f => q.extend_from_slice(format!("\\{c:03o}").as_bytes()),
            c => q.push(c),
        }
    }
    q.push(b'"');
    q
}

/// A run of changed lines: `a[a0..a1]` replaced by `b[b0..b1]`.
#[derive(Clone, Copy)]
struct Group {
    a0: usize,
    a1: usize,
    b0: usize,
    b1: usize,
}

fn hunks(a: &[&[u8]], b: &[&[u8]], context: usize, out: &mut Vec<u8>) {
    let ch = diff_lines(a, b);
    let mut groups: Vec<Group> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let ca = ch.a.get(i).copied().unwrap_or(false);
        let cb = ch.b.get(j).copied().unwrap_or(false);
        if ca || cb {
            let (a0, b0) = (i, j);
            while ch.a.get(i).copied().unwrap_or(false) {
                i += 1;
            }
            while ch.b.get(j).copied().unwrap_or(false) {
                j += 1;
            }
            groups.push(Group {
                a0,
                a1: i,
                b0,
                b1: j,
            });
        } else {
            i += 1;
            j += 1;
        }
    }
    // Changes closer than twice the context share a hunk, as GNU diff
    // merges them.
    let mut start = 0;
    while start < groups.len() {
        let mut end = start + 1;
        while end < groups.len() && groups[end].a0 - groups[end - 1].a1 <= 2 * context {
            end += 1;
        }
        emit_hunk(a, b, &groups[start..end], context, out);
        start = end;
    }
}

fn emit_hunk(a: &[&[u8]], b: &[&[u8]], gs: &[Group], context: usize, out: &mut Vec<u8>) {
    let (Some(first), Some(last)) = (gs.first(), gs.last()) else {
        return;
    };
    let lead = context.min(first.a0);
    let trail = context.min(a.len() - last.a1);
    let (a_lo, a_hi) = (first.a0 - lead, last.a1 + trail);
    let (b_lo, b_hi) = (first.b0 - lead, last.b1 + trail);
    out.extend_from_slice(b"@@ -");
    range(a_lo, a_hi - a_lo, out);
    out.extend_from_slice(b" +");
    range(b_lo, b_hi - b_lo, out);
    out.extend_from_slice(b" @@\n");
    let mut i = a_lo;
    for g in gs {
        for l in &a[i..g.a0] {
            line(b' ', l, out);
        }
        for l in &a[g.a0..g.a1] {
            line(b'-', l, out);
        }
        for l in &b[g.b0..g.b1] {
            line(b'+', l, out);
        }
        i = g.a1;
    }
    for l in &a[i..a_hi] {
        line(b' ', l, out);
    }
}

/// GNU's range: `start,count`, `start` alone when the count is 1, and the
/// line before the range when it is empty.
fn range(lo: usize, count: usize, out: &mut Vec<u8>) {
    let s = match count {
        0 => format!("{lo},0"),
        1 => format!("{}", lo + 1),
        n => format!("{},{n}", lo + 1),
    };
    out.extend_from_slice(s.as_bytes());
}

fn line(tag: u8, l: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    out.extend_from_slice(l);
    if l.last() != Some(&b'\n') {
        out.extend_from_slice(b"\n\\ No newline at end of file\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(s: &str) -> TreePath {
        TreePath::from_member(s.as_bytes()).unwrap()
    }
    fn fv(s: &str, mtime: i64) -> FileVersion {
        FileVersion {
            content: s.as_bytes().to_vec(),
            mtime,
            mtime_nsec: 0,
        }
    }

    #[test]
    fn creation_deletion_and_no_newline() {
        let old = FileMap::from([(tp("old"), fv("old\nx", 1_000_000_000))]);
        let new = FileMap::from([(tp("d/e/f"), fv("deep\n", 1_000_000_000))]);
        let d = unified(&old, &new, &UnifiedOptions::default());
        assert_eq!(
            String::from_utf8(d).unwrap(),
            "diff -ruN a/d/e/f b/d/e/f\n\
--- a/d/e/f\t1970-01-01 00:00:00.000000000 +0000\n\
+++ b/d/e/f\t2001-09-09 01:46:40.000000000 +0000\n\
@@ -0,0 +1 @@\n\
+deep\n\
diff -ruN a/old b/old\n\
--- a/old\t2001-09-09 01:46:40.000000000 +0000\n\
+++ b/old\t1970-01-01 00:00:00.000000000 +0000\n\
@@ -1,2 +0,0 @@\n\
-old\n\
-x\n\
\\ No newline at end of file\n"
        );
    }

    #[test]
    fn walk_order_puts_directory_contents_first() {
        let mut v = [tp("a-c"), tp("a/b"), tp("a")];
        v.sort_by(walk_order);
        assert_eq!(v, [tp("a"), tp("a/b"), tp("a-c")]);
    }
}
