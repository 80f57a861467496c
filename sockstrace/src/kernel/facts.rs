//! What the kernel knows about a socket (its `SOCKETS` slot, found by cookie), in the report's terms.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use serde::Serialize;
use sockstrace_common::{tcp_state_name, SockFacts};

use crate::net::sockaddr::normalize;
use crate::net::socket::SocketFacts;

/// The report's `kernel` object for one socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelFacts {
    /// cgroup v2 id of the socket's cgroup.
    pub cgroup_id: u64,
    /// Cookie of the socket's network namespace.
    pub netns_cookie: u64,
    /// The socket's creator (thread group id), 0 if unknown.
    pub pid: u32,
    /// The creator's thread.
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// The creator's comm.
    pub comm: String,
    /// Local address, once the kernel has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddr>,
    /// Last destination the kernel saw (connect or send with an address; an accepted
    /// socket's peer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<SocketAddr>,
    /// `connect` calls the cgroup hooks saw.
    pub connects: u64,
    /// Sends with an address the cgroup hooks saw (UDP).
    pub sends: u64,
    /// Operations the backstop judged leaks, and how many of them it refused.
    pub leaks: u64,
    pub denied: u64,
    /// TCP states in the order the socket went through them (the first eight changes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tcp_states: Vec<&'static str>,
    /// TCP: bytes received and bytes the peer acknowledged, as of the last state change.
    #[serde(skip_serializing_if = "is_zero")]
    pub bytes_received: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub bytes_acked: u64,
    /// The socket's family, type and protocol (the report has them at top level).
    #[serde(skip)]
    pub socket: SocketFacts,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl KernelFacts {
    /// Translates a `SOCKETS` value.
    pub fn from_raw(raw: &SockFacts) -> Self {
        let known =
            |addr: &[u8; 16], port: u16| (port != 0 || *addr != [0; 16]).then(|| socket_addr(addr, port));
        let mut facts = Self {
            cgroup_id: raw.cgroup_id,
            netns_cookie: raw.netns_cookie,
            pid: (raw.pid_tgid >> 32) as u32,
            tid: raw.pid_tgid as u32,
            uid: raw.uid_gid as u32,
            gid: (raw.uid_gid >> 32) as u32,
            comm: String::from_utf8_lossy(raw.comm_bytes()).into_owned(),
            local: known(&raw.src_addr, raw.src_port),
            dst: known(&raw.dst_addr, raw.dst_port),
            connects: raw.connects,
            sends: raw.sends,
            leaks: raw.leaks,
            denied: raw.denied,
            tcp_states: raw.tcp_states().iter().map(|&s| tcp_state_name(s)).collect(),
            bytes_received: raw.bytes_received,
            bytes_acked: raw.bytes_acked,
            socket: SocketFacts {
                family: i32::from(raw.family),
                sock_type: i32::from(raw.sock_type),
                protocol: i32::from(raw.protocol),
            },
        };
        // Facts that name this process were made by a hook of a call it performed on its
        // duplicate of the program's socket, once the table had given the socket's first facts
        // up (`creator_is_this_process`): who made the socket is unknown.
        if creator_is_this_process(raw.pid_tgid) {
            (facts.pid, facts.tid, facts.uid, facts.gid, facts.cgroup_id) = (0, 0, 0, 0, 0);
            facts.comm.clear();
        }
        facts
    }

    /// The last TCP state, if the socket is TCP and one was seen.
    #[cfg(test)]
    pub fn tcp_state(&self) -> Option<&'static str> {
        self.tcp_states.last().copied()
    }
}

/// Whether a creator the kernel recorded (`pid_tgid`, as `bpf_get_current_pid_tgid` gives it)
/// is this process. A run's supervisor never makes a socket in its program's cgroup (the socket
/// maker, a process of its own, does), but it performs the program's calls on duplicates of the
/// program's sockets, and a hook that finds no facts for a socket (the table gave them to newer
/// sockets) records the current task, the supervisor, as its creator. Reported as such, a leak
/// the egress gate judged was taken for one of the supervisor's own calls and dropped.
pub fn creator_is_this_process(pid_tgid: u64) -> bool {
    (pid_tgid >> 32) as u32 == std::process::id()
}

/// An address as the eBPF side stores it (IPv6 bytes, IPv4 mapped) with a host-order port, in
/// the report's form (v4-mapped written as IPv4).
pub fn socket_addr(addr: &[u8; 16], port: u16) -> SocketAddr {
    normalize(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(*addr)), port))
}

#[cfg(test)]
mod tests {
    use sockstrace_common::v4_mapped;

    use super::*;

    #[test]
    fn facts_that_name_this_process_have_no_creator() {
        let mut raw = SockFacts::zeroed();
        raw.cgroup_id = 1;
        raw.pid_tgid = (u64::from(std::process::id()) << 32) | 3;
        raw.uid_gid = 5;
        raw.comm[..4].copy_from_slice(b"recv");
        raw.sends = 2;
        let facts = KernelFacts::from_raw(&raw);
        assert_eq!((facts.pid, facts.tid, facts.uid, facts.gid, facts.cgroup_id), (0, 0, 0, 0, 0));
        assert_eq!(facts.comm, "");
        assert_eq!(facts.sends, 2, "what the hooks counted stays");
        raw.pid_tgid = (u64::from(std::process::id() + 1) << 32) | 3;
        assert_eq!(KernelFacts::from_raw(&raw).comm, "recv", "another process is a creator");
    }

    #[test]
    fn translates_every_field() {
        let mut raw = SockFacts::zeroed();
        raw.cgroup_id = 7;
        raw.netns_cookie = 8;
        raw.pid_tgid = (100 << 32) | 101;
        raw.uid_gid = (20 << 32) | 1000;
        raw.comm[..4].copy_from_slice(b"curl");
        raw.dst_addr = v4_mapped([127, 0, 0, 1]);
        raw.dst_port = 9050;
        raw.src_addr = v4_mapped([127, 0, 0, 1]);
        raw.src_port = 40000;
        raw.connects = 1;
        raw.family = libc::AF_INET as u16;
        raw.sock_type = libc::SOCK_STREAM as u16;
        raw.protocol = libc::IPPROTO_TCP as u16;
        raw.push_tcp_state(2);
        raw.push_tcp_state(1);
        raw.bytes_acked = 5;
        let facts = KernelFacts::from_raw(&raw);
        assert_eq!((facts.pid, facts.tid, facts.uid, facts.gid), (100, 101, 1000, 20));
        assert_eq!(facts.comm, "curl");
        assert_eq!(facts.dst, Some("127.0.0.1:9050".parse().unwrap()));
        assert_eq!(facts.local, Some("127.0.0.1:40000".parse().unwrap()));
        assert_eq!(facts.tcp_states, ["SYN_SENT", "ESTABLISHED"]);
        assert_eq!(facts.tcp_state(), Some("ESTABLISHED"));
        assert_eq!(facts.socket.protocol_name(), "tcp");
        let json = serde_json::to_value(&facts).unwrap();
        assert_eq!(json["cgroup_id"], 7);
        assert_eq!(json["dst"], "127.0.0.1:9050");
        assert_eq!(json["tcp_states"][1], "ESTABLISHED");
        assert_eq!(json["bytes_acked"], 5);
        assert!(json.get("bytes_received").is_none());
        assert!(json.get("socket").is_none());
    }

    #[test]
    fn unknown_addresses_stay_out_and_wildcards_keep_their_family() {
        let mut raw = SockFacts::zeroed();
        let facts = KernelFacts::from_raw(&raw);
        assert_eq!((facts.local, facts.dst), (None, None));
        assert!(serde_json::to_value(&facts).unwrap().get("local").is_none());
        raw.src_addr = v4_mapped([0, 0, 0, 0]);
        raw.src_port = 5353;
        assert_eq!(KernelFacts::from_raw(&raw).local, Some("0.0.0.0:5353".parse().unwrap()));
        raw.src_addr = [0; 16];
        assert_eq!(KernelFacts::from_raw(&raw).local, Some("[::]:5353".parse().unwrap()));
    }
}
