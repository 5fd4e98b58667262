//! Progress on standard error for long transfers and image writes.
//!
//! Nothing here knows what is being moved: code that copies bytes asks for
//! a [`Meter`] and feeds it counts. A meter draws only when progress is on
//! (`--progress always`, or `auto` with standard error a terminal) and only
//! once its work has taken half a second, so short runs and hooks stay
//! silent.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::RefCell;
use std::io::{self, IsTerminal, Read};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::tree::{Entry, Sink, SparseRead};

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

fn enabled() -> bool {
    match WHEN.load(Ordering::Relaxed) {
        2 => true,
        1 => io::stderr().is_terminal(),
        _ => false,
    }
}

thread_local! {
    static LABEL: RefCell<Option<String>> = const { RefCell::new(None) };
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

/// Counts bytes and shows them once the work has lasted a while.
pub struct Meter {
    label: Option<String>,
    start: Instant,
    bytes: u64,
    entries: u64,
    bar: Option<ProgressBar>,
}

impl Meter {
    pub fn new(label: impl Into<String>) -> Meter {
        Meter {
            label: Some(label.into()),
            start: Instant::now(),
            bytes: 0,
            entries: 0,
            bar: None,
        }
    }

    /// A meter named by the thread's current [`Label`], or a silent one.
    pub fn current() -> Meter {
        Meter {
            label: LABEL.with(|l| l.borrow().clone()),
            start: Instant::now(),
            bytes: 0,
            entries: 0,
            bar: None,
        }
    }

    pub fn add(&mut self, bytes: u64) {
        self.bytes += bytes;
        self.tick();
    }

    pub fn entry(&mut self) {
        self.entries += 1;
        self.tick();
    }

    fn tick(&mut self) {
        if self.bar.is_none() {
            let Some(label) = &self.label else { return };
            if self.start.elapsed() < Duration::from_millis(500) || !enabled() {
                return;
            }
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec}) {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(label.clone());
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(self.bytes);
            if self.entries > 0 {
                if let Some(label) = &self.label {
                    bar.set_message(format!("{label} ({} entries)", self.entries));
                }
            }
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
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
    fn skip_hole(&mut self) -> io::Result<u64> {
        let n = self.inner.skip_hole()?;
        self.meter.add(n);
        Ok(n)
    }
}
