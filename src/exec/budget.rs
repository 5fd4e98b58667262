//! A sink that stops expanding a tree into a host directory before the
//! file system fills.

use std::path::Path;

/// Expanding into a host directory stops before the file system fills: a
/// decompression bomb (a few MB of gzip that expand to terabytes) must not
/// take the disk from everything else on it. The budget is the target's
/// [`crate::hostdir::Room`]; every entry counts one block besides its
/// content.
pub struct Budget<'a> {
    inner: &'a mut dyn crate::tree::Sink,
    counter: Counter,
}

struct Counter {
    left: u64,
    room: crate::hostdir::Room,
}

impl<'a> Budget<'a> {
    pub fn for_target(
        target: &Path,
        inner: &'a mut dyn crate::tree::Sink,
    ) -> std::io::Result<Budget<'a>> {
        let room = crate::hostdir::Room::of(target)?;
        Ok(Budget {
            inner,
            counter: Counter {
                left: room.usable,
                room,
            },
        })
    }
}

impl Counter {
    fn spend(&mut self, n: u64) -> std::io::Result<()> {
        match self.left.checked_sub(n) {
            Some(l) => {
                self.left = l;
                Ok(())
            }
            None => Err(std::io::Error::other(format!(
                "stopped: the tree would fill {}",
                self.room.describe()
            ))),
        }
    }
}

impl crate::tree::Sink for Budget<'_> {
    fn put(
        &mut self,
        entry: &crate::tree::Entry,
        data: &mut dyn std::io::Read,
    ) -> std::io::Result<()> {
        let Budget { inner, counter } = self;
        counter.spend(4096)?;
        inner.put(entry, &mut Spent { data, counter })
    }
}

struct Spent<'a> {
    data: &'a mut dyn std::io::Read,
    counter: &'a mut Counter,
}

impl std::io::Read for Spent<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.read(buf)?;
        self.counter.spend(n as u64)?;
        Ok(n)
    }
}
