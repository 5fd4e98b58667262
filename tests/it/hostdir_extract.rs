//! The host-directory walker and extractor against the real file system.

use crate::cpio_common;

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
            // exists, ours, but we may not read it: its mode is set
            // through an O_PATH descriptor
            member(b"locked", 0o040750, 2, 5, b""),
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
                    count: 4,
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
    let unreadable = target.join("locked");
    fs::create_dir(&unreadable).unwrap();
    fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o311),
    )
    .unwrap();
    rustix::fs::chown(
        &unreadable,
        Some(rustix::fs::Uid::from_raw(65534)),
        Some(rustix::fs::Gid::from_raw(65534)),
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
            "hostdir_extract::unprivileged_extraction_warns",
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
    let md = fs::metadata(&unreadable).unwrap();
    assert_eq!((md.mode() & 0o7777, md.mtime()), (0o750, 1_600_000_000));
}

/// Checks that `path` is `size` bytes of zeros: no data anywhere
/// (`SEEK_DATA` finds none, so the file system itself says every byte is
/// a hole), and reading it through, 1 MiB at a time, gives only zeros.
/// The read is direct where the file system allows it: buffered, each
/// page of hole would be put in the page cache first (ten times slower).
fn assert_all_zero(path: &Path, size: u64) {
    use rustix::fs::{open, Mode, OFlags};
    let fd = open(path, OFlags::RDONLY | OFlags::DIRECT, Mode::empty())
        .or_else(|_| open(path, OFlags::RDONLY, Mode::empty()))
        .unwrap();
    assert_eq!(
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::Data(0)),
        Err(rustix::io::Errno::NXIO),
        "{} holds data",
        path.display()
    );
    // O_DIRECT wants a buffer aligned to the block size
    let mut storage = vec![0u8; (1 << 20) + 4096];
    let skip = storage.as_ptr().align_offset(4096);
    let buf = &mut storage[skip..skip + (1 << 20)];
    let mut total = 0u64;
    loop {
        let n = rustix::io::read(&fd, &mut *buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(
            vm_container::bytes::all_zero(&buf[..n]),
            "non-zero byte in the MiB at {total}"
        );
        total += n as u64;
    }
    assert_eq!(total, size);
}

/// A gzip stream made of one member per MiB, the members of zeros all
/// copies of one compressed once: 4 GiB of zeros pack in a moment (the
/// cpio reader takes multi-member gzip as `gzip -d` does).
struct ZeroMembers {
    out: Vec<u8>,
    pending: Vec<u8>,
    zero_member: Vec<u8>,
}

const MEMBER: usize = 1 << 20;

fn gz_member(data: &[u8]) -> Vec<u8> {
    let mut e = vm_container::cpio::gzip_encoder(Vec::new(), 6);
    std::io::Write::write_all(&mut e, data).unwrap();
    e.finish().unwrap()
}

impl ZeroMembers {
    fn new() -> ZeroMembers {
        ZeroMembers {
            out: Vec::new(),
            pending: Vec::with_capacity(MEMBER),
            zero_member: gz_member(&vec![0u8; MEMBER]),
        }
    }

    fn flush_member(&mut self) {
        if self.pending.len() == MEMBER && vm_container::bytes::all_zero(&self.pending) {
            self.out.extend_from_slice(&self.zero_member);
        } else if !self.pending.is_empty() {
            let m = gz_member(&self.pending);
            self.out.extend(m);
        }
        self.pending.clear();
    }

    fn finish(mut self) -> Vec<u8> {
        self.flush_member();
        self.out
    }
}

impl std::io::Write for ZeroMembers {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(MEMBER - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == MEMBER {
            self.flush_member();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// All-zero blocks become holes: the largest member newc can hold
/// (4 GiB less one byte: its size field is 8 hex digits) of zeros takes no
/// disk, and a file mixing data and zeros reads back byte for byte with
/// its zero blocks (trailing ones included) left as holes.
#[test]
fn zero_blocks_become_holes() {
    let t = tempfile::tempdir().unwrap();
    let big = u32::MAX as u64;
    // a mix: data, 1 MiB of zeros, data not on a block boundary, zeros to the end
    let mut mixed = noise(5000, 7);
    mixed.extend(vec![0u8; 1 << 20]);
    mixed.extend(noise(3, 8));
    mixed.extend(vec![0u8; (1 << 20) + 123]);
    let meta = vm_container::tree::Meta {
        perm: 0o640,
        uid: 0,
        gid: 0,
        mtime: 1_600_000_000,
    };
    let file = |name: &[u8], size: u64| Entry {
        path: TreePath::from_member(name).unwrap(),
        kind: Kind::File { size },
        meta,
        xattrs: Default::default(),
    };
    let start = std::time::Instant::now();
    let mut w = vm_container::cpio::Writer::new(ZeroMembers::new(), "zeros.cpio.gz");
    use vm_container::tree::Sink;
    w.put(&file(b"zeros", big), &mut std::io::repeat(0).take(big))
        .unwrap();
    w.put(&file(b"mixed", mixed.len() as u64), &mut mixed.as_slice())
        .unwrap();
    let gz = w.finish().unwrap().finish();
    let packed = start.elapsed();
    let target = t.path().join("t");
    let mut ex = Extractor::new(&target).unwrap();
    Reader::new(gz.as_slice(), "zeros.cpio.gz")
        .emit(&mut ex)
        .unwrap();
    ex.finish().unwrap();
    let extracted = start.elapsed() - packed;
    eprintln!(
        "{} bytes of gzip; packed in {packed:?}, extracted in {extracted:?}",
        gz.len()
    );
    let md = fs::metadata(target.join("zeros")).unwrap();
    assert_eq!(md.len(), big);
    assert!(
        md.blocks() * 512 < 1 << 20,
        "{} bytes allocated",
        md.blocks() * 512
    );
    let read_back = std::time::Instant::now();
    assert_all_zero(&target.join("zeros"), big);
    eprintln!("read back in {:?}", read_back.elapsed());
    assert_eq!(md.mode() & 0o7777, 0o640);
    assert_eq!(md.mtime(), 1_600_000_000);
    let mixed_path = target.join("mixed");
    assert_eq!(fs::read(&mixed_path).unwrap(), mixed);
    // two data blocks at most (the 3 bytes may straddle a block boundary)
    let md = fs::metadata(&mixed_path).unwrap();
    assert!(md.blocks() * 512 <= 3 * 4096, "{} blocks", md.blocks());
}

/// What can be seen of a tree from outside: every entry's type, mode,
/// owner, mtime and ctime (which any chmod, chown or utimes moves, even to
/// the same value), and each file's content.
fn outside_state(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let content = if md.is_file() {
            fs::read(&p).unwrap()
        } else {
            Vec::new()
        };
        if md.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.push(format!(
            "{} mode {:o} owner {}:{} mtime {}.{} ctime {}.{} content {:?}",
            p.display(),
            md.mode(),
            md.uid(),
            md.gid(),
            md.mtime(),
            md.mtime_nsec(),
            md.ctime(),
            md.ctime_nsec(),
            String::from_utf8_lossy(&content)
        ));
    }
    out.sort();
    out
}

/// A process writing inside the target swaps its directories for symlinks
/// to a directory outside while an extraction runs (each `d<i>` is
/// exchanged, atomically, with a symlink `.s<i>` beside it, over and over).
/// Whatever the extractor does to the names, nothing outside changes: no
/// mode (the archive asks for 6777), owner, time or content.
#[test]
fn racing_symlink_swaps_change_nothing_outside() {
    use rustix::fs::{renameat_with, statat, symlinkat, AtFlags, FileType, RenameFlags};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    const DIRS: usize = 4;
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir_all(outside.join("sub")).unwrap();
    fs::write(outside.join("secret"), b"not yours").unwrap();
    fs::write(outside.join("sub/file"), b"nor this").unwrap();
    let mut archive = Vec::new();
    for i in 0..DIRS {
        archive.extend(member(
            format!("d{i}").as_bytes(),
            0o046777,
            2,
            i as u32 + 1,
            b"",
        ));
    }
    archive.extend(trailer());
    let before = outside_state(&outside);
    let mut hits = 0u64;
    for attempt in 0..200 {
        let target = t.path().join(format!("target{attempt}"));
        fs::create_dir(&target).unwrap();
        for i in 0..DIRS {
            fs::create_dir(target.join(format!("d{i}"))).unwrap();
            std::os::unix::fs::symlink(&outside, target.join(format!(".s{i}"))).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let swapper = {
            let (stop, swaps, target, outside) =
                (stop.clone(), swaps.clone(), target.clone(), outside.clone());
            std::thread::spawn(move || {
                let dir = rustix::fs::open(
                    &target,
                    rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                    rustix::fs::Mode::empty(),
                )
                .unwrap();
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..DIRS {
                        let (d, s) = (format!("d{i}"), format!(".s{i}"));
                        if renameat_with(&dir, &d, &dir, &s, RenameFlags::EXCHANGE).is_ok() {
                            swaps.fetch_add(1, Ordering::Relaxed);
                        }
                        // the extractor replaced a symlink it found at d<i>
                        // by a new directory: put another symlink in play
                        let is_dir = |n: &str| {
                            statat(&dir, n, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
                                FileType::from_raw_mode(st.st_mode) == FileType::Directory
                            })
                        };
                        if round % 8 == 7 && is_dir(&d) && is_dir(&s) {
                            let old = format!(".old{i}-{round}");
                            let _ = renameat_with(&dir, &s, &dir, &old, RenameFlags::empty());
                            let _ = symlinkat(&outside, &dir, &s);
                        }
                    }
                    round += 1;
                }
            })
        };
        // the race is on once the swapper is exchanging
        let since = std::time::Instant::now();
        while swaps.load(Ordering::Relaxed) < 100 {
            assert!(
                since.elapsed().as_secs() < 30,
                "the swapper cannot exchange names (renameat2 RENAME_EXCHANGE)"
            );
            std::thread::yield_now();
        }
        let result = Extractor::new(&target)
            .map_err(std::io::Error::from)
            .and_then(|mut ex| {
                Reader::new(archive.as_slice(), "a").emit(&mut ex)?;
                ex.finish().map_err(std::io::Error::from)
            });
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        // a refusal (say, a swapped entry seen as a symlink, then as a
        // directory) is fine; a change outside is not
        if result.is_ok() {
            hits += 1;
        }
        assert_eq!(
            outside_state(&outside),
            before,
            "attempt {attempt}: the extraction changed something outside its target"
        );
        fs::remove_dir_all(&target).unwrap();
    }
    eprintln!("{hits} of 200 extractions completed under the race");
}
