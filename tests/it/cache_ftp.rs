//! The download cache against vsftpd on 127.0.0.1.

use crate::net;

use net::{binary_payload, Vsftpd};
use std::path::Path;
use std::time::Duration;
use vm_container::cache::{Cache, Mode};
use vm_container::transport::{FetchOptions, Uri};

fn opts() -> FetchOptions {
    FetchOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        proxy_from_env: false,
        ..FetchOptions::default()
    }
}

#[test]
#[ignore = "root tier: starts vsftpd, which runs only as root"]
fn ftp_revalidation_skips_retr_and_allow_stale_survives_outage() {
    let mut ftp = Vsftpd::start();
    let data = binary_payload(64_000);
    std::fs::write(ftp.root.join("pub/a.cpio.gz"), &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), opts()).unwrap();
    let u = Uri::parse(&ftp.url("/pub/a.cpio.gz"), Path::new("/")).unwrap();

    let first = cache.get_or_fetch(&u, Mode::Online).unwrap();
    assert!(!first.from_cache);
    assert_eq!(std::fs::read(&first.path).unwrap(), data);
    let second = cache.get_or_fetch(&u, Mode::Online).unwrap();
    assert!(second.from_cache && !second.stale);
    assert_eq!(ftp.count("RETR"), 1, "unchanged file was transferred again");

    ftp.stop();
    assert!(cache.get_or_fetch(&u, Mode::Online).is_err());
    let stale = cache.get_or_fetch(&u, Mode::AllowStale).unwrap();
    assert!(stale.stale && stale.from_cache);
    assert_eq!(std::fs::read(&stale.path).unwrap(), data);
    let offline = cache.get_or_fetch(&u, Mode::Offline).unwrap();
    assert!(offline.from_cache && !offline.stale);
}
