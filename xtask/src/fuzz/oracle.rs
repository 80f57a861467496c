//! The oracle, pure: which captured packets are leaks, and which of those the report lists.
//!
//! A packet is a leak when the program (or the kernel on its behalf) starts traffic to a
//! destination the policy does not allow: a TCP SYN, a UDP datagram, an ICMP request or any
//! other IP protocol to anything but the proxy, any IP frame on the veth (nothing legitimate
//! ever crosses it: the proxy is on loopback). Replies (RST, ACKs, ICMP errors, data from the
//! proxy) and neighbour discovery / MLD are not leaks.

use std::net::IpAddr;

use serde_json::Value;

/// One leak the oracle saw.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leak {
    /// "tcp4", "udp6", "icmp4", "igmp4", "ip4-proto-47", "frame-0x1234", ...
    pub kind: String,
    pub dst: Option<IpAddr>,
    pub port: Option<u16>,
    /// Where it was seen: "veth", "lo", "sink".
    pub seen_on: String,
    /// The "FZseq:op:pid;" marker of its payload, when present: (sequence, op index).
    pub marker: Option<(u64, usize)>,
    /// The sending process's pid, from the same marker.
    pub pid: Option<u32>,
    /// The program wrote this packet's IP or transport header itself (a raw or packet
    /// socket): its header starts with the "FZ" marker, so its addresses and ports are
    /// payload bytes, not what the call named.
    pub crafted: bool,
}

impl Leak {
    /// The destination as the report writes it.
    pub fn dst_text(&self) -> String {
        match (self.dst, self.port) {
            (Some(IpAddr::V4(a)), Some(p)) => format!("{a}:{p}"),
            (Some(IpAddr::V6(a)), Some(p)) => format!("[{a}]:{p}"),
            (Some(a), None) => a.to_string(),
            (None, _) => "-".into(),
        }
    }
    /// What identifies the same finding across runs (shrinking, dedup).
    pub fn key(&self) -> String {
        format!("{} {}", self.kind, self.dst_text())
    }
    /// The protocol family of the kind: "tcp", "udp", "icmp", ...
    pub fn proto(&self) -> &str {
        self.kind.trim_end_matches(['4', '6'])
    }
    /// The class the report is matched on.
    pub fn class(&self) -> Class {
        match self.proto() {
            "tcp" => Class::Tcp,
            "udp" | "udplite" => Class::Udp,
            _ => Class::Other,
        }
    }
}

/// What kind of traffic a leak or a report line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Tcp,
    Udp,
    Other,
    /// A raw or packet socket's line: its packets can carry any protocol (and their ports
    /// are payload): matched by address alone.
    Any,
    /// A line naming neither protocol nor socket type: matched by destination alone.
    Unknown,
}

impl Class {
    /// The class of a report line: its `protocol`, else its socket `type`.
    pub fn of_event(e: &Value) -> Class {
        let field = |k: &str| e.get(k).and_then(Value::as_str);
        if field("type") == Some("raw") || field("family") == Some("packet") {
            return Class::Any;
        }
        match field("protocol") {
            Some("tcp" | "mptcp") => Class::Tcp,
            Some("udp" | "udplite") => Class::Udp,
            Some("raw") => Class::Any,
            Some(_) => Class::Other,
            None => match field("type") {
                Some("stream") => Class::Tcp,
                Some("dgram") => Class::Udp,
                Some(_) => Class::Other,
                None => Class::Unknown,
            },
        }
    }
    fn covers(self, leak: Class) -> bool {
        matches!(self, Class::Any | Class::Unknown) || self == leak
    }
}

/// The policy the run used: the proxies (TCP) are the only allowed destinations.
#[derive(Clone, Debug)]
pub struct Policy {
    pub proxies: Vec<(IpAddr, u16)>,
}

impl Policy {
    fn allowed(&self, ip: IpAddr, port: u16) -> bool {
        let ip = canonical(ip);
        self.proxies.iter().any(|(a, p)| canonical(*a) == ip && *p == port)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

pub const PACKET_OUTGOING: u8 = 4;

/// The port of the runner's sentinel datagrams (env.rs `flush`).
pub const SENTINEL_PORT: u16 = 19999;
const SENTINEL: &[u8] = b"FZSENTINEL";

/// The sentinel datagram's payload for flush number `n`.
pub fn sentinel_payload(n: u64) -> Vec<u8> {
    let mut p = SENTINEL.to_vec();
    p.extend(n.to_string().bytes());
    p
}

/// The number a sentinel datagram carries (IPv4 UDP to `SENTINEL_PORT`), if `data` is one.
/// A sniffer that sees it has judged everything captured before it.
pub fn sentinel(ethertype: u16, data: &[u8]) -> Option<u64> {
    if ethertype != 0x0800 || data.len() < 28 || data[9] != 17 {
        return None;
    }
    let ihl = (data[0] as usize & 0xf) * 4;
    let udp = data.get(ihl..)?;
    if udp.get(2..4)? != SENTINEL_PORT.to_be_bytes() {
        return None;
    }
    let payload = udp.get(8..)?.strip_prefix(SENTINEL)?;
    std::str::from_utf8(payload).ok()?.parse().ok()
}

/// Judges one captured packet (`AF_PACKET`, `SOCK_DGRAM`: the network header first).
pub fn judge(policy: &Policy, seen_on: &str, ethertype: u16, pkttype: u8, data: &[u8]) -> Option<Leak> {
    let (mut leak, l4_at) = classify(policy, seen_on, ethertype, pkttype, data)?;
    let l4 = data.get(l4_at..).unwrap_or(&[]);
    // A non-IP frame only comes from a packet socket, whose link header (with the marker)
    // the sniffer does not show.
    leak.crafted = data.starts_with(b"FZ") || l4.starts_with(b"FZ") || leak.kind.starts_with("frame-");
    if leak.crafted {
        // The marker is in a header; the pid trailer further on.
        let m = marker(data);
        leak.marker = m.map(|(s, o, _)| (s, o));
        leak.pid = m.and_then(|(_, _, p)| p).or_else(|| pid_trailer(data));
    }
    Some(leak)
}

/// The leak a packet is, if any, and where its transport header starts.
fn classify(
    policy: &Policy,
    seen_on: &str,
    ethertype: u16,
    pkttype: u8,
    data: &[u8],
) -> Option<(Leak, usize)> {
    if pkttype == PACKET_OUTGOING {
        return None;
    }
    let leak = |kind: String, dst, port, payload: &[u8]| Leak {
        kind,
        dst,
        port,
        seen_on: seen_on.to_string(),
        marker: marker(payload).map(|(s, o, _)| (s, o)),
        pid: marker(payload).and_then(|(_, _, p)| p),
        crafted: false,
    };
    let (v, proto, src, dst, l4) = match ethertype {
        0x0800 => {
            let ihl = (*data.first()? as usize & 0xf) * 4;
            if data.len() < 20 || ihl < 20 {
                return None;
            }
            let src = IpAddr::from(<[u8; 4]>::try_from(&data[12..16]).ok()?);
            let dst = IpAddr::from(<[u8; 4]>::try_from(&data[16..20]).ok()?);
            (4, data[9], src, dst, data.get(ihl..).unwrap_or(&[]))
        }
        0x86dd => {
            if data.len() < 40 {
                return None;
            }
            let src = IpAddr::from(<[u8; 16]>::try_from(&data[8..24]).ok()?);
            let dst = IpAddr::from(<[u8; 16]>::try_from(&data[24..40]).ok()?);
            let (mut next, mut off) = (data[6], 40usize);
            // Extension headers: hop-by-hop, routing, destination options, fragment.
            while matches!(next, 0 | 43 | 60 | 44) && off + 8 <= data.len() {
                let len = if next == 44 { 8 } else { (data[off + 1] as usize + 1) * 8 };
                next = data[off];
                off += len;
            }
            (6, next, src, dst, data.get(off..).unwrap_or(&[]))
        }
        0x0806 => return None,
        other => return Some((leak(format!("frame-{other:#06x}"), None, None, data), 0)),
    };
    let l4_at = data.len() - l4.len();
    let port = |b: &[u8], at: usize| b.get(at..at + 2).map(|p| u16::from_be_bytes([p[0], p[1]]));
    let found = match proto {
        6 => {
            let (sport, dport) = (port(l4, 0)?, port(l4, 2)?);
            let off = (*l4.get(12)? as usize >> 4) * 4;
            let flags = *l4.get(13)?;
            let (syn, ack, rst) = (flags & 2 != 0, flags & 16 != 0, flags & 4 != 0);
            let payload = l4.get(off..).unwrap_or(&[]);
            if policy.allowed(dst, dport) || policy.allowed(src, sport) || rst {
                return None;
            }
            if (syn && !ack) || !payload.is_empty() {
                return Some((leak(format!("tcp{v}"), Some(canonical(dst)), Some(dport), payload), l4_at));
            }
            None
        }
        17 | 136 => {
            let dport = port(l4, 2)?;
            if policy.allowed(dst, dport) {
                return None;
            }
            let name = if proto == 17 { "udp" } else { "udplite" };
            Some(leak(format!("{name}{v}"), Some(canonical(dst)), Some(dport), l4.get(8..).unwrap_or(&[])))
        }
        1 => {
            // Errors (unreachable, time exceeded, parameter problem) are replies.
            if matches!(l4.first(), Some(3 | 11 | 12) | None) {
                return None;
            }
            Some(leak("icmp4".into(), Some(dst), None, l4.get(8..).unwrap_or(&[])))
        }
        58 => {
            // Errors (< 128), MLD and neighbour discovery (130..=143) are the kernel's own.
            match l4.first() {
                Some(t) if *t < 128 || (130..=143).contains(t) => None,
                None => None,
                _ => Some(leak("icmp6".into(), Some(dst), None, l4.get(8..).unwrap_or(&[]))),
            }
        }
        2 => Some(leak("igmp4".into(), Some(dst), None, &[])),
        p => Some(leak(format!("ip{v}-proto-{p}"), Some(canonical(dst)), None, l4)),
    };
    found.map(|l| (l, l4_at))
}

/// A leak a sink saw: bytes or a connection reaching a non-allowed listener.
pub fn sink_leak(kind: &str, dst: IpAddr, port: u16, payload: &[u8]) -> Leak {
    Leak {
        kind: kind.into(),
        dst: Some(canonical(dst)),
        port: Some(port),
        seen_on: "sink".into(),
        marker: marker(payload).map(|(s, o, _)| (s, o)),
        pid: marker(payload).and_then(|(_, _, p)| p),
        crafted: false,
    }
}

/// The marker of a payload: "FZ<seq>:<op>;" and, when the client stamped it, "#P<pid>;"
/// further on (after its first 64 bytes).
pub fn marker(payload: &[u8]) -> Option<(u64, usize, Option<u32>)> {
    let start = payload.windows(2).position(|w| w == b"FZ")?;
    let rest = payload.get(start + 2..)?;
    let text = std::str::from_utf8(rest.split(|b| *b == b';').next()?).ok()?;
    let (seq, op) = text.split_once(':')?;
    Some((seq.parse().ok()?, op.parse().ok()?, pid_trailer(rest)))
}

/// The "#P<pid>;" trailer the client appends to a payload.
pub fn pid_trailer(bytes: &[u8]) -> Option<u32> {
    let at = bytes.windows(2).position(|w| w == b"#P")?;
    let digits = bytes[at + 2..].split(|b| *b == b';').next()?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// What the report says of a leak the oracle saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reported {
    /// Listed as a leak that was let through (`--on-leak log`): expected.
    LetThrough,
    /// Listed as a leak, but as blocked or killed: yet the packet went out.
    ClaimedBlocked,
    /// Listed with the verdict `allowed`.
    CalledAllowed,
    /// Not in the report at all.
    Missing,
}

impl Reported {
    pub fn is_finding(self) -> bool {
        self != Reported::LetThrough
    }
    pub fn describe(self) -> &'static str {
        match self {
            Reported::LetThrough => "reported as a leak and let through (--on-leak log)",
            Reported::ClaimedBlocked => "the report says blocked, yet the packet went out",
            Reported::CalledAllowed => "the report calls it allowed",
            Reported::Missing => "the report does not list it",
        }
    }
}

/// Whether report line `e` is about `leak`: the same destination (for port-less kinds, the
/// same address), the same class of traffic (tcp, udp, other; a raw or packet socket's line
/// covers any, by address) and, when both the packet's marker and the line name one, the
/// same pid. A packet whose headers the program wrote (`crafted`) is covered by a raw or
/// packet socket's line of the same pid whatever it names: its addresses are payload.
pub fn event_matches(leak: &Leak, e: &Value) -> bool {
    let class = Class::of_event(e);
    // A socket whose first hop an option moved (refused, or under --on-leak log let through
    // and reported so): its packets go where the option says, not to the address any line
    // names. Such a line covers the same process's packets, whatever their destination.
    let reason = e.get("reason").and_then(Value::as_str).unwrap_or("");
    if matches!(reason, "routing-option" | "egress-packet") {
        if let (Some(a), Some(b)) = (leak.pid, e.get("pid").and_then(Value::as_u64)) {
            if u64::from(a) == b {
                return true;
            }
        }
    }
    let asked = e.get("dst").and_then(Value::as_str).unwrap_or("");
    // The unspecified address means this host: the loopback address, or the socket's own
    // source (the address it is bound to, or one a control message chose). Either way the
    // packet stays on `lo`, and a sink of this host (a listener on any of its addresses) may
    // take it.
    if let Some(port) = unspecified_port(asked) {
        let on_this_host = matches!(leak.seen_on.as_str(), "lo" | "sink");
        if on_this_host && leak.port == Some(port) && class.covers(leak.class()) {
            return match (leak.pid, e.get("pid").and_then(Value::as_u64)) {
                (Some(a), Some(b)) => u64::from(a) == b,
                _ => true,
            };
        }
    }
    let dst = local_host(asked);
    let dst = dst.as_str();
    // A raw socket's ports are in its payload: its line names the address.
    let same_dst = (leak.crafted && class == Class::Any)
        || dst == leak.dst_text()
        || ((leak.port.is_none() || class == Class::Any)
            && leak.dst.is_some_and(|ip| {
                let ip = ip.to_string();
                dst == ip || dst.starts_with(&format!("{ip}:")) || dst.starts_with(&format!("[{ip}]"))
            }));
    if !same_dst || !class.covers(leak.class()) {
        return false;
    }
    match (leak.pid, e.get("pid").and_then(Value::as_u64)) {
        (Some(a), Some(b)) => u64::from(a) == b,
        _ => true,
    }
}

/// A report's destination as the packet shows it: Linux sends to the
/// unspecified address (`0.0.0.0`, `::`) on the local host (`127.0.0.1`,
/// `::1`), and the report names what the program asked for.
fn local_host(dst: &str) -> String {
    if let Some(port) = dst.strip_prefix("0.0.0.0:") {
        return format!("127.0.0.1:{port}");
    }
    if let Some(port) = dst.strip_prefix("[::]:") {
        return format!("[::1]:{port}");
    }
    dst.to_string()
}

/// The port of a report destination naming the unspecified address.
fn unspecified_port(dst: &str) -> Option<u16> {
    dst.strip_prefix("0.0.0.0:").or_else(|| dst.strip_prefix("[::]:"))?.parse().ok()
}

/// Finds the leak in the report's events (JSON lines).
pub fn reported(leak: &Leak, events: &[Value]) -> Reported {
    let matches = |e: &Value| event_matches(leak, e);
    let mut best = Reported::Missing;
    for e in events.iter().filter(|e| matches(e)) {
        let verdict = e.get("verdict").and_then(Value::as_str).unwrap_or("");
        let action = e.get("action").and_then(Value::as_str).unwrap_or("");
        let this = match (verdict, action) {
            ("leak", "logged" | "socksified") => Reported::LetThrough,
            ("leak", _) => Reported::ClaimedBlocked,
            ("allowed", _) => Reported::CalledAllowed,
            _ => continue,
        };
        if this == Reported::LetThrough {
            return this;
        }
        if best == Reported::Missing || this == Reported::CalledAllowed {
            best = this;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy { proxies: vec![("127.0.0.1".parse().unwrap(), 19050), ("::1".parse().unwrap(), 19050)] }
    }

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let mut v = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        v.extend(src);
        v.extend(dst);
        v.extend(l4);
        v
    }

    fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = sport.to_be_bytes().to_vec();
        v.extend(dport.to_be_bytes());
        v.extend([0; 8]);
        v.extend([0x50, flags, 0, 0, 0, 0, 0, 0]);
        v.extend(payload);
        v
    }

    fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = 5555u16.to_be_bytes().to_vec();
        v.extend(dport.to_be_bytes());
        v.extend([0; 4]);
        v.extend(payload);
        v
    }

    #[test]
    fn udp_to_a_sink_is_a_leak_with_its_marker() {
        let p = ipv4(17, [127, 0, 0, 1], [127, 0, 0, 2], &udp(9, b"FZ3:7;xx"));
        let l = judge(&policy(), "lo", 0x0800, 0, &p).expect("leak");
        assert_eq!(l.kind, "udp4");
        assert_eq!(l.dst_text(), "127.0.0.2:9");
        assert_eq!(l.marker, Some((3, 7)));
        assert_eq!(l.proto(), "udp");
    }

    #[test]
    fn proxy_traffic_and_replies_are_not_leaks() {
        let pol = policy();
        let to_proxy = ipv4(6, [127, 0, 0, 1], [127, 0, 0, 1], &tcp(40000, 19050, 2, b""));
        assert_eq!(judge(&pol, "lo", 0x0800, 0, &to_proxy), None);
        let from_proxy = ipv4(6, [127, 0, 0, 1], [127, 0, 0, 1], &tcp(19050, 40000, 0x18, b"data"));
        assert_eq!(judge(&pol, "lo", 0x0800, 0, &from_proxy), None);
        let rst = ipv4(6, [127, 0, 0, 2], [127, 0, 0, 1], &tcp(81, 40000, 0x14, b""));
        assert_eq!(judge(&pol, "lo", 0x0800, 0, &rst), None);
        let unreachable = ipv4(1, [127, 0, 0, 1], [127, 0, 0, 1], &[3, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(judge(&pol, "lo", 0x0800, 0, &unreachable), None);
        let outgoing = ipv4(17, [127, 0, 0, 1], [127, 0, 0, 2], &udp(9, b""));
        assert_eq!(judge(&pol, "lo", 0x0800, PACKET_OUTGOING, &outgoing), None);
        assert_eq!(judge(&pol, "veth", 0x0806, 0, &[0; 28]), None);
    }

    #[test]
    fn syn_to_elsewhere_and_data_are_leaks() {
        let syn = ipv4(6, [10, 77, 0, 1], [10, 77, 0, 2], &tcp(40000, 80, 2, b""));
        let l = judge(&policy(), "veth", 0x0800, 0, &syn).expect("leak");
        assert_eq!(l.key(), "tcp4 10.77.0.2:80");
        let data = ipv4(6, [127, 0, 0, 1], [127, 0, 0, 2], &tcp(40000, 80, 0x18, b"FZ1:2;"));
        assert_eq!(judge(&policy(), "lo", 0x0800, 0, &data).unwrap().marker, Some((1, 2)));
    }

    #[test]
    fn ipv6_through_a_routing_header_is_seen_at_its_first_hop() {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 43, 64];
        p.extend([0u8; 15]);
        p.push(1); // src ::1
        p.extend([0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]); // dst fd77::2
        p.extend([17, 2, 4, 0, 0, 0, 0, 0]); // SRH, one segment
        p.extend([0u8; 15]);
        p.push(1);
        p.extend(udp(19050, b"FZ0:1;"));
        let l = judge(&policy(), "veth", 0x86dd, 0, &p).expect("leak");
        assert_eq!(l.key(), "udp6 [fd77::2]:19050");
        let mld = {
            let mut m = p[..40].to_vec();
            m[6] = 58;
            m.extend([143, 0, 0, 0]);
            m
        };
        assert_eq!(judge(&policy(), "veth", 0x86dd, 0, &mld), None);
    }

    #[test]
    fn v4_mapped_is_written_in_v4_form() {
        let l = sink_leak("udp6", "::ffff:127.0.0.2".parse().unwrap(), 9, b"");
        assert_eq!(l.dst_text(), "127.0.0.2:9");
    }

    #[test]
    fn report_matching() {
        let l = sink_leak("udp4", "127.0.0.2".parse().unwrap(), 9, b"");
        let ev = |dst: &str, verdict: &str, action: &str| serde_json::json!({"dst": dst, "verdict": verdict, "action": action});
        assert_eq!(reported(&l, &[]), Reported::Missing);
        assert_eq!(reported(&l, &[ev("127.0.0.2:9", "leak", "logged")]), Reported::LetThrough);
        assert_eq!(reported(&l, &[ev("127.0.0.2:9", "leak", "blocked")]), Reported::ClaimedBlocked);
        assert_eq!(reported(&l, &[ev("127.0.0.2:9", "allowed", "allowed")]), Reported::CalledAllowed);
        assert_eq!(reported(&l, &[ev("127.0.0.2:90", "leak", "logged")]), Reported::Missing);
        assert!(!Reported::LetThrough.is_finding());
        assert!(Reported::Missing.is_finding());
    }

    fn ev(dst: &str, protocol: &str, pid: u64, verdict: &str, action: &str) -> Value {
        serde_json::json!({"dst": dst, "protocol": protocol, "pid": pid, "verdict": verdict, "action": action})
    }

    /// A stamped payload, as the client sends it.
    fn stamped(seq: u64, op: usize, pid: u32) -> Vec<u8> {
        let mut p = format!("FZ{seq}:{op};").into_bytes();
        p.resize(64, b'x');
        p.extend(format!("#P{pid};").bytes());
        p
    }

    #[test]
    fn the_marker_carries_sequence_op_and_pid() {
        assert_eq!(marker(&stamped(12, 3, 4242)), Some((12, 3, Some(4242))));
        assert_eq!(marker(b"FZ12:3;xxxx"), Some((12, 3, None)));
        assert_eq!(marker(b"no marker"), None);
        let l = sink_leak("udp4", "127.0.0.2".parse().unwrap(), 9, &stamped(1, 2, 77));
        assert_eq!((l.marker, l.pid), (Some((1, 2)), Some(77)));
    }

    #[test]
    fn a_leak_is_excused_only_by_a_line_for_the_same_destination_kind_and_pid() {
        let udp = sink_leak("udp4", "127.0.0.2".parse().unwrap(), 9, &stamped(1, 2, 77));
        let logged = |dst: &str, proto: &str, pid: u64| [ev(dst, proto, pid, "leak", "logged")];
        assert_eq!(reported(&udp, &logged("127.0.0.2:9", "udp", 77)), Reported::LetThrough);
        assert_eq!(reported(&udp, &logged("127.0.0.2:9", "udplite", 77)), Reported::LetThrough);
        // Another call's line: TCP to the same destination, another process, another port.
        assert_eq!(reported(&udp, &logged("127.0.0.2:9", "tcp", 77)), Reported::Missing);
        assert_eq!(reported(&udp, &logged("127.0.0.2:9", "udp", 78)), Reported::Missing);
        assert_eq!(reported(&udp, &logged("127.0.0.2:90", "udp", 77)), Reported::Missing);
        assert_eq!(reported(&udp, &logged("127.0.0.25:9", "udp", 77)), Reported::Missing);
        // The right line among others is found; a blocked claim is still a finding.
        let mixed =
            [ev("127.0.0.2:9", "tcp", 77, "leak", "logged"), ev("127.0.0.2:9", "udp", 77, "leak", "blocked")];
        assert_eq!(reported(&udp, &mixed), Reported::ClaimedBlocked);
        // Without a pid on either side, destination and kind decide.
        let bare = sink_leak("tcp4", "10.77.0.2".parse().unwrap(), 80, b"");
        assert_eq!(reported(&bare, &logged("10.77.0.2:80", "mptcp", 5)), Reported::LetThrough);
        assert_eq!(reported(&bare, &logged("10.77.0.2:80", "udp", 5)), Reported::Missing);
    }

    #[test]
    fn raw_and_portless_kinds_match_by_address() {
        // A raw socket's TCP packet: its "ports" came from the payload.
        let syn = ipv4(6, [127, 0, 0, 1], [127, 0, 0, 2], &tcp(1234, 13370, 2, b""));
        let l = judge(&policy(), "lo", 0x0800, 0, &syn).expect("leak");
        let raw = serde_json::json!({"dst": "127.0.0.2:443", "type": "raw", "protocol": "tcp",
            "verdict": "leak", "action": "logged"});
        assert_eq!(reported(&l, &[raw]), Reported::LetThrough);
        let stream = ev("127.0.0.2:443", "tcp", 1, "leak", "logged");
        assert_eq!(reported(&l, &[stream]), Reported::Missing);
        // ICMP (no port): a line for the address, of class other.
        let echo = ipv4(1, [10, 77, 0, 1], [10, 77, 0, 2], &[8, 0, 0, 0, 0, 0, 0, 0]);
        let l = judge(&policy(), "veth", 0x0800, 0, &echo).expect("leak");
        assert_eq!(l.class(), Class::Other);
        assert_eq!(reported(&l, &[ev("10.77.0.2", "icmp", 1, "leak", "logged")]), Reported::LetThrough);
        assert_eq!(reported(&l, &[ev("10.77.0.2:0", "icmp", 1, "leak", "logged")]), Reported::LetThrough);
        assert_eq!(reported(&l, &[ev("10.77.0.2:80", "udp", 1, "leak", "logged")]), Reported::Missing);
        assert_eq!(reported(&l, &[ev("10.77.0.23", "icmp", 1, "leak", "logged")]), Reported::Missing);
    }

    #[test]
    fn false_positive_filters() {
        let pol = policy();
        // ICMPv6 neighbour solicitation, MLD report, echo reply... are the kernel's or replies.
        let v6 = |t: u8| {
            let mut p = vec![0x60, 0, 0, 0, 0, 8, 58, 255];
            p.extend([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            p.extend([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            p.extend([t, 0, 0, 0, 0, 0, 0, 0]);
            p
        };
        for t in [1, 133, 135, 136, 143] {
            assert_eq!(judge(&pol, "veth", 0x86dd, 0, &v6(t)), None, "icmpv6 type {t}");
        }
        assert!(judge(&pol, "veth", 0x86dd, 0, &v6(128)).is_some(), "an echo request is a leak");
        // A bare ACK (no payload, no SYN) to elsewhere: the tail of a connection, not a start.
        let ack = ipv4(6, [127, 0, 0, 1], [127, 0, 0, 2], &tcp(40000, 80, 0x10, b""));
        assert_eq!(judge(&pol, "lo", 0x0800, 0, &ack), None);
        // UDP to the proxy's address and port is allowed traffic's shape... but only TCP is allowed.
        let udp_proxy = ipv4(17, [127, 0, 0, 1], [127, 0, 0, 1], &udp(19050, b""));
        assert_eq!(judge(&pol, "lo", 0x0800, 0, &udp_proxy), None);
        // Data to the proxy from a v4-mapped socket.
        let mapped = sink_leak("tcp6", "::ffff:127.0.0.1".parse().unwrap(), 19050, b"");
        assert_eq!(mapped.dst_text(), "127.0.0.1:19050");
    }

    #[test]
    fn crafted_headers_are_covered_by_the_raw_socket_line_of_the_same_pid() {
        // An AF_PACKET or IPPROTO_RAW send: the payload is the IP header ("FZ" = version 4,
        // IHL 6), the destination comes from payload bytes.
        let mut p = stamped(6, 28, 321);
        p[16..20].copy_from_slice(b"xxxx");
        let l = judge(&policy(), "veth", 0x0800, 0, &p).expect("leak");
        assert!(l.crafted);
        assert_eq!((l.marker, l.pid), (Some((6, 28)), Some(321)));
        assert_eq!(l.dst_text(), "120.120.120.120");
        let line = |pid: u64| {
            serde_json::json!({"family": "packet", "type": "dgram", "protocol": "proto-58", "pid": pid,
                "verdict": "leak", "action": "logged"})
        };
        assert_eq!(reported(&l, &[line(321)]), Reported::LetThrough);
        assert_eq!(reported(&l, &[line(999)]), Reported::Missing);
        // An ordinary socket's line does not cover it.
        assert_eq!(reported(&l, &[ev("127.0.0.2:9", "udp", 321, "leak", "logged")]), Reported::Missing);
        // A packet the kernel built (a UDP socket's) is not crafted: a raw line elsewhere does
        // not excuse it.
        let normal = ipv4(17, [127, 0, 0, 1], [127, 0, 0, 2], &udp(9, &stamped(1, 1, 321)));
        let l = judge(&policy(), "lo", 0x0800, 0, &normal).expect("leak");
        assert!(!l.crafted);
        assert_eq!(reported(&l, &[line(321)]), Reported::Missing);
    }

    #[test]
    fn sentinels_are_recognised_and_nothing_else() {
        let p = ipv4(17, [127, 0, 0, 1], [127, 0, 0, 1], &udp(SENTINEL_PORT, &sentinel_payload(42)));
        assert_eq!(sentinel(0x0800, &p), Some(42));
        let other_port = ipv4(17, [127, 0, 0, 1], [127, 0, 0, 1], &udp(9, &sentinel_payload(42)));
        assert_eq!(sentinel(0x0800, &other_port), None);
        let program = ipv4(17, [127, 0, 0, 1], [127, 0, 0, 1], &udp(SENTINEL_PORT, b"FZ1:2;"));
        assert_eq!(sentinel(0x0800, &program), None);
        assert!(
            judge(&policy(), "lo", 0x0800, 0, &program).is_some(),
            "a program's datagram to that port is a leak"
        );
    }

    #[test]
    fn a_packet_sockets_frame_is_crafted_and_keeps_its_pid() {
        // AF_PACKET SOCK_RAW: the link header ("FZ27:8;x..." as MACs and ethertype 0x7878)
        // is not shown by the sniffer; what follows is the payload with the pid trailer.
        let p = stamped(27, 8, 555);
        let l = judge(&policy(), "veth", 0x7878, 0, &p[14..]).expect("leak");
        assert_eq!(l.kind, "frame-0x7878");
        assert!(l.crafted);
        assert_eq!(l.pid, Some(555));
        let line = |pid: u64| {
            serde_json::json!({"family": "packet", "type": "raw", "pid": pid, "dst": "family:17",
                "verdict": "leak", "action": "logged"})
        };
        assert_eq!(reported(&l, &[line(555)]), Reported::LetThrough);
        assert_eq!(reported(&l, &[line(556)]), Reported::Missing);
    }

    #[test]
    fn an_unspecified_report_destination_is_the_local_host() {
        assert_eq!(super::local_host("[::]:53"), "[::1]:53");
        assert_eq!(super::local_host("0.0.0.0:9"), "127.0.0.1:9");
        assert_eq!(super::local_host("127.0.0.2:9"), "127.0.0.2:9");
        assert_eq!(super::unspecified_port("0.0.0.0:53"), Some(53));
        assert_eq!(super::unspecified_port("[::]:53"), Some(53));
        assert_eq!(super::unspecified_port("127.0.0.1:53"), None);
    }

    #[test]
    fn an_unspecified_destination_covers_a_sink_on_the_sockets_own_address() {
        // bind(10.77.0.1:0), then sendmsg to 0.0.0.0:9: Linux sends to the bound address, and
        // the sink listening there takes the datagram (found by the self-check's log mode).
        let leak = super::sink_leak("udp4", "10.77.0.1".parse().unwrap(), 9, &stamped(12, 2, 77));
        let line = |pid: u64, dst: &str| {
            serde_json::json!({"syscall": "sendmsg", "reason": "direct-udp", "pid": pid, "dst": dst,
                               "verdict": "leak", "action": "logged", "family": "inet", "type": "dgram",
                               "protocol": "udp"})
        };
        assert_eq!(super::reported(&leak, &[line(77, "0.0.0.0:9")]), super::Reported::LetThrough);
        assert_eq!(super::reported(&leak, &[line(78, "0.0.0.0:9")]), super::Reported::Missing);
        assert_eq!(super::reported(&leak, &[line(77, "0.0.0.0:10")]), super::Reported::Missing);
    }

    #[test]
    fn a_routing_option_line_covers_its_processs_rerouted_packets() {
        let leak = super::sink_leak("udp6", "::".parse().unwrap(), 80, b"FZ1:3;xxxx");
        let leak = super::Leak { pid: Some(77), ..leak };
        let line = |pid: u64, action: &str| {
            serde_json::json!({"syscall": "setsockopt", "reason": "routing-option", "pid": pid,
                               "verdict": "leak", "action": action, "family": "inet6", "type": "dgram"})
        };
        assert_eq!(super::reported(&leak, &[line(77, "logged")]), super::Reported::LetThrough);
        assert_eq!(super::reported(&leak, &[line(78, "logged")]), super::Reported::Missing);
        assert!(super::reported(&leak, &[line(77, "blocked")]).is_finding());
    }
}
