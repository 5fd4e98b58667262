//! Small questions asked of byte slices.

/// True when every byte is zero (sixteen at a time).
pub fn all_zero(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(16);
    words.all(|w| u128::from_ne_bytes(w.try_into().unwrap_or([1; 16])) == 0)
        && words.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::all_zero;

    #[test]
    fn zero_is_found_in_words_and_the_remainder() {
        assert!(all_zero(&[]));
        for len in [1, 15, 16, 17, 33, 4096] {
            let mut v = vec![0u8; len];
            assert!(all_zero(&v), "{len} zeros");
            for at in [0, len / 2, len - 1] {
                v[at] = 0x80;
                assert!(!all_zero(&v), "{len} bytes, one set at {at}");
                v[at] = 0;
            }
        }
    }
}
