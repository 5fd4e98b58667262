//! Typed failures of key handling, signing and verification.

use std::io;
use std::path::PathBuf;

use super::key::KeyId;

/// A key file or key text that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<KeyError>,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("file is larger than {limit} bytes, not a key file")]
    TooLarge { limit: u64 },
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("key algorithm is {found:?}, only Ed25519 (\"Ed\") is supported")]
    WrongAlgorithm { found: String },
    #[error(
        "secret key is protected with KDF {found:?}; only signify's bcrypt_pbkdf (\"BK\") \
         is supported (minisign secret keys cannot be read)"
    )]
    UnsupportedKdf { found: String },
    #[error("secret key is encrypted: a passphrase is needed")]
    PassphraseRequired,
    #[error("incorrect passphrase (secret key checksum does not match)")]
    IncorrectPassphrase,
    #[error("secret key is damaged: its public half does not match its seed")]
    Inconsistent,
    #[error("passphrase is empty")]
    EmptyPassphrase,
    #[error("passphrase is {len} bytes; signify reads at most {max}")]
    PassphraseTooLong { len: usize, max: usize },
    #[error("KDF rounds must be at least 1 for an encrypted key")]
    ZeroRounds,
    #[error(
        "secret key asks for {rounds} KDF rounds; at most {max} are accepted (signify writes 42)"
    )]
    TooManyRounds { rounds: u32, max: u32 },
    #[error("bcrypt_pbkdf failed: {0}")]
    Kdf(String),
    #[error("comment is not usable: {0}")]
    Comment(String),
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

impl KeyError {
    pub(crate) fn in_file(self, path: &std::path::Path) -> KeyError {
        match self {
            e @ (KeyError::Read { .. } | KeyError::Write { .. } | KeyError::InFile { .. }) => e,
            e => KeyError::InFile {
                path: path.to_path_buf(),
                source: Box::new(e),
            },
        }
    }
}

/// Signing could not produce a signature.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read the data to sign: {0}")]
    Read(#[source] io::Error),
    #[error(
        "the data changed while it was being signed (the two passes over it differ); \
         no signature was produced"
    )]
    DataChanged,
    #[error("{which} comment is not usable: {reason}")]
    Comment { which: &'static str, reason: String },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Ed25519 signing failed: {0}")]
    Crypto(String),
}

/// A signature that does not prove what it claims.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: {source}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<VerifyError>,
    },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("signature file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("malformed signature file, line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("signature algorithm is {found:?}; only \"Ed\" (Ed25519) and \"ED\" (Ed25519 over BLAKE2b-512) are supported")]
    WrongAlgorithm { found: String },
    #[error("signed by key {key_id}, which is not among the trusted keys")]
    UnknownKey { key_id: KeyId },
    #[error("signature by key {key_id} does not match the data")]
    BadSignature { key_id: KeyId },
    #[error("trusted comment is not signed by key {key_id} (comment or global signature altered)")]
    BadTrustedComment { key_id: KeyId },
    #[error("cannot read the signed data: {0}")]
    Read(#[source] io::Error),
}

impl VerifyError {
    pub(crate) fn in_file(self, path: &std::path::Path) -> VerifyError {
        match self {
            e @ (VerifyError::Malformed { .. } | VerifyError::TooLarge { .. }) => {
                VerifyError::InFile {
                    path: path.to_path_buf(),
                    source: Box::new(e),
                }
            }
            e => e,
        }
    }
}
