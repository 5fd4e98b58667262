//! Outputs written in the format their name says (docs/SPEC.md §5):
//! `[create]`, `pack` and forks write `.cpio.gz`, `.cpio`, `.cpio.xz`,
//! `.cpio.zst`, `.tar`, `.tar.gz`, `.tgz`, `.tar.xz` and `.tar.zst`. Each
//! extracts with GNU tar or GNU cpio (after gzip, xz or zstd) to a tree
//! equal to the source entry by entry; two runs write the same bytes, which
//! a later run pins with `#sha256=`; a signed `.tar.zst` verifies with
//! signify and minisign; `check` refuses an output named for an archive
//! that is not written. Oracles: GNU tar, GNU cpio, gzip, xz, zstd,
//! signify, minisign.

use crate::common;
use crate::cpio_gnu::mask_gnu_limits;
use crate::tar_sources::SPECIAL_TREE;

use common::trees::{assert_same, run_ok, sh_ok, show, tree_of, vmc, without_root};
use common::{bin, tempdir};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

/// Every written extension.
const EXTENSIONS: [&str; 10] = [
    ".cpio.gz",
    ".cpio",
    ".cpio.xz",
    ".cpio.zst",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.xz",
    ".tar.zst",
    ".tzst",
];

/// A tree any user can make: long names and link names, a symlink, hard
/// links, a fifo, an empty file, a sparse file, modes and old mtimes.
fn user_tree(d: &Path) {
    let long = "a-directory-whose-name-is-long/".repeat(5);
    fs::create_dir_all(d.join("etc")).unwrap();
    fs::create_dir_all(d.join(&long)).unwrap();
    fs::write(d.join("etc/motd"), "hello\n").unwrap();
    fs::write(d.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(d.join(&long).join("deep"), "deep\n").unwrap();
    fs::hard_link(d.join("etc/hosts"), d.join("etc/hosts.bak")).unwrap();
    fs::hard_link(d.join("etc/hosts"), d.join(&long).join("hosts-third")).unwrap();
    symlink("motd", d.join("etc/motd.link")).unwrap();
    symlink(format!("../{long}deep"), d.join("etc/deep.link")).unwrap();
    fs::write(d.join("etc/empty"), "").unwrap();
    let script = format!(
        "set -e\nmkfifo etc/fifo\ntruncate -s 5M etc/sparse\nprintf end | dd of=etc/sparse bs=1 seek=4194304 conv=notrunc status=none\n\
         head -c 200000 /dev/urandom > etc/random\nchmod 4755 etc/random\nchmod 600 etc/motd\n\
         touch -d @1000000000 etc/empty\ntouch -h -d @1100000000 etc/motd.link\n\
         touch -d @1200000000 etc '{long}' .\n"
    );
    sh_ok(&script, d);
}

/// Extracts `archive` (named by its extension) into `dir` with the GNU
/// tools, failing on any warning they print.
fn gnu_extract_any(archive: &Path, dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let name = archive.to_string_lossy();
    let a = archive.display();
    let decompress = |ext: &str| match ext {
        "gz" => format!("gzip -dc '{a}'"),
        "xz" => format!("xz -dc '{a}'"),
        "zst" => format!("zstd -qdc '{a}'"),
        _ => format!("cat '{a}'"),
    };
    let ext = name.rsplit('.').next().unwrap_or("");
    let ext = match ext {
        "tgz" => "gz",
        "tzst" => "zst",
        e => e,
    };
    let script = if name.contains(".cpio") {
        format!(
            "set -e -o pipefail\n{} | cpio -idm --quiet --no-absolute-filenames 2>err\n",
            decompress(ext)
        )
    } else {
        // GNU tar's own decompression by content for the compressed ones
        format!(
            "set -e -o pipefail\n{} | tar -xf - --numeric-owner --same-permissions --warning=no-timestamp 2>err\n",
            decompress(ext)
        )
    };
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(&script).current_dir(dir);
    let out = cmd.output().unwrap();
    let err = fs::read_to_string(dir.join("err")).unwrap_or_default();
    assert!(out.status.success(), "{}\n{err}", show(&cmd, &out));
    assert_eq!(err, "", "{name}: the extractor warned");
    fs::remove_file(dir.join("err")).unwrap();
}

/// A container that creates `src` as every written format in `out`.
fn create_all(w: &Path, src: &Path, out: &Path) -> String {
    let mut text = String::new();
    for ext in EXTENSIONS {
        text.push_str(&format!(
            "[create {} {}/tree{ext}][end]\n",
            src.display(),
            out.display()
        ));
    }
    let c = w.join("create.vmc");
    fs::write(&c, &text).unwrap();
    c.display().to_string()
}

fn outputs_extract_with_gnu_tools_reproducibly(build: &dyn Fn(&Path)) {
    let t = tempdir();
    let w = t.path();
    let src = w.join("src");
    fs::create_dir(&src).unwrap();
    build(&src);
    let want = without_root(tree_of(&src));

    // two runs, two work directories, two output directories
    let (a, b) = (w.join("a"), w.join("b"));
    for (out, work) in [(&a, "work-a"), (&b, "work-b")] {
        let c = create_all(w, &src, out);
        run_ok(&mut vmc(Path::new(&c), &w.join(work)));
    }
    let mut pins = Vec::new();
    for ext in EXTENSIONS {
        let (fa, fb) = (a.join(format!("tree{ext}")), b.join(format!("tree{ext}")));
        let bytes = fs::read(&fa).unwrap();
        assert!(bytes == fs::read(&fb).unwrap(), "{ext}: two runs differ");
        // `pack` writes the same bytes as `[create]`
        let packed = w.join(format!("packed{ext}"));
        run_ok(
            bin()
                .env_remove("SOURCE_DATE_EPOCH")
                .arg("pack")
                .arg(&src)
                .arg(&packed),
        );
        assert!(bytes == fs::read(&packed).unwrap(), "{ext}: pack differs");
        let x = w.join(format!("x{ext}"));
        gnu_extract_any(&fa, &x);
        let got = without_root(tree_of(&x));
        if ext.starts_with(".cpio") {
            // GNU cpio sets no symlink mtimes, and a directory's before
            // its content is written
            let (w, g) = (
                mask_gnu_limits(want.clone(), true),
                mask_gnu_limits(got, true),
            );
            assert_same(&w, &g, &format!("source vs {ext}"));
        } else {
            assert_same(&want, &got, &format!("source vs {ext}"));
        }
        let hex = run_ok(Command::new("sha256sum").arg(&fa));
        pins.push((fa, hex.split_whitespace().next().unwrap().to_string()));
    }
    // a later run reads them pinned: the digest holds
    let mut text = String::new();
    for (i, (f, pin)) in pins.iter().enumerate() {
        text.push_str(&format!(
            "[populate dir {}/p{i} /mnt {}#sha256={pin}][end]\n",
            w.display(),
            f.display()
        ));
    }
    let c = w.join("pinned.vmc");
    fs::write(&c, text).unwrap();
    run_ok(&mut vmc(&c, &w.join("work-pinned")));
    for (i, (f, _)) in pins.iter().enumerate() {
        let got = without_root(tree_of(&w.join(format!("p{i}"))));
        assert_same(&want, &got, &format!("source vs populated from {f:?}"));
    }
}

#[test]
fn every_output_format_extracts_with_gnu_tools_to_the_source_and_reproducibly() {
    outputs_extract_with_gnu_tools_reproducibly(&user_tree);
}

#[test]
#[ignore = "root tier: mknod and chown build the source tree"]
fn outputs_keep_devices_owners_beyond_21_bits_and_old_mtimes() {
    outputs_extract_with_gnu_tools_reproducibly(&|d: &Path| {
        let script = d.with_extension("sh");
        fs::write(&script, SPECIAL_TREE).unwrap();
        run_ok(Command::new("sh").arg(&script).arg(d));
    });
}

#[test]
fn a_signed_tar_zst_verifies_with_signify_and_minisign() {
    let t = tempdir();
    let w = t.path();
    let src = w.join("src");
    fs::create_dir(&src).unwrap();
    user_tree(&src);
    let (public, secret) = (w.join("k.pub"), w.join("k.sec"));
    run_ok(
        bin()
            .arg("keygen")
            .arg("-p")
            .arg(&public)
            .arg("-s")
            .arg(&secret),
    );
    let out = w.join("out/tree.tar.zst");
    let fork = w.join("out/fork.tar.zst");
    let c = w.join("c.vmc");
    fs::write(
        &c,
        format!(
            "[create {src} {out}][end]\n[replace /etc/motd archive {out} fork {fork}\n\nchanged\n] [end]\n",
            src = src.display(),
            out = out.display(),
            fork = fork.display(),
        ),
    )
    .unwrap();
    run_ok(vmc(&c, &w.join("work")).arg("--sign-key").arg(&secret));
    for f in [&out, &fork] {
        let sig = f.with_extension("zst.sig");
        for tool in ["signify-openbsd", "minisign"] {
            run_ok(
                Command::new(tool)
                    .arg("-V")
                    .arg("-q")
                    .arg("-p")
                    .arg(&public)
                    .arg("-x")
                    .arg(&sig)
                    .arg("-m")
                    .arg(f),
            );
        }
    }
    // the fork is a tar.zst too, with the change in it
    let x = w.join("x");
    gnu_extract_any(&fork, &x);
    assert_eq!(fs::read_to_string(x.join("etc/motd")).unwrap(), "changed\n");
}

#[test]
fn check_refuses_outputs_named_for_archives_that_are_not_written() {
    let t = tempdir();
    let w = t.path();
    let c = w.join("c.vmc");
    fs::write(
        &c,
        "[create /etc /tmp/etc.tar.bz2][end]\n[patch /tmp/a.cpio.gz /tmp/p.diff /tmp/f.zip][end]\n",
    )
    .unwrap();
    let mut cmd = bin();
    cmd.arg("check").arg(&c);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&cmd, &out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":1:14: ")
            && err.contains("output `etc.tar.bz2`: no archive is written as `.tar.bz2`"),
        "{err}"
    );
    assert!(err.contains(":2:35: ") && err.contains("`.zip`"), "{err}");

    let mut cmd = bin();
    cmd.arg("pack").arg(w).arg(w.join("x.tar.lz4"));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&cmd, &out));
    assert!(!w.join("x.tar.lz4").exists());
}

#[test]
fn extended_attributes_reach_gnu_tar_as_schily_records() {
    use vm_container::archive::{output_format, ArchiveWriter};
    use vm_container::tree::{Entry, Kind, Meta, Sink, TreePath};
    let t = tempdir();
    let w = t.path();
    let a = w.join("x.tar.zst");
    let out = fs::File::create(&a).unwrap();
    let format = output_format("x.tar.zst").unwrap();
    let mut tar = ArchiveWriter::new(out, format, "x.tar.zst").unwrap();
    let meta = Meta {
        perm: 0o644,
        uid: 0,
        gid: 0,
        mtime: 1_600_000_000,
    };
    let path = |p: &str| TreePath::from_member(p.as_bytes()).unwrap();
    let mut dir = Entry::new(
        path("d"),
        Kind::Dir,
        Meta {
            perm: 0o755,
            ..meta
        },
    );
    dir.xattrs
        .set(b"user.dir".to_vec(), b"on a directory".to_vec());
    let binary = vec![0, 1, 2, 255, b'\n', b'=', b' '];
    let mut file = Entry::new(path("d/f"), Kind::File { size: 5 }, meta);
    file.xattrs.set(b"user.bin".to_vec(), binary.clone());
    file.xattrs.set(b"user.text".to_vec(), b"hello".to_vec());
    tar.put(&dir, &mut std::io::empty()).unwrap();
    tar.put(&file, &mut &b"12345"[..]).unwrap();
    tar.finish().unwrap();

    let x = w.join("x");
    fs::create_dir(&x).unwrap();
    run_ok(
        Command::new("tar")
            .args(["--xattrs", "--xattrs-include=*", "-xf"])
            .arg(&a)
            .arg("-C")
            .arg(&x),
    );
    let get = |p: &Path, name: &str| {
        let mut buf = vec![0u8; 256];
        let n = rustix::fs::lgetxattr(p, name, &mut buf[..]).unwrap();
        buf.truncate(n);
        buf
    };
    assert_eq!(get(&x.join("d/f"), "user.bin"), binary);
    assert_eq!(get(&x.join("d/f"), "user.text"), b"hello");
    assert_eq!(get(&x.join("d"), "user.dir"), b"on a directory");
    assert_eq!(fs::read(x.join("d/f")).unwrap(), b"12345");
}
