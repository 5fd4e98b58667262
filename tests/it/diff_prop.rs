//! Random file sets and random edits: our diff applied by us and by GNU
//! patch gives the new set; GNU diff applied by us gives it too.

use crate::diff_common;

use diff_common::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use vm_container::diff::{self, FileMap, FileVersion, UnifiedOptions};
use vm_container::tree::TreePath;

const NAMES: [&str; 5] = ["f1", "f2", "d/f3", "d/e/f4", "n/f5"];

/// Lines from a small alphabet so that repeated lines (and several
/// minimal diffs) are common.
fn text() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "c", "dd", "", "e e"]),
            0..24,
        ),
        any::<bool>(),
    )
        .prop_map(|(lines, final_newline)| {
            let mut t = lines.join("\n").into_bytes();
            if final_newline && !lines.is_empty() {
                t.push(b'\n');
            }
            t
        })
}

#[derive(Clone, Debug)]
enum Edit {
    Keep,
    Delete,
    /// (position fraction, remove count, inserted text)
    Change(Vec<(u8, u8, Vec<u8>)>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => Just(Edit::Keep),
        1 => Just(Edit::Delete),
        4 => prop::collection::vec((any::<u8>(), 0u8..4, text()), 1..4).prop_map(Edit::Change),
    ]
}

fn sets() -> impl Strategy<Value = (FileMap, FileMap)> {
    (
        prop::collection::vec(prop::option::of(text()), NAMES.len()),
        prop::collection::vec(edit(), NAMES.len()),
        prop::collection::vec(prop::option::of(text()), NAMES.len()),
    )
        .prop_map(|(olds, edits, creations)| {
            let fv = |content: Vec<u8>, mtime| FileVersion {
                content,
                mtime,
                mtime_nsec: 123,
            };
            let (mut old, mut new) = (FileMap::new(), FileMap::new());
            for (i, name) in NAMES.iter().enumerate() {
                let p = tp(name);
                match &olds[i] {
                    // `diff -N` cannot tell an empty file from an absent
                    // one, so empty files neither appear nor vanish.
                    Some(o) if !o.is_empty() => {
                        old.insert(p.clone(), fv(o.clone(), 1_000_000_000));
                        match &edits[i] {
                            Edit::Keep => {
                                new.insert(p, fv(o.clone(), 1_000_000_000));
                            }
                            Edit::Delete => {}
                            Edit::Change(ops) => {
                                let mut lines: Vec<Vec<u8>> = o
                                    .split_inclusive(|&b| b == b'\n')
                                    .map(<[u8]>::to_vec)
                                    .collect();
                                for (at, remove, ins) in ops {
                                    let at = usize::from(*at) * lines.len() / 256;
                                    let end = (at + usize::from(*remove)).min(lines.len());
                                    let ins: Vec<Vec<u8>> = ins
                                        .split_inclusive(|&b| b == b'\n')
                                        .map(<[u8]>::to_vec)
                                        .collect();
                                    lines.splice(at..end, ins);
                                }
                                new.insert(p, fv(lines.concat(), 1_100_000_000));
                            }
                        }
                    }
                    _ => {
                        if let Some(c) = &creations[i] {
                            if !c.is_empty() {
                                new.insert(p, fv(c.clone(), 1_100_000_000));
                            }
                        }
                    }
                }
            }
            (old, new)
        })
}

fn apply_ours(
    patch_text: &[u8],
    old: &FileMap,
) -> Result<BTreeMap<TreePath, Vec<u8>>, TestCaseError> {
    let patch = diff::parse(patch_text, "prop.diff").map_err(|e| {
        TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(patch_text)))
    })?;
    let mut mem = Mem(contents(old));
    let changes = patch.apply(&mut mem).map_err(|e| {
        TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(patch_text)))
    })?;
    mem.commit(changes);
    Ok(mem.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn our_diff_then_our_apply_gives_new((old, new) in sets()) {
        let text = diff::unified(&old, &new, &UnifiedOptions::default());
        prop_assert_eq!(apply_ours(&text, &old)?, contents(&new));
    }
}

proptest! {
    // Each case runs GNU diff and GNU patch: few cases keep the suite fast.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn gnu_patch_and_gnu_diff_agree_with_us((old, new) in sets()) {
        require("diff", "diffutils");
        require("patch", "patch");
        let text = diff::unified(&old, &new, &UnifiedOptions::default());
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        write_tree(&a, &old);
        write_tree(&b, &new);
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        if !text.is_empty() {
            let out = gnu_patch(&a, &text, false);
            prop_assert!(
                out.status.success(),
                "GNU patch refused:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&text)
            );
        }
        prop_assert_eq!(contents(&read_tree(&a)), contents(&new));

        // GNU diff of the same sets (fresh copy of old), applied by us.
        let a2 = dir.path().join("a2");
        write_tree(&a2, &old);
        std::fs::create_dir_all(&a2).unwrap();
        let gnu = gnu_diff(dir.path(), "a2", "b");
        if !gnu.is_empty() {
            prop_assert_eq!(apply_ours(&gnu, &old)?, contents(&new));
        }
    }
}

/// Lines from a tiny alphabet, so that contexts repeat and hunks can match
/// at several offsets.
fn lines_text() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop::sample::select(vec!["x\n", "y\n", "z\n", "w\n", "v\n", "u\n"]),
        0..40,
    )
    .prop_map(|v| v.into_iter().map(|s| s.as_bytes().to_vec()).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A patch applied to a file that has drifted from the one it was made
    /// against: GNU `patch -F0` and we agree on whether it applies, and on
    /// the result when it does (offsets, start- and end-anchored hunks).
    #[test]
    fn drifted_targets_agree_with_gnu_patch(
        old in lines_text(),
        edits in prop::collection::vec((any::<u8>(), 0u8..3, lines_text()), 1..4),
        drift in prop::collection::vec((any::<u8>(), 0u8..3, lines_text()), 0..3),
    ) {
        require("patch", "patch");
        let splice = |base: &[Vec<u8>], ops: &[(u8, u8, Vec<Vec<u8>>)]| {
            let mut v = base.to_vec();
            for (at, rm, ins) in ops {
                let at = usize::from(*at) * v.len() / 256;
                let end = (at + usize::from(*rm)).min(v.len());
                v.splice(at..end, ins.iter().take(3).cloned());
            }
            v.concat()
        };
        let old_c = old.concat();
        let new_c = splice(&old, &edits);
        prop_assume!(!old_c.is_empty() && !new_c.is_empty() && old_c != new_c);
        let target = splice(&old, &drift);
        prop_assume!(!target.is_empty());
        let fv = |content| FileVersion { content, mtime: 1_000_000_000, mtime_nsec: 0 };
        let text = diff::unified(
            &FileMap::from([(tp("f"), fv(old_c))]),
            &FileMap::from([(tp("f"), fv(new_c))]),
            &UnifiedOptions::default(),
        );
        let patch = diff::parse(&text, "drift.diff").unwrap();
        let mut mem = Mem(BTreeMap::from([(tp("f"), target.clone())]));
        let ours = patch.apply(&mut mem).map(|c| {
            mem.commit(c);
            mem.0[&tp("f")].clone()
        });

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), &target).unwrap();
        let out = gnu_patch(dir.path(), &text, false);
        match ours {
            Ok(content) => {
                prop_assert!(out.status.success(), "GNU failed where we applied:\n{}", String::from_utf8_lossy(&out.stdout));
                prop_assert_eq!(content, std::fs::read(dir.path().join("f")).unwrap());
            }
            Err(e) => prop_assert!(!out.status.success(), "we failed ({}) where GNU applied:\n{}", e, String::from_utf8_lossy(&out.stdout)),
        }
    }
}
