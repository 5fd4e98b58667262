//! Populating a damaged volume never makes it worse. The input is a list
//! of byte patches applied to one of two clean volumes this crate builds
//! (ext2 and ext3, 1 KiB blocks, with files, directories, a hard link and
//! symlinks): most patches land in the superblock, descriptors, bitmaps,
//! inode tables and journal superblock, where damage matters. A small tree
//! under `/fuzz-new` is then populated. Either the populator refuses (and
//! the image is byte for byte as it was), or afterwards:
//!
//! * no inode holds a block it did not hold before that was in use before
//!   (by any inode's data, index or attribute block);
//! * every old (inode, block) pair is still there, but for directories
//!   (rewritten into fresh blocks);
//! * every old file that has links reads back as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::sync::OnceLock;
use vm_container::ext::{block_owners, Builder, Options, Populator, Volume};
use vm_container::tree::manifest::{manifest, Manifest};
use vm_container::tree::{Entry, Kind, Meta, Sink, Source, TreePath, S_IFDIR, S_IFMT};

const T: i64 = 1_700_000_000;
/// Bytes each patch takes: where (4), how (1), value (1).
const PATCH: usize = 6;
const MAX_PATCHES: usize = 24;
/// The most file content compared before and after (the volumes hold
/// about 0.7 MB).
const MAX_CONTENT: u64 = 8 << 20;

struct Tree(Vec<(Entry, Vec<u8>)>);

impl Source for Tree {
    fn emit(&mut self, sink: &mut dyn Sink) -> std::io::Result<()> {
        for (e, d) in &self.0 {
            sink.put(e, &mut &d[..])?;
        }
        Ok(())
    }
}

fn p(s: &str) -> TreePath {
    TreePath::from_absolute(s.as_bytes()).expect("fixed path")
}

fn entry(path: &str, kind: Kind) -> Entry {
    let perm = if kind == Kind::Dir { 0o755 } else { 0o644 };
    Entry {
        path: p(path),
        kind,
        meta: Meta {
            perm,
            uid: 0,
            gid: 0,
            mtime: T,
        },
        xattrs: Default::default(),
    }
}

fn file(path: &str, data: Vec<u8>) -> (Entry, Vec<u8>) {
    let size = data.len() as u64;
    (entry(path, Kind::File { size }), data)
}

fn old_tree() -> Tree {
    let pattern = |n: usize, k: u8| (0..n).map(|i| (i as u8).wrapping_mul(k) | 1).collect();
    let mut t = vec![
        (entry("/etc", Kind::Dir), vec![]),
        file("/etc/passwd", b"root:x:0:0::/root:/bin/sh\n".to_vec()),
        file("/etc/big", pattern(40_000, 7)),
        (entry("/usr/lib", Kind::Dir), vec![]),
        file("/usr/lib/libc", pattern(15_000, 13)),
        (
            entry(
                "/usr/lib/libc.link",
                Kind::HardLink {
                    target: p("/usr/lib/libc"),
                },
            ),
            vec![],
        ),
        (
            entry(
                "/short",
                Kind::Symlink {
                    target: b"etc/passwd".to_vec(),
                },
            ),
            vec![],
        ),
        (
            entry(
                "/long",
                Kind::Symlink {
                    target: vec![b'l'; 200],
                },
            ),
            vec![],
        ),
        (entry("/null", Kind::CharDev { major: 1, minor: 3 }), vec![]),
    ];
    for i in 0..30 {
        t.push(file(&format!("/etc/many-{i}"), format!("{i}\n").into_bytes()));
    }
    Tree(t)
}

fn new_tree() -> Tree {
    Tree(vec![
        file("/fuzz-new/data", vec![b'n'; 30_000]),
        file("/fuzz-new/d/small", b"small\n".to_vec()),
        (
            entry(
                "/fuzz-new/link",
                Kind::Symlink {
                    target: vec![b's'; 100],
                },
            ),
            vec![],
        ),
        file("/etc/added", b"added\n".to_vec()),
    ])
}

/// The clean volumes, built once: ext2 of 1 MiB, ext3 of 2 MiB.
fn bases() -> &'static [Vec<u8>] {
    static BASES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BASES.get_or_init(|| {
        [(1u64 << 20, false), (2 << 20, true)]
            .into_iter()
            .map(|(size, journal)| {
                let mut f = tempfile::tempfile().expect("temp file");
                let mut o = Options::new(size);
                o.block_size = Some(1024);
                o.journal = journal;
                o.timestamp = T;
                let mut b = Builder::new(o, &f).expect("builder");
                old_tree().emit(&mut b).expect("old tree");
                b.finish().expect("finish");
                let mut out = Vec::new();
                f.rewind().expect("rewind");
                f.read_to_end(&mut out).expect("read base");
                out
            })
            .collect()
    })
}

/// Where a patch lands: mostly in the first 64 KiB (superblock,
/// descriptors, bitmaps, inode table) and the first blocks after it.
fn offset(sel: u8, raw: u32, len: usize) -> usize {
    let window = match sel % 4 {
        0 => 8 << 10,
        1 => 64 << 10,
        2 => 320 << 10,
        _ => len,
    };
    raw as usize % window.min(len)
}

fn pairs(f: &File) -> Option<BTreeSet<(u32, u64)>> {
    let v = Volume::open(f.try_clone().ok()?).ok()?;
    Some(block_owners(&v).ok()?.into_iter().collect())
}

fn dirs(f: &File, of: &BTreeSet<(u32, u64)>) -> BTreeSet<u32> {
    let Ok(v) = Volume::open(f.try_clone().expect("clone")) else {
        return BTreeSet::new();
    };
    of.iter()
        .map(|p| p.0)
        .filter(|&i| v.inode(i).is_ok_and(|n| u32::from(n.i_mode) & S_IFMT == S_IFDIR))
        .collect()
}

/// Adds up the sizes of the files a walk meets, reading no content.
struct Sizes(u64);

impl Sink for Sizes {
    fn put(&mut self, e: &Entry, _: &mut dyn Read) -> std::io::Result<()> {
        if let Kind::File { size } = e.kind {
            self.0 = self.0.saturating_add(size);
        }
        Ok(())
    }
}

/// Old files whose inodes have links: what must read back unchanged.
/// `None` when the walk fails, or when a patched size would make hashing
/// the content (holes included) take longer than a run is allowed.
fn files_with_links(f: &File) -> Option<Manifest> {
    let mut v = Volume::open(f.try_clone().ok()?).ok()?;
    let mut sizes = Sizes(0);
    v.emit(&mut sizes).ok()?;
    if sizes.0 > MAX_CONTENT {
        return None;
    }
    let mut m = manifest(&mut v).ok()?;
    m.retain(|path, r| {
        r.kind != "directory"
            && v.lookup(path)
                .and_then(|ino| v.inode(ino))
                .is_ok_and(|i| i.i_links_count > 0)
    });
    Some(m)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, patches)) = data.split_first() else {
        return;
    };
    let mut img = bases()[usize::from(which) % 2].clone();
    for c in patches.chunks_exact(PATCH).take(MAX_PATCHES) {
        let at = offset(c[0], u32::from_le_bytes([c[1], c[2], c[3], 0]), img.len());
        img[at] = if c[4] & 1 == 0 { c[5] } else { img[at] ^ c[5] };
    }
    let mut f = tempfile::tempfile().expect("temp file");
    f.write_all(&img).expect("write image");
    let Some(old) = pairs(&f) else { return };
    let old_dirs = dirs(&f, &old);
    let old_files = files_with_links(&f);
    let had_new = Volume::open(f.try_clone().expect("clone"))
        .is_ok_and(|v| v.lookup(&p("/fuzz-new")).is_ok() || v.lookup(&p("/etc/added")).is_ok());

    let vol = Volume::open_rw(f.try_clone().expect("clone")).expect("opened before");
    let mut refused = false;
    let result = match Populator::new(&vol, T) {
        Err(_) => {
            refused = true;
            Err(())
        }
        Ok(mut pop) => match new_tree().emit(&mut pop) {
            Err(_) => Err(()),
            Ok(()) => pop.finish().map_err(|_| ()),
        },
    };
    drop(vol);

    let mut after = Vec::new();
    f.rewind().expect("rewind");
    f.read_to_end(&mut after).expect("read back");
    if refused {
        assert!(after == img, "a refused volume changed");
        return;
    }
    let new = pairs(&f).expect("the volume opens after populating");
    if result.is_err() {
        // nothing was committed: only free blocks were written
        assert_eq!(old, new, "a failed populate changed what inodes hold");
        return;
    }
    let old_blocks: BTreeSet<u64> = old.iter().map(|p| p.1).collect();
    for q in new.difference(&old) {
        assert!(
            !old_blocks.contains(&q.1),
            "inode {} now holds block {}, which was in use",
            q.0,
            q.1
        );
    }
    if had_new {
        return;
    }
    for q in old.difference(&new) {
        assert!(
            old_dirs.contains(&q.0),
            "inode {} no longer holds block {}",
            q.0,
            q.1
        );
    }
    if let Some(want) = old_files {
        let got = files_with_links(&f).expect("the populated volume reads");
        for (path, r) in &want {
            let g = got.get(path);
            assert!(
                g.is_some_and(|g| g.size == r.size
                    && g.sha256 == r.sha256
                    && g.symlink == r.symlink
                    && g.device == r.device),
                "{} changed",
                path.display_abs()
            );
        }
    }
});
