//! `--log FILE`: a plain-text record of every action, appended.

use super::{Error, Result};
use crate::date::civil_from_days;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// An append-only log; without `--log` every line is dropped.
pub struct Log {
    file: Option<(File, PathBuf)>,
    /// `-v`: every line also goes to standard error.
    pub echo: bool,
}

impl Log {
    pub fn open(path: Option<&Path>) -> Result<Log> {
        let file = match path {
            None => None,
            Some(p) => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| Error::usage(format!("--log {}: {e}", p.display())))?;
                Some((f, p.to_path_buf()))
            }
        };
        Ok(Log { file, echo: false })
    }

    /// Appends `TIME MESSAGE`; the time is UTC seconds in RFC 3339 form.
    pub fn line(&mut self, message: &str) -> Result<()> {
        if self.echo {
            eprintln!("{message}");
        }
        let Some((f, p)) = &mut self.file else {
            return Ok(());
        };
        let line = format!("{} {message}\n", rfc3339(now()));
        f.write_all(line.as_bytes())
            .map_err(|e| Error::run(format!("--log {}: {e}", p.display())))
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86400), t.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
