//! Shared helpers: a test tree with every kind of entry, oracles, and a
//! byte-level newc member builder for hostile archives.
#![allow(dead_code)]

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, Timespec, Timestamps, CWD};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use vm_container::tree::manifest::{differences, manifest, Manifest};
use vm_container::tree::{Entry, Sink, Source};

pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests create device nodes and set owners: run them as root"
    );
}

pub fn require_tool(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "`{tool}` is missing: apt-get install -y {tool}");
}

/// Runs `sh -c script` in `dir`, feeding `input`, returning stdout.
pub fn sh(dir: &Path, script: &str, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait sh");
    feeder.join().unwrap();
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn set_mtime(path: &Path, t: i64) {
    let ts = Timespec {
        tv_sec: t,
        tv_nsec: 0,
    };
    rfs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn chown(path: &Path, uid: u32, gid: u32) {
    rfs::chownat(
        CWD,
        path,
        Some(rfs::Uid::from_raw(uid)),
        Some(rfs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Builds under `root` (which must not exist) a tree with every kind of
/// entry, odd modes and owners, hard links and fixed mtimes.
pub fn build_tree(root: &Path) {
    require_root();
    let p = |s: &str| root.join(s);
    fs::create_dir_all(p("dir/sub/deep")).unwrap();
    fs::create_dir_all(p("sticky")).unwrap();
    fs::create_dir_all(p("links")).unwrap();
    fs::create_dir_all(p("dev")).unwrap();
    fs::create_dir_all(p("empty_dir")).unwrap();
    fs::write(p("empty"), b"").unwrap();
    fs::write(p("big.bin"), noise(3 * 1024 * 1024 + 3, 7)).unwrap();
    fs::write(p("dir/sub/deep/file.txt"), b"deep\n").unwrap();
    fs::write(p("setuid"), b"#!/bin/sh\n").unwrap();
    fs::write(p("setgid"), b"x").unwrap();
    fs::write(p("sp ace"), b"space\n").unwrap();
    fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"\xff\xfe-latin")),
        b"x",
    )
    .unwrap();
    fs::write(p("links/a"), b"hello, links\n").unwrap();
    fs::hard_link(p("links/a"), p("links/b")).unwrap();
    fs::hard_link(p("links/a"), p("zz_top_link")).unwrap();
    fs::write(p("links/e1"), b"").unwrap();
    fs::hard_link(p("links/e1"), p("links/e2")).unwrap();
    std::os::unix::fs::symlink("dir/sub", p("sym_rel")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p("sym_abs")).unwrap();
    std::os::unix::fs::symlink("nowhere", p("dir/dangling")).unwrap();
    let mk = |name: &str, ft: FileType, dev: rfs::Dev| {
        rfs::mknodat(CWD, p(name), ft, Mode::from_raw_mode(0o600), dev).unwrap();
    };
    mk("dev/null", FileType::CharacterDevice, rfs::makedev(1, 3));
    mk("dev/sda1", FileType::BlockDevice, rfs::makedev(8, 1));
    mk(
        "dev/odd",
        FileType::CharacterDevice,
        rfs::makedev(259, 70000),
    );
    mk("fifo", FileType::Fifo, 0);
    drop(std::os::unix::net::UnixListener::bind(p("sock")).unwrap());

    chmod(&p("dev/null"), 0o666);
    chmod(&p("dev/sda1"), 0o660);
    chmod(&p("fifo"), 0o640);
    chmod(&p("empty"), 0o444);
    chmod(&p("big.bin"), 0o600);
    chmod(&p("links/a"), 0o640);
    chown(&p("big.bin"), 12345, 54321);
    chown(&p("setuid"), 1000, 100);
    chown(&p("setgid"), 0, 4242);
    chown(&p("sym_abs"), 777, 888);
    chown(&p("dev/sda1"), 0, 6);
    chown(&p("dir/sub"), 4000000000, 3999999999);
    chown(&p("links/a"), 31, 32);
    chmod(&p("setuid"), 0o4755);
    chmod(&p("setgid"), 0o2711);
    chmod(&p("sticky"), 0o1777);
    chmod(&p("dir"), 0o2775);
    chmod(&p("dir/sub/deep"), 0o500);

    // mtimes last, deepest first, so that nothing touches them afterwards
    let mut all: Vec<PathBuf> = Vec::new();
    collect(root, &mut all);
    all.sort_by(|a, b| b.cmp(a));
    for (i, path) in all.iter().enumerate() {
        set_mtime(path, 1_000_000_000 + (i as i64) * 86_400 + 17);
    }
    set_mtime(root, 1_234_567_890);
    chmod(root, 0o755);
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let path = e.path();
        out.push(path.clone());
        if e.file_type().unwrap().is_dir() {
            collect(&path, out);
        }
    }
}

pub fn dir_manifest(dir: &Path) -> Manifest {
    manifest(&mut vm_container::hostdir::Walker::new(dir)).unwrap()
}

pub fn assert_same(a: &Manifest, b: &Manifest) {
    let d = differences(a, b);
    assert!(d.is_empty(), "trees differ:\n{}", d.join("\n"));
}

/// Our archive of `dir`, gzip-compressed.
pub fn pack_gz(source: &mut dyn Source) -> Vec<u8> {
    let mut w = vm_container::cpio::Writer::new(
        vm_container::cpio::gzip_encoder(Vec::new(), 6),
        "test.cpio.gz",
    );
    source.emit(&mut w).unwrap();
    w.finish_gzip().unwrap()
}

/// A source replaying entries held in memory (test trees are small).
pub struct Replay(pub Vec<(Entry, Vec<u8>)>);

impl Replay {
    pub fn capture(source: &mut dyn Source) -> Replay {
        let mut v = Vec::new();
        let mut sink = vm_container::tree::FnSink(|e: &Entry, d: &mut dyn Read| {
            let mut buf = Vec::new();
            d.read_to_end(&mut buf)?;
            v.push((e.clone(), buf));
            Ok(())
        });
        source.emit(&mut sink).unwrap();
        Replay(v)
    }

    /// Children before their directories, as `find -depth` lists them.
    pub fn depth_first(mut self) -> Replay {
        let (dirs, mut rest): (Vec<_>, Vec<_>) = self
            .0
            .drain(..)
            .partition(|(e, _)| e.kind == vm_container::tree::Kind::Dir);
        rest.extend(dirs.into_iter().rev());
        Replay(rest)
    }
}

impl Source for Replay {
    fn emit(&mut self, sink: &mut dyn Sink) -> std::io::Result<()> {
        for (e, d) in &self.0 {
            sink.put(e, &mut d.as_slice())?;
        }
        Ok(())
    }
}

/// One newc member, byte by byte, independent of the library's writer.
pub fn member(name: &[u8], mode: u32, nlink: u32, ino: u32, data: &[u8]) -> Vec<u8> {
    raw_member(
        b"070701",
        name,
        (name.len() + 1) as u32,
        mode,
        nlink,
        ino,
        data,
        0,
    )
}

#[allow(clippy::too_many_arguments)]
pub fn raw_member(
    magic: &[u8],
    name: &[u8],
    namesize: u32,
    mode: u32,
    nlink: u32,
    ino: u32,
    data: &[u8],
    check: u32,
) -> Vec<u8> {
    let mut v = magic.to_vec();
    for f in [
        ino,
        mode,
        0,
        0,
        nlink,
        1_600_000_000,
        data.len() as u32,
        0,
        0,
        0,
        0,
        namesize,
        check,
    ] {
        v.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    v.extend_from_slice(name);
    v.push(0);
    while v.len() & 3 != 0 {
        v.push(0);
    }
    v.extend_from_slice(data);
    while v.len() & 3 != 0 {
        v.push(0);
    }
    v
}

pub fn trailer() -> Vec<u8> {
    member(b"TRAILER!!!", 0, 1, 0, b"")
}
