//! SHA-256 digests as they appear in pins, cache addresses and error messages.

use crate::bytes::all_zero;
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

/// A digest of file content that is the same whether runs of zeros are
/// stored or left as holes. Aligned chunks of [`ContentDigest::CHUNK`]
/// bytes that are all zero do not enter the hash (each other chunk enters
/// with its index; the size comes last), so a sparse file in an image is
/// digested in time proportional to its data, and its digest equals that
/// of the same bytes read from an archive or a host file. Not a SHA-256 of
/// the bytes: compare it only with its own kind.
#[derive(Clone)]
pub struct ContentDigest {
    hasher: Sha256,
    chunk: Vec<u8>,
    index: u64,
    size: u64,
}

impl Default for ContentDigest {
    fn default() -> Self {
        ContentDigest {
            hasher: Sha256::new(),
            chunk: Vec::with_capacity(Self::CHUNK),
            index: 0,
            size: 0,
        }
    }
}

impl ContentDigest {
    pub const CHUNK: usize = 64 * 1024;

    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = (Self::CHUNK - self.chunk.len()).min(bytes.len());
            self.chunk.extend_from_slice(&bytes[..take]);
            self.size += take as u64;
            bytes = &bytes[take..];
            if self.chunk.len() == Self::CHUNK {
                self.flush();
            }
        }
    }

    /// `n` zero bytes, as from a hole: whole chunks cost nothing.
    pub fn zeros(&mut self, mut n: u64) {
        let chunk = Self::CHUNK as u64;
        if !self.chunk.is_empty() {
            let take = (chunk - self.chunk.len() as u64).min(n);
            self.chunk.resize(self.chunk.len() + take as usize, 0);
            self.size += take;
            n -= take;
            if self.chunk.len() == Self::CHUNK {
                self.flush();
            }
        }
        if n == 0 {
            return;
        }
        // the chunk buffer is empty here: skip whole chunks, keep the rest
        self.index += n / chunk;
        self.size += n - n % chunk;
        self.chunk.resize((n % chunk) as usize, 0);
        self.size += n % chunk;
    }

    fn flush(&mut self) {
        if !all_zero(&self.chunk) {
            self.hasher.update(self.index.to_le_bytes());
            self.hasher.update(&self.chunk);
        }
        self.index += 1;
        self.chunk.clear();
    }

    /// The digest and the size in bytes.
    pub fn finish(mut self) -> (Digest, u64) {
        if !self.chunk.is_empty() {
            self.flush();
        }
        self.hasher.update(self.size.to_le_bytes());
        (Digest(self.hasher.finalize().into()), self.size)
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

    #[test]
    fn content_digest_ignores_how_zeros_arrive() {
        use super::ContentDigest;
        const C: usize = ContentDigest::CHUNK;
        // data, a hole across chunk borders, data, a trailing hole
        let mut bytes = vec![0u8; 5 * C + 123];
        bytes[10] = 1;
        bytes[3 * C + 7] = 2;
        bytes[3 * C + 9000] = 3;
        let whole = {
            let mut d = ContentDigest::default();
            d.update(&bytes);
            d.finish()
        };
        assert_eq!(whole.1, bytes.len() as u64);
        for cut in [11, 100, C - 1, C, C + 1, 3 * C] {
            let mut d = ContentDigest::default();
            d.update(&bytes[..11]);
            d.zeros((cut - 11) as u64);
            d.update(&bytes[cut..3 * C + 9001]);
            d.zeros((bytes.len() - (3 * C + 9001)) as u64);
            assert_eq!(d.finish(), whole, "cut at {cut}");
        }
        // in small pieces
        let mut d = ContentDigest::default();
        for piece in bytes.chunks(777) {
            d.update(piece);
        }
        assert_eq!(d.finish(), whole);
        // any byte changed, or the size, changes the digest
        let mut other = bytes.clone();
        other[4 * C] = 9;
        let mut d = ContentDigest::default();
        d.update(&other);
        assert_ne!(d.finish().0, whole.0);
        let mut d = ContentDigest::default();
        d.update(&bytes);
        d.zeros(1);
        assert_ne!(d.finish().0, whole.0);
        // a moved byte too (chunks carry their index)
        let mut d = ContentDigest::default();
        d.zeros(C as u64);
        d.update(&bytes[..C]);
        d.zeros((bytes.len() - 2 * C) as u64);
        let mut e = ContentDigest::default();
        e.update(&bytes[..C]);
        e.zeros((bytes.len() - C) as u64);
        assert_ne!(d.finish(), e.finish());
    }
}
