//! cpio archives, raw or gzip (the reader sniffs the magic), streamed into
//! a sink that drains every file's data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{self, Read};
use vm_container::cpio::Reader;
use vm_container::tree::{FnSink, Source};

/// A hostile gzip member expands ~1000:1; libFuzzer inputs are at most a
/// few KB, so draining stays cheap, but stop after this many bytes anyway.
const MAX_OUT: u64 = 64 << 20;

fuzz_target!(|data: &[u8]| {
    let mut total = 0u64;
    let mut sink = FnSink(|_e: &vm_container::tree::Entry, r: &mut dyn Read| {
        let n = io::copy(&mut r.take(MAX_OUT - total.min(MAX_OUT)), &mut io::sink())?;
        total += n;
        if total >= MAX_OUT {
            return Err(io::Error::other("fuzz: output cap"));
        }
        Ok(())
    });
    let _ = Reader::new(data, "fuzz.cpio").emit(&mut sink);
});
