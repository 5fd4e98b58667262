//! Extended attributes on disk: in the inode, after `i_extra_isize`
//! (`struct ext4_xattr_ibody_header`, then entries), and in one block
//! named by `i_file_acl` (`struct ext4_xattr_header`, then entries).
//!
//! An entry (`struct ext4_xattr_entry`) is `e_name_len`, `e_name_index`
//! (the name's prefix: `user.`, `security.`, ...), `e_value_offs`,
//! `e_value_inum`, `e_value_size`, `e_hash` and the name without its
//! prefix, padded to 4 bytes; four zero bytes end the list. Values lie
//! at the other end of the area, each padded to 4 bytes: their offsets
//! count from the first entry in an inode and from the block's start in
//! a block. Entries of a block are sorted by index, name length and name,
//! as the kernel's lookup expects. POSIX ACLs are stored in ext4's own
//! compact form (`ext4_acl_header`), not as the `system.posix_acl_*`
//! values the system calls take; both directions are converted here.
//!
//! Decoding checks every size, offset and name against the area it lies
//! in: an image is input like any other.

use super::bytes::*;
use crate::tree::Xattrs;

/// `h_magic` of both headers.
pub const EXT4_XATTR_MAGIC: u32 = 0xEA02_0000;
/// Bytes of `struct ext4_xattr_header` before a block's first entry.
const BLOCK_HEADER: usize = 32;
/// Bytes of an entry before its name.
const ENTRY_HEADER: usize = 16;

pub const EXT4_XATTR_INDEX_USER: u8 = 1;
pub const EXT4_XATTR_INDEX_POSIX_ACL_ACCESS: u8 = 2;
pub const EXT4_XATTR_INDEX_POSIX_ACL_DEFAULT: u8 = 3;
pub const EXT4_XATTR_INDEX_TRUSTED: u8 = 4;
pub const EXT4_XATTR_INDEX_SECURITY: u8 = 6;
pub const EXT4_XATTR_INDEX_SYSTEM: u8 = 7;
pub const EXT4_XATTR_INDEX_RICHACL: u8 = 8;

/// Name prefixes by index; the whole-name ones first, so that
/// `system.posix_acl_access` is not taken for a `system.` name.
const PREFIXES: [(u8, &[u8]); 7] = [
    (
        EXT4_XATTR_INDEX_POSIX_ACL_ACCESS,
        b"system.posix_acl_access",
    ),
    (
        EXT4_XATTR_INDEX_POSIX_ACL_DEFAULT,
        b"system.posix_acl_default",
    ),
    (EXT4_XATTR_INDEX_RICHACL, b"system.richacl"),
    (EXT4_XATTR_INDEX_USER, b"user."),
    (EXT4_XATTR_INDEX_TRUSTED, b"trusted."),
    (EXT4_XATTR_INDEX_SECURITY, b"security."),
    (EXT4_XATTR_INDEX_SYSTEM, b"system."),
];

/// The index and stored name of a full attribute name; `None` for a
/// namespace ext4 cannot store.
pub fn split_name(full: &[u8]) -> Option<(u8, &[u8])> {
    PREFIXES.iter().find_map(|&(index, prefix)| {
        let rest = full.strip_prefix(prefix)?;
        // a whole-name prefix takes no suffix
        let whole = !prefix.ends_with(b".");
        (!whole || rest.is_empty()).then_some((index, rest))
    })
}

/// The full name of a stored entry; `None` for an unknown index.
pub fn full_name(index: u8, name: &[u8]) -> Option<Vec<u8>> {
    let &(_, prefix) = PREFIXES.iter().find(|(i, _)| *i == index)?;
    Some([prefix, name].concat())
}

/// `EXT4_XATTR_LEN`: an entry with its name, padded to 4 bytes.
fn entry_len(name_len: usize) -> usize {
    (ENTRY_HEADER + name_len + 3) & !3
}

/// `EXT4_XATTR_SIZE`: a value padded to 4 bytes.
fn value_len(size: usize) -> usize {
    (size + 3) & !3
}

/// `ext4_xattr_hash_entry`: the name's bytes, then the value's
/// little-endian 32-bit words (zero-padded), each folded into the hash.
pub fn ext4_xattr_hash_entry(name: &[u8], value: &[u8]) -> u32 {
    const NAME_HASH_SHIFT: u32 = 5;
    const VALUE_HASH_SHIFT: u32 = 16;
    let mut hash = 0u32;
    for &c in name {
        hash = (hash << NAME_HASH_SHIFT) ^ (hash >> (32 - NAME_HASH_SHIFT)) ^ u32::from(c);
    }
    for w in value.chunks(4) {
        let mut word = [0u8; 4];
        word[..w.len()].copy_from_slice(w);
        hash = (hash << VALUE_HASH_SHIFT)
            ^ (hash >> (32 - VALUE_HASH_SHIFT))
            ^ u32::from_le_bytes(word);
    }
    hash
}

/// `ext4_xattr_rehash`: a block's `h_hash` from its entries' hashes (0
/// when one of them is 0).
fn ext4_xattr_rehash(hashes: &[u32]) -> u32 {
    const BLOCK_HASH_SHIFT: u32 = 16;
    let mut hash = 0u32;
    for &h in hashes {
        if h == 0 {
            return 0;
        }
        hash = (hash << BLOCK_HASH_SHIFT) ^ (hash >> (32 - BLOCK_HASH_SHIFT)) ^ h;
    }
    hash
}

/// One attribute as stored: index, name without prefix, value (in disk
/// form: ACLs converted).
struct Stored {
    e_name_index: u8,
    e_name: Vec<u8>,
    value: Vec<u8>,
}

impl Stored {
    fn len(&self) -> usize {
        entry_len(self.e_name.len()) + value_len(self.value.len())
    }
}

/// Where a node's attributes go: the bytes after `i_extra_isize` (the
/// ibody header and its entries; empty when none are there) and the
/// content of an attribute block, when they do not all fit in the inode.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Placed {
    pub ibody: Vec<u8>,
    pub block: Option<Vec<u8>>,
}

/// Lays out `xattrs` in an inode with `ibody_space` bytes after
/// `i_extra_isize` and, for what does not fit, one block of
/// `block_size` bytes; under metadata_csum [`seal_block`] fills in the
/// block's checksum once its number is known. The error says what does
/// not fit or cannot be stored, without the path.
pub fn place(xattrs: &Xattrs, ibody_space: usize, block_size: usize) -> Result<Placed, String> {
    let mut all = Vec::with_capacity(xattrs.len());
    for (name, value) in xattrs.iter() {
        let Some((index, suffix)) = split_name(name) else {
            return Err(format!(
                "extended attribute {:?}: ext2/3/4 stores only user., trusted., security. and system. names",
                String::from_utf8_lossy(name)
            ));
        };
        if suffix.len() > 255 {
            return Err(format!(
                "extended attribute {:?}: name longer than 255 bytes",
                String::from_utf8_lossy(name)
            ));
        }
        let value = match index {
            EXT4_XATTR_INDEX_POSIX_ACL_ACCESS | EXT4_XATTR_INDEX_POSIX_ACL_DEFAULT => {
                acl_to_disk(value).ok_or_else(|| {
                    format!(
                        "extended attribute {:?}: not a POSIX ACL",
                        String::from_utf8_lossy(name)
                    )
                })?
            }
            _ => value.to_vec(),
        };
        all.push(Stored {
            e_name_index: index,
            e_name: suffix.to_vec(),
            value,
        });
    }
    // the order a block's lookup expects
    all.sort_by(|a, b| {
        (a.e_name_index, a.e_name.len(), &a.e_name).cmp(&(
            b.e_name_index,
            b.e_name.len(),
            &b.e_name,
        ))
    });
    // magic, then entries, the end marker and values
    let mut room = ibody_space.saturating_sub(4 + 4);
    let (mut inode, mut block) = (Vec::new(), Vec::new());
    for s in all {
        if s.len() <= room {
            room -= s.len();
            inode.push(s);
        } else {
            block.push(s);
        }
    }
    let mut placed = Placed::default();
    if !inode.is_empty() {
        let mut area = vec![0u8; ibody_space];
        put32(&mut area, 0, EXT4_XATTR_MAGIC);
        // offsets count from the first entry
        write_entries_at(&mut area[4..], 0, &inode);
        placed.ibody = area;
    }
    if !block.is_empty() {
        let need = BLOCK_HEADER + 4 + block.iter().map(Stored::len).sum::<usize>();
        if need > block_size {
            let total: usize = need + inode.iter().map(Stored::len).sum::<usize>();
            return Err(format!(
                "extended attributes of {total} bytes do not fit in the inode and one {block_size}-byte block"
            ));
        }
        let mut b = vec![0u8; block_size];
        put32(&mut b, 0, EXT4_XATTR_MAGIC);
        // h_refcount, h_blocks
        put32(&mut b, 4, 1);
        put32(&mut b, 8, 1);
        let hashes = write_entries_at(&mut b, BLOCK_HEADER, &block);
        put32(&mut b, 12, ext4_xattr_rehash(&hashes));
        placed.block = Some(b);
    }
    Ok(placed)
}

/// Entries from `from`, values from the end of `area` down; value
/// offsets count from the start of `area`.
fn write_entries_at(area: &mut [u8], from: usize, list: &[Stored]) -> Vec<u32> {
    let mut at = from;
    let mut end = area.len();
    let mut hashes = Vec::with_capacity(list.len());
    for s in list {
        let size = s.value.len();
        let offs = if size == 0 {
            0
        } else {
            end -= value_len(size);
            put_bytes(area, end, &s.value);
            end
        };
        let hash = ext4_xattr_hash_entry(&s.e_name, &s.value);
        area[at] = s.e_name.len() as u8;
        area[at + 1] = s.e_name_index;
        put16(area, at + 2, offs as u16);
        put32(area, at + 4, 0);
        put32(area, at + 8, size as u32);
        put32(area, at + 12, hash);
        put_bytes(area, at + ENTRY_HEADER, &s.e_name);
        at += entry_len(s.e_name.len());
        hashes.push(hash);
    }
    hashes
}

/// Fills in an attribute block's `h_checksum` (metadata_csum): the crc
/// over the block's number and the block with the field taken as zero.
pub fn seal_block(volume: u32, block_nr: u64, block: &mut [u8]) {
    put32(block, 16, 0);
    let c = super::csum::raw(super::csum::raw(volume, &block_nr.to_le_bytes()), block);
    put32(block, 16, c);
}

/// One decoded entry: full name and value (ACLs in system-call form).
type Decoded = (Vec<u8>, Vec<u8>);

/// The attributes of an inode's in-inode area (the bytes after
/// `i_extra_isize`), without the inline-data `system.data`.
pub fn decode_ibody(area: &[u8]) -> Result<Vec<Decoded>, String> {
    if area.len() < 4 || le32(area, 0) != EXT4_XATTR_MAGIC {
        return Ok(Vec::new());
    }
    decode_entries(area.get(4..).unwrap_or_default(), 0, "the inode")
}

/// The attributes of an attribute block.
pub fn decode_block(block: &[u8]) -> Result<Vec<Decoded>, String> {
    if block.len() < BLOCK_HEADER + 4 || le32(block, 0) != EXT4_XATTR_MAGIC {
        return Err("attribute block without its magic number".into());
    }
    if le32(block, 8) != 1 {
        return Err(format!(
            "attribute block spanning {} blocks",
            le32(block, 8)
        ));
    }
    decode_entries(block, BLOCK_HEADER, "the block")
}

/// One entry as found, before its name is made whole.
struct Raw<'a> {
    e_name_index: u8,
    e_name: &'a [u8],
    e_value_inum: u32,
    value: &'a [u8],
}

/// Entries from `from` in `area` (value offsets from the area's start)
/// up to the end marker: every name and value must lie in the area.
fn raw_entries<'a>(area: &'a [u8], from: usize, what: &str) -> Result<Vec<Raw<'a>>, String> {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let Some(head) = area.get(at..at + 4) else {
            return Err(format!("attribute entries run past {what}"));
        };
        if head == [0, 0, 0, 0] {
            return Ok(out);
        }
        let e = area
            .get(at..at + ENTRY_HEADER)
            .ok_or_else(|| format!("attribute entry past {what}"))?;
        let name_len = usize::from(e[0]);
        let e_name_index = e[1];
        let offs = usize::from(le16(e, 2));
        let e_value_inum = le32(e, 4);
        let size = le32(e, 8) as usize;
        let e_name = area
            .get(at + ENTRY_HEADER..at + ENTRY_HEADER + name_len)
            .ok_or_else(|| format!("attribute name past {what}"))?;
        at += entry_len(name_len);
        let value = if size == 0 || e_value_inum != 0 {
            &[][..]
        } else {
            offs.checked_add(size)
                .and_then(|end| area.get(offs..end))
                .filter(|_| offs >= at)
                .ok_or_else(|| {
                    format!("attribute value of {size} bytes at {offs} lies outside {what}")
                })?
        };
        out.push(Raw {
            e_name_index,
            e_name,
            e_value_inum,
            value,
        });
    }
}

/// Entries made whole: full names, ACLs in system-call form, without
/// the inline-data `system.data`.
fn decode_entries(area: &[u8], from: usize, what: &str) -> Result<Vec<Decoded>, String> {
    let mut out = Vec::new();
    for r in raw_entries(area, from, what)? {
        if r.e_name_index == EXT4_XATTR_INDEX_SYSTEM && r.e_name == b"data" {
            // inline data: file content, not an attribute
            continue;
        }
        let full = full_name(r.e_name_index, r.e_name)
            .ok_or_else(|| format!("attribute of unknown name index {}", r.e_name_index))?;
        let shown = String::from_utf8_lossy(&full).into_owned();
        if r.e_value_inum != 0 {
            return Err(format!(
                "attribute {shown:?}: value kept in inode {} (ea_inode is not read)",
                r.e_value_inum
            ));
        }
        let value = match r.e_name_index {
            EXT4_XATTR_INDEX_POSIX_ACL_ACCESS | EXT4_XATTR_INDEX_POSIX_ACL_DEFAULT => {
                acl_from_disk(r.value)
                    .ok_or_else(|| format!("attribute {shown:?}: not an ext4 ACL"))?
            }
            _ => r.value.to_vec(),
        };
        out.push((full, value));
    }
    Ok(out)
}

/// The value of `system.data` among in-inode attributes (inline data's
/// content past `i_block`); empty when there is none.
pub fn system_data(area: &[u8]) -> Result<&[u8], String> {
    if area.len() < 4 || le32(area, 0) != EXT4_XATTR_MAGIC {
        return Ok(&[]);
    }
    let entries = area.get(4..).unwrap_or_default();
    for r in raw_entries(entries, 0, "the inode")? {
        if r.e_name_index == EXT4_XATTR_INDEX_SYSTEM && r.e_name == b"data" {
            if r.e_value_inum != 0 {
                return Err("value kept in another inode".into());
            }
            return Ok(r.value);
        }
    }
    Ok(&[])
}

/// `POSIX_ACL_XATTR_VERSION` of the system-call form, `EXT4_ACL_VERSION`
/// of the disk form.
const ACL_XATTR_VERSION: u32 = 2;
const EXT4_ACL_VERSION: u32 = 1;
/// Tags whose entries carry an id: `ACL_USER`, `ACL_GROUP`.
const ACL_USER: u16 = 0x02;
const ACL_GROUP: u16 = 0x08;

/// `{version 2}{tag, perm, id}*` (8 bytes an entry) into ext4's
/// `{version 1}` then 8-byte entries for named users and groups and
/// 4-byte ones (no id) for the rest.
fn acl_to_disk(v: &[u8]) -> Option<Vec<u8>> {
    if v.len() < 4 || le32(v, 0) != ACL_XATTR_VERSION || !(v.len() - 4).is_multiple_of(8) {
        return None;
    }
    let mut out = EXT4_ACL_VERSION.to_le_bytes().to_vec();
    for e in v[4..].chunks(8) {
        let tag = le16(e, 0);
        out.extend_from_slice(&e[..4]);
        if tag == ACL_USER || tag == ACL_GROUP {
            out.extend_from_slice(&e[4..8]);
        }
    }
    Some(out)
}

/// The reverse of [`acl_to_disk`]; entries without an id get the
/// undefined id (`-1`), as the kernel reports them.
fn acl_from_disk(v: &[u8]) -> Option<Vec<u8>> {
    if v.len() < 4 || le32(v, 0) != EXT4_ACL_VERSION {
        return None;
    }
    let mut out = ACL_XATTR_VERSION.to_le_bytes().to_vec();
    let mut at = 4;
    while at < v.len() {
        let e = v.get(at..at + 4)?;
        let tag = le16(e, 0);
        out.extend_from_slice(e);
        if tag == ACL_USER || tag == ACL_GROUP {
            out.extend_from_slice(v.get(at + 4..at + 8)?);
            at += 8;
        } else {
            out.extend_from_slice(&u32::MAX.to_le_bytes());
            at += 4;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xattrs(list: &[(&str, &[u8])]) -> Xattrs {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn names_split_by_prefix() {
        assert_eq!(split_name(b"user.a"), Some((1, &b"a"[..])));
        assert_eq!(
            split_name(b"security.capability"),
            Some((6, &b"capability"[..]))
        );
        assert_eq!(split_name(b"system.posix_acl_access"), Some((2, &b""[..])));
        assert_eq!(
            split_name(b"system.posix_acl_accessx"),
            Some((7, &b"posix_acl_accessx"[..]))
        );
        assert_eq!(split_name(b"system.data"), Some((7, &b"data"[..])));
        assert_eq!(split_name(b"os2.x"), None);
        assert_eq!(full_name(6, b"capability").unwrap(), b"security.capability");
        assert_eq!(full_name(3, b"").unwrap(), b"system.posix_acl_default");
        assert_eq!(full_name(5, b"x"), None);
    }

    #[test]
    fn hash_is_the_kernels() {
        // one name byte, then one value word
        assert_eq!(ext4_xattr_hash_entry(b"a", b"1"), 0x61 << 16 ^ 0x31);
        let h = ext4_xattr_hash_entry(b"", b"");
        assert_eq!(h, 0);
        // two words: the second folds in after a 16-bit rotation
        let v = [1u8, 0, 0, 0, 2, 0, 0, 0];
        assert_eq!(ext4_xattr_hash_entry(b"", &v), (1 << 16) ^ 2);
        // a name byte above 0x7f counts unsigned
        assert_eq!(ext4_xattr_hash_entry(&[0xff], b""), 0xff);
        assert_eq!(ext4_xattr_rehash(&[1, 2]), (1 << 16) ^ 2);
        assert_eq!(ext4_xattr_rehash(&[1, 0, 2]), 0);
    }

    #[test]
    fn small_attributes_stay_in_the_inode() {
        let cap = [
            1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let x = xattrs(&[("security.capability", &cap), ("user.a", b"1")]);
        let p = place(&x, 96, 1024).unwrap();
        assert!(p.block.is_none());
        assert_eq!(p.ibody.len(), 96);
        let back: Xattrs = decode_ibody(&p.ibody).unwrap().into_iter().collect();
        assert_eq!(back, x);
    }

    #[test]
    fn what_does_not_fit_goes_to_a_block() {
        let big = vec![7u8; 300];
        let x = xattrs(&[("user.big", &big), ("user.a", b"1"), ("trusted.t", b"")]);
        let p = place(&x, 96, 1024).unwrap();
        let block = p.block.unwrap();
        assert_eq!(le32(&block, 4), 1);
        assert_eq!(le32(&block, 8), 1);
        assert_ne!(le32(&block, 12), 0);
        let mut back = decode_ibody(&p.ibody).unwrap();
        back.extend(decode_block(&block).unwrap());
        assert_eq!(back.into_iter().collect::<Xattrs>(), x);
        let x = xattrs(&[("user.big", &[0u8; 2000])]);
        let e = place(&x, 96, 1024).unwrap_err();
        assert!(e.contains("do not fit"), "{e}");
        assert!(place(&xattrs(&[("os2.x", b"")]), 96, 1024).is_err());
    }

    #[test]
    fn acls_convert_both_ways() {
        // user::rw-, user:1000:r--, group::r--, mask::r--, other::---
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 4, 1000),
            (4, 4, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 0, u32::MAX),
        ] {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        let disk = acl_to_disk(&v).unwrap();
        assert_eq!(disk.len(), 4 + 4 * 4 + 8);
        assert_eq!(acl_from_disk(&disk).unwrap(), v);
        assert!(acl_to_disk(b"junk").is_none());
    }

    #[test]
    fn hostile_areas_are_refused() {
        let x = xattrs(&[("user.a", b"12345678")]);
        let p = place(&x, 96, 1024).unwrap();
        // a value offset past the area
        let mut bad = p.ibody.clone();
        put16(&mut bad, 4 + 2, 200);
        assert!(decode_ibody(&bad).is_err());
        // a value size reaching past it
        let mut bad = p.ibody.clone();
        put32(&mut bad, 4 + 8, u32::MAX);
        assert!(decode_ibody(&bad).is_err());
        // a name longer than the area
        let mut bad = p.ibody.clone();
        bad[4] = 255;
        assert!(decode_ibody(&bad).is_err());
        // entries with no end marker
        let mut bad = vec![0xEEu8; 96];
        put32(&mut bad, 0, EXT4_XATTR_MAGIC);
        assert!(decode_ibody(&bad).is_err());
        assert!(decode_block(&[0u8; 1024]).is_err());
    }
}
