//! qcow2 volumes (QEMU's copy-on-write format, version 3) through the
//! `imago` crate: fresh images, overlays over a backing file, and
//! existing images with their backing chains.
//!
//! Backing files are opened read-only, by the name the image records
//! (relative to the image's directory unless absolute), in the format it
//! records (`raw` or `qcow2`; probed by magic when none is recorded), a
//! file still staged under another name read there ([`super::stage`]).
//! An external data file is refused.

use super::Block;
use imago::file::File as Storage;
use imago::raw::Raw;
use imago::{
    DenyImplicitOpenGate, FormatAccess, FormatCreateBuilder, FormatDriverBuilder,
    StorageOpenOptions,
};
use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A volume of any format imago reads, as a backing file.
type Image = FormatAccess<Storage>;
/// A qcow2 image whose backing file is given explicitly.
type Driver = imago::qcow2::Qcow2<Storage, Arc<Image>>;

/// The first four bytes of every qcow2 image.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";

/// Backing chains longer than this are refused (a chain that loops back
/// on itself would never end).
const MAX_CHAIN: usize = 16;

/// The formats a backing file may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
}

impl Format {
    /// The name recorded in an overlay's header and understood by QEMU.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }
}

/// Whether `file` starts with the qcow2 magic.
pub fn is_qcow2(file: &File) -> io::Result<bool> {
    let mut magic = [0u8; 4];
    match file.read_exact_at(&mut magic, 0) {
        Ok(()) => Ok(magic == MAGIC),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// A qcow2 volume.
pub struct Qcow2 {
    image: Image,
    /// Created empty by this process and never written since: resetting
    /// it to its own size changes nothing.
    fresh: Cell<bool>,
}

impl Qcow2 {
    /// Makes `file` (open for reading and writing, named `path`) a fresh
    /// qcow2 image of `size` bytes that reads as zeros.
    pub fn create(file: File, path: &Path, size: u64) -> io::Result<Qcow2> {
        file.set_len(0)?;
        let storage = storage(file, path, true)?;
        let q = Driver::create_builder(storage)
            .size(size)
            .create_open(DenyImplicitOpenGate::default(), |s| {
                Ok(Driver::builder(s).backing(None))
            })?;
        Ok(Qcow2 {
            image: FormatAccess::new(q),
            fresh: Cell::new(true),
        })
    }

    /// Makes `file` (open for reading and writing, named `path`) a qcow2
    /// overlay of `size` bytes over the image `base`: what it does not
    /// hold reads from `base`, which is opened read-only and never
    /// written. The header records `backing_name` (how QEMU finds the base
    /// from the overlay's directory) and the base's format.
    pub fn create_overlay(
        file: File,
        path: &Path,
        size: u64,
        backing_name: &str,
        base: &Path,
    ) -> io::Result<Qcow2> {
        let (backing, format) = open_backing(base, None, 0)?;
        file.set_len(0)?;
        let storage = storage(file, path, true)?;
        let backing = Arc::new(backing);
        let q = Driver::create_builder(storage)
            .size(size)
            .backing(backing_name.to_string(), format.name().to_string())
            .create_open(DenyImplicitOpenGate::default(), |s| {
                Ok(Driver::builder(s).backing(Some(backing)))
            })?;
        Ok(Qcow2 {
            image: FormatAccess::new(q),
            fresh: Cell::new(false),
        })
    }

    /// Opens the qcow2 image `file` (named `path`) and its backing chain.
    pub fn open(file: File, path: &Path, write: bool) -> io::Result<Qcow2> {
        Ok(Qcow2 {
            image: FormatAccess::new(open_driver(file, path, write, 0)?),
            fresh: Cell::new(false),
        })
    }
}

/// imago's storage on a file we opened, named `path` in its messages.
fn storage(file: File, path: &Path, write: bool) -> io::Result<Storage> {
    Storage::from_open_file(file, StorageOpenOptions::new().write(write).filename(path))
}

fn invalid(path: &Path, what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

/// Opens a qcow2 image and its backing file.
fn open_driver(file: File, path: &Path, write: bool, depth: usize) -> io::Result<Driver> {
    let mut q = Driver::open_image(storage(file, path, write)?, write)
        .map_err(|e| invalid(path, format!("not a valid qcow2 image: {e}")))?;
    if q.requires_external_data_file() {
        return Err(invalid(
            path,
            "a qcow2 image with an external data file is not supported".into(),
        ));
    }
    q.set_data_file(None);
    let backing = match q.implicit_backing_file() {
        Some(name) => {
            let at = path.parent().unwrap_or(Path::new("")).join(name);
            let format = match q.implicit_backing_format().map(String::as_str) {
                None => None,
                Some("raw" | "file") => Some(Format::Raw),
                Some("qcow2") => Some(Format::Qcow2),
                Some(other) => {
                    return Err(invalid(
                        path,
                        format!("backing file {name} has format {other}; raw and qcow2 are read"),
                    ))
                }
            };
            let (b, _) = open_backing(&at, format, depth + 1)?;
            Some(Arc::new(b))
        }
        None => None,
    };
    q.set_backing(backing);
    Ok(q)
}

/// Opens the backing file `path` read-only, in `format` (probed when
/// `None`).
fn open_backing(path: &Path, format: Option<Format>, depth: usize) -> io::Result<(Image, Format)> {
    if depth > MAX_CHAIN {
        return Err(invalid(
            path,
            format!("backing chain longer than {MAX_CHAIN} files (or a loop)"),
        ));
    }
    let real: PathBuf = super::resolve(path);
    let file = File::open(&real)
        .map_err(|e| io::Error::new(e.kind(), format!("backing file {}: {e}", path.display())))?;
    let qcow2 = is_qcow2(&file)?;
    let format = format.unwrap_or(if qcow2 { Format::Qcow2 } else { Format::Raw });
    let image = match format {
        Format::Qcow2 if !qcow2 => {
            return Err(invalid(
                path,
                "recorded as a qcow2 backing file but is not qcow2".into(),
            ))
        }
        Format::Qcow2 => FormatAccess::new(open_driver(file, path, false, depth)?),
        Format::Raw => FormatAccess::new(
            Raw::builder(storage(file, path, false)?).open(DenyImplicitOpenGate::default())?,
        ),
    };
    Ok((image, format))
}

impl Block for Qcow2 {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        // past the end is an error, as for a file, not zeros
        if offset.saturating_add(buf.len() as u64) > self.image.size() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the qcow2 image",
            ));
        }
        self.image.read(buf, offset)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.fresh.set(false);
        self.image.write(data, offset)
    }

    /// Writes the cached tables (L2, refcounts), then syncs the file.
    fn flush(&self) -> io::Result<()> {
        self.image.flush()?;
        self.image.sync()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.image.size())
    }

    /// Only a fresh image of this length is empty already; any other is
    /// made anew with [`Qcow2::create`].
    fn reset(&self, len: u64) -> io::Result<()> {
        if self.fresh.get() && len == self.image.size() {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a qcow2 image that holds data is made anew, not emptied",
        ))
    }
}
