//! The 110-byte ASCII header shared by `newc` and `crc` archives.

/// Magic of the `newc` format.
pub const MAGIC_NEWC: &[u8; 6] = b"070701";
/// Magic of the `crc` format: as newc, plus a byte-sum of the file data.
pub const MAGIC_CRC: &[u8; 6] = b"070702";
/// Length of the header before the name.
pub const HEADER_LEN: usize = 110;
/// Largest accepted `c_namesize`, NUL included (Linux `PATH_MAX`).
pub const NAME_MAX: u32 = 4096;
/// The name of the member that ends an archive.
pub const TRAILER: &[u8] = b"TRAILER!!!";

/// The header fields, named as in the format's description
/// (`c_ino`, `c_mode`, ...). All are 32-bit on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub c_ino: u32,
    pub c_mode: u32,
    pub c_uid: u32,
    pub c_gid: u32,
    pub c_nlink: u32,
    pub c_mtime: u32,
    pub c_filesize: u32,
    pub c_devmajor: u32,
    pub c_devminor: u32,
    pub c_rdevmajor: u32,
    pub c_rdevminor: u32,
    pub c_namesize: u32,
    pub c_check: u32,
}

const FIELDS: [&str; 13] = [
    "c_ino",
    "c_mode",
    "c_uid",
    "c_gid",
    "c_nlink",
    "c_mtime",
    "c_filesize",
    "c_devmajor",
    "c_devminor",
    "c_rdevmajor",
    "c_rdevminor",
    "c_namesize",
    "c_check",
];

/// Why a header could not be decoded: the offending field and its text.
#[derive(Debug)]
pub(crate) struct HexError {
    pub field: &'static str,
    pub text: String,
}

impl Header {
    /// Decodes the 104 bytes after the magic.
    pub(crate) fn parse(fields: &[u8; HEADER_LEN - 6]) -> Result<Header, HexError> {
        let mut v = [0u32; 13];
        for ((slot, chunk), name) in v.iter_mut().zip(fields.chunks_exact(8)).zip(FIELDS) {
            *slot = parse_hex(chunk).ok_or_else(|| HexError {
                field: name,
                text: String::from_utf8_lossy(chunk).into_owned(),
            })?;
        }
        let [c_ino, c_mode, c_uid, c_gid, c_nlink, c_mtime, c_filesize, c_devmajor, c_devminor, c_rdevmajor, c_rdevminor, c_namesize, c_check] =
            v;
        Ok(Header {
            c_ino,
            c_mode,
            c_uid,
            c_gid,
            c_nlink,
            c_mtime,
            c_filesize,
            c_devmajor,
            c_devminor,
            c_rdevmajor,
            c_rdevminor,
            c_namesize,
            c_check,
        })
    }

    /// Appends the encoded header (with `magic`) to `out`.
    pub fn encode(&self, magic: &[u8; 6], out: &mut Vec<u8>) {
        out.extend_from_slice(magic);
        for v in [
            self.c_ino,
            self.c_mode,
            self.c_uid,
            self.c_gid,
            self.c_nlink,
            self.c_mtime,
            self.c_filesize,
            self.c_devmajor,
            self.c_devminor,
            self.c_rdevmajor,
            self.c_rdevminor,
            self.c_namesize,
            self.c_check,
        ] {
            out.extend_from_slice(format!("{v:08X}").as_bytes());
        }
    }
}

fn parse_hex(chunk: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &b in chunk {
        let d = (b as char).to_digit(16)?;
        v = (v << 4) | d;
    }
    Some(v)
}

/// Bytes of padding that bring `len` to a multiple of four.
pub(crate) fn pad4(len: u64) -> u64 {
    (4 - (len % 4)) % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = Header {
            c_ino: 1,
            c_mode: 0o100644,
            c_uid: 0xffff_fffe,
            c_filesize: 0xffff_ffff,
            c_namesize: 6,
            ..Header::default()
        };
        let mut out = Vec::new();
        h.encode(MAGIC_NEWC, &mut out);
        assert_eq!(out.len(), HEADER_LEN);
        let fields: &[u8; HEADER_LEN - 6] = out[6..].try_into().unwrap();
        assert_eq!(Header::parse(fields).unwrap(), h);
    }

    #[test]
    fn bad_hex_names_field() {
        let mut bytes = [b'0'; HEADER_LEN - 6];
        bytes[8 * 6 + 3] = b'g';
        let e = Header::parse(&bytes).unwrap_err();
        assert_eq!(e.field, "c_filesize");
        assert_eq!(pad4(110 + 5), 1);
        assert_eq!(pad4(8), 0);
    }
}
