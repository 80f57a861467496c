//! The command line (clap). Values are parsed here into policy types, so a bad
//! flag is reported before anything runs.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Watch a cgroup (or the whole machine) as root and report every process that reaches the
    /// network around the proxy; with --enforce, refuse it in the kernel.
    Audit(AuditArgs),
    /// Tell which layers work on this machine, and why not.
    Doctor {
        /// One JSON object for scripts: {"ok": bool, "checks": [{"name", "ok", "detail"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Summarize a --report file: tables by destination and by process, or an HTML page.
    Report(crate::report_reader::ReportArgs),
    /// Print shell completions for sockstrace.
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff).
    #[command(hide = true)]
    Man,
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
pub enum DnsArg {
    /// DNS to anything but an allowed destination is a leak, handled by --on-leak
    Block,
    /// DNS goes through, and is reported
    Log,
    /// The program gets its own resolv.conf naming a resolver inside sockstrace that resolves
    /// through the proxy (root, or any user with --isolate-network); leaked TCP connects to its
    /// answers go through the proxy by name
    Proxy,
}

/// `--dns-upstream`: how the resolver inside sockstrace answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsUpstreamArg {
    /// Private addresses standing for names; the proxy resolves the name at connect time
    Fake,
    /// Tor's SOCKS RESOLVE extension, through the first proxy
    Tor,
    /// DNS over TCP to this resolver, through the first proxy (SOCKS5 CONNECT)
    Resolver(SocketAddr),
}

pub(crate) fn parse_dns_upstream_arg(text: &str) -> Result<DnsUpstreamArg, String> {
    match text {
        "fake" => Ok(DnsUpstreamArg::Fake),
        "tor" => Ok(DnsUpstreamArg::Tor),
        other => other
            .parse()
            .map(DnsUpstreamArg::Resolver)
            .map_err(|_| format!("'{other}' is not fake, tor, or a resolver address IP:PORT")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KernelLayer {
    /// On when possible (root), off otherwise; the summary says which and why
    Auto,
    /// Never: the seccomp supervisor alone
    Off,
    /// Fail unless the kernel layer starts
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IncomingArg {
    /// Refuse listeners on non-loopback addresses (and peers not in --allow-incoming-from)
    Block,
    /// Let the program accept connections from anywhere
    Allow,
}

/// The policy options `run` and `audit` share.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// SOCKS proxy the traced programs may use (repeatable) [default: 127.0.0.1:9050, [::1]:9050]
    #[arg(long = "proxy", value_name = "ADDR", value_parser = parse_proxy_arg, env = "SOCKSTRACE_PROXY", value_delimiter = ',')]
    pub proxies: Vec<SocketAddr>,

    /// Also allow this destination: ADDR, CIDR, either with :PORT ([IPv6]:PORT), or unix:PATH (repeatable;
    /// unix: rules matter to run only: the kernel hooks see inet sockets)
    #[arg(
        long = "allow",
        value_name = "ADDR|CIDR[:PORT]|unix:PATH",
        value_parser = parse_allow_arg,
        env = "SOCKSTRACE_ALLOW",
        value_delimiter = ','
    )]
    pub allow: Vec<AllowRule>,

    /// Allow loopback destinations (127.0.0.0/8, ::1), except DNS on port 53
    #[arg(long, env = "SOCKSTRACE_ALLOW_LOOPBACK")]
    pub allow_loopback: bool,

    /// Whether receiving on non-loopback addresses is allowed (audit can refuse a UDP bind in the
    /// kernel, not a listen)
    #[arg(long, value_enum, default_value = "block", value_name = "POLICY", env = "SOCKSTRACE_INCOMING")]
    pub incoming: IncomingArg,
}

impl PolicyArgs {
    /// The proxies asked for, or Tor's when none was.
    pub fn proxies_or_default(&self) -> Vec<SocketAddr> {
        if self.proxies.is_empty() {
            default_proxies()
        } else {
            self.proxies.clone()
        }
    }

    pub fn incoming(&self) -> crate::policy::Incoming {
        match self.incoming {
            IncomingArg::Block => crate::policy::Incoming::Block,
            IncomingArg::Allow => crate::policy::Incoming::Allow,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,

    /// An HTTP proxy (CONNECT) the program may use, and socksify through when no SOCKS proxy fits (repeatable)
    #[arg(
        long = "http-proxy",
        value_name = "ADDR",
        value_parser = parse_proxy_arg,
        env = "SOCKSTRACE_HTTP_PROXY",
        value_delimiter = ','
    )]
    pub http_proxies: Vec<SocketAddr>,

    /// With --on-leak socksify: the SOCKS5 server whose UDP ASSOCIATE carries leaked datagrams
    /// [default: the first --proxy that offers it, asked at start]
    #[arg(long = "udp-proxy", value_name = "ADDR", value_parser = parse_proxy_arg, env = "SOCKSTRACE_UDP_PROXY")]
    pub udp_proxy: Option<SocketAddr>,

    /// Accept inbound TCP connections from this address or CIDR network anyway (repeatable)
    #[arg(
        long = "allow-incoming-from",
        value_name = "ADDR|CIDR",
        value_parser = parse_network_arg,
        env = "SOCKSTRACE_ALLOW_INCOMING_FROM",
        value_delimiter = ','
    )]
    pub allow_incoming_from: Vec<ipnet::IpNet>,

    /// What to do with a leak
    #[arg(long, value_enum, default_value = "block", value_name = "ACTION", env = "SOCKSTRACE_ON_LEAK")]
    pub on_leak: OnLeak,

    /// SOCKS5 username for socksified connections (with --proxy-pass)
    #[arg(long, value_name = "USER", env = "SOCKSTRACE_PROXY_USER")]
    pub proxy_user: Option<String>,

    /// SOCKS5 password for socksified connections (with --proxy-user)
    #[arg(long, value_name = "PASS", env = "SOCKSTRACE_PROXY_PASS")]
    pub proxy_pass: Option<String>,

    /// Use one pair of random SOCKS credentials for every socksified connection (one Tor circuit),
    /// instead of a fresh pair per connection (Tor stream isolation)
    #[arg(long, env = "SOCKSTRACE_ONE_CIRCUIT")]
    pub one_circuit: bool,

    /// Write one JSON object per decision to FILE ('-' for stdout), and a summary as the last line
    #[arg(long, value_name = "FILE", env = "SOCKSTRACE_REPORT")]
    pub report: Option<PathBuf>,

    /// DNS: a leak (block), reported but let through (log), or answered through the proxy (proxy)
    #[arg(long, value_enum, default_value = "block", value_name = "MODE", env = "SOCKSTRACE_DNS")]
    pub dns: DnsArg,

    /// With --dns proxy: fake (default), tor, or IP:PORT of a resolver reached over the proxy
    #[arg(
        long,
        value_name = "fake|tor|IP:PORT",
        default_value = "fake",
        value_parser = parse_dns_upstream_arg,
        env = "SOCKSTRACE_DNS_UPSTREAM"
    )]
    pub dns_upstream: DnsUpstreamArg,

    /// Relay the program's proxy connections through sockstrace and flag what its SOCKS handshake
    /// leaks: SOCKS4 without a host name, a SOCKS5 CONNECT by address right after a local lookup
    #[arg(long, env = "SOCKSTRACE_INSPECT_SOCKS")]
    pub inspect_socks: bool,

    /// With the SOCKS inspector: a handshake without username/password is a leak
    #[arg(long, env = "SOCKSTRACE_REQUIRE_SOCKS_AUTH")]
    pub require_socks_auth: bool,

    /// With the SOCKS inspector: SOCKS user names must match this regular expression (stream isolation)
    #[arg(long, value_name = "REGEX", value_parser = parse_regex_arg, env = "SOCKSTRACE_ISOLATION_REGEX")]
    pub isolation_regex: Option<regex::Regex>,

    /// The eBPF kernel layer (root only): a second, race-free gate and the kernel's view of each socket
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE", env = "SOCKSTRACE_KERNEL")]
    pub kernel: KernelLayer,

    /// Run the program as this user (name or uid), with its groups and no capabilities; the
    /// supervisor and the kernel layer stay root's. Under sudo the default is the invoking user
    /// (SUDO_UID); --user root keeps root
    #[arg(long, value_name = "NAME|UID", env = "SOCKSTRACE_USER")]
    pub user: Option<String>,

    /// Let the program use io_uring (needs the kernel layer, which still gates its connects)
    #[arg(long, env = "SOCKSTRACE_ALLOW_IO_URING")]
    pub allow_io_uring: bool,

    /// Run the program in a network namespace of its own (only loopback; a user namespace too
    /// without root): the proxies and allowed ADDR:PORT destinations are reached through
    /// sockstrace's forwarders, nothing else is reachable (see docs/ISOLATION.md)
    #[arg(long, env = "SOCKSTRACE_ISOLATE_NETWORK")]
    pub isolate_network: bool,

    /// With --isolate-network: bridge this abstract unix socket name (`@NAME` or `NAME`) to the
    /// host's namespace (repeatable; X11's and D-Bus's abstract names in DISPLAY and
    /// DBUS_*_BUS_ADDRESS are bridged without it when a server listens on them)
    #[arg(long = "bridge-abstract", value_name = "NAME")]
    pub bridge_abstract: Vec<String>,
    /// System calls besides the network ones: all (default), strict (the built-in allowlist for
    /// network clients and browsers, docs/SYSCALLS.md), or a profile FILE; a call outside the list
    /// fails (EPERM unless the profile says otherwise) and is reported (reason syscall-denied)
    #[arg(
        long,
        value_name = "all|strict|FILE",
        default_value = "all",
        value_parser = crate::syscalls::SyscallsArg::parse,
        env = "SOCKSTRACE_SYSCALLS"
    )]
    pub syscalls: crate::syscalls::SyscallsArg,

    /// Record every system call the program makes (both ABIs, with counts) and write them to FILE
    /// as a profile for --syscalls FILE (slow: each call stops in the supervisor)
    #[arg(long, value_name = "FILE", conflicts_with = "syscalls")]
    pub learn_syscalls: Option<PathBuf>,

    /// No human lines on stderr (the JSON report is unaffected)
    #[arg(long, short, env = "SOCKSTRACE_QUIET")]
    pub quiet: bool,

    /// Exit with status 3 if any leak was seen (whatever the program's own status)
    #[arg(long, env = "SOCKSTRACE_FAIL_ON_LEAK")]
    pub fail_on_leak: bool,

    /// Record the stack of the thread that made each leaking call (functions, files, lines) in its
    /// event and on the leak line
    #[arg(long, env = "SOCKSTRACE_STACK")]
    pub stack: bool,

    /// Write a core file of the leaking process into DIR at a leak (gdb's gcore), taken while the
    /// leaking call is held; the event names it
    #[arg(long, value_name = "DIR", env = "SOCKSTRACE_CORE_ON_LEAK")]
    pub core_on_leak: Option<PathBuf>,

    /// With --core-on-leak: at most N core files per run
    #[arg(long, value_name = "N", default_value = "1", env = "SOCKSTRACE_CORE_LIMIT")]
    pub core_limit: u32,

    /// Read options from this TOML file (flags and SOCKSTRACE_* variables win over it) [default:
    /// ~/.config/sockstrace/sockstrace.toml, else for root /etc/sockstrace/sockstrace.toml, if there]
    #[arg(long, value_name = "FILE", env = "SOCKSTRACE_CONFIG")]
    pub config: Option<PathBuf>,

    /// The program to run, and its arguments
    #[arg(required = true, trailing_var_arg = true, value_name = "PROGRAM [ARGS]...")]
    pub command: Vec<OsString>,
}

/// `sockstrace audit` (what they make: `audit::args`).
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Watch this cgroup and every cgroup below it: a path in the cgroup2 hierarchy, absolute
    /// or relative to its mount (e.g. system.slice/nginx.service) [default: the root cgroup,
    /// the whole machine]
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// Refuse leaks in the kernel (the process gets EPERM) and report them as blocked; without
    /// it leaks are only reported (action "logged")
    #[arg(long)]
    pub enforce: bool,

    /// Append one JSON object per leak to FILE ('-' for stdout), and a summary line at the end
    #[arg(long, value_name = "FILE", env = "SOCKSTRACE_REPORT")]
    pub report: Option<PathBuf>,

    /// Stop after SECS seconds (fractions allowed) [default: run until SIGINT or SIGTERM]
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Serve Prometheus metrics at http://ADDR/metrics
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// No human lines on stderr but errors and lost events (the JSON report is unaffected)
    #[arg(long, short)]
    pub quiet: bool,

    /// Read options from this TOML file, the one `run` reads (flags and SOCKSTRACE_* variables
    /// win over it) [default: ~/.config/sockstrace/sockstrace.toml, else for root
    /// /etc/sockstrace/sockstrace.toml, if there]
    #[arg(long, value_name = "FILE", env = "SOCKSTRACE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Exempt the processes of this cgroup and of every cgroup below it (the proxy's own:
    /// Tor connects to its relays directly): neither reported nor refused, only counted in
    /// the summary; repeatable; a path as --cgroup takes it
    #[arg(long = "exempt-cgroup", value_name = "PATH")]
    pub exempt_cgroups: Vec<PathBuf>,

    /// Exempt the processes of this user (a name or a uid); repeatable
    #[arg(long = "exempt-user", value_name = "USER|UID")]
    pub exempt_users: Vec<String>,

    /// Exempt the processes running this executable (an absolute path, compared with the
    /// file name execve is given and its canonical form; the mark is inherited at fork and
    /// dropped at the next exec); repeatable
    #[arg(long = "exempt-exe", value_name = "PATH")]
    pub exempt_exes: Vec<PathBuf>,
}

/// A positive, finite number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("{text:?}: the duration must be a positive number of seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}

pub(crate) fn parse_proxy_arg(text: &str) -> Result<SocketAddr, String> {
    parse_proxy(text).map_err(|e| e.to_string())
}

pub(crate) fn parse_regex_arg(text: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(text).map_err(|e| format!("'{text}' is not a regular expression: {e}"))
}

pub(crate) fn parse_network_arg(text: &str) -> Result<ipnet::IpNet, String> {
    crate::policy::parse_network(text).map_err(|e| e.to_string())
}

pub(crate) fn parse_allow_arg(text: &str) -> Result<AllowRule, String> {
    text.parse().map_err(|e: crate::policy::RuleError| e.to_string())
}

/// Tor's SOCKS ports, the default proxies.
pub fn default_proxies() -> Vec<SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    vec![
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9050),
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 9050),
    ]
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
        assert_eq!(args.policy.proxies, vec!["127.0.0.1:1080".parse::<SocketAddr>().unwrap()]);
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
