//! Progress on standard error, seen as a user sees it: on a terminal (a
//! pseudo-terminal driven by script(1)) a slow download draws a bar with
//! its total and the time left, its long URI shortened to the terminal's
//! width; on a pipe nothing is drawn at all, whatever `--progress` says.
//! Oracles: script(1) from util-linux, an HTTP server on 127.0.0.1.

use crate::common;
use crate::net;

use common::trees::show;
use common::{pack_base, tempdir};
use net::{Behavior, HttpServer};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The body the server trickles: 40 bytes, one every 40 ms (1.6 s).
const BODY: &[u8] = b"Welcome to fido, served very slowly.\n\n\n\n";

/// A container whose run downloads BODY slowly, from a long URI.
fn slow_download(w: &Path, http: &HttpServer) -> (PathBuf, String) {
    assert_eq!(BODY.len(), 40);
    let archive = pack_base(w);
    let path = "/mirror/debian/dists/bookworm/main/installer-amd64/current/images/netboot/motd";
    http.route(
        path,
        Behavior::Trickle {
            body: BODY.to_vec(),
            every: Duration::from_millis(40),
        },
    );
    let container = w.join("fido.vmc");
    fs::write(
        &container,
        format!(
            "[copy /etc/motd archive {a} {u}][end]\n[populate dir {d} /mnt {a}][end]\n",
            a = archive.display(),
            u = http.url(path),
            d = w.join("root").display(),
        ),
    )
    .unwrap();
    (container, http.url(path))
}

fn command(container: &Path, work: &Path) -> Command {
    let mut c = common::bin();
    c.env_remove("SOURCE_DATE_EPOCH")
        .env("TERM", "xterm")
        .arg("run")
        .arg(container)
        .arg("--dir")
        .arg(work);
    c
}

#[test]
fn a_pipe_gets_no_progress() {
    let t = tempdir();
    let w = t.path();
    let http = HttpServer::start();
    let (container, _) = slow_download(w, &http);
    for (n, progress) in ["auto", "always"].iter().enumerate() {
        let mut cmd = command(&container, &w.join(format!("work{n}")));
        cmd.arg("--progress").arg(progress).arg("--force");
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", show(&cmd, &out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains('\x1b') && !err.contains('\r'),
            "--progress {progress}: control sequences on a pipe: {err:?}"
        );
    }
    assert_eq!(fs::read(w.join("root/etc/motd")).unwrap(), BODY);
}

/// Drops ANSI control sequences from one drawn line.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[test]
fn a_terminal_sees_a_bar_with_the_total() {
    let t = tempdir();
    let w = t.path();
    let http = HttpServer::start();
    let (container, url) = slow_download(w, &http);
    assert!(url.len() > 60, "{url}");
    let cmd = command(&container, &w.join("work"));
    let argv: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_str().unwrap()))
        .collect();
    // a terminal 60 columns wide
    let inner = format!("stty cols 60; {}", argv.join(" "));
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("SOURCE_DATE_EPOCH");
    let out = script
        .output()
        .expect("script(1), from util-linux (scripts/setup.sh installs it)");
    assert!(out.status.success(), "{}", show(&script, &out));
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    let drawn: Vec<String> = screen
        .split(['\r', '\n'])
        .map(plain)
        .filter(|l| l.contains("fetch"))
        .collect();
    assert!(!drawn.is_empty(), "no bar drawn: {screen:?}");
    // the total is known from Content-Length: done/total and the time left
    assert!(
        drawn
            .iter()
            .any(|l| l.contains("/40 B") && l.contains("ETA")),
        "{drawn:#?}"
    );
    for l in &drawn {
        // never wider than the terminal: the URI loses its middle
        assert!(l.trim_end().chars().count() < 60, "{l:?}");
        assert!(l.contains('…') && l.contains("/motd"), "{l:?}");
        // 40 bytes over 1.6 s: the rate is a few bytes a second, never
        // the kilobytes a single read would claim
        if let Some(rate) = l.split_whitespace().find(|w| w.ends_with("/s")) {
            assert!(!rate.contains("KiB") && !rate.contains("MiB"), "{l:?}");
        }
    }
    assert_eq!(fs::read(w.join("root/etc/motd")).unwrap(), BODY);
}
