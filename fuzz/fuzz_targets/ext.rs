//! ext2/3/4 images: open the input as a volume, read the root directory's
//! files by path, and emit the whole tree into a sink that digests every
//! file the way `diff` does (stepping over holes), with a cap on the data
//! one input may make the reader produce.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{self, Read, Seek, Write};
use vm_container::digest::{all_zero, ContentDigest};
use vm_container::ext::Volume;
use vm_container::tree::{Entry, Sink, Source, SparseRead, TreePath};

/// Holes cost nothing (they are stepped over) and a walk reads no more
/// blocks than the volume claims, but a claim of 2^32 blocks is only
/// checked against the file by reading: stop after this much data.
const MAX_TOTAL: u64 = 32 << 20;
const MAX_ENTRIES: u64 = 100_000;

struct Drain {
    total: u64,
    entries: u64,
    buf: Vec<u8>,
}

impl Drain {
    fn file(&mut self, r: &mut dyn SparseRead) -> io::Result<()> {
        let mut d = ContentDigest::default();
        loop {
            let n = r.read(&mut self.buf)?;
            if n == 0 {
                break;
            }
            self.total += n as u64;
            if self.total > MAX_TOTAL {
                return Err(io::Error::other("fuzz: data cap"));
            }
            d.update(&self.buf[..n]);
            if all_zero(&self.buf[..n]) {
                d.zeros(r.skip_hole()?);
            }
        }
        let _ = d.finish();
        Ok(())
    }
}

impl Sink for Drain {
    fn put(&mut self, _e: &Entry, r: &mut dyn Read) -> io::Result<()> {
        self.entries += 1;
        if self.entries > MAX_ENTRIES {
            return Err(io::Error::other("fuzz: too many entries"));
        }
        // not a sparse file: ext emits files through put_sparse
        let n = io::copy(&mut r.take(MAX_TOTAL), &mut io::sink())?;
        self.total += n;
        Ok(())
    }

    fn put_sparse(&mut self, _e: &Entry, r: &mut dyn SparseRead) -> io::Result<()> {
        self.entries += 1;
        if self.entries > MAX_ENTRIES {
            return Err(io::Error::other("fuzz: too many entries"));
        }
        self.file(r)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::tempfile().expect("temp file");
    f.write_all(data).expect("write image");
    f.rewind().expect("rewind");
    let Ok(mut vol) = Volume::open(f) else {
        return;
    };
    let _ = vol.label();
    let _ = vol.has_journal();
    let mut sink = Drain {
        total: 0,
        entries: 0,
        buf: vec![0; 64 * 1024],
    };
    if let Ok(list) = vol.read_dir(&TreePath::root()) {
        for e in list.iter().take(64) {
            let p = TreePath::root().join(&e.name);
            let _ = vol.stat(&p);
            let _ = vol.readlink(&p);
            if let Ok(mut r) = vol.read_file(&p) {
                let _ = sink.file(&mut r);
            }
        }
    }
    sink.total = 0;
    sink.entries = 0;
    let _ = vol.emit(&mut sink);
});
