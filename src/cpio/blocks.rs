//! Turning a complete raw deflate stream into one piece of a longer one.
//!
//! A whole-buffer compressor ends its stream: its last block carries the
//! BFINAL bit and the stream stops mid-byte. [`unfinish`] walks the blocks
//! (headers, Huffman tables and symbols, without producing any output) to
//! find where the last block starts and where the stream ends, clears that
//! bit, and appends an empty stored block, which leaves the stream on a
//! byte boundary: what zlib's sync flush writes. The next piece may then
//! follow byte for byte.

use std::io;

/// Widest Huffman code in deflate.
const MAX_BITS: usize = 15;
/// Codes up to this long are looked up in one step; longer ones (rare:
/// a long code is a rare symbol) are decoded bit by bit.
const FAST_BITS: u32 = 10;

/// Extra bits of the length symbols 257..=285.
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Extra bits of the distance symbols 0..=29.
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order in which a dynamic block lists its code-length code.
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("deflate stream: {what}"),
    )
}

/// A canonical Huffman code: `fast` is indexed by the next [`FAST_BITS`]
/// bits of input, each entry `length << 9 | symbol` or 0 where no code
/// that short matches; `count` and `sorted` decode the rest as puff.c
/// does.
struct Table {
    fast: Vec<u16>,
    count: [u16; MAX_BITS + 1],
    sorted: Vec<u16>,
}

impl Table {
    fn new() -> Table {
        Table {
            fast: vec![0; 1 << FAST_BITS],
            count: [0; MAX_BITS + 1],
            sorted: Vec::with_capacity(288),
        }
    }

    fn build(&mut self, lengths: &[u8]) -> io::Result<()> {
        self.count = [0; MAX_BITS + 1];
        for &l in lengths {
            self.count[usize::from(l)] += 1;
        }
        self.count[0] = 0;
        // over-subscribed codes are refused; incomplete ones are allowed
        let mut left: i32 = 1;
        for &c in &self.count[1..] {
            left = left * 2 - i32::from(c);
            if left < 0 {
                return Err(bad("over-subscribed Huffman code"));
            }
        }
        // symbols in code order, and each length's first code
        let mut offs = [0usize; MAX_BITS + 2];
        let mut next = [0u32; MAX_BITS + 2];
        for len in 1..=MAX_BITS {
            offs[len + 1] = offs[len] + usize::from(self.count[len]);
            next[len + 1] = (next[len] + u32::from(self.count[len])) << 1;
        }
        self.sorted.clear();
        self.sorted.resize(offs[MAX_BITS + 1], 0);
        self.fast.fill(0);
        for (sym, &l) in lengths.iter().enumerate() {
            let len = usize::from(l);
            if len == 0 {
                continue;
            }
            self.sorted[offs[len]] = sym as u16;
            offs[len] += 1;
            let code = next[len];
            next[len] += 1;
            if len as u32 <= FAST_BITS {
                // deflate sends a code from its first bit: index reversed
                let first = (code.reverse_bits() >> (32 - len)) as usize;
                let entry = ((len as u16) << 9) | sym as u16;
                for slot in self.fast.iter_mut().skip(first).step_by(1 << len) {
                    *slot = entry;
                }
            }
        }
        Ok(())
    }

    /// The symbol that `bits` (least significant first) start with, and
    /// its length.
    #[inline(always)]
    fn decode(&self, bits: u64) -> io::Result<(u16, u32)> {
        let e = self.fast[(bits & ((1 << FAST_BITS) - 1)) as usize];
        if e != 0 {
            return Ok((e & 0x1ff, u32::from(e >> 9)));
        }
        self.decode_long(bits)
    }

    #[inline(never)]
    fn decode_long(&self, bits: u64) -> io::Result<(u16, u32)> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        let mut bits = bits;
        for len in 1..=MAX_BITS {
            code |= (bits & 1) as i32;
            bits >>= 1;
            let count = i32::from(self.count[len]);
            if code - first < count {
                return Ok((self.sorted[(index + code - first) as usize], len as u32));
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(bad("no Huffman code matches"))
    }
}

/// Reads bits least significant first, past the end as zeros (the walk
/// checks it did not go past the end).
struct Bits<'a> {
    data: &'a [u8],
    pos: u64,
}

impl Bits<'_> {
    /// At least 57 bits from the current position.
    fn peek(&self) -> u64 {
        let byte = (self.pos >> 3) as usize;
        let mut word = [0u8; 8];
        match self.data.get(byte..byte + 8) {
            Some(s) => word.copy_from_slice(s),
            None => {
                let rest = self.data.get(byte..).unwrap_or_default();
                word[..rest.len()].copy_from_slice(rest);
            }
        }
        u64::from_le_bytes(word) >> (self.pos & 7)
    }

    fn take(&mut self, n: u32) -> u32 {
        let v = (self.peek() & ((1u64 << n) - 1)) as u32;
        self.pos += u64::from(n);
        v
    }

    fn symbol(&mut self, t: &Table) -> io::Result<u16> {
        let (sym, len) = t.decode(self.peek())?;
        self.pos += u64::from(len);
        Ok(sym)
    }

    fn past_end(&self) -> bool {
        self.pos > self.data.len() as u64 * 8
    }
}

/// The tables one walk reuses from block to block.
struct Walk {
    lit: Table,
    dist: Table,
    lengths: Table,
}

impl Walk {
    fn fixed(&mut self) -> io::Result<()> {
        let mut l = [0u8; 288];
        l[..144].fill(8);
        l[144..256].fill(9);
        l[256..280].fill(7);
        l[280..].fill(8);
        self.lit.build(&l)?;
        self.dist.build(&[5; 30])
    }

    fn dynamic(&mut self, b: &mut Bits) -> io::Result<()> {
        let hlit = b.take(5) as usize + 257;
        let hdist = b.take(5) as usize + 1;
        let hclen = b.take(4) as usize + 4;
        if hlit > 286 || hdist > 30 {
            return Err(bad("too many length or distance codes"));
        }
        let mut cl = [0u8; 19];
        for &i in &CL_ORDER[..hclen] {
            cl[i] = b.take(3) as u8;
        }
        self.lengths.build(&cl)?;
        let mut l = [0u8; 286 + 30];
        let mut i = 0;
        while i < hlit + hdist {
            let sym = b.symbol(&self.lengths)?;
            let (value, times) = match sym {
                0..=15 => (sym as u8, 1),
                16 => {
                    let prev = *l
                        .get(i.wrapping_sub(1))
                        .ok_or_else(|| bad("repeat with no length before it"))?;
                    (prev, 3 + b.take(2) as usize)
                }
                17 => (0, 3 + b.take(3) as usize),
                _ => (0, 11 + b.take(7) as usize),
            };
            if i + times > hlit + hdist {
                return Err(bad("code lengths overrun"));
            }
            l[i..i + times].fill(value);
            i += times;
            if b.past_end() {
                return Err(bad("truncated"));
            }
        }
        if l[256] == 0 {
            return Err(bad("no end-of-block code"));
        }
        self.lit.build(&l[..hlit])?;
        self.dist.build(&l[hlit..hlit + hdist])
    }

    /// Skips the symbols of a Huffman block up to its end-of-block code.
    /// A length, its extra bits, a distance and its extra bits take at
    /// most 48 bits: one peek serves each step.
    fn symbols(&self, b: &mut Bits) -> io::Result<()> {
        loop {
            if b.past_end() {
                return Err(bad("truncated"));
            }
            let mut bits = b.peek();
            let (sym, n) = self.lit.decode(bits)?;
            let mut used = n;
            if sym > 256 {
                let len_extra = u32::from(
                    *LEN_EXTRA
                        .get(usize::from(sym - 257))
                        .ok_or_else(|| bad("bad length symbol"))?,
                );
                bits >>= n + len_extra;
                let (d, n) = self.dist.decode(bits)?;
                let dist_extra = u32::from(
                    *DIST_EXTRA
                        .get(usize::from(d))
                        .ok_or_else(|| bad("bad distance symbol"))?,
                );
                used += len_extra + n + dist_extra;
            } else if sym == 256 {
                b.pos += u64::from(used);
                return Ok(());
            }
            b.pos += u64::from(used);
        }
    }
}

/// The bit offsets where the last block of the complete raw deflate
/// stream `data` starts and where the stream ends.
fn last_block(data: &[u8]) -> io::Result<(u64, u64)> {
    let mut w = Walk {
        lit: Table::new(),
        dist: Table::new(),
        lengths: Table::new(),
    };
    let mut b = Bits { data, pos: 0 };
    loop {
        let start = b.pos;
        let last = b.take(1) == 1;
        match b.take(2) {
            0 => {
                b.pos = b.pos.div_ceil(8) * 8;
                let len = b.take(16);
                if b.take(16) != !len & 0xffff {
                    return Err(bad("stored block length check failed"));
                }
                b.pos += u64::from(len) * 8;
            }
            1 => {
                w.fixed()?;
                w.symbols(&mut b)?;
            }
            2 => {
                w.dynamic(&mut b)?;
                w.symbols(&mut b)?;
            }
            _ => return Err(bad("reserved block type")),
        }
        if b.past_end() {
            return Err(bad("truncated"));
        }
        if last {
            return Ok((start, b.pos));
        }
    }
}

/// Makes the complete raw deflate stream in `stream` not the end of the
/// data: its last block is marked as not last, and an empty stored block
/// brings it to a byte boundary. Bytes after the stream are dropped.
pub fn unfinish(stream: &mut Vec<u8>) -> io::Result<()> {
    let (last, end) = last_block(stream)?;
    stream[(last / 8) as usize] &= !(1u8 << (last % 8));
    stream.truncate(end.div_ceil(8) as usize);
    let used = (end % 8) as u32;
    if used != 0 {
        if let Some(b) = stream.last_mut() {
            *b &= (1u8 << used) - 1;
        }
    }
    // the stored block's 3 header bits (all zero), in what is left of
    // the last byte or in a new one, then its zero length
    if used == 0 || used > 5 {
        stream.push(0);
    }
    stream.extend_from_slice(&[0, 0, 0xff, 0xff]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn raw(data: &[u8], level: i32) -> Vec<u8> {
        let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
        let mut out = vec![0; c.deflate_compress_bound(data.len())];
        let n = c.deflate_compress(data, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::DeflateDecoder::new(stream)
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    fn noise(len: usize, mut x: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn pieces_join_into_one_stream() {
        // stored, fixed and dynamic blocks, ends at every bit offset
        let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog\n"
            .iter()
            .copied()
            .cycle()
            .take(300_000)
            .collect();
        let inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"a".to_vec(),
            b"ab".to_vec(),
            text.clone(),
            noise(70_000, 7),
            [noise(5000, 3), text[..90_000].to_vec(), noise(200, 9)].concat(),
            vec![0; 1 << 20],
        ];
        for level in [0, 1, 6, 9, 12] {
            let mut joined = Vec::new();
            let mut want = Vec::new();
            for (i, data) in inputs.iter().enumerate() {
                for cut in 0..3 {
                    let d = &data[..data.len().saturating_sub(cut)];
                    let mut s = raw(d, level);
                    unfinish(&mut s).unwrap();
                    assert_eq!(inflate(&joined_with(&s)), d, "level {level} input {i}");
                    joined.extend_from_slice(&s);
                    want.extend_from_slice(d);
                }
            }
            joined.extend_from_slice(&raw(b"end", level));
            want.extend_from_slice(b"end");
            assert_eq!(inflate(&joined), want, "level {level}");
        }
    }

    /// A piece followed by an empty final block, as a whole stream.
    fn joined_with(piece: &[u8]) -> Vec<u8> {
        let mut s = piece.to_vec();
        s.extend_from_slice(&[3, 0]);
        s
    }

    #[test]
    fn refuses_what_is_not_a_whole_stream() {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&noise(1000, 5)).unwrap();
        e.write_all(&[b'x'; 5000]).unwrap();
        let whole = e.finish().unwrap();
        for cut in [1, 2, whole.len() / 2] {
            let mut s = whole[..whole.len() - cut].to_vec();
            assert!(unfinish(&mut s).is_err(), "cut {cut}");
        }
        assert!(unfinish(&mut vec![0xff; 10]).is_err());
        assert!(unfinish(&mut Vec::new()).is_err());
    }
}
