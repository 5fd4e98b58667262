//! What a run changes, said after it and foreseen before it. A run says
//! one line per output: `built`, `kept … (unchanged)`, `updated in place`,
//! `published`, or that the whole run is `up to date`. `--dry-run`
//! revalidates: it says per output what a run would rebuild and why (an
//! archive changed upstream, with the server's ETags), exits 3 when
//! something would change and 0 when nothing would, and writes nothing —
//! no output, no cache entry, no run record. Oracle: an HTTP server on
//! 127.0.0.1 whose archive changes between runs and which takes uploads.

use crate::common;
use crate::net;

use common::trees::{run_ok, show};
use common::{bin, mke2fs, tempdir};
use net::HttpServer;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every file under `dir` (work directory included) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.insert(p.clone(), Vec::new());
                stack.push(p);
            } else {
                out.insert(p.clone(), fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

/// An `/etc` archive made by `pack`, with `hostname` in it.
fn archive(w: &Path, hostname: &str) -> Vec<u8> {
    let base = w.join(format!("base-{hostname}"));
    fs::create_dir_all(base.join("etc")).unwrap();
    fs::write(base.join("etc/hostname"), format!("{hostname}\n")).unwrap();
    let a = w.join(format!("{hostname}.cpio.gz"));
    run_ok(bin().arg("pack").arg(&base).arg(&a));
    fs::read(&a).unwrap()
}

struct Setup {
    container: PathBuf,
    work: PathBuf,
    img: PathBuf,
    cfg: PathBuf,
}

impl Setup {
    fn new(w: &Path, http: &HttpServer) -> Setup {
        let img = w.join("out/fido.img");
        let cfg = w.join("out/fido.cfg");
        let container = w.join("fido.vmc");
        fs::write(
            &container,
            format!(
                "name = \"fido\"\n\
                 [image {img} 8M fido][end]\n\
                 [populate image {img} /mnt {a}][end]\n",
                img = img.display(),
                a = http.url("/etc.cpio.gz"),
            ),
        )
        .unwrap();
        Setup {
            container,
            work: w.join("work"),
            img,
            cfg,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = bin();
        c.env_remove("SOURCE_DATE_EPOCH")
            .arg("run")
            .arg(&self.container)
            .arg("--dir")
            .arg(&self.work)
            .arg("--stripped")
            .arg(&self.cfg);
        c
    }

    fn dry_run(&self, extra: &[&str]) -> (Output, String) {
        let mut c = self.cmd();
        c.arg("--dry-run").args(extra);
        let out = c.output().unwrap();
        let text = show(&c, &out);
        (out, text)
    }
}

#[test]
fn dry_run_revalidates_and_says_what_would_be_rebuilt() {
    let t = tempdir();
    let w = t.path();
    let http = HttpServer::start();
    let v1 = archive(w, "fido");
    http.serve("/etc.cpio.gz", &v1, Some("\"v1\""), None);
    let s = Setup::new(w, &http);
    let img = s.img.display().to_string();
    let cfg = s.cfg.display().to_string();

    // never run: everything pending, nothing fetched (nothing is cached
    // to revalidate), nothing written
    let before = snapshot(w);
    let (out, text) = s.dry_run(&[]);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains(&format!("{img}: would be rebuilt: no earlier run")),
        "{said}"
    );
    assert!(said.contains("outputs would change"), "{said}");
    assert_eq!(http.requests().len(), 0, "{:?}", http.requests());
    assert_eq!(snapshot(w), before, "--dry-run wrote something");

    run_ok(&mut s.cmd());
    let built = fs::read(&s.img).unwrap();

    // nothing changed: 0, every output up to date, after one conditional
    // request answered 304
    let before = snapshot(w);
    let asked = http.requests().len();
    let (out, text) = s.dry_run(&[]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains(&format!("{img}: up to date")), "{said}");
    assert!(said.contains(&format!("{cfg}: up to date")), "{said}");
    assert!(said.contains("nothing to do"), "{said}");
    let new: Vec<_> = http.requests()[asked..].to_vec();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(
        new[0].headers.get("if-none-match").map(String::as_str),
        Some("\"v1\""),
        "{new:?}"
    );
    assert_eq!(snapshot(w), before, "--dry-run wrote something");

    // the archive changes upstream: the image would be rebuilt, and why
    let v2 = archive(w, "rex");
    http.serve("/etc.cpio.gz", &v2, Some("\"v2\""), None);
    let before = snapshot(w);
    let (out, text) = s.dry_run(&[]);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains(&format!(
            "{img}: would be rebuilt: etc.cpio.gz changed upstream: ETag \"v1\" → \"v2\""
        )),
        "{said}"
    );
    assert!(said.contains(&format!("{cfg}: up to date")), "{said}");
    assert!(said.contains("1 of 2 outputs would change"), "{said}");
    // the cache, the record, the image: all as they were
    assert_eq!(snapshot(w), before, "--dry-run wrote something");
    assert_eq!(fs::read(&s.img).unwrap(), built);

    // --offline revalidates nothing: the cached copy is what a run uses
    let asked = http.requests().len();
    let (out, text) = s.dry_run(&["--offline"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(http.requests().len(), asked);

    // the run rebuilds; then nothing is pending again
    run_ok(&mut s.cmd());
    assert_ne!(fs::read(&s.img).unwrap(), built);
    let (out, text) = s.dry_run(&[]);
    assert_eq!(out.status.code(), Some(0), "{text}");
}

#[test]
fn dry_run_names_a_changed_local_input_and_a_damaged_output() {
    let t = tempdir();
    let w = t.path();
    let http = HttpServer::start();
    http.serve("/etc.cpio.gz", &archive(w, "fido"), Some("\"v1\""), None);
    let s = Setup::new(w, &http);
    let motd = w.join("motd");
    fs::write(&motd, b"hello\n").unwrap();
    let fork = w.join("out/fork.cpio.gz");
    let mut text = fs::read_to_string(&s.container).unwrap();
    text.push_str(&format!(
        "[copy /etc/motd archive {a} fork {f} {m}][end]\n",
        a = http.url("/etc.cpio.gz"),
        f = fork.display(),
        m = motd.display(),
    ));
    fs::write(&s.container, text).unwrap();
    run_ok(&mut s.cmd());
    let (out, said) = s.dry_run(&[]);
    assert_eq!(out.status.code(), Some(0), "{said}");

    // a local input rewritten: the fork made from it would be rebuilt,
    // the image (populated before the copy) would not
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::write(&motd, b"hello again\n").unwrap();
    let (out, text) = s.dry_run(&[]);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains(&format!(
            "{}: would be rebuilt: {} changed since the last run",
            fork.display(),
            motd.display()
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("{}: up to date", s.img.display())),
        "{said}"
    );
    run_ok(&mut s.cmd());

    // an output removed by hand
    fs::remove_file(&s.img).unwrap();
    let (out, text) = s.dry_run(&[]);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains(&format!("{}: would be rebuilt:", s.img.display())),
        "{said}"
    );
}

/// The lines a run wrote on standard error.
fn said(cmd: &mut Command) -> Vec<String> {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", show(cmd, &out));
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_run_says_what_happened_to_each_output() {
    let t = tempdir();
    let w = t.path();
    let http = HttpServer::start();
    http.serve("/etc.cpio.gz", &archive(w, "fido"), Some("\"v1\""), None);
    let s = Setup::new(w, &http);
    let img = s.img.display().to_string();
    let cfg = s.cfg.display().to_string();
    // an existing volume, updated in place
    let vol = w.join("data.img");
    mke2fs(&vol, "data", "4M");
    let mut text = fs::read_to_string(&s.container).unwrap();
    text.push_str(&format!(
        "[populate image {v} /mnt {a}][end]\n",
        v = vol.display(),
        a = http.url("/etc.cpio.gz"),
    ));
    fs::write(&s.container, &text).unwrap();

    let first = said(&mut s.cmd());
    // no action echoed (that is -v), one line per output
    assert!(!first.iter().any(|l| l.contains("fido.vmc:")), "{first:?}");
    for line in [
        format!("built {img}"),
        format!("built {cfg}"),
        format!("updated in place {}", vol.display()),
    ] {
        assert_eq!(
            first.iter().filter(|l| **l == line).count(),
            1,
            "{line} in {first:?}"
        );
    }
    assert_eq!(first.len(), 3, "{first:?}");

    // nothing changed: the run says so, once
    let second = said(&mut s.cmd());
    assert_eq!(second, [format!("{}: up to date", s.container.display())]);

    // a Xen statement changed: every image kept, the config written
    fs::write(&s.container, text.replace("\"fido\"", "\"rex\"")).unwrap();
    let third = said(&mut s.cmd());
    assert!(
        third.contains(&format!("kept {img} (unchanged)")),
        "{third:?}"
    );
    assert!(third.contains(&format!("built {cfg}")), "{third:?}");
    assert!(
        !third
            .iter()
            .any(|l| l.starts_with("built ") && l.ends_with(".img")),
        "{third:?}"
    );
    // -v still shows every action as it runs
    fs::write(&s.container, &text).unwrap();
    http.serve("/etc.cpio.gz", &archive(w, "rex"), Some("\"v2\""), None);
    let verbose = said(s.cmd().arg("-v"));
    assert!(
        verbose.iter().any(|l| l.contains("fido.vmc:2:1: image")),
        "{verbose:?}"
    );

    // an upload: published
    let fork = http.url("/forks/fido.cpio.gz");
    text.push_str(&format!(
        "[copy /etc/motd archive {a} fork {fork} {c}][end]\n",
        a = http.url("/etc.cpio.gz"),
        c = s.container.display(),
    ));
    fs::write(&s.container, &text).unwrap();
    let fourth = said(&mut s.cmd());
    assert!(fourth.contains(&format!("published {fork}")), "{fourth:?}");
    assert!(
        http.requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path == "/forks/fido.cpio.gz"),
        "{:?}",
        http.requests()
    );
}
