//! An OCI image layout on disk: `oci-layout`, `index.json` and
//! `blobs/sha256/HEX`. Blobs are read in place, each checked against its
//! digest and size before it is used.

use super::spec::{Descriptor, REF_NAME};
use super::{read_limited, Fault, MAX_DOCUMENT};
use crate::digest::Digest;
use std::fs::File;
use std::path::{Path, PathBuf};

pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub fn open(dir: &Path) -> Result<Layout, Fault> {
        let marker = dir.join("oci-layout");
        let text = read_limited(
            File::open(&marker).map_err(|e| {
                Fault::new(format!(
                    "not an OCI image layout ({}: {e})",
                    marker.display()
                ))
            })?,
            MAX_DOCUMENT,
            "oci-layout",
        )?;
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| Fault::new(format!("oci-layout: {e}")))?;
        match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some(version) if version.starts_with("1.") => {}
            other => {
                return Err(Fault::new(format!(
                    "oci-layout: unsupported imageLayoutVersion {other:?} (1.x is read)"
                )))
            }
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    /// `index.json`, the root of the layout.
    pub fn index(&self) -> Result<Vec<u8>, Fault> {
        let path = self.dir.join("index.json");
        let f = File::open(&path).map_err(|e| Fault::new(format!("index.json: {e}")))?;
        read_limited(f, MAX_DOCUMENT, "index.json")
    }

    /// The path of the blob `d` names, after checking its content.
    pub fn blob(&self, d: &Descriptor) -> Result<PathBuf, Fault> {
        let digest = super::sha256_of(d)?;
        let path = self.dir.join("blobs").join("sha256").join(digest.to_hex());
        let (actual, bytes) =
            Digest::of_file(&path).map_err(|e| Fault::new(format!("blob {}: {e}", d.digest)))?;
        super::check_blob(d, &digest, actual, bytes)?;
        Ok(path)
    }

    /// A small blob (a manifest, a config) read whole, after its check.
    pub fn document(&self, d: &Descriptor) -> Result<Vec<u8>, Fault> {
        if d.size > MAX_DOCUMENT {
            return Err(super::too_large(d));
        }
        let path = self.blob(d)?;
        let f = File::open(&path).map_err(|e| Fault::new(format!("blob {}: {e}", d.digest)))?;
        let bytes = read_limited(f, MAX_DOCUMENT, &d.digest)?;
        // read again: the file may have changed since it was checked
        super::check_blob(
            d,
            &super::sha256_of(d)?,
            super::digest_bytes(&bytes),
            bytes.len() as u64,
        )?;
        Ok(bytes)
    }
}

/// The descriptor of `index.json` that `tag` names; without a tag, the
/// only image, or the one tagged `latest`.
pub fn pick_tagged<'a>(
    manifests: &'a [Descriptor],
    tag: Option<&str>,
) -> Result<&'a Descriptor, Fault> {
    let name = |d: &Descriptor| d.annotations.get(REF_NAME).cloned();
    let tags = || {
        let names: Vec<String> = manifests.iter().filter_map(name).collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    match tag {
        Some(t) => manifests
            .iter()
            .find(|d| name(d).as_deref() == Some(t))
            .ok_or_else(|| Fault::new(format!("no image tagged `{t}` (tags: {})", tags()))),
        None => match manifests {
            [only] => Ok(only),
            [] => Err(Fault::new("index.json lists no image")),
            _ => manifests
                .iter()
                .find(|d| name(d).as_deref() == Some("latest"))
                .ok_or_else(|| {
                    Fault::new(format!(
                        "index.json lists several images and none is tagged `latest`: name one with oci:DIR:TAG (tags: {})",
                        tags()
                    ))
                }),
        },
    }
}
