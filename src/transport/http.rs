//! HTTP and HTTPS through ureq: rustls, no content decoding (bodies must
//! stay byte-exact, so the `gzip` feature is off), bounded redirects,
//! proxies from the environment, conditional requests.

use super::copy::is_timeout;
use super::error::TransferError;
use super::fetch::{past, receive, Fetched, Validators};
use super::FetchOptions;
use crate::uri::{redact, Location, Uri};
use std::fs::File;
use std::path::Path;
use std::time::Instant;
use ureq::{Agent, Proxy};

/// A client for one request to `uri`. Redirects are followed by
/// [`fetch`] itself, hop by hop, so that each target is checked and named;
/// `deadline` bounds the whole transfer over all hops.
pub(crate) fn agent(
    uri: &Uri,
    opts: &FetchOptions,
    deadline: Option<Instant>,
) -> Result<Agent, TransferError> {
    let proxy = proxy_for(uri, opts)?;
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(opts.read_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        .timeout_global(deadline.map(|d| d.saturating_duration_since(Instant::now())))
        .proxy(proxy)
        .user_agent(opts.user_agent.as_str())
        .build();
    Ok(Agent::new_with_config(config))
}

/// The proxy for `uri` as curl would pick it: `https_proxy` for https,
/// `http_proxy` for http (upper case `HTTP_PROXY` is ignored: CGI
/// environments let clients set it), `all_proxy` for both; `no_proxy` lists
/// hosts (or `.domain` suffixes, or `*`) reached directly.
fn proxy_for(uri: &Uri, opts: &FetchOptions) -> Result<Option<Proxy>, TransferError> {
    if !opts.proxy_from_env {
        return Ok(None);
    }
    let Location::Http { secure, host, .. } = &uri.location else {
        return Ok(None);
    };
    let vars: &[&str] = if *secure {
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    } else {
        &["http_proxy", "all_proxy", "ALL_PROXY"]
    };
    let Some((var, value)) = vars.iter().find_map(|v| {
        std::env::var(v)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .map(|s| (*v, s))
    }) else {
        return Ok(None);
    };
    let no_proxy = std::env::var("no_proxy")
        .or_else(|_| std::env::var("NO_PROXY"))
        .unwrap_or_default();
    if bypasses_proxy(host, &no_proxy) {
        return Ok(None);
    }
    Proxy::new(value.trim())
        .map(Some)
        .map_err(|e| TransferError::Proxy {
            uri: uri.to_string(),
            var: var.to_string(),
            cause: e.to_string(),
        })
}

fn bypasses_proxy(host: &str, no_proxy: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    no_proxy.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.trim_start_matches('*').trim_start_matches('.');
        let entry = entry.trim_start_matches('[').trim_end_matches(']');
        !entry.is_empty()
            && (host.eq_ignore_ascii_case(entry)
                || host
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", entry.to_ascii_lowercase())))
    })
}

/// Maps a failed request; `shown` names the URI (and the redirect target
/// when one was followed).
pub(crate) fn map_ureq(uri: &Uri, shown: &str, e: ureq::Error) -> TransferError {
    let shown = shown.to_string();
    match e {
        ureq::Error::Timeout(t) => TransferError::Timeout {
            uri: shown,
            during: format!("({t})"),
        },
        ureq::Error::HostNotFound => TransferError::Resolve {
            uri: shown,
            host: match &uri.location {
                Location::Http { host, .. } => host.clone(),
                _ => String::new(),
            },
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "host not found"),
        },
        ureq::Error::Io(cause) if is_timeout(&cause) => TransferError::Timeout {
            uri: shown,
            during: format!("({cause})"),
        },
        ureq::Error::Io(cause) => TransferError::Network {
            uri: shown,
            during: "talking to the server".to_string(),
            cause,
        },
        other => TransferError::Http {
            uri: shown,
            cause: other.to_string(),
        },
    }
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub(crate) fn fetch(
    uri: &Uri,
    validators: Option<&Validators>,
    dest: &Path,
    opts: &FetchOptions,
) -> Result<Fetched, TransferError> {
    let started = Instant::now();
    let deadline = opts.total_timeout.map(|t| started + t);
    let mut current = uri.clone();
    let mut shown = uri.to_string();
    let mut hops = 0u32;
    let (mut resp, conditional) = loop {
        let url = current
            .http_url()
            .ok_or_else(|| TransferError::Unsupported {
                uri: shown.clone(),
                reason: "not an HTTP URI".to_string(),
            })?;
        let agent = agent(&current, opts, deadline)?;
        let mut req = agent.get(&url);
        let mut conditional = false;
        if let Some(Validators::Http {
            etag,
            last_modified,
        }) = validators
        {
            if let Some(etag) = etag {
                req = req.header("If-None-Match", etag.as_str());
                conditional = true;
            }
            if let Some(lm) = last_modified {
                req = req.header("If-Modified-Since", lm.as_str());
                conditional = true;
            }
        }
        let resp = req
            .call()
            .map_err(|e| at_deadline(map_ureq(&current, &shown, e), deadline, opts))?;
        let status = resp.status();
        let location = header(&resp, "location");
        let Some(location) = location.filter(|_| status.is_redirection() && status != 304) else {
            break (resp, conditional);
        };
        // a fragment is the client's business, never the server's
        let location = location.trim();
        let target = resolve_location(&url, location.split('#').next().unwrap_or(location));
        let refuse = |why: String| TransferError::Redirect {
            uri: uri.to_string(),
            target: redact(&target),
            why,
        };
        hops += 1;
        if hops > opts.max_redirects {
            return Err(refuse(format!(
                "after {} redirects (a loop?)",
                opts.max_redirects
            )));
        }
        let next = match Uri::parse(&target, Path::new("/")) {
            Ok(next) => next,
            Err(e) => return Err(refuse(format!("to an invalid URI: {e}"))),
        };
        match (&current.location, &next.location) {
            (Location::Http { secure: true, .. }, Location::Http { secure: false, .. }) => {
                return Err(refuse(
                    "from https to plain http: the content would lose its protection".to_string(),
                ))
            }
            (_, Location::Http { .. }) => {}
            _ => {
                let scheme = target.split_once(':').map_or("", |(s, _)| s);
                return Err(refuse(format!(
                    "to another scheme ({scheme}): only http and https redirects are followed"
                )));
            }
        }
        shown = format!("{uri} → {}", redact(&target));
        current = next;
    };
    let status = resp.status();
    if status.as_u16() == 304 && conditional {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(TransferError::HttpStatus {
            uri: shown,
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
        });
    }
    let new_validators = Validators::Http {
        etag: header(&resp, "etag"),
        last_modified: header(&resp, "last-modified"),
    };
    let expected = header(&resp, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let mut reader = resp.body_mut().as_reader();
    receive(
        &shown,
        &mut reader,
        dest,
        expected,
        new_validators,
        opts,
        started,
    )
}

/// A timeout once the whole transfer's deadline has come is that deadline.
fn at_deadline(e: TransferError, deadline: Option<Instant>, opts: &FetchOptions) -> TransferError {
    match (e, opts.total_timeout) {
        (TransferError::Timeout { uri, .. }, Some(total)) if deadline.is_some_and(past) => {
            TransferError::Deadline {
                uri,
                seconds: total.as_secs(),
                received: 0,
            }
        }
        (other, _) => other,
    }
}

/// The absolute URL a `Location` header names, resolved against the URL
/// that answered with it (RFC 9110 allows relative references).
pub(crate) fn resolve_location(base: &str, location: &str) -> String {
    let has_scheme = location.split_once(':').is_some_and(|(scheme, _)| {
        let mut chars = scheme.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if has_scheme {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    if let Some(authority_and_path) = location.strip_prefix("//") {
        return format!("{scheme}://{authority_and_path}");
    }
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    format!("{scheme}://{authority}{dir}{location}")
}

/// Uploads `local` with `PUT`. Servers differ in what they accept; any 2xx
/// counts as stored.
pub(crate) fn put(uri: &Uri, local: &Path, opts: &FetchOptions) -> Result<(), TransferError> {
    let url = uri.http_url().ok_or_else(|| TransferError::Unsupported {
        uri: uri.to_string(),
        reason: "not an HTTP URI".to_string(),
    })?;
    let source_err = |cause| TransferError::LocalSource {
        uri: uri.to_string(),
        path: local.to_path_buf(),
        cause,
    };
    let file = File::open(local).map_err(source_err)?;
    let len = file.metadata().map_err(source_err)?.len();
    // An upload's size is ours, not the server's: only the idle timeouts
    // bound it, so a large image over a slow link is not cut.
    let agent = agent(uri, opts, None)?;
    let resp = agent
        .put(&url)
        .header("Content-Length", len.to_string())
        .header("Content-Type", "application/octet-stream")
        .send(file)
        .map_err(|e| map_ureq(uri, &uri.to_string(), e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(TransferError::HttpStatus {
            uri: uri.to_string(),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{bypasses_proxy, resolve_location};

    #[test]
    fn locations_resolve_against_the_answering_url() {
        let base = "http://a:8/d/x.gz?q=1";
        for (loc, want) in [
            ("http://b/y", "http://b/y"),
            ("file:///etc/passwd", "file:///etc/passwd"),
            ("//c/z", "http://c/z"),
            ("/abs", "http://a:8/abs"),
            ("rel.gz", "http://a:8/d/rel.gz"),
        ] {
            assert_eq!(resolve_location(base, loc), want);
        }
        assert_eq!(resolve_location("http://a", "x"), "http://a/x");
    }

    #[test]
    fn no_proxy_matching() {
        assert!(bypasses_proxy("127.0.0.1", "localhost,127.0.0.1"));
        assert!(bypasses_proxy("a.example.org", ".example.org"));
        assert!(bypasses_proxy("a.example.org", "*.example.org"));
        assert!(bypasses_proxy("example.org", "example.org"));
        assert!(!bypasses_proxy("badexample.org", "example.org"));
        assert!(bypasses_proxy("anything", "*"));
        assert!(!bypasses_proxy("host", ""));
        assert!(bypasses_proxy("[::1]", "::1"));
    }
}
