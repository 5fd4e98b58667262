//! Signatures in runs: a maintainer publishes signed artifacts with
//! `--sign-key`, a domain consumes them with `--trust`; tampering, unknown
//! keys and missing signatures stop the run before any output changes.

use crate::common;
use crate::net;

use common::{bin, ok, root, tempdir};
use net::{HttpServer, Vsftpd};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str], container: &Path, extra: &[&Path]) -> Output {
    let mut c = bin();
    c.arg("--container").arg(container);
    let mut extra = extra.iter();
    for a in args {
        if *a == "{}" {
            c.arg(extra.next().expect("path for {}"));
        } else {
            c.arg(a);
        }
    }
    c.output().expect("run vm-container")
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (p, s) = (
        dir.join(format!("{name}.pub")),
        dir.join(format!("{name}.sec")),
    );
    let out = bin()
        .arg("keygen")
        .arg("-p")
        .arg(&p)
        .arg("-s")
        .arg(&s)
        .output()
        .unwrap();
    ok(&out);
    (p, s)
}

/// A maintainer signs and publishes over FTP, then a domain fetches the
/// same files over HTTP and checks them against the maintainer's key.
#[test]
#[ignore = "root tier: starts vsftpd, which runs only as root"]
fn maintainer_publishes_signed_over_ftp_and_a_domain_consumes_over_http() {
    let t = tempdir();
    let w = t.path();
    let (public, secret) = keygen(w, "maint");
    let ftp = Vsftpd::start();
    // the maintainer's container: pack the tree, change it, publish the
    // fork and the patch, all signed
    let maint = w.join("maint.vmc");
    fs::write(
        &maint,
        format!(
            "[create {tree} {etc}][end]\n\
             [replace /etc/HOSTNAME archive {etc} fork {fork} patch {patch}\n\nFCDOBBS\n] [end]\n",
            tree = root().join("examples/trees/base").display(),
            etc = ftp.url("/pub/images/etc.cpio.gz"),
            fork = ftp.url("/pub/images/fido-etc.cpio.gz"),
            patch = ftp.url("/pub/images/fido-etc.patch"),
        ),
    )
    .unwrap();
    ok(&run(
        &["--dir", "{}", "--trust-dir", "{}", "--sign-key", "{}"],
        &maint,
        &[&w.join("mdir"), w, &secret],
    ));
    for f in ["etc.cpio.gz", "fido-etc.cpio.gz", "fido-etc.patch"] {
        let data = ftp.root.join("pub/images").join(f);
        let sig = ftp.root.join("pub/images").join(format!("{f}.sig"));
        assert!(
            data.exists() && sig.exists(),
            "{f} or its .sig was not published"
        );
        // the real tools accept what we published
        let s = Command::new("signify-openbsd")
            .arg("-V")
            .arg("-q")
            .arg("-p")
            .arg(&public)
            .arg("-x")
            .arg(&sig)
            .arg("-m")
            .arg(&data)
            .status()
            .unwrap();
        assert!(s.success(), "signify rejects {f}");
        let m = Command::new("minisign")
            .arg("-V")
            .arg("-q")
            .arg("-p")
            .arg(&public)
            .arg("-x")
            .arg(&sig)
            .arg("-m")
            .arg(&data)
            .status()
            .unwrap();
        assert!(m.success(), "minisign rejects {f}");
    }

    // the same files served over HTTP to a domain that trusts the key
    let http = HttpServer::start();
    for f in [
        "fido-etc.cpio.gz",
        "fido-etc.cpio.gz.sig",
        "etc.cpio.gz",
        "etc.cpio.gz.sig",
        "fido-etc.patch",
        "fido-etc.patch.sig",
    ] {
        http.serve(
            &format!("/images/{f}"),
            &fs::read(ftp.root.join("pub/images").join(f)).unwrap(),
            None,
            None,
        );
    }
    let img = w.join("fido.img");
    let domain = w.join("domain.vmc");
    fs::write(
        &domain,
        format!(
            "name = 'fido'\n[image {img} 8M][end]\n[populate image {img} /mnt {fork}][end]\n[patch {etc} {patch} {out}][end]\n",
            img = img.display(),
            fork = http.url("/images/fido-etc.cpio.gz"),
            etc = http.url("/images/etc.cpio.gz"),
            patch = http.url("/images/fido-etc.patch"),
            out = w.join("patched.cpio.gz").display(),
        ),
    )
    .unwrap();
    let log = w.join("domain.log");
    let empty = w.join("no-keys");
    fs::create_dir_all(&empty).unwrap();
    ok(&run(
        &[
            "--dir",
            "{}",
            "--trust-dir",
            "{}",
            "--trust",
            "{}",
            "--log",
            "{}",
            "--stripped",
            "{}",
        ],
        &domain,
        &[&w.join("ddir"), &empty, &public, &log, &w.join("fido.cfg")],
    ));
    let cat = bin()
        .arg("cat")
        .arg(&img)
        .arg("/etc/HOSTNAME")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "FCDOBBS\n");
    let log = fs::read_to_string(&log).unwrap();
    let pk = fs::read_to_string(&public).unwrap();
    assert!(log.matches(" verified ").count() >= 3, "{log}");
    assert!(log.contains("key="), "{log}");
    let _ = pk;
}

struct Scenario {
    _t: tempfile::TempDir,
    w: PathBuf,
    http: HttpServer,
    public: PathBuf,
    secret: PathBuf,
    container: PathBuf,
    cfg: PathBuf,
}

/// A signed archive and patch over HTTP, a container that uses both, and
/// a stripped config from an earlier successful run.
fn scenario() -> Scenario {
    let t = tempdir();
    let w = t.path().to_path_buf();
    let (public, secret) = keygen(&w, "k");
    let archive = w.join("etc.cpio.gz");
    ok(&bin()
        .arg("pack")
        .arg(root().join("examples/trees/base"))
        .arg(&archive)
        .output()
        .unwrap());
    let patch = root().join("examples/patches/users.patch");
    ok(&bin()
        .arg("sign")
        .arg("-s")
        .arg(&secret)
        .arg(&archive)
        .output()
        .unwrap());
    let local_patch = w.join("users.patch");
    fs::copy(&patch, &local_patch).unwrap();
    ok(&bin()
        .arg("sign")
        .arg("-s")
        .arg(&secret)
        .arg(&local_patch)
        .output()
        .unwrap());
    let http = HttpServer::start();
    for f in [
        "etc.cpio.gz",
        "etc.cpio.gz.sig",
        "users.patch",
        "users.patch.sig",
    ] {
        http.serve(&format!("/{f}"), &fs::read(w.join(f)).unwrap(), None, None);
    }
    let container = w.join("c.vmc");
    fs::write(
        &container,
        format!(
            "name = 'x'\n[patch {a} {p} {fork}][end]\n",
            a = http.url("/etc.cpio.gz"),
            p = http.url("/users.patch"),
            fork = w.join("fork.cpio.gz").display()
        ),
    )
    .unwrap();
    let cfg = w.join("x.cfg");
    let s = Scenario {
        _t: t,
        w,
        http,
        public,
        secret,
        container,
        cfg,
    };
    ok(&s.run());
    s
}

impl Scenario {
    fn run(&self) -> Output {
        let nokeys = self.w.join("nokeys");
        fs::create_dir_all(&nokeys).unwrap();
        run(
            &[
                "--dir",
                "{}",
                "--trust-dir",
                "{}",
                "--trust",
                "{}",
                "--stripped",
                "{}",
            ],
            &self.container,
            &[&self.w.join("dir"), &nokeys, &self.public, &self.cfg],
        )
    }

    /// The run fails with exit 1 and `reason`, and changes no output.
    fn refused(&self, reason: &str) {
        let before = (
            fs::read(self.w.join("fork.cpio.gz")).unwrap(),
            fs::read(&self.cfg).unwrap(),
        );
        let out = self.run();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(reason), "{err:?} lacks {reason:?}");
        let after = (
            fs::read(self.w.join("fork.cpio.gz")).unwrap(),
            fs::read(&self.cfg).unwrap(),
        );
        assert!(before == after, "an output changed");
    }

    fn serve(&self, name: &str, body: &[u8]) {
        // a new ETag so the cache revalidates and downloads it
        self.http
            .serve(&format!("/{name}"), body, Some("\"tampered\""), None);
    }
}

fn flip(mut v: Vec<u8>, at: usize) -> Vec<u8> {
    let i = at.min(v.len() - 1);
    v[i] ^= 0x01;
    v
}

#[test]
fn a_flipped_byte_in_the_archive_stops_the_run() {
    let s = scenario();
    let a = fs::read(s.w.join("etc.cpio.gz")).unwrap();
    s.serve("etc.cpio.gz", &flip(a, 100));
    s.refused("signature check failed");
}

#[test]
fn a_flipped_byte_in_the_patch_stops_the_run() {
    let s = scenario();
    let p = fs::read(s.w.join("users.patch")).unwrap();
    s.serve("users.patch", &flip(p, 200));
    s.refused("signature check failed");
}

#[test]
fn a_flipped_byte_in_the_signature_stops_the_run() {
    let s = scenario();
    let sig = fs::read_to_string(s.w.join("etc.cpio.gz.sig")).unwrap();
    // change one base64 character of the signature line
    let mut lines: Vec<String> = sig.lines().map(str::to_string).collect();
    let l = &mut lines[1];
    // a character inside the signature bytes, replaced by a different one
    let at = l.len() - 10;
    let c = if &l[at..at + 1] == "A" { "B" } else { "A" };
    l.replace_range(at..at + 1, c);
    s.serve(
        "etc.cpio.gz.sig",
        format!("{}\n", lines.join("\n")).as_bytes(),
    );
    s.refused("signature check failed");
}

#[test]
fn a_signature_by_an_untrusted_key_stops_the_run() {
    let s = scenario();
    let (_, other) = keygen(&s.w, "other");
    let a = s.w.join("etc.cpio.gz");
    ok(&bin()
        .arg("sign")
        .arg("-s")
        .arg(&other)
        .arg(&a)
        .output()
        .unwrap());
    s.serve(
        "etc.cpio.gz.sig",
        &fs::read(s.w.join("etc.cpio.gz.sig")).unwrap(),
    );
    s.refused("which is not among the trusted keys");
    let _ = &s.secret;
}

#[test]
fn a_missing_signature_over_http_stops_the_run() {
    let s = scenario();
    s.http.route("/users.patch.sig", net::Behavior::Status(404));
    // the patch itself changes, so its signature is fetched again
    let p = fs::read(s.w.join("users.patch")).unwrap();
    s.serve("users.patch", &p);
    s.refused("missing or unreadable signature");
}

#[test]
#[ignore = "root tier: starts vsftpd, which runs only as root"]
fn a_missing_signature_over_ftp_stops_the_run() {
    let t = tempdir();
    let w = t.path();
    let (public, _secret) = keygen(w, "k");
    let ftp = Vsftpd::start();
    let dir = ftp.root.join("pub");
    ok(&bin()
        .arg("pack")
        .arg(root().join("examples/trees/base"))
        .arg(dir.join("etc.cpio.gz"))
        .output()
        .unwrap());
    let c = w.join("c.vmc");
    let img = w.join("i.img");
    fs::write(
        &c,
        format!(
            "[image {} 8M][end]\n[populate image {} /mnt {}][end]\n",
            img.display(),
            img.display(),
            ftp.url("/pub/etc.cpio.gz")
        ),
    )
    .unwrap();
    let nokeys = w.join("nokeys");
    fs::create_dir_all(&nokeys).unwrap();
    let out = run(
        &["--dir", "{}", "--trust-dir", "{}", "--trust", "{}"],
        &c,
        &[&w.join("d"), &nokeys, &public],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing or unreadable signature"));
    assert!(!img.exists(), "a refused run must not leave an image");
}

#[test]
fn require_signatures_checks_the_container_and_local_inputs() {
    let t = tempdir();
    let w = t.path();
    let (public, secret) = keygen(w, "k");
    let archive = w.join("etc.cpio.gz");
    ok(&bin()
        .arg("pack")
        .arg(root().join("examples/trees/base"))
        .arg(&archive)
        .output()
        .unwrap());
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!(
            "[populate dir {} /mnt {}][end]\n",
            w.join("out").display(),
            archive.display()
        ),
    )
    .unwrap();
    let nokeys = w.join("nokeys");
    fs::create_dir_all(&nokeys).unwrap();
    let go = || {
        run(
            &[
                "--dir",
                "{}",
                "--trust-dir",
                "{}",
                "--trust",
                "{}",
                "--require-signatures",
            ],
            &c,
            &[&w.join("d"), &nokeys, &public],
        )
    };
    // unsigned container
    let out = go();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("c.vmc: missing signature"));
    // signed container, unsigned local archive
    ok(&bin()
        .arg("sign")
        .arg("-s")
        .arg(&secret)
        .arg(&c)
        .output()
        .unwrap());
    let out = go();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing signature"));
    assert!(!w.join("out").exists());
    // everything signed: it runs
    ok(&bin()
        .arg("sign")
        .arg("-s")
        .arg(&secret)
        .arg(&archive)
        .output()
        .unwrap());
    ok(&go());
    assert_eq!(
        fs::read_to_string(w.join("out/etc/HOSTNAME")).unwrap(),
        "localhost\n"
    );
    // a changed container no longer verifies
    fs::write(
        &c,
        format!("{}\n# edited\n", fs::read_to_string(&c).unwrap()),
    )
    .unwrap();
    let out = go();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature check failed"));
}
