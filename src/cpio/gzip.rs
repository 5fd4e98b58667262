//! Gzip compressed on every core, with bytes that depend only on the
//! input.
//!
//! The input is cut into [`CHUNK`]-byte chunks. Each chunk is deflated on
//! its own, primed with the last 32 KiB of the chunk before it as a preset
//! dictionary (so matches still reach back across the cut, as `pigz` does),
//! and ended with a sync flush: an empty stored block that leaves the
//! stream on a byte boundary without ending it. The last chunk ends the
//! stream instead. The pieces, concatenated, are one deflate stream in one
//! gzip member, whose CRC-32 is combined from the chunks' own. Nothing a
//! chunk's bytes depend on (its data, the chunk before it, the level) has
//! anything to do with how many threads there are or which one compressed
//! it, so one thread and sixteen write the same bytes.
//!
//! The caller's thread gathers chunks and writes results in order; worker
//! threads compress. At most [`in_flight`] chunks are in flight (16 for two
//! workers, never more than 64), each with its compressed output: memory
//! stays a few MiB. The queue is deep enough that workers keep busy while
//! the caller's thread waits for a core on a loaded machine (a chunk takes
//! a few milliseconds, about one time slice).

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Input bytes per independently compressed chunk.
pub const CHUNK: usize = 128 * 1024;
/// The deflate window: the dictionary handed from one chunk to the next.
const WINDOW: usize = 32 * 1024;
/// Our fixed header: no name, mtime 0, no extra flags, OS Unix.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// One chunk compressed: its deflate bytes and its CRC.
struct Piece {
    deflated: Vec<u8>,
    crc: Crc,
}

struct Job {
    level: u32,
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Piece>>,
}

/// Deflates `data` as one piece of a stream, after `dict`.
fn deflate(level: u32, dict: &[u8], data: &[u8], last: bool) -> io::Result<Piece> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 64);
    loop {
        let used = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
        let rest = data.get(used..).unwrap_or_default();
        let status = c
            .compress_vec(rest, &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = usize::try_from(c.total_in()).unwrap_or(usize::MAX) >= data.len();
        // a flush is complete once it returns with output room to spare
        let done = match status {
            Status::StreamEnd => true,
            _ => !last && all_in && out.len() < out.capacity(),
        };
        if done {
            break;
        }
        out.reserve(out.capacity().max(4096));
    }
    let mut crc = Crc::new();
    crc.update(data);
    Ok(Piece { deflated: out, crc })
}

/// Chunks handed out and not yet written, at most, for `workers` threads.
fn in_flight(workers: usize) -> usize {
    (4 * workers + 8).min(64)
}

/// Threads that compress the chunks they are sent.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(workers: usize) -> io::Result<Pool> {
        let (tx, rx) = mpsc::sync_channel::<Job>(in_flight(workers));
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            let t = std::thread::Builder::new()
                .name(format!("gzip-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let piece = deflate(job.level, &job.dict, &job.data, job.last);
                    // the writer may have given up: nothing to tell
                    let _ = job.reply.send(piece);
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
    dict: Vec<u8>,
    crc: Crc,
    header_done: bool,
    pool: Option<Pool>,
    pending: VecDeque<Receiver<io::Result<Piece>>>,
    workers: usize,
}

/// The cores this process may run on (its CPU affinity), at least 1.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl<W: Write> Encoder<W> {
    /// A stream at `level` (0-9) compressed on [`cores`] threads.
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
            dict: Vec::with_capacity(WINDOW),
            crc: Crc::new(),
            header_done: false,
            pool: None,
            pending: VecDeque::new(),
            workers: if threads > 1 { threads } else { 0 },
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
        let data = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        let dict = std::mem::take(&mut self.dict);
        // the next chunk's dictionary: the window ending with this one
        let mut next = Vec::with_capacity(WINDOW);
        if data.len() < WINDOW {
            let keep = dict.len().min(WINDOW - data.len());
            next.extend_from_slice(dict.get(dict.len() - keep..).unwrap_or_default());
        }
        next.extend_from_slice(
            data.get(data.len().saturating_sub(WINDOW)..)
                .unwrap_or_default(),
        );
        self.dict = next;
        if self.workers == 0 {
            let piece = deflate(self.level, &dict, &data, last)?;
            return self.emit(piece);
        }
        if self.pool.is_none() {
            self.pool = Some(Pool::new(self.workers)?);
        }
        while self.pending.len() >= in_flight(self.workers) {
            self.collect_one()?;
        }
        let (reply, rx) = mpsc::sync_channel(1);
        let job = Job {
            level: self.level,
            dict,
            data,
            last,
            reply,
        };
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
        for len in [
            0,
            1,
            1000,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK,
            5 * CHUNK + 77,
        ] {
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
    fn matches_reach_across_chunks() {
        // 20 KiB of noise over and over across four chunks: with the
        // dictionary only the first copy is stored as literals; without
        // it every chunk would start with 20 KiB of them
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let noise: Vec<u8> = (0..20 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let data: Vec<u8> = noise.iter().copied().cycle().take(4 * CHUNK).collect();
        let out = gz(&data, 2, 6).len();
        assert!(out < 30 * 1024, "{out} bytes");
    }
}
