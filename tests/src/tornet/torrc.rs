//! The torrc of each node of a [`super::TorNet`], as text (no I/O): the one
//! place the private network's configuration is written down.
//!
//! Modelled on Tor's chutney test networks: `TestingTorNetwork 1` with the
//! voting intervals shortened, three directory authorities, one exit, one
//! client, all on 127.0.0.1. The exit resolves names with the resolver named
//! in `resolv_conf` only (a test server on loopback); its policy accepts
//! 127.0.0.0/8 and the test's ports.

use std::fmt::Write as _;
use std::path::Path;

/// What a node does in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A v3 directory authority (also a non-exit relay).
    Authority,
    /// An exit relay.
    Exit,
    /// A client with a SOCKS port and a control port.
    Client,
}

/// One node: its name, ports and data directory.
#[derive(Debug, Clone)]
pub struct Node {
    pub nick: String,
    pub role: Role,
    /// ORPort (relays) or SOCKS port (client).
    pub port: u16,
    /// DirPort (relays) or control port (client).
    pub port2: u16,
}

/// An authority as the others know it (a `DirAuthority` line).
#[derive(Debug, Clone)]
pub struct AuthorityId {
    pub nick: String,
    pub or_port: u16,
    pub dir_port: u16,
    /// The v3 identity (tor-gencert's certificate fingerprint).
    pub v3ident: String,
    /// The relay identity fingerprint (`tor --list-fingerprint`).
    pub fingerprint: String,
}

impl AuthorityId {
    pub fn dir_authority_line(&self) -> String {
        format!(
            "DirAuthority {} orport={} no-v2 v3ident={} 127.0.0.1:{} {}",
            self.nick, self.or_port, self.v3ident, self.dir_port, self.fingerprint
        )
    }
}

/// The settings every node shares.
pub struct Shared<'a> {
    pub authorities: &'a [AuthorityId],
    /// The resolv.conf naming the test's resolver (every relay reads it; only
    /// the exit resolves).
    pub resolv_conf: &'a Path,
    /// The exit's relay fingerprint.
    pub exit_fingerprint: &'a str,
    /// The ports the exit policy's summary lists (see [`torrc`]).
    pub exit_ports: &'a [u16],
    /// An empty file.
    pub empty: &'a Path,
    /// Tor exits when this process does.
    pub owner_pid: u32,
}

/// The torrc of `node`, whose data directory is `dir`.
pub fn torrc(node: &Node, dir: &Path, shared: &Shared<'_>) -> String {
    let mut t = String::new();
    let mut line = |s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    line("TestingTorNetwork 1");
    line(&format!("DataDirectory {}", dir.display()));
    line(&format!("Nickname {}", node.nick));
    line(&format!("Log notice file {}", dir.join("notice.log").display()));
    line("SafeLogging 0");
    line("LogTimeGranularity 1");
    line("RunAsDaemon 0");
    line("ShutdownWaitLength 0");
    line(&format!("__OwningControllerProcess {}", shared.owner_pid));
    // Fast bootstrap (chutney's common options).
    line("AssumeReachable 1");
    line("PathsNeededToBuildCircuits 0.67");
    // The Exit flag for the exit only: a client must not try the
    // authorities (reject *:*) and give up after three of them.
    line(&format!("TestingDirAuthVoteExit ${}", shared.exit_fingerprint));
    line("TestingDirAuthVoteGuard *");
    line("TestingDirAuthVoteHSDir *");
    line("TestingMinExitFlagThreshold 0");
    line("V3AuthNIntervalsValid 2");
    // No GeoIP database: parsing it costs seconds of CPU per node.
    line(&format!("GeoIPFile {}", shared.empty.display()));
    line(&format!("GeoIPv6File {}", shared.empty.display()));
    // Full descriptors: every node sees the exit's whole policy
    // (microdescriptor summaries leave out private addresses, so an exit to
    // 127.0.0.0/8 only would look like no exit at all).
    line("UseMicrodescriptors 0");
    // Only our authorities; never the built-in fallback directories.
    line("UseDefaultFallbackDirs 0");
    for a in shared.authorities {
        line(&a.dir_authority_line());
    }
    // No node ever asks the machine's resolver.
    line(&format!("ServerDNSResolvConfFile {}", shared.resolv_conf.display()));
    line("ServerDNSAllowNonRFC953Hostnames 1");
    line("ServerDNSDetectHijacking 0");
    line("ServerDNSTestAddresses");
    line("ServerDNSSearchDomains 0");
    match node.role {
        Role::Authority | Role::Exit => {
            line("SocksPort 0");
            line("Address 127.0.0.1");
            line(&format!("ORPort 127.0.0.1:{}", node.port));
            line(&format!("DirPort 127.0.0.1:{}", node.port2));
            line(&format!("ContactInfo {}@sockstrace.test", node.nick));
            line("TestingServerDownloadInitialDelay 0");
            line("TestingServerConsensusDownloadInitialDelay 0");
        }
        Role::Client => {
            line(&format!("SocksPort 127.0.0.1:{}", node.port));
            line(&format!("ControlPort 127.0.0.1:{}", node.port2));
            line("TestingClientDownloadInitialDelay 0");
            // Conflux (two linked circuits per stream) wants more relays
            // than this network has.
            line("ConfluxEnabled 0");
            line("TestingClientConsensusDownloadInitialDelay 0");
        }
    }
    match node.role {
        Role::Authority => {
            line("AuthoritativeDirectory 1");
            line("V3AuthoritativeDirectory 1");
            line("TestingV3AuthInitialVotingInterval 5");
            line("TestingV3AuthInitialVoteDelay 2");
            line("TestingV3AuthInitialDistDelay 2");
            line("V3AuthVotingInterval 10");
            line("V3AuthVoteDelay 2");
            line("V3AuthDistDelay 2");
            line("ExitRelay 0");
            line("ExitPolicy reject *:*");
        }
        Role::Exit => {
            line("ExitRelay 1");
            line("ExitPolicyRejectPrivate 0");
            line("IPv6Exit 0");
            // Clients judge exits by the policy summary in the consensus,
            // which speaks of public addresses only: an exit to 127.0.0.0/8
            // alone looks like no exit. Accepting the test's ports for every
            // address puts them in the summary; the tests ask for loopback
            // destinations only.
            let mut policy = String::from("ExitPolicy accept 127.0.0.0/8:*");
            for port in shared.exit_ports {
                let _ = write!(policy, ", accept *:{port}");
            }
            policy.push_str(", reject *:*");
            line(&policy);
        }
        Role::Client => {}
    }
    t
}

/// The resolv.conf for the exit: one nameserver on loopback, quick retries.
pub fn resolv_conf(nameserver: std::net::SocketAddr) -> String {
    format!("nameserver {nameserver}\noptions timeout:1 attempts:2\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_resolves_through_the_test_resolver_and_exits_to_loopback_only() {
        let auth = AuthorityId {
            nick: "auth0".into(),
            or_port: 5000,
            dir_port: 7000,
            v3ident: "A".repeat(40),
            fingerprint: "B".repeat(40),
        };
        let shared = Shared {
            authorities: std::slice::from_ref(&auth),
            resolv_conf: Path::new("/x/resolv.conf"),
            empty: Path::new("/x/empty"),
            exit_ports: &[8080, 9000],
            exit_fingerprint: "C",
            owner_pid: 1,
        };
        let exit = Node { nick: "exit".into(), role: Role::Exit, port: 5001, port2: 7001 };
        let text = torrc(&exit, Path::new("/x/exit"), &shared);
        assert!(text.contains("ServerDNSResolvConfFile /x/resolv.conf\n"));
        assert!(text.contains("ExitPolicy accept 127.0.0.0/8:*, accept *:8080, accept *:9000, reject *:*\n"));
        let authority = format!(
            "DirAuthority auth0 orport=5000 no-v2 v3ident={} 127.0.0.1:7000 {}\n",
            "A".repeat(40),
            "B".repeat(40)
        );
        assert!(text.contains(&authority));
        assert!(!text.contains("SocksPort 127"));
    }
}
