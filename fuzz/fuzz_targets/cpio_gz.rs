//! The same cpio parser, reached through the gzip decoder: the input is
//! compressed first so that mutations act on the archive, not on deflate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{self, Read, Write};
use vm_container::cpio::Reader;
use vm_container::tree::{FnSink, Source};

fuzz_target!(|data: &[u8]| {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    let packed = gz.finish().unwrap();
    let mut sink = FnSink(|_e: &vm_container::tree::Entry, r: &mut dyn Read| {
        io::copy(r, &mut io::sink()).map(|_| ())
    });
    let _ = Reader::new(&packed[..], "fuzz.cpio.gz").emit(&mut sink);
});
