//! ext2/3 images as found (another administrator's, or damaged): open the
//! input for writing and populate a small fixed tree into it through the
//! journaled populator, as `[populate image]` on an existing image does.
//! Whatever the image claims, this must end in an error or a volume the
//! reader opens again, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{self, Seek, Write};
use vm_container::ext::{Populator, Volume};
use vm_container::tree::{Entry, Kind, Meta, Sink, TreePath};

fn p(s: &str) -> TreePath {
    TreePath::from_absolute(s.as_bytes()).expect("fixed path")
}

fn populate(vol: &Volume) -> Result<(), Box<dyn std::error::Error>> {
    let mut pop = Populator::new(vol, 1_700_000_000)?;
    let meta = Meta {
        perm: 0o644,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
    };
    let dir = Meta {
        perm: 0o755,
        ..meta
    };
    let data = vec![b'x'; 70_000];
    let entries: Vec<(Entry, &[u8])> = vec![
        (
            Entry {
                path: p("/etc"),
                kind: Kind::Dir,
                meta: dir,
                xattrs: Default::default(),
            },
            &[],
        ),
        (
            Entry {
                path: p("/etc/hostname"),
                kind: Kind::File { size: 6 },
                meta,
                xattrs: Default::default(),
            },
            b"fuzzy\n",
        ),
        (
            Entry {
                path: p("/lost+found/x"),
                kind: Kind::File { size: 3 },
                meta,
                xattrs: Default::default(),
            },
            b"abc",
        ),
        (
            Entry {
                path: p("/a/b/c"),
                kind: Kind::File {
                    size: data.len() as u64,
                },
                meta,
                xattrs: Default::default(),
            },
            &data,
        ),
        (
            Entry {
                path: p("/etc/link"),
                kind: Kind::HardLink {
                    target: p("/etc/hostname"),
                },
                meta,
                xattrs: Default::default(),
            },
            &[],
        ),
        (
            Entry {
                path: p("/s"),
                kind: Kind::Symlink {
                    target: b"etc/hostname".to_vec(),
                },
                meta,
                xattrs: Default::default(),
            },
            &[],
        ),
        (
            Entry {
                path: p("/etc/hostname"),
                kind: Kind::File { size: 2 },
                meta,
                xattrs: Default::default(),
            },
            b"ok",
        ),
    ];
    for (e, mut bytes) in entries {
        pop.put(&e, &mut bytes)?;
    }
    // deletions in the same transaction: a file whose removal empties
    // two directories, and a symlink
    for d in ["/a/b/c", "/s"] {
        pop.delete(&p(d))?;
    }
    pop.finish()?;
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::tempfile().expect("temp file");
    f.write_all(data).expect("write image");
    f.rewind().expect("rewind");
    let Ok(g) = f.try_clone() else { return };
    let Ok(vol) = Volume::open_rw(f) else {
        return;
    };
    if populate(&vol).is_ok() {
        // what was written is read back (errors allowed: the rest of the
        // image may be damaged beyond what the populator looked at)
        drop(vol);
        let mut g = g;
        let _ = g.rewind();
        if let Ok(v) = Volume::open(g) {
            if let Ok(mut r) = v.read_file(&p("/etc/hostname")) {
                let _ = io::copy(&mut r, &mut io::sink());
            }
        }
    }
});
