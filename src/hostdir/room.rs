//! How much a file system can still take: what it has free, less a
//! reserve kept for everything else on it. Expanding a tree into a host
//! directory and receiving a download both stop there, so a decompression
//! bomb or an endless body ends with a message instead of a full disk.

use std::io;
use std::path::{Path, PathBuf};

/// The space a writer may use on the file system holding a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Room {
    pub dir: PathBuf,
    /// Bytes free for unprivileged writers when measured.
    pub available: u64,
    /// `available` less the reserve: 5% of the file system's size, at most
    /// 1 GiB.
    pub usable: u64,
}

impl Room {
    pub fn of(dir: &Path) -> io::Result<Room> {
        let st = rustix::fs::statvfs(dir)?;
        let available = st.f_bavail.saturating_mul(st.f_frsize);
        let size = st.f_blocks.saturating_mul(st.f_frsize);
        let reserve = (size / 20).min(1 << 30);
        Ok(Room {
            dir: dir.to_path_buf(),
            available,
            usable: available.saturating_sub(reserve),
        })
    }

    /// What a writer stopped at, for messages: "the file system of DIR
    /// (N bytes were free; 5% is kept in reserve)".
    pub fn describe(&self) -> String {
        format!(
            "the file system of {} ({} bytes were free; 5% is kept in reserve)",
            self.dir.display(),
            self.available
        )
    }
}
