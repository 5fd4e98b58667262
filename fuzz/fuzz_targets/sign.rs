//! Signature files, public keys and secret keys as decoded from text, and
//! verification against one fixed key (the data signed is the input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vm_container::sign::{self, EncryptedSecretKey, PublicKey, SignatureFile};

// A fixed test key (fuzz/keys/fuzz.sec signs the seeds); not a secret.
const PUB: &str = include_str!("../keys/fuzz.pub");

fuzz_target!(|data: &[u8]| {
    let _ = SignatureFile::decode(data);
    let _ = PublicKey::decode(data);
    if let Ok(k) = EncryptedSecretKey::decode(data) {
        // unlocking runs bcrypt-pbkdf for `kdfrounds` rounds: only for
        // unencrypted keys, which are cheap
        if !k.is_encrypted() {
            let _ = k.unlock(None);
        }
    }
    let key = PublicKey::decode(PUB.as_bytes()).expect("fixed key");
    // the input as a signature over a fixed message, and as the data of a
    // signature file split off its front
    let _ = sign::verify(std::slice::from_ref(&key), data, &b"fixed message\n"[..]);
    if let Some(split) = data.iter().position(|&b| b == 0) {
        let (sig, msg) = data.split_at(split);
        let _ = sign::verify(std::slice::from_ref(&key), sig, &msg[1..]);
    }
});
