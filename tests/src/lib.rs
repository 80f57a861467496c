//! Harness for the end-to-end tests of `sockstrace run`.
//!
//! - [`paths`]: where the sockstrace binary is (`SOCKSTRACE_BIN`, or a one-time
//!   `cargo build -p sockstrace`), and the C test client `netprobe`, compiled once
//!   per test process (dynamic and, when glibc allows it, static).
//! - [`net`]: sinks that count what arrives (TCP, UDP, DNS on port 53), a proxy
//!   stand-in, a tiny HTTP server, and Debian's microsocks.
//! - [`run`]: runs sockstrace with a timeout and parses its JSON Lines report.
//! - [`report`]: assertions on report events and the summary.
//!
//! Network rule: everything here binds and sends to loopback only (127.0.0.0/8
//! and ::1).

pub mod net;
pub mod paths;
pub mod report;
pub mod run;
pub mod util;

pub use net::{DnsSink, HttpServer, Microsocks, TcpSink, UdpSink, UnixSink};
pub use paths::{netprobe, netprobe_static, sockstrace_bin};
pub use report::Event;
pub use report::LeakSpec;
pub use run::{direct, Direct, Outcome, Trace};
pub use util::{is_root, settle};
