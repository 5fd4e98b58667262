//! Local files: fetch with mtime/size revalidation, atomic publish.

use crate::net;

use net::{binary_payload, HttpServer};
use std::time::Duration;
use vm_container::transport::{
    fetch, publish, publish_many, Digest, FetchOptions, Fetched, TransferError, Uri,
};

fn opts() -> FetchOptions {
    FetchOptions {
        proxy_from_env: false,
        ..FetchOptions::default()
    }
}

#[test]
fn file_fetch_revalidates_by_mtime_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    let data = binary_payload(10_000);
    std::fs::write(&src, &data).unwrap();
    let dest = dir.path().join("dest");
    let u = Uri::parse("src.bin", dir.path()).unwrap();

    let got = fetch(&u, None, &dest, &opts()).unwrap();
    let Fetched::Downloaded {
        bytes,
        sha256,
        validators,
    } = got
    else {
        panic!("{got:?}")
    };
    assert_eq!(bytes, 10_000);
    assert_eq!(sha256, Digest::of_file(&src).unwrap().0);
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let v = validators.unwrap();
    assert_eq!(
        fetch(&u, Some(&v), &dest, &opts()).unwrap(),
        Fetched::NotModified
    );

    // Same size, new mtime: fetched again.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&src, vec![1u8; 10_000]).unwrap();
    let again = fetch(&u, Some(&v), &dest, &opts()).unwrap();
    assert!(matches!(again, Fetched::Downloaded { bytes: 10_000, .. }));

    let missing = Uri::parse("file:///nonexistent/x", dir.path()).unwrap();
    let err = fetch(&missing, None, &dest, &opts()).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/x"));
}

#[test]
fn file_publish_is_atomic_and_creates_directories() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    std::fs::write(&local, b"artifact bytes").unwrap();
    let u = Uri::parse("out/sub/a.cpio.gz", dir.path()).unwrap();
    let p = publish(&local, &u, &opts()).unwrap();
    assert_eq!(p.bytes, 14);
    let target = dir.path().join("out/sub/a.cpio.gz");
    assert_eq!(std::fs::read(&target).unwrap(), b"artifact bytes");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("out/sub"))
        .unwrap()
        .collect();
    assert_eq!(entries.len(), 1, "no temporary left");

    // A pinned destination refuses other content and keeps the old file.
    let wrong = Digest([0; 32]);
    let pinned = Uri::parse(&format!("out/sub/a.cpio.gz#sha256={wrong}"), dir.path()).unwrap();
    std::fs::write(&local, b"different").unwrap();
    let err = publish(&local, &pinned, &opts()).unwrap_err();
    assert!(matches!(err, TransferError::PinMismatch { .. }), "{err:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"artifact bytes");
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("out/sub"))
        .unwrap()
        .collect();
    assert_eq!(entries.len(), 1, "no temporary left after a failure");
}

#[test]
fn publish_many_local_is_all_or_nothing_before_renames() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let sig = dir.path().join("a.sig");
    std::fs::write(&a, b"A").unwrap();
    std::fs::write(&sig, b"S").unwrap();
    let ua = Uri::parse("rel/a", dir.path()).unwrap();
    let us = Uri::parse("rel/a.sig", dir.path()).unwrap();
    publish_many(&[(&a, &ua), (&sig, &us)], &opts()).unwrap();
    assert_eq!(std::fs::read(dir.path().join("rel/a")).unwrap(), b"A");
    assert_eq!(std::fs::read(dir.path().join("rel/a.sig")).unwrap(), b"S");

    // Second item unreadable: the first must not appear.
    let missing = dir.path().join("missing");
    let ub = Uri::parse("rel2/b", dir.path()).unwrap();
    let ubs = Uri::parse("rel2/b.sig", dir.path()).unwrap();
    let err = publish_many(&[(&a, &ub), (&missing, &ubs)], &opts()).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("rel2"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn http_put_publishes() {
    let server = HttpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("l");
    let data = binary_payload(5000);
    std::fs::write(&local, &data).unwrap();
    let u = Uri::parse(&server.url("/up/x.gz"), dir.path()).unwrap();
    publish(&local, &u, &opts()).unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.last().unwrap().method, "PUT");
    let back = dir.path().join("back");
    fetch(&u, None, &back, &opts()).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), data);
}
