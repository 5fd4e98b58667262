//! FTP fetching and publishing against Debian's vsftpd on 127.0.0.1.
//!
//! The server converts line ends in ASCII mode (`ascii_*_enable=YES`), so
//! byte-exact round trips of CR/LF data prove the client uses binary mode.

use crate::net;

use net::{binary_payload, Vsftpd};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};
use vm_container::transport::{
    fetch, publish, publish_many, Digest, FetchOptions, Fetched, TransferError, Uri, Validators,
};

fn opts() -> FetchOptions {
    FetchOptions {
        connect_timeout: Duration::from_secs(3),
        read_timeout: Duration::from_secs(5),
        total_timeout: Some(Duration::from_secs(30)),
        proxy_from_env: false,
        ..FetchOptions::default()
    }
}

fn uri(s: &str) -> Uri {
    Uri::parse(s, Path::new("/")).unwrap()
}

#[test]
#[ignore = "root tier: starts vsftpd, which runs only as root"]
fn download_and_mdtm_size_revalidation() {
    let ftp = Vsftpd::start();
    let data = binary_payload(200_000);
    std::fs::write(ftp.root.join("pub/image.cpio.gz"), &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let u = uri(&ftp.url("/pub/image.cpio.gz"));

    let got = fetch(&u, None, &dest, &opts()).unwrap();
    let Fetched::Downloaded {
        bytes,
        sha256,
        validators,
    } = got
    else {
        panic!("expected download, got {got:?}")
    };
    assert_eq!(bytes, data.len() as u64);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        data,
        "binary download must be byte-exact"
    );
    assert_eq!(sha256, Digest::of_reader(&mut &data[..]).unwrap().0);
    let validators = validators.expect("MDTM and SIZE validators");
    match &validators {
        Validators::Ftp {
            mdtm: Some(_),
            size: Some(n),
        } => assert_eq!(*n, data.len() as u64),
        other => panic!("unexpected validators {other:?}"),
    }
    assert_eq!(ftp.count("RETR"), 1);

    // Unchanged: no RETR.
    let again = fetch(&u, Some(&validators), &dest, &opts()).unwrap();
    assert_eq!(again, Fetched::NotModified);
    assert_eq!(
        ftp.count("RETR"),
        1,
        "revalidation must not transfer the file"
    );
    assert!(ftp.count("MDTM") >= 2 && ftp.count("SIZE") >= 2);

    // Changed size: downloaded again.
    std::fs::write(ftp.root.join("pub/image.cpio.gz"), b"short now").unwrap();
    let changed = fetch(&u, Some(&validators), &dest, &opts()).unwrap();
    assert!(
        matches!(changed, Fetched::Downloaded { bytes: 9, .. }),
        "{changed:?}"
    );
    assert_eq!(ftp.count("RETR"), 2);
}

#[test]
#[ignore = "root tier: starts vsftpd, which runs only as root"]
fn missing_file_and_login_failure_are_clear() {
    let ftp = Vsftpd::start();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let err = fetch(&uri(&ftp.url("/pub/nope.gz")), None, &dest, &opts()).unwrap_err();
    assert!(matches!(err, TransferError::FtpNotFound { .. }), "{err:?}");
    assert!(err.is_not_found());
    assert!(err.to_string().contains("/pub/nope.gz"), "{err}");

    let bad = uri(&format!(
        "ftp://mallory:s3cr%40t@127.0.0.1:{}/pub/x",
        ftp.port
    ));
    let err = fetch(&bad, None, &dest, &opts()).unwrap_err();
    assert!(matches!(err, TransferError::FtpLogin { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("mallory") && text.contains("530"), "{text}");
    assert!(!text.contains("s3cr"), "password leaked: {text}");
}

#[test]
#[ignore = "root tier: starts vsftpd, which runs only as root"]
fn password_is_percent_decoded_for_login() {
    // vsftpd takes any password for the anonymous account; the login
    // working with an encoded `@` and `:` shows the URI form is accepted.
    let ftp = Vsftpd::start();
    std::fs::write(ftp.root.join("pub/f"), b"hello").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let u = uri(&format!(
        "ftp://anonymous:me%40example%3Aorg@127.0.0.1:{}/pub/f",
        ftp.port
    ));
    let got = fetch(&u, None, &dir.path().join("o"), &opts()).unwrap();
    assert!(matches!(got, Fetched::Downloaded { bytes: 5, .. }));
    let log = std::fs::read_to_string(&ftp.log).unwrap();
    assert!(
        log.contains("me@example:org"),
        "server saw the decoded password"
    );
}

#[test]
#[ignore = "root tier: starts vsftpd, which runs only as root"]
fn upload_round_trip_is_binary_and_creates_directories() {
    let ftp = Vsftpd::start();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("art.cpio.gz");
    let data = binary_payload(150_000);
    std::fs::write(&local, &data).unwrap();
    let dest_uri = uri(&ftp.url("/pub/new/deeper/art%20x.cpio.gz"));

    let published = publish(&local, &dest_uri, &opts()).unwrap();
    assert_eq!(published.bytes, data.len() as u64);
    let on_server = ftp.root.join("pub/new/deeper/art x.cpio.gz");
    assert_eq!(
        std::fs::read(&on_server).unwrap(),
        data,
        "upload must be byte-exact"
    );
    assert!(ftp.count("MKD") >= 2);
    assert_eq!(ftp.count("RNFR"), 1);
    assert_eq!(ftp.count("RNTO"), 1);
    // The data went to a temporary name; the final name only ever appears
    // through the rename, complete.
    let log = std::fs::read_to_string(&ftp.log).unwrap();
    assert!(
        log.contains("\"STOR /pub/new/deeper/.art x.cpio.gz.part-"),
        "{log}"
    );
    assert!(
        !log.contains("\"STOR /pub/new/deeper/art x.cpio.gz"),
        "{log}"
    );
    assert!(
        log.contains("\"RNTO /pub/new/deeper/art x.cpio.gz\""),
        "{log}"
    );
    // No temporaries are left beside the result.
    let names: Vec<_> = std::fs::read_dir(ftp.root.join("pub/new/deeper"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["art x.cpio.gz".to_string()]);

    let back = dir.path().join("back");
    let got = fetch(&dest_uri, None, &back, &opts()).unwrap();
    assert!(matches!(got, Fetched::Downloaded { .. }));
    assert_eq!(std::fs::read(&back).unwrap(), data);

    // Existing directories are fine; the file is replaced.
    std::fs::write(&local, b"second").unwrap();
    publish(&local, &dest_uri, &opts()).unwrap();
    assert_eq!(std::fs::read(&on_server).unwrap(), b"second");
}

#[test]
#[ignore = "root tier: starts vsftpd, which runs only as root"]
fn publish_many_renames_only_after_all_uploads() {
    let ftp = Vsftpd::start();
    let dir = tempfile::tempdir().unwrap();
    let art = dir.path().join("a");
    let sig = dir.path().join("a.sig");
    std::fs::write(&art, b"artifact").unwrap();
    std::fs::write(&sig, b"signature").unwrap();
    let a = uri(&ftp.url("/pub/rel/a"));
    let s = uri(&ftp.url("/pub/rel/a.sig"));
    publish_many(&[(&art, &a), (&sig, &s)], &opts()).unwrap();
    assert_eq!(
        std::fs::read(ftp.root.join("pub/rel/a")).unwrap(),
        b"artifact"
    );
    assert_eq!(
        std::fs::read(ftp.root.join("pub/rel/a.sig")).unwrap(),
        b"signature"
    );
    // Both STORs precede both renames in the server's log.
    let log = std::fs::read_to_string(&ftp.log).unwrap();
    let last_stor = log.rfind("\"STOR ").unwrap();
    let first_rnfr = log.find("\"RNFR ").unwrap();
    assert!(
        last_stor < first_rnfr,
        "a rename happened before every upload finished"
    );

    // A failing second item (directory not creatable: a file is in the way)
    // leaves neither the first item nor any temporary behind.
    std::fs::write(ftp.root.join("pub/blocker"), b"file").unwrap();
    let ok = uri(&ftp.url("/pub/rel2/a"));
    let blocked = uri(&ftp.url("/pub/blocker/a.sig"));
    let err = publish_many(&[(&art, &ok), (&sig, &blocked)], &opts()).unwrap_err();
    assert!(err.to_string().contains("/pub/blocker"), "{err}");
    let left: Vec<_> = std::fs::read_dir(ftp.root.join("pub/rel2"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn silent_server_trips_the_timeout() {
    // Accepts connections but never greets.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.read_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = fetch(
        &uri(&format!("ftp://127.0.0.1:{port}/x")),
        None,
        &dir.path().join("o"),
        &o,
    )
    .unwrap_err();
    drop(listener);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(matches!(err, TransferError::Timeout { .. }), "{err:?}");
    assert!(err.is_outage());
}

#[test]
#[ignore = "root tier: starts vsftpd"]
fn a_download_over_its_limit_is_refused_and_removed() {
    let ftp = Vsftpd::start();
    std::fs::write(ftp.root.join("pub/big.cpio.gz"), vec![0u8; 300_000]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let u = uri(&ftp.url("/pub/big.cpio.gz"));
    let limited = FetchOptions {
        max_download: Some(100_000),
        ..opts()
    };
    let err = fetch(&u, None, &dest, &limited).unwrap_err();
    assert!(matches!(err, TransferError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: stopped after 0 bytes: the server announces 300000 bytes; the body is larger than the download limit of 100000 bytes (--max-download)",
            ftp.url("/pub/big.cpio.gz")
        )
    );
    assert!(!dest.exists());
    // within the limit it downloads, through the same receive path
    let roomy = FetchOptions {
        max_download: Some(300_000),
        ..opts()
    };
    let got = fetch(&u, None, &dest, &roomy).unwrap();
    assert!(matches!(got, Fetched::Downloaded { bytes: 300_000, .. }));
}
