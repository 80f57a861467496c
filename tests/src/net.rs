//! Receiving ends that count what arrives, all on loopback.
//!
//! A sink proves at the receiving end that nothing got through: after the
//! traced program has exited, [`TcpSink::assert_nothing_arrived`] waits
//! [`crate::util::SETTLE`] and asserts zero connections and zero bytes.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::{is_root, settle, wait_until};

/// Backlog for listeners: large, so that a connect storm never waits on
/// SYN retransmissions while the accept thread catches up.
const BACKLOG: i32 = 4096;

/// Parses "127.0.0.2" or "::1" (panics on anything else: tests pass literals).
fn ip(host: &str) -> IpAddr {
    let ip: IpAddr = host.parse().expect("numeric IP");
    assert!(ip.is_loopback(), "tests only use loopback, not {ip}");
    ip
}

/// Waits until `fd` is readable, or 50 ms pass. Returns whether it is.
fn readable(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, 50) };
    r > 0
}

#[derive(Default)]
struct Counts {
    accepts: AtomicUsize,
    bytes: AtomicUsize,
    datagrams: AtomicUsize,
    payloads: Mutex<Vec<Vec<u8>>>,
}

/// Accepts connections in a background thread until dropped.
struct Acceptor {
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    fn start<S, A, H>(name: &str, fd: RawFd, mut accept: A, handle: H) -> Self
    where
        S: Send + 'static,
        A: FnMut() -> std::io::Result<S> + Send + 'static,
        H: Fn(S, &Counts) + Send + Sync + 'static,
    {
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let thread = {
            let counts = counts.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if !readable(fd) {
                            continue;
                        }
                        match accept() {
                            Ok(stream) => {
                                counts.accepts.fetch_add(1, Ordering::SeqCst);
                                let counts = counts.clone();
                                let handle = handle.clone();
                                std::thread::spawn(move || handle(stream, &counts));
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) => {
                                eprintln!("sink accept error: {e}");
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                })
                .expect("spawn acceptor")
        };
        Acceptor { counts, stop, thread: Some(thread) }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a stream to its end (or 10 s of silence), counting bytes.
fn drain<R: Read>(mut r: R, counts: &Counts) {
    let mut buf = [0u8; 16384];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                counts.bytes.fetch_add(n, Ordering::SeqCst);
            }
        }
    }
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(addr)?;
    // Re-listening on a listening socket just updates its backlog.
    // SAFETY: listen takes integers only; `l` keeps the socket open for the call.
    unsafe { libc::listen(l.as_raw_fd(), BACKLOG) };
    l.set_nonblocking(true)?;
    Ok(l)
}

/// A TCP listener counting accepted connections and received bytes. Used both
/// as a sink (must see nothing) and as the proxy stand-in (counts accepts).
pub struct TcpSink {
    addr: SocketAddr,
    acceptor: Acceptor,
    _listener: TcpListener,
}

impl TcpSink {
    /// Listens on `host`:0 (e.g. "127.0.0.2", "::1").
    pub fn bind(host: &str) -> Self {
        let l = tcp_listener(SocketAddr::new(ip(host), 0))
            .unwrap_or_else(|e| panic!("bind TCP sink on {host}: {e}"));
        Self::from_listener(l)
    }

    fn from_listener(l: TcpListener) -> Self {
        let addr = l.local_addr().expect("local_addr");
        let fd = l.as_raw_fd();
        let accept_from = l.try_clone().expect("clone listener");
        let acceptor = Acceptor::start(
            "tcp-sink",
            fd,
            move || accept_from.accept().map(|(s, _)| s),
            |s: TcpStream, c: &Counts| {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                drain(s, c)
            },
        );
        TcpSink { addr, acceptor, _listener: l }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The address as netprobe takes it ("127.0.0.2", "::1").
    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }
    /// The destination as the report writes it ("127.0.0.2:80", "[::1]:80").
    pub fn dst(&self) -> String {
        self.addr.to_string()
    }
    pub fn accepts(&self) -> usize {
        self.acceptor.counts.accepts.load(Ordering::SeqCst)
    }
    pub fn bytes(&self) -> usize {
        self.acceptor.counts.bytes.load(Ordering::SeqCst)
    }
    /// Waits (up to `timeout`) until at least `n` connections were accepted.
    pub fn wait_accepts(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.accepts() >= n)
    }
    /// Waits (up to `timeout`) until at least `n` bytes arrived.
    pub fn wait_bytes(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.bytes() >= n)
    }
    /// After a settle time, asserts that no connection and no byte arrived.
    pub fn assert_nothing_arrived(&self, context: &str) {
        settle();
        assert_eq!(
            (self.accepts(), self.bytes()),
            (0, 0),
            "TCP sink {} received (connections, bytes) but must not have: {context}",
            self.addr
        );
    }
}

/// A UDP socket counting received datagrams.
pub struct UdpSink {
    addr: SocketAddr,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpSink {
    /// Binds `host`:0 (e.g. "127.0.0.2", "::1").
    pub fn bind(host: &str) -> Self {
        let s = UdpSocket::bind(SocketAddr::new(ip(host), 0))
            .unwrap_or_else(|e| panic!("bind UDP sink on {host}: {e}"));
        Self::from_socket(s)
    }

    /// A sink on an already bound socket (e.g. one made in another network
    /// namespace).
    pub fn from_socket(s: UdpSocket) -> Self {
        let addr = s.local_addr().expect("local_addr");
        s.set_read_timeout(Some(Duration::from_millis(50))).expect("set_read_timeout");
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let counts = counts.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("udp-sink".into())
                .spawn(move || {
                    let mut buf = [0u8; 65536];
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((n, _)) = s.recv_from(&mut buf) {
                            counts.datagrams.fetch_add(1, Ordering::SeqCst);
                            counts.bytes.fetch_add(n, Ordering::SeqCst);
                            counts.payloads.lock().unwrap().push(buf[..n].to_vec());
                        }
                    }
                })
                .expect("spawn udp sink")
        };
        UdpSink { addr, counts, stop, thread: Some(thread) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }
    pub fn dst(&self) -> String {
        self.addr.to_string()
    }
    pub fn datagrams(&self) -> usize {
        self.counts.datagrams.load(Ordering::SeqCst)
    }
    pub fn payloads(&self) -> Vec<Vec<u8>> {
        self.counts.payloads.lock().unwrap().clone()
    }
    pub fn wait_datagrams(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.datagrams() >= n)
    }
    /// After a settle time, asserts that no datagram arrived.
    pub fn assert_nothing_arrived(&self, context: &str) {
        settle();
        assert_eq!(
            self.datagrams(),
            0,
            "UDP sink {} received datagrams {:?} but must not have: {context}",
            self.addr,
            self.payloads().iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect::<Vec<_>>()
        );
    }
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A DNS sink: UDP and TCP on port 53 of its own 127.0.0.x address (x from
/// 101 up), so that DNS tests can run in parallel. Needs root.
pub struct DnsSink {
    pub udp: UdpSink,
    pub tcp: TcpSink,
    ip: Ipv4Addr,
}

impl DnsSink {
    /// Binds a fresh 127.0.0.x:53 (UDP and TCP), or says why it cannot.
    pub fn bind() -> Result<Self, String> {
        if !is_root() {
            return Err("binding port 53 needs root".into());
        }
        static NEXT: AtomicU8 = AtomicU8::new(101);
        let mut last_err = String::new();
        for _ in 0..100 {
            let x = NEXT.fetch_add(1, Ordering::SeqCst);
            if x >= 250 {
                break;
            }
            let ip = Ipv4Addr::new(127, 0, 0, x);
            let addr = SocketAddr::new(IpAddr::V4(ip), 53);
            let udp = match UdpSocket::bind(addr) {
                Ok(s) => s,
                Err(e) => {
                    last_err = format!("bind udp {addr}: {e}");
                    continue;
                }
            };
            let tcp = match tcp_listener(addr) {
                Ok(l) => l,
                Err(e) => {
                    last_err = format!("bind tcp {addr}: {e}");
                    continue;
                }
            };
            return Ok(DnsSink { udp: UdpSink::from_socket(udp), tcp: TcpSink::from_listener(tcp), ip });
        }
        Err(format!("no free 127.0.0.x:53: {last_err}"))
    }

    /// The server address as netprobe takes it ("127.0.0.101").
    pub fn host(&self) -> String {
        self.ip.to_string()
    }
    /// "127.0.0.101:53".
    pub fn dst(&self) -> String {
        format!("{}:53", self.ip)
    }
    /// After a settle time, asserts that neither UDP nor TCP saw anything.
    pub fn assert_nothing_arrived(&self, context: &str) {
        self.udp.assert_nothing_arrived(context);
        self.tcp.assert_nothing_arrived(context);
    }
}

/// A unix stream socket listener counting connections and bytes.
pub struct UnixSink {
    path: PathBuf,
    acceptor: Acceptor,
    _listener: UnixListener,
    _dir: tempfile::TempDir,
}

impl UnixSink {
    pub fn bind() -> Self {
        let dir = tempfile::Builder::new().prefix("sockstrace-unix").tempdir().expect("tempdir");
        let path = dir.path().join("sink.sock");
        let l = UnixListener::bind(&path).expect("bind unix sink");
        l.set_nonblocking(true).expect("nonblocking");
        let accept_from = l.try_clone().expect("clone");
        let acceptor = Acceptor::start(
            "unix-sink",
            l.as_raw_fd(),
            move || accept_from.accept().map(|(s, _)| s),
            |s: std::os::unix::net::UnixStream, c: &Counts| {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                drain(s, c)
            },
        );
        UnixSink { path, acceptor, _listener: l, _dir: dir }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn accepts(&self) -> usize {
        self.acceptor.counts.accepts.load(Ordering::SeqCst)
    }
    pub fn bytes(&self) -> usize {
        self.acceptor.counts.bytes.load(Ordering::SeqCst)
    }
    pub fn wait_bytes(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.bytes() >= n)
    }
}

/// A minimal HTTP/1.0 server answering every request with [`HttpServer::body`].
pub struct HttpServer {
    addr: SocketAddr,
    body: String,
    acceptor: Acceptor,
    _listener: TcpListener,
}

impl HttpServer {
    /// Listens on `host`:0.
    pub fn bind(host: &str) -> Self {
        let l = tcp_listener(SocketAddr::new(ip(host), 0))
            .unwrap_or_else(|e| panic!("bind HTTP server on {host}: {e}"));
        let addr = l.local_addr().expect("local_addr");
        let body = format!("sockstrace-test-body port={} pid={}\n", addr.port(), std::process::id());
        let response = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            body
        );
        let accept_from = l.try_clone().expect("clone");
        let acceptor = Acceptor::start(
            "http-server",
            l.as_raw_fd(),
            move || accept_from.accept().map(|(s, _)| s),
            move |mut s: TcpStream, c: &Counts| {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                c.bytes.fetch_add(req.len(), Ordering::SeqCst);
                c.payloads.lock().unwrap().push(req);
                let _ = s.write_all(response.as_bytes());
            },
        );
        HttpServer { addr, body, acceptor, _listener: l }
    }
    /// "http://127.0.0.2:PORT/".
    pub fn url(&self) -> String {
        match self.addr {
            SocketAddr::V4(a) => format!("http://{a}/"),
            SocketAddr::V6(a) => format!("http://[{}]:{}/", a.ip(), a.port()),
        }
    }
    pub fn dst(&self) -> String {
        self.addr.to_string()
    }
    pub fn body(&self) -> &str {
        &self.body
    }
    /// Connections accepted.
    pub fn accepts(&self) -> usize {
        self.acceptor.counts.accepts.load(Ordering::SeqCst)
    }
    /// Complete requests received.
    pub fn requests(&self) -> usize {
        self.acceptor.counts.payloads.lock().unwrap().len()
    }
}

/// Debian's microsocks on a free 127.0.0.1 port, killed on drop.
///
/// As root it runs in its own mount namespace whose resolv.conf and hosts
/// point at loopback only, so that no name it is asked for can make it query
/// the machine's real resolver.
pub struct Microsocks {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Microsocks {
    pub const PATH: &'static str = "/usr/bin/microsocks";

    pub fn start() -> Result<Self, String> {
        Self::start_with_hosts("")
    }

    /// As `start`, with extra lines for the proxy's own /etc/hosts (as root),
    /// so that it can resolve test names to loopback addresses.
    pub fn start_with_hosts(extra_hosts: &str) -> Result<Self, String> {
        Self::start_with(extra_hosts, None)
    }

    /// As `start_with_hosts`, requiring this username and password (RFC 1929).
    pub fn start_with(extra_hosts: &str, auth: Option<(&str, &str)>) -> Result<Self, String> {
        let auth_args = auth.map(|(u, p)| format!(" -u '{u}' -P '{p}'")).unwrap_or_default();
        if !Path::new(Self::PATH).exists() {
            return Err(format!("{} is not installed", Self::PATH));
        }
        let dir =
            tempfile::Builder::new().prefix("sockstrace-microsocks").tempdir().map_err(|e| e.to_string())?;
        let resolv = dir.path().join("resolv.conf");
        let hosts = dir.path().join("hosts");
        std::fs::write(&resolv, "nameserver 127.0.0.1\n").map_err(|e| e.to_string())?;
        std::fs::write(&hosts, format!("127.0.0.1 localhost\n::1 localhost\n{extra_hosts}"))
            .map_err(|e| e.to_string())?;
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = if is_root() {
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(format!(
                        "mount --bind '{}' /etc/resolv.conf && mount --bind '{}' /etc/hosts && exec {} -i 127.0.0.1 -p {port}{auth_args}",
                        resolv.display(),
                        hosts.display(),
                        Self::PATH
                    ));
                c
            } else {
                let mut c = Command::new(Self::PATH);
                c.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
                if let Some((u, p)) = auth {
                    c.args(["-u", u, "-P", p]);
                }
                c
            };
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("spawn microsocks: {e}"))?;
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(st)) = child.try_wait() {
                    last_err = format!("microsocks on port {port} exited: {st}");
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Ok(Microsocks { child, addr, _dir: dir });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = format!("microsocks on port {port} did not accept within 10 s");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err(last_err)
    }

    /// "127.0.0.1:PORT".
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Microsocks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// A small HTTP CONNECT proxy (python3) on a free 127.0.0.1 port, killed on
/// drop; it appends each request line it accepts to `log()`.
pub struct HttpConnectProxy {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

const HTTP_CONNECT_PROXY: &str = r#"
import socket, sys, threading
port, log = int(sys.argv[1]), sys.argv[2]
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(64)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    for s in (a, b):
        try: s.shutdown(socket.SHUT_WR)
        except OSError: pass
def serve(c):
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(1)
        if not d: return c.close()
        head += d
    line = head.split(b"\r\n")[0].decode()
    open(log, "a").write(line + "\n")
    method, target, _ = line.split(" ", 2)
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    if method != "CONNECT" or not (host.startswith("127.") or host == "::1"):
        c.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n"); return c.close()
    try: up = socket.create_connection((host, int(port)), timeout=10)
    except OSError:
        c.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n"); return c.close()
    c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    threading.Thread(target=pipe, args=(c, up), daemon=True).start()
    pipe(up, c)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

impl HttpConnectProxy {
    pub fn start() -> Result<Self, String> {
        let dir =
            tempfile::Builder::new().prefix("sockstrace-httpproxy").tempdir().map_err(|e| e.to_string())?;
        let log = dir.path().join("requests.log");
        let port = free_port();
        let child = Command::new("python3")
            .args(["-c", HTTP_CONNECT_PROXY, &port.to_string()])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn python3: {e}"))?;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                return Err("the HTTP CONNECT proxy did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(HttpConnectProxy { child, addr, log, _dir: dir })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The request lines the proxy received.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HttpConnectProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback listener whose accept queue is full (backlog 0, filled by connections that
/// nobody accepts): every further SYN is dropped, so a blocking connect to it stalls for
/// minutes (the SYN retries). Returns the listener and the fillers, kept open.
pub fn full_listener() -> (std::os::fd::OwnedFd, std::net::SocketAddr, Vec<std::net::TcpStream>) {
    // SAFETY: plain socket calls on a fd we own; the address is a valid sockaddr_in.
    let (fd, addr) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let fd = <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), (&raw const sa).cast(), len), 0, "bind");
        assert_eq!(libc::listen(std::os::fd::AsRawFd::as_raw_fd(&fd), 0), 0, "listen");
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut glen = len;
        assert_eq!(
            libc::getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd), (&raw mut got).cast(), &raw mut glen),
            0
        );
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], u16::from_be(got.sin_port)));
        (fd, addr)
    };
    let fillers = (0..2)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300)).ok()
        })
        .collect();
    (fd, addr, fillers)
}

/// A loopback listener that accepts every connection and never reads nor answers: an
/// allowed peer whose receive buffer fills, or a proxy that is slow to answer (Tor building a
/// circuit). Connections are kept open while it lives.
pub struct SilentPeer {
    pub addr: std::net::SocketAddr,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl SilentPeer {
    pub fn bind() -> Self {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind silent listener");
        let addr = l.local_addr().expect("local_addr");
        let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = accepted.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                keep.lock().unwrap().push(s);
            }
        });
        SilentPeer { addr, accepted }
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }
}
