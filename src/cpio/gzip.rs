//! Gzip compressed on every core, with bytes that depend only on the
//! input.
//!
//! The input is cut into [`CHUNK`]-byte chunks. Each chunk is deflated on
//! its own by libdeflate (whole-buffer, faster than zlib and smaller at
//! the same level), as a complete raw deflate stream that
//! [`super::blocks::unfinish`] then turns into a piece of a longer one:
//! its last block is marked as not last and an empty stored block brings
//! it to a byte boundary (what a sync flush writes). The last chunk ends
//! the stream instead. The pieces, concatenated, are one deflate stream in
//! one gzip member, whose CRC-32 is combined from the chunks' own; a
//! match never reaches back into the chunk before (the cost, about 0.1 %
//! at 1 MiB chunks, is why chunks are that long). Nothing a chunk's bytes
//! depend on (its data, the level) has anything to do with how many
//! threads there are or which one compressed it, so one thread and
//! sixteen write the same bytes.
//!
//! The caller's thread gathers chunks and writes results in order; worker
//! threads compress. At most [`in_flight`] chunks are in flight (6 for two
//! workers, never more than 16), each with its compressed output: memory
//! stays under 2 MiB a chunk in flight, 32 MiB at most. The queue is deep
//! enough that workers keep busy while the caller's thread waits for a
//! core on a loaded machine (a chunk takes about 10 ms, a few time
//! slices).

use flate2::Crc;
use libdeflater::{CompressionLvl, Compressor};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Input bytes per independently compressed chunk.
pub const CHUNK: usize = 1024 * 1024;
/// Our fixed header: no name, mtime 0, no extra flags, OS Unix.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// One chunk compressed: its deflate bytes and its CRC.
struct Piece {
    deflated: Vec<u8>,
    crc: Crc,
}

struct Job {
    data: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Piece>>,
}

/// A libdeflate compressor at `level` (0-9; 0 stores).
fn compressor(level: u32) -> Compressor {
    let lvl = CompressionLvl::new(level.min(9) as i32).unwrap_or_default();
    Compressor::new(lvl)
}

/// Deflates `data` as one piece of a stream, the last one if `last`.
fn deflate(c: &mut Compressor, data: &[u8], last: bool) -> io::Result<Piece> {
    let mut out = vec![0u8; c.deflate_compress_bound(data.len()) + 8];
    let n = c
        .deflate_compress(data, &mut out)
        .map_err(io::Error::other)?;
    out.truncate(n);
    if !last {
        super::blocks::unfinish(&mut out)?;
    }
    let mut crc = Crc::new();
    crc.update(data);
    Ok(Piece { deflated: out, crc })
}

/// Chunks handed out and not yet written, at most, for `workers` threads.
fn in_flight(workers: usize) -> usize {
    (2 * workers + 2).min(16)
}

/// Threads that compress the chunks they are sent.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(workers: usize, level: u32) -> io::Result<Pool> {
        let (tx, rx) = mpsc::sync_channel::<Job>(in_flight(workers));
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            let t = std::thread::Builder::new()
                .name(format!("gzip-{i}"))
                .spawn(move || {
                    let mut c = compressor(level);
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let piece = deflate(&mut c, &job.data, job.last);
                        // the writer may have given up: nothing to tell
                        let _ = job.reply.send(piece);
                    }
                })?;
            threads.push(t);
        }
        Ok(Pool {
            jobs: Some(tx),
            threads,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A gzip stream written on `threads` cores; see the module text.
pub struct Encoder<W: Write> {
    out: W,
    level: u32,
    chunk: Vec<u8>,
    crc: Crc,
    header_done: bool,
    pool: Option<Pool>,
    pending: VecDeque<Receiver<io::Result<Piece>>>,
    workers: usize,
    // compresses on the caller's thread when there are no workers
    local: Option<Compressor>,
}

/// The cores this process may run on (its CPU affinity), at least 1.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl<W: Write> Encoder<W> {
    /// A stream at `level` (0-9, libdeflate's levels: 6 packs smaller
    /// than gzip -6) compressed on [`cores`] threads.
    pub fn new(out: W, level: u32) -> Encoder<W> {
        Encoder::with_threads(out, level, cores())
    }

    /// A stream compressed on `threads` threads: 1 compresses on the
    /// caller's thread. The bytes are the same for every count.
    pub fn with_threads(out: W, level: u32, threads: usize) -> Encoder<W> {
        Encoder {
            out,
            level: level.min(9),
            chunk: Vec::with_capacity(CHUNK),
            crc: Crc::new(),
            header_done: false,
            pool: None,
            pending: VecDeque::new(),
            workers: if threads > 1 { threads } else { 0 },
            local: None,
        }
    }

    fn emit(&mut self, piece: Piece) -> io::Result<()> {
        if !self.header_done {
            self.out.write_all(&HEADER)?;
            self.header_done = true;
        }
        self.out.write_all(&piece.deflated)?;
        self.crc.combine(&piece.crc);
        Ok(())
    }

    /// Writes the oldest chunk in flight once it is compressed.
    fn collect_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let piece = rx
                .recv()
                .map_err(|_| io::Error::other("a compression thread stopped"))??;
            self.emit(piece)?;
        }
        Ok(())
    }

    /// Hands the gathered chunk to be compressed.
    fn submit(&mut self, last: bool) -> io::Result<()> {
        if self.workers == 0 {
            let level = self.level;
            let c = self.local.get_or_insert_with(|| compressor(level));
            let piece = deflate(c, &self.chunk, last)?;
            self.chunk.clear();
            return self.emit(piece);
        }
        let data = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        if self.pool.is_none() {
            self.pool = Some(Pool::new(self.workers, self.level)?);
        }
        while self.pending.len() >= in_flight(self.workers) {
            self.collect_one()?;
        }
        let (reply, rx) = mpsc::sync_channel(1);
        let job = Job { data, last, reply };
        let sent = self
            .pool
            .as_ref()
            .and_then(|p| p.jobs.as_ref())
            .map(|tx| tx.send(job).is_ok());
        if sent != Some(true) {
            return Err(io::Error::other("a compression thread stopped"));
        }
        self.pending.push_back(rx);
        Ok(())
    }

    /// Compresses what is left, writes the trailer, flushes and returns
    /// the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.collect_one()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        self.out.flush()?;
        self.pool = None;
        Ok(self.out)
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.chunk.len();
        let n = buf.len().min(room);
        self.chunk
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        if self.chunk.len() == CHUNK {
            self.submit(false)?;
        }
        Ok(n)
    }

    /// Writes what is compressed so far; a partial chunk stays gathered,
    /// since cutting it early would change the bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // compressible but not trivial: words from a small generator
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let word = ["alpha ", "beta ", "gamma\n", "delta ", "\0\0\0\0"][(x % 5) as usize];
            out.extend_from_slice(word.as_bytes());
            if x.is_multiple_of(7) {
                out.push((x >> 24) as u8);
            }
        }
        out.truncate(len);
        out
    }

    fn gz(data: &[u8], threads: usize, level: u32) -> Vec<u8> {
        let mut e = Encoder::with_threads(Vec::new(), level, threads);
        // odd write sizes, so chunks are cut inside writes
        for piece in data.chunks(10_007) {
            e.write_all(piece).unwrap();
        }
        e.finish().unwrap()
    }

    #[test]
    fn same_bytes_on_any_thread_count_and_readable() {
        for len in [0, 1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 77] {
            let data = sample(len);
            let one = gz(&data, 1, 6);
            for threads in [2, 3, 8] {
                assert_eq!(gz(&data, threads, 6), one, "len {len}, {threads} threads");
            }
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&one[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "len {len}");
        }
    }

    #[test]
    fn chunks_cost_little_against_one_whole_buffer() {
        // one gzip member (the single-member reader above reads it all),
        // within 0.5 % of libdeflate over the whole input at once
        let data = sample(6 * CHUNK + 1234);
        let ours = gz(&data, 2, 6).len();
        let mut c = compressor(6);
        let mut whole = vec![0u8; c.gzip_compress_bound(data.len())];
        let whole = c.gzip_compress(&data, &mut whole).unwrap();
        assert!(ours * 1000 <= whole * 1005, "{ours} bytes, {whole} at once");
    }
}
