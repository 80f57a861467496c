//! Harness for the end-to-end tests of `sockstrace run`.
//!
//! - [`paths`]: where the sockstrace binary is (`SOCKSTRACE_BIN`, or a one-time
//!   `cargo build -p sockstrace`), and the C test clients, compiled once per test
//!   process: `netprobe` (dynamic, static, and for the i386 ABI with `-m32`,
//!   dynamic and static) and `uringprobe` (liburing).
//! - [`net`]: sinks that count what arrives (TCP, UDP, DNS on port 53), a proxy
//!   stand-in, a tiny HTTP server, and Debian's microsocks.
//! - [`run`]: runs sockstrace with a timeout (or in the background:
//!   [`Trace::spawn`]) and parses its JSON Lines report.
//! - [`report`]: assertions on report events and the summary.
//! - [`netns`]: a network namespace with a veth pair (root), for non-loopback peers.
//! - [`unpriv`]: running sockstrace as nobody.
//! - [`tornet`]: a private Tor network on loopback (Debian's tor), for the
//!   tests against Tor's own SOCKS port.
//! - [`bpf`]: which BPF programs are attached to a cgroup (`BPF_PROG_QUERY`).
//!
//! Network rule: everything here binds and sends to loopback only (127.0.0.0/8
//! and ::1), or inside network namespaces the tests create themselves
//! ([`netns`]).

pub mod apps;
pub mod bpf;
pub mod cgroup;
pub mod dante;
pub mod net;
pub mod netns;
pub mod paths;
pub mod report;
pub mod report_run;
pub mod run;
pub mod sniffer;
pub mod socks_standin;
pub mod tornet;
pub mod unpriv;
pub mod util;

pub use net::{DnsSink, HttpConnectProxy, HttpServer, Microsocks, TcpSink, UdpSink, UnixSink};
pub use paths::{
    client, client_build, netprobe, netprobe32, netprobe32_static, netprobe_static, sockstrace_bin,
    uringprobe, uringprobe_working,
};
pub use report::Event;
pub use report::LeakSpec;
pub use run::{direct, direct_client, kernel_available, Direct, Outcome, Running, Trace};
pub use util::{is_root, settle};
