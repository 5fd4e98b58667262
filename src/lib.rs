//! vm-container: compiles Xen domain container files into ready domains.
//!
//! Layers, dependencies pointing down only:
//! - `parser` (pure): container text → AST → validated plan;
//! - `exec`: the only layer that orchestrates I/O;
//! - format modules (`tree`, ...) that know nothing about containers.

pub mod tree;
