//! URIs naming archives, patches and files: `file:///p`, plain paths,
//! `http://`, `https://`, `ftp://[user[:pass]@]host[:port]/p`, each with an
//! optional `#sha256=HEX` pin. Pure syntax; fetching lives in `transport`.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a URI points.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// A local file or directory (from `file://` or a plain path), absolute.
    Local(PathBuf),
    /// `http://` or `https://`, the URL without its fragment.
    Http { url: String, tls: bool },
    Ftp {
        user: Option<String>,
        pass: Option<String>,
        host: String,
        port: u16,
        /// The path on the server, percent-decoded, starting with `/`.
        path: String,
    },
}

/// A parsed URI.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Uri {
    pub location: Location,
    /// `#sha256=HEX`: the content must have this digest.
    pub pin: Option<[u8; 32]>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("unsupported URI scheme `{0}:` (use file, http, https, ftp or a plain path)")]
    Scheme(String),
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error("bad port in `{0}`")]
    Port(String),
    #[error("`file://{0}/...` names another host; use `file:///path`")]
    FileHost(String),
    #[error("bad fragment `#{0}`: a pin is `#sha256=` and 64 hex digits")]
    Pin(String),
    #[error("bad percent-escape in `{0}`")]
    Percent(String),
    #[error("empty URI")]
    Empty,
}

impl Uri {
    /// Parses `text`; plain relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Uri, UriError> {
        if text.is_empty() {
            return Err(UriError::Empty);
        }
        let (main, pin) = match text.rsplit_once('#') {
            // `#` inside a plain path is an ordinary character unless it
            // reads as a pin fragment
            Some((m, frag)) if frag.starts_with("sha256=") || has_scheme(text) => {
                (m, Some(parse_pin(frag)?))
            }
            _ => (text, None),
        };
        let location = if let Some(rest) = main.strip_prefix("file://") {
            if !rest.starts_with('/') {
                let host = rest.split('/').next().unwrap_or("");
                if host != "localhost" {
                    return Err(UriError::FileHost(host.to_string()));
                }
                Location::Local(PathBuf::from(percent_decode(&rest[host.len()..])?))
            } else {
                Location::Local(PathBuf::from(percent_decode(rest)?))
            }
        } else if let Some(rest) = main.strip_prefix("file:") {
            // `file:/abs` (RFC 8089's short form) or `file:relative/path`
            let p = PathBuf::from(percent_decode(rest)?);
            Location::Local(if p.is_absolute() { p } else { base.join(p) })
        } else if let Some(rest) = main.strip_prefix("http://") {
            http(rest, main, false)?
        } else if let Some(rest) = main.strip_prefix("https://") {
            http(rest, main, true)?
        } else if let Some(rest) = main.strip_prefix("ftp://") {
            ftp(rest, main)?
        } else if let Some(scheme) = scheme_of(main) {
            return Err(UriError::Scheme(scheme.to_string()));
        } else {
            let p = Path::new(main);
            Location::Local(if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            })
        };
        Ok(Uri { location, pin })
    }

    pub fn is_remote(&self) -> bool {
        !matches!(self.location, Location::Local(_))
    }

    pub fn local_path(&self) -> Option<&Path> {
        match &self.location {
            Location::Local(p) => Some(p),
            _ => None,
        }
    }

    /// The last path component, for naming staged files.
    pub fn file_name(&self) -> String {
        let s = match &self.location {
            Location::Local(p) => p.to_string_lossy().into_owned(),
            Location::Http { url, .. } => url.split('?').next().unwrap_or(url).to_string(),
            Location::Ftp { path, .. } => path.clone(),
        };
        s.rsplit('/')
            .find(|c| !c.is_empty())
            .unwrap_or("artifact")
            .to_string()
    }

    /// The same location with `suffix` appended to its path (`.sig`).
    pub fn with_suffix(&self, suffix: &str) -> Uri {
        let location = match &self.location {
            Location::Local(p) => {
                let mut s = p.clone().into_os_string();
                s.push(suffix);
                Location::Local(PathBuf::from(s))
            }
            Location::Http { url, tls } => Location::Http {
                url: format!("{url}{suffix}"),
                tls: *tls,
            },
            Location::Ftp {
                user,
                pass,
                host,
                port,
                path,
            } => Location::Ftp {
                user: user.clone(),
                pass: pass.clone(),
                host: host.clone(),
                port: *port,
                path: format!("{path}{suffix}"),
            },
        };
        Uri {
            location,
            pin: None,
        }
    }
}

/// Shown with the password hidden.
impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Http { url, .. } => f.write_str(url),
            Location::Ftp {
                user,
                pass,
                host,
                port,
                path,
            } => {
                f.write_str("ftp://")?;
                if let Some(u) = user {
                    f.write_str(u)?;
                    if pass.is_some() {
                        f.write_str(":***")?;
                    }
                    f.write_str("@")?;
                }
                f.write_str(host)?;
                if *port != 21 {
                    write!(f, ":{port}")?;
                }
                f.write_str(path)
            }
        }
    }
}

fn has_scheme(s: &str) -> bool {
    scheme_of(s).is_some()
}

/// `abc:` followed by `//`, as opposed to a path that happens to hold `:`.
fn scheme_of(s: &str) -> Option<&str> {
    let (scheme, rest) = s.split_once(':')?;
    let ok = !scheme.is_empty()
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (ok && rest.starts_with("//")).then_some(scheme)
}

fn parse_pin(frag: &str) -> Result<[u8; 32], UriError> {
    let hex = frag
        .strip_prefix("sha256=")
        .ok_or_else(|| UriError::Pin(frag.to_string()))?;
    if hex.len() != 64 {
        return Err(UriError::Pin(frag.to_string()));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| UriError::Pin(frag.to_string()))?;
    }
    Ok(out)
}

fn split_authority(rest: &str) -> (&str, &str) {
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    }
}

fn host_port(hp: &str, whole: &str, default: u16) -> Result<(String, u16), UriError> {
    let (host, port) = if let Some(stripped) = hp.strip_prefix('[') {
        // [v6]:port
        let end = stripped
            .find(']')
            .ok_or_else(|| UriError::NoHost(whole.to_string()))?;
        let host = &hp[..end + 2];
        let tail = &stripped[end + 1..];
        (host, tail.strip_prefix(':'))
    } else {
        match hp.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        }
    };
    if host.is_empty() {
        return Err(UriError::NoHost(whole.to_string()));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| UriError::Port(whole.to_string()))?,
        None => default,
    };
    Ok((host.to_string(), port))
}

fn http(rest: &str, whole: &str, tls: bool) -> Result<Location, UriError> {
    let (auth, _) = split_authority(rest);
    host_port(auth, whole, if tls { 443 } else { 80 })?;
    Ok(Location::Http {
        url: whole.to_string(),
        tls,
    })
}

fn ftp(rest: &str, whole: &str) -> Result<Location, UriError> {
    let (auth, path) = split_authority(rest);
    let (userinfo, hp) = match auth.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, auth),
    };
    let (host, port) = host_port(hp, whole, 21)?;
    let (user, pass) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((u, p)) => (Some(percent_decode(u)?), Some(percent_decode(p)?)),
            None => (Some(percent_decode(u)?), None),
        },
        None => (None, None),
    };
    Ok(Location::Ftp {
        user,
        pass,
        host,
        port,
        path: percent_decode(path)?,
    })
}

fn percent_decode(s: &str) -> Result<String, UriError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| UriError::Percent(s.to_string()))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UriError::Percent(s.to_string()))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UriError::Percent(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Uri, UriError> {
        Uri::parse(s, Path::new("/base"))
    }

    #[test]
    fn forms() {
        assert_eq!(
            p("file:///var/x").unwrap().location,
            Location::Local("/var/x".into())
        );
        assert_eq!(
            p("rel/x.cpio.gz").unwrap().location,
            Location::Local("/base/rel/x.cpio.gz".into())
        );
        assert_eq!(p("/abs").unwrap().location, Location::Local("/abs".into()));
        assert_eq!(
            p("file:/abs").unwrap().location,
            Location::Local("/abs".into())
        );
        assert_eq!(
            p("file:rel/a").unwrap().location,
            Location::Local("/base/rel/a".into())
        );
        assert!(matches!(
            p("https://h:8443/a").unwrap().location,
            Location::Http { tls: true, .. }
        ));
        match p("ftp://u:p%40ss@foo.org:2121/images/etc.cpio.gz")
            .unwrap()
            .location
        {
            Location::Ftp {
                user,
                pass,
                host,
                port,
                path,
            } => {
                assert_eq!(user.as_deref(), Some("u"));
                assert_eq!(pass.as_deref(), Some("p@ss"));
                assert_eq!(
                    (host.as_str(), port, path.as_str()),
                    ("foo.org", 2121, "/images/etc.cpio.gz")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p("ftp://u:secret@h/x").unwrap().to_string(),
            "ftp://u:***@h/x"
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(p("gopher://h/x"), Err(UriError::Scheme(_))));
        assert!(matches!(p("http:///x"), Err(UriError::NoHost(_))));
        assert!(matches!(p("http://h:99999/x"), Err(UriError::Port(_))));
        assert!(matches!(p("file://other/x"), Err(UriError::FileHost(_))));
        assert!(matches!(p("http://h/x#sha256=12"), Err(UriError::Pin(_))));
        let pin = format!("http://h/x#sha256={}", "ab".repeat(32));
        assert_eq!(p(&pin).unwrap().pin, Some([0xab; 32]));
        assert_eq!(
            p("dir/a#b").unwrap().location,
            Location::Local("/base/dir/a#b".into())
        );
    }
}
