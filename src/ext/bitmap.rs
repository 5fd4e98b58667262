//! Block and inode bitmaps: bit `i` of byte `i / 8` (least significant
//! bit first) is set when object `i` of the group is in use.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitmap {
    bits: Vec<u8>,
    len: u64,
}

impl Bitmap {
    pub fn new(len: u64) -> Bitmap {
        Bitmap {
            bits: vec![0; len.div_ceil(8) as usize],
            len,
        }
    }

    pub fn get(&self, i: u64) -> bool {
        i < self.len
            && self
                .bits
                .get((i / 8) as usize)
                .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    pub fn set(&mut self, i: u64, v: bool) {
        if i >= self.len {
            return;
        }
        if let Some(b) = self.bits.get_mut((i / 8) as usize) {
            if v {
                *b |= 1 << (i % 8);
            } else {
                *b &= !(1 << (i % 8));
            }
        }
    }

    /// The first clear bit at or after `from`.
    pub fn next_clear(&self, from: u64) -> Option<u64> {
        let mut i = from;
        while i < self.len {
            if i.is_multiple_of(8) && self.bits.get((i / 8) as usize) == Some(&0xff) {
                i += 8;
                continue;
            }
            if !self.get(i) {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    pub fn count_set(&self, from: u64, to: u64) -> u64 {
        (from..to.min(self.len)).filter(|&i| self.get(i)).count() as u64
    }

    /// One on-disk bitmap block covering bits `[from, from + n)`; bits past
    /// `n` up to the end of the block are set, as the format requires for
    /// the padding.
    pub fn block(&self, from: u64, n: u64, block_size: usize) -> Vec<u8> {
        let mut out = vec![0u8; block_size];
        for i in 0..(block_size as u64 * 8) {
            let used = if i < n { self.get(from + i) } else { true };
            if used {
                if let Some(b) = out.get_mut((i / 8) as usize) {
                    *b |= 1 << (i % 8);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_and_padding() {
        let mut b = Bitmap::new(20);
        b.set(3, true);
        b.set(19, true);
        assert!(b.get(3) && b.get(19) && !b.get(4));
        assert_eq!(b.next_clear(3), Some(4));
        assert_eq!(b.count_set(0, 20), 2);
        let blk = b.block(0, 20, 4);
        assert_eq!(blk, vec![0b0000_1000, 0, 0b1111_1000, 0xff]);
        b.set(3, false);
        assert!(!b.get(3));
        assert_eq!(b.next_clear(20), None);
    }
}
