//! What a hostile or broken server can do to a run, through the binary:
//! trickle a body, send one without end, redirect elsewhere. Every case
//! ends quickly with one message naming the URI, and `--offline` or
//! `--allow-stale` runs are not held up by a run stuck downloading.

use crate::common;
use crate::net;

use common::{bin, ok, tempdir, Tmpfs};
use net::{Behavior, HttpServer};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A packed archive of a one-file tree.
fn archive(dir: &Path) -> Vec<u8> {
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/hostname"), "fido\n").unwrap();
    let out = dir.join("a.cpio.gz");
    ok(&bin().arg("pack").arg(&tree).arg(&out).output().unwrap());
    fs::read(out).unwrap()
}

/// A container populating a fresh directory from `url`.
fn container(dir: &Path, name: &str, url: &str) -> PathBuf {
    let c = dir.join(format!("{name}.vmc"));
    fs::write(
        &c,
        format!(
            "[populate dir {} /mnt {url}][end]\n",
            dir.join(format!("{name}-target")).display()
        ),
    )
    .unwrap();
    c
}

fn run(c: &Path, work: &Path, extra: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.arg("-q")
        .arg("--container")
        .arg(c)
        .arg("--dir")
        .arg(work)
        .args(extra)
        .env_remove("http_proxy")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The output of `child` if it ends within `limit`; killed otherwise.
fn within(mut child: Child, limit: Duration) -> Option<Output> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A server holding an archive, and a working directory whose cache holds
/// it after one run.
struct Cached {
    t: tempfile::TempDir,
    work: PathBuf,
    server: HttpServer,
    body: Vec<u8>,
    url: String,
}

impl Cached {
    fn new() -> Cached {
        let t = tempdir();
        let work = t.path().join("work");
        let server = HttpServer::start();
        let body = archive(t.path());
        server.serve("/a.cpio.gz", &body, Some("\"v1\""), None);
        let url = server.url("/a.cpio.gz");
        ok(&run(&container(t.path(), "first", &url), &work, &[])
            .output()
            .unwrap());
        Cached {
            t,
            work,
            server,
            body,
            url,
        }
    }
}

#[test]
fn offline_and_stale_runs_do_not_wait_for_a_stuck_download() {
    let Cached {
        t,
        work,
        server,
        body,
        url,
    } = Cached::new();

    // The server now answers with the same bytes, one a second.
    server.route(
        "/a.cpio.gz",
        Behavior::Trickle {
            body: body.clone(),
            every: Duration::from_secs(1),
        },
    );
    let stuck = run(&container(t.path(), "stuck", &url), &work, &[])
        .spawn()
        .unwrap();
    let asked = Instant::now();
    while server.requests().len() < 2 {
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "no second request"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // well into the body
    std::thread::sleep(Duration::from_millis(300));

    let mut offline = run(&container(t.path(), "offline", &url), &work, &["--offline"]);
    let started = Instant::now();
    let out = within(offline.spawn().unwrap(), Duration::from_secs(5));
    let took = started.elapsed();
    let out = out.expect("--offline waited for the stuck download");
    ok(&out);
    eprintln!("--offline beside a stuck download: {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(
        fs::read_to_string(t.path().join("offline-target/etc/hostname")).unwrap(),
        "fido\n"
    );

    // --allow-stale gives the other run a moment, then serves the copy.
    let mut stale = run(
        &container(t.path(), "stale", &url),
        &work,
        &["--allow-stale"],
    );
    let started = Instant::now();
    let out = within(stale.spawn().unwrap(), Duration::from_secs(8));
    let took = started.elapsed();
    let out = out.expect("--allow-stale waited for the stuck download");
    let err = ok(&out);
    eprintln!("--allow-stale beside a stuck download: {took:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(err.contains("using the cached copy"), "{err}");

    assert!(
        within(stuck, Duration::ZERO).is_none(),
        "the trickled download finished early"
    );
}

#[test]
fn timeout_cuts_a_trickling_body_and_names_the_uri() {
    let t = tempdir();
    let server = HttpServer::start();
    // never silent for more than 200 ms: no idle timeout trips
    server.route(
        "/slow.cpio.gz",
        Behavior::Trickle {
            body: vec![0; 1000],
            every: Duration::from_millis(200),
        },
    );
    let url = server.url("/slow.cpio.gz");
    let c = container(t.path(), "slow", &url);
    let started = Instant::now();
    let out = within(
        run(&c, &t.path().join("work"), &["--timeout", "2"])
            .spawn()
            .unwrap(),
        Duration::from_secs(10),
    )
    .expect("--timeout 2 did not cut the transfer");
    let took = started.elapsed();
    let err = stderr(&out);
    eprintln!("--timeout 2 on a trickle: {took:?}: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(took < Duration::from_millis(3500), "took {took:?}");
    assert!(err.contains(&format!("{url}: cut off after 2 s")), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_tmp_empty(&t.path().join("work"));
}

/// No partial download is left in the cache.
fn assert_tmp_empty(work: &Path) {
    let tmp = work.join("cache/tmp");
    let left: Vec<_> = fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
}

#[test]
#[ignore = "root tier: mounts a tmpfs"]
fn an_endless_body_stops_at_the_free_space_reserve() {
    let t = tempdir();
    let work = t.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let tmpfs = Tmpfs::mount(&work, "20m");
    let server = HttpServer::start();
    server.route("/endless.cpio.gz", Behavior::Endless);
    let url = server.url("/endless.cpio.gz");
    let c = container(t.path(), "endless", &url);
    let out = within(
        run(&c, &work, &[]).spawn().unwrap(),
        Duration::from_secs(60),
    )
    .expect("the endless body was not stopped");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let cache_tmp = work.join("cache/tmp");
    assert!(
        err.contains(&format!("{url}: stopped after "))
            && err.contains(&format!(
                "bytes: the download would fill the file system of {} (",
                cache_tmp.display()
            ))
            && err.contains("5% is kept in reserve"),
        "{err}"
    );
    assert_tmp_empty(&work);
    // It stopped short of the reserve: 5% of 20 MiB is 1 MiB.
    let received = server.body_bytes();
    eprintln!("endless body: stopped after the server sent {received} bytes: {err}");
    assert!(received > 10 << 20, "stopped early: {received}");
    let avail = tmpfs.available();
    assert!(avail > 18 << 20, "only {avail} bytes left free");
}

#[test]
fn max_download_stops_a_body_with_or_without_a_length() {
    let t = tempdir();
    let server = HttpServer::start();
    server.route("/endless.cpio.gz", Behavior::Endless);
    server.serve("/big.cpio.gz", &vec![0; 3 << 20], None, None);
    let limit = "the body is larger than the download limit of 1048576 bytes (--max-download)";
    for (path, why) in [
        ("/endless.cpio.gz", limit.to_string()),
        (
            "/big.cpio.gz",
            format!("0 bytes: the server announces 3145728 bytes; {limit}"),
        ),
    ] {
        let url = server.url(path);
        let c = container(t.path(), "limited", &url);
        let work = t.path().join("work");
        let out = within(
            run(&c, &work, &["--max-download", "1M"]).spawn().unwrap(),
            Duration::from_secs(30),
        )
        .expect("--max-download did not stop the body");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("{url}: stopped after ")), "{err}");
        assert!(err.trim_end().ends_with(&why), "{err}");
        assert_tmp_empty(&work);
    }
}

#[test]
fn offline_names_a_damaged_cached_copy() {
    let c = Cached::new();
    let (t, work, body, url) = (&c.t, &c.work, &c.body, &c.url);
    let blobs = work.join("cache/blobs/sha256");
    let blob = fs::read_dir(&blobs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut damaged = fs::read(&blob).unwrap();
    damaged[10] ^= 0xff;
    fs::write(&blob, damaged).unwrap();
    let out = run(&container(t.path(), "again", url), work, &["--offline"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.trim_end().ends_with(&format!(
            "cached copy of {url} is damaged (sha256 mismatch); run without --offline to fetch it again"
        )),
        "{err}"
    );
    // online, it is fetched again
    ok(&run(&container(t.path(), "repaired", url), work, &[])
        .output()
        .unwrap());
    assert_eq!(&fs::read(&blob).unwrap(), body);
}

/// The hotplug script's case: its budget is short, so a server trickling
/// bytes counts as down once --timeout passes, and --allow-stale starts the
/// domain from the verified cached copy.
#[test]
fn a_trickling_server_cut_by_timeout_lets_allow_stale_use_the_cache() {
    let c = Cached::new();
    c.server.route(
        "/a.cpio.gz",
        Behavior::Trickle {
            body: c.body.clone(),
            every: Duration::from_millis(200),
        },
    );
    let cmd = &mut run(
        &container(c.t.path(), "hotplug", &c.url),
        &c.work,
        &["--allow-stale", "--timeout", "1"],
    );
    let started = Instant::now();
    let out = within(cmd.spawn().unwrap(), Duration::from_secs(10)).expect("not cut");
    let took = started.elapsed();
    let err = ok(&out);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(err.contains("using the cached copy"), "{err}");
    assert_eq!(
        fs::read_to_string(c.t.path().join("hotplug-target/etc/hostname")).unwrap(),
        "fido\n"
    );
}
