//! Linux swap areas, laid out as `mkswap` lays them out (swap header
//! version 1, the `SWAPSPACE2` signature) for 4096-byte pages, little
//! endian.
//!
//! The first page holds everything: 1024 bytes left for a boot loader or
//! disk label, then the header (`version` = 1, `last_page`, `nr_badpages` =
//! 0, a 16-byte UUID, a 16-byte volume name), and the 10-byte signature in
//! the page's last bytes. The rest of the area is the kernel's to use.
//!
//! The kernel refuses a swap *file* with holes (it maps the file's blocks
//! once at `swapon` and writes to them directly), so the whole area is
//! allocated: with `fallocate` where the file system has it, else by
//! writing zeros.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The page size the area is laid out for (x86, and the usual on arm64).
pub const PAGE_SIZE: u64 = 4096;
/// The fewest pages `mkswap` accepts (40 KiB with 4 KiB pages).
pub const MIN_PAGES: u64 = 10;
/// The most bytes a volume name holds.
pub const LABEL_MAX: usize = 16;

const SIGNATURE: &[u8; 10] = b"SWAPSPACE2";
const HEADER_AT: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{size} bytes is too small for a swap area: at least {MIN_PAGES} pages of {PAGE_SIZE} bytes")]
    TooSmall { size: u64 },
    #[error("{size} bytes is too large for a swap area: its last page number must fit in 32 bits")]
    TooLarge { size: u64 },
    #[error("label of {len} bytes: a swap area's label holds at most {LABEL_MAX}")]
    LabelTooLong { len: usize },
    #[error("{op}: {source}")]
    Io { op: &'static str, source: io::Error },
}

/// What defines a swap area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Bytes; a tail shorter than a page is allocated but not used, as
    /// `mkswap` leaves it.
    pub size: u64,
    pub label: Vec<u8>,
    pub uuid: [u8; 16],
}

impl Options {
    /// The number of whole pages, checked against the format's limits.
    pub fn pages(&self) -> Result<u64, Error> {
        if self.label.len() > LABEL_MAX {
            return Err(Error::LabelTooLong {
                len: self.label.len(),
            });
        }
        let pages = self.size / PAGE_SIZE;
        if pages < MIN_PAGES {
            return Err(Error::TooSmall { size: self.size });
        }
        if pages - 1 > u32::MAX as u64 {
            return Err(Error::TooLarge { size: self.size });
        }
        Ok(pages)
    }
}

/// The first page of the area.
pub fn header(opts: &Options) -> Result<Vec<u8>, Error> {
    let last_page = opts.pages()? - 1;
    let mut page = vec![0u8; PAGE_SIZE as usize];
    let mut fields = Vec::with_capacity(44);
    fields.extend_from_slice(&1u32.to_le_bytes()); // version
    fields.extend_from_slice(&(last_page as u32).to_le_bytes());
    fields.extend_from_slice(&0u32.to_le_bytes()); // nr_badpages
    fields.extend_from_slice(&opts.uuid);
    let mut volume = [0u8; LABEL_MAX];
    volume[..opts.label.len()].copy_from_slice(&opts.label);
    fields.extend_from_slice(&volume);
    page[HEADER_AT..HEADER_AT + fields.len()].copy_from_slice(&fields);
    page[PAGE_SIZE as usize - SIGNATURE.len()..].copy_from_slice(SIGNATURE);
    Ok(page)
}

/// Writes a swap area over `file` (which should be empty): allocates all
/// of it, then writes the header page.
pub fn write(file: &File, opts: &Options) -> Result<(), Error> {
    let page = header(opts)?;
    let io = |op| move |source| Error::Io { op, source };
    file.set_len(0).map_err(io("truncate"))?;
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, opts.size) {
        Ok(()) => {}
        // no fallocate here (or not for this file system): write zeros
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => {
            write_zeros(file, opts.size).map_err(io("allocate"))?
        }
        Err(e) => return Err(io("allocate")(e.into())),
    }
    file.write_all_at(&page, 0).map_err(io("write header"))
}

fn write_zeros(file: &File, size: u64) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(size: u64, label: &[u8]) -> Options {
        Options {
            size,
            label: label.to_vec(),
            uuid: *b"0123456789abcdef",
        }
    }

    #[test]
    fn header_fields_sit_where_the_kernel_reads_them() {
        let page = header(&opts(1 << 20, b"swap0")).unwrap();
        assert_eq!(page.len(), 4096);
        assert!(crate::bytes::all_zero(&page[..1024]));
        assert_eq!(page[1024..1028], 1u32.to_le_bytes());
        assert_eq!(page[1028..1032], 255u32.to_le_bytes());
        assert_eq!(page[1032..1036], [0; 4]);
        assert_eq!(&page[1036..1052], b"0123456789abcdef");
        assert_eq!(&page[1052..1068], b"swap0\0\0\0\0\0\0\0\0\0\0\0");
        assert!(crate::bytes::all_zero(&page[1068..4086]));
        assert_eq!(&page[4086..], b"SWAPSPACE2");
    }

    #[test]
    fn limits() {
        assert!(matches!(
            header(&opts(10 * 4096 - 1, b"")),
            Err(Error::TooSmall { .. })
        ));
        assert!(header(&opts(10 * 4096, b"")).is_ok());
        // a tail shorter than a page is not counted
        assert_eq!(opts(10 * 4096 + 4095, b"").pages().unwrap(), 10);
        assert!(opts(4096 << 32, b"").pages().is_ok());
        assert!(matches!(
            opts((4096 << 32) + 4096, b"").pages(),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            header(&opts(1 << 20, &[b'x'; 17])),
            Err(Error::LabelTooLong { len: 17 })
        ));
        assert!(header(&opts(1 << 20, &[b'x'; 16])).is_ok());
    }

    #[test]
    fn written_areas_are_allocated_with_the_header_first() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("swap");
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        let o = opts(1 << 20, b"x");
        write(&f, &o).unwrap();
        let md = f.metadata().unwrap();
        assert_eq!(md.len(), 1 << 20);
        assert!(md.blocks() * 512 >= 1 << 20, "{} blocks", md.blocks());
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes[..4096], header(&o).unwrap()[..]);
        assert!(crate::bytes::all_zero(&bytes[4096..]));
    }
}
