//! Which proxy a connect reaches, for the inspector (pure).

use std::net::SocketAddr;

use crate::net::sockaddr::normalize;

/// The proxy an allowed TCP connect to `dst` reaches, so that it goes through the inspector:
/// the proxy itself, or a local-host address on the port of a loopback proxy. Linux connects an
/// unspecified address (`0.0.0.0`, `::`) to the local host, and a proxy listening on a wildcard
/// address (microsocks does by default) answers on every loopback address: either way the
/// program would talk to the proxy around the inspector. A proxy of `dst`'s family is preferred.
pub fn proxy_reached(proxies: &[SocketAddr], dst: SocketAddr) -> Option<SocketAddr> {
    let dst = normalize(dst);
    if proxies.contains(&dst) {
        return Some(dst);
    }
    if !(dst.ip().is_loopback() || dst.ip().is_unspecified()) {
        return None;
    }
    proxies
        .iter()
        .filter(|p| p.port() == dst.port() && p.ip().is_loopback())
        .min_by_key(|p| p.is_ipv4() != dst.is_ipv4())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn local_host_spellings_of_a_proxy_port_reach_the_proxy() {
        let proxies = [a("127.0.0.1:9050"), a("[::1]:9050")];
        let reached = |dst| proxy_reached(&proxies, a(dst));
        assert_eq!(reached("127.0.0.1:9050"), Some(a("127.0.0.1:9050")));
        assert_eq!(reached("0.0.0.0:9050"), Some(a("127.0.0.1:9050")));
        assert_eq!(reached("[::ffff:0.0.0.0]:9050"), Some(a("127.0.0.1:9050")));
        assert_eq!(reached("127.0.0.2:9050"), Some(a("127.0.0.1:9050")));
        assert_eq!(reached("[::]:9050"), Some(a("[::1]:9050")));
        assert_eq!(reached("[::1]:9050"), Some(a("[::1]:9050")));
        assert_eq!(reached("127.0.0.1:9051"), None, "another port");
        assert_eq!(reached("192.0.2.1:9050"), None, "not the local host");
    }

    #[test]
    fn a_remote_proxy_is_reached_only_at_its_own_address() {
        let proxies = [a("192.0.2.7:1080")];
        assert_eq!(proxy_reached(&proxies, a("192.0.2.7:1080")), Some(a("192.0.2.7:1080")));
        assert_eq!(proxy_reached(&proxies, a("0.0.0.0:1080")), None);
        assert_eq!(proxy_reached(&proxies, a("127.0.0.1:1080")), None);
    }
}
