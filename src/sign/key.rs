//! Ed25519 key pairs in signify's file format (which minisign uses for
//! public keys too).
//!
//! Public key, base64 line: `pkalg`("Ed") ‖ `keynum`(8) ‖ `pubkey`(32).
//! Secret key, base64 line: `pkalg`("Ed") ‖ `kdfalg`("BK") ‖
//! `kdfrounds`(u32, big-endian) ‖ `salt`(16) ‖ `checksum`(8) ‖ `keynum`(8)
//! ‖ `seckey`(64), where `seckey` is seed(32) ‖ public key(32) XORed with
//! 64 bytes of bcrypt_pbkdf(passphrase, salt, kdfrounds) — or left clear
//! when `kdfrounds` is 0 — and `checksum` is the first 8 bytes of
//! SHA-512 of the clear `seckey`.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

use super::armor::{self, LineError, UNTRUSTED_COMMENT_MAX, UNTRUSTED_PREFIX};
use super::error::KeyError;

pub const PKALG: [u8; 2] = *b"Ed";
pub const KDFALG: [u8; 2] = *b"BK";
/// What `signify -G` uses.
pub const DEFAULT_KDF_ROUNDS: u32 = 42;

/// The most `kdfrounds` a secret key may ask for. Each round costs about
/// 10 ms, so a key file claiming 2^32 rounds would hold a run for over a
/// year; signify always writes 42, and 1,000 rounds (about 10 s) leaves
/// room for keys made deliberately slower.
pub const MAX_KDF_ROUNDS: u32 = 1000;
/// signify reads a passphrase into a 1024-byte buffer; a longer one
/// would be cut there, so it could never unlock a key we wrote with it.
pub const PASSPHRASE_MAX: usize = 1023;

/// Key files are a few hundred bytes; anything much larger is the wrong
/// file and is refused before it is read whole.
const KEY_FILE_MAX: u64 = 4096;

const PUBKEY_LEN: usize = 2 + 8 + 32;
const ENCKEY_LEN: usize = 2 + 2 + 4 + 16 + 8 + 8 + 64;

/// The 8-byte random `keynum` that ties signatures to their key.
///
/// Displayed as minisign shows it: the bytes read as a little-endian
/// 64-bit number, in 16 upper-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

fn malformed(e: LineError) -> KeyError {
    KeyError::Malformed {
        line: e.line,
        reason: e.reason,
    }
}

fn alg_name(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads a small file whole, refusing one larger than `limit`.
pub(crate) fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>, std::io::Error> {
    let f = fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    Ok(buf)
}

fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let bytes =
        Zeroizing::new(
            read_small(path, KEY_FILE_MAX).map_err(|source| KeyError::Read {
                path: path.to_path_buf(),
                source,
            })?,
        );
    if bytes.len() as u64 > KEY_FILE_MAX {
        return Err(KeyError::TooLarge {
            limit: KEY_FILE_MAX,
        }
        .in_file(path));
    }
    Ok(bytes)
}

/// Creates `path` (never replacing an existing file, as `signify -G`
/// does) with `mode`, and writes `text` to it.
fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let werr = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(werr)?;
    f.write_all(text.as_bytes()).map_err(werr)?;
    f.sync_all().map_err(werr)
}

/// An Ed25519 public key with its key number and untrusted comment.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub keynum: [u8; 8],
    pub pubkey: VerifyingKey,
    /// The text after `untrusted comment: ` (not covered by anything).
    pub comment: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id())
            .field("comment", &self.comment)
            .finish()
    }
}

impl PublicKey {
    pub fn key_id(&self) -> KeyId {
        KeyId(self.keynum)
    }

    /// The 42 bytes of the base64 line.
    pub fn to_bytes(&self) -> [u8; PUBKEY_LEN] {
        let mut out = [0u8; PUBKEY_LEN];
        out[..2].copy_from_slice(&PKALG);
        out[2..10].copy_from_slice(&self.keynum);
        out[10..].copy_from_slice(self.pubkey.as_bytes());
        out
    }

    fn from_raw(raw: &[u8; PUBKEY_LEN], comment: String, line: usize) -> Result<Self, KeyError> {
        let (pkalg, rest) = raw.split_at(2);
        if pkalg != PKALG {
            return Err(KeyError::WrongAlgorithm {
                found: alg_name(pkalg),
            });
        }
        let (keynum, pubkey) = rest.split_at(8);
        let keynum: [u8; 8] = keynum.try_into().map_err(|_| KeyError::Malformed {
            line,
            reason: "short key number".into(),
        })?;
        let pubkey: [u8; 32] = pubkey.try_into().map_err(|_| KeyError::Malformed {
            line,
            reason: "short public key".into(),
        })?;
        let pubkey = VerifyingKey::from_bytes(&pubkey).map_err(|_| KeyError::Malformed {
            line,
            reason: "public key is not a valid Ed25519 point".into(),
        })?;
        Ok(PublicKey {
            keynum,
            pubkey,
            comment,
        })
    }

    /// Parses a public key file as signify or minisign write it.
    pub fn decode(text: &[u8]) -> Result<Self, KeyError> {
        let lines = armor::lines(text);
        let comment =
            armor::comment_line(lines.first().copied(), 1, UNTRUSTED_PREFIX).map_err(malformed)?;
        armor::require_newline(text, 1).map_err(malformed)?;
        let raw = armor::b64_line::<PUBKEY_LEN>(lines.get(1).copied(), 2, "public key")
            .map_err(malformed)?;
        if let Some(pos) = lines
            .iter()
            .skip(2)
            .position(|l| !l.trim_ascii().is_empty())
        {
            return Err(KeyError::Malformed {
                line: pos.saturating_add(3),
                reason: "unexpected text after the public key".into(),
            });
        }
        Self::from_raw(&raw, comment, 2)
    }

    /// Parses the bare base64 line, as minisign's `-P` takes it.
    pub fn from_base64(line: &str) -> Result<Self, KeyError> {
        let raw = armor::b64_line::<PUBKEY_LEN>(Some(line.as_bytes()), 1, "public key")
            .map_err(malformed)?;
        Self::from_raw(&raw, String::new(), 1)
    }

    /// The two-line file text.
    pub fn encode(&self) -> String {
        format!(
            "{UNTRUSTED_PREFIX}{}\n{}\n",
            self.comment,
            armor::encode_b64(&self.to_bytes())
        )
    }

    pub fn read_file(path: &Path) -> Result<Self, KeyError> {
        let bytes = read_key_file(path)?;
        Self::decode(&bytes).map_err(|e| e.in_file(path))
    }

    /// Writes the key to a new file (mode 0644); an existing file is an error.
    pub fn write_file(&self, path: &Path) -> Result<(), KeyError> {
        write_new(path, &self.encode(), 0o644)
    }
}

/// An Ed25519 signing key with its key number and untrusted comment.
pub struct SecretKey {
    pub keynum: [u8; 8],
    pub(crate) signing: SigningKey,
    pub comment: String,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("key_id", &self.key_id())
            .field("comment", &self.comment)
            .finish_non_exhaustive()
    }
}

/// The fields of a secret key file as stored, before any decryption.
pub struct EncryptedSecretKey {
    pub pkalg: [u8; 2],
    pub kdfalg: [u8; 2],
    pub kdfrounds: u32,
    pub salt: [u8; 16],
    pub checksum: [u8; 8],
    pub keynum: [u8; 8],
    pub seckey: Zeroizing<[u8; 64]>,
    pub comment: String,
}

fn take<const N: usize>(raw: &[u8], at: &mut usize) -> Result<[u8; N], KeyError> {
    let end = at.checked_add(N).ok_or(KeyError::Malformed {
        line: 2,
        reason: "secret key too short".into(),
    })?;
    let out = raw
        .get(*at..end)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(KeyError::Malformed {
            line: 2,
            reason: "secret key too short".into(),
        })?;
    *at = end;
    Ok(out)
}

fn derive_xorkey(
    passphrase: &[u8],
    salt: &[u8; 16],
    rounds: u32,
) -> Result<Zeroizing<[u8; 64]>, KeyError> {
    check_passphrase(passphrase)?;
    let mut key = Zeroizing::new([0u8; 64]);
    bcrypt_pbkdf::bcrypt_pbkdf(passphrase, salt, rounds, key.as_mut_slice())
        .map_err(|e| KeyError::Kdf(e.to_string()))?;
    Ok(key)
}

fn check_passphrase(passphrase: &[u8]) -> Result<(), KeyError> {
    if passphrase.is_empty() {
        return Err(KeyError::EmptyPassphrase);
    }
    if passphrase.len() > PASSPHRASE_MAX {
        return Err(KeyError::PassphraseTooLong {
            len: passphrase.len(),
            max: PASSPHRASE_MAX,
        });
    }
    Ok(())
}

fn checksum_of(seckey: &[u8; 64]) -> [u8; 8] {
    let digest = Sha512::digest(seckey);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

impl EncryptedSecretKey {
    pub fn decode(text: &[u8]) -> Result<Self, KeyError> {
        let lines = armor::lines(text);
        let comment =
            armor::comment_line(lines.first().copied(), 1, UNTRUSTED_PREFIX).map_err(malformed)?;
        armor::require_newline(text, 1).map_err(malformed)?;
        let line2 = lines.get(1).copied();
        // minisign secret keys are longer than signify's; look at the
        // algorithm bytes before insisting on a length so that such a key
        // is named for what it is.
        let raw = Zeroizing::new(
            armor::b64_line::<ENCKEY_LEN>(line2, 2, "secret key").map_err(|e| {
                let any = line2.and_then(|l| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(l.trim_ascii())
                        .ok()
                });
                match any.as_deref() {
                    Some([b'E', b'd', k0, k1, ..]) if [*k0, *k1] != KDFALG => {
                        KeyError::UnsupportedKdf {
                            found: alg_name(&[*k0, *k1]),
                        }
                    }
                    _ => malformed(e),
                }
            })?,
        );
        let mut at = 0;
        let pkalg = take::<2>(raw.as_slice(), &mut at)?;
        let kdfalg = take::<2>(raw.as_slice(), &mut at)?;
        let kdfrounds = u32::from_be_bytes(take::<4>(raw.as_slice(), &mut at)?);
        let salt = take::<16>(raw.as_slice(), &mut at)?;
        let checksum = take::<8>(raw.as_slice(), &mut at)?;
        let keynum = take::<8>(raw.as_slice(), &mut at)?;
        let seckey = Zeroizing::new(take::<64>(raw.as_slice(), &mut at)?);
        if pkalg != PKALG {
            return Err(KeyError::WrongAlgorithm {
                found: alg_name(&pkalg),
            });
        }
        if kdfalg != KDFALG {
            return Err(KeyError::UnsupportedKdf {
                found: alg_name(&kdfalg),
            });
        }
        if kdfrounds > MAX_KDF_ROUNDS {
            return Err(KeyError::TooManyRounds {
                rounds: kdfrounds,
                max: MAX_KDF_ROUNDS,
            });
        }
        Ok(EncryptedSecretKey {
            pkalg,
            kdfalg,
            kdfrounds,
            salt,
            checksum,
            keynum,
            seckey,
            comment,
        })
    }

    /// Reads a secret key file without decrypting it, so that a caller can
    /// ask for a passphrase only when [`Self::is_encrypted`] says so.
    pub fn read_file(path: &Path) -> Result<Self, KeyError> {
        let bytes = read_key_file(path)?;
        Self::decode(&bytes).map_err(|e| e.in_file(path))
    }

    /// True when a passphrase is needed (`kdfrounds` is not 0).
    pub fn is_encrypted(&self) -> bool {
        self.kdfrounds != 0
    }

    /// Decrypts with `passphrase` (ignored for an unencrypted key) and
    /// checks the result against `checksum`.
    pub fn unlock(&self, passphrase: Option<&[u8]>) -> Result<SecretKey, KeyError> {
        let mut clear = Zeroizing::new(*self.seckey);
        if self.is_encrypted() {
            let pass = passphrase.ok_or(KeyError::PassphraseRequired)?;
            let xorkey = derive_xorkey(pass, &self.salt, self.kdfrounds)?;
            for (c, x) in clear.iter_mut().zip(xorkey.iter()) {
                *c ^= x;
            }
        }
        if checksum_of(&clear) != self.checksum {
            return Err(if self.is_encrypted() {
                KeyError::IncorrectPassphrase
            } else {
                KeyError::Malformed {
                    line: 2,
                    reason: "secret key checksum does not match".into(),
                }
            });
        }
        let (seed, public) = clear.split_at(32);
        let mut seed_arr = Zeroizing::new([0u8; 32]);
        seed_arr.copy_from_slice(seed);
        let signing = SigningKey::from_bytes(&seed_arr);
        if signing.verifying_key().as_bytes().as_slice() != public {
            return Err(KeyError::Inconsistent);
        }
        Ok(SecretKey {
            keynum: self.keynum,
            signing,
            comment: self.comment.clone(),
        })
    }
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buf).map_err(|e| KeyError::Random(e.to_string()))
}

impl SecretKey {
    pub fn key_id(&self) -> KeyId {
        KeyId(self.keynum)
    }

    /// The matching public key, with `comment` as its untrusted comment.
    pub fn public_key_with_comment(&self, comment: String) -> PublicKey {
        PublicKey {
            keynum: self.keynum,
            pubkey: self.signing.verifying_key(),
            comment,
        }
    }

    /// The matching public key; a comment ending in ` secret key` (as
    /// signify writes) becomes ` public key`.
    pub fn public_key(&self) -> PublicKey {
        let comment = match self.comment.strip_suffix(" secret key") {
            Some(base) => format!("{base} public key"),
            None => self.comment.clone(),
        };
        self.public_key_with_comment(comment)
    }

    /// Encodes as signify does: clear when `passphrase` is `None`
    /// (`signify -G -n`), else encrypted with [`DEFAULT_KDF_ROUNDS`].
    pub fn encode(&self, passphrase: Option<&[u8]>) -> Result<String, KeyError> {
        self.encode_with_rounds(passphrase, DEFAULT_KDF_ROUNDS)
    }

    /// As [`SecretKey::encode`] with a chosen bcrypt_pbkdf cost.
    pub fn encode_with_rounds(
        &self,
        passphrase: Option<&[u8]>,
        rounds: u32,
    ) -> Result<String, KeyError> {
        let mut salt = [0u8; 16];
        random_bytes(&mut salt)?;
        self.encode_with_salt(passphrase, rounds, salt)
    }

    pub(crate) fn encode_with_salt(
        &self,
        passphrase: Option<&[u8]>,
        rounds: u32,
        salt: [u8; 16],
    ) -> Result<String, KeyError> {
        let mut clear = Zeroizing::new([0u8; 64]);
        clear[..32].copy_from_slice(self.signing.as_bytes());
        clear[32..].copy_from_slice(self.signing.verifying_key().as_bytes());
        let checksum = checksum_of(&clear);
        let kdfrounds = match passphrase {
            None => 0,
            Some(_) if rounds == 0 => return Err(KeyError::ZeroRounds),
            Some(_) if rounds > MAX_KDF_ROUNDS => {
                return Err(KeyError::TooManyRounds {
                    rounds,
                    max: MAX_KDF_ROUNDS,
                })
            }
            Some(pass) => {
                let xorkey = derive_xorkey(pass, &salt, rounds)?;
                for (c, x) in clear.iter_mut().zip(xorkey.iter()) {
                    *c ^= x;
                }
                rounds
            }
        };
        let mut raw = Zeroizing::new(Vec::with_capacity(ENCKEY_LEN));
        raw.extend_from_slice(&PKALG);
        raw.extend_from_slice(&KDFALG);
        raw.extend_from_slice(&kdfrounds.to_be_bytes());
        raw.extend_from_slice(&salt);
        raw.extend_from_slice(&checksum);
        raw.extend_from_slice(&self.keynum);
        raw.extend_from_slice(clear.as_slice());
        let mut b64 = armor::encode_b64(&raw);
        let text = format!("{UNTRUSTED_PREFIX}{}\n{b64}\n", self.comment);
        b64.zeroize();
        Ok(text)
    }

    /// Parses and unlocks a secret key file's text.
    pub fn decode(text: &[u8], passphrase: Option<&[u8]>) -> Result<Self, KeyError> {
        EncryptedSecretKey::decode(text)?.unlock(passphrase)
    }

    pub fn read_file(path: &Path, passphrase: Option<&[u8]>) -> Result<Self, KeyError> {
        let bytes = read_key_file(path)?;
        Self::decode(&bytes, passphrase).map_err(|e| e.in_file(path))
    }

    /// Writes the key to a new file (mode 0600); an existing file is an error.
    pub fn write_file(&self, path: &Path, passphrase: Option<&[u8]>) -> Result<(), KeyError> {
        let text = Zeroizing::new(self.encode(passphrase)?);
        write_new(path, &text, 0o600)
    }
}

/// A new key pair with a random key number. As `signify -G -c COMMENT`
/// does, the public key's comment is `COMMENT public key` and the secret
/// key's `COMMENT secret key`.
pub fn generate(comment: &str) -> Result<(PublicKey, SecretKey), KeyError> {
    armor::check_comment(
        comment,
        UNTRUSTED_COMMENT_MAX.saturating_sub(" secret key".len()),
    )
    .map_err(KeyError::Comment)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    random_bytes(seed.as_mut_slice())?;
    let mut keynum = [0u8; 8];
    random_bytes(&mut keynum)?;
    let secret = SecretKey {
        keynum,
        signing: SigningKey::from_bytes(&seed),
        comment: format!("{comment} secret key"),
    };
    let public = secret.public_key_with_comment(format!("{comment} public key"));
    Ok((public, secret))
}

/// A passphrase, wiped from memory when dropped.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    pub fn new(bytes: Vec<u8>) -> Result<Self, KeyError> {
        let p = Passphrase(Zeroizing::new(bytes));
        check_passphrase(&p.0)?;
        Ok(p)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Reads a passphrase from the first line of a file (for unattended
/// signing); the line's end (`\n` or `\r\n`) is not part of it, just as
/// signify reads it from standard input.
pub fn read_passphrase_file(path: &Path) -> Result<Passphrase, KeyError> {
    let limit = PASSPHRASE_MAX as u64 + 2;
    let bytes = Zeroizing::new(read_small(path, limit).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?);
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Passphrase::new(line.to_vec()).map_err(|e| e.in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_little_endian_upper_hex() {
        let id = KeyId([0xec, 0xcb, 0xb0, 0xdf, 0xc2, 0xa2, 0x3f, 0xa8]);
        assert_eq!(id.to_string(), "A83FA2C2DFB0CBEC");
        let small = KeyId([0xff, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(small.to_string(), "00000000000000FF");
    }

    #[test]
    fn clear_and_encrypted_round_trip() {
        let (public, secret) = generate("unit").unwrap();
        assert_eq!(public.comment, "unit public key");
        let clear = secret.encode(None).unwrap();
        let back = SecretKey::decode(clear.as_bytes(), None).unwrap();
        assert_eq!(back.public_key(), public);

        let enc = secret.encode_with_rounds(Some(b"pw"), 2).unwrap();
        let parsed = EncryptedSecretKey::decode(enc.as_bytes()).unwrap();
        assert!(parsed.is_encrypted());
        assert_eq!(parsed.kdfrounds, 2);
        assert!(matches!(
            parsed.unlock(None),
            Err(KeyError::PassphraseRequired)
        ));
        assert!(matches!(
            parsed.unlock(Some(b"wrong")),
            Err(KeyError::IncorrectPassphrase)
        ));
        assert_eq!(parsed.unlock(Some(b"pw")).unwrap().public_key(), public);
    }

    #[test]
    fn public_key_text_round_trips() {
        let (public, _) = generate("c").unwrap();
        let text = public.encode();
        assert!(text.starts_with("untrusted comment: c public key\nRW"));
        assert_eq!(PublicKey::decode(text.as_bytes()).unwrap(), public);
    }

    #[test]
    fn wrong_public_algorithm_is_named() {
        let (public, _) = generate("c").unwrap();
        let mut raw = public.to_bytes();
        raw[1] = b'X';
        let text = format!("untrusted comment: x\n{}\n", armor::encode_b64(&raw));
        match PublicKey::decode(text.as_bytes()) {
            Err(KeyError::WrongAlgorithm { found }) => assert_eq!(found, "EX"),
            other => panic!("{other:?}"),
        }
    }
}
