//! Archives written by name: the one place where an output's file name
//! chooses its format and compression, and the writer that makes it.
//!
//! | name ends with | written as |
//! |---|---|
//! | `.cpio.gz`, `.cgz`, or no archive extension at all | newc cpio, gzip |
//! | `.cpio` | newc cpio |
//! | `.cpio.xz`, `.cpio.zst` | newc cpio, xz or zstd |
//! | `.tar` | tar (pax) |
//! | `.tar.gz`, `.tgz` | tar, gzip |
//! | `.tar.xz`, `.txz` | tar, xz |
//! | `.tar.zst`, `.tzst` | tar, zstd |
//!
//! A name ending with another archive or compression extension (`.zip`,
//! `.tar.bz2`, `.gz` alone...) is refused: writing a cpio.gz under it
//! would mislead whoever reads it.
//!
//! Every compressor writes the same bytes for the same input whatever the
//! number of cores: gzip through [`crate::cpio::gzip`] (fixed header,
//! independent chunks); xz in independent 24 MiB blocks at preset 6 (as
//! `xz -T0 -6` cuts them), compressed on up to four threads; zstd in
//! independent frames of 8 MiB, each ruzstd's "fastest" level (about
//! `zstd -1`).

use super::tar_writer::TarWriter;
use super::{Compression, Format};
use crate::cpio;
use crate::tree::{Entry, Sink, SparseRead};
use std::io::{self, Read, Write};
use std::num::NonZeroU64;

/// The format and compression of an output archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputFormat {
    pub format: Format,
    pub compression: Compression,
}

impl OutputFormat {
    /// What a name without an archive extension is written as.
    pub const DEFAULT: OutputFormat = OutputFormat {
        format: Format::Cpio,
        compression: Compression::Gzip,
    };
}

/// The written extensions, longest first where one ends another.
const WRITTEN: [(&str, Format, Compression); 13] = [
    (".cpio.gz", Format::Cpio, Compression::Gzip),
    (".cpio.xz", Format::Cpio, Compression::Xz),
    (".cpio.zst", Format::Cpio, Compression::Zstd),
    (".cpio", Format::Cpio, Compression::None),
    (".cgz", Format::Cpio, Compression::Gzip),
    (".tar.gz", Format::Tar, Compression::Gzip),
    (".tar.xz", Format::Tar, Compression::Xz),
    (".tar.zst", Format::Tar, Compression::Zstd),
    (".tar", Format::Tar, Compression::None),
    (".tgz", Format::Tar, Compression::Gzip),
    (".txz", Format::Tar, Compression::Xz),
    (".tzst", Format::Tar, Compression::Zstd),
    (".tar.zstd", Format::Tar, Compression::Zstd),
];

/// Extensions that name an archive or a compression that is not written.
const REFUSED: [&str; 24] = [
    "gz", "xz", "zst", "zstd", "bz2", "bzip2", "tbz", "tbz2", "tb2", "lz", "lz4", "lzma", "tlz",
    "lzo", "z", "7z", "zip", "jar", "rar", "deb", "rpm", "squashfs", "sqfs", "cab",
];

/// An output name whose extension names an archive that is not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}`: no archive is written as `.{extension}`; name the output .cpio.gz (also a name without an archive extension), .cgz, .cpio, .cpio.xz, .cpio.zst, .tar, .tar.gz, .tgz, .tar.xz, .txz, .tar.zst or .tzst")]
pub struct NameError {
    pub name: String,
    pub extension: String,
}

/// The archive a written extension of `name` (a file name, the last
/// component of a path or URI) names; `None` when it has none.
pub fn named_format(name: &str) -> Result<Option<OutputFormat>, NameError> {
    let lower = name.to_ascii_lowercase();
    for (ext, format, compression) in WRITTEN {
        if lower.ends_with(ext) && lower.len() > ext.len() {
            return Ok(Some(OutputFormat {
                format,
                compression,
            }));
        }
    }
    match lower.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && REFUSED.contains(&ext) => {
            let extension = match stem.rsplit_once('.') {
                Some((_, inner)) if ["tar", "cpio"].contains(&inner) => format!("{inner}.{ext}"),
                _ => ext.to_string(),
            };
            Err(NameError {
                name: name.to_string(),
                extension,
            })
        }
        _ => Ok(None),
    }
}

/// The archive an output named `name` is written as.
pub fn output_format(name: &str) -> Result<OutputFormat, NameError> {
    Ok(named_format(name)?.unwrap_or(OutputFormat::DEFAULT))
}

/// Input bytes of one zstd frame.
const ZSTD_FRAME: usize = 8 * 1024 * 1024;
/// Input bytes of one xz block: three times preset 6's dictionary, as
/// `xz -T0` cuts them.
const XZ_BLOCK: u64 = 24 * 1024 * 1024;
/// xz's preset.
const XZ_PRESET: u32 = 6;
/// gzip's level, libdeflate's 6: smaller than gzip -6 and pigz -6 (about
/// 1 % on a Debian tree) at about 0.4 of their CPU time.
const GZIP_LEVEL: u32 = 6;

/// zstd in independent frames, each compressed whole by ruzstd: the frame
/// is a buffer in memory, so no I/O error can reach the encoder (which
/// panics on one) and the output's own errors are ours to report.
struct ZstdFrames<W: Write> {
    out: W,
    frame: Vec<u8>,
    frames: u64,
}

impl<W: Write> ZstdFrames<W> {
    fn new(out: W) -> Self {
        ZstdFrames {
            out,
            frame: Vec::with_capacity(ZSTD_FRAME),
            frames: 0,
        }
    }

    fn emit(&mut self) -> io::Result<()> {
        let data = std::mem::take(&mut self.frame);
        let z = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        self.frame = data;
        self.frame.clear();
        self.frames += 1;
        self.out.write_all(&z)
    }

    fn finish(mut self) -> io::Result<W> {
        if !self.frame.is_empty() || self.frames == 0 {
            self.emit()?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ZstdFrames<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(ZSTD_FRAME - self.frame.len());
        self.frame
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        if self.frame.len() == ZSTD_FRAME {
            self.emit()?;
        }
        Ok(n)
    }

    /// A partial frame stays gathered: cutting it early would change the
    /// bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The compression around an output archive.
enum Compressor<W: Write> {
    None(W),
    Gzip(cpio::gzip::Encoder<W>),
    Xz(Box<lzma_rust2::XzWriterMt<W>>),
    Zstd(ZstdFrames<W>),
}

impl<W: Write> Compressor<W> {
    fn new(out: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Compressor::None(out),
            Compression::Gzip => Compressor::Gzip(cpio::gzip_encoder(out, GZIP_LEVEL)),
            Compression::Xz => {
                let mut opts = lzma_rust2::XzOptions::with_preset(XZ_PRESET);
                opts.set_block_size(NonZeroU64::new(XZ_BLOCK));
                let workers = cpio::gzip::cores().clamp(1, 4) as u32;
                Compressor::Xz(Box::new(lzma_rust2::XzWriterMt::new(out, opts, workers)?))
            }
            Compression::Zstd => Compressor::Zstd(ZstdFrames::new(out)),
            Compression::Bzip2 => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "bzip2 is read, not written",
                ))
            }
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Compressor::Gzip(e) => e.finish(),
            Compressor::Xz(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Xz(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(e) => e.flush(),
            Compressor::Xz(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
        }
    }
}

enum Inner<W: Write> {
    Cpio(cpio::Writer<Compressor<W>>),
    Tar(TarWriter<Compressor<W>>),
}

/// A [`Sink`] writing an archive in a chosen [`OutputFormat`]; call
/// [`ArchiveWriter::finish`] to end it.
pub struct ArchiveWriter<W: Write> {
    inner: Inner<W>,
    archive: String,
}

impl<W: Write> ArchiveWriter<W> {
    /// `archive` names the output in error messages.
    pub fn new(out: W, format: OutputFormat, archive: &str) -> io::Result<ArchiveWriter<W>> {
        let c = Compressor::new(out, format.compression)?;
        let inner = match format.format {
            Format::Cpio => Inner::Cpio(cpio::Writer::new(c, archive.to_string())),
            Format::Tar => Inner::Tar(TarWriter::new(c, archive.to_string())),
        };
        Ok(ArchiveWriter {
            inner,
            archive: archive.to_string(),
        })
    }

    /// How many extended attributes were left out: a cpio archive has no
    /// place for them, a tar archive keeps them.
    pub fn xattrs_dropped(&self) -> u64 {
        match &self.inner {
            Inner::Cpio(w) => w.xattrs_dropped(),
            Inner::Tar(_) => 0,
        }
    }

    /// Ends the archive and its compression; returns the output.
    pub fn finish(self) -> io::Result<W> {
        let c = match self.inner {
            Inner::Cpio(w) => w.finish()?,
            Inner::Tar(w) => w.finish()?,
        };
        c.finish()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.archive)))
    }
}

impl<W: Write> Sink for ArchiveWriter<W> {
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> io::Result<()> {
        match &mut self.inner {
            Inner::Cpio(w) => w.put(entry, data),
            Inner::Tar(w) => w.put(entry, data),
        }
    }

    fn put_sparse(&mut self, entry: &Entry, data: &mut dyn SparseRead) -> io::Result<()> {
        match &mut self.inner {
            Inner::Cpio(w) => w.put_sparse(entry, data),
            Inner::Tar(w) => w.put_sparse(entry, data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_choose_the_format() {
        let f = |n: &str| output_format(n).map(|o| (o.format, o.compression));
        assert_eq!(f("a.cpio.gz"), Ok((Format::Cpio, Compression::Gzip)));
        assert_eq!(f("stdout"), Ok((Format::Cpio, Compression::Gzip)));
        assert_eq!(f("etc-12.5"), Ok((Format::Cpio, Compression::Gzip)));
        assert_eq!(f("a.TAR.ZST"), Ok((Format::Tar, Compression::Zstd)));
        assert_eq!(f("a.tgz"), Ok((Format::Tar, Compression::Gzip)));
        assert_eq!(f("a.tar"), Ok((Format::Tar, Compression::None)));
        assert_eq!(f("a.cpio.zst"), Ok((Format::Cpio, Compression::Zstd)));
        assert_eq!(f("a.tar.xz"), Ok((Format::Tar, Compression::Xz)));
        let e = output_format("a.tar.bz2").unwrap_err();
        assert_eq!(e.extension, "tar.bz2");
        assert_eq!(output_format("a.zip").unwrap_err().extension, "zip");
        assert_eq!(output_format("a.gz").unwrap_err().extension, "gz");
        // a dot file is a name, not an extension
        assert_eq!(f(".gz"), Ok((Format::Cpio, Compression::Gzip)));
    }

    fn compressed(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut w = Compressor::new(Vec::new(), c).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn compressors_round_trip_through_the_readers() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8 & 0x0f)
            .collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Xz,
            Compression::Zstd,
        ] {
            for input in [&data[..], &[][..]] {
                let z = compressed(c, input);
                assert_eq!(z, compressed(c, input), "{c}: the same bytes twice");
                let (mut d, found) =
                    super::super::decompress(Box::new(io::Cursor::new(z)), "t").unwrap();
                if !input.is_empty() {
                    assert_eq!(found, c);
                }
                let mut back = Vec::new();
                d.read_to_end(&mut back).unwrap();
                assert!(back == input, "{c}: {} bytes back", back.len());
            }
        }
    }
}
