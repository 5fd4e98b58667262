//! Working trees: an archive as fetched plus the changes this run made.
//!
//! The archive itself is never expanded to disk, and a host directory
//! named as a source is never written. A working tree keeps the cached
//! archive (or the directory) as its base and an *overlay* of changed
//! paths (small: the files a container replaces, copies or patches).
//! Reading the tree streams the base and substitutes the overlay on the
//! way, so a fork, a populate or a diff costs one pass over the archive
//! and memory in proportion to the changes, not to the archive.

use crate::parser::plan::DirMeta;
use crate::tree::{Entry, Kind, Meta, Sink, Source, SparseRead, TreePath};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The content of a changed regular file.
#[derive(Clone, Debug)]
pub enum Content {
    Bytes(Vec<u8>),
    /// A file on the host (a fetched copy source), read when emitted.
    File(PathBuf),
}

impl Content {
    fn len(&self) -> io::Result<u64> {
        match self {
            Content::Bytes(b) => Ok(b.len() as u64),
            Content::File(p) => Ok(std::fs::metadata(p)?.len()),
        }
    }

    fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        match self {
            Content::Bytes(b) => Ok(Box::new(&b[..])),
            Content::File(p) => Ok(Box::new(File::open(p)?)),
        }
    }

    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        match self {
            Content::Bytes(b) => Ok(b.clone()),
            Content::File(p) => std::fs::read(p),
        }
    }
}

/// One changed path.
#[derive(Clone, Debug)]
pub enum Change {
    /// The entry as it is now; `content` for regular files.
    Put {
        entry: Entry,
        content: Option<Content>,
    },
    Delete,
}

/// The overlay: changed paths in order.
pub type Overlay = BTreeMap<TreePath, Change>;

/// Why a change cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{path}: `{parent}` is a {kind} in the tree, not a directory")]
    ParentNotDir {
        path: String,
        parent: String,
        kind: &'static str,
    },
    #[error("{path} is a directory in the tree; only files can be replaced")]
    IsDir { path: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// An archive's working tree.
pub struct WorkTree {
    /// How messages name the tree (its URI).
    pub name: String,
    /// The archive file the tree starts from; `None` for an empty tree.
    pub base: Option<PathBuf>,
    /// Base entries looked up so far (`None`: not in the archive). Only
    /// paths asked about are kept, so an edit of one file in an archive
    /// of millions costs memory for that file, not for the archive.
    known: HashMap<TreePath, Option<Entry>>,
    /// Paths that will be asked about, found together in the next pass.
    wanted: BTreeSet<TreePath>,
    /// Passes made over the base to answer lookups.
    pub scans: usize,
    pub overlay: Overlay,
    /// The mtime given to what this run creates.
    pub now: i64,
    /// The mode and owner of the directories made for the paths put
    /// (0755 0:0 where unset).
    pub new_dirs: DirMeta,
}

/// Opens a tree source: an archive of any format [`crate::archive`]
/// reads, or a host directory (a debootstrap chroot), which is read and
/// never written, on its own file system only.
pub fn archive_source(path: &Path, name: &str) -> io::Result<Box<dyn Source>> {
    if path.is_dir() {
        return Ok(Box::new(
            crate::hostdir::Walker::new(path).one_file_system(),
        ));
    }
    let f = File::open(path)
        .and_then(crate::progress::Reading::file)
        .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
    Ok(Box::new(crate::archive::open(f, name)?))
}

impl WorkTree {
    pub fn new(name: String, base: Option<PathBuf>, now: i64) -> WorkTree {
        WorkTree {
            name,
            base,
            known: HashMap::new(),
            wanted: BTreeSet::new(),
            scans: 0,
            overlay: Overlay::new(),
            now,
            new_dirs: DirMeta::default(),
        }
    }

    pub fn modified(&self) -> bool {
        !self.overlay.is_empty()
    }

    /// Says that `paths` (and their ancestors) will be looked up, so that
    /// one pass over the base answers them all.
    pub fn expect_lookups(&mut self, paths: impl IntoIterator<Item = TreePath>) {
        for p in paths {
            let mut cur = Some(p);
            while let Some(p) = cur {
                if p.is_root() || self.known.contains_key(&p) || self.wanted.contains(&p) {
                    break;
                }
                cur = p.parent();
                self.wanted.insert(p);
            }
        }
    }

    /// The base entry at `path`; a path not known yet is found in one
    /// pass over the archive together with every path expected so far.
    fn base_lookup(&mut self, path: &TreePath) -> io::Result<Option<Entry>> {
        if let Some(e) = self.known.get(path) {
            return Ok(e.clone());
        }
        self.expect_lookups([path.clone()]);
        let wanted = std::mem::take(&mut self.wanted);
        let mut found = HashMap::new();
        if let Some(base) = &self.base {
            let mut src = archive_source(base, &self.name)?;
            let mut sink = crate::tree::FnSink(|e: &Entry, _: &mut dyn Read| {
                // a path the archive names twice: the later entry wins,
                // as when the archive is expanded
                if wanted.contains(&e.path) {
                    found.insert(e.path.clone(), e.clone());
                }
                Ok(())
            });
            crate::progress::emit(&mut *src, &mut sink, format!("looking in {}", self.name))?;
            self.scans += 1;
        }
        for p in wanted {
            let e = found.remove(&p);
            self.known.insert(p, e);
        }
        Ok(self.known.get(path).cloned().flatten())
    }

    /// The entry at `path` as the tree stands now (hard links resolved to
    /// their target's metadata).
    pub fn lookup(&mut self, path: &TreePath) -> io::Result<Option<Entry>> {
        if path.is_root() {
            return Ok(Some(Entry {
                path: TreePath::root(),
                kind: Kind::Dir,
                meta: Meta::implicit_dir(),
                xattrs: Default::default(),
            }));
        }
        match self.overlay.get(path) {
            Some(Change::Put { entry, .. }) => return Ok(Some(entry.clone())),
            Some(Change::Delete) => return Ok(None),
            None => {}
        }
        self.base_lookup(path)
    }

    /// Makes sure every ancestor of `path` is a directory, creating missing
    /// ones as [`WorkTree::new_dirs`] says (0755 root-owned by default). A
    /// symlink on the way is refused: writing through it would put the file
    /// somewhere else than the path says.
    fn ensure_parents(&mut self, path: &TreePath) -> Result<(), TreeError> {
        // the path itself is looked up next: one pass finds it and its
        // ancestors
        self.expect_lookups([path.clone()]);
        let mut missing = Vec::new();
        let mut cur = path.parent();
        while let Some(p) = cur {
            if p.is_root() {
                break;
            }
            match self.lookup(&p)? {
                Some(e) if e.kind == Kind::Dir => break,
                Some(e) => {
                    return Err(TreeError::ParentNotDir {
                        path: path.display_abs(),
                        parent: p.display_abs(),
                        kind: e.kind.name(),
                    })
                }
                None => missing.push(p.clone()),
            }
            cur = p.parent();
        }
        for p in missing {
            let entry = Entry {
                path: p.clone(),
                kind: Kind::Dir,
                meta: Meta {
                    perm: self.new_dirs.mode.unwrap_or(0o755),
                    uid: self.new_dirs.owner.map_or(0, |(u, _)| u),
                    gid: self.new_dirs.owner.map_or(0, |(_, g)| g),
                    mtime: self.now,
                },
                xattrs: Default::default(),
            };
            self.overlay.insert(
                p,
                Change::Put {
                    entry,
                    content: None,
                },
            );
        }
        Ok(())
    }

    /// Puts a regular file. An existing regular file keeps its mode and
    /// owner unless `perm`/`owner` say otherwise; a new one gets 0644 0:0.
    pub fn put_file(
        &mut self,
        path: &TreePath,
        content: Content,
        perm: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> Result<(), TreeError> {
        self.ensure_parents(path)?;
        let old = self.lookup(path)?;
        let mut meta = match &old {
            Some(e) if e.kind == Kind::Dir => {
                return Err(TreeError::IsDir {
                    path: path.display_abs(),
                })
            }
            Some(e) if matches!(e.kind, Kind::File { .. } | Kind::HardLink { .. }) => e.meta,
            _ => Meta {
                perm: 0o644,
                uid: 0,
                gid: 0,
                mtime: self.now,
            },
        };
        meta.mtime = self.now;
        if let Some(p) = perm {
            meta.perm = p;
        }
        if let Some((u, g)) = owner {
            meta.uid = u;
            meta.gid = g;
        }
        let size = content.len()?;
        let entry = Entry {
            path: path.clone(),
            kind: Kind::File { size },
            meta,
            xattrs: Default::default(),
        };
        self.overlay.insert(
            path.clone(),
            Change::Put {
                entry,
                content: Some(content),
            },
        );
        Ok(())
    }

    /// Puts any entry as given (directories, links and devices of a copied
    /// host tree).
    pub fn put_entry(&mut self, entry: Entry, content: Option<Content>) -> Result<(), TreeError> {
        self.ensure_parents(&entry.path)?;
        self.overlay
            .insert(entry.path.clone(), Change::Put { entry, content });
        Ok(())
    }

    pub fn delete(&mut self, path: &TreePath) {
        self.overlay.insert(path.clone(), Change::Delete);
    }

    /// The content of regular files at `paths` as the tree stands now:
    /// overlay first, the rest in one pass over the base. Absent or
    /// non-file paths are missing from the result.
    pub fn read_files(
        &mut self,
        paths: &BTreeSet<TreePath>,
    ) -> io::Result<BTreeMap<TreePath, Vec<u8>>> {
        let mut out = BTreeMap::new();
        let mut from_base = BTreeSet::new();
        for p in paths {
            match self.overlay.get(p) {
                Some(Change::Put {
                    content: Some(c), ..
                }) => {
                    out.insert(p.clone(), c.read_all()?);
                }
                Some(_) => {}
                None => {
                    from_base.insert(p.clone());
                }
            }
        }
        if from_base.is_empty() {
            return Ok(out);
        }
        let base = read_base_files(self.base.as_deref(), &self.name, &from_base)?;
        out.extend(base);
        Ok(out)
    }

    /// The metadata of `path` in the archive as fetched.
    pub fn base_entry(&mut self, path: &TreePath) -> io::Result<Option<Entry>> {
        self.base_lookup(path)
    }

    /// The base content of `paths` (the archive as fetched).
    pub fn read_base(&self, paths: &BTreeSet<TreePath>) -> io::Result<BTreeMap<TreePath, Vec<u8>>> {
        read_base_files(self.base.as_deref(), &self.name, paths)
    }

    /// A source emitting the tree as it stands now.
    pub fn source(&self) -> OverlaySource {
        OverlaySource {
            name: self.name.clone(),
            base: self.base.clone().map(Base::Archive),
            overlay: self.overlay.clone(),
        }
    }

    /// A source emitting an ext volume with this tree's overlay on top.
    pub fn over_volume(&self, volume: PathBuf) -> OverlaySource {
        OverlaySource {
            name: self.name.clone(),
            base: Some(Base::Volume(volume)),
            overlay: self.overlay.clone(),
        }
    }
}

/// Reads the regular files at `paths` from an archive in one pass. A hard
/// link's content is its target's.
fn read_base_files(
    base: Option<&Path>,
    name: &str,
    paths: &BTreeSet<TreePath>,
) -> io::Result<BTreeMap<TreePath, Vec<u8>>> {
    match base {
        None => Ok(BTreeMap::new()),
        Some(base) => read_tree_files(&|| archive_source(base, name), paths),
    }
}

/// The largest file read whole into memory (diff and patch targets).
pub const MAX_WHOLE_FILE: u64 = 64 << 20;

/// Reads the regular files at `paths` from any tree, opened by `open`, in
/// one pass (two when a wanted name is a hard link to an unwanted file).
/// Only wanted files are buffered; the rest stream past.
pub fn read_tree_files(
    open: &dyn Fn() -> io::Result<Box<dyn Source>>,
    paths: &BTreeSet<TreePath>,
) -> io::Result<BTreeMap<TreePath, Vec<u8>>> {
    let mut out: BTreeMap<TreePath, Vec<u8>> = BTreeMap::new();
    let mut links: Vec<(TreePath, TreePath)> = Vec::new();
    let mut src = open()?;
    let mut sink = crate::tree::FnSink(|e: &Entry, data: &mut dyn Read| {
        match &e.kind {
            Kind::File { size } if paths.contains(&e.path) => {
                // diffs and patches work on text files held whole; a huge
                // (or hugely sparse) file from a hostile tree must not be
                if *size > MAX_WHOLE_FILE {
                    return Err(io::Error::other(format!(
                        "{} is {size} bytes; files over {} MiB are not read whole for diffs and patches",
                        e.path.display_abs(),
                        MAX_WHOLE_FILE >> 20
                    )));
                }
                let mut v = Vec::new();
                data.take(MAX_WHOLE_FILE + 1).read_to_end(&mut v)?;
                out.insert(e.path.clone(), v);
            }
            Kind::HardLink { target } if paths.contains(&e.path) => {
                links.push((e.path.clone(), target.clone()));
            }
            _ => {}
        }
        Ok(())
    });
    crate::progress::emit(&mut *src, &mut sink, "reading files".to_string())?;
    let targets: BTreeSet<TreePath> = links
        .iter()
        .filter(|(_, t)| !out.contains_key(t))
        .map(|(_, t)| t.clone())
        .collect();
    let more = if targets.is_empty() {
        BTreeMap::new()
    } else {
        read_tree_files(open, &targets)?
    };
    for (p, t) in links {
        if let Some(v) = out.get(&t).or_else(|| more.get(&t)).cloned() {
            out.insert(p, v);
        }
    }
    Ok(out)
}

/// The working tree as a stream: changed entries first, then the base
/// entries the overlay does not replace or delete. Putting changes first
/// lets a base hard link whose target was replaced point at the new file.
pub struct OverlaySource {
    name: String,
    base: Option<Base>,
    overlay: Overlay,
}

/// What an overlay lies on.
#[derive(Clone, Debug)]
pub enum Base {
    /// A `cpio` archive file (gzip or not).
    Archive(PathBuf),
    /// An ext2/3/4 image file or device.
    Volume(PathBuf),
}

impl Source for OverlaySource {
    fn emit(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        for (path, change) in &self.overlay {
            if let Change::Put { entry, content } = change {
                debug_assert_eq!(&entry.path, path);
                match content {
                    Some(c) => sink.put(entry, &mut c.reader()?)?,
                    None => sink.put(entry, &mut io::empty())?,
                }
            }
        }
        let Some(base) = &self.base else {
            return Ok(());
        };
        let overlay = &self.overlay;
        let deleted = |p: &TreePath| matches!(overlay.get(p), Some(Change::Delete));
        let mut src: Box<dyn Source> = match base {
            Base::Archive(p) => archive_source(p, &self.name)?,
            Base::Volume(p) => {
                Box::new(crate::ext::Volume::open(File::open(p)?).map_err(io::Error::other)?)
            }
        };
        // A volume can be read again: the first surviving name of a hard
        // link group whose first name is deleted takes the data, and the
        // other names link to it.
        let reread = match base {
            Base::Volume(p) => {
                Some(crate::ext::Volume::open(File::open(p)?).map_err(io::Error::other)?)
            }
            Base::Archive(_) => None,
        };
        let mut heirs: HashMap<TreePath, TreePath> = HashMap::new();
        // true when the entry is dealt with here, false to pass it on
        let mut decide = |e: &Entry, sink: &mut dyn Sink| -> io::Result<bool> {
            if overlay.contains_key(&e.path) {
                return Ok(true);
            }
            if let Kind::HardLink { target } = &e.kind {
                if deleted(target) {
                    if let Some(heir) = heirs.get(target) {
                        let link = Entry {
                            kind: Kind::HardLink {
                                target: heir.clone(),
                            },
                            ..e.clone()
                        };
                        return sink.put(&link, &mut io::empty()).map(|()| true);
                    }
                    let Some(vol) = &reread else {
                        // the data went with the deleted name; this name
                        // keeps nothing to point at
                        return Ok(true);
                    };
                    let mut r = vol.read_file(target).map_err(io::Error::other)?;
                    let file = Entry {
                        kind: Kind::File { size: r.size() },
                        ..e.clone()
                    };
                    heirs.insert(target.clone(), e.path.clone());
                    return sink.put_sparse(&file, &mut r).map(|()| true);
                }
            }
            Ok(false)
        };
        src.emit(&mut Filter {
            decide: &mut decide,
            sink,
        })
    }
}

/// Passes entries on to `sink`, holes told as holes, unless `decide`
/// dealt with them.
struct Filter<'a> {
    decide: &'a mut dyn FnMut(&Entry, &mut dyn Sink) -> io::Result<bool>,
    sink: &'a mut dyn Sink,
}

impl Sink for Filter<'_> {
    fn put(&mut self, e: &Entry, data: &mut dyn Read) -> io::Result<()> {
        if (self.decide)(e, self.sink)? {
            return Ok(());
        }
        self.sink.put(e, data)
    }

    fn put_sparse(&mut self, e: &Entry, data: &mut dyn SparseRead) -> io::Result<()> {
        if (self.decide)(e, self.sink)? {
            return Ok(());
        }
        self.sink.put_sparse(e, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Sink;

    fn p(s: &str) -> TreePath {
        TreePath::from_absolute(s.as_bytes()).unwrap()
    }

    /// An archive of `/etc` with `files` in it.
    fn archive(dir: &Path, files: &[&str]) -> PathBuf {
        let path = dir.join("a.cpio.gz");
        let f = File::create(&path).unwrap();
        let mut w = crate::cpio::Writer::new(crate::cpio::gzip_encoder(f, 1), "a");
        let meta = Meta::implicit_dir();
        let dir = Entry {
            path: p("/etc"),
            kind: Kind::Dir,
            meta,
            xattrs: Default::default(),
        };
        w.put(&dir, &mut io::empty()).unwrap();
        for name in files {
            let e = Entry {
                path: p(name),
                kind: Kind::File { size: 1 },
                meta,
                xattrs: Default::default(),
            };
            w.put(&e, &mut &b"x"[..]).unwrap();
        }
        w.finish_gzip().unwrap();
        path
    }

    #[test]
    fn expected_lookups_take_one_pass() {
        let t = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..100).map(|i| format!("/etc/f{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let a = archive(t.path(), &refs);
        let mut wt = WorkTree::new("a".into(), Some(a), 0);
        let wanted: Vec<TreePath> = ["/etc/f1", "/etc/f99", "/etc/new/x"]
            .iter()
            .map(|s| p(s))
            .collect();
        wt.expect_lookups(wanted.clone());
        for w in &wanted {
            wt.put_file(w, Content::Bytes(b"y".to_vec()), None, None)
                .unwrap();
        }
        assert_eq!(wt.scans, 1);
        // what was found kept its metadata; what was not is new
        assert_eq!(
            wt.base_entry(&p("/etc/f1")).unwrap().unwrap().path,
            p("/etc/f1")
        );
        assert!(wt.base_entry(&p("/etc/new/x")).unwrap().is_none());
        assert!(wt.base_entry(&p("/etc/new")).unwrap().is_none());
        assert_eq!(wt.scans, 1);
        // a path nobody announced costs one more pass, and is right
        assert!(wt.base_entry(&p("/etc/f50")).unwrap().is_some());
        assert!(wt.base_entry(&p("/etc/f100")).unwrap().is_none());
        assert_eq!(wt.scans, 3);
        // a file under a file is refused, whatever was announced
        let e = wt
            .put_file(&p("/etc/f2/x"), Content::Bytes(vec![]), None, None)
            .unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
