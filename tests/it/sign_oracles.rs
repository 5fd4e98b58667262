//! Keys and signatures checked against the real `signify-openbsd` and
//! `minisign` programs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use vm_container::sign::{
    generate, read_passphrase_file, sign_file, verify, verify_file, EncryptedSecretKey, KeyError,
    PublicKey, SecretKey, SignatureFile, VerifyError,
};

const SIGNIFY: &str = "signify-openbsd";
const MINISIGN: &str = "minisign";

/// Runs `prog` with `args`, feeding `stdin`; fails the test with an
/// install hint when the program is missing.
fn run(prog: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {prog} ({e}): install the Debian package {}",
                if prog == SIGNIFY {
                    "signify-openbsd"
                } else {
                    "minisign"
                }
            )
        });
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn run_ok(prog: &str, args: &[&str], stdin: &[u8]) -> String {
    let out = run(prog, args, stdin);
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Dir(tempfile::TempDir);
impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, content).unwrap();
        p
    }
}

fn sample_data() -> Vec<u8> {
    // Several read chunks long, with every byte value.
    (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn signify_verifies(public: &Path, sig: &Path, data: &Path) -> bool {
    run(
        SIGNIFY,
        &["-V", "-p", s(public), "-x", s(sig), "-m", s(data)],
        b"",
    )
    .status
    .success()
}

fn minisign_verifies(public: &Path, sig: &Path, data: &Path) -> Option<String> {
    let out = run(
        MINISIGN,
        &["-V", "-p", s(public), "-x", s(sig), "-m", s(data)],
        b"",
    );
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn signify_unencrypted_key_is_read_and_its_signatures_verify() {
    let d = Dir::new();
    let (pubp, secp) = (d.path("k.pub"), d.path("k.sec"));
    run_ok(
        SIGNIFY,
        &["-G", "-n", "-c", "oracle", "-p", s(&pubp), "-s", s(&secp)],
        b"",
    );
    let public = PublicKey::read_file(&pubp).unwrap();
    assert_eq!(public.comment, "oracle public key");
    let enc = EncryptedSecretKey::decode(&fs::read(&secp).unwrap()).unwrap();
    assert!(!enc.is_encrypted());
    let secret = SecretKey::read_file(&secp, None).unwrap();
    assert_eq!(secret.public_key(), public);

    // signify's own two-line signature.
    let data = d.file("data", &sample_data());
    let sig = d.path("data.sig");
    run_ok(
        SIGNIFY,
        &["-S", "-s", s(&secp), "-m", s(&data), "-x", s(&sig)],
        b"",
    );
    let v = verify_file(std::slice::from_ref(&public), &sig, &data).unwrap();
    assert_eq!(v.key_id, public.key_id());
    assert_eq!(v.trusted_comment, None);

    // Our signature made with signify's key, checked by both tools.
    let ours = d.path("ours.sig");
    sign_file(&secret, &data, "made with a signify key")
        .unwrap()
        .write_file(&ours)
        .unwrap();
    assert!(signify_verifies(&pubp, &ours, &data));
    let out = minisign_verifies(&pubp, &ours, &data).expect("minisign rejected our signature");
    assert!(out.contains("made with a signify key"), "{out}");
}

#[test]
fn signify_encrypted_key_needs_its_passphrase() {
    let d = Dir::new();
    let (pubp, secp) = (d.path("e.pub"), d.path("e.sec"));
    // signify reads the passphrase from standard input when it is not a
    // terminal; the confirmation is then skipped.
    run_ok(
        SIGNIFY,
        &["-G", "-c", "enc", "-p", s(&pubp), "-s", s(&secp)],
        b"correct horse\n",
    );
    let public = PublicKey::read_file(&pubp).unwrap();
    let enc = EncryptedSecretKey::read_file(&secp).unwrap();
    assert!(enc.is_encrypted());
    assert_eq!(enc.kdfrounds, 42);
    assert!(matches!(
        SecretKey::read_file(&secp, None),
        Err(KeyError::InFile { source, .. }) if matches!(*source, KeyError::PassphraseRequired)
    ));
    let wrong = SecretKey::read_file(&secp, Some(b"incorrect horse")).unwrap_err();
    assert!(
        wrong.to_string().contains("incorrect passphrase"),
        "{wrong}"
    );
    assert!(wrong.to_string().contains("e.sec"), "{wrong}");

    let passfile = d.file("pass", b"correct horse\n");
    let pass = read_passphrase_file(&passfile).unwrap();
    let secret = SecretKey::read_file(&secp, Some(pass.as_bytes())).unwrap();
    assert_eq!(secret.public_key(), public);

    let data = d.file("data", b"encrypted key test\n");
    let sig = d.path("data.sig");
    sign_file(&secret, &data, "tc")
        .unwrap()
        .write_file(&sig)
        .unwrap();
    assert!(signify_verifies(&pubp, &sig, &data));
}

#[test]
fn keys_we_write_are_used_by_signify() {
    let d = Dir::new();
    let (public, secret) = generate("ours").unwrap();
    let (pubp, clear, encp) = (d.path("o.pub"), d.path("clear.sec"), d.path("enc.sec"));
    public.write_file(&pubp).unwrap();
    secret.write_file(&clear, None).unwrap();
    secret.write_file(&encp, Some(b"s3cret")).unwrap();
    assert!(
        matches!(public.write_file(&pubp), Err(KeyError::Write { .. })),
        "an existing key file must not be replaced"
    );
    let data = d.file("data", b"signed by signify with our keys\n");

    let sig1 = d.path("clear.sig");
    run_ok(
        SIGNIFY,
        &["-S", "-s", s(&clear), "-m", s(&data), "-x", s(&sig1)],
        b"",
    );
    let sig2 = d.path("enc.sig");
    run_ok(
        SIGNIFY,
        &["-S", "-s", s(&encp), "-m", s(&data), "-x", s(&sig2)],
        b"s3cret\n",
    );
    let wrong = run(
        SIGNIFY,
        &[
            "-S",
            "-s",
            s(&encp),
            "-m",
            s(&data),
            "-x",
            s(&d.path("x.sig")),
        ],
        b"not it\n",
    );
    assert!(
        !wrong.status.success(),
        "signify accepted a wrong passphrase"
    );
    for sig in [&sig1, &sig2] {
        assert!(signify_verifies(&pubp, sig, &data));
        verify_file(std::slice::from_ref(&public), sig, &data).unwrap();
    }
}

#[test]
fn minisign_keys_and_signatures_are_accepted() {
    let d = Dir::new();
    let (pubp, keyp) = (d.path("m.pub"), d.path("m.key"));
    run_ok(MINISIGN, &["-G", "-W", "-p", s(&pubp), "-s", s(&keyp)], b"");
    let public = PublicKey::read_file(&pubp).unwrap();
    // Older minisign prints the id without leading zeros (`%lX`), newer
    // ones pad to 16 digits as we do: compare the numbers.
    let shown = public
        .comment
        .strip_prefix("minisign public key ")
        .expect("minisign's comment");
    assert_eq!(
        u64::from_str_radix(shown, 16).unwrap(),
        u64::from_str_radix(&public.key_id().to_string(), 16).unwrap(),
        "key id must be the number minisign shows"
    );
    assert_eq!(public.key_id().to_string().len(), 16);
    assert_eq!(public.key_id().to_string(), format!("{shown:0>16}"));
    let data = d.file("data", &sample_data());

    // Default: BLAKE2b-512 prehashed ("ED").
    let hashed = d.path("hashed.minisig");
    run_ok(
        MINISIGN,
        &[
            "-S",
            "-s",
            s(&keyp),
            "-m",
            s(&data),
            "-x",
            s(&hashed),
            "-t",
            "prehashed tc",
        ],
        b"",
    );
    let v = verify_file(std::slice::from_ref(&public), &hashed, &data).unwrap();
    assert!(v.prehashed);
    assert_eq!(v.trusted_comment.as_deref(), Some("prehashed tc"));

    // Legacy pure Ed25519 ("Ed").
    let legacy = d.path("legacy.minisig");
    run_ok(
        MINISIGN,
        &[
            "-S",
            "-l",
            "-s",
            s(&keyp),
            "-m",
            s(&data),
            "-x",
            s(&legacy),
            "-t",
            "legacy tc",
        ],
        b"",
    );
    let v = verify_file(std::slice::from_ref(&public), &legacy, &data).unwrap();
    assert!(!v.prehashed);
    assert_eq!(v.trusted_comment.as_deref(), Some("legacy tc"));
    assert_eq!(v.key_id, public.key_id());

    // Tampering with minisign's own files.
    let mut bad = fs::read(&data).unwrap();
    bad[150_000] ^= 1;
    let bad = d.file("bad", &bad);
    for sig in [&hashed, &legacy] {
        assert!(matches!(
            verify_file(std::slice::from_ref(&public), sig, &bad),
            Err(VerifyError::BadSignature { .. })
        ));
        let text = fs::read_to_string(sig).unwrap();
        let edited = text.replace(" tc\n", " tC\n");
        assert!(matches!(
            verify(
                std::slice::from_ref(&public),
                edited.as_bytes(),
                &fs::read(&data).unwrap()[..]
            ),
            Err(VerifyError::BadTrustedComment { .. })
        ));
    }
    // minisign's key from the bare base64 form, as `-P` takes it.
    let line = fs::read_to_string(&pubp).unwrap();
    let b64 = line.lines().nth(1).unwrap();
    assert_eq!(PublicKey::from_base64(b64).unwrap().pubkey, public.pubkey);
}

/// Fixture: one key pair of ours on disk, a data file and our signature.
struct Signed {
    d: Dir,
    public: PublicKey,
    pubp: PathBuf,
    data: PathBuf,
    sig: PathBuf,
}

fn signed() -> Signed {
    let d = Dir::new();
    let (public, secret) = generate("tamper").unwrap();
    let pubp = d.path("t.pub");
    public.write_file(&pubp).unwrap();
    let data = d.file("data", &sample_data());
    let sig = d.path("data.sig");
    let sf = sign_file(&secret, &data, "timestamp:1\tfile:data").unwrap();
    sf.write_file(&sig).unwrap();
    Signed {
        d,
        public,
        pubp,
        data,
        sig,
    }
}

#[test]
fn our_signatures_verify_with_both_tools() {
    let t = signed();
    let text = fs::read_to_string(&t.sig).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[0],
        "untrusted comment: signature from tamper secret key"
    );
    assert_eq!(lines[2], "trusted comment: timestamp:1\tfile:data");
    assert!(signify_verifies(&t.pubp, &t.sig, &t.data));
    let out = minisign_verifies(&t.pubp, &t.sig, &t.data).expect("minisign rejected it");
    assert!(out.contains("timestamp:1\tfile:data"), "{out}");
    let v = verify_file(std::slice::from_ref(&t.public), &t.sig, &t.data).unwrap();
    assert_eq!(v.trusted_comment.as_deref(), Some("timestamp:1\tfile:data"));
}

#[test]
fn flipped_data_byte_fails_everywhere() {
    let t = signed();
    let mut data = fs::read(&t.data).unwrap();
    data[123_457] ^= 0x40;
    let bad = t.d.file("bad", &data);
    assert!(!signify_verifies(&t.pubp, &t.sig, &bad));
    assert!(minisign_verifies(&t.pubp, &t.sig, &bad).is_none());
    let e = verify_file(std::slice::from_ref(&t.public), &t.sig, &bad).unwrap_err();
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
    assert!(
        e.to_string().contains(&t.public.key_id().to_string()),
        "{e}"
    );
}

fn rewrite_line2(t: &Signed, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = fs::read_to_string(&t.sig).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut raw = b64.decode(&lines[1]).unwrap();
    edit(&mut raw);
    lines[1] = b64.encode(&raw);
    t.d.file("edited.sig", (lines.join("\n") + "\n").as_bytes())
}

#[test]
fn flipped_signature_byte_fails_everywhere() {
    let t = signed();
    let bad = rewrite_line2(&t, |raw| raw[40] ^= 1);
    assert!(!signify_verifies(&t.pubp, &bad, &t.data));
    assert!(minisign_verifies(&t.pubp, &bad, &t.data).is_none());
    assert!(matches!(
        verify_file(std::slice::from_ref(&t.public), &bad, &t.data),
        Err(VerifyError::BadSignature { .. })
    ));
}

#[test]
fn altered_trusted_comment_or_global_signature_is_caught() {
    let t = signed();
    let text = fs::read_to_string(&t.sig).unwrap();
    let edited = text.replace("timestamp:1", "timestamp:2");
    let bad = t.d.file("tc.sig", edited.as_bytes());
    // signify never looks at the trusted comment; minisign and we do.
    assert!(signify_verifies(&t.pubp, &bad, &t.data));
    assert!(minisign_verifies(&t.pubp, &bad, &t.data).is_none());
    let e = verify_file(std::slice::from_ref(&t.public), &bad, &t.data).unwrap_err();
    assert!(matches!(e, VerifyError::BadTrustedComment { .. }), "{e}");

    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let g = lines[3].clone();
    let first = if g.starts_with('A') { "B" } else { "A" };
    lines[3] = format!("{first}{}", &g[1..]);
    let bad = t.d.file("global.sig", (lines.join("\n") + "\n").as_bytes());
    assert!(matches!(
        verify_file(std::slice::from_ref(&t.public), &bad, &t.data),
        Err(VerifyError::BadTrustedComment { .. })
    ));

    // The untrusted comment is just that.
    let edited = text.replace("signature from", "whatever");
    let ok = t.d.file("untrusted.sig", edited.as_bytes());
    verify_file(std::slice::from_ref(&t.public), &ok, &t.data).unwrap();
}

#[test]
fn untrusted_key_is_named() {
    let t = signed();
    let (other, _) = generate("other").unwrap();
    let e = verify_file(std::slice::from_ref(&other), &t.sig, &t.data).unwrap_err();
    match &e {
        VerifyError::UnknownKey { key_id } => assert_eq!(*key_id, t.public.key_id()),
        _ => panic!("{e}"),
    }
    assert!(
        e.to_string().contains(&t.public.key_id().to_string()),
        "{e}"
    );
    let otherp = t.d.path("other.pub");
    other.write_file(&otherp).unwrap();
    assert!(!signify_verifies(&otherp, &t.sig, &t.data));

    // Same key number, different key: a forgery attempt, not an unknown key.
    let impostor = PublicKey {
        keynum: t.public.keynum,
        ..other
    };
    // A colliding key number among the trusted keys does not hide the real one.
    verify_file(&[impostor, t.public.clone()], &t.sig, &t.data).unwrap();
    let impostor = PublicKey {
        keynum: t.public.keynum,
        ..generate("x").unwrap().0
    };
    assert!(matches!(
        verify_file(&[impostor], &t.sig, &t.data),
        Err(VerifyError::BadSignature { .. })
    ));
}

#[test]
fn truncated_or_foreign_signature_files_are_malformed() {
    let t = signed();
    let text = fs::read(&t.sig).unwrap();
    let data = fs::read(&t.data).unwrap();
    let keys = [t.public.clone()];
    let line_of = |bytes: &[u8]| match verify(&keys, bytes, &data[..]) {
        Err(VerifyError::Malformed { line, .. }) => line,
        other => panic!("{other:?}"),
    };
    assert_eq!(line_of(b""), 1);
    assert_eq!(line_of(&text[..30]), 1, "cut inside the first line");
    let first_nl = text.iter().position(|b| *b == b'\n').unwrap();
    assert_eq!(line_of(&text[..first_nl + 1]), 2);
    assert_eq!(line_of(&text[..first_nl + 20]), 2);
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let upto = |n: usize| -> Vec<u8> {
        lines[..n]
            .iter()
            .flat_map(|l| l.iter().chain(b"\n"))
            .copied()
            .collect()
    };
    let mut three = upto(3);
    assert_eq!(line_of(&three), 4);
    three.extend_from_slice(b"QUJD\n");
    assert_eq!(line_of(&three), 4);
    let mut five = upto(4);
    five.extend_from_slice(b"junk\n");
    assert_eq!(line_of(&five), 5);
    let mut embedded = upto(2);
    embedded.extend_from_slice(b"an embedded message\n");
    assert_eq!(line_of(&embedded), 3);
    // Two lines alone are a signify signature and verify.
    verify(&keys, &upto(2), &data[..]).unwrap();

    // A signature under another algorithm.
    let other = rewrite_line2(&t, |raw| raw[1] = b'X');
    match verify_file(&keys, &other, &t.data) {
        Err(VerifyError::WrongAlgorithm { found }) => assert_eq!(found, "EX"),
        other => panic!("{other:?}"),
    }
    let e = verify_file(&keys, &t.d.file("cut.sig", &text[..first_nl + 20]), &t.data).unwrap_err();
    assert!(e.to_string().contains("cut.sig"), "{e}");
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn minisign_secret_key_is_refused_with_reason() {
    let d = Dir::new();
    let (pubp, keyp) = (d.path("m.pub"), d.path("m.key"));
    run_ok(MINISIGN, &["-G", "-W", "-p", s(&pubp), "-s", s(&keyp)], b"");
    let e = SecretKey::read_file(&keyp, None).unwrap_err();
    assert!(e.to_string().contains("minisign secret keys"), "{e}");
}

#[test]
fn signature_file_round_trips_through_text() {
    let t = signed();
    let sf = SignatureFile::read_file(&t.sig).unwrap();
    assert_eq!(sf.encode(), fs::read_to_string(&t.sig).unwrap());
    assert_eq!(sf.key_id(), t.public.key_id());
}
