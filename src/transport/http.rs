//! HTTP and HTTPS through ureq: rustls, no content decoding (bodies must
//! stay byte-exact, so the `gzip` feature is off), bounded redirects,
//! proxies from the environment, conditional requests.

use super::copy::{copy_until, is_timeout, CopyError};
use super::error::TransferError;
use super::fetch::{finish_download, open_dest, Fetched, Validators};
use super::FetchOptions;
use crate::uri::{Location, Uri};
use std::fs::File;
use std::path::Path;
use std::time::Instant;
use ureq::{Agent, Proxy};

fn agent(uri: &Uri, opts: &FetchOptions) -> Result<Agent, TransferError> {
    let proxy = proxy_for(uri, opts)?;
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(opts.max_redirects)
        .max_redirects_will_error(true)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(opts.read_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        .timeout_global(opts.total_timeout)
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

fn map_ureq(uri: &Uri, e: ureq::Error) -> TransferError {
    let shown = uri.to_string();
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
    let url = uri.http_url().ok_or_else(|| TransferError::Unsupported {
        uri: uri.to_string(),
        reason: "not an HTTP URI".to_string(),
    })?;
    let started = Instant::now();
    let agent = agent(uri, opts)?;
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
    let mut resp = req.call().map_err(|e| map_ureq(uri, e))?;
    let status = resp.status();
    if status.as_u16() == 304 && conditional {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(TransferError::HttpStatus {
            uri: uri.to_string(),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
        });
    }
    let new_validators = Validators::Http {
        etag: header(&resp, "etag"),
        last_modified: header(&resp, "last-modified"),
    };
    let expected = header(&resp, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let mut out = open_dest(uri, dest)?;
    let deadline = opts.total_timeout.map(|t| started + t);
    let mut reader = resp.body_mut().as_reader();
    let copied = copy_until(&mut reader, &mut out, deadline);
    let received = match copied {
        Ok(n) => n,
        Err(CopyError::Write(cause)) => {
            return Err(TransferError::Destination {
                uri: uri.to_string(),
                path: dest.to_path_buf(),
                cause,
            })
        }
        Err(CopyError::Read(cause, received)) => {
            return Err(if is_timeout(&cause) || is_ureq_timeout(&cause) {
                TransferError::Timeout {
                    uri: uri.to_string(),
                    during: format!("reading the body after {received} bytes ({cause})"),
                }
            } else if let Some(expected) = expected.filter(|e| received < *e) {
                TransferError::Truncated {
                    uri: uri.to_string(),
                    expected,
                    received,
                }
            } else {
                TransferError::Network {
                    uri: uri.to_string(),
                    during: format!("reading the body after {received} bytes"),
                    cause,
                }
            })
        }
    };
    finish_download(uri, dest, out, expected, received, new_validators)
}

/// ureq reports its own timeouts inside the body reader as an I/O error
/// wrapping `ureq::Error::Timeout`.
fn is_ureq_timeout(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
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
    let agent = agent(uri, opts)?;
    let resp = agent
        .put(&url)
        .header("Content-Length", len.to_string())
        .header("Content-Type", "application/octet-stream")
        .send(file)
        .map_err(|e| map_ureq(uri, e))?;
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
    use super::bypasses_proxy;

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
