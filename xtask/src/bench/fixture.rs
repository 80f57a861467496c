//! What the demo and the benchmarks run against: the release binary, Debian's microsocks, a tiny
//! HTTP server, the C bench client and its listeners. Every running piece stops when dropped, and
//! the child processes also die with us (`PR_SET_PDEATHSIG`) if we are killed.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{cmd, test};

/// Builds `sockstrace` with `--release` and returns the binary's path.
pub fn build_sockstrace() -> Result<PathBuf> {
    cmd::run(cmd::cargo().args(["build", "--release", "--package", "sockstrace"]))?;
    let bin = test::target_dir()?.join("release").join("sockstrace");
    if !bin.is_file() {
        bail!("`cargo build --release` succeeded but {} is missing", bin.display());
    }
    Ok(bin)
}

/// Builds `xtask/clients/bench_client.c` with `gcc -O2` into `target/bench/` and returns its path.
pub fn build_client() -> Result<PathBuf> {
    let source = cmd::workspace_root().join("xtask").join("clients").join("bench_client.c");
    let dir = bench_dir()?;
    let bin = dir.join("bench_client");
    cmd::run(Command::new("gcc").args(["-O2", "-Wall", "-Wextra", "-pthread", "-o"]).arg(&bin).arg(&source))?;
    Ok(bin)
}

/// `target/bench`, created if absent.
pub fn bench_dir() -> Result<PathBuf> {
    let dir = test::target_dir()?.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Makes the child get SIGKILL when we die, so nothing outlives an interrupted task.
pub fn die_with_parent(command: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A child process killed and reaped on drop.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nobody listens on right now (the kernel's choice; free again once we drop it).
fn free_port(ip: Ipv4Addr) -> Result<u16> {
    let listener = TcpListener::bind((ip, 0)).with_context(|| format!("binding {ip}:0"))?;
    Ok(listener.local_addr()?.port())
}

/// Debian's microsocks on 127.0.0.1:<free port>.
pub struct Microsocks {
    addr: SocketAddr,
    command: String,
    _child: Guarded,
}

impl Microsocks {
    pub fn start() -> Result<Self> {
        let ip = Ipv4Addr::LOCALHOST;
        let port = free_port(ip)?;
        let mut command = Command::new("microsocks");
        command.args(["-i", &ip.to_string(), "-p", &port.to_string()]);
        let shown = cmd::display(&command);
        let child = die_with_parent(&mut command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting `{shown}` (is microsocks installed? `cargo xtask setup`)"))?;
        let mut child = Guarded(child);
        let addr = SocketAddr::V4(SocketAddrV4::new(ip, port));
        wait_listening(&mut child.0, addr).with_context(|| format!("`{shown}` did not come up"))?;
        Ok(Self { addr, command: shown, _child: child })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The command line that started it.
    pub fn command(&self) -> &str {
        &self.command
    }
}

/// Waits until `addr` accepts a connection, failing if `child` exits or 5 s pass.
fn wait_listening(child: &mut Child, addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("it exited: {status}");
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after 5 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A one-page HTTP/1.0-style server on a thread: answers every request with `page`, closes the
/// connection, and counts the connections it accepted.
pub struct HttpServer {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn start(ip: Ipv4Addr, page: &'static str) -> Result<Self> {
        let listener = TcpListener::bind((ip, 0)).with_context(|| format!("binding {ip}:0"))?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (connections, stop) = (Arc::clone(&connections), Arc::clone(&stop));
            thread::spawn(move || serve(&listener, page, &connections, &stop))
        };
        Ok(Self { addr, connections, stop, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; the thread sees `stop` and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &TcpListener, page: &str, connections: &AtomicU64, stop: &AtomicBool) {
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else { continue };
        connections.fetch_add(1, Ordering::SeqCst);
        if read_request(&mut stream) {
            let _ = stream.write_all(response.as_bytes());
        }
    }
}

/// Reads up to the end of the request head; false on EOF, error or timeout before it.
fn read_request(stream: &mut TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return false;
        }
    }
    true
}

/// The bench client's listener (`bench_client sink`), on 127.0.0.1:<its choice>.
pub struct Sink {
    port: u16,
    _child: Guarded,
}

impl Sink {
    /// `mode` is `close` (accept and close: the connect storm) or `drain` (read to EOF: bulk).
    pub fn start(client: &Path, mode: &str, threads: u32) -> Result<Self> {
        let mut command = Command::new(client);
        command.args(["sink", "127.0.0.1", mode, &threads.to_string()]);
        let shown = cmd::display(&command);
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{shown}`"))?;
        let mut child = Guarded(child);
        let stdout = child.0.stdout.take().context("sink stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).with_context(|| format!("reading `{shown}`"))?;
        let port = line
            .strip_prefix("port ")
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("`{shown}` printed {line:?}, not `port N`"))?;
        Ok(Self { port, _child: child })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}
