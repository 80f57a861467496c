//! The policy, the one pure function that turns a request into a verdict, and
//! the one that turns a verdict into an action under `--on-leak` (`action`).

mod action;
mod decide;
mod rules;

pub use action::{LeakAction, LeakRules, Ruling};
pub use decide::{decide, Decision, Operation, Reason, Request, Verdict};
pub use rules::{parse_network, parse_proxy, AllowRule, RuleError};

use std::net::SocketAddr;

use ipnet::IpNet;

/// What the user allows. Built once from the command line; never changes.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Proxies the program may reach over TCP (SOCKS5 and HTTP alike).
    pub proxies: Vec<SocketAddr>,
    /// Which of `proxies` speak HTTP CONNECT rather than SOCKS5 (for socksify).
    pub http_proxies: Vec<SocketAddr>,
    pub allow: Vec<AllowRule>,
    /// Allows 127.0.0.0/8, ::1 and the unspecified addresses, except DNS.
    pub allow_loopback: bool,
    /// Whether the program may receive connections from outside.
    pub incoming: Incoming,
    /// With `Incoming::Block`, peers whose connections may still be accepted.
    pub incoming_from: Vec<IpNet>,
}

/// `--incoming`: listeners on non-loopback addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Incoming {
    /// Refused, unless the peer is in `incoming_from`.
    #[default]
    Block,
    Allow,
}
