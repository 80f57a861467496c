//! `--on-leak socksify` for UDP: a datagram to a destination the policy does not allow goes
//! through a SOCKS5 proxy's UDP relay (RFC 1928 UDP ASSOCIATE), and the program receives the
//! replies from the original peer's address.
//!
//! | module | concern |
//! | --- | --- |
//! | `probe` | which proxy offers UDP ASSOCIATE (at start), or why none does |
//! | `assoc` | one program socket's association: control connection, relay socket, shims, thread |
//! | `hook` | the handlers' entry points (sends and connects of UDP sockets) |
//!
//! Replies are delivered to the program's socket from a loopback "shim" socket per peer; the
//! kernel layer's `recvmsg4/6` and `getpeername4/6` hooks show the original peer instead
//! (`kernel::udp_peers`). Without the kernel layer (not root) nothing could show that address,
//! so UDP stays a leak handled as `--on-leak socksify` handled it before (blocked).

mod assoc;
pub mod hook;
mod probe;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;

use super::handlers::{LeakAction, SocksAuth};
use crate::kernel::udp_peers::UdpPeers;
use crate::kernel::Witness;
use crate::policy::Policy;

pub use assoc::Assoc;

/// Associations (program sockets) at once; past this, new ones are refused (`ENOBUFS`).
const MAX_ASSOCIATIONS: usize = 1024;

/// What went through the relay.
#[derive(Default)]
pub struct Stats {
    pub flows: AtomicU64,
    pub associations: AtomicU64,
    pub datagrams_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub datagrams_in: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Datagrams we could not relay (malformed relay datagrams, a shim that could not be made,
    /// a send that failed).
    pub dropped: AtomicU64,
}

/// The relay of one run.
pub struct UdpProxy {
    /// The SOCKS5 servers to ask for UDP ASSOCIATE, in order.
    candidates: Vec<SocketAddr>,
    /// The first that granted it, or why none did: asked once, at the first leaked datagram
    /// (a run without one never connects to the proxy on its own).
    server: OnceLock<Result<SocketAddr, String>>,
    /// Held while the proxies are asked.
    asking: Mutex<()>,
    /// Credentials for the associations (per association with Tor-style isolation).
    auth: Option<SocksAuth>,
    peers: UdpPeers,
    assocs: Mutex<HashMap<u64, Arc<Assoc>>>,
    stats: Stats,
}

impl UdpProxy {
    /// The proxy that carries UDP, once asked ([`UdpProxy::server_or_stop`]).
    pub fn server(&self) -> Result<SocketAddr, &str> {
        match self.server.get() {
            Some(found) => found.as_ref().copied().map_err(String::as_str),
            None => Err("the proxies were not asked yet"),
        }
    }

    /// The proxy that carries UDP, asked on first use (blocks up to the probe's timeouts, one
    /// asker at a time); `None` when `stop` (the asker's caller gone) ended the asking first:
    /// nothing is kept, and the next leaked datagram asks again.
    pub fn server_or_stop(&self, stop: crate::socks::Stop<'_>) -> Option<Result<SocketAddr, &str>> {
        if self.server.get().is_none() {
            let _asking = self.asking.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if self.server.get().is_none() {
                let auth = self.auth.clone().unwrap_or(SocksAuth::PerConnection);
                let found = probe::first_offering_udp(&self.candidates, &auth, stop)?;
                crate::report_writer::human::write_line(&format!(
                    "sockstrace: UDP through the proxy: {}",
                    state_of(&found)
                ));
                let _ = self.server.set(found);
            }
        }
        Some(self.server())
    }

    /// Whether the proxy has been asked yet.
    pub fn probed(&self) -> bool {
        self.server.get().is_some()
    }

    /// The association of program socket `cookie`, made (and its thread started) on first use.
    pub fn assoc_for(
        self: &Arc<Self>,
        cookie: u64,
        family: i32,
        local: SocketAddr,
    ) -> std::io::Result<(Arc<Assoc>, bool)> {
        let mut assocs = self.assocs.lock().map_err(|_| std::io::ErrorKind::Other)?;
        if let Some(a) = assocs.get(&cookie).filter(|a| !a.is_closed()) {
            return Ok((a.clone(), false));
        }
        if assocs.len() >= MAX_ASSOCIATIONS {
            return Err(std::io::Error::from_raw_os_error(libc::ENOBUFS));
        }
        let assoc = Assoc::new(cookie, family, local)?;
        assocs.insert(cookie, assoc.clone());
        drop(assocs);
        self.stats.associations.fetch_add(1, Ordering::Relaxed);
        let (me, serving) = (self.clone(), assoc.clone());
        std::thread::Builder::new().name("udp-relay".into()).spawn(move || {
            super::block_signals_in_this_thread();
            serving.serve(me)
        })?;
        Ok((assoc, true))
    }

    fn forget(&self, cookie: u64) {
        if let Ok(mut assocs) = self.assocs.lock() {
            if assocs.get(&cookie).is_some_and(|a| a.is_closed()) {
                assocs.remove(&cookie);
            }
        }
    }

    /// The summary's `udp_proxy` object: the state and the counts.
    pub fn summary(&self) -> serde_json::Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.stats;
        let state = match self.server.get() {
            Some(found) => state_of(found),
            None => "unused (no leaked datagram)".into(),
        };
        json!({
            "state": state,
            "flows": n(&s.flows),
            "associations": n(&s.associations),
            "datagrams_out": n(&s.datagrams_out),
            "bytes_out": n(&s.bytes_out),
            "datagrams_in": n(&s.datagrams_in),
            "bytes_in": n(&s.bytes_in),
            "dropped": n(&s.dropped),
        })
    }
}

fn state_of(found: &Result<SocketAddr, String>) -> String {
    match found {
        Ok(server) => format!("on (UDP ASSOCIATE via {server})"),
        Err(why) => format!("off ({why})"),
    }
}

/// Sets UDP through the proxy up for a run, or says why not: `(relay, state)`, where `state`
/// says why there is no relay; `None` when `--on-leak` is not socksify. The proxies are asked
/// for UDP ASSOCIATE at the first leaked datagram ([`UdpProxy::server`]).
pub fn setup(
    policy: &Policy,
    on_leak: LeakAction,
    udp_proxy: Option<SocketAddr>,
    auth: &SocksAuth,
    witness: Option<&mut Witness>,
) -> Option<(Option<Arc<UdpProxy>>, String)> {
    if on_leak != LeakAction::Socksify {
        return None;
    }
    let Some(witness) = witness else {
        return Some((
            None,
            "off (needs the kernel layer, as root: only its recvmsg hooks can show replies from the original peer)"
                .into(),
        ));
    };
    let candidates: Vec<SocketAddr> = match udp_proxy {
        Some(addr) => vec![addr],
        None => policy.proxies.iter().filter(|p| !policy.http_proxies.contains(p)).copied().collect(),
    };
    let peers = match UdpPeers::open(witness) {
        Ok(p) => p,
        Err(e) => return Some((None, format!("off ({e:#})"))),
    };
    let auth = match auth {
        SocksAuth::PerConnection => Some(SocksAuth::PerConnection),
        fixed @ SocksAuth::Fixed(_) => Some(fixed.clone()),
    };
    let proxy = UdpProxy {
        candidates,
        server: OnceLock::new(),
        asking: Mutex::new(()),
        auth,
        peers,
        assocs: Mutex::default(),
        stats: Stats::default(),
    };
    Some((Some(Arc::new(proxy)), String::new()))
}
