//! `--dns proxy`: a resolver inside sockstrace on a loopback address of its
//! own, and a resolv.conf naming it that the program sees (bound over
//! /etc/resolv.conf in the program's private mount namespace).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::dns::{Names, Resolver, ResolverStats, Upstream};
use crate::policy::{AllowRule, Policy};

/// The resolver and the resolv.conf that points at it; the file goes with it.
pub struct DnsProxy {
    resolver: Resolver,
    dir: PathBuf,
}

impl DnsProxy {
    /// Starts the resolver on a free 127.77.x.y:53 and writes the resolv.conf.
    /// `isolated` (`--isolate-network`): without root, the resolver listens on
    /// any port of that address, and the program reaches it on port 53 in its
    /// own namespace through a forwarder; the mount namespace is made inside
    /// the program's user namespace.
    pub fn start(runtime: &tokio::runtime::Runtime, upstream: Upstream, isolated: bool) -> Result<DnsProxy> {
        let root = nix::unistd::geteuid().is_root();
        anyhow::ensure!(
            root || isolated,
            "--dns proxy needs root (it gives the program a private mount namespace and binds port 53), or --isolate-network"
        );
        let resolver = start_on_free_address(runtime, upstream, if root { 53 } else { 0 })?;
        let dir = if root {
            PathBuf::from(format!("/run/sockstrace/dns-{}", std::process::id()))
        } else {
            std::env::temp_dir().join(format!("sockstrace-dns-{}", std::process::id()))
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf = format!(
            "# written by sockstrace --dns proxy: names resolve through the proxy\nnameserver {}\n",
            resolver.local_addr().ip()
        );
        std::fs::write(dir.join("resolv.conf"), conf).context("writing the program's resolv.conf")?;
        Ok(DnsProxy { resolver, dir })
    }

    /// Maps the resolver's fake addresses back to names, from any thread.
    pub fn names(&self) -> Names {
        self.resolver.names()
    }

    /// What the resolver answered, for the summary.
    pub fn stats(&self) -> ResolverStats {
        self.resolver.stats()
    }

    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }

    /// Where the program sends its queries: the resolver's address, port 53.
    pub fn program_addr(&self) -> SocketAddr {
        SocketAddr::new(self.resolver.local_addr().ip(), 53)
    }

    /// `--isolate-network`: the resolver's UDP and TCP port, forwarded into
    /// the program's namespace on port 53.
    pub fn forwards(&self) -> [super::isolate::Forward; 2] {
        let (inside, outside) = (self.program_addr(), self.resolver.local_addr());
        [true, false].map(|udp| super::isolate::Forward { inside, outside, udp })
    }

    /// Lets the program reach the resolver (the supervisor and the kernel layer alike).
    pub fn allow_in(&self, policy: &mut Policy) {
        let addr = self.program_addr();
        policy.allow.push(AllowRule::Net { net: ipnet::IpNet::from(addr.ip()), port: Some(addr.port()) });
    }
}

impl Drop for DnsProxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// 127.77.0.0/16 is ours; try a few addresses derived from our pid.
fn start_on_free_address(
    runtime: &tokio::runtime::Runtime,
    upstream: Upstream,
    port: u16,
) -> Result<Resolver> {
    let pid = std::process::id();
    let mut last_error = None;
    for attempt in 0..16u32 {
        let n = pid.wrapping_add(attempt.wrapping_mul(7919)) % 65_024 + 256;
        let ip = Ipv4Addr::new(127, 77, (n >> 8) as u8, n as u8);
        let addr = SocketAddr::new(IpAddr::V4(ip), port);
        match runtime.block_on(Resolver::start(addr, upstream)) {
            Ok(resolver) => return Ok(resolver),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no free address")).context("starting the DNS resolver"))
}
