//! The integration tests, in one binary: each module is one area of the
//! tool, driven through its library API or its binary, against real
//! oracles (GNU cpio, tar, diff and patch, e2fsck, debugfs, the kernel's
//! ext4 driver, libxlutil, QEMU, signify, minisign, HTTP and FTP servers on
//! 127.0.0.1). One binary links the library once instead of once per area.
//!
//! Run one area with `cargo test --test it AREA::` (for example
//! `cargo test --test it run_trees::`). The tiers are described in
//! `common/mod.rs`.

// Helpers shared by the areas.
mod common;
mod cpio_common;
mod diff_common;
mod ext_common;
mod net;

mod boot;
mod cache_ftp;
mod cache_http;
mod cache_process;
mod cli;
mod clones;
mod cpio_gnu;
mod cpio_hostile;
mod diff_gnu_agreement;
mod diff_oracle;
mod diff_prop;
mod dir_sources;
mod edits_pass;
mod ext4_inplace;
mod ext4_tree;
mod ext4_update;
mod ext4_write;
mod ext_corrupt;
mod ext_delete;
mod ext_populate;
mod ext_proptest;
mod ext_read;
mod ext_safety;
mod ext_write;
mod grammar;
mod hook_script;
mod hostdir_extract;
mod hostile;
mod install;
mod layering;
mod net_limits;
mod oci_sources;
mod parser_props;
mod progress;
mod qcow2;
mod run_changes;
mod run_commit;
mod run_dates;
mod run_device;
mod run_dirmeta;
mod run_faults;
mod run_holders;
mod run_hooks;
mod run_inplace_order;
mod run_messages;
mod run_outputs;
mod run_paper;
mod run_signatures;
mod run_trees;
mod run_uptodate;
mod sign_oracles;
mod sign_proptest;
mod swap;
mod tar_matrix;
mod tar_outputs;
mod tar_sources;
mod template_bounds;
mod transport_file;
mod transport_ftp;
mod transport_http;
mod xattrs;
mod xen_conformance;
