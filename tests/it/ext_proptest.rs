//! Random small trees survive image → e2fsck → mount unchanged.

use crate::ext_common;

use ext_common::*;
use proptest::prelude::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use vm_container::ext::Options;
use vm_container::tree::manifest::manifest;
use vm_container::tree::{Entry, Kind, Meta, TreePath};

#[derive(Clone, Debug)]
enum Leaf {
    File(Vec<u8>, u16),
    Symlink(Vec<u8>),
    Dev(bool, u32, u32),
    Fifo,
    Socket,
    Link(usize),
}

fn leaf() -> impl Strategy<Value = Leaf> {
    prop_oneof![
        4 => (prop::collection::vec(any::<u8>(), 0..3000), 0u16..3).prop_map(|(d, z)| Leaf::File(d, z)),
        2 => prop::collection::vec(b'a'..=b'z', 1..120).prop_map(Leaf::Symlink),
        1 => (any::<bool>(), 0u32..4096, 0u32..0x100000).prop_map(|(b, ma, mi)| Leaf::Dev(b, ma, mi)),
        1 => Just(Leaf::Fifo),
        1 => Just(Leaf::Socket),
        1 => (0usize..100).prop_map(Leaf::Link),
    ]
}

fn meta() -> impl Strategy<Value = Meta> {
    (
        0u32..0o10000,
        any::<u32>(),
        any::<u32>(),
        -(1i64 << 31)..(1i64 << 33),
    )
        .prop_map(|(perm, uid, gid, mtime)| Meta {
            perm,
            uid,
            gid,
            mtime,
        })
}

/// Directories (as indexes of their parent) and leaves (as indexes of
/// their directory), so every path is unique and every parent exists.
type Shape = (
    Vec<(usize, Meta)>,
    Vec<(usize, Leaf, Meta, Vec<u8>)>,
    bool,
    u32,
    // 2, 3 or 4: ext2, ext3 or ext4
    u8,
);

fn tree() -> impl Strategy<Value = Shape> {
    (
        prop::collection::vec((0usize..100, meta()), 0..8),
        prop::collection::vec(
            (
                0usize..100,
                leaf(),
                meta(),
                // any byte but '/' and NUL
                prop::collection::vec(prop_oneof![1u8..=46, 48u8..=255], 0..40),
            ),
            0..25,
        ),
        any::<bool>(),
        prop_oneof![Just(1024u32), Just(4096u32)],
        2u8..=4,
    )
}

fn to_mem(
    dirs: &[(usize, Meta)],
    leaves: &[(usize, Leaf, Meta, Vec<u8>)],
    children_first: bool,
) -> MemTree {
    let mut paths = vec![TreePath::root()];
    let mut dir_entries = Vec::new();
    for (i, (p, m)) in dirs.iter().enumerate() {
        let parent = paths[p % paths.len()].clone();
        let path = parent.join(format!("dir{i}").as_bytes());
        paths.push(path.clone());
        dir_entries.push((
            Entry {
                path,
                kind: Kind::Dir,
                meta: *m,
                xattrs: Default::default(),
            },
            None,
        ));
    }
    let mut t = MemTree::new();
    if !children_first {
        t.0.extend(dir_entries.iter().cloned());
    }
    let mut files: Vec<TreePath> = Vec::new();
    for (i, (d, l, m, extra)) in leaves.iter().enumerate() {
        let name = [format!("leaf-{i}-").as_bytes(), extra].concat();
        let path = paths[d % paths.len()].join(&name);
        let (kind, content) = match l {
            Leaf::File(data, zeros) => {
                // some files get whole zero blocks, to exercise holes
                let mut d = vec![0u8; usize::from(*zeros) * 4096];
                d.extend_from_slice(data);
                files.push(path.clone());
                (
                    Kind::File {
                        size: d.len() as u64,
                    },
                    Some(Content::Bytes(d)),
                )
            }
            Leaf::Symlink(s) => (Kind::Symlink { target: s.clone() }, None),
            Leaf::Dev(true, major, minor) => (
                Kind::BlockDev {
                    major: *major,
                    minor: *minor,
                },
                None,
            ),
            Leaf::Dev(false, major, minor) => (
                Kind::CharDev {
                    major: *major,
                    minor: *minor,
                },
                None,
            ),
            Leaf::Fifo => (Kind::Fifo, None),
            Leaf::Socket => (Kind::Socket, None),
            Leaf::Link(n) => match files.get(n % files.len().max(1)) {
                Some(target) => (
                    Kind::HardLink {
                        target: target.clone(),
                    },
                    None,
                ),
                None => (Kind::Fifo, None),
            },
        };
        t.0.push((
            Entry {
                path,
                kind,
                meta: *m,
                xattrs: Default::default(),
            },
            content,
        ));
    }
    if children_first {
        t.0.extend(dir_entries.into_iter().rev());
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    #[ignore = "root tier: mounts the image on a loop device"]
    fn random_trees_round_trip((dirs, leaves, children_first, bs, ext) in tree()) {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("img");
        let opts = Options { ext4: ext == 4, ..opts(8 << 20, bs, ext >= 3) };
        build(opts, &mut to_mem(&dirs, &leaves, children_first), &img).unwrap();
        e2fsck_clean(&img);
        let want = comparable(manifest(&mut to_mem(&dirs, &leaves, children_first)).unwrap());
        assert_same(&want, &comparable(volume_manifest(&img)), "reader");
        let m = Mount::new(&img);
        let got = comparable(manifest(&mut HostDir(m.dir.path().to_path_buf())).unwrap());
        assert_same(&want, &got, "mounted");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Hashed directories of random names (any byte but `/` and NUL, up
    /// to 255 bytes: several hash rounds, bytes above 127): e2fsck checks
    /// every name lies in the hash range its index gives it, the kernel
    /// finds each one by name.
    #[test]
    #[ignore = "root tier: mounts the image on a loop device"]
    fn random_names_in_hashed_directories(
        names in prop::collection::btree_set(
            prop::collection::vec(prop_oneof![1u8..=46, 48u8..=255], 1..=255),
            0..700,
        ),
        bs in prop_oneof![Just(1024u32), Just(4096u32)],
    ) {
        let mut t = MemTree::new();
        t.dir("d", 0o755, 0, 0, 0);
        let names: Vec<&Vec<u8>> = names.iter().filter(|n| n[..] != b"."[..] && n[..] != b".."[..]).collect();
        for n in &names {
            let entry = Entry {
                path: TreePath::from_member(&[&b"d/"[..], n].concat()).unwrap(),
                kind: Kind::File { size: 0 },
                meta: Meta { perm: 0o644, uid: 0, gid: 0, mtime: 0 }, xattrs: Default::default(),

            };
            t.0.push((entry, Some(Content::Bytes(Vec::new()))));
        }
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("img");
        let opts = Options { ext4: true, ..opts(16 << 20, bs, true) };
        build(opts, &mut t, &img).unwrap();
        e2fsck_clean(&img);
        let m = Mount::new(&img);
        for n in &names {
            let p = m.dir.path().join("d").join(OsStr::from_bytes(n));
            prop_assert!(std::fs::symlink_metadata(&p).is_ok(), "{} not found", p.display());
        }
    }
}
