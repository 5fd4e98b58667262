//! SHA-256 digests as they appear in pins, cache addresses and error messages.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Parses exactly 64 hexadecimal digits (either case).
    pub fn from_hex(text: &str) -> Option<Digest> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (hex_value(*hi)?, hex_value(*lo)?),
                _ => return None,
            };
            *slot = (hi << 4) | lo;
        }
        Some(Digest(out))
    }

    /// Lower-case hexadecimal form, 64 characters.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// Digest of everything `reader` yields, read in bounded chunks.
    pub fn of_reader(reader: &mut impl Read) -> io::Result<(Digest, u64)> {
        let mut hasher = HashingWriter::new(io::sink());
        let bytes = io::copy(reader, &mut hasher)?;
        let (_, digest, _) = hasher.finish();
        Ok((digest, bytes))
    }

    /// Digest of a whole file, streamed.
    pub fn of_file(path: &std::path::Path) -> io::Result<(Digest, u64)> {
        let mut file = std::fs::File::open(path)?;
        Digest::of_reader(&mut file)
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

/// A writer that hashes and counts what passes through it on the way to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the digest and the byte count of everything written.
    pub fn finish(self) -> (W, Digest, u64) {
        (
            self.inner,
            Digest(self.hasher.finalize().into()),
            self.bytes,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or(buf);
        self.hasher.update(written);
        self.bytes = self.bytes.saturating_add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let d = Digest::from_hex(hex).unwrap();
        assert_eq!(d.to_hex(), hex);
        assert_eq!(Digest::from_hex(&hex.to_uppercase()), Some(d));
        assert_eq!(Digest::from_hex(&hex[..63]), None);
        assert_eq!(Digest::from_hex(&format!("{}g", &hex[..63])), None);
        let (empty, n) = Digest::of_reader(&mut io::empty()).unwrap();
        assert_eq!((empty, n), (d, 0));
    }
}
