//! Applying a [`Patch`] the way `patch -p1 -F0` does, all or nothing.
//!
//! Hunks are located exactly as GNU patch 2.7 locates them without fuzz:
//! first at the line the header names shifted by the offset the previous
//! hunk of the same file needed, then alternately further forward and
//! backward; a hunk whose leading context is shorter than its trailing
//! context can only match at the start of the file, and the reverse at the
//! end, because that is what a unified diff with full context means.

use super::{Content, FileOp, FilePatch, Hunk, HunkLine, Patch};
use crate::tree::{PathError, TreePath};
use std::collections::BTreeMap;

/// The files a patch applies to, implemented by the caller.
pub trait FileSet {
    /// The whole content of the regular file at `path`, or `None` when
    /// there is none.
    fn read(&self, path: &TreePath) -> Option<Vec<u8>>;
}

/// What applying a patch does to one file, for the caller to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Replace the content of an existing file. `mode` is the full
    /// `st_mode` when a git header sets one.
    Write {
        path: TreePath,
        content: Vec<u8>,
        mode: Option<u32>,
    },
    /// Create a file that did not exist (with its missing parents).
    Create {
        path: TreePath,
        content: Vec<u8>,
        mode: Option<u32>,
    },
    /// Remove the file.
    Delete { path: TreePath },
}

impl Change {
    pub fn path(&self) -> &TreePath {
        match self {
            Change::Write { path, .. } | Change::Create { path, .. } | Change::Delete { path } => {
                path
            }
        }
    }
}

/// Why a patch does not apply. Nothing has been changed when this is
/// returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "{patch}:{line}: file name {name:?} has fewer than {strip} leading components to strip"
    )]
    ShortName {
        patch: String,
        line: usize,
        name: String,
        strip: usize,
    },
    #[error("{patch}:{line}: file name {name:?} is not a safe relative path: {cause}")]
    UnsafeName {
        patch: String,
        line: usize,
        name: String,
        cause: PathError,
    },
    #[error("{patch}:{line}: file to patch {file} does not exist")]
    Missing {
        patch: String,
        line: usize,
        file: TreePath,
    },
    #[error("{patch}:{line}: patch creates {file}, which already exists and is not empty")]
    Exists {
        patch: String,
        line: usize,
        file: TreePath,
    },
    #[error("{patch}:{line}: hunk #{hunk} of {file} FAILED: its context does not match at line {at} or any offset")]
    HunkFailed {
        patch: String,
        /// Line of the hunk's `@@` header in the patch.
        line: usize,
        file: TreePath,
        /// 1-based number of the hunk within its file section.
        hunk: usize,
        /// Where the hunk was expected in the file (1-based).
        at: usize,
    },
    #[error(
        "{patch}:{line}: patch deletes {file}, but content remains after removing what it lists"
    )]
    NotEmptyAfterDelete {
        patch: String,
        line: usize,
        file: TreePath,
    },
}

impl Patch {
    /// Applies every text section to `files` and returns the resulting
    /// changes, or the first failure and no change at all. Sections that
    /// [`Patch::unsupported`] lists (binary, rename, copy) are skipped: the
    /// caller decides whether that is acceptable. Several sections may
    /// patch the same file; they apply in order.
    /// Every path the patch may read once names are stripped: what a
    /// caller must be able to supply through [`FileSet`]. Names that cannot
    /// be stripped are left out (applying reports them).
    pub fn paths(&self) -> std::collections::BTreeSet<TreePath> {
        let mut out = std::collections::BTreeSet::new();
        for fp in &self.files {
            for name in [fp.old_name.as_deref(), fp.new_name.as_deref()] {
                if let Ok(Some(p)) = self.stripped(fp, name, self.strip) {
                    out.insert(p);
                }
            }
        }
        out
    }

    pub fn apply(&self, files: &mut dyn FileSet) -> Result<Vec<Change>, ApplyError> {
        self.apply_stripped(&*files, self.strip)
    }

    /// As [`Patch::apply`], with `strip` leading components dropped from
    /// names (`patch -pN`) instead of [`Patch::strip`].
    pub fn apply_stripped(
        &self,
        files: &dyn FileSet,
        strip: usize,
    ) -> Result<Vec<Change>, ApplyError> {
        // Every result is computed here before anything is returned, so a
        // failure in the last section leaves the caller's files untouched.
        let mut state: BTreeMap<TreePath, Option<Vec<u8>>> = BTreeMap::new();
        let mut modes: BTreeMap<TreePath, u32> = BTreeMap::new();
        let mut order: Vec<TreePath> = Vec::new();
        let current = |state: &BTreeMap<TreePath, Option<Vec<u8>>>, p: &TreePath| match state.get(p)
        {
            Some(v) => v.clone(),
            None => files.read(p),
        };
        for fp in &self.files {
            if !matches!(fp.content, Content::Text) {
                continue;
            }
            let old = self.stripped(fp, fp.old_name.as_deref(), strip)?;
            let new = self.stripped(fp, fp.new_name.as_deref(), strip)?;
            let (target, result) = match fp.op {
                FileOp::Create => {
                    let Some(target) = new.or(old) else { continue };
                    let existing = current(&state, &target);
                    if existing.as_ref().is_some_and(|c| !c.is_empty()) {
                        return Err(ApplyError::Exists {
                            patch: self.name.clone(),
                            line: fp.line,
                            file: target,
                        });
                    }
                    let out = self.apply_hunks(fp, &target, &[])?;
                    (target, Some(out))
                }
                FileOp::Delete | FileOp::Modify => {
                    let target = match (old, new) {
                        (Some(o), Some(n)) if o != n => {
                            choose(o, n, |p| current(&state, p).is_some())
                        }
                        (Some(o), _) => o,
                        (None, Some(n)) => n,
                        (None, None) => continue,
                    };
                    let Some(input) = current(&state, &target) else {
                        return Err(ApplyError::Missing {
                            patch: self.name.clone(),
                            line: fp.line,
                            file: target,
                        });
                    };
                    let out = self.apply_hunks(fp, &target, &input)?;
                    if fp.op == FileOp::Delete {
                        if !out.is_empty() {
                            return Err(ApplyError::NotEmptyAfterDelete {
                                patch: self.name.clone(),
                                line: fp.line,
                                file: target,
                            });
                        }
                        (target, None)
                    } else {
                        (target, Some(out))
                    }
                }
            };
            if let Some(m) = fp.new_mode {
                modes.insert(target.clone(), m);
            }
            if !order.contains(&target) {
                order.push(target.clone());
            }
            state.insert(target, result);
        }
        let mut changes = Vec::new();
        for path in order {
            let before = files.read(&path);
            let Some(after) = state.remove(&path) else {
                continue;
            };
            let mode = modes.get(&path).copied();
            match (before, after) {
                (None, Some(content)) => changes.push(Change::Create {
                    path,
                    content,
                    mode,
                }),
                (Some(_), Some(content)) => changes.push(Change::Write {
                    path,
                    content,
                    mode,
                }),
                (Some(_), None) => changes.push(Change::Delete { path }),
                (None, None) => {}
            }
        }
        Ok(changes)
    }

    fn stripped(
        &self,
        fp: &FilePatch,
        name: Option<&[u8]>,
        strip: usize,
    ) -> Result<Option<TreePath>, ApplyError> {
        let Some(name) = name else { return Ok(None) };
        let shown = String::from_utf8_lossy(name).into_owned();
        let rest = strip_components(name, strip).ok_or_else(|| ApplyError::ShortName {
            patch: self.name.clone(),
            line: fp.line,
            name: shown.clone(),
            strip,
        })?;
        let path = TreePath::from_member(rest).map_err(|cause| ApplyError::UnsafeName {
            patch: self.name.clone(),
            line: fp.line,
            name: shown.clone(),
            cause,
        })?;
        if path.is_root() {
            return Err(ApplyError::ShortName {
                patch: self.name.clone(),
                line: fp.line,
                name: shown,
                strip,
            });
        }
        Ok(Some(path))
    }

    fn apply_hunks(
        &self,
        fp: &FilePatch,
        target: &TreePath,
        input: &[u8],
    ) -> Result<Vec<u8>, ApplyError> {
        let lines = split_lines(input);
        let mut out: Vec<u8> = Vec::with_capacity(input.len());
        // 0-based count of input lines already copied or consumed
        // (`last_frozen_line` in GNU patch).
        let mut frozen: usize = 0;
        let mut in_offset: i64 = 0;
        for (i, h) in fp.hunks.iter().enumerate() {
            let pattern: Vec<&[u8]> = h
                .lines
                .iter()
                .filter_map(|l| match l {
                    HunkLine::Context(t) | HunkLine::Delete(t) => Some(t.as_slice()),
                    HunkLine::Insert(_) => None,
                })
                .collect();
            let fail = || ApplyError::HunkFailed {
                patch: self.name.clone(),
                line: h.line,
                file: target.clone(),
                hunk: i + 1,
                at: first_line(h),
            };
            let at = locate(h, &pattern, &lines, frozen, &mut in_offset).ok_or_else(fail)?;
            // `at` is 1-based; everything before it is copied unchanged.
            let start = at.checked_sub(1).ok_or_else(fail)?;
            if start < frozen {
                return Err(fail());
            }
            for l in lines.get(frozen..start).ok_or_else(fail)? {
                out.extend_from_slice(l);
            }
            for l in &h.lines {
                if let HunkLine::Context(t) | HunkLine::Insert(t) = l {
                    out.extend_from_slice(t);
                }
            }
            frozen = start + pattern.len();
        }
        for l in lines.get(frozen..).unwrap_or_default() {
            out.extend_from_slice(l);
        }
        Ok(out)
    }
}

/// GNU patch's choice between two different existing names: fewest
/// components, then shortest base name, then shortest name; the old name
/// on a tie. When neither exists the old name is reported missing.
fn choose(old: TreePath, new: TreePath, exists: impl Fn(&TreePath) -> bool) -> TreePath {
    match (exists(&old), exists(&new)) {
        (true, false) | (false, false) => old,
        (false, true) => new,
        (true, true) => {
            let key = |p: &TreePath| {
                (
                    p.components().count(),
                    p.file_name().len(),
                    p.as_bytes().len(),
                )
            };
            if key(&new) < key(&old) {
                new
            } else {
                old
            }
        }
    }
}

/// Drops the shortest prefix holding `n` slashes (runs of slashes count
/// once), as `patch -pN`.
fn strip_components(name: &[u8], n: usize) -> Option<&[u8]> {
    let mut rest = name;
    for _ in 0..n {
        let i = rest.iter().position(|&b| b == b'/')?;
        rest = &rest[i + 1..];
        while rest.first() == Some(&b'/') {
            rest = &rest[1..];
        }
    }
    Some(rest)
}

/// The line where a hunk's old text begins, 1-based (`pch_first`): an empty
/// old range names the line after which to insert.
fn first_line(h: &Hunk) -> usize {
    if h.old_count == 0 {
        h.old_start.saturating_add(1)
    } else {
        h.old_start
    }
}

/// `locate_hunk` of GNU patch 2.7 with fuzz 0: the 1-based line where
/// `pattern` matches, updating `in_offset`, or `None`.
fn locate(
    h: &Hunk,
    pattern: &[&[u8]],
    input: &[&[u8]],
    frozen: usize,
    in_offset: &mut i64,
) -> Option<usize> {
    // Line numbers are bounded by the parser and file sizes by memory, so
    // these conversions cannot fail in practice; they are checked anyway.
    let pch_first = i64::try_from(first_line(h)).ok()?;
    let first_guess = pch_first.checked_add(*in_offset)?;
    let pat_lines = i64::try_from(pattern.len()).ok()?;
    let input_lines = i64::try_from(input.len()).ok()?;
    let last_frozen = i64::try_from(frozen).ok()?;
    let prefix_context = i64::try_from(
        h.lines
            .iter()
            .take_while(|l| matches!(l, HunkLine::Context(_)))
            .count(),
    )
    .ok()?;
    let suffix_context = i64::try_from(
        h.lines
            .iter()
            .rev()
            .take_while(|l| matches!(l, HunkLine::Context(_)))
            .count(),
    )
    .ok()?;
    let context = prefix_context.max(suffix_context);
    let prefix_fuzz = prefix_context - context;
    let suffix_fuzz = suffix_context - context;
    let max_where = input_lines - (pat_lines - suffix_fuzz) + 1;
    let min_where = last_frozen + 1 - (prefix_context - prefix_fuzz);
    let max_pos_offset = max_where - first_guess;
    let mut max_neg_offset = first_guess - min_where;
    let max_offset = max_pos_offset.max(max_neg_offset);

    if pat_lines == 0 {
        return usize::try_from(first_guess).ok();
    }
    if first_guess <= max_neg_offset {
        max_neg_offset = first_guess - 1;
    }
    let matches_at = |line: i64| -> bool {
        let Ok(start) = usize::try_from(line - 1) else {
            return false;
        };
        match input.get(start..start.saturating_add(pattern.len())) {
            Some(window) => window == pattern,
            None => false,
        }
    };
    let found = |offset: i64, in_offset: &mut i64| -> Option<usize> {
        *in_offset += offset;
        usize::try_from(first_guess + offset).ok()
    };

    if prefix_fuzz < 0 && pch_first <= 1 {
        // Short leading context: the hunk is at the start of the file.
        if suffix_fuzz < 0 && (pat_lines != input_lines || prefix_context < last_frozen) {
            return None;
        }
        let offset = 1 - first_guess;
        if last_frozen <= prefix_context && offset <= max_pos_offset && matches_at(1) {
            return found(offset, in_offset);
        }
        return None;
    }
    if suffix_fuzz < 0 {
        // Short trailing context: the hunk is at the end of the file.
        let offset = first_guess - (input_lines - pat_lines + 1);
        if offset <= max_neg_offset && matches_at(first_guess - offset) {
            return found(-offset, in_offset);
        }
        return None;
    }
    let mut offset = 0;
    while offset <= max_offset {
        if offset <= max_pos_offset && matches_at(first_guess + offset) {
            return found(offset, in_offset);
        }
        if 0 < offset && offset <= max_neg_offset && matches_at(first_guess - offset) {
            return found(-offset, in_offset);
        }
        offset += 1;
    }
    None
}

/// Lines with their `\n`; the last one may lack it.
pub(crate) fn split_lines(text: &[u8]) -> Vec<&[u8]> {
    text.split_inclusive(|&b| b == b'\n').collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::parse;

    struct Map(BTreeMap<TreePath, Vec<u8>>);
    impl FileSet for Map {
        fn read(&self, path: &TreePath) -> Option<Vec<u8>> {
            self.0.get(path).cloned()
        }
    }
    fn tp(s: &str) -> TreePath {
        TreePath::from_member(s.as_bytes()).unwrap()
    }

    #[test]
    fn offset_and_creation_and_deletion() {
        let mut files = Map(BTreeMap::from([
            (tp("x"), b"0\n0\n1\n2\n3\n4\n5\n6\n".to_vec()),
            (tp("gone"), b"bye".to_vec()),
        ]));
        let p = parse::parse(
            b"--- a/x\n+++ b/x\n@@ -2,3 +2,3 @@\n 2\n-3\n+three\n 4\n\
--- a/gone\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n\\ No newline at end of file\n\
--- /dev/null\n+++ b/d/new\n@@ -0,0 +1 @@\n+n\n",
            "p",
        )
        .unwrap();
        let ch = p.apply(&mut files).unwrap();
        assert_eq!(
            ch,
            vec![
                Change::Write {
                    path: tp("x"),
                    content: b"0\n0\n1\n2\nthree\n4\n5\n6\n".to_vec(),
                    mode: None
                },
                Change::Delete { path: tp("gone") },
                Change::Create {
                    path: tp("d/new"),
                    content: b"n\n".to_vec(),
                    mode: None
                },
            ]
        );
    }

    #[test]
    fn refuses_escaping_names() {
        let p = parse::parse(b"--- a/../x\n+++ b/../x\n@@ -0,0 +1 @@\n+n\n", "p").unwrap();
        let e = p.apply(&mut Map(BTreeMap::new())).unwrap_err();
        assert!(matches!(e, ApplyError::UnsafeName { .. }), "{e}");
        let mut p = parse::parse(b"--- /etc/x\n+++ /etc/x\n@@ -0,0 +1 @@\n+n\n", "p").unwrap();
        p.strip = 0;
        let e = p.apply(&mut Map(BTreeMap::new())).unwrap_err();
        assert!(matches!(e, ApplyError::UnsafeName { .. }), "{e}");
    }

    #[test]
    fn short_leading_context_pins_the_start() {
        // Two context lines before a change at line 3 would be full context
        // elsewhere; one leading context line means line 1.
        let mut files = Map(BTreeMap::from([(tp("x"), b"z\na\nb\nc\nd\n".to_vec())]));
        let p = parse::parse(
            b"--- a/x\n+++ b/x\n@@ -1,4 +1,4 @@\n a\n-b\n+B\n c\n d\n",
            "p",
        )
        .unwrap();
        let e = p.apply(&mut files).unwrap_err();
        assert!(matches!(e, ApplyError::HunkFailed { hunk: 1, .. }), "{e}");
    }
}
