//! Flattening an image's layers into one tree, as the OCI image
//! specification's `layer.md` describes applying them: each layer's
//! entries are laid over the tree of the layers below; `.wh.NAME` deletes
//! NAME (and what lies below it) from the lower layers, `.wh..wh..opq`
//! hides everything the lower layers hold in its directory, and no
//! whiteout ever appears in the result. A whiteout only reaches the lower
//! layers: what its own layer holds stays, whatever the order of the
//! members.
//!
//! Two passes over the layers keep memory to one record per path, never
//! content: the first reads only headers and works out which layer's entry
//! each final path comes from; the second streams the layers again and
//! hands the sink exactly those entries, with their data, in layer order.
//! A hard link whose target a later layer replaced still names the
//! content it had in its layer: that content is written under the first
//! surviving link name.

use crate::tree::{Entry, Kind, Meta, Sink, Source, TreePath};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};

/// The prefix of whiteout names.
pub const WHITEOUT: &[u8] = b".wh.";
/// The name of an opaque-directory marker.
pub const OPAQUE: &[u8] = b".wh..wh..opq";

/// The most members all layers together may hold (and so the most paths
/// of the flattened tree): a record of each stays in memory while
/// flattening, some 200 bytes at most, whatever the members' sizes.
pub const MAX_ENTRIES: usize = 1_000_000;

/// Where a path of the flattened tree comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum From {
    /// Entry `index` of layer `layer`.
    Layer { layer: usize, index: usize },
    /// A directory no layer holds, made for a child.
    Implicit,
}

#[derive(Clone, Copy, Debug)]
struct Node {
    from: From,
    dir: bool,
}

/// What the first pass keeps of one member.
enum Member {
    Whiteout(TreePath),
    Opaque(TreePath),
    /// aufs bookkeeping other than the opaque marker: never part of a tree.
    Ignored,
    Entry {
        path: TreePath,
        dir: bool,
        /// For a hard link, the index of its target in the same layer.
        link_to: Option<usize>,
    },
}

/// Why a layer is refused.
fn hostile(layer: &str, path: &TreePath, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{layer}: {}: {why}", path.display_abs()),
    )
}

/// Classifies a member name.
fn member(layer: &str, path: TreePath, kind: &Kind, link_to: Option<usize>) -> io::Result<Member> {
    let name = path.file_name();
    let parent = path.parent().unwrap_or_default();
    if parent.components().any(|c| c.starts_with(WHITEOUT)) {
        return Err(hostile(layer, &path, "a member below a whiteout"));
    }
    if !name.starts_with(WHITEOUT) {
        return Ok(Member::Entry {
            dir: matches!(kind, Kind::Dir),
            path,
            link_to,
        });
    }
    if name == OPAQUE {
        return Ok(Member::Opaque(parent));
    }
    if name.starts_with(b".wh..wh.") {
        return Ok(Member::Ignored);
    }
    let target = &name[WHITEOUT.len()..];
    match target {
        b"" => Err(hostile(layer, &path, "a whiteout naming nothing")),
        b"." | b".." => Err(hostile(
            layer,
            &path,
            "a whiteout reaching outside its directory",
        )),
        t => Ok(Member::Whiteout(parent.join(t))),
    }
}

/// The flattened tree's paths, in path order.
#[derive(Default)]
struct State {
    nodes: BTreeMap<TreePath, Node>,
}

impl State {
    /// Removes everything below `dir` (not `dir` itself).
    fn remove_below(&mut self, dir: &TreePath) {
        if dir.is_root() {
            self.nodes.retain(|p, _| p.is_root());
            return;
        }
        // `dir/…` sorts between `dir` and `dir0` (`0` follows `/`)
        let mut hi = dir.as_bytes().to_vec();
        hi.push(b'0');
        let hi = TreePath::from_member(&hi).unwrap_or_default();
        let doomed: Vec<TreePath> = self
            .nodes
            .range(dir.clone()..hi)
            .map(|(p, _)| p)
            .filter(|p| p.starts_with(dir) && *p != dir)
            .cloned()
            .collect();
        for p in doomed {
            self.nodes.remove(&p);
        }
    }

    /// Removes `path` and everything below it.
    fn remove(&mut self, path: &TreePath) {
        if self.nodes.remove(path).is_some_and(|n| n.dir) {
            self.remove_below(path);
        }
    }

    /// Lays an entry of an upper layer over the tree: a directory over a
    /// directory changes its metadata and keeps its content; anything else
    /// replaces what was there. Missing parents, and parents that are not
    /// directories, become directories.
    fn put(&mut self, path: &TreePath, node: Node) -> io::Result<()> {
        let mut parent = path.parent();
        let mut missing = Vec::new();
        while let Some(p) = parent {
            match self.nodes.get(&p) {
                Some(n) if n.dir => break,
                _ => missing.push(p.clone()),
            }
            parent = p.parent();
        }
        for p in missing.into_iter().rev() {
            self.remove(&p);
            self.insert(
                p,
                Node {
                    from: From::Implicit,
                    dir: true,
                },
            )?;
        }
        match self.nodes.get(path) {
            Some(old) if old.dir && node.dir => {}
            Some(_) => self.remove(path),
            None => {}
        }
        self.insert(path.clone(), node)
    }

    fn insert(&mut self, path: TreePath, node: Node) -> io::Result<()> {
        if self.nodes.len() >= MAX_ENTRIES && !self.nodes.contains_key(&path) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the image holds more than {MAX_ENTRIES} paths"),
            ));
        }
        self.nodes.insert(path, node);
        Ok(())
    }
}

/// The first pass over one layer: its members, headers only.
fn read_members(layer: &str, source: &mut dyn Source, budget: usize) -> io::Result<Vec<Member>> {
    struct Collect<'a> {
        layer: &'a str,
        budget: usize,
        members: Vec<Member>,
        /// The latest index of each regular file, for hard links.
        files: HashMap<TreePath, usize>,
    }
    impl Sink for Collect<'_> {
        fn put(&mut self, e: &Entry, _: &mut dyn Read) -> io::Result<()> {
            if self.members.len() >= self.budget {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: the layers hold more than {MAX_ENTRIES} members",
                        self.layer
                    ),
                ));
            }
            let index = self.members.len();
            let link_to = match &e.kind {
                Kind::HardLink { target } => Some(*self.files.get(target).ok_or_else(|| {
                    hostile(self.layer, &e.path, "a hard link to no file of its layer")
                })?),
                Kind::File { .. } => {
                    self.files.insert(e.path.clone(), index);
                    None
                }
                _ => {
                    self.files.remove(&e.path);
                    None
                }
            };
            if e.path.is_root() && !matches!(e.kind, Kind::Dir) {
                return Err(hostile(self.layer, &e.path, "the root is not a directory"));
            }
            let m = member(self.layer, e.path.clone(), &e.kind, link_to)?;
            if let (Member::Whiteout(_) | Member::Opaque(_), Kind::HardLink { .. }) = (&m, &e.kind)
            {
                // a link to a whiteout would be a second name of nothing
                return Err(hostile(self.layer, &e.path, "a hard link as a whiteout"));
            }
            self.members.push(m);
            Ok(())
        }
    }
    let mut c = Collect {
        layer,
        budget,
        members: Vec::new(),
        files: HashMap::new(),
    };
    source.emit(&mut c)?;
    Ok(c.members)
}

/// What the second pass does with one member.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Emit {
    Skip,
    As(Entry),
}

/// Flattens `count` layers, bottom first, into `sink`. `open(i)` opens
/// layer `i` afresh (it is read twice) and names it for messages.
pub fn flatten(
    count: usize,
    open: &mut dyn FnMut(usize) -> io::Result<(Box<dyn Source>, String)>,
    sink: &mut dyn Sink,
) -> io::Result<()> {
    let mut state = State::default();
    state.insert(
        TreePath::root(),
        Node {
            from: From::Implicit,
            dir: true,
        },
    )?;
    let mut layers: Vec<Vec<Member>> = Vec::with_capacity(count);
    for layer in 0..count {
        let (mut source, name) = open(layer)?;
        let seen: usize = layers.iter().map(Vec::len).sum();
        let members = read_members(&name, source.as_mut(), MAX_ENTRIES - seen)?;
        // whiteouts reach the lower layers only: they go first
        for m in &members {
            match m {
                Member::Whiteout(p) => state.remove(p),
                Member::Opaque(dir) => state.remove_below(dir),
                _ => {}
            }
        }
        for (index, m) in members.iter().enumerate() {
            if let Member::Entry { path, dir, .. } = m {
                let from = From::Layer { layer, index };
                state.put(path, Node { from, dir: *dir })?;
            }
        }
        layers.push(members);
    }

    // which member of which layer each surviving path comes from
    let mut keep: Vec<Vec<bool>> = layers.iter().map(|m| vec![false; m.len()]).collect();
    let mut implicit = Vec::new();
    for (path, node) in &state.nodes {
        match node.from {
            From::Layer { layer, index } => keep[layer][index] = true,
            From::Implicit => implicit.push(path.clone()),
        }
    }
    // a surviving link whose target did not survive: the target's content
    // goes under the first such link name, the others link to it
    let mut renamed: HashMap<(usize, usize), TreePath> = HashMap::new();
    for (layer, members) in layers.iter().enumerate() {
        for (index, m) in members.iter().enumerate() {
            if let Member::Entry {
                path,
                link_to: Some(target),
                ..
            } = m
            {
                if keep[layer][index] && !keep[layer][*target] {
                    renamed.entry((layer, *target)).or_insert(path.clone());
                }
            }
        }
    }

    for path in implicit {
        let e = Entry {
            path,
            kind: Kind::Dir,
            meta: Meta::implicit_dir(),
            xattrs: Default::default(),
        };
        sink.put(&e, &mut io::empty())?;
    }
    for (layer, members) in layers.iter().enumerate() {
        let plan: Vec<Option<TreePath>> = members
            .iter()
            .enumerate()
            .map(|(index, m)| match m {
                Member::Entry { path, .. } if keep[layer][index] => Some(path.clone()),
                Member::Entry { .. } => renamed.get(&(layer, index)).cloned(),
                _ => None,
            })
            .collect();
        let (mut source, name) = open(layer)?;
        let mut second = Second {
            layer,
            name: &name,
            members,
            plan: &plan,
            renamed: &renamed,
            index: 0,
            sink: &mut *sink,
        };
        source.emit(&mut second)?;
        if second.index != members.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: read differently the second time"),
            ));
        }
    }
    Ok(())
}

/// The second pass over one layer.
struct Second<'a> {
    layer: usize,
    name: &'a str,
    members: &'a [Member],
    /// Per member: the path it is written under, or nothing.
    plan: &'a [Option<TreePath>],
    renamed: &'a HashMap<(usize, usize), TreePath>,
    index: usize,
    sink: &'a mut dyn Sink,
}

impl Second<'_> {
    fn decide(&self, e: &Entry) -> io::Result<Emit> {
        let index = self.index;
        let changed = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: read differently the second time", self.name),
            )
        };
        let (Some(m), Some(plan)) = (self.members.get(index), self.plan.get(index)) else {
            return Err(changed());
        };
        let Some(path) = plan else {
            return Ok(Emit::Skip);
        };
        let Member::Entry { link_to, .. } = m else {
            return Err(changed());
        };
        let mut out = e.clone();
        out.path = path.clone();
        if let (Some(target), Kind::HardLink { .. }) = (link_to, &e.kind) {
            let target = *target;
            match self.renamed.get(&(self.layer, target)) {
                // the target's content was written under this very name
                Some(alias) if alias == path => return Ok(Emit::Skip),
                Some(alias) => {
                    out.kind = Kind::HardLink {
                        target: alias.clone(),
                    }
                }
                None => {}
            }
        }
        Ok(Emit::As(out))
    }
}

impl Sink for Second<'_> {
    fn put(&mut self, e: &Entry, data: &mut dyn Read) -> io::Result<()> {
        let emit = self.decide(e)?;
        self.index += 1;
        match emit {
            Emit::Skip => Ok(()),
            Emit::As(out) => self.sink.put(&out, data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> TreePath {
        TreePath::from_member(s.as_bytes()).unwrap()
    }

    #[test]
    fn removing_a_directory_keeps_its_neighbours() {
        let mut s = State::default();
        let node = |dir| Node {
            from: From::Implicit,
            dir,
        };
        for (path, dir) in [("a", true), ("a/x", false), ("a-b", false), ("a0", false)] {
            s.put(&p(path), node(dir)).unwrap();
        }
        s.remove(&p("a"));
        let left: Vec<String> = s.nodes.keys().map(|k| k.to_string()).collect();
        assert_eq!(left, [".", "a-b", "a0"]);
    }

    #[test]
    fn whiteouts_never_reach_out() {
        for name in [".wh.", ".wh..", ".wh..."] {
            let path = TreePath::from_member(format!("d/{name}").as_bytes()).unwrap();
            assert!(member("l", path, &Kind::Fifo, None).is_err(), "{name}");
        }
        let path = p("d/.wh.x");
        assert!(matches!(
            member("l", path, &Kind::File { size: 0 }, None).unwrap(),
            Member::Whiteout(t) if t == p("d/x")
        ));
    }
}
