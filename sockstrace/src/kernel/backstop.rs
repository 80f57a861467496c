//! The in-kernel backstop policy: `Policy` compiled into the `CONFIG` and `RULES` map entries.
//!
//! Pure: no maps, no I/O. The kernel judges with `sockstrace_common::judge_*` on these entries;
//! the tests below run those same judges and compare them with `policy::decide`.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use sockstrace_common::{rule_flags, v4_mapped, Config, Rule, MAX_RULES};

use crate::policy::{AllowRule, Incoming, Policy};

/// What the kernel's maps hold for one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backstop {
    /// `CONFIG[0]`.
    pub config: Config,
    /// `RULES[0..]`; `config.rule_count` of them.
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackstopError {
    #[error("the policy has {count} proxies and address rules; the kernel layer holds at most {max}")]
    TooManyRules { count: usize, max: u32 },
    #[error("proxy {0} has port 0")]
    ProxyWithoutPort(SocketAddr),
}

impl Backstop {
    /// The same, for `audit`: the egress gate reports destinations the rules do not allow but
    /// drops only what no policy allows (see `Config::egress_destinations`).
    pub fn for_audit(mut self) -> Self {
        self.config.egress_destinations = 0;
        self
    }

    /// The same, for programs attached to the cgroup `cgroup_id`.
    pub fn for_cgroup(mut self, cgroup_id: u64) -> Self {
        self.config.cgroup_id = cgroup_id;
        self
    }
}

/// Compiles `policy`: every proxy becomes a TCP-only host rule for its port, every address
/// `--allow` a network rule (any port unless given), `allow_loopback` and `incoming` flags. Unix rules have
/// no kernel counterpart (the cgroup inet hooks never see unix sockets) and are left out.
pub fn compile(policy: &Policy, enforce: bool) -> Result<Backstop, BackstopError> {
    let mut rules = Vec::with_capacity(policy.proxies.len() + policy.allow.len());
    for &proxy in &policy.proxies {
        if proxy.port() == 0 {
            return Err(BackstopError::ProxyWithoutPort(proxy));
        }
        rules.push(Rule::new(host_bytes(proxy.ip()), 128, proxy.port(), rule_flags::TCP_ONLY));
    }
    for rule in &policy.allow {
        if let AllowRule::Net { net, port } = rule {
            rules.push(network_rule(*net, port.unwrap_or(0)));
        }
    }
    let max = MAX_RULES;
    let rule_count = u32::try_from(rules.len())
        .ok()
        .filter(|&count| count <= max)
        .ok_or(BackstopError::TooManyRules { count: rules.len(), max })?;
    let incoming = policy.incoming == Incoming::Allow;
    let config = Config {
        enforce: u8::from(enforce),
        allow_loopback: u8::from(policy.allow_loopback),
        allow_inbound_bind: u8::from(incoming),
        // With `--allow-incoming-from` the supervisor lets the listen through and checks each
        // peer at accept; the kernel side does not filter peers.
        allow_inbound_listen: u8::from(incoming || !policy.incoming_from.is_empty()),
        rule_count,
        // Known once the cgroup exists: see `Backstop::for_cgroup`.
        cgroup_id: 0,
        // A run's; an audit turns it off (`Backstop::for_audit`).
        egress_destinations: 1,
        exempt: 0,
        _pad: [0; 2],
        exempt_levels: 0,
    };
    Ok(Backstop { config, rules })
}

/// A host address as the kernel compares it: IPv4 as `::ffff:a.b.c.d`, so it matches however
/// the program spells the destination (`parse_proxy` already normalizes v4-mapped proxies).
pub fn host_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// An `--allow` network. The policy normalizes destinations (v4-mapped to IPv4) and compares
/// IPv4 destinations with IPv4 networks only, so an IPv6 network never matches a v4-mapped
/// address, even `::/0` or `::ffff:0:0/96`.
fn network_rule(net: IpNet, port: u16) -> Rule {
    match net {
        IpNet::V4(v4) => Rule::new(v4_mapped(v4.network().octets()), 96 + v4.prefix_len(), port, 0),
        IpNet::V6(v6) => Rule::new(v6.network().octets(), v6.prefix_len(), port, rule_flags::NOT_V4_MAPPED),
    }
}

#[cfg(test)]
mod tests {
    use sockstrace_common::{
        abi, judge_bind, judge_listen, judge_remote, reason, transport, transport_of, Ip6,
    };

    use super::*;
    use crate::net::sockaddr::{normalize, SockAddr};
    use crate::net::socket::SocketFacts;
    use crate::policy::{decide, Operation, Request};

    fn policy(proxies: &[&str], allow: &[&str], allow_loopback: bool) -> Policy {
        Policy {
            proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(),
            allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
            allow_loopback,
            ..Policy::default()
        }
    }

    /// A kernel judge's verdict: the reason name, or "allowed".
    fn verdict_name(code: u8) -> &'static str {
        if code == reason::NONE {
            "allowed"
        } else {
            reason::name(code)
        }
    }

    /// `decide`'s verdict: the reason name, or "allowed".
    fn decide_name(policy: &Policy, socket: SocketFacts, op: Operation) -> &'static str {
        let decision = decide(policy, &Request { socket, op });
        if decision.is_leak() {
            decision.reason.as_str()
        } else {
            "allowed"
        }
    }

    /// The kernel's verdict on a connect or send to `dst`.
    fn kernel_remote(backstop: &Backstop, dst: SocketAddr, sock_type: i32, protocol: i32) -> &'static str {
        let addr = Ip6::from_bytes(host_bytes(dst.ip()));
        let rule_at = |i: u32| backstop.rules.get(i as usize).copied();
        verdict_name(judge_remote(
            &backstop.config,
            rule_at,
            addr,
            dst.port(),
            sock_type as u16,
            protocol as u16,
        ))
    }

    /// `decide`'s verdict on a connect to `dst`.
    fn user_remote(policy: &Policy, dst: SocketAddr, sock_type: i32, protocol: i32) -> &'static str {
        let family = if dst.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        let socket = SocketFacts { family, sock_type, protocol };
        decide_name(policy, socket, Operation::Connect(SockAddr::Inet(normalize(dst))))
    }

    #[test]
    fn proxies_become_tcp_only_host_rules() {
        let p = policy(&["127.0.0.1:9050", "[::1]:9050"], &[], false);
        let backstop = compile(&p, true).unwrap();
        assert_eq!(
            backstop.config,
            Config {
                enforce: 1,
                allow_loopback: 0,
                allow_inbound_bind: 0,
                allow_inbound_listen: 0,
                rule_count: 2,
                cgroup_id: 0,
                egress_destinations: 1,
                exempt: 0,
                _pad: [0; 2],
                exempt_levels: 0,
            }
        );
        assert_eq!(backstop.clone().for_cgroup(7).config.cgroup_id, 7);
        assert_eq!(backstop.clone().for_audit().config.egress_destinations, 0);
        assert_eq!(backstop.rules[0].net.to_bytes(), v4_mapped([127, 0, 0, 1]));
        assert_eq!(
            (backstop.rules[0].port, backstop.rules[0].prefix, backstop.rules[0].flags),
            (9050, 128, rule_flags::TCP_ONLY)
        );
        assert_eq!(backstop.rules[1].net.to_bytes(), "::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    }

    #[test]
    fn networks_keep_their_prefix_and_port_and_unix_rules_vanish() {
        let p = policy(&[], &["10.1.2.3/8:443", "2001:db8::/32", "unix:/run/x", "192.0.2.7"], true);
        let backstop = compile(&p, false).unwrap();
        assert_eq!(backstop.config.enforce, 0);
        assert_eq!(backstop.config.allow_loopback, 1);
        assert_eq!(backstop.rules.len(), 3);
        let net10 = backstop.rules[0];
        assert_eq!(
            (net10.net.to_bytes(), net10.prefix, net10.port, net10.flags),
            (v4_mapped([10, 0, 0, 0]), 104, 443, 0)
        );
        let net6 = backstop.rules[1];
        assert_eq!((net6.prefix, net6.port, net6.flags), (32, 0, rule_flags::NOT_V4_MAPPED));
        assert_eq!(backstop.rules[2].prefix, 128);
    }

    #[test]
    fn refuses_what_the_kernel_cannot_hold() {
        let many: Vec<String> = (0..=MAX_RULES).map(|i| format!("10.0.{}.{}", i / 256, i % 256)).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = compile(&policy(&[], &many, false), true).unwrap_err();
        assert_eq!(err, BackstopError::TooManyRules { count: MAX_RULES as usize + 1, max: MAX_RULES });
        let zero = Policy { proxies: vec!["127.0.0.1:0".parse().unwrap()], ..Policy::default() };
        assert!(matches!(compile(&zero, true), Err(BackstopError::ProxyWithoutPort(_))));
    }

    #[test]
    fn kernel_and_decide_agree_on_connects_and_sends() {
        let policies = [
            policy(&["127.0.0.1:9050", "[::1]:9050"], &[], false),
            policy(&["127.0.0.1:9050"], &[], true),
            policy(&["127.0.0.1:9050"], &["10.0.0.0/8:443", "192.0.2.1", "127.0.0.53:53"], false),
            policy(&["[2001:db8::9]:1080"], &["[2001:db8::/32]:80", "::/0", "::ffff:0:0/96"], true),
            policy(&[], &["0.0.0.0/0"], false),
        ];
        let destinations = [
            "127.0.0.1:9050",
            "127.0.0.1:9051",
            "127.0.0.2:80",
            "127.0.0.53:53",
            "127.0.0.1:53",
            "0.0.0.0:80",
            "10.9.8.7:443",
            "10.9.8.7:80",
            "192.0.2.1:53",
            "8.8.8.8:53",
            "93.184.216.34:443",
            "[::1]:9050",
            "[::1]:80",
            "[::]:80",
            "[::1]:53",
            "[2001:db8::9]:1080",
            "[2001:db8::1]:80",
            "[2001:db8::1]:81",
            "[2001:4860::8888]:53",
            "[::ffff:127.0.0.1]:9050",
            "[::ffff:10.1.1.1]:443",
            "[::ffff:8.8.8.8]:53",
        ];
        let sockets = [
            (libc::SOCK_STREAM, 0),
            (libc::SOCK_STREAM, libc::IPPROTO_TCP),
            (libc::SOCK_STREAM, libc::IPPROTO_MPTCP),
            (libc::SOCK_DGRAM, 0),
            (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
            (libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE),
            (libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
            (libc::SOCK_RAW, libc::IPPROTO_ICMP),
            (libc::SOCK_RAW, 255),
        ];
        for (i, p) in policies.iter().enumerate() {
            let backstop = compile(p, true).unwrap();
            for dst in destinations {
                let dst: SocketAddr = dst.parse().unwrap();
                for (sock_type, protocol) in sockets {
                    assert_eq!(
                        kernel_remote(&backstop, dst, sock_type, protocol),
                        user_remote(p, dst, sock_type, protocol),
                        "policy #{i}, {dst}, type {sock_type}, protocol {protocol}"
                    );
                }
            }
        }
    }

    fn incoming_policies() -> [Policy; 3] {
        let allow = Policy { incoming: Incoming::Allow, ..Policy::default() };
        let from = Policy { incoming_from: vec!["192.168.0.0/16".parse().unwrap()], ..Policy::default() };
        [Policy::default(), allow, from]
    }

    #[test]
    fn kernel_and_decide_agree_on_binds_and_listens() {
        let locals =
            ["0.0.0.0:0", "0.0.0.0:5353", "127.0.0.1:5353", "[::]:5353", "[::1]:5353", "10.0.0.1:80"];
        for (i, p) in incoming_policies().iter().enumerate() {
            let config = compile(p, true).unwrap().config;
            for local in locals {
                let local: SocketAddr = local.parse().unwrap();
                let addr = Ip6::from_bytes(host_bytes(local.ip()));
                let family = if local.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
                for sock_type in [libc::SOCK_STREAM, libc::SOCK_DGRAM] {
                    let socket = SocketFacts { family, sock_type, protocol: 0 };
                    let user = decide_name(p, socket, Operation::Bind(SockAddr::Inet(local)));
                    let kernel =
                        judge_bind(sock_type as u16, addr, local.port(), config.allow_inbound_bind != 0);
                    assert_eq!(verdict_name(kernel), user, "policy #{i}: bind {local} type {sock_type}");
                }
                let socket = SocketFacts { family, sock_type: libc::SOCK_STREAM, protocol: 0 };
                let user = decide_name(p, socket, Operation::Listen { local: Some(local) });
                let kernel = judge_listen(addr, config.allow_inbound_listen != 0);
                assert_eq!(verdict_name(kernel), user, "policy #{i}: listen {local}");
            }
        }
    }

    #[test]
    fn kernel_and_decide_agree_on_socket_creation_but_for_ping_sockets() {
        use sockstrace_common::judge_create;
        let p = Policy::default();
        for family in [libc::AF_INET, libc::AF_INET6] {
            for (sock_type, protocol) in [
                (libc::SOCK_STREAM, 0),
                (libc::SOCK_STREAM, libc::IPPROTO_TCP),
                (libc::SOCK_DGRAM, 0),
                (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
                (libc::SOCK_RAW, libc::IPPROTO_ICMP),
                (libc::SOCK_RAW, libc::IPPROTO_RAW),
                (libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
                (libc::SOCK_STREAM, libc::IPPROTO_SCTP),
            ] {
                let socket = SocketFacts { family, sock_type, protocol };
                let user_name = decide_name(&p, socket, Operation::Create);
                let kernel_name =
                    verdict_name(judge_create(family as u16, sock_type as u16, protocol as u16));
                if transport_of(sock_type as u16, protocol as u16) == transport::OTHER {
                    // Deliberately stricter: no hook sees these sockets' sends.
                    assert_eq!((kernel_name, user_name), ("direct-other", "allowed"), "{socket:?}");
                } else {
                    assert_eq!(kernel_name, user_name, "{socket:?}");
                }
            }
        }
    }

    #[test]
    fn shared_constants_match_libc() {
        assert_eq!(i32::from(abi::AF_INET), libc::AF_INET);
        assert_eq!(i32::from(abi::AF_INET6), libc::AF_INET6);
        assert_eq!(i32::from(abi::SOCK_STREAM), libc::SOCK_STREAM);
        assert_eq!(i32::from(abi::SOCK_DGRAM), libc::SOCK_DGRAM);
        assert_eq!(i32::from(abi::SOCK_RAW), libc::SOCK_RAW);
        assert_eq!(i32::from(abi::IPPROTO_TCP), libc::IPPROTO_TCP);
        assert_eq!(i32::from(abi::IPPROTO_UDP), libc::IPPROTO_UDP);
        assert_eq!(i32::from(abi::IPPROTO_UDPLITE), libc::IPPROTO_UDPLITE);
        assert_eq!(i32::from(abi::IPPROTO_MPTCP), libc::IPPROTO_MPTCP);
        assert_eq!(transport_of(abi::SOCK_STREAM, 0), transport::TCP);
    }
}
