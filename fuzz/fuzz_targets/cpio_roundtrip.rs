//! Whatever tree the cpio reader accepts, the writer writes (a fork is
//! exactly this) and the reader reads back identical: same entries, kinds,
//! metadata, content and hard-link groups.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vm_container::cpio::{Reader, Writer};
use vm_container::tree::manifest::{differences, manifest};
use vm_container::tree::Source;

fuzz_target!(|data: &[u8]| {
    // the reader's view (inputs are at most 64 KiB: a gzip member expands
    // to about 64 MiB at most)
    let Ok(want) = manifest(&mut Reader::new(data, "fuzz.cpio")) else {
        return;
    };
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out, "fork.cpio");
    if Reader::new(data, "fuzz.cpio").emit(&mut w).is_err() {
        // the writer may refuse (a name or size newc cannot hold)
        return;
    }
    if w.finish().is_err() {
        return;
    }
    let got = manifest(&mut Reader::new(&out[..], "fork.cpio")).expect("our own output reads back");
    let diff = differences(&want, &got);
    assert!(diff.is_empty(), "round trip changed the tree: {diff:?}");
});
