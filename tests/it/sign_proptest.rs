//! Property: what we sign verifies, and no single changed byte of the
//! data or of the covered parts of the signature file does.

use std::io::Cursor;

use proptest::prelude::*;
use vm_container::sign::{generate, sign, verify, PublicKey, SecretKey};

fn keys() -> &'static (PublicKey, SecretKey) {
    static KEYS: std::sync::OnceLock<(PublicKey, SecretKey)> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| generate("prop").unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn sign_verify_round_trips_and_detects_any_change(
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        comment in "[ -~]{0,60}",
        pick in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (public, secret) = keys();
        let trusted = [public.clone()];
        let sig = sign(secret, &mut Cursor::new(&data), &comment).unwrap().encode();
        let v = verify(&trusted, sig.as_bytes(), &data[..]).unwrap();
        prop_assert_eq!(v.trusted_comment.as_deref(), Some(comment.as_str()));
        prop_assert_eq!(v.key_id, public.key_id());

        if !data.is_empty() {
            let mut bad = data.clone();
            let i = pick.index(bad.len());
            bad[i] ^= flip;
            prop_assert!(verify(&trusted, sig.as_bytes(), &bad[..]).is_err());
        }

        // Every byte but the untrusted comment's text (covered by
        // nothing, by design) and the final line end (tolerated like
        // trailing white space).
        let bytes = sig.as_bytes();
        let first_nl = bytes.iter().position(|b| *b == b'\n').unwrap();
        let covered: Vec<usize> = (0..bytes.len() - 1)
            .filter(|i| *i < "untrusted comment: ".len() || *i >= first_nl)
            .collect();
        let at = covered[pick.index(covered.len())];
        let mut bad = bytes.to_vec();
        bad[at] ^= flip;
        prop_assert!(
            verify(&trusted, &bad, &data[..]).is_err(),
            "byte {} changed by {:#x} still verifies", at, flip
        );
    }

    #[test]
    fn secret_keys_round_trip(pass in proptest::option::of("[!-~]{1,20}")) {
        let (public, secret) = keys();
        let text = secret.encode_with_rounds(pass.as_deref().map(str::as_bytes), 1).unwrap();
        let back = SecretKey::decode(text.as_bytes(), pass.as_deref().map(str::as_bytes)).unwrap();
        prop_assert_eq!(&back.public_key(), public);
    }
}
