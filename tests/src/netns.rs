//! A network namespace joined to the host by a veth pair, for tests that need
//! a peer whose address is not loopback. Needs root. Only the addresses given
//! (private test subnets on the veth pair) are used; everything is removed on
//! drop, also when a test fails.

use std::ffi::OsStr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::net::UdpSink;
use crate::run::{direct, Direct};
use crate::util::is_root;

/// A namespace `sockstrace-test-<pid>-<n>`, optionally with one end of a
/// veth pair (the other end stays in the host namespace).
pub struct NetNs {
    name: String,
    host_if: Option<String>,
    ns_if: Option<String>,
    /// Held while a veth pair exists: the host ends of concurrent pairs
    /// (other test threads or processes) would otherwise route the same test
    /// subnets. Released after the pair is gone (fields drop after `drop`).
    _veth_lock: Option<std::fs::File>,
}

/// An exclusive lock shared by every test process on this machine.
fn veth_lock() -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join("sockstrace-tests-veth.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    // SAFETY: flock on a valid fd; blocks until the lock is ours.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("flock {}: {}", path.display(), std::io::Error::last_os_error()));
    }
    Ok(file)
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl NetNs {
    /// Creates the namespace and the veth pair; `host_addrs` go on the host
    /// end and `ns_addrs` on the namespace end (CIDR form, "10.231.0.1/24").
    /// Every address must be in 10.0.0.0/8 (test subnets only).
    pub fn create(host_addrs: &[&str], ns_addrs: &[&str]) -> Result<NetNs, String> {
        if !is_root() {
            return Err("creating a network namespace needs root".into());
        }
        for a in host_addrs.iter().chain(ns_addrs) {
            assert!(a.starts_with("10."), "test subnets only (10.0.0.0/8), not {a}");
        }
        let lock = veth_lock()?;
        let (mut ns, n) = Self::add()?;
        ns._veth_lock = Some(lock);
        let pid = std::process::id() % 1_000_000;
        let host_if = format!("st{pid}h{n}");
        let ns_if = format!("st{pid}p{n}");
        ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if])?;
        ns.host_if = Some(host_if.clone());
        ns.ns_if = Some(ns_if.clone());
        ip(&["link", "set", &ns_if, "netns", &ns.name])?;
        for a in host_addrs {
            ip(&["addr", "add", a, "dev", &host_if])?;
        }
        ip(&["link", "set", &host_if, "up"])?;
        for a in ns_addrs {
            ip(&["netns", "exec", &ns.name, "ip", "addr", "add", a, "dev", &ns_if])?;
        }
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", &ns_if, "up"])?;
        Ok(ns)
    }

    /// A namespace with only its loopback device (up).
    pub fn bare() -> Result<NetNs, String> {
        if !is_root() {
            return Err("creating a network namespace needs root".into());
        }
        Ok(Self::add()?.0)
    }

    fn add() -> Result<(NetNs, u32), String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("sockstrace-test-{}-{n}", std::process::id());
        ip(&["netns", "add", &name])?;
        // From here on, Drop cleans up whatever was made.
        let ns = NetNs { name, host_if: None, ns_if: None, _veth_lock: None };
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"])?;
        Ok((ns, n))
    }

    /// Writes `/proc/sys/NAME` inside the namespace (only its own copy of
    /// the per-namespace network settings changes).
    pub fn sysctl(&self, name: &str, value: &str) -> Result<(), String> {
        let out = self.exec(["sh", "-c", &format!("echo {value} > /proc/sys/{name}")]);
        if out.code == 0 {
            Ok(())
        } else {
            Err(format!("setting {name} in {}: {}", self.name, out.stderr.trim()))
        }
    }

    /// Runs `f` on a thread that has joined the namespace (sockets made there
    /// stay in it).
    pub fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd; affects this thread only.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in the namespace")
    }

    /// A UDP sink on `host`:0 inside the namespace.
    pub fn udp_sink(&self, host: &str) -> UdpSink {
        let addr: std::net::SocketAddr = format!("{host}:0").parse().expect("numeric host");
        let sock = self
            .inside(move || std::net::UdpSocket::bind(addr))
            .unwrap_or_else(|e| panic!("bind UDP sink on {host} in {}: {e}", self.name));
        UdpSink::from_socket(sock)
    }

    /// The veth ends: (host side, namespace side), when there is a pair.
    pub fn veth(&self) -> Option<(&str, &str)> {
        Some((self.host_if.as_deref()?, self.ns_if.as_deref()?))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The veth end in the host namespace, if there is a pair.
    pub fn host_if(&self) -> Option<&str> {
        self.host_if.as_deref()
    }

    /// The veth end inside the namespace, if there is a pair.
    pub fn ns_if(&self) -> Option<&str> {
        self.ns_if.as_deref()
    }

    /// Runs `argv` inside the namespace (`ip netns exec`), with the usual
    /// 60 s limit.
    pub fn exec<I, S>(&self, argv: I) -> Direct
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut full: Vec<std::ffi::OsString> =
            vec!["ip".into(), "netns".into(), "exec".into(), self.name.clone().into()];
        full.extend(argv.into_iter().map(|a| a.as_ref().to_owned()));
        direct(full)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the host end removes its peer too; deleting the namespace
        // removes the peer if it is still there.
        if let Some(host_if) = &self.host_if {
            let _ = ip(&["link", "del", host_if]);
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("warning: cleaning up network namespace {}: {e}", self.name);
        }
    }
}
