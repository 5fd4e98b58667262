//! Where several minimal diffs exist, GNU diff's choice among them comes
//! from its search order, its discarding of lines that cannot match and
//! its sliding of changes over equal lines. We follow the same rules, so
//! even on inputs made of few distinct lines (the worst case for ties)
//! our output is byte-equal to `diff -ruN` almost always, and GNU patch
//! accepts it always.

use crate::diff_common;

use diff_common::*;
use vm_container::diff::{self, FileMap, FileVersion, UnifiedOptions};

#[test]
fn byte_equal_to_gnu_diff_on_tie_heavy_inputs() {
    require("diff", "diffutils");
    require("patch", "patch");
    let mut rng = Lcg(99);
    let cases = 150;
    let mut same = 0;
    for case in 0..cases {
        let gen = |rng: &mut Lcg| -> Vec<u8> {
            let n = rng.below(20);
            (0..n)
                .map(|_| ["a\n", "b\n", "c\n", "d\n", "\n"][rng.below(5)])
                .collect::<String>()
                .into_bytes()
        };
        let o = gen(&mut rng);
        let mut lines: Vec<&[u8]> = o.split_inclusive(|&b| b == b'\n').collect();
        let ins = gen(&mut rng);
        let at = rng.below(lines.len() + 1);
        let rm = rng.below(3).min(lines.len() - at);
        lines.splice(at..at + rm, ins.split_inclusive(|&b| b == b'\n'));
        let n = lines.concat();
        let fv = |content| FileVersion {
            content,
            mtime: 1,
            mtime_nsec: 0,
        };
        let dir = tempfile::tempdir().unwrap();
        write_tree(&dir.path().join("a"), &FileMap::from([(tp("f"), fv(o))]));
        write_tree(&dir.path().join("b"), &FileMap::from([(tp("f"), fv(n))]));
        let old = read_tree(&dir.path().join("a"));
        let new = read_tree(&dir.path().join("b"));
        let ours = diff::unified(&old, &new, &UnifiedOptions::default());
        let gnu = gnu_diff(dir.path(), "a", "b");
        if ours == gnu {
            same += 1;
        } else {
            let out = gnu_patch(&dir.path().join("a"), &ours, false);
            assert!(out.status.success(), "case {case}: GNU patch refused ours");
            assert_eq!(
                contents(&read_tree(&dir.path().join("a"))),
                contents(&new),
                "case {case}"
            );
        }
    }
    assert!(
        same * 100 >= cases * 90,
        "only {same} of {cases} diffs byte-equal to GNU diff"
    );
}
