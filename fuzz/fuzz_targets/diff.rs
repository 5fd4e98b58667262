//! Unified diffs: parse, then apply to a small fixed set of files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use vm_container::diff::{self, FileSet};
use vm_container::tree::TreePath;

struct Files(BTreeMap<TreePath, Vec<u8>>);

impl FileSet for Files {
    fn read(&self, path: &TreePath) -> Option<Vec<u8>> {
        self.0.get(path).cloned()
    }
}

fn files() -> Files {
    let mut m = BTreeMap::new();
    let mut add = |p: &str, c: &str| {
        m.insert(
            TreePath::from_member(p.as_bytes()).unwrap(),
            c.as_bytes().to_vec(),
        );
    };
    add("etc/HOSTNAME", "base\n");
    add(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nbin:x:1:1:bin:/bin:/bin/false\n",
    );
    add("etc/motd", "one\ntwo\nthree\nfour\nfive\nsix\nseven\n");
    add("etc/empty", "");
    add("etc/nonl", "no newline");
    Files(m)
}

fuzz_target!(|data: &[u8]| {
    let Ok(patch) = diff::parse(data, "fuzz.patch") else {
        return;
    };
    let _ = patch.paths();
    let _ = patch.unsupported().count();
    let _ = patch.mode_changes().count();
    let mut f = files();
    let _ = patch.apply(&mut f);
    let _ = patch.apply_stripped(&f, 0);
});
