//! Errors of fetching and publishing. Every message starts with the URI
//! (password hidden) and ends with the cause.

use crate::digest::Digest;
use std::io;
use std::path::PathBuf;

/// A failed fetch or publish.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{uri}: cannot connect to {addr}: {cause}")]
    Connect {
        uri: String,
        addr: String,
        cause: io::Error,
    },
    #[error("{uri}: cannot resolve host `{host}`: {cause}")]
    Resolve {
        uri: String,
        host: String,
        cause: io::Error,
    },
    #[error("{uri}: timed out {during}")]
    Timeout { uri: String, during: String },
    #[error("{uri}: cut off after {seconds} s with {received} bytes received: a whole transfer may take at most {seconds} s (--timeout SECONDS)")]
    Deadline {
        uri: String,
        seconds: u64,
        received: u64,
    },
    #[error("{uri}: stopped after {received} bytes: {why}")]
    TooLarge {
        uri: String,
        received: u64,
        why: String,
    },
    #[error("{uri} → {target}: refusing to follow a redirect {why}")]
    Redirect {
        uri: String,
        target: String,
        why: String,
    },
    #[error("{uri}: server answered HTTP {status} {reason}")]
    HttpStatus {
        uri: String,
        status: u16,
        reason: String,
    },
    #[error("{uri}: HTTP transfer failed: {cause}")]
    Http { uri: String, cause: String },
    #[error("{uri}: invalid proxy in ${var}: {cause}")]
    Proxy {
        uri: String,
        var: String,
        cause: String,
    },
    #[error("{uri}: body cut short: received {received} of {expected} bytes")]
    Truncated {
        uri: String,
        expected: u64,
        received: u64,
    },
    #[error("{uri}: FTP login as `{user}` refused: {reply}")]
    FtpLogin {
        uri: String,
        user: String,
        reply: String,
    },
    #[error("{uri}: no such file on the server: {reply}")]
    FtpNotFound { uri: String, reply: String },
    #[error("{uri}: FTP {command} failed: {reply}")]
    Ftp {
        uri: String,
        command: String,
        reply: String,
    },
    #[error("{uri}: network I/O failed {during}: {cause}")]
    Network {
        uri: String,
        during: String,
        cause: io::Error,
    },
    #[error("{uri}: content sha256 {actual} does not match the pinned sha256 {expected}")]
    PinMismatch {
        uri: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{uri}: {path}: {cause}")]
    LocalSource {
        uri: String,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("{uri}: writing {path}: {cause}")]
    Destination {
        uri: String,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("{uri}: {reason}")]
    Unsupported { uri: String, reason: String },
}

impl TransferError {
    /// True when the failure says nothing about the resource itself — the
    /// server or the network could not be reached or broke off — so a
    /// previously verified copy may stand in for it.
    pub fn is_outage(&self) -> bool {
        match self {
            TransferError::Connect { .. }
            | TransferError::Resolve { .. }
            | TransferError::Timeout { .. }
            | TransferError::Deadline { .. }
            | TransferError::Http { .. }
            | TransferError::Truncated { .. }
            | TransferError::Network { .. } => true,
            TransferError::HttpStatus { status, .. } => *status >= 500,
            TransferError::Ftp { reply, .. } => reply.starts_with('4'),
            _ => false,
        }
    }

    /// True when the server says the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            TransferError::HttpStatus { status, .. } => *status == 404 || *status == 410,
            TransferError::FtpNotFound { .. } => true,
            TransferError::LocalSource { cause, .. } => cause.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// The error of [`super::fetch`].
pub type FetchError = TransferError;
/// The error of [`super::publish`] and [`super::publish_many`].
pub type PublishError = TransferError;
