//! A DNS resolver for the traced program (issue 6): it answers the program's
//! queries so that no DNS packet leaves the machine except through the
//! proxy. The program's own `/etc/resolv.conf` (a private mount namespace)
//! names our address, e.g. `nameserver 127.77.X.Y`; we serve UDP and TCP
//! there.
//!
//! Three ways to answer ([`Upstream`]):
//! - **FakeIp** (default): A/AAAA from a private pool, 100.64.0.0/10 and
//!   fd7a:736f:636b::/48, stable per name, bounded (LRU-like); PTR for pool
//!   addresses. No traffic at all: socksify catches every connect to the
//!   pool (these addresses are never routed by us to the internet) and sends
//!   the proxy a CONNECT with the *name* ([`Resolver::name_for`]), as
//!   socks5h does. The one mode in which `.onion` names work. A connect to a
//!   pool address whose name is unknown ([`PoolAddress::Unnamed`]: never
//!   handed out, or evicted) is refused under every `--on-leak`, never made
//!   nor socksified by address (`supervisor::handlers::connect`); a SOCKS
//!   request for a pool address is `socks-by-address` whoever makes it (the
//!   inspector).
//! - **TorResolve**: Tor's SOCKS commands RESOLVE/RESOLVE_PTR.
//! - **TcpViaSocks**: the query over DNS-over-TCP to a resolver, through a
//!   SOCKS5 CONNECT.
//!
//! In every mode `localhost` and `invalid` (RFC 6761) are answered here and
//! never passed on. Modules: `query` (read, validate, reject), `reply`
//! (build, truncate), `answer` (outcomes, records), `special`, `pool` and
//! `fakeip`, `proxy` (async SOCKS5 client), `tor`, `forward`, `frame` (TCP
//! framing), `stats`, `handler` (one query end to end), `server` (listeners).

mod answer;
mod fakeip;
mod forward;
mod frame;
mod handler;
mod pool;
mod proxy;
mod query;
mod reply;
mod server;
mod special;
mod stats;
#[cfg(test)]
mod tests;
mod tor;

use std::net::SocketAddr;

pub use pool::{in_pool, PoolAddress};
pub use server::{Names, Resolver};
pub use stats::ResolverStats;

/// Where answers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Upstream {
    /// Answer A/AAAA with addresses from a private pool, remembering name <->
    /// address; the proxy resolves the name later, when the program connects
    /// (socks5h semantics).
    #[default]
    FakeIp,
    /// Tor's SOCKS extensions RESOLVE (command 0xF0; the reply carries the
    /// address) and RESOLVE_PTR (0xF1), through the proxy.
    TorResolve { proxy: SocketAddr },
    /// The query as DNS-over-TCP through a SOCKS5 CONNECT (via `proxy`) to
    /// `resolver` (e.g. 1.1.1.1:53).
    TcpViaSocks { proxy: SocketAddr, resolver: SocketAddr },
}
