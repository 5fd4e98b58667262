//! Reading a container file and turning it into a plan.

use super::{Error, Result};
use crate::parser::{self, plan::Plan, World};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A container file read, parsed and checked.
pub struct Loaded {
    /// How to name the file in messages (`-` is `<stdin>`).
    pub name: String,
    pub text: String,
    pub plan: Plan,
    pub base_dir: PathBuf,
    /// What checks but likely does not do what was meant, rendered with
    /// its location.
    pub warnings: Vec<String>,
}

/// The host as the analysis sees it.
pub struct HostWorld;

impl World for HostWorld {
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn is_ext_image(&self, path: &Path) -> bool {
        // a raw or qcow2 volume, read through the block layer
        let Ok(dev) = crate::block::open(path, false) else {
            return false;
        };
        // the superblock starts at byte 1024; s_magic is at offset 56
        let mut magic = [0u8; 2];
        dev.read_at(1024 + 56, &mut magic).is_ok() && magic == [0x53, 0xef]
    }

    fn is_qcow2(&self, path: &Path) -> bool {
        use std::os::unix::fs::FileExt;
        let Ok(f) = std::fs::File::open(path) else {
            return false;
        };
        let mut magic = [0u8; 4];
        f.read_exact_at(&mut magic, 0).is_ok() && magic == *b"QFI\xfb"
    }
}

/// Reads the raw bytes of a container (`-` = standard input).
pub fn read_bytes(file: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Error::usage(format!("<stdin>: cannot read: {e}")))?;
    } else {
        bytes =
            std::fs::read(file).map_err(|e| Error::usage(format!("{file}: cannot read: {e}")))?;
    }
    Ok(bytes)
}

/// Reads, parses and analyzes a container file. Every error is rendered
/// with its location; the failure's exit status is 2.
pub fn load(file: &str, set: &[(String, String)]) -> Result<Loaded> {
    let bytes = read_bytes(file)?;
    load_bytes(file, bytes, set)
}

pub fn load_bytes(file: &str, bytes: Vec<u8>, set: &[(String, String)]) -> Result<Loaded> {
    let name = if file == "-" {
        "<stdin>".to_string()
    } else {
        file.to_string()
    };
    let base_dir = if file == "-" {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
    } else {
        let p = Path::new(file);
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .unwrap_or_else(|_| PathBuf::from("/"))
                .join(p)
        };
        abs.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"))
    };
    let text = match parser::decode(&bytes) {
        Ok(t) => t.to_string(),
        Err(d) => {
            let shown = String::from_utf8_lossy(&bytes).into_owned();
            return Err(Error::diagnostics(
                d.render(&name, &shown).trim_end().to_string(),
            ));
        }
    };
    let parsed = parser::parse(&text);
    let opts = parser::Options {
        set: set.to_vec(),
        base_dir: base_dir.clone(),
    };
    let analyzed = parser::analyze(&parsed.container, &text, &opts, &HostWorld);
    let mut diags = parsed.errors;
    let plan = match analyzed {
        Ok(plan) if diags.is_empty() => Some(plan),
        Ok(_) => None,
        Err(more) => {
            diags.extend(more);
            None
        }
    };
    match plan {
        Some(plan) => {
            let warnings =
                parser::lint::warnings(&parsed.container, &text, &opts, &plan, &HostWorld)
                    .iter()
                    .map(|d| d.render_as("warning", &name, &text))
                    .collect();
            Ok(Loaded {
                name,
                text,
                plan,
                base_dir,
                warnings,
            })
        }
        None => {
            diags.sort_by_key(|d| d.span.offset);
            diags.dedup();
            let n = diags.len();
            let mut msg: String = diags.iter().map(|d| d.render(&name, &text)).collect();
            msg.push_str(&format!(
                "{name}: {n} error{} found; nothing was run",
                if n == 1 { "" } else { "s" }
            ));
            Err(Error::diagnostics(msg))
        }
    }
}
