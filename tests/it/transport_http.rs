//! HTTP fetching against a real server on 127.0.0.1.

use crate::net;

use net::{binary_payload, Behavior, HttpServer};
use std::path::Path;
use std::time::{Duration, Instant};
use vm_container::transport::{
    fetch, Digest, FetchOptions, Fetched, TransferError, Uri, Validators,
};

fn opts() -> FetchOptions {
    FetchOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        total_timeout: Some(Duration::from_secs(20)),
        proxy_from_env: false,
        ..FetchOptions::default()
    }
}

fn uri(s: &str) -> Uri {
    Uri::parse(s, Path::new("/")).unwrap()
}

fn sha(data: &[u8]) -> Digest {
    Digest::of_reader(&mut &data[..]).unwrap().0
}

#[test]
fn downloads_byte_exact_and_revalidates() {
    let server = HttpServer::start();
    // Looks like gzip to make sure nothing decodes it on the way.
    let mut body = vec![0x1f, 0x8b, 0x08, 0x00];
    body.extend(binary_payload(300_000));
    server.serve(
        "/a.cpio.gz",
        &body,
        Some("\"v1\""),
        Some("Tue, 15 Nov 1994 08:12:31 GMT"),
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");

    let got = fetch(&uri(&server.url("/a.cpio.gz")), None, &dest, &opts()).unwrap();
    let Fetched::Downloaded {
        bytes,
        sha256,
        validators,
    } = got
    else {
        panic!("expected a download, got {got:?}")
    };
    assert_eq!(bytes, body.len() as u64);
    assert_eq!(sha256, sha(&body));
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let validators = validators.expect("validators");
    assert_eq!(
        validators,
        Validators::Http {
            etag: Some("\"v1\"".into()),
            last_modified: Some("Tue, 15 Nov 1994 08:12:31 GMT".into())
        }
    );
    let first = server.requests();
    assert!(
        !first[0].headers.contains_key("accept-encoding")
            || first[0].headers["accept-encoding"] == "identity"
    );

    // Unchanged: conditional request, 304, nothing written.
    std::fs::remove_file(&dest).unwrap();
    let served = server.body_bytes();
    let again = fetch(
        &uri(&server.url("/a.cpio.gz")),
        Some(&validators),
        &dest,
        &opts(),
    )
    .unwrap();
    assert_eq!(again, Fetched::NotModified);
    assert_eq!(server.body_bytes(), served);
    assert!(!dest.exists());
    let last = server.requests().pop().unwrap();
    assert_eq!(
        last.headers.get("if-none-match").map(String::as_str),
        Some("\"v1\"")
    );
    assert_eq!(
        last.headers.get("if-modified-since").map(String::as_str),
        Some("Tue, 15 Nov 1994 08:12:31 GMT")
    );

    // Last-Modified alone also revalidates.
    server.serve("/lm", b"x", None, Some("Wed, 01 Jan 2025 00:00:00 GMT"));
    let v = Validators::Http {
        etag: None,
        last_modified: Some("Wed, 01 Jan 2025 00:00:00 GMT".into()),
    };
    assert_eq!(
        fetch(&uri(&server.url("/lm")), Some(&v), &dest, &opts()).unwrap(),
        Fetched::NotModified
    );

    // Changed: a new body and new validators.
    server.serve("/a.cpio.gz", b"new content", Some("\"v2\""), None);
    let changed = fetch(
        &uri(&server.url("/a.cpio.gz")),
        Some(&validators),
        &dest,
        &opts(),
    )
    .unwrap();
    assert!(
        matches!(changed, Fetched::Downloaded { bytes: 11, .. }),
        "{changed:?}"
    );
    assert_eq!(std::fs::read(&dest).unwrap(), b"new content");
}

#[test]
fn follows_redirects_but_not_forever() {
    let server = HttpServer::start();
    server.serve("/real", b"payload", None, None);
    server.route("/r1", Behavior::Redirect("/r2".into()));
    server.route("/r2", Behavior::Redirect("/real".into()));
    server.route("/loop", Behavior::Redirect("/loop".into()));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let got = fetch(&uri(&server.url("/r1")), None, &dest, &opts()).unwrap();
    assert!(matches!(got, Fetched::Downloaded { bytes: 7, .. }));
    assert_eq!(std::fs::read(&dest).unwrap(), b"payload");

    let err = fetch(&uri(&server.url("/loop")), None, &dest, &opts()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&server.url("/loop")), "{text}");
    assert!(text.to_lowercase().contains("redirect"), "{text}");
    let loops = server
        .requests()
        .iter()
        .filter(|r| r.path == "/loop")
        .count();
    assert!(loops <= 9, "followed {loops} redirects");
}

#[test]
fn error_statuses_name_uri_and_status() {
    let server = HttpServer::start();
    server.route("/boom", Behavior::Status(500));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    for (path, code) in [("/missing", 404u16), ("/boom", 500)] {
        let err = fetch(&uri(&server.url(path)), None, &dest, &opts()).unwrap_err();
        match &err {
            TransferError::HttpStatus { status, .. } => assert_eq!(*status, code),
            other => panic!("expected status error, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(&server.url(path)) && text.contains(&code.to_string()),
            "{text}"
        );
        assert_eq!(err.is_not_found(), code == 404);
        assert_eq!(err.is_outage(), code == 500);
    }
}

#[test]
fn body_cut_short_is_an_error() {
    let server = HttpServer::start();
    server.route(
        "/short",
        Behavior::Short {
            claimed: 100_000,
            body: vec![7u8; 1000],
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let err = fetch(&uri(&server.url("/short")), None, &dest, &opts()).unwrap_err();
    match &err {
        TransferError::Truncated {
            expected, received, ..
        } => {
            assert_eq!(*expected, 100_000);
            assert!(*received <= 1000);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(err.to_string().contains("/short"));
}

#[test]
fn slow_server_trips_the_timeout() {
    let server = HttpServer::start();
    server.route(
        "/slow",
        Behavior::Slow {
            delay: Duration::from_secs(5),
            body: b"late".to_vec(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let mut o = opts();
    o.read_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = fetch(&uri(&server.url("/slow")), None, &dest, &o).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, TransferError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("/slow"));
    assert!(err.is_outage());
}

#[test]
fn connection_refused_names_uri() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let u = uri(&format!("http://127.0.0.1:{port}/x"));
    let err = fetch(&u, None, &dir.path().join("o"), &opts()).unwrap_err();
    assert!(err.is_outage(), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}/x")),
        "{err}"
    );
}

#[test]
fn pin_is_checked() {
    let server = HttpServer::start();
    server.serve("/p", b"pinned body", None, None);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let good = sha(b"pinned body");
    let ok = fetch(
        &uri(&format!("{}#sha256={good}", server.url("/p"))),
        None,
        &dest,
        &opts(),
    );
    assert!(matches!(ok, Ok(Fetched::Downloaded { .. })));
    let wrong = sha(b"other");
    let err = fetch(
        &uri(&format!("{}#sha256={wrong}", server.url("/p"))),
        None,
        &dest,
        &opts(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&good.to_hex()) && text.contains(&wrong.to_hex()),
        "{text}"
    );
    assert!(!err.is_outage());
}

#[test]
fn proxy_from_environment_is_used_and_no_proxy_bypasses_it() {
    // The "proxy" is our own server: it accepts the CONNECT tunnel to a
    // host that does not resolve and answers the request inside it. The
    // proxy variables are given to a child process, never set in this one:
    // the tests share one process, and others fetch and spawn meanwhile.
    let proxy = HttpServer::start();
    let t = crate::common::tempdir();
    let w = t.path();
    let archive = crate::common::pack_base(w);
    proxy.serve("/t.cpio.gz", &std::fs::read(&archive).unwrap(), None, None);
    let container = w.join("c.vmc");
    std::fs::write(
        &container,
        "[populate dir out /mnt http://origin.invalid/t.cpio.gz][end]\n",
    )
    .unwrap();
    let run = |no_proxy: Option<&str>| {
        let mut cmd = crate::common::bin();
        cmd.current_dir(w)
            .arg("--container")
            .arg(&container)
            .arg("--dir")
            .arg(w.join("d"))
            .env("http_proxy", format!("http://{}", proxy.addr))
            .env_remove("no_proxy")
            .env_remove("NO_PROXY");
        if let Some(hosts) = no_proxy {
            cmd.env("no_proxy", hosts);
        }
        cmd.output().unwrap()
    };
    let got = run(None);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(w.join("out/etc/passwd").is_file());
    std::fs::remove_dir_all(w.join("d")).unwrap();
    let bypassed = run(Some("origin.invalid"));
    let seen = proxy.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].path, "origin.invalid:80");
    assert!(
        !bypassed.status.success(),
        "no_proxy host must be reached directly"
    );
}

#[test]
fn server_going_silent_mid_body_trips_the_idle_timeout() {
    let server = HttpServer::start();
    server.route(
        "/stall",
        Behavior::Stall {
            claimed: 10_000,
            body: vec![1u8; 100],
            hold: Duration::from_secs(5),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.read_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = fetch(&uri(&server.url("/stall")), None, &dir.path().join("o"), &o).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, TransferError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("/stall"), "{err}");
}

#[test]
fn https_goes_through_tls() {
    // A plain HTTP server cannot complete a TLS handshake: the failure
    // proves https is not silently sent in clear text.
    let server = HttpServer::start();
    server.serve("/x", b"clear", None, None);
    let dir = tempfile::tempdir().unwrap();
    let u = uri(&format!("https://{}/x", server.addr));
    let err = fetch(&u, None, &dir.path().join("o"), &opts()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("https://{}/x", server.addr)),
        "{err}"
    );
    assert_eq!(server.body_bytes(), 0);
}

#[test]
fn a_redirect_to_another_scheme_is_refused_by_name() {
    let server = HttpServer::start();
    server.route("/to-file", Behavior::Redirect("file:///etc/passwd".into()));
    server.route("/to-ftp", Behavior::Redirect("ftp://127.0.0.1/x".into()));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    for (path, target, scheme) in [
        ("/to-file", "file:///etc/passwd", "file"),
        ("/to-ftp", "ftp://127.0.0.1/x", "ftp"),
    ] {
        let err = fetch(&uri(&server.url(path)), None, &dest, &opts()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} → {target}: refusing to follow a redirect to another scheme ({scheme}): only http and https redirects are followed",
                server.url(path)
            )
        );
        assert!(!err.is_outage() && !err.is_not_found(), "{err:?}");
    }
    assert!(!dest.exists());
}

#[test]
fn errors_after_a_redirect_name_its_target() {
    let server = HttpServer::start();
    server.route("/moved", Behavior::Redirect("/gone".into()));
    server.route("/hop", Behavior::Redirect(server.url("/moved")));
    server.route("/broken", Behavior::Redirect("/boom".into()));
    server.route("/boom", Behavior::Status(500));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    for (path, last, code) in [
        ("/moved", "/gone", 404u16),
        ("/hop", "/gone", 404),
        ("/broken", "/boom", 500),
    ] {
        let err = fetch(&uri(&server.url(path)), None, &dest, &opts()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "{} → {}: server answered HTTP {code} ",
                server.url(path),
                server.url(last)
            )),
            "{text}"
        );
        assert_eq!(err.is_not_found(), code == 404);
        assert_eq!(err.is_outage(), code == 500);
    }
}

#[test]
fn the_total_deadline_cuts_a_trickling_body() {
    let server = HttpServer::start();
    server.route(
        "/trickle",
        Behavior::Trickle {
            body: vec![1; 1000],
            every: Duration::from_millis(100),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let mut o = opts();
    o.total_timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let err = fetch(&uri(&server.url("/trickle")), None, &dest, &o).unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1800), "took {took:?}");
    match &err {
        TransferError::Deadline {
            seconds, received, ..
        } => {
            assert_eq!(*seconds, 1);
            assert!(*received > 0 && *received < 1000, "{received}");
        }
        other => panic!("expected Deadline, got {other:?}"),
    }
    assert!(err.to_string().starts_with(&server.url("/trickle")));
    assert!(err.is_outage());
    assert!(!dest.exists(), "the partial body was left");
}

#[test]
fn the_total_deadline_also_covers_waiting_for_headers() {
    let server = HttpServer::start();
    server.route(
        "/late",
        Behavior::Slow {
            delay: Duration::from_secs(5),
            body: b"late".to_vec(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.read_timeout = Duration::from_secs(10);
    o.total_timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let err = fetch(&uri(&server.url("/late")), None, &dir.path().join("o"), &o).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            TransferError::Deadline {
                seconds: 1,
                received: 0,
                ..
            }
        ),
        "{err:?}"
    );
}
