//! `[image PATH SIZE LABEL fs swap]`: swap areas that blkid, mkswap and
//! the kernel (swapon, as root) agree are swap areas.

use crate::common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory on a disk file system: the kernel takes no swap file on
/// tmpfs, which /tmp may be.
fn diskdir() -> tempfile::TempDir {
    let base = root().join("target");
    fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("vmc-swap-")
        .tempdir_in(base)
        .unwrap()
}

fn run(container: &Path, dir: &Path, log: &Path) -> String {
    ok(&bin()
        .env_remove("SOURCE_DATE_EPOCH")
        .arg("--container")
        .arg(container)
        .arg("--dir")
        .arg(dir)
        .arg("--log")
        .arg(log)
        .output()
        .unwrap())
}

/// `blkid -p` (low-level probe, no cache) as KEY=VALUE pairs.
fn blkid(path: &Path) -> Vec<(String, String)> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "blkid -p {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn tag(tags: &[(String, String)], key: &str) -> Option<String> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// Swaps off on drop, so a failed assertion leaves no swap active.
struct Active(PathBuf);

impl Drop for Active {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.0).status();
    }
}

const UUID: &str = "6f1c2a3b-4d5e-4f60-8172-839405a6b7c8";

#[test]
#[ignore = "root tier: swapon and swapoff"]
fn swap_images_are_swap_areas_to_blkid_mkswap_and_the_kernel() {
    require_root_here();
    let t = diskdir();
    let (dir, out) = (t.path().join("state"), t.path().join("out"));
    let src = t.path().join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/motd"), "hello\n").unwrap();
    let (given, derived) = (out.join("given.swap"), out.join("derived.swap"));
    let container = t.path().join("swap.vmc");
    fs::write(
        &container,
        format!(
            "name = \"fido\"\n\
             [create {src} file://{out}/tree.cpio.gz][end]\n\
             [image {given} 16M fido_swap fs swap uuid {UUID}][end]\n\
             [image {derived} 8M fs swap][end]\n",
            src = src.display(),
            out = out.display(),
            given = given.display(),
            derived = derived.display()
        ),
    )
    .unwrap();
    let log = t.path().join("log");
    run(&container, &dir, &log);

    let tags = blkid(&given);
    assert_eq!(tag(&tags, "TYPE").as_deref(), Some("swap"), "{tags:?}");
    assert_eq!(
        tag(&tags, "LABEL").as_deref(),
        Some("fido_swap"),
        "{tags:?}"
    );
    assert_eq!(tag(&tags, "UUID").as_deref(), Some(UUID), "{tags:?}");
    assert_eq!(tag(&tags, "VERSION").as_deref(), Some("1"), "{tags:?}");
    // without `uuid`, one derived from the image (name-based, version 5)
    let tags = blkid(&derived);
    assert_eq!(tag(&tags, "TYPE").as_deref(), Some("swap"), "{tags:?}");
    assert_eq!(tag(&tags, "LABEL"), None, "{tags:?}");
    let uuid = tag(&tags, "UUID").unwrap();
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert_eq!(&uuid[14..15], "5", "{uuid}");

    // the first page is what mkswap writes for the same label and UUID
    let mk = t.path().join("mkswap.img");
    fs::write(&mk, vec![0u8; 16 << 20]).unwrap();
    let st = Command::new("mkswap")
        .args(["-L", "fido_swap", "-U", UUID])
        .arg(&mk)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let ours = fs::read(&given).unwrap();
    assert_eq!(ours[..4096], fs::read(&mk).unwrap()[..4096]);
    assert!(ours[4096..].iter().all(|&b| b == 0));
    // fully allocated (the kernel refuses holes) and private
    let md = fs::metadata(&given).unwrap();
    assert_eq!(md.len(), 16 << 20);
    assert!(md.blocks() * 512 >= 16 << 20, "{} blocks", md.blocks());
    assert_eq!(md.mode() & 0o777, 0o600);

    // the kernel takes it
    let on = Command::new("swapon").arg(&given).output().unwrap();
    assert!(
        on.status.success(),
        "swapon: {}",
        String::from_utf8_lossy(&on.stderr)
    );
    let active = Active(given.clone());
    let swaps = fs::read_to_string("/proc/swaps").unwrap();
    assert!(
        swaps.contains(given.to_str().unwrap()),
        "not in /proc/swaps:\n{swaps}"
    );
    let off = Command::new("swapoff").arg(&given).output().unwrap();
    assert!(
        off.status.success(),
        "swapoff: {}",
        String::from_utf8_lossy(&off.stderr)
    );
    std::mem::forget(active);

    // Reruns: with nothing changed nothing is touched; with another input
    // changed the swap areas are kept as they are (same inode, same
    // mtime); a changed label rewrites one.
    let stamp = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        (m.ino(), m.mtime(), m.mtime_nsec())
    };
    let before = (stamp(&given), stamp(&derived));
    let err = run(&container, &dir, &log);
    assert!(err.contains("up to date"), "{err}");
    assert_eq!((stamp(&given), stamp(&derived)), before);
    fs::write(src.join("etc/motd"), "changed\n").unwrap();
    let err = run(&container, &dir, &log);
    assert!(!err.contains("up to date"), "{err}");
    assert_eq!((stamp(&given), stamp(&derived)), before);
    let logged = fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(&format!("kept {} (unchanged)", given.display())),
        "{logged}"
    );
    let text = fs::read_to_string(&container)
        .unwrap()
        .replace("fido_swap", "rex_swap");
    fs::write(&container, text).unwrap();
    run(&container, &dir, &log);
    assert_ne!(stamp(&given), before.0);
    assert_eq!(tag(&blkid(&given), "LABEL").as_deref(), Some("rex_swap"));
}

fn require_root_here() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (swapon), as the test suite does"
    );
}

/// `check` refuses, with file:line:col, any expression that would read a
/// tree from a swap area, and options that only a file system has.
#[test]
fn check_refuses_trees_in_swap_areas() {
    let t = tempdir();
    let f = t.path().join("swap.vmc");
    let cases = [
        (
            "[populate image /img/swap /mnt/ http://h/a.cpio.gz][end]\n",
            "swap.vmc:2:17: error: populate names /img/swap, which the `[image ... fs swap]` at line 1 makes a swap area",
        ),
        (
            "[patch /img/swap http://h/p.patch][end]\n",
            "swap.vmc:2:8: error: patch names /img/swap",
        ),
        (
            "[replace /etc/motd archive /img/swap\n\nhi\n] [end]\n",
            "swap.vmc:2:28: error: archive names /img/swap",
        ),
        (
            "[populate dir /img/swap /mnt/ http://h/a.cpio.gz][end]\n",
            "swap.vmc:2:15: error: populate names /img/swap",
        ),
    ];
    for (expr, want) in cases {
        fs::write(&f, format!("[image /img/swap 64M fs swap][end]\n{expr}")).unwrap();
        let out = bin().arg("check").arg(&f).output().unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{e}");
        assert!(e.contains(want), "{expr}: {e}");
    }
    for (image, want) in [
        (
            "[image /img/swap 64M fs swap blocksize 4096][end]\n",
            "swap.vmc:1:30: error: `blocksize` is an ext2/ext3 option",
        ),
        (
            "[image /img/swap 64M fs swap inodes 100][end]\n",
            "swap.vmc:1:30: error: `inodes` is an ext2/ext3 option",
        ),
        (
            "[image /img/swap 36K fs swap][end]\n",
            "swap.vmc:1:18: error: 36K is too small for a swap area",
        ),
        (
            "[image /img/swap 64M seventeen_bytes__ fs swap][end]\n",
            "swap.vmc:1:22: error: label `seventeen_bytes__` is 17 bytes",
        ),
    ] {
        fs::write(&f, image).unwrap();
        let out = bin().arg("check").arg(&f).output().unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{e}");
        assert!(e.contains(want), "{image}: {e}");
    }
    // 40 KiB, mkswap's least, is fine
    fs::write(
        &f,
        "[image /img/swap 40K swap0 fs swap uuid 6f1c2a3b-4d5e-4f60-8172-839405a6b7c8][end]\n",
    )
    .unwrap();
    ok(&bin().arg("check").arg(&f).output().unwrap());
}
