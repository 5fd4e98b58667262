//! A comparable summary of a whole tree: what "identical trees" means.
//!
//! Two trees are identical when their manifests are equal: same paths, and
//! for each the type, permission bits, uid, gid, mtime, size, content
//! digest, symlink target, device numbers, extended attributes and
//! hard-link group.

use super::{Entry, Kind, Meta, Sink, Source, TreePath, Xattrs};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read};

/// What a manifest records of one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// `file`, `directory`, ... as in [`Kind::name`]; hard links are `file`.
    pub kind: &'static str,
    pub meta: Meta,
    pub size: u64,
    /// SHA-256 of the content, hex; empty for non-files.
    pub sha256: String,
    pub symlink: Option<Vec<u8>>,
    pub device: Option<(u32, u32)>,
    /// Extended attributes, sorted by name.
    pub xattrs: Xattrs,
    /// The smallest path of this path's hard-link group, when it has more
    /// than one name.
    pub link_group: Option<TreePath>,
}

/// Path → record. The root directory appears as the empty path when the
/// source emitted it.
pub type Manifest = BTreeMap<TreePath, Record>;

/// Builds a [`Manifest`] from a [`Source`].
pub fn manifest(source: &mut dyn Source) -> io::Result<Manifest> {
    let mut b = Builder::default();
    source.emit(&mut b)?;
    Ok(b.finish())
}

/// A sink that builds a manifest.
#[derive(Default)]
pub struct Builder {
    records: Manifest,
    // hard link name -> target name
    links: Vec<(TreePath, TreePath)>,
}

impl Builder {
    pub fn finish(mut self) -> Manifest {
        // Group every hard link with its target, naming the group by its
        // smallest path so that stream order does not matter.
        let mut groups: BTreeMap<TreePath, Vec<TreePath>> = BTreeMap::new();
        for (name, target) in &self.links {
            let mut root = target.clone();
            // a link may point at another link
            while let Some((_, t)) = self.links.iter().find(|(n, _)| *n == root) {
                root = t.clone();
            }
            groups.entry(root).or_default().push(name.clone());
        }
        for (target, names) in groups {
            let Some(rec) = self.records.get(&target).cloned() else {
                continue;
            };
            let smallest = names.iter().fold(&target, |m, n| m.min(n)).clone();
            for n in names.iter().chain(Some(&target)) {
                let mut r = rec.clone();
                r.link_group = Some(smallest.clone());
                self.records.insert(n.clone(), r);
            }
        }
        self.records
    }
}

impl Sink for Builder {
    fn put(&mut self, entry: &Entry, data: &mut dyn Read) -> io::Result<()> {
        let mut rec = Record {
            kind: entry.kind.name(),
            meta: entry.meta,
            size: 0,
            sha256: String::new(),
            symlink: None,
            device: None,
            xattrs: entry.xattrs.clone(),
            link_group: None,
        };
        match &entry.kind {
            Kind::File { .. } => {
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 64 * 1024];
                let mut n = 0u64;
                loop {
                    let k = data.read(&mut buf)?;
                    if k == 0 {
                        break;
                    }
                    h.update(&buf[..k]);
                    n += k as u64;
                }
                rec.size = n;
                rec.sha256 = hex(&h.finalize());
            }
            Kind::Symlink { target } => {
                rec.size = target.len() as u64;
                rec.symlink = Some(target.clone());
            }
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                rec.device = Some((*major, *minor));
            }
            Kind::HardLink { target } => {
                self.links.push((entry.path.clone(), target.clone()));
                return Ok(());
            }
            Kind::Dir | Kind::Fifo | Kind::Socket => {}
        }
        self.records.insert(entry.path.clone(), rec);
        Ok(())
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The differences between two manifests, one line each, for test failures.
pub fn differences(a: &Manifest, b: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    for (p, ra) in a {
        match b.get(p) {
            None => out.push(format!("{p}: only in first")),
            Some(rb) if ra != rb => out.push(format!("{p}: {ra:?} != {rb:?}")),
            _ => {}
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) {
            out.push(format!("{p}: only in second"));
        }
    }
    out
}
