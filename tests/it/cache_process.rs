//! Two processes sharing one cache directory at once.
//!
//! The test binary runs itself twice as the worker processes: with
//! `CACHE_WORKER_URL` set, the test body is the worker.

use crate::net;

use net::{binary_payload, HttpServer};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use vm_container::cache::{Cache, Mode};
use vm_container::transport::{Digest, FetchOptions, Uri};

#[test]
fn two_processes_share_a_cache() {
    if let (Ok(url), Ok(dir)) = (
        std::env::var("CACHE_WORKER_URL"),
        std::env::var("CACHE_WORKER_DIR"),
    ) {
        let opts = FetchOptions {
            proxy_from_env: false,
            read_timeout: Duration::from_secs(10),
            ..FetchOptions::default()
        };
        let cache = Cache::open(&dir, opts).unwrap();
        let blob = cache
            .get_or_fetch(&Uri::parse(&url, Path::new("/")).unwrap(), Mode::Online)
            .unwrap();
        println!(
            "WORKER from_cache={} sha256={}",
            blob.from_cache, blob.sha256
        );
        return;
    }
    let server = HttpServer::start();
    let body = binary_payload(3_000_000);
    server.serve("/shared", &body, Some("\"shared\""), None);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "cache_process::two_processes_share_a_cache",
                    "--nocapture",
                ])
                .env("CACHE_WORKER_URL", server.url("/shared"))
                .env("CACHE_WORKER_DIR", dir.path())
                .output_async()
        })
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    let digest = Digest::of_reader(&mut &body[..]).unwrap().0;
    let downloads = outputs
        .iter()
        .filter(|o| o.contains("WORKER from_cache=false"))
        .count();
    let cached = outputs
        .iter()
        .filter(|o| o.contains("WORKER from_cache=true"))
        .count();
    assert_eq!((downloads, cached), (1, 1), "{outputs:?}");
    assert!(outputs.iter().all(|o| o.contains(&digest.to_hex())));
    assert_eq!(server.body_bytes(), body.len() as u64);
}

trait SpawnPiped {
    fn output_async(&mut self) -> std::process::Child;
}

impl SpawnPiped for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}
