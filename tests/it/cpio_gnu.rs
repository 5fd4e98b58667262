//! Our archives against GNU cpio, and GNU cpio's archives against our reader.

use crate::cpio_common;

use cpio_common::*;
use std::fs;
use std::path::Path;
use vm_container::cpio::Reader;
use vm_container::hostdir::{Extractor, Walker};
use vm_container::tree::manifest::{manifest, Manifest};
use vm_container::tree::Source;
use vm_container::tree::TreePath;

fn gnu_extract(archive_gz: &[u8], out: &Path) {
    fs::create_dir(out).unwrap();
    sh(
        out,
        "gzip -dc | cpio -idm --no-absolute-filenames --quiet",
        archive_gz,
    );
}

/// What GNU cpio 2.13 cannot restore, blanked: symlink mtimes (it never
/// sets them) and the mtimes of directories holding empty regular files
/// (it creates those at the very end, after setting the directory's time,
/// because an empty member with `c_nlink` > 1 may be a deferred hard link).
/// With `all_dirs`, every directory mtime (parents-first archives).
pub(crate) fn mask_gnu_limits(mut m: Manifest, all_dirs: bool) -> Manifest {
    let late_dirs: Vec<TreePath> = m
        .iter()
        .filter(|(_, r)| r.kind == "file" && r.size == 0)
        .filter_map(|(p, _)| p.parent())
        .collect();
    for (p, r) in m.iter_mut() {
        let dir = r.kind == "directory";
        if r.kind == "symlink" || (dir && (all_dirs || late_dirs.contains(p))) {
            r.meta.mtime = 0;
        }
    }
    m
}

fn reader_manifest(bytes: &[u8]) -> vm_container::tree::manifest::Manifest {
    manifest(&mut Reader::new(bytes, "gnu archive")).unwrap()
}

/// Our archive of `src` compressed on `threads` threads.
fn pack_gz_threads(src: &Path, threads: usize) -> Vec<u8> {
    let gz = vm_container::cpio::gzip::Encoder::with_threads(Vec::new(), 6, threads);
    let mut w = vm_container::cpio::Writer::new(gz, "threads.cpio.gz");
    Walker::new(src).emit(&mut w).unwrap();
    w.finish_gzip().unwrap()
}

#[test]
fn parallel_gzip_is_the_same_on_any_core_count_and_gnu_reads_it() {
    require_tool("cpio");
    require_tool("gzip");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    // many chunks: compressible text, noise, a long run of zeros, and
    // small files between them
    let text: Vec<u8> = (0..400_000u32)
        .flat_map(|i| format!("line {} of {}\n", i % 977, i % 13).into_bytes())
        .collect();
    fs::write(src.join("text"), &text).unwrap();
    fs::write(src.join("noise"), noise(700_000, 7)).unwrap();
    fs::write(src.join("zeros"), vec![0u8; 1 << 20]).unwrap();
    for i in 0..50 {
        fs::write(src.join(format!("small{i}")), noise(i * 100, i as u64)).unwrap();
    }
    let one = pack_gz_threads(&src, 1);
    assert!(one.len() > 1 << 20, "several chunks: {} bytes", one.len());
    for threads in [2, 3, 7] {
        assert!(
            pack_gz_threads(&src, threads) == one,
            "{threads} threads give other bytes than one"
        );
    }
    assert_eq!(
        pack_gz(&mut Walker::new(&src)),
        one,
        "the default core count"
    );
    // GNU gzip checks the CRC and length; GNU cpio reads every member
    let raw = sh(t.path(), "gzip -dc", &one);
    let listed = sh(t.path(), "gzip -dc | cpio -it --quiet", &one);
    let listed = String::from_utf8(listed).unwrap();
    assert_eq!(listed.lines().count(), 54, "{listed}");
    let out = t.path().join("out");
    gnu_extract(&one, &out);
    assert_eq!(fs::read(out.join("text")).unwrap(), text);
    assert_same(&dir_manifest(&src), &reader_manifest(&one));
    assert_eq!(
        manifest(&mut Reader::new(raw.as_slice(), "raw")).unwrap(),
        reader_manifest(&one)
    );
}

#[test]
#[ignore = "root tier: creates device nodes and sets owners"]
fn gnu_cpio_extracts_our_archive_identically() {
    require_tool("cpio");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    build_tree(&src);
    let want = dir_manifest(&src);
    // GNU cpio sets a directory's mtime when it meets the directory, so
    // only children-first order (`find -depth`) lets them survive.
    let mut replay = Replay::capture(&mut Walker::new(&src)).depth_first();
    let gz = pack_gz(&mut replay);
    let out = t.path().join("out");
    gnu_extract(&gz, &out);
    assert_same(
        &mask_gnu_limits(want, false),
        &mask_gnu_limits(dir_manifest(&out), false),
    );
}

#[test]
#[ignore = "root tier: creates device nodes and sets owners"]
fn gnu_cpio_extracts_our_walker_order_except_directory_mtimes() {
    require_tool("cpio");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    build_tree(&src);
    let gz = pack_gz(&mut Walker::new(&src));
    let out = t.path().join("out");
    gnu_extract(&gz, &out);
    assert_same(
        &mask_gnu_limits(dir_manifest(&src), true),
        &mask_gnu_limits(dir_manifest(&out), true),
    );
}

#[test]
#[ignore = "root tier: creates device nodes and sets owners"]
fn our_archive_is_byte_reproducible_and_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    build_tree(&src);
    let a = pack_gz(&mut Walker::new(&src));
    let b = pack_gz(&mut Walker::new(&src));
    assert_eq!(a, b, "two packs of one tree differ");
    // fixed gzip header: magic, deflate, no flags, mtime 0
    assert_eq!(&a[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    assert_same(&dir_manifest(&src), &reader_manifest(&a));
    // and through our extractor
    let out = t.path().join("out");
    let mut ex = Extractor::new(&out).unwrap();
    Reader::new(a.as_slice(), "ours").emit(&mut ex).unwrap();
    assert!(ex.finish().unwrap().is_empty());
    assert_same(&dir_manifest(&src), &dir_manifest(&out));
}

#[test]
#[ignore = "root tier: creates device nodes and sets owners"]
fn reads_gnu_newc_gzip_pigz_crc_and_depth_archives() {
    require_tool("cpio");
    require_tool("pigz");
    require_tool("gzip");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    build_tree(&src);
    let want = dir_manifest(&src);
    let cases = [
        ("newc+gzip", "find . | cpio -o -H newc --quiet | gzip -6"),
        (
            "newc+pigz",
            "find . | cpio -o -H newc --quiet | pigz -p 2 -b 128",
        ),
        ("newc plain", "find . | cpio -o -H newc --quiet"),
        ("crc", "find . | cpio -o -H crc --quiet"),
        ("crc+gzip", "find . | cpio -o -H crc --quiet | gzip -1"),
        (
            "depth newc",
            "find . -depth | cpio -o -H newc --quiet | gzip",
        ),
    ];
    for (what, script) in cases {
        let bytes = sh(&src, script, b"");
        let got = reader_manifest(&bytes);
        let d = vm_container::tree::manifest::differences(&want, &got);
        assert!(d.is_empty(), "{what}: trees differ:\n{}", d.join("\n"));
        // our extractor from GNU's archive gives the same tree, directory
        // mtimes included, whatever the order
        let out = t
            .path()
            .join(format!("out-{}", what.replace(['+', ' '], "-")));
        let mut ex = Extractor::new(&out).unwrap();
        Reader::new(bytes.as_slice(), what).emit(&mut ex).unwrap();
        ex.finish().unwrap();
        let d = vm_container::tree::manifest::differences(&want, &dir_manifest(&out));
        assert!(
            d.is_empty(),
            "{what} extracted: trees differ:\n{}",
            d.join("\n")
        );
    }
}

#[test]
#[ignore = "root tier: creates device nodes and sets owners"]
fn reads_concatenated_gzip_members() {
    require_tool("cpio");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    build_tree(&src);
    let plain = sh(&src, "find . | cpio -o -H newc --quiet", b"");
    // split inside a header and inside file data alike
    let mut cat = Vec::new();
    for part in plain.chunks(plain.len() / 5 + 1) {
        cat.extend(sh(t.path(), "gzip -c", part));
    }
    assert!(cat.windows(3).filter(|w| w == &[0x1f, 0x8b, 8]).count() >= 5);
    assert_same(&dir_manifest(&src), &reader_manifest(&cat));
}

#[test]
fn gnu_hard_link_data_on_last_member_becomes_file_then_links() {
    require_tool("cpio");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"data").unwrap();
    fs::hard_link(src.join("a"), src.join("b")).unwrap();
    fs::hard_link(src.join("a"), src.join("c")).unwrap();
    let bytes = sh(&src, "printf 'a\\nb\\nc\\n' | cpio -o -H newc --quiet", b"");
    let mut seen = Vec::new();
    {
        let mut sink = vm_container::tree::FnSink(
            |e: &vm_container::tree::Entry, d: &mut dyn std::io::Read| {
                let mut buf = Vec::new();
                d.read_to_end(&mut buf)?;
                seen.push((e.path.to_string(), e.kind.clone(), buf));
                Ok(())
            },
        );
        Reader::new(bytes.as_slice(), "links")
            .emit(&mut sink)
            .unwrap();
    }
    use vm_container::tree::Kind;
    let c = TreePath::from_member(b"c").unwrap();
    // GNU writes the deferred empty members in an order of its own
    seen[1..].sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("c".into(), Kind::File { size: 4 }, b"data".to_vec()),
            ("a".into(), Kind::HardLink { target: c.clone() }, vec![]),
            ("b".into(), Kind::HardLink { target: c }, vec![]),
        ]
    );
}
