//! URIs naming artifacts: local files, HTTP(S) resources and FTP files,
//! optionally pinned to a content digest with `#sha256=HEX`, and OCI
//! images (`oci:DIR[:TAG]` for an image layout on disk,
//! `docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX]` for a registry).

use crate::digest::Digest;
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

/// Why a URI was refused. The URI is quoted with any password hidden.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("empty URI")]
    Empty,
    #[error("{uri}: unknown scheme `{scheme}` (expected file, http, https, ftp, oci or docker)")]
    UnknownScheme { uri: String, scheme: String },
    #[error("{uri}: bad host `{host}`: {reason}")]
    BadHost {
        uri: String,
        host: String,
        reason: &'static str,
    },
    #[error("{uri}: bad port `{port}`")]
    BadPort { uri: String, port: String },
    #[error("{uri}: bad pin `{fragment}`: expected #sha256= followed by 64 hexadecimal digits")]
    BadPin { uri: String, fragment: String },
    #[error("{uri}: unsupported fragment `#{fragment}` (only #sha256=HEX pins content)")]
    BadFragment { uri: String, fragment: String },
    #[error("{uri}: bad percent-encoding in {part}")]
    BadPercent { uri: String, part: &'static str },
    #[error("{uri}: no file path")]
    NoPath { uri: String },
    #[error("{uri}: {reason}")]
    Unsupported { uri: String, reason: &'static str },
}

/// Where an artifact lives.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A local file; `as_url` remembers whether it was written `file://...`.
    File {
        path: PathBuf,
        as_url: bool,
    },
    /// An HTTP or HTTPS resource. `target` is the path and query exactly as
    /// written (still percent-encoded): servers get it byte for byte.
    Http {
        secure: bool,
        host: String,
        port: Option<u16>,
        target: String,
    },
    Ftp(FtpLocation),
    /// An OCI image layout directory and the tag naming an image in it
    /// (`org.opencontainers.image.ref.name`).
    OciLayout {
        dir: PathBuf,
        tag: Option<String>,
    },
    /// An image in a registry speaking the Distribution API v2.
    Registry(Box<RegistryLocation>),
}

/// An image in a registry, with user and password percent-decoded.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RegistryLocation {
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// `library/debian`, lower case components separated by `/`.
    pub repo: String,
    pub reference: ImageReference,
}

/// Which image of a repository: a tag (revalidated on each run) or a
/// manifest digest (immutable).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ImageReference {
    Tag(String),
    Digest(Digest),
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageReference::Tag(t) => write!(f, ":{t}"),
            ImageReference::Digest(d) => write!(f, "@sha256:{d}"),
        }
    }
}

/// An FTP file, with user, password and path percent-decoded.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FtpLocation {
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    /// Absolute path on the server, decoded, beginning with `/`.
    pub path: String,
}

/// A parsed URI with its optional content pin.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Uri {
    pub location: Location,
    pub pin: Option<Digest>,
}

const PIN_PREFIX: &str = "sha256=";

impl Uri {
    /// Parses `text`; a plain relative path is taken relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Uri, UriError> {
        if text.is_empty() {
            return Err(UriError::Empty);
        }
        let shown = redact(text);
        if let Some(layout) = text.strip_prefix(OCI_PREFIX) {
            return parse_oci_layout(layout, base, &shown);
        }
        match split_scheme(text) {
            Some((scheme, rest)) => {
                let (body, fragment) = match rest.split_once('#') {
                    Some((b, f)) => (b, Some(f)),
                    None => (rest, None),
                };
                let pin = match fragment {
                    None => None,
                    Some(f) => Some(parse_pin(f, &shown)?),
                };
                let location = match scheme.to_ascii_lowercase().as_str() {
                    "file" => parse_file_url(body, &shown)?,
                    "http" => parse_http(body, false, &shown)?,
                    "https" => parse_http(body, true, &shown)?,
                    "ftp" => Location::Ftp(parse_ftp(body, &shown)?),
                    "docker" => {
                        if pin.is_some() {
                            return Err(image_pin(&shown));
                        }
                        Location::Registry(Box::new(parse_registry(body, &shown)?))
                    }
                    _ => {
                        return Err(UriError::UnknownScheme {
                            uri: shown,
                            scheme: scheme.to_string(),
                        })
                    }
                };
                Ok(Uri { location, pin })
            }
            None => {
                // A `#` in a plain path is part of the file name unless it
                // introduces a pin: local names may legitimately contain `#`.
                let (path, pin) = match text.rsplit_once('#') {
                    Some((p, f)) if f.starts_with(PIN_PREFIX) => (p, Some(parse_pin(f, &shown)?)),
                    _ => (text, None),
                };
                if path.is_empty() {
                    return Err(UriError::NoPath { uri: shown });
                }
                let path = Path::new(path);
                let full = if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    base.join(path)
                };
                Ok(Uri {
                    location: Location::File {
                        path: normalize(&full),
                        as_url: false,
                    },
                    pin,
                })
            }
        }
    }

    /// The last component of the path, for naming staged files.
    pub fn file_name_hint(&self) -> String {
        let path = match &self.location {
            Location::File { path, .. } => path.to_string_lossy().into_owned(),
            Location::Http { target, .. } => {
                target.split(['?', '#']).next().unwrap_or("").to_string()
            }
            Location::Ftp(f) => f.path.clone(),
            Location::OciLayout { dir, .. } => dir.to_string_lossy().into_owned(),
            Location::Registry(r) => r.repo.clone(),
        };
        path.rsplit('/')
            .find(|c| !c.is_empty())
            .unwrap_or("artifact")
            .to_string()
    }

    /// The same location with `suffix` added to its path (`URI.sig`),
    /// without the pin.
    pub fn with_suffix(&self, suffix: &str) -> Uri {
        let location = match &self.location {
            Location::File { path, as_url } => {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                Location::File {
                    path: PathBuf::from(p),
                    as_url: *as_url,
                }
            }
            Location::Http {
                secure,
                host,
                port,
                target,
            } => {
                let (path, query) = match target.split_once('?') {
                    Some((p, q)) => (p, format!("?{q}")),
                    None => (target.as_str(), String::new()),
                };
                Location::Http {
                    secure: *secure,
                    host: host.clone(),
                    port: *port,
                    target: format!("{path}{suffix}{query}"),
                }
            }
            Location::Ftp(f) => {
                let mut f = f.clone();
                f.path.push_str(suffix);
                Location::Ftp(f)
            }
            // an image is many blobs, each checked by its digest: nothing
            // sits beside it
            image @ (Location::OciLayout { .. } | Location::Registry(_)) => image.clone(),
        };
        Uri {
            location,
            pin: None,
        }
    }

    /// The local path, for `file` locations.
    pub fn local_path(&self) -> Option<&Path> {
        match &self.location {
            Location::File { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The same location without the pin.
    pub fn without_pin(&self) -> Uri {
        Uri {
            location: self.location.clone(),
            pin: None,
        }
    }

    /// A stable text naming the resource (pin and password excluded), used
    /// to key cached state: the same resource pinned differently or reached
    /// with another password is still the same resource.
    pub fn resource_key(&self) -> String {
        self.without_pin().to_string()
    }

    /// The URL sent to an HTTP client (no fragment).
    pub fn http_url(&self) -> Option<String> {
        match &self.location {
            Location::Http {
                secure,
                host,
                port,
                target,
            } => Some(format!(
                "{}://{}{}{}",
                if *secure { "https" } else { "http" },
                host,
                port.map(|p| format!(":{p}")).unwrap_or_default(),
                target
            )),
            _ => None,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::File { path, as_url } => {
                if *as_url {
                    write!(f, "file://{}", encode_path(&path.to_string_lossy()))?;
                } else {
                    write!(f, "{}", path.display())?;
                }
            }
            Location::Http { .. } => {
                write!(f, "{}", self.http_url().unwrap_or_default())?;
            }
            Location::Ftp(loc) => {
                write!(f, "ftp://")?;
                write_userinfo(f, loc.user.as_deref(), loc.password.is_some())?;
                write!(f, "{}", loc.host)?;
                if loc.port != 21 {
                    write!(f, ":{}", loc.port)?;
                }
                write!(f, "{}", encode_path(&loc.path))?;
            }
            Location::OciLayout { dir, tag } => {
                write!(f, "{OCI_PREFIX}{}", dir.display())?;
                if let Some(tag) = tag {
                    write!(f, ":{tag}")?;
                }
            }
            Location::Registry(r) => {
                write!(f, "docker://")?;
                write_userinfo(f, r.user.as_deref(), r.password.is_some())?;
                write!(f, "{}", r.host)?;
                if let Some(port) = r.port {
                    write!(f, ":{port}")?;
                }
                write!(f, "/{}{}", r.repo, r.reference)?;
            }
        }
        if let Some(pin) = &self.pin {
            write!(f, "#sha256={pin}")?;
        }
        Ok(())
    }
}

/// `user[:***]@`, the password hidden; nothing without a user.
fn write_userinfo(f: &mut fmt::Formatter<'_>, user: Option<&str>, password: bool) -> fmt::Result {
    let Some(user) = user else {
        return Ok(());
    };
    write!(f, "{}", encode_userinfo(user))?;
    if password {
        write!(f, ":***")?;
    }
    write!(f, "@")
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uri({self})")
    }
}

/// `scheme://rest` → (scheme, rest). Anything else is a plain path.
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    if first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
    {
        Some((scheme, rest))
    } else {
        None
    }
}

/// Hides the password of `scheme://user:pass@host...` in raw text.
pub fn redact(text: &str) -> String {
    let Some((scheme, rest)) = split_scheme(text) else {
        return text.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => text.to_string(),
        },
        None => text.to_string(),
    }
}

const OCI_PREFIX: &str = "oci:";

fn image_pin(shown: &str) -> UriError {
    UriError::Unsupported {
        uri: shown.to_string(),
        reason: "an image is not pinned by #sha256= (its blobs are checked by their digests; name a manifest with docker://HOST/REPO@sha256:HEX)",
    }
}

/// A tag as the Distribution API allows one.
fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    tag.len() <= 128
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `oci:DIR[:TAG]`: the tag follows the last `:` after the last `/`.
fn parse_oci_layout(text: &str, base: &Path, shown: &str) -> Result<Uri, UriError> {
    if text.contains('#') {
        return Err(image_pin(shown));
    }
    let last = text.rfind('/').map_or(0, |i| i + 1);
    let (dir, tag) = match text[last..].rfind(':') {
        Some(i) => (&text[..last + i], Some(&text[last + i + 1..])),
        None => (text, None),
    };
    if dir.is_empty() {
        return Err(UriError::NoPath {
            uri: shown.to_string(),
        });
    }
    if let Some(tag) = tag.filter(|t| !valid_tag(t)) {
        return Err(UriError::Unsupported {
            uri: shown.to_string(),
            reason: if tag.is_empty() {
                "empty tag after `:`"
            } else {
                "a tag is 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
            },
        });
    }
    let dir = Path::new(dir);
    let full = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        base.join(dir)
    };
    Ok(Uri {
        location: Location::OciLayout {
            dir: normalize(&full),
            tag: tag.map(str::to_string),
        },
        pin: None,
    })
}

/// `[user[:password]@]host[:port]/repo[:tag|@sha256:hex]`.
fn parse_registry(body: &str, shown: &str) -> Result<RegistryLocation, UriError> {
    let unsupported = |reason| UriError::Unsupported {
        uri: shown.to_string(),
        reason,
    };
    let end = body.find('/').ok_or_else(|| UriError::NoPath {
        uri: shown.to_string(),
    })?;
    let (authority, rest) = body.split_at(end);
    let rest = &rest[1..];
    let (user, password, hostport) = split_userinfo(authority, shown)?;
    let (host, port) = split_host_port(hostport, shown)?;
    let (repo, reference) = match rest.split_once('@') {
        Some((repo, digest)) => {
            let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
                unsupported("a digest reference is @sha256: followed by 64 hexadecimal digits")
            })?;
            let digest = Digest::from_hex(hex).ok_or_else(|| {
                unsupported("a digest reference is @sha256: followed by 64 hexadecimal digits")
            })?;
            (repo, ImageReference::Digest(digest))
        }
        None => {
            let last = rest.rfind('/').map_or(0, |i| i + 1);
            match rest[last..].rfind(':') {
                Some(i) => {
                    let tag = &rest[last + i + 1..];
                    if !valid_tag(tag) {
                        return Err(unsupported(
                            "a tag is 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`",
                        ));
                    }
                    (&rest[..last + i], ImageReference::Tag(tag.to_string()))
                }
                None => (rest, ImageReference::Tag("latest".to_string())),
            }
        }
    };
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    if repo.len() > 255 || !repo.split('/').all(component_ok) {
        return Err(unsupported(
            "a repository is lower case letters, digits and `._-` in components separated by `/`",
        ));
    }
    Ok(RegistryLocation {
        user,
        password,
        host,
        port,
        repo: repo.to_string(),
        reference,
    })
}

fn parse_pin(fragment: &str, shown: &str) -> Result<Digest, UriError> {
    match fragment.strip_prefix(PIN_PREFIX) {
        Some(hex) => Digest::from_hex(hex).ok_or_else(|| UriError::BadPin {
            uri: shown.to_string(),
            fragment: fragment.to_string(),
        }),
        None if fragment.to_ascii_lowercase().starts_with("sha256") => Err(UriError::BadPin {
            uri: shown.to_string(),
            fragment: fragment.to_string(),
        }),
        None => Err(UriError::BadFragment {
            uri: shown.to_string(),
            fragment: fragment.to_string(),
        }),
    }
}

fn parse_file_url(body: &str, shown: &str) -> Result<Location, UriError> {
    let slash = body.find('/').ok_or_else(|| UriError::NoPath {
        uri: shown.to_string(),
    })?;
    let (host, path) = body.split_at(slash);
    if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
        return Err(UriError::BadHost {
            uri: shown.to_string(),
            host: host.to_string(),
            reason: "file URIs name local files only (host must be empty or localhost)",
        });
    }
    if path.contains('?') {
        return Err(UriError::Unsupported {
            uri: shown.to_string(),
            reason: "file URIs take no query",
        });
    }
    let bytes = percent_decode(path).ok_or_else(|| UriError::BadPercent {
        uri: shown.to_string(),
        part: "path",
    })?;
    if bytes.contains(&0) {
        return Err(UriError::BadPercent {
            uri: shown.to_string(),
            part: "path (NUL byte)",
        });
    }
    let path = PathBuf::from(OsString::from_vec(bytes));
    Ok(Location::File {
        path: normalize(&path),
        as_url: true,
    })
}

fn parse_http(body: &str, secure: bool, shown: &str) -> Result<Location, UriError> {
    let end = body.find(['/', '?']).unwrap_or(body.len());
    let (authority, target) = body.split_at(end);
    if authority.contains('@') {
        return Err(UriError::Unsupported {
            uri: shown.to_string(),
            reason: "credentials in HTTP URIs are not supported",
        });
    }
    let (host, port) = split_host_port(authority, shown)?;
    if target.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(UriError::Unsupported {
            uri: shown.to_string(),
            reason: "HTTP path contains spaces or non-ASCII bytes (percent-encode them)",
        });
    }
    let target = if target.is_empty() {
        "/".to_string()
    } else if target.starts_with('?') {
        format!("/{target}")
    } else {
        target.to_string()
    };
    Ok(Location::Http {
        secure,
        host,
        port,
        target,
    })
}

/// Percent-decodes `text` into UTF-8; `part` names it in the error.
fn decode_part(text: &str, part: &'static str, shown: &str) -> Result<String, UriError> {
    percent_decode(text)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| UriError::BadPercent {
            uri: shown.to_string(),
            part,
        })
}

/// `[user[:password]@]hostport` → user and password (percent-decoded,
/// neither empty user nor control characters) and `hostport`.
type UserInfo<'a> = (Option<String>, Option<String>, &'a str);

fn split_userinfo<'a>(authority: &'a str, shown: &str) -> Result<UserInfo<'a>, UriError> {
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let decode = |text: &str, part: &'static str| decode_part(text, part, shown);
    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => match info.split_once(':') {
            Some((u, p)) => (Some(decode(u, "user")?), Some(decode(p, "password")?)),
            None => (Some(decode(info, "user")?), None),
        },
    };
    if user
        .as_deref()
        .is_some_and(|u| u.is_empty() || has_control(u))
        || password.as_deref().is_some_and(has_control)
    {
        return Err(UriError::BadPercent {
            uri: shown.to_string(),
            part: "user or password (empty or control characters)",
        });
    }
    Ok((user, password, hostport))
}

fn parse_ftp(body: &str, shown: &str) -> Result<FtpLocation, UriError> {
    let end = body.find('/').unwrap_or(body.len());
    let (authority, path) = body.split_at(end);
    let (user, password, hostport) = split_userinfo(authority, shown)?;
    let (host, port) = split_host_port(hostport, shown)?;
    if path.contains('?') {
        return Err(UriError::Unsupported {
            uri: shown.to_string(),
            reason: "FTP URIs take no query",
        });
    }
    let path = decode_part(path, "path", shown)?;
    if path.is_empty() || path.ends_with('/') {
        return Err(UriError::NoPath {
            uri: shown.to_string(),
        });
    }
    // FTP commands are lines: CR or LF in a name would inject commands.
    if has_control(&path) {
        return Err(UriError::BadPercent {
            uri: shown.to_string(),
            part: "path (control characters)",
        });
    }
    Ok(FtpLocation {
        user,
        password,
        host,
        port: port.unwrap_or(21),
        path,
    })
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

fn split_host_port(authority: &str, shown: &str) -> Result<(String, Option<u16>), UriError> {
    let bad_host = |host: &str, reason| UriError::BadHost {
        uri: shown.to_string(),
        host: host.to_string(),
        reason,
    };
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| bad_host(authority, "unclosed `[`"))?;
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad_host(authority, "not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad_host(authority, "junk after `]`"))?,
            ),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad_host(&host, "empty"));
    }
    if !host.starts_with('[') {
        let valid = host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(bad_host(
                &host,
                "expected a DNS name, an IPv4 address or [IPv6]",
            ));
        }
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => {
                return Err(UriError::BadPort {
                    uri: shown.to_string(),
                    port: p.to_string(),
                })
            }
        },
    };
    Ok((host.to_ascii_lowercase(), port))
}

/// Decodes `%XX` escapes; `None` if an escape is malformed.
pub fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = hex(*bytes.get(i.checked_add(1)?)?)?;
            let lo = hex(*bytes.get(i.checked_add(2)?)?)?;
            out.push((hi << 4) | lo);
            i = i.checked_add(3)?;
        } else {
            out.push(b);
            i = i.checked_add(1)?;
        }
    }
    Some(out)
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn encode_with(text: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn encode_path(text: &str) -> String {
    encode_with(text, |b| {
        unreserved(b) || matches!(b, b'/' | b'+' | b',' | b'=' | b'@' | b':' | b'!' | b'$')
    })
}

fn encode_userinfo(text: &str) -> String {
    encode_with(text, unreserved)
}

/// Removes `.` components and resolves `..` lexically, so the same file
/// written two ways keys the same cache entry.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn p(text: &str) -> Result<Uri, UriError> {
        Uri::parse(text, Path::new("/base/dir"))
    }

    #[test]
    fn plain_paths() {
        let u = p("img/root.cpio.gz").unwrap();
        assert_eq!(
            u.local_path(),
            Some(Path::new("/base/dir/img/root.cpio.gz"))
        );
        assert_eq!(u.to_string(), "/base/dir/img/root.cpio.gz");
        let u = p("/abs/../x/./a#b").unwrap();
        assert_eq!(u.local_path(), Some(Path::new("/x/a#b")));
        assert_eq!(u.pin, None);
        let u = p(&format!("../a.gz#sha256={HEX}")).unwrap();
        assert_eq!(u.local_path(), Some(Path::new("/base/a.gz")));
        assert_eq!(u.pin.unwrap().to_hex(), HEX);
        assert!(matches!(p("a#sha256=12"), Err(UriError::BadPin { .. })));
        assert_eq!(p(""), Err(UriError::Empty));
    }

    #[test]
    fn file_urls() {
        let u = p("file:///srv/a%20b.gz").unwrap();
        assert_eq!(u.local_path(), Some(Path::new("/srv/a b.gz")));
        assert_eq!(u.to_string(), "file:///srv/a%20b.gz");
        assert!(p("file://localhost/x").is_ok());
        assert!(matches!(
            p("file://otherhost/x"),
            Err(UriError::BadHost { .. })
        ));
        assert!(matches!(
            p("file:///x%zz"),
            Err(UriError::BadPercent { .. })
        ));
    }

    #[test]
    fn http_urls() {
        let u = p(&format!("https://Example.org:8443/a%20b?x=1#sha256={HEX}")).unwrap();
        assert_eq!(
            u.http_url().unwrap(),
            "https://example.org:8443/a%20b?x=1".to_string()
        );
        assert!(u.pin.is_some());
        assert_eq!(p("http://h").unwrap().http_url().unwrap(), "http://h/");
        assert!(matches!(
            p("http://h/#frag"),
            Err(UriError::BadFragment { .. })
        ));
        assert!(matches!(
            p("http://h/#sha256=zz"),
            Err(UriError::BadPin { .. })
        ));
        assert!(matches!(
            p("http://bad host/"),
            Err(UriError::BadHost { .. })
        ));
        assert!(matches!(p("http:///x"), Err(UriError::BadHost { .. })));
        assert!(matches!(p("http://h:0/"), Err(UriError::BadPort { .. })));
        assert!(matches!(
            p("http://h:99999/"),
            Err(UriError::BadPort { .. })
        ));
        assert!(matches!(p("http://h:+80/"), Err(UriError::BadPort { .. })));
        assert!(p("http://[::1]:8080/x").is_ok());
        assert!(matches!(p("http://[zz]/x"), Err(UriError::BadHost { .. })));
        assert!(matches!(
            p("gopher://h/x"),
            Err(UriError::UnknownScheme { .. })
        ));
    }

    #[test]
    fn ftp_urls_decode_and_hide_password() {
        let u = p("ftp://us%40er:p%3Ass%2Fw@ftp.example.org:2121/pub/a%20b.gz").unwrap();
        let Location::Ftp(loc) = &u.location else {
            panic!("not ftp")
        };
        assert_eq!(loc.user.as_deref(), Some("us@er"));
        assert_eq!(loc.password.as_deref(), Some("p:ss/w"));
        assert_eq!(loc.port, 2121);
        assert_eq!(loc.path, "/pub/a b.gz");
        let shown = u.to_string();
        assert_eq!(shown, "ftp://us%40er:***@ftp.example.org:2121/pub/a%20b.gz");
        assert!(!shown.contains("p:ss"));
        let u = p("ftp://host/x").unwrap();
        assert_eq!(u.to_string(), "ftp://host/x");
        assert!(matches!(p("ftp://host/"), Err(UriError::NoPath { .. })));
        assert!(matches!(
            p("ftp://host/a%0d%0aDELE"),
            Err(UriError::BadPercent { .. })
        ));
        // Errors never reveal the password either.
        let e = p("ftp://u:secret@bad_host!/x").unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
        assert!(e.contains("u:***@"), "{e}");
    }

    #[test]
    fn image_references() {
        let u = p("oci:img/layout:v1.2").unwrap();
        assert!(
            u.location
                == Location::OciLayout {
                    dir: PathBuf::from("/base/dir/img/layout"),
                    tag: Some("v1.2".to_string())
                }
        );
        assert_eq!(u.to_string(), "oci:/base/dir/img/layout:v1.2");
        assert_eq!(u.local_path(), None);
        let u = p("oci:/srv/a:b/layout").unwrap();
        assert!(
            matches!(&u.location, Location::OciLayout { dir, tag: None } if dir == Path::new("/srv/a:b/layout"))
        );
        assert!(p("oci:x:").is_err());
        assert!(p("oci:x:-bad").is_err());
        assert!(p(&format!("oci:x#sha256={HEX}")).is_err());

        let u = p("docker://us%40er:secret@127.0.0.1:5000/test/img:t").unwrap();
        let Location::Registry(r) = &u.location else {
            panic!("not a registry")
        };
        assert_eq!(r.user.as_deref(), Some("us@er"));
        assert_eq!(r.password.as_deref(), Some("secret"));
        assert_eq!((r.host.as_str(), r.port), ("127.0.0.1", Some(5000)));
        assert_eq!(r.repo, "test/img");
        assert!(matches!(&r.reference, ImageReference::Tag(t) if t == "t"));
        assert_eq!(
            u.to_string(),
            "docker://us%40er:***@127.0.0.1:5000/test/img:t"
        );
        let u = p("docker://Registry.example/debian").unwrap();
        assert_eq!(u.to_string(), "docker://registry.example/debian:latest");
        let u = p(&format!("docker://h/a/b@sha256:{HEX}")).unwrap();
        assert_eq!(u.to_string(), format!("docker://h/a/b@sha256:{HEX}"));
        for bad in [
            "docker://h",
            "docker://h/Upper",
            "docker://h/a//b",
            "docker://h/a@sha256:12",
            "docker://h/a:",
            "docker://h/../a",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        let e = p("docker://u:secret@h/a@md5:x").unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
