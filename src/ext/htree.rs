//! Hashed directories (dir_index): the half-MD4 name hash and the index
//! blocks written over a directory's sorted leaves, as `e2fsck -D` lays
//! them out.
//!
//! Block 0 is the root (`.` and `..`, then `struct dx_root_info` and the
//! index entries), then the interior index blocks if one level does not
//! suffice, then the leaves: ordinary directory blocks holding the names
//! in hash order. An index entry points at the first leaf (or node) whose
//! names hash at or above its hash; a leaf starting in the middle of a run
//! of equal hashes is marked with the low bit.

use super::bytes::*;
use super::csum;
use super::dir_entry::{self, BlockPacker};

/// `s_def_hash_version` and `dx_root_info.hash_version` for half MD4.
pub const DX_HASH_HALF_MD4: u8 = 1;

/// The name hash of e2fsprogs and the kernel for half MD4: `(major,
/// minor)`, the major one with its low bit clear. `signed` follows
/// `EXT2_FLAGS_SIGNED_HASH` (bytes taken as `signed char`).
pub fn half_md4(name: &[u8], seed: [u32; 4], signed: bool) -> (u32, u32) {
    let mut buf = if seed.iter().any(|&s| s != 0) {
        seed
    } else {
        [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476]
    };
    let mut p = name;
    while !p.is_empty() {
        let input = str2hashbuf(p, signed);
        half_md4_transform(&mut buf, &input);
        p = &p[p.len().min(32)..];
    }
    let mut hash = buf[1] & !1;
    if hash == 0x7fff_ffff << 1 {
        hash = (0x7fff_ffff - 1) << 1;
    }
    (hash, buf[2])
}

fn str2hashbuf(msg: &[u8], signed: bool) -> [u32; 8] {
    let len = msg.len() as u32;
    let mut pad = len | (len << 8);
    pad |= pad << 16;
    let mut out = [pad; 8];
    let mut val = pad;
    let mut k = 0usize;
    for (i, &c) in msg.iter().take(32).enumerate() {
        let c = if signed {
            i32::from(c as i8) as u32
        } else {
            u32::from(c)
        };
        val = c.wrapping_add(val << 8);
        if i % 4 == 3 {
            out[k] = val;
            k += 1;
            val = pad;
        }
    }
    if k < 8 {
        out[k] = val;
    }
    out
}

fn half_md4_transform(buf: &mut [u32; 4], x: &[u32; 8]) {
    let f = |x: u32, y: u32, z: u32| z ^ (x & (y ^ z));
    let g = |x: u32, y: u32, z: u32| (x & y).wrapping_add((x ^ y) & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    const K2: u32 = 0o13240474631;
    const K3: u32 = 0o15666365641;
    let [mut a, mut b, mut c, mut d] = *buf;
    let r = |fun: &dyn Fn(u32, u32, u32) -> u32, a: u32, b: u32, c: u32, d: u32, x: u32, s: u32| {
        a.wrapping_add(fun(b, c, d)).wrapping_add(x).rotate_left(s)
    };
    for (fun, k, order, shifts) in [
        (
            &f as &dyn Fn(u32, u32, u32) -> u32,
            0u32,
            [0usize, 1, 2, 3, 4, 5, 6, 7],
            [3u32, 7, 11, 19],
        ),
        (&g, K2, [1, 3, 5, 7, 0, 2, 4, 6], [3, 5, 9, 13]),
        (&h, K3, [3, 7, 2, 6, 1, 5, 0, 4], [3, 9, 11, 15]),
    ] {
        for half in 0..2 {
            let o = &order[half * 4..half * 4 + 4];
            a = r(fun, a, b, c, d, x[o[0]].wrapping_add(k), shifts[0]);
            d = r(fun, d, a, b, c, x[o[1]].wrapping_add(k), shifts[1]);
            c = r(fun, c, d, a, b, x[o[2]].wrapping_add(k), shifts[2]);
            b = r(fun, b, c, d, a, x[o[3]].wrapping_add(k), shifts[3]);
        }
    }
    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

/// How names are hashed and blocks sealed in one volume.
#[derive(Clone, Copy, Debug)]
pub struct DirFormat {
    pub block_size: usize,
    pub hash_seed: [u32; 4],
    pub signed_hash: bool,
    /// The directory inode's checksum seed under metadata_csum.
    pub csum_seed: Option<u32>,
}

impl DirFormat {
    /// Bytes of a leaf block available to entries.
    fn leaf_space(&self) -> usize {
        self.block_size - self.tail()
    }

    fn tail(&self) -> usize {
        if self.csum_seed.is_some() {
            csum::DIRENT_TAIL
        } else {
            0
        }
    }

    /// A finished leaf: `block` holds `leaf_space` bytes of entries.
    fn seal_leaf(&self, mut block: Vec<u8>) -> Vec<u8> {
        if let Some(seed) = self.csum_seed {
            block.resize(self.block_size, 0);
            csum::seal_dir_block(seed, &mut block);
        }
        block
    }

    /// A directory's blocks, linear: `entries` in order.
    pub fn linear(&self, entries: &[(u32, u8, &[u8])]) -> Vec<Vec<u8>> {
        let mut packer = BlockPacker::new(self.leaf_space());
        let mut blocks = Vec::new();
        for &(ino, ft, name) in entries {
            blocks.extend(packer.push(ino, ft, name));
        }
        blocks.extend(packer.take());
        blocks.into_iter().map(|b| self.seal_leaf(b)).collect()
    }

    /// An empty block (lost+found's spare room).
    pub fn empty(&self) -> Vec<u8> {
        self.seal_leaf(dir_entry::empty_block(self.leaf_space()))
    }

    /// Index entries that fit after `header` bytes of an index block.
    fn limit(&self, header: usize) -> usize {
        let tail = if self.csum_seed.is_some() { 8 } else { 0 };
        (self.block_size - header - tail) / 8
    }

    /// A hashed directory's blocks: the root, index nodes, then leaves,
    /// for the children `entries` (without `.` and `..`). `None` when
    /// they need more than two index levels (largedir).
    pub fn indexed(
        &self,
        dir: u32,
        parent: u32,
        entries: &[(u32, u8, &[u8])],
    ) -> Option<Vec<Vec<u8>>> {
        let mut sorted: Vec<(u32, u32, usize)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let (h, m) = half_md4(e.2, self.hash_seed, self.signed_hash);
                (h, m, i)
            })
            .collect();
        sorted.sort_unstable_by(|a, b| (a.0, a.1, entries[a.2].2).cmp(&(b.0, b.1, entries[b.2].2)));
        // leaves, each with the hash its index entry carries
        let mut leaves: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut packer = BlockPacker::new(self.leaf_space());
        let mut first_hash: Option<u32> = None;
        let mut last_hash = 0u32;
        for &(h, _, i) in &sorted {
            let (ino, ft, name) = entries[i];
            if let Some(done) = packer.push(ino, ft, name) {
                let start = first_hash.unwrap_or(0);
                leaves.push((start, self.seal_leaf(done)));
                first_hash = Some(if h == last_hash { h | 1 } else { h });
            }
            if first_hash.is_none() {
                first_hash = Some(h);
            }
            last_hash = h;
        }
        if let Some(done) = packer.take() {
            leaves.push((first_hash.unwrap_or(0), self.seal_leaf(done)));
        }
        let root_limit = self.limit(0x20);
        let node_limit = self.limit(8);
        let levels = if leaves.len() <= root_limit {
            0u8
        } else if leaves.len() <= root_limit * node_limit {
            1
        } else {
            return None;
        };
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        let nodes = if levels == 0 {
            0
        } else {
            leaves.len().div_ceil(node_limit)
        };
        let first_leaf = 1 + nodes as u32;
        let leaf_refs: Vec<(u32, u32)> = leaves
            .iter()
            .enumerate()
            .map(|(i, l)| (l.0, first_leaf + i as u32))
            .collect();
        let root_refs: Vec<(u32, u32)> = if levels == 0 {
            leaf_refs.clone()
        } else {
            leaf_refs
                .chunks(node_limit)
                .enumerate()
                .map(|(k, c)| (c[0].0, 1 + k as u32))
                .collect()
        };
        // root: "." and "..", the root info, the entries
        let bs = self.block_size;
        let mut root = vec![0u8; bs];
        put32(&mut root, 0, dir);
        put16(&mut root, 4, 12);
        root[6] = 1;
        root[7] = dir_entry::EXT2_FT_DIR;
        root[8] = b'.';
        put32(&mut root, 12, parent);
        put16(&mut root, 16, (bs - 12) as u16);
        root[18] = 2;
        root[19] = dir_entry::EXT2_FT_DIR;
        root[20] = b'.';
        root[21] = b'.';
        root[24 + 4] = DX_HASH_HALF_MD4;
        root[24 + 5] = 8;
        root[24 + 6] = levels;
        self.put_entries(&mut root, 0x20, root_limit, &root_refs);
        blocks.push(root);
        if levels == 1 {
            for chunk in leaf_refs.chunks(node_limit) {
                let mut node = vec![0u8; bs];
                put16(&mut node, 4, bs as u16);
                self.put_entries(&mut node, 8, node_limit, chunk);
                blocks.push(node);
            }
        }
        blocks.extend(leaves.into_iter().map(|l| l.1));
        Some(blocks)
    }

    /// Writes `dx_countlimit` at `at` and the entries after it (the first
    /// entry's hash is implied: its slot holds the count and limit), then
    /// the checksum tail.
    fn put_entries(&self, b: &mut [u8], at: usize, limit: usize, refs: &[(u32, u32)]) {
        put16(b, at, limit as u16);
        put16(b, at + 2, refs.len() as u16);
        for (i, &(hash, block)) in refs.iter().enumerate() {
            if i > 0 {
                put32(b, at + 8 * i, hash);
            }
            put32(b, at + 8 * i + 4, block);
        }
        if let Some(seed) = self.csum_seed {
            csum::seal_dx_block(seed, b, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_md4_matches_e2fsprogs() {
        // debugfs's dx_hash -h half_md4 (the default, all-zero seed;
        // signed bytes): a short name, and one of 42 bytes, two rounds,
        // ending in bytes above 127
        let zero = [0u32; 4];
        assert_eq!(
            half_md4(b"file-0001", zero, true),
            (0xeeba_29b4, 0xf56d_dffa)
        );
        let long = [&[b'a'; 40][..], "\u{e9}".as_bytes()].concat();
        assert_eq!(half_md4(&long, zero, true), (0x7ad2_a01a, 0xac9a_c062));
        assert_ne!(half_md4(&long, zero, false), half_md4(&long, zero, true));
    }
}
