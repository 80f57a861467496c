//! UDP through the proxy, the kernel's part: `UDP_PEERS` names the shims (the loopback sockets
//! relayed replies come from) of each program socket. The connect and send hooks let a socket's
//! UDP reach a shim address only where its (socket, shim) pair is there, and the `recvmsg` and
//! `getpeername` hooks show the original peer each shim stands for.

use std::net::SocketAddr;
use std::sync::Mutex;

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData};
use sockstrace_common::{UdpPeer, UdpPeerKey, UDP_PEERS_MAP};

use super::backstop::host_bytes;
use super::Witness;

/// The address words and port as the hooks read them (see [`UdpPeerKey`]).
fn words(addr: SocketAddr) -> ([u32; 4], u32) {
    let bytes = host_bytes(addr.ip());
    let mut w = [0u32; 4];
    for (i, chunk) in bytes.chunks_exact(4).enumerate() {
        w[i] = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    (w, u32::from(addr.port().to_be()))
}

/// The key for replies to program socket `cookie` from `shim`.
pub fn key(cookie: u64, shim: SocketAddr) -> UdpPeerKey {
    let (ip, port) = words(shim);
    UdpPeerKey { cookie, ip, port, _pad: 0 }
}

/// The value naming `peer`.
pub fn peer(peer: SocketAddr) -> UdpPeer {
    let (ip, port) = words(peer);
    UdpPeer { ip, port, _pad: 0 }
}

/// The reply-address map, shared by the relay threads.
pub struct UdpPeers {
    map: Mutex<HashMap<MapData, UdpPeerKey, UdpPeer>>,
}

impl UdpPeers {
    /// Takes `UDP_PEERS` out of the witness's object. Nothing is let through the backstop
    /// here: each shim is, for its own socket only, by its entry ([`UdpPeers::insert`]).
    pub fn open(witness: &mut Witness) -> Result<UdpPeers> {
        let ebpf = witness.ebpf_mut().context("the kernel layer is stopped")?;
        let map = ebpf
            .take_map(UDP_PEERS_MAP)
            .with_context(|| format!("the eBPF object has no map {UDP_PEERS_MAP}"))?;
        let map =
            HashMap::try_from(map).with_context(|| format!("map {UDP_PEERS_MAP} has an unexpected type"))?;
        Ok(UdpPeers { map: Mutex::new(map) })
    }

    /// Replies to socket `cookie` from `shim` show `original` as their source, and the socket
    /// may reach `shim` (UDP): to be entered before the socket is connected there.
    pub fn insert(&self, cookie: u64, shim: SocketAddr, original: SocketAddr) -> Result<()> {
        let mut map = self.map.lock().map_err(|_| anyhow::anyhow!("UDP_PEERS lock poisoned"))?;
        map.insert(key(cookie, shim), peer(original), 0).context("writing UDP_PEERS")
    }

    /// Forgets a shim (its socket is closed).
    pub fn remove(&self, cookie: u64, shim: SocketAddr) {
        if let Ok(mut map) = self.map.lock() {
            let _ = map.remove(&key(cookie, shim));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_the_kernels_words() {
        let k = key(7, "127.83.84.1:4660".parse().unwrap());
        assert_eq!(k.cookie, 7);
        // ::ffff:127.83.84.1 in memory order, port 0x1234 in network order.
        let bytes: Vec<u8> = k.ip.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(bytes, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 83, 84, 1]);
        assert_eq!((k.port as u16).to_ne_bytes(), [0x12, 0x34]);
        let v6 = peer("[::1]:53".parse().unwrap());
        assert_eq!(v6.ip[3].to_ne_bytes(), [0, 0, 0, 1]);
    }

    #[test]
    fn the_hooks_build_the_same_key_for_a_shim() {
        use sockstrace_common::{may_be_shim, transport, Ip6};
        for shim in ["127.83.84.1:4660", "[::1]:40000"] {
            let shim: SocketAddr = shim.parse().unwrap();
            let addr = Ip6::from_bytes(host_bytes(shim.ip()));
            assert_eq!(UdpPeerKey::new(9, addr, shim.port()), key(9, shim), "{shim}");
            assert!(may_be_shim(transport::UDP, addr, shim.port()));
            assert!(!may_be_shim(transport::TCP, addr, shim.port()));
        }
        // A v4-mapped destination of an IPv6 socket is the same key as the IPv4 one.
        let mapped = Ip6::from_bytes("::ffff:127.83.84.1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(UdpPeerKey::new(9, mapped, 4660), key(9, "127.83.84.1:4660".parse().unwrap()));
        let elsewhere = Ip6::from_bytes(host_bytes("10.1.2.3".parse().unwrap()));
        assert!(!may_be_shim(transport::UDP, elsewhere, 4660));
    }
}
