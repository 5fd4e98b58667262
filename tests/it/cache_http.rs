//! The download cache against a real HTTP server on 127.0.0.1.

use crate::net;

use net::{binary_payload, Behavior, HttpServer};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;
use vm_container::cache::{Cache, CacheError, Mode};
use vm_container::transport::{Digest, FetchOptions, Uri};

fn opts() -> FetchOptions {
    FetchOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
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
fn unchanged_resource_is_revalidated_not_downloaded() {
    let server = HttpServer::start();
    let body = binary_payload(100_000);
    server.serve(
        "/a",
        &body,
        Some("\"e1\""),
        Some("Mon, 01 Jan 2024 00:00:00 GMT"),
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), opts()).unwrap();
    let u = uri(&server.url("/a"));

    let first = cache.get_or_fetch(&u, Mode::Online).unwrap();
    assert!(!first.from_cache && !first.stale);
    assert_eq!(first.sha256, sha(&body));
    assert_eq!(first.bytes, body.len() as u64);
    assert_eq!(
        first.path,
        dir.path().join("blobs/sha256").join(sha(&body).to_hex())
    );
    assert_eq!(std::fs::read(&first.path).unwrap(), body);
    assert_eq!(server.body_bytes(), body.len() as u64);
    let validated_before = cache.entry(&u).unwrap().unwrap().validated;

    let second = Cache::open(dir.path(), opts())
        .unwrap()
        .get_or_fetch(&u, Mode::Online)
        .unwrap();
    assert!(second.from_cache && !second.stale);
    assert_eq!(second.sha256, first.sha256);
    assert_eq!(
        server.body_bytes(),
        body.len() as u64,
        "second fetch downloaded the body"
    );
    let last = server.requests().pop().unwrap();
    assert_eq!(
        last.headers.get("if-none-match").map(String::as_str),
        Some("\"e1\"")
    );
    assert!(cache.entry(&u).unwrap().unwrap().validated >= validated_before);

    // Changed on the server: downloaded again, new blob, new index.
    server.serve("/a", b"version two", Some("\"e2\""), None);
    let third = cache.get_or_fetch(&u, Mode::Online).unwrap();
    assert!(!third.from_cache);
    assert_eq!(third.sha256, sha(b"version two"));
    assert_eq!(std::fs::read(&third.path).unwrap(), b"version two");
    assert_eq!(
        cache.entry(&u).unwrap().unwrap().sha256,
        sha(b"version two")
    );
}

#[test]
fn offline_serves_cached_copy_or_says_not_in_cache() {
    let server = HttpServer::start();
    server.serve("/a", b"cached body", Some("\"x\""), None);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), opts()).unwrap();
    let u = uri(&server.url("/a"));
    cache.get_or_fetch(&u, Mode::Online).unwrap();
    let before = server.requests().len();

    let off = cache.get_or_fetch(&u, Mode::Offline).unwrap();
    assert!(off.from_cache);
    assert_eq!(std::fs::read(&off.path).unwrap(), b"cached body");
    assert_eq!(
        server.requests().len(),
        before,
        "offline mode touched the network"
    );

    let other = uri(&server.url("/never-fetched"));
    let err = cache.get_or_fetch(&other, Mode::Offline).unwrap_err();
    assert!(matches!(err, CacheError::NotInCache { .. }), "{err:?}");
    assert!(err.to_string().contains("/never-fetched") && err.to_string().contains("not in cache"));
    assert_eq!(server.requests().len(), before);
}

#[test]
fn allow_stale_serves_cached_copy_when_server_is_down() {
    let mut server = HttpServer::start();
    server.serve("/a", b"stale but fine", Some("\"s\""), None);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), opts()).unwrap();
    let u = uri(&server.url("/a"));
    cache.get_or_fetch(&u, Mode::Online).unwrap();
    server.stop();

    let err = cache.get_or_fetch(&u, Mode::Online).unwrap_err();
    assert!(err.to_string().contains(&u.to_string()), "{err}");
    let stale = cache.get_or_fetch(&u, Mode::AllowStale).unwrap();
    assert!(stale.stale && stale.from_cache);
    assert_eq!(std::fs::read(&stale.path).unwrap(), b"stale but fine");

    // Nothing cached: allow-stale still fails.
    let never = uri(&server.url("/b"));
    assert!(cache.get_or_fetch(&never, Mode::AllowStale).is_err());
}

#[test]
fn allow_stale_does_not_hide_a_missing_resource() {
    let server = HttpServer::start();
    server.serve("/a", b"body", Some("\"s\""), None);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), opts()).unwrap();
    let u = uri(&server.url("/a"));
    cache.get_or_fetch(&u, Mode::Online).unwrap();
    server.route("/a", Behavior::Status(404));
    let err = cache.get_or_fetch(&u, Mode::AllowStale).unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

#[test]
fn damaged_blob_is_not_served() {
    let server = HttpServer::start();
    server.serve("/a", b"precious", Some("\"p\""), None);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), opts()).unwrap();
    let u = uri(&server.url("/a"));
    let blob = cache.get_or_fetch(&u, Mode::Online).unwrap();
    std::fs::write(&blob.path, b"tampered").unwrap();

    // Offline, the damage is named, and so is the way to repair it.
    let err = cache.get_or_fetch(&u, Mode::Offline).unwrap_err();
    assert!(matches!(err, CacheError::Damaged { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cached copy of {} is damaged (sha256 mismatch); run without --offline to fetch it again",
            server.url("/a")
        )
    );
    // Online: a full, unconditional download repairs it.
    let served = server.body_bytes();
    let fixed = cache.get_or_fetch(&u, Mode::Online).unwrap();
    assert!(!fixed.from_cache);
    assert_eq!(std::fs::read(&fixed.path).unwrap(), b"precious");
    assert_eq!(server.body_bytes(), served + 8);
    assert!(!server
        .requests()
        .pop()
        .unwrap()
        .headers
        .contains_key("if-none-match"));
}

#[test]
fn pinned_blob_is_served_without_network() {
    let server = HttpServer::start();
    server.serve("/a", b"pinned", None, None);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), opts()).unwrap();
    let pinned = uri(&format!("{}#sha256={}", server.url("/a"), sha(b"pinned")));
    let first = cache.get_or_fetch(&pinned, Mode::Online).unwrap();
    assert!(!first.from_cache);
    let n = server.requests().len();
    let again = cache.get_or_fetch(&pinned, Mode::Online).unwrap();
    assert!(again.from_cache);
    assert_eq!(server.requests().len(), n);
    // A wrong pin is refused and caches nothing under it.
    let wrong = uri(&format!("{}#sha256={}", server.url("/a"), sha(b"other")));
    let err = cache.get_or_fetch(&wrong, Mode::Online).unwrap_err();
    assert!(err.to_string().contains(&sha(b"other").to_hex()), "{err}");
    assert!(!cache.blob_path(&sha(b"other")).exists());
}

#[test]
fn concurrent_users_of_one_cache_download_once() {
    // Separate `Cache` values open the lock file separately, so flock
    // excludes them as it would separate processes.
    let server = HttpServer::start();
    let body = binary_payload(2_000_000);
    server.serve("/big", &body, Some("\"big\""), None);
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("/big");
    let threads = 4;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (barrier, url, path) = (barrier.clone(), url.clone(), dir.path().to_path_buf());
            std::thread::spawn(move || {
                let cache = Cache::open(&path, opts()).unwrap();
                barrier.wait();
                cache.get_or_fetch(&uri(&url), Mode::Online).unwrap()
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| !r.from_cache).count(), 1);
    assert_eq!(
        server.body_bytes(),
        body.len() as u64,
        "downloaded more than once"
    );
    for r in &results {
        assert_eq!(r.sha256, sha(&body));
        assert_eq!(std::fs::read(&r.path).unwrap(), body);
    }
    // Nothing left in progress.
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn concurrent_fetches_of_different_uris_do_not_interfere() {
    let server = HttpServer::start();
    for i in 0..6 {
        server.serve(
            &format!("/f{i}"),
            &binary_payload(50_000 + i),
            Some(&format!("\"{i}\"")),
            None,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (url, path) = (server.url(&format!("/f{i}")), dir.path().to_path_buf());
            std::thread::spawn(move || {
                let cache = Cache::open(&path, opts()).unwrap();
                cache.get_or_fetch(&uri(&url), Mode::Online).unwrap()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().unwrap();
        assert_eq!(std::fs::read(&r.path).unwrap(), binary_payload(50_000 + i));
    }
}

#[test]
fn local_files_are_cached_and_revalidated() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::write(&src, b"local one").unwrap();
    let cache = Cache::open(dir.path().join("cache"), opts()).unwrap();
    let u = Uri::parse("src", dir.path()).unwrap();
    assert!(!cache.get_or_fetch(&u, Mode::Online).unwrap().from_cache);
    assert!(cache.get_or_fetch(&u, Mode::Online).unwrap().from_cache);
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&src, b"local two!").unwrap();
    let r = cache.get_or_fetch(&u, Mode::Offline).unwrap();
    assert!(!r.from_cache, "local files are read even offline");
    assert_eq!(std::fs::read(&r.path).unwrap(), b"local two!");
}

#[test]
fn a_held_lock_holds_up_neither_offline_nor_stale_reads() {
    let server = HttpServer::start();
    server.serve("/a", b"held", Some("\"h\""), None);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), opts()).unwrap();
    let u = uri(&server.url("/a"));
    cache.get_or_fetch(&u, Mode::Online).unwrap();
    // another user of the cache is busy with this URI
    let lock_file = std::fs::read_dir(dir.path().join("locks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let held = vm_container::cache::lock::FileLock::exclusive(&lock_file).unwrap();
    assert!(
        vm_container::cache::lock::FileLock::try_exclusive(&lock_file)
            .unwrap()
            .is_none()
    );

    let started = std::time::Instant::now();
    let offline = cache.get_or_fetch(&u, Mode::Offline).unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(offline.from_cache && !offline.stale);
    assert_eq!(std::fs::read(&offline.path).unwrap(), b"held");

    let started = std::time::Instant::now();
    let stale = cache.get_or_fetch(&u, Mode::AllowStale).unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(stale.from_cache && stale.stale);
    // pinned content is never stale
    let pinned = uri(&format!("{}#sha256={}", server.url("/a"), sha(b"held")));
    assert!(!cache.get_or_fetch(&pinned, Mode::AllowStale).unwrap().stale);
    drop(held);
    let fresh = cache.get_or_fetch(&u, Mode::AllowStale).unwrap();
    assert!(!fresh.stale);
}
