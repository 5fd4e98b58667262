//! Archives as people ship them, told apart by their content: cpio
//! (newc, crc) or tar (ustar, GNU, PAX), each raw or compressed
//! with gzip, xz, zstd or bzip2.
//!
//! [`open`] looks at the first bytes, wraps the matching decompressor and
//! returns a [`Source`] that streams the archive: nothing is expanded to
//! disk and memory stays bounded whatever the archive's size. Anything
//! else is refused with a message saying what it looks like, so that a
//! zip file or a disk image named `*.tar.gz` is not read as garbage.
//!
//! Writing goes the other way, chosen by the output's name rather than
//! content ([`output`]): cpio or tar ([`tar_writer`]), raw or compressed
//! with gzip, xz or zstd.
//!
//! Nothing here knows about containers or URIs: an archive is named by
//! whatever string the caller passes.

pub mod output;
mod pipe;
mod tar;
pub mod tar_writer;

use crate::cpio;
use crate::tree::{Sink, Source};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

pub use self::output::{output_format, ArchiveWriter, NameError, OutputFormat};
pub use self::tar::TarReader;
pub use self::tar_writer::TarWriter;

const BUF: usize = 64 * 1024;
/// The most memory an xz stream may ask for, in KiB.
const XZ_MEMORY_KIB: u32 = 1024 * 1024;

/// The compression around an archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
    Bzip2,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
        })
    }
}

/// The archive format inside the compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Cpio,
    Tar,
}

/// Why an input is not read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{archive}: not an archive this tool reads (looks like {what})")]
    Foreign { archive: String, what: &'static str },
    #[error("{archive}: not an archive this tool reads (neither cpio nor tar{inside})")]
    Unknown { archive: String, inside: String },
    #[error("{archive}: {compression} stream: {source}")]
    Decompress {
        archive: String,
        compression: Compression,
        source: io::Error,
    },
    #[error("{archive}: reading failed: {source}")]
    Read { archive: String, source: io::Error },
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// The compression whose magic `head` starts with; `None` when it starts
/// with none of them.
pub fn compression_of(head: &[u8]) -> Option<Compression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Compression::Xz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else if head.starts_with(b"BZh") && head.get(3).is_some_and(|d| (b'1'..=b'9').contains(d)) {
        Some(Compression::Bzip2)
    } else {
        None
    }
}

/// The archive format of an uncompressed stream starting with `head` (up
/// to 512 bytes).
pub fn format_of(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"070701") || head.starts_with(b"070702") {
        return Some(Format::Cpio);
    }
    if head.len() >= 512 && tar::header_checksum_ok(head) {
        return Some(Format::Tar);
    }
    None
}

/// What a stream that is neither cpio nor tar looks like, for the message.
fn foreign_kind(head: &[u8]) -> Option<&'static str> {
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    if at(0, b"PK\x03\x04") || at(0, b"PK\x05\x06") {
        Some("a zip file")
    } else if at(0, b"7z\xbc\xaf\x27\x1c") {
        Some("a 7-zip archive")
    } else if at(0, b"Rar!\x1a\x07") {
        Some("a rar archive")
    } else if at(0, b"\x04\x22\x4d\x18") {
        Some("an lz4 stream")
    } else if at(0, b"LZIP") {
        Some("an lzip stream")
    } else if at(0, b"\x5d\x00\x00") {
        Some("a legacy lzma stream")
    } else if at(0, b"hsqs") || at(0, b"sqsh") {
        Some("a squashfs image")
    } else if at(0, b"!<arch>\n") {
        Some("an ar archive (a .deb?)")
    } else if at(0, b"\xed\xab\xee\xdb") {
        Some("an rpm package")
    } else if at(0, b"QFI\xfb") {
        Some("a qcow2 disk image")
    } else if at(1080, &[0x53, 0xef]) {
        Some("an ext2/3/4 file-system image")
    } else if at(0x8001, b"CD001") {
        Some("an ISO 9660 image")
    } else if at(0, b"\x7fELF") {
        Some("an ELF executable")
    } else if at(0, b"#!") {
        Some("a script")
    } else if at(0, b"<!DOCTYPE") || at(0, b"<html") || at(0, b"<HTML") {
        Some("an HTML page")
    } else if at(0, &[0xc7, 0x71]) || at(0, &[0x71, 0xc7]) {
        Some("a binary (old) cpio archive, which is not read: repack with `cpio -H newc`")
    } else if at(0, b"070707") {
        Some("an odc cpio archive, which is not read: repack with `cpio -H newc`")
    } else {
        None
    }
}

/// Fills `buf` from `r` as far as the stream allows.
fn read_head(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(buf.get_mut(got..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Concatenated zstd frames (`zstd` writes one per input, `cat a.zst
/// b.zst` is valid), decoded one after another.
struct ZstdFrames<R: BufRead> {
    dec: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(r: R) -> io::Result<Self> {
        let dec = ruzstd::decoding::StreamingDecoder::new(r).map_err(io::Error::other)?;
        Ok(ZstdFrames { dec: Some(dec) })
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(dec) = self.dec.as_mut() else {
                return Ok(0);
            };
            let n = match dec.read(buf) {
                Ok(n) => n,
                // the decoder does not keep the kind: an error with the
                // input used up is the input ending early
                Err(e) if dec.get_mut().fill_buf().is_ok_and(<[u8]>::is_empty) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, e));
                }
                Err(e) => return Err(e),
            };
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(dec) = self.dec.take() else {
                return Ok(0);
            };
            let mut inner = dec.into_inner();
            if inner.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.dec =
                Some(ruzstd::decoding::StreamingDecoder::new(inner).map_err(io::Error::other)?);
        }
    }
}

/// A decompressed stream whose read errors name the archive and the
/// compression, and which is read to its end after the archive's last
/// member so that the decompressor checks its trailing checksums. It is
/// buffered: a reader takes bytes where the decompressor left them.
pub(crate) struct Decoded {
    inner: Box<dyn BufRead>,
    archive: String,
    compression: Compression,
}

/// A read failure of the stream of `archive`, naming it and the
/// compression.
fn failed(archive: &str, compression: Compression, source: io::Error) -> io::Error {
    if source.get_ref().is_some_and(|e| e.is::<Error>()) {
        return source;
    }
    let kind = source.kind();
    let archive = archive.to_string();
    let e = if compression == Compression::None {
        Error::Read { archive, source }
    } else {
        // the decoders say "failed to fill whole buffer"
        let source = if kind == io::ErrorKind::UnexpectedEof {
            io::Error::new(kind, "the compressed data ends early (a truncated file?)")
        } else {
            source
        };
        Error::Decompress {
            archive,
            compression,
            source,
        }
    };
    io::Error::new(kind, e)
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|e| failed(&self.archive, self.compression, e))
    }
}

impl BufRead for Decoded {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self.inner.fill_buf() {
            Ok(b) => Ok(b),
            Err(e) => Err(failed(&self.archive, self.compression, e)),
        }
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
    }
}

impl Decoded {
    /// Reads what follows the archive's end (tar's zero blocks, cpio's
    /// padding, the compressed trailer) so that every checksum is checked.
    pub(crate) fn drain(&mut self) -> io::Result<()> {
        loop {
            let n = match self.fill_buf() {
                Ok(b) => b.len(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(());
            }
            self.consume(n);
        }
    }
}

/// Wraps `input` in the decompressor its first bytes call for, run on a
/// thread of its own ([`pipe`]) when there is one.
fn decompress(input: Box<dyn Read + Send>, archive: &str) -> io::Result<(Decoded, Compression)> {
    let mut input = BufReader::with_capacity(BUF, input);
    let head = input.fill_buf().map_err(|source| Error::Read {
        archive: archive.to_string(),
        source,
    })?;
    // a pipe may hand over fewer bytes than a magic: take a few more
    let mut magic = [0u8; 6];
    let n = head.len().min(magic.len());
    magic[..n].copy_from_slice(&head[..n]);
    let compression = compression_of(&magic[..n]).unwrap_or(Compression::None);
    let inner: Box<dyn Read + Send> = match compression {
        Compression::None => {
            return Ok((
                Decoded {
                    inner: Box::new(input),
                    archive: archive.to_string(),
                    compression,
                },
                compression,
            ))
        }
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        // xz -9 needs 65 MiB; a header asking for more than this is refused
        Compression::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(
            input,
            true,
            XZ_MEMORY_KIB,
        )),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        Compression::Zstd => {
            Box::new(ZstdFrames::new(input).map_err(|source| Error::Decompress {
                archive: archive.to_string(),
                compression,
                source,
            })?)
        }
    };
    let inner: Box<dyn BufRead> = Box::new(pipe::Piped::new(inner)?);
    Ok((
        Decoded {
            inner,
            archive: archive.to_string(),
            compression,
        },
        compression,
    ))
}

/// A tree source over any archive [`open`] accepts.
pub struct Archive {
    format: Format,
    compression: Compression,
    stream: Option<Decoded>,
    archive: String,
}

impl Archive {
    pub fn format(&self) -> Format {
        self.format
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }
}

/// Opens an archive by its content. `archive` names it in messages.
pub fn open(input: impl Read + Send + 'static, archive: &str) -> io::Result<Archive> {
    let (mut stream, compression) = decompress(Box::new(input), archive)?;
    // enough for a tar header and for the magic numbers of file systems
    // (ext at 1080, ISO 9660 at 32769) named in a refusal
    let mut head = vec![0u8; 0x8006];
    let n = read_head(&mut stream, &mut head)?;
    head.truncate(n);
    let format = match format_of(&head) {
        Some(f) => f,
        None => {
            // the raw bytes say more than the decompressed ones when the
            // compression was not recognised
            return Err(match (compression, foreign_kind(&head)) {
                (Compression::None, Some(what)) => Error::Foreign {
                    archive: archive.to_string(),
                    what,
                },
                (Compression::None, None) if n == 0 => Error::Foreign {
                    archive: archive.to_string(),
                    what: "an empty file",
                },
                (Compression::None, None) => Error::Unknown {
                    archive: archive.to_string(),
                    inside: String::new(),
                },
                (_, Some(what)) if what.contains("cpio") => Error::Foreign {
                    archive: archive.to_string(),
                    what,
                },
                (c, _) => Error::Unknown {
                    archive: archive.to_string(),
                    inside: format!(" inside the {c} compression"),
                },
            }
            .into());
        }
    };
    let Decoded {
        inner,
        archive: name,
        compression: c,
    } = stream;
    let stream = Decoded {
        inner: Box::new(io::Cursor::new(head).chain(inner)),
        archive: name,
        compression: c,
    };
    Ok(Archive {
        format,
        compression,
        stream: Some(stream),
        archive: archive.to_string(),
    })
}

impl Source for Archive {
    fn emit(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let Some(mut stream) = self.stream.take() else {
            return Err(cpio::Error::AlreadyRead {
                archive: self.archive.clone(),
            }
            .into());
        };
        match self.format {
            Format::Cpio => {
                // decompressed already: parsed where the bytes lie
                cpio::read_buffered(&mut stream, self.archive.clone(), sink)?;
            }
            Format::Tar => {
                TarReader::new(&mut stream, self.archive.clone()).emit(sink)?;
            }
        }
        stream.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(compression_of(b"\x1f\x8b\x08"), Some(Compression::Gzip));
        assert_eq!(compression_of(b"\xfd7zXZ\0"), Some(Compression::Xz));
        assert_eq!(compression_of(b"\x28\xb5\x2f\xfd"), Some(Compression::Zstd));
        assert_eq!(compression_of(b"BZh9"), Some(Compression::Bzip2));
        assert_eq!(compression_of(b"BZhx"), None);
        assert_eq!(format_of(b"070701000000"), Some(Format::Cpio));
        assert_eq!(format_of(b"070707000000"), None);
        assert_eq!(format_of(&[0u8; 512]), None);
    }

    #[test]
    fn foreign_formats_are_named() {
        let e = open(io::Cursor::new(b"PK\x03\x04rest".to_vec()), "x.tar.gz")
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "x.tar.gz: not an archive this tool reads (looks like a zip file)"
        );
        let e = open(io::Cursor::new(b"070707000000".to_vec()), "o")
            .err()
            .unwrap();
        assert!(e.to_string().contains("odc cpio"), "{e}");
        let e = open(io::Cursor::new(Vec::new()), "e").err().unwrap();
        assert!(e.to_string().contains("an empty file"), "{e}");
    }
}
