//! Progress on standard error for long transfers, archive passes and
//! image writes.
//!
//! Nothing here knows what is being moved: code that copies bytes asks for
//! a [`Meter`] and feeds it counts. A meter draws only when progress is on
//! (`--progress auto` without `-q`, or `always`) and standard error is a
//! terminal, and only once its work has taken half a second, so short runs,
//! hooks and logs stay silent.
//!
//! A meter with a known total (an HTTP Content-Length, an FTP SIZE, a
//! file's size) draws a bar with the bytes left and the time left. A pass
//! over an archive file counts the bytes read from the file, compressed,
//! against its size: whichever meter is running on the thread (packing,
//! writing an image, looking paths up) shows that as its bar. Rates are the
//! bytes moved since the work started over the wall time since then, so a
//! burst of buffered bytes cannot claim gigabytes per second. Labels are
//! shortened in the middle to fit the terminal, so that a bar never wraps
//! (a wrapped line is redrawn as junk).

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::tree::{Entry, Sink, Source, SparseRead};

/// When to draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Never,
    Auto,
    Always,
}

static WHEN: AtomicU8 = AtomicU8::new(0);

pub fn set(when: When) {
    WHEN.store(
        match when {
            When::Never => 0,
            When::Auto => 1,
            When::Always => 2,
        },
        Ordering::Relaxed,
    );
}

/// Whether bars are drawn: never on a standard error that is not a
/// terminal (a log file or a pipe gets no control sequences), whatever
/// `--progress` says.
fn enabled() -> bool {
    WHEN.load(Ordering::Relaxed) != 0 && io::stderr().is_terminal()
}

/// How long work goes unmetered before a bar appears.
const QUIET_START: Duration = Duration::from_millis(500);
/// How often a bar's figures are recomputed.
const REDRAW: Duration = Duration::from_millis(125);
/// The width of the bar itself, in cells.
const BAR_CELLS: usize = 12;

thread_local! {
    static LABEL: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The archive file being read on this thread, if its size is known.
    static READING: RefCell<Option<Rc<Position>>> = const { RefCell::new(None) };
}

/// Names the transfers made on this thread until dropped (a fetch's URI).
pub struct Label(Option<String>);

pub fn label(text: impl Into<String>) -> Label {
    Label(LABEL.with(|l| l.replace(Some(text.into()))))
}

impl Drop for Label {
    fn drop(&mut self) {
        let old = self.0.take();
        LABEL.with(|l| *l.borrow_mut() = old);
    }
}

/// How far a read of a file of known size has got.
struct Position {
    read: Cell<u64>,
    total: u64,
}

/// Counts the bytes read from a file of known size, so that the meter
/// running on this thread can show how much of it has been read.
pub struct Reading<R> {
    inner: R,
    at: Rc<Position>,
}

impl<R> Reading<R> {
    pub fn new(inner: R, total: u64) -> Reading<R> {
        Reading {
            inner,
            at: Rc::new(Position {
                read: Cell::new(0),
                total,
            }),
        }
    }
}

impl Reading<File> {
    /// A file, metered when it is a regular file (a FIFO has no size).
    pub fn file(file: File) -> io::Result<Reading<File>> {
        let meta = file.metadata()?;
        let total = if meta.is_file() { meta.len() } else { 0 };
        Ok(Reading::new(file, total))
    }
}

impl<R: Read> Read for Reading<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let at = &self.at;
        at.read.set(at.read.get().saturating_add(n as u64));
        if at.total > 0 {
            READING.with(|r| {
                let mut r = r.borrow_mut();
                if !r.as_ref().is_some_and(|cur| Rc::ptr_eq(cur, at)) {
                    *r = Some(Rc::clone(at));
                }
            });
        }
        Ok(n)
    }
}

impl<R> Drop for Reading<R> {
    fn drop(&mut self) {
        let _ = READING.try_with(|r| {
            let mut r = r.borrow_mut();
            if r.as_ref().is_some_and(|cur| Rc::ptr_eq(cur, &self.at)) {
                *r = None;
            }
        });
    }
}

/// Counts bytes and shows them once the work has lasted a while.
pub struct Meter {
    label: Option<String>,
    start: Instant,
    bytes: u64,
    entries: u64,
    /// The bytes the work will move, when known.
    total: Option<u64>,
    /// The file read this meter last showed: (position, its count when
    /// first seen, when).
    reading: Option<(Rc<Position>, u64, Instant)>,
    bar: Option<ProgressBar>,
    drawn: Option<Instant>,
}

impl Meter {
    pub fn new(label: impl Into<String>) -> Meter {
        Meter::labelled(Some(label.into()))
    }

    /// A meter named by the thread's current [`Label`], or a silent one.
    pub fn current() -> Meter {
        Meter::labelled(LABEL.with(|l| l.borrow().clone()))
    }

    fn labelled(label: Option<String>) -> Meter {
        Meter {
            label,
            start: Instant::now(),
            bytes: 0,
            entries: 0,
            total: None,
            reading: None,
            bar: None,
            drawn: None,
        }
    }

    /// The bytes the work will move (a Content-Length, a file's size).
    pub fn total(mut self, total: Option<u64>) -> Meter {
        self.total = total;
        self
    }

    pub fn add(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.tick();
    }

    pub fn entry(&mut self) {
        self.entries += 1;
        self.tick();
    }

    fn tick(&mut self) {
        if self.label.is_none() {
            return;
        }
        let now = Instant::now();
        if self.drawn.is_some_and(|d| now.duration_since(d) < REDRAW) {
            return;
        }
        if self.bar.is_none() {
            if now.duration_since(self.start) < QUIET_START || !enabled() {
                return;
            }
            // set up unseen, then shown: its first frame is a whole one
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
            self.bar = Some(bar.clone());
            self.draw(now);
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        } else {
            self.draw(now);
        }
        self.drawn = Some(now);
    }

    /// What the bar shows: (done, total, rate's bytes and time) from the
    /// file being read on this thread, or else from the bytes fed here.
    fn figures(&mut self, now: Instant) -> (u64, Option<u64>, u64, Duration) {
        let current = READING.with(|r| r.borrow().clone());
        if let Some(pos) = current {
            let seen = self
                .reading
                .as_ref()
                .is_some_and(|(p, ..)| Rc::ptr_eq(p, &pos));
            if !seen {
                // first seen now: its rate counts from here
                let base = pos.read.get();
                self.reading = Some((pos, base, now));
            }
            if let Some((pos, base, since)) = &self.reading {
                let read = pos.read.get();
                return (
                    read,
                    Some(pos.total),
                    read.saturating_sub(*base),
                    now.duration_since(*since),
                );
            }
        }
        (
            self.bytes,
            self.total,
            self.bytes,
            now.duration_since(self.start),
        )
    }

    fn draw(&mut self, now: Instant) {
        let (done, total, moved, elapsed) = self.figures(now);
        let Some(bar) = &self.bar else { return };
        let Some(label) = &self.label else { return };
        let bytes_per_sec = rate(moved, elapsed);
        let cols = terminal_width();
        let (style, figures) = match total {
            Some(total) => {
                let left = eta(done, total, bytes_per_sec)
                    .map(|d| format!(" ETA {}", clock(d)))
                    .unwrap_or_default();
                (
                    format!("{{prefix}} {{bar:{BAR_CELLS}}} {{msg}}"),
                    format!(
                        "{}/{} {}{left}",
                        HumanBytes(done.min(total)),
                        HumanBytes(total),
                        per_second(bytes_per_sec)
                    ),
                )
            }
            None => {
                let entries = match self.entries {
                    0 => String::new(),
                    1 => " 1 entry".to_string(),
                    n => format!(" {n} entries"),
                };
                (
                    "{spinner} {prefix} {msg}".to_string(),
                    format!(
                        "{} {}{entries} {}",
                        HumanBytes(done),
                        per_second(bytes_per_sec),
                        clock(elapsed)
                    ),
                )
            }
        };
        // the label gets what the figures and the bar leave of the line
        // (one cell spare: a line filling the last column wraps on some
        // terminals)
        let fixed = figures.chars().count() + BAR_CELLS + 4;
        let room = cols.saturating_sub(fixed).max(16);
        if bar.length() != total || bar.prefix().is_empty() {
            bar.set_style(
                ProgressStyle::with_template(&style)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            match total {
                Some(t) => bar.set_length(t),
                None => bar.unset_length(),
            }
        }
        bar.set_prefix(shorten(label, room));
        bar.set_position(done.min(total.unwrap_or(u64::MAX)));
        bar.set_message(figures);
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The width of the terminal on standard error, 80 when it cannot be told.
fn terminal_width() -> usize {
    rustix::termios::tcgetwinsize(io::stderr())
        .ok()
        .map(|w| usize::from(w.ws_col))
        .filter(|c| *c > 0)
        .unwrap_or(80)
}

/// Bytes per second over the whole of `elapsed`; `None` before there is
/// enough time to tell (a tenth of a second).
pub fn rate(bytes: u64, elapsed: Duration) -> Option<u64> {
    if elapsed < Duration::from_millis(100) {
        return None;
    }
    let per_sec = bytes as f64 / elapsed.as_secs_f64();
    Some(per_sec.round() as u64)
}

/// The time left to move what is left of `total` at `bytes_per_sec`.
pub fn eta(done: u64, total: u64, bytes_per_sec: Option<u64>) -> Option<Duration> {
    let r = bytes_per_sec.filter(|r| *r > 0)?;
    let left = total.saturating_sub(done);
    Some(Duration::from_secs(left.div_ceil(r)))
}

fn per_second(bytes_per_sec: Option<u64>) -> String {
    match bytes_per_sec {
        Some(r) => format!("{}/s", HumanBytes(r)),
        None => String::new(),
    }
}

/// `m:ss`, or `h:mm:ss` from an hour on.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// `text` in at most `width` characters: when longer, its middle is
/// replaced by `…`, keeping more of the end (a path's or URI's file name)
/// than of the start.
pub fn shorten(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let keep = width - 1;
    let head = keep * 2 / 5;
    let tail = keep - head;
    let mut out: String = text.chars().take(head).collect();
    out.push('…');
    out.extend(text.chars().skip(n - tail));
    out
}

/// Streams `src` into `sink`, metered under `label`: a bar for the bytes
/// read when `src` reads an archive file of known size, else a count of
/// entries and bytes.
pub fn emit(src: &mut dyn Source, sink: &mut dyn Sink, label: String) -> io::Result<()> {
    src.emit(&mut MeteredSink {
        inner: sink,
        meter: Meter::new(label),
    })
}

/// A sink that meters the file content passing through to `inner`.
pub struct MeteredSink<'a> {
    pub inner: &'a mut dyn Sink,
    pub meter: Meter,
}

impl Sink for MeteredSink<'_> {
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> io::Result<()> {
        self.meter.entry();
        let mut counted = Counted {
            inner: data,
            meter: &mut self.meter,
        };
        self.inner.put(entry, &mut counted)
    }

    fn put_sparse(&mut self, entry: &Entry, data: &mut dyn SparseRead) -> io::Result<()> {
        self.meter.entry();
        let mut counted = Counted {
            inner: data,
            meter: &mut self.meter,
        };
        self.inner.put_sparse(entry, &mut counted)
    }
}

struct Counted<'a, 'b, R: ?Sized> {
    inner: &'a mut R,
    meter: &'b mut Meter,
}

impl<R: Read + ?Sized> Read for Counted<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add(n as u64);
        Ok(n)
    }
}

impl<R: SparseRead + ?Sized> SparseRead for Counted<'_, '_, R> {
    /// A hole is skipped, not moved: it adds nothing to the bytes counted,
    /// or a sparse file would claim a rate of gigabytes per second.
    fn skip_hole(&mut self) -> io::Result<u64> {
        let n = self.inner.skip_hole()?;
        self.meter.tick();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(shorten("fetching http://h/a", 40), "fetching http://h/a");
        assert_eq!(shorten("abc", 3), "abc");
    }

    #[test]
    fn long_text_loses_its_middle() {
        let uri = "fetching http://mirror.example.org/debian/dists/bookworm/main/installer-amd64/current/images/netboot/debian-installer/amd64/initrd.gz";
        for width in [16, 30, 57, 80] {
            let s = shorten(uri, width);
            assert_eq!(s.chars().count(), width, "{s}");
            assert!(s.contains('…'), "{s}");
            assert!(s.starts_with("fetch"), "{s}");
            assert!(s.ends_with("initrd.gz"), "{s}");
        }
        // characters, not bytes: a name in UTF-8 is not cut inside a char
        let s = shorten(
            "écrire /srv/données/été/très-long-chemin/fichier.tar.xz",
            24,
        );
        assert_eq!(s.chars().count(), 24, "{s}");
        assert!(s.ends_with("fichier.tar.xz"), "{s}");
        assert_eq!(shorten("abcdef", 1), "…");
        assert_eq!(shorten("abcdef", 0), "");
    }

    #[test]
    fn rate_is_bytes_over_wall_time() {
        // 10 MiB in 4 s is 2.5 MiB/s, whatever the size of each read
        assert_eq!(rate(10 << 20, Duration::from_secs(4)), Some(2_621_440));
        // a first burst of 8 MiB after 200 ms is 40 MiB/s, not 8 MiB per
        // microsecond tick
        assert_eq!(rate(8 << 20, Duration::from_millis(200)), Some(41_943_040));
        // too early to tell
        assert_eq!(rate(1 << 30, Duration::from_millis(5)), None);
        assert_eq!(
            per_second(rate(3 << 20, Duration::from_secs(2))),
            "1.50 MiB/s"
        );
    }

    #[test]
    fn time_left_follows_the_rate() {
        assert_eq!(eta(25, 100, Some(5)), Some(Duration::from_secs(15)));
        assert_eq!(eta(99, 100, Some(1000)), Some(Duration::from_secs(1)));
        assert_eq!(eta(100, 100, Some(5)), Some(Duration::ZERO));
        assert_eq!(eta(0, 100, None), None);
        assert_eq!(eta(0, 100, Some(0)), None);
        assert_eq!(clock(Duration::from_secs(67)), "1:07");
        assert_eq!(clock(Duration::from_secs(3 * 3600 + 61)), "3:01:01");
    }

    #[test]
    fn a_file_being_read_is_what_the_meter_shows() {
        let data = vec![7u8; 1000];
        let mut r = Reading::new(&data[..], 1000);
        let mut buf = [0u8; 300];
        r.read_exact(&mut buf).unwrap();
        let mut m = Meter::new("reading x");
        m.add(5000);
        let (done, total, ..) = m.figures(Instant::now());
        assert_eq!((done, total), (300, Some(1000)));
        drop(r);
        // once the file is closed, the meter's own count again
        let (done, total, ..) = m.figures(Instant::now());
        assert_eq!((done, total), (5000, None));
        let mut m = Meter::new("fetching").total(Some(77));
        m.add(7);
        assert_eq!(m.figures(Instant::now()).1, Some(77));
    }
}
