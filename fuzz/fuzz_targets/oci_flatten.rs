//! The OCI layer flattener on up to three layers of any archive bytes:
//! the first byte gives the count (`% 3 + 1`), then each layer but the
//! last its length in 3 bytes (little endian); the rest is the last. Whatever the
//! layers hold, the flattened tree names each path once, never a
//! whiteout, and a hard link only names a file emitted before it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::io::{self, Read};
use vm_container::oci::flatten::{flatten, WHITEOUT};
use vm_container::tree::{Entry, Kind, Sink, Source, TreePath};

/// Data read at the most: a compressed input of a few KB may expand far.
const MAX_OUT: u64 = 64 << 20;

#[derive(Default)]
struct Check {
    seen: HashSet<TreePath>,
    files: HashSet<TreePath>,
    total: u64,
}

impl Sink for Check {
    fn put(&mut self, e: &Entry, data: &mut dyn Read) -> io::Result<()> {
        assert!(self.seen.insert(e.path.clone()), "{} twice", e.path);
        assert!(
            !e.path.components().any(|c| c.starts_with(WHITEOUT)),
            "whiteout {} in the result",
            e.path
        );
        match &e.kind {
            Kind::HardLink { target } => assert!(self.files.contains(target), "{} → {target}", e.path),
            Kind::File { .. } => {
                self.files.insert(e.path.clone());
            }
            _ => {
                self.files.remove(&e.path);
            }
        }
        let n = io::copy(&mut data.take(MAX_OUT), &mut io::sink())?;
        self.total += n;
        if self.total >= MAX_OUT {
            return Err(io::Error::other("fuzz: output cap"));
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(first % 3) + 1;
    let mut layers: Vec<Vec<u8>> = Vec::with_capacity(count);
    for _ in 1..count {
        let Some((len, tail)) = rest.split_first_chunk::<3>() else {
            return;
        };
        let len = (usize::from(len[0]) | usize::from(len[1]) << 8 | usize::from(len[2]) << 16)
            .min(tail.len());
        layers.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    layers.push(rest.to_vec());
    let mut open = |i: usize| -> io::Result<(Box<dyn Source>, String)> {
        let name = format!("layer {i}");
        let a = vm_container::archive::open(io::Cursor::new(layers[i].clone()), &name)?;
        Ok((Box::new(a), name))
    };
    let _ = flatten(count, &mut open, &mut Check::default());
});
