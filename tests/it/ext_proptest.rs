//! Random small trees survive image → e2fsck → mount unchanged.

use crate::ext_common;

use ext_common::*;
use proptest::prelude::*;
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
    bool,
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
        any::<bool>(),
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
    fn random_trees_round_trip((dirs, leaves, children_first, bs, journal) in tree()) {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("img");
        build(opts(8 << 20, bs, journal), &mut to_mem(&dirs, &leaves, children_first), &img).unwrap();
        e2fsck_clean(&img);
        let want = comparable(manifest(&mut to_mem(&dirs, &leaves, children_first)).unwrap());
        assert_same(&want, &comparable(volume_manifest(&img)), "reader");
        let m = Mount::new(&img);
        let got = comparable(manifest(&mut HostDir(m.dir.path().to_path_buf())).unwrap());
        assert_same(&want, &got, "mounted");
    }
}
