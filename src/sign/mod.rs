//! Ed25519 keys and detached signatures in the formats OpenBSD `signify`
//! and `minisign` share.
//!
//! Keys are signify key files (minisign public keys parse too); a
//! signature file carries signify's two lines followed by minisign's
//! trusted comment and global signature, so both tools verify what
//! [`sign`] writes, and [`verify`] accepts what either tool writes,
//! including minisign's BLAKE2b-prehashed "ED" signatures.

mod armor;
pub mod error;
pub mod key;
pub mod signature;

pub use armor::{TRUSTED_COMMENT_MAX, UNTRUSTED_COMMENT_MAX};
pub use error::{KeyError, SignError, VerifyError};
pub use key::{
    generate, read_passphrase_file, EncryptedSecretKey, KeyId, Passphrase, PublicKey, SecretKey,
    DEFAULT_KDF_ROUNDS, PASSPHRASE_MAX,
};
pub use signature::{
    default_trusted_comment, read_signature_bytes, sign, sign_file, sign_with_comments, verify,
    verify_file, SignatureFile, TrustedComment, Verified, SIGALG, SIGALG_HASHED,
    SIGNATURE_FILE_MAX,
};
