//! The host-directory walker and extractor against the real file system.

mod cpio_common;

use cpio_common::*;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use vm_container::cpio::Reader;
use vm_container::hostdir::{Error, Extractor, Walker, Warning};
use vm_container::tree::{Entry, FnSink, Kind, Source, TreePath};

fn entries(dir: &Path, clamp: Option<i64>) -> Vec<Entry> {
    let mut v = Vec::new();
    let mut sink = FnSink(|e: &Entry, d: &mut dyn Read| {
        let mut buf = Vec::new();
        d.read_to_end(&mut buf)?;
        v.push(e.clone());
        Ok(())
    });
    Walker::new(dir).clamp_mtime(clamp).emit(&mut sink).unwrap();
    v
}

#[test]
#[ignore = "root tier: creates device nodes and sets owners"]
fn walker_order_links_and_clamp() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    build_tree(&src);
    let all = entries(&src, None);
    assert!(all[0].path.is_root() && all[0].kind == Kind::Dir);
    let paths: Vec<&TreePath> = all.iter().map(|e| &e.path).collect();
    // parents before children, siblings by name bytes
    for (i, e) in all.iter().enumerate() {
        if let Some(parent) = e.path.parent() {
            assert!(
                paths[..i].contains(&&parent),
                "{} before its parent",
                e.path
            );
        }
    }
    let pos = |s: &str| {
        paths
            .iter()
            .position(|p| p.as_bytes() == s.as_bytes())
            .unwrap()
    };
    assert!(
        pos("big.bin") < pos("dev") && pos("dev") < pos("dev/null") && pos("dir") < pos("empty")
    );
    let a = TreePath::from_member(b"links/a").unwrap();
    for name in ["links/b", "zz_top_link"] {
        assert_eq!(all[pos(name)].kind, Kind::HardLink { target: a.clone() });
    }
    assert_eq!(
        all[pos("links/e2")].kind,
        Kind::HardLink {
            target: TreePath::from_member(b"links/e1").unwrap()
        }
    );
    assert_eq!(
        all[pos("dev/odd")].kind,
        Kind::CharDev {
            major: 259,
            minor: 70000
        }
    );
    assert_eq!(all[pos("sock")].kind, Kind::Socket);
    assert_eq!(all[pos("setuid")].meta.perm, 0o4755);
    assert_eq!(all[pos("sticky")].meta.perm, 0o1777);
    assert_eq!(all[pos("dir/sub")].meta.uid, 4_000_000_000);
    // clamping
    let clamp = 1_000_500_000;
    let clamped = entries(&src, Some(clamp));
    for (a, b) in all.iter().zip(&clamped) {
        assert_eq!(b.meta.mtime, a.meta.mtime.min(clamp), "{}", a.path);
    }
    assert!(all.iter().any(|e| e.meta.mtime > clamp) && all.iter().any(|e| e.meta.mtime < clamp));
}

#[test]
fn walker_errors_name_the_path() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing");
    let e = Walker::new(&missing)
        .emit(&mut FnSink(|_: &Entry, _: &mut dyn Read| Ok(())))
        .unwrap_err();
    assert!(matches!(Error::from_io(&e), Some(Error::Io { path, .. }) if *path == missing));
    assert!(e.to_string().contains("missing"), "{e}");
    fs::write(t.path().join("f"), b"").unwrap();
    let e = Walker::new(t.path().join("f"))
        .emit(&mut FnSink(|_: &Entry, _: &mut dyn Read| Ok(())))
        .unwrap_err();
    assert!(matches!(
        Error::from_io(&e),
        Some(Error::NotADirectory { .. })
    ));
}

#[test]
#[ignore = "root tier: creates device nodes and sets owners"]
fn extraction_replaces_files_merges_directories_and_keeps_links_apart() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    build_tree(&src);
    let target = t.path().join("target");
    fs::create_dir_all(target.join("dir/extra")).unwrap();
    fs::write(target.join("dir/extra/keep"), b"kept").unwrap();
    fs::write(target.join("outside_link"), b"original").unwrap();
    // `links/a` already exists as another name of a file that must survive
    fs::create_dir(target.join("links")).unwrap();
    fs::hard_link(target.join("outside_link"), target.join("links/a")).unwrap();
    fs::write(target.join("empty"), b"old content").unwrap();
    let mut ex = Extractor::new(&target).unwrap();
    Walker::new(&src).emit(&mut ex).unwrap();
    assert_eq!(ex.finish().unwrap(), vec![]);
    assert_eq!(fs::read(target.join("outside_link")).unwrap(), b"original");
    assert_eq!(fs::read(target.join("dir/extra/keep")).unwrap(), b"kept");
    let mut got = dir_manifest(&target);
    let mut want = dir_manifest(&src);
    for extra in ["outside_link", "dir/extra", "dir/extra/keep"] {
        got.remove(&TreePath::from_member(extra.as_bytes()).unwrap());
    }
    // `dir` holds the extra entries, so only its mtime is ours to compare
    let dir = TreePath::from_member(b"dir").unwrap();
    assert_eq!(got[&dir].meta, want[&dir].meta);
    want.remove(&dir);
    got.remove(&dir);
    assert_same(&want, &got);
    let ino = |p: &str| fs::symlink_metadata(target.join(p)).unwrap().ino();
    assert_eq!(ino("links/a"), ino("zz_top_link"));
    assert_ne!(ino("links/a"), ino("outside_link"));
}

#[test]
#[ignore = "root tier: sets owners (chown)"]
fn implicit_parents_and_refusals() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("t");
    let bytes = [
        member(b"a/b/c", 0o100600, 1, 1, b"c"),
        member(b"x", 0o040700, 2, 2, b""),
        trailer(),
    ]
    .concat();
    let mut ex = Extractor::new(&target).unwrap();
    Reader::new(bytes.as_slice(), "a").emit(&mut ex).unwrap();
    ex.finish().unwrap();
    let md = fs::metadata(target.join("a/b")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid(), md.mtime()), (0o755, 0, 0));
    assert_eq!(
        fs::metadata(target.join("x")).unwrap().mode() & 0o7777,
        0o700
    );
    // a file may not replace a non-empty directory, nor a path run through a file
    for (name, want) in [
        (&b"a"[..], "DirNotEmpty"),
        (b"a/b/c/d", "NotADirectoryInPath"),
    ] {
        let bytes = [member(name, 0o100600, 1, 1, b"c"), trailer()].concat();
        let mut ex = Extractor::new(&target).unwrap();
        let e = Reader::new(bytes.as_slice(), "a")
            .emit(&mut ex)
            .unwrap_err();
        let got = format!("{:?}", Error::from_io(&e));
        assert!(got.contains(want), "{got}");
    }
}

/// Without privileges, owners and devices are skipped and reported. The
/// test re-runs itself as `nobody` through `setpriv` (util-linux).
#[test]
#[ignore = "root tier: drops privileges with setpriv"]
fn unprivileged_extraction_warns() {
    if let Ok(dir) = std::env::var("VMC_UNPRIVILEGED_TARGET") {
        let bytes = [
            member(b"dev", 0o040755, 2, 1, b""),
            member(b"dev/null", 0o020666, 1, 2, b""),
            member(b"f", 0o100644, 1, 3, b"root's"),
            member(b"p", 0o010600, 1, 4, b""),
            trailer(),
        ]
        .concat();
        let mut ex = Extractor::new(&dir).unwrap();
        Reader::new(bytes.as_slice(), "a").emit(&mut ex).unwrap();
        let w = ex.finish().unwrap();
        assert_eq!(
            w,
            vec![
                Warning::DeviceSkipped {
                    path: TreePath::from_member(b"dev/null").unwrap(),
                    kind: "character device"
                },
                Warning::OwnersNotSet {
                    count: 3,
                    // directories are finished last
                    first: TreePath::from_member(b"f").unwrap()
                }
            ]
        );
        assert_eq!(fs::read(Path::new(&dir).join("f")).unwrap(), b"root's");
        assert!(!Path::new(&dir).join("dev/null").exists());
        // an unreadable directory stops the walker with its path
        let locked = std::env::var("VMC_LOCKED").unwrap();
        let e = Walker::new(Path::new(&locked).parent().unwrap())
            .emit(&mut FnSink(|_: &Entry, _: &mut dyn Read| Ok(())))
            .unwrap_err();
        assert!(
            matches!(Error::from_io(&e), Some(Error::Io { path, op: "read directory", .. }) if path.ends_with("locked")),
            "{e}"
        );
        assert!(e.to_string().contains("locked"), "{e}");
        return;
    }
    require_root();
    require_tool("setpriv");
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("t");
    fs::create_dir(&target).unwrap();
    rustix::fs::chown(
        &target,
        Some(rustix::fs::Uid::from_raw(65534)),
        Some(rustix::fs::Gid::from_raw(65534)),
    )
    .unwrap();
    fs::set_permissions(
        t.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let locked = t.path().join("walk/locked");
    fs::create_dir_all(&locked).unwrap();
    fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "unprivileged_extraction_warns",
            "--nocapture",
            "--include-ignored",
        ])
        .env("VMC_UNPRIVILEGED_TARGET", &target)
        .env("VMC_LOCKED", &locked)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::metadata(target.join("f")).unwrap().uid(), 65534);
}
