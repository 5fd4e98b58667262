//! Hostile inputs through the binary: archives, patches, images and
//! signatures crafted to escape a target, exhaust resources or crash a
//! parser. Each must end with exit status 1 or 2, one `error:` line, and
//! nothing written outside the target. Regression inputs found by the
//! fuzz targets (`fuzz/`) live in `tests/hostile/`.

use flate2::{write::GzEncoder, Compression};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common;
use common::{bin, ok, root, tempdir};

fn hostile(name: &str) -> PathBuf {
    root().join("tests/hostile").join(name)
}

/// A gzip-compressed regression input, expanded into `dir`.
fn gunzip_to(name: &str, dir: &Path) -> PathBuf {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(hostile(name)).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    let p = dir.join(name.trim_end_matches(".gz"));
    fs::write(&p, out).unwrap();
    p
}

const DIR: u32 = 0o040755;
const REG: u32 = 0o100644;
const LNK: u32 = 0o120777;

/// One newc member; `size` overrides the declared size of `data`.
fn member(name: &[u8], mode: u32, ino: u32, nlink: u32, data: &[u8], size: Option<u32>) -> Vec<u8> {
    let mut name = name.to_vec();
    name.push(0);
    let size = size.unwrap_or(data.len() as u32);
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        size,
        0,
        0,
        0,
        0,
        name.len() as u32,
        0,
    ];
    let mut out = b"070701".to_vec();
    for f in fields {
        out.extend(format!("{f:08X}").bytes());
    }
    out.extend(&name);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend(data);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

fn trailer() -> Vec<u8> {
    member(b"TRAILER!!!", 0, 0, 1, b"", None)
}

fn archive(members: &[Vec<u8>]) -> Vec<u8> {
    let mut v = member(b".", DIR, 1, 2, b"", None);
    v.extend(members.concat());
    v.extend(trailer());
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Checks the failure contract and returns the error line.
fn failed(out: &Output, codes: &[i32]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert!(
        code.is_some_and(|c| codes.contains(&c)),
        "exit {:?} (want one of {codes:?}); stderr:\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "want one error line:\n{stderr}");
    errors[0].to_string()
}

/// A scratch area: `outside/` must stay empty, `target/` is the only place
/// a run may write to.
struct Scene {
    t: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let s = Scene { t: tempdir() };
        fs::create_dir(s.outside()).unwrap();
        s
    }
    fn p(&self, name: &str) -> PathBuf {
        self.t.path().join(name)
    }
    fn outside(&self) -> PathBuf {
        self.p("outside")
    }
    fn target(&self) -> PathBuf {
        self.p("target")
    }
    /// Runs a container file; `archive.cpio.gz` etc. live beside it.
    fn run(&self, container: &str) -> Output {
        let c = self.p("c.vmc");
        fs::write(&c, container).unwrap();
        bin()
            .arg("--container")
            .arg(&c)
            .arg("--dir")
            .arg(self.p("state"))
            .arg("--offline")
            .output()
            .unwrap()
    }
    /// `[populate dir target /mnt archive]` with `bytes` as the archive.
    fn populate_dir(&self, bytes: &[u8]) -> Output {
        fs::write(self.p("a.cpio.gz"), bytes).unwrap();
        self.run(&format!(
            "[populate dir {} /mnt file://{}][end]\n",
            self.target().display(),
            self.p("a.cpio.gz").display()
        ))
    }
    /// Everything under the scene except `target/`, `state/` and the inputs
    /// the test wrote, as relative paths.
    fn assert_outside_untouched(&self) {
        let names: Vec<_> = fs::read_dir(self.outside())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names.is_empty(), "written outside the target: {names:?}");
        let mut top: Vec<String> = fs::read_dir(self.t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        for n in &top {
            assert!(
                [
                    "outside",
                    "target",
                    "state",
                    "c.vmc",
                    "a.cpio.gz",
                    "img",
                    "p.patch"
                ]
                .contains(&n.as_str()),
                "unexpected {n} beside the target: {top:?}"
            );
        }
    }
}

// ---------------------------------------------------------------- traversal

#[test]
fn dotdot_member_is_refused() {
    let s = Scene::new();
    let a = archive(&[member(b"../outside/x", REG, 2, 1, b"evil\n", None)]);
    let e = failed(&s.populate_dir(&gz(&a)), &[1]);
    assert!(e.contains("`..`"), "{e}");
    s.assert_outside_untouched();
}

#[test]
fn absolute_member_is_refused() {
    let s = Scene::new();
    let abs = s.outside().join("x");
    let a = archive(&[member(
        abs.to_str().unwrap().as_bytes(),
        REG,
        2,
        1,
        b"evil\n",
        None,
    )]);
    let e = failed(&s.populate_dir(&gz(&a)), &[1]);
    assert!(e.contains("absolute"), "{e}");
    s.assert_outside_untouched();
}

#[test]
fn member_through_a_symlink_is_refused() {
    let s = Scene::new();
    let a = archive(&[
        member(
            b"link",
            LNK,
            2,
            1,
            s.outside().to_str().unwrap().as_bytes(),
            None,
        ),
        member(b"link/x", REG, 3, 1, b"evil\n", None),
    ]);
    let e = failed(&s.populate_dir(&gz(&a)), &[1]);
    assert!(e.contains("symlink"), "{e}");
    s.assert_outside_untouched();
}

#[test]
fn directory_replaced_by_a_symlink_between_members() {
    let s = Scene::new();
    let a = archive(&[
        member(b"d", DIR, 2, 2, b"", None),
        member(b"d/first", REG, 3, 1, b"ok\n", None),
        // `d` again, now a symlink out: refused while d holds `first`, and
        // in any case `d/x` must not follow it
        member(
            b"d",
            LNK,
            4,
            1,
            s.outside().to_str().unwrap().as_bytes(),
            None,
        ),
        member(b"d/x", REG, 5, 1, b"evil\n", None),
    ]);
    failed(&s.populate_dir(&gz(&a)), &[1]);
    s.assert_outside_untouched();
    // an empty directory may be replaced, but what follows stays inside
    let s = Scene::new();
    let a = archive(&[
        member(b"d", DIR, 2, 2, b"", None),
        member(
            b"d",
            LNK,
            4,
            1,
            s.outside().to_str().unwrap().as_bytes(),
            None,
        ),
        member(b"d/x", REG, 5, 1, b"evil\n", None),
    ]);
    let e = failed(&s.populate_dir(&gz(&a)), &[1]);
    assert!(e.contains("symlink"), "{e}");
    s.assert_outside_untouched();
}

#[test]
fn hard_link_group_through_a_symlink_is_refused() {
    // cpio hard links are members sharing an inode number: the data member
    // and the empty one, in either order, with one name behind a symlink
    for order in [0, 1] {
        let s = Scene::new();
        fs::write(s.p("secret"), "secret\n").unwrap();
        let link = member(
            b"s",
            LNK,
            2,
            1,
            s.outside().to_str().unwrap().as_bytes(),
            None,
        );
        let empty = member(b"s/x", REG, 9, 2, b"", None);
        let data = member(b"x", REG, 9, 2, b"evil\n", None);
        let a = if order == 0 {
            archive(&[link, empty, data])
        } else {
            archive(&[link, data, member(b"s/x", REG, 9, 2, b"", None)])
        };
        let e = failed(&s.populate_dir(&gz(&a)), &[1]);
        assert!(e.contains("symlink"), "{e}");
        let _ = fs::remove_file(s.p("secret"));
        s.assert_outside_untouched();
    }
}

#[test]
fn hard_link_whose_target_is_outside_is_refused() {
    // Only a tree source can name a link target; through the library, a
    // target behind a symlink must not be linked to (that would expose a
    // host file inside the target).
    use vm_container::hostdir::Extractor;
    use vm_container::tree::{Entry, Kind, Meta, Sink, TreePath};
    let s = Scene::new();
    fs::write(s.outside().join("passwd"), "root\n").unwrap();
    fs::create_dir(s.target()).unwrap();
    let mut x = Extractor::new(s.target()).unwrap();
    let meta = Meta {
        perm: 0o777,
        ..Meta::default()
    };
    let p = |s: &str| TreePath::from_member(s.as_bytes()).unwrap();
    x.put(
        &Entry {
            path: p("s"),
            kind: Kind::Symlink {
                target: s.outside().to_str().unwrap().as_bytes().to_vec(),
            },
            meta,
            xattrs: Default::default(),
        },
        &mut std::io::empty(),
    )
    .unwrap();
    let r = x.put(
        &Entry {
            path: p("h"),
            kind: Kind::HardLink {
                target: p("s/passwd"),
            },
            meta,
            xattrs: Default::default(),
        },
        &mut std::io::empty(),
    );
    assert!(r.is_err(), "hard link through a symlink was made");
    assert!(!s.target().join("h").exists());
    fs::remove_file(s.outside().join("passwd")).unwrap();
    s.assert_outside_untouched();
}

// ------------------------------------------------------------ size and depth

#[test]
fn huge_declared_file_size_is_truncation() {
    let s = Scene::new();
    let mut a = member(b".", DIR, 1, 2, b"", None);
    a.extend(member(b"big", REG, 2, 1, b"only this", Some(u32::MAX)));
    let e = failed(&s.populate_dir(&gz(&a)), &[1]);
    assert!(e.contains("truncated"), "{e}");
    s.assert_outside_untouched();
}

#[test]
fn deep_nesting() {
    // 5000 levels cannot be named in one newc member (4096 bytes)
    let s = Scene::new();
    let deep = "d/".repeat(5000) + "f";
    let a = archive(&[member(deep.as_bytes(), REG, 2, 1, b"x", None)]);
    let e = failed(&s.populate_dir(&gz(&a)), &[1]);
    assert!(e.contains("namesize"), "{e}");
    s.assert_outside_untouched();
    // 2000 levels can: into an image, then read back, which a reader stops
    // at its depth limit instead of overflowing the stack
    let s = Scene::new();
    let deep = "d/".repeat(2000) + "f";
    let a = archive(&[member(deep.as_bytes(), REG, 2, 1, b"x", None)]);
    fs::write(s.p("a.cpio.gz"), gz(&a)).unwrap();
    let img = s.p("img");
    let out = s.run(&format!(
        "[image {img} 8M fs ext2][end]\n[populate image {img} / file://{a}][end]\n",
        img = img.display(),
        a = s.p("a.cpio.gz").display()
    ));
    let code = out.status.code();
    assert!(matches!(code, Some(0..=2)), "{out:?}");
    if code == Some(0) {
        let out = bin()
            .arg("diff")
            .arg(&img)
            .arg(s.outside())
            .output()
            .unwrap();
        let e = failed(&out, &[2]);
        assert!(e.contains("nesting deeper"), "{e}");
        let out = bin()
            .arg("ls")
            .arg(&img)
            .arg(&deep[..deep.len() - 2])
            .output()
            .unwrap();
        assert!(matches!(out.status.code(), Some(0..=2)), "{out:?}");
    } else {
        failed(&out, &[1, 2]);
    }
    s.assert_outside_untouched();
}

/// `count` gzip members of `chunk` bytes of `fill`, compressed once: a few
/// MB that expand to `count * chunk` bytes.
fn bomb(count: usize, fill: u8) -> (Vec<u8>, u64) {
    const CHUNK: usize = 64 << 20;
    let total = (count * CHUNK) as u64 - 4;
    let mut head = member(b".", DIR, 1, 2, b"", None);
    head.extend(member(b"big", REG, 2, 1, b"", Some(total as u32)));
    let mut out = gz(&head);
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(&vec![fill; CHUNK]).unwrap();
    let one = e.finish().unwrap();
    for _ in 0..count - 1 {
        out.extend(&one);
    }
    let mut tail = vec![fill; CHUNK - 4];
    tail.extend(trailer());
    out.extend(gz(&tail));
    (out, total)
}

#[test]
fn decompression_bomb_is_bounded_by_the_image() {
    // ~4 MB of gzip expanding to 4 GiB of non-zero bytes: an image stops it
    // at its own size (out of blocks), within a second
    let s = Scene::new();
    let (b, total) = bomb(64, b'A');
    assert!(b.len() < 8 << 20 && total > 4_000_000_000);
    fs::write(s.p("a.cpio.gz"), &b).unwrap();
    let img = s.p("img");
    let t0 = Instant::now();
    let out = s.run(&format!(
        "[image {img} 8M fs ext2][end]\n[populate image {img} / file://{a}][end]\n",
        img = img.display(),
        a = s.p("a.cpio.gz").display()
    ));
    let e = failed(&out, &[1]);
    assert!(e.contains("out of blocks"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    // the failed run left no image behind
    assert!(!img.exists());
    s.assert_outside_untouched();
}

#[test]
fn gzip_with_trailing_garbage_is_refused() {
    let s = Scene::new();
    let mut b = gz(&archive(&[member(b"f", REG, 2, 1, b"x\n", None)]));
    b.extend(b"this is not a gzip member\n");
    let e = failed(&s.populate_dir(&b), &[1]);
    assert!(e.contains("a.cpio.gz"), "{e}");
    s.assert_outside_untouched();
}

// ---------------------------------------------------------------- patches

#[test]
fn patch_with_absurd_line_numbers() {
    let s = Scene::new();
    let a = archive(&[
        member(b"etc", DIR, 2, 2, b"", None),
        member(b"etc/motd", REG, 3, 1, b"one\ntwo\n", None),
    ]);
    fs::write(s.p("a.cpio.gz"), gz(&a)).unwrap();
    let img = s.p("img");
    for header in [
        "@@ -18446744073709551615,2 +18446744073709551615,2 @@",
        "@@ -4294967295,2 +4294967295,2 @@",
        "@@ -1,4294967295 +1,4294967295 @@",
    ] {
        fs::write(
            s.p("p.patch"),
            format!("--- a/etc/motd\n+++ b/etc/motd\n{header}\n one\n-two\n+2\n"),
        )
        .unwrap();
        let out = s.run(&format!(
            "[image {img} 8M fs ext2][end]\n[populate image {img} / file://{a}][end]\n\
             [patch {img} file://{p}][end]\n",
            img = img.display(),
            a = s.p("a.cpio.gz").display(),
            p = s.p("p.patch").display()
        ));
        let e = failed(&out, &[1]);
        assert!(e.contains("p.patch"), "{header}: {e}");
        assert!(!img.exists(), "{header}: a failed run committed the image");
    }
    // a large but representable line number is only where the search
    // starts, as in GNU patch: the hunk is found at line 1 and applies
    fs::write(
        s.p("p.patch"),
        "--- a/etc/motd\n+++ b/etc/motd\n@@ -99999999,2 +99999999,2 @@\n one\n-two\n+2\n",
    )
    .unwrap();
    let out = s.run(&format!(
        "[image {img} 8M fs ext2][end]\n[populate image {img} / file://{a}][end]\n\
         [patch {img} file://{p}][end]\n",
        img = img.display(),
        a = s.p("a.cpio.gz").display(),
        p = s.p("p.patch").display()
    ));
    assert!(out.status.success(), "{out:?}");
    let cat = bin()
        .arg("cat")
        .arg(&img)
        .arg("/etc/motd")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "one\n2\n");
    s.assert_outside_untouched();
}

// ---------------------------------------------------------------- images

/// A small ext2 image made by vm-container, with a file `hello`.
fn small_image(s: &Scene) -> Vec<u8> {
    let a = archive(&[member(b"hello", REG, 2, 1, b"hi\n", None)]);
    fs::write(s.p("a.cpio.gz"), gz(&a)).unwrap();
    let img = s.p("img");
    let out = s.run(&format!(
        "[image {img} 256K fs ext2 blocksize 1024][end]\n[populate image {img} / file://{a}][end]\n",
        img = img.display(),
        a = s.p("a.cpio.gz").display()
    ));
    assert!(out.status.success(), "{out:?}");
    fs::read(&img).unwrap()
}

fn ls(img: &Path, path: &str) -> Output {
    bin().arg("ls").arg(img).arg(path).output().unwrap()
}

#[test]
fn corrupt_superblocks_are_refused() {
    let s = Scene::new();
    let good = small_image(&s);
    let img = s.p("img");
    let sb = 1024;
    let le32 = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let put32 = |b: &mut Vec<u8>, off: usize, v: u32| {
        b[sb + off..sb + off + 4].copy_from_slice(&v.to_le_bytes())
    };
    type Corruption<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    let cases: Vec<(&str, Corruption)> = vec![
        ("magic", Box::new(|b| b[sb + 56] = 0)),
        ("log block size", Box::new(move |b| put32(b, 24, 40))),
        ("blocks per group 0", Box::new(move |b| put32(b, 32, 0))),
        ("inodes per group 0", Box::new(move |b| put32(b, 40, 0))),
        (
            "inodes per group huge",
            Box::new(move |b| put32(b, 40, u32::MAX)),
        ),
        ("blocks count 0", Box::new(move |b| put32(b, 4, 0))),
        (
            "blocks count huge",
            Box::new(move |b| put32(b, 4, u32::MAX)),
        ),
        (
            "inodes count huge",
            Box::new(move |b| put32(b, 0, u32::MAX)),
        ),
        ("inode size", Box::new(|b| b[sb + 88] = 3)),
        (
            "incompat features",
            Box::new(move |b| put32(b, 96, 0xffff_0000)),
        ),
        (
            // found by the `ext` fuzz target: groups × inodes per group
            // overflowed (a panic in debug builds, a wrong check otherwise)
            "64-bit block count",
            Box::new(move |b| {
                put32(b, 96, le32(b, sb + 96) | 0x80);
                put32(b, 0x150, u32::MAX);
                put32(b, 32, 1);
            }),
        ),
        ("truncated", Box::new(|b| b.truncate(1500))),
    ];
    for (what, corrupt) in cases {
        let mut b = good.clone();
        corrupt(&mut b);
        fs::write(&img, &b).unwrap();
        let t0 = Instant::now();
        let out = ls(&img, "/");
        // a corruption the reader cannot see may still list; it must not
        // crash or hang
        if !out.status.success() {
            let e = failed(&out, &[1]);
            assert!(e.contains("img"), "{what}: {e}");
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "{what}");
    }
}

#[test]
fn inode_numbers_out_of_range() {
    let s = Scene::new();
    let good = small_image(&s);
    let img = s.p("img");
    // the root directory's entry for `hello`: inode at -8 from the name
    let at = good
        .windows(5)
        .position(|w| w == b"hello")
        .expect("entry for hello");
    for ino in [u32::MAX, 0x7fff_ffff, 100_000] {
        let mut b = good.clone();
        b[at - 8..at - 4].copy_from_slice(&ino.to_le_bytes());
        fs::write(&img, &b).unwrap();
        let e = failed(&ls(&img, "/"), &[1]);
        assert!(e.contains("out of range"), "{ino}: {e}");
        let out = bin()
            .arg("diff")
            .arg(&img)
            .arg(s.outside())
            .output()
            .unwrap();
        let e = failed(&out, &[2]);
        assert!(e.contains("out of range"), "{ino}: {e}");
    }
}

#[test]
fn regression_ext_name_with_slash() {
    // A directory entry named `../../x` (found by the `ext` fuzz target):
    // it used to become the tree path `d/../../x` (in debug builds a
    // panic), which `diff` wrote into a patch.
    let t = tempdir();
    let img = gunzip_to("ext-name-with-slash.img.gz", t.path());
    let e = failed(&ls(&img, "/d"), &[1]);
    assert!(e.contains("illegal name"), "{e}");
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let out = bin().arg("diff").arg(&empty).arg(&img).output().unwrap();
    let e = failed(&out, &[2]);
    assert!(e.contains("illegal name"), "{e}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(".."));
}

#[test]
fn regression_ext_populate_first_data_block() {
    // An image whose first group's inode table lies before its first data
    // block (found by the `ext_populate` fuzz target): allocation started
    // below the first data block and underflowed. Now the block search
    // starts at the first data block, and the volume is refused before
    // that: its superblock is damaged (blocks and clusters per group
    // differ).
    let s = Scene::new();
    let img = s.p("img");
    fs::rename(
        gunzip_to("ext-populate-first-data-block.img.gz", s.t.path()),
        &img,
    )
    .unwrap();
    let a = archive(&[
        member(b"etc", DIR, 1, 2, b"", None),
        member(b"etc/hostname", REG, 2, 1, b"fuzzy\n", None),
    ]);
    fs::write(s.p("a.cpio.gz"), gz(&a)).unwrap();
    let before = fs::read(&img).unwrap();
    let out = s.run(&format!(
        "[populate image {} / file://{}][end]\n",
        img.display(),
        s.p("a.cpio.gz").display()
    ));
    let e = failed(&out, &[1]);
    assert!(e.contains("refusing to write to this volume"), "{e}");
    assert_eq!(fs::read(&img).unwrap(), before);
    s.assert_outside_untouched();
}

// ---------------------------------------------------------------- signatures

#[test]
fn hostile_signatures_and_keys() {
    let t = tempdir();
    let p = |n: &str| t.path().join(n);
    let out = bin()
        .args(["keygen", "-p"])
        .arg(p("k.pub"))
        .arg("-s")
        .arg(p("k.sec"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    fs::write(p("f"), "data\n").unwrap();
    let out = bin()
        .args(["sign", "-s"])
        .arg(p("k.sec"))
        .arg(p("f"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let good = fs::read_to_string(p("f.sig")).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let cases = [
        String::new(),
        "untrusted comment: x\n".to_string(),
        format!("{}\n{}", lines[0], "A".repeat(100_000)),
        // one base64 character of the signature changed
        format!(
            "{}\n{}{}{}\n",
            lines[0],
            &lines[1][..40],
            if &lines[1][40..41] == "A" { "B" } else { "A" },
            &lines[1][41..]
        ),
        format!("untrusted comment: {}\n{}\n", "x".repeat(100_000), lines[1]),
        format!(
            "{}\n{}\ntrusted comment: evil\n{}\n",
            lines[0], lines[1], lines[3]
        ),
        format!(
            "{}\n{}\n{}\n{}\ntrailing\n",
            lines[0], lines[1], lines[2], lines[3]
        ),
        "\0\0\0\u{ffff}".to_string(),
    ];
    for (i, sig) in cases.iter().enumerate() {
        fs::write(p("f.sig"), sig).unwrap();
        let out = bin()
            .args(["verify", "-p"])
            .arg(p("k.pub"))
            .arg(p("f"))
            .output()
            .unwrap();
        let e = failed(&out, &[1, 2]);
        assert!(!e.is_empty(), "case {i}");
    }
    // a hostile public key
    fs::write(p("f.sig"), &good).unwrap();
    for key in [
        "",
        "untrusted comment: x\nRWQ=\n",
        "untrusted comment: x\n\u{0}\n",
    ] {
        fs::write(p("bad.pub"), key).unwrap();
        let out = bin()
            .args(["verify", "-p"])
            .arg(p("bad.pub"))
            .arg(p("f"))
            .output()
            .unwrap();
        failed(&out, &[1, 2]);
    }
}

/// A secret key asking for 2^32 - 1 bcrypt_pbkdf rounds (about 10 ms each)
/// is refused before any round runs, rather than holding a run for a year.
#[test]
fn secret_key_with_absurd_kdf_rounds() {
    use base64::Engine;
    let t = tempdir();
    let p = |n: &str| t.path().join(n);
    fs::write(p("pass"), "secret\n").unwrap();
    let out = bin()
        .args(["keygen", "-p"])
        .arg(p("k.pub"))
        .arg("-s")
        .arg(p("k.sec"))
        .arg("--passphrase-file")
        .arg(p("pass"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = fs::read_to_string(p("k.sec")).unwrap();
    let (comment, b64) = text.split_once('\n').unwrap();
    let b64e = base64::engine::general_purpose::STANDARD;
    let mut raw = b64e.decode(b64.trim()).unwrap();
    // pkalg(2) kdfalg(2) kdfrounds(4, big-endian)
    assert_eq!(&raw[4..8], &42u32.to_be_bytes());
    raw[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    fs::write(p("k.sec"), format!("{comment}\n{}\n", b64e.encode(&raw))).unwrap();
    fs::write(p("f"), "data\n").unwrap();
    let started = Instant::now();
    let out = bin()
        .args(["sign", "-s"])
        .arg(p("k.sec"))
        .arg("--passphrase-file")
        .arg(p("pass"))
        .arg(p("f"))
        .output()
        .unwrap();
    let e = failed(&out, &[1, 2]);
    assert!(e.contains("4294967295 KDF rounds"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!p("f.sig").exists());
}

#[test]
fn hostile_containers_fail_the_check() {
    let s = Scene::new();
    for text in [
        "[populate dir ../../outside /mnt file:///nonexistent.cpio.gz][end]\n".to_string(),
        format!("{}\n", "[".repeat(100_000)),
        format!("x = {}1{}\n", "[".repeat(10_000), "]".repeat(10_000)),
        "[replace /../etc/passwd\nroot\n] [end]\n".to_string(),
        "\u{feff}name = \"x\"\n\0\n".to_string(),
    ] {
        let out = s.run(&text);
        // check errors are located diagnostics and one summary line
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text:.80}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains("nothing was run"), "{stderr}");
    }
    s.assert_outside_untouched();
}

// ---------------------------------------------------------------- Xen syntax

fn nested(levels: usize, inner: &str) -> String {
    format!("x = {}{inner}{}\n", "[".repeat(levels), "]".repeat(levels))
}

#[test]
fn deeply_nested_xen_lists_fail_where_xl_does() {
    // libxlutil's bison stack holds 9999 states: `[` nests 4996 deep with
    // an atom inside, one more is "memory exhausted". Deeper used to
    // overflow our stack (found while writing these tests).
    use vm_container::xen;
    for (levels, inner, ok) in [
        (4996, "1", true),
        (4997, "1", false),
        (4996, "", true),
        (4997, "", false),
        (4995, "1,1", true),
        (4995, "1,1\n", false),
        (4996, "1,1", false),
    ] {
        let (_, errors) = xen::parse_config(&nested(levels, inner));
        assert_eq!(errors.is_empty(), ok, "{levels} {inner:?}: {errors:?}");
        if !ok {
            assert_eq!(errors[0].kind, xen::ErrorKind::TooDeep, "{errors:?}");
        }
    }
    let t = tempdir();
    for levels in [4997, 100_000, 1_000_000] {
        let f = t.path().join("deep.cfg");
        fs::write(&f, nested(levels, "1")).unwrap();
        let out = bin().arg("check").arg(&f).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{levels}: {stderr:.300}");
        assert!(stderr.contains("nested too deeply"), "{stderr:.300}");
    }
}

#[test]
fn directory_claiming_gigabytes_of_holes() {
    // The root directory claims 60 GiB (all holes) and the superblock
    // claims enough blocks to make that plausible: reading it used to walk
    // 63 million holes (seconds; minutes with 64 KiB blocks). Directories
    // may not claim more than the image file holds.
    let s = Scene::new();
    let mut b = small_image(&s);
    let le32 = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let sb = 1024;
    assert_eq!(le32(&b, sb + 24), 0, "1 KiB blocks");
    let inode_size = u16::from_le_bytes([b[sb + 88], b[sb + 89]]) as usize;
    let table = le32(&b, 2048 + 8) as usize; // group 0's bg_inode_table
    let root = table * 1024 + inode_size; // inode 2
    let size: u64 = 60 << 30;
    b[root + 4..root + 8].copy_from_slice(&(size as u32).to_le_bytes());
    b[root + 108..root + 112].copy_from_slice(&((size >> 32) as u32).to_le_bytes());
    b[sb + 4..sb + 8].copy_from_slice(&(8000u32 * 8192).to_le_bytes());
    let img = s.p("img");
    fs::write(&img, &b).unwrap();
    let t0 = Instant::now();
    let e = failed(&ls(&img, "/"), &[1]);
    assert!(e.contains("more than the volume"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

#[test]
fn many_directories_claiming_the_whole_volume() {
    // Every directory of the image claims as many bytes as the image
    // holds, in holes past its one real block: each is allowed, all
    // together are not, so the walk stays linear in the image size.
    let s = Scene::new();
    let mut members = Vec::new();
    for i in 0..100u32 {
        members.push(member(
            format!("d{i}").as_bytes(),
            DIR,
            10 + i,
            2,
            b"",
            None,
        ));
    }
    fs::write(s.p("a.cpio.gz"), gz(&archive(&members))).unwrap();
    let img = s.p("img");
    let out = s.run(&format!(
        "[image {img} 256K fs ext2 blocksize 1024 inodes 128][end]\n[populate image {img} / file://{a}][end]\n",
        img = img.display(),
        a = s.p("a.cpio.gz").display()
    ));
    assert!(out.status.success(), "{out:?}");
    let mut b = fs::read(&img).unwrap();
    let le32 = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let inode_size = u16::from_le_bytes([b[1024 + 88], b[1024 + 89]]) as usize;
    let ipg = le32(&b, 1024 + 40) as usize;
    let table = le32(&b, 2048 + 8) as usize;
    let len = b.len() as u32;
    let mut dirs = 0;
    for i in 0..ipg {
        let at = table * 1024 + i * inode_size;
        let mode = u16::from_le_bytes([b[at], b[at + 1]]);
        if mode & 0o170000 == 0o040000 && i != 1 {
            b[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
            dirs += 1;
        }
    }
    assert!(dirs >= 50, "{dirs}");
    fs::write(&img, &b).unwrap();
    let empty = s.p("target");
    fs::create_dir(&empty).unwrap();
    let out = bin().arg("diff").arg(&img).arg(&empty).output().unwrap();
    let e = failed(&out, &[2]);
    assert!(e.contains("claim more bytes than the volume"), "{e}");
}

/// Runs `cmd`, killing it after `secs`: a hang is a failure, not a stall.
fn output_within(mut cmd: Command, secs: u64) -> Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("{cmd:?}: still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn regression_odd_white_space_in_expressions() {
    // A vertical tab between words: the word reader stopped at Unicode
    // white space that the blank skipper did not skip, consumed nothing,
    // and pushed empty words forever (found by the `container` target).
    let mut c = bin();
    c.arg("check").arg(hostile("container-odd-white-space.vmc"));
    let out = output_within(c, 10);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing was run"), "{stderr}");
}

#[test]
fn regression_end_before_a_multibyte_character() {
    // `[end` then a multi-byte character: the parser resumed one byte past
    // `end`, inside the character, and the lexer's slice panicked (found
    // by the `container` target).
    let mut c = bin();
    c.arg("check").arg(hostile("container-end-multibyte.vmc"));
    let out = output_within(c, 10);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nothing was run") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------- many entries

/// `files` empty files, a thousand to a directory (`d/K/fN`).
fn many_entries(files: u32) -> Vec<u8> {
    let mut raw = member(b"d", DIR, 1, 2, b"", None);
    for i in 0..files {
        if i % 1000 == 0 {
            raw.extend(member(
                format!("d/{}", i / 1000).as_bytes(),
                DIR,
                2 + i,
                2,
                b"",
                None,
            ));
        }
        raw.extend(member(
            format!("d/{}/f{i}", i / 1000).as_bytes(),
            REG,
            10_000_000 + i,
            1,
            b"",
            None,
        ));
    }
    raw.extend(trailer());
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(&raw).unwrap();
    e.finish().unwrap()
}

/// Runs the container `text` under GNU time: the output and the peak
/// resident set in MiB.
fn run_measured(s: &Scene, text: &str) -> (Output, u64) {
    let c = s.p("c.vmc");
    fs::write(&c, text).unwrap();
    let rss = s.p("state.rss");
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss)
        .arg(env!("CARGO_BIN_EXE_vm-container"))
        .args(["-q", "--offline", "--container"])
        .arg(&c)
        .arg("--dir")
        .arg(s.p("state"))
        .output()
        .expect("GNU time (/usr/bin/time, package `time`)");
    let kb: u64 = fs::read_to_string(&rss).unwrap().trim().parse().unwrap();
    fs::remove_file(&rss).unwrap();
    eprintln!(
        "peak resident set {} MiB: {}",
        kb / 1024,
        text.lines().next().unwrap_or("")
    );
    (out, kb / 1024)
}

/// A million tiny entries (6 MB of gzip): editing one file of the archive
/// costs memory for the edit and the fork's table of written files (about
/// 70 bytes an entry, most of it that table), and building an image holds
/// one node per inode (about 200 bytes) — bounded by the inode count the
/// container gave the image, not by the archive.
#[test]
fn a_million_tiny_entries_in_bounded_memory() {
    let s = Scene::new();
    fs::write(s.p("a.cpio.gz"), many_entries(1_000_000)).unwrap();
    let a = s.p("a.cpio.gz");
    let fork = s.p("target/fork.cpio.gz");
    let (out, mib) = run_measured(
        &s,
        &format!(
            "[replace /d/5/f5000 archive file://{} fork file://{}\n\nhello\n\n][end]\n",
            a.display(),
            fork.display()
        ),
    );
    ok(&out);
    assert!(mib < 128, "fork of a million entries: {mib} MiB");
    let listed = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -dc '{}' | cpio -it --quiet | wc -l",
            fork.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "1001001");

    let img = s.p("img");
    let (out, mib) = run_measured(
        &s,
        &format!(
            "[image {img} 8GB many inodes 1100000][end]\n[populate image {img} / file://{a}][end]\n",
            img = img.display(),
            a = a.display()
        ),
    );
    ok(&out);
    assert!(mib < 280, "image of a million entries: {mib} MiB");
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(&img)
        .output()
        .unwrap();
    assert!(fsck.status.success(), "{fsck:?}");
    let files = String::from_utf8_lossy(&fsck.stdout).into_owned();
    assert!(files.contains("1001012/"), "{files}");
    fs::remove_file(&img).unwrap();

    // expanding into a host directory keeps nothing per entry
    fs::write(s.p("a.cpio.gz"), many_entries(100_000)).unwrap();
    let (out, mib) = run_measured(
        &s,
        &format!(
            "[populate dir {} /mnt file://{}][end]\n",
            s.target().join("tree").display(),
            a.display()
        ),
    );
    ok(&out);
    assert!(mib < 16, "100,000 entries into a directory: {mib} MiB");
    assert!(s.target().join("tree/d/99/f99999").is_file());
    s.assert_outside_untouched();
}

/// A directory entry naming an ancestor (made with debugfs `ln`): walks of
/// the image stop with the path, and nothing is written.
#[test]
fn directory_loop_in_an_image() {
    let s = Scene::new();
    let src = s.target().join("src/a/b");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "hi\n").unwrap();
    let img = s.p("img");
    mke2fs_d(&s.target().join("src"), &img, "8M");
    debugfs_w(&img, "ln /a /a/b/up");
    let before = fs::read(&img).unwrap();
    let empty = s.target().join("empty");
    fs::create_dir(&empty).unwrap();
    let patch = s.target().join("out.patch");
    let out = bin()
        .arg("diff")
        .arg(&img)
        .arg(&empty)
        .arg("-o")
        .arg(&patch)
        .output()
        .unwrap();
    let e = failed(&out, &[2]);
    assert!(e.contains("/a/b/up: directory loop"), "{e}");
    assert!(!patch.exists());
    // a path through the loop is only a longer name for the same directory
    let out = bin()
        .arg("ls")
        .arg(&img)
        .arg("/a/b/up/b/up/b")
        .output()
        .unwrap();
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains(" f\n"));
    assert_eq!(fs::read(&img).unwrap(), before);
    s.assert_outside_untouched();
}

// ---------------------------------------------------------------- no partial output

/// A new target directory is expanded beside itself and renamed into place
/// at commit: an archive that turns hostile halfway leaves no part of it.
#[test]
fn a_failed_expansion_leaves_no_partial_tree() {
    let s = Scene::new();
    let a = archive(&[
        member(b"etc", DIR, 1, 2, b"", None),
        member(b"etc/good", REG, 2, 1, b"fine\n", None),
        member(b"etc/../../outside/x", REG, 3, 1, b"evil\n", None),
    ]);
    let e = failed(&s.populate_dir(&gz(&a)), &[1]);
    assert!(e.contains("`..`"), "{e}");
    assert!(!s.target().exists(), "a partial target was left");
    s.assert_outside_untouched();

    // the same archive without its last member: the whole tree appears,
    // also when two expressions fill one new directory and a third a
    // directory inside it
    let good = archive(&[
        member(b"etc", DIR, 1, 2, b"", None),
        member(b"etc/good", REG, 2, 1, b"fine\n", None),
    ]);
    fs::write(s.p("a.cpio.gz"), gz(&good)).unwrap();
    let t = s.target();
    let out = s.run(&format!(
        "[populate dir {t} /mnt file://{a}][end]\n\
         [populate dir {t}/etc/inner /mnt file://{a}][end]\n\
         [populate dir {t} /mnt file://{a}][end]\n",
        t = t.display(),
        a = s.p("a.cpio.gz").display()
    ));
    ok(&out);
    assert_eq!(fs::read(t.join("etc/good")).unwrap(), b"fine\n");
    assert_eq!(fs::read(t.join("etc/inner/etc/good")).unwrap(), b"fine\n");
    s.assert_outside_untouched();

    // a directory that exists (a mount point, say) is merged into in
    // place: what came before the hostile member stays, inside the target
    let e = failed(&s.populate_dir(&gz(&a)), &[1]);
    assert!(e.contains("`..`"), "{e}");
    assert!(t.join("etc/good").exists());
    s.assert_outside_untouched();
}

// ---------------------------------------------------------------- sparse and shared blocks

fn mke2fs_d(src: &Path, img: &Path, size: &str) {
    let mk = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-b", "4096", "-d"])
        .arg(src)
        .arg(img)
        .arg(size)
        .output()
        .unwrap();
    assert!(mk.status.success(), "{mk:?}");
}

fn debugfs_w(img: &Path, request: &str) {
    let out = Command::new("debugfs")
        .args(["-w", "-R", request])
        .arg(img)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A file of one terabyte, all hole but its last bytes, in host
/// directories and in images: comparing trees steps over the hole
/// (SEEK_DATA on the host, the block map in an image) instead of reading a
/// terabyte of zeros.
#[test]
fn a_terabyte_of_hole_costs_only_its_data() {
    let s = Scene::new();
    let t = s.target();
    for (side, small) in [("a", "hello\n"), ("b", "world\n")] {
        let d = t.join(side);
        fs::create_dir_all(&d).unwrap();
        let f = fs::File::create(d.join("big")).unwrap();
        f.set_len(1 << 40).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"tail\n", 1 << 40).unwrap();
        fs::write(d.join("small"), small).unwrap();
        mke2fs_d(&d, &t.join(format!("{side}.img")), "64M");
    }
    for (old, new) in [
        ("a.img", "b.img"),
        ("a", "b.img"),
        ("a.img", "b"),
        ("a", "b"),
    ] {
        let t0 = Instant::now();
        let out = bin()
            .arg("diff")
            .arg(t.join(old))
            .arg(t.join(new))
            .args(["-o", "-"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{old} {new}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("diff -ruN a/small b/small\n"), "{text}");
        assert!(!text.contains("big"), "{text}");
        // reading the zeros would take hours; the bound leaves room for a
        // loaded machine
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{old} {new}: {:?}",
            t0.elapsed()
        );
    }
    s.assert_outside_untouched();
}

/// An image whose one-block file is stretched to 4 GiB by a double
/// indirect block naming the same indirect block 1,024 times, itself naming
/// the file's one data block 1,024 times: a few MB that would read as 4 GiB.
/// No block of a sound volume belongs to two places, so reading stops once
/// more blocks than the volume holds have been read.
#[test]
fn a_block_map_naming_one_block_a_million_times() {
    let s = Scene::new();
    let src = s.target().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), vec![b'A'; 4096]).unwrap();
    let img = s.p("img");
    mke2fs_d(&src, &img, "64M");
    let bmap = Command::new("debugfs")
        .args(["-R", "bmap /f 0"])
        .arg(&img)
        .output()
        .unwrap();
    let data: u32 = String::from_utf8_lossy(&bmap.stdout)
        .trim()
        .parse()
        .unwrap();
    // two blocks past everything mke2fs wrote into a 64 MiB volume
    let (ind, dind) = (15000u32, 15001u32);
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
        let block = |v: u32| -> Vec<u8> { (0..1024).flat_map(|_| v.to_le_bytes()).collect() };
        f.write_all_at(&block(data), u64::from(ind) * 4096).unwrap();
        f.write_all_at(&block(ind), u64::from(dind) * 4096).unwrap();
    }
    debugfs_w(&img, &format!("sif /f block[DIND] {dind}"));
    let size = (12 + 1024 + 1024 * 1024) * 4096u64;
    debugfs_w(&img, &format!("sif /f size {size}"));
    let empty = s.target().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let t0 = Instant::now();
    let out = bin()
        .arg("diff")
        .arg(&img)
        .arg(&empty)
        .args(["-o"])
        .arg(s.target().join("out.patch"))
        .output()
        .unwrap();
    let e = failed(&out, &[2]);
    assert!(
        e.contains("/f: its block map reads more blocks than the volume holds"),
        "{e}"
    );
    assert!(!s.target().join("out.patch").exists());
    let out = bin().arg("cat").arg(&img).arg("/f").output().unwrap();
    let e = failed(&out, &[1]);
    assert!(e.contains("more blocks than the volume holds"), "{e}");
    // the volume's 16,384 blocks of data at most, besides the holes of the
    // direct and single indirect ranges
    assert!(
        out.stdout.len() <= (16384 + 12 + 1024) * 4096,
        "{}",
        out.stdout.len()
    );
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    s.assert_outside_untouched();
}
