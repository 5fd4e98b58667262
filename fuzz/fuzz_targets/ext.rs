//! ext2/3/4 images: open the input as a volume and emit the whole tree
//! into a sink that drains every file, with a cap on the work one input
//! may cause.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{self, Read, Seek, Write};
use vm_container::ext::Volume;
use vm_container::tree::{Entry, FnSink, Kind, Source, TreePath};

/// A sparse file may legally claim terabytes that read back as zeros and
/// the reader streams them (see fuzz/README.md), so the target refuses
/// files above this size and stops after this much content overall.
/// Directories need no cap: the reader bounds them by the image size.
const MAX_FILE: u64 = 8 << 20;
const MAX_TOTAL: u64 = 32 << 20;
const MAX_ENTRIES: u64 = 100_000;

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::tempfile().expect("temp file");
    f.write_all(data).expect("write image");
    f.rewind().expect("rewind");
    let Ok(mut vol) = Volume::open(f) else {
        return;
    };
    let _ = vol.label();
    let _ = vol.has_journal();
    if let Ok(list) = vol.read_dir(&TreePath::root()) {
        for e in list.iter().take(64) {
            let p = TreePath::root().join(&e.name);
            let _ = vol.stat(&p);
            let _ = vol.readlink(&p);
            if e.size <= MAX_FILE {
                if let Ok(mut r) = vol.read_file(&p) {
                    let _ = io::copy(&mut r, &mut io::sink());
                }
            }
        }
    }
    let mut total = 0u64;
    let mut entries = 0u64;
    let mut sink = FnSink(|e: &Entry, r: &mut dyn Read| {
        entries += 1;
        if entries > MAX_ENTRIES {
            return Err(io::Error::other("fuzz: too many entries"));
        }
        if let Kind::File { size } = e.kind {
            if size > MAX_FILE || total + size > MAX_TOTAL {
                return Err(io::Error::other("fuzz: size cap"));
            }
            total += io::copy(r, &mut io::sink())?;
        }
        Ok(())
    });
    let _ = vol.emit(&mut sink);
});
