//! Damaged images are refused with errors, never panics or hangs.

use crate::ext_common;

use ext_common::*;
use proptest::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use vm_container::ext::{Populator, Volume};
use vm_container::tree::manifest::manifest;
use vm_container::tree::{Kind, Source};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn damaged_metadata_never_panics(flips in prop::collection::vec((prop_oneof![1024u64..2048, 2048u64..3072, 0u64..(300 * 1024)], any::<u8>()), 1..40)) {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("img");
        let mut t = MemTree::new();
        t.dir("d", 0o755, 0, 0, 1);
        for i in 0..40 {
            t.file(&format!("d/f{i}"), Content::Pattern { size: 20_000, seed: i, hole_every: 0 }, 0o644, 0, 0, 1);
        }
        t.add("d/l", Kind::Symlink { target: vec![b'x'; 100] }, 0o777, 0, 0, 1);
        // ext2 keeps all metadata within the first 300 KiB
        build(opts(4 << 20, 1024, false), &mut t, &img).unwrap();
        let f = File::options().read(true).write(true).open(&img).unwrap();
        for (off, v) in flips {
            f.write_all_at(&[v], off).unwrap();
        }
        if let Ok(mut v) = Volume::open(File::open(&img).unwrap()) {
            let _ = manifest(&mut v);
        }
        // adding to the damaged volume fails or succeeds, but never panics
        if let Ok(v) = Volume::open_rw(File::options().read(true).write(true).open(&img).unwrap()) {
            if let Ok(mut p) = Populator::new(&v, 5) {
                let mut add = MemTree::new();
                add.file("d/f3", Content::Bytes(b"new".to_vec()), 0o644, 0, 0, 2);
                add.file("d/new/x", Content::Pattern { size: 30_000, seed: 1, hole_every: 0 }, 0o644, 0, 0, 2);
                add.add("d/hl", Kind::HardLink { target: vm_container::tree::TreePath::from_member(b"d/f7").unwrap() }, 0, 0, 0, 0);
                if add.emit(&mut p).is_ok() {
                    let _ = p.finish();
                }
            }
        }
    }
}
