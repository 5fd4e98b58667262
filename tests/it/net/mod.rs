//! Real servers on 127.0.0.1 for the integration tests: a small HTTP/1.1
//! server whose behaviour each test scripts, and Debian's vsftpd.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the HTTP server answers one path.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// 200 with validators; 304 when the request's validators match.
    Serve {
        body: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// 302 to another path.
    Redirect(String),
    /// The given status with a short text body.
    Status(u16),
    /// Announces `claimed` bytes, sends `body`, then closes.
    Short { claimed: u64, body: Vec<u8> },
    /// Waits before answering with 200 and the body.
    Slow { delay: Duration, body: Vec<u8> },
    /// Sends headers and part of the body, then goes silent for `hold`.
    Stall {
        claimed: u64,
        body: Vec<u8>,
        hold: Duration,
    },
    /// 200 announcing `body`, then one byte every `every`: never silent
    /// long enough to trip an idle timeout. Validators are ignored.
    Trickle { body: Vec<u8>, every: Duration },
    /// 200, chunked, no length: zeros until the client goes away.
    Endless,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

#[derive(Default)]
pub struct State {
    pub routes: Mutex<HashMap<String, Behavior>>,
    pub requests: Mutex<Vec<Request>>,
    /// Body bytes sent in 200 responses, over all requests.
    pub body_bytes: AtomicU64,
}

pub struct HttpServer {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        Self::start_on(listener)
    }

    fn start_on(listener: TcpListener) -> HttpServer {
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let state = st.clone();
                        std::thread::spawn(move || {
                            let _ = handle_conn(conn, &state);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HttpServer {
            addr,
            state,
            stop,
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn route(&self, path: &str, b: Behavior) {
        self.state
            .routes
            .lock()
            .unwrap()
            .insert(path.to_string(), b);
    }

    pub fn serve(&self, path: &str, body: &[u8], etag: Option<&str>, lm: Option<&str>) {
        self.route(
            path,
            Behavior::Serve {
                body: body.to_vec(),
                etag: etag.map(str::to_string),
                last_modified: lm.map(str::to_string),
            },
        );
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn body_bytes(&self) -> u64 {
        self.state.body_bytes.load(Ordering::SeqCst)
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn handle_conn(conn: TcpStream, state: &State) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let (mut method, mut path, mut headers) = read_head(&mut reader)?;
    if method == "CONNECT" {
        // Acting as a proxy: the tunnel's first request is served here.
        state.requests.lock().unwrap().push(Request {
            method: method.clone(),
            path: path.clone(),
            headers: headers.clone(),
        });
        (&conn).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        (method, path, headers) = read_head(&mut reader)?;
    }
    let mut body = Vec::new();
    if let Some(len) = headers
        .get("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        reader.by_ref().take(len).read_to_end(&mut body)?;
    }
    state.requests.lock().unwrap().push(Request {
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
    });
    let mut out = conn;
    if method == "PUT" {
        state.routes.lock().unwrap().insert(
            path,
            Behavior::Serve {
                body,
                etag: None,
                last_modified: None,
            },
        );
        out.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    let behavior = state.routes.lock().unwrap().get(&path).cloned();
    match behavior {
        None => status(&mut out, 404),
        Some(Behavior::Status(code)) => status(&mut out, code),
        Some(Behavior::Redirect(to)) => write!(
            out,
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Some(Behavior::Serve {
            body,
            etag,
            last_modified,
        }) => {
            let inm = headers.get("if-none-match");
            let ims = headers.get("if-modified-since");
            let not_modified = match (inm, ims) {
                (Some(i), _) => etag.as_ref() == Some(i),
                (None, Some(m)) => last_modified.as_ref() == Some(m),
                (None, None) => false,
            };
            let mut head = String::new();
            if let Some(e) = &etag {
                head.push_str(&format!("ETag: {e}\r\n"));
            }
            if let Some(l) = &last_modified {
                head.push_str(&format!("Last-Modified: {l}\r\n"));
            }
            if not_modified {
                write!(
                    out,
                    "HTTP/1.1 304 Not Modified\r\n{head}Connection: close\r\n\r\n"
                )
            } else {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )?;
                out.write_all(&body)?;
                state
                    .body_bytes
                    .fetch_add(body.len() as u64, Ordering::SeqCst);
                Ok(())
            }
        }
        Some(Behavior::Short { claimed, body }) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {claimed}\r\nConnection: close\r\n\r\n"
            )?;
            out.write_all(&body)?;
            out.flush()?;
            out.shutdown(std::net::Shutdown::Both)
        }
        Some(Behavior::Stall {
            claimed,
            body,
            hold,
        }) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {claimed}\r\nConnection: close\r\n\r\n"
            )?;
            out.write_all(&body)?;
            out.flush()?;
            std::thread::sleep(hold);
            Ok(())
        }
        Some(Behavior::Trickle { body, every }) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            for b in body {
                out.write_all(&[b])?;
                out.flush()?;
                std::thread::sleep(every);
            }
            Ok(())
        }
        Some(Behavior::Endless) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )?;
            let chunk = vec![0u8; 64 * 1024];
            loop {
                write!(out, "{:x}\r\n", chunk.len())?;
                out.write_all(&chunk)?;
                out.write_all(b"\r\n")?;
                state
                    .body_bytes
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }
        Some(Behavior::Slow { delay, body }) => {
            std::thread::sleep(delay);
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(&body)
        }
    }
}

fn read_head(
    reader: &mut BufReader<TcpStream>,
) -> std::io::Result<(String, String, HashMap<String, String>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Ok((method, path, headers))
}

fn status(out: &mut TcpStream, code: u16) -> std::io::Result<()> {
    let text = format!("status {code}\n");
    write!(
        out,
        "HTTP/1.1 {code} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
}

/// Deterministic bytes including CR, LF and CRLF pairs.
pub fn binary_payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|i| match i % 97 {
            0 => b'\r',
            1 => b'\n',
            50 => b'\n',
            _ => {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            }
        })
        .collect()
}

/// Debian's vsftpd, run in the foreground on a free port, anonymous with
/// write access under `/pub` (owned by the `ftp` account), logging every
/// FTP command.
pub struct Vsftpd {
    pub port: u16,
    /// The anonymous root; `/x` on the server is `root.join("x")`.
    pub root: PathBuf,
    pub log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

const VSFTPD: &str = "/usr/sbin/vsftpd";

fn uid_of(user: &str) -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&user)).then(|| f.get(2).and_then(|u| u.parse().ok()))?
        })
        .unwrap_or_else(|| {
            panic!("user {user} missing from /etc/passwd: apt-get install -y vsftpd creates it")
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Vsftpd {
    pub fn start() -> Vsftpd {
        assert!(
            Path::new(VSFTPD).exists(),
            "{VSFTPD} is missing: apt-get install -y vsftpd"
        );
        let uid = Command::new("id").arg("-u").output().expect("run id -u");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "vsftpd must be started as root: run the FTP tests as root"
        );
        // vsftpd enters the anonymous account's home before `anon_root`:
        // Debian's vsftpd package creates `ftp` with home /srv/ftp.
        let ftp_uid = uid_of("ftp");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let empty = dir.path().join("empty");
        let log = dir.path().join("vsftpd.log");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&empty).unwrap();
        let pub_dir = root.join("pub");
        std::fs::create_dir(&pub_dir).unwrap();
        std::os::unix::fs::chown(&pub_dir, Some(ftp_uid), None).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for d in [dir.path(), root.as_path(), empty.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let port = free_port();
        let pasv = 20000 + u32::from(port) % 30000;
        let conf = dir.path().join("vsftpd.conf");
        std::fs::write(
            &conf,
            format!(
                "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
                 background=NO\nanonymous_enable=YES\nlocal_enable=NO\nwrite_enable=YES\n\
                 anon_upload_enable=YES\nanon_mkdir_write_enable=YES\nanon_other_write_enable=YES\n\
                 anon_world_readable_only=NO\nanon_umask=022\nno_anon_password=NO\n\
                 ftp_username=ftp\nanon_root={root}\n\
                 ascii_upload_enable=YES\nascii_download_enable=YES\n\
                 pasv_enable=YES\npasv_min_port={pasv}\npasv_max_port={pasv_max}\n\
                 pasv_address=127.0.0.1\nconnect_from_port_20=NO\n\
                 seccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\n\
                 secure_chroot_dir={empty}\nuse_localtime=NO\ndirmessage_enable=NO\n\
                 xferlog_enable=YES\nxferlog_std_format=NO\nlog_ftp_protocol=YES\n\
                 vsftpd_log_file={log}\nsyslog_enable=NO\n",
                root = root.display(),
                empty = empty.display(),
                log = log.display(),
                pasv_max = pasv + 40,
            ),
        )
        .unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let mut child = Command::new(VSFTPD)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn vsftpd");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
                panic!("vsftpd exited early ({status}): {err}");
            }
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut banner = [0u8; 3];
                if BufReader::new(s).read_exact(&mut banner).is_ok() && &banner == b"220" {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "vsftpd did not answer on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Vsftpd {
            port,
            root,
            log,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ftp://127.0.0.1:{}{}", self.port, path)
    }

    /// How many times the server received `command` (e.g. "RETR").
    pub fn count(&self, command: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let needle = format!("FTP command: Client \"127.0.0.1\", \"{command}");
        log.matches(&needle).count()
    }
}

impl Vsftpd {
    /// Stops the listener; the port then refuses connections.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Vsftpd {
    fn drop(&mut self) {
        self.stop();
    }
}
