//! A small blocking client of the Distribution API v2 (what Docker's
//! registries and their kin speak), on ureq: manifests and blobs by GET,
//! a tag revalidated by HEAD, anonymous or with basic credentials (from
//! the URI or Docker's `config.json`), bearer tokens fetched when a
//! registry answers `401` with `WWW-Authenticate: Bearer realm=…`.
//!
//! https always, plain http only for 127.0.0.1, localhost and `::1`, and
//! for registries named insecure. Blobs land in the cache's content
//! store (`blobs/sha256/HEX`), each hashed and sized against its
//! descriptor before it is renamed there.

use super::spec::{self, AuthFile, Descriptor, TokenAnswer};
use super::MAX_DOCUMENT;
use super::{check_blob, digest_bytes, read_limited, sha256_of, Fault, RegistryStore, Settings};
use crate::cache::{Cache, Mode};
use crate::digest::Digest;
use crate::hostdir::Room;
use crate::transport::{FetchOptions, Fetched, Validators};
use crate::uri::{ImageReference, RegistryLocation, Uri};
use base64::Engine as _;
use sha2::Digest as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;
use ureq::http::Response;
use ureq::Body;

/// Redirects followed for one request (blob stores redirect once).
const MAX_HOPS: u32 = 8;

pub struct Client {
    /// `https://host[:port]`.
    base: String,
    /// The host the credentials belong to.
    host: String,
    repo: String,
    reference: ImageReference,
    basic: Option<(String, String)>,
    /// The `Authorization` value that the registry accepted or asked for.
    auth: Option<String>,
    opts: FetchOptions,
    mode: Mode,
    insecure: Vec<String>,
    pub downloaded: u64,
}

fn loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

impl Client {
    pub fn new(
        r: &RegistryLocation,
        settings: &Settings,
        opts: &FetchOptions,
    ) -> Result<Client, Fault> {
        // Docker Hub's names: `docker.io/debian` is `library/debian` there
        let (api_host, repo) = match r.host.as_str() {
            "docker.io" | "index.docker.io" | "registry-1.docker.io" => (
                "registry-1.docker.io".to_string(),
                if r.repo.contains('/') {
                    r.repo.clone()
                } else {
                    format!("library/{}", r.repo)
                },
            ),
            h => (h.to_string(), r.repo.clone()),
        };
        let hostport = match r.port {
            Some(p) => format!("{api_host}:{p}"),
            None => api_host.clone(),
        };
        let plain = loopback(&api_host)
            || settings
                .insecure
                .iter()
                .any(|i| i == &hostport || i == &api_host || i == &r.host);
        let basic = match (&r.user, &r.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            (Some(u), None) => Some((u.clone(), String::new())),
            _ => match &settings.auth_file {
                Some(file) => credentials(file, &r.host, &hostport)?,
                None => None,
            },
        };
        Ok(Client {
            base: format!("{}://{hostport}", if plain { "http" } else { "https" }),
            host: hostport,
            repo,
            reference: r.reference.clone(),
            basic,
            auth: None,
            opts: opts.clone(),
            mode: Mode::Online,
            insecure: settings.insecure.clone(),
            downloaded: 0,
        })
    }

    fn basic_header(&self) -> Option<String> {
        self.basic.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
    }

    /// One request, following redirects and answering one authentication
    /// challenge. Credentials go to the registry's own host only.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        accept: Option<&str>,
    ) -> Result<Response<Body>, Fault> {
        let started = Instant::now();
        let deadline = self.opts.total_timeout.map(|t| started + t);
        let mut url = format!("{}{path}", self.base);
        let mut hops = 0;
        let mut challenged = false;
        loop {
            let target =
                Uri::parse(&url, Path::new("/")).map_err(|e| Fault::new(format!("{url}: {e}")))?;
            let crate::uri::Location::Http {
                host, port, secure, ..
            } = &target.location
            else {
                return Err(Fault::new(format!("{url}: not an http(s) URL")));
            };
            let at_registry = match port {
                Some(p) => format!("{host}:{p}") == self.host,
                None => *host == self.host,
            };
            let agent = crate::transport::http_agent(&target, &self.opts, deadline)
                .map_err(|e| Fault::new(e.to_string()))?;
            let mut req = match method {
                "HEAD" => agent.head(&url),
                _ => agent.get(&url),
            };
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if at_registry {
                if let Some(auth) = &self.auth {
                    req = req.header("Authorization", auth.as_str());
                }
            }
            let resp = req.call().map_err(|e| {
                Fault::new(crate::transport::map_ureq(&target, &url, e).to_string())
            })?;
            let status = resp.status().as_u16();
            if status == 401 && at_registry && !challenged {
                challenged = true;
                let challenge = header(&resp, "www-authenticate").unwrap_or_default();
                self.answer(&challenge, deadline)?;
                continue;
            }
            if (300..400).contains(&status) && status != 304 {
                let Some(location) = header(&resp, "location") else {
                    return Ok(resp);
                };
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(Fault::new(format!("{url}: more than {MAX_HOPS} redirects")));
                }
                let next = crate::transport::resolve_location(&url, location.trim());
                if *secure && next.starts_with("http://") {
                    return Err(Fault::new(format!(
                        "{url} → {}: refusing a redirect from https to plain http",
                        crate::uri::redact(&next)
                    )));
                }
                url = next;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Answers a `WWW-Authenticate` challenge: basic credentials, or a
    /// bearer token from the realm it names.
    fn answer(&mut self, challenge: &str, deadline: Option<Instant>) -> Result<(), Fault> {
        let (scheme, params) = parse_challenge(challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let Some(h) = self.basic_header() else {
                    return Err(Fault::new(
                        "the registry asks for credentials: give them in the URI (docker://USER:PASSWORD@HOST/…) or with --registry-auth FILE",
                    ));
                };
                self.auth = Some(h);
                Ok(())
            }
            "bearer" => {
                let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let realm =
                    get("realm").ok_or_else(|| Fault::new("bearer challenge without a realm"))?;
                let scope =
                    get("scope").unwrap_or_else(|| format!("repository:{}:pull", self.repo));
                let mut url = realm.clone();
                url.push(if url.contains('?') { '&' } else { '?' });
                if let Some(service) = get("service") {
                    url.push_str(&format!("service={}&", encode(&service)));
                }
                url.push_str(&format!("scope={}", encode(&scope)));
                let target = Uri::parse(&url, Path::new("/"))
                    .map_err(|e| Fault::new(format!("token realm {realm}: {e}")))?;
                let crate::uri::Location::Http { secure, host, .. } = &target.location else {
                    return Err(Fault::new(format!(
                        "token realm {realm}: not an http(s) URL"
                    )));
                };
                if !*secure && !loopback(host) && !self.insecure.iter().any(|i| i == host) {
                    return Err(Fault::new(format!(
                        "token realm {realm}: plain http (credentials and tokens need https)"
                    )));
                }
                let agent = crate::transport::http_agent(&target, &self.opts, deadline)
                    .map_err(|e| Fault::new(e.to_string()))?;
                let mut req = agent.get(&url);
                if let Some(h) = self.basic_header() {
                    req = req.header("Authorization", h.as_str());
                }
                let mut resp = req.call().map_err(|e| {
                    Fault::new(crate::transport::map_ureq(&target, &realm, e).to_string())
                })?;
                if !resp.status().is_success() {
                    return Err(Fault::new(format!(
                        "token service {realm} answered HTTP {}",
                        resp.status().as_u16()
                    )));
                }
                let body = read_limited(resp.body_mut().as_reader(), MAX_DOCUMENT, "token answer")?;
                let t: TokenAnswer = super::parse(&body, "token answer")?;
                let token = t
                    .token
                    .or(t.access_token)
                    .filter(|t| !t.is_empty() && !t.contains(['\r', '\n']))
                    .ok_or_else(|| Fault::new(format!("token service {realm} gave no token")))?;
                self.auth = Some(format!("Bearer {token}"));
                Ok(())
            }
            _ => Err(Fault::new(format!(
                "the registry asks for authentication this client does not speak: `{challenge}`"
            ))),
        }
    }

    fn status_fault(&self, what: &str, resp: &Response<Body>) -> Fault {
        let s = resp.status();
        let hint = match s.as_u16() {
            401 | 403 => " (access refused: check the credentials)",
            404 => " (no such repository, tag or blob)",
            _ => "",
        };
        Fault::new(format!(
            "{what}: registry answered HTTP {} {}{hint}",
            s.as_u16(),
            s.canonical_reason().unwrap_or("")
        ))
    }

    fn manifest_path(&self, reference: &str) -> String {
        format!("/v2/{}/manifests/{reference}", self.repo)
    }

    /// GETs a manifest, checked against `expected` when given.
    fn get_manifest(
        &mut self,
        reference: &str,
        expected: Option<Digest>,
    ) -> Result<(Digest, Vec<u8>), Fault> {
        let what = format!("manifest {reference}");
        let mut resp = self.send("GET", &self.manifest_path(reference), Some(spec::ACCEPT))?;
        if !resp.status().is_success() {
            return Err(self.status_fault(&what, &resp));
        }
        if let Some(n) = header(&resp, "content-length").and_then(|v| v.trim().parse::<u64>().ok())
        {
            if n > MAX_DOCUMENT {
                return Err(Fault::new(format!(
                    "{what}: the registry announces {n} bytes, more than a manifest's {MAX_DOCUMENT}"
                )));
            }
        }
        let announced = header(&resp, "docker-content-digest");
        let bytes = read_limited(resp.body_mut().as_reader(), MAX_DOCUMENT, &what)?;
        self.downloaded += bytes.len() as u64;
        let actual = digest_bytes(&bytes);
        let claimed = expected.or_else(|| {
            announced
                .as_deref()
                .and_then(|a| a.trim().strip_prefix("sha256:"))
                .and_then(Digest::from_hex)
        });
        if let Some(c) = claimed.filter(|c| *c != actual) {
            return Err(Fault::new(format!(
                "{what}: content has sha256:{actual}, not sha256:{c}: digest mismatch"
            )));
        }
        Ok((actual, bytes))
    }

    /// The digest a `HEAD` of the tag reports, if the registry says.
    fn head_tag(&mut self, tag: &str) -> Result<Option<Digest>, Fault> {
        let resp = self.send("HEAD", &self.manifest_path(tag), Some(spec::ACCEPT))?;
        if !resp.status().is_success() {
            return Err(self.status_fault(&format!("manifest {tag}"), &resp));
        }
        Ok(header(&resp, "docker-content-digest")
            .as_deref()
            .and_then(|a| a.trim().strip_prefix("sha256:"))
            .and_then(Digest::from_hex))
    }

    /// The blob `d` names, from the cache or downloaded into it.
    pub fn blob(&mut self, cache: &Cache, d: &Descriptor) -> Result<PathBuf, Fault> {
        let digest = sha256_of(d)?;
        let path = cache.blob_path(&digest);
        if let Ok((actual, bytes)) = Digest::of_file(&path) {
            if actual == digest && bytes == d.size {
                return Ok(path);
            }
            let _ = fs::remove_file(&path);
        }
        if self.mode == Mode::Offline {
            return Err(Fault::new(format!(
                "blob {} not in the cache (offline)",
                d.digest
            )));
        }
        if let Some(max) = self.opts.max_download.filter(|m| d.size > *m) {
            return Err(Fault::new(format!(
                "blob {} claims {} bytes, more than the download limit of {max} (--max-download)",
                d.digest, d.size
            )));
        }
        let tmp = cache.dir().join("tmp");
        let room = Room::of(&tmp).map_err(|e| Fault::new(format!("{}: {e}", tmp.display())))?;
        if d.size > room.usable {
            return Err(Fault::new(format!(
                "blob {} claims {} bytes: it would fill {}",
                d.digest,
                d.size,
                room.describe()
            )));
        }
        let started = Instant::now();
        let mut resp = self.send(
            "GET",
            &format!("/v2/{}/blobs/{}", self.repo, d.digest),
            None,
        )?;
        if !resp.status().is_success() {
            return Err(self.status_fault(&format!("blob {}", d.digest), &resp));
        }
        let expected = header(&resp, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let temp = tempfile::Builder::new()
            .prefix(".blob.")
            .tempfile_in(&tmp)
            .map_err(|e| Fault::new(format!("{}: {e}", tmp.display())))?
            .into_temp_path();
        // one byte past the descriptor's size tells a longer body
        let mut reader = resp.body_mut().as_reader().take(d.size.saturating_add(1));
        let fetched = crate::transport::receive(
            &format!("blob {}", d.digest),
            &mut reader,
            &temp,
            expected,
            Validators::Http {
                etag: None,
                last_modified: None,
            },
            &self.opts,
            started,
        )
        .map_err(|e| Fault::new(e.to_string()))?;
        let Fetched::Downloaded { bytes, sha256, .. } = fetched else {
            return Err(Fault::new(format!("blob {}: nothing received", d.digest)));
        };
        self.downloaded += bytes;
        check_blob(d, &digest, sha256, bytes)?;
        temp.persist(&path)
            .map_err(|e| Fault::new(format!("{}: {}", path.display(), e.error)))?;
        Ok(path)
    }
}

/// The root document of the reference, and its digest: a tag's manifest
/// is revalidated with a `HEAD` when cached (offline, it is taken as it
/// is); a digest's is read from the cache when there.
pub(super) fn root(
    store: &mut RegistryStore<'_>,
    uri: &Uri,
    mode: Mode,
) -> Result<(Digest, Vec<u8>), Fault> {
    store.client.mode = mode;
    let cache = store.cache;
    let refs = cache.dir().join("oci").join("refs");
    let key = hex_of(uri.resource_key().as_bytes());
    let ref_file = refs.join(&key);
    let cached_blob = |d: Digest| -> Option<Vec<u8>> {
        let bytes = fs::read(cache.blob_path(&d)).ok()?;
        (bytes.len() as u64 <= MAX_DOCUMENT && digest_bytes(&bytes) == d).then_some(bytes)
    };
    let keep = |d: Digest, bytes: &[u8]| -> Result<(), Fault> {
        let io = |e: std::io::Error| Fault::new(format!("cache: {e}"));
        let path = cache.blob_path(&d);
        if !path.exists() {
            let mut t = tempfile::NamedTempFile::new_in(cache.dir().join("tmp")).map_err(io)?;
            std::io::Write::write_all(&mut t, bytes).map_err(io)?;
            t.persist(&path).map_err(|e| io(e.error))?;
        }
        Ok(())
    };
    let reference = store.client.reference.clone();
    match reference {
        ImageReference::Digest(d) => {
            if let Some(bytes) = cached_blob(d) {
                return Ok((d, bytes));
            }
            if mode == Mode::Offline {
                return Err(Fault::new("not in the cache (offline)"));
            }
            let (d, bytes) = store.client.get_manifest(&format!("sha256:{d}"), Some(d))?;
            keep(d, &bytes)?;
            Ok((d, bytes))
        }
        ImageReference::Tag(tag) => {
            let cached = fs::read_to_string(&ref_file)
                .ok()
                .and_then(|t| Digest::from_hex(t.trim()))
                .and_then(|d| cached_blob(d).map(|b| (d, b)));
            if mode == Mode::Offline {
                return cached.ok_or_else(|| Fault::new("not in the cache (offline)"));
            }
            if let Some((d, bytes)) = &cached {
                match store.client.head_tag(&tag) {
                    Ok(Some(now)) if now == *d => return Ok((*d, bytes.clone())),
                    Ok(_) => {}
                    Err(_) if mode == Mode::AllowStale => {
                        eprintln!("warning: {uri}: using the cached manifest; the registry could not be reached");
                        return Ok((*d, bytes.clone()));
                    }
                    Err(e) => return Err(e),
                }
            }
            let (d, bytes) = store.client.get_manifest(&tag, None)?;
            keep(d, &bytes)?;
            fs::create_dir_all(&refs)
                .and_then(|()| {
                    let mut t = tempfile::NamedTempFile::new_in(&refs)?;
                    std::io::Write::write_all(&mut t, format!("{}\n", d.to_hex()).as_bytes())?;
                    t.persist(&ref_file).map_err(|e| e.error)?;
                    Ok(())
                })
                .map_err(|e| Fault::new(format!("cache {}: {e}", refs.display())))?;
            Ok((d, bytes))
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    Digest(sha2::Sha256::digest(bytes).into()).to_hex()
}

fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Bearer realm="…",service="…",scope="…"` → ("Bearer", [(name, value)]).
/// Values may be quoted (with `\` escapes) and hold commas.
pub fn parse_challenge(text: &str) -> (String, Vec<(String, String)>) {
    let text = text.trim();
    let (scheme, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        params.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    (scheme.to_string(), params)
}

/// The credentials Docker's `config.json` holds for the registry: keyed
/// by `host[:port]`, possibly written as a URL
/// (`https://index.docker.io/v1/` for Docker Hub).
fn credentials(file: &Path, host: &str, hostport: &str) -> Result<Option<(String, String)>, Fault> {
    let f = fs::File::open(file)
        .map_err(|e| Fault::new(format!("--registry-auth {}: {e}", file.display())))?;
    let text = read_limited(
        f,
        MAX_DOCUMENT,
        &format!("--registry-auth {}", file.display()),
    )?;
    let auth: AuthFile = super::parse(&text, &format!("--registry-auth {}", file.display()))?;
    let hub = matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    );
    let entry = auth.auths.iter().find(|(k, _)| {
        let k = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let k = k.split('/').next().unwrap_or(k);
        k == hostport
            || k == host
            || (hub && matches!(k, "docker.io" | "index.docker.io" | "registry-1.docker.io"))
    });
    let Some((_, e)) = entry else {
        return Ok(None);
    };
    if let (Some(u), Some(p)) = (&e.username, &e.password) {
        return Ok(Some((u.clone(), p.clone())));
    }
    let Some(a) = &e.auth else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(a.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            Fault::new(format!(
                "--registry-auth {}: `auth` is not base64 of USER:PASSWORD",
                file.display()
            ))
        })?;
    let (u, p) = decoded.split_once(':').ok_or_else(|| {
        Fault::new(format!(
            "--registry-auth {}: `auth` is not base64 of USER:PASSWORD",
            file.display()
        ))
    })?;
    Ok(Some((u.to_string(), p.to_string())))
}

#[cfg(test)]
mod tests {
    use super::parse_challenge;

    #[test]
    fn bearer_challenges_parse() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(
            p,
            [
                (
                    "realm".to_string(),
                    "https://auth.docker.io/token".to_string()
                ),
                ("service".to_string(), "registry.docker.io".to_string()),
                (
                    "scope".to_string(),
                    "repository:library/debian:pull,push".to_string()
                ),
            ]
        );
        let (s, p) = parse_challenge(r#"Basic realm="x\"y""#);
        assert_eq!(s, "Basic");
        assert_eq!(p, [("realm".to_string(), "x\"y".to_string())]);
    }
}
