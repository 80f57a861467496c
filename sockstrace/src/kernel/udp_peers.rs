//! UDP through the proxy, the kernel's part: the shims (the loopback sockets relayed replies
//! come from) are let through the backstop for UDP, and `UDP_PEERS` tells the `recvmsg` and
//! `getpeername` hooks which original peer each shim stands for on each program socket.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use anyhow::{bail, Context as _, Result};
use aya::maps::{Array, HashMap, MapData};
use aya::Pod;
use sockstrace_ebpf::{
    rule_flags, Config, Rule, UdpPeer, UdpPeerKey, CONFIG_MAP, MAX_RULES, RULES_MAP, UDP_PEERS_MAP,
};

use super::backstop::host_bytes;
use super::Witness;

#[derive(Clone, Copy)]
#[repr(transparent)]
struct PodKey(UdpPeerKey);
// SAFETY: `repr(C)` integers with explicit padding: no implicit padding, any bit pattern valid.
unsafe impl Pod for PodKey {}

#[derive(Clone, Copy)]
#[repr(transparent)]
struct PodPeer(UdpPeer);
// SAFETY: as for `PodKey`.
unsafe impl Pod for PodPeer {}

#[derive(Clone, Copy)]
#[repr(transparent)]
struct PodConfig(Config);
// SAFETY: as for `PodKey`.
unsafe impl Pod for PodConfig {}

#[derive(Clone, Copy)]
#[repr(transparent)]
struct PodRule(Rule);
// SAFETY: as for `PodKey`.
unsafe impl Pod for PodRule {}

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
    map: Mutex<HashMap<MapData, PodKey, PodPeer>>,
}

impl UdpPeers {
    /// Lets UDP to the shim addresses `shims` through the backstop and takes `UDP_PEERS` out of
    /// the witness's object.
    pub fn open(witness: &mut Witness, shims: &[IpAddr]) -> Result<UdpPeers> {
        let ebpf = witness.ebpf_mut().context("the kernel layer is stopped")?;
        let config: Array<_, PodConfig> = Array::try_from(
            ebpf.map_mut(CONFIG_MAP).with_context(|| format!("the eBPF object has no map {CONFIG_MAP}"))?,
        )?;
        let PodConfig(mut cfg) = config.get(&0, 0).context("reading CONFIG")?;
        if cfg.rule_count as usize + shims.len() > MAX_RULES as usize {
            bail!("no room in the kernel's rule table for the UDP shims");
        }
        let mut rules: Array<_, PodRule> = Array::try_from(
            ebpf.map_mut(RULES_MAP).with_context(|| format!("the eBPF object has no map {RULES_MAP}"))?,
        )?;
        for ip in shims {
            let rule = Rule::new(host_bytes(*ip), 128, 0, rule_flags::UDP_ONLY);
            rules.set(cfg.rule_count, PodRule(rule), 0).context("writing RULES")?;
            cfg.rule_count += 1;
        }
        let mut config: Array<_, PodConfig> = Array::try_from(ebpf.map_mut(CONFIG_MAP).context("CONFIG")?)?;
        config.set(0, PodConfig(cfg), 0).context("writing CONFIG")?;
        let map = ebpf
            .take_map(UDP_PEERS_MAP)
            .with_context(|| format!("the eBPF object has no map {UDP_PEERS_MAP}"))?;
        let map =
            HashMap::try_from(map).with_context(|| format!("map {UDP_PEERS_MAP} has an unexpected type"))?;
        Ok(UdpPeers { map: Mutex::new(map) })
    }

    /// Replies to socket `cookie` from `shim` show `original` as their source.
    pub fn insert(&self, cookie: u64, shim: SocketAddr, original: SocketAddr) -> Result<()> {
        let mut map = self.map.lock().map_err(|_| anyhow::anyhow!("UDP_PEERS lock poisoned"))?;
        map.insert(PodKey(key(cookie, shim)), PodPeer(peer(original)), 0).context("writing UDP_PEERS")
    }

    /// Forgets a shim (its socket is closed).
    pub fn remove(&self, cookie: u64, shim: SocketAddr) {
        if let Ok(mut map) = self.map.lock() {
            let _ = map.remove(&PodKey(key(cookie, shim)));
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
    fn a_shim_rule_lets_udp_through_and_nothing_else() {
        use sockstrace_ebpf::{rule_matches, transport, Ip6};
        let shim = host_bytes("127.83.84.1".parse().unwrap());
        let rule = Rule::new(shim, 128, 0, rule_flags::UDP_ONLY);
        let addr = Ip6::from_bytes(shim);
        assert!(rule_matches(&rule, addr, true, 40000, transport::UDP));
        assert!(!rule_matches(&rule, addr, true, 40000, transport::TCP));
        let other = Ip6::from_bytes(host_bytes("127.0.0.1".parse().unwrap()));
        assert!(!rule_matches(&rule, other, true, 40000, transport::UDP));
    }
}
