//! The run's world: a network namespace for sockstrace and the program (loopback up, a fake
//! proxy, sinks on non-allowed addresses, a sniffer on `lo`), joined by a veth pair to a
//! second namespace whose end carries the far addresses and a sniffer. Everything the
//! sniffers and sinks see goes through the oracle into `observed`. Removed on drop (also on
//! failure and, through the caller's signal flag, on Ctrl-C).

use std::io::Read as _;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::grammar::addrs;
use super::oracle::{self, Leak, Policy};

pub const VETH_NEAR: &str = "fzva";
const VETH_FAR: &str = "fzvb";

pub struct Env {
    pub ns: String,
    far: String,
    pub veth_ifindex: i32,
    pub observed: Arc<Mutex<Vec<Leak>>>,
    stop: Arc<AtomicBool>,
    /// The last sentinel each sniffer saw (lo, veth), and the last one sent.
    sentinels: Vec<Arc<AtomicU64>>,
    flushes: AtomicU64,
    threads: Vec<JoinHandle<()>>,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("cannot run ip")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Removes namespaces left by fuzz runs whose process is gone (a run killed with SIGKILL).
pub fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("sfz-") else { continue };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Runs `f` on a thread inside namespace `ns` and returns its result.
fn inside<T: Send + 'static>(ns: &str, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
        // SAFETY: setns on a valid namespace fd; it affects this thread only.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns {path}: {}", std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("thread in {ns} panicked"))?
}

impl Env {
    pub fn create(policy: &Policy) -> Result<Env> {
        remove_stale();
        let pid = std::process::id();
        let ns = format!("sfz-{pid}-a");
        let far = format!("sfz-{pid}-b");
        ip(&["netns", "add", &ns])?;
        let mut env = Env {
            ns: ns.clone(),
            far: far.clone(),
            veth_ifindex: 0,
            observed: Arc::default(),
            stop: Arc::default(),
            sentinels: Vec::new(),
            flushes: AtomicU64::new(0),
            threads: Vec::new(),
        };
        ip(&["netns", "add", &far])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        // No multicast memberships: the kernel's IGMP reports for a group a past run joined
        // would keep coming, long after that run, and be blamed on later ones.
        let sysctl = Command::new("ip")
            .args(["netns", "exec", &ns, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/igmp_max_memberships"])
            .status()?;
        if !sysctl.success() {
            bail!("setting igmp_max_memberships in {ns}");
        }
        ip(&["-n", &ns, "link", "add", VETH_NEAR, "type", "veth", "peer", "name", VETH_FAR, "netns", &far])?;
        let v4 = |a: [u8; 4]| format!("{}.{}.{}.{}/24", a[0], a[1], a[2], a[3]);
        let v6 = |a: [u8; 16]| format!("{}/64", std::net::Ipv6Addr::from(a));
        ip(&["-n", &ns, "addr", "add", &v4(addrs::NEAR4), "dev", VETH_NEAR])?;
        ip(&["-n", &ns, "addr", "add", &v6(addrs::NEAR6), "dev", VETH_NEAR, "nodad"])?;
        ip(&["-n", &far, "addr", "add", &v4(addrs::FAR4), "dev", VETH_FAR])?;
        ip(&["-n", &far, "addr", "add", &v4(addrs::FAR4_B), "dev", VETH_FAR])?;
        ip(&["-n", &far, "addr", "add", &v6(addrs::FAR6), "dev", VETH_FAR, "nodad"])?;
        ip(&["-n", &far, "addr", "add", &v6(addrs::FAR6_B), "dev", VETH_FAR, "nodad"])?;
        ip(&["-n", &ns, "link", "set", VETH_NEAR, "up"])?;
        ip(&["-n", &far, "link", "set", VETH_FAR, "up"])?;
        ip(&["-n", &far, "link", "set", "lo", "up"])?;
        // Every other destination leaves through the veth.
        let far4 = format!("{}.{}.{}.{}", addrs::FAR4[0], addrs::FAR4[1], addrs::FAR4[2], addrs::FAR4[3]);
        ip(&["-n", &ns, "route", "add", "default", "via", &far4])?;
        let far6 = std::net::Ipv6Addr::from(addrs::FAR6).to_string();
        ip(&["-n", &ns, "-6", "route", "add", "default", "via", &far6])?;
        env.veth_ifindex = inside(&ns, || {
            let name = std::ffi::CString::new(VETH_NEAR)?;
            // SAFETY: a valid NUL-terminated name.
            Ok(unsafe { libc::if_nametoindex(name.as_ptr()) } as i32)
        })?;
        env.start_sniffer(&ns, "lo", "lo", policy)?;
        env.start_sniffer(&far, VETH_FAR, "veth", policy)?;
        env.start_sinks(policy)?;
        std::thread::sleep(Duration::from_millis(50));
        env.observed.lock().map(|mut o| o.clear()).ok();
        Ok(env)
    }

    fn start_sniffer(
        &mut self,
        ns: &str,
        dev: &'static str,
        label: &'static str,
        policy: &Policy,
    ) -> Result<()> {
        let fd = inside(ns, move || {
            let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
            // SAFETY: plain socket call; the fd is owned right after.
            let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, proto) };
            if raw < 0 {
                bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
            }
            // SAFETY: raw is a fresh fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let name = std::ffi::CString::new(dev)?;
            // SAFETY: a zeroed sockaddr_ll is valid; the fields are set below.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto as u16;
            // SAFETY: a valid NUL-terminated name.
            sll.sll_ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
            let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
            // SAFETY: valid pointers and lengths for bind and setsockopt.
            unsafe {
                if libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    size_of_val(&sll) as u32,
                ) != 0
                {
                    bail!("bind AF_PACKET to {dev}: {}", std::io::Error::last_os_error());
                }
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    size_of_val(&tv) as u32,
                );
            }
            Ok(fd)
        })?;
        let (stop, observed, policy) = (self.stop.clone(), self.observed.clone(), policy.clone());
        let seen = Arc::new(AtomicU64::new(0));
        self.sentinels.push(seen.clone());
        self.threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 70000];
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: zeroed sockaddr_ll is valid as an out-parameter.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut len = size_of_val(&sll) as u32;
                // SAFETY: buf and sll are valid for the lengths given.
                let n = unsafe {
                    libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&mut sll as *mut libc::sockaddr_ll).cast(),
                        &mut len,
                    )
                };
                if n <= 0 {
                    continue;
                }
                let ethertype = u16::from_be(sll.sll_protocol);
                if let Some(n) = oracle::sentinel(ethertype, &buf[..n as usize]) {
                    if sll.sll_pkttype != oracle::PACKET_OUTGOING {
                        seen.fetch_max(n, Ordering::SeqCst);
                    }
                    continue;
                }
                if let Some(leak) =
                    oracle::judge(&policy, label, ethertype, sll.sll_pkttype, &buf[..n as usize])
                {
                    if let Ok(mut o) = observed.lock() {
                        o.push(leak);
                    }
                }
            }
        }));
        Ok(())
    }

    fn start_sinks(&mut self, _policy: &Policy) -> Result<()> {
        let mut v4: Vec<IpAddr> = addrs::SINKS4.iter().map(|a| IpAddr::from(*a)).collect();
        v4.push("::1".parse()?);
        let proxies: Vec<SocketAddr> = vec![
            SocketAddr::new("127.0.0.1".parse()?, addrs::PROXY_PORT),
            SocketAddr::new("::1".parse()?, addrs::PROXY_PORT),
        ];
        let (udp, tcp, fake) = inside(&self.ns, move || {
            let mut udp = Vec::new();
            let mut tcp = Vec::new();
            for ip in &v4 {
                for port in addrs::SINK_PORTS {
                    let addr = SocketAddr::new(*ip, port);
                    udp.push(UdpSocket::bind(addr).with_context(|| format!("UDP sink {addr}"))?);
                    tcp.push(TcpListener::bind(addr).with_context(|| format!("TCP sink {addr}"))?);
                }
            }
            let mut fake = Vec::new();
            for p in &proxies {
                fake.push(TcpListener::bind(p).with_context(|| format!("fake proxy {p}"))?);
            }
            Ok((udp, tcp, fake))
        })?;
        for sock in udp {
            sock.set_read_timeout(Some(Duration::from_millis(100)))?;
            let (stop, observed) = (self.stop.clone(), self.observed.clone());
            let local = sock.local_addr()?;
            self.threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 70000];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        let kind = if local.is_ipv4() { "udp4" } else { "udp6" };
                        if let Ok(mut o) = observed.lock() {
                            o.push(oracle::sink_leak(kind, local.ip(), local.port(), &buf[..n]));
                        }
                    }
                }
            }));
        }
        for (listener, is_sink) in
            tcp.into_iter().map(|l| (l, true)).chain(fake.into_iter().map(|l| (l, false)))
        {
            listener.set_nonblocking(true)?;
            let (stop, observed) = (self.stop.clone(), self.observed.clone());
            let local = listener.local_addr()?;
            self.threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut conn, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let observed = observed.clone();
                    // A short-lived reader per connection: drain, record what a sink got.
                    std::thread::spawn(move || {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
                        let mut buf = vec![0u8; 4096];
                        let n = conn.read(&mut buf).unwrap_or(0);
                        if is_sink {
                            let kind = if local.is_ipv4() { "tcp4" } else { "tcp6" };
                            if let Ok(mut o) = observed.lock() {
                                o.push(oracle::sink_leak(kind, local.ip(), local.port(), &buf[..n]));
                            }
                        }
                        while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
                    });
                }
            }));
        }
        Ok(())
    }

    /// Returns once both sniffers have judged everything captured so far: sends a sentinel
    /// datagram over loopback and one out of the veth, and waits (at most 500 ms) until each
    /// sniffer has seen its own.
    pub fn flush(&self) {
        let n = self.flushes.fetch_add(1, Ordering::SeqCst) + 1;
        let payload = oracle::sentinel_payload(n);
        let far = IpAddr::from(addrs::FAR4);
        let sent = inside(&self.ns, move || {
            let sock = UdpSocket::bind("127.0.0.1:0")?;
            sock.send_to(&payload, ("127.0.0.1", oracle::SENTINEL_PORT))?;
            let out = UdpSocket::bind("0.0.0.0:0")?;
            out.send_to(&payload, (far, oracle::SENTINEL_PORT))?;
            Ok(())
        });
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        let done = || self.sentinels.iter().all(|s| s.load(Ordering::SeqCst) >= n);
        if sent.is_err() {
            std::thread::sleep(Duration::from_millis(40));
            return;
        }
        while !done() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// What the oracle saw since the last call.
    pub fn take(&self) -> Vec<Leak> {
        self.observed.lock().map(|mut o| std::mem::take(&mut *o)).unwrap_or_default()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = ip(&["-n", &self.ns, "link", "del", VETH_NEAR]);
        for ns in [&self.ns, &self.far] {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("fuzz: warning: removing network namespace {ns}: {e:#}");
            }
        }
    }
}
