//! Fetching and publishing files by URI: local paths and `file://`,
//! `http(s)://` (ureq, rustls) and `ftp://` (suppaftp, passive, binary).
//!
//! Fetching streams the body to a caller-chosen file while hashing it, and
//! supports revalidation: given the [`Validators`] of an earlier download,
//! an unchanged resource answers [`Fetched::NotModified`] without sending
//! its body again.

mod copy;
mod error;
mod fetch;
mod file;
mod ftp;
mod http;
mod publish;

pub use crate::digest::{Digest, HashingWriter};
pub use crate::uri::{percent_decode, redact, FtpLocation, Location, Uri, UriError};
pub use error::{FetchError, PublishError, TransferError};
pub(crate) use fetch::receive;
pub use fetch::{fetch, Fetched, Validators};
pub(crate) use http::{agent as http_agent, map_ureq, resolve_location};
pub use publish::{publish, publish_many, Published};

use std::time::Duration;

/// The default limit of a whole transfer: a 2 GB archive over a 2 MB/s
/// link fits; a server trickling bytes is cut after half an hour.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Network behaviour of fetches and publishes.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Limit for establishing each TCP connection.
    pub connect_timeout: Duration,
    /// Longest silence tolerated while waiting for a reply or for body bytes.
    pub read_timeout: Duration,
    /// Limit for a whole transfer, headers and body; `None` for no limit.
    /// A server trickling a byte now and then never trips `read_timeout`;
    /// this cuts it.
    pub total_timeout: Option<Duration>,
    /// Largest body received; `None` leaves only the free-space reserve of
    /// the destination's file system as the bound.
    pub max_download: Option<u64>,
    /// Redirects followed before giving up.
    pub max_redirects: u32,
    /// Honour `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy`.
    pub proxy_from_env: bool,
    /// `User-Agent` sent over HTTP.
    pub user_agent: String,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            total_timeout: Some(DEFAULT_TOTAL_TIMEOUT),
            max_download: None,
            max_redirects: 8,
            proxy_from_env: true,
            user_agent: concat!("vm-container/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}
