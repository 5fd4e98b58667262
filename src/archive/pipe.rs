//! A decompressor run on a thread of its own, so that inflating the next
//! buffers and consuming the last ones (parsing, writing an image) use two
//! cores instead of taking turns on one.
//!
//! The thread fills buffers of [`PIPE_BUF`] bytes and hands them over a
//! queue of at most [`QUEUE`]; the reader gives spent buffers back to be
//! filled again. At most `QUEUE + 2` buffers exist (1.5 MiB), whatever the
//! archive's size. The end of the stream is said explicitly, so a
//! decompressor that stops without saying so is an error, never a clean
//! end.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

/// Bytes per buffer handed over.
pub const PIPE_BUF: usize = 256 * 1024;
/// Filled buffers waiting to be read, at most.
pub const QUEUE: usize = 4;

enum Msg {
    /// A buffer and how many of its bytes hold data.
    Data(Vec<u8>, usize),
    End,
    Fail(io::Error),
}

pub struct Piped {
    full: Receiver<Msg>,
    empty: Sender<Vec<u8>>,
    cur: Vec<u8>,
    /// Bytes of `cur` that hold data.
    len: usize,
    pos: usize,
    /// The stream ended (`None`) or failed (the kind, told again to
    /// readers that keep reading).
    over: Option<Option<io::ErrorKind>>,
    thread: Option<JoinHandle<()>>,
}

/// Reads from `inner` until `buf` holds [`PIPE_BUF`] bytes or the stream
/// ends. A buffer given back is still [`PIPE_BUF`] long: it is not zeroed
/// again.
fn fill(inner: &mut dyn Read, buf: &mut Vec<u8>) -> (usize, io::Result<()>) {
    if buf.len() < PIPE_BUF {
        buf.resize(PIPE_BUF, 0);
    }
    let mut got = 0;
    let r = loop {
        if got == PIPE_BUF {
            break Ok(());
        }
        match inner.read(buf.get_mut(got..).unwrap_or_default()) {
            Ok(0) => break Ok(()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    (got, r)
}

impl Piped {
    /// Starts reading `inner` on a new thread.
    pub fn new(mut inner: Box<dyn Read + Send>) -> io::Result<Piped> {
        let (full_tx, full) = mpsc::sync_channel::<Msg>(QUEUE);
        let (empty, empty_rx) = mpsc::channel::<Vec<u8>>();
        let thread = std::thread::Builder::new()
            .name("decompress".into())
            .spawn(move || produce(&mut *inner, &full_tx, &empty_rx))?;
        Ok(Piped {
            full,
            empty,
            cur: Vec::new(),
            len: 0,
            pos: 0,
            over: None,
            thread: Some(thread),
        })
    }

    /// Makes sure the current buffer has unread bytes unless the stream is
    /// over.
    fn refill(&mut self) -> io::Result<()> {
        while self.pos >= self.len {
            match self.over {
                Some(None) => return Ok(()),
                Some(Some(kind)) => {
                    return Err(io::Error::new(
                        kind,
                        "the decompressed stream failed before",
                    ))
                }
                None => {}
            }
            let msg = self.full.recv().unwrap_or_else(|_| {
                Msg::Fail(io::Error::other("the decompression thread stopped"))
            });
            match msg {
                Msg::Data(buf, len) => {
                    let spent = std::mem::replace(&mut self.cur, buf);
                    self.len = len;
                    self.pos = 0;
                    // the thread may be gone already: the buffer is dropped
                    let _ = self.empty.send(spent);
                }
                Msg::End => self.over = Some(None),
                Msg::Fail(e) => {
                    self.over = Some(Some(e.kind()));
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

fn produce(inner: &mut dyn Read, full: &SyncSender<Msg>, empty: &Receiver<Vec<u8>>) {
    loop {
        let mut buf = empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(PIPE_BUF));
        let (got, r) = fill(inner, &mut buf);
        // the bytes read before a failure are handed over first
        let then = match r {
            Ok(()) if got == 0 => Some(Msg::End),
            Ok(()) => None,
            Err(e) => Some(Msg::Fail(e)),
        };
        // the reader is gone (dropped early): stop
        if got > 0 && full.send(Msg::Data(buf, got)).is_err() {
            return;
        }
        if let Some(msg) = then {
            let _ = full.send(msg);
            return;
        }
    }
}

impl Read for Piped {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        self.refill()?;
        let avail = self.cur.get(self.pos..self.len).unwrap_or_default();
        let n = avail.len().min(out.len());
        out.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(avail.get(..n).unwrap_or_default());
        self.pos += n;
        Ok(n)
    }
}

impl BufRead for Piped {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.refill()?;
        Ok(self.cur.get(self.pos..self.len).unwrap_or_default())
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.len);
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        // closing the queue makes the thread's next hand-over fail, after
        // at most one more buffer
        let (_, dead) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.full, dead));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad block"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn passes_bytes_through_and_ends() {
        let data: Vec<u8> = (0..3 * PIPE_BUF + 5).map(|i| (i % 251) as u8).collect();
        let mut p = Piped::new(Box::new(io::Cursor::new(data.clone()))).unwrap();
        let mut back = Vec::new();
        p.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(p.read(&mut [0u8; 4]).unwrap(), 0);
    }

    #[test]
    fn errors_arrive_after_the_bytes_before_them() {
        let mut p = Piped::new(Box::new(Failing(PIPE_BUF + 10))).unwrap();
        let mut back = Vec::new();
        let e = p.read_to_end(&mut back).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), "bad block");
        assert_eq!(back.len(), PIPE_BUF + 10);
        let again = p.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn dropped_early_stops_the_thread() {
        let mut p = Piped::new(Box::new(io::repeat(1))).unwrap();
        let mut b = [0u8; 10];
        p.read_exact(&mut b).unwrap();
        drop(p); // an endless source: returns only if the thread stops
    }
}
