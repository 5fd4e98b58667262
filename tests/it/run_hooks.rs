//! Domain-start hooks: reruns with nothing changed change nothing, changed
//! inputs rebuild, a dead server fails unless `--allow-stale`, killed runs
//! leave outputs as they were, many domains share one `--dir`.

use crate::common;
use crate::net;

use common::{bin, ok, outputs_snapshot, root, tempdir};
use net::{Behavior, HttpServer};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn pack(dir: &Path, out: &Path) {
    ok(&bin().arg("pack").arg(dir).arg(out).output().unwrap());
}

struct Hook {
    _t: tempfile::TempDir,
    w: PathBuf,
    http: HttpServer,
    container: PathBuf,
    outputs: Vec<PathBuf>,
}

impl Hook {
    fn new() -> Hook {
        let t = tempdir();
        let w = t.path().to_path_buf();
        let archive = w.join("etc.cpio.gz");
        pack(&root().join("examples/trees/base"), &archive);
        let http = HttpServer::start();
        http.serve(
            "/etc.cpio.gz",
            &fs::read(&archive).unwrap(),
            Some("\"v1\""),
            None,
        );
        let img = w.join("fido.img");
        let container = w.join("fido.vmc");
        fs::write(
            &container,
            format!(
                "name = 'fido'\ndisk = ['file:{img},xvda1,w']\n\
                 [replace /etc/HOSTNAME archive {src} fork {fork}\n\n${{name}}\n] [end]\n\
                 [image {img} 16M ${{name}}][end]\n[populate image {img} /mnt {src}][end]\n",
                img = img.display(),
                src = http.url("/etc.cpio.gz"),
                fork = w.join("fido-etc.cpio.gz").display()
            ),
        )
        .unwrap();
        let outputs = vec![img, w.join("fido-etc.cpio.gz"), w.join("fido.cfg")];
        Hook {
            _t: t,
            w,
            http,
            container,
            outputs,
        }
    }

    fn cmd(&self, extra: &[&str]) -> Command {
        let mut c = bin();
        c.arg("--container")
            .arg(&self.container)
            .arg("--stripped")
            .arg(self.w.join("fido.cfg"))
            .arg("--dir")
            .arg(self.w.join("dir"))
            .arg("--log")
            .arg(self.w.join("log"))
            .args(extra);
        c
    }

    fn run(&self, extra: &[&str]) -> Output {
        self.cmd(extra).output().unwrap()
    }

    fn hostname(&self) -> String {
        let out = bin()
            .arg("cat")
            .arg(&self.outputs[0])
            .arg("/etc/HOSTNAME")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn a_rerun_with_nothing_changed_changes_nothing() {
    let h = Hook::new();
    ok(&h.run(&[]));
    assert_eq!(h.hostname(), "fido\n");
    let before = outputs_snapshot(&h.outputs);
    let served = h.http.body_bytes();
    let err = ok(&h.run(&[]));
    assert!(err.contains("up to date"), "{err}");
    assert!(
        outputs_snapshot(&h.outputs) == before,
        "outputs or their mtimes changed"
    );
    // revalidated, not downloaded again
    assert_eq!(h.http.body_bytes(), served);
    let reqs = h.http.requests();
    assert!(
        reqs.last()
            .unwrap()
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("if-none-match")),
        "the rerun did not revalidate"
    );
    // an output removed by hand is rebuilt
    fs::remove_file(&h.outputs[1]).unwrap();
    let err = ok(&h.run(&[]));
    assert!(!err.contains("up to date"), "{err}");
    assert!(h.outputs[1].exists());
}

#[test]
fn a_changed_archive_on_the_server_rebuilds() {
    let h = Hook::new();
    ok(&h.run(&[]));
    // the maintainer adds a file to the tree
    let tree = h.w.join("tree");
    fs::create_dir_all(&tree).unwrap();
    let cp = Command::new("cp")
        .arg("-a")
        .arg(root().join("examples/trees/base/etc"))
        .arg(&tree)
        .status()
        .unwrap();
    assert!(cp.success());
    fs::write(tree.join("etc/motd"), "new\n").unwrap();
    let archive = h.w.join("etc2.cpio.gz");
    pack(&tree, &archive);
    h.http.serve(
        "/etc.cpio.gz",
        &fs::read(&archive).unwrap(),
        Some("\"v2\""),
        None,
    );
    let err = ok(&h.run(&[]));
    assert!(!err.contains("up to date"), "{err}");
    let motd = bin()
        .arg("cat")
        .arg(&h.outputs[0])
        .arg("/etc/motd")
        .output()
        .unwrap();
    assert_eq!(motd.stdout, b"new\n");
    assert_eq!(h.hostname(), "fido\n");
    Command::new("e2fsck")
        .arg("-fn")
        .arg(&h.outputs[0])
        .status()
        .unwrap()
        .success()
        .then_some(())
        .expect("e2fsck");
}

#[test]
fn a_dead_server_fails_unless_stale_copies_are_allowed() {
    let mut h = Hook::new();
    ok(&h.run(&[]));
    let before = outputs_snapshot(&h.outputs);
    h.http.stop();
    let out = h.run(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("etc.cpio.gz"), "{err}");
    assert!(outputs_snapshot(&h.outputs) == before);
    let err = ok(&h.run(&["--allow-stale"]));
    assert!(
        err.contains("warning") && err.contains("cached copy"),
        "{err}"
    );
    assert!(outputs_snapshot(&h.outputs) == before);
    let log = fs::read_to_string(h.w.join("log")).unwrap();
    assert!(log.contains("stale cached copy"), "{log}");
    // --offline needs no server either
    ok(&h.run(&["--offline"]));
}

#[test]
fn a_server_dying_mid_transfer_leaves_outputs_as_they_were() {
    let h = Hook::new();
    ok(&h.run(&[]));
    let before = outputs_snapshot(&h.outputs);
    h.http.route(
        "/etc.cpio.gz",
        Behavior::Short {
            claimed: 100_000,
            body: vec![0x1f; 300],
        },
    );
    let out = h.run(&[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(outputs_snapshot(&h.outputs) == before);
}

#[test]
fn a_killed_run_leaves_outputs_as_they_were_and_the_next_run_succeeds() {
    let h = Hook::new();
    ok(&h.run(&[]));
    let before = outputs_snapshot(&h.outputs);
    // make the next run slow to download, then kill it in the middle
    let body = fs::read(h.w.join("etc.cpio.gz")).unwrap();
    h.http.route(
        "/etc.cpio.gz",
        Behavior::Slow {
            delay: Duration::from_millis(1500),
            body: body.clone(),
        },
    );
    // a new validator so the cache downloads again
    let mut child = h
        .cmd(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        outputs_snapshot(&h.outputs) == before,
        "a killed run changed an output"
    );
    // the next clean run succeeds and removes what the killed one staged
    h.http.serve("/etc.cpio.gz", &body, Some("\"v3\""), None);
    ok(&h.run(&[]));
    let work = h.w.join("dir/work");
    let left: Vec<_> = fs::read_dir(&work).unwrap().collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
    let stray: Vec<_> = fs::read_dir(&h.w)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("vmc-tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn twenty_domains_from_one_template_two_at_a_time() {
    let t = tempdir();
    let w = t.path();
    let archive = w.join("base.cpio.gz");
    pack(&root().join("examples/trees/base"), &archive);
    let template = w.join("template.vmc");
    fs::write(
        &template,
        format!(
            "name = 'fido'\nmemory = 128\ndisk = ['file:{w}/${{name}}.img,xvda1,w']\n\
             [replace /etc/HOSTNAME archive {a}\n\n${{name}}\n] [end]\n\
             [image {w}/${{name}}.img 8M ${{name}}][end]\n[populate image {w}/${{name}}.img /mnt {a}][end]\n",
            w = w.display(),
            a = archive.display()
        ),
    )
    .unwrap();
    let dir = w.join("dir");
    let names: Vec<String> = (0..20).map(|i| format!("dom{i:02}")).collect();
    for pair in names.chunks(2) {
        let children: Vec<_> = pair
            .iter()
            .map(|n| {
                bin()
                    .arg("-q")
                    .arg("--container")
                    .arg(&template)
                    .arg("--set")
                    .arg(format!("name={n}"))
                    .arg("--stripped")
                    .arg(w.join(format!("{n}.cfg")))
                    .arg("--dir")
                    .arg(&dir)
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            ok(&c.wait_with_output().unwrap());
        }
    }
    for n in &names {
        let img = w.join(format!("{n}.img"));
        let st = Command::new("e2fsck")
            .arg("-fn")
            .arg(&img)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{n}: {}",
            String::from_utf8_lossy(&st.stdout)
        );
        let host = bin()
            .arg("cat")
            .arg(&img)
            .arg("/etc/HOSTNAME")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&host.stdout), format!("{n}\n"));
        let cfg = w.join(format!("{n}.cfg"));
        let xl = common::xl_read(&cfg, &["name", "disk"]).unwrap();
        assert_eq!(xl[0], format!("name=string:{n}"));
        assert!(xl[1].contains(&format!("{n}.img")));
    }
    // every output is recorded as created by vm-container
    let created = fs::read_to_string(dir.join("state/created")).unwrap();
    assert_eq!(
        created.lines().filter(|l| l.ends_with(".img")).count(),
        20,
        "{created}"
    );
}

#[test]
fn a_changed_input_rebuilds_only_what_depends_on_it() {
    let t = tempdir();
    let w = t.path();
    let (a, b) = (w.join("a.cpio.gz"), w.join("b.cpio.gz"));
    pack(&root().join("examples/trees/base"), &a);
    pack(&root().join("examples/trees/base"), &b);
    let (ia, ib) = (w.join("a.img"), w.join("b.img"));
    let (fa, fb) = (w.join("a-fork.cpio.gz"), w.join("b-fork.cpio.gz"));
    let container = w.join("two.vmc");
    fs::write(
        &container,
        format!(
            "[replace /etc/motd archive {a} fork {fa}\n\nA\n] [end]\n\
             [replace /etc/motd archive {b} fork {fb}\n\nB\n] [end]\n\
             [image {ia} 8M][end]\n[populate image {ia} /mnt {a}][end]\n\
             [image {ib} 8M][end]\n[populate image {ib} /mnt {b}][end]\n",
            a = a.display(),
            b = b.display(),
            fa = fa.display(),
            fb = fb.display(),
            ia = ia.display(),
            ib = ib.display()
        ),
    )
    .unwrap();
    let run = || {
        bin()
            .arg("--container")
            .arg(&container)
            .arg("--dir")
            .arg(w.join("dir"))
            .output()
            .unwrap()
    };
    ok(&run());
    let before = outputs_snapshot(&[ia.clone(), fa.clone(), ib.clone(), fb.clone()]);
    // a later second: what the run creates is dated by the container, not
    // by the clock, so nothing is rebuilt for the time alone
    std::thread::sleep(Duration::from_millis(1100));
    // archive b changes: a new file in its tree
    let tree = w.join("tree");
    fs::create_dir_all(&tree).unwrap();
    let cp = Command::new("cp")
        .arg("-a")
        .arg(root().join("examples/trees/base/etc"))
        .arg(&tree)
        .status()
        .unwrap();
    assert!(cp.success());
    fs::write(tree.join("etc/issue"), "changed\n").unwrap();
    pack(&tree, &b);
    ok(&run());
    let after = outputs_snapshot(&[ia.clone(), fa.clone(), ib.clone(), fb.clone()]);
    assert!(
        after[0] == before[0],
        "image a was rebuilt although nothing it is made of changed"
    );
    assert!(
        after[1] == before[1],
        "fork a was rewritten although it did not change"
    );
    assert!(after[2] != before[2], "image b was not rebuilt");
    assert!(after[3] != before[3], "fork b was not rebuilt");
    let issue = bin()
        .arg("cat")
        .arg(&ib)
        .arg("/etc/issue")
        .output()
        .unwrap();
    assert_eq!(issue.stdout, b"changed\n");
    for img in [&ia, &ib] {
        assert!(Command::new("e2fsck")
            .arg("-fn")
            .arg(img)
            .output()
            .unwrap()
            .status
            .success());
    }
}
