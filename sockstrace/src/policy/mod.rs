//! The policy and the one pure function that turns a request into a verdict.

mod decide;
mod rules;

pub use decide::{decide, Decision, Operation, Reason, Request, Verdict};
pub use rules::{parse_proxy, AllowRule, RuleError};

use std::net::SocketAddr;

/// What the user allows. Built once from the command line; never changes.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// SOCKS proxies the program may reach over TCP.
    pub proxies: Vec<SocketAddr>,
    pub allow: Vec<AllowRule>,
    /// Allows 127.0.0.0/8, ::1 and the unspecified addresses, except DNS.
    pub allow_loopback: bool,
}
