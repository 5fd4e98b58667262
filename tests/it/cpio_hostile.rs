//! Hostile and broken archives, crafted byte by byte.

use crate::cpio_common;

use cpio_common::*;
use std::fs;
use std::io::{self, Read, Write};
use vm_container::cpio::{Error, Reader, Writer};
use vm_container::hostdir::{self, Extractor};
use vm_container::tree::manifest::manifest;
use vm_container::tree::{Entry, FnSink, Kind, Meta, PathError, Sink, Source, TreePath};

const REG: u32 = 0o100644;
const DIR: u32 = 0o040755;
const LNK: u32 = 0o120777;

fn read_err(bytes: &[u8]) -> io::Error {
    manifest(&mut Reader::new(bytes, "evil.cpio")).unwrap_err()
}

fn cpio_err(bytes: &[u8]) -> String {
    let e = read_err(bytes);
    let inner = Error::from_io(&e).unwrap_or_else(|| panic!("untyped error: {e}"));
    assert!(e.to_string().contains("evil.cpio"), "{e}");
    format!("{inner:?}")
}

fn archive(members: &[Vec<u8>]) -> Vec<u8> {
    let mut v: Vec<u8> = members.concat();
    v.extend(trailer());
    v
}

#[test]
fn dotdot_absolute_and_nul_names_are_refused_with_offset() {
    let first = member(b"ok", REG, 1, 1, b"x");
    let off = first.len() as u64;
    for (name, why) in [
        (&b"../etc/passwd"[..], PathError::DotDot),
        (b"a/../../b", PathError::DotDot),
        (b"/etc/passwd", PathError::Absolute),
        (b"a\0b", PathError::Nul),
    ] {
        let bytes = archive(&[first.clone(), member(name, REG, 1, 2, b"evil")]);
        let e = read_err(&bytes);
        match Error::from_io(&e) {
            Some(Error::BadName { offset, source, .. }) => {
                assert_eq!(*offset, off);
                assert_eq!(*source, why);
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
}

#[test]
fn impossible_name_sizes_bad_magic_and_bad_hex() {
    let m = raw_member(b"070701", b"a", 0, REG, 1, 1, b"", 0);
    assert!(cpio_err(&m).starts_with("BadNameSize"), "{}", cpio_err(&m));
    let m = raw_member(b"070701", b"a", 0x7fff_ffff, REG, 1, 1, b"", 0);
    assert!(cpio_err(&m).contains("namesize: 2147483647"));
    // a name whose size leaves out the NUL
    let m = raw_member(b"070701", b"abc", 3, REG, 1, 1, b"", 0);
    assert!(cpio_err(&archive(&[m])).starts_with("NameNotTerminated"));
    let m = raw_member(b"070707", b"a", 2, REG, 1, 1, b"", 0);
    assert!(cpio_err(&m).starts_with("BadMagic"));
    let mut m = member(b"a", REG, 1, 1, b"abc");
    m[6 + 6 * 8 + 2] = b'z';
    let s = cpio_err(&archive(&[m]));
    assert!(s.contains("BadHex") && s.contains("c_filesize"), "{s}");
    let long = vec![b'x'; 5000];
    let s = cpio_err(&archive(&[member(b"l", LNK, 1, 1, &long)]));
    assert!(s.starts_with("SymlinkTooLong"), "{s}");
    let s = cpio_err(&archive(&[member(b".", REG, 1, 1, b"x")]));
    assert!(s.starts_with("RootNotDir"), "{s}");
    let s = cpio_err(&archive(&[member(b"w", 0o170644, 1, 1, b"")]));
    assert!(s.starts_with("BadMode"), "{s}");
}

#[test]
fn every_truncation_is_reported_at_its_offset() {
    let full = archive(&[
        member(b".", DIR, 2, 1, b""),
        member(b"f", REG, 1, 2, b"hello world"),
        member(b"l", LNK, 1, 3, b"f"),
    ]);
    assert!(manifest(&mut Reader::new(full.as_slice(), "evil.cpio")).is_ok());
    for cut in 0..full.len() {
        let e = read_err(&full[..cut]);
        match Error::from_io(&e) {
            Some(Error::Truncated { offset, .. }) => assert_eq!(*offset, cut as u64),
            other => panic!("cut at {cut}: {other:?}"),
        }
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
    // through the extractor, the reader's error arrives unchanged
    let t = tempfile::tempdir().unwrap();
    let mut ex = Extractor::new(t.path()).unwrap();
    let cut = 112 + 112 + 5; // inside the data of `f`
    let e = Reader::new(&full[..cut], "evil.cpio")
        .emit(&mut ex)
        .unwrap_err();
    assert!(
        matches!(Error::from_io(&e), Some(Error::Truncated { offset, .. }) if *offset == cut as u64),
        "{e:?}"
    );
}

#[test]
fn crc_archives_are_verified() {
    let sum: u32 = b"hello".iter().map(|&b| u32::from(b)).sum();
    let good = archive(&[raw_member(b"070702", b"f", 2, REG, 1, 1, b"hello", sum)]);
    assert!(manifest(&mut Reader::new(good.as_slice(), "evil.cpio")).is_ok());
    let bad = archive(&[raw_member(b"070702", b"f", 2, REG, 1, 1, b"hello", sum + 1)]);
    let e = read_err(&bad);
    match Error::from_io(&e) {
        Some(Error::Checksum {
            offset,
            stored,
            computed,
            ..
        }) => {
            assert_eq!((*offset, *stored, *computed), (0, sum + 1, sum));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn corrupt_and_truncated_gzip_fail() {
    let plain = archive(&[member(b"f", REG, 1, 1, &noise(200_000, 3))]);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(&plain).unwrap();
    let gz = enc.finish().unwrap();
    assert!(manifest(&mut Reader::new(gz.as_slice(), "evil.cpio")).is_ok());
    let mut flipped = gz.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    let e = read_err(&flipped);
    assert!(Error::from_io(&e).is_some(), "untyped: {e}");
    // a damaged gzip trailer (CRC-32) is caught by reading to the end
    let mut crc = gz.clone();
    let n = crc.len();
    crc[n - 6] ^= 1;
    let s = cpio_err(&crc);
    assert!(s.starts_with("Read"), "{s}");
    let e = read_err(&gz[..gz.len() - 20]);
    assert!(Error::from_io(&e).is_some(), "untyped: {e}");
}

#[test]
fn symlink_then_member_through_it_is_refused_and_nothing_escapes() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"precious").unwrap();
    let target = t.path().join("target");
    for link in [outside.to_str().unwrap().as_bytes(), b"../outside"] {
        let bytes = archive(&[
            member(b"evil", LNK, 1, 1, link),
            member(b"evil/victim", REG, 1, 2, b"pwned"),
            member(b"evil/new", REG, 1, 3, b"pwned"),
        ]);
        let mut ex = Extractor::new(&target).unwrap();
        let e = Reader::new(bytes.as_slice(), "evil.cpio")
            .emit(&mut ex)
            .unwrap_err();
        match hostdir::Error::from_io(&e) {
            Some(hostdir::Error::SymlinkInPath { component, .. }) => {
                assert_eq!(component.as_bytes(), b"evil")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read(outside.join("victim")).unwrap(), b"precious");
        assert!(!outside.join("new").exists());
    }
    // a member replacing the symlink replaces the link, not its target
    let bytes = archive(&[member(b"evil", REG, 1, 1, b"mine")]);
    fs::remove_file(target.join("evil")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), target.join("evil")).unwrap();
    let mut ex = Extractor::new(&target).unwrap();
    Reader::new(bytes.as_slice(), "a").emit(&mut ex).unwrap();
    ex.finish().unwrap();
    assert_eq!(fs::read(target.join("evil")).unwrap(), b"mine");
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"precious");
    // a symlink deeper in the target, planted beforehand
    fs::create_dir_all(target.join("d")).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("d/planted")).unwrap();
    let bytes = archive(&[member(b"d/planted/x/y", REG, 1, 1, b"pwned")]);
    let mut ex = Extractor::new(&target).unwrap();
    let e = Reader::new(bytes.as_slice(), "a")
        .emit(&mut ex)
        .unwrap_err();
    assert!(e.to_string().contains("d/planted is a symlink"), "{e}");
    assert!(!outside.join("x").exists());
}

#[test]
fn writer_refuses_oversized_files_and_checks_writes() {
    let entry = |kind| Entry {
        path: TreePath::from_member(b"big").unwrap(),
        kind,
        meta: Meta::default(),
        xattrs: Default::default(),
    };
    let mut w = Writer::new(Vec::new(), "out.cpio");
    let e = w
        .put(&entry(Kind::File { size: 1 << 32 }), &mut io::empty())
        .unwrap_err();
    assert!(
        matches!(Error::from_io(&e), Some(Error::FileTooLarge { size, .. }) if *size == 1 << 32)
    );
    let e = w
        .put(&entry(Kind::File { size: 10 }), &mut &b"short"[..])
        .unwrap_err();
    assert!(matches!(
        Error::from_io(&e),
        Some(Error::ShortData { got: 5, .. })
    ));

    /// Accepts `room` bytes, then reports a full disk.
    struct Full {
        room: usize,
    }
    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut w = Writer::new(Full { room: 150 }, "full.cpio");
    let e = w
        .put(&entry(Kind::File { size: 100 }), &mut &[7u8; 100][..])
        .unwrap_err();
    assert!(
        matches!(Error::from_io(&e), Some(Error::Write { offset: 116, .. })),
        "{e}"
    );
}

/// Streams a newc archive of large zero-filled files without storing it.
struct Huge {
    parts: Vec<(Vec<u8>, u64)>, // header bytes, then that many zero bytes
    i: usize,
    pos: u64,
}

impl Read for Huge {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((head, zeros)) = self.parts.get(self.i) else {
            return Ok(0);
        };
        let hl = head.len() as u64;
        if self.pos < hl {
            let n = (&head[self.pos as usize..]).read(buf)?;
            self.pos += n as u64;
            return Ok(n);
        }
        let left = hl + zeros - self.pos;
        if left == 0 {
            self.i += 1;
            self.pos = 0;
            return self.read(buf);
        }
        let n = buf.len().min(left as usize);
        buf[..n].fill(0);
        self.pos += n as u64;
        Ok(n)
    }
}

#[test]
fn archives_over_4_gib_report_64_bit_offsets() {
    let size: u64 = 0xffff_fffc; // largest newc file that needs no padding
    let mut head = member(b"f1", REG, 1, 1, b"");
    let fs_field = 6 + 6 * 8;
    head[fs_field..fs_field + 8].copy_from_slice(format!("{size:08x}").as_bytes());
    let mut head2 = head.clone();
    head2[6 + 110 - 6..][..2].copy_from_slice(b"f2");
    let mut bad = b"070707".to_vec();
    bad.resize(110, b'0');
    let bad_at = 2 * (head.len() as u64 + size);
    let mut src = Huge {
        parts: vec![(head, size), (head2, size), (bad, 0)],
        i: 0,
        pos: 0,
    };
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut sink = FnSink(|e: &Entry, d: &mut dyn Read| {
        assert_eq!(e.kind, Kind::File { size });
        loop {
            let n = d.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            total += n as u64;
        }
    });
    let e = Reader::new(&mut src, "huge.cpio")
        .emit(&mut sink)
        .unwrap_err();
    match Error::from_io(&e) {
        Some(Error::BadMagic { offset, .. }) => assert_eq!(*offset, bad_at),
        other => panic!("{other:?}"),
    }
    assert!(bad_at > 1 << 33);
    assert_eq!(total, 2 * size);
}

/// Hands out one byte per read, as a slow pipe may.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn gzip_is_detected_when_input_trickles() {
    let plain = archive(&[member(b"f", REG, 1, 1, b"trickle")]);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(&plain).unwrap();
    let gz = enc.finish().unwrap();
    let a = manifest(&mut Reader::new(Trickle(&gz), "t")).unwrap();
    let b = manifest(&mut Reader::new(Trickle(&plain), "t")).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 1);
    // an empty input is a truncated archive, not a panic
    let e = manifest(&mut Reader::new(Trickle(b""), "t")).unwrap_err();
    assert!(matches!(
        Error::from_io(&e),
        Some(Error::Truncated { offset: 0, .. })
    ));
}
