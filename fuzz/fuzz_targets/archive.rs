//! Any archive the sources accept, sniffed by content: cpio or tar, raw or
//! gzip, xz, zstd or bzip2, streamed into a sink that reads every file's
//! data and steps over the holes of sparse members.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{self, Read};
use vm_container::tree::{Dense, Entry, Sink, Source, SparseRead};

/// Data read at the most, holes not counted: a compressed input of a few
/// KB may still expand far.
const MAX_OUT: u64 = 64 << 20;

struct Drain {
    total: u64,
    buf: Vec<u8>,
}

impl Sink for Drain {
    fn put(&mut self, e: &Entry, data: &mut dyn Read) -> io::Result<()> {
        self.put_sparse(e, &mut Dense(data))
    }

    fn put_sparse(&mut self, _e: &Entry, data: &mut dyn SparseRead) -> io::Result<()> {
        loop {
            let hole = data.skip_hole()?;
            let n = data.read(&mut self.buf)?;
            if n == 0 && hole == 0 {
                return Ok(());
            }
            self.total += n as u64;
            if self.total >= MAX_OUT {
                return Err(io::Error::other("fuzz: output cap"));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut src) = vm_container::archive::open(io::Cursor::new(data.to_vec()), "fuzz") else {
        return;
    };
    let mut sink = Drain {
        total: 0,
        buf: vec![0; 64 * 1024],
    };
    let _ = src.emit(&mut sink);
});
