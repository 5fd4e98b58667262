//! Detached signatures that both `signify -V` and `minisign -V` accept.
//!
//! File layout (each line ended by `\n`):
//!
//! ```text
//! untrusted comment: <text>
//! base64(sig_alg(2) ‖ keynum(8) ‖ sig(64))
//! trusted comment: <text>
//! base64(global_sig(64))
//! ```
//!
//! signify reads only the first two lines; `sig` is a pure Ed25519
//! signature over the file's bytes (`sig_alg` "Ed"). minisign also
//! accepts "ED", where `sig` signs the BLAKE2b-512 digest of the file, and
//! checks `global_sig`, an Ed25519 signature over `sig` ‖ the trusted
//! comment's bytes, which binds the comment to the signature.
//!
//! # Large files
//!
//! Pure Ed25519 cannot be computed from a digest of the data: the signer
//! hashes the message twice (once to derive the nonce, once for the
//! challenge), with different prefixes. signify simply reads the whole
//! file (up to 1 GiB) into memory. Here the data is never held whole:
//! [`sign`] takes a seekable reader and streams it twice through
//! ed25519-dalek's incremental signer, in 64 KiB chunks. Because a nonce
//! derived from one content combined with a challenge over another would
//! let two such signatures reveal the secret key, each pass also computes
//! a BLAKE2b-512 digest of the data and the signature is discarded unless
//! both passes saw the same bytes. Verification needs only one pass over
//! the data, for both "Ed" and "ED" signatures, and streams likewise.

use std::cell::RefCell;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use blake2::{Blake2b512, Digest};
use ed25519_dalek::hazmat::{raw_sign_byupdate, ExpandedSecretKey};
use ed25519_dalek::{Signature, SignatureError, Signer};
use sha2::Sha512;

use super::armor::{
    self, LineError, TRUSTED_COMMENT_MAX, TRUSTED_PREFIX, UNTRUSTED_COMMENT_MAX, UNTRUSTED_PREFIX,
};
use super::error::{SignError, VerifyError};
use super::key::{read_small, KeyId, PublicKey, SecretKey};

/// Pure Ed25519 over the data.
pub const SIGALG: [u8; 2] = *b"Ed";
/// Ed25519 over the BLAKE2b-512 digest of the data (minisign's default).
pub const SIGALG_HASHED: [u8; 2] = *b"ED";

/// Both comments together stay under 10 KiB; a bigger file is not a
/// signature and is refused before it is read whole.
pub const SIGNATURE_FILE_MAX: u64 = 16 * 1024;

const CHUNK: usize = 64 * 1024;
const SIG_LINE_LEN: usize = 2 + 8 + 64;

/// The trusted comment and the global signature that covers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedComment {
    pub trusted_comment: String,
    pub global_sig: [u8; 64],
}

/// A parsed signature file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureFile {
    pub untrusted_comment: String,
    pub sig_alg: [u8; 2],
    pub keynum: [u8; 8],
    pub sig: [u8; 64],
    /// Absent in signify's own two-line files.
    pub trusted: Option<TrustedComment>,
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key_id: KeyId,
    /// Present (and proven to come from the key) when the file has one.
    pub trusted_comment: Option<String>,
    /// True for minisign's "ED" signatures.
    pub prehashed: bool,
}

fn malformed(e: LineError) -> VerifyError {
    VerifyError::Malformed {
        line: e.line,
        reason: e.reason,
    }
}

impl SignatureFile {
    pub fn key_id(&self) -> KeyId {
        KeyId(self.keynum)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, VerifyError> {
        let lines = armor::lines(bytes);
        let untrusted_comment =
            armor::comment_line(lines.first().copied(), 1, UNTRUSTED_PREFIX).map_err(malformed)?;
        armor::require_newline(bytes, 1).map_err(malformed)?;
        let raw = armor::b64_line::<SIG_LINE_LEN>(lines.get(1).copied(), 2, "signature")
            .map_err(malformed)?;
        let (sig_alg, rest) = raw.split_at(2);
        let (keynum, sig) = rest.split_at(8);
        let sig_alg: [u8; 2] = [
            sig_alg.first().copied().unwrap_or(0),
            sig_alg.get(1).copied().unwrap_or(0),
        ];
        if sig_alg != SIGALG && sig_alg != SIGALG_HASHED {
            return Err(VerifyError::WrongAlgorithm {
                found: String::from_utf8_lossy(&sig_alg).into_owned(),
            });
        }
        let short = |what: &str| VerifyError::Malformed {
            line: 2,
            reason: format!("short {what}"),
        };
        let keynum: [u8; 8] = keynum.try_into().map_err(|_| short("key number"))?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| short("signature"))?;

        let rest = lines.get(2..).unwrap_or(&[]);
        let trusted = if rest.iter().all(|l| l.trim_ascii().is_empty()) {
            None
        } else {
            let trusted_comment = armor::comment_line(rest.first().copied(), 3, TRUSTED_PREFIX)
                .map_err(|e| {
                    if e.reason.starts_with("does not start") {
                        LineError {
                            line: 3,
                            reason: format!(
                                "does not start with `{TRUSTED_PREFIX}` (signatures with \
                                 the message embedded are not supported)"
                            ),
                        }
                    } else {
                        e
                    }
                })
                .map_err(malformed)?;
            armor::require_newline(bytes, 3).map_err(malformed)?;
            let global_sig = armor::b64_line::<64>(rest.get(1).copied(), 4, "global signature")
                .map_err(malformed)?;
            if let Some(pos) = rest.iter().skip(2).position(|l| !l.trim_ascii().is_empty()) {
                return Err(VerifyError::Malformed {
                    line: pos.saturating_add(5),
                    reason: "unexpected text after the global signature".into(),
                });
            }
            Some(TrustedComment {
                trusted_comment,
                global_sig,
            })
        };
        Ok(SignatureFile {
            untrusted_comment,
            sig_alg,
            keynum,
            sig,
            trusted,
        })
    }

    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(SIG_LINE_LEN);
        raw.extend_from_slice(&self.sig_alg);
        raw.extend_from_slice(&self.keynum);
        raw.extend_from_slice(&self.sig);
        let mut out = format!(
            "{UNTRUSTED_PREFIX}{}\n{}\n",
            self.untrusted_comment,
            armor::encode_b64(&raw)
        );
        if let Some(t) = &self.trusted {
            out.push_str(&format!(
                "{TRUSTED_PREFIX}{}\n{}\n",
                t.trusted_comment,
                armor::encode_b64(&t.global_sig)
            ));
        }
        out
    }

    pub fn read_file(path: &Path) -> Result<Self, VerifyError> {
        let bytes = read_signature_bytes(path)?;
        Self::decode(&bytes).map_err(|e| e.in_file(path))
    }

    /// Writes (creating or truncating) `path`.
    pub fn write_file(&self, path: &Path) -> Result<(), SignError> {
        let werr = |source| SignError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut f = fs::File::create(path).map_err(werr)?;
        f.write_all(self.encode().as_bytes()).map_err(werr)?;
        f.sync_all().map_err(werr)
    }
}

/// Reads a signature file, refusing one over [`SIGNATURE_FILE_MAX`].
pub fn read_signature_bytes(path: &Path) -> Result<Vec<u8>, VerifyError> {
    let bytes = read_small(path, SIGNATURE_FILE_MAX).map_err(|source| VerifyError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.len() as u64 > SIGNATURE_FILE_MAX {
        return Err(VerifyError::TooLarge {
            limit: SIGNATURE_FILE_MAX,
        }
        .in_file(path));
    }
    Ok(bytes)
}

/// The trusted comment minisign writes by default, minus its `hashed`
/// marker (our signatures are pure Ed25519).
pub fn default_trusted_comment(file_name: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("timestamp:{secs}\tfile:{file_name}")
}

fn global_message(sig: &[u8; 64], trusted_comment: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + trusted_comment.len());
    m.extend_from_slice(sig);
    m.extend_from_slice(trusted_comment.as_bytes());
    m
}

/// Signs the data from the reader's current position to its end. The
/// untrusted comment is `signature from ` + the secret key's comment, as
/// signify writes it.
pub fn sign<R: Read + Seek>(
    secret: &SecretKey,
    data: &mut R,
    trusted_comment: &str,
) -> Result<SignatureFile, SignError> {
    let untrusted = format!("signature from {}", secret.comment);
    sign_with_comments(secret, data, &untrusted, trusted_comment)
}

/// As [`sign`], with both comments chosen by the caller.
pub fn sign_with_comments<R: Read + Seek>(
    secret: &SecretKey,
    data: &mut R,
    untrusted_comment: &str,
    trusted_comment: &str,
) -> Result<SignatureFile, SignError> {
    armor::check_comment(untrusted_comment, UNTRUSTED_COMMENT_MAX).map_err(|reason| {
        SignError::Comment {
            which: "untrusted",
            reason,
        }
    })?;
    armor::check_comment(trusted_comment, TRUSTED_COMMENT_MAX).map_err(|reason| {
        SignError::Comment {
            which: "trusted",
            reason,
        }
    })?;
    let start = data.stream_position().map_err(SignError::Read)?;
    let reader = RefCell::new(data);
    let digests: RefCell<Vec<[u8; 64]>> = RefCell::new(Vec::with_capacity(2));
    let failure: RefCell<Option<io::Error>> = RefCell::new(None);

    let pass = |h: &mut Sha512| -> Result<(), SignatureError> {
        let mut r = reader.borrow_mut();
        let mut check = Blake2b512::new();
        let result = (|| -> io::Result<()> {
            r.seek(SeekFrom::Start(start))?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                let chunk = buf.get(..n).unwrap_or(&[]);
                Digest::update(h, chunk);
                check.update(chunk);
            }
        })();
        match result {
            Ok(()) => {
                digests.borrow_mut().push(check.finalize().into());
                Ok(())
            }
            Err(e) => {
                *failure.borrow_mut() = Some(e);
                Err(SignatureError::new())
            }
        }
    };

    let esk = ExpandedSecretKey::from(secret.signing.as_bytes());
    let signed = raw_sign_byupdate::<Sha512, _>(&esk, pass, &secret.signing.verifying_key());
    if let Some(e) = failure.borrow_mut().take() {
        return Err(SignError::Read(e));
    }
    let signature = signed.map_err(|e| SignError::Crypto(e.to_string()))?;
    let digests = digests.into_inner();
    match digests.as_slice() {
        [a, b] if a == b => {}
        _ => return Err(SignError::DataChanged),
    }
    let sig = signature.to_bytes();
    let global_sig = secret
        .signing
        .sign(&global_message(&sig, trusted_comment))
        .to_bytes();
    Ok(SignatureFile {
        untrusted_comment: untrusted_comment.to_string(),
        sig_alg: SIGALG,
        keynum: secret.keynum,
        sig,
        trusted: Some(TrustedComment {
            trusted_comment: trusted_comment.to_string(),
            global_sig,
        }),
    })
}

/// Signs the file at `path`.
pub fn sign_file(
    secret: &SecretKey,
    path: &Path,
    trusted_comment: &str,
) -> Result<SignatureFile, SignError> {
    let mut f = fs::File::open(path).map_err(|source| SignError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    sign(secret, &mut f, trusted_comment).map_err(|e| match e {
        SignError::Read(source) => SignError::ReadFile {
            path: path.to_path_buf(),
            source,
        },
        e => e,
    })
}

enum Pending<'k> {
    Pure(Vec<(&'k PublicKey, ed25519_dalek::StreamVerifier)>),
    Hashed(Blake2b512),
}

/// Checks `sigfile` (the bytes of a signature file) against `data`, read
/// to its end, using the key among `trusted_keys` whose key number the
/// signature names.
pub fn verify<R: Read>(
    trusted_keys: &[PublicKey],
    sigfile: &[u8],
    mut data: R,
) -> Result<Verified, VerifyError> {
    let parsed = SignatureFile::decode(sigfile)?;
    let key_id = parsed.key_id();
    let candidates: Vec<&PublicKey> = trusted_keys
        .iter()
        .filter(|k| k.keynum == parsed.keynum && !k.pubkey.is_weak())
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::UnknownKey { key_id });
    }
    let signature = Signature::from_bytes(&parsed.sig);
    let prehashed = parsed.sig_alg == SIGALG_HASHED;
    let mut pending = if prehashed {
        Pending::Hashed(Blake2b512::new())
    } else {
        let verifiers: Vec<_> = candidates
            .iter()
            .filter_map(|k| k.pubkey.verify_stream(&signature).ok().map(|v| (*k, v)))
            .collect();
        if verifiers.is_empty() {
            // The signature's scalar is out of range: no data can match.
            return Err(VerifyError::BadSignature { key_id });
        }
        Pending::Pure(verifiers)
    };

    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(VerifyError::Read(e)),
        };
        let chunk = buf.get(..n).unwrap_or(&[]);
        match &mut pending {
            Pending::Pure(vs) => vs.iter_mut().for_each(|(_, v)| v.update(chunk)),
            Pending::Hashed(h) => h.update(chunk),
        }
    }

    let signer: &PublicKey = match pending {
        Pending::Pure(vs) => vs
            .into_iter()
            .find_map(|(k, v)| v.finalize_and_verify().ok().map(|()| k)),
        Pending::Hashed(h) => {
            let digest = h.finalize();
            candidates
                .into_iter()
                .find(|k| k.pubkey.verify_strict(&digest, &signature).is_ok())
        }
    }
    .ok_or(VerifyError::BadSignature { key_id })?;

    let trusted_comment = match &parsed.trusted {
        None => None,
        Some(t) => {
            let global = Signature::from_bytes(&t.global_sig);
            signer
                .pubkey
                .verify_strict(&global_message(&parsed.sig, &t.trusted_comment), &global)
                .map_err(|_| VerifyError::BadTrustedComment { key_id })?;
            Some(t.trusted_comment.clone())
        }
    };
    Ok(Verified {
        key_id,
        trusted_comment,
        prehashed,
    })
}

/// Verifies the file at `data_path` against the signature file at `sig_path`.
pub fn verify_file(
    trusted_keys: &[PublicKey],
    sig_path: &Path,
    data_path: &Path,
) -> Result<Verified, VerifyError> {
    let sig = read_signature_bytes(sig_path)?;
    // Parse first so that a broken signature file is reported as such
    // before the (possibly large) data is opened.
    SignatureFile::decode(&sig).map_err(|e| e.in_file(sig_path))?;
    let data = fs::File::open(data_path).map_err(|source| VerifyError::ReadFile {
        path: data_path.to_path_buf(),
        source,
    })?;
    verify(trusted_keys, &sig, data).map_err(|e| match e {
        VerifyError::Read(source) => VerifyError::ReadFile {
            path: data_path.to_path_buf(),
            source,
        },
        e => e.in_file(sig_path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::key::generate;
    use std::io::Cursor;

    #[test]
    fn sign_then_verify_in_memory() {
        let (public, secret) = generate("t").unwrap();
        let data = b"hello world\n".to_vec();
        let sf = sign(&secret, &mut Cursor::new(&data), "tc").unwrap();
        let text = sf.encode();
        assert_eq!(text.lines().count(), 4);
        let v = verify(&[public], text.as_bytes(), &data[..]).unwrap();
        assert_eq!(v.trusted_comment.as_deref(), Some("tc"));
        assert!(!v.prehashed);
    }

    #[test]
    fn pure_signature_matches_one_shot_ed25519() {
        let (_, secret) = generate("t").unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let sf = sign(&secret, &mut Cursor::new(&data), "x").unwrap();
        assert_eq!(sf.sig, secret.signing.sign(&data).to_bytes());
    }

    /// A reader whose content differs on the second pass.
    struct Shifty {
        passes: u32,
        pos: usize,
    }
    impl Read for Shifty {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos >= 10 || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.passes as u8;
            self.pos += 1;
            Ok(1)
        }
    }
    impl Seek for Shifty {
        fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
            self.passes += 1;
            self.pos = 0;
            Ok(0)
        }
    }

    #[test]
    fn data_changing_between_passes_gives_no_signature() {
        let (_, secret) = generate("t").unwrap();
        let mut r = Shifty { passes: 0, pos: 0 };
        assert!(matches!(
            sign(&secret, &mut r, "x"),
            Err(SignError::DataChanged)
        ));
    }
}
