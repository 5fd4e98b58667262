//! FTP through suppaftp: passive mode, binary transfer type (suppaftp starts
//! in ASCII, which would rewrite line ends), timeouts on the control and
//! data connections, revalidation by `MDTM` and `SIZE`.

use super::copy::{copy_until, is_timeout, CopyError};
use super::error::TransferError;
use super::fetch::{receive, Fetched, Validators};
use super::FetchOptions;
use crate::uri::{FtpLocation, Uri};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Instant;
use suppaftp::types::FileType;
use suppaftp::{FtpError, FtpStream, Status, TlsStream, TransferStream};

/// The first line(s) of a server reply, for messages.
fn reply_text(e: &FtpError) -> String {
    match e {
        FtpError::UnexpectedResponse(r) => {
            let body = String::from_utf8_lossy(&r.body);
            let body = body.trim();
            if body.is_empty() {
                format!("{}", r.status.code())
            } else {
                body.to_string()
            }
        }
        other => other.to_string(),
    }
}

fn reply_code(e: &FtpError) -> Option<u32> {
    match e {
        FtpError::UnexpectedResponse(r) => Some(r.status.code()),
        _ => None,
    }
}

/// Maps a failed command to an error naming it.
pub(crate) fn command_error(uri: &Uri, command: &str, e: FtpError) -> TransferError {
    match e {
        FtpError::ConnectionError(cause) if is_timeout(&cause) => TransferError::Timeout {
            uri: uri.to_string(),
            during: format!("waiting for the FTP server ({command})"),
        },
        FtpError::ConnectionError(cause) => TransferError::Network {
            uri: uri.to_string(),
            during: format!("during FTP {command}"),
            cause,
        },
        other => TransferError::Ftp {
            uri: uri.to_string(),
            command: command.to_string(),
            reply: reply_text(&other),
        },
    }
}

fn connect_tcp(
    uri: &Uri,
    loc: &FtpLocation,
    opts: &FetchOptions,
) -> Result<TcpStream, TransferError> {
    let host = loc.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, loc.port)
        .to_socket_addrs()
        .map_err(|cause| TransferError::Resolve {
            uri: uri.to_string(),
            host: loc.host.clone(),
            cause,
        })?
        .collect();
    let mut last: Option<(SocketAddr, io::Error)> = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, opts.connect_timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, cause)) if is_timeout(&cause) => TransferError::Timeout {
            uri: uri.to_string(),
            during: format!("connecting to {addr}"),
        },
        Some((addr, cause)) => TransferError::Connect {
            uri: uri.to_string(),
            addr: addr.to_string(),
            cause,
        },
        None => TransferError::Resolve {
            uri: uri.to_string(),
            host: loc.host.clone(),
            cause: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        },
    })
}

/// Connects, logs in (anonymously when the URI names no user) and selects
/// binary transfers.
pub(crate) fn connect(
    uri: &Uri,
    loc: &FtpLocation,
    opts: &FetchOptions,
) -> Result<FtpStream, TransferError> {
    let tcp = connect_tcp(uri, loc, opts)?;
    let timeouts = |s: &TcpStream, read: std::time::Duration| {
        s.set_read_timeout(Some(read))
            .and_then(|_| s.set_write_timeout(Some(read)))
    };
    timeouts(&tcp, opts.read_timeout).map_err(|cause| TransferError::Network {
        uri: uri.to_string(),
        during: "configuring the control connection".to_string(),
        cause,
    })?;
    let (connect_timeout, read_timeout) = (opts.connect_timeout, opts.read_timeout);
    let mut ftp = FtpStream::connect_with_stream(tcp)
        .map_err(|e| command_error(uri, "greeting", e))?
        .passive_stream_builder(move |addr| {
            let s = TcpStream::connect_timeout(&addr, connect_timeout)
                .map_err(FtpError::ConnectionError)?;
            timeouts(&s, read_timeout).map_err(FtpError::ConnectionError)?;
            Ok(s)
        });
    // Servers behind NAT announce unreachable passive addresses; the
    // control connection's peer is the one known to work.
    ftp.set_passive_nat_workaround(true);
    let user = loc.user.clone().unwrap_or_else(|| "anonymous".to_string());
    let password = match &loc.password {
        Some(p) => p.clone(),
        None if user == "anonymous" || user == "ftp" => "anonymous@".to_string(),
        None => String::new(),
    };
    ftp.login(user.as_str(), password.as_str())
        .map_err(|e| match e {
            FtpError::UnexpectedResponse(_) => TransferError::FtpLogin {
                uri: uri.to_string(),
                user: user.clone(),
                reply: reply_text(&e),
            },
            other => command_error(uri, "login", other),
        })?;
    ftp.transfer_type(FileType::Binary)
        .map_err(|e| command_error(uri, "TYPE I", e))?;
    Ok(ftp)
}

fn not_found_or(uri: &Uri, command: &str, e: FtpError) -> TransferError {
    if reply_code(&e) == Some(Status::FileUnavailable.code()) {
        TransferError::FtpNotFound {
            uri: uri.to_string(),
            reply: reply_text(&e),
        }
    } else {
        command_error(uri, command, e)
    }
}

pub(crate) fn fetch(
    uri: &Uri,
    loc: &FtpLocation,
    validators: Option<&Validators>,
    dest: &Path,
    opts: &FetchOptions,
) -> Result<Fetched, TransferError> {
    let started = Instant::now();
    let mut ftp = connect(uri, loc, opts)?;
    let size = match ftp.size(&loc.path) {
        Ok(n) => Some(n as u64),
        Err(e) if reply_code(&e) == Some(Status::FileUnavailable.code()) => {
            return Err(not_found_or(uri, "SIZE", e))
        }
        // Servers without SIZE still serve files.
        Err(FtpError::UnexpectedResponse(_)) => None,
        Err(e) => return Err(command_error(uri, "SIZE", e)),
    };
    let mdtm = match ftp.mdtm(&loc.path) {
        Ok(t) => Some(t.format("%Y-%m-%d %H:%M:%S").to_string()),
        Err(FtpError::UnexpectedResponse(_)) | Err(FtpError::BadResponse) => None,
        Err(e) => return Err(command_error(uri, "MDTM", e)),
    };
    let current = Validators::Ftp { mdtm, size };
    if current.is_usable() && validators == Some(&current) {
        let _ = ftp.quit();
        return Ok(Fetched::NotModified);
    }
    let mut stream = ftp
        .retr_as_stream(&loc.path)
        .map_err(|e| not_found_or(uri, "RETR", e))?;
    let received = receive(
        &uri.to_string(),
        &mut DeadlineReader {
            stream: &mut stream,
            deadline: opts.total_timeout.map(|t| started + t),
            read_timeout: opts.read_timeout,
        },
        dest,
        size,
        current,
        opts,
        started,
    );
    // A failed transfer just drops both connections: waiting for the
    // server's reply to an abandoned transfer could take another timeout.
    let fetched = received?;
    // The completion reply tells whether the server sent everything.
    if let Err(e) = stream.finish() {
        let _ = std::fs::remove_file(dest);
        return Err(command_error(uri, "RETR (completion)", e));
    }
    let _ = ftp.quit();
    Ok(fetched)
}

/// The data connection, each read waiting no longer than the transfer's
/// deadline allows: the socket's idle limit alone would let a server that
/// sends nothing hold the transfer `read_timeout` past its deadline.
struct DeadlineReader<'a, T: TlsStream> {
    stream: &'a mut TransferStream<T>,
    deadline: Option<Instant>,
    read_timeout: std::time::Duration,
}

impl<T: TlsStream> Read for DeadlineReader<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "transfer deadline"));
            }
            self.stream
                .get_ref()
                .get_ref()
                .set_read_timeout(Some(left.min(self.read_timeout)))?;
        }
        self.stream.read(buf)
    }
}

/// Splits `/a/b/name` into (`/a/b`, `name`).
pub(crate) fn split_dir(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("/", path),
    }
}

/// Creates `dir` and its missing parents. A failing `MKD` is fine when the
/// directory turns out to exist (servers word "exists" differently).
pub(crate) fn make_dirs(uri: &Uri, ftp: &mut FtpStream, dir: &str) -> Result<(), TransferError> {
    let original = ftp.pwd().map_err(|e| command_error(uri, "PWD", e))?;
    if ftp.cwd(dir).is_ok() {
        return ftp
            .cwd(original.as_str())
            .map_err(|e| command_error(uri, "CWD", e));
    }
    let mut prefix = String::new();
    for component in dir.split('/').filter(|c| !c.is_empty()) {
        prefix.push('/');
        prefix.push_str(component);
        if let Err(e) = ftp.mkdir(prefix.as_str()) {
            if !matches!(e, FtpError::UnexpectedResponse(_)) {
                return Err(command_error(uri, &format!("MKD {prefix}"), e));
            }
            if ftp.cwd(prefix.as_str()).is_err() {
                return Err(command_error(uri, &format!("MKD {prefix}"), e));
            }
        }
    }
    ftp.cwd(original.as_str())
        .map_err(|e| command_error(uri, "CWD", e))
}

/// Stores `reader` at `remote` (binary), returning the bytes sent.
pub(crate) fn store(
    uri: &Uri,
    ftp: &mut FtpStream,
    remote: &str,
    local: &Path,
    reader: &mut dyn Read,
) -> Result<u64, TransferError> {
    let mut stream = ftp
        .put_with_stream(remote)
        .map_err(|e| command_error(uri, &format!("STOR {remote}"), e))?;
    let sent = match copy_until(
        reader,
        &mut stream,
        None,
        std::fs::metadata(local).ok().map(|m| m.len()),
    ) {
        Ok(n) => n,
        Err(CopyError::Read(cause, _)) => {
            return Err(TransferError::LocalSource {
                uri: uri.to_string(),
                path: local.to_path_buf(),
                cause,
            })
        }
        Err(CopyError::Write(cause)) => {
            return Err(TransferError::Network {
                uri: uri.to_string(),
                during: format!("sending {remote}"),
                cause,
            })
        }
    };
    stream
        .finish()
        .map_err(|e| command_error(uri, &format!("STOR {remote} (completion)"), e))?;
    Ok(sent)
}

pub(crate) fn rename(
    uri: &Uri,
    ftp: &mut FtpStream,
    from: &str,
    to: &str,
) -> Result<(), TransferError> {
    ftp.rename(from, to)
        .map_err(|e| command_error(uri, &format!("RNFR {from} / RNTO {to}"), e))
}
