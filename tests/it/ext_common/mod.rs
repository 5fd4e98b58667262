//! Shared test helpers: an in-memory tree source, a host-directory
//! walker, and the external oracles (e2fsck, debugfs, mount).
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use vm_container::ext::{Builder, Options, Volume};
use vm_container::tree::manifest::{self, Manifest};
use vm_container::tree::{Entry, Kind, Meta, Sink, Source, TreePath};

/// File content generated on the fly so multi-megabyte files never sit
/// in memory: `data` bytes, then every `hole_every`-th 64 KiB stretch is
/// zeros.
#[derive(Clone, Debug)]
pub enum Content {
    Bytes(Vec<u8>),
    Pattern {
        size: u64,
        seed: u8,
        hole_every: u64,
    },
}

pub struct PatternReader {
    pos: u64,
    size: u64,
    seed: u8,
    hole_every: u64,
}

impl Read for PatternReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.size - self.pos).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let p = self.pos + i as u64;
            let hole = self.hole_every > 0 && (p / 65536) % self.hole_every == 1;
            *b = if hole {
                0
            } else {
                (p.wrapping_mul(31) as u8) ^ self.seed ^ ((p >> 11) as u8)
            };
        }
        self.pos += n as u64;
        Ok(n)
    }
}

pub struct MemTree(pub Vec<(Entry, Option<Content>)>);

impl MemTree {
    pub fn new() -> MemTree {
        MemTree(Vec::new())
    }

    pub fn add(&mut self, path: &str, kind: Kind, perm: u32, uid: u32, gid: u32, mtime: i64) {
        let size = match &kind {
            Kind::File { size } => Some(*size),
            _ => None,
        };
        self.0.push((
            Entry {
                path: TreePath::from_member(path.as_bytes()).unwrap(),
                kind,
                meta: Meta {
                    perm,
                    uid,
                    gid,
                    mtime,
                },
                xattrs: Default::default(),
            },
            size.map(|s| Content::Pattern {
                size: s,
                seed: path.len() as u8,
                hole_every: 0,
            }),
        ));
    }

    pub fn file(
        &mut self,
        path: &str,
        content: Content,
        perm: u32,
        uid: u32,
        gid: u32,
        mtime: i64,
    ) {
        let size = match &content {
            Content::Bytes(b) => b.len() as u64,
            Content::Pattern { size, .. } => *size,
        };
        self.0.push((
            Entry {
                path: TreePath::from_member(path.as_bytes()).unwrap(),
                kind: Kind::File { size },
                meta: Meta {
                    perm,
                    uid,
                    gid,
                    mtime,
                },
                xattrs: Default::default(),
            },
            Some(content),
        ));
    }

    /// A symlink to `target`, mode 0777, owned by root.
    pub fn symlink(&mut self, path: &str, target: &[u8], mtime: i64) {
        let target = target.to_vec();
        self.add(path, Kind::Symlink { target }, 0o777, 0, 0, mtime);
    }

    pub fn dir(&mut self, path: &str, perm: u32, uid: u32, gid: u32, mtime: i64) {
        self.add(path, Kind::Dir, perm, uid, gid, mtime);
    }
}

impl Source for MemTree {
    fn emit(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        for (e, c) in &self.0 {
            match c {
                Some(Content::Bytes(b)) => sink.put(e, &mut &b[..])?,
                Some(Content::Pattern {
                    size,
                    seed,
                    hole_every,
                }) => sink.put(
                    e,
                    &mut PatternReader {
                        pos: 0,
                        size: *size,
                        seed: *seed,
                        hole_every: *hole_every,
                    },
                )?,
                None => sink.put(e, &mut io::empty())?,
            }
        }
        Ok(())
    }
}

/// Walks a host directory (test-only; not following symlinks).
pub struct HostDir(pub PathBuf);

fn walk(
    root: &Path,
    rel: &TreePath,
    links: &mut HashMap<(u64, u64), TreePath>,
    sink: &mut dyn Sink,
) -> io::Result<()> {
    let dir = if rel.is_root() {
        root.to_path_buf()
    } else {
        root.join(std::ffi::OsStr::from_bytes(rel.as_bytes()))
    };
    let mut names: Vec<_> = fs::read_dir(&dir)?.collect::<Result<Vec<_>, _>>()?;
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let path = rel.join(e.file_name().as_bytes());
        let md = fs::symlink_metadata(e.path())?;
        let meta = Meta {
            perm: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
        };
        let ft = md.file_type();
        let r = md.rdev();
        let major = (((r >> 8) & 0xfff) | ((r >> 32) & !0xfff)) as u32;
        let minor = ((r & 0xff) | ((r >> 12) & !0xff)) as u32;
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink {
                target: fs::read_link(e.path())?.as_os_str().as_bytes().to_vec(),
            }
        } else if ft.is_char_device() {
            Kind::CharDev { major, minor }
        } else if ft.is_block_device() {
            Kind::BlockDev { major, minor }
        } else if ft.is_fifo() {
            Kind::Fifo
        } else if ft.is_socket() {
            Kind::Socket
        } else if let Some(t) = links.get(&(md.dev(), md.ino())) {
            Kind::HardLink { target: t.clone() }
        } else {
            if md.nlink() > 1 {
                links.insert((md.dev(), md.ino()), path.clone());
            }
            Kind::File { size: md.len() }
        };
        let entry = Entry {
            path: path.clone(),
            kind,
            meta,
            xattrs: Default::default(),
        };
        if let Kind::File { .. } = entry.kind {
            sink.put(&entry, &mut File::open(e.path())?)?;
        } else {
            sink.put(&entry, &mut io::empty())?;
        }
        if ft.is_dir() {
            walk(root, &path, links, sink)?;
        }
    }
    Ok(())
}

impl Source for HostDir {
    fn emit(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        walk(&self.0, &TreePath::root(), &mut HashMap::new(), sink)
    }
}

/// A manifest without the root and lost+found, which only one side of a
/// comparison has.
pub fn comparable(mut m: Manifest) -> Manifest {
    m.retain(|p, _| !p.is_root() && !p.starts_with(&TreePath::from_member(b"lost+found").unwrap()));
    m
}

pub fn assert_same(a: &Manifest, b: &Manifest, what: &str) {
    let d = manifest::differences(a, b);
    assert!(
        d.is_empty(),
        "{what}: {} differences:\n{}",
        d.len(),
        d.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn tool(name: &str) -> String {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = format!("{dir}/{name}");
        if Path::new(&p).exists() {
            return p;
        }
    }
    panic!("{name} not found: install the Debian package e2fsprogs (or util-linux for mount)");
}

/// Asserts `e2fsck -fn` finds nothing to fix.
pub fn e2fsck_clean(img: &Path) {
    let out = Command::new(tool("e2fsck"))
        .arg("-fn")
        .arg(img)
        .output()
        .unwrap();
    assert!(
        out.status.code() == Some(0),
        "e2fsck -fn {} exited {:?}:\n{}\n{}",
        img.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn debugfs(img: &Path, request: &str) -> String {
    let out = Command::new(tool("debugfs"))
        .arg("-R")
        .arg(request)
        .arg(img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "debugfs {request}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn dumpe2fs_h(img: &Path) -> String {
    let out = Command::new(tool("dumpe2fs"))
        .arg("-h")
        .arg(img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dumpe2fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A read-only loop mount, unmounted on drop.
pub struct Mount {
    pub dir: tempfile::TempDir,
}

impl Mount {
    pub fn new(img: &Path) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(tool("mount"))
            .args(["-o", "loop,ro"])
            .arg(img)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount -o loop,ro failed (tests must run as root with loop devices): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount { dir }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new(tool("umount")).arg(self.dir.path()).status();
    }
}

/// Builds an image from `src` into `img`.
pub fn build(
    opts: Options,
    src: &mut dyn Source,
    img: &Path,
) -> Result<(), vm_container::ext::Error> {
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(img)
        .unwrap();
    let mut b = Builder::new(opts, &f)?;
    if let Err(e) = src.emit(&mut b) {
        let inner = e.into_inner().expect("sink error carries its cause");
        return Err(*inner
            .downcast::<vm_container::ext::Error>()
            .expect("an ext error"));
    }
    b.finish()
}

pub fn volume_manifest(img: &Path) -> Manifest {
    let mut v = Volume::open(File::open(img).unwrap()).unwrap();
    manifest::manifest(&mut v).unwrap()
}

pub fn opts(size: u64, bs: u32, journal: bool) -> Options {
    Options {
        size,
        block_size: Some(bs),
        inodes: None,
        label: b"test-vol".to_vec(),
        uuid: [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ],
        journal,
        ext4: false,
        timestamp: 1_700_000_000,
    }
}

/// Runs a debugfs request that writes; debugfs reports a failed request
/// on standard error but exits 0, so any complaint there fails.
pub fn debugfs_w(img: &Path, request: &str) {
    let out = Command::new(tool("debugfs"))
        .args(["-w", "-R", request])
        .arg(img)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.lines().all(|l| l.starts_with("debugfs ")),
        "debugfs -w -R '{request}': {err}"
    );
}

/// The awkward entries every writer test holds, after the rest of a
/// tree: devices in both encodings, a FIFO, a socket, hard links (one to
/// `big`), setuid and sticky modes, the longest name, 32-bit ids, times
/// before 1970 and after 2038, and `etc/overwritten` written again.
pub fn special_entries(t: &mut MemTree, t0: i64, big: &str) {
    t.dir("dev", 0o755, 0, 0, t0);
    t.add(
        "dev/null",
        Kind::CharDev { major: 1, minor: 3 },
        0o666,
        0,
        0,
        t0,
    );
    t.add(
        "dev/sda1",
        Kind::BlockDev { major: 8, minor: 1 },
        0o660,
        0,
        6,
        t0,
    );
    t.add(
        "dev/big",
        Kind::CharDev {
            major: 300,
            minor: 70_000,
        },
        0o600,
        0,
        0,
        t0,
    );
    t.add(
        "dev/nvme",
        Kind::BlockDev {
            major: 259,
            minor: 3,
        },
        0o600,
        0,
        0,
        t0,
    );
    t.add("fifo", Kind::Fifo, 0o644, 0, 0, t0);
    t.add("socket", Kind::Socket, 0o755, 0, 0, t0);
    t.add(
        "hl-hostname",
        Kind::HardLink {
            target: TreePath::from_member(b"etc/hostname").unwrap(),
        },
        0,
        0,
        0,
        0,
    );
    t.add(
        "dev/hl-big",
        Kind::HardLink {
            target: TreePath::from_member(big.as_bytes()).unwrap(),
        },
        0,
        0,
        0,
        0,
    );
    t.file(
        "suid",
        Content::Bytes(b"#!/bin/sh\n".to_vec()),
        0o4755,
        0,
        0,
        t0,
    );
    t.dir("tmp", 0o1777, 0, 0, t0);
    t.file(
        &format!("etc/{}", "n".repeat(255)),
        Content::Bytes(b"longest name".to_vec()),
        0o644,
        0,
        0,
        t0,
    );
    t.file(
        "ids",
        Content::Bytes(b"ids".to_vec()),
        0o600,
        70_000,
        3_000_000,
        -100_000,
    );
    t.file(
        "future",
        Content::Bytes(b"2096".to_vec()),
        0o600,
        65534,
        65534,
        4_000_000_000,
    );
    t.file("epoch", Content::Bytes(b"0".to_vec()), 0o600, 0, 0, 0);
    t.file(
        "etc/overwritten",
        Content::Bytes(b"second".to_vec()),
        0o600,
        9,
        9,
        t0 + 9,
    );
}

/// `/etc` with a hostname, an empty file and the first version of
/// `etc/overwritten` ([`special_entries`] writes the second).
pub fn etc_entries(t: &mut MemTree, t0: i64) {
    t.dir("etc", 0o755, 0, 0, t0);
    t.file(
        "etc/hostname",
        Content::Bytes(b"box\n".to_vec()),
        0o644,
        0,
        0,
        t0,
    );
    t.file("etc/empty", Content::Bytes(Vec::new()), 0o644, 0, 0, t0);
    t.file(
        "etc/overwritten",
        Content::Bytes(b"first version".to_vec()),
        0o644,
        0,
        0,
        t0,
    );
}
