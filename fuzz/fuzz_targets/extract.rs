//! cpio archives expanded into a host directory, as `[populate dir]` does:
//! whatever the archive names (`..`, absolute paths, members through
//! symlinks it made, hard links to anywhere), nothing may appear outside
//! the target. The target starts with a symlink to a sibling directory,
//! `escape -> ../outside`, for archives to try their luck with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{self, Read};
use vm_container::cpio::Reader;
use vm_container::hostdir::Extractor;
use vm_container::tree::{Entry, Sink, Source};

/// Written data stops here: inputs are small, but a gzip member expands
/// about 1000:1 and every byte goes to disk.
const MAX_OUT: u64 = 8 << 20;

struct Capped<'a> {
    inner: &'a mut Extractor,
    left: u64,
}

impl Sink for Capped<'_> {
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> io::Result<()> {
        if let vm_container::tree::Kind::File { size } = entry.kind {
            if size > self.left {
                return Err(io::Error::other("fuzz: output cap"));
            }
            self.left -= size;
        }
        self.inner.put(entry, data)
    }
}

fuzz_target!(|data: &[u8]| {
    let base = tempfile::tempdir().expect("temp dir");
    let target = base.path().join("target");
    let outside = base.path().join("outside");
    std::fs::create_dir(&target).expect("target");
    std::fs::create_dir(&outside).expect("outside");
    std::os::unix::fs::symlink("../outside", target.join("escape")).expect("symlink");
    if let Ok(mut x) = Extractor::new(&target) {
        let mut sink = Capped {
            inner: &mut x,
            left: MAX_OUT,
        };
        let _ = Reader::new(data, "fuzz.cpio").emit(&mut sink);
        let _ = x.finish();
    }
    let mut names: Vec<_> = std::fs::read_dir(base.path())
        .expect("list base")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["outside", "target"], "written beside the target");
    let written: Vec<_> = std::fs::read_dir(&outside)
        .expect("list outside")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        written.is_empty(),
        "written outside the target: {written:?}"
    );
});
