//! OCI images as sources (docs/SPEC.md §4): an image of four layers
//! (files added, changed, hard-linked, a setuid file, a device, a fifo, a
//! symlink, files and a directory deleted by `.wh.` whiteouts, an opaque
//! directory, a whiteout beside a file of its own layer, a hard link whose
//! target the next layer replaces) built with umoci, read as `oci:DIR:TAG`, flattened by
//! `[populate dir]`, equals `umoci unpack`'s rootfs entry by entry; its
//! zstd copy by skopeo gives the same tree; pushed by skopeo to Debian's
//! docker-registry on 127.0.0.1 and pulled as `docker://…` it gives the
//! same tree, and a second run asks the registry one `HEAD` of the
//! manifest and nothing else. Hostile images (a whiteout reaching out, a
//! blob that does not match its digest, absurd sizes, a manifest that
//! never ends) fail with one line naming the URI and write nothing.
//! Oracles: umoci, skopeo, docker-registry, GNU tar.

use crate::common;

use base64::Engine as _;
use common::tempdir;
use common::trees::{assert_same, run_ok, sh_ok, show, tree_of, without_root};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vm_container::tree::manifest::Manifest;

/// Builds `$1/img` (tag `t`) with umoci, four layers, and unpacks it
/// into `$1/oracle`. Needs root for the owners and the device node.
const BUILD: &str = r#"
set -e
cd "$1"
umoci init --layout img
umoci new --image img:t
umoci unpack --image img:t b
r=b/rootfs
mkdir -p $r/etc $r/bin $r/opt/old/sub $r/var/dir-gone $r/dev $r/srv $r/usr/lib
printf 'root:x:0:0::/root:/bin/sh\n' > $r/etc/passwd
chmod 600 $r/etc/passwd; chown 1234:5678 $r/etc/passwd
printf '127.0.0.1 localhost\n' > $r/etc/hosts
ln $r/etc/hosts $r/etc/hosts.bak
ln -s ../usr/lib/busybox $r/bin/sh
head -c 100000 /dev/urandom > $r/usr/lib/busybox
cp $r/usr/lib/busybox $r/usr/lib/kept
chmod 4755 $r/usr/lib/busybox
printf a > $r/opt/old/a; printf b > $r/opt/old/sub/b
printf gone > $r/var/gone; printf x > $r/var/dir-gone/x
mknod $r/dev/null c 1 3
mkfifo $r/srv/fifo
printf one > $r/srv/orig; ln $r/srv/orig $r/srv/alias
chown -h 3000:3001 $r/bin/sh
umoci repack --image img:t b
rm -rf b
umoci unpack --image img:t b
printf 'changed\n' > $r/etc/hosts
printf 'new\n' > $r/etc/new
rm $r/var/gone; rm -r $r/var/dir-gone
chmod 0711 $r/srv
rm $r/srv/orig; printf two > $r/srv/orig
umoci repack --image img:t b
rm -rf b
mkdir -p l3/opt l3/usr/lib
printf 'fresh\n' > l3/opt/fresh
: > l3/opt/.wh..wh..opq
: > l3/usr/lib/.wh.busybox
printf late > l3/usr/lib/late; : > l3/usr/lib/.wh.late
mkdir -p l3/srv l4/srv
printf old > l3/srv/pair; ln l3/srv/pair l3/srv/pair-link
tar --numeric-owner --owner=0 --group=0 -C l3 --no-recursion -cf layer3.tar \
    opt opt/.wh..wh..opq opt/fresh usr usr/lib usr/lib/.wh.busybox usr/lib/late usr/lib/.wh.late \
    srv/pair srv/pair-link
umoci raw add-layer --image img:t layer3.tar
printf new > l4/srv/pair
tar --numeric-owner --owner=0 --group=0 -C l4 --no-recursion -cf layer4.tar srv/pair
umoci raw add-layer --image img:t layer4.tar
umoci config --image img:t --config.entrypoint /bin/sh --config.env FOO=bar --config.workingdir /srv --config.user 1000
umoci unpack --image img:t oracle
"#;

fn vmc(w: &Path, source: &str, target: &Path) -> Command {
    let container = w.join(format!(
        "c-{}.vmc",
        target.file_name().unwrap().to_string_lossy()
    ));
    fs::write(
        &container,
        format!("[populate dir {} /mnt {source}][end]\n", target.display()),
    )
    .unwrap();
    let mut c = common::bin();
    c.env_remove("SOURCE_DATE_EPOCH")
        .arg("--container")
        .arg(&container)
        .arg("--dir")
        .arg(w.join("work"))
        .arg("--log")
        .arg(w.join("run.log"));
    c
}

/// Runs `cmd`, which must fail with exit 1 or 2 and one error line
/// naming `uri` and holding `cause` (the run's log lines aside).
fn refused(cmd: &mut Command, uri: &str, cause: &str) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "{}",
        show(cmd, &out)
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{}", show(cmd, &out));
    assert!(
        lines[0].contains(uri) && lines[0].contains(cause),
        "want {uri} and {cause}: {}",
        show(cmd, &out)
    );
}

/// `[populate dir export/NAME]` from `source` gives `want`.
fn populates_as(w: &Path, source: &str, name: &str, want: &Manifest) {
    let target = w.join("export").join(name);
    run_ok(&mut vmc(w, source, &target));
    assert_same(
        want,
        &without_root(tree_of(&target)),
        &format!("umoci unpack vs {source}"),
    );
}

/// Builds the image in `w`; its rootfs as umoci unpacks it, and that
/// tree's manifest.
fn build_image(w: &Path) -> (PathBuf, Manifest) {
    let script = w.join("build.sh");
    fs::write(&script, BUILD).unwrap();
    run_ok(Command::new("sh").arg(&script).arg(w));
    let oracle = w.join("oracle/rootfs");
    let want = without_root(tree_of(&oracle));
    (oracle, want)
}

#[test]
#[ignore = "root tier: umoci builds and unpacks the image with owners and a device node"]
fn layout_images_flatten_as_umoci_unpacks_them() {
    let t = tempdir();
    let w = t.path();
    let (oracle, want) = build_image(w);
    // the oracle holds what the test means to exercise
    let has = |p: &str| want.keys().any(|k| k.to_string() == p);
    assert!(has("opt/fresh") && !has("opt/old") && !has("var/gone") && !has("var/dir-gone"));
    assert!(has("usr/lib/kept") && !has("usr/lib/busybox") && has("dev/null"));
    // a whiteout spares its own layer's file, whatever the order
    assert!(has("usr/lib/late"));
    // a link whose target the next layer replaced keeps the old content
    assert_eq!(fs::read(oracle.join("srv/alias")).unwrap(), b"one");
    assert_eq!(fs::read(oracle.join("srv/orig")).unwrap(), b"two");
    assert_eq!(fs::read(oracle.join("srv/pair-link")).unwrap(), b"old");
    assert_eq!(fs::read(oracle.join("srv/pair")).unwrap(), b"new");

    populates_as(
        w,
        &format!("oci:{}:t", w.join("img").display()),
        "root",
        &want,
    );
    let log = fs::read_to_string(w.join("run.log")).unwrap();
    assert!(log.contains("layers=4"), "{log}");
    assert!(
        log.contains(r#"entrypoint=["/bin/sh"]"#)
            && log.contains("user=1000")
            && log.contains("workdir=/srv")
            && log.contains("FOO=bar"),
        "{log}"
    );

    // the same image with zstd layers, as skopeo recompresses it
    run_ok(
        Command::new("skopeo")
            .current_dir(w)
            .args([
                "copy",
                "--insecure-policy",
                "--dest-compress-format",
                "zstd",
            ])
            .args(["--dest-compress", "oci:img:t", "oci:img-zstd:z"]),
    );
    let zstd_layers = fs::read_dir(w.join("img-zstd/blobs/sha256"))
        .unwrap()
        .filter(|e| {
            let mut head = [0u8; 4];
            fs::File::open(e.as_ref().unwrap().path())
                .and_then(|mut f| f.read_exact(&mut head))
                .is_ok()
                && head == [0x28, 0xb5, 0x2f, 0xfd]
        })
        .count();
    assert_eq!(zstd_layers, 4, "skopeo wrote zstd layers");
    populates_as(
        w,
        &format!("oci:{}:z", w.join("img-zstd").display()),
        "zstd",
        &want,
    );
}

/// Debian's docker-registry on 127.0.0.1, storage in `dir`, its log kept.
struct Registry {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Registry {
    /// `extra` is YAML added to the configuration (an `auth:` section).
    fn start(dir: &Path, extra: &str) -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("registry.yml");
        fs::create_dir_all(dir.join("storage")).unwrap();
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let log = dir.join("registry.log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::from(fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                fs::File::create(dir.join("registry.err")).unwrap(),
            ))
            .spawn()
            .expect("docker-registry (installed by scripts/setup.sh)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "docker-registry did not listen on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { child, port, log }
    }

    /// The requests vm-container made, as `METHOD URI` lines.
    fn our_requests(&self) -> Vec<String> {
        let mut text = fs::read_to_string(&self.log).unwrap_or_default();
        text.push_str(
            &fs::read_to_string(self.log.with_file_name("registry.err")).unwrap_or_default(),
        );
        text.lines()
            .filter(|l| l.contains("response completed") && l.contains("useragent=vm-container"))
            .map(|l| {
                let field = |k: &str| {
                    l.split_whitespace()
                        .find_map(|f| f.strip_prefix(k))
                        .unwrap_or("")
                        .to_string()
                };
                format!(
                    "{} {}",
                    field("http.request.method="),
                    field("http.request.uri=")
                )
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "root tier: umoci builds and unpacks the image with owners and a device node"]
fn registry_images_pull_as_the_layout_and_a_second_run_only_revalidates_the_tag() {
    let t = tempdir();
    let w = t.path();
    let (_, want) = build_image(w);
    let (reg, uri) = serve_layout(w, "", &[]);
    populates_as(w, &uri, "first", &want);
    let first = reg.our_requests();
    assert!(
        first
            .iter()
            .filter(|r| r.contains("/blobs/sha256:"))
            .count()
            >= 5,
        "config and four layers fetched: {first:?}"
    );

    // the second run: the tag is revalidated, nothing else is asked
    populates_as(w, &uri, "second", &want);
    let second: Vec<String> = reg.our_requests().split_off(first.len());
    assert_eq!(second, ["HEAD /v2/test/img/manifests/t"], "{second:?}");

    // by digest, cached: no request at all
    let digest = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(&uri),
    );
    let by_digest = format!("docker://127.0.0.1:{}/test/img@{}", reg.port, digest.trim());
    let before = reg.our_requests().len();
    populates_as(w, &by_digest, "third", &want);
    let after = reg.our_requests();
    assert_eq!(after.len(), before, "{:?}", &after[before..]);
}

#[test]
fn registries_asking_for_credentials_get_them_from_the_uri_or_the_auth_file() {
    let t = tempdir();
    let w = t.path();
    let (l1, l2) = (w.join("l1"), w.join("l2"));
    fs::create_dir_all(l1.join("etc")).unwrap();
    fs::create_dir_all(l2.join("etc")).unwrap();
    fs::write(l1.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(l1.join("etc/gone"), "gone\n").unwrap();
    fs::write(l2.join("etc/.wh.gone"), "").unwrap();
    fs::write(l2.join("etc/motd"), "hello\n").unwrap();
    layout(&w.join("img"), &[tar_of(&l1), tar_of(&l2)], |_| {});
    // htpasswd wants bcrypt, which libxcrypt (Python's crypt) writes
    let hash = run_ok(Command::new("python3").args([
        "-W",
        "ignore",
        "-c",
        "import crypt; print(crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)))",
    ]));
    fs::write(w.join("htpasswd"), format!("alice:{}\n", hash.trim())).unwrap();
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
        w.join("htpasswd").display()
    );
    let (reg, uri) = serve_layout(w, &auth, &["--dest-creds", "alice:s3cret"]);
    // each pull in a workspace of its own: nothing cached
    let pull = |name: &str, source: &str, extra: &[&Path]| {
        let ws = w.join(name);
        fs::create_dir_all(&ws).unwrap();
        let mut cmd = vmc(&ws, source, &ws.join("export/root"));
        for arg in extra {
            cmd.arg(arg);
        }
        (ws, cmd)
    };
    let want = layout_tree(w);
    assert_eq!(want.len(), 3, "etc, etc/hosts, etc/motd: {want:?}");

    let (_, mut cmd) = pull("anonymous", &uri, &[]);
    refused(&mut cmd, &uri, "the registry asks for credentials");

    let with_password = format!("docker://alice:s3cret@127.0.0.1:{}/test/img:t", reg.port);
    let (ws, mut cmd) = pull("in-uri", &with_password, &[]);
    run_ok(&mut cmd);
    assert_same(
        &want,
        &without_root(tree_of(&ws.join("export/root"))),
        "credentials in the URI",
    );
    let log = fs::read_to_string(ws.join("run.log")).unwrap();
    assert!(
        !log.contains("s3cret") && log.contains("alice:***@"),
        "{log}"
    );

    let auth = w.join("config.json");
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    fs::write(
        &auth,
        format!(
            r#"{{"auths": {{"127.0.0.1:{}": {{"auth": "{basic}"}}}}}}"#,
            reg.port
        ),
    )
    .unwrap();
    let (ws, mut cmd) = pull("auth-file", &uri, &[Path::new("--registry-auth"), &auth]);
    run_ok(&mut cmd);
    assert_same(
        &want,
        &without_root(tree_of(&ws.join("export/root"))),
        "--registry-auth",
    );

    let wrong = format!("docker://alice:wrong@127.0.0.1:{}/test/img:t", reg.port);
    let (_, mut cmd) = pull("wrong", &wrong, &[]);
    refused(
        &mut cmd,
        &format!("docker://alice:***@127.0.0.1:{}", reg.port),
        "HTTP 401",
    );
}

/// Debian's docker-registry with the `auth` YAML given, holding the
/// layout `W/img:t` pushed by skopeo (with `creds`), and its URI.
fn serve_layout(w: &Path, auth: &str, creds: &[&str]) -> (Registry, String) {
    let reg = Registry::start(&w.join("registry"), auth);
    let uri = format!("docker://127.0.0.1:{}/test/img:t", reg.port);
    run_ok(
        Command::new("skopeo")
            .current_dir(w)
            .args(["copy", "--insecure-policy", "--dest-tls-verify=false"])
            .args(creds)
            .args(["oci:img:t", &uri]),
    );
    (reg, uri)
}

/// The tree of the layout `W/img:t`, populated in a workspace of its own.
fn layout_tree(w: &Path) -> Manifest {
    let ws = w.join("layout");
    fs::create_dir_all(&ws).unwrap();
    let source = format!("oci:{}:t", w.join("img").display());
    run_ok(&mut vmc(&ws, &source, &ws.join("export/root")));
    without_root(tree_of(&ws.join("export/root")))
}

/// A token service on 127.0.0.1 answering every request with `token`;
/// the request lines it was sent.
fn token_server(token: String) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            log.lock()
                .unwrap()
                .push(text.lines().next().unwrap_or("").to_string());
            let body = format!(r#"{{"token": "{token}", "expires_in": 300}}"#);
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    (port, seen)
}

#[test]
fn registries_asking_for_a_bearer_token_get_one_from_the_realm() {
    let t = tempdir();
    let w = t.path();
    let l1 = w.join("l1");
    fs::create_dir_all(l1.join("etc")).unwrap();
    fs::write(l1.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    layout(&w.join("img"), &[tar_of(&l1)], |_| {});
    // the registry trusts tokens signed by this certificate's key
    sh_ok(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 \
         -subj /CN=token-issuer 2>/dev/null && openssl x509 -in cert.pem -outform DER -out cert.der",
        w,
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({
        "typ": "JWT", "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(fs::read(w.join("cert.der")).unwrap())]
    });
    let claims = serde_json::json!({
        "iss": "test-issuer", "sub": "alice", "aud": "test-registry",
        "exp": now + 3600, "nbf": now - 60, "iat": now - 60, "jti": "1",
        "access": [{"type": "repository", "name": "test/img", "actions": ["pull", "push"]}]
    });
    let signed = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    fs::write(w.join("signed"), &signed).unwrap();
    let signature = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(w.join("key.pem"))
        .arg(w.join("signed"))
        .output()
        .unwrap();
    assert!(signature.status.success());
    let (token_port, requests) =
        token_server(format!("{signed}.{}", b64.encode(&signature.stdout)));
    let auth = format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
        w.join("cert.pem").display()
    );
    let (reg, uri) = serve_layout(w, &auth, &[]);
    let pushed = requests.lock().unwrap().len();
    assert!(pushed > 0, "skopeo pushed without a token");

    let want = layout_tree(w);
    populates_as(w, &uri, "pulled", &want);
    let asked: Vec<String> = requests.lock().unwrap().split_off(pushed);
    assert_eq!(
        asked,
        ["GET /token?service=test-registry&scope=repository%3Atest%2Fimg%3Apull HTTP/1.1"],
        "one token, asked of the realm for the challenge's service and scope"
    );
    let registry = reg.our_requests();
    assert!(
        registry.iter().filter(|r| r.contains("/blobs/")).count() >= 2,
        "{registry:?}"
    );
}

/// Writes `bytes` as a blob of the layout `dir`; its digest and size.
fn put_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let hex = format!("{:x}", Sha256::digest(bytes));
    fs::write(blobs.join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

/// Writes the config and layers (uncompressed tars) of an image for
/// `arch` and its manifest, changed by `tweak`; the manifest's digest and
/// size.
fn put_image(
    dir: &Path,
    arch: &str,
    layers: &[Vec<u8>],
    tweak: impl Fn(&mut serde_json::Value),
) -> (String, usize) {
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Cmd": ["/bin/true"]}
    });
    let (cd, cs) = put_blob(dir, config.to_string().as_bytes());
    let layer_descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let (d, s) = put_blob(dir, l);
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s})
        })
        .collect();
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": layer_descs
    });
    tweak(&mut manifest);
    put_blob(dir, manifest.to_string().as_bytes())
}

/// Writes `oci-layout` and an `index.json` naming `(media type, digest,
/// size)` as tag `t`.
fn put_index(dir: &Path, media_type: &str, (digest, size): (String, usize)) {
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": media_type, "digest": digest, "size": size,
            "annotations": {"org.opencontainers.image.ref.name": "t"}}]})
        .to_string(),
    )
    .unwrap();
}

/// An OCI layout written by hand: `layers` are uncompressed tars.
fn layout(dir: &Path, layers: &[Vec<u8>], tweak: impl Fn(&mut serde_json::Value)) {
    let manifest = put_image(dir, "amd64", layers, tweak);
    put_index(dir, "application/vnd.oci.image.manifest.v1+json", manifest);
}

#[test]
fn an_index_gives_the_image_of_the_platform_asked_for() {
    let t = tempdir();
    let w = t.path();
    let img = w.join("img");
    let mut manifests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let tree = w.join(arch);
        fs::create_dir_all(tree.join("etc")).unwrap();
        fs::write(tree.join("etc/arch"), arch).unwrap();
        let (digest, size) = put_image(&img, arch, &[tar_of(&tree)], |_| {});
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "platform": {"os": "linux", "architecture": arch}
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests
    });
    let index = put_blob(&img, index.to_string().as_bytes());
    put_index(&img, "application/vnd.oci.image.index.v1+json", index);
    let uri = format!("oci:{}:t", img.display());
    for (platform, want) in [(None, "amd64"), (Some("linux/arm64"), "arm64")] {
        let target = w.join(format!("export/{want}"));
        let mut cmd = vmc(w, &uri, &target);
        cmd.args(platform.map(|p| ["--platform", p]).iter().flatten());
        run_ok(&mut cmd);
        assert_eq!(fs::read_to_string(target.join("etc/arch")).unwrap(), want);
    }
    let mut cmd = vmc(w, &uri, &w.join("export/s390x"));
    refused(
        cmd.args(["--platform", "linux/s390x"]),
        &uri,
        "no image for platform linux/s390x (offered: linux/amd64, linux/arm64;",
    );
}

/// A tar of `dir` by GNU tar, owners 0.
fn tar_of(dir: &Path) -> Vec<u8> {
    let out = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn hostile_layouts_are_refused_with_one_line_and_write_nothing() {
    let t = tempdir();
    let w = t.path();
    let good = w.join("good");
    fs::create_dir_all(good.join("etc")).unwrap();
    fs::write(good.join("etc/hosts"), "x\n").unwrap();
    let base = tar_of(&good);

    // a whiteout naming `..`: it would delete the layer's parent
    let evil = w.join("evil");
    fs::create_dir_all(evil.join("etc")).unwrap();
    fs::write(evil.join("etc/.wh..."), "").unwrap();
    layout(&w.join("whiteout"), &[base.clone(), tar_of(&evil)], |_| {});
    refused_image(w, "whiteout:t", "a whiteout reaching outside its directory");

    // a layer whose bytes are not those its digest names
    let img = w.join("mismatch");
    layout(&img, std::slice::from_ref(&base), |_| {});
    let layer = fs::read_dir(img.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| fs::read(p).unwrap() == base)
        .unwrap();
    let mut bytes = fs::read(&layer).unwrap();
    bytes[600] ^= 1;
    fs::write(&layer, bytes).unwrap();
    refused_image(w, "mismatch:t", "digest mismatch");

    // a config claiming an absurd size
    layout(&w.join("absurd"), std::slice::from_ref(&base), |m| {
        m["config"]["size"] = serde_json::json!(1u64 << 62);
    });
    refused_image(w, "absurd:t", "claims 4611686018427387904 bytes");

    // no such tag: the tags there are named
    refused_image(w, "mismatch:nope", "tags: t");
}

/// `oci:W/LAYOUT` is refused for `cause`, and nothing is written.
fn refused_image(w: &Path, layout: &str, cause: &str) {
    let uri = format!("oci:{}/{layout}", w.display());
    refused(&mut vmc(w, &uri, &w.join("export/x")), &uri, cause);
    assert!(
        !w.join("export").exists(),
        "{uri}: a refused image wrote its target"
    );
}

/// A server on 127.0.0.1 answering every request with `head` and then
/// `body` forever, until the client hangs up.
fn endless_server(head: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                if s.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                while s.write_all(&chunk).is_ok() {}
            });
        }
    });
    port
}

#[test]
fn a_manifest_that_never_ends_is_cut_at_its_limit() {
    let t = tempdir();
    let w = t.path();
    let port = endless_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n{",
    );
    let uri = format!("docker://127.0.0.1:{port}/test/endless:t");
    refused(
        &mut vmc(w, &uri, &w.join("export/e")),
        &uri,
        "larger than 4194304 bytes",
    );
    assert!(!w.join("export").exists());
}
