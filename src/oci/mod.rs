//! OCI images as trees: an image layout on disk (`oci:DIR[:TAG]`) or an
//! image in a registry (`docker://HOST/REPO[:TAG|@sha256:HEX]`).
//!
//! [`pull`] resolves the reference to one image manifest (an index or a
//! manifest list picks the configured platform, linux/amd64 unless told
//! otherwise), checks every blob against its digest, and flattens the
//! layers ([`flatten`]) into one newc `cpio` file in the cache, keyed by
//! the manifest's digest: any tree reader takes it from there. Registry
//! blobs are cached content-addressed beside the cache's other blobs, so
//! an image already pulled costs one `HEAD` of its manifest (a tag is
//! revalidated) or nothing (a digest reference).
//!
//! Nothing here knows about containers.

pub mod flatten;
mod layout;
mod registry;
pub mod spec;

use crate::cache::{Cache, Mode};
use crate::digest::Digest;
use crate::hostdir::Room;
use crate::tree::Source;
use crate::uri::{Location, Uri};
use sha2::{Digest as _, Sha256};
use spec::{Descriptor, Document, ImageConfig};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The largest manifest, index or configuration read: real ones are a few
/// KiB; a server sending more is not sending a manifest.
pub const MAX_DOCUMENT: u64 = 4 * 1024 * 1024;

/// How images are chosen and registries reached, for the whole process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `OS/ARCH[/VARIANT]` picked from indexes and manifest lists.
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    /// Docker's `config.json` with credentials per registry.
    pub auth_file: Option<PathBuf>,
    /// Registries reached over plain http (besides 127.0.0.1 and localhost).
    pub insecure: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            os: "linux".to_string(),
            architecture: "amd64".to_string(),
            variant: None,
            auth_file: None,
            insecure: Vec::new(),
        }
    }
}

impl Settings {
    /// Parses `OS/ARCH[/VARIANT]` into the platform fields.
    pub fn set_platform(&mut self, text: &str) -> Result<(), String> {
        let parts: Vec<&str> = text.split('/').collect();
        let ok =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => {
                (self.os, self.architecture, self.variant) =
                    (os.to_string(), arch.to_string(), None);
            }
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => {
                (self.os, self.architecture, self.variant) =
                    (os.to_string(), arch.to_string(), Some(variant.to_string()));
            }
            _ => {
                return Err(format!(
                    "`{text}`: expected OS/ARCH or OS/ARCH/VARIANT (linux/arm64)"
                ))
            }
        }
        Ok(())
    }

    fn platform(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Sets the process's [`Settings`] (once, from the command line).
pub fn configure(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

fn settings() -> Settings {
    SETTINGS.get().cloned().unwrap_or_default()
}

/// A failed pull: the image's URI, then the cause, on one line.
#[derive(Debug, thiserror::Error)]
#[error("{uri}: {cause}")]
pub struct Error {
    pub uri: String,
    pub cause: String,
}

/// The cause of a failure, before the URI is put in front.
#[derive(Debug)]
pub struct Fault(String);

impl Fault {
    pub fn new(cause: impl Into<String>) -> Fault {
        Fault(cause.into())
    }
}

/// An image flattened into one tree.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// A newc `cpio` file holding the flattened tree; read it, never write it.
    pub tree: PathBuf,
    /// The digest of the image manifest.
    pub manifest: Digest,
    pub config: ImageConfig,
    pub layers: usize,
    /// Bytes downloaded by this pull.
    pub downloaded: u64,
    /// True when the flattened tree was already in the cache.
    pub from_cache: bool,
}

impl Pulled {
    /// How the image runs, as one line: `Entrypoint`, `Cmd`, `User`,
    /// `WorkingDir` and `Env`, those it sets.
    pub fn describe_config(&self) -> String {
        let mut out = vec![format!(
            "platform={}/{}",
            self.config.os, self.config.architecture
        )];
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_default();
        if let Some(c) = &self.config.config {
            if let Some(v) = &c.entrypoint {
                out.push(format!("entrypoint={}", json(v)));
            }
            if let Some(v) = &c.cmd {
                out.push(format!("cmd={}", json(v)));
            }
            if let Some(v) = c.user.as_ref().filter(|v| !v.is_empty()) {
                out.push(format!("user={v}"));
            }
            if let Some(v) = c.working_dir.as_ref().filter(|v| !v.is_empty()) {
                out.push(format!("workdir={v}"));
            }
            if let Some(v) = &c.env {
                out.push(format!("env={}", json(v)));
            }
        }
        out.join(" ")
    }
}

/// True when `uri` names an image.
pub fn is_image(uri: &Uri) -> bool {
    matches!(
        uri.location,
        Location::OciLayout { .. } | Location::Registry(_)
    )
}

/// Reads the image `uri` names and flattens it into the cache.
pub fn pull(uri: &Uri, cache: &Cache, mode: Mode) -> Result<Pulled, Error> {
    let fail = |f: Fault| Error {
        uri: uri.to_string(),
        cause: f.0,
    };
    let settings = settings();
    match &uri.location {
        Location::OciLayout { dir, tag } => {
            let layout = layout::Layout::open(dir).map_err(fail)?;
            let mut store = LayoutStore { layout: &layout };
            let index: Document =
                parse(&layout.index().map_err(fail)?, "index.json").map_err(fail)?;
            let manifests = index.manifests.unwrap_or_default();
            let top = layout::pick_tagged(&manifests, tag.as_deref()).map_err(fail)?;
            let doc = store.document(top).map_err(fail)?;
            let (digest, manifest) =
                resolve(&mut store, &settings, sha256_of(top).map_err(fail)?, &doc)
                    .map_err(fail)?;
            build(uri, cache, &mut store, digest, &manifest)
        }
        Location::Registry(r) => {
            let mut client = registry::Client::new(r, &settings, cache.options()).map_err(fail)?;
            let mut store = RegistryStore {
                client: &mut client,
                cache,
            };
            let (root, doc) = registry::root(&mut store, uri, mode).map_err(fail)?;
            let (digest, manifest) = resolve(&mut store, &settings, root, &doc).map_err(fail)?;
            build(uri, cache, &mut store, digest, &manifest)
        }
        _ => Err(fail(Fault::new("not an image"))),
    }
}

/// Where blobs come from.
trait Store {
    /// A small blob read whole, checked.
    fn document(&mut self, d: &Descriptor) -> Result<Vec<u8>, Fault>;
    /// A local file holding the blob, checked.
    fn blob(&mut self, d: &Descriptor) -> Result<PathBuf, Fault>;
    /// Bytes downloaded so far.
    fn downloaded(&self) -> u64 {
        0
    }
}

struct LayoutStore<'a> {
    layout: &'a layout::Layout,
}

impl Store for LayoutStore<'_> {
    fn document(&mut self, d: &Descriptor) -> Result<Vec<u8>, Fault> {
        self.layout.document(d)
    }
    fn blob(&mut self, d: &Descriptor) -> Result<PathBuf, Fault> {
        self.layout.blob(d)
    }
}

pub(crate) struct RegistryStore<'a> {
    client: &'a mut registry::Client,
    cache: &'a Cache,
}

impl Store for RegistryStore<'_> {
    fn document(&mut self, d: &Descriptor) -> Result<Vec<u8>, Fault> {
        if d.size > MAX_DOCUMENT {
            return Err(too_large(d));
        }
        let path = self.blob(d)?;
        let bytes = read_limited(
            File::open(&path).map_err(|e| Fault::new(format!("cached {}: {e}", d.digest)))?,
            MAX_DOCUMENT,
            &d.digest,
        )?;
        check_blob(d, &sha256_of(d)?, digest_bytes(&bytes), bytes.len() as u64)?;
        Ok(bytes)
    }
    fn blob(&mut self, d: &Descriptor) -> Result<PathBuf, Fault> {
        self.client.blob(self.cache, d)
    }
    fn downloaded(&self) -> u64 {
        self.client.downloaded
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Fault> {
    serde_json::from_slice(bytes).map_err(|e| Fault::new(format!("{what}: not valid JSON: {e}")))
}

/// Follows indexes down to one image manifest: by platform in an index or
/// manifest list. Returns the manifest's digest and content.
fn resolve(
    store: &mut dyn Store,
    settings: &Settings,
    mut digest: Digest,
    bytes: &[u8],
) -> Result<(Digest, Document), Fault> {
    let mut doc: Document = parse(bytes, &format!("manifest sha256:{digest}"))?;
    // an index may name an index; a few levels are plenty
    for _ in 0..4 {
        let is_index = match doc.media_type.as_deref() {
            Some(spec::OCI_INDEX | spec::DOCKER_LIST) => true,
            Some(spec::OCI_MANIFEST | spec::DOCKER_MANIFEST) => false,
            Some(other) if doc.manifests.is_none() && doc.layers.is_none() => {
                return Err(Fault::new(format!(
                    "manifest sha256:{digest}: unsupported media type {other}"
                )))
            }
            _ => doc.manifests.is_some(),
        };
        if !is_index {
            return Ok((digest, doc));
        }
        let manifests = doc.manifests.clone().unwrap_or_default();
        let d = pick_platform(&manifests, settings)?;
        digest = sha256_of(d)?;
        let bytes = store.document(d)?;
        doc = parse(&bytes, &format!("manifest {}", d.digest))?;
    }
    Err(Fault::new("indexes nested too deep"))
}

fn pick_platform<'a>(manifests: &'a [Descriptor], s: &Settings) -> Result<&'a Descriptor, Fault> {
    let fits = |d: &&Descriptor| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == s.os
                && p.architecture == s.architecture
                && (s.variant.is_none() || p.variant == s.variant)
        })
    };
    if let Some(d) = manifests.iter().find(fits) {
        return Ok(d);
    }
    if let [only] = manifests {
        if only.platform.is_none() {
            return Ok(only);
        }
    }
    let offered: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    Err(Fault::new(format!(
        "no image for platform {} (offered: {}; choose with --platform OS/ARCH)",
        s.platform(),
        if offered.is_empty() {
            "none".to_string()
        } else {
            offered.join(", ")
        }
    )))
}

/// Reads the configuration, then flattens the layers unless the tree of
/// this manifest is cached already.
fn build(
    uri: &Uri,
    cache: &Cache,
    store: &mut dyn Store,
    digest: Digest,
    manifest: &Document,
) -> Result<Pulled, Error> {
    let fail = |f: Fault| Error {
        uri: uri.to_string(),
        cause: f.0,
    };
    let config_d = manifest.config.as_ref().ok_or_else(|| {
        fail(Fault::new(format!(
            "manifest sha256:{digest} names no config"
        )))
    })?;
    let config: ImageConfig =
        parse(&store.document(config_d).map_err(fail)?, "image config").map_err(fail)?;
    let layers = manifest.layers.clone().unwrap_or_default();
    for l in &layers {
        if !layer_type_ok(&l.media_type) {
            return Err(fail(Fault::new(format!(
                "layer {}: unsupported media type {} (tar, tar+gzip and tar+zstd are read)",
                l.digest, l.media_type
            ))));
        }
    }
    let trees = cache.dir().join("oci");
    fs::create_dir_all(&trees)
        .map_err(|e| fail(Fault::new(format!("{}: {e}", trees.display()))))?;
    let tree = trees.join(format!("{}.cpio", digest.to_hex()));
    let from_cache = tree.is_file();
    if !from_cache {
        let mut paths = Vec::with_capacity(layers.len());
        for l in &layers {
            paths.push(store.blob(l).map_err(fail)?);
        }
        write_tree(&layers, &paths, &tree, &cache.dir().join("tmp")).map_err(fail)?;
    }
    Ok(Pulled {
        tree,
        manifest: digest,
        config,
        layers: layers.len(),
        downloaded: store.downloaded(),
        from_cache,
    })
}

fn layer_type_ok(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd"
    )
}

/// Flattens the layers into a temporary file beside the cache, then
/// renames it to `tree`: a failure leaves nothing behind.
fn write_tree(
    layers: &[Descriptor],
    paths: &[PathBuf],
    tree: &Path,
    tmp: &Path,
) -> Result<(), Fault> {
    let io_fault = |e: io::Error| Fault::new(e.to_string());
    fs::create_dir_all(tmp).map_err(io_fault)?;
    let room = Room::of(tmp).map_err(io_fault)?;
    let temp = tempfile::Builder::new()
        .prefix(".oci-tree.")
        .tempfile_in(tmp)
        .map_err(io_fault)?;
    let out = Capped {
        inner: BufWriter::with_capacity(256 * 1024, temp.as_file()),
        left: room.usable,
        room: room.describe(),
    };
    let mut writer = crate::cpio::Writer::new(out, "the flattened image");
    let mut open = |i: usize| -> io::Result<(Box<dyn Source>, String)> {
        let name = format!("layer {} ({})", i + 1, layers[i].digest);
        let file = File::open(&paths[i])?;
        let archive = crate::archive::open(file, &name)?;
        if archive.format() != crate::archive::Format::Tar {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: a cpio archive, not a tar layer"),
            ));
        }
        Ok((Box::new(archive), name))
    };
    flatten::flatten(layers.len(), &mut open, &mut writer).map_err(io_fault)?;
    let dropped = writer.xattrs_dropped();
    if dropped > 0 {
        eprintln!(
            "warning: {dropped} extended attributes of the image's layers not kept (the flattened image is a cpio archive)"
        );
    }
    let mut out = writer.finish().map_err(io_fault)?;
    out.inner.flush().map_err(io_fault)?;
    drop(out);
    temp.as_file().sync_all().map_err(io_fault)?;
    temp.persist(tree).map_err(|e| io_fault(e.error))?;
    Ok(())
}

/// A writer that stops before the flattened tree would eat the reserve
/// of the cache's file system: a layer that decompresses without end
/// must not fill the disk.
struct Capped<W> {
    inner: W,
    left: u64,
    room: String,
}

impl<W: Write> Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::other(format!(
                "the flattened image would fill {}",
                self.room
            )));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn digest_bytes(bytes: &[u8]) -> Digest {
    Digest(Sha256::digest(bytes).into())
}

/// The sha256 a descriptor names.
pub(crate) fn sha256_of(d: &Descriptor) -> Result<Digest, Fault> {
    d.sha256().ok_or_else(|| {
        Fault::new(format!(
            "unsupported digest `{}` (sha256:HEX is read)",
            d.digest
        ))
    })
}

pub(crate) fn too_large(d: &Descriptor) -> Fault {
    Fault::new(format!(
        "{} claims {} bytes; a manifest or config is at most {MAX_DOCUMENT}",
        d.digest, d.size
    ))
}

/// Compares a blob's content with its descriptor.
pub(crate) fn check_blob(
    d: &Descriptor,
    digest: &Digest,
    actual: Digest,
    bytes: u64,
) -> Result<(), Fault> {
    if actual != *digest {
        return Err(Fault::new(format!(
            "blob {} has sha256:{actual}: digest mismatch",
            d.digest
        )));
    }
    if bytes != d.size {
        return Err(Fault::new(format!(
            "blob {} holds {bytes} bytes, its descriptor says {}",
            d.digest, d.size
        )));
    }
    Ok(())
}

/// Reads at most `limit` bytes; more is an error naming `what`.
pub(crate) fn read_limited(r: impl Read, limit: u64, what: &str) -> Result<Vec<u8>, Fault> {
    let mut out = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Fault::new(format!("{what}: {e}")))?;
    if out.len() as u64 > limit {
        return Err(Fault::new(format!(
            "{what}: larger than {limit} bytes (not a manifest)"
        )));
    }
    Ok(out)
}
