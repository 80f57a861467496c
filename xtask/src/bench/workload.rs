//! The workloads, the tools they run under, and the command line of each pair.

use std::{
    ffi::OsString,
    net::{Ipv4Addr, SocketAddrV4},
    path::{Path, PathBuf},
    process::Command,
};

/// A way to run a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    Native,
    Run,
    Strace,
    RunKernel,
    Audit,
    /// A one-instruction seccomp filter that allows everything: what any filter costs.
    Floor,
    /// `sockstrace run --kernel off --isolate-network`: the program in a network namespace of
    /// its own, its allowed destinations forwarded (only the workloads marked `isolation`).
    Isolated,
    /// `sandlock run` (`--peers`): another seccomp user-notification sandbox, with Landlock.
    Sandlock,
    /// `syd` (`--peers`): another seccomp user-notification sandbox.
    Syd,
}

impl Tool {
    /// Every tool, in their first-round order.
    pub const ALL: [Tool; 7] =
        [Tool::Native, Tool::Run, Tool::Strace, Tool::RunKernel, Tool::Audit, Tool::Floor, Tool::Isolated];

    /// The JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Tool::Native => "native",
            Tool::Run => "run",
            Tool::Strace => "strace",
            Tool::RunKernel => "run_kernel",
            Tool::Audit => "audit",
            Tool::Floor => "seccomp_floor",
            Tool::Isolated => "run_isolated",
            Tool::Sandlock => "sandlock",
            Tool::Syd => "syd",
        }
    }

    /// The table heading.
    pub fn heading(self) -> &'static str {
        match self {
            Tool::Native => "native",
            Tool::Run => "run",
            Tool::Strace => "strace",
            Tool::RunKernel => "run+kernel",
            Tool::Audit => "audit",
            Tool::Floor => "floor",
            Tool::Isolated => "isolated",
            Tool::Sandlock => "sandlock",
            Tool::Syd => "syd",
        }
    }
}

/// How a workload's time is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// The bench client's own timed loop (`elapsed_ns`): excludes process and supervisor start.
    Client,
    /// Spawn to exit of the whole command.
    Wall,
}

/// A target ratio to native for `sockstrace run`, from the brief.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub max_ratio: f64,
}

/// The one destination a workload's policy allows, for the peers' policies (`--peers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// No network at all.
    Nothing,
    /// TCP connects to this address (the "proxy").
    Tcp(SocketAddrV4),
    /// UDP datagrams to this address.
    Udp(SocketAddrV4),
}

/// One workload: a program, the policy that makes it legitimate under `sockstrace run`, and what
/// the table says about it.
pub struct Workload {
    pub key: &'static str,
    pub label: String,
    pub program: Vec<OsString>,
    /// `sockstrace run` options placed before `--`.
    pub policy: Vec<String>,
    /// What `policy` allows, in the terms the peers' policies take.
    pub allowed: Allowed,
    /// Calls the supervisor intercepts per run (storms only): the table's µs/call.
    pub calls: Option<u64>,
    pub timing: Timing,
    pub target: Option<Target>,
    /// HTTP requests the run must deliver to the bench's web server.
    pub http_requests: Option<u64>,
    /// Also measured under `run --isolate-network` ([`Tool::Isolated`]).
    pub isolation: bool,
}

impl Workload {
    /// Whether `tool` measures this workload.
    pub fn measured_by(&self, tool: Tool) -> bool {
        match tool {
            Tool::Isolated => self.isolation,
            Tool::Sandlock | Tool::Syd => self.peer_unsupported().is_none(),
            _ => true,
        }
    }

    /// Why the peers (`--peers`) cannot run this workload with a policy like ours, if they
    /// cannot: the table's cell.
    pub fn peer_unsupported(&self) -> Option<&'static str> {
        self.policy.iter().any(|o| o == SYSCALLS_STRICT).then_some(PEER_NO_ALLOWLIST)
    }
}

/// `run --syscalls strict`, an option of `run` only (audit has no allowlist).
const SYSCALLS_STRICT: &str = "--syscalls=strict";

/// The peers' cell on the `--syscalls=strict` row.
pub const PEER_NO_ALLOWLIST: &str = "n/a: own filter only";

impl Workload {
    /// The policy options `sockstrace audit` takes (those of `run` alone left out).
    pub fn audit_policy(&self) -> Vec<String> {
        self.policy.iter().filter(|o| *o != SYSCALLS_STRICT).cloned().collect()
    }
}

/// How much work each workload does.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub connects: u64,
    pub datagrams: u64,
    pub requests: u64,
    pub bulk_mib: u64,
    pub syscalls: u64,
    pub rss_connects: u64,
    /// Trapped calls of each `bench_client notify-floor` run.
    pub notify_calls: u64,
    /// Datagrams of the audit leak flood, sent at [`FLOOD_RATE`] a second.
    pub flood: u64,
}

/// The audit leak flood's pace: the brief's "no event lost at 100k events/s".
pub const FLOOD_RATE: u64 = 100_000;

impl Sizes {
    pub const FULL: Sizes = Sizes {
        connects: 20_000,
        datagrams: 20_000,
        requests: 200,
        bulk_mib: 1024,
        syscalls: 2_000_000,
        rss_connects: 20_000,
        notify_calls: 20_000,
        flood: 300_000,
    };
    pub const QUICK: Sizes = Sizes {
        connects: 2_000,
        datagrams: 2_000,
        requests: 20,
        bulk_mib: 128,
        syscalls: 200_000,
        rss_connects: 4_000,
        notify_calls: 5_000,
        flood: 100_000,
    };
}

/// The addresses the workloads talk to.
pub struct Endpoints {
    pub client: PathBuf,
    /// `bench_client sink … close`, the "proxy" of the connect storms.
    pub storm_port: u16,
    /// `bench_client sink … drain`, the "proxy" of the bulk transfer.
    pub bulk_port: u16,
    /// A bound UDP socket nobody reads.
    pub udp_port: u16,
    /// microsocks.
    pub socks_port: u16,
    /// The bench's web server on 127.0.0.2.
    pub http_port: u16,
}

fn loopback(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

impl Endpoints {
    fn client(&self, rest: &[&str]) -> Vec<OsString> {
        let mut program = vec![self.client.clone().into_os_string()];
        program.extend(args(rest));
        program
    }

    fn connect_storm(&self, threads: u32, count: u64, max_ratio: f64) -> Workload {
        let (port, count_text, threads_text) =
            (self.storm_port.to_string(), count.to_string(), threads.to_string());
        Workload {
            key: if threads == 1 { "connect_storm_1t" } else { "connect_storm_4t" },
            label: format!("connect storm {threads}t"),
            program: self.client(&["connect", "127.0.0.1", &port, &count_text, &threads_text]),
            policy: vec!["--proxy".into(), format!("127.0.0.1:{port}")],
            allowed: Allowed::Tcp(loopback(self.storm_port)),
            calls: Some(count),
            timing: Timing::Client,
            target: Some(Target { max_ratio }),
            http_requests: None,
            isolation: true,
        }
    }

    /// `bench_client notify-connect` on the storm's listener: `mode` is `continue` or `perform`.
    pub fn notify_connect(&self, count: u64, mode: &str) -> Vec<OsString> {
        self.client(&["notify-connect", "127.0.0.1", &self.storm_port.to_string(), &count.to_string(), mode])
    }

    /// `bench_client notify-udp` to the UDP storm's socket: `mode` is `continue` or `perform`.
    pub fn notify_udp(&self, count: u64, mode: &str) -> Vec<OsString> {
        self.client(&["notify-udp", "127.0.0.1", &self.udp_port.to_string(), &count.to_string(), mode])
    }

    /// The native UDP storm.
    pub fn native_udp_storm(&self, count: u64) -> Vec<OsString> {
        self.client(&["udp", "127.0.0.1", &self.udp_port.to_string(), &count.to_string()])
    }

    /// The native 1-thread connect storm.
    pub fn native_connect_storm(&self, count: u64) -> Vec<OsString> {
        self.client(&["connect", "127.0.0.1", &self.storm_port.to_string(), &count.to_string(), "1"])
    }

    /// Every workload, in table order.
    pub fn workloads(&self, sizes: Sizes) -> Vec<Workload> {
        let udp = self.udp_port.to_string();
        let bulk = self.bulk_port.to_string();
        let socks = format!("127.0.0.1:{}", self.socks_port);
        let urls = format!("http://127.0.0.2:{}/[1-{}]", self.http_port, sizes.requests);
        vec![
            Workload {
                key: "startup",
                label: "startup (true)".into(),
                program: args(&["true"]),
                policy: Vec::new(),
                allowed: Allowed::Nothing,
                calls: None,
                timing: Timing::Wall,
                target: None,
                http_requests: None,
                isolation: true,
            },
            self.connect_storm(1, sizes.connects, 1.30),
            self.connect_storm(4, sizes.connects, 1.40),
            Workload {
                key: "udp_sendto_storm",
                label: "udp sendto storm".into(),
                program: self.client(&["udp", "127.0.0.1", &udp, &sizes.datagrams.to_string()]),
                policy: vec!["--allow".into(), format!("127.0.0.1:{udp}")],
                allowed: Allowed::Udp(loopback(self.udp_port)),
                calls: Some(sizes.datagrams),
                timing: Timing::Client,
                target: None,
                http_requests: None,
                isolation: false,
            },
            Workload {
                key: "http_via_microsocks",
                label: format!("curl {} req via socks", sizes.requests),
                program: args(&["curl", "-sSf", "--socks5-hostname", &socks, &urls]),
                policy: vec!["--proxy".into(), socks.clone()],
                allowed: Allowed::Tcp(loopback(self.socks_port)),
                calls: None,
                timing: Timing::Wall,
                target: None,
                http_requests: Some(sizes.requests),
                isolation: false,
            },
            Workload {
                key: "bulk_transfer",
                label: format!("bulk {} MiB tcp", sizes.bulk_mib),
                program: self.client(&["bulk", "127.0.0.1", &bulk, &sizes.bulk_mib.to_string()]),
                policy: vec!["--proxy".into(), format!("127.0.0.1:{bulk}")],
                allowed: Allowed::Tcp(loopback(self.bulk_port)),
                calls: None,
                timing: Timing::Client,
                target: Some(Target { max_ratio: 1.02 }),
                http_requests: None,
                isolation: true,
            },
            Workload {
                key: "non_network_syscalls",
                label: format!("{}k getpid+stat", sizes.syscalls / 1000),
                program: self.client(&["syscalls", &sizes.syscalls.to_string()]),
                policy: Vec::new(),
                allowed: Allowed::Nothing,
                calls: None,
                timing: Timing::Client,
                target: Some(Target { max_ratio: 1.02 }),
                http_requests: None,
                isolation: false,
            },
            // The same calls under the system call allowlist: its run column against the row
            // above shows what the allowlist costs (allowed calls are ALLOW in the kernel's cache).
            Workload {
                key: "non_network_syscalls_strict",
                label: format!("{}k getpid+stat strict", sizes.syscalls / 1000),
                program: self.client(&["syscalls", &sizes.syscalls.to_string()]),
                policy: vec![SYSCALLS_STRICT.into()],
                allowed: Allowed::Nothing,
                calls: None,
                timing: Timing::Client,
                target: Some(Target { max_ratio: 1.02 }),
                http_requests: None,
                isolation: false,
            },
        ]
    }

    /// The 16-thread storm during which the supervisor's peak RSS is sampled.
    pub fn rss_storm(&self, sizes: Sizes) -> Workload {
        let mut storm = self.connect_storm(16, sizes.rss_connects, f64::INFINITY);
        storm.key = "connect_storm_16t";
        storm.target = None;
        storm
    }
}

/// The command line running `workload` under `tool` (`sockstrace` is the release binary, `client`
/// the bench client). Under `audit` it is the program alone: the bench places it in the audited
/// cgroup and runs `sockstrace audit` around it (see `bench::audit`).
pub fn command(tool: Tool, sockstrace: &Path, client: &Path, workload: &Workload) -> Command {
    let mut command = match tool {
        // The peers' command lines need their binaries: `bench::peers::command`.
        Tool::Native | Tool::Audit | Tool::Sandlock | Tool::Syd => return program(&workload.program),
        Tool::Run => {
            // The supervisor alone: the kernel layer has its own column.
            let mut run = Command::new(sockstrace);
            run.args(["run", "--kernel", "off"]).args(&workload.policy).arg("--");
            run
        }
        Tool::Strace => {
            let mut strace = Command::new("strace");
            strace.args(["-f", "--seccomp-bpf", "-e", "trace=network", "-o", "/dev/null"]);
            strace
        }
        Tool::Floor => {
            let mut floor = Command::new(client);
            floor.arg("seccomp-allow");
            floor
        }
        Tool::Isolated => {
            let mut run = Command::new(sockstrace);
            run.args(["run", "--kernel", "off", "--isolate-network"]).args(&workload.policy).arg("--");
            run
        }
        Tool::RunKernel => {
            // Supervisor and eBPF layer together (the bench runs as root), the program as
            // another user (as under sudo, by default): allowed connects and datagrams then
            // take the fast path, answered CONTINUE and judged by the kernel layer.
            let mut run = Command::new(sockstrace);
            run.args(["run", "--kernel", "required", "--user", "nobody"]).args(&workload.policy).arg("--");
            run
        }
    };
    command.args(&workload.program);
    command
}

fn program(argv: &[OsString]) -> Command {
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    command
}
