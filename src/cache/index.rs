//! The per-URI index record: a small line-oriented text file
//! (`key value` per line), so it can be read and repaired by hand.

use crate::transport::{Digest, Validators};

const MAGIC: &str = "vm-container-cache-index 1";

/// What the cache knows about one URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The URI as displayed (password hidden, pin removed).
    pub uri: String,
    pub sha256: Digest,
    pub size: u64,
    /// Seconds since the epoch of the last successful download or revalidation.
    pub validated: u64,
    pub validators: Option<Validators>,
}

/// Values are single lines; anything else cannot round-trip and is dropped.
fn line_safe(v: &str) -> bool {
    !v.contains(['\n', '\r'])
}

impl IndexEntry {
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{MAGIC}\nuri {}\nsha256 {}\nsize {}\nvalidated {}\n",
            self.uri.replace(['\n', '\r'], " "),
            self.sha256,
            self.size,
            self.validated
        );
        match &self.validators {
            None => {}
            Some(Validators::Http {
                etag,
                last_modified,
            }) => {
                out.push_str("kind http\n");
                if let Some(v) = etag.as_deref().filter(|v| line_safe(v)) {
                    out.push_str(&format!("etag {v}\n"));
                }
                if let Some(v) = last_modified.as_deref().filter(|v| line_safe(v)) {
                    out.push_str(&format!("last-modified {v}\n"));
                }
            }
            Some(Validators::Ftp { mdtm, size }) => {
                out.push_str("kind ftp\n");
                if let Some(v) = mdtm.as_deref().filter(|v| line_safe(v)) {
                    out.push_str(&format!("mdtm {v}\n"));
                }
                if let Some(v) = size {
                    out.push_str(&format!("remote-size {v}\n"));
                }
            }
            Some(Validators::File {
                mtime,
                mtime_nsec,
                size,
            }) => {
                out.push_str(&format!(
                    "kind file\nmtime {mtime}\nmtime-nsec {mtime_nsec}\nfile-size {size}\n"
                ));
            }
        }
        out
    }

    /// Parses a record; `None` for anything malformed (the entry is then
    /// treated as absent and refetched).
    pub fn from_text(text: &str) -> Option<IndexEntry> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut uri = None;
        let mut sha256 = None;
        let mut size = None;
        let mut validated = None;
        let mut kind = None;
        let (mut etag, mut last_modified, mut mdtm) = (None, None, None);
        let (mut remote_size, mut mtime, mut mtime_nsec, mut file_size) = (None, None, None, None);
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "uri" => uri = Some(value.to_string()),
                "sha256" => sha256 = Some(Digest::from_hex(value)?),
                "size" => size = Some(value.parse::<u64>().ok()?),
                "validated" => validated = Some(value.parse::<u64>().ok()?),
                "kind" => kind = Some(value.to_string()),
                "etag" => etag = Some(value.to_string()),
                "last-modified" => last_modified = Some(value.to_string()),
                "mdtm" => mdtm = Some(value.to_string()),
                "remote-size" => remote_size = Some(value.parse::<u64>().ok()?),
                "mtime" => mtime = Some(value.parse::<i64>().ok()?),
                "mtime-nsec" => mtime_nsec = Some(value.parse::<i64>().ok()?),
                "file-size" => file_size = Some(value.parse::<u64>().ok()?),
                "" => {}
                _ => return None,
            }
        }
        let validators = match kind.as_deref() {
            None => None,
            Some("http") => Some(Validators::Http {
                etag,
                last_modified,
            }),
            Some("ftp") => Some(Validators::Ftp {
                mdtm,
                size: remote_size,
            }),
            Some("file") => Some(Validators::File {
                mtime: mtime?,
                mtime_nsec: mtime_nsec?,
                size: file_size?,
            }),
            Some(_) => return None,
        };
        Some(IndexEntry {
            uri: uri?,
            sha256: sha256?,
            size: size?,
            validated: validated?,
            validators,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        let base = IndexEntry {
            uri: "ftp://u:***@h/x".into(),
            sha256: Digest([7; 32]),
            size: 12,
            validated: 1_700_000_000,
            validators: None,
        };
        for v in [
            None,
            Some(Validators::Http {
                etag: Some("W/\"a b\"".into()),
                last_modified: Some("Tue, 15 Nov 1994 08:12:31 GMT".into()),
            }),
            Some(Validators::Http {
                etag: None,
                last_modified: Some("x".into()),
            }),
            Some(Validators::Ftp {
                mdtm: Some("2024-01-02 03:04:05".into()),
                size: Some(9),
            }),
            Some(Validators::File {
                mtime: -5,
                mtime_nsec: 999,
                size: 0,
            }),
        ] {
            let e = IndexEntry {
                validators: v,
                ..base.clone()
            };
            assert_eq!(IndexEntry::from_text(&e.to_text()), Some(e));
        }
        assert_eq!(IndexEntry::from_text("garbage"), None);
        let truncated = base.to_text().replace("size 12\n", "");
        assert_eq!(IndexEntry::from_text(&truncated), None);
    }
}
