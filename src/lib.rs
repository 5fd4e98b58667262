//! vm-container: compiles Xen domain container files into ready domains.
//!
//! Layers, dependencies pointing one way (down this list):
//! - `exec`: the only layer that orchestrates I/O;
//! - `parser` (pure): container text → syntax tree → checked plan;
//! - format and transport modules that know nothing about containers:
//!   `xen` (Xen config syntax), `uri`, `tree` (the file-system tree model),
//!   `oci` (OCI images as trees).

pub mod archive;
pub mod block;
pub mod boot;
pub mod bytes;
pub mod cache;
pub mod cpio;
pub mod date;
pub mod diff;
pub mod digest;
pub mod exec;
pub mod ext;
pub mod hostdir;
pub mod oci;
pub mod parser;
pub mod progress;
pub mod sign;
pub mod swap;
pub mod transport;
pub mod tree;
pub mod uri;
pub mod xen;
