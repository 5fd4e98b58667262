//! The subcommands that work on one artifact: `pack`, `diff`, `ls`, `cat`,
//! `keygen`, `sign`, `verify`.

use super::error::{Cause, Place};
use super::formats::write_archive;
use super::worktree::{archive_source, read_tree_files};
use super::{Error, Result};
use crate::diff;
use crate::digest::{ContentDigest, Digest};
use crate::sign;
use crate::tree::{Dense, Entry, Kind, Sink, Source, SparseRead, TreePath};
use crate::uri::Uri;
use crate::{ext, hostdir};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A module's typed error met while working on `what`.
fn fail(what: impl std::fmt::Display, e: impl Cause) -> Error {
    e.at(Place::at(what))
}

/// `SOURCE_DATE_EPOCH`, when set, clamps the mtimes of packed trees.
pub fn source_date_epoch() -> Option<i64> {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

/// `pack DIR URI`: what `[create DIR URI]` does.
pub fn pack(dir: &Path, dest: &str) -> Result<()> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let uri = Uri::parse(dest, &cwd).map_err(Error::refused)?;
    if !dir.is_dir() {
        return Err(Error::usage(format!("{}: not a directory", dir.display())));
    }
    crate::archive::output_format(&uri.file_name_hint())
        .map_err(|e| Error::usage(e.to_string()))?;
    let mut walker = hostdir::Walker::new(dir).clamp_mtime(source_date_epoch());
    match uri.local_path() {
        Some(p) => match super::atomic::dest(p).map_err(|e| fail(dest, e))? {
            super::atomic::Dest::Atomic(p) => {
                let tmp = super::atomic::temp_beside(&p);
                let r = write_archive(&mut walker, &tmp, &uri, dest)
                    .and_then(|()| std::fs::rename(&tmp, &p));
                if let Err(e) = r {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(fail(dest, e));
                }
            }
            super::atomic::Dest::Stream(p) => {
                // a device or FIFO: packed straight into it
                write_archive(&mut walker, &p, &uri, dest).map_err(|e| fail(dest, e))?;
            }
        },
        None => {
            let tmp = tempfile::NamedTempFile::new().map_err(|e| fail("temporary file", e))?;
            write_archive(&mut walker, tmp.path(), &uri, dest).map_err(|e| fail(dest, e))?;
            crate::transport::publish(tmp.path(), &uri, &Default::default())
                .map_err(Error::failed)?;
        }
    }
    Ok(())
}

/// Opens any tree: a directory, an ext2/3/4 image or an archive of any
/// format [`crate::archive`] reads, told apart by their content.
pub fn open_tree(path: &Path) -> Result<Box<dyn Source>> {
    let name = path.display().to_string();
    if !path.is_dir() {
        let mut f = File::open(path).map_err(|e| fail(&name, e))?;
        let mut head = [0u8; 1082];
        let n = f.read(&mut head).map_err(|e| fail(&name, e))?;
        let qcow2 = n >= 4 && head[..4] == crate::block::qcow2::MAGIC;
        if qcow2 || n == head.len() && head[1080..] == [0x53, 0xef] {
            let dev = crate::block::open(path, false).map_err(|e| fail(&name, e))?;
            let vol = ext::Volume::open_block(dev).map_err(|e| fail(&name, e))?;
            return Ok(Box::new(vol));
        }
    }
    // its errors name the archive already
    archive_source(path, &name).map_err(Error::failed)
}

/// Regular files' content digests and mtimes of a tree, read in one pass.
/// Holes in an image's files are stepped over, so a file claiming
/// terabytes of them costs what its data costs.
fn digests(src: &mut dyn Source) -> io::Result<BTreeMap<TreePath, (Digest, i64)>> {
    struct Digests {
        out: BTreeMap<TreePath, (Digest, i64)>,
        links: Vec<(TreePath, TreePath)>,
        buf: Vec<u8>,
    }
    impl Sink for Digests {
        fn put(&mut self, e: &Entry, data: &mut dyn Read) -> io::Result<()> {
            match &e.kind {
                Kind::File { .. } => self.put_sparse(e, &mut Dense(data))?,
                Kind::HardLink { target } => self.links.push((e.path.clone(), target.clone())),
                _ => {}
            }
            Ok(())
        }
        fn put_sparse(&mut self, e: &Entry, data: &mut dyn SparseRead) -> io::Result<()> {
            let mut d = ContentDigest::default();
            loop {
                let n = data.read(&mut self.buf)?;
                if n == 0 {
                    break;
                }
                d.update(&self.buf[..n]);
                // zeros may be the start of a hole: step over the rest
                if crate::bytes::all_zero(&self.buf[..n]) {
                    d.zeros(data.skip_hole()?);
                }
            }
            self.out
                .insert(e.path.clone(), (d.finish().0, e.meta.mtime));
            Ok(())
        }
    }
    let mut sink = Digests {
        out: BTreeMap::new(),
        links: Vec::new(),
        buf: vec![0; 256 * 1024],
    };
    src.emit(&mut sink)?;
    let Digests { mut out, links, .. } = sink;
    for (p, t) in links {
        if let Some(v) = out.get(&t).cloned() {
            out.insert(p, v);
        }
    }
    Ok(out)
}

/// A local path for a tree argument: itself, or for a URI the verified
/// copy a run would read (fetched into the cache of `--dir` DIR).
fn local_tree(arg: &Path, dir: &Path) -> Result<PathBuf> {
    let text = arg.to_string_lossy();
    let is_uri = text.contains("://") || text.starts_with("oci:");
    if !is_uri {
        return Ok(arg.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| fail(".", e))?;
    let uri =
        crate::uri::Uri::parse(&text, &cwd).map_err(|e| Error::run(format!("{text}: {e}")))?;
    // only the cache of `--dir`: a diff recovers no commits
    let cache = crate::cache::Cache::open(dir.join("cache"), Default::default())
        .map_err(|e| Error::run(format!("--dir {}: {e}", dir.display())))?;
    let mut inputs = super::inputs::Inputs::new(cache, crate::cache::Mode::Online);
    let mut log = super::log::Log::open(None)?;
    let uri = crate::parser::plan::UriRef {
        uri,
        text: text.to_string(),
        span: Default::default(),
    };
    Ok(inputs.get(&uri, &text, &mut log)?.path)
}

/// `diff OLD NEW -o PATCH`: a unified diff between any two trees, in the
/// style of `diff -ruN`. Only differing files are read whole.
pub fn diff_trees(old: &Path, new: &Path, out: &str, dir: Option<PathBuf>) -> Result<bool> {
    // a URI (http, ftp, file, oci:, docker://) is fetched through the cache
    // of `--dir`, as a run fetches its inputs
    let dir = dir.unwrap_or_else(super::workdir::default_dir);
    let (old, new) = (local_tree(old, &dir)?, local_tree(new, &dir)?);
    let (old, new) = (old.as_path(), new.as_path());
    let a = digests(open_tree(old)?.as_mut()).map_err(|e| fail(old.display(), e))?;
    let b = digests(open_tree(new)?.as_mut()).map_err(|e| fail(new.display(), e))?;
    let mut changed = BTreeSet::new();
    for (p, (d, _)) in &a {
        if b.get(p).map(|x| &x.0) != Some(d) {
            changed.insert(p.clone());
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) {
            changed.insert(p.clone());
        }
    }
    let read = |tree: &Path| {
        // the typed error travels inside the I/O error, not as its text
        let open = || open_tree(tree).map_err(io::Error::other);
        read_tree_files(&open, &changed).map_err(|e| fail(tree.display(), e))
    };
    let (ca, cb) = (read(old)?, read(new)?);
    let map =
        |c: BTreeMap<TreePath, Vec<u8>>, m: &BTreeMap<TreePath, (Digest, i64)>| -> diff::FileMap {
            c.into_iter()
                .map(|(p, content)| {
                    let mtime = m.get(&p).map(|x| x.1).unwrap_or(0);
                    (
                        p,
                        diff::FileVersion {
                            content,
                            mtime,
                            mtime_nsec: 0,
                        },
                    )
                })
                .collect()
        };
    let text = diff::unified(&map(ca, &a), &map(cb, &b), &diff::UnifiedOptions::default());
    super::atomic::write_text(out, &text)?;
    Ok(!text.is_empty())
}

fn image(path: &Path) -> Result<ext::Volume> {
    let dev = crate::block::open(path, false).map_err(|e| fail(path.display(), e))?;
    ext::Volume::open_block(dev).map_err(|e| {
        // an archive handed to ls or cat: say what it is and what reads it
        let what = File::open(path)
            .ok()
            .and_then(|f| crate::archive::open(f, &path.display().to_string()).ok());
        match what {
            Some(a) => {
                let format = match a.format() {
                    crate::archive::Format::Cpio => "cpio",
                    crate::archive::Format::Tar => "tar",
                };
                Error::run(format!(
                    "{}: a {format} archive ({}), not an ext2/3/4 image: ls and cat read images; diff and [populate] read archives",
                    path.display(),
                    a.compression()
                ))
            }
            None => fail(path.display(), e),
        }
    })
}

/// A path inside an image, as bytes: names in an image need not be UTF-8,
/// and the command line passes them through unchanged.
fn tree_path(p: &OsStr) -> Result<TreePath> {
    TreePath::from_absolute(p.as_bytes())
        .map_err(|e| Error::usage(format!("{}: {e}", p.to_string_lossy())))
}

/// `ls IMAGE [PATH]`: like `ls -l`, without mounting. Names and symlink
/// targets are written as the bytes they are.
pub fn ls(img: &Path, path: Option<&OsStr>) -> Result<()> {
    let vol = image(img)?;
    let p = tree_path(path.unwrap_or(OsStr::new("/")))?;
    let st = vol
        .stat(&p)
        .map_err(|e| fail(format!("{}:{}", img.display(), p.display_abs()), e))?;
    let is_dir = st.file_type == ext::FileType::Dir;
    let entries = if is_dir {
        vol.read_dir(&p)
            .map_err(|e| fail(format!("{}:{}", img.display(), p.display_abs()), e))?
    } else {
        vec![st]
    };
    super::atomic::to_stdout(|out| ls_lines(out, &vol, &p, is_dir, entries))
}

fn ls_lines(
    out: &mut impl Write,
    vol: &ext::Volume,
    p: &TreePath,
    is_dir: bool,
    entries: Vec<ext::DirEntryInfo>,
) -> io::Result<()> {
    for e in entries {
        let t = match e.file_type {
            ext::FileType::File => '-',
            ext::FileType::Dir => 'd',
            ext::FileType::Symlink => 'l',
            ext::FileType::CharDev => 'c',
            ext::FileType::BlockDev => 'b',
            ext::FileType::Fifo => 'p',
            ext::FileType::Socket => 's',
        };
        let mut line = format!(
            "{t}{} {:>3} {:>5} {:>5} {:>10} {} ",
            perm_string(e.meta.perm),
            e.links,
            e.meta.uid,
            e.meta.gid,
            e.size,
            super::log::rfc3339(e.meta.mtime)
        )
        .into_bytes();
        line.extend_from_slice(&e.name);
        if e.file_type == ext::FileType::Symlink {
            let child = if is_dir { p.join(&e.name) } else { p.clone() };
            if let Ok(target) = vol.readlink(&child) {
                line.extend_from_slice(b" -> ");
                line.extend_from_slice(&target);
            }
        }
        line.push(b'\n');
        out.write_all(&line)?;
    }
    Ok(())
}

fn perm_string(perm: u32) -> String {
    let mut s = String::new();
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if perm & (0o400 >> i) != 0 { c } else { '-' });
    }
    let mut b: Vec<char> = s.chars().collect();
    let special = |b: &mut Vec<char>, i: usize, bit: u32, on: char, off: char| {
        if perm & bit != 0 {
            b[i] = if b[i] == 'x' { on } else { off };
        }
    };
    special(&mut b, 2, 0o4000, 's', 'S');
    special(&mut b, 5, 0o2000, 's', 'S');
    special(&mut b, 8, 0o1000, 't', 'T');
    b.into_iter().collect()
}

/// `cat IMAGE PATH`.
pub fn cat(img: &Path, path: &OsStr) -> Result<()> {
    let vol = image(img)?;
    let p = tree_path(path)?;
    let mut r = vol
        .read_file(&p)
        .map_err(|e| fail(format!("{}:{}", img.display(), p.display_abs()), e))?;
    // a read error is the image's; a write error is the pipe's
    let mut read_error = None;
    let mut reader = ReadErrors {
        inner: &mut r,
        seen: &mut read_error,
    };
    let r = super::atomic::to_stdout(|out| io::copy(&mut reader, out).map(|_| ()));
    if let Some(e) = read_error {
        return Err(fail(format!("{}:{}", img.display(), p.display_abs()), e));
    }
    r
}

/// Keeps a reader's error aside, so that it is told from a writer's.
struct ReadErrors<'a, R> {
    inner: R,
    seen: &'a mut Option<io::Error>,
}

impl<R: io::Read> io::Read for ReadErrors<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            *self.seen = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }
}

/// Reads a passphrase from a file, or from the terminal.
fn passphrase(file: Option<&Path>, prompt: &str) -> Result<Option<sign::Passphrase>> {
    if let Some(f) = file {
        return sign::read_passphrase_file(f)
            .map(Some)
            .map_err(Error::refused);
    }
    if !io::IsTerminal::is_terminal(&io::stdin()) {
        return Err(Error::usage(
            "the secret key needs a passphrase: give --passphrase-file FILE".to_string(),
        ));
    }
    eprint!("{prompt}");
    let mut line = String::new();
    io::stdin()
        .read_line(&mut line)
        .map_err(|e| fail("<stdin>", e))?;
    let line = line.trim_end_matches(['\n', '\r']).as_bytes().to_vec();
    sign::Passphrase::new(line)
        .map(Some)
        .map_err(Error::refused)
}

/// `keygen -p PUB -s SEC [-c COMMENT] [--passphrase-file F]`.
pub fn keygen(public: &Path, secret: &Path, comment: &str, pass: Option<&Path>) -> Result<()> {
    let (pk, sk) = sign::generate(comment).map_err(Error::failed)?;
    let pass = match pass {
        Some(f) => Some(sign::read_passphrase_file(f).map_err(Error::refused)?),
        None => None,
    };
    sk.write_file(secret, pass.as_ref().map(|p| p.as_bytes()))
        .map_err(Error::failed)?;
    pk.write_file(public).map_err(Error::failed)?;
    println!("key id {}", pk.key_id());
    Ok(())
}

/// Reads a secret key, asking for its passphrase only when it has one.
pub fn secret_key(path: &Path, pass: Option<&Path>) -> Result<sign::SecretKey> {
    let enc = sign::EncryptedSecretKey::read_file(path).map_err(Error::refused)?;
    let pass = if enc.is_encrypted() {
        passphrase(pass, &format!("passphrase for {}: ", path.display()))?
    } else {
        None
    };
    enc.unlock(pass.as_ref().map(|p| p.as_bytes()))
        .map_err(Error::refused)
}

/// `sign -s SEC FILE...`: writes `FILE.sig` beside each file.
pub fn sign_files(secret: &Path, pass: Option<&Path>, files: &[PathBuf]) -> Result<()> {
    let sk = secret_key(secret, pass)?;
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sig = sign::sign_file(&sk, f, &sign::default_trusted_comment(&name))
            .map_err(Error::failed)?;
        let mut out = f.clone().into_os_string();
        out.push(".sig");
        sig.write_file(Path::new(&out)).map_err(Error::failed)?;
    }
    Ok(())
}

/// Every `*.pub` in a directory (sorted), silently none if it is missing.
pub fn keys_in_dir(dir: &Path) -> Result<Vec<sign::PublicKey>> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| sign::PublicKey::read_file(p).map_err(Error::refused))
        .collect()
}

/// `verify -p PUB FILE...` (or `--trust`): checks `FILE.sig` for each.
pub fn verify_files(keys: &[sign::PublicKey], files: &[PathBuf]) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::usage(
            "no public key: give -p KEY.pub or --trust KEY.pub",
        ));
    }
    for f in files {
        let mut sig = f.clone().into_os_string();
        sig.push(".sig");
        let v = sign::verify_file(keys, Path::new(&sig), f)
            .map_err(|e| Error::run(format!("{}: {e}", f.display())))?;
        println!("{}: good signature by key {}", f.display(), v.key_id);
    }
    Ok(())
}
