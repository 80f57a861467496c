//! The command line (clap). Values are parsed here into policy types, so a bad
//! flag is reported before anything runs.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::policy::{parse_proxy, AllowRule};

#[derive(Debug, Parser)]
#[command(name = "sockstrace", version, about = "Proves that a program sends nothing around its SOCKS proxy")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run PROGRAM so that every network call is checked against the proxy policy.
    Run(RunArgs),
    /// Tell which layers work on this machine, and why not.
    Doctor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnLeak {
    /// Fail the call with EPERM and report it.
    Block,
    /// Let the call through and report it.
    Log,
    /// Kill the whole traced process tree.
    Kill,
    /// Send leaked TCP connections through the first fitting --proxy (SOCKS5); other leaks are blocked.
    Socksify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IncomingArg {
    /// Refuse listeners on non-loopback addresses (and peers not in --allow-incoming-from)
    Block,
    /// Let the program accept connections from anywhere
    Allow,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// SOCKS proxy the program may use (repeatable) [default: 127.0.0.1:9050, [::1]:9050]
    #[arg(long = "proxy", value_name = "ADDR", value_parser = parse_proxy_arg)]
    pub proxies: Vec<SocketAddr>,

    /// Also allow this destination: ADDR, CIDR, either with :PORT ([IPv6]:PORT), or unix:PATH (repeatable)
    #[arg(long = "allow", value_name = "ADDR|CIDR[:PORT]|unix:PATH", value_parser = parse_allow_arg)]
    pub allow: Vec<AllowRule>,

    /// Allow loopback destinations (127.0.0.0/8, ::1), except DNS on port 53
    #[arg(long)]
    pub allow_loopback: bool,

    /// Whether the program may receive connections on non-loopback addresses
    #[arg(long, value_enum, default_value = "block", value_name = "POLICY")]
    pub incoming: IncomingArg,

    /// Accept inbound TCP connections from this address or CIDR network anyway (repeatable)
    #[arg(long = "allow-incoming-from", value_name = "ADDR|CIDR", value_parser = parse_network_arg)]
    pub allow_incoming_from: Vec<ipnet::IpNet>,

    /// What to do with a leak
    #[arg(long, value_enum, default_value = "block", value_name = "ACTION")]
    pub on_leak: OnLeak,

    /// SOCKS5 username for socksified connections (with --proxy-pass)
    #[arg(long, value_name = "USER", requires = "proxy_pass")]
    pub proxy_user: Option<String>,

    /// SOCKS5 password for socksified connections (with --proxy-user)
    #[arg(long, value_name = "PASS", requires = "proxy_user")]
    pub proxy_pass: Option<String>,

    /// Use one pair of random SOCKS credentials for every socksified connection (one Tor circuit),
    /// instead of a fresh pair per connection (Tor stream isolation)
    #[arg(long, conflicts_with = "proxy_user")]
    pub one_circuit: bool,

    /// Write one JSON object per decision to FILE ('-' for stdout), and a summary as the last line
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Let the program use io_uring (needs the kernel layer, which still gates its connects)
    #[arg(long)]
    pub allow_io_uring: bool,

    /// No human lines on stderr (the JSON report is unaffected)
    #[arg(long, short)]
    pub quiet: bool,

    /// The program to run, and its arguments
    #[arg(required = true, trailing_var_arg = true, value_name = "PROGRAM [ARGS]...")]
    pub command: Vec<OsString>,
}

fn parse_proxy_arg(text: &str) -> Result<SocketAddr, String> {
    parse_proxy(text).map_err(|e| e.to_string())
}

fn parse_network_arg(text: &str) -> Result<ipnet::IpNet, String> {
    crate::policy::parse_network(text).map_err(|e| e.to_string())
}

fn parse_allow_arg(text: &str) -> Result<AllowRule, String> {
    text.parse().map_err(|e: crate::policy::RuleError| e.to_string())
}

/// Tor's SOCKS ports, the default proxies.
pub fn default_proxies() -> Vec<SocketAddr> {
    vec!["127.0.0.1:9050".parse().expect("literal"), "[::1]:9050".parse().expect("literal")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_a_full_run_line() {
        let cli = Cli::try_parse_from([
            "sockstrace",
            "run",
            "--proxy",
            "127.0.0.1:1080",
            "--allow",
            "10.0.0.0/8:443",
            "--allow-loopback",
            "--on-leak",
            "log",
            "--report",
            "-",
            "--",
            "curl",
            "-v",
            "http://x/",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else { panic!("not a run command") };
        assert_eq!(args.proxies, vec!["127.0.0.1:1080".parse::<SocketAddr>().unwrap()]);
        assert_eq!(args.on_leak, OnLeak::Log);
        assert_eq!(args.command, vec![OsString::from("curl"), "-v".into(), "http://x/".into()]);
    }

    #[test]
    fn rejects_bad_values_with_the_value_named() {
        let err =
            Cli::try_parse_from(["sockstrace", "run", "--allow", "nonsense", "--", "true"]).unwrap_err();
        assert!(err.to_string().contains("nonsense"), "{err}");
        let err = Cli::try_parse_from(["sockstrace", "run", "--proxy", "1.2.3.4", "--", "true"]).unwrap_err();
        assert!(err.to_string().contains("1.2.3.4"), "{err}");
    }
}
